//! `cargo xtask rebuild-check IMAGE [--platform P]`: proves, after the
//! fact, that a published production image is what its commit builds. It
//! reads the commit, variant and build inputs back from the image (labels,
//! annotations, provenance), and how each platform was built (its
//! provenance's build platform: native or cross-compiled from it);
//! rebuilds that commit from a clean checkout with the same base digests and
//! `SOURCE_DATE_EPOCH` (the release path itself, exporting an OCI archive
//! instead of publishing), each platform (or only P) the way it was built or
//! not at all ([`crate::plan::rebuild`]), and compares the per-platform
//! image manifests of the platforms rebuilt. Attestation manifests record
//! build times and are reported, not compared.
//!
//! `inputs.rs` reads what the image says it was built from, `builds.rs` how
//! each platform was built and where it is rebuilt, `compare.rs` compares
//! the rebuilt archive with it; this file checks out, rebuilds and reports.

mod builds;
mod compare;
mod inputs;

pub use self::inputs::{git_ref_for_version, read_inputs, BuildInputs};

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use serde_json::Value;

use crate::client::git;
use crate::client::process::{self, Invocation};
use crate::client::registry::{self, Attestation};
use crate::context::{BuildContext, CiEnv, GitState};
use crate::model::files;
use crate::model::names::Platform;
use crate::model::oci::Index;
use crate::model::reference::ImageRef;
use crate::plan::rebuild::{self, RebuildPlan};
use crate::plan::record::{is_native, PlatformBuild};
use crate::preflight::{self, Requirement};
use crate::project;

#[derive(Debug, Clone)]
pub struct RebuildCheckOptions {
    /// The published image (tag or digest).
    pub image: ImageRef,
    /// Print the comparison as JSON.
    pub json: bool,
    /// The buildx builder to rebuild with (`docker buildx ls`); `None`: the current one.
    pub builder: Option<String>,
    /// Check only this platform of the image; `None`: every platform.
    pub platform: Option<Platform>,
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
    pub platform: Platform,
    pub published: String,
    pub rebuilt: Option<String>,
    pub matches: bool,
    /// How it was built, as its provenance records it (`None`: it does not say).
    pub how_built: Option<PlatformBuild>,
    /// How the rebuild built it (its provenance, else as planned).
    pub how_rebuilt: PlatformBuild,
    pub config_differs: bool,
    pub layers: Vec<LayerDifference>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub image: String,
    pub digest: String,
    pub inputs: BuildInputs,
    pub platforms: Vec<PlatformResult>,
    /// The image's platforms not checked (`--platform` named another).
    pub unchecked: Vec<Platform>,
    pub attestation_manifests: usize,
    pub notes: Vec<String>,
}

pub fn run(args: RebuildCheckOptions) -> Result<()> {
    let mut checks = vec![
        Requirement::Docker,
        Requirement::Buildx,
        Requirement::Engine,
        Requirement::Skopeo,
    ];
    // A named builder's engine is checked once the platforms are known.
    checks.retain(|r| args.builder.is_none() || *r != Requirement::Engine);
    preflight::check_all(&checks)?;
    let image = &args.image;
    let fetched = registry::fetch_existing(image)?;
    let digest = fetched.digest.clone();
    let Some(index) = fetched.document.as_index() else {
        bail!("{image} is a single manifest, not a release index: rebuild-check checks images published by release-image");
    };
    let provenance = registry::attestation(
        &image.repository.at(&digest.parse()?),
        Attestation::Provenance,
    )?;
    let plan = plan_rebuild(&args, index, &provenance)?;
    let inputs = published_inputs(image, index, &provenance)?;
    let mut notes = Vec::new();
    if !inputs.local_contexts.is_empty() {
        notes.push(format!(
            "the release used local build contexts ({}) that its commit alone cannot reproduce; the rebuild compiles them with images/compile.Dockerfile",
            inputs.local_contexts.join(", ")
        ));
    }

    let root = project::project_root();
    let tree = checkout(&root, &inputs.revision)?;
    let result = rebuild(
        &tree,
        image,
        &inputs,
        &plan,
        args.builder.as_deref(),
        &mut notes,
    );
    remove_worktree(&root, &tree);
    let archive = result?;
    let platforms = compare::platforms(image, index, &archive, &plan.checked);
    // The rebuilt archive lived beside the (removed) checkout; it goes too.
    if let Some(dir) = archive.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let platforms = platforms?;
    notes.extend(unlike_rebuilds(&platforms));
    let report = Report {
        image: image.to_string(),
        digest,
        inputs,
        platforms,
        unchecked: plan.unchecked.clone(),
        attestation_manifests: index.attestations().count(),
        notes,
    };
    finish(&report, args.json)
}

/// How each platform of `index` was built and where this run rebuilds
/// the ones it checks: each the way it was built, or a one-line refusal
/// before anything is checked out or built.
fn plan_rebuild(
    args: &RebuildCheckOptions,
    index: &Index,
    provenance: &Value,
) -> Result<RebuildPlan> {
    let platforms = index
        .platforms()
        .iter()
        .map(|p| p.parse())
        .collect::<Result<Vec<Platform>>>()?;
    let built = builds::published(provenance, &platforms);
    let image = &args.image;
    let wanted = rebuild::select(&platforms, args.platform.as_ref())
        .map_err(|e| anyhow::anyhow!("{image}: {e}"))?;
    let rebuilder = builds::rebuilder(args.builder.as_deref(), &wanted)?;
    let plan = rebuild::plan(&built, args.platform.as_ref(), &rebuilder)
        .map_err(|e| anyhow::anyhow!("{image}: {e}"))?;
    for check in &plan.checked {
        eprintln!("rebuild-check: {}", check.describe());
    }
    Ok(plan)
}

/// A note for each platform the rebuild built otherwise than it was built
/// (its own provenance says so) and that did not match: the difference
/// may come from that.
fn unlike_rebuilds(platforms: &[PlatformResult]) -> Vec<String> {
    platforms
        .iter()
        .filter(|p| !p.matches)
        .filter_map(|p| {
            let built = p.how_built.as_ref()?;
            (!is_native(&p.how_rebuilt.build_platform, &built.build_platform)).then(|| {
                format!(
                    "{} was built {} and rebuilt {}: the mismatch may come from that",
                    p.platform,
                    rebuild::how(built),
                    rebuild::how(&p.how_rebuilt)
                )
            })
        })
        .collect()
}

/// Prints the report; an error naming every platform that does not match.
fn finish(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print_report(report);
    }
    let mismatched: Vec<String> = report
        .platforms
        .iter()
        .filter(|p| !p.matches)
        .map(|p| p.platform.to_string())
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

/// What the published index of `image` says it was built from (its first
/// platform's labels and provenance).
fn published_inputs(image: &ImageRef, index: &Index, provenance: &Value) -> Result<BuildInputs> {
    let first = index
        .images()
        .next()
        .context("the index holds no platform image")?;
    let labels = registry::config(&image.repository.at(&first.digest.parse()?))?
        .and_then(|c| c.config.labels)
        .unwrap_or_default();
    read_inputs(
        index,
        &labels,
        registry::for_platform(provenance, &first.platform_name(), index.platforms().len())
            .and_then(|p| p.get("SLSA"))
            .unwrap_or(&Value::Null),
    )
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
    plan: &RebuildPlan,
    builder: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<PathBuf> {
    let context_file = rebuild_context(tree, inputs, notes)?;
    // Beside the checkout, which is removed once the rebuild is compared.
    let archives = tree.with_extension("archives");
    let platforms: Vec<String> = plan.platforms().iter().map(ToString::to_string).collect();
    eprintln!(
        "rebuilding {} of {} ({}) from a clean checkout",
        inputs.variant,
        inputs.revision,
        platforms.join(", ")
    );
    // The rebuild is the release path itself: this same program, in the
    // checkout. Its report goes to stderr; stdout is this command's report.
    let program = std::env::current_exe()?.display().to_string();
    let args = release_args(image, inputs, &platforms, builder, &archives);
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

/// The context of the rebuild, written into the checkout: a clean checkout
/// of the commit at its commit time, built for the release's ref.
fn rebuild_context(tree: &Path, inputs: &BuildInputs, notes: &mut Vec<String>) -> Result<PathBuf> {
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
    Ok(context_file)
}

/// `release-image` of the variant as published, into an archive under
/// `archives`, with no cache and the published images pinned.
fn release_args(
    image: &ImageRef,
    inputs: &BuildInputs,
    platforms: &[String],
    builder: Option<&str>,
    archives: &Path,
) -> Vec<String> {
    let (registry, name) = match image.repository.registry_and_name() {
        Some((registry, name)) => (registry.to_string(), name.to_string()),
        None => ("localhost".to_string(), image.repository.to_string()),
    };
    let mut args: Vec<String> = vec![
        "release-image".into(),
        "--output-archive".into(),
        archives.display().to_string(),
        "--no-cache".into(),
        "--allow-any-ref".into(),
        "--variant".into(),
        inputs.variant.clone(),
        "--registry".into(),
        registry,
        "--image-name".into(),
        name,
        "--platform".into(),
        platforms.join(","),
    ];
    if let Some(builder) = builder {
        args.extend(["--builder".to_string(), builder.to_string()]);
    }
    args.extend(
        inputs
            .images
            .iter()
            .map(|(key, value)| format!("--build-arg={key}={value}")),
    );
    args
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
        let how = rebuild::PlatformRebuild {
            platform: platform.platform.clone(),
            built: platform.how_built.clone(),
            rebuilt: platform.how_rebuilt.clone(),
        }
        .describe();
        if platform.matches {
            println!("  {how}: match {}", platform.published);
            continue;
        }
        println!(
            "  {how}: MISMATCH published {} rebuilt {}",
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
    for platform in &report.unchecked {
        println!("  {platform}: not checked (--platform named another)");
    }
    println!(
        "  attestation manifests: {} (they record build times; reported, not compared)",
        report.attestation_manifests
    );
    for note in &report.notes {
        println!("  note: {note}");
    }
}
