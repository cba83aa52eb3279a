//! Reading and parsing variables, each error naming its variable.

use std::{str::FromStr, time::Duration};

use super::ConfigError;

/// Reads variables from some source: the process environment in production, a map in
/// tests (never `std::env::set_var`). Empty values count as unset.
pub(super) struct Vars<'a> {
    pub(super) lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Vars<'_> {
    pub(super) fn get(&self, var: &str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    pub(super) fn parse<T: FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e| ConfigError::new(var, format!("cannot parse {raw:?}: {e}"))),
        }
    }

    pub(super) fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
            Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(false),
            Some(v) => Err(ConfigError::new(
                var,
                format!("expected true or false, got {v:?}"),
            )),
        }
    }

    /// A duration in whole seconds, at least `min`.
    pub(super) fn secs(
        &self,
        var: &'static str,
        default: u64,
        min: u64,
    ) -> Result<Duration, ConfigError> {
        let secs: u64 = self.parse(var, default)?;
        if secs < min {
            return Err(ConfigError::new(
                var,
                format!("must be at least {min} seconds, got {secs}"),
            ));
        }
        Ok(Duration::from_secs(secs))
    }

    pub(super) fn positive<T>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Default + std::fmt::Display,
        T::Err: std::fmt::Display,
    {
        let v = self.parse(var, default)?;
        if v <= T::default() {
            return Err(ConfigError::new(var, format!("must be positive, got {v}")));
        }
        Ok(v)
    }

    /// One of `choices` (case-insensitive); the first is the default.
    pub(super) fn choice(
        &self,
        var: &'static str,
        choices: &[&'static str],
    ) -> Result<&'static str, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(choices[0]);
        };
        choices
            .iter()
            .find(|c| c.eq_ignore_ascii_case(raw.trim()))
            .copied()
            .ok_or_else(|| {
                ConfigError::new(
                    var,
                    format!("expected one of {}, got {raw:?}", choices.join(", ")),
                )
            })
    }

    /// A comma-separated list; empty items are dropped.
    pub(super) fn list(&self, var: &str) -> Vec<String> {
        self.get(var)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What a section shows for `check-config` and the start-up log: each of its
/// variables with the value in use, secrets masked.
pub(super) type Described = Vec<(&'static str, String)>;

/// A duration as the whole seconds it was given in.
pub(super) fn secs(duration: Duration) -> String {
    duration.as_secs().to_string()
}

/// Hides the password part of a URL (`scheme://user:***@host/...`).
pub(super) fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}
