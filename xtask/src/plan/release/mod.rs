//! The release plan: production images. Every requested platform, minimal
//! (no debug tools), pushed by digest, SBOM and provenance attested by
//! BuildKit, signed with cosign by digest, and only then tagged under
//! immutable version tags computed from git the way docker/metadata-action
//! users expect. Refusals happen here, before anything is built.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

mod tags;

pub use self::tags::{
    base_tags, check_default_variant, differences, qualify, release_tags, ReleaseTags, TagRequest,
    TagRules, VariantTags,
};

use crate::context::{BuildContext, BuildRef};
use crate::model::identity::GithubRepository;
use crate::model::names::Platform;
use crate::model::reference::{ImageRef, Repository};
use crate::model::time::format_rfc3339;
use crate::model::version::Version;
use crate::plan::gate::Gate;
use crate::plan::{
    recipe, shared_compile, Attestations, BuildOptions, CachePlan, Flavor, Mode, Output, Plan,
    Policy, PushVia, Recipe, SbomRequest, Signing, SigningRequest, VariantPlan, LABEL_NS, LICENSE,
};
use crate::preflight::{BuilderInfo, Requirement};

/// BuildKit's SBOM scanner, pinned; override it for a mirror or an air-gapped registry.
pub const DEFAULT_SBOM_GENERATOR: &str =
    "docker.io/docker/buildkit-syft-scanner:1.12.0@sha256:ae4f3b554449e7e25548e7d8ccc029d17357348e30c6e3df01b92bc93654d6a9";

/// What `release-image` is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRequest {
    pub build: BuildOptions,
    /// Platforms of each image index.
    pub platforms: Vec<Platform>,
    /// The variant that also gets the bare tags; `none` for no bare tags.
    pub default_variant: String,
    /// Overwrite version tags that already exist.
    pub force: bool,
    /// Release from a ref that is neither main nor a release tag.
    pub allow_any_ref: bool,
    pub signing: SigningRequest,
    /// Export OCI archives and publish nothing (what rebuild-check compares).
    pub output_archive: bool,
    /// Build and push by digest only: signing, the gate and the tag moves
    /// run later, from the release record (the release workflow's build job,
    /// which holds no signing identity).
    pub build_only: bool,
    /// SBOM generator image (BuildKit's SBOM scanning protocol).
    pub sbom_generator: ImageRef,
}

pub struct ReleaseInputs<'a> {
    pub args: &'a ReleaseRequest,
    /// Every variant under images/ (the default variant must be one of them).
    pub available: &'a [String],
    /// The variants to release.
    pub variants: &'a [String],
    pub context: &'a BuildContext,
    pub builder: Option<&'a BuilderInfo>,
    /// Each variant's Dockerfile `ARG` defaults (where the bases are pinned).
    pub dockerfile_args: &'a BTreeMap<String, BTreeMap<String, String>>,
}

/// The image a build arg names, if the arg is one of the images (`*_BASE`, `*_IMAGE`).
fn is_image_arg(name: &str) -> bool {
    name.ends_with("_BASE") || name.ends_with("_IMAGE")
}

/// The release plan: a pure function of its inputs. Refusals happen here,
/// before anything is built.
pub fn plan(inputs: &ReleaseInputs<'_>) -> Result<Plan> {
    let (args, context) = (inputs.args, inputs.context);
    refuse_unreleasable(inputs)?;
    let rules = TagRules {
        allow_any_ref: args.allow_any_ref,
        variants: inputs.available,
        writes_tags: !args.output_archive,
    };
    let base = tags::base_tags(context, rules)?;
    let signing = if args.output_archive || args.build_only {
        Signing::None
    } else {
        args.signing.resolve(context)?
    };
    // Build-arg mistakes are reported before a missing registry: they are the
    // likelier typo, and both are refusals before anything runs.
    for variant in inputs.variants {
        recipe::recipe(&args.build, variant, context)?;
    }
    let repository = recipe::repository(
        args.build.registry.as_ref(),
        &args.build.image_name,
        context,
        !args.output_archive,
    )?;
    let request = TagRequest {
        rules,
        default_variant: &args.default_variant,
        // An archive for rebuild-check moves no tag.
        force: args.force || args.output_archive,
    };
    let tags = tags::qualified_tags(context, &base, request, &repository, inputs.variants)?;
    let push_via = PushVia::for_builder(inputs.builder);
    let variants = inputs
        .variants
        .iter()
        .map(|variant| variant_plan(inputs, variant, &tags))
        .collect::<Result<Vec<_>>>()?;
    let shared_compile = shared_compile::plan(&variants, CachePlan::default());
    Ok(Plan {
        mode: Mode::Release,
        output: if args.output_archive {
            Output::Archive
        } else {
            Output::PushByDigest(push_via)
        },
        variants,
        must_not_exist: tags
            .variants
            .values()
            .flat_map(|v| v.immutable.iter().cloned())
            .collect(),
        must_not_exist_because: must_not_exist_because(&context.build_ref()),
        preflight: requirements(args, &signing, &repository),
        warnings: warnings(args, inputs.builder, push_via, &signing),
        gate: gate(args, context, &signing)?,
        signing,
        repository,
        // Both platforms' binaries in one compile, with no cache (a release
        // reads and writes none), SOURCE_DATE_EPOCH and --no-cache from the policy.
        shared_compile,
        builder: None,
    })
}

/// What makes a checkout unreleasable, whatever is asked of it.
fn refuse_unreleasable(inputs: &ReleaseInputs<'_>) -> Result<()> {
    let (args, context) = (inputs.args, inputs.context);
    if context.git.revision == "unknown" {
        bail!("release-image needs a git checkout (a release is reproducible from its commit): run it in a clone of the repository");
    }
    if context.git.dirty {
        bail!("the working tree has uncommitted or untracked changes: commit or stash them (`git status`); a release must be reproducible from its commit");
    }
    tags::check_default_variant(&args.default_variant, inputs.available)?;
    // Only a push publishes (a job of another event may say `main` while it
    // checks out other code); an archive for rebuild-check publishes nothing.
    if !args.output_archive {
        context.check_release_event()?;
    }
    Ok(())
}

/// Every image a variant's build names (`*_BASE`, `*_IMAGE`), pinned by
/// digest, or the refusal; returns the production base's name and digest.
fn pinned_bases(
    inputs: &ReleaseInputs<'_>,
    variant: &str,
    recipe: &Recipe,
) -> Result<(String, String)> {
    let defaults = inputs
        .dockerfile_args
        .get(variant)
        .cloned()
        .unwrap_or_default();
    let effective = |name: &str| {
        recipe
            .build_args
            .get(name)
            .or_else(|| defaults.get(name))
            .cloned()
    };
    for name in defaults
        .keys()
        .chain(recipe.build_args.keys())
        .filter(|n| is_image_arg(n))
    {
        let value = effective(name).unwrap_or_default();
        if !value.contains("@sha256:") {
            bail!("{name}={value} is not pinned by digest: a release needs every image as NAME:TAG@sha256:DIGEST (variant {variant})");
        }
    }
    let base = effective("PRODUCTION_BASE").unwrap_or_default();
    Ok(base
        .split_once('@')
        .map_or((base.clone(), String::new()), |(n, d)| {
            (n.to_string(), d.to_string())
        }))
}

/// One variant's plan: its recipe, and the production policy.
fn variant_plan(
    inputs: &ReleaseInputs<'_>,
    variant: &str,
    tags: &ReleaseTags,
) -> Result<VariantPlan> {
    let (args, context) = (inputs.args, inputs.context);
    let recipe = recipe::recipe(&args.build, variant, context)?;
    let (base_name, base_digest) = pinned_bases(inputs, variant, &recipe)?;
    let oci = BTreeMap::from([
        ("title", format!("beacon ({variant})")),
        ("description", format!("beacon on {variant}: production image (minimal and signed; SBOM and provenance attested)")),
        ("version", tags.version.clone()),
        ("revision", context.git.revision.clone()),
        ("source", context.git.source_url.clone()),
        ("url", context.git.source_url.clone()),
        ("created", format_rfc3339(context.git.commit_time)?),
        ("licenses", LICENSE.to_string()),
        ("base.name", base_name),
        ("base.digest", base_digest),
    ]);
    let annotations: BTreeMap<String, String> = oci
        .iter()
        .map(|(k, v)| (format!("org.opencontainers.image.{k}"), v.clone()))
        .collect();
    let mut labels = annotations.clone();
    labels.insert(
        format!("{LABEL_NS}.flavor"),
        Flavor::Production.as_str().into(),
    );
    labels.insert(format!("{LABEL_NS}.variant"), variant.to_string());
    let policy = Policy {
        flavor: Flavor::Production,
        platforms: args.platforms.clone(),
        tags: tags
            .variants
            .get(variant)
            .map(|v| v.tags.clone())
            .unwrap_or_default(),
        labels,
        annotations,
        attestations: attestations(args),
        // A release reads and writes no build cache: it depends on no
        // cache entry another build wrote (see plan/cache.rs).
        cache: CachePlan::default(),
        source_date_epoch: Some(context.git.commit_time),
        // Both ways of pushing rewrite layer timestamps to SOURCE_DATE_EPOCH:
        // BuildKit's own drivers while pushing, the docker driver through its
        // OCI archive.
        rewrite_timestamp: true,
        no_cache: args.build.no_cache,
        no_cache_stages: vec!["final".to_string()],
        cargo_profile: "release".to_string(),
    };
    Ok(VariantPlan {
        variant: variant.to_string(),
        recipe,
        policy,
    })
}

/// A published release has provenance (mode=max) and an SBOM. An archive
/// for rebuild-check has the provenance only: it says where each platform
/// was rebuilt (rebuild-check reports it), and with it an archive of one
/// platform is an index, as the release's is, which BuildKit's index
/// annotations need. Attestations record build times and are not compared;
/// the image manifests do not depend on them.
fn attestations(args: &ReleaseRequest) -> Attestations {
    if args.output_archive {
        return Attestations {
            provenance: Some("max".into()),
            sbom: None,
        };
    }
    Attestations {
        provenance: Some("max".into()),
        sbom: Some(SbomRequest {
            generator: Some(args.sbom_generator.clone()),
        }),
    }
}

fn must_not_exist_because(build_ref: &BuildRef) -> String {
    if matches!(build_ref, BuildRef::Tag(tag) if Version::from_git_tag(tag).is_some()) {
        "a release's version tag is immutable: bump the version, or pass --force to overwrite it"
            .to_string()
    } else {
        "a run with --allow-any-ref writes only tags that do not exist yet, so it can never move a release's: \
         delete that tag or release another ref, or pass --force to overwrite it"
            .to_string()
    }
}

/// What is checked before anything is built.
fn requirements(
    args: &ReleaseRequest,
    signing: &Signing,
    repository: &Repository,
) -> Vec<Requirement> {
    let mut preflight = vec![
        Requirement::Docker,
        Requirement::Buildx,
        Requirement::Engine,
        Requirement::BuilderPlatforms(args.platforms.to_vec()),
    ];
    if !args.output_archive {
        // skopeo probes the push target, reads the pushed digests back and,
        // with the docker driver, pushes.
        preflight.push(Requirement::Skopeo);
    }
    preflight.extend(signing.requirements());
    if !args.output_archive {
        preflight.push(Requirement::PushTarget(repository.clone()));
    }
    preflight
}

/// What this plan cannot guarantee on this machine, said up front.
fn warnings(
    args: &ReleaseRequest,
    builder: Option<&BuilderInfo>,
    push_via: PushVia,
    signing: &Signing,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if push_via == PushVia::OciArchive && !args.output_archive {
        warnings.push(
            "the builder uses the docker driver, which can neither push by digest nor rewrite timestamps while pushing: \
             each variant goes through an OCI archive (timestamps rewritten) and skopeo (digests kept)"
                .to_string(),
        );
    }
    if builder.is_none() {
        warnings.push("no builder could be inspected (is the engine running?): the plan assumes one that pushes by digest itself".to_string());
    }
    if *signing == Signing::None && !args.output_archive && !args.build_only {
        warnings.push(
            "--sign none: the images are not signed; the gate before the tags move checks everything but the signature, \
             and `cargo xtask verify` (the deploy gate) refuses them"
                .to_string(),
        );
    }
    warnings
}

/// A published release: what its images must pass before any tag moves.
fn gate(args: &ReleaseRequest, context: &BuildContext, signing: &Signing) -> Result<Option<Gate>> {
    if args.output_archive || args.build_only {
        return Ok(None);
    }
    // GitHub's OWNER/REPO of the run: keyless signing happens only there.
    let github_repository: Option<GithubRepository> = context
        .ci
        .repository
        .as_deref()
        .map(str::parse)
        .transpose()?;
    Ok(Some(Gate::for_release(
        signing,
        github_repository.as_ref(),
        &args.platforms,
    )?))
}
