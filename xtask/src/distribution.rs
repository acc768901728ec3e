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

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;

use crate::names;

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

/// The time curl may take to connect, and for a whole request, in seconds.
const CONNECT_TIMEOUT: u32 = 10;
const MAX_TIME: u32 = 120;

/// A username and a secret (password or token). `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

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

/// A `WWW-Authenticate` challenge: the scheme (`Bearer`, `Basic`) and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    scheme: String,
    params: BTreeMap<String, String>,
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

    /// Answers a 401: Basic with the docker credentials, or a bearer token
    /// (a fresh one if the token we sent has expired), and retries once.
    fn answer_challenge(
        &mut self,
        first: &Response,
        sent: Option<&str>,
        method: Method,
        url: &str,
        accept: Option<&str>,
        name: &str,
    ) -> Result<Response> {
        let challenge = first
            .headers_named("www-authenticate")
            .filter_map(parse_challenge)
            .find(|c| {
                c.scheme.eq_ignore_ascii_case("bearer") || c.scheme.eq_ignore_ascii_case("basic")
            });
        let Some(challenge) = challenge else {
            bail!(
                "registry {} refused the request for {}/{name} (401) without a usable authentication challenge: run `docker login {}`",
                self.host,
                self.host,
                self.host
            );
        };
        let authorization = if challenge.scheme.eq_ignore_ascii_case("basic") {
            let Some(credentials) = self.credentials()? else {
                return Err(self.refused(name, 401));
            };
            format!(
                "Basic {}",
                base64_encode(
                    format!("{}:{}", credentials.username, credentials.secret).as_bytes()
                )
            )
        } else {
            let stale = sent.and_then(|s| s.strip_prefix("Bearer "));
            format!("Bearer {}", self.token(&challenge, name, stale)?)
        };
        self.authorization = Some(authorization.clone());
        let second = self.send(method, url, accept, Some(&authorization), None)?;
        if second.status == 401 {
            return Err(self.refused(name, 401));
        }
        Ok(second)
    }

    /// The error for a 401/403: bad credentials if we have some, else none.
    fn refused(&mut self, name: &str, status: u16) -> anyhow::Error {
        match self.credentials() {
            Ok(Some(_)) => anyhow!(
                "registry refused the credentials for {}/{name} ({status}): run `docker login {}`",
                self.host,
                self.host
            ),
            Ok(None) => anyhow!(
                "registry {} requires credentials for {}/{name} ({status}): run `docker login {}`",
                self.host,
                self.host,
                self.host
            ),
            Err(err) => err,
        }
    }

    /// A bearer token for a challenge, from the cache or the token service.
    fn token(&mut self, challenge: &Challenge, name: &str, stale: Option<&str>) -> Result<String> {
        let realm = challenge.params.get("realm").cloned().unwrap_or_default();
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            bail!("registry {} sent a bearer challenge without a usable realm ({realm:?}); cannot authenticate", self.host);
        }
        let service = challenge.params.get("service").cloned();
        let scope = challenge.params.get("scope").cloned().unwrap_or_default();
        let key = format!("{realm} {} {scope}", service.as_deref().unwrap_or(""));
        // A cached token the registry just refused has expired: fetch a new one.
        if let Some(token) = self.tokens.get(&key).filter(|t| Some(t.as_str()) != stale) {
            return Ok(token.clone());
        }
        let mut query = Vec::new();
        if let Some(service) = &service {
            query.push(format!("service={}", url_encode(service)));
        }
        for one in scope.split_whitespace() {
            query.push(format!("scope={}", url_encode(one)));
        }
        let separator = if realm.contains('?') { '&' } else { '?' };
        let url = if query.is_empty() {
            realm.clone()
        } else {
            format!("{realm}{separator}{}", query.join("&"))
        };
        let credentials = self.credentials()?;
        let response = self.send(Method::Get, &url, None, None, credentials.as_ref())?;
        match (response.status, &credentials) {
            (200, _) => {}
            (401 | 403, Some(_)) => {
                bail!(
                    "registry refused the credentials for {}/{name} ({}): run `docker login {}`",
                    self.host,
                    response.status,
                    self.host
                )
            }
            (401 | 403, None) => {
                bail!(
                    "registry {} requires credentials for {}/{name} ({}): run `docker login {}`",
                    self.host,
                    self.host,
                    response.status,
                    self.host
                )
            }
            _ => bail!(
                "the token service of registry {} answered {} ({}); cannot authenticate",
                self.host,
                response.status,
                response.error_text()
            ),
        }
        let body: Value = serde_json::from_slice(&response.body).with_context(|| {
            format!(
                "the token service of registry {} sent an unreadable answer",
                self.host
            )
        })?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("the token service of registry {} sent no token", self.host))?
            .to_string();
        self.tokens.insert(key, token.clone());
        Ok(token)
    }

    /// The credentials for this registry from the docker config, read once.
    fn credentials(&mut self) -> Result<Option<Credentials>> {
        if let Some(known) = &self.credentials {
            return Ok(known.clone());
        }
        let found = load_credentials(&self.credential_key, &self.host)?;
        self.credentials = Some(found.clone());
        Ok(found)
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
            bail!("{}", curl_failure(&self.host, url, code, &stderr));
        }
        parse_response(&output.stdout).with_context(|| {
            format!(
                "registry {} sent a response curl could not make sense of",
                self.host
            )
        })
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

/// The digest an image reference (`HOST/NAME:TAG` or `HOST/NAME@DIGEST`)
/// resolves to: `None` when the tag or digest does not exist, an error when
/// the registry is unreachable or refuses the credentials.
#[allow(dead_code)] // The client's entry point for the other tasks; prune works on a Client directly.
pub fn resolve_digest(reference: &str) -> Result<Option<String>> {
    let image: names::ImageRef = reference.parse()?;
    let (mut client, name) = Client::for_repository(&image.repository)?;
    let reference = match (&image.digest, &image.tag) {
        (Some(digest), _) => digest.clone(),
        (None, Some(tag)) => tag.clone(),
        (None, None) => "latest".to_string(),
    };
    let digest = client.head_manifest(&name, &reference)?;
    match (&image.digest, digest) {
        // A tag pinned to a digest resolves only if the tag still points there.
        (Some(pinned), Some(_)) if image.tag.is_some() => {
            let tag = image.tag.as_deref().unwrap_or("latest");
            Ok(client.head_manifest(&name, tag)?.filter(|d| d == pinned))
        }
        (_, digest) => Ok(digest),
    }
}

/// The curl configuration (read from stdin with `-K -`) for one request.
fn curl_config(
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

/// Parses `Bearer realm="...",service="...",scope="..."` (values may hold commas).
fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        params.insert(key, value);
    }
    Some(Challenge {
        scheme: scheme.to_string(),
        params,
    })
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

fn url_encode(text: &str) -> String {
    let mut encoded = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    encoded
}

/// The docker config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir).join("config.json")),
        _ => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".docker").join("config.json")),
    }
}

/// The credentials for a registry from the docker config, as `docker` finds them.
fn load_credentials(key: &str, host: &str) -> Result<Option<Credentials>> {
    let Some(path) = docker_config_path() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => bail!("cannot read the docker config {}: {err}", path.display()),
    };
    let config: Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "the docker config {} is not valid JSON; fix or remove it",
            path.display()
        )
    })?;
    credentials_from_config(&config, key, host, &run_credential_helper)
}

/// Runs `docker-credential-NAME get` for (NAME, server key, host).
type CredentialHelper = dyn Fn(&str, &str, &str) -> Result<Option<Credentials>>;

/// The lookup itself, with the helper runner passed in so tests need no helper.
/// `credHelpers.<host>` wins, then `credsStore`, then `auths.<host>`.
fn credentials_from_config(
    config: &Value,
    key: &str,
    host: &str,
    helper: &CredentialHelper,
) -> Result<Option<Credentials>> {
    let wanted = normalize_registry_key(key);
    let matches = |k: &str| normalize_registry_key(k) == wanted;
    let cred_helper = config
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|helpers| {
            helpers
                .iter()
                .find(|(k, _)| matches(k))
                .and_then(|(_, v)| v.as_str())
        });
    let store = config
        .get("credsStore")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    if let Some(name) = cred_helper.or(store) {
        if let Some(found) = helper(name, key, host)? {
            return Ok(Some(found));
        }
    }
    let entry = config
        .get("auths")
        .and_then(Value::as_object)
        .and_then(|auths| auths.iter().find(|(k, _)| matches(k)).map(|(_, v)| v));
    let Some(entry) = entry else { return Ok(None) };
    if let Some(auth) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let decoded = base64_decode(auth)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| anyhow!("the docker config entry for {host} has a malformed auth value: run `docker login {host}` again"))?;
        let (username, secret) = decoded.split_once(':').ok_or_else(|| {
            anyhow!("the docker config entry for {host} has an auth value without ':': run `docker login {host}` again")
        })?;
        return Ok(Some(Credentials {
            username: username.to_string(),
            secret: secret.to_string(),
        }));
    }
    let username = entry.get("username").and_then(Value::as_str);
    let password = entry.get("password").and_then(Value::as_str);
    if let (Some(username), Some(password)) = (username, password) {
        return Ok(Some(Credentials {
            username: username.to_string(),
            secret: password.to_string(),
        }));
    }
    Ok(None)
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `127.0.0.1:5000` stays.
fn normalize_registry_key(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key).to_ascii_lowercase()
}

/// Asks `docker-credential-NAME get` for the credentials of a registry.
fn run_credential_helper(name: &str, key: &str, host: &str) -> Result<Option<Credentials>> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        bail!("the docker config names a malformed credential helper {name:?}; fix credsStore/credHelpers");
    }
    let program = format!("docker-credential-{name}");
    let output = duct::cmd(&program, ["get"])
        .stdin_bytes(key.as_bytes().to_vec())
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run();
    let output = match output {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "the docker config uses credential helper {program}, which is not installed: install it, or remove it from the docker config"
        ),
        Err(err) => bail!("cannot run credential helper {program}: {err}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        if stdout.contains("credentials not found")
            || String::from_utf8_lossy(&output.stderr).contains("credentials not found")
        {
            return Ok(None);
        }
        // The helper's output may echo secrets; say only that it failed.
        bail!(
            "credential helper {program} failed for {host} (exit {}): run `docker login {host}`",
            output.status.code().unwrap_or(-1)
        );
    }
    let answer: Value = serde_json::from_str(&stdout)
        .map_err(|_| anyhow!("credential helper {program} sent an unreadable answer for {host}"))?;
    let username = answer.get("Username").and_then(Value::as_str).unwrap_or("");
    let secret = answer.get("Secret").and_then(Value::as_str).unwrap_or("");
    if secret.is_empty() {
        return Ok(None);
    }
    if username == "<token>" {
        bail!(
            "credential helper {program} holds an identity token for {host}, which this client does not support: \
             log in with a username and password or access token (`docker login {host}`)"
        );
    }
    Ok(Some(Credentials {
        username: username.to_string(),
        secret: secret.to_string(),
    }))
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 (padding optional, whitespace ignored).
pub fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    let mut padding = false;
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            padding = true;
            continue;
        }
        if padding {
            bail!("malformed base64: data after padding");
        }
        let value = BASE64
            .iter()
            .position(|b| *b == c)
            .ok_or_else(|| anyhow!("malformed base64: unexpected {:?}", c as char))?;
        buffer = (buffer << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        bail!("malformed base64: truncated");
    }
    Ok(out)
}

/// SHA-256 (FIPS 180-4) of some bytes, as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (state, value) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *state = state.wrapping_add(value);
        }
    }
    h.iter().map(|word| format!("{word:08x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            sha256_hex(&vec![b'a'; 1_000_000]),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn base64_round_trips_and_rejects() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("user:p@ss:w0rd", "dXNlcjpwQHNzOncwcmQ="),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64_decode("Zm9v\nYmFy").unwrap(), b"foobar");
        assert_eq!(base64_decode("Zg").unwrap(), b"f");
        assert!(base64_decode("Zm9v!").is_err());
        assert!(base64_decode("Zg==Zg").is_err());
        assert!(base64_decode("Z").is_err());
    }

    #[test]
    fn challenges_parse_with_commas_in_quotes() {
        let c = parse_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#).unwrap();
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["service"], "registry.example");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(
            (c.scheme.as_str(), c.params["realm"].as_str()),
            ("Basic", "Registry Realm")
        );
        let c = parse_challenge("Bearer realm=https://x/token, service=x").unwrap();
        assert_eq!(c.params["realm"], "https://x/token");
        assert_eq!(c.params["service"], "x");
    }

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

    #[test]
    fn credentials_lookup_follows_docker() {
        let none = |_: &str, _: &str, _: &str| -> Result<Option<Credentials>> { Ok(None) };
        let config: Value = serde_json::json!({
            "auths": {
                "127.0.0.1:5000": { "auth": base64_encode(b"alice:s3cr:et") },
                "https://index.docker.io/v1/": { "auth": base64_encode(b"bob:hub") },
                "other.example": {},
                "plain.example": { "username": "carol", "password": "pw" },
                "broken.example": { "auth": "%%%" }
            }
        });
        let found = credentials_from_config(&config, "127.0.0.1:5000", "127.0.0.1:5000", &none)
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.username.as_str(), found.secret.as_str()),
            ("alice", "s3cr:et")
        );
        let hub =
            credentials_from_config(&config, "https://index.docker.io/v1/", "docker.io", &none)
                .unwrap()
                .unwrap();
        assert_eq!(hub.username, "bob");
        assert_eq!(
            credentials_from_config(&config, "other.example", "other.example", &none).unwrap(),
            None
        );
        assert_eq!(
            credentials_from_config(&config, "missing.example", "missing.example", &none).unwrap(),
            None
        );
        assert_eq!(
            credentials_from_config(&config, "plain.example", "plain.example", &none)
                .unwrap()
                .unwrap()
                .secret,
            "pw"
        );
        let err = credentials_from_config(&config, "broken.example", "broken.example", &none)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("malformed auth value") && err.contains("docker login broken.example"),
            "{err}"
        );

        // credHelpers for the host wins over credsStore, which wins over auths.
        let helper = |name: &str, key: &str, _: &str| -> Result<Option<Credentials>> {
            Ok(Some(Credentials {
                username: format!("{name}-user"),
                secret: key.to_string(),
            }))
        };
        let config: Value = serde_json::json!({
            "credsStore": "desktop",
            "credHelpers": { "ghcr.io": "gh" },
            "auths": { "ghcr.io": { "auth": base64_encode(b"x:y") } }
        });
        assert_eq!(
            credentials_from_config(&config, "ghcr.io", "ghcr.io", &helper)
                .unwrap()
                .unwrap()
                .username,
            "gh-user"
        );
        assert_eq!(
            credentials_from_config(&config, "r.example", "r.example", &helper)
                .unwrap()
                .unwrap()
                .username,
            "desktop-user"
        );
        // A helper that knows nothing falls back to auths.
        assert_eq!(
            credentials_from_config(&config, "ghcr.io", "ghcr.io", &none)
                .unwrap()
                .unwrap()
                .username,
            "x"
        );
    }

    #[test]
    fn url_encoding() {
        assert_eq!(
            url_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
