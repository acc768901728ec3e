//! Runs the real binary the way a container does: serve on a free port, talk
//! HTTP to it, run `healthcheck` against it, then stop it with a signal.
//! Logs are JSON lines on stdout; the tests read them as such.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_beacon");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A running `beacon serve`, killed on drop so a failing test leaks no process.
struct Server {
    child: Child,
    port: u16,
    /// Everything logged after the "listening" line, collected until exit.
    log: Option<JoinHandle<Vec<Value>>>,
}

/// One log line, which must be a JSON object with the fields every line has.
fn parse_log_line(line: &str) -> Value {
    let value: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
    for field in ["timestamp", "level", "message", "target"] {
        assert!(value[field].is_string(), "no {field:?} in {line}");
    }
    value
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Server {
        let child = Command::new(BIN)
            // Port 0 plus reading the logged address avoids racing for a free port.
            .args(["serve", "--port", "0"])
            .env_remove("BEACON_PORT")
            .env_remove("RUST_LOG")
            .env("BEACON_REVISION", "abc\"123")
            .env("BEACON_VARIANT", "distroless")
            .env("BEACON_BUILD_TARGET", "ci")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn beacon");
        // Owned by a `Server` from the start, so a failed check below still
        // kills it (an orphan would hold the test's stderr open).
        let mut server = Server {
            child,
            port: 0,
            log: None,
        };
        let stdout = server.child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        // Lines before "listening" (a RUST_LOG warning, say) are checked too.
        let mut before = Vec::new();
        server.port = loop {
            let line = lines
                .next()
                .expect("beacon exited before listening")
                .expect("read beacon stdout");
            let line = parse_log_line(&line);
            if line["message"] == "listening" {
                assert_eq!(line["level"], "INFO");
                assert_eq!(line["version"], VERSION);
                let addr = line["addr"].as_str().expect("addr");
                assert!(addr.starts_with("0.0.0.0:"), "binds all interfaces: {addr}");
                break addr
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected listening line {line}"));
            }
            before.push(line);
        };
        // Keep draining stdout so request logging never blocks on a full pipe.
        server.log = Some(thread::spawn(move || {
            let mut log = before;
            log.extend(lines.map_while(Result::ok).map(|l| parse_log_line(&l)));
            log
        }));
        server
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    fn wait(&mut self, timeout: Duration) -> (ExitStatus, Vec<Value>) {
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

/// The messages of `log`, in order.
fn messages(log: &[Value]) -> Vec<&str> {
    log.iter()
        .map(|l| l["message"].as_str().unwrap_or_default())
        .collect()
}

/// The value of header `name` (any case, as HTTP has it) in `headers`.
fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
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
    for (name, value) in [
        ("Content-Type", "application/json"),
        ("Content-Length", "15"),
        ("Connection", "close"),
    ] {
        assert_eq!(header(&headers, name), Some(value), "{name} in {headers:?}");
    }

    let (status, _, body) = get(port, "/version?verbose=1");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        body,
        format!(
            r#"{{"version":"{VERSION}","revision":"abc\"123","variant":"distroless","build_target":"ci"}}"#
        )
    );

    let (status, headers, body) = get(port, "/nope");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert_eq!(header(&headers, "Content-Type"), Some("application/json"));
    assert_eq!(body, r#"{"error":"not found"}"#);
    let (status, headers, body) =
        request(port, "POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(header(&headers, "Allow"), Some("GET, HEAD"));
    assert_eq!(body, r#"{"error":"method not allowed"}"#);
    let (status, headers, body) = request(port, "HEAD /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&headers, "Content-Length"), Some("15"));
    assert_eq!(body, "");
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

    // The stalled client is still connected: it must not hold up the exit.
    server.signal("TERM");
    let (status, log) = server.wait(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    let shutting_down = log
        .iter()
        .find(|l| l["message"] == "shutting down")
        .unwrap_or_else(|| panic!("no shutdown line: {log:?}"));
    assert_eq!(shutting_down["signal"], "SIGTERM");
    assert_eq!(messages(&log).last(), Some(&"stopped"), "{log:?}");

    // One access-log line per request, with its span: GET /healthz answered 200.
    let healthz = log
        .iter()
        .find(|l| {
            l["target"] == "beacon::access"
                && l["status"] == 200
                && l["spans"][1]["method"] == "GET"
                && l["spans"][1]["path"] == "/healthz"
        })
        .unwrap_or_else(|| panic!("no GET /healthz 200 line: {log:?}"));
    assert_eq!(healthz["level"], "INFO");
    assert_eq!(healthz["spans"][0]["name"], "connection");
    assert!(healthz["spans"][0]["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));
    assert!(log.iter().any(|l| l["message"] == "bad request"), "{log:?}");
    // The query string stays out of the logs.
    assert!(
        !serde_json::to_string(&log).unwrap().contains("verbose=1"),
        "{log:?}"
    );
    drop(slow);
}

#[test]
fn stops_on_sigint() {
    let mut server = Server::start();
    server.signal("INT");
    let (status, log) = server.wait(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert_eq!(messages(&log), ["shutting down", "stopped"], "{log:?}");
    assert_eq!(log[0]["signal"], "SIGINT");
}

#[test]
fn refuses_connections_once_stopped() {
    let mut server = Server::start();
    let port = server.port;
    server.signal("TERM");
    let (status, _) = server.wait(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0));
    assert!(TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err());
}

#[test]
fn request_ids_are_answered_and_logged() {
    let mut server = Server::start();
    let port = server.port;
    let (_, headers, _) = get(port, "/healthz");
    let made = header(&headers, "X-Request-Id").expect("a request id");
    assert_eq!(made.len(), 36, "a UUID: {made}");
    let (_, headers, _) = request(
        port,
        "GET /version HTTP/1.1\r\nX-Request-Id: upstream-7\r\n\r\n",
    );
    assert_eq!(header(&headers, "X-Request-Id"), Some("upstream-7"));

    server.signal("TERM");
    let (_, log) = server.wait(Duration::from_secs(2));
    let ids: Vec<&str> = log
        .iter()
        .filter(|l| l["target"] == "beacon::access")
        .filter_map(|l| l["spans"][1]["request_id"].as_str())
        .collect();
    assert_eq!(ids, [made, "upstream-7"], "{log:?}");
}

#[test]
fn rust_log_filters_and_a_bad_value_falls_back_to_info() {
    // Access lines silenced by target, the rest still at info.
    let mut server = Server::start_with(&[("RUST_LOG", "info,beacon::access=warn")]);
    assert_eq!(get(server.port, "/healthz").0, "HTTP/1.1 200 OK");
    server.signal("TERM");
    let (_, log) = server.wait(Duration::from_secs(2));
    assert_eq!(messages(&log), ["shutting down", "stopped"], "{log:?}");

    let mut server = Server::start_with(&[("RUST_LOG", "info,beacon=loud")]);
    assert_eq!(get(server.port, "/healthz").0, "HTTP/1.1 200 OK");
    server.signal("TERM");
    let (_, log) = server.wait(Duration::from_secs(2));
    assert_eq!(log[0]["level"], "WARN", "{log:?}");
    assert!(log[0]["message"].as_str().unwrap().contains("RUST_LOG"));
    assert!(
        log.iter().any(|l| l["target"] == "beacon::access"),
        "{log:?}"
    );
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
