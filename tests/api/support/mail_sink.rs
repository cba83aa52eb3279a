//! A real SMTP server on a local port that keeps what it receives, and the received
//! mail parsed.

use std::{
    net::{SocketAddr, TcpListener},
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{
    app::{RESET_URL, VERIFY_URL},
    wait::eventually,
};

/// One mail as the SMTP sink received it.
#[derive(Debug, Clone)]
pub(crate) struct ReceivedMail {
    pub to: Vec<String>,
    pub raw: Vec<u8>,
}

impl ReceivedMail {
    pub(crate) fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.raw)
            .expect("a parseable mail")
    }

    pub(crate) fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_owned()
    }

    pub(crate) fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|b| b.into_owned())
            .unwrap_or_default()
    }

    pub(crate) fn html(&self) -> String {
        self.parsed()
            .body_html(0)
            .map(|b| b.into_owned())
            .unwrap_or_default()
    }

    /// Whether this is a password-reset mail (the one with the link).
    pub(crate) fn is_reset(&self) -> bool {
        self.subject().starts_with("Reset your")
    }

    /// Whether this is an email-verification mail (`register`, resends).
    pub(crate) fn is_verification(&self) -> bool {
        self.subject().starts_with("Confirm your email address")
    }

    /// The token of the verification link in the text body.
    pub(crate) fn verify_token(&self) -> String {
        self.link_token(VERIFY_URL)
    }

    /// The token of the reset link in the text body.
    pub(crate) fn reset_token(&self) -> String {
        self.link_token(RESET_URL)
    }

    /// The token of the link made from `template` (one of the test app's link
    /// settings, with its `{token}`) in the text body.
    pub(crate) fn link_token(&self, template: &str) -> String {
        let text = self.text();
        let prefix = template.split("{token}").next().unwrap();
        let start = text
            .find(prefix)
            .unwrap_or_else(|| panic!("no link {prefix}… in the mail: {text}"))
            + prefix.len();
        text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    }
}

/// Records what the SMTP sink receives; mailin calls it as the conversation goes.
#[derive(Clone, Default)]
struct SinkHandler {
    mails: Arc<Mutex<Vec<ReceivedMail>>>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl mailin::Handler for SinkHandler {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        to: &[String],
    ) -> mailin::Response {
        self.to = to.to_vec();
        self.data.clear();
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin::Response {
        let mail = ReceivedMail {
            to: std::mem::take(&mut self.to),
            raw: std::mem::take(&mut self.data),
        };
        self.mails.lock().unwrap().push(mail);
        mailin::response::OK
    }
}

/// A real SMTP server on a local port: mailin's protocol state machine, one tokio
/// task per connection. It can be stopped and started again on the same port, and made
/// slow: it then accepts connections but waits before each reply.
#[derive(Clone)]
pub(crate) struct MailSink {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<ReceivedMail>>>,
    server: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// How long each reply (the greeting included) waits; zero: none.
    reply_delay: Arc<Mutex<Duration>>,
}

impl MailSink {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sink = Self {
            addr: listener.local_addr().unwrap(),
            mails: Arc::default(),
            server: Arc::default(),
            reply_delay: Arc::default(),
        };
        sink.serve(listener);
        sink
    }

    /// A sink for a free port that is not listening yet: mail to it fails until `resume`.
    pub(crate) fn down() -> Self {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        Self {
            addr,
            mails: Arc::default(),
            server: Arc::default(),
            reply_delay: Arc::default(),
        }
    }

    /// From now on every reply (the greeting too) waits `delay` first: a server that
    /// accepts connections but answers slowly. `Duration::ZERO`: fast again (replies
    /// already waiting finish their wait).
    pub(crate) fn set_reply_delay(&self, delay: Duration) {
        *self.reply_delay.lock().unwrap() = delay;
    }

    pub(crate) fn resume(&self) {
        self.serve(TcpListener::bind(self.addr).unwrap());
    }

    pub(crate) fn stop(&self) {
        if let Some(task) = self.server.lock().unwrap().take() {
            task.abort();
        }
    }

    fn serve(&self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let mails = Arc::clone(&self.mails);
        let delay = Arc::clone(&self.reply_delay);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, peer)) = listener.accept().await {
                let handler = SinkHandler {
                    mails: Arc::clone(&mails),
                    ..Default::default()
                };
                connections.spawn(smtp_session(stream, peer.ip(), handler, Arc::clone(&delay)));
            }
        });
        *self.server.lock().unwrap() = Some(task);
    }

    /// Every mail received except the verification mails every registration sends
    /// (`verifications` has those).
    pub(crate) fn all(&self) -> Vec<ReceivedMail> {
        self.mails
            .lock()
            .unwrap()
            .iter()
            .filter(|m| !m.is_verification())
            .cloned()
            .collect()
    }

    /// The verification mails received for `email`.
    pub(crate) fn verifications(&self, email: &str) -> Vec<ReceivedMail> {
        self.mails
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.is_verification() && m.to.iter().any(|t| t.eq_ignore_ascii_case(email)))
            .cloned()
            .collect()
    }

    /// Waits until `count` verification mails to `email` have arrived; returns them.
    pub(crate) async fn wait_for_verifications(
        &self,
        email: &str,
        count: usize,
    ) -> Vec<ReceivedMail> {
        eventually(
            Duration::from_secs(10),
            &format!("{count} verification mail(s) to {email}"),
            || async {
                let mails = self.verifications(email);
                if mails.len() >= count {
                    Ok(mails)
                } else {
                    Err(format!("{} to {email}", mails.len()))
                }
            },
        )
        .await
    }

    pub(crate) fn to(&self, email: &str) -> Vec<ReceivedMail> {
        self.all()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(email)))
            .collect()
    }

    /// Waits until `count` mails to `email` have arrived, and returns them.
    pub(crate) async fn wait_for(&self, email: &str, count: usize) -> Vec<ReceivedMail> {
        eventually(
            Duration::from_secs(10),
            &format!("{count} mail(s) to {email}"),
            || async {
                let mails = self.to(email);
                if mails.len() >= count {
                    Ok(mails)
                } else {
                    Err(format!(
                        "{} to {email}, {} in all",
                        mails.len(),
                        self.all().len()
                    ))
                }
            },
        )
        .await
    }
}

async fn smtp_session(
    stream: tokio::net::TcpStream,
    ip: std::net::IpAddr,
    handler: SinkHandler,
    delay: Arc<Mutex<Duration>>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let wait = || {
        let delay = *delay.lock().unwrap();
        tokio::time::sleep(delay)
    };
    wait().await;
    let (read, mut write) = stream.into_split();
    let mut read = tokio::io::BufReader::new(read);
    let mut session = mailin::SessionBuilder::new("sink.test").build(ip, handler);
    if write
        .write_all(&session.greeting().buffer().unwrap())
        .await
        .is_err()
    {
        return;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        match read.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let response = session.process(&line);
        match response.action {
            mailin::Action::NoReply => {}
            mailin::Action::Reply => {
                wait().await;
                if write.write_all(&response.buffer().unwrap()).await.is_err() {
                    return;
                }
            }
            mailin::Action::Close | mailin::Action::UpgradeTls => {
                let _ = write.write_all(&response.buffer().unwrap()).await;
                return;
            }
        }
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        // The last clone stops the server.
        if Arc::strong_count(&self.server) == 1 {
            self.stop();
        }
    }
}
