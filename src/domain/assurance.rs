//! How well a session is proved: its authenticator assurance level (`aal1` | `aal2`),
//! the methods that proved it (`amr`, RFC 8176 names) and when a credential was last
//! proved on it (`auth_time`). Sessions store it; access tokens copy it as `acr`,
//! `amr` and `auth_time`; sensitive operations ask whether it is fresh.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Authenticator assurance level (NIST SP 800-63B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aal {
    /// One factor.
    Aal1,
    /// Two factors, or a passkey with user verification.
    Aal2,
}

impl Aal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aal1 => "aal1",
            Self::Aal2 => "aal2",
        }
    }

    /// Anything unknown reads as the lower level: never more assurance than proved.
    pub fn parse(s: &str) -> Self {
        if s == "aal2" { Self::Aal2 } else { Self::Aal1 }
    }
}

/// How a credential was proved (`amr` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A password.
    Pwd,
    /// A TOTP code.
    Otp,
    /// A recovery code.
    Rec,
    /// A passkey (proof of possession).
    Pop,
    /// A social provider.
    Fed,
    /// Two factors were proved.
    Mfa,
}

impl Method {
    const ALL: [Self; 6] = [
        Self::Pwd,
        Self::Otp,
        Self::Rec,
        Self::Pop,
        Self::Fed,
        Self::Mfa,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pwd => "pwd",
            Self::Otp => "otp",
            Self::Rec => "rec",
            Self::Pop => "pop",
            Self::Fed => "fed",
            Self::Mfa => "mfa",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A session's assurance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assurance {
    pub aal: Aal,
    pub amr: Vec<Method>,
    pub auth_time: DateTime<Utc>,
}

impl Assurance {
    /// A password proved at `now` (register, login): `aal1`, `["pwd"]`.
    pub fn password(now: DateTime<Utc>) -> Self {
        Self {
            aal: Aal::Aal1,
            amr: vec![Method::Pwd],
            auth_time: now,
        }
    }

    /// The methods as stored: space-separated names.
    pub fn amr_stored(&self) -> String {
        self.amr_names().join(" ")
    }

    pub fn amr_names(&self) -> Vec<&'static str> {
        self.amr.iter().map(|m| m.as_str()).collect()
    }

    /// Read back from a session row; unknown method names are dropped.
    pub fn from_stored(aal: &str, amr: &str, auth_time: DateTime<Utc>) -> Self {
        Self {
            aal: Aal::parse(aal),
            amr: amr.split_whitespace().filter_map(Method::parse).collect(),
            auth_time,
        }
    }

    /// Whether a credential was proved within `max_age` of `now`.
    pub fn is_fresh(&self, now: DateTime<Utc>, max_age: Duration) -> bool {
        let age = now.signed_duration_since(self.auth_time);
        chrono::Duration::from_std(max_age).is_ok_and(|max| age <= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips_and_unknown_values_grant_nothing() {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let proved = Assurance {
            aal: Aal::Aal2,
            amr: vec![Method::Pwd, Method::Otp, Method::Mfa],
            auth_time: now,
        };
        assert_eq!(proved.amr_stored(), "pwd otp mfa");
        assert_eq!(
            Assurance::from_stored("aal2", &proved.amr_stored(), now),
            proved
        );
        let odd = Assurance::from_stored("aal3", "pwd magic", now);
        assert_eq!(odd.aal, Aal::Aal1);
        assert_eq!(odd.amr, vec![Method::Pwd]);
    }

    #[test]
    fn fresh_means_proved_within_the_max_age() {
        let then = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let proved = Assurance::password(then);
        let max = Duration::from_secs(300);
        assert!(proved.is_fresh(then + chrono::Duration::seconds(300), max));
        assert!(!proved.is_fresh(then + chrono::Duration::seconds(301), max));
    }
}
