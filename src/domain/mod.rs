//! The rules of the domain, free of transport and storage: what a valid email, name
//! and password are, and what a user is.

pub mod assurance;
pub mod backoff;
pub mod client;
pub mod device;
pub mod email;
pub mod mail;
pub mod password;
pub mod user;
