//! HTTP: routes and the middleware every request passes through.

mod client_ip;
mod graphiql;
mod graphql;
mod health;
mod metrics;
mod oauth;
mod serve;

pub use serve::{ConnectionLimits, serve};

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Method, Request, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tower::ServiceBuilder;
use tower_http::{
    LatencyUnit,
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::{DefaultOnResponse, TraceLayer},
};

use crate::{
    config::Config, error::ErrorCode, graphql::AppSchema, metrics::Metrics, service::Services,
};

/// What the handlers share: one allocation, since axum clones the state for every
/// extractor of every request.
#[derive(Clone)]
pub struct HttpState(Arc<Shared>);

pub struct Shared {
    pub schema: AppSchema,
    pub services: Services,
    pub metrics: Metrics,
    pub config: Arc<Config>,
    pub graphiql_html: String,
    /// Automatic persisted queries of this instance.
    pub persisted: crate::graphql::PersistedQueries,
}

impl std::ops::Deref for HttpState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl HttpState {
    pub fn new(schema: AppSchema, services: Services, config: Arc<Config>) -> Self {
        let graphiql_html = graphiql::page(&format!("{} GraphQL", config.service_name));
        Self(Arc::new(Shared {
            schema,
            metrics: services.metrics(),
            services,
            config,
            graphiql_html,
            persisted: crate::graphql::PersistedQueries::default(),
        }))
    }
}

/// For every response that does not set its own (GraphiQL does): nothing may run,
/// load or frame it.
const API_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: HttpState) -> Router {
    let http = &state.config.http;
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(http.cors_allowed_origins.iter().cloned()))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            REQUEST_ID,
            HeaderName::from_static("x-csrf-protection"),
            HeaderName::from_static("x-auth-transport"),
        ])
        // Cookie mode: listed origins may send the refresh cookie (never `*`).
        .allow_credentials(true)
        .expose_headers([REQUEST_ID])
        .max_age(Duration::from_secs(600));
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let request_id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    // The path only: a query string may carry a GraphQL document.
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %request_id,
                        operation = tracing::field::Empty,
                    )
                })
                // One line per request, when it ends (by then the operation is known),
                // with its latency; nothing when it starts.
                .on_request(())
                .on_response(
                    DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(LatencyUnit::Micros),
                ),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(CatchPanicLayer::custom(|_| internal_error_response()))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            http.request_timeout,
        ))
        .layer(cors)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        ));
    let mut routes = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/graphiql/4.1.2/{file}", get(graphiql::asset))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/oauth/start", get(oauth::start))
        .route("/oauth/callback/{provider}", get(oauth::callback))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if http.metrics_public {
        routes = routes.route("/metrics", get(metrics::render));
    }
    routes
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(http.body_limit_bytes))
        .with_state(state)
        .layer(middleware)
}

/// The router of the separate metrics listener (`METRICS_ADDR`).
pub fn metrics_router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .with_state(state)
}

/// The public keys that verify access tokens, when they are signed with EdDSA; other
/// services verify tokens with these, without a shared secret.
async fn jwks(axum::extract::State(state): axum::extract::State<HttpState>) -> Response {
    match state.services.auth.jwks() {
        Some(keys) => (
            [
                (header::CONTENT_TYPE, "application/jwk-set+json"),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            keys.to_string(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A GraphQL-shaped error body with one error and its code.
pub(crate) fn error_body(message: &str, code: ErrorCode) -> serde_json::Value {
    serde_json::json!({ "errors": [code.server_error(message)] })
}

fn internal_error_response() -> Response {
    tracing::error!("a handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "application/json")],
        error_body("Internal server error", ErrorCode::InternalServerError).to_string(),
    )
        .into_response()
}
