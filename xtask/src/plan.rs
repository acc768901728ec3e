//! The typed plan: everything a run will do, as data, before anything runs.
//!
//! A plan is computed by a pure function of (mode, variants, git and CI
//! context, options): `ci_image::plan` and `release_image::plan`. It is
//! rendered into commands by `render.rs` and run by `exec.rs`.
//!
//! Each variant's plan is split in two on purpose: the [`Recipe`] says *what*
//! is built and is identical for the CI and the release path of a variant
//! (a test checks it); the [`Policy`] says *how* it is built and published,
//! and is the only place the two paths differ.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::Platform;

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
/// The named build context (a stage of every Dockerfile) that holds the
/// per-platform service binaries; replacing it skips the compile stage.
pub const BINARIES_CONTEXT: &str = "binaries";
/// Our own label namespace (the OCI spec defines only `org.opencontainers.*`
/// keys of its own; anything else of ours goes here).
pub const LABEL_NS: &str = "dev.beacon.image";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub mode: Mode,
    /// `REGISTRY/NAME`, e.g. `ghcr.io/acme/beacon`.
    pub repository: String,
    pub output: Output,
    pub variants: Vec<VariantPlan>,
    /// Release only: how pushed digests are signed.
    pub signing: Signing,
    /// Tags that must not exist yet in the registry (immutable version tags).
    pub must_not_exist: Vec<String>,
    /// What is checked before anything is built.
    pub preflight: Vec<Requirement>,
    /// What this plan cannot guarantee on this machine, said up front.
    pub warnings: Vec<String>,
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
    /// Named build contexts replacing stages (e.g. host-built binaries).
    pub named_contexts: BTreeMap<String, String>,
}

/// How it is built and published. The only part that differs between paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub flavor: Flavor,
    pub platforms: Vec<Platform>,
    /// Full references (`REPO:TAG`) pointed at the image once everything succeeded.
    pub tags: Vec<String>,
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
    pub generator: Option<String>,
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
    pub fn for_builder(builder: Option<&crate::preflight::BuilderInfo>) -> PushVia {
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

/// A prerequisite checked before anything is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Requirement {
    Docker,
    Buildx,
    Engine,
    /// The builder can build every one of these platforms.
    BuilderPlatforms(Vec<Platform>),
    Cosign,
    /// Pushes OCI archives by digest for the `docker` driver.
    Skopeo,
    /// The signing key exists (a file path).
    SigningKeyFile(String),
}

impl Plan {
    pub fn pushes(&self) -> bool {
        matches!(self.output, Output::PushByDigest(_))
    }

    pub fn variant_names(&self) -> Vec<&str> {
        self.variants.iter().map(|v| v.variant.as_str()).collect()
    }
}
