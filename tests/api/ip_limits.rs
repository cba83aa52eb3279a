//! Per-client-IP budgets across instances: with Redis one budget per client, shared
//! by every instance and timed by the service's clock; while Redis is down, each
//! instance limits on its own and refuses nothing for want of Redis.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// Behind the local proxy, so that a test can choose the client address.
const PROXIED: (&str, &str) = ("TRUSTED_PROXIES", "127.0.0.1/32");

fn fallbacks(metrics: &str) -> f64 {
    sample(metrics, "identity_rate_limit_fallback_total{limit=\"ip\"}")
}

/// A `logout` mutation (it answers `true` for any token) sent for `client`.
async fn logout_from(app: &TestApp, client: &str) -> Value {
    let logout = json!({ "query": "mutation { logout(refreshToken: \"x\") }" });
    let resp = app.post_raw(&logout, &[("x-forwarded-for", client)]).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn two_instances_on_one_redis_share_the_ip_budget() {
    // The embedded default limits in process; sharing needs Redis.
    require_postgres();
    let limits = [("RATE_LIMIT_IP_PER_MINUTE", "4"), PROXIED];
    let a = spawn_app_with(&limits).await;
    let b = a.sibling(&limits).await;
    let client = "198.51.100.7";
    for app in [&a, &b, &a, &b] {
        data(&logout_from(app, client).await, "logout");
    }
    // Four in all, two on each: the next one is refused on either instance.
    let wait = retry_after(&logout_from(&a, client).await);
    assert!((1..=15).contains(&wait), "retryAfter {wait}");
    let wait = retry_after(&logout_from(&b, client).await);
    assert!((1..=15).contains(&wait), "retryAfter {wait}");
    // Another client has its own budget; an IPv6 client's is its /64's.
    for app in [&b, &a, &b, &a] {
        data(&logout_from(app, "198.51.100.8").await, "logout");
    }
    retry_after(&logout_from(&b, "198.51.100.8").await);
    for (app, client) in [
        (&a, "2001:db8:7::1"),
        (&b, "2001:db8:7::2"),
        (&a, "2001:db8:7::3"),
        (&b, "2001:db8:7::4"),
    ] {
        data(&logout_from(app, client).await, "logout");
    }
    retry_after(&logout_from(&a, "2001:db8:7::ffff").await);
    data(&logout_from(&a, "2001:db8:8::1").await, "logout");
}

#[tokio::test]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn an_operator_can_keep_ip_budgets_per_instance() {
    // RATE_LIMIT_IP_SHARED=false: Redis still holds everything else, but each instance
    // gives a client its own budget and asks Redis nothing for it.
    require_postgres();
    let limits = [
        ("RATE_LIMIT_IP_PER_MINUTE", "2"),
        ("RATE_LIMIT_IP_SHARED", "false"),
        PROXIED,
    ];
    let a = spawn_app_with(&limits).await;
    let b = a.sibling(&limits).await;
    let client = "198.51.100.17";
    for app in [&a, &a] {
        data(&logout_from(app, client).await, "logout");
    }
    retry_after(&logout_from(&a, client).await);
    // The other instance has not seen this client yet.
    for app in [&b, &b] {
        data(&logout_from(app, client).await, "logout");
    }
    retry_after(&logout_from(&b, client).await);
}

#[tokio::test]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn the_shared_budget_refills_with_the_service_clock() {
    require_postgres();
    let limits = [("RATE_LIMIT_IP_PER_MINUTE", "2"), PROXIED];
    let a = spawn_app_with(&limits).await;
    let b = a.sibling(&limits).await;
    a.freeze_clock();
    b.freeze_clock();
    let client = "198.51.100.9";
    data(&logout_from(&a, client).await, "logout");
    data(&logout_from(&b, client).await, "logout");
    let wait = retry_after(&logout_from(&a, client).await);
    assert!((1..=30).contains(&wait), "retryAfter {wait}");
    // One request back every 30 s (a burst of 2 a minute), whole after a minute.
    a.advance(30);
    b.advance(30);
    data(&logout_from(&b, client).await, "logout");
    retry_after(&logout_from(&a, client).await);
    a.advance(60);
    b.advance(60);
    data(&logout_from(&a, client).await, "logout");
    data(&logout_from(&b, client).await, "logout");
    retry_after(&logout_from(&b, client).await);
}

#[tokio::test]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn the_reset_budgets_are_shared_too() {
    require_postgres();
    let limits = [
        ("RATE_LIMIT_RESET_PER_IP_PER_MINUTE", "2"),
        ("RATE_LIMIT_RESET_TOKEN_PER_IP_PER_MINUTE", "2"),
    ];
    let a = spawn_app_with(&limits).await;
    let b = a.sibling(&limits).await;
    data(
        &a.request_reset("nobody@example.com").await,
        "requestPasswordReset",
    );
    data(
        &b.request_reset("nobody@example.com").await,
        "requestPasswordReset",
    );
    retry_after(&a.request_reset("nobody@example.com").await);
    for app in [&b, &a] {
        let resp = app
            .reset_password("unknown", NEW_PASSWORD, NEW_PASSWORD)
            .await;
        assert_ne!(
            resp["errors"][0]["extensions"]["code"], "RATE_LIMITED",
            "{resp}"
        );
    }
    retry_after(
        &b.reset_password("unknown", NEW_PASSWORD, NEW_PASSWORD)
            .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn with_redis_down_each_instance_limits_on_its_own() {
    require_postgres();
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let limits = [
        ("RATE_LIMIT_IP_PER_MINUTE", "3"),
        PROXIED,
        ("REDIS_URL", url.as_str()),
    ];
    let a = spawn_app_with(&limits).await;
    let b = a.sibling(&limits).await;
    redis.stop();
    let started = Instant::now();
    let client = "198.51.100.10";
    // Nothing is refused for want of Redis: each instance gives the client its own
    // budget, and holds it.
    for app in [&a, &b] {
        for _ in 0..3 {
            data(&logout_from(app, client).await, "logout");
        }
        retry_after(&logout_from(app, client).await);
    }
    data(&logout_from(&a, "198.51.100.11").await, "logout");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answers took {:?}",
        started.elapsed()
    );
    let fell_back = fallbacks(&a.metrics().await);
    assert!(fell_back >= 4.0, "{fell_back}");

    // Redis back: the shared budget takes over again, without a restart.
    redis.restart().await;
    a.wait_ready(Duration::from_secs(30)).await;
    data(&logout_from(&a, "198.51.100.12").await, "logout");
    assert_eq!(fallbacks(&a.metrics().await), fell_back);
    assert!(!redis.cli(&["--scan", "--pattern", "*ip:*"]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn redis_holds_a_hash_of_the_client_for_at_most_its_refill() {
    require_postgres();
    let redis = PrivateRedis::start().await;
    let url = redis.url();
    let app = spawn_app_with(&[
        ("RATE_LIMIT_IP_PER_MINUTE", "2"),
        PROXIED,
        ("REDIS_URL", url.as_str()),
    ])
    .await;
    data(&logout_from(&app, "198.51.100.13").await, "logout");
    let keys = redis.cli(&["--scan", "--pattern", "*ip:*"]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = keys[0];
    assert!(key.ends_with(":mutation") && key.contains("ip:{"), "{key}");
    assert!(!key.contains("198.51.100"), "{key}");
    // One request of a burst of two: full again 30 s later, and then forgotten.
    let ttl: i64 = redis.cli(&["pttl", key]).parse().unwrap();
    assert!((1..=30_000).contains(&ttl), "{ttl}");
}

/// The script calls Redis has answered, by its own count.
fn script_calls(redis: &PrivateRedis) -> u64 {
    redis.calls(&["evalsha", "eval"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn a_burst_from_one_client_costs_a_few_calls_and_is_counted_exactly() {
    require_postgres();
    let redis = PrivateRedis::start().await;
    let url = redis.url();
    let app = spawn_app_with(&[
        ("RATE_LIMIT_IP_PER_MINUTE", "10"),
        ("RATE_LIMIT_RESET_PER_IP_PER_MINUTE", "3"),
        PROXIED,
        ("REDIS_URL", url.as_str()),
    ])
    .await;
    app.freeze_clock();
    let calls_before = script_calls(&redis);

    // Redis holds every command for a moment, so the burst piles up behind the first
    // call: 30 mutations from one client, 10 of them within its budget.
    redis.cli(&["client", "pause", "400", "all"]);
    let client = "198.51.100.20";
    let answers = futures::future::join_all((0..30).map(|_| logout_from(&app, client))).await;
    let allowed = answers.iter().filter(|a| a["errors"].is_null()).count();
    let waits: Vec<u64> = answers
        .iter()
        .filter(|a| !a["errors"].is_null())
        .map(retry_after)
        .collect();
    assert_eq!((allowed, waits.len()), (10, 20), "{answers:?}");
    // The 11th would have a slot back 6 s later (a burst of 10 a minute).
    assert!(waits.iter().all(|w| (1..=6).contains(w)), "{waits:?}");
    // Redis's own count: the call the burst waited behind and one for the rest, give
    // or take a straggler; not one call per request.
    let calls = script_calls(&redis) - calls_before;
    assert!(
        (1..=4).contains(&calls),
        "{calls} script calls for 30 requests"
    );

    // Two budgets at once: resets from another client, refused by the reset budget.
    redis.cli(&["client", "pause", "400", "all"]);
    let client = "198.51.100.21";
    let reset = json!({
        "query": "mutation { requestPasswordReset(email: \"nobody@example.com\") }"
    });
    let answers = futures::future::join_all((0..6).map(|_| async {
        let resp = app.post_raw(&reset, &[("x-forwarded-for", client)]).await;
        resp.json::<Value>().await.unwrap()
    }))
    .await;
    let waits: Vec<u64> = answers
        .iter()
        .filter(|a| !a["errors"].is_null())
        .map(retry_after)
        .collect();
    assert_eq!(waits.len(), 3, "{answers:?}");
    assert!(waits.iter().all(|w| (7..=20).contains(w)), "{waits:?}");
    let metrics = app.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "identity_rate_limited_total{limit=\"ip_reset_request\"}"
        ),
        3.0
    );

    // The service's own count, over both bursts (the reset per account has scripts
    // of its own, so Redis's count would mix them in).
    let trips = sample(
        &metrics,
        "identity_rate_limit_round_trips_total{limit=\"ip\"}",
    );
    assert!(
        (2.0..=8.0).contains(&trips),
        "{trips} round trips for 36 requests"
    );
}
