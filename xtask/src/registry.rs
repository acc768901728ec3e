//! Reading from registries through buildx (which uses the docker credential
//! store, so whatever `docker login` gave works here too).

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

/// The digest a reference resolves to, or `None` if it does not exist.
pub fn resolve_digest(reference: &str) -> Result<Option<String>> {
    let sh = Shell::new()?;
    let format = "{{json .Manifest}}";
    let output = cmd!(
        sh,
        "docker buildx imagetools inspect {reference} --format {format}"
    )
    .quiet()
    .ignore_status()
    .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        if stderr.contains("not found")
            || stderr.contains("MANIFEST_UNKNOWN")
            || stderr.contains("NAME_UNKNOWN")
        {
            return Ok(None);
        }
        bail!(
            "cannot look up {reference} in its registry: {}",
            stderr.lines().last().unwrap_or("no output").trim()
        );
    }
    let manifest: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(manifest
        .get("digest")
        .and_then(|d| d.as_str())
        .map(String::from))
}

/// The raw manifest (or index) JSON a reference resolves to.
pub fn raw_manifest(reference: &str) -> Result<serde_json::Value> {
    let sh = Shell::new()?;
    let output = cmd!(sh, "docker buildx imagetools inspect {reference} --raw")
        .quiet()
        .ignore_status()
        .output()?;
    if !output.status.success() {
        bail!(
            "cannot read {reference} from its registry: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("no output")
                .trim()
        );
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}
