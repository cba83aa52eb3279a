//! Gives every error a stable `extensions.code`, also those async-graphql raises itself
//! before any resolver runs (the Apollo Server codes for those). The codes are
//! `ErrorCode`'s.

use std::sync::Arc;

use async_graphql::{
    Response, ServerError, ServerResult, ValidationResult, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
    },
    parser::types::ExecutableDocument,
};

use crate::error::ErrorCode;

pub(super) struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

/// The error with `code`, unless it already has one.
fn with_code(mut e: ServerError, code: ErrorCode) -> ServerError {
    code.set_default_on(e.extensions.get_or_insert_with(Default::default));
    e
}

#[async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|e| {
            // The parser also enforces limits (directives, recursion): those documents
            // are well-formed but refused, like a validation failure.
            let code = if e.message.contains("cannot be greater than") {
                ErrorCode::GraphqlValidationFailed
            } else {
                ErrorCode::GraphqlParseFailed
            };
            with_code(e, code)
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| with_code(e, ErrorCode::GraphqlValidationFailed))
                .collect()
        })
    }

    /// Errors raised while executing that carry no code come from async-graphql
    /// coercing arguments (every error of ours has a code): the client sent bad input.
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        response.errors = std::mem::take(&mut response.errors)
            .into_iter()
            .map(|e| with_code(e, ErrorCode::BadUserInput))
            .collect();
        response
    }
}
