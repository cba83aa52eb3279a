//! Logs: JSON lines, each line of a request with its id and operation, never a secret.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_with_request_ids_and_never_hold_secrets() {
    let storage = Storage::new().await;
    let sink = MailSink::start();
    let mut service = ServiceProcess::start(
        &storage,
        &sink,
        &[("LOG_FORMAT", "json"), ("RUST_LOG", "trace")],
    )
    .await;
    let http = reqwest::Client::new();
    let call =
        |name: &'static str, query: &'static str, variables: Value, bearer: Option<String>| {
            let mut req = http
                .post(format!("{}/graphql", service.url))
                .header("x-request-id", format!("req-{name}"))
                .json(&json!({ "query": query, "variables": variables, "operationName": name }));
            if let Some(token) = bearer {
                req = req.bearer_auth(token);
            }
            async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
        };
    let email = unique_email();
    let reg = call(
        "SignUp",
        "mutation SignUp($i: RegisterInput!) { register(input: $i) { accessToken refreshToken } }",
        json!({ "i": { "email": email, "fullName": "Ada Lovelace", "password": PASSWORD, "passwordConfirm": PASSWORD } }),
        None,
    )
    .await;
    let access = reg["data"]["register"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = reg["data"]["register"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        "Me",
        "query Me { me { id } }",
        json!({}),
        Some(access.clone()),
    )
    .await;
    let renewed = call(
        "Renew",
        "mutation Renew($t: String!) { refreshToken(refreshToken: $t) { refreshToken } }",
        json!({ "t": refresh }),
        None,
    )
    .await;
    let next_refresh = renewed["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        "Forgot",
        "mutation Forgot($e: String!) { requestPasswordReset(email: $e) }",
        json!({ "e": email }),
        None,
    )
    .await;
    let mail = sink.wait_for(&email, 1).await.remove(0);
    let token = mail.reset_token();
    let link = format!("https://app.test/reset-password?token={token}");
    let reset = call(
        "Reset",
        "mutation Reset($i: ResetPasswordInput!) { resetPassword(input: $i) }",
        json!({ "i": { "token": token, "newPassword": NEW_PASSWORD, "newPasswordConfirm": NEW_PASSWORD } }),
        None,
    )
    .await;
    assert_eq!(reset["data"]["resetPassword"], true, "{reset}");
    let signed_in = call(
        "SignIn",
        "mutation SignIn($i: LoginInput!) { login(input: $i) { tokenType accessToken } }",
        json!({ "i": { "email": email, "password": NEW_PASSWORD } }),
        None,
    )
    .await;
    let fresh = signed_in["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let verify_token = sink.wait_for_verifications(&email, 1).await[0].verify_token();
    let verified = call(
        "Verify",
        "mutation Verify($t: String!) { verifyEmail(token: $t) }",
        json!({ "t": verify_token }),
        None,
    )
    .await;
    assert_eq!(verified["data"]["verifyEmail"], true, "{verified}");
    let new_email = unique_email();
    call(
        "ChangeEmail",
        "mutation ChangeEmail($e: String!) { requestEmailChange(newEmail: $e) }",
        json!({ "e": new_email }),
        Some(fresh.clone()),
    )
    .await;
    let change_token = sink.wait_for(&new_email, 1).await[0].link_token(EMAIL_CHANGE_URL);
    let changed = call(
        "ConfirmEmail",
        "mutation ConfirmEmail($t: String!) { confirmEmailChange(token: $t) }",
        json!({ "t": change_token }),
        Some(fresh.clone()),
    )
    .await;
    assert_eq!(changed["data"]["confirmEmailChange"], true, "{changed}");
    let export = call(
        "Export",
        "query Export { myData }",
        json!({}),
        Some(fresh.clone()),
    )
    .await;
    assert!(export["data"]["myData"].is_object(), "{export}");
    let leave = call(
        "Leave",
        "mutation Leave($c: String!) { requestAccountDeletion(confirm: $c) }",
        json!({ "c": "DELETE" }),
        Some(fresh.clone()),
    )
    .await;
    assert!(
        leave["data"]["requestAccountDeletion"].is_string(),
        "{leave}"
    );
    let notice = sink
        .wait_for(&new_email, 4)
        .await
        .into_iter()
        .find(|m| m.subject().contains("will be deleted"))
        .expect("the deletion mail");
    let cancel_token = notice.link_token(DELETION_CANCEL_URL);
    let cancel_link = DELETION_CANCEL_URL.replace("{token}", &cancel_token);
    let stay = call(
        "Stay",
        "mutation Stay($t: String!) { cancelAccountDeletion(token: $t) }",
        json!({ "t": cancel_token }),
        None,
    )
    .await;
    assert_eq!(stay["data"]["cancelAccountDeletion"], true, "{stay}");
    service.terminate();
    service.exited(Duration::from_secs(20)).await;

    let output = service.output();
    for secret in [
        PASSWORD,
        NEW_PASSWORD,
        &access,
        &refresh,
        &next_refresh,
        &token,
        &link,
        &fresh,
        &verify_token,
        &change_token,
        &cancel_token,
        &cancel_link,
    ] {
        assert!(!output.contains(secret), "a secret appears in the logs");
    }
    let mut request_lines = 0;
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            entry.get("level").is_some() && entry.get("timestamp").is_some(),
            "{line}"
        );
        let Some(spans) = entry.get("spans").and_then(Value::as_array) else {
            continue;
        };
        let Some(request) = spans.iter().find(|s| s["name"] == "request") else {
            continue;
        };
        request_lines += 1;
        let id = request["request_id"].as_str().unwrap_or_default();
        assert!(
            !id.is_empty(),
            "request id on every line of a request: {line}"
        );
        if request["path"] == "/graphql" {
            // Ours: the id the client sent, and the operation it named.
            assert!(
                id.starts_with("req-"),
                "the client's request id is kept: {line}"
            );
            let expected = id.trim_start_matches("req-");
            assert_eq!(
                request["operation"], expected,
                "operation name on every line: {line}"
            );
        }
    }
    assert!(request_lines > 10, "{request_lines} lines inside requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warning_is_one_line_even_with_backtraces_on() {
    let storage = Storage::new().await;
    let sink = MailSink::start();
    let service = ServiceProcess::start(&storage, &sink, &[("RUST_BACKTRACE", "1")]).await;
    // The outbox worker's next round cannot claim rows: a warning with an error chain.
    let db = sea_orm::Database::connect(&storage.vars["DATABASE_URL"])
        .await
        .unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(&db, "DROP TABLE outbox")
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the outbox worker warns",
        || async {
            if service.output().contains("cannot claim outbox rows") {
                Ok(())
            } else {
                Err(service.output())
            }
        },
    )
    .await;
    let line = one_line_warning(service, "cannot claim outbox rows").await;
    assert!(
        line.contains("no such table") || line.contains("does not exist"),
        "the error chain is on the line: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn a_redis_warning_is_one_line_even_with_backtraces_on() {
    // The embedded default has no Redis to lose.
    require_postgres();
    let storage = Storage::new().await;
    let sink = MailSink::start();
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let service = ServiceProcess::start(
        &storage,
        &sink,
        &[("RUST_BACKTRACE", "1"), ("REDIS_URL", url.as_str())],
    )
    .await;
    let http = reqwest::Client::new();
    let graphql = |query: &'static str, variables: Value, bearer: Option<String>| {
        let mut req = http
            .post(format!("{}/graphql", service.url))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let reg = graphql(
        "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
        json!({ "i": { "email": unique_email(), "fullName": "Ada Lovelace", "password": PASSWORD, "passwordConfirm": PASSWORD } }),
        None,
    )
    .await;
    let access = reg["data"]["register"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    // Redis goes: `me` asks the database instead, and says why in a warning.
    redis.stop();
    eventually(
        Duration::from_secs(10),
        "the revocation check warns",
        || async {
            let me = graphql("{ me { id } }", json!({}), Some(access.clone())).await;
            assert!(me["data"]["me"]["id"].is_string(), "{me}");
            if service.output().contains("revocation set unreachable") {
                Ok(())
            } else {
                Err(service.output())
            }
        },
    )
    .await;
    let line = one_line_warning(service, "revocation set unreachable").await;
    assert!(
        line.contains("Redis"),
        "the error chain is on the line: {line}"
    );
}

/// Stops the service; the first line of its output that contains `needle`, after
/// checking that no warning spilled over several lines (a backtrace, a cause list).
async fn one_line_warning(mut service: ServiceProcess, needle: &str) -> String {
    service.terminate();
    service.exited(Duration::from_secs(20)).await;
    let output = service.output();
    for continuation in ["Stack backtrace", "Caused by", "backtrace::", "   0: "] {
        assert!(
            !output.contains(continuation),
            "{continuation:?} in the log, a warning over several lines:\n{output}"
        );
    }
    output
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in: {output}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_ends_with_one_line_to_click_and_keeps_the_settings_for_check_config() {
    let storage = Storage::new().await;
    let sink = MailSink::start();
    let mut service = ServiceProcess::start(
        &storage,
        &sink,
        &[("RUST_LOG", "info"), ("GRAPHIQL_ENABLED", "true")],
    )
    .await;
    service.terminate();
    service.exited(Duration::from_secs(20)).await;
    let output = service.output();
    let port = service.url.rsplit(':').next().unwrap().to_owned();
    let click = format!("GraphiQL: http://127.0.0.1:{port}/graphql");
    assert!(output.contains(&click), "{click} in:\n{output}");
    assert!(
        !output.contains("ACCESS_TOKEN_TTL="),
        "the settings summary is check-config's (or DEBUG):\n{output}"
    );
}
