//! Cookie mode for SPAs: the refresh token in an HttpOnly cookie instead of the body,
//! `refreshToken` and `logout` falling back to it behind the CSRF checks, credentialed
//! CORS for listed origins only, and bearer mode unchanged.

use reqwest::{Response, header::HeaderMap};
use serde_json::{Value, json};

use crate::support::*;

const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }";
const REFRESH: &str = "mutation { refreshToken { accessToken refreshToken } }";
const LOGOUT: &str = "mutation { logout }";

const COOKIE_MODE: (&str, &str) = ("x-auth-transport", "cookie");
const CSRF: (&str, &str) = ("x-csrf-protection", "1");

/// The value of the cookie `name` a response sets, and the whole `Set-Cookie` line.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<(String, String)> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|line| line.starts_with(&format!("{name}=")))
        .map(|line| {
            let value = line
                .split(';')
                .next()
                .and_then(|pair| pair.split_once('='))
                .map(|(_, v)| v.to_owned())
                .unwrap_or_default();
            (value, line.to_owned())
        })
}

async fn call(app: &TestApp, query: &str, variables: Value, headers: &[(&str, &str)]) -> Response {
    app.post_raw(&json!({ "query": query, "variables": variables }), headers)
        .await
}

/// Logs in in cookie mode; returns the refresh cookie's value.
async fn cookie_login(app: &TestApp, email: &str) -> String {
    let resp = call(
        app,
        LOGIN,
        json!({ "i": { "email": email, "password": PASSWORD } }),
        &[COOKIE_MODE],
    )
    .await;
    let (cookie, _) = set_cookie(resp.headers(), "refresh_token").expect("the refresh cookie");
    cookie
}

#[tokio::test]
async fn cookie_mode_keeps_the_refresh_token_out_of_the_body() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    let resp = call(
        &app,
        LOGIN,
        json!({ "i": { "email": email, "password": PASSWORD } }),
        &[COOKIE_MODE],
    )
    .await;
    let headers = resp.headers().clone();
    let body: Value = resp.json().await.unwrap();
    let login = data(&body, "login");
    assert!(login["refreshToken"].is_null(), "{body}");
    assert!(login["accessToken"].is_string());
    let (cookie, line) = set_cookie(&headers, "refresh_token").expect("the refresh cookie");
    assert_eq!(cookie.len(), 43, "a 256-bit token: {line}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=604800"] {
        assert!(line.contains(attribute), "{attribute} in {line}");
    }
    assert!(!line.contains("Secure"), "http PUBLIC_URL: {line}");

    // Bearer mode is as before: the token in the body, no cookie.
    let resp = call(
        &app,
        LOGIN,
        json!({ "i": { "email": email, "password": PASSWORD } }),
        &[],
    )
    .await;
    assert!(resp.headers().get("set-cookie").is_none());
    let body: Value = resp.json().await.unwrap();
    assert!(data(&body, "login")["refreshToken"].is_string());
}

#[tokio::test]
async fn refresh_and_logout_use_the_cookie_behind_the_csrf_checks() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    let cookie = cookie_login(&app, &email).await;
    let jar = format!("refresh_token={cookie}");

    // Without the CSRF header, or from a foreign origin: 403, nothing used.
    for headers in [
        vec![("cookie", jar.as_str())],
        vec![
            ("cookie", jar.as_str()),
            CSRF,
            ("origin", "https://evil.example"),
        ],
    ] {
        let resp = call(&app, REFRESH, json!({}), &headers).await;
        assert_eq!(resp.status(), 403);
        let body: Value = resp.json().await.unwrap();
        assert_code(&body, "CSRF_REJECTED");
    }
    let resp = call(&app, LOGOUT, json!({}), &[("cookie", jar.as_str())]).await;
    assert_eq!(resp.status(), 403, "logout too");

    // With it (and the service's own origin): a new access token, the successor cookie.
    let own = app.url.clone();
    let resp = call(
        &app,
        REFRESH,
        json!({}),
        &[("cookie", jar.as_str()), CSRF, ("origin", own.as_str())],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let (next, _) = set_cookie(resp.headers(), "refresh_token").expect("the successor");
    assert_ne!(next, cookie);
    let body: Value = resp.json().await.unwrap();
    assert!(
        data(&body, "refreshToken")["refreshToken"].is_null(),
        "{body}"
    );
    let access = data(&body, "refreshToken")["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    data(&app.me(Some(&access)).await, "me");

    // Logout ends the session and clears the cookie.
    let next_jar = format!("refresh_token={next}");
    let resp = call(
        &app,
        LOGOUT,
        json!({}),
        &[("cookie", next_jar.as_str()), CSRF],
    )
    .await;
    let (cleared, line) = set_cookie(resp.headers(), "refresh_token").expect("a clearing cookie");
    assert!(cleared.is_empty() && line.contains("Max-Age=0"), "{line}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(data(&body, "logout"), true);
    let resp = call(
        &app,
        REFRESH,
        json!({}),
        &[("cookie", next_jar.as_str()), CSRF],
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    assert_code(&body, "INVALID_TOKEN");
    assert_code(&app.me(Some(&access)).await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn tabs_refreshing_with_one_cookie_at_once_converge_on_one_successor() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    let cookie = cookie_login(&app, &email).await;
    let jar = format!("refresh_token={cookie}");
    let headers = [("cookie", jar.as_str()), CSRF];
    let (a, b) = tokio::join!(
        call(&app, REFRESH, json!({}), &headers),
        call(&app, REFRESH, json!({}), &headers),
    );
    let (a, _) = set_cookie(a.headers(), "refresh_token").expect("tab A's cookie");
    let (b, _) = set_cookie(b.headers(), "refresh_token").expect("tab B's cookie");
    assert_eq!(a, b, "one successor for both tabs");
    let jar = format!("refresh_token={a}");
    let resp = call(&app, REFRESH, json!({}), &[("cookie", jar.as_str()), CSRF]).await;
    let body: Value = resp.json().await.unwrap();
    data(&body, "refreshToken");
}

#[tokio::test]
async fn an_https_service_sets_a_host_prefixed_secure_cookie() {
    let app = spawn_app_with(&[("PUBLIC_URL", "https://id.example")]).await;
    let email = unique_email();
    app.signed_up(&email).await;
    let resp = call(
        &app,
        LOGIN,
        json!({ "i": { "email": email, "password": PASSWORD } }),
        &[COOKIE_MODE],
    )
    .await;
    let (cookie, line) =
        set_cookie(resp.headers(), "__Host-refresh_token").expect("the __Host- cookie");
    assert!(line.contains("; Secure"), "{line}");
    // Only that name is read back; a plain `refresh_token` is not the refresh cookie.
    let plain = format!("refresh_token={cookie}");
    let resp = call(
        &app,
        REFRESH,
        json!({}),
        &[("cookie", plain.as_str()), CSRF],
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    assert_code(&body, "INVALID_TOKEN");
    let jar = format!("__Host-refresh_token={cookie}");
    let resp = call(
        &app,
        REFRESH,
        json!({}),
        &[
            ("cookie", jar.as_str()),
            CSRF,
            ("origin", "https://id.example"),
        ],
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    data(&body, "refreshToken");
}

#[tokio::test]
async fn credentialed_cors_is_for_listed_origins_only() {
    let app = spawn_app_with(&[("CORS_ALLOWED_ORIGINS", "https://app.example")]).await;
    let wants = "content-type,x-csrf-protection,x-auth-transport";
    let allowed = app.preflight("https://app.example", wants).await;
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap();
    for name in [
        "x-csrf-protection",
        "x-auth-transport",
        "authorization",
        "content-type",
    ] {
        assert!(
            allowed_headers.contains(name),
            "{name} in {allowed_headers}"
        );
    }
    let other = app.preflight("https://evil.example", wants).await;
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // A listed origin may use the cookie.
    let email = unique_email();
    app.signed_up(&email).await;
    let cookie = cookie_login(&app, &email).await;
    let jar = format!("refresh_token={cookie}");
    let resp = call(
        &app,
        REFRESH,
        json!({}),
        &[
            ("cookie", jar.as_str()),
            CSRF,
            ("origin", "https://app.example"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
}
