//! The application as a value: built from a `Config`, bound to its port, then run.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    clock::{Clock, SystemClock},
    config::Config,
    domain::password::PasswordPolicy,
    graphql,
    http::{self, HttpState},
    mail::{Mailer, log::LogMailer, smtp::SmtpMailer},
    metrics::Metrics,
    security::{jwt::JwtKeys, password::PasswordHasher, sealed::Sealer},
    service::{
        AuditLog, Deps, Services, account,
        outbox::Outbox,
        per_account_limits::PerAccountLimits,
        per_ip_limits::IpLimits,
        reset_queue::{self, ResetQueue},
    },
    store::{
        account_tokens, audit as audit_store, db,
        ephemeral::{EphemeralStores, RevocationSource},
        outbox as outbox_store, sessions,
    },
};

/// After a stop signal, how long a kept-alive connection left idle stays open for one
/// more request (answered with `Connection: close`): a proxy that closes its idle
/// connections sooner never writes a request into one the service is closing.
const IDLE_GRACE: Duration = Duration::from_secs(5);

/// How long shutdown waits for in-flight background work (mail).
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

pub struct App {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    router: axum::Router,
    http_state: HttpState,
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
        let services = Services::new(&deps);
        let schema = graphql::build_schema(services.clone(), &config.http);
        let http_state = HttpState::new(schema, services, Arc::clone(&config));
        let router = http::router(http_state.clone());
        let listener = TcpListener::bind(config.http.bind_addr)
            .await
            .with_context(|| format!("bind BIND_ADDR {}", config.http.bind_addr))?;
        let metrics_listener = match config.http.metrics_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("bind METRICS_ADDR {addr}"))?,
            ),
            None => None,
        };
        let addr = listener.local_addr().context("read the bound address")?;
        Ok(Self {
            listener,
            metrics_listener,
            router,
            http_state,
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

    /// The queue of password-reset requests, e.g. to wait until it is empty.
    pub fn reset_queue(&self) -> ResetQueue {
        self.deps.reset_queue.clone()
    }

    /// The audit trail, e.g. to wait until its events are stored.
    pub fn audit(&self) -> AuditLog {
        self.deps.audit.clone()
    }

    /// The mail outbox, e.g. to deliver what is due now.
    pub fn outbox(&self) -> Outbox {
        self.deps.outbox.clone()
    }

    /// The address of the metrics listener, if `METRICS_ADDR` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then shuts down in order: stop accepting, let
    /// in-flight requests finish (at most `SHUTDOWN_TIMEOUT`), finish the work promised
    /// after an answer (queued reset requests, verification resends), deliver due mail,
    /// store the last audit events, close the pools.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let deps = self.deps;
        let resends = self.http_state.services.email_verification.clone();
        let shutdown = CancellationToken::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            stop.await;
            trigger.cancel();
        });

        let maintenance = tokio::spawn(maintain(deps.clone(), shutdown.clone()));
        let outbox = tokio::spawn(deps.outbox.clone().run(shutdown.clone().cancelled_owned()));
        let limits = http::ConnectionLimits {
            header_read_timeout: deps.config.http.header_read_timeout,
            max_connections: deps.config.http.max_connections,
            // Longer than a proxy's idle timeout for its connections to an instance
            // (deploy/nginx.conf: 4 s), within the shutdown's own bound.
            idle_grace: IDLE_GRACE.min(deps.config.http.shutdown_timeout / 2),
        };
        let metrics_server = self.metrics_listener.map(|listener| {
            tracing::info!(addr = ?listener.local_addr().ok(), "metrics at /metrics");
            let router = http::metrics_router(self.http_state.clone());
            let metrics = deps.metrics.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                http::serve(listener, router, limits, &metrics, "metrics", shutdown).await;
            })
        });

        // The one line a person starting the service needs: where to click.
        let host = match self.addr.ip() {
            ip if ip.is_unspecified() => "localhost".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let url = format!("http://{host}:{}/graphql", self.addr.port());
        if deps.config.http.graphiql {
            tracing::info!(addr = %self.addr, "listening; GraphiQL: {url}");
        } else {
            tracing::info!(addr = %self.addr, "listening; GraphQL at {url}");
        }
        let server = http::serve(
            self.listener,
            self.router,
            limits,
            &deps.metrics,
            "api",
            shutdown.clone(),
        );
        let grace = deps.config.http.shutdown_timeout;
        let served: anyhow::Result<()> = tokio::select! {
            () = server => Ok(()),
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(?grace, "requests still running at the end of the shutdown grace period");
                Ok(())
            }
        };

        if !deps.reset_queue.stop(DRAIN_LIMIT).await {
            tracing::warn!("password reset requests still queued at shutdown");
        }
        if !resends.drain(DRAIN_LIMIT).await {
            tracing::warn!("verification resends still running at shutdown");
        }
        tracing::info!("delivering due mail before stopping");
        let mut outbox = outbox;
        if tokio::time::timeout(DRAIN_LIMIT, &mut outbox)
            .await
            .is_err()
        {
            // What is left stays queued (its lease runs out) for the next instance.
            outbox.abort();
            tracing::warn!("mail still queued at shutdown; it will be sent after the restart");
        }

        if !deps.audit.flush(DRAIN_LIMIT).await {
            tracing::warn!("audit events still unwritten at shutdown");
        }
        maintenance.abort();
        if let Some(task) = metrics_server {
            task.abort();
        }
        if let Err(error) = deps.db.close_by_ref().await {
            tracing::warn!(error = %format!("{error:#}"), "closing the database pool");
        }
        tracing::info!("stopped");
        served
    }
}

/// Periodic housekeeping: forget idle rate-limit keys, keep the metrics exporter tidy.
async fn maintain(deps: Deps, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let retention = deps.config.retention.clone();
    // The first purge one interval after start, not at once: instances restarting
    // together do not all purge at the same moment.
    let mut purge = tokio::time::interval_at(
        tokio::time::Instant::now() + retention.interval,
        retention.interval,
    );
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                rounds += 1;
                deps.metrics.upkeep();
                if rounds.is_multiple_of(12) {
                    deps.per_ip_limits.retain_recent();
                }
            }
            _ = purge.tick() => purge_finished_records(&deps, &retention).await,
            () = shutdown.cancelled() => return,
        }
    }
}

/// Rows kept per delete statement by the purge.
const PURGE_BATCH: u64 = 1000;

/// Deletes accounts whose deletion is due (`ACCOUNT_DELETION_GRACE`), sessions long
/// ended, mail long finished, old audit events (see `RetentionConfig`) and expired
/// account tokens.
async fn purge_finished_records(deps: &Deps, retention: &crate::config::RetentionConfig) {
    match account::purge_due_accounts(deps).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "deleted accounts whose deletion was due"),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot delete accounts due for deletion");
        }
    }
    let now = deps.clock.now();
    let before = |keep: Duration| now - chrono::Duration::from_std(keep).unwrap_or_default();
    let idle = deps.config.tokens.refresh_idle_ttl;
    // Never a session whose access tokens may still be valid: its revocation must stay
    // readable (`sessions::revoked_since`) until they expire.
    let sessions_before = before(retention.sessions).min(now - (deps.jwt.latest_expiry(now) - now));
    match sessions::purge_ended(&deps.db, sessions_before, idle, PURGE_BATCH).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "purged ended sessions"),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot purge ended sessions");
        }
    }
    match outbox_store::purge_finished(&deps.db, before(retention.outbox), PURGE_BATCH).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "purged finished mail"),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot purge finished mail");
        }
    }
    match account_tokens::purge_expired(&deps.db, now, PURGE_BATCH).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "purged expired account tokens"),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot purge expired account tokens");
        }
    }
    match audit_store::purge_before(&deps.db, before(retention.audit), PURGE_BATCH).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "purged old audit events"),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot purge old audit events");
        }
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
    let jwt = Arc::new(JwtKeys::from_config(&config.tokens)?);
    // A session revoked longer ago than this has no access token left that verifies.
    let now = clock.now();
    let lookback = (jwt.latest_expiry(now) - now)
        .to_std()
        .unwrap_or(config.tokens.access_ttl);
    let metrics = Metrics::new();
    let source = RevocationSource {
        db: db.clone(),
        clock: Arc::clone(&clock),
        lookback,
        metrics: metrics.clone(),
    };
    let ephemeral = EphemeralStores::connect(config.redis.as_ref(), source).await?;
    let mailer: Arc<dyn Mailer> = match &config.mail.smtp_url {
        Some(url) => Arc::new(SmtpMailer::new(
            url.expose_secret(),
            &config.mail.from,
            config.mail.timeout,
        )?),
        None => Arc::new(LogMailer),
    };
    let password_cfg = config.password.clone();
    let hasher_metrics = metrics.clone();
    let hasher =
        tokio::task::spawn_blocking(move || PasswordHasher::new(&password_cfg, &hasher_metrics))
            .await
            .context("set up the password hasher")??;
    // A login must be answered within the request timeout: half of it for hashing.
    hasher.bound_wait(config.http.request_timeout / 2);
    let (reset_queue, reset_requests) = ResetQueue::new(metrics.clone());
    let webauthn =
        crate::service::passkeys::build_webauthn(&config.webauthn, &config.service_name)?;
    let social = crate::social::Providers::new(&config.social)?;
    let deps = Deps {
        webauthn: Arc::new(webauthn),
        social: Arc::new(social),
        second_factor_sealer: Arc::new(Sealer::for_service(
            crate::service::mfa::SEAL_PURPOSE,
            &config.tokens,
        )),
        jwt,
        policy: Arc::new(PasswordPolicy::new(
            config.password.min_length,
            &config.service_name,
        )),
        per_ip_limits: Arc::new(IpLimits::new(
            ephemeral
                .ip_limits
                .clone()
                .filter(|_| config.rate_limit.ip_shared),
            &config.rate_limit,
            Arc::clone(&clock),
            metrics.clone(),
        )),
        per_account_limits: Arc::new(PerAccountLimits::new(
            Arc::clone(&ephemeral.counters),
            Arc::clone(&clock),
            &config.rate_limit,
        )),
        audit: AuditLog::start(db.clone(), metrics.clone(), Arc::clone(&clock)),
        outbox: Outbox::new(
            db.clone(),
            Arc::clone(&mailer),
            Arc::clone(&clock),
            metrics.clone(),
            &config,
        ),
        metrics,
        db,
        ephemeral,
        mailer,
        hasher,
        clock,
        config,
        reset_queue,
    };
    tokio::spawn(reset_queue::run(deps.clone(), reset_requests));
    Ok(deps)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %format!("{error:#}"), "cannot listen for Ctrl-C");
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
                tracing::error!(error = %format!("{error:#}"), "cannot listen for SIGTERM");
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
