//! The password policy as a client meets it.

use crate::support::*;

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
