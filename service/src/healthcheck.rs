//! `beacon healthcheck`: a Docker HEALTHCHECK for images without a shell or curl.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::http;

/// Budget for the whole check (connect, send, read the status line).
const TIMEOUT: Duration = Duration::from_secs(2);

/// Ok if `GET path` on 127.0.0.1:port answers 200; otherwise a one-line reason.
pub fn check(port: u16, path: &str) -> Result<(), String> {
    let deadline = Instant::now() + TIMEOUT;
    // A literal address, never a hostname: static glibc binaries cannot
    // resolve names reliably (no NSS modules in the image).
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let url = format!("http://{addr}{path}");
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{url}: connect: {e}"))?;

    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: beacon-healthcheck\r\nConnection: close\r\n\r\n"
    );
    http::write_all(&mut stream, deadline, request.as_bytes())
        .map_err(|e| format!("{url}: send: {e}"))?;
    // Only the status line matters.
    let response = http::read_until(&mut stream, deadline, 1024, |buf| buf.contains(&b'\n'))
        .map_err(|e| format!("{url}: read: {e}"))?;

    let status_line = String::from_utf8_lossy(&response);
    let status_line = status_line.lines().next().unwrap_or_default();
    match status_code(status_line) {
        Some(200) => Ok(()),
        _ if status_line.is_empty() => Err(format!("{url}: connection closed without a response")),
        _ => Err(format!("{url}: got {status_line:?}")),
    }
}

/// The code from a status line such as `HTTP/1.1 200 OK`.
fn status_code(status_line: &str) -> Option<u16> {
    let mut parts = status_line.split(' ');
    let version = parts.next()?;
    let code = parts.next()?;
    if !version.starts_with("HTTP/") || code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_codes() {
        assert_eq!(status_code("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_code("HTTP/1.0 200"), Some(200));
        assert_eq!(status_code("HTTP/1.1 503 Service Unavailable"), Some(503));
        assert_eq!(status_code("HTTP/1.1 2000 OK"), None);
        assert_eq!(status_code("SSH-2.0-OpenSSH_9.6"), None);
        assert_eq!(status_code(""), None);
    }
}
