//! Talking to curl: the configuration it reads on stdin (so that no secret
//! is ever on a command line), one clear line when it fails, and the
//! response it prints.

use anyhow::{anyhow, bail, Context as _, Result};

use super::auth::Credentials;
use super::{Method, Response};

/// The time curl may take to connect, and for a whole request, in seconds.
const CONNECT_TIMEOUT: u32 = 10;
const MAX_TIME: u32 = 120;

/// Runs curl once on a configuration from [`curl_config`]; `host` and `url`
/// are for messages only.
pub(super) fn run(host: &str, url: &str, config: String) -> Result<Response> {
    let output = duct::cmd("curl", ["-q", "-K", "-"])
        .stdin_bytes(config.into_bytes())
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run();
    let output = match output {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            bail!("curl is not installed: install curl (xtask talks to registries through it)")
        }
        Err(err) => return Err(anyhow!("cannot run curl: {err}")),
    };
    if !output.status.success() {
        let code = output.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("{}", curl_failure(host, url, code, &stderr));
    }
    parse_response(&output.stdout)
        .with_context(|| format!("registry {host} sent a response curl could not make sense of"))
}

/// The curl configuration (read from stdin with `-K -`) for one request.
pub(super) fn curl_config(
    method: Method,
    url: &str,
    accept: Option<&str>,
    authorization: Option<&str>,
    basic: Option<&Credentials>,
    loopback: bool,
) -> String {
    let mut config = String::new();
    let set = |config: &mut String, key: &str, value: &str| {
        config.push_str(&format!("{key} = {}\n", curl_quote(value)))
    };
    set(&mut config, "url", url);
    set(&mut config, "connect-timeout", &CONNECT_TIMEOUT.to_string());
    set(&mut config, "max-time", &MAX_TIME.to_string());
    set(&mut config, "proto", "=http,https");
    set(&mut config, "proto-redir", "=http,https");
    set(&mut config, "user-agent", "beacon-xtask");
    if loopback {
        // A proxy from the environment has no business with a loopback registry.
        set(&mut config, "noproxy", "localhost,127.0.0.1,::1");
    }
    match method {
        // `--head` prints the headers as the output; dump-header would print them twice.
        Method::Head => config.push_str("head\n"),
        // Blob downloads are often redirected to a CDN; curl does not forward
        // our Authorization header or user to another host.
        Method::Get => {
            config.push_str("location\n");
            set(&mut config, "dump-header", "-");
        }
        Method::Delete => {
            set(&mut config, "request", "DELETE");
            set(&mut config, "dump-header", "-");
        }
    }
    if let Some(accept) = accept {
        set(&mut config, "header", &format!("Accept: {accept}"));
    }
    if let Some(authorization) = authorization {
        set(
            &mut config,
            "header",
            &format!("Authorization: {authorization}"),
        );
    }
    if let Some(credentials) = basic {
        set(
            &mut config,
            "user",
            &format!("{}:{}", credentials.username, credentials.secret),
        );
    }
    config.push_str("silent\nshow-error\n");
    config
}

/// A double-quoted curl config value.
fn curl_quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// One line for a request curl could not complete. Never includes the URL's
/// query (token requests carry scopes, not secrets, but keep it short).
fn curl_failure(host: &str, url: &str, code: i32, stderr: &str) -> String {
    let detail = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let detail = detail.split_once(") ").map_or(detail, |(_, rest)| rest);
    let lower = detail.to_ascii_lowercase();
    let target = url.split('?').next().unwrap_or(url);
    let hint = "check --registry and that the registry is running";
    match code {
        6 => format!("cannot reach registry {host}: could not resolve the host name; {hint}"),
        7 if lower.contains("no route") || lower.contains("unreachable") => {
            format!("cannot reach registry {host}: network unreachable ({detail}); {hint}")
        }
        7 => format!("cannot reach registry {host}: connection refused; {hint}"),
        28 => format!("cannot reach registry {host}: timed out after {CONNECT_TIMEOUT}s to connect or {MAX_TIME}s in all; {hint}"),
        35 | 51 | 53 | 54 | 58 | 59 | 60 | 64 | 66 | 77 | 80 | 82 | 83 | 90 | 91 => format!(
            "cannot talk to registry {host} over HTTPS: TLS failed ({detail}); a registry with a self-signed certificate is not supported, use a trusted certificate"
        ),
        52 | 56 => format!("registry {host} closed the connection while answering {target} ({detail}); {hint}"),
        _ => format!("curl failed (exit {code}) talking to registry {host} at {target}: {detail}"),
    }
}

/// Parses curl's `--dump-header -` (or `--head`) output: header blocks of
/// intermediate responses (redirects, `100 Continue`, proxy CONNECT) are
/// skipped; the last block is the response, the rest the body.
fn parse_response(output: &[u8]) -> Result<Response> {
    let mut rest = output;
    loop {
        if !rest.starts_with(b"HTTP/") {
            bail!("no HTTP status line in the response");
        }
        let (end, skip) = match find(rest, b"\r\n\r\n") {
            Some(i) => (i, 4),
            None => match find(rest, b"\n\n") {
                Some(i) => (i, 2),
                // A HEAD response may end without the blank line.
                None => (rest.len(), 0),
            },
        };
        let head = String::from_utf8_lossy(&rest[..end]).to_string();
        let body = &rest[(end + skip).min(rest.len())..];
        if body.starts_with(b"HTTP/") {
            rest = body;
            continue;
        }
        let mut lines = head.lines();
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("malformed HTTP status line {status_line:?}"))?;
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
            .collect();
        return Ok(Response {
            status,
            headers,
            body: body.to_vec(),
        });
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_skip_intermediate_blocks() {
        let raw = b"HTTP/1.1 307 Temporary Redirect\r\nLocation: https://cdn/x\r\n\r\nHTTP/2 200\r\ncontent-type: application/json\r\nDocker-Content-Digest: sha256:abc\r\n\r\n{\"a\":1}";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("docker-content-digest"), Some("sha256:abc"));
        assert_eq!(r.body, b"{\"a\":1}");
        let r =
            parse_response(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.len()), (202, 0));
        let r = parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n").unwrap();
        assert_eq!(r.status, 404);
        assert!(parse_response(b"garbage").is_err());
        let r = Response {
            status: 404,
            headers: vec![],
            body: br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#.to_vec(),
        };
        assert_eq!(
            r.error_text(),
            "NAME_UNKNOWN: repository name not known to registry"
        );
    }

    #[test]
    fn curl_config_quotes_and_carries_secrets_only_inside() {
        let credentials = Credentials {
            username: "u".into(),
            secret: "p\"a\\ss\nword".into(),
        };
        let config = curl_config(
            Method::Get,
            "https://r/token?scope=x",
            None,
            None,
            Some(&credentials),
            false,
        );
        assert!(config.contains(r#"user = "u:p\"a\\ss\nword""#), "{config}");
        assert!(config.contains("location\n"));
        assert!(!config.contains("noproxy"));
        let config = curl_config(
            Method::Head,
            "http://127.0.0.1:5000/v2/",
            Some("a/b"),
            Some("Bearer t"),
            None,
            true,
        );
        assert!(config.contains("head\n") && !config.contains("dump-header"));
        assert!(config.contains(r#"header = "Authorization: Bearer t""#));
        assert!(config.contains(r#"header = "Accept: a/b""#));
        assert!(config.contains("noproxy"));
        let config = curl_config(Method::Delete, "http://x/", None, None, None, true);
        assert!(config.contains(r#"request = "DELETE""#));
        assert!(!format!("{credentials:?}").contains("word"));
    }

    #[test]
    fn curl_failures_are_one_clear_line() {
        let m = curl_failure("127.0.0.1:5999", "http://127.0.0.1:5999/v2/x", 7, "curl: (7) Failed to connect to 127.0.0.1 port 5999 after 0 ms: Couldn't connect to server\n");
        assert_eq!(m, "cannot reach registry 127.0.0.1:5999: connection refused; check --registry and that the registry is running");
        let m = curl_failure(
            "nope.invalid",
            "https://nope.invalid/v2/",
            6,
            "curl: (6) Could not resolve host: nope.invalid",
        );
        assert!(
            m.starts_with("cannot reach registry nope.invalid: could not resolve"),
            "{m}"
        );
        let m = curl_failure(
            "r.example",
            "https://r.example/v2/",
            60,
            "curl: (60) SSL certificate problem: self-signed certificate",
        );
        assert!(
            m.contains("TLS failed (SSL certificate problem: self-signed certificate)"),
            "{m}"
        );
        assert!(!m.contains('\n'));
    }
}
