//! Social login: the identity providers (`SOCIAL_PROVIDERS` and `SOCIAL_<ID>_*`) and
//! the exact URLs of the apps a finished flow may return to (`SOCIAL_REDIRECT_URLS`).
//!
//! Everything is checked at start: a provider's kind, its credentials, and an issuer or
//! endpoint that is not https (only with `SOCIAL_ALLOW_INSECURE_HTTP=true`, for tests).
//! The issuer's discovery document is fetched later, on first use, so a provider that
//! is down does not stop the service; its problems are logged naming the provider.

use secrecy::SecretString;
use url::Url;

use super::{ConfigError, vars::Described, vars::Vars};

pub(super) const VARS: &[&str] = &[
    "SOCIAL_PROVIDERS",
    "SOCIAL_REDIRECT_URLS",
    "SOCIAL_ALLOW_INSECURE_HTTP",
];

/// Whether `name` is a per-provider variable, `SOCIAL_<ID>_<SUFFIX>`: what a check of
/// variable names (`.env.example`, a test's settings) accepts besides `VARS`.
pub fn is_provider_variable(name: &str) -> bool {
    name.strip_prefix("SOCIAL_").is_some_and(|rest| {
        PER_PROVIDER.iter().any(|suffix| {
            rest.len() > suffix.len() + 1
                && rest.ends_with(suffix)
                && rest[..rest.len() - suffix.len()].ends_with('_')
        })
    })
}

/// The per-provider variables, `SOCIAL_<ID>_<SUFFIX>` (the id in upper case).
const PER_PROVIDER: &[&str] = &[
    "KIND",
    "NAME",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "ISSUER",
    "SCOPES",
    "TRUST_EMAIL",
    "AUTH_URL",
    "TOKEN_URL",
    "API_URL",
];

const GITHUB_AUTH_URL: &str = "https://github.com/login/oauth/authorize";
const GITHUB_TOKEN_URL: &str = "https://github.com/login/oauth/access_token";
const GITHUB_API_URL: &str = "https://api.github.com";

#[derive(Debug, Clone)]
pub struct SocialConfig {
    pub providers: Vec<ProviderConfig>,
    /// Where a finished flow may send the browser: exact URLs, compared as strings.
    pub redirect_urls: Vec<String>,
    pub allow_insecure_http: bool,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The id in `SOCIAL_PROVIDERS` (lower case): the `provider` of the API.
    pub id: String,
    /// What a sign-in button shows.
    pub name: String,
    pub kind: ProviderKind,
    pub client_id: String,
    pub client_secret: SecretString,
    pub scopes: Vec<String>,
    /// Whether an address the provider says is verified counts as verified here.
    pub trust_email: bool,
}

#[derive(Debug, Clone)]
pub enum ProviderKind {
    /// Any OpenID Connect issuer with discovery.
    Oidc { issuer: Url },
    /// GitHub: OAuth2 and its REST API.
    Github {
        auth_url: Url,
        token_url: Url,
        api_url: Url,
    },
}

impl ProviderKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Oidc { .. } => "oidc",
            Self::Github { .. } => "github",
        }
    }
}

/// A per-provider variable's name. Leaked once per provider and setting at start-up,
/// so a problem can name it like any other variable.
fn var_name(id: &str, suffix: &str) -> &'static str {
    Box::leak(format!("SOCIAL_{}_{suffix}", id.to_ascii_uppercase()).into_boxed_str())
}

impl SocialConfig {
    pub(super) fn read(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let allow_insecure_http = vars.bool("SOCIAL_ALLOW_INSECURE_HTTP", false)?;
        let mut providers: Vec<ProviderConfig> = Vec::new();
        for raw in vars.list("SOCIAL_PROVIDERS") {
            let id = raw.trim().to_ascii_lowercase();
            if id.is_empty()
                || id.len() > 32
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(ConfigError::new(
                    "SOCIAL_PROVIDERS",
                    format!("{raw:?} is not a provider id (a-z, 0-9 and _, at most 32)"),
                ));
            }
            if providers.iter().any(|p| p.id == id) {
                return Err(ConfigError::new(
                    "SOCIAL_PROVIDERS",
                    format!("{id:?} is listed twice"),
                ));
            }
            providers.push(read_provider(vars, &id, allow_insecure_http)?);
        }
        let mut redirect_urls = Vec::new();
        for raw in vars.list("SOCIAL_REDIRECT_URLS") {
            let url = Url::parse(&raw).map_err(|e| {
                ConfigError::new("SOCIAL_REDIRECT_URLS", format!("{raw:?} is not a URL: {e}"))
            })?;
            check_scheme("SOCIAL_REDIRECT_URLS", &url, allow_insecure_http, true)?;
            if url.fragment().is_some() {
                return Err(ConfigError::new(
                    "SOCIAL_REDIRECT_URLS",
                    format!("{raw:?} has a fragment: the flow's answer goes there"),
                ));
            }
            redirect_urls.push(raw);
        }
        if !providers.is_empty() && redirect_urls.is_empty() {
            return Err(ConfigError::new(
                "SOCIAL_REDIRECT_URLS",
                "social login needs at least one URL of the app to return to",
            ));
        }
        Ok(Self {
            providers,
            redirect_urls,
            allow_insecure_http,
        })
    }

    pub(super) fn describe(&self) -> Described {
        let providers = self
            .providers
            .iter()
            .map(|p| format!("{} ({})", p.id, p.kind.as_str()))
            .collect::<Vec<_>>();
        vec![
            ("SOCIAL_PROVIDERS", providers.join(",")),
            ("SOCIAL_REDIRECT_URLS", self.redirect_urls.join(",")),
            (
                "SOCIAL_ALLOW_INSECURE_HTTP",
                self.allow_insecure_http.to_string(),
            ),
        ]
    }
}

fn read_provider(
    vars: &Vars<'_>,
    id: &str,
    allow_insecure_http: bool,
) -> Result<ProviderConfig, ConfigError> {
    let required = |suffix: &str| {
        let var = var_name(id, suffix);
        vars.get(var)
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| ConfigError::new(var, format!("required for provider {id:?}")))
    };
    let url = |suffix: &str, default: Option<&str>| -> Result<Url, ConfigError> {
        let var = var_name(id, suffix);
        let raw = match (vars.get(var), default) {
            (Some(raw), _) => raw.trim().to_owned(),
            (None, Some(default)) => default.to_owned(),
            (None, None) => {
                return Err(ConfigError::new(
                    var,
                    format!("required for provider {id:?}"),
                ));
            }
        };
        let url = Url::parse(&raw).map_err(|e| ConfigError::new(var, format!("{raw:?}: {e}")))?;
        check_scheme(var, &url, allow_insecure_http, false)?;
        Ok(url)
    };
    let kind_var = var_name(id, "KIND");
    let kind = match required("KIND")?.to_ascii_lowercase().as_str() {
        "oidc" => ProviderKind::Oidc {
            issuer: url("ISSUER", None)?,
        },
        "github" => ProviderKind::Github {
            auth_url: url("AUTH_URL", Some(GITHUB_AUTH_URL))?,
            token_url: url("TOKEN_URL", Some(GITHUB_TOKEN_URL))?,
            api_url: url("API_URL", Some(GITHUB_API_URL))?,
        },
        other => {
            return Err(ConfigError::new(
                kind_var,
                format!("expected oidc or github, got {other:?}"),
            ));
        }
    };
    let scopes_var = var_name(id, "SCOPES");
    let mut scopes: Vec<String> = vars
        .get(scopes_var)
        .map(|raw| {
            raw.split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if scopes.is_empty() {
        scopes = match kind {
            ProviderKind::Oidc { .. } => vec!["email".into(), "profile".into()],
            ProviderKind::Github { .. } => vec!["read:user".into(), "user:email".into()],
        };
    }
    // `openid` is always asked for by the OpenID Connect client itself.
    scopes.retain(|s| s != "openid");
    let name = vars
        .get(var_name(id, "NAME"))
        .map(|n| n.trim().to_owned())
        .unwrap_or_else(|| default_name(id));
    Ok(ProviderConfig {
        id: id.to_owned(),
        name,
        kind,
        client_id: required("CLIENT_ID")?,
        client_secret: SecretString::from(required("CLIENT_SECRET")?),
        scopes,
        trust_email: vars.bool(var_name(id, "TRUST_EMAIL"), false)?,
    })
}

fn default_name(id: &str) -> String {
    let mut chars = id.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// https, or http when allowed (tests); for an app's URL also http on localhost.
fn check_scheme(
    var: &'static str,
    url: &Url,
    allow_insecure_http: bool,
    localhost_http: bool,
) -> Result<(), ConfigError> {
    let localhost = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http || (localhost_http && localhost) => Ok(()),
        "http" => Err(ConfigError::new(
            var,
            format!("{url} is plain http (SOCIAL_ALLOW_INSECURE_HTTP=true allows it, for tests)"),
        )),
        other => Err(ConfigError::new(
            var,
            format!("{url}: expected an https URL, got scheme {other:?}"),
        )),
    }
}
