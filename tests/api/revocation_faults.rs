//! The revocation guarantee across Redis faults: a restart that comes back empty, a
//! `FLUSHALL`, a lost message. The database is the source of truth; no instance may
//! forget a revocation because Redis did.

use std::time::Duration;

use crate::support::*;

fn assert_refused(app: &TestApp, body: &serde_json::Value, which: &str) {
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{which} on {}: {body}",
        app.url
    );
}

/// One instance on a Redis of its own, trusting its memory, with a signed-up user.
async fn one_instance_on_private_redis() -> (PrivateRedis, TestApp, Session) {
    // Its tests run a second instance or edit the sessions table: PostgreSQL only.
    require_postgres();
    let redis = PrivateRedis::start().await;
    let app = spawn_app_with(&[("REDIS_URL", redis.url().as_str())]).await;
    let session = app.signed_up(&unique_email()).await;
    app.wait_trusting().await;
    (redis, app, session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn revocations_survive_a_redis_restart_that_comes_back_empty() {
    // Two instances need the database they share; the embedded default is one.
    require_postgres();
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let a = spawn_app_with(&[("REDIS_URL", url.as_str())]).await;
    let b = a.sibling(&[("REDIS_URL", url.as_str())]).await;
    let email = unique_email();
    let first = a.signed_up(&email).await;
    b.wait_trusting().await;
    data(&a.logout(&first.refresh).await, "logout");
    for app in [&a, &b] {
        assert_refused(app, &app.me(Some(&first.access)).await, "first");
    }

    redis.stop();
    for app in [&a, &b] {
        assert_refused(app, &app.me(Some(&first.access)).await, "first, Redis down");
    }
    // A revocation made while Redis is down reaches only the database.
    let second = Session::from_payload(data(&a.login(&email, PASSWORD).await, "login"));
    data(&a.logout(&second.refresh).await, "logout");
    for app in [&a, &b] {
        assert_refused(
            app,
            &app.me(Some(&second.access)).await,
            "second, Redis down",
        );
    }

    // Redis comes back empty: both instances rebuild, and forget nothing.
    redis.restart().await;
    a.wait_trusting().await;
    b.wait_trusting().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for app in [&a, &b] {
        for (which, session) in [("first", &first), ("second", &second)] {
            assert_refused(app, &app.me(Some(&session.access)).await, which);
        }
    }
    // The outage's revocation has been written back to Redis for everyone.
    let keys = redis.cli(&["--scan", "--pattern", "*revoked:sid:*"]);
    assert_eq!(
        keys.lines().count(),
        2,
        "revocation keys after the restart: {keys}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn a_flushall_does_not_reopen_revoked_sessions() {
    // Two instances need the database they share; the embedded default is one.
    require_postgres();
    let redis = PrivateRedis::start().await;
    let url = redis.url();
    let a = spawn_app_with(&[("REDIS_URL", url.as_str())]).await;
    let b = a.sibling(&[("REDIS_URL", url.as_str())]).await;
    let session = a.signed_up(&unique_email()).await;
    b.wait_trusting().await;
    data(&a.logout(&session.refresh).await, "logout");
    // The announcement reaches `b` within moments (not before `a` answers: pub/sub).
    eventually(Duration::from_secs(2), "b hears of the logout", || async {
        let body = b.me(Some(&session.access)).await;
        (body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED")
            .then_some(())
            .ok_or_else(|| body.to_string())
    })
    .await;

    assert_eq!(redis.cli(&["FLUSHALL"]), "OK");
    // An instance that starts now (or rebuilds for any reason) reads the database too.
    let c = a.sibling(&[("REDIS_URL", url.as_str())]).await;
    c.wait_trusting().await;
    for app in [&a, &b, &c] {
        assert_refused(app, &app.me(Some(&session.access)).await, "after FLUSHALL");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn a_lost_message_makes_the_instance_rebuild_from_the_database() {
    let (redis, a, session) = one_instance_on_private_redis().await;
    data(&a.me(Some(&session.access)).await, "me");
    // A revocation whose key and message were both lost: only the database has it.
    a.sql("UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout'")
        .await;
    // A publisher says it has sent events 1..=3; none arrived: a gap.
    let channel = redis.cli(&["PUBSUB", "CHANNELS", "*events"]);
    assert_eq!(channel.lines().count(), 1, "one events channel: {channel}");
    let publisher = uuid::Uuid::new_v4();
    for settled in [0, 3] {
        redis.cli(&["PUBLISH", &channel, &format!("h:{publisher}:{settled}")]);
    }
    eventually(
        Duration::from_secs(5),
        "the instance notices the gap and asks the database",
        || async {
            let body = a.me(Some(&session.access)).await;
            (body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED")
                .then_some(())
                .ok_or_else(|| body.to_string())
        },
    )
    .await;
}

/// How many `SCAN`s Redis has served: a rebuild scans every revocation key.
fn scans(redis: &PrivateRedis) -> u64 {
    redis.calls(&["scan"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn late_heartbeats_end_a_lapse_without_reading_everything_back() {
    let (redis, a, session) = one_instance_on_private_redis().await;
    let scanned = scans(&redis);
    assert!(scanned > 0, "the start reads the revocations back");

    // Redis holds every write, heartbeats (PUBLISH) included, past the trust window:
    // heartbeats come late, but nothing is lost.
    assert_eq!(redis.cli(&["CLIENT", "PAUSE", "2500", "WRITE"]), "OK");
    eventually(
        Duration::from_secs(2),
        "the instance stops trusting its memory",
        || async { a.trusts_its_memory().await.is_none().then_some(()) },
    )
    .await;
    a.wait_trusting().await;
    assert_eq!(
        scans(&redis),
        scanned,
        "a lapse with nothing missing needs no rebuild"
    );
    let metrics = a.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "identity_revocation_rebuilds_total{result=\"ok\"}"
        ),
        1.0,
        "only the start's rebuild: {metrics}"
    );

    // And the memory still answers for what happens next.
    data(&a.me(Some(&session.access)).await, "me");
    data(&a.logout(&session.refresh).await, "logout");
    assert_refused(&a, &a.me(Some(&session.access)).await, "after logout");
}

fn rebuilds(metrics: &str) -> f64 {
    sample(metrics, "identity_revocation_rebuilds_total{result=\"ok\"}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn events_of_a_newer_build_are_counted_and_only_the_ignorable_ones_ignored() {
    // A rolling upgrade: an instance of a later build publishes kinds this one does not
    // know. An ignorable one (`~`) is counted and changes nothing; any other may carry
    // what the memory must not miss, so the memory is read back at once.
    let (redis, a, session) = one_instance_on_private_redis().await;
    let before = rebuilds(&a.metrics().await);
    let channel = redis.cli(&["PUBSUB", "CHANNELS", "*events"]);
    let publisher = uuid::Uuid::new_v4();
    for message in [
        format!("h:{publisher}:0"),
        format!("~n:{publisher}:1:{}:more:fields", uuid::Uuid::new_v4()),
        format!("h:{publisher}:1"),
    ] {
        redis.cli(&["PUBLISH", &channel, &message]);
    }
    // A logout answers once the instance has heard its own event back, so everything
    // published before it has been heard too: the heartbeat settled the ignorable
    // event's number, and nothing is missing.
    data(&a.logout(&session.refresh).await, "logout");
    let metrics = a.metrics().await;
    assert!(
        a.trusts_its_memory().await.is_some(),
        "still trusted: {metrics}"
    );
    assert_eq!(rebuilds(&metrics), before, "{metrics}");
    assert_refused(&a, &a.me(Some(&session.access)).await, "after logout");

    // A kind that must be understood, with no heartbeat after it.
    redis.cli(&["PUBLISH", &channel, &format!("x:{publisher}:2:payload")]);
    eventually(
        Duration::from_secs(5),
        "the instance reads its memory back",
        || async {
            let now = rebuilds(&a.metrics().await);
            (now > before).then_some(()).ok_or(now.to_string())
        },
    )
    .await;
    a.wait_trusting().await;
    assert_refused(&a, &a.me(Some(&session.access)).await, "after the rebuild");
    let other = a.signed_up(&unique_email()).await;
    data(&a.me(Some(&other.access)).await, "me");
}
