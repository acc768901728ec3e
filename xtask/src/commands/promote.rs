//! `cargo xtask promote --record FILE`: the last stage of a release, the
//! only one that moves tags. It trusts no earlier stage or job order: it
//! checks the record against the registry and this checkout, runs the
//! deploy gate itself on every digest (signature of the expected signer,
//! every platform, production labels, provenance and an SBOM for every
//! platform, provenance agreeing with the labels and with the record), and
//! refuses a version tag that exists on another digest. Only when every
//! variant passed do the tags move, `latest` last. A failure moves no tag,
//! names each variant and check that failed, and says how to finish or
//! abandon; a re-run (say, on a fresh runner) resumes from the same record:
//! version tags an interrupted run already moved onto the recorded digests
//! are not refused.

use std::path::PathBuf;

use anyhow::Result;

use crate::client::registry;
use crate::context::BuildContext;
use crate::model::cosign::CosignRun;
use crate::model::files::RunDir;
use crate::model::names::Platform;
use crate::model::reference::{Digest, ImageName, Registry};
use crate::ops::gate;
use crate::ops::promote::{promote, tag_moves};
use crate::ops::record::{self, RecordExpectation};
use crate::ops::sign;
use crate::plan::gate::{ExpectedSigner, SignerRequest};
use crate::plan::record::ReleaseRecord;
use crate::plan::release::{self, ReleaseTags, TagRequest, TagRules};
use crate::preflight;
use crate::{context, project, render};

#[derive(Debug, Clone)]
pub struct PromoteOptions {
    pub record: PathBuf,
    /// The repository the record must be a release to.
    pub registry: Option<Registry>,
    pub image_name: ImageName,
    pub signer: SignerRequest,
    /// Platforms every image must provide.
    pub platforms: Vec<Platform>,
    /// As release-image's: what decides the tags beside the ref.
    pub default_variant: String,
    pub force: bool,
    pub allow_any_ref: bool,
    /// Print what would be checked and moved, and run nothing.
    pub dry_run: bool,
}

/// The tags this release moves, derived again from the checkout's ref and
/// its release tags, for the record's variants (which must be on disk): the
/// record's own list is compared with them, never acted on.
fn derived_tags(
    args: &PromoteOptions,
    context: &BuildContext,
    record: &ReleaseRecord,
) -> Result<ReleaseTags> {
    let available = project::discover_variants(&project::project_root())?;
    release::check_default_variant(&args.default_variant, &available)?;
    context.check_release_event()?;
    let request = TagRequest {
        rules: TagRules {
            allow_any_ref: args.allow_any_ref,
            variants: &available,
            writes_tags: true,
        },
        default_variant: &args.default_variant,
        force: args.force,
    };
    let on_disk: Vec<String> = record
        .planned
        .iter()
        .filter(|v| available.contains(v))
        .cloned()
        .collect();
    release::release_tags(context, request, &record.repository, &on_disk)
}

pub fn run(args: PromoteOptions) -> Result<()> {
    let platforms = &args.platforms;
    let record = ReleaseRecord::read(&args.record)?;
    let signer = args.signer.resolve()?;
    let context = context::gather(&project::project_root())?;
    let repository =
        record::expected_repository(args.registry.as_ref(), &args.image_name, &context)?;
    let origin = args.record.display().to_string();
    let derived = derived_tags(&args, &context, &record)?;
    if args.dry_run {
        let (line, _, note) = sign::dry_run_line()?;
        if let Some(note) = note {
            println!("# {note}");
        }
        let run = CosignRun::new(line, RunDir::dry_run("promote"));
        print_dry_run(&record, &derived, Some(&signer), &run, platforms);
        return Ok(());
    }
    let requirements = signer.requirements();
    preflight::check_all(&requirements)?;
    let dir = RunDir::new(&project::project_root(), "promote");
    let check = gate::prepare_signer(Some(&signer), &dir.path)?;
    let rerun = format!(
        "fix the cause, then re-run `cargo xtask promote --record {origin}` (in the release workflow: Re-run failed jobs; the record stays valid)"
    );
    promote(
        &record,
        &origin,
        &RecordExpectation {
            repository,
            commit: Some(context.git.revision.clone()),
            complete: true,
        },
        &derived,
        check.as_ref(),
        platforms,
        &rerun,
    )?;
    for (variant, tags) in tag_moves(&record, &derived) {
        for tag in tags {
            println!("tagged {tag} -> {}", variant.image(&record.repository));
        }
    }
    Ok(())
}

/// What `--dry-run` promises: the gate of every recorded digest, then the
/// tag moves, `latest` last.
pub fn print_dry_run(
    record: &ReleaseRecord,
    derived: &ReleaseTags,
    signer: Option<&ExpectedSigner>,
    run: &CosignRun,
    platforms: &[Platform],
) {
    println!("# the record is checked against the registry first:");
    for variant in &record.variants {
        println!(
            "{}",
            registry::inspect_command(&variant.image(&record.repository)).display()
        );
    }
    println!("# the gate: nothing is tagged unless every variant passes");
    for variant in &record.variants {
        let references: Vec<Digest> = variant.platform_digests.values().cloned().collect();
        for command in
            render::gate_image(signer, run, &variant.image(&record.repository), &references)
        {
            println!("{}", command.display());
        }
    }
    let wanted: Vec<String> = platforms.iter().map(ToString::to_string).collect();
    println!("# every index must hold {}", wanted.join(", "));
    println!(
        "# the tags are derived from this checkout's ref and release tags (version {}); the record's must be the same",
        derived.version
    );
    for tags in derived.variants.values() {
        for tag in &tags.immutable {
            println!("{}", registry::inspect_command(tag).display());
        }
    }
    println!("# then the tags move, latest last:");
    for (variant, tags) in tag_moves(record, derived) {
        println!(
            "{}",
            render::tag_digest(&tags, &variant.image(&record.repository)).display()
        );
    }
}
