//! The accept loop: HTTP/1.1 (keep-alive) over hyper, with two bounds `axum::serve`
//! lacks. A client has `HTTP_HEADER_READ_TIMEOUT` to send a request's head, from the
//! connection's start or the end of the previous response (slowloris: a client that
//! trickles or stops its headers is disconnected); and at most `HTTP_MAX_CONNECTIONS`
//! connections are served at once (each holds a permit; beyond, the accept loop waits
//! and new connections stay in the kernel's backlog).
//!
//! Graceful shutdown, made for a proxy in front (deploy/nginx.conf) that keeps
//! connections to the instance open: stop accepting, but first serve the connections
//! the kernel already completed (closing the listener would reset them, and a proxy
//! does not resend a POST it has written); let each connection finish its request;
//! answer every request from then on with `Connection: close`, so the proxy closes the
//! connection itself; close a connection left idle only `idle_grace` later, when a proxy
//! whose idle timeout is shorter has closed it already (a request written into a
//! connection the service is closing would be lost). Return when every connection has
//! closed.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{HeaderValue, Request, header},
    response::Response,
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    net::TcpListener,
    sync::{OwnedSemaphorePermit, Semaphore, watch},
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::metrics::Metrics;

/// How one listener treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// After shutdown begins, how long a kept-alive connection may wait idle for one
    /// more request (answered with `Connection: close`) before it is closed.
    pub idle_grace: Duration,
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
    let connection = || Connection {
        router: router.clone(),
        limits,
        shutdown: shutdown.clone(),
        open: open.clone(),
        close_rx: close_rx.clone(),
    };
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
        connection().spawn(stream, peer, permit);
    }
    // Connections the kernel completed before the stop, not accepted yet: served (their
    // requests answered with `Connection: close`) rather than reset with the listener.
    if let Ok(listener) = listener.into_std() {
        while let Ok(permit) = Arc::clone(&permits).try_acquire_owned() {
            let Ok((stream, peer)) = listener.accept() else {
                break;
            };
            let stream = stream
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpStream::from_std(stream));
            let Ok(stream) = stream else { continue };
            connection().spawn(stream, peer, permit);
        }
    }
    drop(close_rx);
    all_closed.closed().await;
}

/// One accepted connection and what its task needs.
struct Connection {
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    open: ::metrics::Gauge,
    close_rx: watch::Receiver<()>,
}

impl Connection {
    fn spawn(
        self,
        stream: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
        permit: OwnedSemaphorePermit,
    ) {
        let Self {
            router,
            limits,
            shutdown,
            open,
            close_rx,
        } = self;
        let stopping = shutdown.clone();
        let service = router
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(Body::new)
            })
            .map_response(move |mut resp: Response| {
                if stopping.is_cancelled() {
                    // hyper closes the connection after this answer; the peer knows not
                    // to send another request on it.
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                resp
            });
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
            let mut stopping = std::pin::pin!(async {
                shutdown.cancelled().await;
                tokio::time::sleep(limits.idle_grace).await;
            });
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
