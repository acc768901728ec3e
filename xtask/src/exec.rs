//! The executor: runs a rendered plan and reads the results back from
//! buildx's metadata file and the registry, and the mechanics the release
//! stages share: checking a release record against the registry, signing
//! by digest, moving tags. A release is published in stages over one
//! record (`release_image.rs`): build and push by digest, sign, the gate,
//! and only then the tag moves, `latest` last.
//!
//! Every run keeps its files in a directory of its own (`render::RunFiles`),
//! so two runs in one checkout (two terminals, `make -j`) never share one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use crate::client::{docker, process, registry, tar};
use crate::model::cosign::CosignLine;
use crate::model::oci::{blob_path, Index, Layout};
use crate::model::reference::Digest;
use crate::model::tags::SHARED_COMPILE;
use crate::model::{build_log, files};
use crate::plan::record::ReleaseRecord;
use crate::plan::{Mode, Output, Plan, COMPILE_STAGES};
use crate::render::{self, RunFiles};
use crate::report::{report, RunResult, VariantResult};
use crate::{preflight, project};

/// How a plan is run: for real or as a dry run, reporting as text or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunOptions {
    pub dry_run: bool,
    pub json: bool,
}

/// Prints what `--dry-run` promises: every check and command, exactly. The
/// plans run here sign nothing (CI images, rebuild-check's archives; a
/// published release runs in stages), so no cosign line matters.
pub fn print_dry_run(plan: &Plan, files: &RunFiles, json: bool) -> Result<()> {
    let commands = render::all(plan, files, CosignLine::V3);
    if json {
        let value = serde_json::json!({ "plan": plan, "commands": commands });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    print_dry_run_head(plan);
    for command in commands {
        println!("{}", command.display());
    }
    Ok(())
}

/// The warnings, checks and refusals a dry run states before the commands.
pub fn print_dry_run_head(plan: &Plan) {
    for warning in &plan.warnings {
        println!("# warning: {warning}");
    }
    if let Some(builder) = &plan.builder {
        println!("# {}", builder.describe());
    }
    let checks: Vec<String> = plan.preflight.iter().map(|r| format!("{r:?}")).collect();
    println!("# checks first: {}", checks.join(", "));
    if !plan.must_not_exist.is_empty() {
        let tags: Vec<String> = plan
            .must_not_exist
            .iter()
            .map(ToString::to_string)
            .collect();
        println!(
            "# refuses if any of these tags exists (on another digest than the release record's): {}",
            tags.join(" ")
        );
    }
}

/// Says which builder (and node) builds what, when the user named one: after
/// the checks, so that a refusal stays one line.
pub fn say_builder(plan: &Plan) {
    if let Some(builder) = &plan.builder {
        eprintln!("{}", builder.describe());
    }
}

/// The run files of a plan: a directory of its own (named, not created, for a dry run).
pub fn run_files(plan: &Plan, dry_run: bool, archives: Option<PathBuf>) -> RunFiles {
    let id = if dry_run {
        "<run>".to_string()
    } else {
        files::unique_suffix()
    };
    let mut run_files = RunFiles::new(plan, &id);
    run_files.archives = archives;
    run_files
}

/// Runs a CI plan (load, or push to `ci-` tags) or an archive-only release
/// plan (`rebuild-check`), or prints it for a dry run. Published releases go
/// through their stages instead (`release_image.rs`).
pub fn run_plan(plan: &Plan, options: &RunOptions, archives: Option<PathBuf>) -> Result<()> {
    if plan.mode == Mode::Release && plan.pushes() {
        bail!("a published release runs in stages (build, sign, gate, promote): use release-image");
    }
    let root = project::project_root();
    let run_files = run_files(plan, options.dry_run, archives);
    if options.dry_run {
        return print_dry_run(plan, &run_files, options.json);
    }
    preflight::check_all_on(&plan.preflight, plan.builder.as_ref())?;
    // A refusal is one line: it comes before the warnings about the run it stops.
    refuse_existing_tags(plan, None)?;
    say_builder(plan);
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    let dir = root.join(&run_files.dir);
    files::create_dir_all(&dir.join("oci"))?;
    let outcome = execute(plan, &run_files, &BTreeMap::new());
    // The run's files are its own and go with it (archives asked for stay).
    let _ = std::fs::remove_dir_all(&dir);
    let (mut result, failure) = outcome?;
    if failure.is_none() && plan.mode == Mode::Ci && plan.pushes() {
        // CI images have no gate: their ci- tags move as soon as they are pushed.
        let failure = tag_ci(plan, &mut result.variants).err();
        report(&result, options.json)?;
        return failure.map_or(Ok(()), Err);
    }
    // The result is reported even when a step after the build failed, so the
    // JSON and the job summary say what was pushed and tagged.
    report(&result, options.json)?;
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// A variant an earlier run pushed, that this run does not build again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    pub digest: Digest,
    pub platform_digests: BTreeMap<String, Digest>,
}

impl Resumed {
    /// The platform images as the report holds them.
    fn platform_digest_texts(&self) -> BTreeMap<String, String> {
        self.platform_digests
            .iter()
            .map(|(platform, digest)| (platform.clone(), digest.to_string()))
            .collect()
    }
}

/// Builds every variant of the plan but the `resumed` ones and, for pushed
/// plans, pushes them by digest and reads each index back from the registry
/// (its per-platform digests). Nothing is signed or tagged here. A build
/// failure is an error; a failure after it comes back beside the result,
/// which then says how far each variant got.
pub fn execute(
    plan: &Plan,
    files: &RunFiles,
    resumed: &BTreeMap<String, Resumed>,
) -> Result<(RunResult, Option<anyhow::Error>)> {
    let mut to_build = plan.clone();
    to_build
        .variants
        .retain(|v| !resumed.contains_key(&v.variant));
    let started = Instant::now();
    let mut built = if to_build.variants.is_empty() {
        BTreeMap::new()
    } else {
        build(&to_build, files)?
    };
    let build_seconds = started.elapsed().as_secs_f64();
    for (variant, earlier) in resumed {
        built.insert(
            variant.clone(),
            Built {
                digest: earlier.digest.to_string(),
                media_type: None,
            },
        );
    }
    let mut results: Vec<VariantResult> = plan
        .variants
        .iter()
        .map(|v| {
            let (digest, media_type) = built
                .get(&v.variant)
                .map(|b| (b.digest.clone(), b.media_type.clone()))
                .unwrap_or_default();
            VariantResult {
                variant: v.variant.clone(),
                image: match plan.output {
                    Output::Load => v
                        .policy
                        .tags
                        .first()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    Output::PushByDigest(_) => format!("{}@{digest}", plan.repository),
                    Output::Archive => files.oci_archive(&v.variant).display().to_string(),
                },
                digest,
                media_type,
                platforms: v.policy.platforms.iter().map(ToString::to_string).collect(),
                tags: v.policy.tags.iter().map(ToString::to_string).collect(),
                pushed: resumed.contains_key(&v.variant),
                signed: false,
                tagged: plan.output == Output::Load,
                platform_digests: resumed
                    .get(&v.variant)
                    .map(Resumed::platform_digest_texts)
                    .unwrap_or_default(),
                sizes: BTreeMap::new(),
                build_seconds,
            }
        })
        .collect();
    let mut failure = None;
    if plan.pushes() {
        failure = push_archives(plan, files, &mut results).err();
    }
    for result in results.iter_mut() {
        platform_details(plan, result);
    }
    let result = RunResult {
        mode: plan.mode,
        repository: plan.repository.clone(),
        build_seconds,
        variants: results,
    };
    Ok((result, failure))
}

/// Per-platform image digests and sizes, for the report. Best effort: a
/// lookup that fails leaves them unknown rather than failing a finished
/// build. A loaded CI image's size is looked up only for a GitHub job summary
/// (it would add to every local build's time for nobody).
fn platform_details(plan: &Plan, result: &mut VariantResult) {
    match plan.output {
        Output::PushByDigest(_) if result.pushed => {
            let Ok(digest) = result.digest.parse::<Digest>() else {
                return;
            };
            let Ok(Some(fetched)) = registry::fetch(&plan.repository.at(&digest)) else {
                return;
            };
            let Some(index) = fetched.document.as_index() else {
                return;
            };
            for image in index.images() {
                let platform = image.platform_name();
                let Ok(digest) = image.digest.parse::<Digest>() else {
                    continue;
                };
                if let Ok(Some(manifest)) = registry::fetch(&plan.repository.at(&digest)) {
                    if let Some(manifest) = manifest.document.as_manifest() {
                        result
                            .sizes
                            .insert(platform.clone(), manifest.stored_size());
                    }
                }
                result
                    .platform_digests
                    .entry(platform)
                    .or_insert_with(|| image.digest.clone());
            }
        }
        Output::Load if std::env::var_os("GITHUB_STEP_SUMMARY").is_some() => {
            let size = process::read(&docker::engine(
                plan.builder.as_ref(),
                vec![
                    "image".into(),
                    "inspect".into(),
                    "--format".into(),
                    "{{.Size}}".into(),
                    result.image.clone(),
                ],
            ));
            if let (Ok(size), Some(platform)) = (size, result.platforms.first()) {
                if let Ok(size) = size.trim().parse() {
                    result.sizes.insert(platform.clone(), size);
                }
            }
        }
        _ => {}
    }
}

/// Runs the bake and returns each variant's digest from the metadata file.
fn build(plan: &Plan, files: &RunFiles) -> Result<BTreeMap<String, Built>> {
    let root = project::project_root();
    let metadata_path = root.join(files.metadata());
    if let Some(dir) = &files.archives {
        files::create_dir_all(&root.join(dir))?;
    }
    let mut invocation = render::build(plan, files);
    eprintln!(
        "+ {}",
        invocation.display().lines().next().unwrap_or_default()
    );
    // buildx 0.18+ refuses paths outside the project root unless told (0.13 ignores this).
    if let Some((key, value)) = docker::bake_entitlements(&render::bake_file(plan, files), &root) {
        invocation = invocation.with_env(key, value);
    }
    let invocation = invocation.in_dir(&root);
    let mut streamed = process::stream(&invocation)?;
    // Only a failed bake's log is read for a race.
    if let Some(race) = (!streamed.success)
        .then(|| build_log::EngineRace::of(&streamed.log))
        .flatten()
    {
        eprintln!(
            "warning: {}; a failed bake moved no tag: running it once more",
            race.describe()
        );
        streamed = process::stream(&invocation)?;
    }
    let (ok, log) = (streamed.success, streamed.log);
    if !ok {
        let mut targets = plan.variant_names();
        if plan.shared_compile.is_some() {
            targets.push(SHARED_COMPILE);
        }
        let mut failed = build_log::failed_variants(&log, &targets);
        // The compile's steps are in every variant's build too (its
        // `binaries` context), and a shared step is reported under whichever
        // target's name BuildKit printed first: a failed step of a compile
        // stage is the compile's, whatever it is labelled.
        if plan.shared_compile.is_some()
            && build_log::failed_stages(&log)
                .iter()
                .any(|stage| COMPILE_STAGES.contains(&stage.as_str()))
        {
            failed = vec![SHARED_COMPILE.to_string()];
        }
        // A one-target bake does not prefix its steps with the target's name.
        if failed.is_empty() && targets.len() == 1 {
            failed.push(plan.variants[0].variant.clone());
        }
        let which = if failed.iter().any(|f| f == SHARED_COMPILE) {
            "the compile stages, which build every variant's binaries".to_string()
        } else if failed.is_empty() {
            "one or more variants".to_string()
        } else {
            format!("variant(s) {}", failed.join(", "))
        };
        let consequence = match plan.output {
            Output::Load if plan.variants.len() > 1 => {
                "the variants that finished were loaded into the engine"
            }
            Output::Load => "nothing was loaded",
            Output::PushByDigest(_) => "no tag of any variant was moved",
            Output::Archive => "nothing was published",
        };
        // What the compile stage itself said is wrong (an out-of-date Cargo.lock), or
        // the commonest cause on an offline machine or behind a mirror: say how to fix it.
        let hint = if let Some(message) = build_log::user_error(&log) {
            format!("; {message}")
        } else if log.contains("failed to resolve source metadata")
            || log.contains("failed to do request")
        {
            "; a base image could not be pulled: on an offline machine or behind a mirror, override the bases \
             (--build-arg [VARIANT:]PRODUCTION_BASE=..., CI_BASE=..., BUILDER_IMAGE=...), or build CI images on local stand-ins (ci-image --stand-ins)".to_string()
        } else {
            String::new()
        };
        bail!("the build failed for {which} (see the buildx output above); {consequence}{hint}");
    }
    let text = std::fs::read_to_string(&metadata_path).with_context(|| {
        format!(
            "buildx wrote no metadata file at {}",
            metadata_path.display()
        )
    })?;
    let metadata: Value =
        serde_json::from_str(&text).context("buildx wrote an unreadable metadata file")?;
    remove_shared_compile_image(plan, &metadata);
    let mut built = BTreeMap::new();
    for variant in plan.variant_names() {
        let entry = metadata.get(variant);
        let digest = entry
            .and_then(|m| m.get("containerimage.digest"))
            .and_then(Value::as_str)
            .with_context(|| format!("buildx reported no image digest for variant {variant}"))?;
        let media_type = entry
            .and_then(|m| m.pointer("/containerimage.descriptor/mediaType"))
            .and_then(Value::as_str)
            .map(String::from);
        built.insert(
            variant.to_string(),
            Built {
                digest: digest.to_string(),
                media_type,
            },
        );
    }
    Ok(built)
}

/// The docker driver keeps the result of a build without an image output
/// (the shared compile's `type=cacheonly`) as an untagged image: one of a
/// few MB per change of the service, which would pile up on a laptop. It is
/// in the build cache anyway, so it goes (a failure only warns).
fn remove_shared_compile_image(plan: &Plan, metadata: &Value) {
    let Some(entry) = metadata.get(SHARED_COMPILE) else {
        return;
    };
    let untagged = entry
        .get("image.name")
        .and_then(Value::as_str)
        .is_some_and(|name| name.starts_with("moby-dangling@"));
    let Some(digest) = entry.get("containerimage.digest").and_then(Value::as_str) else {
        return;
    };
    if !untagged {
        return;
    }
    let remove = docker::engine(
        plan.builder.as_ref(),
        vec!["image".into(), "rm".into(), digest.to_string()],
    );
    if let Err(err) = process::read(&remove) {
        eprintln!(
            "warning: the compile stages' untagged image {digest} stays in the engine ({err}); remove it with `{}`",
            remove.display()
        );
    }
}

/// What buildx says it built for a variant.
struct Built {
    digest: String,
    /// An image manifest (one platform) or an image index.
    media_type: Option<String>,
}

/// Pushes OCI archives by digest (docker driver); BuildKit already pushed otherwise.
fn push_archives(plan: &Plan, files: &RunFiles, results: &mut [VariantResult]) -> Result<()> {
    let root = project::project_root();
    for index in 0..results.len() {
        if results[index].pushed {
            continue; // resumed: an earlier run of this release pushed it
        }
        let variant = results[index].variant.clone();
        if let Some(invocation) = render::push_archive(plan, files, &variant) {
            let invocation = render::with_digest(&invocation, &variant, &results[index].digest);
            eprintln!("+ {}", invocation.display());
            let streamed = process::stream(&invocation.in_dir(&root))?;
            let (ok, log) = (streamed.success, streamed.log);
            if !ok {
                let pushed: Vec<String> = results
                    .iter()
                    .filter(|r| r.pushed)
                    .map(|r| r.image.clone())
                    .collect();
                bail!(
                    "pushing {variant} failed ({}); no tag of any variant was moved; already pushed untagged: {}",
                    log.lines().last().unwrap_or("no output").trim(),
                    if pushed.is_empty() { "none".to_string() } else { pushed.join(" ") }
                );
            }
            // What was pushed is known from the archive (digests preserved),
            // even if the registry fails right after.
            if let Ok(platforms) = archive_platforms(&root.join(files.oci_archive(&variant))) {
                results[index].platform_digests = platforms;
            }
        }
        results[index].pushed = true;
    }
    Ok(())
}

/// The platform images of the index an OCI archive holds: platform -> digest.
fn archive_platforms(archive: &std::path::Path) -> Result<BTreeMap<String, String>> {
    let member = |name: &str| tar::member(archive, name);
    let layout: Layout = serde_json::from_slice(&member("index.json")?)
        .with_context(|| format!("{} holds no OCI layout", archive.display()))?;
    let top = layout.manifests.first().context("an empty OCI layout")?;
    let index: Index = serde_json::from_slice(&member(&blob_path(&top.digest))?)
        .with_context(|| format!("{} holds no image index", archive.display()))?;
    Ok(index
        .images()
        .map(|image| (image.platform_name(), image.digest.clone()))
        .collect())
}

/// Moves the `ci-` tags of a pushed CI plan (no signature, no gate: CI
/// images are never deployed).
fn tag_ci(plan: &Plan, results: &mut [VariantResult]) -> Result<()> {
    for (variant, result) in plan.variants.iter().zip(results.iter_mut()) {
        let invocation = render::with_digest(
            &render::tag(plan, variant),
            &variant.variant,
            &result.digest,
        );
        process::run(&invocation).map_err(|err| {
            anyhow::anyhow!(
                "tagging {} failed ({err}); re-run to retry",
                variant.variant
            )
        })?;
        result.tagged = true;
    }
    Ok(())
}

/// Refuses to overwrite an immutable tag that already exists in the
/// registry, unless it already points at the digest the release record
/// holds for it (an earlier, interrupted promotion of this same release).
pub fn refuse_existing_tags(plan: &Plan, record: Option<&ReleaseRecord>) -> Result<()> {
    for reference in &plan.must_not_exist {
        let Some(digest) = registry::resolve_digest(reference)? else {
            continue;
        };
        let ours = record.is_some_and(|record| {
            record.variants.iter().any(|v| {
                v.digest == digest
                    && (v.tags.contains(reference) || v.immutable.contains(reference))
            })
        });
        if !ours {
            bail!(
                "{reference} already exists ({digest}): {}",
                plan.must_not_exist_because
            );
        }
    }
    Ok(())
}
