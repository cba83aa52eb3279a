//! The other parties of social login: a real OpenID provider on loopback (the npm
//! package oauth2-mock-server, driven by `tests/oidc/provider.mjs`), and a stub of
//! GitHub's OAuth2 endpoints and its two REST endpoints.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Lines, Write},
    path::PathBuf,
    process::{Child, ChildStdin, ChildStdout, Stdio},
    sync::{Arc, Mutex, OnceLock},
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Installs the provider's npm packages once (from the lockfile), if they are missing.
fn ensure_installed() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let dir = provider_dir();
        if dir.join("node_modules/oauth2-mock-server").is_dir() {
            return;
        }
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm on PATH: the social login tests run a real OpenID provider");
        assert!(status.success(), "npm ci in tests/oidc failed");
    });
}

/// A running OpenID provider. Its id_token claims are set with [`Self::next`]. It
/// answers on its pipes at once, so they are read without an async runtime.
pub(crate) struct OidcProvider {
    pub issuer: String,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl OidcProvider {
    pub(crate) async fn start() -> Self {
        ensure_installed();
        let mut child = std::process::Command::new("node")
            .arg("provider.mjs")
            .current_dir(provider_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node on PATH");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = stdout
            .next()
            .expect("the provider says where it listens")
            .unwrap();
        let ready: Value = serde_json::from_str(&ready).unwrap();
        Self {
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
            child,
            stdin,
            stdout,
        }
    }

    /// The claims of the next id_tokens, and how to spoil them.
    pub(crate) async fn next(&mut self, claims: Value, tamper: Value) {
        let line = format!("{}\n", json!({ "claims": claims, "tamper": tamper }));
        self.stdin.write_all(line.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
        let answer = self.stdout.next().map(Result::unwrap);
        assert_eq!(answer.as_deref(), Some("ok"));
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the GitHub stub says about the person signing in.
#[derive(Clone, Default)]
pub(crate) struct GithubUser {
    pub id: u64,
    pub name: Option<String>,
    /// (address, primary, verified)
    pub emails: Vec<(String, bool, bool)>,
}

#[derive(Default)]
struct GithubState {
    user: GithubUser,
    /// Issued codes and their PKCE challenge.
    codes: HashMap<String, String>,
}

/// GitHub's authorize and token endpoints and `/user`, `/user/emails`, on loopback.
pub(crate) struct GithubStub {
    pub url: String,
    state: Arc<Mutex<GithubState>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for GithubStub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = Arc<Mutex<GithubState>>;

async fn authorize(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (Some(redirect), Some(st), Some(challenge)) = (
        q.get("redirect_uri"),
        q.get("state"),
        q.get("code_challenge"),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri, state and code_challenge required",
        )
            .into_response();
    };
    if q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return (StatusCode::BAD_REQUEST, "S256 only").into_response();
    }
    let code = format!("gh-{}", uuid::Uuid::new_v4());
    state
        .lock()
        .unwrap()
        .codes
        .insert(code.clone(), challenge.clone());
    Redirect::to(&format!("{redirect}?code={code}&state={st}")).into_response()
}

async fn token(State(state): State<Shared>, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let challenge = form
        .get("code")
        .and_then(|code| state.lock().unwrap().codes.remove(code));
    let verifier_ok = match (challenge, form.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            use base64::Engine;
            use sha2::Digest;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(verifier.as_bytes()))
                == challenge
        }
        _ => false,
    };
    if !verifier_ok {
        return Json(json!({ "error": "bad_verification_code" })).into_response();
    }
    Json(json!({ "access_token": "gho_stub", "token_type": "bearer", "scope": "read:user,user:email" }))
        .into_response()
}

async fn user(State(state): State<Shared>) -> Response {
    let user = state.lock().unwrap().user.clone();
    Json(json!({ "id": user.id, "login": format!("user{}", user.id), "name": user.name }))
        .into_response()
}

async fn emails(State(state): State<Shared>) -> Response {
    let user = state.lock().unwrap().user.clone();
    let list: Vec<Value> = user
        .emails
        .iter()
        .map(|(email, primary, verified)| {
            json!({ "email": email, "primary": primary, "verified": verified, "visibility": null })
        })
        .collect();
    Json(Value::Array(list)).into_response()
}

impl GithubStub {
    pub(crate) async fn start() -> Self {
        let state: Shared = Arc::default();
        let router = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(token))
            .route("/api/user", get(user))
            .route("/api/user/emails", get(emails))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { url, state, server }
    }

    pub(crate) fn set_user(&self, user: GithubUser) {
        self.state.lock().unwrap().user = user;
    }
}
