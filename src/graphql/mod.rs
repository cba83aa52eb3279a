//! The GraphQL schema, apart from HTTP: types, thin resolvers, limits, error codes.

mod auth;
pub mod context;
mod error_codes;
mod password_reset;
mod types;
mod user;

use async_graphql::{EmptySubscription, MergedObject, Schema, SchemaBuilder};

use crate::{config::HttpConfig, service::Services};

pub use context::RequestCtx;

#[derive(MergedObject, Default)]
pub struct Query(user::UserQuery);

#[derive(MergedObject, Default)]
pub struct Mutation(auth::AuthMutation, password_reset::PasswordResetMutation);

pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// Deepest accepted document. GraphiQL's introspection query needs 13.
pub const MAX_DEPTH: usize = 16;
/// Highest accepted complexity (one point per field).
pub const MAX_COMPLEXITY: usize = 1000;

/// The schema without per-deployment data: what `print-schema` writes.
pub fn schema_builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_directives(8)
        .extension(error_codes::ErrorCodes)
}

/// The served schema.
pub fn build_schema(services: Services, http: &HttpConfig) -> AppSchema {
    let mut builder = schema_builder().data(services);
    if !http.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// The SDL that `schema.graphql` holds.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}
