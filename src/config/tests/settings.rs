//! One list of settings: every variable `from_lookup` reads, every one `describe`
//! shows and every one `.env.example` documents is in `known_variables()`, and
//! nothing else is.

use std::{
    cell::RefCell,
    collections::{BTreeSet, HashMap},
};

use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};

use crate::config::{Config, known_variables};

const ENV_EXAMPLE: &str = include_str!("../../../.env.example");

/// Documented in `.env.example` but read by something else than the configuration:
/// the log filter (`tracing_subscriber::EnvFilter`).
const READ_ELSEWHERE: &[&str] = &["RUST_LOG"];

const KEY: &str = "kQ2lN8bVvI1v3s2h3JmW5nS0eXq9rT4yZpB6uC7d";
const OLD_KEY: &str = "Xq3v9LmZt2R8bW1kP6sN0yH4jD7fG5cAx8Vb2Nm4";
const SMTP: &str = "smtp://user:pass@127.0.0.1:2525";

fn private_pem(seed: u8) -> String {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap()
        .to_string()
}

fn public_pem(seed: u8) -> String {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap()
}

/// Configurations between them reaching every branch that reads a variable.
fn configurations(data_dir: &str) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let dir = ("DATA_DIR", data_dir.to_owned());
    let key = ("SECRET_KEY", KEY.to_owned());
    let prod = ("APP_ENV", "production".to_owned());
    let smtp = ("SMTP_URL", SMTP.to_owned());
    let reset = (
        "PASSWORD_RESET_URL",
        "https://app.example/reset?token={token}".to_owned(),
    );
    vec![
        ("development defaults", vec![dir.clone()]),
        (
            "production",
            vec![
                prod.clone(),
                dir.clone(),
                key.clone(),
                smtp.clone(),
                reset.clone(),
                (
                    "EMAIL_VERIFY_URL",
                    "https://app.example/verify-email?token={token}".to_owned(),
                ),
                (
                    "EMAIL_CHANGE_URL",
                    "https://app.example/confirm-email?token={token}".to_owned(),
                ),
                (
                    "ACCOUNT_DELETION_CANCEL_URL",
                    "https://app.example/cancel-deletion?token={token}".to_owned(),
                ),
                ("SECRET_KEY_PREVIOUS", OLD_KEY.to_owned()),
                ("DATABASE_URL", "postgres://app:pw@db/identity".to_owned()),
                ("SINGLE_INSTANCE", "true".to_owned()),
                ("METRICS_ADDR", "127.0.0.1:9100".to_owned()),
            ],
        ),
        (
            "Redis and SMTP",
            vec![
                dir.clone(),
                key.clone(),
                smtp.clone(),
                ("REDIS_URL", "redis://127.0.0.1:6379".to_owned()),
            ],
        ),
        (
            "EdDSA, generated key",
            vec![dir.clone(), ("JWT_ALGORITHM", "EdDSA".to_owned())],
        ),
        (
            "EdDSA in production",
            vec![
                prod,
                dir,
                key,
                smtp,
                reset,
                (
                    "EMAIL_VERIFY_URL",
                    "https://app.example/verify-email?token={token}".to_owned(),
                ),
                (
                    "EMAIL_CHANGE_URL",
                    "https://app.example/confirm-email?token={token}".to_owned(),
                ),
                (
                    "ACCOUNT_DELETION_CANCEL_URL",
                    "https://app.example/cancel-deletion?token={token}".to_owned(),
                ),
                ("JWT_ALGORITHM", "EdDSA".to_owned()),
                ("JWT_PRIVATE_KEY", private_pem(1)),
                (
                    "JWT_PREVIOUS_KEYS",
                    format!("{},{}", public_pem(2), private_pem(3)),
                ),
            ],
        ),
    ]
}

/// The configuration, and every variable `from_lookup` asked for on the way.
fn load(label: &str, pairs: &[(&'static str, String)]) -> (BTreeSet<String>, Config) {
    let map: HashMap<&str, &str> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let read = RefCell::new(BTreeSet::new());
    let config = Config::from_lookup(&|name| {
        read.borrow_mut().insert(name.to_owned());
        map.get(name).map(|v| (*v).to_owned())
    })
    .unwrap_or_else(|e| panic!("{label}: {e}"));
    (read.into_inner(), config)
}

/// Runs `check` on each configuration, with a fresh data directory.
fn each_configuration(mut check: impl FnMut(&str, BTreeSet<String>, Config)) {
    let dir = std::env::temp_dir().join(format!("identity-vars-{}", uuid::Uuid::new_v4()));
    for (label, pairs) in configurations(&dir.to_string_lossy()) {
        let (read, config) = load(label, &pairs);
        check(label, read, config);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Names assigned in `.env.example`, commented out (`# NAME=...`) or not.
fn env_example_names() -> Vec<&'static str> {
    ENV_EXAMPLE
        .lines()
        .filter_map(|line| {
            let line = line.trim_start_matches('#').trim_start();
            let (name, _) = line.split_once('=')?;
            let valid = name.starts_with(|c: char| c.is_ascii_uppercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            valid.then_some(name)
        })
        .collect()
}

#[test]
fn known_variables_are_listed_once() {
    let mut seen = BTreeSet::new();
    for name in known_variables() {
        assert!(seen.insert(name), "known_variables() lists {name} twice");
    }
}

#[test]
fn every_variable_read_is_known() {
    let known = known_variables();
    let mut read_somewhere = BTreeSet::new();
    each_configuration(|label, read, _| {
        for name in read {
            assert!(
                known.contains(&name.as_str()),
                "{label}: from_lookup reads {name}, which known_variables() lacks"
            );
            read_somewhere.insert(name);
        }
    });
    for name in &known {
        assert!(
            read_somewhere.contains(*name),
            "known_variables() lists {name}, which no configuration reads"
        );
    }
}

#[test]
fn every_known_variable_is_described() {
    let known = known_variables();
    each_configuration(|label, _, config| {
        let described: Vec<&str> = config.describe().into_iter().map(|(n, _)| n).collect();
        for name in &known {
            assert!(
                described.contains(name),
                "{label}: describe() does not show {name}"
            );
        }
        for name in &described {
            assert!(
                known.contains(name),
                "{label}: describe() shows {name}, which known_variables() lacks"
            );
        }
        assert_eq!(
            described, known,
            "{label}: describe() shows the variables in another order than known_variables()"
        );
    });
}

#[test]
fn env_example_documents_every_known_variable() {
    let documented = env_example_names();
    for name in known_variables() {
        assert!(
            documented.contains(&name),
            "{name} is not in .env.example (as `{name}=...` or `# {name}=...`)"
        );
    }
}

#[test]
fn env_example_lists_only_known_variables() {
    let known = known_variables();
    for name in env_example_names() {
        assert!(
            known.contains(&name)
                || READ_ELSEWHERE.contains(&name)
                || crate::config::is_provider_variable(name),
            "{name} is in .env.example, but the service does not read it"
        );
    }
}
