//! GraphQL over HTTP: POST with a JSON body (single or batch), GET for queries only,
//! and GraphiQL for browsers.

use std::net::SocketAddr;

use async_graphql::{
    BatchRequest, BatchResponse,
    parser::types::{DocumentOperations, ExecutableDocument, OperationType},
};
use axum::{
    body::Bytes,
    extract::{ConnectInfo, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{HttpState, error_body};
use tracing::Instrument;

use crate::{
    error::ErrorCode,
    graphql::{
        AppSchema, RequestCtx,
        context::{CookieCtx, refresh_cookie_name},
    },
    service::RequestMeta,
};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
/// Longest user agent kept on a session.
const MAX_USER_AGENT: usize = 512;

pub(super) async fn post(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_json(&headers) {
        return client_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send the request body as application/json",
            ErrorCode::BadRequest,
        );
    }
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(_) => {
            return client_error(
                StatusCode::BAD_REQUEST,
                "The body is not a GraphQL request in JSON",
                ErrorCode::BadRequest,
            );
        }
    };
    let size = match &batch {
        BatchRequest::Single(_) => 1,
        BatchRequest::Batch(requests) => requests.len(),
    };
    let max = state.config.http.max_batch;
    if size == 0 || size > max {
        return client_error(
            StatusCode::BAD_REQUEST,
            &format!("A batch holds 1 to {max} operations"),
            ErrorCode::BadRequest,
        );
    }
    let mut batch = batch;
    // Persisted queries first: what follows looks at the document they stand for.
    let unresolved: Vec<Option<async_graphql::ServerError>> = batch
        .iter_mut()
        .map(|r| state.persisted.resolve(r).err())
        .collect();
    if unresolved.iter().any(Option::is_some) {
        return render(&persisted_refusal(unresolved), &headers);
    }
    record_operation(batch.iter().map(|r| r.operation_name.as_deref()));
    let batch = batch.data(request_ctx(&state, &headers, peer));
    // Only mutations change state; a document without the keyword has none.
    if !batch.iter().any(|r| r.query.contains("mutation")) {
        return render(&state.schema.execute_batch(batch).await, &headers);
    }
    match run_detached(state.schema.clone(), batch).await {
        Some(response) => render(&response, &headers),
        None => internal_error(),
    }
}

pub(super) async fn get(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    if accepts_html(&headers) && !query.contains("query=") {
        return if state.config.http.graphiql {
            super::graphiql::page_response(&state.graphiql_html)
        } else {
            StatusCode::NOT_FOUND.into_response()
        };
    }
    let Ok(mut request) = async_graphql::http::parse_query_string(&query) else {
        return client_error(
            StatusCode::BAD_REQUEST,
            "Pass the GraphQL request as ?query=…&variables=…&operationName=…",
            ErrorCode::BadRequest,
        );
    };
    if let Err(error) = state.persisted.resolve(&mut request) {
        return render(
            &async_graphql::Response::from_errors(vec![error]).into(),
            &headers,
        );
    }
    let operation_name = request.operation_name.clone();
    if let Ok(document) = request.parsed_query()
        && is_mutation(document, operation_name.as_deref())
    {
        let mut response = client_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Mutations are only accepted over POST",
            ErrorCode::BadRequest,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    record_operation(std::iter::once(operation_name.as_deref()));
    let request = request.data(request_ctx(&state, &headers, peer));
    // Mutations were refused above: nothing here can be left half-done.
    render(&state.schema.execute(request).await.into(), &headers)
}

/// The answer to a request (or batch) with a persisted query this instance cannot
/// resolve: nothing of it runs; each operation gets its own error, or, if it was
/// fine, a note that the batch did not run.
fn persisted_refusal(unresolved: Vec<Option<async_graphql::ServerError>>) -> BatchResponse {
    let single = unresolved.len() == 1;
    let mut responses = unresolved.into_iter().map(|error| {
        let error = error.unwrap_or_else(|| {
            ErrorCode::BadRequest
                .server_error("Not run: another operation of the batch could not be resolved")
        });
        async_graphql::Response::from_errors(vec![error])
    });
    match (single, responses.next()) {
        (true, Some(response)) => BatchResponse::Single(response),
        (_, first) => BatchResponse::Batch(first.into_iter().chain(responses).collect()),
    }
}

/// Executes on a task of its own, so that a client going away (or the request timing
/// out) cannot cancel an operation half-way: a reset whose token is consumed always
/// sets the password, a rotation always commits or rolls back. `None` if it panicked.
async fn run_detached(schema: AppSchema, batch: BatchRequest) -> Option<BatchResponse> {
    let span = tracing::Span::current();
    let task = tokio::spawn(async move { schema.execute_batch(batch).await }.instrument(span));
    match task.await {
        Ok(response) => Some(response),
        Err(error) => {
            tracing::error!(
                panicked = error.is_panic(),
                "a GraphQL request failed to complete"
            );
            None
        }
    }
}

fn internal_error() -> Response {
    client_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal server error",
        ErrorCode::InternalServerError,
    )
}

/// Puts the client's operation name(s) on the request's log span.
fn record_operation<'a>(names: impl Iterator<Item = Option<&'a str>>) {
    let names: Vec<&str> = names.map(|n| n.unwrap_or("anonymous")).collect();
    tracing::Span::current().record("operation", names.join(",").as_str());
}

fn request_ctx(state: &HttpState, headers: &HeaderMap, peer: SocketAddr) -> RequestCtx {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    RequestCtx {
        bearer,
        meta: request_meta(state, headers, peer),
        cookies: cookie_ctx(state, headers),
    }
}

/// Who is asking: the client's address (through trusted proxies) and user agent.
pub(super) fn request_meta(
    state: &HttpState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> RequestMeta {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(MAX_USER_AGENT).collect());
    RequestMeta {
        ip: super::client_ip::client_ip(peer.ip(), headers, &state.config.http.trusted_proxies),
        user_agent,
    }
}

/// The value of the cookie `name`, if the request sent a non-empty one.
pub(super) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// What the request carries of cookie mode, and whether it passes the CSRF checks a
/// request relying on the refresh cookie must pass: the `X-CSRF-Protection` header (a
/// custom header: a cross-site form or image cannot send it, and a cross-site script
/// cannot without a CORS preflight we refuse), and an `Origin`, when sent, that is
/// the service's own (`PUBLIC_URL`, or the `Host` it was sent to) or allowed.
fn cookie_ctx(state: &HttpState, headers: &HeaderMap) -> CookieCtx {
    let http = &state.config.http;
    let secure = http.secure_cookies();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let cookie_transport =
        text("x-auth-transport").is_some_and(|v| v.trim().eq_ignore_ascii_case("cookie"));
    let name = refresh_cookie_name(secure);
    let refresh_cookie = cookie_value(headers, name);
    let has_header = text("x-csrf-protection").is_some_and(|v| !v.trim().is_empty());
    let origin_allowed = match text(header::ORIGIN.as_str()) {
        None => true,
        Some(origin) => {
            let origin = origin.trim();
            origin == http.public_origin
                || http.cors_allowed_origins.iter().any(|o| o == origin)
                || text(header::HOST.as_str()).is_some_and(|host| {
                    origin
                        .split_once("://")
                        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
                })
        }
    };
    CookieCtx {
        cookie_transport,
        refresh_cookie,
        csrf_passed: has_header && origin_allowed,
        secure,
        max_age_secs: state.config.tokens.refresh_ttl.as_secs(),
    }
}

fn is_mutation(document: &ExecutableDocument, operation_name: Option<&str>) -> bool {
    let ty = match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        // Ambiguous without a name: refused while executing anyway. Refuse it here
        // if any operation could be a mutation.
        (DocumentOperations::Multiple(ops), None) => ops
            .values()
            .any(|op| op.node.ty == OperationType::Mutation)
            .then_some(OperationType::Mutation),
    };
    ty == Some(OperationType::Mutation)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains(media))
}

fn accepts_html(headers: &HeaderMap) -> bool {
    accepts(headers, "text/html")
}

/// JSON as the client asked for it. With `application/graphql-response+json`, a request
/// that failed before execution (parse or validation) is a 400, as the GraphQL over
/// HTTP specification asks; with `application/json` every GraphQL answer is a 200.
fn render(response: &BatchResponse, headers: &HeaderMap) -> Response {
    let modern = accepts(headers, GRAPHQL_RESPONSE_JSON);
    let status = if has_code(response, ErrorCode::CsrfRejected) {
        StatusCode::FORBIDDEN
    } else if modern && is_request_error(response) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let content_type = if modern {
        "application/graphql-response+json; charset=utf-8"
    } else {
        "application/json"
    };
    match serde_json::to_vec(response) {
        Ok(body) => {
            let mut rendered = (
                status,
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                body,
            )
                .into_response();
            // What resolvers set: the refresh cookie of cookie mode.
            for (name, value) in response.http_headers_iter() {
                rendered.headers_mut().append(name, value);
            }
            rendered
        }
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "cannot serialise a GraphQL response");
            client_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error",
                ErrorCode::InternalServerError,
            )
        }
    }
}

/// Whether any error of the response carries `code`.
fn has_code(response: &BatchResponse, code: ErrorCode) -> bool {
    let responses: Vec<&async_graphql::Response> = match response {
        BatchResponse::Single(single) => vec![single],
        BatchResponse::Batch(all) => all.iter().collect(),
    };
    responses
        .iter()
        .flat_map(|r| r.errors.iter())
        .any(|e| e.extensions.as_ref().and_then(ErrorCode::read) == Some(code))
}

fn is_request_error(response: &BatchResponse) -> bool {
    let BatchResponse::Single(single) = response else {
        return false;
    };
    single.data == async_graphql::Value::Null
        && !single.errors.is_empty()
        && single.errors.iter().all(|e| {
            matches!(
                e.extensions.as_ref().and_then(ErrorCode::read),
                Some(ErrorCode::GraphqlParseFailed | ErrorCode::GraphqlValidationFailed)
            )
        })
}

fn client_error(status: StatusCode, message: &str, code: ErrorCode) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        error_body(message, code).to_string(),
    )
        .into_response()
}
