//! The CI plan: fast CI images. One platform, debug tools inside, loaded
//! into the local engine (or pushed to ephemeral `ci-` tags only), no
//! signing, no SBOM, no provenance, cached per variant.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;

use crate::context::{BuildContext, BuildRef};
use crate::model::names::Platform;
use crate::model::reference::{ImageRef, Repository};
use crate::model::tags::{CiTag, CiUnique};
use crate::plan::cache::{CacheBackend, CacheMode};
use crate::plan::{
    cache, recipe, shared_compile, Attestations, BuildOptions, Flavor, Mode, Output, Plan, Policy,
    PushVia, Signing, VariantPlan, LABEL_NS, LICENSE,
};
use crate::preflight::{BuilderInfo, Requirement};

/// What `ci-image` is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiRequest {
    pub build: BuildOptions,
    /// `None`: this machine's native Linux platform.
    pub platform: Option<Platform>,
    /// Push to the ephemeral ci- tags instead of loading.
    pub push: bool,
    /// Built against local stand-ins of the bases (said in a label).
    pub stand_ins: bool,
    /// `None`: the default of the environment (see [`cache::default_backend`]).
    pub cache: Option<CacheBackend>,
    /// `None`: the default of the ref (see [`cache::default_mode`]).
    pub cache_mode: Option<CacheMode>,
    /// Directory of the `local` cache backend.
    pub cache_dir: PathBuf,
}

/// The one platform a CI request builds: `--platform`, else `native`.
pub fn requested_platform(args: &CiRequest, native: &Platform) -> Platform {
    args.platform.clone().unwrap_or_else(|| native.clone())
}

/// The CI plan: a pure function of the request, the variants, the context
/// and the builder.
pub fn plan(
    args: &CiRequest,
    variants: &[String],
    context: &BuildContext,
    builder: Option<&BuilderInfo>,
) -> Result<Plan> {
    let platform = requested_platform(args, &context.native_platform);
    let repository = recipe::repository(
        args.build.registry.as_ref(),
        &args.build.image_name,
        context,
        args.push,
    )?;
    let build_ref = context.build_ref();
    let backend = args
        .cache
        .unwrap_or_else(|| cache::default_backend(context.ci.github_actions));
    let cache_inputs = cache::CacheInputs {
        backend,
        mode_override: args.cache_mode,
        build_ref: &build_ref,
        flavor: Flavor::Ci,
        github_actions: context.ci.github_actions,
        repository: &repository,
        variant: "",
        local_dir: &args.cache_dir,
    };
    let plans = variants
        .iter()
        .map(|variant| variant_plan(args, variant, context, &platform, &cache_inputs))
        .collect::<Result<Vec<_>>>()?;
    let shared_compile = shared_compile::plan(&plans, shared_compile::cache_plan(&cache_inputs));
    Ok(Plan {
        mode: Mode::Ci,
        output: if args.push {
            Output::PushByDigest(PushVia::for_builder(builder))
        } else {
            Output::Load
        },
        variants: plans,
        signing: Signing::None,
        must_not_exist: Vec::new(),
        must_not_exist_because: String::new(),
        preflight: requirements(args, &platform, context, &repository),
        warnings: Vec::new(),
        gate: None,
        shared_compile,
        builder: None,
        repository,
    })
}

/// A variant's CI tags: `ci-<variant>` and the run's own unique one
/// (`ci-<variant>-pr<N>`, `ci-<variant>-<sha>`; none outside a git checkout).
fn ci_tags(
    variant: &str,
    context: &BuildContext,
    repository: &Repository,
) -> Result<Vec<ImageRef>> {
    let unique = match context.build_ref() {
        BuildRef::PullRequest(number) => Some(CiUnique::PullRequest(number)),
        // Not a git checkout (a source tarball): only the moving tag.
        _ if context.git.revision == "unknown" => None,
        _ => Some(CiUnique::Commit {
            sha: context.short_revision(),
            dirty: context.git.dirty,
        }),
    };
    std::iter::once(None)
        .chain(unique.map(Some))
        .map(|unique| {
            let tag = CiTag {
                variant: variant.to_string(),
                unique,
            };
            repository.tagged(&tag.to_string())
        })
        .collect()
}

/// One variant's CI image: its recipe, and the CI policy.
fn variant_plan(
    args: &CiRequest,
    variant: &str,
    context: &BuildContext,
    platform: &Platform,
    cache_inputs: &cache::CacheInputs<'_>,
) -> Result<VariantPlan> {
    let recipe = recipe::recipe(&args.build, variant, context)?;
    let mut labels = labels(variant, context, cache_inputs.build_ref);
    if args.stand_ins {
        // Say so: these bases are not the vendor's.
        labels.insert(format!("{LABEL_NS}.bases"), "stand-ins".to_string());
    }
    let policy = Policy {
        flavor: Flavor::Ci,
        platforms: vec![platform.clone()],
        tags: ci_tags(variant, context, cache_inputs.repository)?,
        labels,
        annotations: BTreeMap::new(),
        // Explicitly off: a CI image carries no attestations at all.
        attestations: Attestations {
            provenance: None,
            sbom: None,
        },
        cache: cache::plan(&cache::CacheInputs {
            variant,
            ..cache_inputs.clone()
        }),
        source_date_epoch: None,
        rewrite_timestamp: false,
        no_cache: args.build.no_cache,
        no_cache_stages: Vec::new(),
        // Built for turnaround: no LTO, incremental (see Cargo.toml).
        cargo_profile: "ci".to_string(),
    };
    Ok(VariantPlan {
        variant: variant.to_string(),
        recipe,
        policy,
    })
}

/// What is checked before anything is built.
fn requirements(
    args: &CiRequest,
    platform: &Platform,
    context: &BuildContext,
    repository: &Repository,
) -> Vec<Requirement> {
    let mut preflight = vec![
        Requirement::Docker,
        Requirement::Buildx,
        Requirement::Engine,
    ];
    if args.push {
        // skopeo probes the push target (and pushes, with the docker driver).
        preflight.push(Requirement::Skopeo);
    }
    if platform != &context.native_platform {
        preflight.push(Requirement::BuilderPlatforms(vec![platform.clone()]));
    }
    if args.push {
        // An unreachable registry or refused credentials, before the build.
        preflight.push(Requirement::PushTarget(repository.clone()));
    }
    preflight
}

/// Labels that mark an image as a CI image, unfit for production, in our
/// own namespace, and a description that says so to anyone who looks.
fn labels(variant: &str, context: &BuildContext, build_ref: &BuildRef) -> BTreeMap<String, String> {
    let built_from = match build_ref {
        BuildRef::PullRequest(number) => format!("pull request #{number}"),
        BuildRef::Branch(branch) => format!("branch {branch}"),
        BuildRef::Tag(tag) => format!("tag {tag}"),
        BuildRef::Detached => "a detached checkout".to_string(),
    };
    BTreeMap::from([
        (
            "org.opencontainers.image.title".into(),
            format!("beacon ({variant}, CI build)"),
        ),
        (
            "org.opencontainers.image.description".into(),
            format!(
                "CI image of beacon on {variant} with debug tools, built from {built_from}. \
                 NOT FOR PRODUCTION: unsigned, single-platform, no SBOM, ephemeral tag."
            ),
        ),
        (
            "org.opencontainers.image.revision".into(),
            context.git.revision.clone(),
        ),
        (
            "org.opencontainers.image.source".into(),
            context.git.source_url.clone(),
        ),
        ("org.opencontainers.image.licenses".into(), LICENSE.into()),
        (format!("{LABEL_NS}.flavor"), Flavor::Ci.as_str().into()),
        (format!("{LABEL_NS}.variant"), variant.into()),
        (format!("{LABEL_NS}.not-for-production"), "true".into()),
    ])
}
