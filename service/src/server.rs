//! `beacon serve`: nonblocking accept loop, one short-lived thread per connection.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{self, Request, Response};
use crate::signal;

/// How often the accept loop checks for SIGTERM/SIGINT; bounds shutdown latency.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Whole-exchange budget per connection, so slow clients only ever cost a
/// thread for this long and never delay anyone else.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Cap on concurrent connection threads, so a flood cannot exhaust memory.
/// Real traffic here is a few probes and scrapes.
const MAX_CONNECTIONS: usize = 256;

const HEALTHZ_BODY: &str = r#"{"status":"ok"}"#;

pub fn run(port: u16) -> io::Result<()> {
    // Before binding, so that a SIGTERM during startup is not lost.
    signal::install()?;
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?;
    // `signal()` handlers restart interrupted syscalls, so a blocking accept()
    // would never notice SIGTERM; polling a nonblocking one does.
    listener.set_nonblocking(true)?;
    log!(
        "beacon {} listening on {}",
        crate::VERSION,
        listener.local_addr()?
    );

    let version_body: Arc<str> = version_body_from_env().into();
    let active = Arc::new(AtomicUsize::new(0));
    while !signal::shutdown_requested() {
        match listener.accept() {
            Ok((stream, peer)) => spawn_connection(stream, peer, &version_body, &active),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL_INTERVAL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // E.g. EMFILE or ECONNABORTED: transient, so keep serving, but back
            // off rather than spin.
            Err(e) => {
                elog!("accept: {e}");
                thread::sleep(POLL_INTERVAL);
            }
        }
    }
    // In-flight connections are bounded by CONNECTION_TIMEOUT and hold no
    // state worth saving, so exiting without joining them is fine.
    log!("shutting down");
    Ok(())
}

/// Decrements the active-connection count when a connection is done,
/// including when its thread could not be spawned.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    version_body: &Arc<str>,
    active: &Arc<AtomicUsize>,
) {
    let already_active = active.fetch_add(1, Ordering::SeqCst);
    // From here on, dropping `slot` undoes the increment.
    let slot = Slot(Arc::clone(active));
    if already_active >= MAX_CONNECTIONS {
        elog!("{peer}: too many connections, dropping");
        return; // dropping `stream` closes it
    }
    let version_body = Arc::clone(version_body);
    let spawned = thread::Builder::new()
        .name("connection".into())
        .spawn(move || {
            let _slot = slot;
            handle(stream, peer, &version_body);
        });
    if let Err(e) = spawned {
        elog!("{peer}: cannot spawn thread: {e}");
    }
}

fn handle(mut stream: TcpStream, peer: SocketAddr, version_body: &str) {
    let deadline = Instant::now() + CONNECTION_TIMEOUT;
    // macOS/BSD accept() inherits the listener's O_NONBLOCK (Linux does not);
    // the deadline logic relies on blocking sockets with timeouts.
    if let Err(e) = stream.set_nonblocking(false) {
        elog!("{peer}: {e}");
        return;
    }
    let head = match http::read_until(&mut stream, deadline, http::MAX_HEAD, http::head_complete) {
        // Connected and closed without a byte: a TCP probe, not worth a log line.
        Ok(head) if head.is_empty() => return,
        Ok(head) => head,
        Err(e) => {
            log!("{peer} read: {e}");
            return;
        }
    };

    let (response, with_body, what) = match http::parse_request(&head) {
        Ok(req) => (
            route(&req, version_body),
            req.method != "HEAD",
            format!("{} {}", req.method, req.path),
        ),
        Err(why) => (
            Response {
                status: 400,
                body: r#"{"error":"bad request"}"#,
            },
            true,
            format!("bad request: {why}"),
        ),
    };
    match http::write_all(&mut stream, deadline, &response.to_bytes(with_body)) {
        Ok(()) => log!("{peer} \"{what}\" {}", response.status),
        Err(e) => log!("{peer} \"{what}\" {} write: {e}", response.status),
    }
}

/// 404 for unknown paths first, then 405 for known paths with other methods.
fn route<'a>(req: &Request<'_>, version_body: &'a str) -> Response<'a> {
    let body = match req.path {
        "/healthz" => HEALTHZ_BODY,
        "/version" => version_body,
        _ => {
            return Response {
                status: 404,
                body: r#"{"error":"not found"}"#,
            }
        }
    };
    match req.method {
        // HEAD is answered too: HTTP requires it wherever GET works.
        "GET" | "HEAD" => Response { status: 200, body },
        _ => Response {
            status: 405,
            body: r#"{"error":"method not allowed"}"#,
        },
    }
}

/// Built once at startup: the environment does not change while we run.
fn version_body_from_env() -> String {
    let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
    // The runtime value wins so an image can be relabelled without a rebuild;
    // the compile-time one covers binaries run outside our images.
    let revision = var("BEACON_REVISION")
        .or_else(|| option_env!("BEACON_REVISION").map(String::from))
        .filter(|v| !v.is_empty());
    version_body(
        revision.as_deref(),
        var("BEACON_VARIANT").as_deref(),
        var("BEACON_BUILD_TARGET").as_deref(),
    )
}

fn version_body(
    revision: Option<&str>,
    variant: Option<&str>,
    build_target: Option<&str>,
) -> String {
    let build_target = build_target
        .filter(|target| matches!(*target, "ci" | "production"))
        .unwrap_or("unknown");
    format!(
        r#"{{"version":"{}","revision":"{}","variant":"{}","build_target":"{}"}}"#,
        http::json_escape(crate::VERSION),
        http::json_escape(revision.unwrap_or("unknown")),
        http::json_escape(variant.unwrap_or("unknown")),
        http::json_escape(build_target),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(method: &str, path: &str) -> u16 {
        route(&Request { method, path }, "{}").status
    }

    #[test]
    fn routes() {
        assert_eq!(status("GET", "/healthz"), 200);
        assert_eq!(status("HEAD", "/healthz"), 200);
        assert_eq!(status("GET", "/version"), 200);
        assert_eq!(status("POST", "/healthz"), 405);
        assert_eq!(status("DELETE", "/version"), 405);
        assert_eq!(status("GET", "/"), 404);
        assert_eq!(status("POST", "/nope"), 404);
        assert_eq!(
            route(
                &Request {
                    method: "GET",
                    path: "/healthz"
                },
                "{}"
            )
            .body,
            HEALTHZ_BODY
        );
    }

    #[test]
    fn version_body_fields() {
        let v = crate::VERSION;
        assert_eq!(
            version_body(Some("abc123"), Some("distroless"), Some("production")),
            format!(
                r#"{{"version":"{v}","revision":"abc123","variant":"distroless","build_target":"production"}}"#
            )
        );
        assert_eq!(
            version_body(None, None, Some("staging")),
            format!(
                r#"{{"version":"{v}","revision":"unknown","variant":"unknown","build_target":"unknown"}}"#
            )
        );
        assert!(version_body(Some("a\"b"), Some("x\ny"), None)
            .contains(r#""revision":"a\"b","variant":"x\ny""#));
    }
}
