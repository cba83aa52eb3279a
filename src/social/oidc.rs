//! An OpenID Connect issuer: discovery, the authorization URL (PKCE, nonce, state) and
//! the code exchange with the id_token checked by `openidconnect`.

use std::time::{Duration, Instant};

use openidconnect::{
    AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse,
    core::{CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata},
};
use tokio::sync::Mutex;
use url::Url;

use super::{ProviderError, ProviderIdentity, client_secret, send};
use crate::config::ProviderConfig;

/// How long discovery and keys are kept before they are fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// The id_token signatures accepted: every asymmetric algorithm (never `none`, never
/// one keyed by the client secret).
const ALGORITHMS: &[CoreJwsSigningAlgorithm] = &[
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

pub(super) struct Issuer {
    url: Url,
    metadata: Mutex<Option<(Instant, CoreProviderMetadata)>>,
}

impl Issuer {
    pub(super) fn new(url: &Url) -> Self {
        Self {
            url: url.clone(),
            metadata: Mutex::new(None),
        }
    }

    /// The discovery document with the issuer's keys: kept, or fetched when missing,
    /// older than an hour, or `refresh`.
    async fn metadata(
        &self,
        http: &reqwest::Client,
        refresh: bool,
    ) -> Result<CoreProviderMetadata, ProviderError> {
        let mut cached = self.metadata.lock().await;
        if !refresh
            && let Some((at, metadata)) = cached.as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(metadata.clone());
        }
        let issuer = IssuerUrl::new(self.url.as_str().trim_end_matches('/').to_owned())
            .map_err(|e| ProviderError::new("discovery", e))?;
        let client = |request| send(http.clone(), request);
        let metadata = CoreProviderMetadata::discover_async(issuer, &client)
            .await
            .map_err(|e| {
                tracing::warn!(issuer = %self.url, error = %error_chain(&e), "OpenID Connect discovery failed");
                ProviderError::new("discovery", error_chain(&e))
            })?;
        *cached = Some((Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    fn client(
        config: &ProviderConfig,
        metadata: CoreProviderMetadata,
        redirect_uri: &str,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        ProviderError,
    > {
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| ProviderError::new("configuration", e))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id.clone()),
            Some(client_secret(config)),
        )
        .set_redirect_uri(redirect))
    }

    pub(super) async fn authorization(
        &self,
        http: &reqwest::Client,
        config: &ProviderConfig,
        redirect_uri: &str,
        state: &str,
    ) -> Result<super::Authorization, ProviderError> {
        let client = Self::client(config, self.metadata(http, false).await?, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_owned();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &config.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, _, nonce) = request.url();
        Ok(super::Authorization {
            url: url.to_string(),
            pkce_verifier: verifier.secret().clone(),
            nonce: Some(nonce.secret().clone()),
        })
    }

    pub(super) async fn identity(
        &self,
        http: &reqwest::Client,
        config: &ProviderConfig,
        redirect_uri: &str,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<ProviderIdentity, ProviderError> {
        let metadata = self.metadata(http, false).await?;
        let client = Self::client(config, metadata, redirect_uri)?;
        let send_one = |request| send(http.clone(), request);
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| ProviderError::new("configuration", e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&send_one)
            .await
            .map_err(|e| ProviderError::new("token_exchange", error_chain(&e)))?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| ProviderError::new("id_token", "the answer has no id_token"))?;
        let nonce = Nonce::new(nonce.to_owned());
        let verified = {
            let verifier = client
                .id_token_verifier()
                .set_allowed_algs(ALGORITHMS.iter().cloned());
            id_token.claims(&verifier, &nonce).map(identity_of)
        };
        match verified {
            Ok(identity) => Ok(identity),
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                // Perhaps a key the issuer rotated in since discovery: fetch once more.
                let fresh = Self::client(config, self.metadata(http, true).await?, redirect_uri)?;
                let verifier = fresh
                    .id_token_verifier()
                    .set_allowed_algs(ALGORITHMS.iter().cloned());
                id_token
                    .claims(&verifier, &nonce)
                    .map(identity_of)
                    .map_err(|e| ProviderError::new("id_token", error_chain(&e)))
            }
            Err(e) => Err(ProviderError::new("id_token", error_chain(&e))),
        }
    }
}

fn identity_of(claims: &openidconnect::core::CoreIdTokenClaims) -> ProviderIdentity {
    ProviderIdentity {
        subject: claims.subject().as_str().to_owned(),
        email: claims.email().map(|e| e.as_str().to_owned()),
        email_verified: claims.email_verified().unwrap_or(false),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned()),
    }
}

/// An error with its causes, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
