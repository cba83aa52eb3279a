//! Prometheus metrics, through the `metrics` crates.
//!
//! Each `App` owns its recorder (no process-global one), so several instances in one
//! process — as in the tests — keep separate figures. Handles are registered on it
//! directly; the exporter renders the text format.

use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

const METADATA: Metadata<'static> = Metadata::new("identity", Level::INFO, Some(module_path!()));

/// Latency buckets, in seconds: from sub-millisecond reads to multi-second hashes.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new();
        let recorder = match builder.set_buckets(LATENCY_BUCKETS) {
            Ok(builder) => builder.build_recorder(),
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let handle = recorder.handle();
        let metrics = Self {
            recorder: Arc::new(recorder),
            handle,
        };
        metrics.describe();
        metrics
    }

    fn describe(&self) {
        let r = &self.recorder;
        let d = |name: &'static str, unit: Option<Unit>, text: &'static str| (name, unit, text);
        for (name, unit, text) in [
            d(
                "identity_http_requests_total",
                None,
                "HTTP requests by route, method and status",
            ),
            d(
                "identity_http_request_duration_seconds",
                Some(Unit::Seconds),
                "HTTP request latency by route",
            ),
            d(
                "identity_graphql_operations_total",
                None,
                "GraphQL root fields run, by field and outcome code",
            ),
            d(
                "identity_graphql_operation_duration_seconds",
                Some(Unit::Seconds),
                "GraphQL root field latency",
            ),
            d("identity_logins_total", None, "Login attempts by result"),
            d(
                "identity_rate_limited_total",
                None,
                "Requests refused by a rate limit, by limit",
            ),
            d(
                "identity_rate_limit_fallback_total",
                None,
                "Rate-limit checks made in process because Redis could not be reached, by limit",
            ),
            d(
                "identity_rate_limit_round_trips_total",
                None,
                "Calls to Redis for shared rate-limit budgets, by limit (one call may count several requests)",
            ),
            d(
                "identity_password_hash_queue_depth",
                None,
                "Password hashes waiting for a hashing thread",
            ),
            d(
                "identity_password_hash_duration_seconds",
                Some(Unit::Seconds),
                "Time to hash or verify a password",
            ),
            d(
                "identity_password_hash_rejected_total",
                None,
                "Hashes refused: every place taken (queue_full) or the client's share (client_share)",
            ),
            d(
                "identity_db_pool_connections",
                None,
                "Database pool connections by state",
            ),
            d(
                "identity_db_pool_max_connections",
                None,
                "Database pool size limit",
            ),
            d(
                "identity_outbox_backlog",
                None,
                "Mails waiting in the outbox",
            ),
            d(
                "identity_local_state_trusted",
                None,
                "1 while this instance's memory of revocations is complete (pub/sub heard)",
            ),
            d(
                "identity_profile_database_reads_total",
                None,
                "Profiles `me` read from the database: this instance held no trusted copy",
            ),
            d("identity_mail_total", None, "Outbox deliveries by result"),
            d(
                "identity_audit_events_total",
                None,
                "Security events recorded, by event",
            ),
            d(
                "identity_passkey_total",
                None,
                "Passkey operations (register, login, second_factor, rename, remove) by result",
            ),
            d(
                "identity_accounts_deleted_total",
                None,
                "Accounts deleted (their deletion came due, or was requested with no grace)",
            ),
            d(
                "identity_reset_batch_retries_total",
                None,
                "Password reset batches tried again after a database error",
            ),
            d(
                "identity_reset_requests_failed_total",
                None,
                "Password reset requests given up after failures: no mail sent",
            ),
            d(
                "identity_reset_requests_shed_total",
                None,
                "Password reset requests refused (RATE_LIMITED) because the queue was full",
            ),
            d(
                "identity_revocation_rebuilds_total",
                None,
                "Rebuilds of the instance's memory of revocations from the database and Redis, by result",
            ),
            d(
                "identity_revocation_rebuild_duration_seconds",
                Some(Unit::Seconds),
                "How long a rebuild of the memory of revocations took",
            ),
            d(
                "identity_http_open_connections",
                None,
                "Connections open, by listener (api, metrics); at most HTTP_MAX_CONNECTIONS each",
            ),
        ] {
            if name.ends_with("_total") {
                r.describe_counter(name.into(), unit, text.into());
            } else if name.ends_with("_seconds") {
                r.describe_histogram(name.into(), unit, text.into());
            } else {
                r.describe_gauge(name.into(), unit, text.into());
            }
        }
    }

    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, (*v).to_owned()))
            .collect();
        Key::from_parts(name, labels)
    }

    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&Self::key(name, labels), &METADATA)
    }

    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder
            .register_gauge(&Self::key(name, labels), &METADATA)
    }

    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder
            .register_histogram(&Self::key(name, labels), &METADATA)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Housekeeping the exporter needs now and then (draining histogram buffers).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    pub fn login(&self, result: &str) {
        self.counter("identity_logins_total", &[("result", result)])
            .increment(1);
    }

    pub fn rate_limited(&self, limit: &str) {
        self.counter("identity_rate_limited_total", &[("limit", limit)])
            .increment(1);
    }

    /// A shared limit could not be checked in Redis: this instance limited alone.
    pub fn rate_limit_fallback(&self, limit: &str) {
        self.counter("identity_rate_limit_fallback_total", &[("limit", limit)])
            .increment(1);
    }

    pub fn rate_limit_round_trip(&self, limit: &str) {
        self.counter("identity_rate_limit_round_trips_total", &[("limit", limit)])
            .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_recorded_per_instance() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.login("succeeded");
        a.histogram(
            "identity_http_request_duration_seconds",
            &[("route", "/graphql")],
        )
        .record(0.003);
        let text = a.render();
        assert!(
            text.contains("identity_logins_total{result=\"succeeded\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("identity_http_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(!b.render().contains("identity_logins_total{"));
    }
}
