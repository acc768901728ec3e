//! Structured logs: one JSON object per line on stdout, where container
//! runtimes collect it and log shippers parse it without a grok pattern.
//!
//! A line looks like
//! `{"timestamp":"…Z","level":"INFO","message":"request","status":200,"latency_us":85,"target":"beacon::access","spans":[{"peer":"…","name":"connection"},{"method":"GET","path":"/healthz","request_id":"…","name":"request"}]}`:
//! the event's fields at the top level, and the spans it happened in (which
//! connection, which request) as a list.

use std::time::Duration;

use axum::http::{Request, Response};
use tracing::level_filters::LevelFilter;
use tracing::{Span, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

use crate::routes::REQUEST_ID_HEADER;

/// Installs the global subscriber: `RUST_LOG` filters (default `info`).
pub fn init() {
    let (filter, bad_filter) = env_filter(std::env::var("RUST_LOG").ok().as_deref());
    // Fails only if a subscriber is already installed, and then that one logs.
    let _ = tracing_subscriber::registry()
        .with(json_layer(std::io::stdout).with_filter(filter))
        .try_init();
    if let Some(error) = bad_filter {
        tracing::warn!(%error, "RUST_LOG is invalid; logging at info");
    }
}

/// The filter for `directives` (RUST_LOG), and why it was rejected if it was.
/// A typo in RUST_LOG must not take logging away, nor spill a half-applied
/// filter: the whole value falls back to `info`, and the service says so.
fn env_filter(directives: Option<&str>) -> (EnvFilter, Option<String>) {
    let builder = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into());
    match builder.parse(directives.unwrap_or_default()) {
        Ok(filter) => (filter, None),
        Err(e) => (builder.parse_lossy(""), Some(e.to_string())),
    }
}

/// The JSON formatter writing to `writer` (stdout, or a buffer in tests).
pub fn json_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_writer(writer)
        // Otherwise a failed write is reported with `eprintln!`, which panics
        // when stderr is gone too: a vanished log reader must not kill us.
        .log_internal_errors(false)
}

/// The span each request's log lines carry. The path only, not the query
/// string, which is where clients put things that should not be logged.
pub fn request_span<B>(request: &Request<B>) -> Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
        request_id,
    )
}

/// One line per answered request, as an access log. Its own target, so
/// that `RUST_LOG=info,beacon::access=warn` silences it alone.
pub fn log_response<B>(response: &Response<B>, latency: Duration, _span: &Span) {
    tracing::info!(
        target: "beacon::access",
        status = response.status().as_u16(),
        latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    /// Collects log output in memory.
    #[derive(Clone, Default)]
    pub struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Buffer {
        /// Every line written so far, parsed as JSON.
        pub fn lines(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
                .collect()
        }
    }

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    /// A subscriber like the real one, writing to a buffer.
    pub fn capture(directives: &str) -> (impl Subscriber + Send + Sync, Buffer) {
        let buffer = Buffer::default();
        let (filter, _) = env_filter(Some(directives));
        let subscriber =
            tracing_subscriber::registry().with(json_layer(buffer.clone()).with_filter(filter));
        (subscriber, buffer)
    }

    #[test]
    fn a_line_is_one_flat_json_object() {
        let (subscriber, buffer) = capture("info");
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("connection", peer = "127.0.0.1:1234");
            let _entered = span.enter();
            tracing::info!(addr = "0.0.0.0:8080", "listening");
            tracing::debug!("not at info");
        });
        let lines = buffer.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "listening");
        assert_eq!(line["addr"], "0.0.0.0:8080");
        assert_eq!(line["target"], "beacon::telemetry::tests");
        assert!(
            line["timestamp"].as_str().unwrap().ends_with('Z'),
            "RFC 3339 UTC: {line}"
        );
        assert_eq!(line["spans"][0]["name"], "connection");
        assert_eq!(line["spans"][0]["peer"], "127.0.0.1:1234");
    }

    #[test]
    fn rust_log_filters_and_a_bad_one_falls_back_to_info() {
        let (filter, error) = env_filter(None);
        assert_eq!(filter.to_string(), "info");
        assert!(error.is_none());
        let (filter, error) = env_filter(Some("warn,beacon=debug"));
        assert!(error.is_none());
        assert!(filter.to_string().contains("beacon=debug"), "{filter}");
        let (filter, error) = env_filter(Some("info,beacon=loud"));
        assert!(error.is_some());
        assert_eq!(filter.to_string(), "info");
    }

    #[tokio::test]
    async fn each_request_logs_one_line_with_its_id() {
        use axum::body::Body;
        use tower::ServiceExt;

        let (subscriber, buffer) = capture("info");
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = crate::routes::app(crate::routes::VersionInfo::from_env());
        let request = Request::get("/healthz?token=secret")
            .header(REQUEST_ID_HEADER, "req-1")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);

        let lines = buffer.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["message"], "request");
        assert_eq!(line["target"], "beacon::access");
        assert_eq!(line["status"], 200);
        assert!(line["latency_us"].is_u64(), "{line}");
        let span = &line["spans"][0];
        assert_eq!(span["name"], "request");
        assert_eq!(span["method"], "GET");
        assert_eq!(span["path"], "/healthz", "no query string in logs");
        assert_eq!(span["request_id"], "req-1");
    }
}
