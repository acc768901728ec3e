//! `beacon serve`: accept loop, one task per connection, graceful drain.
//!
//! Hyper is driven directly rather than through `axum::serve` for the knobs
//! that one hides: header-read timeout, head size limit, no keep-alive, and
//! a drain that waits for requests but not for idle or half-open sockets.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tracing::Instrument as _;

use crate::routes::{self, VersionInfo};
use crate::shutdown::Signals;

/// A client gets this long to send its request head, so a stalled or
/// trickling client costs a task for at most this long.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Request heads are tiny here; this bounds what a client can make us buffer
/// (hyper answers 431 past it; it accepts nothing below 8 KiB).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Cap on open connections, so a flood cannot exhaust memory. Real traffic
/// is a few probes and scrapes.
const MAX_CONNECTIONS: usize = 256;
/// After a signal, how long in-flight requests get to finish. Above the
/// request timeout, so a request that started is normally answered, and
/// below `docker stop`'s default 10 s, so we exit on our own terms.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);
/// Pause after a failed accept (e.g. EMFILE): transient, but retrying at
/// once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Binds 0.0.0.0:`port` and serves until SIGTERM or SIGINT, then drains.
pub async fn run(port: u16) -> io::Result<()> {
    // Before binding, so that a SIGTERM during startup is not lost.
    let mut signals = Signals::install()?;
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        version = crate::VERSION,
        "listening"
    );
    let app = routes::app(VersionInfo::from_env());
    let stop = async {
        let signal = signals.recv().await;
        tracing::info!(signal, "shutting down");
    };
    let drain = serve(listener, app, stop).await;
    let outcome = tokio::select! {
        outcome = drain.finish(SHUTDOWN_GRACE) => outcome,
        signal = signals.recv() => {
            tracing::warn!(signal, "second signal, not waiting for in-flight requests");
            Drained::Abandoned
        }
    };
    if let Drained::Abandoned = outcome {
        tracing::warn!("stopped with requests still in flight");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Serves `app` on `listener` until `stop` completes, then stops accepting
/// and tells every connection to finish. The returned `Drain` waits for them.
pub async fn serve(listener: TcpListener, app: Router, stop: impl Future<Output = ()>) -> Drain {
    let http = http1_builder();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let connections = TaskTracker::new();
    let cancel = CancellationToken::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, "too many connections, dropping");
            continue; // dropping `stream` closes it
        };
        let connection = serve_connection(stream, app.clone(), http.clone(), cancel.clone());
        connections.spawn(
            async move {
                connection.await;
                drop(slot);
            }
            .instrument(tracing::info_span!("connection", %peer)),
        );
    }
    // From here on the kernel refuses new connections.
    drop(listener);
    cancel.cancel();
    connections.close();
    Drain { connections }
}

/// The connections still open after `serve` returned.
pub struct Drain {
    connections: TaskTracker,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every request in flight was answered.
    Clean,
    /// The grace period ran out first.
    Abandoned,
}

impl Drain {
    /// Waits up to `grace` for in-flight requests to be answered.
    pub async fn finish(self, grace: Duration) -> Drained {
        match tokio::time::timeout(grace, self.connections.wait()).await {
            Ok(()) => Drained::Clean,
            Err(_) => Drained::Abandoned,
        }
    }
}

fn http1_builder() -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        // One request per connection, as a probe or a scrape makes: every
        // response says `Connection: close`, and a connection is either
        // waiting for its request or busy with it, never idle in between.
        .keep_alive(false);
    http
}

/// Serves one connection. On `cancel`, a connection whose request is
/// being handled finishes it (hyper writes the response, then closes); one
/// still waiting for its request head, empty or partial, is closed at once:
/// there is nothing in flight to save, and a stalled client must not hold
/// up the shutdown.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    http: http1::Builder,
    cancel: CancellationToken,
) {
    // Small responses, sent at once: no point in Nagle delaying them.
    let _ = stream.set_nodelay(true);
    let busy = Arc::new(AtomicBool::new(false));
    let service = {
        let busy = Arc::clone(&busy);
        service_fn(move |request: hyper::Request<Incoming>| {
            busy.store(true, Ordering::SeqCst);
            app.clone().oneshot(request)
        })
    };
    let connection = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = cancel.cancelled() => {
            if !busy.load(Ordering::SeqCst) {
                tracing::debug!("closing connection without a request in flight");
                return;
            }
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        log_connection_error(&e);
    }
}

/// Hyper has already answered what deserves an answer (400 for a malformed
/// request, 431 for an oversized head); this is the log line.
fn log_connection_error(e: &hyper::Error) {
    if e.is_parse() || e.is_parse_too_large() {
        tracing::info!(error = %e, "bad request");
    } else if e.is_timeout() {
        tracing::info!(error = %e, "client too slow, closed");
    } else {
        // The client went away, mostly: theirs to know, not ours.
        tracing::debug!(error = %e, "connection error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;

    /// A server on a free loopback port; `stop` ends its accept loop.
    async fn start(
        app: Router,
    ) -> (
        SocketAddr,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<Drain>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, async {
            let _ = stopped.await;
        }));
        (addr, stop, server)
    }

    async fn exchange(addr: SocketAddr, raw: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(raw.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    fn app() -> Router {
        routes::app(VersionInfo::from_env())
    }

    #[tokio::test]
    async fn one_request_per_connection_with_connection_close() {
        let (addr, _stop, _server) = start(app()).await;
        let response = exchange(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("\r\nconnection: close\r\n"), "{response}");
        assert!(response.contains("\r\nx-request-id: "), "{response}");
        assert!(
            response.ends_with("\r\n\r\n{\"status\":\"ok\"}"),
            "{response}"
        );
    }

    #[tokio::test]
    async fn malformed_requests_get_400() {
        let (addr, _stop, _server) = start(app()).await;
        for raw in [
            "nonsense\r\n\r\n",
            "GET  /healthz HTTP/1.1\r\n\r\n",
            "G(T /healthz HTTP/1.1\r\n\r\n",
            "GET /a\x1bb HTTP/1.1\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nno colon\r\n\r\n",
        ] {
            let response = exchange(addr, raw).await;
            assert!(
                response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
                "{raw:?}: {response:?}"
            );
        }
    }

    #[tokio::test]
    async fn oversized_heads_are_refused() {
        let (addr, _stop, _server) = start(app()).await;
        let raw = format!(
            "GET /healthz HTTP/1.1\r\nX-Padding: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        let response = exchange(addr, &raw).await;
        assert!(
            response.starts_with("HTTP/1.1 431 "),
            "{:?}",
            response.lines().next()
        );
    }

    #[tokio::test]
    async fn drain_lets_in_flight_requests_finish_and_drops_stalled_clients() {
        let (entered, mut handler_started) = tokio::sync::mpsc::channel::<()>(1);
        let slow = Router::new().route(
            "/slow",
            get(move || {
                let entered = entered.clone();
                async move {
                    let _ = entered.send(()).await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "finished"
                }
            }),
        );
        let (addr, stop, server) = start(slow).await;

        // A client that sent half a head and stalls, and one mid-request.
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled.write_all(b"GET /sl").await.unwrap();
        let in_flight = tokio::spawn(exchange(addr, "GET /slow HTTP/1.1\r\n\r\n"));
        handler_started.recv().await.unwrap();

        stop.send(()).unwrap();
        let drain = server.await.unwrap();
        // No new connections once the accept loop is gone.
        assert!(TcpStream::connect(addr).await.is_err());

        let started = std::time::Instant::now();
        assert_eq!(drain.finish(Duration::from_secs(5)).await, Drained::Clean);
        assert!(started.elapsed() < Duration::from_secs(2));
        let response = in_flight.await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with("finished"), "{response}");
        // The stalled client was closed without an answer.
        let mut rest = Vec::new();
        assert_eq!(stalled.read_to_end(&mut rest).await.unwrap_or(0), 0);
    }

    #[tokio::test]
    async fn drain_gives_up_after_the_grace_period() {
        let (entered, mut handler_started) = tokio::sync::mpsc::channel::<()>(1);
        let stuck = Router::new().route(
            "/stuck",
            get(move || {
                let entered = entered.clone();
                async move {
                    let _ = entered.send(()).await;
                    std::future::pending::<()>().await;
                }
            }),
        );
        let (addr, stop, server) = start(stuck).await;
        let _client = tokio::spawn(exchange(addr, "GET /stuck HTTP/1.1\r\n\r\n"));
        handler_started.recv().await.unwrap();
        stop.send(()).unwrap();
        let drain = server.await.unwrap();
        assert_eq!(
            drain.finish(Duration::from_millis(100)).await,
            Drained::Abandoned
        );
    }
}
