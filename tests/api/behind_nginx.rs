//! Two instances (service processes) behind nginx running `deploy/nginx.conf`, with
//! `TRUSTED_PROXIES` naming the proxy: one per-IP budget per client across both
//! instances, whatever `X-Forwarded-For` a client sends; and a rolling restart during a
//! stream of refreshes that logs nobody out, each instance stopped with SIGTERM while a
//! request sent through nginx is in flight on it (it gets its answer).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::support::*;

/// nginx connects to the instances from 127.0.0.1; the clients come from other
/// loopback addresses.
const PROXY: (&str, &str) = ("TRUSTED_PROXIES", "127.0.0.1/32");
const ALICE: &str = "127.0.0.2";
const BOB: &str = "127.0.0.3";

/// POSTs `body` to the proxy's `/graphql` from `client`, with extra headers.
async fn post(
    proxy: &Nginx,
    client: &reqwest::Client,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Result<reqwest::Response> {
    let mut req = client.post(format!("{}/graphql", proxy.url())).json(body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await
}

/// A `logout` mutation (it answers `true` for any token), claiming `forwarded` as
/// `X-Forwarded-For` when given.
async fn logout(proxy: &Nginx, client: &reqwest::Client, forwarded: Option<&str>) -> Value {
    let body = json!({ "query": "mutation { logout(refreshToken: \"x\") }" });
    let headers: Vec<(&str, &str)> = forwarded
        .map(|f| ("x-forwarded-for", f))
        .into_iter()
        .collect();
    let resp = post(proxy, client, &body, &headers)
        .await
        .expect("an answer");
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// The instances nginx sent `client`'s requests to, from its access log, once it
/// shows `count` of them (nginx writes a line after the answer).
async fn upstreams_of(proxy: &Nginx, client: &str, count: usize) -> Vec<String> {
    eventually(
        Duration::from_secs(5),
        &format!("{count} requests of {client} in the access log"),
        || {
            let served: Vec<String> = proxy
                .access_log()
                .lines()
                .filter(|l| l.starts_with(&format!("{client} ")))
                .filter_map(|l| l.split(" upstream=").nth(1))
                .filter_map(|rest| rest.split(" upstream_status=").next())
                .map(str::to_owned)
                .collect();
            std::future::ready(if served.len() >= count {
                Ok(served)
            } else {
                Err(proxy.access_log())
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn behind_nginx_each_client_has_one_budget_across_instances() {
    require_postgres();
    nginx_binary();
    let storage = Storage::new().await;
    let mail = MailSink::start();
    let settings = [("RATE_LIMIT_IP_PER_MINUTE", "6"), PROXY];
    let a = ServiceProcess::start(&storage, &mail, &settings).await;
    let b = ServiceProcess::start(&storage, &mail, &settings).await;
    let proxy = Nginx::start([&a.addr, &b.addr]).await;
    let (alice, bob) = (proxy.client(ALICE), proxy.client(BOB));

    // Six requests, spread over both instances, spend Alice's budget of six.
    for _ in 0..6 {
        data(&logout(&proxy, &alice, None).await, "logout");
    }
    let served = upstreams_of(&proxy, ALICE, 6).await;
    for instance in [&a.addr, &b.addr] {
        assert!(served.contains(instance), "{served:?}: none to {instance}");
    }
    for _ in 0..2 {
        let wait = retry_after(&logout(&proxy, &alice, None).await);
        assert!((1..=10).contains(&wait), "retryAfter {wait}");
    }
    // Whatever she claims to be, nginx says who she is: still refused.
    for claim in [
        "198.51.100.23",
        BOB,
        "127.0.0.1",
        "2001:db8::1, 198.51.100.24",
    ] {
        retry_after(&logout(&proxy, &alice, Some(claim)).await);
    }

    // Bob has a budget of his own, also when he claims to be Alice.
    for claim in [None, Some(ALICE), None, Some(ALICE), None, None] {
        data(&logout(&proxy, &bob, claim).await, "logout");
    }
    retry_after(&logout(&proxy, &bob, None).await);
    let served = upstreams_of(&proxy, BOB, 7).await;
    for instance in [&a.addr, &b.addr] {
        assert!(served.contains(instance), "{served:?}: none to {instance}");
    }
}

/// How the refreshes of the stream ended.
#[derive(Default)]
struct Tally {
    rotated: AtomicU64,
    /// Answers a client retries with the same token: nginx's 502/503/504, or no
    /// answer at all.
    retried: AtomicU64,
}

/// Refreshes `token` over and over through the proxy until `stop`; returns the last
/// token. Panics on any answer that is neither a new token nor retryable: an
/// `INVALID_TOKEN` would be a logout.
async fn refresh_stream(
    proxy: Arc<Nginx>,
    client: reqwest::Client,
    mut token: String,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> String {
    let query = "mutation($t: String!) { refreshToken(refreshToken: $t) { refreshToken } }";
    let mut failing_since: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let body = json!({ "query": query, "variables": { "t": token } });
        let outcome = match post(&proxy, &client, &body, &[]).await {
            Ok(resp) if resp.status() == 200 => Ok(resp.json::<Value>().await.unwrap()),
            Ok(resp) if [502, 503, 504].contains(&resp.status().as_u16()) => {
                Err(format!("{}", resp.status()))
            }
            Ok(resp) => panic!("{}: {}", resp.status(), resp.text().await.unwrap()),
            Err(error) => Err(error.to_string()),
        };
        match outcome {
            Ok(answer) => {
                let next = data(&answer, "refreshToken")["refreshToken"]
                    .as_str()
                    .unwrap_or_else(|| panic!("logged out: {answer}"))
                    .to_owned();
                assert_ne!(next, token, "a refresh answers a new token");
                token = next;
                failing_since = None;
                tally.rotated.fetch_add(1, Ordering::Relaxed);
            }
            Err(why) => {
                // Retried with the same token, well within REFRESH_REUSE_GRACE (10 s):
                // if the lost attempt did rotate it, the retry gets the same successor.
                let since = *failing_since.get_or_insert_with(Instant::now);
                assert!(
                    since.elapsed() < Duration::from_secs(5),
                    "no answer for 5 s: {why}"
                );
                tally.retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    token
}

/// A login (a wrong password: no session made) sent through the proxy, once one is
/// being hashed on `instance`: nginx picks the instance, so logins are sent one after
/// another until one lands there.
async fn login_in_flight_on(
    proxy: &Arc<Nginx>,
    instance: &ServiceProcess,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let client = proxy.client(BOB);
    for _ in 0..20 {
        let idle = instance.thread_cpu_ticks("argon2-");
        let login = tokio::spawn({
            let (proxy, client) = (proxy.clone(), client.clone());
            async move {
                let body = json!({ "query": "mutation($i: LoginInput!) { login(input: $i) { tokenType } }",
                                   "variables": { "i": { "email": unique_email(), "password": "not the password" } } });
                post(&proxy, &client, &body, &[]).await
            }
        });
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) && !login.is_finished() {
            if instance.thread_cpu_ticks("argon2-") >= idle + 5 {
                return login;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // It went to the other instance: let it finish, and try again.
        let _ = login.await;
    }
    panic!("no login reached {} in 20 tries", instance.addr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn behind_nginx_a_rolling_restart_logs_nobody_out() {
    require_postgres();
    nginx_binary();
    let storage = Storage::new().await;
    let mail = MailSink::start();
    let settings = [
        PROXY,
        ("LOG_FORMAT", "json"),
        // Hashing made slow (over a second a login) so that a login is in flight on
        // the instance when it is told to stop; on a loaded machine far longer, which
        // the timeouts and the grace period allow.
        ("ARGON2_MEMORY_KIB", "131072"),
        ("ARGON2_ITERATIONS", "6"),
        ("HTTP_REQUEST_TIMEOUT", "120"),
        ("SHUTDOWN_TIMEOUT", "120"),
    ];
    let mut instances = [
        ServiceProcess::start(&storage, &mail, &settings).await,
        ServiceProcess::start(&storage, &mail, &settings).await,
    ];
    let proxy = Arc::new(Nginx::start([&instances[0].addr, &instances[1].addr]).await);
    let client = proxy.client(ALICE);

    let mut tokens = Vec::new();
    for _ in 0..4 {
        let email = unique_email();
        let body = json!({
            "query": "mutation($i: RegisterInput!) { register(input: $i) { refreshToken } }",
            "variables": { "i": { "email": email, "fullName": "Ada Lovelace",
                                  "password": PASSWORD, "passwordConfirm": PASSWORD } },
        });
        let resp = post(&proxy, &client, &body, &[]).await.unwrap();
        let answer: Value = resp.json().await.unwrap();
        tokens.push(
            data(&answer, "register")["refreshToken"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let streams: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            tokio::spawn(refresh_stream(
                proxy.clone(),
                client.clone(),
                token,
                stop.clone(),
                tally.clone(),
            ))
        })
        .collect();

    for instance in &mut instances {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = tally.rotated.load(Ordering::Relaxed);
        let port: u16 = instance.addr.rsplit(':').next().unwrap().parse().unwrap();
        // SIGTERM while a login sent through nginx is being hashed on the instance: it
        // stops accepting, answers what reached it, and exits.
        let in_flight = login_in_flight_on(&proxy, instance).await;
        instance.terminate();
        let resp = in_flight
            .await
            .unwrap()
            .expect("the login in flight gets its answer");
        assert_eq!(resp.status(), 200, "through nginx");
        assert_code(&resp.json().await.unwrap(), "INVALID_CREDENTIALS");
        let status = instance.exited(Duration::from_secs(60)).await;
        assert!(status.success(), "exit status {status:?}");
        let output = instance.output();
        assert!(output.contains("stopped"), "{output}");
        // The other one carried the stream meanwhile.
        assert!(tally.rotated.load(Ordering::Relaxed) > before);
        *instance = ServiceProcess::start_on(&storage, &mail, &settings, port).await;
        // Back in rotation (nginx leaves an instance that refused it alone for 5 s)
        // before the next one stops, as an orchestrator waits for readiness.
        let addr = instance.addr.clone();
        let restarted_at = proxy.access_log().lines().count();
        eventually(
            Duration::from_secs(20),
            "nginx sends refreshes to the restarted instance",
            || {
                let log = proxy.access_log();
                let back = log
                    .lines()
                    .skip(restarted_at)
                    .any(|l| l.contains(&format!("upstream={addr} upstream_status=200")));
                std::future::ready(back.then_some(()))
            },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut last_tokens = Vec::new();
    for stream in streams {
        last_tokens.push(stream.await.expect("no session lost"));
    }
    let rotated = tally.rotated.load(Ordering::Relaxed);
    let retried = tally.retried.load(Ordering::Relaxed);
    let moved_on = proxy
        .access_log()
        .lines()
        .filter_map(|l| l.split(" upstream=").nth(1))
        .filter_map(|rest| rest.split(" upstream_status=").next())
        .filter(|tried| tried.contains(", "))
        .count();
    eprintln!(
        "rolling restart: {rotated} refreshes, {retried} retried by the client, \
         {moved_on} moved on by nginx to the other instance"
    );
    assert!(rotated >= 20, "{rotated} refreshes");
    // Every session still works, on either instance.
    for token in last_tokens {
        let body = json!({ "query": "mutation($t: String!) { refreshToken(refreshToken: $t) { refreshToken } }",
                           "variables": { "t": token } });
        let answer: Value = post(&proxy, &client, &body, &[])
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        data(&answer, "refreshToken");
    }
}
