use super::{Mailer, OutgoingMail};

/// The embedded default: mail is written to the log, so a developer running the
/// service locally can follow a reset link without a mail server.
pub struct LogMailer;

#[async_trait::async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: OutgoingMail) -> anyhow::Result<()> {
        tracing::info!(
            to = %mail.to,
            subject = %mail.subject,
            "mail (SMTP_URL unset, so it is printed here instead of sent):\n{}",
            mail.text
        );
        Ok(())
    }
}
