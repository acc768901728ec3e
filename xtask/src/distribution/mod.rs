//! A small client of the OCI distribution API (the registry's `/v2/` HTTP
//! API), built on `curl` so that it needs no HTTP or TLS crate.
//!
//! - Credentials never appear on a command line: curl reads its whole
//!   configuration (URL, headers, user) from stdin (`curl -q -K -`), and no
//!   secret is ever printed or put in an error message.
//! - Authentication as `docker` does it: anonymous first; on a 401 the
//!   `WWW-Authenticate` challenge decides between Basic and the Bearer token
//!   flow; credentials come from the docker config (`$DOCKER_CONFIG/config.json`
//!   or `~/.docker/config.json`): `credHelpers.<host>`, `credsStore` (both via
//!   `docker-credential-<helper> get`) or `auths.<host>.auth`.
//! - HTTP for loopback registries (`127.0.0.1`, `localhost`, `[::1]`), HTTPS
//!   for everything else.
//!
//! The pieces: `curl` runs one request and reads its answer, `auth` answers
//! authentication challenges with the docker credentials, `encoding` holds the
//! base64, SHA-256 and URL encoding this needs. This file is the client itself.

mod auth;
mod curl;
mod encoding;

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;

use crate::names;

use auth::Credentials;
use curl::curl_config;
use encoding::sha256_hex;

/// Every manifest media type this client understands, in one Accept header.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The explanation for GitHub Container Registry, which does not implement
/// manifest deletion in its registry API.
pub const GHCR_UNSUPPORTED: &str = "deleting images from GitHub Container Registry (ghcr.io) is not supported: \
     ghcr.io refuses DELETE through the registry API and needs the GitHub packages API; \
     delete package versions with actions/delete-package-versions or `gh api -X DELETE /orgs/OWNER/packages/container/NAME/versions/ID`";

/// A manifest (or index) exactly as the registry stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Manifest {
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.bytes)
            .with_context(|| format!("manifest {} is not valid JSON", self.digest))
    }

    /// An OCI index or Docker manifest list, by media type or by shape.
    pub fn is_index(&self) -> bool {
        INDEX_TYPES.contains(&self.media_type.as_str())
            || self
                .json()
                .ok()
                .is_some_and(|v| v.get("manifests").is_some_and(Value::is_array))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Delete => "DELETE",
        }
    }
}

/// One HTTP response: the status and headers of the final response (after
/// redirects and `100 Continue`s), and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The registry's error code and message, e.g. `NAME_UNKNOWN: repository name not known to registry`.
    fn error_text(&self) -> String {
        let parsed: Option<Value> = serde_json::from_slice(&self.body).ok();
        let first = parsed
            .as_ref()
            .and_then(|v| v.get("errors"))
            .and_then(|e| e.get(0));
        match first {
            Some(e) => {
                let code = e.get("code").and_then(Value::as_str).unwrap_or("");
                let message = e.get("message").and_then(Value::as_str).unwrap_or("");
                format!("{code}: {message}")
                    .trim_matches([' ', ':'])
                    .to_string()
            }
            None => {
                let text = String::from_utf8_lossy(&self.body);
                let line = text.lines().next().unwrap_or("").trim();
                line.chars().take(200).collect()
            }
        }
    }
}

/// A client for one registry host. Authentication state (the credentials,
/// read lazily on the first challenge, and tokens) lives here.
pub struct Client {
    /// The host as the user wrote it, e.g. `127.0.0.1:5000`, for messages and credentials.
    host: String,
    /// `http://127.0.0.1:5000` or `https://ghcr.io`.
    base: String,
    /// The key of this registry in the docker config and for credential helpers.
    credential_key: String,
    loopback: bool,
    /// `None` until the first challenge asks for them.
    credentials: Option<Option<Credentials>>,
    /// The `Authorization` header value sent with every request, once known.
    authorization: Option<String>,
    /// Bearer tokens by challenge (realm, service, scope).
    tokens: BTreeMap<String, String>,
}

impl Client {
    /// A client for a registry host such as `127.0.0.1:5000` or `ghcr.io`.
    pub fn new(host: &str) -> Client {
        let lower = host.to_ascii_lowercase();
        let name = match lower.rsplit_once(':') {
            Some((name, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => {
                name
            }
            _ => lower.as_str(),
        };
        let loopback =
            matches!(name, "localhost" | "127.0.0.1" | "[::1]") || name.starts_with("127.");
        let (api_host, credential_key) = match lower.as_str() {
            // Docker Hub: the API lives on registry-1, the credentials under index.docker.io.
            "docker.io" | "index.docker.io" | "registry-1.docker.io" => (
                "registry-1.docker.io".to_string(),
                "https://index.docker.io/v1/".to_string(),
            ),
            _ => (host.to_string(), host.to_string()),
        };
        let scheme = if loopback { "http" } else { "https" };
        Client {
            host: host.to_string(),
            base: format!("{scheme}://{api_host}"),
            credential_key,
            loopback,
            credentials: None,
            authorization: None,
            tokens: BTreeMap::new(),
        }
    }

    /// A client for the host of `HOST/NAME`, and the repository name on it.
    pub fn for_repository(repository: &str) -> Result<(Client, String)> {
        let (host, name) = split_repository(repository)?;
        Ok((Client::new(&host), name))
    }

    /// Every tag of a repository, following `Link` pagination.
    pub fn list_tags(&mut self, name: &str) -> Result<Vec<String>> {
        let mut tags = Vec::new();
        let mut next = Some(format!("/v2/{name}/tags/list?n=100"));
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > 10_000 {
                bail!("registry {} kept paginating the tag list of {name} (over 10000 pages); giving up", self.host);
            }
            let response = self.request(Method::Get, &path, None, name)?;
            match response.status {
                200 => {}
                404 => bail!(
                    "repository {}/{name} does not exist ({}): check --registry",
                    self.host,
                    response.error_text()
                ),
                _ => {
                    return Err(self.unexpected(
                        &response,
                        Method::Get,
                        &format!("the tag list of {name}"),
                    ))
                }
            }
            let page: Value = serde_json::from_slice(&response.body).with_context(|| {
                format!(
                    "registry {} sent an unreadable tag list for {name}",
                    self.host
                )
            })?;
            if let Some(list) = page.get("tags").and_then(Value::as_array) {
                tags.extend(list.iter().filter_map(Value::as_str).map(String::from));
            }
            next = match response.headers_named("link").find_map(next_link) {
                Some(link) => Some(self.same_registry_path(&link)?),
                None => None,
            };
        }
        Ok(tags)
    }

    /// A manifest by tag or digest, with its digest; `None` if there is none.
    pub fn get_manifest(&mut self, name: &str, reference: &str) -> Result<Option<Manifest>> {
        let path = format!("/v2/{name}/manifests/{reference}");
        let response = self.request(Method::Get, &path, Some(MANIFEST_ACCEPT), name)?;
        match response.status {
            200 => {}
            404 => return Ok(None),
            _ => {
                return Err(self.unexpected(&response, Method::Get, &format!("{name}:{reference}")))
            }
        }
        let computed = format!("sha256:{}", sha256_hex(&response.body));
        let digest = if reference.starts_with("sha256:") {
            if computed != reference {
                bail!(
                    "registry {} returned a manifest for {name}@{reference} whose content hashes to {computed}; refusing to trust it",
                    self.host
                );
            }
            computed
        } else {
            match response.header("docker-content-digest") {
                Some(header) if !header.trim().is_empty() => header.trim().to_string(),
                _ => computed,
            }
        };
        let media_type = match response
            .header("content-type")
            .map(|t| t.split(';').next().unwrap_or("").trim())
        {
            Some(t)
                if !t.is_empty() && t != "application/json" && t != "application/octet-stream" =>
            {
                t.to_string()
            }
            _ => serde_json::from_slice::<Value>(&response.body)
                .ok()
                .and_then(|v| v.get("mediaType").and_then(Value::as_str).map(String::from))
                .unwrap_or_default(),
        };
        Ok(Some(Manifest {
            media_type,
            digest,
            bytes: response.body,
        }))
    }

    /// The digest a tag (or digest) resolves to, without downloading the
    /// manifest when the registry says it in `Docker-Content-Digest`.
    pub fn head_manifest(&mut self, name: &str, reference: &str) -> Result<Option<String>> {
        let path = format!("/v2/{name}/manifests/{reference}");
        let response = self.request(Method::Head, &path, Some(MANIFEST_ACCEPT), name)?;
        match response.status {
            200 => match response.header("docker-content-digest") {
                Some(digest) if !digest.trim().is_empty() => Ok(Some(digest.trim().to_string())),
                _ => Ok(self.get_manifest(name, reference)?.map(|m| m.digest)),
            },
            404 => Ok(None),
            _ => Err(self.unexpected(&response, Method::Head, &format!("{name}:{reference}"))),
        }
    }

    /// A blob (e.g. an image config), checked against its digest; `None` if missing.
    pub fn get_blob(&mut self, name: &str, digest: &str) -> Result<Option<Vec<u8>>> {
        names::validate_digest(digest)?;
        let path = format!("/v2/{name}/blobs/{digest}");
        let response = self.request(Method::Get, &path, None, name)?;
        match response.status {
            200 => {}
            404 => return Ok(None),
            _ => {
                return Err(self.unexpected(
                    &response,
                    Method::Get,
                    &format!("blob {digest} of {name}"),
                ))
            }
        }
        let computed = format!("sha256:{}", sha256_hex(&response.body));
        if computed != digest {
            bail!("registry {} returned blob {digest} of {name} with content hashing to {computed}; refusing to trust it", self.host);
        }
        Ok(Some(response.body))
    }

    /// Deletes a manifest by digest (which removes every tag pointing to it).
    /// Returns false if it was already gone.
    pub fn delete_manifest(&mut self, name: &str, digest: &str) -> Result<bool> {
        names::validate_digest(digest)?;
        if is_ghcr(&self.host) {
            bail!("{GHCR_UNSUPPORTED}");
        }
        let path = format!("/v2/{name}/manifests/{digest}");
        let response = self.request(Method::Delete, &path, None, name)?;
        match response.status {
            200 | 202 | 204 => Ok(true),
            404 => Ok(false),
            405 => bail!(
                "registry {} does not allow deletion (405 {}): enable storage.delete.enabled in the registry's configuration \
                 (REGISTRY_STORAGE_DELETE_ENABLED=true for distribution), or delete through the registry's own API",
                self.host,
                response.error_text()
            ),
            403 => bail!(
                "registry {} denied deleting {name}@{digest} (403 {}): the credentials lack delete permission; \
                 run `docker login {}` with an account that may delete",
                self.host,
                response.error_text(),
                self.host
            ),
            _ => Err(self.unexpected(&response, Method::Delete, &format!("{name}@{digest}"))),
        }
    }

    /// A relative `/v2/...` path for a `Link` target, refusing other hosts
    /// (they would receive our token).
    fn same_registry_path(&self, link: &str) -> Result<String> {
        if link.starts_with('/') {
            return Ok(link.to_string());
        }
        match link.strip_prefix(&self.base) {
            Some(rest) if rest.starts_with('/') => Ok(rest.to_string()),
            _ => bail!(
                "registry {} paginated its tag list to another host ({link}); refusing to follow",
                self.host
            ),
        }
    }

    fn unexpected(&self, response: &Response, method: Method, what: &str) -> anyhow::Error {
        anyhow!(
            "registry {} answered {} to {} {what}: {}",
            self.host,
            response.status,
            method.as_str(),
            match response.error_text() {
                text if text.is_empty() => "no explanation".to_string(),
                text => text,
            }
        )
    }

    /// Sends a request, answering one authentication challenge if the
    /// registry poses one.
    fn request(
        &mut self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        name: &str,
    ) -> Result<Response> {
        let url = format!("{}{path}", self.base);
        let sent = self.authorization.clone();
        let first = self.send(method, &url, accept, sent.as_deref(), None)?;
        let response = if first.status == 401 {
            self.answer_challenge(&first, sent.as_deref(), method, &url, accept, name)?
        } else {
            first
        };
        // A DELETE refused with 403 says more than "bad credentials"; its caller explains it.
        if response.status == 403 && method != Method::Delete {
            return Err(self.refused(name, 403));
        }
        Ok(response)
    }

    /// Runs curl once. Everything curl is told, secrets included, goes
    /// through stdin.
    fn send(
        &self,
        method: Method,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
        basic: Option<&Credentials>,
    ) -> Result<Response> {
        let config = curl_config(method, url, accept, authorization, basic, self.loopback);
        curl::run(&self.host, url, config)
    }
}

/// `ghcr.io` (any case).
pub fn is_ghcr(host: &str) -> bool {
    host.eq_ignore_ascii_case("ghcr.io")
}

/// Splits `HOST[:PORT]/NAME` into the host and the repository name on it.
pub fn split_repository(repository: &str) -> Result<(String, String)> {
    names::validate_repository(repository)?;
    match repository.split_once('/') {
        Some((host, name))
            if host.contains('.') || host.contains(':') || host == "localhost" =>
        {
            let name = if matches!(host, "docker.io" | "index.docker.io") && !name.contains('/') {
                format!("library/{name}")
            } else {
                name.to_string()
            };
            Ok((host.to_string(), name))
        }
        _ => bail!(
            "{repository:?} names no registry host: expected HOST[:PORT]/NAME such as 127.0.0.1:5000/beacon or ghcr.io/acme/beacon"
        ),
    }
}

/// The target of a `Link: <...>; rel="next"` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        is_next.then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=b&n=100>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=b&n=100")
        );
        assert_eq!(
            next_link(r#"<https://r/v2/a/tags/list?last=b>; rel=next"#).as_deref(),
            Some("https://r/v2/a/tags/list?last=b")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        let client = Client::new("127.0.0.1:5000");
        assert_eq!(
            client
                .same_registry_path("http://127.0.0.1:5000/v2/x")
                .unwrap(),
            "/v2/x"
        );
        assert!(client
            .same_registry_path("http://evil.example/v2/x")
            .is_err());
    }

    #[test]
    fn hosts_schemes_and_names() {
        assert_eq!(Client::new("127.0.0.1:5000").base, "http://127.0.0.1:5000");
        assert_eq!(Client::new("localhost:5000").base, "http://localhost:5000");
        assert_eq!(Client::new("localhost").base, "http://localhost");
        assert_eq!(Client::new("ghcr.io").base, "https://ghcr.io");
        assert_eq!(
            Client::new("registry.example:443").base,
            "https://registry.example:443"
        );
        assert_eq!(
            Client::new("docker.io").base,
            "https://registry-1.docker.io"
        );
        assert_eq!(
            split_repository("127.0.0.1:5000/a/b").unwrap(),
            ("127.0.0.1:5000".into(), "a/b".into())
        );
        assert_eq!(
            split_repository("docker.io/alpine").unwrap(),
            ("docker.io".into(), "library/alpine".into())
        );
        assert!(split_repository("beacon").is_err());
        assert!(split_repository("acme/beacon").is_err());
        assert!(split_repository("127.0.0.1:5000/Beacon").is_err());
    }
}
