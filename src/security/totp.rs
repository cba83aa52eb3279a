//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, one step of skew either way) through
//! `totp-rs`, the enrolment QR code as SVG through `qrcode`, and recovery codes.
//!
//! Which step a code matched is returned, not just whether it did: the caller accepts a
//! code only for a step later than the last one it accepted for the user, so a code
//! cannot be replayed within its window.

use qrcode::{QrCode, render::svg};
use rand::RngExt;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;
pub const DIGITS: u8 = 6;
pub const STEP_SECS: u64 = 30;
const SKEW_STEPS: u16 = 1;

/// A new random secret.
pub fn new_secret() -> Vec<u8> {
    let mut bytes = vec![0u8; SECRET_BYTES];
    rand::rng().fill(bytes.as_mut_slice());
    bytes
}

pub fn to_base32(secret: &[u8]) -> String {
    Secret::from(secret.to_vec()).to_base32()
}

pub fn from_base32(encoded: &str) -> Option<Vec<u8>> {
    Secret::try_from_base32(encoded)
        .ok()
        .map(|s| s.as_bytes().to_vec())
        .filter(|b| b.len() == SECRET_BYTES)
}

/// An authenticator app's entry for `account` at `issuer` (colons, which the URI
/// format reserves, become spaces).
fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<Totp, totp_rs::TotpError> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECS)
        .with_secret(secret.to_vec())
        .with_issuer(Some(issuer.replace(':', " ")))
        .with_account_name(account.replace(':', " "))
        .build()
}

/// The `otpauth://totp/…` URI authenticator apps read. The algorithm, digits and
/// period are spelled out even where they are the defaults `totp-rs` leaves out: some
/// apps guess otherwise.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> anyhow::Result<String> {
    let totp = totp(secret, issuer, account).map_err(|e| anyhow::anyhow!("TOTP: {e}"))?;
    let mut uri = totp
        .to_url()
        .map_err(|e| anyhow::anyhow!("otpauth URI: {e}"))?;
    for (name, value) in [
        ("algorithm", "SHA1".to_owned()),
        ("digits", DIGITS.to_string()),
        ("period", STEP_SECS.to_string()),
    ] {
        if !uri.contains(&format!("&{name}=")) && !uri.contains(&format!("?{name}=")) {
            uri.push_str(&format!("&{name}={value}"));
        }
    }
    Ok(uri)
}

/// `text` as an `<svg>` QR code.
pub fn qr_svg(text: &str) -> anyhow::Result<String> {
    let code = QrCode::new(text.as_bytes()).map_err(|e| anyhow::anyhow!("QR code: {e}"))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

/// The step (Unix time / 30 s) whose code `code` is, within one step of `unix_secs`;
/// `None` if it is none of them or not six digits.
pub fn matching_step(secret: &[u8], code: &str, unix_secs: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != usize::from(DIGITS) || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret, "-", "-").ok()?;
    totp.check(&code, unix_secs)
}

/// The code for `unix_secs` (tests, and the enrolment's own checks).
pub fn code_at(secret: &[u8], unix_secs: u64) -> Option<String> {
    totp(secret, "-", "-")
        .ok()
        .map(|t| t.generate(unix_secs).to_string())
}

/// Recovery codes: 16 characters from a 32-letter alphabet without look-alikes (80
/// bits), shown in groups of four.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
pub const RECOVERY_CODES: usize = 10;

pub fn new_recovery_codes() -> Vec<String> {
    let mut rng = rand::rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let chars: String = (0..16)
                .map(|_| {
                    let i = rng.random_range(0..RECOVERY_ALPHABET.len());
                    char::from(RECOVERY_ALPHABET[i])
                })
                .collect();
            format!(
                "{}-{}-{}-{}",
                &chars[0..4],
                &chars[4..8],
                &chars[8..12],
                &chars[12..16]
            )
        })
        .collect()
}

/// What is stored of a recovery code: the SHA-256 of its normal form (lower case,
/// without separators). Unsalted is enough for 80 random bits; typing it in any case
/// or grouping matches.
pub fn recovery_code_digest(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let digest = Sha256::digest(normal.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_step_and_its_neighbours_only() {
        let secret = new_secret();
        let now = 1_700_000_000;
        let step = now / STEP_SECS;
        let code = code_at(&secret, now).unwrap();
        assert_eq!(matching_step(&secret, &code, now), Some(step));
        let previous = code_at(&secret, now - STEP_SECS).unwrap();
        assert_eq!(matching_step(&secret, &previous, now), Some(step - 1));
        let old = code_at(&secret, now - 2 * STEP_SECS).unwrap();
        assert_eq!(matching_step(&secret, &old, now), None);
        assert_eq!(matching_step(&secret, "12345", now), None);
        assert_eq!(matching_step(&secret, "abcdef", now), None);
    }

    #[test]
    fn the_uri_names_the_service_and_account_and_round_trips_the_secret() {
        let secret = new_secret();
        let uri = otpauth_uri(&secret, "Acme: Identity", "ada@example.com").unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(
            uri.contains(&format!("secret={}", to_base32(&secret))),
            "{uri}"
        );
        assert!(uri.contains("issuer=Acme"), "{uri}");
        assert_eq!(from_base32(&to_base32(&secret)), Some(secret));
        assert!(qr_svg(&uri).unwrap().contains("<svg"));
    }

    #[test]
    fn recovery_codes_are_distinct_and_match_however_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let code = &codes[0];
        assert_eq!(code.len(), 19);
        let typed = code.replace('-', " ").to_uppercase();
        assert_eq!(recovery_code_digest(&typed), recovery_code_digest(code));
    }
}
