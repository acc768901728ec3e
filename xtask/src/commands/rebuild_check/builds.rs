//! How each platform of the published image was built (its provenance's
//! build platform) and where this run would rebuild it (this machine, or
//! the node `--builder` routes it to), for [`crate::plan::rebuild`] to
//! decide; and, once rebuilt, where the rebuild really ran (the rebuilt
//! archive's own provenance).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::client::{registry, tar};
use crate::model::names::Platform;
use crate::model::oci::{blob_path, ImageManifest, Index, REFERENCE_DIGEST};
use crate::ops::builder;
use crate::plan::rebuild::Rebuilder;
use crate::plan::record::{provenance_build_platform, PlatformBuild};
use crate::preflight::{self, Requirement};

/// The image's platforms, in its order, with how each was built as the
/// provenance (`imagetools inspect` of the index) records it.
pub(super) fn published(
    provenance: &Value,
    platforms: &[Platform],
) -> Vec<(Platform, Option<PlatformBuild>)> {
    platforms
        .iter()
        .map(|platform| {
            let build = registry::for_platform(provenance, &platform.to_string(), platforms.len())
                .and_then(provenance_build_platform)
                .map(|on| PlatformBuild::on(on, platform));
            (platform.clone(), build)
        })
        .collect()
}

/// What rebuilds `platforms`: the builder `--builder` names (checked: it
/// exists, can build them, its engine answers; then said), each platform
/// on the native platform of the node it routes it to; else this machine,
/// whose engine builds on its own platform.
pub(super) fn rebuilder(name: Option<&str>, platforms: &[Platform]) -> Result<Rebuilder> {
    let native = Platform::native();
    let Some(selected) = builder::select(name, platforms)? else {
        return Ok(Rebuilder {
            name: format!("this machine ({native})"),
            builds_on: platforms
                .iter()
                .map(|p| (p.clone(), native.clone()))
                .collect(),
        });
    };
    preflight::check_on(&Requirement::Engine, Some(&selected.selection))?;
    eprintln!("{}", selected.selection.describe());
    Ok(Rebuilder {
        name: format!("the builder {:?}", selected.builder.name),
        builds_on: builder::predicted_build_platforms(Some(&selected), &native, platforms),
    })
}

/// Where the rebuild in `archive` built each platform, as its provenance
/// (the attestation manifests BuildKit wrote beside the images) records it.
pub(super) fn rebuilt(archive: &Path, index: &Index) -> BTreeMap<String, Platform> {
    let mut builds = BTreeMap::new();
    for attestation in index.attestations() {
        let Some(image) = attestation.annotations.get(REFERENCE_DIGEST) else {
            continue;
        };
        let Some(platform) = index.images().find(|i| &i.digest == image) else {
            continue;
        };
        if let Ok(Some(on)) = provenance_in(archive, &attestation.digest) {
            builds.insert(platform.platform_name(), on);
        }
    }
    builds
}

/// The build platform the SLSA provenance of one attestation manifest names.
fn provenance_in(archive: &Path, manifest: &str) -> Result<Option<Platform>> {
    let manifest: ImageManifest =
        serde_json::from_slice(&tar::member(archive, &blob_path(manifest))?)
            .context("an attestation manifest that is no image manifest")?;
    for layer in &manifest.layers {
        let predicate = layer
            .annotations
            .get("in-toto.io/predicate-type")
            .map(String::as_str)
            .unwrap_or_default();
        if !predicate.starts_with("https://slsa.dev/provenance/") {
            continue;
        }
        let statement: Value =
            serde_json::from_slice(&tar::member(archive, &blob_path(&layer.digest))?)
                .context("an unreadable in-toto statement")?;
        return Ok(statement
            .get("predicate")
            .and_then(provenance_build_platform));
    }
    Ok(None)
}
