//! Key material: `SECRET_KEY` (and older ones kept for verification), and the
//! Ed25519 signing key when access tokens are signed with EdDSA. Outside production,
//! missing keys are generated once and kept in `DATA_DIR`, so tokens survive restarts.

use std::path::Path;

use base64::Engine;
use ed25519_dalek::{
    SigningKey, VerifyingKey,
    pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, spki::der::pem::LineEnding},
};
use rand::RngExt;
use secrecy::{ExposeSecret, SecretString};

use super::{
    AppEnv, ConfigError,
    vars::{Described, Vars},
};

/// Read and described here for the token section (`tokens.rs`).
pub(super) const VARS: &[&str] = &[
    "SECRET_KEY",
    "SECRET_KEY_PREVIOUS",
    "JWT_ALGORITHM",
    "JWT_PRIVATE_KEY",
    "JWT_PREVIOUS_KEYS",
];

/// The smallest accepted HMAC secret, in bytes (RFC 7518 §3.2 for HS256).
pub const MIN_SECRET_BYTES: usize = 32;

/// How access tokens are signed. Key material arrives here parsed and checked, so a
/// bad key stops the start with the name of its variable.
#[derive(Debug, Clone)]
pub enum JwtSigning {
    /// HS256 over `SECRET_KEY`; `previous` secrets still verify (rotation).
    Hs256 { previous: Vec<SecretString> },
    /// EdDSA (Ed25519); public keys served at `/.well-known/jwks.json`.
    EdDsa {
        /// The key that signs (its `Debug` shows only the public half).
        key: Box<SigningKey>,
        /// Public halves of older keys (given private or public) that still verify.
        previous: Vec<VerifyingKey>,
        /// Where the signing key came from, for `check-config` and the start-up log.
        source: String,
    },
}

/// `SECRET_KEY` if given (and strong); otherwise, outside production, a key generated
/// once and kept in `DATA_DIR/secret.key`.
pub(super) fn secret_key(
    vars: &Vars<'_>,
    env: AppEnv,
    data_dir: &Path,
) -> Result<(SecretString, String), ConfigError> {
    if let Some(key) = vars.get("SECRET_KEY") {
        check_strength("SECRET_KEY", &key)?;
        return Ok((SecretString::from(key), "from SECRET_KEY".into()));
    }
    if env == AppEnv::Production {
        return Err(ConfigError::new(
            "SECRET_KEY",
            "is required when APP_ENV=production (at least 32 random bytes)",
        ));
    }
    let path = data_dir.join("secret.key");
    let key = load_or_create(&path, || {
        let mut bytes = [0u8; 48];
        rand::rng().fill(&mut bytes);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    })
    .map_err(|e| ConfigError::new("SECRET_KEY", format!("unset, and {e}")))?
    .trim()
    .to_owned();
    check_strength("SECRET_KEY", &key)?;
    Ok((
        SecretString::from(key),
        format!("generated, kept in {}", path.display()),
    ))
}

/// Older secrets that still verify access tokens and open what was sealed under them
/// (key rotation).
pub(super) fn previous_secrets(vars: &Vars<'_>) -> Result<Vec<SecretString>, ConfigError> {
    vars.list("SECRET_KEY_PREVIOUS")
        .into_iter()
        .map(|key| {
            check_strength("SECRET_KEY_PREVIOUS", &key)?;
            Ok(SecretString::from(key))
        })
        .collect()
}

/// An HMAC key must be long and not guessable: a placeholder, a sequence or a repeated
/// word is refused even when it is long enough.
fn check_strength(var: &'static str, key: &str) -> Result<(), ConfigError> {
    let hint = "generate one with `openssl rand -base64 48`";
    if key.len() < MIN_SECRET_BYTES {
        return Err(ConfigError::new(
            var,
            format!(
                "must be at least {MIN_SECRET_BYTES} bytes, got {}; {hint}",
                key.len()
            ),
        ));
    }
    if !looks_random(key) {
        return Err(ConfigError::new(
            var,
            format!("is too easy to guess; {hint}"),
        ));
    }
    Ok(())
}

/// Whether a secret looks like the output of a random generator, as a key should:
/// enough variety (Shannon entropy of at least 3.5 bits per character), no repeating
/// pattern, no run like `abcdef` or `987654` over half of it, and not assembled from
/// common passwords. (zxcvbn judges the same things, but keeps 8 MiB of dictionaries
/// resident for the life of the process to do it once at start.)
fn looks_random(key: &str) -> bool {
    let chars: Vec<char> = key.chars().collect();
    let len = chars.len();
    if len == 0 {
        return false;
    }
    let mut counts: std::collections::HashMap<char, usize> = std::collections::HashMap::new();
    for c in &chars {
        *counts.entry(*c).or_default() += 1;
    }
    let entropy: f64 = counts
        .values()
        .map(|&k| {
            let p = k as f64 / len as f64;
            -p * p.log2()
        })
        .sum();
    if entropy < 3.5 {
        return false;
    }
    // A period p: most characters equal the one p places on.
    let periodic = (1..=len / 2).any(|p| {
        let same = (0..len - p).filter(|&i| chars[i] == chars[i + p]).count();
        same * 10 >= (len - p) * 8
    });
    if periodic {
        return false;
    }
    // The longest run of consecutive code points, up or down.
    let (mut longest, mut run, mut step) = (1usize, 1usize, 0i64);
    for pair in chars.windows(2) {
        let d = i64::from(u32::from(pair[1])) - i64::from(u32::from(pair[0]));
        if (d == 1 || d == -1) && (run == 1 || d == step) {
            run += 1;
            step = d;
        } else {
            run = 1;
            step = 0;
        }
        longest = longest.max(run);
    }
    if longest * 2 > len {
        return false;
    }
    // Common passwords (five characters or more) taken out, enough must remain.
    let mut rest = key.to_lowercase();
    for word in crate::domain::password::common_passwords().filter(|w| w.len() >= 5) {
        if rest.contains(word) {
            rest = rest.replace(word, "");
        }
    }
    rest.chars().filter(|c| c.is_alphanumeric()).count() >= 16
}

/// The access-token signing set-up: HS256 over `SECRET_KEY` (default), or EdDSA with
/// an Ed25519 key from `JWT_PRIVATE_KEY` (PEM, or a path to a PEM file).
pub(super) fn jwt_signing(
    vars: &Vars<'_>,
    env: AppEnv,
    data_dir: &Path,
) -> Result<JwtSigning, ConfigError> {
    match vars.choice("JWT_ALGORITHM", &["HS256", "EdDSA"])? {
        "EdDSA" => {
            let (private_pem, source) = private_key_pem(vars, env, data_dir)?;
            let previous_pems: Vec<String> = vars
                .list("JWT_PREVIOUS_KEYS")
                .iter()
                .map(|v| read_pem("JWT_PREVIOUS_KEYS", v))
                .collect::<Result<_, _>>()?;
            // Parsed now, so a bad key stops the start with the variable's name.
            let key = signing_key(private_pem.expose_secret())
                .map_err(|e| ConfigError::new("JWT_PRIVATE_KEY", e))?;
            let previous = previous_pems
                .iter()
                .map(|pem| verifying_key(pem))
                .collect::<Result<_, _>>()
                .map_err(|e| ConfigError::new("JWT_PREVIOUS_KEYS", e))?;
            Ok(JwtSigning::EdDsa {
                key: Box::new(key),
                previous,
                source,
            })
        }
        _ => Ok(JwtSigning::Hs256 {
            previous: previous_secrets(vars)?,
        }),
    }
}

/// The PEM of `JWT_PRIVATE_KEY`; unset outside production, one generated once and
/// kept in `DATA_DIR`.
fn private_key_pem(
    vars: &Vars<'_>,
    env: AppEnv,
    data_dir: &Path,
) -> Result<(SecretString, String), ConfigError> {
    let (pem, source) = match vars.get("JWT_PRIVATE_KEY") {
        Some(value) => (
            read_pem("JWT_PRIVATE_KEY", &value)?,
            "from JWT_PRIVATE_KEY".to_owned(),
        ),
        None if env == AppEnv::Production => {
            return Err(ConfigError::new(
                "JWT_PRIVATE_KEY",
                "is required with JWT_ALGORITHM=EdDSA in production",
            ));
        }
        None => {
            let path = data_dir.join("jwt-ed25519.pem");
            let pem = load_or_create(&path, generate_ed25519_pem)
                .map_err(|e| ConfigError::new("JWT_PRIVATE_KEY", format!("unset, and {e}")))?;
            (pem, format!("generated, kept in {}", path.display()))
        }
    };
    Ok((SecretString::from(pem), source))
}

/// An Ed25519 private key (PKCS#8 PEM); a public key is refused.
fn signing_key(pem: &str) -> Result<SigningKey, String> {
    if pem.contains("PUBLIC KEY") {
        return Err("needs the private key, not the public one".into());
    }
    SigningKey::from_pkcs8_pem(pem)
        .map_err(|e| format!("not an Ed25519 private key (PKCS#8 PEM): {e}"))
}

/// A private (PKCS#8) or public (SPKI) Ed25519 PEM → its public key.
fn verifying_key(pem: &str) -> Result<VerifyingKey, String> {
    if pem.contains("PUBLIC KEY") {
        VerifyingKey::from_public_key_pem(pem)
            .map_err(|e| format!("not an Ed25519 public key: {e}"))
    } else {
        signing_key(pem).map(|k| k.verifying_key())
    }
}

/// A PEM given inline, or the path of a file holding one.
pub(super) fn read_pem(var: &'static str, value: &str) -> Result<String, ConfigError> {
    if value.trim_start().starts_with("-----BEGIN") {
        return Ok(value.replace("\\n", "\n"));
    }
    // The value may be key material pasted without its PEM armour: never echo it.
    std::fs::read_to_string(value.trim()).map_err(|e| {
        ConfigError::new(
            var,
            format!("is neither a PEM block (-----BEGIN ...) nor a readable file ({e})"),
        )
    })
}

fn generate_ed25519_pem() -> String {
    let mut seed = [0u8; 32];
    rand::rng().fill(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .unwrap_or_else(|_| unreachable!("a 32-byte Ed25519 key always encodes"))
}

fn load_or_create(path: &Path, generate: impl FnOnce() -> String) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(content) if !content.trim().is_empty() => return Ok(content.trim().to_owned() + "\n"),
        Ok(_) => return Err(format!("{} is empty", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let content = generate();
    write_private(path, &content).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(content.trim().to_owned() + "\n")
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Secrets and private keys are never shown, only their size or where they came from.
pub(super) fn describe(
    secret: &SecretString,
    secret_source: &str,
    previous: &[SecretString],
    signing: &JwtSigning,
) -> Described {
    let older = |n: usize| format!("{n} older key(s)");
    // Each variable is shown empty when the algorithm in use does not read it.
    // Older secrets are read whatever the algorithm: they also open sealed mail.
    let (algorithm, private_key, previous_keys) = match signing {
        JwtSigning::Hs256 { .. } => ("HS256", String::new(), String::new()),
        JwtSigning::EdDsa {
            previous, source, ..
        } => (
            "EdDSA",
            format!("******** ({source})"),
            older(previous.len()),
        ),
    };
    vec![
        (
            "SECRET_KEY",
            format!(
                "******** ({} bytes, {secret_source})",
                secret.expose_secret().len()
            ),
        ),
        ("SECRET_KEY_PREVIOUS", older(previous.len())),
        ("JWT_ALGORITHM", algorithm.into()),
        ("JWT_PRIVATE_KEY", private_key),
        ("JWT_PREVIOUS_KEYS", previous_keys),
    ]
}
