use std::time::Duration;

use anyhow::Context;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
};

use super::{Mailer, OutgoingMail};

/// Mail over SMTP (`smtp://` plain or with `?tls=required`, `smtps://` implicit TLS).
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// `timeout` bounds each command's answer (the outbox bounds the whole delivery).
    pub fn new(url: &str, from: &str, timeout: Duration) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .context("parse SMTP_URL")?
            .timeout(Some(timeout))
            .build();
        let from = from.parse().context("parse MAIL_FROM")?;
        Ok(Self { transport, from })
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: OutgoingMail) -> anyhow::Result<()> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(mail.to.parse().context("parse recipient")?)
            .subject(mail.subject)
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
            .context("build message")?;
        self.transport
            .send(message)
            .await
            .context("send mail over SMTP")?;
        Ok(())
    }
}
