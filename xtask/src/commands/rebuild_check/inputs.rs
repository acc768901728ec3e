//! What a published image says it was built from: its commit, variant,
//! version, source, pinned images and `SOURCE_DATE_EPOCH`, read from the
//! index annotations, a platform's config labels and its provenance.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use serde_json::Value;

use crate::model::oci::Index;
use crate::model::tags::DEFAULT_BRANCH;
use crate::model::version::Version;
use crate::plan::LABEL_NS;

/// What the published image says it was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildInputs {
    pub revision: String,
    pub variant: String,
    pub version: String,
    pub source: String,
    pub source_date_epoch: Option<i64>,
    /// Image build args (`*_BASE`, `*_IMAGE`), pinned by digest.
    pub images: BTreeMap<String, String>,
    /// Named contexts the release used (host-built binaries cannot be rebuilt from the commit).
    pub local_contexts: Vec<String>,
    pub platforms: Vec<String>,
}

/// Reads the inputs from the index annotations, one platform's config labels
/// and its provenance (`invocation.parameters.args` of SLSA provenance).
pub fn read_inputs(
    index: &Index,
    labels: &BTreeMap<String, String>,
    provenance: &Value,
) -> Result<BuildInputs> {
    let annotation = |key: &str| {
        index
            .annotations
            .get(&format!("org.opencontainers.image.{key}"))
            .map(String::as_str)
    };
    let label = |key: &str| labels.get(key).map(String::as_str);
    let args = provenance
        .pointer("/invocation/parameters/args")
        .and_then(Value::as_object);
    let Some(args) = args else {
        bail!("the image has no provenance with build parameters (mode=max): rebuild-check needs it to know what was built");
    };
    let arg = |key: &str| {
        args.get(&format!("build-arg:{key}"))
            .and_then(Value::as_str)
    };
    let revision = annotation("revision")
        .or_else(|| label("org.opencontainers.image.revision"))
        .or_else(|| arg("REVISION"))
        .context("the image names no revision (org.opencontainers.image.revision)")?;
    let variant = label(&format!("{LABEL_NS}.variant"))
        .or_else(|| arg("VARIANT"))
        .context("the image names no variant")?;
    let images = args
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.strip_prefix("build-arg:")?.to_string(),
                v.as_str()?.to_string(),
            ))
        })
        .filter(|(k, _)| k.ends_with("_BASE") || k.ends_with("_IMAGE"))
        .collect();
    let local_contexts = args
        .iter()
        .filter(|(k, v)| {
            k.starts_with("context:") && v.as_str().is_some_and(|v| v.starts_with("local:"))
        })
        .map(|(k, _)| k.trim_start_matches("context:").to_string())
        .collect();
    let platforms = index.platforms();
    Ok(BuildInputs {
        revision: revision.to_string(),
        variant: variant.to_string(),
        version: annotation("version")
            .or_else(|| label("org.opencontainers.image.version"))
            .unwrap_or("")
            .to_string(),
        source: annotation("source")
            .or_else(|| label("org.opencontainers.image.source"))
            .unwrap_or("")
            .to_string(),
        source_date_epoch: arg("SOURCE_DATE_EPOCH").and_then(|v| v.parse().ok()),
        images,
        local_contexts,
        platforms,
    })
}

/// The git ref a release of `version` was built for (so tags and labels match).
pub fn git_ref_for_version(version: &str) -> String {
    if Version::from_git_tag(&format!("v{version}")).is_some() {
        format!("refs/tags/v{version}")
    } else {
        format!(
            "refs/heads/{}",
            if version.is_empty() {
                DEFAULT_BRANCH
            } else {
                version
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn provenance() -> Value {
        json!({"invocation": {"parameters": {"args": {
            "build-arg:PRODUCTION_BASE": "r/ubi9:production@sha256:ab",
            "build-arg:BUILDER_IMAGE": "r/rust:1@sha256:cd",
            "build-arg:SOURCE_DATE_EPOCH": "1700000000",
            "build-arg:VARIANT": "ubi9",
            "build-arg:REVISION": "0123",
            "build-arg:EXTRA": "x",
            "context:binaries": "local:binaries",
            "label:dev.beacon.image.variant": "ubi9"
        }}}})
    }

    #[test]
    fn reads_revision_variant_and_version_from_annotations_and_labels() {
        let index: Index = serde_json::from_value(json!({"annotations": {"org.opencontainers.image.revision": "abc", "org.opencontainers.image.version": "1.2.3", "org.opencontainers.image.source": "https://x"},
            "manifests": [{"digest": "sha256:1", "platform": {"os": "linux", "architecture": "amd64"}}, {"digest": "sha256:2", "platform": {"os": "linux", "architecture": "arm64"}}]})).unwrap();
        let labels = BTreeMap::from([(
            "dev.beacon.image.variant".to_string(),
            "distroless".to_string(),
        )]);
        let inputs = read_inputs(&index, &labels, &provenance()).unwrap();
        assert_eq!(
            inputs.revision, "abc",
            "the index annotation wins over the build arg"
        );
        assert_eq!(inputs.variant, "distroless");
        assert_eq!(inputs.version, "1.2.3");
        assert_eq!(inputs.source, "https://x");
        assert_eq!(inputs.platforms, ["linux/amd64", "linux/arm64"]);
    }

    #[test]
    fn reads_bases_epoch_and_local_contexts_from_provenance() {
        let empty: Index = serde_json::from_value(json!({"manifests": []})).unwrap();
        let inputs = read_inputs(&empty, &BTreeMap::new(), &provenance()).unwrap();
        assert_eq!(inputs.revision, "0123", "falls back to the build arg");
        assert_eq!(inputs.variant, "ubi9");
        assert_eq!(inputs.source_date_epoch, Some(1_700_000_000));
        assert_eq!(
            inputs.images.keys().collect::<Vec<_>>(),
            ["BUILDER_IMAGE", "PRODUCTION_BASE"],
            "only pinned images, not other args"
        );
        assert_eq!(inputs.local_contexts, ["binaries"]);
        assert!(read_inputs(&empty, &BTreeMap::new(), &json!({}))
            .unwrap_err()
            .to_string()
            .contains("provenance"));
    }

    #[test]
    fn version_maps_back_to_its_ref() {
        assert_eq!(git_ref_for_version("1.2.3"), "refs/tags/v1.2.3");
        assert_eq!(git_ref_for_version("2.0.0-rc.1"), "refs/tags/v2.0.0-rc.1");
        assert_eq!(git_ref_for_version("main"), "refs/heads/main");
    }
}
