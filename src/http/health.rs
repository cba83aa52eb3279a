//! Liveness (no I/O) and readiness (database and token store answer in time).

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use super::HttpState;
use crate::store::db;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    let deps = &state.deps;
    let store_name = if state.config.redis.is_some() {
        "redis"
    } else {
        "tokenStore"
    };
    let (database, store) = tokio::join!(check(db::ping(&deps.db)), check(deps.tokens.ping()),);
    let ready = database.is_ok() && store.is_ok();
    let describe = |r: Result<(), String>| match r {
        Ok(()) => json!({ "status": "ok" }),
        Err(e) => json!({ "status": "error", "error": e }),
    };
    let mut checks = serde_json::Map::new();
    checks.insert("database".into(), describe(database));
    checks.insert(store_name.into(), describe(store));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if ready { "ready" } else { "unavailable" }, "checks": checks });
    (status, Json(body))
}

/// Runs one check with a deadline; the error text names no secret (no URL).
async fn check(fut: impl Future<Output = anyhow::Result<()>>) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, fut).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = ?e, "readiness check failed");
            Err("unreachable".into())
        }
        Err(_) => Err("timed out".into()),
    }
}
