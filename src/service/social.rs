//! Social login: the redirect flow, the linking rules, and the identities of an account.
//!
//! The flow, step by step (every state in the shared flow store, so any instance may
//! take any step, and each step's state is taken — `GETDEL` — by exactly one):
//!
//! 1. `startSocialLogin` / `startIdentityLink` keep what the SPA sent (provider, its
//!    PKCE `codeChallenge`, `redirectTo` from the exact allow-list, login or link) under
//!    a random flow id, 10 minutes, and answer `{PUBLIC_URL}/oauth/start?flow=…`.
//! 2. `GET /oauth/start` takes that state (one visit per flow), makes the provider's
//!    `state`, PKCE verifier and nonce and a binding secret, keeps them under the
//!    `state`, and sets the binding secret as a short cookie in the browser that goes
//!    on to the provider. Its name carries a digest of the `state`, so two flows in one
//!    browser (two tabs) do not overwrite each other's cookie.
//! 3. `GET /oauth/callback/{provider}` takes the flow by `state`, requires the binding
//!    cookie (a callback URL replayed in another browser fails), exchanges the code
//!    with the PKCE verifier, has the id_token checked, resolves the identity by the
//!    linking rules, and keeps the outcome under a one-time login code for 60 s. The
//!    browser goes to `redirectTo#code=…` (or `#error=…`); nothing else is in a URL.
//! 4. `completeSocialLogin(code, codeVerifier)` takes the outcome; the SPA's verifier
//!    must hash to the challenge it sent in step 1, so a code that leaked from the
//!    fragment is useless elsewhere.
//!
//! The linking rules (identities are keyed by (provider, subject), never by address):
//! a known identity signs in to its account. Otherwise a provider address that is not
//! verified never links nor makes an account (`PROVIDER_EMAIL_NOT_VERIFIED`). No
//! account with that address: one is made, without a password, its address verified
//! only if the provider is trusted for email (`SOCIAL_<ID>_TRUST_EMAIL`). A verified
//! account with that address is never linked silently: `AccountLinkRequired`, and its
//! owner, signed in, links with `linkPendingIdentity`. An unverified account with that
//! address is claimed by a trusted provider (its password, sessions and open links are
//! wiped: whoever registered it never proved the address — the pre-hijack defence);
//! from an untrusted one it is `PROVIDER_EMAIL_NOT_VERIFIED`.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AuditEvent, AuthPayload, Deps, RequestMeta, token_shape};
use crate::{
    domain::{
        assurance::{Aal, Assurance, Method},
        email::Email,
    },
    error::AppError,
    mail::templates,
    security::opaque_token,
    social::{ProviderIdentity, Providers},
    store::{
        account_tokens,
        db::begin_write,
        identities::{self, LinkError, NewIdentity, StoredIdentity},
        sessions::{self, RevokeReason},
        users::{self, InsertError, NewUser},
    },
};

/// How long a started flow waits for the browser, and for the provider.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
/// How long the login code in `redirectTo#code=…` lives.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long `linkPendingIdentity` may wait.
pub const LINK_TTL: Duration = Duration::from_secs(600);

/// The answers a finished flow may carry in `redirectTo#error=…`.
pub const SOCIAL_LOGIN_FAILED: &str = "SOCIAL_LOGIN_FAILED";
pub const PROVIDER_EMAIL_NOT_VERIFIED: &str = "PROVIDER_EMAIL_NOT_VERIFIED";
pub const ACCESS_DENIED: &str = "ACCESS_DENIED";

/// A provider, as the API lists it.
pub struct ProviderView {
    pub id: String,
    pub name: String,
}

/// Where the SPA sends the browser.
pub struct SocialRedirect {
    pub authorization_url: String,
    pub expires_at: DateTime<Utc>,
}

/// A provider identity that needs its account's owner to link it.
pub struct LinkRequired {
    pub link_token: String,
    pub provider: String,
    pub email: String,
    pub expires_at: DateTime<Utc>,
}

/// What `completeSocialLogin` answers.
pub enum SocialLoginResult {
    Signed(AuthPayload),
    LinkRequired(LinkRequired),
}

/// An identity as its owner sees it.
#[derive(Debug, Clone)]
pub struct IdentityView {
    pub id: Uuid,
    pub provider: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<StoredIdentity> for IdentityView {
    fn from(i: StoredIdentity) -> Self {
        Self {
            id: i.id,
            provider: i.provider,
            email: i.email,
            created_at: i.created_at,
            last_used_at: i.last_used_at,
        }
    }
}

/// What `startSocialLogin` / `startIdentityLink` receive.
pub struct StartInput {
    pub provider: String,
    pub redirect_to: String,
    pub code_challenge: String,
}

#[derive(Serialize, Deserialize, Clone)]
enum Mode {
    Login,
    /// Connect a provider to this (signed-in) account.
    Link {
        user_id: Uuid,
    },
}

/// Step 1's state: what the SPA sent.
#[derive(Serialize, Deserialize, Clone)]
struct Started {
    provider: String,
    code_challenge: String,
    redirect_to: String,
    mode: Mode,
}

/// Step 2's state: what the callback needs.
#[derive(Serialize, Deserialize)]
struct AtProvider {
    started: Started,
    pkce_verifier: String,
    nonce: Option<String>,
    /// Digest of the binding cookie's value.
    binding: String,
}

/// Step 3's result, kept under the login code.
#[derive(Serialize, Deserialize)]
struct Finished {
    code_challenge: String,
    outcome: Outcome,
}

#[derive(Serialize, Deserialize)]
enum Outcome {
    SignIn { user_id: Uuid, provider: String },
    Link(PendingLink),
}

/// An identity waiting for its account's owner (`linkPendingIdentity`).
#[derive(Serialize, Deserialize, Clone)]
struct PendingLink {
    user_id: Uuid,
    provider: String,
    subject: String,
    email: Option<String>,
}

/// How `GET /oauth/start` answers: the provider's URL, and the binding cookie.
pub struct StartRedirect {
    pub location: String,
    pub cookie_name: String,
    pub cookie_value: String,
    pub max_age: Duration,
}

/// What `GET /oauth/callback/{provider}` received.
pub struct Callback {
    pub provider: String,
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

fn started_key(flow: &str) -> String {
    format!("social-start:{}", opaque_token::digest(flow))
}

fn provider_key(state: &str) -> String {
    format!("social-state:{}", opaque_token::digest(state))
}

fn code_key(code: &str) -> String {
    format!("social-code:{}", opaque_token::digest(code))
}

fn link_key(token: &str) -> String {
    format!("social-link:{}", opaque_token::digest(token))
}

/// The binding cookie of the flow whose provider `state` this is.
pub fn binding_cookie_name(state: &str, secure: bool) -> String {
    let digest = opaque_token::digest(state);
    let short: String = digest
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    if secure {
        format!("__Host-social_{short}")
    } else {
        format!("social_{short}")
    }
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or_default()
}

/// `redirect_to` with the flow's answer in the fragment.
fn with_fragment(redirect_to: &str, key: &str, value: &str) -> String {
    format!("{redirect_to}#{key}={value}")
}

/// The provider's name for the person, as a full name may be: printable, at most 150
/// characters; empty if it gave none.
fn full_name(raw: Option<&str>) -> String {
    raw.unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(150)
        .collect()
}

/// A PKCE S256 code challenge: 43 base64url characters.
fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Clone)]
pub struct SocialService {
    deps: Deps,
}

impl SocialService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    fn providers(&self) -> &Providers {
        &self.deps.social
    }

    /// The configured providers (`socialProviders`).
    pub fn list(&self) -> Vec<ProviderView> {
        self.providers()
            .all()
            .map(|p| ProviderView {
                id: p.config.id.clone(),
                name: p.config.name.clone(),
            })
            .collect()
    }

    fn metric(&self, provider: &str, result: &str) {
        self.deps
            .metrics
            .counter(
                "identity_social_logins_total",
                &[("provider", provider), ("result", result)],
            )
            .increment(1);
    }

    /// `startSocialLogin`.
    #[tracing::instrument(skip_all)]
    pub async fn start_login(
        &self,
        input: StartInput,
        meta: &RequestMeta,
    ) -> Result<SocialRedirect, AppError> {
        self.deps.check_ip_limits(meta, None).await?;
        self.start(input, Mode::Login, None, meta).await
    }

    /// `startIdentityLink`: signed in, fresh+.
    #[tracing::instrument(skip_all)]
    pub async fn start_link(
        &self,
        bearer: Option<&str>,
        input: StartInput,
        meta: &RequestMeta,
    ) -> Result<SocialRedirect, AppError> {
        let (caller, _, _) = self.deps.fresh_plus_mutation(bearer, meta).await?;
        let user_id = caller.user_id;
        self.start(input, Mode::Link { user_id }, Some(user_id), meta)
            .await
    }

    async fn start(
        &self,
        input: StartInput,
        mode: Mode,
        user_id: Option<Uuid>,
        meta: &RequestMeta,
    ) -> Result<SocialRedirect, AppError> {
        let deps = &self.deps;
        let Some(provider) = self.providers().get(&input.provider) else {
            return Err(AppError::field("provider", "Unknown provider."));
        };
        if !deps
            .config
            .social
            .redirect_urls
            .contains(&input.redirect_to)
        {
            return Err(AppError::field(
                "redirectTo",
                "Not one of this service's SOCIAL_REDIRECT_URLS.",
            ));
        }
        if !valid_challenge(&input.code_challenge) {
            return Err(AppError::field(
                "codeChallenge",
                "Expected a PKCE S256 challenge: 43 base64url characters.",
            ));
        }
        let now = deps.clock.now();
        let flow = opaque_token::generate();
        let expires_at = expiry(now, FLOW_TTL);
        let started = Started {
            provider: provider.config.id.clone(),
            code_challenge: input.code_challenge,
            redirect_to: input.redirect_to,
            mode,
        };
        deps.ephemeral
            .flows
            .put_flow(
                &started_key(&flow),
                &serde_json::to_string(&started).map_err(AppError::internal)?,
                expires_at,
            )
            .await
            .context("store a social login flow")?;
        self.metric(&provider.config.id, "started");
        deps.audit(AuditEvent::SocialLoginStarted, user_id, Some(meta))
            .await;
        Ok(SocialRedirect {
            authorization_url: format!("{}/oauth/start?flow={flow}", deps.config.http.public_url),
            expires_at,
        })
    }

    fn callback_uri(&self, provider: &str) -> String {
        format!(
            "{}/oauth/callback/{provider}",
            self.deps.config.http.public_url
        )
    }

    /// `GET /oauth/start?flow=…`: the provider's URL and the binding cookie; `None` if
    /// the flow is unknown, expired or already started.
    #[tracing::instrument(skip_all)]
    pub async fn begin_redirect(&self, flow: &str) -> Result<Option<StartRedirect>, AppError> {
        let deps = &self.deps;
        if token_shape(flow).is_err() {
            return Ok(None);
        }
        let now = deps.clock.now();
        let Some(json) = deps
            .ephemeral
            .flows
            .take_flow(&started_key(flow), now)
            .await?
        else {
            return Ok(None);
        };
        let started: Started = serde_json::from_str(&json).map_err(AppError::internal)?;
        let Some(provider) = self.providers().get(&started.provider) else {
            return Ok(None);
        };
        let state = opaque_token::generate();
        let authorization = match self
            .providers()
            .authorization(provider, &self.callback_uri(&started.provider), &state)
            .await
        {
            Ok(authorization) => authorization,
            Err(error) => {
                tracing::warn!(provider = %started.provider, %error, "social login could not start");
                self.metric(&started.provider, error.reason);
                deps.audit(AuditEvent::SocialLoginFailed, None, None).await;
                return Ok(Some(StartRedirect {
                    location: with_fragment(&started.redirect_to, "error", SOCIAL_LOGIN_FAILED),
                    cookie_name: String::new(),
                    cookie_value: String::new(),
                    max_age: Duration::ZERO,
                }));
            }
        };
        let binding = opaque_token::generate();
        let at_provider = AtProvider {
            started,
            pkce_verifier: authorization.pkce_verifier,
            nonce: authorization.nonce,
            binding: opaque_token::digest(&binding),
        };
        deps.ephemeral
            .flows
            .put_flow(
                &provider_key(&state),
                &serde_json::to_string(&at_provider).map_err(AppError::internal)?,
                expiry(now, FLOW_TTL),
            )
            .await
            .context("store a social login flow")?;
        Ok(Some(StartRedirect {
            location: authorization.url,
            cookie_name: binding_cookie_name(&state, deps.config.http.secure_cookies()),
            cookie_value: binding,
            max_age: FLOW_TTL,
        }))
    }

    /// `GET /oauth/callback/{provider}`: where to send the browser (`redirectTo` with a
    /// login code or an error in the fragment); `None` if no flow has this `state`.
    /// `binding` is the cookie named by [`binding_cookie_name`], if the browser sent it.
    #[tracing::instrument(skip_all, fields(provider = %callback.provider))]
    pub async fn finish_redirect(
        &self,
        callback: Callback,
        binding: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Option<String>, AppError> {
        let deps = &self.deps;
        let Some(state) = callback.state.as_deref().filter(|s| token_shape(s).is_ok()) else {
            return Ok(None);
        };
        let now = deps.clock.now();
        let Some(json) = deps
            .ephemeral
            .flows
            .take_flow(&provider_key(state), now)
            .await?
        else {
            return Ok(None);
        };
        let flow: AtProvider = serde_json::from_str(&json).map_err(AppError::internal)?;
        let redirect_to = flow.started.redirect_to.clone();
        let provider_id = flow.started.provider.clone();
        let fail = |reason: &'static str, code: &'static str| {
            let location = with_fragment(&redirect_to, "error", code);
            (reason, location)
        };
        let result = self.callback_outcome(&callback, binding, flow, meta).await;
        let (reason, location) = match result {
            Ok(code) => return Ok(Some(with_fragment(&redirect_to, "code", &code))),
            Err(Refusal::Denied) => fail("access_denied", ACCESS_DENIED),
            Err(Refusal::EmailNotVerified) => {
                fail("email_not_verified", PROVIDER_EMAIL_NOT_VERIFIED)
            }
            Err(Refusal::Failed(reason)) => fail(reason, SOCIAL_LOGIN_FAILED),
            Err(Refusal::Internal(error)) => return Err(error),
        };
        tracing::info!(provider = %provider_id, reason, "social login failed");
        self.metric(&provider_id, reason);
        deps.audit(AuditEvent::SocialLoginFailed, None, Some(meta))
            .await;
        Ok(Some(location))
    }

    async fn callback_outcome(
        &self,
        callback: &Callback,
        binding: Option<&str>,
        flow: AtProvider,
        meta: &RequestMeta,
    ) -> Result<String, Refusal> {
        let deps = &self.deps;
        // Digests compared: their time says nothing of the secret behind them.
        let bound = binding.is_some_and(|b| opaque_token::digest(b) == flow.binding);
        if !bound {
            return Err(Refusal::Failed("binding_cookie"));
        }
        if callback.provider != flow.started.provider {
            return Err(Refusal::Failed("wrong_provider"));
        }
        if let Some(error) = &callback.error {
            return Err(if error == "access_denied" {
                Refusal::Denied
            } else {
                Refusal::Failed("provider_error")
            });
        }
        let Some(code) = callback
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 2048)
        else {
            return Err(Refusal::Failed("no_code"));
        };
        let provider = self
            .providers()
            .get(&flow.started.provider)
            .ok_or(Refusal::Failed("unknown_provider"))?;
        let identity = self
            .providers()
            .identity(
                provider,
                &self.callback_uri(&flow.started.provider),
                code,
                &flow.pkce_verifier,
                flow.nonce.as_deref(),
            )
            .await
            .map_err(|error| {
                tracing::warn!(provider = %flow.started.provider, %error, "provider answer refused");
                Refusal::Failed(error.reason)
            })?;
        if identity.subject.is_empty() || identity.subject.len() > 255 {
            return Err(Refusal::Failed("subject"));
        }
        let trusted = provider.config.trust_email;
        let outcome = match &flow.started.mode {
            Mode::Link { user_id } => Outcome::Link(PendingLink {
                user_id: *user_id,
                provider: flow.started.provider.clone(),
                subject: identity.subject.clone(),
                email: identity.email.clone(),
            }),
            Mode::Login => {
                self.resolve(&flow.started.provider, &identity, trusted, meta)
                    .await?
            }
        };
        let login_code = opaque_token::generate();
        let finished = Finished {
            code_challenge: flow.started.code_challenge,
            outcome,
        };
        deps.ephemeral
            .flows
            .put_flow(
                &code_key(&login_code),
                &serde_json::to_string(&finished)
                    .map_err(|e| Refusal::Internal(AppError::internal(e)))?,
                expiry(deps.clock.now(), CODE_TTL),
            )
            .await
            .map_err(|e| Refusal::Internal(e.into()))?;
        Ok(login_code)
    }

    /// The linking rules, for a login.
    async fn resolve(
        &self,
        provider: &str,
        identity: &ProviderIdentity,
        trusted: bool,
        meta: &RequestMeta,
    ) -> Result<Outcome, Refusal> {
        let deps = &self.deps;
        let now = deps.clock.now();
        if let Some(known) = identities::find(&deps.db, provider, &identity.subject).await? {
            identities::record_use(&deps.db, known.id, identity.email.as_deref(), now).await?;
            return Ok(Outcome::SignIn {
                user_id: known.user_id,
                provider: provider.to_owned(),
            });
        }
        let email = match identity.email.as_deref() {
            Some(raw) if identity.email_verified => {
                Email::parse(raw).map_err(|_| Refusal::Failed("email_invalid"))?
            }
            _ => return Err(Refusal::EmailNotVerified),
        };
        let local = users::find_by_email(&deps.db, email.as_str()).await?;
        match local {
            None => {
                self.create_account(provider, identity, &email, trusted, meta)
                    .await
            }
            Some(user) if user.email_verified_at.is_some() => {
                deps.audit(AuditEvent::AccountLinkRequired, Some(user.id), Some(meta))
                    .await;
                self.metric(provider, "link_required");
                Ok(Outcome::Link(PendingLink {
                    user_id: user.id,
                    provider: provider.to_owned(),
                    subject: identity.subject.clone(),
                    email: Some(email.as_str().to_owned()),
                }))
            }
            Some(user) if trusted && user.is_active => {
                self.claim(provider, identity, user.id, &email, meta).await
            }
            Some(_) => Err(Refusal::EmailNotVerified),
        }
    }

    /// A first social login: an account without a password, and its identity.
    async fn create_account(
        &self,
        provider: &str,
        identity: &ProviderIdentity,
        email: &Email,
        trusted: bool,
        meta: &RequestMeta,
    ) -> Result<Outcome, Refusal> {
        let deps = &self.deps;
        let now = deps.clock.now();
        let txn = begin_write(&deps.db)
            .await
            .context("begin social sign-up")?;
        let user = match users::insert(
            &txn,
            NewUser {
                email: email.as_str().to_owned(),
                full_name: full_name(identity.name.as_deref()),
                password_hash: String::new(),
                now,
            },
        )
        .await
        {
            Ok(user) => user,
            // Registered meanwhile: the next attempt finds it and follows the rules.
            Err(InsertError::EmailTaken) => return Err(Refusal::Failed("email_taken_meanwhile")),
            Err(InsertError::Other(error)) => return Err(error.into()),
        };
        if trusted {
            users::mark_email_verified(&txn, user.id, now).await?;
        }
        self.insert_identity(&txn, user.id, provider, identity)
            .await?;
        txn.commit().await.context("commit social sign-up")?;
        if !trusted {
            super::email_verification::send_link_if_due(deps, email).await;
        }
        self.metric(provider, "account_created");
        deps.audit(AuditEvent::SocialAccountCreated, Some(user.id), Some(meta))
            .await;
        Ok(Outcome::SignIn {
            user_id: user.id,
            provider: provider.to_owned(),
        })
    }

    /// A trusted provider's verified address takes over an account whose address was
    /// never verified: password, sessions and open links go, in one transaction.
    async fn claim(
        &self,
        provider: &str,
        identity: &ProviderIdentity,
        user_id: Uuid,
        email: &Email,
        meta: &RequestMeta,
    ) -> Result<Outcome, Refusal> {
        let deps = &self.deps;
        let now = deps.clock.now();
        let txn = begin_write(&deps.db).await.context("begin account claim")?;
        users::set_password_hash(&txn, user_id, String::new()).await?;
        users::mark_email_verified(&txn, user_id, now).await?;
        let ended =
            sessions::revoke_all_for_user(&txn, user_id, now, RevokeReason::AccountClaimed).await?;
        account_tokens::delete_for_user(&txn, user_id).await?;
        self.insert_identity(&txn, user_id, provider, identity)
            .await?;
        let name = self.provider_name(provider);
        let mail =
            templates::unverified_account_claimed(&deps.config.service_name, email.as_str(), &name);
        deps.outbox
            .enqueue(&txn, "unverified_account_claimed", mail, None, now)
            .await?;
        // No reset link of the old sign-up may set a password afterwards.
        deps.ephemeral
            .reset_tokens
            .cancel_reset_tokens(user_id)
            .await
            .context("cancel reset tokens")?;
        txn.commit().await.context("commit account claim")?;
        deps.outbox.wake();
        deps.revoke_access(&ended).await;
        super::users::UserService::announce_change(deps, user_id).await;
        self.metric(provider, "claimed");
        deps.audit(
            AuditEvent::UnverifiedAccountClaimed,
            Some(user_id),
            Some(meta),
        )
        .await;
        Ok(Outcome::SignIn {
            user_id,
            provider: provider.to_owned(),
        })
    }

    async fn insert_identity(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        user_id: Uuid,
        provider: &str,
        identity: &ProviderIdentity,
    ) -> Result<StoredIdentity, Refusal> {
        match identities::insert(
            db,
            NewIdentity {
                user_id,
                provider,
                subject: &identity.subject,
                email: identity.email.as_deref(),
                now: self.deps.clock.now(),
            },
        )
        .await
        {
            Ok(stored) => Ok(stored),
            Err(LinkError::AlreadyLinked) => Err(Refusal::Failed("identity_taken_meanwhile")),
            Err(LinkError::Other(error)) => Err(error.into()),
        }
    }

    fn provider_name(&self, provider: &str) -> String {
        self.providers()
            .get(provider)
            .map_or_else(|| provider.to_owned(), |p| p.config.name.clone())
    }

    /// `completeSocialLogin(code, codeVerifier)`.
    #[tracing::instrument(skip_all)]
    pub async fn complete(
        &self,
        code: &str,
        code_verifier: &str,
        meta: &RequestMeta,
    ) -> Result<SocialLoginResult, AppError> {
        let deps = &self.deps;
        deps.check_ip_limits(meta, None).await?;
        token_shape(code)?;
        let now = deps.clock.now();
        let Some(json) = deps.ephemeral.flows.take_flow(&code_key(code), now).await? else {
            return Err(AppError::InvalidToken);
        };
        let finished: Finished = serde_json::from_str(&json).map_err(AppError::internal)?;
        // PKCE S256: the verifier's SHA-256, base64url, is the challenge sent at start.
        if code_verifier.len() > 128
            || opaque_token::digest(code_verifier) != finished.code_challenge
        {
            return Err(AppError::InvalidToken);
        }
        match finished.outcome {
            Outcome::SignIn { user_id, provider } => self
                .sign_in(user_id, &provider, meta)
                .await
                .map(SocialLoginResult::Signed),
            Outcome::Link(pending) => {
                let link_token = opaque_token::generate();
                let expires_at = expiry(now, LINK_TTL);
                deps.ephemeral
                    .flows
                    .put_flow(
                        &link_key(&link_token),
                        &serde_json::to_string(&pending).map_err(AppError::internal)?,
                        expires_at,
                    )
                    .await
                    .context("store a pending identity")?;
                // The account to sign in to (for a link from settings, the provider's
                // address may be another).
                let email = users::find_by_id(&deps.db, pending.user_id)
                    .await?
                    .map(|u| u.email)
                    .ok_or(AppError::InvalidToken)?;
                Ok(SocialLoginResult::LinkRequired(LinkRequired {
                    link_token,
                    provider: pending.provider,
                    email,
                    expires_at,
                }))
            }
        }
    }

    async fn sign_in(
        &self,
        user_id: Uuid,
        provider: &str,
        meta: &RequestMeta,
    ) -> Result<AuthPayload, AppError> {
        let deps = &self.deps;
        let credential = users::find_credential_by_id(&deps.db, user_id)
            .await?
            .filter(|c| c.user.is_active);
        let Some(credential) = credential else {
            self.metric(provider, "account_unavailable");
            return Err(AppError::InvalidCredentials);
        };
        let user = credential.user;
        if let Some(scheduled_for) = user.deletion_scheduled_for {
            return Err(AppError::AccountPendingDeletion { scheduled_for });
        }
        if credential.has_totp {
            self.metric(provider, "mfa_required");
            return Err(deps
                .mfa_challenge(user_id, &credential.password_hash, &[Method::Fed], meta)
                .await);
        }
        if deps.config.verification.required && user.email_verified_at.is_none() {
            if let Ok(email) = Email::parse(&user.email) {
                super::email_verification::send_link_if_due(deps, &email).await;
            }
            return Err(AppError::EmailNotVerified { email: user.email });
        }
        let now = deps.clock.now();
        if !users::record_login(&deps.db, user_id, now, &credential.password_hash, None).await? {
            return Err(AppError::InvalidCredentials);
        }
        super::users::UserService::announce_sign_in(deps, user_id, now).await;
        let user = crate::domain::user::User {
            last_login: Some(now),
            ..user
        };
        let assurance = Assurance {
            aal: Aal::Aal1,
            amr: vec![Method::Fed],
            auth_time: now,
        };
        let Some(payload) = deps
            .start_session(user, credential.password_hash, assurance, meta)
            .await?
        else {
            return Err(AppError::InvalidCredentials);
        };
        deps.metrics.login("succeeded");
        self.metric(provider, "succeeded");
        deps.audit(AuditEvent::SocialLoginSucceeded, Some(user_id), Some(meta))
            .await;
        Ok(payload)
    }

    /// `linkPendingIdentity(linkToken)`: signed in as that account, fresh+.
    #[tracing::instrument(skip_all)]
    pub async fn link_pending(
        &self,
        bearer: Option<&str>,
        link_token: &str,
        meta: &RequestMeta,
    ) -> Result<IdentityView, AppError> {
        let deps = &self.deps;
        let (caller, user, email) = deps.fresh_plus_mutation(bearer, meta).await?;
        token_shape(link_token)?;
        let now = deps.clock.now();
        let key = link_key(link_token);
        let pending: PendingLink = deps.flow(&key, now).await?.ok_or(AppError::InvalidToken)?;
        // Another account's pending identity: as if unknown (and left for its owner).
        if pending.user_id != caller.user_id {
            return Err(AppError::InvalidToken);
        }
        if !deps.finish_flow(&key, now).await? {
            return Err(AppError::InvalidToken);
        }
        let name = self.provider_name(&pending.provider);
        let txn = begin_write(&deps.db).await.context("begin identity link")?;
        let stored = match identities::insert(
            &txn,
            NewIdentity {
                user_id: user.id,
                provider: &pending.provider,
                subject: &pending.subject,
                email: pending.email.as_deref(),
                now,
            },
        )
        .await
        {
            Ok(stored) => stored,
            Err(LinkError::AlreadyLinked) => {
                return Err(AppError::Conflict {
                    reason: "IDENTITY_ALREADY_LINKED",
                });
            }
            Err(LinkError::Other(error)) => return Err(error.into()),
        };
        let mail = templates::identity_linked(&deps.config.service_name, email.as_str(), &name);
        deps.outbox
            .enqueue(&txn, "identity_linked", mail, None, now)
            .await?;
        txn.commit().await.context("commit identity link")?;
        deps.outbox.wake();
        self.metric(&pending.provider, "linked");
        deps.audit(AuditEvent::IdentityLinked, Some(user.id), Some(meta))
            .await;
        Ok(stored.into())
    }

    /// `myIdentities`.
    pub async fn mine(&self, bearer: Option<&str>) -> Result<Vec<IdentityView>, AppError> {
        let caller = self.deps.caller(bearer).await?;
        self.deps.identity_views(caller.user_id).await
    }

    /// `unlinkIdentity(id)`: signed in, fresh+; refused when it is the account's last
    /// way to sign in (no password, no passkey, no other identity).
    #[tracing::instrument(skip_all)]
    pub async fn unlink(
        &self,
        bearer: Option<&str>,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<bool, AppError> {
        let deps = &self.deps;
        let removal = deps
            .begin_removal(bearer, meta, id, unknown_identity)
            .await?;
        let user_id = removal.user.id;
        let Some(removed) = identities::delete_of_user(&removal.txn, user_id, removal.id).await?
        else {
            return Err(unknown_identity());
        };
        if removal.last {
            // Rolled back with the transaction.
            return Err(super::login_methods::last_login_method());
        }
        let name = self.provider_name(&removed.provider);
        let mail =
            templates::identity_unlinked(&deps.config.service_name, removal.email.as_str(), &name);
        deps.finish_removal(removal, "identity_unlinked", mail)
            .await?;
        self.metric(&removed.provider, "unlinked");
        deps.audit(AuditEvent::IdentityUnlinked, Some(user_id), Some(meta))
            .await;
        Ok(true)
    }
}

fn unknown_identity() -> AppError {
    AppError::field("id", "No identity of yours has this id.")
}

impl Deps {
    /// The account's identities (`myIdentities`, `myData`).
    pub(super) async fn identity_views(
        &self,
        user_id: Uuid,
    ) -> Result<Vec<IdentityView>, AppError> {
        Ok(identities::of_user(&self.db, user_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

/// Why a callback did not yield a login code.
enum Refusal {
    Denied,
    EmailNotVerified,
    Failed(&'static str),
    Internal(AppError),
}

impl From<AppError> for Refusal {
    fn from(error: AppError) -> Self {
        Self::Internal(error)
    }
}

impl From<anyhow::Error> for Refusal {
    fn from(error: anyhow::Error) -> Self {
        Self::Internal(AppError::Internal(error))
    }
}
