//! The rebuilt archive against the published image: per platform, the
//! manifest digests, and where they differ, which layers and the first file
//! in them that differs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::client::{registry, tar};
use crate::model::files;
use crate::model::oci::{blob_path, Descriptor, ImageManifest, Index, Layout};
use crate::model::reference::{Digest, ImageRef};

use crate::model::names::Platform;
use crate::plan::rebuild::PlatformRebuild;
use crate::plan::record::PlatformBuild;

use super::{builds, LayerDifference, PlatformResult};

/// The rebuilt archive: per-platform manifest digests and manifests, and
/// where each was built (its provenance).
struct Rebuilt {
    platforms: BTreeMap<String, (String, ImageManifest)>,
    built_on: BTreeMap<String, Platform>,
}

fn tar_member(archive: &Path, member: &str) -> Result<Vec<u8>> {
    tar::member(archive, member)
}

fn read_archive(archive: &Path) -> Result<Rebuilt> {
    let layout: Layout = serde_json::from_slice(&tar_member(archive, "index.json")?)
        .with_context(|| format!("{} holds no OCI layout", archive.display()))?;
    let top = layout.manifests.first().context("empty OCI layout")?;
    let index: Index = serde_json::from_slice(&tar_member(archive, &blob_path(&top.digest))?)
        .with_context(|| format!("{} holds no image index", archive.display()))?;
    let mut platforms = BTreeMap::new();
    for entry in index.images() {
        let manifest: ImageManifest =
            serde_json::from_slice(&tar_member(archive, &blob_path(&entry.digest))?).with_context(
                || {
                    format!(
                        "{} of {} is not an image manifest",
                        entry.digest,
                        archive.display()
                    )
                },
            )?;
        platforms.insert(entry.platform_name(), (entry.digest.clone(), manifest));
    }
    let built_on = builds::rebuilt(archive, &index);
    Ok(Rebuilt {
        platforms,
        built_on,
    })
}

fn compare_layers(
    published_image: &ImageRef,
    published: &ImageManifest,
    rebuilt: &ImageManifest,
    archive: &Path,
) -> Result<Vec<LayerDifference>> {
    let empty = Descriptor {
        media_type: String::new(),
        digest: String::new(),
        size: 0,
        platform: None,
        annotations: BTreeMap::new(),
    };
    let mut differences = Vec::new();
    // The published image's blobs, fetched once on the first difference.
    let mut downloaded: Option<PathBuf> = None;
    for index in 0..published.layers.len().max(rebuilt.layers.len()) {
        let p = published.layers.get(index).unwrap_or(&empty);
        let r = rebuilt.layers.get(index).unwrap_or(&empty);
        if p.digest == r.digest {
            continue;
        }
        let first_differing_file = if differences.is_empty()
            && !p.digest.is_empty()
            && !r.digest.is_empty()
        {
            let dir =
                std::env::temp_dir().join(format!("rebuild-check-{}", files::unique_suffix()));
            registry::copy_to_dir(published_image, &dir)?;
            let published_blob = std::fs::read(dir.join(p.digest.trim_start_matches("sha256:")))
                .with_context(|| format!("the published layer {} was not downloaded", p.digest))?;
            downloaded = Some(dir);
            let rebuilt_blob = tar_member(archive, &blob_path(&r.digest))?;
            first_differing_file(&published_blob, &rebuilt_blob)
                .ok()
                .flatten()
        } else {
            None
        };
        differences.push(LayerDifference {
            index,
            published: p.digest.clone(),
            published_size: p.size,
            rebuilt: r.digest.clone(),
            rebuilt_size: r.size,
            first_differing_file,
        });
    }
    if let Some(dir) = downloaded {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(differences)
}

/// Extracts two layer tarballs and names the first path whose metadata or
/// content differs (in the published layer's order).
fn first_differing_file(published: &[u8], rebuilt: &[u8]) -> Result<Option<String>> {
    let scratch =
        std::env::temp_dir().join(format!("rebuild-check-layers-{}", files::unique_suffix()));
    let _ = std::fs::remove_dir_all(&scratch);
    let mut listings = Vec::new();
    for (side, blob) in [("published", published), ("rebuilt", rebuilt)] {
        let dir = scratch.join(side);
        files::create_dir_all(&dir)?;
        let file = scratch.join(format!("{side}.tar.gz"));
        files::write(&file, blob)?;
        let listing = tar::list_gz(&file)?;
        tar::extract_gz(&file, &dir)?;
        listings.push(listing);
    }
    let entries = |listing: &str| -> Vec<(String, String)> {
        listing
            .lines()
            .map(|l| {
                let name = l.split_whitespace().skip(5).collect::<Vec<_>>().join(" ");
                (name, l.to_string())
            })
            .collect()
    };
    let (ours, theirs) = (entries(&listings[0]), entries(&listings[1]));
    let mut found = None;
    for (index, (name, line)) in ours.iter().enumerate() {
        let same_meta = theirs.get(index).is_some_and(|(_, other)| other == line);
        let path_ours = scratch.join("published").join(name);
        let path_theirs = scratch.join("rebuilt").join(name);
        let same_content = !path_ours.is_file()
            || std::fs::read(&path_ours).ok() == std::fs::read(&path_theirs).ok();
        if !same_meta || !same_content {
            found = Some(name.clone());
            break;
        }
    }
    if found.is_none() && theirs.len() > ours.len() {
        found = theirs.get(ours.len()).map(|(name, _)| name.clone());
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(found)
}

/// Each checked platform of the published index against the rebuilt
/// archive: a match, or where they differ; with how it was built and how
/// the rebuild built it (the archive's provenance, else as planned).
pub(super) fn platforms(
    image: &ImageRef,
    index: &Index,
    archive: &Path,
    checked: &[PlatformRebuild],
) -> Result<Vec<PlatformResult>> {
    let rebuilt = read_archive(archive)?;
    let mut results = Vec::new();
    for entry in index.images() {
        let platform = entry
            .platform
            .clone()
            .with_context(|| format!("{image} holds an image without a platform"))?;
        let Some(check) = checked.iter().find(|c| c.platform == platform) else {
            continue;
        };
        let published = entry.digest.clone();
        let published_image = image.repository.at(&published.parse::<Digest>()?);
        let rebuilt_entry = rebuilt.platforms.get(&platform.to_string());
        let how_rebuilt = match rebuilt.built_on.get(&platform.to_string()) {
            Some(on) => PlatformBuild::on(on.clone(), &platform),
            None => check.rebuilt.clone(),
        };
        let mut result = PlatformResult {
            platform,
            published: published.clone(),
            rebuilt: rebuilt_entry.map(|(digest, _)| digest.clone()),
            matches: rebuilt_entry.is_some_and(|(digest, _)| digest == &published),
            how_built: check.built.clone(),
            how_rebuilt,
            config_differs: false,
            layers: Vec::new(),
        };
        if let (false, Some((_, rebuilt_manifest))) = (result.matches, rebuilt_entry) {
            let published_manifest = registry::fetch_existing(&published_image)?
                .document
                .as_manifest()
                .cloned()
                .with_context(|| format!("{published} of {image} is not an image manifest"))?;
            result.config_differs =
                published_manifest.config.digest != rebuilt_manifest.config.digest;
            result.layers = compare_layers(
                &published_image,
                &published_manifest,
                rebuilt_manifest,
                archive,
            )?;
        }
        results.push(result);
    }
    Ok(results)
}
