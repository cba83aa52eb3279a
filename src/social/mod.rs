//! Identity providers for social login: OpenID Connect issuers (through `openidconnect`)
//! and GitHub (OAuth2 through `oauth2`, then its REST API).
//!
//! - One HTTP client for every provider: rustls on ring with the webpki roots (the TLS
//!   stack the rest of the service uses), redirects off, a timeout on every call, and
//!   answers larger than 1 MiB refused.
//! - A provider yields a [`ProviderIdentity`]: its stable subject, and an address with
//!   whether the provider says it is verified. Its tokens are used for the one exchange
//!   and dropped: nothing of them is stored.
//! - An OpenID Connect issuer's discovery document and keys are fetched on first use and
//!   kept an hour; an id_token signed by a key not (yet) known fetches them again once,
//!   so a provider's key rotation needs no restart.

mod github;
mod oidc;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use secrecy::ExposeSecret;

use crate::config::{ProviderConfig, ProviderKind, SocialConfig};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The configured providers and the client that talks to them.
pub struct Providers {
    http: reqwest::Client,
    providers: Vec<Provider>,
}

/// One provider.
pub struct Provider {
    pub config: ProviderConfig,
    issuer: Option<oidc::Issuer>,
}

/// Where to send the browser, and what the callback needs to finish.
pub struct Authorization {
    pub url: String,
    pub pkce_verifier: String,
    /// OpenID Connect only: the nonce the id_token must carry.
    pub nonce: Option<String>,
}

/// Who the provider says signed in.
#[derive(Debug, Clone)]
pub struct ProviderIdentity {
    /// The provider's stable id of the person (`sub`; GitHub's numeric id).
    pub subject: String,
    pub email: Option<String>,
    /// Whether the provider says `email` is verified.
    pub email_verified: bool,
    /// The person's name, if the provider gave one.
    pub name: Option<String>,
}

/// Why a provider step failed: `reason` is a short label for audit and metrics.
#[derive(Debug, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct ProviderError {
    pub reason: &'static str,
    pub detail: String,
}

impl ProviderError {
    fn new(reason: &'static str, detail: impl std::fmt::Display) -> Self {
        Self {
            reason,
            detail: detail.to_string(),
        }
    }
}

/// The one HTTP client of social login.
fn http_client() -> anyhow::Result<reqwest::Client> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS versions")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .user_agent(concat!("identity/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("build the HTTP client of social login")
}

/// Sends one request for `oauth2`/`openidconnect`, over the shared client.
async fn send(
    http: reqwest::Client,
    request: http::Request<Vec<u8>>,
) -> Result<http::Response<Vec<u8>>, HttpError> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_bounded(response).await?;
    let mut answer = http::Response::new(body);
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    Ok(answer)
}

/// A body of at most `MAX_ANSWER_BYTES`.
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(HttpError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error("the answer is larger than 1 MiB")]
    TooLarge,
}

impl Providers {
    pub fn new(config: &SocialConfig) -> anyhow::Result<Self> {
        let providers = config
            .providers
            .iter()
            .map(|p| Provider {
                issuer: match &p.kind {
                    ProviderKind::Oidc { issuer } => Some(oidc::Issuer::new(issuer)),
                    ProviderKind::Github { .. } => None,
                },
                config: p.clone(),
            })
            .collect();
        Ok(Self {
            http: http_client()?,
            providers,
        })
    }

    pub fn get(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.config.id == id)
    }

    pub fn all(&self) -> impl Iterator<Item = &Provider> {
        self.providers.iter()
    }

    /// The provider's authorization URL for a flow whose callback is `redirect_uri`
    /// and whose `state` is given.
    pub async fn authorization(
        &self,
        provider: &Provider,
        redirect_uri: &str,
        state: &str,
    ) -> Result<Authorization, ProviderError> {
        match (&provider.config.kind, &provider.issuer) {
            (ProviderKind::Oidc { .. }, Some(issuer)) => {
                issuer
                    .authorization(&self.http, &provider.config, redirect_uri, state)
                    .await
            }
            (ProviderKind::Github { auth_url, .. }, _) => Ok(github::authorization(
                &provider.config,
                auth_url,
                redirect_uri,
                state,
            )),
            (ProviderKind::Oidc { .. }, None) => Err(ProviderError::new(
                "configuration",
                "an OpenID Connect provider without an issuer",
            )),
        }
    }

    /// Exchanges the provider's code (with the PKCE verifier) and says who signed in:
    /// for OpenID Connect after verifying the id_token (signature from the issuer's
    /// keys, `iss`, `aud`, `exp`, `nonce`).
    pub async fn identity(
        &self,
        provider: &Provider,
        redirect_uri: &str,
        code: &str,
        pkce_verifier: &str,
        nonce: Option<&str>,
    ) -> Result<ProviderIdentity, ProviderError> {
        match (&provider.config.kind, &provider.issuer) {
            (ProviderKind::Oidc { .. }, Some(issuer)) => {
                let nonce =
                    nonce.ok_or_else(|| ProviderError::new("nonce", "the flow has no nonce"))?;
                issuer
                    .identity(
                        &self.http,
                        &provider.config,
                        redirect_uri,
                        code,
                        pkce_verifier,
                        nonce,
                    )
                    .await
            }
            (
                ProviderKind::Github {
                    token_url, api_url, ..
                },
                _,
            ) => {
                github::identity(
                    &self.http,
                    &provider.config,
                    token_url,
                    api_url,
                    redirect_uri,
                    code,
                    pkce_verifier,
                )
                .await
            }
            (ProviderKind::Oidc { .. }, None) => Err(ProviderError::new(
                "configuration",
                "an OpenID Connect provider without an issuer",
            )),
        }
    }
}

fn client_secret(config: &ProviderConfig) -> oauth2::ClientSecret {
    oauth2::ClientSecret::new(config.client_secret.expose_secret().to_owned())
}
