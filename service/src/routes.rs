//! The HTTP surface: `GET /healthz`, `GET /version`, JSON errors for
//! everything else, and the middleware every response passes through.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderName, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::telemetry;

/// Budget for one request's handling. Our handlers answer at once, so this
/// only bites if something is badly wrong, and then the client gets a 503
/// rather than a hang (and graceful shutdown a bound on what it waits for).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the request id travels, in and out: the de facto standard header,
/// which proxies and load balancers already set and log.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Every resource here allows the same methods. HEAD comes with GET: axum
/// answers it from the GET handler, without the body.
const ALLOWED_METHODS: &str = "GET, HEAD";

/// The `/version` answer. Field names and order are a contract: image tests
/// and deploy tooling read them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    pub version: String,
    pub revision: String,
    pub variant: String,
    pub build_target: String,
}

impl VersionInfo {
    /// Read once at startup: the environment does not change while we run.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        // The runtime value wins so an image can be relabelled without a
        // rebuild; the compile-time one covers binaries run outside our images.
        let revision = var("BEACON_REVISION")
            .or_else(|| option_env!("BEACON_REVISION").map(String::from))
            .filter(|v| !v.is_empty());
        Self::new(
            revision.as_deref(),
            var("BEACON_VARIANT").as_deref(),
            var("BEACON_BUILD_TARGET").as_deref(),
        )
    }

    fn new(revision: Option<&str>, variant: Option<&str>, build_target: Option<&str>) -> Self {
        // Only the two build targets our images set; anything else is a
        // mislabelled image, and "unknown" says so instead of echoing it.
        let build_target = build_target
            .filter(|target| matches!(*target, "ci" | "production"))
            .unwrap_or("unknown");
        VersionInfo {
            version: crate::VERSION.to_owned(),
            revision: revision.unwrap_or("unknown").to_owned(),
            variant: variant.unwrap_or("unknown").to_owned(),
            build_target: build_target.to_owned(),
        }
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
}

/// The service as it runs: routes plus middleware.
pub fn app(version: VersionInfo) -> Router {
    with_middleware(router(version), REQUEST_TIMEOUT)
}

/// The routes alone. 404 for unknown paths comes first, then 405 for known
/// paths with other methods (axum's routing order, and the one we had).
pub fn router(version: VersionInfo) -> Router {
    Router::new()
        .route("/healthz", get(healthz).fallback(method_not_allowed))
        .route("/version", get(version_info).fallback(method_not_allowed))
        .fallback(not_found)
        .with_state(version)
}

/// Request ids, one JSON log line per request, and the timeout, in that
/// order from the outside in: the id exists before the log span is opened,
/// and the log sees the 503 that the timeout produces.
pub fn with_middleware(router: Router, request_timeout: Duration) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(telemetry::request_span)
                    .on_response(telemetry::log_response),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                request_timeout,
            )),
    )
}

async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

async fn version_info(State(version): State<VersionInfo>) -> Json<VersionInfo> {
    Json(version)
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(ErrorBody { error: "not found" }),
    )
}

/// A 405 must say what is allowed (RFC 9110); axum would add its own
/// `Allow`, but only where the response has none.
async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, ALLOWED_METHODS)],
        Json(ErrorBody {
            error: "method not allowed",
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request, Response};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn version() -> VersionInfo {
        VersionInfo::new(Some("abc123"), Some("distroless"), Some("ci"))
    }

    async fn call(app: Router, method: Method, uri: &str) -> Response<Body> {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        app.oneshot(request).await.unwrap()
    }

    async fn body_text(response: Response<Body>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn routes_and_statuses() {
        for (method, path, status) in [
            (Method::GET, "/healthz", 200),
            (Method::HEAD, "/healthz", 200),
            (Method::GET, "/version", 200),
            (Method::GET, "/version?verbose=1", 200),
            (Method::HEAD, "/version", 200),
            (Method::POST, "/healthz", 405),
            (Method::DELETE, "/version", 405),
            (Method::GET, "/", 404),
            (Method::GET, "/healthz/", 404),
            (Method::POST, "/nope", 404),
        ] {
            let response = call(app(version()), method.clone(), path).await;
            assert_eq!(response.status(), status, "{method} {path}");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/json",
                "{method} {path}"
            );
        }
    }

    #[tokio::test]
    async fn healthz_body() {
        let response = call(app(version()), Method::GET, "/healthz").await;
        assert_eq!(response.headers()[header::CONTENT_LENGTH], "15");
        assert_eq!(body_text(response).await, r#"{"status":"ok"}"#);
    }

    #[tokio::test]
    async fn head_has_no_body_but_the_get_length() {
        let response = call(app(version()), Method::HEAD, "/healthz").await;
        assert_eq!(response.headers()[header::CONTENT_LENGTH], "15");
        assert_eq!(body_text(response).await, "");
    }

    #[tokio::test]
    async fn errors_are_json_and_405_says_what_is_allowed() {
        let response = call(app(version()), Method::POST, "/healthz").await;
        assert_eq!(response.headers()[header::ALLOW], "GET, HEAD");
        assert_eq!(
            body_text(response).await,
            r#"{"error":"method not allowed"}"#
        );
        let response = call(app(version()), Method::GET, "/nope").await;
        assert_eq!(body_text(response).await, r#"{"error":"not found"}"#);
    }

    #[tokio::test]
    async fn version_endpoint_answers_the_info() {
        let response = call(app(version()), Method::GET, "/version").await;
        let v = crate::VERSION;
        assert_eq!(
            body_text(response).await,
            format!(
                r#"{{"version":"{v}","revision":"abc123","variant":"distroless","build_target":"ci"}}"#
            )
        );
    }

    #[test]
    fn version_info_fields() {
        let v = crate::VERSION;
        let json = |info: VersionInfo| serde_json::to_string(&info).unwrap();
        assert_eq!(
            json(VersionInfo::new(
                Some("abc123"),
                Some("distroless"),
                Some("production")
            )),
            format!(
                r#"{{"version":"{v}","revision":"abc123","variant":"distroless","build_target":"production"}}"#
            )
        );
        assert_eq!(
            json(VersionInfo::new(None, None, Some("staging"))),
            format!(
                r#"{{"version":"{v}","revision":"unknown","variant":"unknown","build_target":"unknown"}}"#
            )
        );
        // Escaping is serde_json's: quotes, backslashes, control characters.
        let escaped = json(VersionInfo::new(Some("a\"b\\c"), Some("x\ny\u{1}"), None));
        assert!(
            escaped.contains(r#""revision":"a\"b\\c","variant":"x\ny\u0001""#),
            "{escaped}"
        );
        assert!(json(VersionInfo::new(Some("ünïcødé ✓"), None, None)).contains("ünïcødé ✓"));
    }

    #[tokio::test]
    async fn request_ids_are_made_or_kept() {
        // A new one per request, when the client sends none (404s too).
        let first = call(app(version()), Method::GET, "/healthz").await;
        let second = call(app(version()), Method::GET, "/nope").await;
        let id = |response: &Response<Body>| {
            response.headers()[REQUEST_ID_HEADER]
                .to_str()
                .unwrap()
                .to_owned()
        };
        let (first, second) = (id(&first), id(&second));
        assert_eq!(first.len(), 36, "a UUID: {first}");
        assert_ne!(first, second);

        // The client's (or its proxy's) is kept, so logs on both sides match.
        let request = Request::get("/version")
            .header(REQUEST_ID_HEADER, "from-the-proxy-42")
            .body(Body::empty())
            .unwrap();
        let response = app(version()).oneshot(request).await.unwrap();
        assert_eq!(response.headers()[REQUEST_ID_HEADER], "from-the-proxy-42");
    }

    #[tokio::test]
    async fn slow_handlers_time_out_with_503() {
        let slow = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        );
        let app = with_middleware(slow, Duration::from_millis(50));
        let started = std::time::Instant::now();
        let response = call(app, Method::GET, "/slow").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(REQUEST_ID_HEADER));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
