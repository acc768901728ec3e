//! The release plan: production images. Every requested platform, minimal
//! (no debug tools), pushed by digest, SBOM and provenance attested by
//! BuildKit, signed with cosign by digest, and only then tagged under
//! immutable version tags computed from git the way docker/metadata-action
//! users expect. Refusals happen here, before anything is built.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use crate::context::{BuildContext, BuildRef};
use crate::model::names;
use crate::model::tags::{ReleaseTag, ReleaseTagKind, CI_PREFIX, DEFAULT_BRANCH};
use crate::model::time::format_rfc3339;
use crate::model::version::Version;
use crate::plan::gate::Gate;
use crate::plan::{
    cache, recipe, shared_compile, Attestations, BuildOptions, Flavor, Mode, Output, Plan, Policy,
    PushVia, SbomRequest, Signing, SigningRequest, VariantPlan, LABEL_NS, LICENSE,
};
use crate::preflight::{BuilderInfo, Requirement};

/// BuildKit's SBOM scanner, pinned; override it for a mirror or an air-gapped registry.
pub const DEFAULT_SBOM_GENERATOR: &str =
    "docker.io/docker/buildkit-syft-scanner:1.12.0@sha256:ae4f3b554449e7e25548e7d8ccc029d17357348e30c6e3df01b92bc93654d6a9";

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
    /// The `ARG` defaults each variant is built with, the compile file's and
    /// its own (where the builder image and the bases are pinned:
    /// `project::build_arg_defaults`).
    pub dockerfile_args: &'a BTreeMap<String, BTreeMap<String, String>>,
}

/// How a run's tags are decided and checked.
#[derive(Debug, Clone, Copy)]
pub struct TagRules<'a> {
    /// Release from a ref that is neither main nor a release tag.
    pub allow_any_ref: bool,
    /// Every variant under images/ (not only those released): the release
    /// tags of each belong to releases, whichever variants this run builds.
    pub variants: &'a [String],
    /// The run writes tags. An archive for rebuild-check writes none, so no
    /// ref is refused for the tags it would have written.
    pub writes_tags: bool,
}

/// The tags of a run before variant qualification: (every tag, those that
/// must not exist yet). A version's own tag is immutable; `main` and
/// `sha-<commit>` of main, and the floating version tags, move by design;
/// every tag of an `--allow-any-ref` run must be new (so it can never
/// overwrite a release's). Refusals name the ref, the tag and the reason.
pub fn base_tags(
    context: &BuildContext,
    rules: TagRules<'_>,
) -> Result<(Vec<String>, Vec<String>)> {
    let commit = ReleaseTagKind::Commit(context.short_revision());
    match context.build_ref() {
        BuildRef::Tag(tag) => match Version::from_git_tag(&tag) {
            Some(version) => {
                // A tag cannot hold build metadata (`+...`); precedence ignores it.
                let tagged = Version {
                    build: Vec::new(),
                    ..version.clone()
                };
                let mut kinds = vec![ReleaseTagKind::Version(tagged)];
                // Pre-releases get only their full version; floating tags
                // follow stable releases, and only forwards: a backport
                // (v1.1.9 after v1.2.0) moves `1.1` but neither `1` nor `latest`.
                if !version.is_prerelease() {
                    let stable: Vec<Version> = context
                        .git
                        .release_tags
                        .iter()
                        .filter_map(|t| Version::from_git_tag(t))
                        .filter(|v| !v.is_prerelease())
                        .collect();
                    let newest_of = |same_series: &dyn Fn(&Version) -> bool| {
                        stable
                            .iter()
                            .filter(|v| same_series(v))
                            .all(|other| *other <= version)
                    };
                    if newest_of(&|v| (v.major, v.minor) == (version.major, version.minor)) {
                        kinds.push(ReleaseTagKind::Minor {
                            major: version.major,
                            minor: version.minor,
                        });
                    }
                    // `0` would float across breaking changes (semver: 0.x is unstable).
                    if version.major > 0 && newest_of(&|v| v.major == version.major) {
                        kinds.push(ReleaseTagKind::Major(version.major));
                    }
                    if newest_of(&|_| true) {
                        kinds.push(ReleaseTagKind::Latest);
                    }
                }
                if rules.writes_tags {
                    check_reads_back(&format!("the release {tag}"), &kinds, rules.variants)?;
                }
                let tags = kinds.iter().map(ToString::to_string).collect();
                Ok((tags, vec![version.tag()]))
            }
            None if rules.allow_any_ref => {
                let tags = vec![ref_tag(RefKind::Tag, &tag, rules)?, commit.to_string()];
                Ok((tags.clone(), tags))
            }
            None => bail!("{tag:?} is not a release tag (vMAJOR.MINOR.PATCH[-PRERELEASE], strict SemVer 2.0): tag a release, or pass --allow-any-ref"),
        },
        BuildRef::Branch(branch) if branch == DEFAULT_BRANCH => {
            let kinds = [ReleaseTagKind::DefaultBranch, commit];
            if rules.writes_tags {
                check_reads_back(&format!("the build of {DEFAULT_BRANCH}"), &kinds, rules.variants)?;
            }
            Ok((kinds.iter().map(ToString::to_string).collect(), Vec::new()))
        }
        other if rules.allow_any_ref => {
            let mut tags = match other {
                BuildRef::Branch(branch) => vec![ref_tag(RefKind::Branch, &branch, rules)?],
                BuildRef::PullRequest(number) => vec![format!("pr-{number}")],
                _ => Vec::new(),
            };
            // The commit's tag: main's build of the same commit may have
            // written it, so, like every tag of this run, it must be new.
            tags.push(commit.to_string());
            Ok((tags.clone(), tags))
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

/// A ref that is neither main nor a release tag, released with `--allow-any-ref`.
#[derive(Debug, Clone, Copy)]
enum RefKind {
    Branch,
    Tag,
}

impl RefKind {
    fn as_str(self) -> &'static str {
        match self {
            RefKind::Branch => "branch",
            RefKind::Tag => "tag",
        }
    }
}

/// The tag of a ref released with `--allow-any-ref`: its slug (the way
/// docker/metadata-action sanitises refs), refused when it, or the slug
/// qualified by any variant, is a tag that releases or CI images own (a slug
/// is at most 63 characters, too short for a cosign tag).
fn ref_tag(kind: RefKind, name: &str, rules: TagRules<'_>) -> Result<String> {
    let what = kind.as_str();
    let tag = names::slug(name);
    if tag.is_empty() {
        bail!(
            "{what} {name:?} has no character an image tag can hold (a ref's tag is made of its letters, digits and '.'): \
             rename the {what}"
        );
    }
    if !rules.writes_tags {
        return Ok(tag);
    }
    if tag.starts_with(CI_PREFIX) {
        bail!("{what} {name:?} would be tagged {tag:?}, and tags starting with ci- are reserved for CI images: rename the {what}");
    }
    let qualified = rules.variants.iter().map(|v| format!("{tag}-{v}"));
    for written in std::iter::once(tag.clone()).chain(qualified) {
        if let Some(owned) = ReleaseTag::parse(&written, rules.variants) {
            let way_out = match (&owned.kind, kind) {
                (ReleaseTagKind::Version(version), RefKind::Tag) => {
                    format!(
                        "to release {version}, tag the commit v{version}; otherwise rename the tag"
                    )
                }
                _ => format!("rename the {what}"),
            };
            bail!(
                "{what} {name:?} would be tagged {written:?}, which is {}: a run with --allow-any-ref never writes \
                 a tag that releases own (versions, their series, latest, {DEFAULT_BRANCH}, sha-<commit>, bare or \
                 -<variant>); {way_out}",
                owned.describe()
            );
        }
    }
    Ok(tag)
}

/// Checks that every tag a release writes reads back as that release's own
/// tag of that variant (bare for the default variant): a pre-release named
/// like a variant (`v1.2.3-ubi9`) would write `1.2.3-ubi9`, which is the ubi9
/// image of v1.2.3.
fn check_reads_back(release: &str, kinds: &[ReleaseTagKind], variants: &[String]) -> Result<()> {
    for kind in kinds {
        for variant in std::iter::once(None).chain(variants.iter().map(Some)) {
            let own = ReleaseTag {
                kind: kind.clone(),
                variant: variant.cloned(),
            };
            let text = own.to_string();
            if text.len() > names::TAG_MAX {
                bail!(
                    "{release} would write the tag {text:?}, longer than the {} characters a tag may hold: shorten its pre-release",
                    names::TAG_MAX
                );
            }
            let read = ReleaseTag::parse(&text, variants);
            if read.as_ref() != Some(&own) {
                let other = read.map_or_else(|| "no release's tag".to_string(), |r| r.describe());
                bail!(
                    "{release} would write the tag {text:?}, which is {other}: a pre-release must not end in \
                     -<variant> ({}); tag the release otherwise, e.g. v1.2.3-rc.1",
                    variants.join(", ")
                );
            }
        }
    }
    Ok(())
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
    // Only a push publishes (a job of another event may say `main` while it
    // checks out other code); an archive for rebuild-check publishes nothing.
    if !args.output_archive {
        context.check_release_event()?;
    }
    let (tags, must_be_new) = base_tags(
        context,
        TagRules {
            allow_any_ref: args.allow_any_ref,
            variants: inputs.available,
            writes_tags: !args.output_archive,
        },
    )?;
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
    let cache_inputs = cache::CacheInputs {
        backend,
        mode_override: args.build.cache_mode,
        build_ref: &build_ref,
        flavor: Flavor::Production,
        github_actions: context.ci.github_actions,
        repository: &repository,
        variant: "",
        local_dir: &args.build.cache_dir,
    };
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
            qualify(&must_be_new, variant, &args.default_variant)
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
                variant,
                ..cache_inputs.clone()
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
    // Both platforms' binaries in one compile, with no cache (a production
    // plan has none), SOURCE_DATE_EPOCH and --no-cache from the policy.
    let shared_compile = shared_compile::plan(&plans, &cache_inputs);
    let must_not_exist_because = if matches!(build_ref, BuildRef::Tag(ref tag) if Version::from_git_tag(tag).is_some())
    {
        "a release's version tag is immutable: bump the version, or pass --force to overwrite it"
            .to_string()
    } else {
        "a run with --allow-any-ref writes only tags that do not exist yet, so it can never move a release's: \
         delete that tag or release another ref, or pass --force to overwrite it"
            .to_string()
    };
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
        must_not_exist_because,
        preflight,
        warnings,
        gate,
        shared_compile,
    })
}
