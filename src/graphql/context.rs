use crate::service::RequestMeta;

/// Per-request data the HTTP layer attaches to each GraphQL request.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// The `Authorization: Bearer` token, if any.
    pub bearer: Option<String>,
    pub meta: RequestMeta,
    /// How this request wants refresh tokens, and what it carries of cookie mode.
    pub cookies: CookieCtx,
}

/// Cookie mode (`X-Auth-Transport: cookie`): the refresh token travels in an HttpOnly
/// cookie instead of the body.
#[derive(Debug, Clone, Default)]
pub struct CookieCtx {
    /// The request asked for cookie mode.
    pub cookie_transport: bool,
    /// The refresh cookie it carried, if any.
    pub refresh_cookie: Option<String>,
    /// Whether a request relying on that cookie may: it carries `X-CSRF-Protection`,
    /// and its `Origin`, if any, is the service's own or an allowed one.
    pub csrf_passed: bool,
    /// `Secure` cookies with the `__Host-` name (`PUBLIC_URL` is https).
    pub secure: bool,
    /// How long the refresh cookie lives: the session's lifetime.
    pub max_age_secs: u64,
}

impl CookieCtx {
    /// The refresh cookie's name: `__Host-refresh_token` under https.
    pub fn name(&self) -> &'static str {
        refresh_cookie_name(self.secure)
    }
}

pub fn refresh_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-refresh_token"
    } else {
        "refresh_token"
    }
}
