//! Passkeys (WebAuthn, through webauthn-rs): registration, discoverable login, and the
//! passkey as a proof for `verifyMfa` and `reauthenticate`.
//!
//! - A ceremony's state lives only in the flow store (5 minutes) under a digest of its
//!   id, and is taken (atomically, on any instance) when it is finished: one finish
//!   per ceremony. A registration is bound to the user who began it.
//! - Passkeys carry a random per-user handle (`users.webauthn_handle`), never the
//!   account id. A credential id is registered once, to one account.
//! - A login needs user verification and is `aal2` (`["pop","mfa"]`) on its own. An
//!   assertion whose signature counter does not go up (when either is non-zero) is
//!   refused, audited and mailed; every refusal is the same `INVALID_CREDENTIALS`.

use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Webauthn, WebauthnBuilder, WebauthnError,
};

use super::{AuditEvent, AuthPayload, Deps, RequestMeta};
use crate::{
    config::WebauthnConfig,
    domain::{
        assurance::{Aal, Assurance, Method},
        email::Email,
        user::User,
    },
    error::AppError,
    mail::templates,
    security::opaque_token,
    store::{
        db::begin_write,
        passkeys::{self, InsertError, NewPasskey, StoredPasskey},
        users,
    },
};

pub const CEREMONY_TTL: Duration = Duration::from_secs(300);
pub const MAX_PER_USER: u64 = 10;
pub const NAME_MAX_CHARS: usize = 64;
const DEFAULT_NAME: &str = "Passkey";

/// The one `Webauthn` of the service: the relying party (`SERVICE_NAME`,
/// `WEBAUTHN_RP_ID`) and the origins ceremonies may come from.
pub fn build_webauthn(config: &WebauthnConfig, service_name: &str) -> anyhow::Result<Webauthn> {
    let (first, rest) = config
        .origins
        .split_first()
        .context("WEBAUTHN_ORIGINS: no origin")?;
    let mut builder = WebauthnBuilder::new(&config.rp_id, first)
        .map_err(|e| anyhow::anyhow!("WEBAUTHN_ORIGINS: {e}"))?
        .rp_name(service_name)
        .timeout(CEREMONY_TTL);
    for origin in rest {
        builder = builder.append_allowed_origin(origin);
    }
    builder
        .build()
        .map_err(|e| anyhow::anyhow!("WebAuthn settings: {e}"))
}

/// A begun ceremony: what the browser needs, and how long it may take.
pub struct Ceremony {
    pub ceremony_id: String,
    pub options: serde_json::Value,
    pub expires_at: DateTime<Utc>,
}

/// A passkey as its owner sees it (no key material).
#[derive(Debug, Clone)]
pub struct PasskeyView {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub backed_up: bool,
}

impl From<StoredPasskey> for PasskeyView {
    fn from(p: StoredPasskey) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            backed_up: p.backed_up,
        }
    }
}

/// A pending registration, as kept in the flow store.
#[derive(Serialize, Deserialize)]
struct PendingRegistration {
    user_id: Uuid,
    state: PasskeyRegistration,
}

/// A pending login (or second step, or reauthentication), as kept in the flow store.
#[derive(Serialize, Deserialize)]
struct PendingLogin {
    state: DiscoverableAuthentication,
}

fn registration_key(id: &str) -> String {
    format!("passkey-registration:{}", opaque_token::digest(id))
}

fn login_key(id: &str) -> String {
    format!("passkey-login:{}", opaque_token::digest(id))
}

fn expiry(now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::from_std(CEREMONY_TTL).unwrap_or_default()
}

fn encode_id(raw: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// A name for a passkey: 1 to 64 characters once trimmed.
fn valid_name(raw: Option<&str>) -> Result<String, AppError> {
    let name = raw.map_or(DEFAULT_NAME, str::trim);
    let chars = name.chars().count();
    if chars == 0 || chars > NAME_MAX_CHARS || name.chars().any(char::is_control) {
        return Err(AppError::field(
            "name",
            format!("A name has 1 to {NAME_MAX_CHARS} characters."),
        ));
    }
    Ok(name.to_owned())
}

/// The backup state a serialised webauthn-rs `Passkey` records.
fn backed_up(credential: &serde_json::Value) -> bool {
    credential
        .pointer("/cred/backup_state")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

/// The user a passkey assertion proved, and what it proved with.
pub(super) struct Asserted {
    pub user: User,
    pub password_hash: String,
}

/// Why an assertion was refused (all are `INVALID_CREDENTIALS` to the caller).
enum Refusal {
    /// Unknown key, wrong origin or challenge, bad signature, foreign user.
    Failed(Option<Uuid>),
    /// The signature counter did not go up.
    CloneSuspected(Box<StoredPasskey>, User),
}

impl Deps {
    fn passkey_metric(&self, operation: &str, result: &str) {
        self.metrics
            .counter(
                "identity_passkey_total",
                &[("operation", operation), ("result", result)],
            )
            .increment(1);
    }

    /// How many passkeys the account has.
    pub(super) async fn passkey_count(&self, user_id: Uuid) -> Result<u64, AppError> {
        Ok(passkeys::count(&self.db, user_id).await?)
    }

    /// The account's passkeys, for its owner (`myPasskeys`, `myData`).
    pub(super) async fn passkey_views(&self, user_id: Uuid) -> Result<Vec<PasskeyView>, AppError> {
        Ok(passkeys::list(&self.db, user_id)
            .await?
            .into_iter()
            .map(PasskeyView::from)
            .collect())
    }

    /// Finishes a ceremony begun with `beginPasskeyLogin`: takes it (one finish per
    /// ceremony), checks the assertion, and records the use. `operation` names it in
    /// the metric. `INVALID_TOKEN` for an unknown, expired or used ceremony;
    /// `INVALID_CREDENTIALS` for any refused assertion (audited; a counter that did not
    /// go up is audited as a suspected clone and mailed); `expected_user` (a second
    /// step or reauthentication) must own the passkey.
    pub(super) async fn check_passkey_assertion(
        &self,
        ceremony_id: &str,
        credential: &serde_json::Value,
        expected_user: Option<Uuid>,
        operation: &'static str,
        meta: &RequestMeta,
    ) -> Result<Asserted, AppError> {
        super::token_shape(ceremony_id)?;
        let now = self.clock.now();
        let pending: PendingLogin = match self
            .ephemeral
            .flows
            .take_flow(&login_key(ceremony_id), now)
            .await?
        {
            Some(json) => serde_json::from_str(&json).map_err(AppError::internal)?,
            None => {
                self.passkey_metric(operation, "expired");
                return Err(AppError::InvalidToken);
            }
        };
        match self
            .verify_assertion(pending, credential, expected_user, now)
            .await?
        {
            Ok(asserted) => Ok(asserted),
            Err(Refusal::Failed(user_id)) => {
                self.passkey_metric(operation, "failed");
                self.audit(AuditEvent::PasskeyLoginFailed, user_id, Some(meta))
                    .await;
                Err(AppError::InvalidCredentials)
            }
            Err(Refusal::CloneSuspected(stored, user)) => {
                self.passkey_metric(operation, "clone_suspected");
                tracing::warn!(user_id = %user.id, passkey_id = %stored.id, "passkey signature counter did not go up; refused");
                self.audit(AuditEvent::PasskeyCloneSuspected, Some(user.id), Some(meta))
                    .await;
                let mail = templates::passkey_clone_suspected(
                    &self.config.service_name,
                    &user.email,
                    &stored.name,
                );
                self.outbox
                    .enqueue(&self.db, "passkey_clone_suspected", mail, None, now)
                    .await?;
                self.outbox.wake();
                Err(AppError::InvalidCredentials)
            }
        }
    }

    async fn verify_assertion(
        &self,
        pending: PendingLogin,
        credential: &serde_json::Value,
        expected_user: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Result<Asserted, Refusal>, AppError> {
        let Ok(response) = serde_json::from_value::<PublicKeyCredential>(credential.clone()) else {
            return Ok(Err(Refusal::Failed(expected_user)));
        };
        let Ok((handle, raw_id)) = self
            .webauthn
            .identify_discoverable_authentication(&response)
        else {
            return Ok(Err(Refusal::Failed(expected_user)));
        };
        let Some(stored) = passkeys::find_by_credential_id(&self.db, &encode_id(raw_id)).await?
        else {
            return Ok(Err(Refusal::Failed(expected_user)));
        };
        let Some(owner) = passkeys::find_user_by_handle(&self.db, handle).await? else {
            return Ok(Err(Refusal::Failed(expected_user)));
        };
        let user_id = owner.user.id;
        if stored.user_id != user_id || expected_user.is_some_and(|u| u != user_id) {
            return Ok(Err(Refusal::Failed(expected_user.or(Some(stored.user_id)))));
        }
        if !owner.user.is_active {
            return Ok(Err(Refusal::Failed(Some(user_id))));
        }
        let mut passkey: Passkey = serde_json::from_str(&stored.credential)
            .map_err(|e| AppError::internal(anyhow::Error::new(e).context("stored passkey")))?;
        let result = match self.webauthn.finish_discoverable_authentication_v2(
            &response,
            pending.state,
            &passkey,
        ) {
            Ok(result) => result,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                return Ok(Err(Refusal::CloneSuspected(Box::new(stored), owner.user)));
            }
            Err(error) => {
                tracing::debug!(%error, "passkey assertion refused");
                return Ok(Err(Refusal::Failed(Some(user_id))));
            }
        };
        if !result.user_verified() {
            return Ok(Err(Refusal::Failed(Some(user_id))));
        }
        passkey.update_credential(&result);
        let updated = serde_json::to_string(&passkey).map_err(AppError::internal)?;
        // Conditional on the credential as it was read: of two uses racing with the
        // same counter, one is recorded and the other refused.
        if !passkeys::record_use(
            &self.db,
            stored.id,
            &stored.credential,
            updated,
            result.backup_state(),
            now,
        )
        .await?
        {
            return Ok(Err(Refusal::Failed(Some(user_id))));
        }
        Ok(Ok(Asserted {
            user: owner.user,
            password_hash: owner.password_hash,
        }))
    }
}

#[derive(Clone)]
pub struct PasskeyService {
    deps: Deps,
}

impl PasskeyService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// The caller's passkeys, oldest first.
    pub async fn mine(&self, bearer: Option<&str>) -> Result<Vec<PasskeyView>, AppError> {
        let deps = &self.deps;
        let caller = deps.caller(bearer).await?;
        let (user, _) = deps.caller_account(&caller).await?;
        deps.passkey_views(user.id).await
    }

    /// Starts registering a passkey for a fresh+ caller with fewer than 10: options
    /// that require a resident key and user verification, exclude the caller's passkeys
    /// and carry their handle.
    #[tracing::instrument(skip_all)]
    pub async fn begin_registration(
        &self,
        bearer: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Ceremony, AppError> {
        let deps = &self.deps;
        let (_, user, email) = deps.fresh_plus_mutation(bearer, meta).await?;
        let existing = passkeys::list(&deps.db, user.id).await?;
        if existing.len() as u64 >= MAX_PER_USER {
            deps.passkey_metric("register", "too_many");
            return Err(AppError::Conflict {
                reason: "TOO_MANY_PASSKEYS",
            });
        }
        let exclude = existing
            .iter()
            .map(|p| serde_json::from_str::<Passkey>(&p.credential).map(|k| k.cred_id().clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AppError::internal(anyhow::Error::new(e).context("stored passkey")))?;
        let handle = passkeys::ensure_handle(&deps.db, user.id).await?;
        let display_name = if user.full_name.trim().is_empty() {
            email.as_str()
        } else {
            user.full_name.as_str()
        };
        let (mut options, state) = deps
            .webauthn
            .start_passkey_registration(handle, email.as_str(), display_name, Some(exclude))
            .map_err(|e| AppError::internal(anyhow::anyhow!("start passkey registration: {e}")))?;
        // Discoverable credentials only: the login names no account.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.require_resident_key = true;
            selection.resident_key = serde_json::from_value(serde_json::json!("required"))
                .map_err(AppError::internal)?;
        }
        let ceremony_id = opaque_token::generate();
        let now = deps.clock.now();
        let expires_at = expiry(now);
        let pending = PendingRegistration {
            user_id: user.id,
            state,
        };
        deps.ephemeral
            .flows
            .put_flow(
                &registration_key(&ceremony_id),
                &serde_json::to_string(&pending).map_err(AppError::internal)?,
                expires_at,
            )
            .await
            .context("store the passkey registration")?;
        Ok(Ceremony {
            ceremony_id,
            options: serde_json::to_value(&options).map_err(AppError::internal)?,
            expires_at,
        })
    }

    /// Finishes a registration the caller began: the new passkey is stored (its
    /// credential id must be no one's yet) and the owner mailed.
    #[tracing::instrument(skip_all)]
    pub async fn finish_registration(
        &self,
        bearer: Option<&str>,
        ceremony_id: &str,
        credential: &serde_json::Value,
        name: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<PasskeyView, AppError> {
        let deps = &self.deps;
        deps.check_ip_limits(meta, None).await?;
        let caller = deps.caller(bearer).await?;
        let (user, _) = deps.caller_account(&caller).await?;
        let name = valid_name(name)?;
        super::token_shape(ceremony_id)?;
        let key = registration_key(ceremony_id);
        let now = deps.clock.now();
        let pending: PendingRegistration = match deps.flow(&key, now).await? {
            Some(state) => state,
            None => return Err(AppError::InvalidToken),
        };
        if pending.user_id != user.id {
            return Err(AppError::InvalidToken);
        }
        // Exactly one finish of a ceremony goes on, on any instance.
        if !deps.finish_flow(&key, now).await? {
            return Err(AppError::InvalidToken);
        }
        let Ok(response) =
            serde_json::from_value::<RegisterPublicKeyCredential>(credential.clone())
        else {
            deps.passkey_metric("register", "failed");
            return Err(AppError::InvalidCredentials);
        };
        let passkey = match deps
            .webauthn
            .finish_passkey_registration(&response, &pending.state)
        {
            Ok(passkey) => passkey,
            Err(error) => {
                tracing::debug!(%error, "passkey registration refused");
                deps.passkey_metric("register", "failed");
                return Err(AppError::InvalidCredentials);
            }
        };
        let serialised = serde_json::to_value(&passkey).map_err(AppError::internal)?;
        let mail = templates::passkey_added(&deps.config.service_name, &user.email, &name);
        let txn = begin_write(&deps.db)
            .await
            .context("begin passkey registration")?;
        passkeys::lock_user(&txn, user.id).await?;
        if passkeys::count(&txn, user.id).await? >= MAX_PER_USER {
            deps.passkey_metric("register", "too_many");
            return Err(AppError::Conflict {
                reason: "TOO_MANY_PASSKEYS",
            });
        }
        let stored = match passkeys::insert(
            &txn,
            NewPasskey {
                user_id: user.id,
                credential_id: encode_id(passkey.cred_id()),
                name,
                backed_up: backed_up(&serialised),
                credential: serialised.to_string(),
                now,
            },
        )
        .await
        {
            Ok(stored) => stored,
            Err(InsertError::CredentialTaken) => {
                deps.passkey_metric("register", "taken");
                return Err(AppError::InvalidCredentials);
            }
            Err(InsertError::Other(error)) => return Err(AppError::Internal(error)),
        };
        deps.outbox
            .enqueue(&txn, "passkey_added", mail, None, now)
            .await?;
        txn.commit().await.context("commit passkey registration")?;
        deps.outbox.wake();
        deps.passkey_metric("register", "succeeded");
        deps.audit(AuditEvent::PasskeyRegistered, Some(user.id), Some(meta))
            .await;
        Ok(stored.into())
    }

    /// Starts a passkey ceremony that names no account (the authenticator offers its
    /// discoverable credentials): for `finishPasskeyLogin`, `verifyMfa` and
    /// `reauthenticate`.
    #[tracing::instrument(skip_all)]
    pub async fn begin_login(&self, meta: &RequestMeta) -> Result<Ceremony, AppError> {
        let deps = &self.deps;
        deps.check_ip_limits(meta, None).await?;
        let (mut options, state) = deps
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| AppError::internal(anyhow::anyhow!("start passkey login: {e}")))?;
        // webauthn-rs asks for conditional mediation (autofill); a sign-in button
        // needs the modal kind, which is the default.
        options.mediation = None;
        let ceremony_id = opaque_token::generate();
        let now = deps.clock.now();
        let expires_at = expiry(now);
        deps.ephemeral
            .flows
            .put_flow(
                &login_key(&ceremony_id),
                &serde_json::to_string(&PendingLogin { state }).map_err(AppError::internal)?,
                expires_at,
            )
            .await
            .context("store the passkey login")?;
        Ok(Ceremony {
            ceremony_id,
            options: serde_json::to_value(&options).map_err(AppError::internal)?,
            expires_at,
        })
    }

    /// Signs in with a passkey: an `aal2` session (`["pop","mfa"]`), no second step.
    #[tracing::instrument(skip_all)]
    pub async fn finish_login(
        &self,
        ceremony_id: &str,
        credential: &serde_json::Value,
        meta: &RequestMeta,
    ) -> Result<AuthPayload, AppError> {
        let deps = &self.deps;
        deps.check_ip_limits(meta, None).await?;
        let asserted = deps
            .check_passkey_assertion(ceremony_id, credential, None, "login", meta)
            .await?;
        let user = asserted.user;
        // Only a right passkey learns that a deletion is scheduled.
        if let Some(scheduled_for) = user.deletion_scheduled_for {
            deps.metrics.login("pending_deletion");
            return Err(AppError::AccountPendingDeletion { scheduled_for });
        }
        if deps.config.verification.required && user.email_verified_at.is_none() {
            if let Ok(email) = Email::parse(&user.email) {
                super::email_verification::send_link_if_due(deps, &email).await;
            }
            return Err(AppError::EmailNotVerified { email: user.email });
        }
        let now = deps.clock.now();
        let user_id = user.id;
        if !users::record_login(&deps.db, user_id, now, &asserted.password_hash, None).await? {
            // Deactivated (or the password changed) while the assertion was checked.
            return Err(self.failed(user_id, meta).await);
        }
        super::users::UserService::announce_sign_in(deps, user_id, now).await;
        let user = User {
            last_login: Some(now),
            ..user
        };
        let assurance = Assurance {
            aal: Aal::Aal2,
            amr: vec![Method::Pop, Method::Mfa],
            auth_time: now,
        };
        let Some(payload) = deps
            .start_session(user, asserted.password_hash, assurance, meta)
            .await?
        else {
            return Err(self.failed(user_id, meta).await);
        };
        deps.metrics.login("succeeded");
        deps.passkey_metric("login", "succeeded");
        deps.audit(AuditEvent::PasskeyLogin, Some(user_id), Some(meta))
            .await;
        Ok(payload)
    }

    async fn failed(&self, user_id: Uuid, meta: &RequestMeta) -> AppError {
        self.deps.passkey_metric("login", "failed");
        self.deps
            .audit(AuditEvent::PasskeyLoginFailed, Some(user_id), Some(meta))
            .await;
        AppError::InvalidCredentials
    }

    /// Renames one of the caller's passkeys.
    #[tracing::instrument(skip_all)]
    pub async fn rename(
        &self,
        bearer: Option<&str>,
        id: &str,
        name: &str,
        meta: &RequestMeta,
    ) -> Result<PasskeyView, AppError> {
        let deps = &self.deps;
        deps.check_ip_limits(meta, None).await?;
        let caller = deps.caller(bearer).await?;
        let (user, _) = deps.caller_account(&caller).await?;
        let name = valid_name(Some(name))?;
        let id = Uuid::parse_str(id).map_err(|_| unknown_passkey())?;
        let Some(renamed) = passkeys::rename(&deps.db, user.id, id, &name).await? else {
            return Err(unknown_passkey());
        };
        deps.passkey_metric("rename", "succeeded");
        deps.audit(AuditEvent::PasskeyRenamed, Some(user.id), Some(meta))
            .await;
        Ok(renamed.into())
    }

    /// Removes one of the caller's passkeys (fresh+), unless it is the account's last
    /// way to sign in (no password and no other passkey): `CONFLICT LAST_LOGIN_METHOD`.
    #[tracing::instrument(skip_all)]
    pub async fn remove(
        &self,
        bearer: Option<&str>,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<bool, AppError> {
        let deps = &self.deps;
        let removal = deps
            .begin_removal(bearer, meta, id, unknown_passkey)
            .await?;
        let user_id = removal.user.id;
        let mine = passkeys::list(&removal.txn, user_id).await?;
        let Some(target) = mine.iter().find(|p| p.id == removal.id) else {
            return Err(unknown_passkey());
        };
        if removal.last {
            return Err(super::login_methods::last_login_method());
        }
        if !passkeys::delete(&removal.txn, user_id, removal.id).await? {
            return Err(unknown_passkey());
        }
        let mail = templates::passkey_removed(
            &deps.config.service_name,
            removal.email.as_str(),
            &target.name,
        );
        deps.finish_removal(removal, "passkey_removed", mail)
            .await?;
        deps.passkey_metric("remove", "succeeded");
        deps.audit(AuditEvent::PasskeyRemoved, Some(user_id), Some(meta))
            .await;
        Ok(true)
    }
}

fn unknown_passkey() -> AppError {
    AppError::field("id", "No passkey of yours has this id.")
}
