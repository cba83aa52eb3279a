//! Cookie mode: where an `AuthPayload`'s refresh token goes (the body, or an HttpOnly
//! cookie), and where `refreshToken` and `logout` find it.

use async_graphql::Context;

use super::{RequestCtx, types::AuthPayload};
use crate::{error::AppError, service};

/// Where a refresh token came from.
pub(super) struct Presented {
    pub token: String,
    pub from_cookie: bool,
}

/// The refresh token of a `refreshToken` or `logout` call: the argument, or else the
/// cookie, which only a request passing the CSRF checks may use. `None`: neither.
pub(super) fn presented(
    req: &RequestCtx,
    argument: Option<String>,
) -> Result<Option<Presented>, AppError> {
    if let Some(token) = argument {
        return Ok(Some(Presented {
            token,
            from_cookie: false,
        }));
    }
    let Some(token) = req.cookies.refresh_cookie.clone() else {
        return Ok(None);
    };
    if !req.cookies.csrf_passed {
        return Err(AppError::CsrfRejected);
    }
    Ok(Some(Presented {
        token,
        from_cookie: true,
    }))
}

/// The payload as the client asked for it: in cookie mode (or when the token came from
/// the cookie) the refresh token is set as the cookie and `null` in the body.
pub(super) fn deliver(
    ctx: &Context<'_>,
    payload: service::AuthPayload,
    from_cookie: bool,
) -> AuthPayload {
    let Ok(req) = ctx.data::<RequestCtx>() else {
        return payload.into();
    };
    if !(req.cookies.cookie_transport || from_cookie) {
        return payload.into();
    }
    set_refresh_cookie(ctx, req, &payload.refresh_token);
    AuthPayload {
        refresh_token: None,
        ..payload.into()
    }
}

fn set_refresh_cookie(ctx: &Context<'_>, req: &RequestCtx, token: &str) {
    let cookies = &req.cookies;
    let secure = if cookies.secure { "; Secure" } else { "" };
    let value = format!(
        "{}={token}; HttpOnly{secure}; SameSite=Strict; Path=/; Max-Age={}",
        cookies.name(),
        cookies.max_age_secs
    );
    ctx.append_http_header("set-cookie", value);
}

/// Clears the refresh cookie (logout, or a cookie that no longer works).
pub(super) fn clear_refresh_cookie(ctx: &Context<'_>) {
    let Ok(req) = ctx.data::<RequestCtx>() else {
        return;
    };
    let secure = if req.cookies.secure { "; Secure" } else { "" };
    let value = format!(
        "{}=; HttpOnly{secure}; SameSite=Strict; Path=/; Max-Age=0",
        req.cookies.name()
    );
    ctx.append_http_header("set-cookie", value);
}

/// Whether the caller uses cookie mode (asked for it, or presented the cookie).
pub(super) fn in_cookie_mode(req: &RequestCtx, presented: Option<&Presented>) -> bool {
    req.cookies.cookie_transport || presented.is_some_and(|p| p.from_cookie)
}
