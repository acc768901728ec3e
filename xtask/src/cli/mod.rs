//! The command line, the top layer: every clap type of the crate lives
//! here. Each value is parsed once, by clap's value parsers, into the
//! model's types (a registry, an image reference, a platform, a build
//! argument, a duration, a count); a bad one is clap's one-line error. Each
//! subcommand's flags are converted once into the options type of the task
//! it runs (`ci_image::CiImageOptions`, ...), and each subcommand offers
//! only the flags its task honours. Nothing below this module knows clap.
//!
//! `build.rs`: `ci-image` and `release-image`; `stages.rs`: the stages over
//! a release record and the image checks (`merge-release`, `sign`, `verify`,
//! `scan`, `promote`, `rebuild-check`); `tools.rs`: everything else.

mod build;
mod stages;
mod tools;

use std::str::FromStr;

use anyhow::Result;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};

use crate::commands::{
    bench, ci_image, lint, merge_release, promote, prune, rebuild_check, release_image, scan, sign,
    stand_ins, test_task, update_bases, variants, verify,
};

pub use self::build::{BuildArgs, CacheArgs, CiImageArgs, ReleaseImageArgs, SigningArgs, TagArgs};
pub use self::stages::{
    MergeReleaseArgs, PromoteArgs, RebuildCheckArgs, RecordNaming, ScanArgs, SignArgs, SignerArgs,
    VerifyArgs, VerifyNaming,
};
pub use self::tools::{
    BenchArgs, LintArgs, PruneArgs, StandInsArgs, TestArgs, UpdateBasesArgs, VariantsArgs,
};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, publish, verify and prune the beacon container images"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build CI images: one platform, debug tools, loaded locally or pushed to ephemeral ci- tags.
    CiImage(CiImageArgs),
    /// Build, push, sign and attest multi-platform production images.
    ReleaseImage(ReleaseImageArgs),
    /// Merge the part records of a release built by several runners (one per platform) into
    /// its release record: one index per variant holding every platform, pushed by digest.
    MergeRelease(MergeReleaseArgs),
    /// Sign pushed digests: every variant of a release record, or IMAGE@DIGEST arguments.
    Sign(SignArgs),
    /// Deploy gate: fail unless IMAGE (or every variant of a release record) is a signed, attested, multi-platform production image.
    Verify(VerifyArgs),
    /// Scan every platform image of a release record (or one image) by digest; fail on fixable HIGH/CRITICAL vulnerabilities.
    Scan(ScanArgs),
    /// Move a release record's tags (latest last), after running the gate on every digest itself.
    Promote(PromoteArgs),
    /// Rebuild a published release from its commit and compare the digests, per platform.
    RebuildCheck(RebuildCheckArgs),
    /// Delete expired ci- images (never anything a non-ci tag points to); --cache: closed or expired PR caches.
    PruneCiImages(PruneArgs),
    /// Build stand-in base images into a local registry, and static host binaries.
    StandIns(StandInsArgs),
    /// Re-resolve every pinned image (ARG NAME=IMAGE:TAG@sha256:... in images/*/Dockerfile and images/*.Dockerfile) and rewrite the pins whose tag moved.
    UpdateBases(UpdateBasesArgs),
    /// Measure the split's promises side by side on this machine (see docs/performance.md).
    Bench(BenchArgs),
    /// Run the linters: clippy, rustfmt, actionlint, zizmor, hadolint, shellcheck.
    Lint(LintArgs),
    /// Run the whole test suite (unit, CLI and end-to-end against a real engine).
    Test(TestArgs),
    /// List the image variants (every images/<variant>/Dockerfile); --json: one array, a workflow matrix.
    Variants(VariantsArgs),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::CiImage(args) => ci_image::run(args.into_options()),
        Command::ReleaseImage(args) => release_image::run(args.into_options()),
        Command::MergeRelease(args) => merge_release::run(args.into_options()),
        Command::Sign(args) => sign::run(args.into_options()),
        Command::Verify(args) => verify::run(args.into_options()),
        Command::Scan(args) => scan::run(args.into_options()),
        Command::Promote(args) => promote::run(args.into_options()),
        Command::PruneCiImages(args) => prune::run(args.into_options()),
        Command::StandIns(args) => stand_ins::run(args.into_options()),
        Command::UpdateBases(args) => update_bases::run(args.into_options()),
        Command::Lint(args) => lint::run(args.into_options()),
        Command::RebuildCheck(args) => rebuild_check::run(args.into_options()),
        Command::Bench(args) => bench::run(args.into_options()),
        Command::Test(args) => test_task::run(args.into_options()),
        Command::Variants(args) => variants::run(args.into_options()),
    }
}

/// A flag whose value is one of `names`, parsed into the lower layer's own
/// type (its `FromStr`), so clap lists the possible values in help and errors.
fn one_of<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: FromStr<Err = anyhow::Error> + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names)
        .try_map(|text: String| text.parse::<T>().map_err(|e| e.to_string()))
}
