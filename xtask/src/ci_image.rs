//! `cargo xtask ci-image`: fast CI images. One platform, debug tools inside,
//! loaded into the local engine (or pushed to ephemeral `ci-` tags only),
//! no signing, no SBOM, no provenance, cached per variant.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use clap::Args;

use crate::cli::BuildOptions;
use crate::context::{BuildContext, BuildRef};
use crate::names::{self, Platform};
use crate::plan::{
    Attestations, Flavor, Mode, Output, Plan, Policy, PushVia, Requirement, Signing, VariantPlan,
    LABEL_NS,
};
use crate::preflight::{self, BuilderInfo};
use crate::{cache, exec, project, recipe};

#[derive(Debug, Clone, Args)]
pub struct CiImageArgs {
    #[command(flatten)]
    pub build: BuildOptions,

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
}

pub fn run(mut args: CiImageArgs) -> Result<()> {
    let root = project::project_root();
    if let Some(registry) = args.stand_ins.clone() {
        let inputs = std::path::PathBuf::from(crate::stand_ins::DEFAULT_INPUTS);
        let overrides = crate::stand_ins::build(&crate::stand_ins::StandInsArgs {
            registry,
            inputs,
            binaries_only: false,
        })?;
        // The user's own build args come last, so they still win.
        let mut build_args: Vec<String> = overrides.build_args.into_values().flatten().collect();
        build_args.append(&mut args.build.build_args);
        args.build.build_args = build_args;
        args.build.binaries.get_or_insert(overrides.binaries);
    }
    let available = project::discover_variants(&root)?;
    let variants = project::select_variants(&available, &args.build.variants)?;
    recipe::check_build_arg_scopes(&args.build, &available)?;
    let context = crate::context::gather(&root)?;
    // Pushing needs to know whether the builder can push by digest itself.
    let builder = if args.push {
        preflight::builder_info().ok()
    } else {
        None
    };
    let plan = plan(&args, &variants, &context, builder.as_ref())?;
    exec::run_plan(&plan, &args.build)
}

/// The CI plan: a pure function of the arguments, the variants and the context.
pub fn plan(
    args: &CiImageArgs,
    variants: &[String],
    context: &BuildContext,
    builder: Option<&BuilderInfo>,
) -> Result<Plan> {
    let platform: Platform = match &args.platform {
        Some(text) => {
            let platforms = names::parse_platforms(text)?;
            if platforms.len() != 1 {
                bail!("ci-image builds exactly one platform, got {text:?}: pass one, e.g. --platform linux/amd64 (release-image builds several)");
            }
            platforms[0].clone()
        }
        None => context.native_platform.clone(),
    };
    let repository = recipe::repository(&args.build, context, args.push)?;
    let build_ref = context.build_ref();
    let unique = match &build_ref {
        BuildRef::PullRequest(number) => format!("pr{number}"),
        _ if context.git.dirty => format!("{}-dirty", context.short_revision()),
        _ => context.short_revision(),
    };
    let output = if args.push {
        Output::PushByDigest(PushVia::for_builder(builder))
    } else {
        Output::Load
    };
    let backend = args
        .build
        .cache
        .unwrap_or_else(|| cache::default_backend(context.ci.github_actions));
    let mut plans = Vec::new();
    for variant in variants {
        let recipe = recipe::recipe(&args.build, variant, context)?;
        let tags = vec![
            format!("{repository}:ci-{variant}"),
            format!("{repository}:ci-{variant}-{unique}"),
        ];
        for tag in &tags {
            names::validate_tag(tag.rsplit(':').next().unwrap_or_default())?;
        }
        let policy = Policy {
            flavor: Flavor::Ci,
            platforms: vec![platform.clone()],
            tags,
            labels: {
                let mut labels = labels(variant, context, &build_ref);
                if args.stand_ins.is_some() {
                    // Say so: these bases are not the vendor's.
                    labels.insert(format!("{LABEL_NS}.bases"), "stand-ins".to_string());
                }
                labels
            },
            annotations: BTreeMap::new(),
            // Explicitly off: a CI image carries no attestations at all.
            attestations: Attestations {
                provenance: None,
                sbom: None,
            },
            cache: cache::plan(&cache::CacheInputs {
                backend,
                mode_override: args.build.cache_mode,
                build_ref: &build_ref,
                flavor: Flavor::Ci,
                github_actions: context.ci.github_actions,
                repository: &repository,
                variant,
                local_dir: &args.build.cache_dir,
            }),
            source_date_epoch: None,
            rewrite_timestamp: false,
            no_cache: args.build.no_cache,
            no_cache_stages: Vec::new(),
            // Built for turnaround: no LTO, incremental (see Cargo.toml).
            cargo_profile: "ci".to_string(),
        };
        plans.push(VariantPlan {
            variant: variant.clone(),
            recipe,
            policy,
        });
    }
    let mut preflight = vec![
        Requirement::Docker,
        Requirement::Buildx,
        Requirement::Engine,
    ];
    if output == Output::PushByDigest(PushVia::OciArchive) {
        preflight.push(Requirement::Skopeo);
    }
    if platform != context.native_platform {
        preflight.push(Requirement::BuilderPlatforms(vec![platform]));
    }
    Ok(Plan {
        mode: Mode::Ci,
        repository,
        output,
        variants: plans,
        signing: Signing::None,
        must_not_exist: Vec::new(),
        preflight,
        warnings: Vec::new(),
    })
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
        (format!("{LABEL_NS}.flavor"), Flavor::Ci.as_str().into()),
        (format!("{LABEL_NS}.variant"), variant.into()),
        (format!("{LABEL_NS}.not-for-production"), "true".into()),
    ])
}
