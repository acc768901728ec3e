//! The executor: runs a rendered plan and reads the results back from
//! buildx's metadata file. Publishing is all-or-nothing: images are pushed by
//! digest, untagged; they are signed by digest; only when every variant has
//! got that far do the tags move.
//!
//! Every run keeps its files in a directory of its own (`render::RunFiles`),
//! so two runs in one checkout (two terminals, `make -j`) never share one.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use serde_json::Value;

use crate::model::{build_log, files, registry};
use crate::plan::{Output, Plan, Signing};
use crate::render::{self, Invocation, RunFiles};
use crate::report::{report, RunResult, VariantResult};
use crate::{preflight, project};

/// How a plan is run: for real or as a dry run, reporting as text or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunOptions {
    pub dry_run: bool,
    pub json: bool,
}

/// Prints what `--dry-run` promises: every check and command, exactly.
pub fn print_dry_run(plan: &Plan, files: &RunFiles, json: bool) -> Result<()> {
    if json {
        let value = serde_json::json!({ "plan": plan, "commands": render::all(plan, files) });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    for warning in &plan.warnings {
        println!("# warning: {warning}");
    }
    let checks: Vec<String> = plan.preflight.iter().map(|r| format!("{r:?}")).collect();
    println!("# checks first: {}", checks.join(", "));
    if !plan.must_not_exist.is_empty() {
        println!(
            "# refuses if any of these tags exists: {}",
            plan.must_not_exist.join(" ")
        );
    }
    let resumable = remembered(plan);
    if !resumable.is_empty() {
        println!("# an earlier run of this same plan pushed some variants; they are looked up first and, if present, not rebuilt:");
        for published in resumable.values() {
            let reference = format!("{}@{}", plan.repository, published.digest);
            println!("{}", registry::inspect_command(&reference).display());
        }
    }
    for command in render::all(plan, files) {
        println!("{}", command.display());
    }
    Ok(())
}

/// Runs a plan (or prints it, for a dry run). `archives`: where OCI archives
/// go when they are the result (`Output::Archive`).
pub fn run_plan(plan: &Plan, options: &RunOptions, archives: Option<PathBuf>) -> Result<()> {
    let root = project::project_root();
    // A dry run names the directory a run would get; its id is chosen when it runs.
    let id = if options.dry_run {
        "<run>".to_string()
    } else {
        files::unique_suffix()
    };
    let mut run_files = RunFiles::new(plan, &id);
    run_files.archives = archives;
    if options.dry_run {
        return print_dry_run(plan, &run_files, options.json);
    }
    preflight::check_all(&plan.preflight)?;
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    refuse_existing_tags(plan)?;
    let dir = root.join(&run_files.dir);
    files::create_dir_all(&dir.join("oci"))?;
    let outcome = execute(plan, &run_files);
    // The run's files are its own and go with it (archives asked for stay).
    let _ = std::fs::remove_dir_all(&dir);
    let (result, failure) = outcome?;
    // The result is reported even when a step after the build failed, so the
    // JSON and the job summary say what was pushed, signed and tagged.
    report(&result, options.json)?;
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Runs the build and, for pushed plans, pushing, signing and tagging.
/// A build failure is an error; a failure after it comes back beside the
/// result, which then says how far each variant got.
pub fn execute(plan: &Plan, files: &RunFiles) -> Result<(RunResult, Option<anyhow::Error>)> {
    // A re-run of a publish that failed half-way does not rebuild what the
    // earlier run already pushed (and signed): it picks up from there.
    let resumed = if plan.pushes() {
        resumable(plan)
    } else {
        BTreeMap::new()
    };
    let mut to_build = plan.clone();
    to_build
        .variants
        .retain(|v| !resumed.contains_key(&v.variant));
    if !resumed.is_empty() {
        let names: Vec<&str> = resumed.keys().map(String::as_str).collect();
        eprintln!(
            "resuming: {} already pushed by an earlier run of this same plan; not rebuilt",
            names.join(", ")
        );
    }
    let started = Instant::now();
    let mut built = if to_build.variants.is_empty() {
        BTreeMap::new()
    } else {
        build(&to_build, files)?
    };
    let build_seconds = started.elapsed().as_secs_f64();
    for (variant, published) in &resumed {
        built.insert(
            variant.clone(),
            Built {
                digest: published.digest.clone(),
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
                    Output::Load => v.policy.tags.first().cloned().unwrap_or_default(),
                    Output::PushByDigest(_) => format!("{}@{digest}", plan.repository),
                    Output::Archive => files.oci_archive(&v.variant).display().to_string(),
                },
                digest,
                media_type,
                platforms: v.policy.platforms.iter().map(ToString::to_string).collect(),
                tags: v.policy.tags.clone(),
                pushed: resumed.contains_key(&v.variant),
                signed: resumed.get(&v.variant).is_some_and(|p| p.signed),
                tagged: plan.output == Output::Load,
                platform_digests: BTreeMap::new(),
                sizes: BTreeMap::new(),
                build_seconds,
            }
        })
        .collect();
    let mut failure = None;
    if plan.pushes() {
        failure = push_archives(plan, files, &mut results)
            .and_then(|()| sign_all(plan, &mut results))
            .and_then(|()| tag_all(plan, &mut results))
            .err();
    }
    if plan.pushes() {
        remember(plan, &results, failure.is_none());
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

/// What an unfinished publish left in the registry, per variant.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct Published {
    digest: String,
    signed: bool,
}

/// Kept between runs while a publish is unfinished: which variants of which
/// plan are pushed and signed. The plan itself is the key, so a different
/// commit, variant set, tag or option never resumes anything.
#[derive(Debug, Serialize, serde::Deserialize)]
struct PublishState {
    plan: Value,
    variants: BTreeMap<String, Published>,
}

/// Shared by the runs of one checkout on purpose (a re-run resumes from it);
/// written atomically, and keyed by the whole plan.
fn state_file(plan: &Plan) -> PathBuf {
    let command = match plan.mode {
        crate::plan::Mode::Ci => "ci-image",
        crate::plan::Mode::Release => "release-image",
    };
    project::project_root().join(format!("target/xtask/{command}-unfinished.json"))
}

/// What an earlier, unfinished run of this exact plan says it pushed.
fn remembered(plan: &Plan) -> BTreeMap<String, Published> {
    let Ok(text) = std::fs::read_to_string(state_file(plan)) else {
        return BTreeMap::new();
    };
    let Ok(state) = serde_json::from_str::<PublishState>(&text) else {
        return BTreeMap::new();
    };
    if serde_json::to_value(plan).ok().as_ref() != Some(&state.plan) {
        return BTreeMap::new();
    }
    state.variants
}

/// The variants an earlier, unfinished run of this exact plan pushed, that
/// are still in the registry.
fn resumable(plan: &Plan) -> BTreeMap<String, Published> {
    remembered(plan)
        .into_iter()
        .filter(|(_, published)| {
            let reference = format!("{}@{}", plan.repository, published.digest);
            matches!(registry::resolve_digest(&reference), Ok(Some(digest)) if digest == published.digest)
        })
        .collect()
}

/// Records an unfinished publish for the next run, or forgets a finished one.
fn remember(plan: &Plan, results: &[VariantResult], finished: bool) {
    let path = state_file(plan);
    if finished {
        let _ = std::fs::remove_file(&path);
        return;
    }
    let variants = results
        .iter()
        .filter(|r| r.pushed)
        .map(|r| {
            (
                r.variant.clone(),
                Published {
                    digest: r.digest.clone(),
                    signed: r.signed,
                },
            )
        })
        .collect();
    if let Ok(plan) = serde_json::to_value(plan) {
        if let Ok(text) = serde_json::to_string_pretty(&PublishState { plan, variants }) {
            if let Err(err) = files::write_atomically(&path, &text) {
                eprintln!("warning: a re-run cannot resume this publish: {err:#}");
            }
        }
    }
}

/// Per-platform image digests and sizes, for the report. Best effort: a
/// lookup that fails leaves them unknown rather than failing a finished
/// build. A loaded CI image's size is looked up only for a GitHub job summary
/// (it would add to every local build's time for nobody).
fn platform_details(plan: &Plan, result: &mut VariantResult) {
    match plan.output {
        Output::PushByDigest(_) if result.pushed => {
            let Ok(Some(fetched)) = registry::fetch(&result.image) else {
                return;
            };
            let Some(index) = fetched.document.as_index() else {
                return;
            };
            for image in index.images() {
                let platform = image.platform_name();
                let reference = format!("{}@{}", plan.repository, image.digest);
                if let Ok(Some(manifest)) = registry::fetch(&reference) {
                    if let Some(manifest) = manifest.document.as_manifest() {
                        result
                            .sizes
                            .insert(platform.clone(), manifest.stored_size());
                    }
                }
                result
                    .platform_digests
                    .insert(platform, image.digest.clone());
            }
        }
        Output::Load if std::env::var_os("GITHUB_STEP_SUMMARY").is_some() => {
            let format = "{{.Size}}";
            let size = duct::cmd!(
                "docker",
                "image",
                "inspect",
                "--format",
                format,
                &result.image
            )
            .stderr_null()
            .read();
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
    let invocation = render::build(plan, files);
    eprintln!(
        "+ {}",
        invocation.display().lines().next().unwrap_or_default()
    );
    let (ok, log) = stream(&invocation, &root)?;
    if !ok {
        let mut failed = failed_variants(&log, &plan.variant_names());
        // A one-target bake does not prefix its steps with the target's name.
        if failed.is_empty() && plan.variants.len() == 1 {
            failed.push(plan.variants[0].variant.clone());
        }
        let which = if failed.is_empty() {
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

/// What buildx says it built for a variant.
struct Built {
    digest: String,
    /// An image manifest (one platform) or an image index.
    media_type: Option<String>,
}

/// Runs a long-lived command, echoing its output to stderr as it comes and
/// keeping it for diagnosis. Returns (succeeded, output).
pub fn stream(invocation: &Invocation, dir: &std::path::Path) -> Result<(bool, String)> {
    let mut expression = duct::cmd(&invocation.program, &invocation.args)
        .dir(dir)
        .stderr_to_stdout()
        .unchecked();
    if let Some(stdin) = &invocation.stdin {
        expression = expression.stdin_bytes(stdin.as_bytes().to_vec());
    }
    let reader = expression
        .reader()
        .with_context(|| format!("cannot start {}", invocation.program))?;
    let mut log = String::new();
    let mut lines = BufReader::new(&reader);
    let mut line = String::new();
    while lines.read_line(&mut line)? > 0 {
        eprint!("{line}");
        log.push_str(&line);
        line.clear();
    }
    let status = reader
        .try_wait()?
        .map(|output| output.status.success())
        .unwrap_or(false);
    Ok((status, log))
}

/// Which variants a failed bake names: buildx prints `ERROR: target NAME: ...`
/// and the failing step as `> [NAME stage n/m] ...`.
pub fn failed_variants(log: &str, variants: &[&str]) -> Vec<String> {
    let mut failed = Vec::new();
    for line in log.lines() {
        let named = line
            .split_once("target ")
            .filter(|_| line.contains("ERROR"))
            .map(|(_, rest)| rest.split(':').next().unwrap_or_default().trim())
            .or_else(|| {
                line.trim_start()
                    .strip_prefix("> [")
                    .and_then(|rest| rest.split_whitespace().next())
            });
        if let Some(name) = named.map(|n| n.trim_end_matches(']')) {
            if variants.contains(&name) && !failed.iter().any(|f| f == name) {
                failed.push(name.to_string());
            }
        }
    }
    failed
}

pub fn run_one(invocation: &Invocation) -> Result<()> {
    // A registry's transient server error (distribution 2.8 answers 500 to a
    // tag read while the same tag is being written) gets two more tries;
    // anything else fails at once.
    const ATTEMPTS: u32 = 3;
    for attempt in 1..=ATTEMPTS {
        eprintln!("+ {}", invocation.display());
        let output = duct::cmd(&invocation.program, &invocation.args)
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()?;
        if output.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let transient = [
            "500 Internal Server Error",
            "502 Bad Gateway",
            "503 Service Unavailable",
        ]
        .iter()
        .any(|status| text.contains(status));
        if !transient || attempt == ATTEMPTS {
            bail!(
                "{} failed: {}",
                invocation.program,
                text.lines().last().unwrap_or("no output").trim()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(500 * u64::from(attempt)));
    }
    Ok(())
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
            let (ok, log) = stream(&invocation, &root)?;
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
        }
        results[index].pushed = true;
    }
    Ok(())
}

fn sign_all(plan: &Plan, results: &mut [VariantResult]) -> Result<()> {
    if plan.signing == Signing::None {
        return Ok(());
    }
    let mut failure = None;
    for result in results.iter_mut().filter(|r| !r.signed) {
        let Some(invocation) = render::sign(plan, &result.variant) else {
            continue;
        };
        match run_one(&render::with_digest(
            &invocation,
            &result.variant,
            &result.digest,
        )) {
            Ok(()) => result.signed = true,
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    if let Some(err) = failure {
        let unsigned: Vec<String> = results
            .iter()
            .filter(|r| !r.signed)
            .map(|r| r.image.clone())
            .collect();
        bail!(
            "signing failed ({err}); no tag was moved; pushed but unsigned: {}; fix the cause and re-run `cargo xtask sign` on them (or the same release)",
            unsigned.join(" ")
        );
    }
    Ok(())
}

fn tag_all(plan: &Plan, results: &mut [VariantResult]) -> Result<()> {
    // The one step a registry cannot make atomic across variants: it runs last,
    // after everything that can fail slowly, and a failure says exactly how
    // to finish (the digests are pushed and signed already).
    let invocations: Vec<Invocation> = plan
        .variants
        .iter()
        .zip(results.iter())
        .map(|(variant, result)| {
            render::with_digest(
                &render::tag(plan, variant),
                &variant.variant,
                &result.digest,
            )
        })
        .collect();
    for (index, invocation) in invocations.iter().enumerate() {
        if let Err(err) = run_one(invocation) {
            let done: Vec<&str> = results[..index]
                .iter()
                .map(|r| r.variant.as_str())
                .collect();
            let remaining: Vec<String> = invocations[index..]
                .iter()
                .map(Invocation::display)
                .collect();
            bail!(
                "tagging {} failed ({err}); tagged already: {}; every digest is pushed and signed, so finish with: {}",
                results[index].variant,
                if done.is_empty() { "none".to_string() } else { done.join(", ") },
                remaining.join(" && ")
            );
        }
        results[index].tagged = true;
    }
    Ok(())
}

/// Refuses to overwrite an immutable tag that already exists in the registry.
fn refuse_existing_tags(plan: &Plan) -> Result<()> {
    for reference in &plan.must_not_exist {
        if let Some(digest) = registry::resolve_digest(reference)? {
            bail!("{reference} already exists ({digest}): release tags are immutable; bump the version, or pass --force to overwrite it");
        }
    }
    Ok(())
}
