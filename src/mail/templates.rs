//! The mails the service sends, each written once (`Content`) and rendered as a text
//! and an HTML body.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{OutgoingMail, content::Content};

pub fn password_reset(service: &str, to: &str, link: &str, valid_for: Duration) -> OutgoingMail {
    let minutes = valid_for.as_secs().div_ceil(60);
    Content::new()
        .paragraph(format!(
            "Someone asked to reset the password of your {service} account."
        ))
        .paragraph(format!(
            "To choose a new password, open this link within {minutes} minutes:"
        ))
        .link(link)
        .paragraph(
            "The link works once. If you did not ask for this, ignore this mail: your \
             password stays as it is.",
        )
        .into_mail(to, format!("Reset your {service} password"))
}

/// The link that proves control of the address (`register`, `resendVerificationEmail`).
pub fn verify_email(service: &str, to: &str, link: &str, valid_for: Duration) -> OutgoingMail {
    let hours = valid_for.as_secs().div_ceil(3600);
    Content::new()
        .paragraph(format!(
            "Please confirm that this address belongs to your {service} account."
        ))
        .paragraph(format!("Open this link within {hours} hours:"))
        .link(link)
        .paragraph("The link works once. If you did not create an account, ignore this mail.")
        .into_mail(to, format!("Confirm your email address for {service}"))
}

pub fn password_changed(service: &str, to: &str) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "The password of your {service} account was just changed, and every session \
             was signed out."
        ))
        .paragraph("If this was not you, reset your password now and contact support.")
        .into_mail(to, format!("Your {service} password was changed"))
}

/// The owner changed their password while signed in (`changePassword`).
pub fn password_changed_by_owner(service: &str, to: &str, others_signed_out: bool) -> OutgoingMail {
    let sessions = if others_signed_out {
        "Every other session was signed out."
    } else {
        "Your other sessions stay signed in."
    };
    Content::new()
        .paragraph(format!(
            "The password of your {service} account was just changed from a signed-in \
             session. {sessions}"
        ))
        .paragraph(
            "If this was not you, reset your password now, sign out every session and \
             contact support.",
        )
        .into_mail(to, format!("Your {service} password was changed"))
}

/// To the new address of a requested change: the link that confirms it.
pub fn confirm_email_change(
    service: &str,
    to: &str,
    link: &str,
    valid_for: Duration,
) -> OutgoingMail {
    let minutes = valid_for.as_secs().div_ceil(60);
    Content::new()
        .paragraph(format!(
            "Someone asked to make this address the sign-in address of a {service} \
             account."
        ))
        .paragraph(format!(
            "To confirm, open this link within {minutes} minutes:"
        ))
        .link(link)
        .paragraph(
            "The link works once. Until it is used, the account keeps its current \
             address. If you did not ask for this, ignore this mail.",
        )
        .into_mail(to, format!("Confirm your new email address for {service}"))
}

/// To the current address when a change is requested (whether or not the new address
/// could take it: the requester learns nothing from this mail going out).
pub fn email_change_requested(service: &str, to: &str, new_email: &str) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "A signed-in session of your {service} account asked to change its address \
             to {new_email}. A confirmation link was sent there; until it is used, you \
             keep signing in with this address."
        ))
        .paragraph(
            "If this was not you, change your password now and sign out every other \
             session: the change cannot happen without that link.",
        )
        .into_mail(
            to,
            format!("A change of your {service} email address was requested"),
        )
}

/// To both addresses once a change is confirmed.
pub fn email_changed(service: &str, to: &str, old: &str, new: &str) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "The sign-in address of your {service} account changed from {old} to {new}. \
             Every other session was signed out."
        ))
        .paragraph(
            "If this was not you, contact support at once: whoever holds the new \
             address can now reset the password.",
        )
        .into_mail(to, format!("Your {service} email address was changed"))
}

pub fn totp_enabled(service: &str, to: &str) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "Two-step sign-in with an authenticator app is now on for your {service} \
             account. Every other session was signed out; signing in now asks for a \
             code from the app."
        ))
        .paragraph(
            "Keep your recovery codes somewhere safe: each one signs you in once if \
             you lose the app. If this was not you, reset your password and contact \
             support.",
        )
        .into_mail(to, format!("Two-step sign-in is on for {service}"))
}

pub fn totp_disabled(service: &str, to: &str) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "Two-step sign-in with an authenticator app was turned off for your \
             {service} account, and its recovery codes no longer work. Every other \
             session was signed out."
        ))
        .paragraph("If this was not you, reset your password now and contact support.")
        .into_mail(to, format!("Two-step sign-in is off for {service}"))
}

pub fn passkey_added(service: &str, to: &str, name: &str) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "A passkey named \"{name}\" was added to your {service} account. It \
             signs you in without a password."
        ))
        .paragraph("If this was not you, remove it, reset your password and contact support.")
        .into_mail(to, format!("A passkey was added to your {service} account"))
}

pub fn passkey_removed(service: &str, to: &str, name: &str) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "The passkey named \"{name}\" was removed from your {service} \
             account; it no longer signs you in."
        ))
        .paragraph("If this was not you, reset your password now and contact support.")
        .into_mail(
            to,
            format!("A passkey was removed from your {service} account"),
        )
}

pub fn identity_linked(service: &str, to: &str, provider: &str) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "Your {provider} account was connected to your {service} account. It now \
             signs you in."
        ))
        .paragraph("If this was not you, disconnect it, reset your password and contact support.")
        .into_mail(
            to,
            format!("{provider} was connected to your {service} account"),
        )
}

pub fn identity_unlinked(service: &str, to: &str, provider: &str) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "Your {provider} account was disconnected from your {service} account; it \
             no longer signs you in."
        ))
        .paragraph("If this was not you, reset your password now and contact support.")
        .into_mail(
            to,
            format!("{provider} was disconnected from your {service} account"),
        )
}

pub fn unverified_account_claimed(service: &str, to: &str, provider: &str) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "You signed in to {service} with {provider}, which confirmed this address. \
             An earlier sign-up with this address had never been confirmed: its password \
             and sessions were removed, and {provider} now signs you in."
        ))
        .paragraph("You can set a password at any time with \"Forgot password\".")
        .into_mail(to, format!("Your {service} account is now confirmed"))
}

pub fn passkey_clone_suspected(service: &str, to: &str, name: &str) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "A sign-in to your {service} account with the passkey named \
             \"{name}\" was refused: its signature counter went backwards, which \
             can mean the key was copied."
        ))
        .paragraph(
            "If you did not just try to sign in with it, remove this passkey, reset your \
             password and contact support.",
        )
        .into_mail(to, format!("A {service} passkey may have been copied"))
}

pub fn recovery_code_used(service: &str, to: &str, left: u64) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "A recovery code was just used to sign in to your {service} account. \
             {left} of your recovery codes are left."
        ))
        .paragraph(
            "If this was not you, reset your password and make new recovery codes now. \
             If few are left, make new ones.",
        )
        .into_mail(to, format!("A {service} recovery code was used"))
}

pub fn recovery_codes_regenerated(service: &str, to: &str) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "New recovery codes were made for your {service} account; the old ones no \
             longer work."
        ))
        .paragraph("If this was not you, reset your password now and contact support.")
        .into_mail(to, format!("New {service} recovery codes"))
}

pub fn second_factor_locked(service: &str, to: &str, minutes: u64) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "Ten wrong codes in a row were entered for your {service} account, after \
             its password. Two-step sign-in is paused for {minutes} minutes."
        ))
        .paragraph("Whoever tried knows your password: if this was not you, reset it now.")
        .into_mail(to, format!("Sign-in to {service} paused after wrong codes"))
}

pub fn session_revoked(service: &str, to: &str) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "A session of your {service} account was signed out for your safety: a \
             sign-in token that had already been used was presented again, which can \
             mean it was copied."
        ))
        .paragraph(
            "If you signed out on another device, or are simply signed out now, sign in \
             again. If this keeps happening, reset your password.",
        )
        .into_mail(
            to,
            format!("A {service} session was signed out for your safety"),
        )
}

/// The owner asked for their account to be deleted (`requestAccountDeletion`): when,
/// and the link that cancels it.
pub fn account_deletion_scheduled(
    service: &str,
    to: &str,
    link: &str,
    at: DateTime<Utc>,
) -> OutgoingMail {
    let when = at.format("%Y-%m-%d %H:%M UTC");
    Content::new()
        .paragraph(format!(
            "You asked for your {service} account to be deleted. Every session was \
             signed out. The account and everything that belongs to it will be deleted \
             on {when}."
        ))
        .paragraph("To keep your account, open this link before then:")
        .link(link)
        .paragraph(
            "If you did not ask for this, open the link, then reset your password: \
             someone else was signed in to your account.",
        )
        .into_mail(to, format!("Your {service} account will be deleted"))
}

/// The account was deleted: the last mail to the address.
pub fn account_deleted(service: &str, to: &str) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "Your {service} account has been deleted, with everything that belonged to \
             it. This is the last mail you will get from us about it."
        ))
        .paragraph("You may register again with this address at any time.")
        .into_mail(to, format!("Your {service} account has been deleted"))
}

/// A copy of the account's data was exported (`myData`).
pub fn data_exported(service: &str, to: &str) -> OutgoingMail {
    Content::new()
        .paragraph(format!(
            "A copy of the data of your {service} account was just downloaded from a \
             signed-in session."
        ))
        .paragraph(
            "If this was not you, reset your password now, sign out every session and \
             contact support.",
        )
        .into_mail(to, format!("Your {service} data was exported"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every mail the service sends, with values that need escaping in HTML.
    fn every_mail() -> Vec<(&'static str, OutgoingMail)> {
        let service = "Tom & Jerry's <Portal>";
        let to = "ada@example.com";
        let link = "https://app.example/reset?token=abc&x=1";
        vec![
            (
                "password_reset",
                password_reset(service, to, link, Duration::from_secs(3600)),
            ),
            ("password_changed", password_changed(service, to)),
            (
                "password_changed_by_owner",
                password_changed_by_owner(service, to, true),
            ),
            (
                "password_changed_by_owner, others kept",
                password_changed_by_owner(service, to, false),
            ),
            ("session_revoked", session_revoked(service, to)),
            ("totp_enabled", totp_enabled(service, to)),
            ("totp_disabled", totp_disabled(service, to)),
            ("recovery_code_used", recovery_code_used(service, to, 3)),
            (
                "passkey_added",
                passkey_added(service, to, "Ada's <laptop>"),
            ),
            (
                "passkey_removed",
                passkey_removed(service, to, "Ada's <laptop>"),
            ),
            (
                "passkey_clone_suspected",
                passkey_clone_suspected(service, to, "Ada's <laptop>"),
            ),
            (
                "recovery_codes_regenerated",
                recovery_codes_regenerated(service, to),
            ),
            (
                "second_factor_locked",
                second_factor_locked(service, to, 15),
            ),
            (
                "verify_email",
                verify_email(service, to, link, Duration::from_secs(86400)),
            ),
            (
                "confirm_email_change",
                confirm_email_change(service, to, link, Duration::from_secs(3600)),
            ),
            (
                "email_change_requested",
                email_change_requested(service, to, "a&b@example.com"),
            ),
            (
                "email_changed",
                email_changed(service, to, "old@example.com", "new<x>@example.com"),
            ),
            (
                "account_deletion_scheduled",
                account_deletion_scheduled(
                    service,
                    to,
                    link,
                    DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
                ),
            ),
            ("account_deleted", account_deleted(service, to)),
            ("data_exported", data_exported(service, to)),
        ]
    }

    fn words(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// What a reader of the HTML body sees: tags dropped, entities decoded.
    fn html_as_text(html: &str) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => in_tag = true,
                '>' if in_tag => {
                    in_tag = false;
                    out.push(' ');
                }
                _ if !in_tag => out.push(c),
                _ => {}
            }
        }
        out.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    #[test]
    fn html_and_text_bodies_say_the_same() {
        for (name, mail) in every_mail() {
            assert_eq!(
                words(&html_as_text(&mail.html)),
                words(&mail.text),
                "the bodies of {name} differ"
            );
        }
    }

    #[test]
    fn reset_mail_carries_the_link_in_both_bodies() {
        let link = "https://app.example/reset?token=abc&x=1";
        let mail = password_reset("Acme", "ada@example.com", link, Duration::from_secs(3600));
        assert!(mail.text.contains(link));
        assert!(
            mail.html
                .contains("https://app.example/reset?token=abc&amp;x=1")
        );
        assert!(mail.text.contains("60 minutes"));
    }
}
