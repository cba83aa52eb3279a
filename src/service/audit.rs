//! The audit trail: security events, each logged and stored in the `audit_events`
//! table by a writer task that inserts them in batches, off the request path. Never a
//! password or a token: only what happened, to whom, from where.
//!
//! Refusals (rate-limited, throttled, failed logins) are what an attacker causes in
//! volume, so they are bounded: per event, client and account, the first
//! `REFUSALS_IN_FULL` of a `REFUSAL_WINDOW` get a row each; the rest of the window one
//! row whose `occurrences` says how many it stands for, written when the window ends
//! (or at a flush). Nothing is lost: the rows add up to every refusal, and the metric
//! `identity_audit_events_total` counts each one.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::{RequestMeta, batch::BatchQueue};
use crate::{
    clock::Clock,
    metrics::Metrics,
    store::audit::{self, AuditRow},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditEvent {
    Registered,
    LoginSucceeded,
    LoginFailed,
    /// An account's login attempts were refused while it cools down.
    LoginThrottled,
    /// A client IP went over a rate limit.
    RateLimited,
    RefreshReuseDetected,
    Logout,
    PasswordResetRequested,
    /// A reset request was dropped: the account had its quota of reset mails.
    PasswordResetThrottled,
    PasswordResetCompleted,
    /// A signed-in user changed their password (`changePassword`).
    PasswordChanged,
    UserDeactivated,
    /// A session proved a credential again (`reauthenticate`).
    Reauthenticated,
    /// A user ended one of their sessions (`revokeSession`).
    SessionRevoked,
    /// A user ended all their other sessions (`revokeOtherSessions`).
    OtherSessionsRevoked,
    /// A user proved control of their address with a mailed link (`verifyEmail`).
    EmailVerified,
    /// A signed-in user asked to change their address (`requestEmailChange`).
    EmailChangeRequested,
    /// A change of address was confirmed with the mailed link (`confirmEmailChange`).
    EmailChanged,
    /// A TOTP enrolment began (`beginTotpEnrollment`).
    TotpEnrollmentStarted,
    /// TOTP was turned on (`confirmTotpEnrollment`).
    TotpEnabled,
    /// TOTP was turned off (`disableTotp`).
    TotpDisabled,
    /// A first factor was right and a second one was asked for (`MFA_REQUIRED`).
    MfaChallengeIssued,
    /// A TOTP code was accepted (`verifyMfa`, `reauthenticate`).
    MfaVerifiedTotp,
    /// A recovery code was accepted.
    MfaVerifiedRecoveryCode,
    /// A wrong TOTP or recovery code.
    MfaFailedWrong,
    /// A TOTP code for a step already used: a replay.
    MfaFailedReplay,
    /// An unknown, expired or used `mfaToken`.
    MfaFailedExpired,
    /// Ten wrong codes in a row locked the account's second step.
    MfaLocked,
    /// A recovery code was spent.
    RecoveryCodeUsed,
    /// New recovery codes replaced the old ones.
    RecoveryCodesRegenerated,
    /// The owner asked for their account to be deleted (`requestAccountDeletion`).
    AccountDeletionRequested,
    /// The owner cancelled a requested deletion with the mailed link.
    AccountDeletionCancelled,
    /// The account was deleted (stored under its keyed hash, never its id).
    AccountDeleted,
    /// The owner downloaded a copy of their data (`myData`).
    DataExported,
    /// A passkey was added (`finishPasskeyRegistration`).
    PasskeyRegistered,
    /// A passkey signed in (`finishPasskeyLogin`) or proved a second step
    /// (`verifyMfa`, `reauthenticate`).
    PasskeyLogin,
    /// A passkey assertion was refused.
    PasskeyLoginFailed,
    /// A passkey was removed (`removePasskey`).
    PasskeyRemoved,
    /// A passkey was renamed (`renamePasskey`).
    PasskeyRenamed,
    /// A passkey's signature counter did not go up: it may have been copied.
    PasskeyCloneSuspected,
    /// A social login or identity link was started (`startSocialLogin`,
    /// `startIdentityLink`).
    SocialLoginStarted,
    /// A social login signed in (`completeSocialLogin`).
    SocialLoginSucceeded,
    /// A social login failed at the provider or at its checks (the reason is logged
    /// and counted in `identity_social_logins_total`).
    SocialLoginFailed,
    /// A first social login made an account.
    SocialAccountCreated,
    /// A provider identity was linked to the account.
    IdentityLinked,
    /// A provider identity was unlinked (`unlinkIdentity`).
    IdentityUnlinked,
    /// A trusted provider's verified address claimed an unverified account: its
    /// password, sessions and open tokens were wiped.
    UnverifiedAccountClaimed,
    /// A social login matched a verified account by address: linking needs its owner.
    AccountLinkRequired,
}

impl AuditEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::RateLimited => "rate_limited",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::Logout => "logout",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordResetThrottled => "password_reset_throttled",
            Self::PasswordResetCompleted => "password_reset_completed",
            Self::PasswordChanged => "password_changed",
            Self::UserDeactivated => "user_deactivated",
            Self::Reauthenticated => "reauthenticated",
            Self::SessionRevoked => "session_revoked",
            Self::OtherSessionsRevoked => "other_sessions_revoked",
            Self::EmailVerified => "email_verified",
            Self::EmailChangeRequested => "email_change_requested",
            Self::EmailChanged => "email_changed",
            Self::TotpEnrollmentStarted => "totp_enrollment_started",
            Self::TotpEnabled => "totp_enabled",
            Self::TotpDisabled => "totp_disabled",
            Self::MfaChallengeIssued => "mfa_challenge_issued",
            Self::MfaVerifiedTotp => "mfa_verified_totp",
            Self::MfaVerifiedRecoveryCode => "mfa_verified_recovery_code",
            Self::MfaFailedWrong => "mfa_failed_wrong",
            Self::MfaFailedReplay => "mfa_failed_replay",
            Self::MfaFailedExpired => "mfa_failed_expired",
            Self::MfaLocked => "mfa_locked",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::AccountDeletionRequested => "account_deletion_requested",
            Self::AccountDeletionCancelled => "account_deletion_cancelled",
            Self::AccountDeleted => "account_deleted",
            Self::DataExported => "data_exported",
            Self::PasskeyRegistered => "passkey_registered",
            Self::PasskeyLogin => "passkey_login",
            Self::PasskeyLoginFailed => "passkey_login_failed",
            Self::PasskeyRemoved => "passkey_removed",
            Self::PasskeyRenamed => "passkey_renamed",
            Self::PasskeyCloneSuspected => "passkey_clone_suspected",
            Self::SocialLoginStarted => "social_login_started",
            Self::SocialLoginSucceeded => "social_login_succeeded",
            Self::SocialLoginFailed => "social_login_failed",
            Self::SocialAccountCreated => "social_account_created",
            Self::IdentityLinked => "identity_linked",
            Self::IdentityUnlinked => "identity_unlinked",
            Self::UnverifiedAccountClaimed => "unverified_account_claimed",
            Self::AccountLinkRequired => "account_link_required",
        }
    }

    /// Refusals anyone can cause in volume: bounded in the table.
    fn is_refusal(self) -> bool {
        matches!(
            self,
            Self::LoginFailed
                | Self::PasskeyLoginFailed
                | Self::SocialLoginFailed
                | Self::LoginThrottled
                | Self::RateLimited
                | Self::PasswordResetThrottled
        )
    }
}

/// Refusals of one kind, from one client, for one account (or none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RefusalKey {
    event: AuditEvent,
    user_id: Option<Uuid>,
    ip: Option<String>,
}

/// One key's current window.
struct Window {
    started: DateTime<Utc>,
    /// Refusals given a row of their own in this window.
    in_full: u32,
    /// Refusals since, not yet stored, and the last one's time and user agent.
    unwritten: u32,
    last: DateTime<Utc>,
    user_agent: Option<String>,
}

/// The refusals' windows; what goes on when a window ends or fills.
#[derive(Default)]
struct Refusals {
    windows: HashMap<RefusalKey, Window>,
}

impl Refusals {
    /// The row for `key`'s unwritten refusals, if there are any.
    fn take_unwritten(key: &RefusalKey, window: &mut Window) -> Option<AuditRow> {
        if window.unwritten == 0 {
            return None;
        }
        let row = AuditRow {
            occurred_at: window.last,
            event: key.event.as_str(),
            user_id: key.user_id,
            ip: key.ip.clone(),
            user_agent: window.user_agent.take(),
            occurrences: window.unwritten,
        };
        window.unwritten = 0;
        Some(row)
    }

    /// Counts a refusal; returns the rows to store now (its own, or a finished
    /// window's).
    fn count(&mut self, key: RefusalKey, row: AuditRow) -> Vec<AuditRow> {
        let at = row.occurred_at;
        let mut out = Vec::new();
        if let Some(window) = self.windows.get_mut(&key) {
            if at < window.started + REFUSAL_WINDOW {
                if window.in_full < REFUSALS_IN_FULL {
                    window.in_full += 1;
                    out.push(row);
                } else {
                    window.unwritten += 1;
                    window.last = at;
                    window.user_agent = row.user_agent;
                }
                return out;
            }
            out.extend(Self::take_unwritten(&key, window));
            self.windows.remove(&key);
        } else if self.windows.len() >= MAX_WINDOWS {
            // Too many clients at once to remember each: store what is counted, and
            // start again (rows stay bounded by the refusals themselves).
            out.extend(self.drain(None));
        }
        self.windows.insert(
            key,
            Window {
                started: at,
                in_full: 1,
                unwritten: 0,
                last: at,
                user_agent: None,
            },
        );
        out.push(row);
        out
    }

    /// The rows of unwritten refusals: of every window (`None`), or of those ended by
    /// `now`, which are forgotten.
    fn drain(&mut self, now: Option<DateTime<Utc>>) -> Vec<AuditRow> {
        let mut out = Vec::new();
        self.windows.retain(|key, window| {
            let ended = now.is_none_or(|now| window.started + REFUSAL_WINDOW <= now);
            if ended {
                out.extend(Self::take_unwritten(key, window));
            }
            !ended
        });
        out
    }

    /// The rows of every window's unwritten refusals; the windows go on.
    fn flush(&mut self) -> Vec<AuditRow> {
        self.windows
            .iter_mut()
            .filter_map(|(key, window)| Self::take_unwritten(key, window))
            .collect()
    }
}

#[derive(Clone)]
pub struct AuditLog {
    queue: BatchQueue<AuditRow>,
    metrics: Metrics,
    refusals: Arc<Mutex<Refusals>>,
}

/// Events that may wait for the writer.
const CAPACITY: usize = 4096;
/// Largest batch written in one INSERT.
const BATCH: usize = 256;
/// Refusals of one key stored one row each per window; the rest of it as one row.
const REFUSALS_IN_FULL: u32 = 5;
/// How long a window of refusals lasts.
const REFUSAL_WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// Windows remembered at once (about 200 bytes each).
const MAX_WINDOWS: usize = 10_000;
/// How often ended windows are stored and forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

impl AuditLog {
    /// Starts the writer task, and the sweep of ended refusal windows, on the current
    /// runtime.
    pub fn start(db: DatabaseConnection, metrics: Metrics, clock: Arc<dyn Clock>) -> Self {
        let queue = super::batch::spawn(CAPACITY, BATCH, move |rows| {
            let db = db.clone();
            async move { write(&db, rows).await }
        });
        let log = Self {
            queue,
            metrics,
            refusals: Arc::default(),
        };
        let sweeper = log.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tick.tick().await;
                let ended = sweeper.refusals().drain(Some(clock.now()));
                if sweeper.store(ended).await.is_err() {
                    return;
                }
            }
        });
        log
    }

    fn refusals(&self) -> std::sync::MutexGuard<'_, Refusals> {
        self.refusals.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub async fn record(
        &self,
        event: AuditEvent,
        user_id: Option<Uuid>,
        meta: Option<&RequestMeta>,
        at: DateTime<Utc>,
    ) {
        let ip = meta.map(|m| m.ip.to_string());
        self.metrics
            .counter("identity_audit_events_total", &[("event", event.as_str())])
            .increment(1);
        let row = AuditRow {
            occurred_at: at,
            event: event.as_str(),
            user_id,
            ip,
            user_agent: meta.and_then(|m| m.user_agent.clone()),
            occurrences: 1,
        };
        let rows = if event.is_refusal() {
            let key = RefusalKey {
                event,
                user_id,
                ip: row.ip.clone(),
            };
            self.refusals().count(key, row)
        } else {
            vec![row]
        };
        let _ = self.store(rows).await;
    }

    /// Logs and queues rows for the writer; `Err` once the writer has stopped.
    async fn store(&self, rows: Vec<AuditRow>) -> Result<(), super::batch::Stopped> {
        for row in rows {
            tracing::info!(
                target: "audit",
                event = row.event,
                user_id = row.user_id.map(|u| u.to_string()).unwrap_or_default(),
                ip = row.ip.as_deref().unwrap_or_default(),
                occurrences = row.occurrences,
                "audit event"
            );
            let event = row.event;
            if let Err(stopped) = self.queue.push(row).await {
                tracing::error!(event, "audit writer stopped; event not stored");
                return Err(stopped);
            }
        }
        Ok(())
    }

    /// Waits until every event recorded so far is stored (or `limit` passes), the
    /// refusals counted in windows still open included.
    pub async fn flush(&self, limit: Duration) -> bool {
        let counted = self.refusals().flush();
        let stored = tokio::time::timeout(limit, self.store(counted)).await;
        matches!(stored, Ok(Ok(()))) && self.queue.flush(limit).await
    }
}

async fn write(db: &DatabaseConnection, rows: Vec<AuditRow>) {
    let count = rows.len();
    if let Err(error) = audit::insert_many(db, rows).await {
        tracing::error!(error = %format!("{error:#}"), count, "audit events not stored");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(at: DateTime<Utc>) -> (RefusalKey, AuditRow) {
        let key = RefusalKey {
            event: AuditEvent::RateLimited,
            user_id: None,
            ip: Some("192.0.2.1".into()),
        };
        let row = AuditRow {
            occurred_at: at,
            event: key.event.as_str(),
            user_id: None,
            ip: key.ip.clone(),
            user_agent: None,
            occurrences: 1,
        };
        (key, row)
    }

    fn total(rows: &[AuditRow]) -> u32 {
        rows.iter().map(|r| r.occurrences).sum()
    }

    #[test]
    fn a_window_stores_a_few_in_full_and_counts_the_rest() {
        let start = DateTime::<Utc>::UNIX_EPOCH;
        let mut refusals = Refusals::default();
        let mut rows = Vec::new();
        for n in 0..100 {
            let (key, row) = refusal(start + chrono::TimeDelta::milliseconds(n));
            rows.extend(refusals.count(key, row));
        }
        assert_eq!(rows.len(), REFUSALS_IN_FULL as usize);
        // Not ended yet: the sweep leaves it; a flush stores the count, the window goes on.
        assert!(refusals.drain(Some(start + REFUSAL_WINDOW / 2)).is_empty());
        rows.extend(refusals.flush());
        assert_eq!(total(&rows), 100);
        let (key, row) = refusal(start + chrono::TimeDelta::seconds(1));
        assert!(refusals.count(key, row).is_empty(), "still counted");
        // The window ends: its count is stored, and the next refusal opens a new one.
        let ended = refusals.drain(Some(start + REFUSAL_WINDOW));
        assert_eq!(total(&ended), 1);
        assert!(refusals.windows.is_empty());
        let (key, row) = refusal(start + REFUSAL_WINDOW);
        assert_eq!(refusals.count(key, row).len(), 1);
    }

    #[test]
    fn too_many_clients_at_once_store_their_counts_and_start_again() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let mut refusals = Refusals::default();
        let mut stored = 0;
        for client in 0..=MAX_WINDOWS {
            for _ in 0..=REFUSALS_IN_FULL {
                let (mut key, row) = refusal(at);
                key.ip = Some(format!("client-{client}"));
                stored += total(&refusals.count(key, row));
            }
        }
        assert!(refusals.windows.len() <= MAX_WINDOWS);
        stored += total(&refusals.flush());
        let all = u32::try_from(MAX_WINDOWS + 1).unwrap() * (REFUSALS_IN_FULL + 1);
        assert_eq!(stored, all, "nothing lost");
    }
}
