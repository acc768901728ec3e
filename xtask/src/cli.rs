//! The command line, the top layer: every clap type of the crate lives here,
//! and each subcommand's flags are converted once into the options type of
//! the task it runs (`ci_image::CiImageOptions`, ...). Nothing below this
//! module knows clap.

use std::path::PathBuf;

use std::str::FromStr;

use anyhow::Result;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

use crate::exec::RunOptions;
use crate::lint::Linter;
use crate::plan::admission::PolicyKind;
use crate::plan::cache::{CacheBackend, CacheMode};
use crate::plan::ci::CiRequest;
use crate::plan::gate::SignerRequest;
use crate::plan::release::{ReleaseRequest, DEFAULT_SBOM_GENERATOR};
use crate::plan::{BuildOptions, SignMethod, SigningRequest, DEFAULT_PLATFORMS};
use crate::{
    bench, ci_image, lint, promote, prune, rebuild_check, release_image, scan, sign, stand_ins,
    test_task, update_bases, verify,
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
    /// Measure the split's promises side by side on this machine (see README: Performance).
    Bench(BenchArgs),
    /// Run the linters: clippy, rustfmt, actionlint, zizmor, hadolint, shellcheck.
    Lint(LintArgs),
    /// Run the whole test suite (unit, CLI and end-to-end against a real engine).
    Test(TestArgs),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::CiImage(args) => ci_image::run(args.into_options()),
        Command::ReleaseImage(args) => release_image::run(args.into_options()),
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

/// Where images are named: the registry and namespace, and the name under
/// it (`ci-image`, `release-image`, and the stages that read a release record).
#[derive(Debug, Clone, Args)]
pub struct ImageArgs {
    /// Registry and namespace the images are named under, e.g. ghcr.io/acme or 127.0.0.1:5000.
    /// Default: ghcr.io/<owner> in GitHub Actions, `localhost` elsewhere (a stage reading a
    /// release record: the release's, which must match).
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
}

/// Options shared by `ci-image` and `release-image`.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Variant to build (repeatable); default: every directory under images/.
    #[arg(long = "variant", value_name = "NAME")]
    pub variants: Vec<String>,

    #[command(flatten)]
    pub image: ImageArgs,

    /// Extra build argument (repeatable): KEY=VALUE for every variant, VARIANT:KEY=VALUE for one,
    /// e.g. --build-arg ubi9:PRODUCTION_BASE=mirror.example/ubi-micro:9@sha256:...
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,

    /// Use host-built binaries from DIR (DIR/linux-amd64/beacon, ...) instead of the
    /// compile stage, so no builder image is needed (`cargo xtask stand-ins --binaries-only` builds them).
    #[arg(long, value_name = "DIR")]
    pub binaries: Option<PathBuf>,

    /// Cache backend; default: gha in GitHub Actions, none elsewhere (the engine's own cache still applies).
    #[arg(long, value_parser = one_of::<CacheBackend>(CacheBackend::NAMES))]
    pub cache: Option<CacheBackend>,

    /// What the build writes to the cache; default: max on the default branch and locally, min on pull requests.
    #[arg(long, value_parser = one_of::<CacheMode>(CacheMode::NAMES))]
    pub cache_mode: Option<CacheMode>,

    /// Directory of the `local` cache backend.
    #[arg(long, value_name = "DIR", default_value = "target/buildx-cache")]
    pub cache_dir: PathBuf,

    /// Build every step again instead of reusing the build cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Print every command that would run (registry lookups included), and run nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the plan (with --dry-run) or the result as JSON on stdout; logs go to stderr.
    #[arg(long)]
    pub json: bool,
}

impl BuildArgs {
    fn options(&self) -> BuildOptions {
        BuildOptions {
            variants: self.variants.clone(),
            registry: self.image.registry.clone(),
            image_name: self.image.image_name.clone(),
            build_args: self.build_args.clone(),
            binaries: self.binaries.clone(),
            cache: self.cache,
            cache_mode: self.cache_mode,
            cache_dir: self.cache_dir.clone(),
            no_cache: self.no_cache,
        }
    }

    fn run_options(&self) -> RunOptions {
        RunOptions {
            dry_run: self.dry_run,
            json: self.json,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct CiImageArgs {
    #[command(flatten)]
    pub build: BuildArgs,

    /// Platform to build for; default: this machine's native Linux platform.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,

    /// Push to the ephemeral ci- tags instead of loading into the local engine.
    #[arg(long)]
    pub push: bool,

    /// Offline machines: first build (or reuse) the stand-ins of `cargo xtask
    /// stand-ins` in the registry REGISTRY, and build against them and the
    /// host-built binaries instead of the public bases. CI images only.
    #[arg(long, value_name = "REGISTRY", num_args = 0..=1, default_missing_value = "127.0.0.1:5000")]
    pub stand_ins: Option<String>,

    /// Compile the service with this machine's cargo (the `ci` profile, static, into
    /// the cargo target directory: `CARGO_TARGET_DIR` or target/) and build the images
    /// from that binary instead of the compile stage: what ci-build.yml does, with
    /// rust-cache restoring the compiled dependencies. Linux only.
    #[arg(long, conflicts_with_all = ["binaries", "stand_ins"])]
    pub host_build: bool,
}

impl CiImageArgs {
    pub fn into_options(self) -> ci_image::CiImageOptions {
        ci_image::CiImageOptions {
            request: CiRequest {
                build: self.build.options(),
                platform: self.platform,
                push: self.push,
                stand_ins: self.stand_ins.is_some(),
            },
            stand_ins_registry: self.stand_ins,
            host_build: self.host_build,
            run: self.build.run_options(),
        }
    }
}

/// How to sign, shared by `release-image` and `sign`.
#[derive(Debug, Clone, Args)]
pub struct SigningArgs {
    /// How to sign: auto = keyless in GitHub Actions (OIDC), else with --key; none opts out.
    #[arg(long, default_value = "auto", value_parser = one_of::<SignMethod>(SignMethod::NAMES))]
    pub sign: SignMethod,

    /// Cosign key for key-based signing: a file, env://VAR, or a KMS URI.
    #[arg(long, env = "COSIGN_KEY", value_name = "KEY")]
    pub key: Option<String>,

    /// Upload key-based signatures to the public transparency log (keyless always does).
    #[arg(long)]
    pub tlog: bool,
}

impl SigningArgs {
    fn request(&self) -> SigningRequest {
        SigningRequest {
            method: self.sign,
            key: self.key.clone(),
            tlog: self.tlog,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ReleaseImageArgs {
    #[command(flatten)]
    pub build: BuildArgs,

    /// Platforms of each image index.
    #[arg(long, value_name = "OS/ARCH,...", default_value = DEFAULT_PLATFORMS)]
    pub platform: String,

    /// The variant that also gets the bare tags (1.2.3, latest, ...); `none` for no bare tags.
    #[arg(
        long,
        env = "DEFAULT_VARIANT",
        default_value = "chainguard",
        value_name = "NAME"
    )]
    pub default_variant: String,

    /// Overwrite version tags that already exist in the registry.
    #[arg(long)]
    pub force: bool,

    /// Release from a ref that is neither main nor a release tag vX.Y.Z.
    #[arg(long)]
    pub allow_any_ref: bool,

    #[command(flatten)]
    pub signing: SigningArgs,

    /// Export OCI archives into DIR and publish nothing: no push, no
    /// signature, no tag (what `rebuild-check` compares against a release).
    #[arg(long, value_name = "DIR", hide = true)]
    pub output_archive: Option<PathBuf>,

    /// SBOM generator image (BuildKit's SBOM scanning protocol), e.g. a mirror of the default.
    #[arg(long, env = "SBOM_GENERATOR", default_value = DEFAULT_SBOM_GENERATOR, value_name = "IMAGE")]
    pub sbom_generator: String,

    /// The release record: resumed from when it holds this release, written once the
    /// variants are pushed. Default: target/xtask/releases/<repository>-<version>-<commit>.json.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Stop once every variant is pushed by digest and recorded (sign, verify,
    /// scan and promote then run from the record, as the release workflow's jobs do).
    #[arg(long)]
    pub build_only: bool,

    /// Also scan every platform image before the tags move, with this scanner
    /// (trivy, or a program that takes its arguments and writes its JSON).
    #[arg(long, value_name = "PROGRAM")]
    pub scanner: Option<String>,
}

impl ReleaseImageArgs {
    pub fn into_options(self) -> release_image::ReleaseImageOptions {
        release_image::ReleaseImageOptions {
            request: ReleaseRequest {
                build: self.build.options(),
                platform: self.platform,
                default_variant: self.default_variant,
                force: self.force,
                allow_any_ref: self.allow_any_ref,
                signing: self.signing.request(),
                output_archive: self.output_archive.is_some(),
                build_only: self.build_only,
                sbom_generator: self.sbom_generator,
            },
            archive_dir: self.output_archive,
            run: self.build.run_options(),
            record: self.record,
            scanner: self.scanner,
        }
    }
}

/// The release record a stage reads, and the repository it must be a release to.
#[derive(Debug, Clone, Args)]
pub struct RecordArgs {
    /// The release record the build stage wrote (release-image --build-only --record FILE).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    // With --record: the registry and image name the release must be to (as release-image's).
    #[command(flatten)]
    pub image: ImageArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// Images to sign, by digest (REPO@sha256:...), as a failed release prints them; or --record.
    #[arg(value_name = "IMAGE@DIGEST", required_unless_present = "record")]
    pub images: Vec<String>,

    #[command(flatten)]
    pub record: RecordArgs,

    #[command(flatten)]
    pub signing: SigningArgs,

    /// Print the cosign commands instead of running them.
    #[arg(long)]
    pub dry_run: bool,
}

impl SignArgs {
    pub fn into_options(self) -> sign::SignOptions {
        sign::SignOptions {
            signing: self.signing.request(),
            images: self.images,
            record: self.record.record,
            registry: self.record.image.registry,
            image_name: self.record.image.image_name,
            dry_run: self.dry_run,
        }
    }
}

/// Who must have signed an image: one of --repository, --key, --certificate-identity-regexp.
#[derive(Debug, Clone, Args)]
pub struct SignerArgs {
    /// Keyless: the images must be signed by this repository's release workflow
    /// (.github/workflows/build-push.yml) on main or a release tag vX.Y.Z, triggered by a push.
    #[arg(long, value_name = "OWNER/REPO")]
    pub repository: Option<String>,

    /// The public key the images must be signed with (file, env://VAR or KMS URI).
    #[arg(long, env = "COSIGN_PUBLIC_KEY", value_name = "KEY")]
    pub key: Option<String>,

    /// Keyless, another signer: its identity as an anchored regexp (prefer --repository).
    #[arg(long, value_name = "REGEXP")]
    pub certificate_identity_regexp: Option<String>,

    /// Keyless: the OIDC issuer of the signer.
    #[arg(
        long,
        value_name = "URL",
        default_value = "https://token.actions.githubusercontent.com"
    )]
    pub certificate_oidc_issuer: String,

    /// Key-signed images were signed without the transparency log unless
    /// released with --tlog; pass --tlog to require a log entry.
    #[arg(long)]
    pub tlog: bool,
}

impl SignerArgs {
    fn request(&self) -> SignerRequest {
        SignerRequest {
            key: self.key.clone(),
            repository: self.repository.clone(),
            certificate_identity_regexp: self.certificate_identity_regexp.clone(),
            certificate_oidc_issuer: Some(self.certificate_oidc_issuer.clone()),
            tlog: self.tlog,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The image to check (tag or digest); or --record, or --policy.
    #[arg(value_name = "IMAGE", required_unless_present_any = ["record", "policy"])]
    pub image: Option<String>,

    /// Print an admission policy instead: a Kyverno ClusterPolicy or a sigstore policy-controller
    /// ClusterImagePolicy admitting only images of the repository (--registry/--image-name; default
    /// ghcr.io/<owner>/beacon with --repository) signed by the expected signer, by digest.
    #[arg(long, value_name = "KIND", conflicts_with_all = ["image", "record"], value_parser = one_of::<PolicyKind>(PolicyKind::NAMES))]
    pub policy: Option<PolicyKind>,

    #[command(flatten)]
    pub record: RecordArgs,

    #[command(flatten)]
    pub signer: SignerArgs,

    /// Platforms the image must provide.
    #[arg(long, value_name = "OS/ARCH,...", default_value = DEFAULT_PLATFORMS)]
    pub platform: String,
}

impl VerifyArgs {
    pub fn into_options(self) -> verify::VerifyOptions {
        verify::VerifyOptions {
            image: self.image,
            policy: self.policy,
            record: self.record.record,
            registry: self.record.image.registry,
            image_name: self.record.image.image_name,
            signer: self.signer.request(),
            platform: self.platform,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    /// One image to scan, by digest; or --record.
    #[arg(value_name = "IMAGE@DIGEST", required_unless_present = "record")]
    pub image: Option<String>,

    #[command(flatten)]
    pub record: RecordArgs,

    /// With --record: scan only this variant (repeatable); default: every variant.
    #[arg(long = "variant", value_name = "NAME")]
    pub variants: Vec<String>,

    /// The scanner: trivy, or a program that takes trivy's arguments and writes its JSON report.
    #[arg(long, value_name = "PROGRAM", default_value = scan::DEFAULT_SCANNER)]
    pub scanner: String,

    /// Print the scanner's command lines, and run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl ScanArgs {
    pub fn into_options(self) -> scan::ScanOptions {
        scan::ScanOptions {
            image: self.image,
            record: self.record.record,
            variants: self.variants,
            registry: self.record.image.registry,
            image_name: self.record.image.image_name,
            scanner: self.scanner,
            dry_run: self.dry_run,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct PromoteArgs {
    /// The release record the build stage wrote.
    #[arg(long, value_name = "FILE")]
    pub record: PathBuf,

    // The registry and image name the release must be to (as release-image's).
    #[command(flatten)]
    pub image: ImageArgs,

    #[command(flatten)]
    pub signer: SignerArgs,

    /// Platforms every image must provide.
    #[arg(long, value_name = "OS/ARCH,...", default_value = DEFAULT_PLATFORMS)]
    pub platform: String,

    /// Print the gate's checks and the tag moves, and run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl PromoteArgs {
    pub fn into_options(self) -> promote::PromoteOptions {
        promote::PromoteOptions {
            record: self.record,
            registry: self.image.registry,
            image_name: self.image.image_name,
            signer: self.signer.request(),
            platform: self.platform,
            dry_run: self.dry_run,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct RebuildCheckArgs {
    /// The published image (tag or digest).
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
}

impl RebuildCheckArgs {
    pub fn into_options(self) -> rebuild_check::RebuildCheckOptions {
        rebuild_check::RebuildCheckOptions {
            image: self.image,
            json: self.json,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// The repository to prune, REGISTRY/NAME, e.g. 127.0.0.1:5000/beacon (with --cache: its cache repository REGISTRY/NAME-buildcache).
    #[arg(long, value_name = "REG/NAME")]
    pub registry: String,

    /// Delete ci- images (with --cache: pull request and branch caches) older than this: 30m, 12h, 7d, 2w, or combined like 1d12h.
    #[arg(long, value_name = "DURATION")]
    pub older_than: String,

    /// Always keep the newest N ci- images of each variant, however old. Does not apply to --cache: caches are not ranked.
    #[arg(long, value_name = "N", default_value = "1")]
    pub keep: String,

    /// Prune the registry cache repository REG/NAME-buildcache instead of the ci- images: delete the
    /// caches of pull requests (<variant>-pr-<N>) and branches (<variant>-branch-<slug>) older than
    /// --older-than (by their newest layer) and, with --open-prs, those of pull requests that are not open;
    /// never <variant>-main (the default branch's), <variant>-local or any other tag, nor a digest they point to.
    #[arg(long)]
    pub cache: bool,

    /// With --cache: the pull requests still open, comma-separated (e.g. 12,15, or none); the cache of any
    /// other pull request is deleted whatever its age. Without it only age counts.
    #[arg(long, value_name = "N,N,...")]
    pub open_prs: Option<String>,

    /// Print what would be deleted and why, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the selection (and, without --dry-run, what was deleted) as JSON on stdout; logs go to stderr.
    #[arg(long)]
    pub json: bool,
}

impl PruneArgs {
    pub fn into_options(self) -> prune::PruneOptions {
        prune::PruneOptions {
            registry: self.registry,
            older_than: self.older_than,
            keep: self.keep,
            cache: self.cache,
            open_prs: self.open_prs,
            dry_run: self.dry_run,
            json: self.json,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct StandInsArgs {
    /// Registry to push the stand-ins to (a local one: nothing here is for production).
    #[arg(long, env = "XTASK_TEST_REGISTRY", default_value = "127.0.0.1:5000")]
    pub registry: String,

    /// Directory with busybox/{amd64,arm64}/busybox and syft/syft (as .ci/setup-stack leaves them).
    #[arg(long, env = "STAND_IN_INPUTS", default_value = stand_ins::DEFAULT_INPUTS)]
    pub inputs: PathBuf,

    /// Only build the host binaries.
    #[arg(long)]
    pub binaries_only: bool,
}

impl StandInsArgs {
    pub fn into_options(self) -> stand_ins::StandInsOptions {
        stand_ins::StandInsOptions {
            registry: self.registry,
            inputs: self.inputs,
            binaries_only: self.binaries_only,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct UpdateBasesArgs {
    /// Change nothing: list every pin whose tag now names another digest, and fail if there is one.
    #[arg(long)]
    pub check: bool,

    /// Look images under PREFIX up in MIRROR instead (repeatable; whole path components, the longest
    /// prefix wins), e.g. docker.io/library=registry.example/hub; the pins keep their names, so the
    /// mirror must hold the images by their own digests.
    #[arg(
        long = "mirror",
        env = "BASE_IMAGE_MIRRORS",
        value_delimiter = ',',
        value_name = "PREFIX=MIRROR"
    )]
    pub mirrors: Vec<String>,

    /// Print the registry lookups that would run, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl UpdateBasesArgs {
    pub fn into_options(self) -> update_bases::UpdateBasesOptions {
        update_bases::UpdateBasesOptions {
            check: self.check,
            dry_run: self.dry_run,
            mirrors: self.mirrors,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Repetitions per scenario; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,

    /// One repetition of every scenario on one variant, without the xtask cold
    /// compile and without emptying the engine (cold figures are then warm):
    /// proves the benchmark still works (the test suite runs it).
    #[arg(long)]
    pub smoke: bool,

    /// Local registry for the stand-ins, pushes and registry caches.
    #[arg(long, env = "XTASK_TEST_REGISTRY", default_value = "127.0.0.1:5000")]
    pub registry: String,

    /// Builder image for the compile stage (pinned by digest when resolved);
    /// `dockerfile` keeps the Dockerfile's own (needs network).
    #[arg(long, value_name = "IMAGE")]
    pub builder_image: Option<String>,

    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    pub fn into_options(self) -> bench::BenchOptions {
        bench::BenchOptions {
            repeat: self.repeat,
            smoke: self.smoke,
            registry: self.registry,
            builder_image: self.builder_image,
            json: self.json,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct LintArgs {
    /// Run only these linters (repeatable); default: all of them.
    #[arg(long = "only", value_name = "LINTER", value_parser = one_of::<Linter>(Linter::NAMES))]
    pub only: Vec<Linter>,

    /// Skip these linters (repeatable).
    #[arg(long = "skip", value_name = "LINTER", value_parser = one_of::<Linter>(Linter::NAMES))]
    pub skip: Vec<Linter>,

    /// First install the pinned external linters from PyPI into target/lint-tools
    /// (a Python virtual environment; needs python3 with venv). CI does this.
    #[arg(long)]
    pub install: bool,
}

impl LintArgs {
    pub fn into_options(self) -> lint::LintOptions {
        lint::LintOptions {
            only: self.only,
            skip: self.skip,
            install: self.install,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    /// Run only the tests that need no engine (unit, CLI, workflow and tidy tests).
    #[arg(long)]
    pub no_engine: bool,

    /// Extra arguments for `cargo test` (after --), e.g. a test name filter.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

impl TestArgs {
    pub fn into_options(self) -> test_task::TestOptions {
        test_task::TestOptions {
            no_engine: self.no_engine,
            cargo_args: self.cargo_args,
        }
    }
}
