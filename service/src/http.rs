//! Just enough HTTP/1.1 for two JSON endpoints and a healthcheck client:
//! parse a request line, format a `Connection: close` response, and do socket
//! I/O against an overall deadline.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Upper bound on a request head; ours are tiny and nothing else needs more.
pub const MAX_HEAD: usize = 8 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Request target without its query string.
    pub path: &'a str,
}

/// Parses the request line of a complete head (one that `head_complete` accepted).
/// Headers are ignored: no endpoint needs them.
pub fn parse_request(buf: &[u8]) -> Result<Request<'_>, &'static str> {
    if !head_complete(buf) {
        return Err("incomplete or oversized request head");
    }
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line = buf[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[..line_end]);
    let line = std::str::from_utf8(line).map_err(|_| "request line is not UTF-8")?;

    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if method.is_empty() || !method.bytes().all(is_token_char) {
        return Err("invalid method");
    }
    // Only origin-form ("/path?query"); visible ASCII also keeps logs clean.
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("invalid request target");
    }
    if !version.starts_with("HTTP/1.") {
        return Err("unsupported HTTP version");
    }
    let path = target.split_once('?').map_or(target, |(path, _query)| path);
    Ok(Request { method, path })
}

/// True once `buf` holds a whole head: a blank line after the request line.
/// Bare LF line endings are accepted, as RFC 9112 allows, for `nc`-style clients.
pub fn head_complete(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n")
}

/// RFC 9110 `tchar`: what may appear in a method name.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[derive(Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub status: u16,
    pub body: &'a str,
}

impl Response<'_> {
    /// Serializes the response; `with_body` is false for HEAD, which still
    /// reports the Content-Length a GET would get.
    pub fn to_bytes(&self, with_body: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.body.len()
        );
        if self.status == 405 {
            // Required with a 405; every resource here allows the same methods.
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        if with_body {
            out.push_str(self.body);
        }
        out.into_bytes()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "",
    }
}

/// Escapes `s` for use inside a JSON string literal (RFC 8259, section 7).
pub fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Reads until `done(buf)`, EOF or `limit` bytes, failing with `TimedOut` at
/// `deadline`. The deadline covers the whole read, so a client trickling one
/// byte at a time cannot hold the connection open indefinitely.
pub fn read_until(
    stream: &mut TcpStream,
    deadline: Instant,
    limit: usize,
    done: impl Fn(&[u8]) -> bool,
) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !done(&buf) && buf.len() < limit {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(timeout_as_timed_out(e)),
        }
    }
    Ok(buf)
}

/// `write_all` bounded by `deadline`, so a client that never reads cannot
/// hold the connection thread.
pub fn write_all(stream: &mut TcpStream, deadline: Instant, bytes: &[u8]) -> io::Result<()> {
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    stream.write_all(bytes).map_err(timeout_as_timed_out)
}

/// Time left until `deadline`; never zero, because a zero socket timeout is an error.
pub fn remaining(deadline: Instant) -> io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "timed out"))
}

/// Unix reports an expired socket timeout as EAGAIN ("Resource temporarily
/// unavailable"), which makes a confusing log line.
fn timeout_as_timed_out(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            io::Error::new(io::ErrorKind::TimedOut, "timed out")
        }
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_line() {
        let req = parse_request(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            req,
            Ok(Request {
                method: "GET",
                path: "/healthz"
            })
        );
        let req = parse_request(b"HEAD /version?x=1 HTTP/1.0\r\n\r\n");
        assert_eq!(
            req,
            Ok(Request {
                method: "HEAD",
                path: "/version"
            })
        );
        // Bare LF, as typed into nc.
        let req = parse_request(b"POST /x HTTP/1.1\n\n");
        assert_eq!(
            req,
            Ok(Request {
                method: "POST",
                path: "/x"
            })
        );
    }

    #[test]
    fn rejects_bad_requests() {
        for bad in [
            &b"GET /healthz HTTP/1.1\r\nHost: x\r\n"[..], // head not finished
            b"\r\n\r\n",
            b"GET /healthz\r\n\r\n",
            b"GET  /healthz HTTP/1.1\r\n\r\n",
            b"GET /healthz HTTP/1.1 extra\r\n\r\n",
            b"GET healthz HTTP/1.1\r\n\r\n",
            b"GET http://x/healthz HTTP/1.1\r\n\r\n",
            b"GET /a\x1bb HTTP/1.1\r\n\r\n",
            b"G(T /healthz HTTP/1.1\r\n\r\n",
            b"GET /healthz HTTP/2.0\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                parse_request(bad).is_err(),
                "{:?} should fail",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn escapes_json() {
        assert_eq!(json_escape("plain v1.2-rc"), "plain v1.2-rc");
        assert_eq!(json_escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(json_escape("l1\nl2\r\t"), r"l1\nl2\r\t");
        assert_eq!(json_escape("\u{0}\u{1f}"), r"\u0000\u001f");
        assert_eq!(json_escape("ünïcødé ✓"), "ünïcødé ✓");
    }

    #[test]
    fn formats_responses() {
        let ok = Response {
            status: 200,
            body: r#"{"status":"ok"}"#,
        };
        assert_eq!(
            String::from_utf8_lossy(&ok.to_bytes(true)),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\
             Connection: close\r\n\r\n{\"status\":\"ok\"}"
        );
        assert!(String::from_utf8_lossy(&ok.to_bytes(false))
            .ends_with("Content-Length: 15\r\nConnection: close\r\n\r\n"));
        let not_allowed = Response {
            status: 405,
            body: "{}",
        };
        assert!(String::from_utf8_lossy(&not_allowed.to_bytes(true))
            .contains("\r\nAllow: GET, HEAD\r\n"));
    }
}
