//! The accept loop: HTTP/1.1 (keep-alive) over hyper, with two bounds `axum::serve`
//! lacks. A client has `HTTP_HEADER_READ_TIMEOUT` to send a request's head, from the
//! connection's start or the end of the previous response (slowloris: a client that
//! trickles or stops its headers is disconnected); and at most `HTTP_MAX_CONNECTIONS`
//! connections are served at once (each holds a permit; beyond, the accept loop waits
//! and new connections stay in the kernel's backlog). Graceful shutdown as in
//! `axum::serve`: stop accepting, let each connection finish its request, return when
//! every connection has closed.

use std::{sync::Arc, time::Duration};

use axum::{Router, body::Body, extract::ConnectInfo, http::Request};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::metrics::Metrics;

/// How one listener treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown`, then waits for open connections to
/// end (the caller bounds that wait). `listener` names the gauge of open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: &Metrics,
    name: &'static str,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let open = metrics.gauge("identity_http_open_connections", &[("listener", name)]);
    // Each connection task holds a receiver; when all are gone, every one has ended.
    let (all_closed, close_rx) = watch::channel(());
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let service = router
            .clone()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(Body::new)
            });
        let shutdown = shutdown.clone();
        let close_rx = close_rx.clone();
        let open = open.clone();
        open.increment(1.0);
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let conn = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            let mut stopping = std::pin::pin!(shutdown.cancelled());
            let mut told = false;
            loop {
                tokio::select! {
                    served = conn.as_mut() => {
                        if let Err(error) = served {
                            tracing::trace!(error = %format!("{error:#}"), "connection ended");
                        }
                        break;
                    }
                    () = &mut stopping, if !told => {
                        told = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            open.decrement(1.0);
            drop(permit);
            drop(close_rx);
        });
    }
    drop(close_rx);
    drop(listener);
    all_closed.closed().await;
}

/// As `axum::serve`: a connection reset before it was accepted is nothing; anything
/// else (out of file descriptors) is logged, and accepting pauses a moment.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %format!("{error:#}"), "cannot accept a connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
