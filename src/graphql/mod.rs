//! The GraphQL schema, apart from HTTP: types, thin resolvers, limits, error codes.

mod account;
mod assurance;
mod auth;
pub mod context;
mod cookies;
mod email_change;
mod email_verification;
mod error_codes;
mod limits;
mod metrics;
mod mfa;
mod passkeys;
mod password_change;
mod password_reset;
mod persisted;
mod sessions;
mod social;
mod types;
mod user;

use async_graphql::{EmptySubscription, MergedObject, Schema, SchemaBuilder};

use crate::{config::HttpConfig, service::Services};

pub use context::RequestCtx;
pub use persisted::PersistedQueries;

/// What the signed-in user can read: the profile, sessions, second factors, passkeys
/// and a copy of their data.
#[derive(MergedObject, Default)]
pub struct Query(
    user::UserQuery,
    sessions::SessionQuery,
    account::AccountQuery,
    mfa::MfaQuery,
    passkeys::PasskeyQuery,
    social::SocialQuery,
);

/// Everything that changes state: sign-up and sign-in, tokens, the account and its
/// factors.
#[derive(MergedObject, Default)]
pub struct Mutation(
    auth::AuthMutation,
    assurance::AssuranceMutation,
    password_change::PasswordChangeMutation,
    password_reset::PasswordResetMutation,
    sessions::SessionMutation,
    email_verification::EmailVerificationMutation,
    email_change::EmailChangeMutation,
    mfa::MfaMutation,
    passkeys::PasskeyMutation,
    social::SocialMutation,
    account::AccountMutation,
);

pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema without per-deployment data or limits: what `print-schema` writes.
pub fn schema_builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .extension(error_codes::ErrorCodes)
}

/// Directives allowed in one place: a field, a fragment (spread, inline or defined),
/// an operation or a variable.
const MAX_DIRECTIVES: usize = 8;

/// The served schema, with the document limits of `http` (GraphiQL's introspection
/// query needs a depth of 13 and a complexity of about 200).
pub fn build_schema(services: Services, http: &HttpConfig) -> AppSchema {
    let mut builder = schema_builder()
        .extension(limits::DocumentLimit::aliases(http.max_aliases))
        .extension(limits::DocumentLimit::directives(MAX_DIRECTIVES))
        .extension(metrics::OperationMetrics(services.metrics()))
        // Innermost: the limits above see every document, cached or not.
        .extension(persisted::DocumentCache::new())
        .limit_depth(http.max_depth)
        .limit_complexity(http.max_complexity)
        .limit_directives(MAX_DIRECTIVES)
        .data(services);
    if !http.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// The SDL that `schema.graphql` holds.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}
