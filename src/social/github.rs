//! GitHub: OAuth2 (with PKCE) through `oauth2`, then two calls to its REST API — the
//! numeric user id is the subject, and the address is the primary one only if GitHub
//! has verified it (`/user/emails`); any other address is never used.

use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse, TokenUrl, basic::BasicClient,
};
use serde::Deserialize;
use url::Url;

use super::{ProviderError, ProviderIdentity, client_secret, read_bounded, send};
use crate::config::ProviderConfig;

pub(super) fn authorization(
    config: &ProviderConfig,
    auth_url: &Url,
    redirect_uri: &str,
    state: &str,
) -> super::Authorization {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = BasicClient::new(ClientId::new(config.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(auth_url.clone()));
    let state = state.to_owned();
    let mut request = client
        .authorize_url(move || CsrfToken::new(state))
        .set_pkce_challenge(challenge)
        .add_extra_param("redirect_uri", redirect_uri)
        .add_extra_param("allow_signup", "true");
    for scope in &config.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, _) = request.url();
    super::Authorization {
        url: url.to_string(),
        pkce_verifier: verifier.secret().clone(),
        nonce: None,
    }
}

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    name: Option<String>,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

pub(super) async fn identity(
    http: &reqwest::Client,
    config: &ProviderConfig,
    token_url: &Url,
    api_url: &Url,
    redirect_uri: &str,
    code: &str,
    pkce_verifier: &str,
) -> Result<ProviderIdentity, ProviderError> {
    let redirect = RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|e| ProviderError::new("configuration", e))?;
    let client = BasicClient::new(ClientId::new(config.client_id.clone()))
        .set_client_secret(client_secret(config))
        .set_token_uri(TokenUrl::from_url(token_url.clone()))
        .set_redirect_uri(redirect);
    let send_one = |request| send(http.clone(), request);
    let tokens = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
        .request_async(&send_one)
        .await
        .map_err(|e| ProviderError::new("token_exchange", e))?;
    let access_token = tokens.access_token().secret();
    let user: GithubUser = api_get(http, api_url, "user", access_token).await?;
    let emails: Vec<GithubEmail> = api_get(http, api_url, "user/emails", access_token).await?;
    let primary = emails.into_iter().find(|e| e.primary && e.verified);
    Ok(ProviderIdentity {
        subject: user.id.to_string(),
        email_verified: primary.is_some(),
        email: primary.map(|e| e.email),
        name: user.name,
    })
}

async fn api_get<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    api_url: &Url,
    path: &str,
    access_token: &str,
) -> Result<T, ProviderError> {
    let url = format!("{}/{path}", api_url.as_str().trim_end_matches('/'));
    let response = http
        .get(&url)
        .bearer_auth(access_token)
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .send()
        .await
        .map_err(|e| ProviderError::new("user_api", e))?;
    let status = response.status();
    let body = read_bounded(response)
        .await
        .map_err(|e| ProviderError::new("user_api", e))?;
    if !status.is_success() {
        return Err(ProviderError::new("user_api", format!("{path}: {status}")));
    }
    serde_json::from_slice(&body)
        .map_err(|e| ProviderError::new("user_api", format!("{path}: {e}")))
}
