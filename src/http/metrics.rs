//! Request metrics, and the Prometheus endpoint.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use sea_orm::DbBackend;

use super::HttpState;
use crate::store::outbox;

/// Counts and times every routed request by route template, method and status.
pub async fn track(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &state.deps.metrics;
    metrics
        .counter(
            "identity_http_requests_total",
            &[
                ("route", &route),
                ("method", &method),
                ("status", response.status().as_str()),
            ],
        )
        .increment(1);
    metrics
        .histogram(
            "identity_http_request_duration_seconds",
            &[("route", &route)],
        )
        .record(started.elapsed());
    response
}

/// `GET /metrics`: the figures recorded so far, plus gauges read now (pool usage,
/// outbox backlog).
pub async fn render(State(state): State<HttpState>) -> Response {
    let deps = &state.deps;
    let metrics = &deps.metrics;
    let (size, idle, max) = match deps.db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = deps.db.get_postgres_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        DbBackend::Sqlite => {
            let pool = deps.db.get_sqlite_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        _ => (0, 0, 0),
    };
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    metrics
        .gauge("identity_db_pool_connections", &[("state", "idle")])
        .set(f64::from(idle));
    metrics
        .gauge("identity_db_pool_connections", &[("state", "in_use")])
        .set(f64::from(size.saturating_sub(idle)));
    metrics
        .gauge("identity_db_pool_max_connections", &[])
        .set(f64::from(max));
    metrics
        .gauge("identity_local_state_trusted", &[])
        .set(if deps.tokens.local_state_trusted() {
            1.0
        } else {
            0.0
        });
    match outbox::backlog(&deps.db).await {
        Ok(backlog) => metrics
            .gauge("identity_outbox_backlog", &[])
            .set(backlog as f64),
        Err(error) => tracing::warn!(?error, "cannot count the outbox backlog"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}
