//! GraphQL object and input types, mapped from and to the domain.

use async_graphql::{ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::{
    domain,
    service::{
        self,
        auth::{LoginInput as LoginCmd, RegisterInput as RegisterCmd},
        password_reset::ResetPasswordInput as ResetCmd,
    },
};

/// An account.
#[derive(SimpleObject)]
#[graphql(name = "User")]
pub(super) struct User {
    /// A UUID.
    pub id: ID,
    /// Normalised: trimmed and lower-case.
    pub email: String,
    /// The name the user gave at sign-up.
    pub full_name: String,
    /// False once an operator deactivated the account: it can no longer sign in.
    pub is_active: bool,
    /// When the account was created.
    pub date_joined: DateTime<Utc>,
    /// When the user last signed in with a password.
    pub last_login: Option<DateTime<Utc>>,
    /// Whether the owner proved control of `email` (a mailed link). Accounts made
    /// before verification existed count as verified.
    pub email_verified: bool,
    /// Whether a password signs in to the account: `false` for an account made by
    /// social login until a password reset sets one.
    pub has_password: bool,
}

impl From<domain::user::User> for User {
    fn from(u: domain::user::User) -> Self {
        Self {
            id: ID(u.id.to_string()),
            email: u.email,
            full_name: u.full_name,
            is_active: u.is_active,
            date_joined: u.date_joined,
            last_login: u.last_login,
            email_verified: u.email_verified_at.is_some(),
            has_password: u.has_password,
        }
    }
}

/// Tokens for a signed-in session.
#[derive(SimpleObject)]
#[graphql(name = "AuthPayload")]
pub(super) struct AuthPayload {
    /// A short-lived JWT to send as `Authorization: Bearer <accessToken>`.
    pub access_token: String,
    /// Single-use: every `refreshToken` call returns a new one. `null` in cookie mode
    /// (`X-Auth-Transport: cookie`), where it is set as an HttpOnly cookie instead.
    pub refresh_token: Option<String>,
    /// Always "Bearer".
    pub token_type: String,
    /// Lifetime of the access token, in seconds.
    pub expires_in: i32,
    /// The signed-in user.
    pub user: User,
}

impl From<service::AuthPayload> for AuthPayload {
    fn from(p: service::AuthPayload) -> Self {
        Self {
            access_token: p.access_token,
            refresh_token: Some(p.refresh_token),
            token_type: "Bearer".to_owned(),
            expires_in: i32::try_from(p.expires_in.as_secs()).unwrap_or(i32::MAX),
            user: p.user.into(),
        }
    }
}

/// A new account: its address, name and password.
#[derive(InputObject)]
pub struct RegisterInput {
    /// The sign-in address; a link to verify it is mailed.
    pub email: String,
    /// How the user wants to be called.
    pub full_name: String,
    /// 8–128 characters, not common, not like the address or name.
    pub password: String,
    /// Must equal `password`.
    pub password_confirm: String,
}

impl From<RegisterInput> for RegisterCmd {
    fn from(i: RegisterInput) -> Self {
        Self {
            email: i.email,
            full_name: i.full_name,
            password: SecretString::from(i.password),
            password_confirm: SecretString::from(i.password_confirm),
        }
    }
}

/// An email and password to sign in with.
#[derive(InputObject)]
pub struct LoginInput {
    /// The sign-in address.
    pub email: String,
    /// The account's password.
    pub password: String,
}

impl From<LoginInput> for LoginCmd {
    fn from(i: LoginInput) -> Self {
        Self {
            email: i.email,
            password: SecretString::from(i.password),
        }
    }
}

/// A new password, with the token of a reset link.
#[derive(InputObject)]
pub struct ResetPasswordInput {
    /// The token from the reset link.
    pub token: String,
    /// Held to the same policy as at sign-up.
    pub new_password: String,
    /// Must equal `newPassword`.
    pub new_password_confirm: String,
}

impl From<ResetPasswordInput> for ResetCmd {
    fn from(i: ResetPasswordInput) -> Self {
        Self {
            token: i.token,
            new_password: SecretString::from(i.new_password),
            new_password_confirm: SecretString::from(i.new_password_confirm),
        }
    }
}
