//! Counts and times each root field (register, login, …) by outcome code.

use std::{sync::Arc, time::Instant};

use async_graphql::{
    ServerResult, Value,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo},
};

use crate::metrics::Metrics;

pub(super) struct OperationMetrics(pub Metrics);

impl ExtensionFactory for OperationMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationMetrics(self.0.clone()))
    }
}

#[async_trait::async_trait]
impl Extension for OperationMetrics {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let root = info.path_node.parent.is_none() && !info.is_for_introspection;
        if !root {
            return next.run(ctx, info).await;
        }
        // The field's name, not the client's alias: a bounded set of labels.
        let field = info.name.to_owned();
        let started = Instant::now();
        let result = next.run(ctx, info).await;
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => match e.extensions.as_ref().and_then(|x| x.get("code")) {
                Some(Value::String(code)) => code.clone(),
                _ => "UNKNOWN".to_owned(),
            },
        };
        self.0
            .counter(
                "identity_graphql_operations_total",
                &[("operation", &field), ("outcome", &outcome)],
            )
            .increment(1);
        self.0
            .histogram(
                "identity_graphql_operation_duration_seconds",
                &[("operation", &field)],
            )
            .record(started.elapsed());
        result
    }
}
