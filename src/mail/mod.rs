//! Outgoing mail: SMTP when `SMTP_URL` is set, the log otherwise.

mod content;
pub mod log;
pub mod smtp;
pub mod templates;

pub use crate::domain::mail::OutgoingMail;

#[async_trait::async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send(&self, mail: OutgoingMail) -> anyhow::Result<()>;
}
