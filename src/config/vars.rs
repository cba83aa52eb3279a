//! Reading and parsing variables, each error naming its variable.

use std::{str::FromStr, time::Duration};

use super::{AppEnv, ConfigError};

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

    /// A duration in whole seconds, between `min` and `max`: an absurd value would
    /// overflow the arithmetic on timestamps at every request instead of at start.
    pub(super) fn secs(
        &self,
        var: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        let secs: u64 = self.parse(var, default)?;
        if secs < min {
            return Err(ConfigError::new(
                var,
                format!("must be at least {min} seconds, got {secs}"),
            ));
        }
        if secs > max {
            return Err(ConfigError::new(
                var,
                format!("must be at most {max} seconds, got {secs}"),
            ));
        }
        Ok(Duration::from_secs(secs))
    }

    /// A link mailed to users: an `http(s)://` template holding `{token}`, which a
    /// single-use token replaces; `https://` in production, since the link is worth
    /// what its token grants.
    pub(super) fn link_template(
        &self,
        var: &'static str,
        default: &str,
        env: AppEnv,
    ) -> Result<String, ConfigError> {
        let template = self.get(var).unwrap_or_else(|| default.to_owned());
        if !template.contains("{token}") {
            return Err(ConfigError::new(
                var,
                "must contain the placeholder {token}",
            ));
        }
        if !(template.starts_with("https://") || template.starts_with("http://")) {
            return Err(ConfigError::new(var, "must be an http:// or https:// URL"));
        }
        if env == AppEnv::Production && !template.starts_with("https://") {
            return Err(ConfigError::new(
                var,
                "must be an https:// URL in production (the link carries a token)",
            ));
        }
        Ok(template)
    }

    /// A count above zero and at most `max`.
    pub(super) fn positive<T>(
        &self,
        var: &'static str,
        default: T,
        max: T,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Default + Copy + std::fmt::Display,
        T::Err: std::fmt::Display,
    {
        let v = self.parse(var, default)?;
        if v <= T::default() {
            return Err(ConfigError::new(var, format!("must be positive, got {v}")));
        }
        at_most(var, v, &max)
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

/// `value`, unless it is above `max`.
pub(super) fn at_most<T: PartialOrd + std::fmt::Display>(
    var: &'static str,
    value: T,
    max: &T,
) -> Result<T, ConfigError> {
    if value > *max {
        return Err(ConfigError::new(
            var,
            format!("must be at most {max}, got {value}"),
        ));
    }
    Ok(value)
}

/// Seconds in a day, for the upper bounds of durations.
pub(super) const DAY: u64 = 24 * 3600;

/// What a section shows for `check-config` and the start-up log: each of its
/// variables with the value in use, secrets masked.
pub(super) type Described = Vec<(&'static str, String)>;

/// A duration as the whole seconds it was given in.
pub(super) fn secs(duration: Duration) -> String {
    duration.as_secs().to_string()
}

/// Hides the passwords of a URL: in the user part (`scheme://user:***@host/...`) and
/// in a `password=` query parameter (`redis://host/?password=***`).
pub(super) fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let masked = match rest.split_once('@') {
        Some((userinfo, host)) if !userinfo.contains(['/', '?', '#']) => {
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    };
    mask_query_password(&masked)
}

/// Replaces the value of every `password` query parameter (any case, and names ending
/// in it, such as `sentinelPassword`) with `***`.
fn mask_query_password(url: &str) -> String {
    let Some((base, rest)) = url.split_once('?') else {
        return url.to_owned();
    };
    let (query, fragment) = match rest.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (rest, None),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _)) if name.to_ascii_lowercase().ends_with("password") => {
                format!("{name}=***")
            }
            _ => param.to_owned(),
        })
        .collect();
    let mut out = format!("{base}?{}", params.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}
