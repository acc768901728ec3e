//! The flags of the two build commands: `ci-image` and `release-image`
//! share what is built and how a run reports ([`BuildArgs`]); each names
//! its images its own way, and only `ci-image` has a build cache
//! ([`CacheArgs`]: a release reads and writes none).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::one_of;
use crate::commands::{ci_image, release_image};
use crate::exec::RunOptions;
use crate::model::build_arg::BuildArg;
use crate::model::names::{Platform, Platforms};
use crate::model::reference::{ImageName, ImageRef, Registry};
use crate::plan::cache::{CacheBackend, CacheMode};
use crate::plan::ci::CiRequest;
use crate::plan::release::{ReleaseRequest, DEFAULT_SBOM_GENERATOR};
use crate::plan::{BuildOptions, SignMethod, SigningRequest, DEFAULT_PLATFORMS};

/// What `ci-image` and `release-image` both build, and how a run reports.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Variant to build (repeatable); default: every directory under images/.
    #[arg(long = "variant", value_name = "NAME")]
    pub variants: Vec<String>,

    /// Extra build argument (repeatable): KEY=VALUE for every variant, VARIANT:KEY=VALUE for one,
    /// e.g. --build-arg ubi9:PRODUCTION_BASE=mirror.example/ubi-micro:9@sha256:...
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<BuildArg>,

    /// Use host-built binaries from DIR (DIR/linux-amd64/beacon, ...) instead of the
    /// compile stage, so no builder image is needed (`cargo xtask stand-ins --binaries-only` builds them).
    #[arg(long, value_name = "DIR")]
    pub binaries: Option<PathBuf>,

    /// Build every step again instead of reusing the build cache.
    #[arg(long)]
    pub no_cache: bool,

    /// The buildx builder to build with (one `docker buildx ls` lists); default: the current
    /// one. A `docker`-driver builder of another docker context is used through its engine:
    /// every engine command of the run becomes `docker --context CONTEXT ...`.
    #[arg(long, value_name = "NAME")]
    pub builder: Option<String>,

    /// Print every command that would run (registry lookups included), and run nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the plan (with --dry-run) or the result as JSON on stdout; logs go to stderr.
    #[arg(long)]
    pub json: bool,
}

impl BuildArgs {
    fn options(&self, registry: Option<Registry>, image_name: ImageName) -> BuildOptions {
        BuildOptions {
            variants: self.variants.clone(),
            registry,
            image_name,
            build_args: self.build_args.clone(),
            binaries: self.binaries.clone(),
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

/// The build cache of `ci-image` (a release reads and writes none).
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Cache backend; default: gha in GitHub Actions, none elsewhere (the engine's own cache still applies).
    #[arg(long, value_parser = one_of::<CacheBackend>(CacheBackend::NAMES))]
    pub cache: Option<CacheBackend>,

    /// What the build writes to the cache; default: max on the default branch and locally, min on pull requests.
    #[arg(long, value_parser = one_of::<CacheMode>(CacheMode::NAMES))]
    pub cache_mode: Option<CacheMode>,

    /// Directory of the `local` cache backend.
    #[arg(long, value_name = "DIR", default_value = "target/buildx-cache")]
    pub cache_dir: PathBuf,
}

/// `--platform` of `ci-image`: exactly one platform.
fn one_platform(text: &str) -> Result<Platform> {
    match text.parse::<Platforms>()?.into_vec().as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "ci-image builds exactly one platform, got {text:?}: pass one, e.g. --platform linux/amd64 (release-image builds several)"
        ),
    }
}

#[derive(Debug, Clone, Args)]
pub struct CiImageArgs {
    /// Registry and namespace the images are named under, e.g. ghcr.io/acme or 127.0.0.1:5000.
    /// Default: ghcr.io/<owner> in GitHub Actions, `localhost` elsewhere (loadable, never
    /// pushed: --push needs a registry).
    #[arg(long, env = "IMAGE_REGISTRY", value_name = "REGISTRY")]
    pub registry: Option<Registry>,

    /// Image name under the registry.
    #[arg(
        long,
        env = "IMAGE_NAME",
        default_value = "beacon",
        value_name = "NAME"
    )]
    pub image_name: ImageName,

    #[command(flatten)]
    pub build: BuildArgs,

    #[command(flatten)]
    pub cache: CacheArgs,

    /// Platform to build for; default: this machine's native Linux platform.
    #[arg(long, value_name = "OS/ARCH", value_parser = one_platform)]
    pub platform: Option<Platform>,

    /// Push to the ephemeral ci- tags instead of loading into the local engine.
    #[arg(long)]
    pub push: bool,

    /// Offline machines: first build (or reuse) the stand-ins of `cargo xtask
    /// stand-ins` in the registry REGISTRY, and build against them and the
    /// host-built binaries instead of the public bases. CI images only.
    #[arg(long, value_name = "REGISTRY", num_args = 0..=1, default_missing_value = "127.0.0.1:5000")]
    pub stand_ins: Option<Registry>,

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
                build: self.build.options(self.registry, self.image_name),
                platform: self.platform,
                push: self.push,
                stand_ins: self.stand_ins.is_some(),
                cache: self.cache.cache,
                cache_mode: self.cache.cache_mode,
                cache_dir: self.cache.cache_dir,
            },
            stand_ins_registry: self.stand_ins,
            host_build: self.host_build,
            builder: self.build.builder.clone(),
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

    /// cosign 3: sign through this Sigstore signing config (a private Sigstore
    /// deployment; `cosign signing-config create`) instead of the public-good
    /// services (keyless, --tlog) or none (a key).
    #[arg(long, value_name = "FILE")]
    pub signing_config: Option<PathBuf>,
}

impl SigningArgs {
    pub(super) fn request(&self) -> SigningRequest {
        SigningRequest {
            method: self.sign,
            key: self.key.clone(),
            tlog: self.tlog,
            signing_config: self.signing_config.clone(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ReleaseImageArgs {
    /// Registry and namespace to publish to, e.g. ghcr.io/acme or 127.0.0.1:5000.
    /// Default: ghcr.io/<owner> in GitHub Actions; required elsewhere.
    #[arg(long, env = "IMAGE_REGISTRY", value_name = "REGISTRY")]
    pub registry: Option<Registry>,

    /// Image name under the registry.
    #[arg(
        long,
        env = "IMAGE_NAME",
        default_value = "beacon",
        value_name = "NAME"
    )]
    pub image_name: ImageName,

    #[command(flatten)]
    pub build: BuildArgs,

    /// Platforms of each image index.
    #[arg(long, value_name = "OS/ARCH,...", default_value = DEFAULT_PLATFORMS)]
    pub platform: Platforms,

    #[command(flatten)]
    pub tags: TagArgs,

    #[command(flatten)]
    pub signing: SigningArgs,

    /// Export OCI archives into DIR and publish nothing: no push, no
    /// signature, no tag (what `rebuild-check` compares against a release).
    #[arg(long, value_name = "DIR", hide = true)]
    pub output_archive: Option<PathBuf>,

    /// SBOM generator image (BuildKit's SBOM scanning protocol), e.g. a mirror of the default.
    #[arg(long, env = "SBOM_GENERATOR", default_value = DEFAULT_SBOM_GENERATOR, value_name = "IMAGE")]
    pub sbom_generator: ImageRef,

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

    /// With --build-only: build one runner's part of a release of RELEASE_PLATFORMS (default
    /// linux/amd64,linux/arm64): the --platform ones, and write a part record (--record) that
    /// `cargo xtask merge-release` combines with the other runners' into the release record.
    #[arg(long, value_name = "RELEASE_PLATFORMS", num_args = 0..=1, default_missing_value = DEFAULT_PLATFORMS, requires = "build_only")]
    pub part: Option<Platforms>,
}

impl ReleaseImageArgs {
    pub fn into_options(self) -> release_image::ReleaseImageOptions {
        release_image::ReleaseImageOptions {
            request: ReleaseRequest {
                build: self.build.options(self.registry, self.image_name),
                platforms: self.platform.into_vec(),
                default_variant: self.tags.default_variant,
                force: self.tags.force,
                allow_any_ref: self.tags.allow_any_ref,
                signing: self.signing.request(),
                output_archive: self.output_archive.is_some(),
                build_only: self.build_only,
                sbom_generator: self.sbom_generator,
            },
            archive_dir: self.output_archive,
            run: self.build.run_options(),
            record: self.record,
            scanner: self.scanner,
            builder: self.build.builder.clone(),
            part: self.part.map(Platforms::into_vec),
        }
    }
}

/// What decides a release's tags beside its ref: `release-image` writes
/// them, `promote` derives them again (a release record is untrusted).
#[derive(Debug, Clone, Args)]
pub struct TagArgs {
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
}
