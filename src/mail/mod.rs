//! Outgoing mail: SMTP when `SMTP_URL` is set, the log otherwise.

mod content;
pub mod log;
pub mod smtp;
pub mod templates;

/// A message with a plain-text and an HTML body.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[async_trait::async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send(&self, mail: OutgoingMail) -> anyhow::Result<()>;
}
