//! Rate limits per client IP and per account.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn every_mutation_counts_against_the_ip_budget() {
    let app = spawn_app_with(&[("RATE_LIMIT_IP_PER_MINUTE", "6")]).await;
    let outcomes = [
        app.register_as("bad", "", "x", "y").await,
        app.login("nobody@example.com", PASSWORD).await,
        app.refresh("unknown").await,
        app.logout("unknown").await,
        app.request_reset("nobody@example.com").await,
        app.reset_password("unknown", NEW_PASSWORD, NEW_PASSWORD)
            .await,
    ];
    for resp in &outcomes {
        assert_ne!(
            resp["errors"][0]["extensions"]["code"], "RATE_LIMITED",
            "{resp}"
        );
    }
    for resp in [
        app.logout("unknown").await,
        app.register(&unique_email()).await,
    ] {
        assert!(retry_after(&resp) >= 1, "{resp}");
    }
    // Queries are not limited by it.
    assert_code(&app.me(None).await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn mutations_are_rate_limited_per_client_ip() {
    let app = spawn_app_with(&[("RATE_LIMIT_IP_PER_MINUTE", "3")]).await;
    for _ in 0..3 {
        assert_code(
            &app.login("nobody@example.com", PASSWORD).await,
            "INVALID_CREDENTIALS",
        );
    }
    let limited = app.login("nobody@example.com", PASSWORD).await;
    assert_code(&limited, "RATE_LIMITED");
    let retry = limited["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap();
    assert!((1..=20).contains(&retry), "{limited}");
    // Queries are not mutations: `me` still answers.
    assert_code(&app.me(None).await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn reset_requests_and_token_guesses_have_tighter_ip_budgets() {
    let app = spawn_app_with(&[
        ("RATE_LIMIT_RESET_PER_IP_PER_MINUTE", "2"),
        ("RATE_LIMIT_RESET_TOKEN_PER_IP_PER_MINUTE", "3"),
    ])
    .await;
    let email = unique_email();
    app.signed_up(&email).await;
    for _ in 0..2 {
        data(
            &app.request_reset("nobody@example.com").await,
            "requestPasswordReset",
        );
    }
    retry_after(&app.request_reset("nobody@example.com").await);
    for guess in ["a", "b", "c"] {
        assert_code(
            &app.reset_password(guess, NEW_PASSWORD, NEW_PASSWORD).await,
            "INVALID_TOKEN",
        );
    }
    retry_after(&app.reset_password("d", NEW_PASSWORD, NEW_PASSWORD).await);
    // Other mutations are not held back by those classes.
    data(&app.login(&email, PASSWORD).await, "login");
}

#[tokio::test]
async fn failed_logins_slow_an_account_down_for_a_growing_bounded_time() {
    let app = spawn_app_with(&[
        ("RATE_LIMIT_LOGIN_FAILURES", "3"),
        ("RATE_LIMIT_LOGIN_BASE_DELAY", "2"),
        ("RATE_LIMIT_LOGIN_MAX_DELAY", "8"),
    ])
    .await;
    // The waits are asserted to the second: a busy machine must not shorten them.
    app.freeze_clock();
    let email = unique_email();
    app.signed_up(&email).await;
    for _ in 0..3 {
        assert_code(
            &app.login(&email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
    }
    // Cooling down: even the right password waits, and is told how long.
    assert_eq!(retry_after(&app.login(&email, PASSWORD).await), 2);
    // Another account from the same client is not affected.
    let other = unique_email();
    app.signed_up(&other).await;
    data(&app.login(&other, PASSWORD).await, "login");

    // Each further failure doubles the wait, up to the bound.
    let mut waits = Vec::new();
    for _ in 0..4 {
        app.advance(8);
        assert_code(
            &app.login(&email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
        waits.push(retry_after(&app.login(&email, "wrong password").await));
    }
    assert_eq!(waits, [4, 8, 8, 8]);

    // Never a permanent lockout: after the wait, the owner signs in, and starts afresh.
    app.advance(8);
    data(&app.login(&email, PASSWORD).await, "login");
    for _ in 0..3 {
        assert_code(
            &app.login(&email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
    }
    retry_after(&app.login(&email, PASSWORD).await);
}

#[tokio::test]
async fn unknown_emails_are_throttled_alike() {
    let app = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "2")]).await;
    for _ in 0..2 {
        assert_code(
            &app.login("nobody@example.com", PASSWORD).await,
            "INVALID_CREDENTIALS",
        );
    }
    // The answer cannot tell a registered address from an unknown one.
    retry_after(&app.login("  NOBODY@example.com", PASSWORD).await);
}

#[tokio::test]
async fn a_password_reset_lifts_the_login_back_off() {
    let app = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "2")]).await;
    let email = unique_email();
    app.signed_up(&email).await;
    for _ in 0..2 {
        assert_code(
            &app.login(&email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
    }
    retry_after(&app.login(&email, PASSWORD).await);
    let token = app.reset_token_for(&email).await;
    data(
        &app.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await,
        "resetPassword",
    );
    data(&app.login(&email, NEW_PASSWORD).await, "login");
}

#[tokio::test]
async fn reset_mails_per_account_are_capped_silently() {
    let app = spawn_app_with(&[("RATE_LIMIT_RESET_PER_ACCOUNT", "2")]).await;
    let email = unique_email();
    app.signed_up(&email).await;
    for _ in 0..4 {
        assert_eq!(
            data(&app.request_reset(&email).await, "requestPasswordReset"),
            true
        );
    }
    app.settle().await;
    assert_eq!(
        app.mail.to(&email).len(),
        2,
        "the cap holds, and the answer stays true"
    );
}

#[tokio::test]
async fn fifty_login_aliases_are_refused_or_each_counted() {
    let app = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "3")]).await;
    let email = unique_email();
    app.signed_up(&email).await;
    let document = |n: usize| {
        let fields: String = (0..n)
            .map(|i| {
                format!(
                    "a{i}: login(input: {{email: $e, password: \"guess {i}\"}}) {{ tokenType }} "
                )
            })
            .collect();
        json!({ "query": format!("mutation($e: String!) {{ {fields} }}"), "variables": { "e": email } })
    };
    // By default such a document is refused before anything runs...
    let resp: Value = app.post_raw(&document(50), &[]).await.json().await.unwrap();
    assert_code(&resp, "GRAPHQL_VALIDATION_FAILED");
    data(&app.login(&email, PASSWORD).await, "login");

    // ...and where many aliases are allowed, each one is an attempt.
    let lenient = app
        .sibling(&[
            ("RATE_LIMIT_LOGIN_FAILURES", "3"),
            ("GRAPHQL_MAX_ALIASES", "100"),
        ])
        .await;
    let resp: Value = lenient
        .post_raw(&document(50), &[])
        .await
        .json()
        .await
        .unwrap();
    let codes: Vec<&str> = resp["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["extensions"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 50, "{resp}");
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == "INVALID_CREDENTIALS")
            .count(),
        3,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == "RATE_LIMITED").count(),
        47,
        "{codes:?}"
    );
}

#[tokio::test]
async fn a_batch_of_fifty_logins_is_refused_or_each_counted() {
    let app = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "3")]).await;
    let email = unique_email();
    app.signed_up(&email).await;
    let batch: Vec<Value> = (0..50)
        .map(|i| {
            json!({ "query": "mutation($i: LoginInput!) { login(input: $i) { tokenType } }",
                    "variables": { "i": { "email": email, "password": format!("guess {i}") } } })
        })
        .collect();
    let batch = Value::Array(batch);
    assert_eq!(app.post_raw(&batch, &[]).await.status(), 400);
    data(&app.login(&email, PASSWORD).await, "login");

    let lenient = app
        .sibling(&[
            ("RATE_LIMIT_LOGIN_FAILURES", "3"),
            ("GRAPHQL_MAX_BATCH", "50"),
        ])
        .await;
    let resp: Value = lenient.post_raw(&batch, &[]).await.json().await.unwrap();
    let codes: Vec<&str> = resp
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["errors"][0]["extensions"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == "INVALID_CREDENTIALS")
            .count(),
        3,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == "RATE_LIMITED").count(),
        47,
        "{codes:?}"
    );
}

#[tokio::test]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn two_instances_on_one_redis_share_the_account_budget() {
    // The embedded default keeps counters in process; sharing needs Redis.
    require_postgres();
    let a = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "4")]).await;
    let b = a.sibling(&[("RATE_LIMIT_LOGIN_FAILURES", "4")]).await;
    let email = unique_email();
    a.signed_up(&email).await;
    for app in [&a, &b, &a, &b] {
        assert_code(
            &app.login(&email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
    }
    // Four failures in all, two on each: both instances now refuse.
    retry_after(&a.login(&email, PASSWORD).await);
    retry_after(&b.login(&email, PASSWORD).await);
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let app = spawn_app_with(&[("RATE_LIMIT_IP_PER_MINUTE", "2")]).await;
    let logout = json!({ "query": "mutation { logout(refreshToken: \"x\") }" });
    for ip in ["198.51.100.1", "198.51.100.2"] {
        let resp: Value = app
            .post_raw(&logout, &[("x-forwarded-for", ip)])
            .await
            .json()
            .await
            .unwrap();
        data(&resp, "logout");
    }
    let resp: Value = app
        .post_raw(&logout, &[("x-forwarded-for", "198.51.100.3")])
        .await
        .json()
        .await
        .unwrap();
    retry_after(&resp);
    app.settle().await;
    let events = app.audit_events().await;
    assert!(
        events
            .iter()
            .all(|(_, _, ip)| ip.as_deref() == Some("127.0.0.1")),
        "{events:?}"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let app = spawn_app_with(&[
        ("RATE_LIMIT_IP_PER_MINUTE", "2"),
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
    ])
    .await;
    let logout = json!({ "query": "mutation { logout(refreshToken: \"x\") }" });
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        for _ in 0..2 {
            let resp: Value = app
                .post_raw(&logout, &[("x-forwarded-for", ip)])
                .await
                .json()
                .await
                .unwrap();
            data(&resp, "logout");
        }
    }
    // A client's own forged entry on the left does not help it either.
    let resp: Value = app
        .post_raw(
            &logout,
            &[("x-forwarded-for", "203.0.113.50, 198.51.100.1")],
        )
        .await
        .json()
        .await
        .unwrap();
    retry_after(&resp);
    let events = app.audit_events().await;
    assert!(
        events
            .iter()
            .any(|(event, _, ip)| event == "rate_limited" && ip.as_deref() == Some("198.51.100.1")),
        "{events:?}"
    );
}

/// A login sent through the trusted proxy (127.0.0.1) on behalf of `client`.
async fn login_from(app: &TestApp, client: &str, email: &str, password: &str) -> Value {
    let body = json!({
        "query": "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
        "variables": { "i": { "email": email, "password": password } },
    });
    let resp = app.post_raw(&body, &[("x-forwarded-for", client)]).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Behind the local proxy, so that a test can choose the client address.
const PROXIED: (&str, &str) = ("TRUSTED_PROXIES", "127.0.0.1/32");

#[tokio::test]
async fn ipv6_clients_share_one_budget_per_64() {
    let app = spawn_app_with(&[("RATE_LIMIT_IP_PER_MINUTE", "2"), PROXIED]).await;
    let logout = json!({ "query": "mutation { logout(refreshToken: \"x\") }" });
    let from = |client: &'static str| {
        let app = &app;
        let logout = &logout;
        async move {
            let resp = app.post_raw(logout, &[("x-forwarded-for", client)]).await;
            resp.json::<Value>().await.unwrap()
        }
    };
    // Two addresses of one /64 spend one budget...
    data(&from("2001:db8:1:2::1").await, "logout");
    data(&from("2001:db8:1:2:ffff:ffff:ffff:fffe").await, "logout");
    retry_after(&from("[2001:db8:1:2::77]:443").await);
    // ...another /64 has its own, and IPv4 clients are still counted per address.
    data(&from("2001:db8:1:3::1").await, "logout");
    data(&from("198.51.100.1").await, "logout");
    data(&from("::ffff:198.51.100.1").await, "logout");
    retry_after(&from("198.51.100.1").await);
    data(&from("198.51.100.2").await, "logout");
}

#[tokio::test]
async fn failures_from_one_client_do_not_keep_the_owner_out() {
    let app = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "3"), PROXIED]).await;
    app.freeze_clock();
    let email = unique_email();
    app.signed_up(&email).await;
    let attacker = "198.51.100.66";
    for _ in 0..3 {
        assert_code(
            &login_from(&app, attacker, &email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
    }
    retry_after(&login_from(&app, attacker, &email, PASSWORD).await);
    // The owner, from elsewhere (and never signed in from there), gets in at once.
    data(
        &login_from(&app, "203.0.113.9", &email, PASSWORD).await,
        "login",
    );
    // The attacker still waits.
    retry_after(&login_from(&app, attacker, &email, PASSWORD).await);
}

#[tokio::test]
async fn failures_spread_over_clients_hold_the_account_but_not_a_known_client() {
    let app = spawn_app_with(&[
        ("RATE_LIMIT_LOGIN_FAILURES", "2"),
        ("RATE_LIMIT_LOGIN_ACCOUNT_FAILURES", "6"),
        PROXIED,
    ])
    .await;
    app.freeze_clock();
    let email = unique_email();
    app.signed_up(&email).await;
    let owner = "2001:db8:aa::1";
    data(&login_from(&app, owner, &email, PASSWORD).await, "login");
    // Six failures, two from each of three clients: each client's own budget is spent,
    // and the account's.
    for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        for _ in 0..2 {
            assert_code(
                &login_from(&app, client, &email, "wrong password").await,
                "INVALID_CREDENTIALS",
            );
        }
    }
    // A client new to the account waits, even with the right password...
    assert!(retry_after(&login_from(&app, "198.51.100.4", &email, PASSWORD).await) >= 1);
    // ...the owner's client, which signed in before (from another address of its /64),
    // does not.
    data(
        &login_from(&app, "2001:db8:aa::2", &email, PASSWORD).await,
        "login",
    );
}

#[tokio::test]
async fn a_successful_login_clears_only_that_clients_back_off() {
    let app = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "3"), PROXIED]).await;
    app.freeze_clock();
    let email = unique_email();
    app.signed_up(&email).await;
    let (x, y) = ("198.51.100.10", "198.51.100.20");
    for _ in 0..3 {
        assert_code(
            &login_from(&app, y, &email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
    }
    for _ in 0..2 {
        assert_code(
            &login_from(&app, x, &email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
    }
    data(&login_from(&app, x, &email, PASSWORD).await, "login");
    // X starts afresh: three more failures before it waits.
    for _ in 0..3 {
        assert_code(
            &login_from(&app, x, &email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
    }
    retry_after(&login_from(&app, x, &email, PASSWORD).await);
    // Y's back-off was not lifted by X's login.
    retry_after(&login_from(&app, y, &email, PASSWORD).await);
}

/// Hashing made costly, on one thread: a burst of logins finds no place for most.
const SLOW_HASHING: &[(&str, &str)] = &[
    ("ARGON2_MEMORY_KIB", "65536"),
    ("ARGON2_ITERATIONS", "4"),
    ("PASSWORD_HASH_CONCURRENCY", "1"),
    ("HTTP_REQUEST_TIMEOUT", "120"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_refused_for_want_of_a_hashing_place_are_not_counted() {
    let app = spawn_app_with(
        &[
            SLOW_HASHING,
            &[
                ("PASSWORD_HASH_QUEUE", "1"),
                ("RATE_LIMIT_LOGIN_FAILURES", "5"),
                ("RATE_LIMIT_LOGIN_BASE_DELAY", "60"),
                ("RATE_LIMIT_LOGIN_MAX_DELAY", "60"),
            ],
        ]
        .concat(),
    )
    .await;
    app.freeze_clock();
    let email = unique_email();
    app.signed_up(&email).await;
    let burst =
        futures::future::join_all((0..20).map(|_| app.login(&email, "wrong password"))).await;
    let checked = burst
        .iter()
        .filter(|r| code(r) == "INVALID_CREDENTIALS")
        .count();
    let refused: Vec<u64> = burst
        .iter()
        .filter(|r| code(r) == "RATE_LIMITED")
        .map(retry_after)
        .collect();
    assert_eq!(checked + refused.len(), 20, "{burst:?}");
    assert!(
        !refused.is_empty() && checked < 5,
        "the burst found places for {checked} of 20: hashing is not slow enough here"
    );
    // The account's back-off counts the checked attempts only: the rest of its five
    // failures are still answered, then the cool-down (60 s) starts.
    for _ in checked..5 {
        assert_code(
            &app.login(&email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
    }
    assert_eq!(retry_after(&app.login(&email, PASSWORD).await), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_take_every_hashing_place() {
    // Four places (one thread, three queued), a quarter of them for each client.
    let app =
        spawn_app_with(&[SLOW_HASHING, &[("PASSWORD_HASH_QUEUE", "3"), PROXIED]].concat()).await;
    let email = unique_email();
    app.signed_up(&email).await;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let refused = std::sync::atomic::AtomicUsize::new(0);
    let flood = futures::future::join_all((0..8).map(|_| async {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let resp = login_from(&app, "198.51.100.66", &unique_email(), PASSWORD).await;
            if code(&resp) == "RATE_LIMITED" {
                refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }));
    let owner = async {
        // The flood is at its limit: it is being refused.
        eventually(Duration::from_secs(30), "the flood is refused", || {
            std::future::ready(
                (refused.load(std::sync::atomic::Ordering::Relaxed) > 0).then_some(()),
            )
        })
        .await;
        let resp = login_from(&app, "203.0.113.9", &email, PASSWORD).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        resp
    };
    let (_, resp) = tokio::join!(flood, owner);
    data(&resp, "login");
}
