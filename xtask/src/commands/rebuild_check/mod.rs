//! `cargo xtask rebuild-check IMAGE`: proves, after the fact, that a published
//! production image is what its commit builds. It reads the commit, variant
//! and build inputs back from the image (labels, annotations, provenance),
//! rebuilds that commit from a clean checkout with the same base digests and
//! `SOURCE_DATE_EPOCH` (the release path itself, exporting an OCI archive
//! instead of publishing), and compares the per-platform image manifests.
//! Attestation manifests record build times and are reported, not compared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use serde_json::Value;

use crate::client::process::{self, Invocation};
use crate::client::registry::{self, Attestation};
use crate::client::{git, tar};
use crate::context::{BuildContext, CiEnv, GitState};
use crate::model::files;
use crate::model::names::{ImageRef, Platform};
use crate::model::oci::{blob_path, Descriptor, ImageManifest, Index, Layout};
use crate::model::tags::DEFAULT_BRANCH;
use crate::model::version::Version;
use crate::plan::LABEL_NS;
use crate::preflight::{self, Requirement};
use crate::project;

#[derive(Debug, Clone)]
pub struct RebuildCheckOptions {
    /// The published image (tag or digest).
    pub image: String,
    /// Print the comparison as JSON.
    pub json: bool,
}

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

#[derive(Debug, Clone, Serialize)]
pub struct LayerDifference {
    pub index: usize,
    pub published: String,
    pub published_size: u64,
    pub rebuilt: String,
    pub rebuilt_size: u64,
    pub first_differing_file: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformResult {
    pub platform: String,
    pub published: String,
    pub rebuilt: Option<String>,
    pub matches: bool,
    pub config_differs: bool,
    pub layers: Vec<LayerDifference>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub image: String,
    pub digest: String,
    pub inputs: BuildInputs,
    pub platforms: Vec<PlatformResult>,
    pub attestation_manifests: usize,
    pub notes: Vec<String>,
}

pub fn run(args: RebuildCheckOptions) -> Result<()> {
    preflight::check_all(&[
        Requirement::Docker,
        Requirement::Buildx,
        Requirement::Engine,
        Requirement::Skopeo,
    ])?;
    let image: ImageRef = args.image.parse()?;
    let fetched = registry::fetch_existing(&image.to_string())?;
    let digest = fetched.digest.clone();
    let by_digest = format!("{}@{digest}", image.repository);
    let Some(index) = fetched.document.as_index() else {
        bail!("{image} is a single manifest, not a release index: rebuild-check checks images published by release-image");
    };
    let platforms = index.platforms();
    let first = index
        .images()
        .next()
        .context("the index holds no platform image")?;
    let provenance = registry::attestation(&by_digest, Attestation::Provenance)?;
    let labels = registry::config(&image.repository, &first.digest)?
        .and_then(|c| c.config.labels)
        .unwrap_or_default();
    let inputs = read_inputs(
        index,
        &labels,
        registry::for_platform(&provenance, &first.platform_name(), platforms.len())
            .and_then(|p| p.get("SLSA"))
            .unwrap_or(&Value::Null),
    )?;
    let mut notes = Vec::new();
    if !inputs.local_contexts.is_empty() {
        notes.push(format!(
            "the release used local build contexts ({}) that its commit alone cannot reproduce; the rebuild uses the Dockerfile's compile stage",
            inputs.local_contexts.join(", ")
        ));
    }

    let root = project::project_root();
    let tree = checkout(&root, &inputs.revision)?;
    let result = rebuild(&tree, &image, &inputs, &platforms, &mut notes);
    remove_worktree(&root, &tree);
    let archive = result?;
    let rebuilt = read_archive(&archive)?;

    let mut results = Vec::new();
    for entry in index.images() {
        let platform = entry.platform_name();
        let published = entry.digest.clone();
        let rebuilt_entry = rebuilt.platforms.get(&platform);
        let mut result = PlatformResult {
            platform: platform.clone(),
            published: published.clone(),
            rebuilt: rebuilt_entry.map(|(digest, _)| digest.clone()),
            matches: rebuilt_entry.is_some_and(|(digest, _)| digest == &published),
            config_differs: false,
            layers: Vec::new(),
        };
        if let (false, Some((_, rebuilt_manifest))) = (result.matches, rebuilt_entry) {
            let published_manifest =
                registry::fetch_existing(&format!("{}@{published}", image.repository))?
                    .document
                    .as_manifest()
                    .cloned()
                    .with_context(|| format!("{published} of {image} is not an image manifest"))?;
            result.config_differs =
                published_manifest.config.digest != rebuilt_manifest.config.digest;
            result.layers = compare_layers(
                &image.repository,
                &published,
                &published_manifest,
                rebuilt_manifest,
                &archive,
            )?;
        }
        results.push(result);
    }
    // The rebuilt archive lived beside the (removed) checkout; it goes too.
    if let Some(dir) = archive.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let attestation_manifests = index.attestations().count();
    let report = Report {
        image: image.to_string(),
        digest,
        inputs,
        platforms: results,
        attestation_manifests,
        notes,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    let mismatched: Vec<&str> = report
        .platforms
        .iter()
        .filter(|p| !p.matches)
        .map(|p| p.platform.as_str())
        .collect();
    if !mismatched.is_empty() {
        bail!(
            "{} is not what commit {} builds: mismatch on {}",
            report.image,
            report.inputs.revision,
            mismatched.join(", ")
        );
    }
    Ok(())
}

/// A clean checkout of `revision` in a scratch worktree of its own.
fn checkout(root: &Path, revision: &str) -> Result<PathBuf> {
    let tree = root.join("target/rebuild-check").join(format!(
        "{}-{}",
        revision.chars().take(12).collect::<String>(),
        files::unique_suffix()
    ));
    let spec = format!("{revision}^{{commit}}");
    if !process::capture(&git::command(root, &["cat-file", "-e", &spec]))?.success {
        bail!("commit {revision} is not in this clone: fetch it (git fetch origin {revision}) and run rebuild-check again");
    }
    let tree_text = tree.display().to_string();
    let added = process::capture(&git::command(
        root,
        &[
            "worktree", "add", "--detach", "--force", &tree_text, revision,
        ],
    ))?;
    if !added.success {
        bail!(
            "cannot check out {revision} into {}: {}",
            tree.display(),
            added.last_words()
        );
    }
    Ok(tree)
}

fn remove_worktree(root: &Path, tree: &Path) {
    let tree_text = tree.display().to_string();
    let _ = git::answer(root, &["worktree", "remove", "--force", &tree_text]);
    let _ = std::fs::remove_dir_all(tree);
}

/// Rebuilds the variant with the release path (archive output, no cache) in
/// the checkout; returns the archive.
fn rebuild(
    tree: &Path,
    image: &ImageRef,
    inputs: &BuildInputs,
    platforms: &[String],
    notes: &mut Vec<String>,
) -> Result<PathBuf> {
    let commit_time: i64 = git::read(tree, &["log", "-1", "--format=%ct", "HEAD"])?
        .parse()
        .context("unreadable commit time")?;
    if inputs
        .source_date_epoch
        .is_some_and(|epoch| epoch != commit_time)
    {
        notes.push(format!(
            "the release's SOURCE_DATE_EPOCH ({}) is not the commit time ({commit_time}); the rebuild uses the commit time",
            inputs.source_date_epoch.unwrap_or_default()
        ));
    }
    let context = BuildContext {
        git: GitState {
            revision: inputs.revision.clone(),
            commit_time,
            dirty: false,
            branch: None,
            tags_at_head: Vec::new(),
            release_tags: Vec::new(),
            source_url: inputs.source.clone(),
        },
        ci: CiEnv {
            git_ref: Some(git_ref_for_version(&inputs.version)),
            ..CiEnv::default()
        },
        native_platform: Platform::native(),
    };
    let work = tree.join("target/rebuild-check");
    files::create_dir_all(&work)?;
    let context_file = work.join("context.json");
    files::write(&context_file, serde_json::to_string(&context)?)?;
    // Beside the checkout, which is removed once the rebuild is compared.
    let archives = tree.with_extension("archives");
    let (registry, name) = image
        .repository
        .split_once('/')
        .unwrap_or(("localhost", &image.repository));
    let mut args: Vec<String> = vec![
        "release-image".into(),
        "--output-archive".into(),
        archives.display().to_string(),
        "--no-cache".into(),
        "--allow-any-ref".into(),
        "--cache".into(),
        "none".into(),
        "--variant".into(),
        inputs.variant.clone(),
        "--registry".into(),
        registry.into(),
        "--image-name".into(),
        name.into(),
        "--platform".into(),
        platforms.join(","),
    ];
    args.extend(
        inputs
            .images
            .iter()
            .map(|(key, value)| format!("--build-arg={key}={value}")),
    );
    eprintln!(
        "rebuilding {} of {} from a clean checkout",
        inputs.variant, inputs.revision
    );
    // The rebuild is the release path itself: this same program, in the
    // checkout. Its report goes to stderr; stdout is this command's report.
    let program = std::env::current_exe()?.display().to_string();
    let rebuild = Invocation::new(&program, args)
        .in_dir(tree)
        .with_env("XTASK_PROJECT_ROOT", tree.display().to_string())
        .with_env("XTASK_CONTEXT", context_file.display().to_string());
    if !process::stream(&rebuild)?.success {
        bail!(
            "the rebuild of {} at {} failed (see above)",
            inputs.variant,
            inputs.revision
        );
    }
    let built = archives.join(format!("{}.tar", inputs.variant));
    if !built.is_file() {
        bail!("the rebuild left no archive at {}", built.display());
    }
    Ok(built)
}

/// The rebuilt archive: per-platform manifest digests and manifests.
struct Rebuilt {
    platforms: BTreeMap<String, (String, ImageManifest)>,
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
    Ok(Rebuilt { platforms })
}

fn compare_layers(
    repository: &str,
    published_digest: &str,
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
            registry::copy_to_dir(repository, published_digest, &dir)?;
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

fn print_report(report: &Report) {
    println!("{} ({})", report.image, report.digest);
    println!(
        "  built from {} ({}), variant {}, version {}",
        report.inputs.revision, report.inputs.source, report.inputs.variant, report.inputs.version
    );
    for (key, value) in &report.inputs.images {
        println!("  {key}={value}");
    }
    for platform in &report.platforms {
        if platform.matches {
            println!("  {}: match {}", platform.platform, platform.published);
            continue;
        }
        println!(
            "  {}: MISMATCH published {} rebuilt {}",
            platform.platform,
            platform.published,
            platform
                .rebuilt
                .as_deref()
                .unwrap_or("(platform not rebuilt)")
        );
        if platform.config_differs {
            println!("    config differs");
        }
        for layer in &platform.layers {
            println!(
                "    layer {}: published {} ({} bytes), rebuilt {} ({} bytes){}",
                layer.index,
                layer.published,
                layer.published_size,
                layer.rebuilt,
                layer.rebuilt_size,
                layer
                    .first_differing_file
                    .as_ref()
                    .map(|f| format!("; first differing file: {f}"))
                    .unwrap_or_default()
            );
        }
    }
    println!(
        "  attestation manifests: {} (they record build times; reported, not compared)",
        report.attestation_manifests
    );
    for note in &report.notes {
        println!("  note: {note}");
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
