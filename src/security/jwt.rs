//! Access tokens: JWTs (RFC 9068 profile, `typ: at+jwt`).
//!
//! Signing: HS256 over `SECRET_KEY` (default), or EdDSA with an Ed25519 key, whose
//! public half is published as a JWK set. Older keys stay in the verification set, so
//! rotating the signing key signs nobody out.
//!
//! Verification (RFC 8725): the algorithm is pinned; the `kid` must name a key of the
//! fixed set (`jku`, `x5u` and `jwk` headers are never followed); the header type must
//! be `at+jwt`; every claim is required; `exp`, `nbf` and `iat` are checked against the
//! injected clock with a leeway of a few seconds (the crate's 60 s default is too
//! loose, and it reads the wall clock).
//!
//! A token is presented many times in its short life, and checking its signature and
//! decoding its two JSON parts twice was a tenth of a `me` request's CPU: the claims
//! of tokens that passed those checks are kept by the token's exact text (the key set
//! never changes while the process runs), and the time checks run on every use.

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::Context;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use mini_moka::sync::Cache;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    config::{JwtSigning, TokenConfig},
    domain::assurance::{Aal, Assurance},
};

/// Token type of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Tolerated clock skew between the issuer and a verifier.
pub const LEEWAY_SECS: i64 = 5;

/// The most bytes of verified tokens kept (about 3,000 tokens): what one instance's
/// active clients present within a token's lifetime, at a bounded memory cost.
const VERIFIED_CACHE_BYTES: u64 = 2 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    /// The session (refresh-token family) id.
    pub sid: Uuid,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: Uuid,
    /// The session's assurance level: `aal1` | `aal2`. Tokens issued before sessions
    /// carried it read as `aal1` with no methods and an `auth_time` of 0: never fresh.
    #[serde(default = "lowest_acr")]
    pub acr: String,
    /// How the session was proved (`pwd`, `otp`, `mfa` …).
    #[serde(default)]
    pub amr: Vec<String>,
    /// When a credential was last proved on the session (NumericDate).
    #[serde(default)]
    pub auth_time: i64,
}

fn lowest_acr() -> String {
    Aal::Aal1.as_str().to_owned()
}

impl AccessClaims {
    /// The session's assurance, as the token states it.
    pub fn assurance(&self) -> Assurance {
        Assurance::from_stored(
            &self.acr,
            &self.amr.join(" "),
            DateTime::from_timestamp(self.auth_time, 0).unwrap_or_default(),
        )
    }
}

pub struct JwtKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    kid: String,
    /// kid → key, for every key that may verify: the signing key and older ones.
    verifying: HashMap<String, DecodingKey>,
    validation: Validation,
    /// The public JWK set (EdDSA only).
    jwks: Option<serde_json::Value>,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    /// Token text → its claims, for tokens whose signature and claims checked out.
    verified: Cache<String, Arc<AccessClaims>>,
}

/// An Ed25519 public key as a JWK, with its RFC 7638 thumbprint as kid.
struct Ed25519Public {
    kid: String,
    x: String,
}

impl Ed25519Public {
    fn new(key: &ed25519_dalek::VerifyingKey) -> Self {
        let x = URL_SAFE_NO_PAD.encode(key.to_bytes());
        // RFC 7638: members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Self { kid, x }
    }

    fn jwk(&self) -> serde_json::Value {
        serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.kid, "alg": "EdDSA", "use": "sig" })
    }
}

/// kid of an HMAC secret: 64 bits of its SHA-256, which reveal nothing of it.
fn hmac_kid(secret: &[u8]) -> String {
    format!(
        "hs-{}",
        &URL_SAFE_NO_PAD.encode(Sha256::digest(secret))[..11]
    )
}

impl JwtKeys {
    /// jsonwebtoken's keys, from the key material the configuration parsed and checked.
    pub fn from_config(cfg: &TokenConfig) -> anyhow::Result<Self> {
        let (algorithm, encoding, kid, verifying, jwks) = match &cfg.signing {
            JwtSigning::Hs256 { previous } => {
                let secret = cfg.secret_key.expose_secret().as_bytes();
                let kid = hmac_kid(secret);
                let mut verifying = HashMap::new();
                verifying.insert(kid.clone(), DecodingKey::from_secret(secret));
                for old in previous {
                    let old = old.expose_secret().as_bytes();
                    verifying.insert(hmac_kid(old), DecodingKey::from_secret(old));
                }
                (
                    Algorithm::HS256,
                    EncodingKey::from_secret(secret),
                    kid,
                    verifying,
                    None,
                )
            }
            JwtSigning::EdDsa { key, previous, .. } => {
                // jsonwebtoken signs with the key as PKCS#8 DER.
                let der = key.to_pkcs8_der().context("encode JWT_PRIVATE_KEY")?;
                let encoding = EncodingKey::from_ed_der(der.as_bytes());
                let publics: Vec<Ed25519Public> = std::iter::once(key.verifying_key())
                    .chain(previous.iter().copied())
                    .map(|public| Ed25519Public::new(&public))
                    .collect();
                let mut verifying = HashMap::new();
                for public in &publics {
                    verifying.insert(
                        public.kid.clone(),
                        DecodingKey::from_ed_components(&public.x)?,
                    );
                }
                let jwks = serde_json::json!({ "keys": publics.iter().map(Ed25519Public::jwk).collect::<Vec<_>>() });
                let kid = publics[0].kid.clone();
                (Algorithm::EdDSA, encoding, kid, verifying, Some(jwks))
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&cfg.issuer]);
        validation.set_audience(&[&cfg.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // Checked in `verify_access` against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Ok(Self {
            algorithm,
            encoding,
            kid,
            verifying,
            validation,
            jwks,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            access_ttl: cfg.access_ttl,
            verified: Cache::builder()
                .max_capacity(VERIFIED_CACHE_BYTES)
                .weigher(|token: &String, _: &Arc<AccessClaims>| {
                    u32::try_from(token.len() + 256).unwrap_or(u32::MAX)
                })
                // No token outlives this; the claims' own times are checked anyway.
                .time_to_live(cfg.access_ttl + Duration::from_secs(LEEWAY_SECS.unsigned_abs()))
                .build(),
        })
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// The public keys as a JWK set, when tokens are signed asymmetrically.
    pub fn jwks(&self) -> Option<&serde_json::Value> {
        self.jwks.as_ref()
    }

    /// The latest instant an access token issued now can still be valid.
    pub fn latest_expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.access_ttl).unwrap_or(chrono::Duration::MAX)
            + chrono::Duration::seconds(LEEWAY_SECS)
    }

    pub fn issue_access(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        assurance: &Assurance,
        now: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        let iat = now.timestamp();
        let ttl = i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id,
            sid: session_id,
            exp: iat.saturating_add(ttl),
            nbf: iat,
            iat,
            jti: Uuid::new_v4(),
            acr: assurance.aal.as_str().to_owned(),
            amr: assurance
                .amr_names()
                .into_iter()
                .map(String::from)
                .collect(),
            auth_time: assurance.auth_time.timestamp(),
        };
        let mut header = Header::new(self.algorithm);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).context("sign access token")
    }

    /// The claims of a valid access token, or `None` for anything else.
    pub fn verify_access(&self, token: &str, now: DateTime<Utc>) -> Option<AccessClaims> {
        // The cache looks keys up by `&String` only.
        let token = token.to_owned();
        let claims = match self.verified.get(&token) {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.check_signed(&token)?);
                self.verified.insert(token, Arc::clone(&claims));
                claims
            }
        };
        let now = now.timestamp();
        let live = now < claims.exp.saturating_add(LEEWAY_SECS)
            && now >= claims.nbf.saturating_sub(LEEWAY_SECS)
            && now >= claims.iat.saturating_sub(LEEWAY_SECS);
        live.then(|| AccessClaims::clone(&claims))
    }

    /// Everything but the time checks: the header, the key, the signature, the claims.
    fn check_signed(&self, token: &str) -> Option<AccessClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != self.algorithm || header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE) {
            return None;
        }
        // Only our own keys: a `jku`, `x5u` or embedded `jwk` is never looked at.
        let key = self.verifying.get(header.kid.as_deref()?)?;
        jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    const SECRET: &str = "kQ2lN8bVvI1v3s2h3JmW5nS0eXq9rT4yZpB6uC7d";
    const OTHER: &str = "Xq3v9LmZt2R8bW1kP6sN0yH4jD7fG5cAx8Vb2Nm4";

    fn cfg(secret: &str, signing: JwtSigning) -> TokenConfig {
        TokenConfig {
            secret_key: SecretString::from(secret),
            secret_source: "test".into(),
            previous_secret_keys: Vec::new(),
            signing,
            issuer: "issuer".into(),
            audience: "audience".into(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(3600),
            refresh_idle_ttl: Duration::from_secs(3600),
            refresh_reuse_grace: Duration::from_secs(10),
            max_sessions_per_user: 100,
        }
    }

    fn hs(secret: &str, previous: &[&str]) -> JwtKeys {
        let previous = previous.iter().map(|p| SecretString::from(*p)).collect();
        JwtKeys::from_config(&cfg(secret, JwtSigning::Hs256 { previous })).unwrap()
    }

    fn ed_key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    fn ed(seed: u8, previous: &[u8]) -> JwtKeys {
        JwtKeys::from_config(&cfg(
            SECRET,
            JwtSigning::EdDsa {
                key: Box::new(ed_key(seed)),
                previous: previous
                    .iter()
                    .map(|s| ed_key(*s).verifying_key())
                    .collect(),
                source: "test".into(),
            },
        ))
        .unwrap()
    }

    /// A password session's token for a fresh user and session.
    fn issue(keys: &JwtKeys, now: DateTime<Utc>) -> String {
        keys.issue_access(
            Uuid::new_v4(),
            Uuid::new_v4(),
            &Assurance::password(now),
            now,
        )
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let (user, sid, now) = (Uuid::new_v4(), Uuid::new_v4(), crate::clock::wall_now());
        let keys = hs(SECRET, &[]);
        let token = keys
            .issue_access(user, sid, &Assurance::password(now), now)
            .unwrap();
        let claims = keys.verify_access(&token, now).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, sid));
        assert_eq!(claims.exp - claims.iat, 900);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    }

    #[test]
    fn expiry_not_before_and_issued_at_follow_the_clock() {
        let now = crate::clock::wall_now();
        let keys = hs(SECRET, &[]);
        let token = issue(&keys, now);
        assert!(
            keys.verify_access(&token, now + chrono::Duration::seconds(899))
                .is_some()
        );
        assert!(
            keys.verify_access(&token, now + chrono::Duration::seconds(905))
                .is_none()
        );
        assert!(
            keys.verify_access(&token, now - chrono::Duration::seconds(60))
                .is_none()
        );
    }

    #[test]
    fn a_kept_token_is_found_by_its_exact_text_only() {
        let now = crate::clock::wall_now();
        let keys = hs(SECRET, &[]);
        let token = issue(&keys, now);
        let claims = keys.verify_access(&token, now).unwrap();
        assert_eq!(keys.verify_access(&token, now), Some(claims));
        // The same claims under another signature, or with a byte changed: checked
        // afresh, and refused.
        let (signed, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert!(keys.verify_access(&forged, now).is_none());
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert!(
            keys.verify_access(&String::from_utf8(flipped).unwrap(), now)
                .is_none()
        );
        assert!(keys.verify_access(&format!("{token} "), now).is_none());
    }

    #[test]
    fn rejects_other_keys_issuers_and_audiences() {
        let now = crate::clock::wall_now();
        let keys = hs(SECRET, &[]);
        let other = hs(OTHER, &[]);
        let token = issue(&other, now);
        assert!(keys.verify_access(&token, now).is_none());
        let mut wrong = cfg(SECRET, JwtSigning::Hs256 { previous: vec![] });
        wrong.audience = "elsewhere".into();
        let token = issue(&JwtKeys::from_config(&wrong).unwrap(), now);
        assert!(keys.verify_access(&token, now).is_none());
    }

    #[test]
    fn rotated_secrets_still_verify_but_do_not_sign() {
        let now = crate::clock::wall_now();
        let before = hs(OTHER, &[]);
        let old_token = issue(&before, now);
        let after = hs(SECRET, &[OTHER]);
        assert!(after.verify_access(&old_token, now).is_some());
        let new_token = issue(&after, now);
        assert_eq!(
            jsonwebtoken::decode_header(&new_token).unwrap().kid,
            Some(hmac_kid(SECRET.as_bytes()))
        );
        assert!(hs(SECRET, &[]).verify_access(&old_token, now).is_none());
    }

    #[test]
    fn ed25519_tokens_verify_with_the_published_key() {
        let now = crate::clock::wall_now();
        let keys = ed(7, &[3]);
        let token = issue(&keys, now);
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().alg,
            Algorithm::EdDSA
        );
        assert!(keys.verify_access(&token, now).is_some());
        // Anyone holding the JWK set can verify, with the kid of the header.
        let jwks = keys.jwks().unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .unwrap();
        let key = DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["audience"]);
        assert!(jsonwebtoken::decode::<AccessClaims>(&token, &key, &validation).is_ok());
        // A token of the previous key still verifies; one of an unknown key does not.
        let old = ed(3, &[])
            .issue_access(
                Uuid::new_v4(),
                Uuid::new_v4(),
                &Assurance::password(now),
                now,
            )
            .unwrap();
        assert!(keys.verify_access(&old, now).is_some());
        let stranger = ed(9, &[])
            .issue_access(
                Uuid::new_v4(),
                Uuid::new_v4(),
                &Assurance::password(now),
                now,
            )
            .unwrap();
        assert!(keys.verify_access(&stranger, now).is_none());
    }

    #[test]
    fn an_hs256_token_is_refused_by_an_eddsa_service() {
        // Algorithm confusion: an HMAC signed with the public key must not pass.
        let now = crate::clock::wall_now();
        let keys = ed(7, &[]);
        let jwk_x = keys.jwks().unwrap()["keys"][0]["x"]
            .as_str()
            .unwrap()
            .to_owned();
        let kid = keys.kid.clone();
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some(kid);
        let claims = keys.verify_access(&issue(&keys, now), now).unwrap();
        let forged = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(jwk_x.as_bytes()),
        )
        .unwrap();
        assert!(keys.verify_access(&forged, now).is_none());
    }

    #[test]
    fn rejects_alg_none_and_a_missing_type() {
        let now = crate::clock::wall_now();
        let keys = hs(SECRET, &[]);
        let token = issue(&keys, now);
        let payload = token.split('.').nth(1).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
        assert!(
            keys.verify_access(&format!("{none_header}.{payload}."), now)
                .is_none()
        );
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.kid.clone());
        let claims = keys.verify_access(&token, now).unwrap();
        let plain = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(keys.verify_access(&plain, now).is_none());
    }
}
