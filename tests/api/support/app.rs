//! `spawn_app()`: the real service on a random port, with its own database (a fresh
//! PostgreSQL database or SQLite file), its own Redis key prefix, a real SMTP sink and
//! a clock the test can move forward.
//!
//! `TEST_BACKEND=postgres` selects PostgreSQL + Redis (`TEST_DATABASE_URL`,
//! `TEST_REDIS_URL`); anything else the embedded default (SQLite + in-process store).

use std::{
    collections::HashMap,
    net::{SocketAddr, TcpListener},
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use identity::{
    app::App,
    clock::ManualClock,
    config::Config,
    service::{AuditLog, outbox::Outbox, reset_queue::ResetQueue},
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery";
pub const NEW_PASSWORD: &str = "tangerine submarine 42";
pub const RESET_URL: &str = "https://app.test/reset-password?token={token}";

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = identity::telemetry::init(identity::config::LogFormat::Pretty);
    }
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Postgres,
}

pub fn backend() -> Backend {
    match std::env::var("TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        _ => Backend::Embedded,
    }
}

fn pg_base() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Where one test keeps its data; shared by every server the test starts.
pub struct Storage {
    pub vars: HashMap<String, String>,
    pg_db: Option<String>,
    pub dir: std::path::PathBuf,
}

impl Storage {
    pub async fn new() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("identity-test-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut vars = HashMap::new();
        let mut pg_db = None;
        match backend() {
            Backend::Postgres => {
                let name = format!("test_{id}");
                let admin = Database::connect(format!("{}/postgres", pg_base()))
                    .await
                    .expect("PostgreSQL reachable (TEST_DATABASE_URL)");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .unwrap();
                admin.close().await.unwrap();
                vars.insert("DATABASE_URL".into(), format!("{}/{name}", pg_base()));
                vars.insert("REDIS_URL".into(), redis_url());
                vars.insert("REDIS_KEY_PREFIX".into(), format!("test:{id}:"));
                pg_db = Some(name);
            }
            Backend::Embedded => {
                let file = dir.join("identity.db");
                vars.insert(
                    "DATABASE_URL".into(),
                    format!("sqlite://{}?mode=rwc", file.display()),
                );
            }
        }
        Self { vars, pg_db, dir }
    }
}

/// Storage of the embedded default in `dir`, whatever the backend under test.
pub fn embedded_storage(dir: &str) -> Arc<Storage> {
    let file = std::path::Path::new(dir).join("identity.db");
    let mut vars = HashMap::new();
    vars.insert(
        "DATABASE_URL".into(),
        format!("sqlite://{}?mode=rwc", file.display()),
    );
    Arc::new(Storage {
        vars,
        pg_db: None,
        dir: dir.into(),
    })
}

impl Drop for Storage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(name) = self.pg_db.take() {
            // Best effort, on a thread of its own: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    if let Ok(admin) = Database::connect(format!("{}/postgres", pg_base())).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await;
                        let _ = admin.close().await;
                    }
                });
                Ok::<(), std::io::Error>(())
            })
            .join();
        }
    }
}

/// One mail as the SMTP sink received it.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub to: Vec<String>,
    pub raw: Vec<u8>,
}

impl ReceivedMail {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.raw)
            .expect("a parseable mail")
    }

    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_owned()
    }

    pub fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|b| b.into_owned())
            .unwrap_or_default()
    }

    pub fn html(&self) -> String {
        self.parsed()
            .body_html(0)
            .map(|b| b.into_owned())
            .unwrap_or_default()
    }

    /// The token of the reset link in the text body.
    pub fn reset_token(&self) -> String {
        let text = self.text();
        let prefix = RESET_URL.split("{token}").next().unwrap();
        let start = text.find(prefix).expect("reset link in the mail") + prefix.len();
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
/// task per connection. It can be stopped and started again on the same port.
#[derive(Clone)]
pub struct MailSink {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<ReceivedMail>>>,
    server: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl MailSink {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sink = Self {
            addr: listener.local_addr().unwrap(),
            mails: Arc::default(),
            server: Arc::default(),
        };
        sink.serve(listener);
        sink
    }

    /// A sink for a free port that is not listening yet: mail to it fails until `resume`.
    pub fn down() -> Self {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        Self {
            addr,
            mails: Arc::default(),
            server: Arc::default(),
        }
    }

    pub fn resume(&self) {
        self.serve(TcpListener::bind(self.addr).unwrap());
    }

    pub fn stop(&self) {
        if let Some(task) = self.server.lock().unwrap().take() {
            task.abort();
        }
    }

    fn serve(&self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let mails = Arc::clone(&self.mails);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, peer)) = listener.accept().await {
                let handler = SinkHandler {
                    mails: Arc::clone(&mails),
                    ..Default::default()
                };
                connections.spawn(smtp_session(stream, peer.ip(), handler));
            }
        });
        *self.server.lock().unwrap() = Some(task);
    }
    pub fn all(&self) -> Vec<ReceivedMail> {
        self.mails.lock().unwrap().clone()
    }

    pub fn to(&self, email: &str) -> Vec<ReceivedMail> {
        self.all()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(email)))
            .collect()
    }

    /// Waits until `count` mails to `email` have arrived, and returns them.
    pub async fn wait_for(&self, email: &str, count: usize) -> Vec<ReceivedMail> {
        for _ in 0..500 {
            let mails = self.to(email);
            if mails.len() >= count {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "{count} mail(s) to {email} did not arrive; have {:?}",
            self.all().len()
        );
    }
}

async fn smtp_session(stream: tokio::net::TcpStream, ip: std::net::IpAddr, handler: SinkHandler) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
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

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub mail: MailSink,
    pub reset_queue: ResetQueue,
    pub audit: AuditLog,
    pub outbox: Outbox,
    server: tokio::task::JoinHandle<()>,
    pub storage: Arc<Storage>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Settings every test starts from; `overrides` replace or add to them.
pub fn test_vars(
    storage: &Storage,
    mail: &MailSink,
    overrides: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut vars = storage.vars.clone();
    for (k, v) in [
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        (
            "SECRET_KEY",
            "test-secret-key-that-is-long-enough-0123456789".to_owned(),
        ),
        ("SMTP_URL", format!("smtp://{}", mail.addr)),
        ("MAIL_FROM", "Identity <no-reply@identity.test>".to_owned()),
        ("PASSWORD_RESET_URL", RESET_URL.to_owned()),
        ("RATE_LIMIT_IP_PER_MINUTE", "100000".to_owned()),
        ("DATA_DIR", storage.dir.display().to_string()),
    ] {
        vars.insert(k.to_owned(), v);
    }
    for (k, v) in overrides {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    vars
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_with_mail(MailSink::start(), overrides).await
}

/// As `spawn_app_with`, mailing to `mail` (e.g. a sink that is down).
pub async fn spawn_app_with_mail(mail: MailSink, overrides: &[(&str, &str)]) -> TestApp {
    LazyLock::force(&TRACING);
    let storage = Arc::new(Storage::new().await);
    start(storage, mail, overrides).await
}

/// Starts a server on existing storage (a restart, or a second instance).
pub async fn start(storage: Arc<Storage>, mail: MailSink, overrides: &[(&str, &str)]) -> TestApp {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config =
        Config::from_map(&test_vars(&storage, &mail, overrides)).expect("valid test config");
    let clock = Arc::new(ManualClock::new());
    let app = App::build_with_clock(config, clock.clone())
        .await
        .expect("the app starts");
    let addr = app.local_addr();
    let reset_queue = app.reset_queue();
    let audit = app.audit();
    let outbox = app.outbox();
    let server = tokio::spawn(async move {
        let _ = app.run_until(std::future::pending()).await;
    });
    TestApp {
        url: format!("http://{addr}"),
        http: reqwest::Client::new(),
        clock,
        mail,
        reset_queue,
        audit,
        outbox,
        server,
        storage,
    }
}

/// Tokens of a signed-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
}

impl Session {
    pub fn from_payload(payload: &Value) -> Self {
        Self {
            access: payload["accessToken"]
                .as_str()
                .expect("accessToken")
                .to_owned(),
            refresh: payload["refreshToken"]
                .as_str()
                .expect("refreshToken")
                .to_owned(),
            user_id: payload["user"]["id"].as_str().expect("user.id").to_owned(),
        }
    }
}

pub const PAYLOAD: &str = "accessToken refreshToken tokenType expiresIn user { id email fullName isActive dateJoined lastLogin }";

impl TestApp {
    /// Another server on the same database, Redis prefix and mail sink.
    pub async fn sibling(&self, overrides: &[(&str, &str)]) -> TestApp {
        start(Arc::clone(&self.storage), self.mail.clone(), overrides).await
    }

    pub async fn graphql_as(&self, query: &str, variables: Value, bearer: Option<&str>) -> Value {
        let mut req = self
            .http
            .post(format!("{}/graphql", self.url))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("request sent");
        assert_eq!(
            resp.status(),
            200,
            "GraphQL over application/json answers 200"
        );
        resp.json().await.expect("a JSON body")
    }

    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_as(query, variables, None).await
    }

    pub async fn register_as(
        &self,
        email: &str,
        full_name: &str,
        password: &str,
        confirm: &str,
    ) -> Value {
        self.graphql(
            &format!("mutation($input: RegisterInput!) {{ register(input: $input) {{ {PAYLOAD} }} }}"),
            json!({ "input": { "email": email, "fullName": full_name, "password": password, "passwordConfirm": confirm } }),
        )
        .await
    }

    pub async fn register(&self, email: &str) -> Value {
        self.register_as(email, "Ada Lovelace", PASSWORD, PASSWORD)
            .await
    }

    /// Registers `email` and returns its session; panics if that fails.
    pub async fn signed_up(&self, email: &str) -> Session {
        let resp = self.register(email).await;
        Session::from_payload(data(&resp, "register"))
    }

    pub async fn login(&self, email: &str, password: &str) -> Value {
        self.graphql(
            &format!("mutation($input: LoginInput!) {{ login(input: $input) {{ {PAYLOAD} }} }}"),
            json!({ "input": { "email": email, "password": password } }),
        )
        .await
    }

    pub async fn me(&self, access: Option<&str>) -> Value {
        self.graphql_as(
            "{ me { id email fullName isActive dateJoined lastLogin } }",
            json!({}),
            access,
        )
        .await
    }

    pub async fn refresh(&self, refresh: &str) -> Value {
        self.graphql(
            &format!("mutation($t: String!) {{ refreshToken(refreshToken: $t) {{ {PAYLOAD} }} }}"),
            json!({ "t": refresh }),
        )
        .await
    }

    pub async fn logout(&self, refresh: &str) -> Value {
        self.graphql(
            "mutation($t: String!) { logout(refreshToken: $t) }",
            json!({ "t": refresh }),
        )
        .await
    }

    pub async fn request_reset(&self, email: &str) -> Value {
        self.graphql(
            "mutation($e: String!) { requestPasswordReset(email: $e) }",
            json!({ "e": email }),
        )
        .await
    }

    pub async fn reset_password(&self, token: &str, password: &str, confirm: &str) -> Value {
        self.graphql(
            "mutation($input: ResetPasswordInput!) { resetPassword(input: $input) }",
            json!({ "input": { "token": token, "newPassword": password, "newPasswordConfirm": confirm } }),
        )
        .await
    }

    /// Requests a reset for `email` and returns the token from the reset mail that
    /// arrives (other mails to the address may arrive in between).
    pub async fn reset_token_for(&self, email: &str) -> String {
        let is_reset = |m: &ReceivedMail| m.subject().starts_with("Reset your");
        let before = self.mail.to(email).iter().filter(|m| is_reset(m)).count();
        assert_eq!(
            self.request_reset(email).await["data"]["requestPasswordReset"],
            true
        );
        for _ in 0..500 {
            let resets: Vec<_> = self
                .mail
                .to(email)
                .into_iter()
                .filter(|m| is_reset(m))
                .collect();
            if resets.len() > before {
                return resets[before].reset_token();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no reset mail to {email}");
    }

    /// Waits until no background work (mail) is left running.
    pub async fn settle(&self) {
        assert!(
            self.reset_queue.flush(Duration::from_secs(10)).await,
            "reset requests handled"
        );
        assert!(
            self.outbox.settle(Duration::from_secs(10)).await,
            "outbox idle"
        );
        assert!(
            self.audit.flush(Duration::from_secs(10)).await,
            "audit events stored"
        );
    }

    /// POSTs a raw JSON body to /graphql with extra headers; the response as is.
    pub async fn post_raw(&self, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.http.post(format!("{}/graphql", self.url)).json(body);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.expect("request sent")
    }

    /// The audit trail as (event, user id, ip) rows, oldest first.
    pub async fn audit_events(&self) -> Vec<(String, Option<String>, Option<String>)> {
        self.settle().await;
        let db = self.db().await;
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT event, user_id, ip FROM audit_events ORDER BY occurred_at, id",
            ))
            .await
            .unwrap();
        let out = rows
            .iter()
            .map(|r| {
                let user: Option<Uuid> = r.try_get_by_index(1).unwrap();
                (
                    r.try_get_by_index::<String>(0).unwrap(),
                    user.map(|u| u.to_string()),
                    r.try_get_by_index::<Option<String>>(2).unwrap(),
                )
            })
            .collect();
        db.close().await.unwrap();
        out
    }

    /// A direct connection to this test's database, for what only an operator sees.
    pub async fn db(&self) -> DatabaseConnection {
        Database::connect(self.storage.vars["DATABASE_URL"].clone())
            .await
            .unwrap()
    }

    pub async fn sql(&self, statement: &str) {
        let db = self.db().await;
        db.execute_unprepared(statement).await.unwrap();
        db.close().await.unwrap();
    }

    pub async fn sql_string(&self, query: &str) -> Vec<String> {
        let db = self.db().await;
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                query,
            ))
            .await
            .unwrap();
        let out = rows
            .iter()
            .map(|r| r.try_get_by_index::<String>(0).unwrap())
            .collect();
        db.close().await.unwrap();
        out
    }

    pub async fn deactivate(&self, email: &str) {
        self.sql(&format!(
            "UPDATE users SET is_active = false WHERE email = '{email}'"
        ))
        .await;
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

/// `data.<field>` of a successful response; panics with the errors otherwise.
pub fn data<'a>(resp: &'a Value, field: &str) -> &'a Value {
    assert!(resp.get("errors").is_none(), "unexpected errors: {resp}");
    &resp["data"][field]
}

/// The first error's `extensions.code`.
pub fn code(resp: &Value) -> &str {
    resp["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {resp}"))
}

pub fn assert_code(resp: &Value, expected: &str) {
    assert_eq!(code(resp), expected, "{resp}");
}

/// `extensions.fields` of a BAD_USER_INPUT error.
pub fn fields(resp: &Value) -> &serde_json::Map<String, Value> {
    assert_code(resp, "BAD_USER_INPUT");
    resp["errors"][0]["extensions"]["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("no fields in {resp}"))
}

pub fn unique_email() -> String {
    format!(
        "user-{}@example.com",
        &Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A Redis server of the test's own, on a free port, that the test can stop and start.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("private Redis did not start");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A PostgreSQL server of the test's own (initdb in a temporary directory, a free
/// port), that the test can stop and start. PostgreSQL refuses to run as root, so as
/// root it runs as the `postgres` user.
pub struct PrivatePostgres {
    pub port: u16,
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("identity-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let pg = Self { port, dir, bin };
        if pg.as_root() {
            std::os::unix::fs::chown(&pg.dir, Some(101), Some(104)).ok();
            let status = std::process::Command::new("chown")
                .args(["postgres:postgres", pg.dir.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(status.success());
        }
        pg.run(
            "initdb",
            &[
                "-D",
                pg.data().as_str(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.start_server();
        pg
    }

    fn as_root(&self) -> bool {
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut cmd = if self.as_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    pub fn stop_server(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The service binary as a child process, with the test's storage, its output in a
/// file, as an operator would run it.
pub struct ServiceProcess {
    pub child: std::process::Child,
    pub url: String,
    pub log: std::path::PathBuf,
}

impl ServiceProcess {
    pub async fn start(storage: &Storage, mail: &MailSink, overrides: &[(&str, &str)]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bind = format!("127.0.0.1:{port}");
        let mut vars = test_vars(storage, mail, &[("BIND_ADDR", bind.as_str())]);
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let log = storage.dir.join(format!("service-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_identity"))
            .arg("serve")
            .env_clear()
            .envs(&vars)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let process = Self {
            child,
            url: format!("http://{bind}"),
            log,
        };
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{}/readyz", process.url)).send().await
                && r.status() == 200
            {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the service did not become ready: {}", process.output());
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM, as an orchestrator stopping a container does.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
