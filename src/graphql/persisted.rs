//! Automatic persisted queries (Apollo's APQ protocol, which Apollo Client and urql's
//! `@urql/exchange-persisted` speak) and a cache of parsed documents.
//!
//! - A request may carry `extensions.persistedQuery = {version: 1, sha256Hash}`. With
//!   the `query`, its SHA-256 (hex) must be the hash, and the pair is kept; without
//!   it, the kept query is used, or the answer is `PERSISTED_QUERY_NOT_FOUND` (message
//!   `PersistedQueryNotFound`), on which clients send the query again. The HTTP layer
//!   resolves this before it looks at the document, so a persisted mutation over GET
//!   is refused like any other, and a persisted mutation runs detached like any other.
//!   async-graphql's own APQ extension is not used: it parses the document itself, past
//!   the parse hooks that enforce the alias and directive limits.
//! - Documents are parsed once per instance: a parsed document is kept under its text
//!   (the parse hook, innermost, so the limits still see every document), and a hot
//!   `me` is parsed only the first time.
//! - Both caches are bounded by bytes (a client cannot grow them past 4 MiB each), and
//!   documents larger than 16 KiB are never kept. They are per instance: a query kept by
//!   one instance is unknown to another, and the client sends it once more there.

use std::sync::Arc;

use async_graphql::{
    Request, ServerError, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::ExecutableDocument,
};
use mini_moka::sync::Cache;
use sha2::{Digest, Sha256};

use crate::error::ErrorCode;

/// The most bytes of documents each cache holds.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;
/// Larger documents are neither persisted nor kept parsed.
const MAX_KEPT: usize = 16 * 1024;

fn weigh(text: &str) -> u32 {
    u32::try_from(text.len() + 64).unwrap_or(u32::MAX)
}

/// The queries clients have persisted, by SHA-256 (hex).
#[derive(Clone)]
pub struct PersistedQueries {
    queries: Cache<String, Arc<str>>,
}

impl Default for PersistedQueries {
    fn default() -> Self {
        Self {
            queries: Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|hash: &String, query: &Arc<str>| weigh(hash) + weigh(query))
                .build(),
        }
    }
}

impl PersistedQueries {
    /// Applies `extensions.persistedQuery` of `request`, if it has one: fills in the
    /// query it stands for, or keeps the query it carries.
    pub fn resolve(&self, request: &mut Request) -> Result<(), ServerError> {
        let Some(value) = request.extensions.get("persistedQuery") else {
            return Ok(());
        };
        let extension = serde_json::to_value(value).unwrap_or_default();
        let version = extension.get("version").and_then(serde_json::Value::as_i64);
        let hash = extension
            .get("sha256Hash")
            .and_then(serde_json::Value::as_str)
            .map(str::to_ascii_lowercase);
        let (Some(1), Some(hash)) = (version, hash) else {
            return Err(ErrorCode::BadRequest
                .server_error("persistedQuery needs version 1 and a sha256Hash"));
        };
        if request.query.is_empty() {
            return match self.queries.get(&hash) {
                Some(query) => {
                    request.query = query.to_string();
                    Ok(())
                }
                None => {
                    Err(ErrorCode::PersistedQueryNotFound.server_error("PersistedQueryNotFound"))
                }
            };
        }
        let actual = hex(&Sha256::digest(request.query.as_bytes()));
        if actual != hash {
            return Err(ErrorCode::BadRequest.server_error("provided sha does not match query"));
        }
        if request.query.len() <= MAX_KEPT {
            self.queries.insert(hash, Arc::from(request.query.as_str()));
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Keeps parsed documents under the SHA-256 of their text.
#[derive(Clone)]
pub(super) struct DocumentCache {
    documents: Cache<[u8; 32], Parsed>,
}

/// A parsed document, and what it is counted as: four times its text (what the parsed
/// tree takes, roughly).
#[derive(Clone)]
struct Parsed {
    document: Arc<ExecutableDocument>,
    weight: u32,
}

impl DocumentCache {
    pub(super) fn new() -> Self {
        Self {
            documents: Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|_, parsed: &Parsed| parsed.weight)
                .build(),
        }
    }
}

impl ExtensionFactory for DocumentCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Extension for DocumentCache {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let key: [u8; 32] = Sha256::digest(query.as_bytes()).into();
        if let Some(parsed) = self.documents.get(&key) {
            return Ok((*parsed.document).clone());
        }
        let document = next.run(ctx, query, variables).await?;
        if query.len() <= MAX_KEPT {
            let parsed = Parsed {
                document: Arc::new(document.clone()),
                weight: weigh(query).saturating_mul(4),
            };
            self.documents.insert(key, parsed);
        }
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_extension(query: &str, hash: &str) -> Request {
        let mut request = Request::new(query);
        request.extensions.insert(
            "persistedQuery".into(),
            async_graphql::Value::from_json(
                serde_json::json!({ "version": 1, "sha256Hash": hash }),
            )
            .unwrap(),
        );
        request
    }

    #[test]
    fn a_query_is_kept_under_its_hash_and_found_again() {
        let persisted = PersistedQueries::default();
        let query = "{ me { id } }";
        let hash = hex(&Sha256::digest(query.as_bytes()));
        assert_eq!(hash.len(), 64);
        let mut miss = with_extension("", &hash);
        let error = persisted.resolve(&mut miss).unwrap_err();
        assert_eq!(error.message, "PersistedQueryNotFound");
        persisted
            .resolve(&mut with_extension(query, &hash))
            .unwrap();
        let mut hit = with_extension("", &hash.to_ascii_uppercase());
        persisted.resolve(&mut hit).unwrap();
        assert_eq!(hit.query, query);
        let mut wrong = with_extension("{ me { email } }", &hash);
        assert!(persisted.resolve(&mut wrong).is_err());
    }
}
