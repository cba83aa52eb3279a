//! A mail as the service composes it, before any transport sees it.

/// A message with a plain-text and an HTML body.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}
