//! Passkeys (WebAuthn): the relying party id and the origins ceremonies may come from.
//! Never taken from a request: a ceremony from any other origin fails.

use webauthn_rs::prelude::Url;

use super::{ConfigError, vars::Described, vars::Vars};

pub(super) const VARS: &[&str] = &["WEBAUTHN_RP_ID", "WEBAUTHN_ORIGINS"];

#[derive(Debug, Clone)]
pub struct WebauthnConfig {
    /// The relying party id passkeys are bound to (a host name; changing it orphans
    /// every registered passkey).
    pub rp_id: String,
    /// The web origins a ceremony may come from; each one's host is the RP id or a
    /// subdomain of it.
    pub origins: Vec<Url>,
}

impl WebauthnConfig {
    pub(super) fn read(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let rp_id = vars
            .get("WEBAUTHN_RP_ID")
            .map(|raw| raw.trim().to_ascii_lowercase())
            .unwrap_or_else(|| "localhost".to_owned());
        let valid_host = !rp_id.is_empty()
            && !rp_id.starts_with('.')
            && !rp_id.ends_with('.')
            && rp_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !valid_host {
            return Err(ConfigError::new(
                "WEBAUTHN_RP_ID",
                format!("expected a host name such as example.com, got {rp_id:?}"),
            ));
        }
        let mut raw = vars.list("WEBAUTHN_ORIGINS");
        if raw.is_empty() {
            raw.push("http://localhost:3000".to_owned());
        }
        let mut origins = Vec::with_capacity(raw.len());
        for item in raw {
            let origin = Url::parse(&item).map_err(|e| {
                ConfigError::new("WEBAUTHN_ORIGINS", format!("{item:?} is not a URL: {e}"))
            })?;
            if !matches!(origin.scheme(), "https" | "http")
                || origin.path() != "/"
                || origin.query().is_some()
                || origin.fragment().is_some()
            {
                return Err(ConfigError::new(
                    "WEBAUTHN_ORIGINS",
                    format!("{item:?} is not an origin (scheme://host[:port], nothing after)"),
                ));
            }
            let host = origin.domain().unwrap_or_default();
            if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
                return Err(ConfigError::new(
                    "WEBAUTHN_ORIGINS",
                    format!(
                        "the host of {item:?} is neither WEBAUTHN_RP_ID ({rp_id}) nor a subdomain of it"
                    ),
                ));
            }
            if origin.scheme() == "http" && host != "localhost" && !host.ends_with(".localhost") {
                return Err(ConfigError::new(
                    "WEBAUTHN_ORIGINS",
                    format!("{item:?}: only localhost may be plain http"),
                ));
            }
            origins.push(origin);
        }
        Ok(Self { rp_id, origins })
    }

    pub(super) fn describe(&self) -> Described {
        vec![
            ("WEBAUTHN_RP_ID", self.rp_id.clone()),
            (
                "WEBAUTHN_ORIGINS",
                self.origins
                    .iter()
                    .map(|o| o.origin().ascii_serialization())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ]
    }
}
