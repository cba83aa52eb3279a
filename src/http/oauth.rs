//! The browser's half of social login: `GET /oauth/start` (sets the binding cookie and
//! sends the browser to the provider) and `GET /oauth/callback/{provider}` (where the
//! provider returns; answers with a 303 to the app's `redirectTo` carrying a login code
//! or an error in the fragment). See `service::social` for the flow.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::{
    HttpState,
    graphql::{cookie_value, request_meta},
};
use crate::service::social::{Callback, binding_cookie_name};

#[derive(Deserialize)]
pub(super) struct StartQuery {
    flow: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// A plain page for a browser that arrived with no flow to continue.
fn no_flow() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        "This sign-in link has expired or was already used. Start again from the app.\n",
    )
        .into_response()
}

fn failed() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CACHE_CONTROL, "no-store")],
        "The sign-in could not be completed. Start again from the app.\n",
    )
        .into_response()
}

/// A 303 to `location`, never cached, with an optional cookie.
fn see_other(location: &str, cookie: Option<String>) -> Response {
    let Ok(location) = HeaderValue::from_str(location) else {
        return failed();
    };
    let mut response =
        (StatusCode::SEE_OTHER, [(header::CACHE_CONTROL, "no-store")]).into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The binding cookie: HttpOnly, `SameSite=Lax` (it must come back on the provider's
/// top-level redirect), `Secure` under https (then also `__Host-`).
fn binding_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}")
}

pub(super) async fn start(
    State(state): State<HttpState>,
    Query(query): Query<StartQuery>,
) -> Response {
    let Some(flow) = query.flow else {
        return no_flow();
    };
    match state.services.social.begin_redirect(&flow).await {
        Ok(Some(redirect)) => {
            let cookie = (!redirect.cookie_name.is_empty()).then(|| {
                binding_cookie(
                    &redirect.cookie_name,
                    &redirect.cookie_value,
                    redirect.max_age.as_secs(),
                    state.config.http.secure_cookies(),
                )
            });
            see_other(&redirect.location, cookie)
        }
        Ok(None) => no_flow(),
        Err(error) => {
            tracing::error!(error = ?error, "social login start failed");
            failed()
        }
    }
}

pub(super) async fn callback(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(provider): Path<String>,
    Query(query): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    let secure = state.config.http.secure_cookies();
    let cookie_name = query
        .state
        .as_deref()
        .map(|s| binding_cookie_name(s, secure));
    let binding = cookie_name
        .as_deref()
        .and_then(|name| cookie_value(&headers, name));
    let meta = request_meta(&state, &headers, peer);
    let callback = Callback {
        provider,
        code: query.code,
        state: query.state,
        error: query.error,
    };
    match state
        .services
        .social
        .finish_redirect(callback, binding.as_deref(), &meta)
        .await
    {
        Ok(Some(location)) => {
            let clear = cookie_name.map(|name| binding_cookie(&name, "", 0, secure));
            see_other(&location, clear)
        }
        Ok(None) => no_flow(),
        Err(error) => {
            tracing::error!(error = ?error, "social login callback failed");
            failed()
        }
    }
}
