//! `cargo xtask rebuild-check IMAGE`: proves, after the fact, that a published
//! production image is what its commit builds. It reads the commit, variant
//! and build inputs back from the image (labels, annotations, provenance),
//! rebuilds that commit from a clean checkout with the same base digests and
//! `SOURCE_DATE_EPOCH` (the release path itself, exporting an OCI archive
//! instead of publishing), and compares the per-platform image manifests.
//! Attestation manifests record build times and are reported, not compared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use crate::context::{BuildContext, CiEnv, GitState};
use crate::distribution::Client;
use crate::names::{ImageRef, Platform};
use crate::plan::{Requirement, LABEL_NS};
use crate::{preflight, project, registry};

#[derive(Debug, Clone, Args)]
pub struct RebuildCheckArgs {
    /// The published image (tag or digest).
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// Print the comparison as JSON.
    #[arg(long)]
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
pub fn read_inputs(index: &Value, labels: &Value, provenance: &Value) -> Result<BuildInputs> {
    let annotation = |key: &str| {
        index
            .pointer(&format!("/annotations/org.opencontainers.image.{key}"))
            .and_then(Value::as_str)
    };
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
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
    let platforms = crate::verify::image_platforms(index);
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
    if crate::release_image::parse_release_tag(&format!("v{version}")).is_some() {
        format!("refs/tags/v{version}")
    } else {
        format!(
            "refs/heads/{}",
            if version.is_empty() {
                crate::context::DEFAULT_BRANCH
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

pub fn run(args: RebuildCheckArgs) -> Result<()> {
    preflight::check_all(&[
        Requirement::Docker,
        Requirement::Buildx,
        Requirement::Engine,
    ])?;
    let image: ImageRef = args.image.parse()?;
    let digest = registry::resolve_digest(&image.to_string())?
        .with_context(|| format!("{image} does not exist in its registry"))?;
    let by_digest = format!("{}@{digest}", image.repository);
    let index = registry::raw_manifest(&by_digest)?;
    if index.get("manifests").is_none() {
        bail!("{image} is a single manifest, not a release index: rebuild-check checks images published by release-image");
    }
    let platforms = crate::verify::image_platforms(&index);
    let first = platforms
        .first()
        .context("the index holds no platform image")?;
    let provenance = registry::inspect_format(&by_digest, "{{json .Provenance}}")?;
    let configs = registry::inspect_format(&by_digest, "{{json .Image}}")?;
    let platform_config = configs
        .get(first)
        .or_else(|| configs.get("config").map(|_| &configs))
        .cloned()
        .unwrap_or(Value::Null);
    let inputs = read_inputs(
        &index,
        platform_config
            .pointer("/config/Labels")
            .unwrap_or(&Value::Null),
        // Keyed by platform for several images, unkeyed for one (as `.Image`).
        provenance
            .pointer(&format!("/{}/SLSA", first.replace('/', "~1")))
            .or_else(|| provenance.get("SLSA"))
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
    let _ = Command::new("git")
        .current_dir(&root)
        .args(["worktree", "remove", "--force"])
        .arg(&tree)
        .output();
    let archive = result?;
    let rebuilt = read_archive(&archive)?;

    let (mut client, name) = Client::for_repository(&image.repository)?;
    let mut results = Vec::new();
    for entry in index["manifests"].as_array().into_iter().flatten() {
        if entry
            .pointer("/annotations/vnd.docker.reference.type")
            .and_then(Value::as_str)
            == Some("attestation-manifest")
        {
            continue;
        }
        let platform = platform_of(entry);
        let published = entry["digest"].as_str().unwrap_or_default().to_string();
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
            let published_manifest = client
                .get_manifest(&name, &published)?
                .context("published manifest vanished")?
                .json()?;
            result.config_differs = published_manifest.pointer("/config/digest")
                != rebuilt_manifest.pointer("/config/digest");
            result.layers = compare_layers(
                &mut client,
                &name,
                &published_manifest,
                rebuilt_manifest,
                &archive,
            )?;
        }
        results.push(result);
    }
    let attestation_manifests =
        index["manifests"].as_array().map_or(0, |m| m.len()) - results.len();
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

fn platform_of(entry: &Value) -> String {
    let part = |key: &str| {
        entry
            .pointer(&format!("/platform/{key}"))
            .and_then(Value::as_str)
    };
    match (part("os"), part("architecture"), part("variant")) {
        (Some(os), Some(arch), Some(variant)) => format!("{os}/{arch}/{variant}"),
        (Some(os), Some(arch), None) => format!("{os}/{arch}"),
        _ => "unknown".to_string(),
    }
}

/// A clean checkout of `revision` in a scratch worktree.
fn checkout(root: &Path, revision: &str) -> Result<PathBuf> {
    let tree = root
        .join("target/rebuild-check")
        .join(revision.chars().take(12).collect::<String>());
    let _ = Command::new("git")
        .current_dir(root)
        .args(["worktree", "remove", "--force"])
        .arg(&tree)
        .output();
    let _ = std::fs::remove_dir_all(&tree);
    let known = Command::new("git")
        .current_dir(root)
        .args(["cat-file", "-e", &format!("{revision}^{{commit}}")])
        .status()?;
    if !known.success() {
        bail!("commit {revision} is not in this clone: fetch it (git fetch origin {revision}) and run rebuild-check again");
    }
    let added = Command::new("git")
        .current_dir(root)
        .args(["worktree", "add", "--detach", "--force"])
        .arg(&tree)
        .arg(revision)
        .output()?;
    if !added.status.success() {
        bail!(
            "cannot check out {revision}: {}",
            String::from_utf8_lossy(&added.stderr).trim()
        );
    }
    Ok(tree)
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
    let sh = xshell::Shell::new()?;
    sh.change_dir(tree);
    let commit_time: i64 = xshell::cmd!(sh, "git log -1 --format=%ct HEAD")
        .read()?
        .trim()
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
    let context_file = tree.join("target/rebuild-check-context.json");
    std::fs::create_dir_all(tree.join("target"))?;
    std::fs::write(&context_file, serde_json::to_string(&context)?)?;
    let (registry, name) = image
        .repository
        .split_once('/')
        .unwrap_or(("localhost", &image.repository));
    let mut command = Command::new(std::env::current_exe()?);
    command
        .current_dir(tree)
        .env("XTASK_PROJECT_ROOT", tree)
        .env("XTASK_CONTEXT", &context_file)
        .args([
            "release-image",
            "--output-archive",
            "--no-cache",
            "--allow-any-ref",
            "--variant",
            &inputs.variant,
        ])
        .args([
            "--registry",
            registry,
            "--image-name",
            name,
            "--platform",
            &platforms.join(","),
        ])
        .args(["--cache", "none"]);
    for (key, value) in &inputs.images {
        command.arg(format!("--build-arg={key}={value}"));
    }
    eprintln!(
        "rebuilding {} of {} from a clean checkout",
        inputs.variant, inputs.revision
    );
    // The rebuild's own report goes to stderr: stdout is this command's report.
    let status = command.stdout(std::io::stderr()).status()?;
    if !status.success() {
        bail!(
            "the rebuild of {} at {} failed (see above)",
            inputs.variant,
            inputs.revision
        );
    }
    // Keep the archive outside the checkout, which is removed next.
    let built = tree.join(crate::render::oci_archive(&inputs.variant));
    let kept = tree.with_extension(format!("{}.tar", inputs.variant));
    std::fs::rename(&built, &kept)
        .with_context(|| format!("the rebuild left no archive at {}", built.display()))?;
    Ok(kept)
}

/// The rebuilt archive: per-platform manifest digests and manifests.
struct Rebuilt {
    platforms: BTreeMap<String, (String, Value)>,
}

fn tar_member(archive: &Path, member: &str) -> Result<Vec<u8>> {
    let output = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg(member)
        .output()?;
    if !output.status.success() {
        bail!("{} has no {member}", archive.display());
    }
    Ok(output.stdout)
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

fn read_archive(archive: &Path) -> Result<Rebuilt> {
    let layout: Value = serde_json::from_slice(&tar_member(archive, "index.json")?)?;
    let index_digest = layout
        .pointer("/manifests/0/digest")
        .and_then(Value::as_str)
        .context("empty OCI layout")?;
    let index: Value = serde_json::from_slice(&tar_member(archive, &blob_path(index_digest))?)?;
    let mut platforms = BTreeMap::new();
    for entry in index["manifests"].as_array().into_iter().flatten() {
        if entry
            .pointer("/annotations/vnd.docker.reference.type")
            .is_some()
        {
            continue;
        }
        let digest = entry["digest"].as_str().unwrap_or_default().to_string();
        let manifest: Value = serde_json::from_slice(&tar_member(archive, &blob_path(&digest))?)?;
        platforms.insert(platform_of(entry), (digest, manifest));
    }
    Ok(Rebuilt { platforms })
}

fn compare_layers(
    client: &mut Client,
    name: &str,
    published: &Value,
    rebuilt: &Value,
    archive: &Path,
) -> Result<Vec<LayerDifference>> {
    let layers = |m: &Value| -> Vec<(String, u64)> {
        m["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                (
                    l["digest"].as_str().unwrap_or_default().to_string(),
                    l["size"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    let (ours, theirs) = (layers(published), layers(rebuilt));
    let mut differences = Vec::new();
    for index in 0..ours.len().max(theirs.len()) {
        let (p, r) = (
            ours.get(index).cloned().unwrap_or_default(),
            theirs.get(index).cloned().unwrap_or_default(),
        );
        if p.0 == r.0 {
            continue;
        }
        let first_differing_file = if differences.is_empty() && !p.0.is_empty() && !r.0.is_empty() {
            let published_blob = client.get_blob(name, &p.0)?.unwrap_or_default();
            let rebuilt_blob = tar_member(archive, &blob_path(&r.0))?;
            first_differing_file(&published_blob, &rebuilt_blob)
                .ok()
                .flatten()
        } else {
            None
        };
        differences.push(LayerDifference {
            index,
            published: p.0,
            published_size: p.1,
            rebuilt: r.0,
            rebuilt_size: r.1,
            first_differing_file,
        });
    }
    Ok(differences)
}

/// Extracts two layer tarballs and names the first path whose metadata or
/// content differs (in the published layer's order).
fn first_differing_file(published: &[u8], rebuilt: &[u8]) -> Result<Option<String>> {
    let scratch = std::env::temp_dir().join(format!("rebuild-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let mut listings = Vec::new();
    for (side, blob) in [("published", published), ("rebuilt", rebuilt)] {
        let dir = scratch.join(side);
        std::fs::create_dir_all(&dir)?;
        let file = scratch.join(format!("{side}.tar.gz"));
        std::fs::write(&file, blob)?;
        let listing = Command::new("tar").arg("-tvzf").arg(&file).output()?;
        Command::new("tar")
            .arg("-xzf")
            .arg(&file)
            .arg("-C")
            .arg(&dir)
            .output()?;
        listings.push(String::from_utf8_lossy(&listing.stdout).into_owned());
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
        let index = json!({"annotations": {"org.opencontainers.image.revision": "abc", "org.opencontainers.image.version": "1.2.3", "org.opencontainers.image.source": "https://x"},
            "manifests": [{"platform": {"os": "linux", "architecture": "amd64"}}, {"platform": {"os": "linux", "architecture": "arm64"}}]});
        let labels = json!({"dev.beacon.image.variant": "distroless"});
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
        let inputs = read_inputs(&json!({}), &json!({}), &provenance()).unwrap();
        assert_eq!(inputs.revision, "0123", "falls back to the build arg");
        assert_eq!(inputs.variant, "ubi9");
        assert_eq!(inputs.source_date_epoch, Some(1_700_000_000));
        assert_eq!(
            inputs.images.keys().collect::<Vec<_>>(),
            ["BUILDER_IMAGE", "PRODUCTION_BASE"],
            "only pinned images, not other args"
        );
        assert_eq!(inputs.local_contexts, ["binaries"]);
        assert!(read_inputs(&json!({}), &json!({}), &json!({}))
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
