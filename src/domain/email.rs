use email_address::{EmailAddress, Options};

/// The longest address SMTP can carry (RFC 5321 §4.5.3.1.3).
pub const MAX_LENGTH: usize = 254;

pub const INVALID_MESSAGE: &str = "Enter a valid email address.";

/// A syntactically valid address in its normal form: trimmed and lower-cased, so that
/// one mailbox is one account however it is typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let normalised = raw.trim().to_lowercase();
        if normalised.is_empty() {
            return Err("This field is required.");
        }
        if normalised.len() > MAX_LENGTH {
            return Err("Ensure this value has at most 254 characters.");
        }
        let options = Options::default()
            .with_required_tld()
            .without_domain_literal()
            .without_display_text();
        match EmailAddress::parse_with_options(&normalised, options) {
            Ok(_) => Ok(Self(normalised)),
            Err(_) => Err(INVALID_MESSAGE),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or(&self.0, |(local, _)| local)
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_whitespace() {
        let e = Email::parse("  Ada.Lovelace@Example.COM \n").unwrap();
        assert_eq!(e.as_str(), "ada.lovelace@example.com");
        assert_eq!(e.local_part(), "ada.lovelace");
    }

    #[test]
    fn rejects_what_is_not_an_address() {
        for bad in [
            "",
            "   ",
            "ada",
            "ada@",
            "@example.com",
            "ada@localhost",
            "ada@@example.com",
            "Ada <ada@example.com>",
            "ada@[127.0.0.1]",
            "ada lovelace@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }
}
