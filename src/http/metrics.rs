//! Request metrics, and the Prometheus endpoint.

use std::time::Instant;

use super::HttpState;
use axum::{
    extract::{MatchedPath, Request, State},
    http::{Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

/// Counts and times every routed request by route template, method and status.
pub(super) async fn track(
    State(state): State<HttpState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .counter(
            "identity_http_requests_total",
            &[
                ("route", &route),
                ("method", method),
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

/// The method as a label: the standard ones by name, anything else as `other`, so a
/// client cannot add series by inventing methods.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// `GET /metrics`: the figures recorded so far, plus gauges read now (pool usage,
/// outbox backlog).
pub(super) async fn render(State(state): State<HttpState>) -> Response {
    let metrics = state.services.health.scrape().await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}
