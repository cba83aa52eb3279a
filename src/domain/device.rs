//! The device behind a session: its user agent as sent (bounded), and the browser and
//! operating system read from it once, when the session starts.

/// The longest user agent kept, in characters.
pub const MAX_USER_AGENT: usize = 512;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    /// As sent, cut to [`MAX_USER_AGENT`] characters.
    pub user_agent: Option<String>,
    /// e.g. `Firefox`; `None` when unknown.
    pub browser: Option<String>,
    /// e.g. `Linux`; `None` when unknown.
    pub os: Option<String>,
}

impl Device {
    pub fn from_user_agent(user_agent: Option<&str>) -> Self {
        let Some(user_agent) = user_agent.filter(|ua| !ua.is_empty()) else {
            return Self::default();
        };
        let user_agent: String = user_agent.chars().take(MAX_USER_AGENT).collect();
        let parsed = woothee::parser::Parser::new().parse(&user_agent);
        let known = |value: &str| {
            (!value.is_empty() && value != woothee::woothee::VALUE_UNKNOWN)
                .then(|| value.to_owned())
        };
        let (browser, os) = match &parsed {
            Some(p) => (known(p.name), known(p.os)),
            None => (None, None),
        };
        Self {
            user_agent: Some(user_agent),
            browser,
            os,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_and_systems_are_named() {
        let firefox = Device::from_user_agent(Some(
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        ));
        assert_eq!(firefox.browser.as_deref(), Some("Firefox"));
        assert_eq!(firefox.os.as_deref(), Some("Linux"));
        let chrome = Device::from_user_agent(Some(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36",
        ));
        assert_eq!(chrome.browser.as_deref(), Some("Chrome"));
        assert_eq!(chrome.os.as_deref(), Some("Windows 10"));
    }

    #[test]
    fn unknown_agents_have_no_names_and_long_ones_are_cut() {
        let curl = Device::from_user_agent(Some("my-script/1.0"));
        assert_eq!(curl.user_agent.as_deref(), Some("my-script/1.0"));
        assert_eq!((curl.browser, curl.os), (None, None));
        assert_eq!(Device::from_user_agent(None), Device::default());
        let long = Device::from_user_agent(Some(&"é".repeat(600)));
        assert_eq!(long.user_agent.unwrap().chars().count(), MAX_USER_AGENT);
    }
}
