//! The command line: one subcommand per task, each in a file of its own.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    bench, ci_image, lint, prune, rebuild_check, release_image, sign, stand_ins, test_task, verify,
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
    CiImage(ci_image::CiImageArgs),
    /// Build, push, sign and attest multi-platform production images.
    ReleaseImage(release_image::ReleaseImageArgs),
    /// Sign pushed digests (completes a release whose signing step failed).
    Sign(sign::SignArgs),
    /// Deploy gate: fail unless IMAGE is a signed, attested, multi-platform production image.
    Verify(verify::VerifyArgs),
    /// Rebuild a published release from its commit and compare the digests, per platform.
    RebuildCheck(rebuild_check::RebuildCheckArgs),
    /// Delete expired ci- images (never anything a non-ci tag points to); --cache: closed or expired PR caches.
    PruneCiImages(prune::PruneArgs),
    /// Build stand-in base images into a local registry, and static host binaries.
    StandIns(stand_ins::StandInsArgs),
    /// Measure the split's promises side by side on this machine (see README: Performance).
    Bench(bench::BenchArgs),
    /// Run the linters: clippy, rustfmt, actionlint, zizmor, hadolint, shellcheck.
    Lint(lint::LintArgs),
    /// Run the whole test suite (unit, CLI and end-to-end against a real engine).
    Test(test_task::TestArgs),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::CiImage(args) => ci_image::run(args),
        Command::ReleaseImage(args) => release_image::run(args),
        Command::Sign(args) => sign::run(args),
        Command::Verify(args) => verify::run(args),
        Command::PruneCiImages(args) => prune::run(args),
        Command::StandIns(args) => stand_ins::run(args),
        Command::Lint(args) => lint::run(args),
        Command::RebuildCheck(args) => rebuild_check::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Test(args) => test_task::run(args),
    }
}

/// Options shared by `ci-image` and `release-image`.
#[derive(Debug, Clone, Args)]
pub struct BuildOptions {
    /// Variant to build (repeatable); default: every directory under images/.
    #[arg(long = "variant", value_name = "NAME")]
    pub variants: Vec<String>,

    /// Registry and namespace the images are named under, e.g. ghcr.io/acme or 127.0.0.1:5000.
    /// Default: ghcr.io/<owner> in GitHub Actions, `localhost` elsewhere.
    #[arg(long, env = "IMAGE_REGISTRY", value_name = "REGISTRY")]
    pub registry: Option<String>,

    /// Image name under the registry.
    #[arg(
        long,
        env = "IMAGE_NAME",
        default_value = "beacon",
        value_name = "NAME"
    )]
    pub image_name: String,

    /// Extra build argument (repeatable): KEY=VALUE for every variant, VARIANT:KEY=VALUE for one,
    /// e.g. --build-arg ubi9:PRODUCTION_BASE=mirror.example/ubi-micro:9@sha256:...
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,

    /// Use host-built binaries from DIR (DIR/linux-amd64/beacon, ...) instead of the
    /// compile stage, so no builder image is needed (`cargo xtask stand-ins --binaries-only` builds them).
    #[arg(long, value_name = "DIR")]
    pub binaries: Option<PathBuf>,

    /// Cache backend; default: gha in GitHub Actions, none elsewhere (the engine's own cache still applies).
    #[arg(long, value_enum)]
    pub cache: Option<CacheBackend>,

    /// What the build writes to the cache; default: max on the default branch and locally, min on pull requests.
    #[arg(long, value_enum)]
    pub cache_mode: Option<CacheMode>,

    /// Directory of the `local` cache backend.
    #[arg(long, value_name = "DIR", default_value = "target/buildx-cache")]
    pub cache_dir: PathBuf,

    /// Build every step again instead of reusing the build cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Print exactly what would run, and run nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the plan (with --dry-run) or the result as JSON on stdout; logs go to stderr.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheBackend {
    Gha,
    Registry,
    Local,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheMode {
    /// Export every intermediate layer (best hit rate, slowest export).
    Max,
    /// Export only the final image's layers.
    Min,
    /// Read the cache, write nothing.
    ReadOnly,
}
