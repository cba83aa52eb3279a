//! The mails the service sends, each with a text and an HTML body.

use std::time::Duration;

use super::OutgoingMail;

pub fn password_reset(service: &str, to: &str, link: &str, valid_for: Duration) -> OutgoingMail {
    let minutes = valid_for.as_secs().div_ceil(60);
    let text = format!(
        "Someone asked to reset the password of your {service} account.\n\n\
         To choose a new password, open this link within {minutes} minutes:\n\n{link}\n\n\
         The link works once. If you did not ask for this, ignore this mail: your password \
         stays as it is."
    );
    let link_html = escape(link);
    let html = format!(
        "<p>Someone asked to reset the password of your {service} account.</p>\
         <p>To choose a new password, open this link within {minutes} minutes:</p>\
         <p><a href=\"{link_html}\">{link_html}</a></p>\
         <p>The link works once. If you did not ask for this, ignore this mail: your password \
         stays as it is.</p>",
        service = escape(service),
    );
    OutgoingMail {
        to: to.to_owned(),
        subject: format!("Reset your {service} password"),
        text,
        html,
    }
}

pub fn password_changed(service: &str, to: &str) -> OutgoingMail {
    let text = format!(
        "The password of your {service} account was just changed, and every session was \
         signed out.\n\nIf this was not you, reset your password now and contact support."
    );
    let html = format!(
        "<p>The password of your {service} account was just changed, and every session was \
         signed out.</p><p>If this was not you, reset your password now and contact support.</p>",
        service = escape(service),
    );
    OutgoingMail {
        to: to.to_owned(),
        subject: format!("Your {service} password was changed"),
        text,
        html,
    }
}

pub fn session_revoked(service: &str, to: &str) -> OutgoingMail {
    let text = format!(
        "A session of your {service} account was signed out for your safety: a sign-in \
         token that had already been used was presented again, which can mean it was \
         copied.\n\nIf you signed out on another device, or are simply signed out now, \
         sign in again. If this keeps happening, reset your password."
    );
    let html = format!(
        "<p>A session of your {service} account was signed out for your safety: a sign-in \
         token that had already been used was presented again, which can mean it was \
         copied.</p><p>Sign in again. If this keeps happening, reset your password.</p>",
        service = escape(service),
    );
    OutgoingMail {
        to: to.to_owned(),
        subject: format!("A {service} session was signed out for your safety"),
        text,
        html,
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

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
