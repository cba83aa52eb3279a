//! The checks every new password goes through, whichever operation sets it (register,
//! resetPassword, and any later one): normalised, held to the policy with the user's
//! own data as context, and typed the same twice.

use secrecy::{ExposeSecret, SecretString};

use crate::{
    domain::password::{self, PasswordPolicy, UserContext},
    error::FieldErrors,
};

pub const PASSWORDS_DIFFER: &str = "The two password fields didn't match.";

/// The GraphQL input fields that carry a new password and its confirmation: where the
/// messages go.
#[derive(Debug, Clone, Copy)]
pub struct NewPasswordFields {
    pub password: &'static str,
    pub confirm: &'static str,
}

impl NewPasswordFields {
    /// `register(input: { password, passwordConfirm })`.
    pub const REGISTER: Self = Self {
        password: "password",
        confirm: "passwordConfirm",
    };
    /// `resetPassword` and `changePassword` (`input: { newPassword, newPasswordConfirm }`).
    pub const RESET: Self = Self {
        password: "newPassword",
        confirm: "newPasswordConfirm",
    };
}

/// The normalised password, the form to hash; or every policy violation (on
/// `fields.password`) and a mismatch (on `fields.confirm`), all at once.
pub fn check_new_password(
    policy: &PasswordPolicy,
    password: &SecretString,
    confirm: &SecretString,
    user: &UserContext<'_>,
    fields: NewPasswordFields,
) -> Result<SecretString, FieldErrors> {
    let password = password::normalise(password.expose_secret());
    let confirm = password::normalise(confirm.expose_secret());
    let mut errors = FieldErrors::new();
    for message in policy.violations(password.expose_secret(), user) {
        errors.add(fields.password, message);
    }
    if password.expose_secret() != confirm.expose_secret() {
        errors.add(fields.confirm, PASSWORDS_DIFFER);
    }
    if errors.is_empty() {
        Ok(password)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: UserContext<'static> = UserContext {
        email: "ada@example.com",
        full_name: "Ada Lovelace",
    };

    fn check(password: &str, confirm: &str) -> Result<SecretString, FieldErrors> {
        check_new_password(
            &PasswordPolicy::new(8, "Acme Portal"),
            &SecretString::from(password),
            &SecretString::from(confirm),
            &USER,
            NewPasswordFields::RESET,
        )
    }

    #[test]
    fn returns_the_normalised_password() {
        // Full-width digits and a composed accent, confirmed in the other form.
        let password = check(
            "tangerine submarine ４２ é",
            "tangerine submarine 42 e\u{301}",
        )
        .expect("accepted");
        assert_eq!(password.expose_secret(), "tangerine submarine 42 é");
    }

    #[test]
    fn reports_policy_and_mismatch_on_the_given_fields() {
        let errors = check("lovelace", "lovelace!").expect_err("refused");
        assert!(errors.get("newPassword").is_some_and(|m| !m.is_empty()));
        assert_eq!(
            errors.get("newPasswordConfirm"),
            Some([PASSWORDS_DIFFER.to_owned()].as_slice())
        );
        assert_eq!(errors.get("password"), None);
    }
}
