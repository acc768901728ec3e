//! The one registry client. Every read, listing and deletion of this
//! project goes through here, on top of two tools the stack already needs
//! rather than hand-written HTTP:
//!
//! - `skopeo` (`inspect --raw`, `inspect --config --raw`, `list-tags`,
//!   `delete`, `copy`, `manifest-digest`): token auth, the docker credential
//!   store and credential helpers (`~/.docker/config.json`, or
//!   `$DOCKER_CONFIG/config.json`) come with it, and no secret ever appears on
//!   a command line or in an error;
//! - `docker buildx imagetools inspect --format`, only for what BuildKit
//!   itself attaches and renders best: provenance and SBOM attestations.
//!
//! Plain HTTP is allowed for loopback registries only (`--tls-verify=false`).
//! Each operation also exists as [`Invocation`]s, so `--dry-run` can print
//! the registry lookups a run would make.

use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;

use crate::client::process::{self, Invocation};
use crate::model::names;
use crate::model::oci::{Document, ImageConfig};
use crate::model::reference::{ImageRef, Repository};

use self::auth::{auth_file, configured_credentials};

mod auth;

/// Why ghcr.io cannot be pruned here.
pub const GHCR_UNSUPPORTED: &str = "deleting images from GitHub Container Registry (ghcr.io) is not supported: \
     ghcr.io refuses DELETE through the registry API and needs the GitHub packages API; \
     delete package versions with actions/delete-package-versions or `gh api -X DELETE /orgs/OWNER/packages/container/NAME/versions/ID`";

/// A manifest as the registry stores it: its digest, bytes and parsed form.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub digest: String,
    pub bytes: Vec<u8>,
    pub document: Document,
}

/// skopeo's flags for a registry that do not depend on the machine: plain
/// HTTP for loopback only.
fn skopeo_flags(repository: &Repository) -> Vec<String> {
    if repository.is_loopback() {
        vec!["--tls-verify=false".to_string()]
    } else {
        Vec::new()
    }
}

/// skopeo `verb` of `target` (the repository, or an image of it) in `repository`.
fn skopeo(verb: &[&str], repository: &Repository, target: String) -> Invocation {
    let mut args: Vec<String> = verb.iter().map(|s| s.to_string()).collect();
    args.extend(skopeo_flags(repository));
    args.push(format!("docker://{target}"));
    Invocation::new("skopeo", args)
}

/// The host whose credentials a registry operation uses.
fn host(repository: &Repository) -> &str {
    repository.host().unwrap_or("docker.io")
}

/// The command that reads the manifest `image` resolves to.
pub fn inspect_command(image: &ImageRef) -> Invocation {
    skopeo(&["inspect", "--raw"], &image.repository, image.to_string())
}

/// The command that reads the config of the image manifest `image`.
pub fn config_command(image: &ImageRef) -> Invocation {
    skopeo(
        &["inspect", "--config", "--raw"],
        &image.repository,
        image.to_string(),
    )
}

/// The tag the push probe looks up: one nobody pushes, so the registry
/// answers "unknown" when it is reachable and accepts the credentials.
pub const PROBE_TAG: &str = "xtask-push-probe";

/// The tag nobody pushes, in `repository`.
fn probe_reference(repository: &Repository) -> ImageRef {
    ImageRef {
        repository: repository.clone(),
        tag: Some(PROBE_TAG.to_string()),
        digest: None,
    }
}

/// The command that probes a push target before anything is built.
pub fn probe_command(repository: &Repository) -> Invocation {
    inspect_command(&probe_reference(repository))
}

/// Finds, before anything is built, a push target that cannot be reached or
/// refuses the credentials: a lookup in the repository (a tag nobody
/// pushes), with the credentials a push would use. A registry that lets the
/// account read but not write is only found by the first push, which moves
/// no tag.
pub fn probe(repository: &Repository) -> Result<()> {
    match run(&probe_command(repository), repository)? {
        Ok(_) | Err(Failure::NotFound) => Ok(()),
        Err(Failure::Other(message)) => Err(explain(
            repository,
            &format!("pushing to {repository}"),
            &message,
        )),
    }
}

/// The command that lists a repository's tags.
pub fn list_tags_command(repository: &Repository) -> Invocation {
    skopeo(&["list-tags"], repository, repository.to_string())
}

/// The command that deletes a manifest by digest (every tag on it goes too).
pub fn delete_command(repository: &Repository, digest: &str) -> Invocation {
    skopeo(&["delete"], repository, format!("{repository}@{digest}"))
}

/// How a tool failed, in one line.
#[derive(Debug)]
enum Failure {
    /// The manifest, tag or repository does not exist.
    NotFound,
    Other(String),
}

/// skopeo logs `time=... level=fatal msg="..."`; the message is what matters.
fn skopeo_message(stderr: &str) -> String {
    let line = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim();
    let message = match line.split_once("msg=\"") {
        Some((_, rest)) => rest
            .strip_suffix('"')
            .unwrap_or(rest)
            .replace("\\\"", "\"")
            .replace("\\n", " "),
        None => line.to_string(),
    };
    // "Error parsing image name \"docker://x\": reading manifest ..." says the
    // name twice; keep what went wrong.
    match message.split_once("\": ") {
        Some((head, tail)) if head.starts_with("Error parsing image name") => tail.to_string(),
        _ => message,
    }
}

fn classify(message: String) -> Failure {
    let lower = message.to_ascii_lowercase();
    if lower.contains("manifest unknown")
        || lower.contains("name unknown")
        || lower.contains("404 (not found)")
        || lower.contains("repository name not known")
    {
        Failure::NotFound
    } else {
        Failure::Other(message)
    }
}

/// Runs a skopeo invocation against the registry of `repository`, with the
/// credentials the docker config names: its stdout, or why it failed.
fn run(
    invocation: &Invocation,
    repository: &Repository,
) -> Result<std::result::Result<Vec<u8>, Failure>> {
    let auth = auth_file(host(repository))?;
    let mut invocation = invocation.clone();
    if let Some(auth) = &auth {
        // `copy` reads from the registry: its source authfile.
        let flag = if invocation.args.first().map(String::as_str) == Some("copy") {
            "--src-authfile"
        } else {
            "--authfile"
        };
        invocation
            .args
            .insert(1, format!("{flag}={}", auth.path.display()));
    }
    let program = invocation.program.clone();
    let output = process::capture(&invocation).with_context(|| {
        format!("cannot run {program}: install it (Debian: apt install {program}; macOS: brew install {program})")
    })?;
    if output.success {
        return Ok(Ok(output.stdout));
    }
    drop(auth);
    Ok(Err(classify(skopeo_message(&String::from_utf8_lossy(
        &output.stderr,
    )))))
}

/// What to check when a registry cannot be reached, for the commands whose
/// registry comes from `--registry`.
const REGISTRY_FLAG_HINT: &str = "check --registry and that the registry is running";

/// Says what a failure means for the user: a registry that cannot be
/// reached, missing or refused credentials, or what the registry said.
fn explain(repository: &Repository, what: &str, message: &str) -> anyhow::Error {
    explain_reaching(repository, what, message, REGISTRY_FLAG_HINT)
}

/// [`explain`] for a registry whose address came from elsewhere than
/// `--registry`: `unreachable_hint` says what to check when it cannot be reached.
fn explain_reaching(
    repository: &Repository,
    what: &str,
    message: &str,
    unreachable_hint: &str,
) -> anyhow::Error {
    let host = host(repository);
    explain_for(host, what, message, unreachable_hint, || {
        configured_credentials(host)
    })
}

/// [`explain`], with the question whether credentials are configured for
/// the host asked only when it matters.
fn explain_for(
    host: &str,
    what: &str,
    message: &str,
    unreachable_hint: &str,
    credentials_configured: impl FnOnce() -> bool,
) -> anyhow::Error {
    // skopeo frames its messages ("Error listing repository tags: ..."); the rest says what happened.
    let message = message
        .strip_prefix("Error listing repository tags: ")
        .or_else(|| message.strip_prefix("Error deleting image: "))
        .unwrap_or(message);
    let lower = message.to_ascii_lowercase();
    let unreachable = [
        "connection refused",
        "no such host",
        "i/o timeout",
        "network is unreachable",
        "no route to host",
    ]
    .iter()
    .find(|m| lower.contains(*m));
    if let Some(reason) = unreachable {
        return anyhow!("cannot reach registry {host} ({reason}) for {what}: {unreachable_hint}");
    }
    if lower.contains("unauthorized")
        || lower.contains("authentication required")
        || lower.contains("invalid username/password")
    {
        // skopeo says the same whether no credentials or wrong ones were
        // sent; the docker config tells which (no secret is read for it).
        return if credentials_configured() {
            anyhow!("registry {host} refused the credentials for {what} ({message}): run `docker login {host}` with the right account")
        } else {
            anyhow!("registry {host} requires credentials for {what} ({message}): run `docker login {host}`")
        };
    }
    if lower.contains("denied") || lower.contains("forbidden") {
        return anyhow!("registry {host} denied {what} ({message}): the credentials lack permission; run `docker login {host}` with an account that may do this");
    }
    anyhow!("registry {host} failed {what}: {message}")
}

/// The manifest `image` (by tag or digest) resolves to, with its digest;
/// `None` when there is none.
pub fn fetch(image: &ImageRef) -> Result<Option<Fetched>> {
    fetch_reaching(image, REGISTRY_FLAG_HINT)
}

/// [`fetch`] from a registry whose address did not come from `--registry`
/// (a Dockerfile's pin, a mirror): `unreachable_hint` says what to check
/// when it cannot be reached.
pub fn fetch_reaching(image: &ImageRef, unreachable_hint: &str) -> Result<Option<Fetched>> {
    let bytes = match run(&inspect_command(image), &image.repository)? {
        Ok(bytes) => bytes,
        Err(Failure::NotFound) => return Ok(None),
        Err(Failure::Other(message)) => {
            return Err(explain_reaching(
                &image.repository,
                &format!("reading {image}"),
                &message,
                unreachable_hint,
            ))
        }
    };
    let digest = manifest_digest(&bytes)?;
    if let Some(expected) = &image.digest {
        if *expected != digest {
            bail!("registry returned a manifest for {image} whose content hashes to {digest}; refusing to trust it");
        }
    }
    let document = Document::parse(&bytes).with_context(|| format!("{image} is {digest}"))?;
    Ok(Some(Fetched {
        digest,
        bytes,
        document,
    }))
}

/// The manifest `image` resolves to; an error when it does not exist.
pub fn fetch_existing(image: &ImageRef) -> Result<Fetched> {
    fetch(image)?.with_context(|| format!("{image} does not exist in its registry"))
}

/// The digest a reference resolves to, or `None` if it does not exist.
pub fn resolve_digest(image: &ImageRef) -> Result<Option<String>> {
    Ok(fetch(image)?.map(|f| f.digest))
}

/// The digest of a manifest's bytes, as skopeo computes it.
pub fn manifest_digest(bytes: &[u8]) -> Result<String> {
    let mut invocation = Invocation::new(
        "skopeo",
        vec!["manifest-digest".into(), "/dev/stdin".into()],
    );
    // A manifest is JSON: UTF-8, byte for byte (its digest depends on it).
    invocation.stdin =
        Some(String::from_utf8(bytes.to_vec()).context("a manifest that is not UTF-8 text")?);
    let digest = process::read(&invocation).context("skopeo manifest-digest failed")?;
    let digest = digest.trim().to_string();
    names::validate_digest(&digest)?;
    Ok(digest)
}

/// The config of the image manifest `image` (by digest).
pub fn config(image: &ImageRef) -> Result<Option<ImageConfig>> {
    match run(&config_command(image), &image.repository)? {
        Ok(bytes) => Ok(Some(
            ImageConfig::parse(&bytes).with_context(|| format!("the config of {image}"))?,
        )),
        Err(Failure::NotFound) => Ok(None),
        Err(Failure::Other(message)) => Err(explain(
            &image.repository,
            &format!("reading the config of {image}"),
            &message,
        )),
    }
}

/// Every tag of a repository.
pub fn list_tags(repository: &Repository) -> Result<Vec<String>> {
    match run(&list_tags_command(repository), repository)? {
        Ok(bytes) => {
            let listing: Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("unreadable tag list of {repository}"))?;
            Ok(listing["Tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect())
        }
        Err(Failure::NotFound) => {
            bail!("repository {repository} does not exist in its registry: check --registry")
        }
        Err(Failure::Other(message)) => Err(explain(
            repository,
            &format!("listing the tags of {repository}"),
            &message,
        )),
    }
}

/// Deletes a manifest by digest; false if it was already gone.
pub fn delete(repository: &Repository, digest: &str) -> Result<bool> {
    names::validate_digest(digest)?;
    if repository.is_ghcr() {
        bail!("{GHCR_UNSUPPORTED}");
    }
    match run(&delete_command(repository, digest), repository)? {
        Ok(_) => Ok(true),
        Err(Failure::NotFound) => Ok(false),
        Err(Failure::Other(message)) => {
            let lower = message.to_ascii_lowercase();
            if lower.contains("unsupported") || lower.contains("405 method not allowed") {
                let host = repository.host().unwrap_or(repository.as_str());
                bail!(
                    "registry {host} does not allow deletion (405 Method Not Allowed: the operation is unsupported): \
                     enable storage.delete.enabled in the registry's configuration \
                     (REGISTRY_STORAGE_DELETE_ENABLED=true for distribution), or delete through the registry's own API"
                );
            }
            Err(explain(
                repository,
                &format!("deleting {repository}@{digest}"),
                &message,
            ))
        }
    }
}

/// Copies one image manifest (by digest, a single platform) into `dir` as
/// skopeo's `dir:` layout: one file per blob, named by its hex digest.
pub fn copy_to_dir(image: &ImageRef, dir: &Path) -> Result<()> {
    let mut invocation = skopeo(&["copy", "--quiet"], &image.repository, image.to_string());
    // The source's flags fit the source; the destination is a directory.
    for arg in invocation.args.iter_mut() {
        if arg == "--tls-verify=false" {
            *arg = "--src-tls-verify=false".to_string();
        }
    }
    invocation.args.insert(1, "--insecure-policy".to_string());
    invocation.args.push(format!("dir:{}", dir.display()));
    match run(&invocation, &image.repository)? {
        Ok(_) => Ok(()),
        Err(Failure::NotFound) => bail!("{image} does not exist in its registry"),
        Err(Failure::Other(message)) => Err(explain(
            &image.repository,
            &format!("copying {image}"),
            &message,
        )),
    }
}

/// The attestations buildx renders for a reference by digest: `.Provenance`
/// or `.SBOM` (keyed by platform for an index of several images, unkeyed for
/// one); `Null` when there is none.
pub fn attestation(image: &ImageRef, which: Attestation) -> Result<Value> {
    let invocation = attestation_command(image, which);
    let output = process::capture(&invocation)?;
    if !output.success {
        return Err(explain(
            &image.repository,
            &format!("reading the attestations of {image}"),
            &output.last_words(),
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    if text.trim().is_empty() || text.trim() == "null" {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text)
        .with_context(|| format!("unreadable attestations of {image} from imagetools inspect"))
}

/// The command that renders an image's provenance or SBOM.
pub fn attestation_command(image: &ImageRef, which: Attestation) -> Invocation {
    let format = match which {
        Attestation::Provenance => "{{json .Provenance}}",
        Attestation::Sbom => "{{json .SBOM}}",
    };
    Invocation::new(
        "docker",
        [
            "buildx",
            "imagetools",
            "inspect",
            image.to_string().as_str(),
            "--format",
            format,
        ]
        .map(String::from)
        .to_vec(),
    )
}

/// Which attestation [`attestation`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attestation {
    Provenance,
    Sbom,
}

/// One platform's entry of what [`attestation`] returns: buildx keys the
/// attestations by platform for several images and not at all for one.
pub fn for_platform<'a>(
    rendered: &'a Value,
    platform: &str,
    platforms: usize,
) -> Option<&'a Value> {
    match rendered.get(platform) {
        Some(entry) => Some(entry),
        None if platforms <= 1 && !rendered.is_null() => Some(rendered),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skopeo_messages_are_one_line() {
        let stderr = "time=\"2026-12-01T18:52:20Z\" level=fatal msg=\"Error parsing image name \\\"docker://127.0.0.1:5000/x:nope\\\": reading manifest nope in 127.0.0.1:5000/x: manifest unknown: manifest unknown\"\n";
        let message = skopeo_message(stderr);
        assert_eq!(
            message,
            "reading manifest nope in 127.0.0.1:5000/x: manifest unknown: manifest unknown"
        );
        assert!(matches!(classify(message), Failure::NotFound));
        let refused = skopeo_message("time=\"t\" level=fatal msg=\"Error listing repository tags: pinging container registry 127.0.0.1:4011: Get \\\"http://127.0.0.1:4011/v2/\\\": dial tcp 127.0.0.1:4011: connect: connection refused\"");
        let err = explain_for(
            "127.0.0.1:4011",
            "listing the tags of 127.0.0.1:4011/x",
            &refused,
            REGISTRY_FLAG_HINT,
            || true,
        )
        .to_string();
        assert!(
            err.starts_with("cannot reach registry 127.0.0.1:4011 (connection refused)"),
            "{err}"
        );
        let denied = "unable to retrieve auth token: invalid username/password: unauthorized";
        let anonymous = explain_for(
            "r.example",
            "reading r.example/x",
            denied,
            REGISTRY_FLAG_HINT,
            || false,
        )
        .to_string();
        assert!(
            anonymous.starts_with("registry r.example requires credentials")
                && anonymous.ends_with("run `docker login r.example`"),
            "{anonymous}"
        );
        let wrong = explain_for(
            "r.example:4010",
            "reading r.example:4010/x",
            denied,
            REGISTRY_FLAG_HINT,
            || true,
        )
        .to_string();
        assert!(
            wrong.starts_with("registry r.example:4010 refused the credentials")
                && wrong.ends_with("with the right account"),
            "{wrong}"
        );
    }

    #[test]
    fn loopback_registries_alone_get_plain_http() {
        let image = |text: &str| text.parse::<ImageRef>().unwrap();
        let local = inspect_command(&image("127.0.0.1:5000/beacon:1"));
        assert!(local.args.contains(&"--tls-verify=false".to_string()));
        assert_eq!(
            local.args.last().unwrap(),
            "docker://127.0.0.1:5000/beacon:1"
        );
        let remote = inspect_command(&image("ghcr.io/acme/beacon:1"));
        assert!(!remote.args.iter().any(|a| a.contains("tls-verify")));
    }

    #[test]
    fn attestations_keyed_or_not() {
        let keyed = json!({"linux/amd64": {"SLSA": {}}, "linux/arm64": {"SLSA": {}}});
        assert!(for_platform(&keyed, "linux/arm64", 2).is_some());
        assert!(for_platform(&keyed, "linux/s390x", 2).is_none());
        let unkeyed = json!({"SLSA": {}});
        assert_eq!(for_platform(&unkeyed, "linux/amd64", 1), Some(&unkeyed));
        assert!(for_platform(&unkeyed, "linux/amd64", 2).is_none());
        assert!(for_platform(&Value::Null, "linux/amd64", 1).is_none());
    }
}
