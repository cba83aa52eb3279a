use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Longest accepted full name, in characters.
pub const FULL_NAME_MAX: usize = 150;

/// A user's profile: what the API shows and the services pass around. The password
/// hash is deliberately not here (see `store::users::Credential`), so nothing above the
/// store can log, cache or return it by accident.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub full_name: String,
    pub is_active: bool,
    pub date_joined: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
    /// When the owner proved control of `email` (a mailed link); `None` until then.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// When the account will be deleted, if its owner asked for that (it can still be
    /// cancelled until then).
    pub deletion_scheduled_for: Option<DateTime<Utc>>,
    /// Whether a password signs in: not for an account made by social login, or one
    /// a provider claimed, until a reset sets one.
    pub has_password: bool,
}

/// Trims a full name and checks it is present, bounded and printable.
pub fn parse_full_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("This field is required.");
    }
    if name.chars().count() > FULL_NAME_MAX {
        return Err("Ensure this value has at most 150 characters.");
    }
    if name.chars().any(char::is_control) {
        return Err("Enter a name without control characters.");
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_name_is_trimmed_and_bounded() {
        assert_eq!(parse_full_name("  Ada Lovelace ").unwrap(), "Ada Lovelace");
        assert!(parse_full_name(" \t ").is_err());
        assert!(parse_full_name(&"é".repeat(151)).is_err());
        assert!(parse_full_name(&"é".repeat(150)).is_ok());
        assert!(parse_full_name("Ada\u{0}Lovelace").is_err());
    }
}
