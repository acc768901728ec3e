//! Runs the real binary the way a container does: serve on a free port, talk
//! HTTP to it, run `healthcheck` against it, then stop it with a signal.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_beacon");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A running `beacon serve`, killed on drop so a failing test leaks no process.
struct Server {
    child: Child,
    port: u16,
    /// Everything logged after the "listening" line, collected until exit.
    log: Option<JoinHandle<String>>,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(BIN)
            // Port 0 plus reading the logged address avoids racing for a free port.
            .args(["serve", "--port", "0"])
            .env_remove("BEACON_PORT")
            .env("BEACON_REVISION", "abc\"123")
            .env("BEACON_VARIANT", "distroless")
            .env("BEACON_BUILD_TARGET", "ci")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn beacon");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let first = lines
            .next()
            .expect("beacon exited before listening")
            .expect("read beacon stdout");
        let port = first
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        // Keep draining stdout so request logging never blocks on a full pipe.
        let log = thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
        Server {
            child,
            port,
            log: Some(log),
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    fn wait(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "beacon still running after {timeout:?}"
            );
            thread::sleep(Duration::from_millis(10));
        };
        let log = self
            .log
            .take()
            .expect("wait called once")
            .join()
            .expect("log thread");
        (status, log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `raw` and returns (status line, headers, body) of the response.
fn request(port: u16, raw: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(raw.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("complete response");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_owned(), body.to_owned())
}

fn get(port: u16, path: &str) -> (String, String, String) {
    request(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
}

fn healthcheck(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("healthcheck")
        .args(args)
        .env_remove("BEACON_PORT")
        .output()
        .expect("run beacon healthcheck")
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr").port()
}

#[test]
fn serves_passes_healthcheck_and_stops_on_sigterm() {
    let mut server = Server::start();
    let port = server.port;

    let (status, headers, body) = get(port, "/healthz");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, r#"{"status":"ok"}"#);
    for header in [
        "Content-Type: application/json",
        "Content-Length: 15",
        "Connection: close",
    ] {
        assert!(
            headers.lines().any(|h| h == header),
            "missing {header:?} in {headers:?}"
        );
    }

    let (status, _, body) = get(port, "/version?verbose=1");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        body,
        format!(
            r#"{{"version":"{VERSION}","revision":"abc\"123","variant":"distroless","build_target":"ci"}}"#
        )
    );

    assert_eq!(get(port, "/nope").0, "HTTP/1.1 404 Not Found");
    let (status, headers, _) = request(port, "POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert!(headers.contains("Allow: GET, HEAD"));
    assert_eq!(
        request(port, "nonsense\r\n\r\n").0,
        "HTTP/1.1 400 Bad Request"
    );

    // A client that sends half a request and stalls must not hold up others.
    let mut slow = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).expect("connect");
    slow.write_all(b"GET /heal").expect("send");
    let started = Instant::now();
    assert_eq!(get(port, "/healthz").0, "HTTP/1.1 200 OK");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "blocked by slow client"
    );

    let port_arg = port.to_string();
    let ok = healthcheck(&["--port", &port_arg]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let not_found = healthcheck(&["--port", &port_arg, "--path", "/nope"]);
    assert_eq!(not_found.status.code(), Some(1));

    server.signal("TERM");
    let (status, log) = server.wait(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(log.lines().any(|l| l == "shutting down"), "log: {log}");
    assert!(log.contains("\"GET /healthz\" 200"), "log: {log}");
    drop(slow);
}

#[test]
fn stops_on_sigint() {
    let mut server = Server::start();
    server.signal("INT");
    let (status, log) = server.wait(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert_eq!(log, "shutting down");
}

#[test]
fn healthcheck_fails_without_server() {
    let out = healthcheck(&["--port", &closed_port().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
    assert!(
        stderr.starts_with("healthcheck failed: "),
        "stderr: {stderr}"
    );
}

#[test]
fn healthcheck_times_out_on_silent_server() {
    // The kernel completes the handshake from the backlog; nobody ever answers.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener
        .local_addr()
        .expect("local addr")
        .port()
        .to_string();
    let started = Instant::now();
    let out = healthcheck(&["--port", &port]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out"));
}

#[test]
fn cli_version_help_and_usage_errors() {
    let out = Command::new(BIN).arg("--version").output().expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("beacon {VERSION}")
    );

    let out = Command::new(BIN).arg("--help").output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("healthcheck"));

    for args in [
        &["--bogus"][..],
        &["bogus"],
        &["healthcheck", "--port", "x"],
    ] {
        let out = Command::new(BIN).args(args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).lines().count(),
            1,
            "{args:?}"
        );
    }
}
