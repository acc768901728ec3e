//! Reading from registries through buildx (which uses the docker credential
//! store, so whatever `docker login` gave works here too).

use anyhow::{bail, Context as _, Result};
use serde_json::Value;
use xshell::{cmd, Shell};

/// Runs `docker buildx imagetools inspect REFERENCE EXTRA...`: Ok(stdout), or
/// Err(the last line of stderr).
fn imagetools_inspect(
    reference: &str,
    extra: &[&str],
) -> Result<std::result::Result<Vec<u8>, String>> {
    let sh = Shell::new()?;
    let output = cmd!(
        sh,
        "docker buildx imagetools inspect {reference} {extra...}"
    )
    .quiet()
    .ignore_status()
    .output()?;
    if output.status.success() {
        return Ok(Ok(output.stdout));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Ok(Err(stderr
        .lines()
        .last()
        .unwrap_or("no output")
        .trim()
        .to_string()))
}

/// The digest a reference resolves to, or `None` if it does not exist.
pub fn resolve_digest(reference: &str) -> Result<Option<String>> {
    match imagetools_inspect(reference, &["--format", "{{json .Manifest}}"])? {
        Ok(stdout) => {
            let manifest: Value = serde_json::from_slice(&stdout)?;
            Ok(manifest
                .get("digest")
                .and_then(Value::as_str)
                .map(String::from))
        }
        Err(error)
            if ["not found", "MANIFEST_UNKNOWN", "NAME_UNKNOWN"]
                .iter()
                .any(|s| error.contains(s)) =>
        {
            Ok(None)
        }
        Err(error) => bail!("cannot look up {reference} in its registry: {error}"),
    }
}

/// The raw manifest (or index) JSON a reference resolves to.
pub fn raw_manifest(reference: &str) -> Result<Value> {
    match imagetools_inspect(reference, &["--raw"])? {
        Ok(stdout) => Ok(serde_json::from_slice(&stdout)?),
        Err(error) => bail!("cannot read {reference} from its registry: {error}"),
    }
}

/// What buildx's `--format` template renders for a reference, as JSON
/// (`{{json .Image}}`, `{{json .Provenance}}`, ...); Null when it renders nothing.
pub fn inspect_format(reference: &str, format: &str) -> Result<Value> {
    match imagetools_inspect(reference, &["--format", format])? {
        Ok(stdout) => {
            let text = String::from_utf8_lossy(&stdout);
            if text.trim().is_empty() || text.trim() == "null" {
                return Ok(Value::Null);
            }
            serde_json::from_str(&text)
                .with_context(|| format!("unreadable output of imagetools inspect {reference}"))
        }
        Err(error) => bail!("cannot inspect {reference}: {error}"),
    }
}
