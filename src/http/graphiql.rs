//! GraphiQL, served from this process: the page and its scripts come from our own
//! origin (vendored from npm, see `graphiql/NOTICE`), so the page runs under a strict
//! Content-Security-Policy — no inline script, no third-party origin.

use axum::{
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::HttpState;

/// Where the assets are served; the version in the path makes them cacheable forever.
pub(super) const ASSET_PREFIX: &str = "/graphiql/4.1.2";

/// The policy of the GraphiQL page. Styles may be inline (GraphiQL sets some at
/// run time); scripts only from this origin.
pub(super) const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript",
        include_bytes!("graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css",
        include_bytes!("graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript",
        include_bytes!("graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript",
        include_bytes!("graphiql/react-dom.production.min.js"),
    ),
    (
        "init.js",
        "text/javascript",
        include_bytes!("graphiql/init.js"),
    ),
    ("page.css", "text/css", include_bytes!("graphiql/page.css")),
];

/// The page, with the service's name as its title.
pub(super) fn page(title: &str) -> String {
    let title = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="robots" content="noindex">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{title}</title>
    <link rel="stylesheet" href="{ASSET_PREFIX}/graphiql.min.css">
    <link rel="stylesheet" href="{ASSET_PREFIX}/page.css">
  </head>
  <body>
    <div id="graphiql">Loading…</div>
    <script src="{ASSET_PREFIX}/react.production.min.js"></script>
    <script src="{ASSET_PREFIX}/react-dom.production.min.js"></script>
    <script src="{ASSET_PREFIX}/graphiql.min.js"></script>
    <script src="{ASSET_PREFIX}/init.js"></script>
  </body>
</html>
"#
    )
}

pub(super) fn page_response(html: &str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html.to_owned(),
    )
        .into_response()
}

pub(super) async fn asset(State(state): State<HttpState>, Path(name): Path<String>) -> Response {
    if !state.config.http.graphiql {
        return StatusCode::NOT_FOUND.into_response();
    }
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
