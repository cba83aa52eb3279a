//! Account deletion and data export: `requestAccountDeletion`, `cancelAccountDeletion`,
//! `myData`.

use async_graphql::{Context, Json, Object, Result};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::RequestCtx;
use crate::service::{Services, account::DataExport, sessions::SessionView};

/// As the `DateTime` scalar writes it.
fn time(at: DateTime<Utc>) -> Value {
    Value::String(at.to_rfc3339())
}

fn session(s: &SessionView) -> Value {
    json!({
        "id": s.id.to_string(),
        "current": s.current,
        "createdAt": time(s.created_at),
        "lastUsedAt": time(s.last_used_at),
        "expiresAt": time(s.expires_at),
        "ipAddress": s.ip_address,
        "userAgent": s.user_agent,
        "browser": s.browser,
        "os": s.os,
        "aal": s.assurance.aal.as_str(),
        "authMethods": s.assurance.amr.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
    })
}

/// The export as JSON: only what is listed here goes out (never a hash, secret, key
/// or token).
fn to_json(export: &DataExport) -> Value {
    let user = &export.user;
    json!({
        "exportedAt": time(export.exported_at),
        "profile": {
            "id": user.id.to_string(),
            "email": user.email,
            "fullName": user.full_name,
            "emailVerified": user.email_verified_at.is_some(),
            "dateJoined": time(user.date_joined),
            "lastLogin": user.last_login.map(time),
        },
        "sessions": export.sessions.iter().map(session).collect::<Vec<_>>(),
        "identities": export.identities.iter().map(|i| json!({
            "provider": i.provider,
            "email": i.email,
            "createdAt": time(i.created_at),
            "lastUsedAt": i.last_used_at.map(time),
        })).collect::<Vec<_>>(),
        "passkeys": export.passkeys.iter().map(|p| json!({
            "name": p.name,
            "createdAt": time(p.created_at),
            "lastUsedAt": p.last_used_at.map(time),
            "backedUp": p.backed_up,
        })).collect::<Vec<_>>(),
        "mfa": {
            "totpEnabled": export.mfa.totp_enabled,
            "passkeyCount": export.mfa.passkey_count,
            "recoveryCodesRemaining": export.mfa.recovery_codes_remaining,
        },
        "auditEvents": export.audit_events.iter().map(|e| json!({
            "event": e.event,
            "occurredAt": time(e.occurred_at),
            "ipAddress": e.ip,
            "userAgent": e.user_agent,
            "occurrences": e.occurrences,
        })).collect::<Vec<_>>(),
    })
}

#[derive(Default)]
pub(super) struct AccountQuery;

#[Object]
impl AccountQuery {
    /// A copy of the signed-in user's data: profile, live sessions, linked identities,
    /// passkeys, second-factor status and the account's audit events of the last 365
    /// days. Needs a fresh session (`REAUTHENTICATION_REQUIRED` otherwise); at most 5 a
    /// day (`RATE_LIMITED` beyond); each export is mailed to the owner.
    async fn my_data(&self, ctx: &Context<'_>) -> Result<Json<Value>> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        let export = services
            .account
            .export(req.bearer.as_deref(), &req.meta)
            .await?;
        Ok(Json(to_json(&export)))
    }
}

#[derive(Default)]
pub(super) struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Deletes the signed-in user's account after `ACCOUNT_DELETION_GRACE` (at once if
    /// that is zero); returns when. `confirm` must be `"DELETE"`. Needs a fresh session.
    /// Every session is signed out now, and a link that cancels the deletion is mailed.
    async fn request_account_deletion(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Must be exactly \"DELETE\".")] confirm: String,
    ) -> Result<DateTime<Utc>> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .account
            .request_deletion(req.bearer.as_deref(), &confirm, &req.meta)
            .await?)
    }

    /// Cancels a scheduled deletion with the token from its mail. Single use; never
    /// signs in. `INVALID_TOKEN` if unknown, expired or used.
    async fn cancel_account_deletion(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token from the deletion mail's cancel link.")] token: String,
    ) -> Result<bool> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services.account.cancel_deletion(&token, &req.meta).await?)
    }
}
