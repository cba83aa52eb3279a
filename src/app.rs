//! The application as a value: built from a `Config`, bound to its port, then run.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::{
    clock::{Clock, SystemClock},
    config::Config,
    domain::password::PasswordPolicy,
    graphql,
    http::{self, HttpState},
    mail::{Mailer, log::LogMailer, smtp::SmtpMailer},
    security::{
        jwt::JwtKeys, password::PasswordHasher, rate_limit::RateLimits, throttle::Throttle,
    },
    service::{AuditLog, Background, Deps, Services},
    store::{
        db,
        token_store::{MemoryTokenStore, RedisTokenStore, TokenStore},
    },
};

/// How long shutdown waits for in-flight background work (mail).
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

pub struct App {
    listener: TcpListener,
    router: axum::Router,
    deps: Deps,
    addr: SocketAddr,
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As `build`, with the clock every expiry decision reads (tests move it forward).
    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let deps = build_deps(config, clock).await?;
        let config = Arc::clone(&deps.config);
        let schema = graphql::build_schema(Services::new(&deps), &config.http);
        let router = http::router(HttpState::new(schema, deps.clone()));
        let listener = TcpListener::bind(config.http.bind_addr)
            .await
            .with_context(|| format!("bind BIND_ADDR {}", config.http.bind_addr))?;
        let addr = listener.local_addr().context("read the bound address")?;
        Ok(Self {
            listener,
            router,
            deps,
            addr,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The runner of off-request work (mail), e.g. to wait until it is idle.
    pub fn background(&self) -> Background {
        self.deps.background.clone()
    }

    /// The audit trail, e.g. to wait until its events are stored.
    pub fn audit(&self) -> AuditLog {
        self.deps.audit.clone()
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes: stops accepting, finishes in-flight requests,
    /// waits for background work, closes the pools.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let limits = Arc::clone(&self.deps.limits);
        let maintenance = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                limits.retain_recent();
            }
        });
        tracing::info!(addr = %self.addr, "listening; GraphQL at /graphql");
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop)
        .await
        .context("serve HTTP");
        maintenance.abort();
        if !self.deps.background.drain(DRAIN_LIMIT).await {
            tracing::warn!("background work still running at shutdown");
        }
        if !self.deps.audit.flush(DRAIN_LIMIT).await {
            tracing::warn!("audit events still unwritten at shutdown");
        }
        if let Err(error) = self.deps.db.close_by_ref().await {
            tracing::warn!(?error, "closing the database pool");
        }
        tracing::info!("stopped");
        served
    }
}

/// Everything the use cases need: pools, stores, keys, limits. Used by the server and
/// by CLI commands that act on accounts.
pub async fn build_deps(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Deps> {
    let config = Arc::new(config);
    let db = db::connect(&config.database).await?;
    if config.database.run_migrations {
        db::migrate(&db).await?;
    }
    let tokens: Arc<dyn TokenStore> = match &config.redis {
        Some(redis) => Arc::new(RedisTokenStore::connect(redis).await?),
        None => Arc::new(MemoryTokenStore::new()),
    };
    let mailer: Arc<dyn Mailer> = match &config.mail.smtp_url {
        Some(url) => Arc::new(SmtpMailer::new(url.expose_secret(), &config.mail.from)?),
        None => Arc::new(LogMailer),
    };
    let password_cfg = config.password.clone();
    let hasher = tokio::task::spawn_blocking(move || PasswordHasher::new(&password_cfg))
        .await
        .context("set up the password hasher")??;
    Ok(Deps {
        jwt: Arc::new(JwtKeys::from_config(&config.tokens)?),
        policy: Arc::new(PasswordPolicy::new(
            config.password.min_length,
            &config.service_name,
        )),
        limits: Arc::new(RateLimits::new(&config.rate_limit)),
        throttle: Arc::new(Throttle::new(
            Arc::clone(&tokens),
            Arc::clone(&clock),
            &config.rate_limit,
        )),
        audit: AuditLog::start(db.clone()),
        background: Background::new(8),
        db,
        tokens,
        mailer,
        hasher,
        clock,
        config,
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(?error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(?error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
