//! `cargo xtask release-image`: gathers the facts (the git checkout, the
//! Dockerfiles' pinned bases, the builder), plans ([`crate::plan::release`])
//! and publishes in stages over one release record
//! ([`crate::plan::record`]):
//!
//! 1. build and push every variant by digest, untagged, and write the record;
//! 2. sign every digest;
//! 3. the gate: `verify` of every digest (and, with `--scanner`, the
//!    vulnerability scan of every platform);
//! 4. promote: the tags move, `latest` last, only when every variant passed
//!    (`promote.rs`, which runs the gate itself).
//!
//! `--build-only` stops after the first stage (the release workflow runs
//! the others in jobs of their own, from the record). A re-run resumes from
//! the record: what it holds, unchanged and still in the registry, is not
//! built again, and version tags an interrupted promotion moved onto its
//! digests are not refused. With `--part`, the build stage builds some of
//! the release's platforms (`--platform`: one runner's) and writes a part
//! record, which `merge-release` combines with the other runners'; a
//! re-run resumes from it the same way. Every record says how each
//! platform was built (the build platform, from its provenance).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::client::registry;
use crate::exec::{self, Resumed, RunOptions};
use crate::model::cosign::{CosignLine, CosignRun};
use crate::model::files;
use crate::model::names::Platform;
use crate::model::reference::ImageRef;
use crate::model::vulnerabilities::Policy;
use crate::ops::record::{self, RecordExpectation};
use crate::ops::{builder, gate, promote, scan, sign};
use crate::plan::record::ReleaseRecord;
use crate::plan::release::{self, ReleaseInputs, ReleaseRequest, ReleaseTags};
use crate::plan::{recipe, Plan, Signing};
use crate::preflight::{self, BuilderInfo, Requirement};
use crate::render::Pushed;
use crate::report::{self, RunResult};
use crate::{context, project, render};

#[derive(Debug, Clone)]
pub struct ReleaseImageOptions {
    pub request: ReleaseRequest,
    /// With `request.output_archive`: the directory the OCI archives go to.
    pub archive_dir: Option<PathBuf>,
    pub run: RunOptions,
    /// The release record to resume from and write; default: one per
    /// repository, version and commit under `target/xtask/releases/`.
    pub record: Option<PathBuf>,
    /// Also scan every platform image before the tags move, with this scanner.
    pub scanner: Option<String>,
    /// The buildx builder to build with (`docker buildx ls`); `None`: the current one.
    pub builder: Option<String>,
    /// Build a part of a release of these platforms (`request.platforms`:
    /// the part's) and write a part record; `None`: the whole release.
    pub part: Option<Vec<Platform>>,
}

pub fn run(options: ReleaseImageOptions) -> Result<()> {
    let args = &options.request;
    let root = project::project_root();
    let available = project::discover_variants(&root)?;
    let variants = project::select_variants(&available, &args.build.variants)?;
    recipe::check_build_arg_scopes(&args.build, &available)?;
    if let Some(release) = &options.part {
        refuse_part(&args.platforms, release, args.build_only)?;
    }
    let context = context::gather(&root)?;
    let mut dockerfile_args = BTreeMap::new();
    for variant in &variants {
        dockerfile_args.insert(
            variant.clone(),
            project::build_arg_defaults(&root, variant)?,
        );
    }
    let (selected, builder) = select_builder(&options)?;
    let selection = builder::selection(selected.as_ref());
    let plan = release::plan(&ReleaseInputs {
        args,
        available: &available,
        variants: &variants,
        context: &context,
        builder: builder.as_ref(),
        dockerfile_args: &dockerfile_args,
    })?
    .on_builder(selection);
    if !plan.pushes() {
        // An archive for rebuild-check: no record, no stages.
        return exec::run_plan(&plan, &options.run, options.archive_dir.clone());
    }
    if let Some(scanner) = &options.scanner {
        if options.request.build_only {
            bail!("--scanner belongs to the gate, which --build-only does not run: scan with `cargo xtask scan --record FILE`");
        }
        if !options.run.dry_run {
            preflight::check(&Requirement::Scanner(scanner.clone()))?;
        }
    }
    let explicit = options.record.is_some();
    let part = options.part.as_deref();
    let path = options
        .record
        .clone()
        .unwrap_or_else(|| record::default_record_path(&root, &plan, &context.git.revision, part));
    let record = record::earlier_record(&plan, &path, explicit, part)?;
    let resumed = record::resumable(&plan, record.as_ref(), options.run.dry_run)?;
    Stages {
        plan: &plan,
        options: &options,
        path: &path,
        revision: &context.git.revision,
        predicted: builder::predicted_build_platforms(
            selected.as_ref(),
            &context.native_platform,
            &args.platforms,
        ),
    }
    .run(record, resumed)
}

/// The builder the run was asked for (`--builder`), and the one it builds
/// with as the planner takes it: the builder decides how pushing works (the
/// docker driver cannot push by digest); a dry run without an engine plans
/// for an unknown one.
fn select_builder(
    options: &ReleaseImageOptions,
) -> Result<(Option<builder::Selected>, Option<BuilderInfo>)> {
    let platforms = &options.request.platforms;
    let selected = match options.builder.as_deref() {
        Some(name) => builder::select(Some(name), platforms)?,
        None => None,
    };
    let selection = builder::selection(selected.as_ref());
    let builder = match &selected {
        Some(selected) => {
            if !options.run.dry_run {
                preflight::check_on(&Requirement::Engine, selection.as_ref())?;
            }
            Some(selected.info())
        }
        None if options.run.dry_run => preflight::builder_info().ok(),
        None => {
            preflight::check_all(&[
                Requirement::Docker,
                Requirement::Buildx,
                Requirement::Engine,
            ])?;
            Some(preflight::builder_info()?)
        }
    };
    Ok((selected, builder))
}

/// A part is some of the release's platforms, built and pushed only.
fn refuse_part(built: &[Platform], release: &[Platform], build_only: bool) -> Result<()> {
    if !build_only {
        bail!("--part builds one runner's platforms of a release, which merge-release combines before anything is signed: add --build-only");
    }
    if let Some(stray) = built.iter().find(|p| !release.contains(p)) {
        let names: Vec<String> = release.iter().map(ToString::to_string).collect();
        bail!(
            "--platform {stray} is not a platform of the release (--part {}): build some of the release's platforms",
            names.join(",")
        );
    }
    Ok(())
}

/// One run of the stages, in order.
struct Stages<'a> {
    plan: &'a Plan,
    options: &'a ReleaseImageOptions,
    path: &'a Path,
    revision: &'a str,
    /// Where each platform is to be built (what a record says when the
    /// provenance does not).
    predicted: BTreeMap<Platform, Platform>,
}

impl Stages<'_> {
    fn run(&self, record: Option<ReleaseRecord>, resumed: BTreeMap<String, Resumed>) -> Result<()> {
        let plan = self.plan;
        let run_files = exec::run_files(plan, self.options.run.dry_run, None);
        if self.options.run.dry_run {
            return self.print_dry_run(&run_files, &resumed);
        }
        preflight::check_all_on(&plan.preflight, plan.builder.as_ref())?;
        // Refusals first: a run that is refused prints its one line only.
        exec::refuse_existing_tags(plan, record.as_ref())?;
        exec::say_builder(plan);
        let dir = project::project_root().join(&run_files.dir);
        let cosign = self.prepare_signing(&dir)?;
        for warning in &plan.warnings {
            eprintln!("warning: {warning}");
        }
        if !resumed.is_empty() {
            let names: Vec<&str> = resumed.keys().map(String::as_str).collect();
            eprintln!(
                "resuming from the release record {}: {} already pushed; not rebuilt",
                self.path.display(),
                names.join(", ")
            );
        }
        files::create_dir_all(&dir.join("oci"))?;
        let outcome = self.stages(&run_files, cosign.as_ref(), record, &resumed);
        let _ = std::fs::remove_dir_all(&dir);
        let (result, failure) = outcome?;
        report::report(&result, self.options.run.json)?;
        failure.map_or(Ok(()), Err)
    }

    /// The signing setup in the run's directory, before anything is built:
    /// a signing config that cannot sign as asked is refused here. `None`
    /// when nothing is signed.
    fn prepare_signing(&self, dir: &Path) -> Result<Option<CosignRun>> {
        if self.plan.signing == Signing::None {
            return Ok(None);
        }
        let config = self.options.request.signing.signing_config.as_deref();
        sign::prepare(&self.plan.signing, config, dir)
            .map(Some)
            .inspect_err(|_| {
                let _ = std::fs::remove_dir_all(dir);
            })
    }

    /// The signing stage as a dry run prints it, the cosign setup the gate
    /// is rendered with, and what to say about the cosign it assumed.
    fn dry_run_signing(
        &self,
        files: &render::RunFiles,
        resumed: &BTreeMap<String, Resumed>,
    ) -> Result<(Vec<render::Invocation>, CosignRun, Option<String>)> {
        let plan = self.plan;
        let (cosign, note) = match plan.signing {
            Signing::None => (CosignRun::new(CosignLine::V3, &files.dir), None),
            _ => sign::dry_run(
                &plan.signing,
                self.options.request.signing.signing_config.as_deref(),
                &files.dir,
            )?,
        };
        let pushed = pushed_of(resumed);
        let references: Vec<ImageRef> = plan
            .variants
            .iter()
            .map(|v| pushed.index(plan, &v.variant))
            .collect();
        let mut commands = render::sign_preparation(&plan.signing, &cosign);
        commands.extend(render::commands(render::signatures(
            &plan.signing,
            &cosign,
            &references,
        )));
        Ok((commands, cosign, note))
    }

    /// Build, sign, gate, promote; the result says how far each variant
    /// got, also when a stage failed.
    fn stages(
        &self,
        run_files: &render::RunFiles,
        cosign: Option<&CosignRun>,
        record: Option<ReleaseRecord>,
        resumed: &BTreeMap<String, Resumed>,
    ) -> Result<(RunResult, Option<anyhow::Error>)> {
        let (mut result, record, failure) = self.build_and_record(run_files, record, resumed)?;
        if failure.is_some() {
            return Ok((result, failure));
        }
        let path = self.path.display();
        if self.options.part.is_some() {
            eprintln!("part record written to {path}: merge it with the other runners' (cargo xtask merge-release --part FILE --part FILE --record FILE), then sign, gate and promote");
            return Ok((result, None));
        }
        if self.options.request.build_only {
            eprintln!("release record written to {path}: sign, gate and promote from it");
            return Ok((result, None));
        }
        let failure = self.publish(run_files, cosign, &record, &mut result).err();
        Ok((result, failure))
    }

    /// Builds what the record does not hold, pushes it by digest and writes
    /// the record (whole or not at all, also when a push failed: a re-run
    /// resumes from it). A failure after the build comes back beside them.
    fn build_and_record(
        &self,
        run_files: &render::RunFiles,
        record: Option<ReleaseRecord>,
        resumed: &BTreeMap<String, Resumed>,
    ) -> Result<(RunResult, ReleaseRecord, Option<anyhow::Error>)> {
        let plan = self.plan;
        let path = self.path.display().to_string();
        let (result, failure) = exec::execute(plan, run_files, resumed)?;
        let mut record = match record {
            Some(record) => record,
            None => ReleaseRecord::for_plan(plan)?,
        };
        self.record_pushed(&mut record, &result, resumed)?;
        record::write(self.path, &record, self.options.part.as_deref())?;
        if let Some(err) = failure {
            let err = anyhow::anyhow!(
                "{err:#}; the release record {path} keeps what was pushed: a re-run resumes from it"
            );
            return Ok((result, record, Some(err)));
        }
        let unread: Vec<&str> = result
            .variants
            .iter()
            .filter(|v| v.platform_digests.is_empty())
            .map(|v| v.variant.as_str())
            .collect();
        let failure = (!unread.is_empty()).then(|| anyhow::anyhow!(
            "{} pushed, but could not be read back from the registry; no tag was moved; re-run to resume from {path}",
            unread.join(", ")
        ));
        Ok((result, record, failure))
    }

    /// Records each variant this run pushed, with how each of its platforms
    /// was built (read from its provenance); resumed ones are recorded already.
    fn record_pushed(
        &self,
        record: &mut ReleaseRecord,
        result: &RunResult,
        resumed: &BTreeMap<String, Resumed>,
    ) -> Result<()> {
        let plan = self.plan;
        for (variant, pushed) in plan.variants.iter().zip(&result.variants) {
            if !pushed.pushed || pushed.platform_digests.is_empty() {
                continue;
            }
            if resumed.contains_key(&variant.variant) && record.variant(&variant.variant).is_some()
            {
                continue;
            }
            let platform_digests = pushed
                .platform_digests
                .iter()
                .map(|(platform, digest)| Ok((platform.clone(), digest.parse()?)))
                .collect::<Result<_>>()?;
            let digest = pushed.digest.parse()?;
            let builds = builder::read_builds(
                &plan.repository.at(&digest),
                &variant.policy.platforms,
                &self.predicted,
            );
            record.record(
                ReleaseRecord::entry(plan, variant, &digest, platform_digests).with_builds(builds),
            );
        }
        Ok(())
    }

    /// Signs every recorded digest, runs the gate (and the scan) and only
    /// then moves the tags; `result` says how far it got.
    fn publish(
        &self,
        run_files: &render::RunFiles,
        cosign: Option<&CosignRun>,
        record: &ReleaseRecord,
        result: &mut RunResult,
    ) -> Result<()> {
        let plan = self.plan;
        let path = self.path.display().to_string();
        if let Some(cosign) = cosign {
            let references: Vec<ImageRef> = record
                .variants
                .iter()
                .map(|v| v.image(&record.repository))
                .collect();
            sign::sign_references(&plan.signing, cosign, &references).map_err(|err| {
                anyhow::anyhow!(
                    "{err:#}; re-run release-image (it resumes from {path}, nothing is rebuilt) or `cargo xtask sign --record {path}`"
                )
            })?;
            for variant in result.variants.iter_mut() {
                variant.signed = true;
            }
        }
        let rerun = format!(
            "fix the cause, then re-run release-image (it resumes from the record {path}; nothing is rebuilt)"
        );
        if let Some(scanner) = &self.options.scanner {
            let targets = scan::record_targets(record, &[]);
            scan::scan_all(scanner, &targets, &Policy::production())
                .map_err(|err| anyhow::anyhow!("{err:#}; the record {path} is kept: {rerun}"))?;
        }
        let (signer, platforms) = match &plan.gate {
            Some(gate) => (gate.signer.as_ref(), gate.platforms.as_slice()),
            None => (None, &[][..]),
        };
        let check = gate::prepare_signer(signer, &project::project_root().join(&run_files.dir))?;
        promote::promote(
            record,
            &path,
            &RecordExpectation {
                repository: plan.repository.clone(),
                commit: Some(self.revision.to_string()),
                complete: true,
            },
            &ReleaseTags::of_plan(plan),
            check.as_ref(),
            platforms,
            &rerun,
        )?;
        for variant in result.variants.iter_mut() {
            variant.tagged = true;
        }
        Ok(())
    }

    /// Every stage as `--dry-run` prints it: the checks, the build of what
    /// the record does not hold, the signatures, the gate, and only then the
    /// tag moves, `latest` last; the record's digests where it has them,
    /// placeholders for what a run would push.
    fn dry_run_stages(
        &self,
        files: &render::RunFiles,
        resumed: &BTreeMap<String, Resumed>,
    ) -> Result<(DryRunStages, Option<String>)> {
        let plan = self.plan;
        let pushed = pushed_of(resumed);
        let mut to_build = plan.clone();
        to_build
            .variants
            .retain(|v| !resumed.contains_key(&v.variant));
        let mut build: Vec<render::Invocation> = resumed
            .values()
            .map(|earlier| registry::inspect_command(&plan.repository.at(&earlier.digest)))
            .collect();
        if to_build.variants.is_empty() {
            build.extend(render::lookups(plan));
        } else {
            build.extend(render::build_stage(&to_build, files, &pushed));
        }
        let mut stages = vec![(
            "build and push by digest, then write the release record",
            build,
        )];
        if self.options.request.build_only {
            return Ok((stages, None));
        }
        let (signing, cosign, note) = self.dry_run_signing(files, resumed)?;
        stages.push(("sign every digest", signing));
        let mut gate = render::gate(plan, &cosign, &pushed);
        if let Some(scanner) = &self.options.scanner {
            for variant in &plan.variants {
                for platform in &variant.policy.platforms {
                    let digest = pushed.platform(&variant.variant, platform);
                    gate.push(scan::command(
                        scanner,
                        &Policy::production(),
                        &plan.repository.at(&digest),
                    ));
                }
            }
        }
        stages.push((
            "the gate: nothing is tagged unless every variant passes",
            gate,
        ));
        let moves = render::commands(render::plan_tag_moves(plan, &pushed)).collect();
        stages.push(("promote: the tags move, latest last", moves));
        Ok((stages, note))
    }

    /// What `--dry-run` promises: every stage's commands, exactly (text, or
    /// JSON with the plan).
    fn print_dry_run(
        &self,
        files: &render::RunFiles,
        resumed: &BTreeMap<String, Resumed>,
    ) -> Result<()> {
        let plan = self.plan;
        let (stages, note) = self.dry_run_stages(files, resumed)?;
        if self.options.run.json {
            let stages: Vec<serde_json::Value> = stages
                .iter()
                .map(|(stage, commands)| serde_json::json!({"stage": stage, "commands": commands}))
                .collect();
            let value = serde_json::json!({
                "plan": plan,
                "record": self.path.display().to_string(),
                "resumed": resumed.keys().collect::<Vec<_>>(),
                "stages": stages,
            });
            println!("{}", serde_json::to_string_pretty(&value)?);
            return Ok(());
        }
        exec::print_dry_run_head(plan);
        if let Some(note) = note {
            println!("# {note}");
        }
        match &self.options.part {
            Some(release) => {
                let names: Vec<String> = release.iter().map(ToString::to_string).collect();
                println!(
                    "# part record (a part of a release of {}; merge-release combines the parts): {}",
                    names.join(","),
                    self.path.display()
                );
            }
            None => println!("# release record: {}", self.path.display()),
        }
        if !resumed.is_empty() {
            let names: Vec<&str> = resumed.keys().map(String::as_str).collect();
            println!(
                "# resumes from it: {} already pushed (looked up, not rebuilt)",
                names.join(", ")
            );
        }
        for (stage, commands) in &stages {
            println!("# stage: {stage}");
            for command in commands {
                println!("{}", command.display());
            }
        }
        Ok(())
    }
}

/// A dry run's stages: what each does, and its commands.
type DryRunStages = Vec<(&'static str, Vec<render::Invocation>)>;

/// What the record holds of a release, as the stages after the build name
/// it (what a run would push is named by placeholders).
fn pushed_of(resumed: &BTreeMap<String, Resumed>) -> Pushed {
    let mut pushed = Pushed::default();
    for (variant, earlier) in resumed {
        pushed
            .indexes
            .insert(variant.clone(), earlier.digest.clone());
        pushed
            .platforms
            .insert(variant.clone(), earlier.platform_digests.clone());
    }
    pushed
}
