//! The test harness itself: an override that is not a setting stops the test.

use crate::support::*;

#[tokio::test]
#[should_panic(expected = "unknown setting \"ACCES_TOKEN_TTL\"")]
async fn a_misspelt_override_stops_the_test_naming_it() {
    spawn_app_with(&[("ACCES_TOKEN_TTL", "5")]).await;
}

#[tokio::test]
#[should_panic(expected = "unknown setting \"RUST_LOG\"")]
async fn an_in_process_server_refuses_a_process_variable_it_would_ignore() {
    spawn_app_with(&[("RUST_LOG", "trace")]).await;
}

#[tokio::test]
#[should_panic(expected = "unknown setting \"ACCES_TOKEN_TTL\"")]
async fn a_misspelt_override_of_the_service_process_stops_the_test() {
    let storage = Storage::new().await;
    ServiceProcess::start(&storage, &MailSink::start(), &[("ACCES_TOKEN_TTL", "5")]).await;
}
