//! `beacon healthcheck`: a Docker HEALTHCHECK for images without a shell or curl.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::http::{header, Request, StatusCode};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Budget for the whole check (connect, send, read the status line), well
/// inside the images' `HEALTHCHECK --timeout=3s`.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Ok if `GET path` on 127.0.0.1:port answers 200; otherwise a one-line reason.
pub fn check(port: u16, path: &str) -> Result<(), String> {
    // A literal address, never a hostname: static glibc binaries cannot
    // resolve names reliably (no NSS modules in the image).
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let url = format!("http://{addr}{path}");
    // One thread is plenty for one request, and starts faster.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let status = runtime
        .block_on(async { tokio::time::timeout(TIMEOUT, get(addr, path)).await })
        .map_err(|_| format!("{url}: timed out after {TIMEOUT:?}"))?
        .map_err(|e| format!("{url}: {e}"))?;
    if status == StatusCode::OK {
        Ok(())
    } else {
        Err(format!("{url}: got {status}"))
    }
}

/// The status of `GET path` on `addr`; the body is never read.
async fn get(addr: SocketAddr, path: &str) -> Result<StatusCode, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let request = Request::get(path)
        .header(header::HOST, addr.to_string())
        .header(header::USER_AGENT, "beacon-healthcheck")
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    // The connection does the I/O; it must be polled while the request waits.
    let response = tokio::select! {
        response = sender.send_request(request) => response,
        Err(e) = connection => Err(e),
    };
    response
        .map(|response| response.status())
        .map_err(|e| format!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::thread;
    use std::time::Instant;

    /// A one-shot server answering the first connection with `response`
    /// once it has read the request head.
    fn answer_once(response: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8(head).unwrap();
            assert!(head.starts_with("GET /healthz HTTP/1.1\r\n"), "{head}");
            assert!(head
                .to_ascii_lowercase()
                .contains(&format!("host: 127.0.0.1:{port}")));
            stream.write_all(response.as_bytes()).unwrap();
        });
        port
    }

    #[test]
    fn ok_on_200_only() {
        let port = answer_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
        assert_eq!(check(port, "/healthz"), Ok(()));

        let port = answer_once("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
        let err = check(port, "/healthz").unwrap_err();
        assert!(err.ends_with("got 503 Service Unavailable"), "{err}");
    }

    #[test]
    fn garbage_and_silence_fail() {
        let port = answer_once("SSH-2.0-OpenSSH_9.6\r\n\r\n");
        assert!(check(port, "/healthz").is_err());

        let port = answer_once("");
        let err = check(port, "/healthz").unwrap_err();
        assert!(
            err.starts_with(&format!("http://127.0.0.1:{port}/healthz: ")),
            "{err}"
        );

        // Accepted by the kernel, never answered.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let started = Instant::now();
        let err = check(port, "/healthz").unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
