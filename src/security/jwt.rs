//! Access tokens: JWTs (RFC 9068 profile, `typ: at+jwt`), HS256 over `SECRET_KEY`.
//!
//! Verification pins the algorithm, requires the key id to be ours, the `at+jwt` type,
//! and every claim; `exp`/`nbf` are checked against the injected clock with a small
//! leeway (the crate's own 60 s default is too loose, and it reads the wall clock).

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::security::random;

/// Token type of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Tolerated clock skew between the issuer and a verifier.
pub const LEEWAY_SECS: i64 = 5;

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
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: Duration,
}

impl JwtKeys {
    pub fn new_hs256(secret: &[u8], issuer: &str, audience: &str, access_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // Checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            // A stable, non-secret name for this key: 64 bits of its SHA-256.
            kid: random::hash(&String::from_utf8_lossy(secret))[..11].to_owned(),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            access_ttl,
        }
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
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
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).context("sign access token")
    }

    /// The claims of a valid access token, or `None` for anything else.
    pub fn verify_access(&self, token: &str, now: DateTime<Utc>) -> Option<AccessClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE)
            || header.kid.as_deref() != Some(&self.kid)
        {
            return None;
        }
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).ok()?;
        let claims = data.claims;
        let now = now.timestamp();
        if now >= claims.exp.saturating_add(LEEWAY_SECS)
            || now < claims.nbf.saturating_sub(LEEWAY_SECS)
        {
            return None;
        }
        Some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> JwtKeys {
        JwtKeys::new_hs256(SECRET, "issuer", "audience", Duration::from_secs(900))
    }

    #[test]
    fn round_trip() {
        let (user, sid, now) = (Uuid::new_v4(), Uuid::new_v4(), Utc::now());
        let token = keys().issue_access(user, sid, now).unwrap();
        let claims = keys().verify_access(&token, now).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, sid));
        assert_eq!(claims.exp - claims.iat, 900);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    }

    #[test]
    fn expiry_and_not_before_follow_the_clock() {
        let now = Utc::now();
        let token = keys()
            .issue_access(Uuid::new_v4(), Uuid::new_v4(), now)
            .unwrap();
        assert!(
            keys()
                .verify_access(&token, now + chrono::Duration::seconds(899))
                .is_some()
        );
        assert!(
            keys()
                .verify_access(&token, now + chrono::Duration::seconds(905))
                .is_none()
        );
        assert!(
            keys()
                .verify_access(&token, now - chrono::Duration::seconds(60))
                .is_none()
        );
    }

    #[test]
    fn rejects_other_keys_issuers_and_audiences() {
        let now = Utc::now();
        let other = JwtKeys::new_hs256(
            b"another-secret-another-secret-xx",
            "issuer",
            "audience",
            Duration::from_secs(900),
        );
        let token = other
            .issue_access(Uuid::new_v4(), Uuid::new_v4(), now)
            .unwrap();
        assert!(keys().verify_access(&token, now).is_none());
        let wrong_aud = JwtKeys::new_hs256(SECRET, "issuer", "elsewhere", Duration::from_secs(900));
        let token = wrong_aud
            .issue_access(Uuid::new_v4(), Uuid::new_v4(), now)
            .unwrap();
        assert!(keys().verify_access(&token, now).is_none());
        let wrong_iss = JwtKeys::new_hs256(SECRET, "mallory", "audience", Duration::from_secs(900));
        let token = wrong_iss
            .issue_access(Uuid::new_v4(), Uuid::new_v4(), now)
            .unwrap();
        assert!(keys().verify_access(&token, now).is_none());
    }

    #[test]
    fn rejects_alg_none_and_a_missing_type() {
        let now = Utc::now();
        let token = keys()
            .issue_access(Uuid::new_v4(), Uuid::new_v4(), now)
            .unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
        assert!(
            keys()
                .verify_access(&format!("{none_header}.{payload}."), now)
                .is_none()
        );
        // Same key and claims, but typ "JWT": not an access token.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys().kid.clone());
        let claims = keys().verify_access(&token, now).unwrap();
        let plain =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap();
        assert!(keys().verify_access(&plain, now).is_none());
    }
}
