//! Mail: the SMTP server, or by default the log, and the sender.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{
    AppEnv, ConfigError,
    vars::{Described, Vars, mask_url, secs},
};

pub(super) const VARS: &[&str] = &["SMTP_URL", "MAIL_FROM", "SMTP_TIMEOUT"];

#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `None`: mail goes to the log.
    pub smtp_url: Option<SecretString>,
    pub from: String,
    /// The longest one delivery (one SMTP conversation) may take; a slower one is
    /// abandoned and retried later.
    pub timeout: Duration,
}

impl MailConfig {
    /// `SMTP_URL` is required in production: the log would then hold reset links.
    pub(super) fn read(vars: &Vars<'_>, env: AppEnv) -> Result<Self, ConfigError> {
        let smtp_url = vars.get("SMTP_URL");
        if let Some(url) = &smtp_url {
            check_smtp_url(url).map_err(|e| ConfigError::new("SMTP_URL", e))?;
        }
        let from = vars
            .get("MAIL_FROM")
            .unwrap_or_else(|| "Identity <no-reply@localhost>".into());
        if let Err(e) = from.parse::<lettre::message::Mailbox>() {
            return Err(ConfigError::new("MAIL_FROM", format!("not a mailbox: {e}")));
        }
        if smtp_url.is_none() && env == AppEnv::Production {
            return Err(ConfigError::new(
                "SMTP_URL",
                "is required when APP_ENV=production (without it, mail is written to the log)",
            ));
        }
        Ok(Self {
            smtp_url: smtp_url.map(SecretString::from),
            from,
            timeout: vars.secs("SMTP_TIMEOUT", 20, 1, 300)?,
        })
    }

    pub(super) fn describe(&self) -> Described {
        vec![
            (
                "SMTP_URL",
                self.smtp_url
                    .as_ref()
                    .map_or("(unset: mail goes to the log)".into(), |url| {
                        mask_url(url.expose_secret())
                    }),
            ),
            ("MAIL_FROM", self.from.clone()),
            ("SMTP_TIMEOUT", secs(self.timeout)),
        ]
    }
}

/// Whether the transport that will deliver the mail accepts the URL (`smtp://`,
/// `smtps://`, with lettre's parameters).
fn check_smtp_url(url: &str) -> Result<(), String> {
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
