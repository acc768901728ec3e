//! The tags a release moves, derived from the ref it builds and the
//! repository's release tags (the way docker/metadata-action users expect,
//! with two differences that keep a release from being overwritten: floating
//! tags only move forwards, and a run from any other ref never writes a
//! release's tag). The build stage records them; the promotion recomputes
//! them here and moves only these (a release record is untrusted input).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};

use crate::context::{BuildContext, BuildRef};
use crate::model::names;
use crate::model::reference::{ImageRef, Repository};
use crate::model::tags::{ReleaseTag, ReleaseTagKind, CI_PREFIX, DEFAULT_BRANCH};
use crate::model::version::Version;
use crate::plan::Plan;

/// The annotation that carries a release's version.
const VERSION_ANNOTATION: &str = "org.opencontainers.image.version";

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
                let kinds = version_kinds(context, &version);
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

/// The tags of a release of `version`: its own, and the floating ones it
/// is the newest of. Pre-releases get only their full version; floating
/// tags follow stable releases, and only forwards: a backport (v1.1.9 after
/// v1.2.0) moves `1.1` but neither `1` nor `latest`.
fn version_kinds(context: &BuildContext, version: &Version) -> Vec<ReleaseTagKind> {
    // A tag cannot hold build metadata (`+...`); precedence ignores it.
    let mut kinds = vec![ReleaseTagKind::Version(version.without_build())];
    if version.is_prerelease() {
        return kinds;
    }
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
            .all(|other| other <= version)
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
    kinds
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

/// What a release asks of its tags beside the ref: which variant gets the
/// bare tags, and whether existing version tags may be overwritten.
#[derive(Debug, Clone, Copy)]
pub struct TagRequest<'a> {
    pub rules: TagRules<'a>,
    /// The variant that also gets the bare tags; `none` for no bare tags.
    pub default_variant: &'a str,
    /// Overwrite version tags that already exist (none is then immutable).
    pub force: bool,
}

/// One variant's tags: every tag it moves, and those that must not exist
/// yet on another digest (a version's own tag; every tag of an
/// `--allow-any-ref` run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VariantTags {
    pub tags: Vec<ImageRef>,
    pub immutable: Vec<ImageRef>,
}

/// The tags of a release, per variant, and the version its images carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseTags {
    /// `org.opencontainers.image.version`: the tag's version, or the ref's
    /// first tag (`main`, a branch's slug).
    pub version: String,
    pub variants: BTreeMap<String, VariantTags>,
}

/// The tags every variant of a release moves, derived from the ref and the
/// repository's release tags (see [`base_tags`]), qualified by variant.
pub fn release_tags(
    context: &BuildContext,
    request: TagRequest<'_>,
    repository: &Repository,
    variants: &[String],
) -> Result<ReleaseTags> {
    let base = base_tags(context, request.rules)?;
    qualified_tags(context, &base, request, repository, variants)
}

/// [`release_tags`] from the base tags [`base_tags`] gave.
pub fn qualified_tags(
    context: &BuildContext,
    (tags, must_be_new): &(Vec<String>, Vec<String>),
    request: TagRequest<'_>,
    repository: &Repository,
    variants: &[String],
) -> Result<ReleaseTags> {
    let version = match context.build_ref() {
        BuildRef::Tag(tag) => tag.trim_start_matches('v').to_string(),
        _ => tags.first().cloned().unwrap_or_default(),
    };
    let mut per_variant = BTreeMap::new();
    for variant in variants {
        let qualified = qualify(tags, variant, request.default_variant);
        for tag in &qualified {
            names::validate_tag(tag)?;
            if tag.starts_with(CI_PREFIX) {
                bail!("the release tag {tag:?} would start with ci-, which is reserved for CI images: release from another ref");
            }
        }
        let immutable = if request.force {
            Vec::new()
        } else {
            qualify(must_be_new, variant, request.default_variant)
        };
        let tagged = |tags: &[String]| -> Result<Vec<ImageRef>> {
            tags.iter().map(|t| repository.tagged(t)).collect()
        };
        per_variant.insert(
            variant.clone(),
            VariantTags {
                tags: tagged(&qualified)?,
                immutable: tagged(&immutable)?,
            },
        );
    }
    Ok(ReleaseTags {
        version,
        variants: per_variant,
    })
}

impl ReleaseTags {
    /// The tags a release plan moves, as its build stage records them.
    pub fn of_plan(plan: &Plan) -> ReleaseTags {
        let version = plan
            .variants
            .first()
            .and_then(|v| v.policy.annotations.get(VERSION_ANNOTATION))
            .cloned()
            .unwrap_or_default();
        let variants = plan
            .variants
            .iter()
            .map(|v| {
                let immutable = v
                    .policy
                    .tags
                    .iter()
                    .filter(|t| plan.must_not_exist.contains(t))
                    .cloned()
                    .collect();
                let tags = VariantTags {
                    tags: v.policy.tags.clone(),
                    immutable,
                };
                (v.variant.clone(), tags)
            })
            .collect();
        ReleaseTags { version, variants }
    }
}

/// Refuses a default variant (the one that also gets the bare tags) that is
/// not a variant on disk; `none` gives no bare tags.
pub fn check_default_variant(default_variant: &str, available: &[String]) -> Result<()> {
    if default_variant != "none" && !available.iter().any(|v| v == default_variant) {
        bail!(
            "unknown --default-variant {default_variant:?}: valid variants are {} (or none)",
            available.join(", ")
        );
    }
    Ok(())
}

/// How a recorded list of tags differs from the derived one: the tags it
/// adds and the tags it lacks (empty when they are the same set).
pub fn differences(recorded: &[ImageRef], derived: &[ImageRef]) -> (Vec<String>, Vec<String>) {
    let recorded: BTreeSet<String> = recorded.iter().map(ToString::to_string).collect();
    let derived: BTreeSet<String> = derived.iter().map(ToString::to_string).collect();
    (
        recorded.difference(&derived).cloned().collect(),
        derived.difference(&recorded).cloned().collect(),
    )
}
