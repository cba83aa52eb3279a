//! The command line: `serve` (default), `migrate`, `print-schema`, `check-config`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{
    app::{App, build_deps},
    clock::SystemClock,
    config::Config,
    service::Services,
    store::db,
    telemetry,
};

#[derive(Parser)]
#[command(
    name = "identity",
    version,
    about = "Identity service: accounts and sessions over GraphQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the service (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Write the GraphQL schema (SDL) to stdout or a file; `schema.graphql` is made by it.
    PrintSchema {
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Validate the environment and print the settings that would be used, secrets masked.
    CheckConfig,
    /// Deactivate an account: it can no longer sign in, and every session ends at once.
    DeactivateUser {
        /// The account's email address.
        email: String,
    },
    /// Exit 0 if the service on BIND_ADDR answers /healthz (for container health checks);
    /// with `--ready`, /readyz; with `--wait SECS`, keep asking until it does or SECS pass
    /// (what scripts use to wait for a service they started).
    Healthcheck {
        /// Defaults to http://<BIND_ADDR>/healthz, or /readyz with `--ready` (0.0.0.0 is
        /// asked on 127.0.0.1).
        #[arg(long)]
        url: Option<String>,
        /// Ask /readyz (database and stores reachable) instead of /healthz.
        #[arg(long)]
        ready: bool,
        /// Retry for up to this many seconds before failing.
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        wait: u64,
    },
}

pub async fn run() -> ExitCode {
    // Tests and some dependencies may link a second TLS backend; pick one explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::PrintSchema { output } => print_schema(output),
        Command::CheckConfig => check_config(),
        Command::Healthcheck { url, ready, wait } => healthcheck(url, ready, wait).await,
        Command::DeactivateUser { email } => deactivate_user(&email).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn config() -> anyhow::Result<Config> {
    Config::from_env().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
}

async fn serve() -> anyhow::Result<()> {
    let config = config()?;
    telemetry::init(config.log_format)?;
    // The whole summary is `check-config`'s; at start it is there for debugging.
    for (name, value) in config.describe() {
        tracing::debug!("{name}={value}");
    }
    App::build(config).await?.run_until_stopped().await
}

async fn migrate() -> anyhow::Result<()> {
    let config = config()?;
    telemetry::init(config.log_format)?;
    let connection = db::connect(&config.database).await?;
    db::migrate(&connection).await?;
    tracing::info!("migrations applied");
    Ok(())
}

fn print_schema(output: Option<PathBuf>) -> anyhow::Result<()> {
    let sdl = crate::graphql::sdl();
    match output {
        Some(path) => {
            std::fs::write(&path, sdl).map_err(|e| anyhow::anyhow!("write {}: {e}", path.display()))
        }
        None => {
            print!("{sdl}");
            Ok(())
        }
    }
}

async fn deactivate_user(email: &str) -> anyhow::Result<()> {
    let config = config()?;
    telemetry::init(config.log_format)?;
    let deps = build_deps(config, std::sync::Arc::new(SystemClock)).await?;
    let found = Services::new(&deps)
        .users
        .deactivate(email)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    deps.audit.flush(std::time::Duration::from_secs(10)).await;
    anyhow::ensure!(found, "no account with the email {email}");
    println!("deactivated {email}; every session of the account is revoked");
    Ok(())
}

fn check_config() -> anyhow::Result<()> {
    let config = config()?;
    for (name, value) in config.describe() {
        println!("{name}={value}");
    }
    Ok(())
}

async fn healthcheck(url: Option<String>, ready: bool, wait_secs: u64) -> anyhow::Result<()> {
    let url = match url {
        Some(url) => url,
        None => {
            let bind = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".into());
            let mut addr: std::net::SocketAddr = bind
                .parse()
                .map_err(|e| anyhow::anyhow!("BIND_ADDR: cannot parse {bind:?}: {e}"))?;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let path = if ready { "readyz" } else { "healthz" };
            format!("http://{addr}/{path}")
        }
    };
    // The service is on this machine: never through HTTP_PROXY / http_proxy, which a
    // container gets from the user's Docker proxy settings.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(3))
        .build()?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait_secs);
    loop {
        let outcome = match client.get(&url).send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => anyhow::anyhow!("{url} answered {}", response.status()),
            Err(e) => anyhow::anyhow!("{url}: {e}"),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(outcome);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
