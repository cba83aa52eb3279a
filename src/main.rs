#[tokio::main]
async fn main() -> std::process::ExitCode {
    identity::cli::run().await
}
