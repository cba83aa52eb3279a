//! `spawn_app()`: the real service on a random port, with its own storage, a real SMTP
//! sink and a clock the test can move forward; and the GraphQL calls a client makes.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, LazyLock},
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

use super::{
    assert::data,
    jwt::SECRET,
    mail_sink::{MailSink, ReceivedMail},
    storage::Storage,
    wait::eventually,
};

pub(crate) const PASSWORD: &str = "correct horse battery";
pub(crate) const NEW_PASSWORD: &str = "tangerine submarine 42";
pub(crate) const RESET_URL: &str = "https://app.test/reset-password?token={token}";
pub(crate) const VERIFY_URL: &str = "https://app.test/verify-email?token={token}";
pub(crate) const EMAIL_CHANGE_URL: &str = "https://app.test/confirm-email?token={token}";
pub(crate) const DELETION_CANCEL_URL: &str = "https://app.test/cancel-deletion?token={token}";

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = identity::telemetry::init(identity::config::LogFormat::Pretty);
    }
});

/// The service's settings. `TEST_*` variables are the harness's own, never overrides.
static KNOWN_VARIABLES: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| identity::config::known_variables().into_iter().collect());

/// Panics naming the first override that is neither a setting of the service nor one
/// of `also`: a misspelt name would otherwise be ignored, and the test would run with
/// the default.
pub(crate) fn check_overrides(overrides: &[(&str, &str)], also: &[&str]) {
    for (name, _) in overrides {
        assert!(
            KNOWN_VARIABLES.contains(name)
                || also.contains(name)
                || identity::config::is_provider_variable(name),
            "unknown setting {name:?} in a test's overrides: not a variable the service \
             reads (identity::config::known_variables()); a typo?"
        );
    }
}

pub(crate) struct TestApp {
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

/// Settings every test starts from; `overrides` replace or add to them (and must be
/// settings: see `check_overrides`).
pub(crate) fn test_vars(
    storage: &Storage,
    mail: &MailSink,
    overrides: &[(&str, &str)],
) -> HashMap<String, String> {
    check_overrides(overrides, &[]);
    let mut vars = storage.vars.clone();
    for (k, v) in [
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        ("SECRET_KEY", SECRET.to_owned()),
        ("SMTP_URL", format!("smtp://{}", mail.addr)),
        ("MAIL_FROM", "Identity <no-reply@identity.test>".to_owned()),
        ("PASSWORD_RESET_URL", RESET_URL.to_owned()),
        ("EMAIL_VERIFY_URL", VERIFY_URL.to_owned()),
        ("EMAIL_CHANGE_URL", EMAIL_CHANGE_URL.to_owned()),
        (
            "ACCOUNT_DELETION_CANCEL_URL",
            DELETION_CANCEL_URL.to_owned(),
        ),
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

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub(crate) async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_with_mail(MailSink::start(), overrides).await
}

/// As `spawn_app_with`, mailing to `mail` (e.g. a sink that is down).
pub(crate) async fn spawn_app_with_mail(mail: MailSink, overrides: &[(&str, &str)]) -> TestApp {
    LazyLock::force(&TRACING);
    // Before a database is made for it.
    check_overrides(overrides, &[]);
    let storage = Arc::new(Storage::new().await);
    start(storage, mail, overrides).await
}

/// Starts a server on existing storage (a restart, or a second instance).
pub(crate) async fn start(
    storage: Arc<Storage>,
    mail: MailSink,
    overrides: &[(&str, &str)],
) -> TestApp {
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

pub(crate) fn unique_email() -> String {
    format!(
        "user-{}@example.com",
        &Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Tokens of a signed-in session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
}

impl Session {
    pub(crate) fn from_payload(payload: &Value) -> Self {
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

pub(crate) const PAYLOAD: &str = "accessToken refreshToken tokenType expiresIn user { id email fullName isActive dateJoined lastLogin }";

impl TestApp {
    /// Another server on the same database, Redis prefix and mail sink.
    pub(crate) async fn sibling(&self, overrides: &[(&str, &str)]) -> TestApp {
        start(Arc::clone(&self.storage), self.mail.clone(), overrides).await
    }

    pub(crate) async fn graphql_as(
        &self,
        query: &str,
        variables: Value,
        bearer: Option<&str>,
    ) -> Value {
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

    pub(crate) async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_as(query, variables, None).await
    }

    pub(crate) async fn register_as(
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

    pub(crate) async fn register(&self, email: &str) -> Value {
        self.register_as(email, "Ada Lovelace", PASSWORD, PASSWORD)
            .await
    }

    /// Registers `email` and returns its session; panics if that fails.
    pub(crate) async fn signed_up(&self, email: &str) -> Session {
        let resp = self.register(email).await;
        Session::from_payload(data(&resp, "register"))
    }

    pub(crate) async fn login(&self, email: &str, password: &str) -> Value {
        self.graphql(
            &format!("mutation($input: LoginInput!) {{ login(input: $input) {{ {PAYLOAD} }} }}"),
            json!({ "input": { "email": email, "password": password } }),
        )
        .await
    }

    pub(crate) async fn me(&self, access: Option<&str>) -> Value {
        self.graphql_as(
            "{ me { id email fullName isActive dateJoined lastLogin } }",
            json!({}),
            access,
        )
        .await
    }

    pub(crate) async fn refresh(&self, refresh: &str) -> Value {
        self.graphql(
            &format!("mutation($t: String!) {{ refreshToken(refreshToken: $t) {{ {PAYLOAD} }} }}"),
            json!({ "t": refresh }),
        )
        .await
    }

    pub(crate) async fn logout(&self, refresh: &str) -> Value {
        self.graphql(
            "mutation($t: String!) { logout(refreshToken: $t) }",
            json!({ "t": refresh }),
        )
        .await
    }

    pub(crate) async fn request_reset(&self, email: &str) -> Value {
        self.graphql(
            "mutation($e: String!) { requestPasswordReset(email: $e) }",
            json!({ "e": email }),
        )
        .await
    }

    pub(crate) async fn reset_password(&self, token: &str, password: &str, confirm: &str) -> Value {
        self.graphql(
            "mutation($input: ResetPasswordInput!) { resetPassword(input: $input) }",
            json!({ "input": { "token": token, "newPassword": password, "newPasswordConfirm": confirm } }),
        )
        .await
    }

    /// Requests a reset for `email` and returns the token from the reset mail that
    /// arrives (other mails to the address may arrive in between).
    pub(crate) async fn reset_token_for(&self, email: &str) -> String {
        let resets = || -> Vec<ReceivedMail> {
            self.mail
                .to(email)
                .into_iter()
                .filter(ReceivedMail::is_reset)
                .collect()
        };
        let before = resets().len();
        assert_eq!(
            self.request_reset(email).await["data"]["requestPasswordReset"],
            true
        );
        eventually(
            Duration::from_secs(10),
            &format!("a reset mail to {email}"),
            || async {
                let mut resets = resets();
                if resets.len() > before {
                    Ok(resets.swap_remove(before).reset_token())
                } else {
                    Err(format!("{} reset mail(s) to {email}", resets.len()))
                }
            },
        )
        .await
    }

    /// Waits until no background work (mail) is left running.
    pub(crate) async fn settle(&self) {
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

    /// Polls `/readyz` until it answers 200, and returns that body; panics with the
    /// last answer if that takes longer than `limit`.
    pub(crate) async fn wait_ready(&self, limit: Duration) -> Value {
        let url = format!("{}/readyz", self.url);
        eventually(limit, "/readyz answers 200", || async {
            let resp = self.http.get(&url).send().await.unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            if status == 200 {
                Ok(body)
            } else {
                Err(format!("{status} {body}"))
            }
        })
        .await
    }

    /// A fresh `/readyz` answer (the cached one is aged out first): status and body.
    pub(crate) async fn readiness(&self) -> (u16, Value) {
        self.advance(2);
        let resp = self.get("/readyz").await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// Waits until `/readyz` shows `check` with `status` (`ok`, `degraded`, `error`),
    /// and returns the HTTP status and body of that answer.
    pub(crate) async fn wait_check(
        &self,
        check: &str,
        status: &str,
        limit: Duration,
    ) -> (u16, Value) {
        eventually(
            limit,
            &format!("/readyz shows {check} {status}"),
            || async {
                let (code, body) = self.readiness().await;
                if body["checks"][check]["status"] == status {
                    Ok((code, body))
                } else {
                    Err(format!("{code} {body}"))
                }
            },
        )
        .await
    }

    /// Whether the server answers revocation checks from memory (it believes it has
    /// heard every revocation): `identity_local_state_trusted` is 1.
    pub(crate) async fn trusts_its_memory(&self) -> Option<()> {
        self.metrics()
            .await
            .lines()
            .any(|l| l == "identity_local_state_trusted 1")
            .then_some(())
    }

    /// Waits until the server trusts its memory of revocations.
    pub(crate) async fn wait_trusting(&self) {
        eventually(
            Duration::from_secs(10),
            "the instance trusts its memory",
            || self.trusts_its_memory(),
        )
        .await;
    }

    /// `GET path` on this server (e.g. `"/readyz"`).
    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// `GET path`, checked to answer 200 with a `Content-Type` starting with
    /// `content_type`.
    pub(crate) async fn get_ok(&self, path: &str, content_type: &str) -> reqwest::Response {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        let got = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(got.starts_with(content_type), "GET {path}: {got}");
        resp
    }

    /// The text of `/metrics` (checked to be the Prometheus text format).
    pub(crate) async fn metrics(&self) -> String {
        self.get_ok("/metrics", "text/plain")
            .await
            .text()
            .await
            .unwrap()
    }

    /// POSTs a raw JSON body to /graphql with extra headers; the response as is.
    pub(crate) async fn post_raw(
        &self,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.http.post(format!("{}/graphql", self.url)).json(body);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.expect("request sent")
    }

    /// A CORS preflight for a POST to `/graphql` from `origin` that will send
    /// `request_headers` (comma-separated).
    pub(crate) async fn preflight(&self, origin: &str, request_headers: &str) -> reqwest::Response {
        self.http
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", self.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", request_headers)
            .send()
            .await
            .expect("preflight sent")
    }

    /// The audit trail as (event, user id, ip) rows, oldest first.
    pub(crate) async fn audit_events(&self) -> Vec<(String, Option<String>, Option<String>)> {
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
    pub(crate) async fn db(&self) -> DatabaseConnection {
        Database::connect(self.storage.vars["DATABASE_URL"].clone())
            .await
            .unwrap()
    }

    pub(crate) async fn sql(&self, statement: &str) {
        let db = self.db().await;
        db.execute_unprepared(statement).await.unwrap();
        db.close().await.unwrap();
    }

    pub(crate) async fn sql_string(&self, query: &str) -> Vec<String> {
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

    pub(crate) async fn deactivate(&self, email: &str) {
        self.sql(&format!(
            "UPDATE users SET is_active = false WHERE email = '{email}'"
        ))
        .await;
    }

    pub(crate) fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// Stops the server's clock: from now on time moves only with `advance`.
    pub(crate) fn freeze_clock(&self) {
        self.clock.freeze();
    }
}
