//! The password policy as a client meets it.

use crate::support::*;

#[tokio::test]
async fn the_password_policy_is_at_least_djangos() {
    let app = spawn_app().await;
    let email = "grace.hopper@example.com";
    for (password, expected) in [
        ("short1!", "too short"),
        (&"long password ".repeat(10), "too long"),
        ("8675309012", "entirely numeric"),
        ("password", "too common"),
        ("iloveyou", "too common"),
        ("Sunshine2024!", "too common"),
        ("grace.hopper", "similar to the email"),
        ("hopper grace", "similar to the full name"),
    ] {
        let resp = app
            .register_as(email, "Grace Hopper", password, password)
            .await;
        let messages = fields(&resp)["password"].to_string();
        assert!(messages.contains(expected), "{password:?}: {messages}");
    }
    // A long passphrase made of common words is fine.
    let resp = app
        .register_as(
            email,
            "Grace Hopper",
            "compiler nanosecond cobol",
            "compiler nanosecond cobol",
        )
        .await;
    data(&resp, "register");
}

#[tokio::test]
async fn passwords_are_compared_after_nfkc_normalisation() {
    let app = spawn_app().await;
    let email = unique_email();
    // Full-width letters and digits, as some keyboards type them.
    let wide = "ｃｏｒｒｅｃｔ ｈｏｒｓｅ ｂａｔｔｅｒｙ ４２";
    data(
        &app.register_as(&email, "Ada Lovelace", wide, wide).await,
        "register",
    );
    data(
        &app.login(&email, "correct horse battery 42").await,
        "login",
    );
    data(&app.login(&email, wide).await, "login");
}

#[tokio::test]
async fn the_minimum_length_is_configurable() {
    let app = spawn_app_with(&[("PASSWORD_MIN_LENGTH", "15")]).await;
    let short = "fourteen chars";
    assert_eq!(short.chars().count(), 14);
    let resp = app
        .register_as(&unique_email(), "Ada Lovelace", short, short)
        .await;
    assert!(
        fields(&resp)["password"]
            .to_string()
            .contains("at least 15"),
        "{resp}"
    );
    let ok = "fifteen chars!!";
    data(
        &app.register_as(&unique_email(), "Ada Lovelace", ok, ok)
            .await,
        "register",
    );
}

#[tokio::test]
async fn the_service_name_is_a_forbidden_base() {
    let app = spawn_app_with(&[("SERVICE_NAME", "Acme Portal")]).await;
    for password in ["portal2024!", "ACME-portal"] {
        let resp = app
            .register_as(&unique_email(), "Ada Lovelace", password, password)
            .await;
        assert!(fields(&resp).contains_key("password"), "{password}: {resp}");
    }
}

#[tokio::test]
async fn an_oversized_password_is_rejected_without_hashing_it_all() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    // Under the 64 KiB body limit even when sent twice (register), far over 128.
    let huge = "x".repeat(30_000);
    assert_code(&app.login(&email, &huge).await, "INVALID_CREDENTIALS");
    let resp = app
        .register_as(&unique_email(), "Ada Lovelace", &huge, &huge)
        .await;
    assert!(
        fields(&resp)["password"].to_string().contains("too long"),
        "{resp}"
    );
}
