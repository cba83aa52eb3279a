//! Refuses documents with more aliases than allowed, before anything runs. Aliases
//! are how one document repeats a field (fifty `login`s under fifty names); depth,
//! complexity and directives are limited by async-graphql itself.

use std::sync::Arc;

use async_graphql::{
    ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

use crate::error::ErrorCode;

pub(super) struct AliasLimit(pub usize);

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimit(self.0))
    }
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some())
                    + count_aliases(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Every alias written in the document: in each operation and each fragment.
pub(super) fn aliases(document: &ExecutableDocument) -> usize {
    let in_operations: usize = document
        .operations
        .iter()
        .map(|(_, op)| count_aliases(&op.node.selection_set.node))
        .sum();
    let in_fragments: usize = document
        .fragments
        .values()
        .map(|f| count_aliases(&f.node.selection_set.node))
        .sum();
    in_operations + in_fragments
}

#[async_trait::async_trait]
impl Extension for AliasLimit {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let count = aliases(&document);
        if count > self.0 {
            return Err(ErrorCode::GraphqlValidationFailed.server_error(format!(
                "The document has {count} aliases; at most {} are allowed",
                self.0
            )));
        }
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_aliases_everywhere() {
        let doc = async_graphql::parser::parse_query(
            "mutation { a: login(input: $i) { x: accessToken } b: login(input: $i) { accessToken ...F } }
             fragment F on AuthPayload { y: tokenType ... on AuthPayload { z: expiresIn } }",
        )
        .unwrap();
        assert_eq!(aliases(&doc), 5);
    }
}
