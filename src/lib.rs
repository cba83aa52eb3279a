//! Identity service: accounts and sessions over GraphQL.
//!
//! Layers, outermost first: `http` and `graphql` (transport) → `service` (use cases) →
//! `store`, `mail`, `security` (adapters). `domain` depends on none of them.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod security;
pub mod service;
pub mod social;
pub mod store;
pub mod telemetry;

#[cfg(test)]
mod layering;
