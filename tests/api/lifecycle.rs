//! The service's life: instances starting together, a graceful stop on SIGTERM, and
//! operations that outlive their client.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_on_a_fresh_database_all_come_up() {
    let storage = std::sync::Arc::new(Storage::new().await);
    let sink = MailSink::start();
    let (a, b, c) = tokio::join!(
        start(storage.clone(), sink.clone(), &[]),
        start(storage.clone(), sink.clone(), &[]),
        start(storage.clone(), sink.clone(), &[]),
    );
    let email = unique_email();
    a.signed_up(&email).await;
    data(&b.login(&email, PASSWORD).await, "login");
    data(&c.login(&email, PASSWORD).await, "login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_request_finish_then_stops() {
    let storage = Storage::new().await;
    let sink = MailSink::start();
    // Hashing made slow on purpose (over a second per login) so a request is in
    // flight when the signal comes.
    let mut service = ServiceProcess::start(
        &storage,
        &sink,
        &[
            ("ARGON2_MEMORY_KIB", "131072"),
            ("ARGON2_ITERATIONS", "6"),
            // On a loaded machine that login can take far longer than a second; the
            // request timeout and the length of the grace period are not what this
            // test is about.
            ("HTTP_REQUEST_TIMEOUT", "120"),
            ("SHUTDOWN_TIMEOUT", "120"),
            ("LOG_FORMAT", "json"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let url = service.url.clone();
    let idle = service.thread_cpu_ticks("argon2-");
    let slow = tokio::spawn({
        let http = http.clone();
        let url = url.clone();
        async move {
            http.post(format!("{url}/graphql"))
                .json(&json!({ "query": "mutation { login(input: {email: \"nobody@example.com\", password: \"whatever it is\"}) { tokenType } }" }))
                .send()
                .await
        }
    });
    // Once the request is being served, stop the server: its hashing threads are at
    // work (nothing else hashes in this test); 50 ms of hashing done, a second to go.
    eventually(Duration::from_secs(10), "the login is being hashed", || {
        std::future::ready((service.thread_cpu_ticks("argon2-") >= idle + 5).then_some(()))
    })
    .await;
    service.terminate();
    let resp = slow
        .await
        .unwrap()
        .expect("the in-flight request gets its answer");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_code(&body, "INVALID_CREDENTIALS");

    let status = service.exited(Duration::from_secs(150)).await;
    assert!(status.success(), "exit status {status:?}");
    assert!(
        http.get(format!("{url}/healthz")).send().await.is_err(),
        "no longer accepting"
    );
    let output = service.output();
    assert!(
        output.contains("shutdown signal received") && output.contains("stopped"),
        "{output}"
    );
}

/// Sends `GET /healthz` on `stream` and reads the answer's head (the body is short).
async fn healthz_on(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: identity.test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_a_kept_alive_connection_gets_its_next_answer_then_closes() {
    // What a proxy that keeps connections to the instance open (deploy/nginx.conf)
    // relies on: a request it sends on such a connection after the stop signal is
    // answered, with `Connection: close`, rather than lost in a closing socket.
    use tokio::io::AsyncReadExt;
    let storage = Storage::new().await;
    let sink = MailSink::start();
    let mut service = ServiceProcess::start(&storage, &sink, &[]).await;
    let mut kept = tokio::net::TcpStream::connect(&service.addr).await.unwrap();
    let first = healthz_on(&mut kept).await;
    assert!(first.starts_with("http/1.1 200"), "{first}");
    assert!(!first.contains("connection: close"), "{first}");

    service.terminate();
    eventually(
        Duration::from_secs(10),
        "new connections are refused",
        || async {
            tokio::net::TcpStream::connect(&service.addr)
                .await
                .err()
                .map(|_| ())
        },
    )
    .await;
    let second = healthz_on(&mut kept).await;
    assert!(second.starts_with("http/1.1 200"), "{second}");
    assert!(second.contains("connection: close"), "{second}");
    // Then the service closes it, and exits.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), kept.read_to_end(&mut rest))
        .await
        .expect("the connection is closed")
        .unwrap();
    let status = service.exited(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_completes_even_if_the_client_goes_away() {
    // Hashing made slow (over a second), so the client can leave mid-operation.
    // On a loaded machine each hash can take far longer; the request timeout is not
    // what this test is about.
    let app = spawn_app_with(&[
        ("ARGON2_MEMORY_KIB", "131072"),
        ("ARGON2_ITERATIONS", "6"),
        ("HTTP_REQUEST_TIMEOUT", "120"),
    ])
    .await;
    let email = unique_email();
    app.signed_up(&email).await;
    let token = app.reset_token_for(&email).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let gone = impatient
        .post(format!("{}/graphql", app.url))
        .json(&json!({ "query": "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) }",
                       "variables": { "i": { "token": token, "newPassword": NEW_PASSWORD, "newPasswordConfirm": NEW_PASSWORD } } }))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up before the answer");
    // The reset ran to its end regardless: the new password works, the token is spent.
    eventually(
        Duration::from_secs(60),
        "the reset completes: the new password works",
        || async {
            let resp = app.login(&email, NEW_PASSWORD).await;
            match resp.get("errors") {
                None => Ok(()),
                Some(_) => Err(resp.to_string()),
            }
        },
    )
    .await;
    assert_code(
        &app.reset_password(&token, "another fine passphrase", "another fine passphrase")
            .await,
        "INVALID_TOKEN",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn a_resend_answered_before_sigterm_still_gets_its_mail() {
    // The resend's work (quota in Redis, token, mail queued) happens after its answer;
    // an instance told to stop must finish it, not drop it. A Redis of the test's own
    // holds that work while the stop begins.
    require_postgres();
    let storage = Storage::new().await;
    let sink = MailSink::start();
    let redis = PrivateRedis::start().await;
    let url = redis.url();
    // Per-IP budgets in process: the request itself does not wait on Redis.
    let overrides = [
        ("REDIS_URL", url.as_str()),
        ("RATE_LIMIT_IP_SHARED", "false"),
    ];
    let mut service = ServiceProcess::start(&storage, &sink, &overrides).await;
    // No connection kept alive: the stop has no idle connection to wait for, so it
    // runs at once, while the resend still waits on Redis.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let graphql = format!("{}/graphql", service.url);
    let post = |query: &'static str, variables: Value| {
        let request = http
            .post(&graphql)
            .json(&json!({ "query": query, "variables": variables }));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let email = unique_email();
    let registered = post(
        "mutation($input: RegisterInput!) { register(input: $input) { tokenType } }",
        json!({ "input": { "email": email, "fullName": "Ada Lovelace", "password": PASSWORD, "passwordConfirm": PASSWORD } }),
    )
    .await;
    data(&registered, "register");
    sink.wait_for_verifications(&email, 1).await;

    assert_eq!(redis.cli(&["CLIENT", "PAUSE", "3000", "ALL"]), "OK");
    let resent = post(
        "mutation($email: String!) { resendVerificationEmail(email: $email) }",
        json!({ "email": email }),
    )
    .await;
    assert_eq!(data(&resent, "resendVerificationEmail"), true);
    service.terminate();
    let status = service.exited(Duration::from_secs(60)).await;
    assert!(status.success(), "exit status {status:?}");

    // Its mail was queued before the instance stopped: delivered then, or by the next
    // (started once the pause is over; a PING waits for it).
    assert_eq!(redis.cli(&["PING"]), "PONG");
    let _next = ServiceProcess::start(&storage, &sink, &overrides).await;
    sink.wait_for_verifications(&email, 2).await;
}
