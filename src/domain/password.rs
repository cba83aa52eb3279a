//! The password policy: Django's four default validators (minimum length, common
//! password, entirely numeric, similarity to the user's attributes), a maximum length,
//! and context words. Length is counted in Unicode code points after NFKC
//! normalisation, and the normalised form is what gets hashed, so a password typed on
//! another keyboard (full-width digits, composed accents) still matches.

use std::collections::{HashMap, HashSet};

use secrecy::SecretString;
use unicode_normalization::UnicodeNormalization;

/// Longest accepted password, in code points after normalisation.
pub const MAX_LENGTH: usize = 128;

/// Django's `UserAttributeSimilarityValidator` default.
const MAX_SIMILARITY: f64 = 0.7;

/// The 20,000 most common passwords as shipped with Django (lower-cased, deduplicated;
/// compiled by Royce Williams). 19,640 entries remain after Django's deduplication.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// The bundled common passwords, lower-case.
pub fn common_passwords() -> impl Iterator<Item = &'static str> {
    COMMON_PASSWORDS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

/// NFKC form of a password: what is measured, compared and hashed.
pub fn normalise(raw: &str) -> SecretString {
    SecretString::from(raw.nfkc().collect::<String>())
}

/// What a password is compared against, besides the common list.
pub struct UserContext<'a> {
    pub email: &'a str,
    pub full_name: &'a str,
}

pub struct PasswordPolicy {
    min_length: usize,
    common: HashSet<&'static str>,
    /// Words tied to this deployment (its name): as guessable as a common password.
    context_words: Vec<String>,
}

impl PasswordPolicy {
    pub fn new(min_length: usize, service_name: &str) -> Self {
        let common = common_passwords().collect();
        let mut context_words: Vec<String> = split_words(&service_name.to_lowercase())
            .filter(|w| w.chars().count() >= 4)
            .map(str::to_owned)
            .collect();
        // Longest first, so a word inside another is removed after it.
        context_words.sort_by_key(|w| std::cmp::Reverse(w.len()));
        Self {
            min_length,
            common,
            context_words,
        }
    }

    pub fn min_length(&self) -> usize {
        self.min_length
    }

    /// Every rule the (normalised) password breaks, as messages for the user.
    pub fn violations(&self, password: &str, user: &UserContext<'_>) -> Vec<String> {
        let mut out = Vec::new();
        let length = password.chars().count();
        if length < self.min_length {
            out.push(format!(
                "This password is too short. It must contain at least {} characters.",
                self.min_length
            ));
        }
        if length > MAX_LENGTH {
            out.push(format!(
                "This password is too long. It must contain at most {MAX_LENGTH} characters."
            ));
            // The remaining checks are pointless (and slow) on such input.
            return out;
        }
        if length > 0 && password.chars().all(char::is_numeric) {
            out.push("This password is entirely numeric.".into());
        }
        let lower = password.to_lowercase();
        if self.is_common(&lower) {
            out.push("This password is too common.".into());
        }
        let core = strip_decorations(&lower);
        if self.built_on_context_words(&lower) {
            out.push("This password is too similar to the name of this service.".into());
        }
        let local_part = user.email.rsplit_once('@').map_or(user.email, |(l, _)| l);
        let is_local_part = local_part.chars().count() >= 4 && core == local_part.to_lowercase();
        if is_local_part || too_similar(&lower, user.email) {
            out.push("The password is too similar to the email.".into());
        }
        if too_similar(&lower, user.full_name) {
            out.push("The password is too similar to the full name.".into());
        }
        out
    }

    /// Made of the service's name and little else: once its words are taken out, fewer
    /// than four letters remain ("acme-portal", "Portal2024!").
    fn built_on_context_words(&self, lower: &str) -> bool {
        if self.context_words.is_empty()
            || !self
                .context_words
                .iter()
                .any(|w| lower.contains(w.as_str()))
        {
            return false;
        }
        let mut rest = lower.to_owned();
        for word in &self.context_words {
            rest = rest.replace(word.as_str(), "");
        }
        rest.chars().filter(|c| c.is_alphabetic()).count() < 4
    }

    /// In the list as typed, or once trailing digits and symbols are removed
    /// ("Monkey2024!" is "monkey").
    fn is_common(&self, lower: &str) -> bool {
        let trimmed = lower.trim();
        if self.common.contains(trimmed) {
            return true;
        }
        let core = strip_decorations(trimmed);
        core.chars().count() >= 3 && self.common.contains(core)
    }
}

/// Removes the digits and symbols people append or prepend to a word.
fn strip_decorations(s: &str) -> &str {
    s.trim_matches(|c: char| !c.is_alphabetic())
}

fn split_words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
}

/// Django's `UserAttributeSimilarityValidator`: the password is compared with the whole
/// value and with each of its words, using difflib's `quick_ratio`.
fn too_similar(password_lower: &str, attribute: &str) -> bool {
    let value = attribute.to_lowercase();
    if value.is_empty() {
        return false;
    }
    let pwd_len = password_lower.chars().count();
    split_words(&value)
        .chain(std::iter::once(value.as_str()))
        .filter(|part| !exceeds_maximum_length_ratio(pwd_len, part.chars().count()))
        .any(|part| quick_ratio(password_lower, part) >= MAX_SIMILARITY)
}

/// A value far shorter than the password cannot reach the similarity bound.
fn exceeds_maximum_length_ratio(pwd_len: usize, value_len: usize) -> bool {
    pwd_len >= 10 * value_len && (value_len as f64) < MAX_SIMILARITY / 2.0 * pwd_len as f64
}

/// difflib's `SequenceMatcher.quick_ratio`: twice the size of the multiset intersection
/// of characters over the total length. An upper bound on `ratio`, so stricter.
fn quick_ratio(a: &str, b: &str) -> f64 {
    let total = a.chars().count() + b.chars().count();
    if total == 0 {
        return 1.0;
    }
    let mut available: HashMap<char, usize> = HashMap::new();
    for c in b.chars() {
        *available.entry(c).or_default() += 1;
    }
    let mut matches = 0usize;
    for c in a.chars() {
        if let Some(n) = available.get_mut(&c).filter(|n| **n > 0) {
            *n -= 1;
            matches += 1;
        }
    }
    2.0 * matches as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::new(8, "Identity")
    }

    fn check(password: &str) -> Vec<String> {
        let user = UserContext {
            email: "ada.lovelace@example.com",
            full_name: "Ada Lovelace",
        };
        policy().violations(password, &user)
    }

    #[test]
    fn accepts_a_reasonable_password() {
        assert!(check("correct horse battery").is_empty());
        assert!(check("Tr0ub4dor&3x").is_empty());
    }

    #[test]
    fn bundles_at_least_ten_thousand_common_passwords() {
        assert!(policy().common.len() >= 10_000);
    }

    #[test]
    fn each_rule_has_its_message() {
        assert!(check("short1!")[0].contains("too short"));
        assert!(check(&"x".repeat(129))[0].contains("too long"));
        assert!(
            check(&"x".repeat(128))
                .iter()
                .all(|m| !m.contains("too long"))
        );
        assert!(check("12345678901").iter().any(|m| m.contains("numeric")));
        assert!(check("password").iter().any(|m| m.contains("common")));
        assert!(check("Password").iter().any(|m| m.contains("common")));
        assert!(check("Monkey2024!").iter().any(|m| m.contains("common")));
        assert!(check("identity2026").iter().any(|m| m.contains("service")));
        assert!(check("my-IDENTITY!!").iter().any(|m| m.contains("service")));
        assert!(
            !check("my identity is a secret")
                .iter()
                .any(|m| m.contains("service"))
        );
        assert!(check("ada.lovelace99").iter().any(|m| m.contains("email")));
        assert!(check("Lovelace").iter().any(|m| m.contains("full name")));
        assert!(
            check("ecalevol ada")
                .iter()
                .any(|m| m.contains("full name"))
        );
    }

    #[test]
    fn length_is_counted_in_code_points_after_nfkc() {
        // Eight full-width letters normalise to eight ASCII letters.
        let wide = "ｑｗｅｒｔｙｚｘ";
        assert_eq!(normalise(wide).expose_secret(), "qwertyzx");
        // Seven two-byte characters are still seven characters.
        assert!(check("ééééééé")[0].contains("too short"));
    }

    #[test]
    fn quick_ratio_matches_difflib() {
        // difflib.SequenceMatcher(a="abcd", b="bcde").quick_ratio() == 0.75
        assert!((quick_ratio("abcd", "bcde") - 0.75).abs() < 1e-9);
        assert!((quick_ratio("aaaa", "a") - 0.4).abs() < 1e-9);
    }
}
