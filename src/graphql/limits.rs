//! Refuses documents with more aliases, or more directives in one place, than allowed,
//! before anything runs. Aliases are how one document repeats a field (fifty `login`s
//! under fifty names); depth and complexity are limited by async-graphql itself, and so
//! are directives on fields: the directive limit covers every other place one can go.

use std::sync::Arc;

use async_graphql::{
    ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

use crate::error::ErrorCode;

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

fn most_directives_in(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => field
                .node
                .directives
                .len()
                .max(most_directives_in(&field.node.selection_set.node)),
            Selection::InlineFragment(fragment) => fragment
                .node
                .directives
                .len()
                .max(most_directives_in(&fragment.node.selection_set.node)),
            Selection::FragmentSpread(spread) => spread.node.directives.len(),
        })
        .max()
        .unwrap_or(0)
}

/// The most directives written in one place anywhere in the document.
pub(super) fn most_directives(document: &ExecutableDocument) -> usize {
    let operations = document.operations.iter().map(|(_, op)| {
        let variables = op
            .node
            .variable_definitions
            .iter()
            .map(|v| v.node.directives.len())
            .max()
            .unwrap_or(0);
        op.node
            .directives
            .len()
            .max(variables)
            .max(most_directives_in(&op.node.selection_set.node))
    });
    let fragments = document.fragments.values().map(|f| {
        f.node
            .directives
            .len()
            .max(most_directives_in(&f.node.selection_set.node))
    });
    operations.chain(fragments).max().unwrap_or(0)
}

/// A limit on something counted in a parsed document, checked before anything runs.
#[derive(Clone, Copy)]
pub(super) struct DocumentLimit {
    max: usize,
    measure: fn(&ExecutableDocument) -> usize,
    refusal: fn(usize, usize) -> String,
}

impl DocumentLimit {
    /// At most `max` aliases in the whole document.
    pub(super) fn aliases(max: usize) -> Self {
        Self {
            max,
            measure: aliases,
            refusal: |count, max| {
                format!("The document has {count} aliases; at most {max} are allowed")
            },
        }
    }

    /// At most `max` directives in any one place: on a field, a fragment spread, an
    /// inline fragment, a fragment definition, an operation or a variable definition.
    pub(super) fn directives(max: usize) -> Self {
        Self {
            max,
            measure: most_directives,
            refusal: |most, max| {
                format!("{most} directives in one place; at most {max} are allowed")
            },
        }
    }
}

impl ExtensionFactory for DocumentLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[async_trait::async_trait]
impl Extension for DocumentLimit {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let found = (self.measure)(&document);
        if found > self.max {
            return Err(
                ErrorCode::GraphqlValidationFailed.server_error((self.refusal)(found, self.max))
            );
        }
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_directives_in_every_place() {
        let two = "@include(if: true) @skip(if: false)";
        for (document, expected) in [
            (format!("{{ a {two} }}"), 2),
            (format!("{{ ... {two} {{ a }} }}"), 2),
            (format!("{{ ...F {two} }} fragment F on Q {{ a }}"), 2),
            (format!("{{ ...F }} fragment F on Q {two} @x {{ a }}"), 3),
            (format!("query Q {two} {{ a }}"), 2),
            (format!("query Q($v: Int {two} @x @y) {{ a @z }}"), 4),
            ("{ a { b } }".to_owned(), 0),
        ] {
            let doc = async_graphql::parser::parse_query(&document).unwrap();
            assert_eq!(most_directives(&doc), expected, "{document}");
        }
    }

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
