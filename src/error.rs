//! Errors, and the one place they become GraphQL errors.
//!
//! - `AppError` is what services return. Its variants are the outcomes a client can act
//!   on, one per `extensions.code` of the public contract (`shared/API.md`), plus
//!   `Internal` for everything else.
//! - Adapters (`store`, `mail`, `security`) return `anyhow::Error` or their crate's
//!   error; `?` turns those into `AppError::Internal`, whose detail is logged and never
//!   sent to the client.
//! - `FieldErrors` collects validation messages keyed by GraphQL input field name.
//! - `From<AppError> for async_graphql::Error` is the only mapping to the wire.

use std::{collections::BTreeMap, time::Duration};

use async_graphql::ErrorExtensions;

/// Validation messages keyed by the GraphQL input field they belong to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<&'static str, Vec<String>>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.entry(field).or_default().push(message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, field: &str) -> Option<&[String]> {
        self.0.get(field).map(Vec::as_slice)
    }

    /// `Ok(())` when nothing was collected, the error otherwise.
    pub fn into_result(self) -> Result<(), AppError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(AppError::BadUserInput(self))
        }
    }

    fn summary(&self) -> String {
        self.0
            .iter()
            .map(|(field, messages)| format!("{field}: {}", messages.join(" ")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Deliberately not `Display`: async-graphql converts every `Display` type into an
/// error without a code, and this way `?` in a resolver can only go through the
/// mapping below.
#[derive(Debug)]
pub enum AppError {
    /// Input failed validation; the client shows the messages next to the fields.
    BadUserInput(FieldErrors),
    /// Missing, malformed, expired or revoked access token.
    Unauthenticated,
    /// Unknown email, wrong password or inactive account: deliberately one outcome.
    InvalidCredentials,
    /// Refresh or reset token unknown, expired, used or revoked.
    InvalidToken,
    RateLimited {
        retry_after: Duration,
    },
    /// Anything unexpected. Logged in full, sent as a fixed message.
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        Self::Internal(e)
    }
}

impl AppError {
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.add(field, message);
        Self::BadUserInput(errors)
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadUserInput(_) => ErrorCode::BadUserInput,
            Self::Unauthenticated => ErrorCode::Unauthenticated,
            Self::InvalidCredentials => ErrorCode::InvalidCredentials,
            Self::InvalidToken => ErrorCode::InvalidToken,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Internal(_) => ErrorCode::InternalServerError,
        }
    }
}

impl From<crate::service::per_account_limits::LoginRefused> for AppError {
    fn from(e: crate::service::per_account_limits::LoginRefused) -> Self {
        use crate::service::per_account_limits::LoginRefused;
        match e {
            LoginRefused::CoolingDown { retry_after } => Self::RateLimited { retry_after },
            LoginRefused::Store(e) => Self::Internal(e),
        }
    }
}

impl From<crate::security::password::HashError> for AppError {
    fn from(e: crate::security::password::HashError) -> Self {
        use crate::security::password::HashError;
        match e {
            HashError::Busy { retry_after } => Self::RateLimited { retry_after },
            HashError::Failed(e) => Self::Internal(e),
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Internal(e.into())
    }
}

/// The `extensions.code` values of the public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadUserInput,
    Unauthenticated,
    InvalidCredentials,
    InvalidToken,
    RateLimited,
    InternalServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::RateLimited => "RATE_LIMITED",
            Self::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }
}

/// Seconds to tell the client, rounded up so that waiting that long is enough.
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl From<AppError> for async_graphql::Error {
    fn from(e: AppError) -> Self {
        let code = e.code().as_str();
        match e {
            AppError::Internal(source) => {
                tracing::error!(error = ?source, "internal error");
                async_graphql::Error::new("Internal server error")
                    .extend_with(|_, ext| ext.set("code", code))
            }
            AppError::BadUserInput(fields) => {
                let message = format!("Invalid input: {}", fields.summary());
                let mut map = async_graphql::indexmap::IndexMap::new();
                for (field, messages) in fields.0 {
                    let list = messages
                        .into_iter()
                        .map(async_graphql::Value::from)
                        .collect::<Vec<_>>();
                    map.insert(
                        async_graphql::Name::new(field),
                        async_graphql::Value::List(list),
                    );
                }
                async_graphql::Error::new(message).extend_with(|_, ext| {
                    ext.set("code", code);
                    ext.set("fields", async_graphql::Value::Object(map.clone()));
                })
            }
            AppError::RateLimited { retry_after } => {
                let secs = retry_after_secs(retry_after);
                async_graphql::Error::new(format!("Too many attempts; try again in {secs} seconds"))
                    .extend_with(|_, ext| {
                        ext.set("code", code);
                        ext.set("retryAfter", secs);
                    })
            }
            AppError::Unauthenticated => async_graphql::Error::new("Not authenticated")
                .extend_with(|_, ext| ext.set("code", code)),
            AppError::InvalidCredentials => async_graphql::Error::new("Invalid email or password")
                .extend_with(|_, ext| ext.set("code", code)),
            AppError::InvalidToken => async_graphql::Error::new("Invalid or expired token")
                .extend_with(|_, ext| ext.set("code", code)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extensions(e: AppError) -> serde_json::Value {
        let err: async_graphql::Error = e.into();
        serde_json::to_value(err.extensions).expect("serialisable")
    }

    #[test]
    fn field_errors_are_keyed_by_input_field() {
        let mut fields = FieldErrors::new();
        fields.add("email", "Enter a valid email address.");
        fields.add("password", "too short");
        fields.add("password", "too common");
        let ext = extensions(AppError::BadUserInput(fields));
        assert_eq!(ext["code"], "BAD_USER_INPUT");
        assert_eq!(ext["fields"]["email"][0], "Enter a valid email address.");
        assert_eq!(ext["fields"]["password"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn internal_errors_carry_no_detail() {
        let err: async_graphql::Error =
            AppError::internal(anyhow::anyhow!("relation \"users\" does not exist")).into();
        assert_eq!(err.message, "Internal server error");
        let ext = serde_json::to_value(err.extensions).expect("serialisable");
        assert_eq!(ext["code"], "INTERNAL_SERVER_ERROR");
    }

    #[test]
    fn retry_after_rounds_up() {
        let ext = extensions(AppError::RateLimited {
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(ext["code"], "RATE_LIMITED");
        assert_eq!(ext["retryAfter"], 2);
    }
}
