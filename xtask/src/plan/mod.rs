//! The typed plan: everything a run will do, as data, before anything runs.
//!
//! A plan is computed by a pure function of (mode, variants, git and CI
//! context, options): [`ci::plan`] and [`release::plan`], with the shared
//! [`recipe`] and the [`cache`] policy. It is rendered into commands by
//! `render` and run by `exec`. Nothing here runs a command.
//!
//! Each variant's plan is split in two on purpose: the [`Recipe`] says *what*
//! is built and is identical for the CI and the release path of a variant
//! (a test checks it); the [`Policy`] says *how* it is built and published,
//! and is the only place the two paths differ.

pub mod admission;
pub mod cache;
pub mod ci;
pub mod gate;
pub mod merge;
pub mod rebuild;
pub mod recipe;
pub mod record;
pub mod release;
pub mod shared_compile;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::build_arg::BuildArg;
use crate::model::builder::Selection;
use crate::model::names::Platform;
use crate::model::reference::{ImageName, ImageRef, Registry, Repository};
use crate::preflight::{BuilderInfo, Requirement};

/// The platforms of a production image index, and what the deploy gate requires.
pub const DEFAULT_PLATFORMS: &str = "linux/amd64,linux/arm64";

/// What both `ci-image` and `release-image` are asked to build, as the
/// user said it (the command line converts its flags into this once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// Variants to build; empty: every directory under images/.
    pub variants: Vec<String>,
    /// Registry and namespace, e.g. ghcr.io/acme; `None`: the default.
    pub registry: Option<Registry>,
    pub image_name: ImageName,
    /// `KEY=VALUE` or `VARIANT:KEY=VALUE`.
    pub build_args: Vec<BuildArg>,
    /// Host-built binaries instead of the compile file's.
    pub binaries: Option<PathBuf>,
    pub no_cache: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Ci,
    Release,
}

/// The final stage a Dockerfile builds, selected by the `IMAGE_FLAVOR` build arg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    /// The vendor's base with debug tools (shell, curl/wget, netcat, dig/nslookup).
    Ci,
    /// The vendor's minimal base: no shell, no tools.
    Production,
}

impl Flavor {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Ci => "ci",
            Flavor::Production => "production",
        }
    }
}

/// The build arg that selects the final stage (and so the debug tools).
pub const FLAVOR_ARG: &str = "IMAGE_FLAVOR";
/// The build arg that selects the compile stage's cargo profile.
pub const PROFILE_ARG: &str = "CARGO_PROFILE";
/// The build arg that lists the architectures the compile stage builds
/// (space-separated): those of the build's platforms, so that every platform
/// shares one compile (see images/compile-service.sh).
pub const TARGET_ARCHES_ARG: &str = "TARGET_ARCHES";
/// The named build context every variant's Dockerfile copies the
/// per-platform service binaries from (`/linux-ARCH/beacon`): the compile
/// file's result (`target:compile`) or host-built binaries (`--binaries`).
pub const BINARIES_CONTEXT: &str = "binaries";
/// The stage of the compile file (`project::COMPILE_DOCKERFILE`) that holds
/// its result, the binaries (`/linux-ARCH/beacon`).
pub const COMPILE_STAGE: &str = "binaries";
/// The stages of the compile file (a tidy test keeps this true): a failed
/// step of one is the compile's, whichever target's name BuildKit printed.
pub const COMPILE_STAGES: &[&str] = &[
    "fetch",
    "toolchain",
    "cargo-tools",
    "deps",
    "compile-tools-production",
    "compile-tools-ci",
    "compile",
    COMPILE_STAGE,
];
/// The build args the compile file reads that a user may set (a mirror's
/// builder image, the cross linker's versions, the tool's version); the
/// policy sets the others (`IMAGE_FLAVOR`, `CARGO_PROFILE`, `TARGET_ARCHES`,
/// `SOURCE_DATE_EPOCH`). A tidy test keeps this list equal to what the
/// compile file declares.
pub const COMPILE_STAGE_ARGS: &[&str] = &[
    "BUILDER_IMAGE",
    "CARGO_AUDITABLE_VERSION",
    "CROSS_APT_MIRROR",
    "CROSS_GCC_VERSION",
    "CROSS_LIBC_VERSION",
];
/// The license every image states (`org.opencontainers.image.licenses`).
pub const LICENSE: &str = "Apache-2.0";
/// Our own label namespace (the OCI spec defines only `org.opencontainers.*`
/// keys of its own; anything else of ours goes here).
pub const LABEL_NS: &str = "dev.beacon.image";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub mode: Mode,
    /// `REGISTRY/NAME`, e.g. `ghcr.io/acme/beacon`.
    pub repository: Repository,
    pub output: Output,
    pub variants: Vec<VariantPlan>,
    /// Release only: how pushed digests are signed.
    pub signing: Signing,
    /// Tags that must not exist yet in the registry: a version's own tag,
    /// and every tag of an `--allow-any-ref` run. Looked up before anything
    /// is built.
    pub must_not_exist: Vec<ImageRef>,
    /// Why those tags must not exist and the way out, said when one does.
    #[serde(default)]
    pub must_not_exist_because: String,
    /// What is checked before anything is built.
    pub preflight: Vec<Requirement>,
    /// What this plan cannot guarantee on this machine, said up front.
    pub warnings: Vec<String>,
    /// A published release: what its images must pass before any tag moves.
    pub gate: Option<gate::Gate>,
    /// The compile file built once, as a build of its own that every
    /// variant takes its binaries from (see [`shared_compile`]); `None` when
    /// the binaries are host-built (`--binaries`).
    #[serde(default)]
    pub shared_compile: Option<SharedCompile>,
    /// The builder the user selected (`--builder NAME`) and how every engine
    /// command of the run addresses it; `None`: the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder: Option<Selection>,
}

/// The compile file as a build of its own (a bake target every variant's
/// `binaries` context names), with a cache of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedCompile {
    /// `project::COMPILE_DOCKERFILE`.
    pub dockerfile: String,
    pub context: String,
    /// The [`COMPILE_STAGE_ARGS`] the variants set (the same for all of them).
    pub build_args: BTreeMap<String, String>,
    pub cache: CachePlan,
    /// Stages always built again (a release: [`COMPILE_STAGE`], see
    /// [`shared_compile`]).
    #[serde(default)]
    pub no_cache_stages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantPlan {
    pub variant: String,
    pub recipe: Recipe,
    pub policy: Policy,
}

/// What is built. Identical for the CI and release paths of a variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipe {
    pub dockerfile: String,
    pub context: String,
    /// Build args common to both paths (variant, revision, base overrides, user args).
    pub build_args: BTreeMap<String, String>,
    /// Named build contexts (host-built binaries).
    pub named_contexts: BTreeMap<String, String>,
}

/// How it is built and published. The only part that differs between paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub flavor: Flavor,
    pub platforms: Vec<Platform>,
    /// Tag references (`REPO:TAG`) pointed at the image once everything succeeded.
    pub tags: Vec<ImageRef>,
    pub labels: BTreeMap<String, String>,
    /// OCI annotations set on the image index and on every image manifest.
    pub annotations: BTreeMap<String, String>,
    pub attestations: Attestations,
    pub cache: CachePlan,
    /// SOURCE_DATE_EPOCH for the build (release: the commit time).
    pub source_date_epoch: Option<i64>,
    /// Rewrite layer timestamps to SOURCE_DATE_EPOCH (reproducible digests).
    pub rewrite_timestamp: bool,
    /// Build every step again instead of reusing the build cache.
    pub no_cache: bool,
    /// Stages always built again, never taken from the cache (release: the
    /// final stage, whose directories would otherwise keep the timestamps of
    /// whichever older build wrote the cache).
    pub no_cache_stages: Vec<String>,
    /// The cargo profile of the compile stage (`CARGO_PROFILE` build arg).
    pub cargo_profile: String,
}

impl Policy {
    /// The compile stage's targets (`TARGET_ARCHES` build arg): the
    /// architectures of the platforms, sorted, each once (so the order of
    /// `--platform` does not change the compile steps or their cache).
    pub fn target_arches(&self) -> String {
        let arches: std::collections::BTreeSet<&str> =
            self.platforms.iter().map(|p| p.arch.as_str()).collect();
        let arches: Vec<&str> = arches.into_iter().collect();
        arches.join(" ")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestations {
    /// `None` turns provenance off explicitly, `Some("max")` requests mode=max.
    pub provenance: Option<String>,
    /// `None` turns the SBOM off explicitly, `Some(generator)` requests one.
    pub sbom: Option<SbomRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbomRequest {
    /// The scanner image; `None` lets BuildKit use its default.
    pub generator: Option<ImageRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachePlan {
    /// Buildx `--cache-from` specs, own scope first, then the default branch's.
    pub from: Vec<String>,
    /// Buildx `--cache-to` specs (own scope only).
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "via", rename_all = "kebab-case")]
pub enum Output {
    /// Load into the local engine's image store.
    Load,
    /// Push by digest only, untagged; tags move once every variant succeeded.
    PushByDigest(PushVia),
    /// Export an OCI archive per variant and publish nothing (`rebuild-check`).
    Archive,
}

/// How an untagged push by digest happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PushVia {
    /// BuildKit pushes by digest itself (docker-container, kubernetes, remote drivers).
    Builder,
    /// The `docker` driver cannot push by digest: export an OCI archive (which
    /// also rewrites timestamps there), then `skopeo copy --preserve-digests`.
    OciArchive,
}

impl PushVia {
    /// The way the given builder can push by digest (unknown: assume BuildKit's own).
    pub fn for_builder(builder: Option<&BuilderInfo>) -> PushVia {
        match builder {
            Some(builder) if builder.driver == "docker" => PushVia::OciArchive,
            _ => PushVia::Builder,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Signing {
    None,
    /// `cosign sign --key KEY` (a file, or `env://VAR`, `k8s://...`, a KMS URI).
    Key {
        key: String,
        tlog_upload: bool,
    },
    /// Keyless with the CI's OIDC identity (GitHub Actions).
    Keyless,
}

/// How the user asked to sign: `auto` is keyless in GitHub Actions (OIDC)
/// and key-based elsewhere; `none` opts out explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMethod {
    Auto,
    Key,
    Keyless,
    None,
}

impl SignMethod {
    pub const NAMES: &'static [&'static str] = &["auto", "key", "keyless", "none"];
}

impl std::str::FromStr for SignMethod {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> anyhow::Result<SignMethod> {
        Ok(match text {
            "auto" => SignMethod::Auto,
            "key" => SignMethod::Key,
            "keyless" => SignMethod::Keyless,
            "none" => SignMethod::None,
            _ => anyhow::bail!(
                "unknown signing method {text:?}: expected one of {}",
                SignMethod::NAMES.join(", ")
            ),
        })
    }
}

/// The signing part of a request, shared by `release-image` and `sign`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningRequest {
    pub method: SignMethod,
    /// A key file, `env://VAR`, or a KMS URI.
    pub key: Option<String>,
    /// Upload key-based signatures to the transparency log.
    pub tlog: bool,
    /// cosign 3: the Sigstore signing config to sign through (a private
    /// Sigstore deployment's services) instead of the run's own or TUF's.
    pub signing_config: Option<PathBuf>,
}

impl SigningRequest {
    /// No signature: a build that signs nothing (`--build-only`, a part,
    /// the merge of parts).
    pub fn unsigned() -> SigningRequest {
        SigningRequest {
            method: SignMethod::None,
            key: None,
            tlog: false,
            signing_config: None,
        }
    }

    /// The signing identity to use, or why there is none.
    pub fn resolve(&self, context: &crate::context::BuildContext) -> anyhow::Result<Signing> {
        let key = || -> anyhow::Result<Signing> {
            match &self.key {
                Some(key) => Ok(Signing::Key {
                    key: key.clone(),
                    tlog_upload: self.tlog,
                }),
                None => anyhow::bail!(
                    "signing is on but there is no signing identity: pass --key FILE (make one with `cosign generate-key-pair`) \
                     or set COSIGN_KEY, run in GitHub Actions with `permissions: id-token: write` for keyless signing, or opt out with --sign none"
                ),
            }
        };
        match self.method {
            SignMethod::None => Ok(Signing::None),
            SignMethod::Key => key(),
            SignMethod::Keyless if context.ci.oidc_available => Ok(Signing::Keyless),
            SignMethod::Keyless => anyhow::bail!(
                "--sign keyless needs an OIDC identity, and none is available: in GitHub Actions grant `permissions: id-token: write`; elsewhere use --key"
            ),
            SignMethod::Auto if self.key.is_some() => key(),
            SignMethod::Auto if context.ci.oidc_available => Ok(Signing::Keyless),
            SignMethod::Auto => key(),
        }
    }
}

impl Signing {
    /// What must be present before signing this way.
    pub fn requirements(&self) -> Vec<Requirement> {
        let mut requirements = Vec::new();
        if *self != Signing::None {
            requirements.push(Requirement::Cosign);
        }
        if let Signing::Key { key, .. } = self {
            if !key.contains("://") {
                requirements.push(Requirement::SigningKeyFile(key.clone()));
            }
        }
        requirements
    }
}

impl Plan {
    /// The same plan, built with the selected builder (`--builder`).
    pub fn on_builder(self, builder: Option<Selection>) -> Plan {
        Plan { builder, ..self }
    }

    pub fn pushes(&self) -> bool {
        matches!(self.output, Output::PushByDigest(_))
    }

    pub fn variant_names(&self) -> Vec<&str> {
        self.variants.iter().map(|v| v.variant.as_str()).collect()
    }
}
