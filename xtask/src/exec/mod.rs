//! The executor: runs a rendered plan and reads the results back from
//! buildx's metadata file and the registry: the build (`build.rs`), then
//! each later stage's steps through one loop (`stage.rs`, [`run_steps`]).
//! A release is published in stages over one record
//! (`commands/release_image.rs`): build and push by digest, sign, the gate,
//! and only then the tag moves, `latest` last; what the stages share above
//! this layer (the record against the registry, signing by digest, the
//! gate, the promotion) is `ops`.
//!
//! Every run keeps its files in a directory of its own (`render::RunFiles`),
//! so two runs in one checkout (two terminals, `make -j`) never share one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

mod build;
mod stage;

use anyhow::{bail, Result};

use crate::client::{docker, process, registry};
use crate::model::cosign::CosignLine;
use crate::model::files;
use crate::model::reference::Digest;
use crate::plan::record::ReleaseRecord;
use crate::plan::{Mode, Output, Plan};
use crate::render::{self, RunFiles};
use crate::report::{report, RunResult, VariantResult};
use crate::{preflight, project};

use self::build::{build, Built};
use self::stage::{push_archives, tag_ci};
pub use self::stage::{run_steps, Stopped};

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
                build_platforms: BTreeMap::new(),
                sizes: BTreeMap::new(),
                build_seconds,
            }
        })
        .collect();
    let mut failure = None;
    if plan.pushes() {
        failure = push_archives(&to_build, files, &mut results).err();
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
