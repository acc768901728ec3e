//! `cargo xtask merge-release`: combines the part records of a release
//! built by several runners (`release-image --build-only --platform P
//! --part`, one per runner) into its release record, what sign, verify,
//! scan and promote read as they read the single-runner path's.
//!
//! The release is planned again from this checkout and the flags (the
//! parts are untrusted input), and the parts are checked against it and
//! each other before the registry is asked anything ([`crate::plan::merge`]);
//! then every part's index is read back and checked, and each variant's
//! merged index is pushed by digest, untagged ([`crate::ops::merge`]). A
//! re-run gives the same indexes and pushes nothing again. Nothing is signed
//! or tagged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::exec::RunOptions;
use crate::model::files;
use crate::model::names::Platform;
use crate::ops::merge::{self, How, Merged};
use crate::plan::merge::{MergePlan, Part};
use crate::plan::record::{PartRecord, ReleaseRecord};
use crate::plan::release::{self, ReleaseInputs, ReleaseRequest, DEFAULT_SBOM_GENERATOR};
use crate::plan::{recipe, BuildOptions, Plan, SigningRequest};
use crate::preflight::{self, Requirement};
use crate::report::{self, RunResult, VariantResult};
use crate::{context, project};

#[derive(Debug, Clone)]
pub struct MergeReleaseOptions {
    /// The part records, one per runner.
    pub parts: Vec<PathBuf>,
    /// The release record to write.
    pub record: PathBuf,
    /// The release the parts must be of, as release-image was asked for it:
    /// what it built (registry, name, variants, build args, binaries) ...
    pub build: BuildOptions,
    /// ... the platforms of the whole release ...
    pub platforms: Vec<Platform>,
    /// ... and what decides its tags.
    pub default_variant: String,
    pub force: bool,
    pub allow_any_ref: bool,
    pub run: RunOptions,
}

impl MergeReleaseOptions {
    /// The request release-image's build job planned the release with.
    fn request(&self) -> Result<ReleaseRequest> {
        Ok(ReleaseRequest {
            build: self.build.clone(),
            platforms: self.platforms.clone(),
            default_variant: self.default_variant.clone(),
            force: self.force,
            allow_any_ref: self.allow_any_ref,
            signing: SigningRequest::unsigned(),
            output_archive: false,
            build_only: true,
            sbom_generator: DEFAULT_SBOM_GENERATOR.parse()?,
        })
    }
}

pub fn run(options: MergeReleaseOptions) -> Result<()> {
    let parts = options
        .parts
        .iter()
        .map(|path| {
            Ok(Part {
                origin: path.display().to_string(),
                record: PartRecord::read(path)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let plan = release_plan(&options.request()?)?;
    // Every refusal of parts that disagree comes here, before the registry.
    let merge = crate::plan::merge::plan(&plan, &parts)?;
    if options.run.dry_run {
        return print_dry_run(&merge, &options);
    }
    preflight::check_all(&[
        Requirement::Docker,
        Requirement::Buildx,
        Requirement::Skopeo,
    ])?;
    let merged = merge::merge(&merge)?;
    let record = merged_record(&plan, &merge, &merged)?;
    files::write_atomically(&options.record, record.to_json())?;
    report::report(&result(&record), options.run.json)?;
    say_done(&options.record, &merge, &merged);
    Ok(())
}

/// The release the parts must be of, planned from this checkout as
/// `release-image --build-only` plans it (no builder: nothing is built).
fn release_plan(request: &ReleaseRequest) -> Result<Plan> {
    let root = project::project_root();
    let available = project::discover_variants(&root)?;
    let variants = project::select_variants(&available, &request.build.variants)?;
    recipe::check_build_arg_scopes(&request.build, &available)?;
    let context = context::gather(&root)?;
    let mut dockerfile_args = BTreeMap::new();
    for variant in &variants {
        dockerfile_args.insert(
            variant.clone(),
            project::build_arg_defaults(&root, variant)?,
        );
    }
    release::plan(&ReleaseInputs {
        args: request,
        available: &available,
        variants: &variants,
        context: &context,
        builder: None,
        dockerfile_args: &dockerfile_args,
    })
}

/// The release record of the merged indexes: today's, as the
/// single-runner path writes it, with how each platform was built.
fn merged_record(plan: &Plan, merge: &MergePlan, merged: &[Merged]) -> Result<ReleaseRecord> {
    let mut record = ReleaseRecord::for_plan(plan)?;
    for ((variant, planned), made) in merge.variants.iter().zip(&plan.variants).zip(merged) {
        record.record(
            ReleaseRecord::entry(
                plan,
                planned,
                &made.digest,
                variant.platform_digests.clone(),
            )
            .with_builds(variant.builds.clone()),
        );
    }
    Ok(record)
}

/// The merge as a run's result: the step outputs (`result`,
/// `platform-images`) and the job summary the later jobs read.
fn result(record: &ReleaseRecord) -> RunResult {
    let variants = record
        .variants
        .iter()
        .map(|recorded| VariantResult {
            variant: recorded.variant.clone(),
            image: recorded.image(&record.repository).to_string(),
            digest: recorded.digest.to_string(),
            media_type: Some("application/vnd.oci.image.index.v1+json".to_string()),
            platforms: record.platforms.iter().map(ToString::to_string).collect(),
            tags: recorded.tags.iter().map(ToString::to_string).collect(),
            pushed: true,
            signed: false,
            tagged: false,
            platform_digests: recorded.platform_digest_texts(),
            build_platforms: recorded
                .builds
                .iter()
                .map(|(platform, build)| (platform.to_string(), build.build_platform.to_string()))
                .collect(),
            sizes: BTreeMap::new(),
            build_seconds: 0.0,
        })
        .collect();
    RunResult {
        mode: crate::plan::Mode::Release,
        repository: record.repository.clone(),
        build_seconds: 0.0,
        variants,
    }
}

fn say_done(path: &Path, merge: &MergePlan, merged: &[Merged]) {
    for (variant, made) in merge.variants.iter().zip(merged) {
        let how = match made.how {
            How::PassThrough => "one part held every platform: its index as it is",
            How::Created => "merged and pushed by digest",
            How::Found => "merged; the registry held it already",
        };
        let builds: Vec<String> = variant
            .builds
            .iter()
            .map(|(platform, build)| build.describe(platform))
            .collect();
        eprintln!(
            "{}: {} ({how}; {})",
            made.variant,
            merge.repository.at(&made.digest),
            builds.join(", ")
        );
    }
    eprintln!(
        "release record written to {}: sign, gate and promote from it",
        path.display()
    );
}

/// The merge as `--dry-run` prints it (registry lookups included).
fn print_dry_run(merge: &MergePlan, options: &MergeReleaseOptions) -> Result<()> {
    let commands = merge::commands(merge);
    if options.run.json {
        let value = serde_json::json!({
            "merge": merge,
            "record": options.record.display().to_string(),
            "commands": commands,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "# the parts agree with each other and with this checkout's release; the release record goes to {}",
        options.record.display()
    );
    for variant in &merge.variants {
        if let Some(only) = variant.pass_through() {
            println!(
                "# {}: one part holds every platform, its index {} is the release's",
                variant.variant, only.index
            );
        }
    }
    for command in commands {
        println!("{}", command.display());
    }
    Ok(())
}
