//! Authentication as `docker` does it: the `WWW-Authenticate` challenge of a
//! 401 decides between Basic and a bearer token, and the credentials come
//! from the docker config or the credential helpers it names.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;

use super::encoding::{base64_decode, base64_encode, url_encode};
use super::{Client, Method, Response};

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

/// A `WWW-Authenticate` challenge: the scheme (`Bearer`, `Basic`) and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    scheme: String,
    params: BTreeMap<String, String>,
}

// The authentication half of `Client`: `request` (in the parent module) calls
// `answer_challenge` on a 401 and `refused` on a 403.
impl Client {
    /// Answers a 401: Basic with the docker credentials, or a bearer token
    /// (a fresh one if the token we sent has expired), and retries once.
    pub(super) fn answer_challenge(
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
    pub(super) fn refused(&mut self, name: &str, status: u16) -> anyhow::Error {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
