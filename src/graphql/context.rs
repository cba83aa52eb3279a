use crate::service::RequestMeta;

/// Per-request data the HTTP layer attaches to each GraphQL request.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// The `Authorization: Bearer` token, if any.
    pub bearer: Option<String>,
    pub meta: RequestMeta,
}
