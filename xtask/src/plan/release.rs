//! The release plan: production images. Every requested platform, minimal
//! (no debug tools), pushed by digest, SBOM and provenance attested by
//! BuildKit, signed with cosign by digest, and only then tagged under
//! immutable version tags computed from git the way docker/metadata-action
//! users expect. Refusals happen here, before anything is built.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use crate::context::{BuildContext, BuildRef};
use crate::model::names;
use crate::model::tags::{CI_PREFIX, DEFAULT_BRANCH};
use crate::model::time::format_rfc3339;
use crate::model::version::Version;
use crate::plan::gate::Gate;
use crate::plan::{
    cache, recipe, Attestations, BuildOptions, Flavor, Mode, Output, Plan, Policy, PushVia,
    SbomRequest, Signing, SigningRequest, VariantPlan, LABEL_NS,
};
use crate::preflight::{BuilderInfo, Requirement};

/// BuildKit's SBOM scanner, pinned; override it for a mirror or an air-gapped registry.
pub const DEFAULT_SBOM_GENERATOR: &str =
    "docker.io/docker/buildkit-syft-scanner:1.12.0@sha256:ae4f3b554449e7e25548e7d8ccc029d17357348e30c6e3df01b92bc93654d6a9";
const LICENSE: &str = "Apache-2.0";

/// What `release-image` is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRequest {
    pub build: BuildOptions,
    /// Platforms of each image index, comma-separated.
    pub platform: String,
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
    pub sbom_generator: String,
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

/// Tags before variant qualification: (all tags, the immutable ones among them).
pub fn base_tags(
    context: &BuildContext,
    allow_any_ref: bool,
) -> Result<(Vec<String>, Vec<String>)> {
    let sha = format!("sha-{}", context.short_revision());
    match context.build_ref() {
        BuildRef::Tag(tag) => match Version::from_git_tag(&tag) {
            Some(version) => {
                let full = version.tag();
                let mut tags = vec![full.clone()];
                // Pre-releases get only their full version; floating tags follow stable releases.
                if !version.is_prerelease() {
                    tags.push(format!("{}.{}", version.major, version.minor));
                    // `0` would float across breaking changes (semver: 0.x is unstable).
                    if version.major > 0 {
                        tags.push(version.major.to_string());
                    }
                    let newest = context
                        .git
                        .release_tags
                        .iter()
                        .filter_map(|t| Version::from_git_tag(t))
                        .filter(|v| !v.is_prerelease())
                        .all(|other| other <= version);
                    if newest {
                        tags.push("latest".to_string());
                    }
                }
                Ok((tags, vec![full]))
            }
            None if allow_any_ref => Ok((vec![names::slug(&tag), sha], Vec::new())),
            None => bail!("{tag:?} is not a release tag (vMAJOR.MINOR.PATCH[-PRERELEASE]): tag a release, or pass --allow-any-ref"),
        },
        BuildRef::Branch(branch) if branch == DEFAULT_BRANCH => Ok((vec![DEFAULT_BRANCH.to_string(), sha], Vec::new())),
        other if allow_any_ref => {
            let mut tags = match other {
                BuildRef::Branch(branch) => {
                    let tag = names::slug(&branch);
                    // A branch must not move a version or `latest` tag.
                    if tag == "latest" || tag.chars().all(|c| c.is_ascii_digit() || c == '.') {
                        bail!("branch {branch:?} would be tagged {tag:?}, which looks like a release tag: rename the branch");
                    }
                    vec![tag]
                }
                BuildRef::PullRequest(number) => vec![format!("pr-{number}")],
                _ => Vec::new(),
            };
            tags.push(sha);
            Ok((tags, Vec::new()))
        }
        other => bail!(
            "release-image builds {DEFAULT_BRANCH} or a release tag vX.Y.Z, and this checkout is {}: \
             switch to one, or pass --allow-any-ref to release it anyway",
            match other {
                BuildRef::Branch(branch) => format!("branch {branch}"),
                BuildRef::PullRequest(number) => format!("pull request #{number}"),
                _ => "a detached HEAD".to_string(),
            }
        ),
    }
}

/// Every tag qualified by variant (`1.2.3-ubi9`); the default variant also gets the bare ones.
pub fn qualify(tags: &[String], variant: &str, default_variant: &str) -> Vec<String> {
    let mut qualified: Vec<String> = tags.iter().map(|t| format!("{t}-{variant}")).collect();
    if variant == default_variant {
        qualified.extend(tags.iter().cloned());
    }
    qualified
}

/// The image a build arg names, if the arg is one of the images (`*_BASE`, `*_IMAGE`).
fn is_image_arg(name: &str) -> bool {
    name.ends_with("_BASE") || name.ends_with("_IMAGE")
}

/// The release plan: a pure function of its inputs. Refusals happen here,
/// before anything is built.
pub fn plan(inputs: &ReleaseInputs<'_>) -> Result<Plan> {
    let (args, context) = (inputs.args, inputs.context);
    if context.git.revision == "unknown" {
        bail!("release-image needs a git checkout (a release is reproducible from its commit): run it in a clone of the repository");
    }
    if context.git.dirty {
        bail!("the working tree has uncommitted or untracked changes: commit or stash them (`git status`); a release must be reproducible from its commit");
    }
    let platforms = names::parse_platforms(&args.platform)?;
    if args.default_variant != "none" && !inputs.available.contains(&args.default_variant) {
        bail!(
            "unknown --default-variant {:?}: valid variants are {} (or none)",
            args.default_variant,
            inputs.available.join(", ")
        );
    }
    let (tags, immutable) = base_tags(context, args.allow_any_ref)?;
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
    let repository = recipe::repository(&args.build, context, !args.output_archive)?;
    // A release depends on no cache entry anyone wrote (see plan/cache.rs).
    if args
        .build
        .cache
        .is_some_and(|b| b != cache::CacheBackend::None)
        || args.build.cache_mode.is_some()
    {
        bail!("release builds read and write no build cache (a release must not depend on a cache entry another build wrote): remove --cache and --cache-mode");
    }
    let build_ref = context.build_ref();
    let backend = args
        .build
        .cache
        .unwrap_or_else(|| cache::default_backend(context.ci.github_actions));
    let version = match &build_ref {
        BuildRef::Tag(tag) => tag.trim_start_matches('v').to_string(),
        _ => tags.first().cloned().unwrap_or_default(),
    };
    let mut warnings = Vec::new();
    // Both ways of pushing rewrite layer timestamps to SOURCE_DATE_EPOCH: BuildKit's
    // own drivers while pushing, the docker driver through its OCI archive.
    let push_via = PushVia::for_builder(inputs.builder);
    let rewrite_timestamp = true;
    if push_via == PushVia::OciArchive && !args.output_archive {
        warnings.push(
            "the builder uses the docker driver, which can neither push by digest nor rewrite timestamps while pushing: \
             each variant goes through an OCI archive (timestamps rewritten) and skopeo (digests kept)"
                .to_string(),
        );
    }
    if inputs.builder.is_none() {
        warnings.push("no builder could be inspected (is the engine running?): the plan assumes one that pushes by digest itself".to_string());
    }
    let mut must_not_exist = Vec::new();
    let mut plans = Vec::new();
    for variant in inputs.variants {
        let recipe = recipe::recipe(&args.build, variant, context)?;
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
        let (base_name, base_digest) = base
            .split_once('@')
            .map_or((base.clone(), String::new()), |(n, d)| {
                (n.to_string(), d.to_string())
            });
        let variant_tags = qualify(&tags, variant, &args.default_variant);
        for tag in &variant_tags {
            names::validate_tag(tag)?;
            if tag.starts_with(CI_PREFIX) {
                bail!("the release tag {tag:?} would start with ci-, which is reserved for CI images: release from another ref");
            }
        }
        must_not_exist.extend(
            qualify(&immutable, variant, &args.default_variant)
                .into_iter()
                .map(|t| format!("{repository}:{t}")),
        );
        let oci = BTreeMap::from([
            ("title", format!("beacon ({variant})")),
            ("description", format!("beacon on {variant}: production image (minimal and signed; SBOM and provenance attested)")),
            ("version", version.clone()),
            ("revision", context.git.revision.clone()),
            ("source", context.git.source_url.clone()),
            ("url", context.git.source_url.clone()),
            ("created", format_rfc3339(context.git.commit_time)),
            ("licenses", LICENSE.to_string()),
            ("base.name", base_name),
            ("base.digest", base_digest),
        ]);
        let mut labels: BTreeMap<String, String> = oci
            .iter()
            .map(|(k, v)| (format!("org.opencontainers.image.{k}"), v.clone()))
            .collect();
        labels.insert(
            format!("{LABEL_NS}.flavor"),
            Flavor::Production.as_str().into(),
        );
        labels.insert(format!("{LABEL_NS}.variant"), variant.clone());
        let annotations = oci
            .iter()
            .map(|(k, v)| (format!("org.opencontainers.image.{k}"), v.clone()))
            .collect();
        let policy = Policy {
            flavor: Flavor::Production,
            platforms: platforms.clone(),
            tags: variant_tags
                .iter()
                .map(|t| format!("{repository}:{t}"))
                .collect(),
            labels,
            annotations,
            // An archive for rebuild-check carries no attestations: they
            // record build times and are not compared (and the image
            // manifests do not depend on them).
            attestations: if args.output_archive {
                Attestations {
                    provenance: None,
                    sbom: None,
                }
            } else {
                Attestations {
                    provenance: Some("max".into()),
                    sbom: Some(SbomRequest {
                        generator: Some(args.sbom_generator.clone()),
                    }),
                }
            },
            cache: cache::plan(&cache::CacheInputs {
                backend,
                mode_override: args.build.cache_mode,
                build_ref: &build_ref,
                flavor: Flavor::Production,
                github_actions: context.ci.github_actions,
                repository: &repository,
                variant,
                local_dir: &args.build.cache_dir,
            }),
            source_date_epoch: Some(context.git.commit_time),
            rewrite_timestamp,
            no_cache: args.build.no_cache,
            no_cache_stages: vec!["final".to_string()],
            cargo_profile: "release".to_string(),
        };
        plans.push(VariantPlan {
            variant: variant.clone(),
            recipe,
            policy,
        });
    }
    if args.force || args.output_archive {
        must_not_exist.clear();
    }
    let mut preflight = vec![
        Requirement::Docker,
        Requirement::Buildx,
        Requirement::Engine,
        Requirement::BuilderPlatforms(platforms.to_vec()),
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
    if signing == Signing::None && !args.output_archive && !args.build_only {
        warnings.push(
            "--sign none: the images are not signed; the gate before the tags move checks everything but the signature, \
             and `cargo xtask verify` (the deploy gate) refuses them"
                .to_string(),
        );
    }
    let gate = if args.output_archive || args.build_only {
        None
    } else {
        Some(Gate::for_release(
            &signing,
            context.ci.repository.as_deref(),
            &platforms,
        )?)
    };
    Ok(Plan {
        mode: Mode::Release,
        repository,
        output: if args.output_archive {
            Output::Archive
        } else {
            Output::PushByDigest(push_via)
        },
        variants: plans,
        signing,
        must_not_exist,
        preflight,
        warnings,
        gate,
    })
}
