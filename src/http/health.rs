//! Liveness (no I/O) and readiness (database and ephemeral stores answer in time).

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use super::HttpState;
use crate::service::health::Check;

pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(super) async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    let readiness = state.services.health.readiness().await;
    let ready = readiness.is_ready();
    let mut checks = serde_json::Map::new();
    for (name, check) in &readiness.checks {
        let shown = match check {
            Check::Ok => json!({ "status": "ok" }),
            Check::Degraded(e) => json!({ "status": "degraded", "error": e }),
            Check::Failed(e) => json!({ "status": "error", "error": e }),
        };
        checks.insert((*name).into(), shown);
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // "degraded" still answers 200: it says what is wrong without taking the instance
    // out of rotation.
    let shown = match (ready, readiness.is_healthy()) {
        (false, _) => "unavailable",
        (true, false) => "degraded",
        (true, true) => "ready",
    };
    let body = json!({ "status": shown, "checks": checks });
    (status, Json(body))
}
