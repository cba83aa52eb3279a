//! The HTTP listener, GraphQL document limits, browser origins, proxies, metrics
//! listener and shutdown.

use std::{net::SocketAddr, time::Duration};

use axum::http::HeaderValue;
use ipnet::IpNet;

use super::{
    AppEnv, ConfigError,
    vars::{Described, Vars, at_most, secs},
};

pub(super) const VARS: &[&str] = &[
    "BIND_ADDR",
    "GRAPHIQL_ENABLED",
    "INTROSPECTION_ENABLED",
    "HTTP_BODY_LIMIT_BYTES",
    "HTTP_REQUEST_TIMEOUT",
    "HTTP_HEADER_READ_TIMEOUT",
    "HTTP_MAX_CONNECTIONS",
    "GRAPHQL_MAX_BATCH",
    "GRAPHQL_MAX_DEPTH",
    "GRAPHQL_MAX_COMPLEXITY",
    "GRAPHQL_MAX_ALIASES",
    "CORS_ALLOWED_ORIGINS",
    "PUBLIC_URL",
    "TRUSTED_PROXIES",
    "METRICS_ADDR",
    "METRICS_PUBLIC",
    "SHUTDOWN_TIMEOUT",
];

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub bind_addr: SocketAddr,
    pub graphiql: bool,
    pub introspection: bool,
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    /// How long a client has to send a request's head (request line and headers),
    /// from the connection's start or the previous response on a kept-alive one.
    pub header_read_timeout: Duration,
    /// Connections served at once; beyond, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Operations accepted in one JSON array batch.
    pub max_batch: usize,
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    /// Origins (`https://app.example`) allowed to call from a browser; empty: none.
    pub cors_allowed_origins: Vec<HeaderValue>,
    /// The service's external base URL (`https://id.example`), without a trailing slash.
    pub public_url: String,
    /// Its origin (`scheme://host[:port]`): a browser request from it is same-origin.
    pub public_origin: String,
    /// Proxies whose `X-Forwarded-For` is believed; empty: the socket peer is the client.
    pub trusted_proxies: Vec<IpNet>,
    /// A separate listener for `/metrics`; `None`: served on `bind_addr`.
    pub metrics_addr: Option<SocketAddr>,
    /// Whether `/metrics` is also served on `bind_addr`: by default in development
    /// when there is no `metrics_addr`, never in production unless asked.
    pub metrics_public: bool,
    /// How long shutdown waits for in-flight requests and background work.
    pub shutdown_timeout: Duration,
}

impl HttpConfig {
    /// GraphiQL and introspection default to on in development only.
    pub(super) fn read(vars: &Vars<'_>, env: AppEnv) -> Result<Self, ConfigError> {
        let dev = env == AppEnv::Development;
        let trusted_proxies: Vec<IpNet> = vars
            .list("TRUSTED_PROXIES")
            .iter()
            .map(|cidr| parse_cidr(cidr))
            .collect::<Result<_, _>>()?;
        if !dev && let Some(all) = trusted_proxies.iter().find(|net| net.prefix_len() == 0) {
            // Anyone could then claim any address: per-IP limits and the audit trail
            // would believe every client.
            return Err(ConfigError::new(
                "TRUSTED_PROXIES",
                format!("{all} trusts every address; in production name the proxies"),
            ));
        }
        let metrics_addr = match vars.get("METRICS_ADDR") {
            None => None,
            Some(_) => Some(vars.parse("METRICS_ADDR", SocketAddr::from(([127, 0, 0, 1], 9100)))?),
        };
        let (public_url, public_origin) = public_url(vars)?;
        if !dev && !public_url.starts_with("https://") {
            tracing::warn!(
                "PUBLIC_URL is not https: cookie mode's refresh cookie will not be Secure"
            );
        }
        Ok(Self {
            bind_addr: vars.parse("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], 8000)))?,
            graphiql: vars.bool("GRAPHIQL_ENABLED", dev)?,
            introspection: vars.bool("INTROSPECTION_ENABLED", dev)?,
            body_limit_bytes: vars.positive(
                "HTTP_BODY_LIMIT_BYTES",
                64 * 1024,
                16 * 1024 * 1024,
            )?,
            request_timeout: vars.secs("HTTP_REQUEST_TIMEOUT", 15, 1, 300)?,
            header_read_timeout: vars.secs("HTTP_HEADER_READ_TIMEOUT", 10, 1, 300)?,
            max_connections: vars.positive("HTTP_MAX_CONNECTIONS", 4096, 1_000_000)?,
            max_batch: vars.positive("GRAPHQL_MAX_BATCH", 10, 100)?,
            max_depth: vars.positive("GRAPHQL_MAX_DEPTH", 16, 256)?,
            max_complexity: vars.positive("GRAPHQL_MAX_COMPLEXITY", 1000, 100_000)?,
            max_aliases: at_most(
                "GRAPHQL_MAX_ALIASES",
                vars.parse("GRAPHQL_MAX_ALIASES", 16)?,
                &1000,
            )?,
            cors_allowed_origins: cors_origins(&vars.list("CORS_ALLOWED_ORIGINS"))?,
            public_url,
            public_origin,
            trusted_proxies,
            metrics_public: vars.bool("METRICS_PUBLIC", dev && metrics_addr.is_none())?,
            metrics_addr,
            shutdown_timeout: vars.secs("SHUTDOWN_TIMEOUT", 20, 1, 3600)?,
        })
    }

    pub(super) fn describe(&self) -> Described {
        let origins: Vec<&str> = self
            .cors_allowed_origins
            .iter()
            .filter_map(|o| o.to_str().ok())
            .collect();
        let proxies: Vec<String> = self
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        vec![
            ("BIND_ADDR", self.bind_addr.to_string()),
            ("GRAPHIQL_ENABLED", self.graphiql.to_string()),
            ("INTROSPECTION_ENABLED", self.introspection.to_string()),
            ("HTTP_BODY_LIMIT_BYTES", self.body_limit_bytes.to_string()),
            ("HTTP_REQUEST_TIMEOUT", secs(self.request_timeout)),
            ("HTTP_HEADER_READ_TIMEOUT", secs(self.header_read_timeout)),
            ("HTTP_MAX_CONNECTIONS", self.max_connections.to_string()),
            ("GRAPHQL_MAX_BATCH", self.max_batch.to_string()),
            ("GRAPHQL_MAX_DEPTH", self.max_depth.to_string()),
            ("GRAPHQL_MAX_COMPLEXITY", self.max_complexity.to_string()),
            ("GRAPHQL_MAX_ALIASES", self.max_aliases.to_string()),
            ("CORS_ALLOWED_ORIGINS", origins.join(",")),
            ("PUBLIC_URL", self.public_url.clone()),
            ("TRUSTED_PROXIES", proxies.join(",")),
            (
                "METRICS_ADDR",
                self.metrics_addr
                    .map_or("(unset: /metrics on BIND_ADDR)".into(), |a| a.to_string()),
            ),
            ("METRICS_PUBLIC", self.metrics_public.to_string()),
            ("SHUTDOWN_TIMEOUT", secs(self.shutdown_timeout)),
        ]
    }
}

/// `PUBLIC_URL`: an http(s) URL without query or fragment; returns it without a
/// trailing slash, and its origin.
fn public_url(vars: &Vars<'_>) -> Result<(String, String), ConfigError> {
    let raw = vars
        .get("PUBLIC_URL")
        .unwrap_or_else(|| "http://localhost:8000".to_owned());
    let url = raw.trim().trim_end_matches('/').to_owned();
    let bad = || {
        ConfigError::new(
            "PUBLIC_URL",
            format!("{raw:?} is not a base URL like https://id.example"),
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let authority = rest.split('/').next().unwrap_or_default();
    if !matches!(scheme, "http" | "https")
        || authority.is_empty()
        || url.contains(['?', '#', '*', ' '])
    {
        return Err(bad());
    }
    let origin = format!("{scheme}://{authority}");
    Ok((url, origin))
}

impl HttpConfig {
    /// Whether cookies must be `Secure` (and the refresh cookie `__Host-` prefixed).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// Exact origins only. `*` is refused: a wildcard would let any site read the answers.
fn cors_origins(list: &[String]) -> Result<Vec<HeaderValue>, ConfigError> {
    list.iter()
        .map(|origin| {
            let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.contains('*')
                && origin
                    .split("://")
                    .nth(1)
                    .is_some_and(|h| !h.is_empty() && !h.contains('/'));
            if !valid {
                return Err(ConfigError::new(
                    "CORS_ALLOWED_ORIGINS",
                    format!("{origin:?} is not an origin like https://app.example"),
                ));
            }
            HeaderValue::from_str(origin)
                .map_err(|e| ConfigError::new("CORS_ALLOWED_ORIGINS", e.to_string()))
        })
        .collect()
}

/// A CIDR (`10.0.0.0/8`) or a single address (`10.0.0.1`).
fn parse_cidr(raw: &str) -> Result<IpNet, ConfigError> {
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            ConfigError::new(
                "TRUSTED_PROXIES",
                format!("{raw:?} is not a CIDR or IP address"),
            )
        })
}
