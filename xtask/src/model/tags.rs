//! The tag grammars of this project, each with its format and its parse side
//! by side, so what one command writes another reads back the same way:
//!
//! - variant names (`images/<variant>/`), checked against every grammar below;
//! - CI image tags: `ci-<variant>` and `ci-<variant>-<unique>`;
//! - build cache scopes and refs: `<variant>-<scope>` in `REPO-buildcache`;
//! - cosign's tags of a digest: `sha256-<hex>.sig`, `.att`, `.sbom` (cosign
//!   2), and the OCI referrers tag schema's `sha256-<hex>` (cosign 3's
//!   Sigstore bundles on a registry without the referrers API);
//! - the tags only releases write: versions (`1.2.3`, `1.2.3-rc.1`), their
//!   floating series (`1.2`, `1`), `latest`, `main` and `sha-<commit>`, bare
//!   or qualified by a variant (`1.2.3-ubi9`, `latest-ubi9`).
//!
//! A round-trip test runs every grammar over the discovered variants and over
//! names with dashes and digits; discovery refuses a variant name that would
//! not round-trip, so no grammar can misread a variant's tags.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

use super::names;
use super::reference::Repository;
use super::version::Version;

/// The default branch: its caches feed every pull request.
pub const DEFAULT_BRANCH: &str = "main";

/// The prefix of every CI tag; no release tag ever starts with it.
pub const CI_PREFIX: &str = "ci-";

/// The repository suffix under which registry caches live:
/// `REPO-buildcache:<variant>-<scope>`, a repository of their own so image
/// retention never mistakes a cache for an image.
pub const REGISTRY_CACHE_SUFFIX: &str = "-buildcache";

/// The name of the compile stages' own build (a bake target) and of their
/// cache (`compile-main`); no variant may take it.
pub const SHARED_COMPILE: &str = "compile";

/// Checks a variant name: lowercase alphanumerics in groups separated by
/// single `-`, `.` or `_` (so it fits tags, cache scopes and repository
/// paths), and that every tag grammar reads its tags back as this variant.
pub fn validate_variant(name: &str) -> Result<()> {
    let hint = "a variant is lowercase letters and digits in groups separated by single '-', '.' or '_', e.g. ubi9 or wolfi-base";
    let groups_ok = !name.is_empty()
        && name.len() <= 48
        && name.split(['-', '.', '_']).all(|g| {
            !g.is_empty()
                && g.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if !groups_ok {
        bail!("variant name {name:?} is not usable in tags: {hint}");
    }
    if name == SHARED_COMPILE {
        bail!("variant name {name:?} is taken by the compile stages' own build and cache: rename images/{name}");
    }
    let uniques = [
        CiUnique::PullRequest(12),
        CiUnique::Commit {
            sha: "0123abc".into(),
            dirty: false,
        },
        CiUnique::Commit {
            sha: "0123abc".into(),
            dirty: true,
        },
    ];
    for unique in std::iter::once(None).chain(uniques.into_iter().map(Some)) {
        let tag = CiTag {
            variant: name.to_string(),
            unique,
        };
        if CiTag::parse(&tag.to_string()).as_ref() != Some(&tag) {
            bail!(
                "variant name {name:?} reads back as another variant in its CI tag {tag}: its last group looks like a \
                 CI tag's suffix (prN or a commit); rename images/{name}"
            );
        }
    }
    for scope in [
        CacheScope::DefaultBranch,
        CacheScope::Local,
        CacheScope::PullRequest(12),
        CacheScope::Branch("feature-x".into()),
    ] {
        let reference = CacheTag {
            variant: name.to_string(),
            scope,
        };
        if CacheTag::parse(&reference.to_string()).as_ref() != Some(&reference) {
            bail!(
                "variant name {name:?} reads back as another variant in its cache tag {reference}: it contains a \
                 cache scope's words (-pr-, -branch-, -main, -local); rename images/{name}"
            );
        }
    }
    Ok(())
}

/// What makes a CI tag unique to one build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CiUnique {
    /// `pr<N>`: the build of a pull request.
    PullRequest(u64),
    /// `<short sha>` or `<short sha>-dirty` (7 to 40 lowercase hex digits).
    Commit { sha: String, dirty: bool },
}

impl fmt::Display for CiUnique {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CiUnique::PullRequest(number) => write!(f, "pr{number}"),
            CiUnique::Commit { sha, dirty: false } => f.write_str(sha),
            CiUnique::Commit { sha, dirty: true } => write!(f, "{sha}-dirty"),
        }
    }
}

fn is_short_sha(text: &str) -> bool {
    (7..=40).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A positive decimal without a leading zero (`12`, not `012` or `0`).
fn pull_request_number(text: &str) -> Option<u64> {
    let ok = !text.is_empty() && !text.starts_with('0') && text.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| text.parse().ok()).flatten()
}

/// A CI image tag: `ci-<variant>` (moves with every build) or
/// `ci-<variant>-<unique>` (one build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiTag {
    pub variant: String,
    pub unique: Option<CiUnique>,
}

impl fmt::Display for CiTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{CI_PREFIX}{}", self.variant)?;
        if let Some(unique) = &self.unique {
            write!(f, "-{unique}")?;
        }
        Ok(())
    }
}

impl CiTag {
    /// Reads a tag back; `None` for anything that is not exactly a CI tag.
    /// The unique part is read from the right, so a variant may hold dashes.
    pub fn parse(tag: &str) -> Option<CiTag> {
        let rest = tag.strip_prefix(CI_PREFIX)?;
        let variant_ok = |v: &str| {
            !v.is_empty()
                && v.split(['-', '.', '_']).all(|g| {
                    !g.is_empty()
                        && g.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                })
        };
        let with = |variant: &str, unique: Option<CiUnique>| {
            variant_ok(variant).then(|| CiTag {
                variant: variant.to_string(),
                unique,
            })
        };
        if let Some(front) = rest.strip_suffix("-dirty") {
            let (variant, sha) = front.rsplit_once('-')?;
            return is_short_sha(sha)
                .then(|| {
                    with(
                        variant,
                        Some(CiUnique::Commit {
                            sha: sha.to_string(),
                            dirty: true,
                        }),
                    )
                })
                .flatten();
        }
        if let Some((variant, last)) = rest.rsplit_once('-') {
            if let Some(number) = last.strip_prefix("pr").and_then(pull_request_number) {
                return with(variant, Some(CiUnique::PullRequest(number)));
            }
            if is_short_sha(last) {
                return with(
                    variant,
                    Some(CiUnique::Commit {
                        sha: last.to_string(),
                        dirty: false,
                    }),
                );
            }
        }
        with(rest, None)
    }
}

/// The scope a build's cache is written to and read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheScope {
    /// `main`: the default branch's, read by every build.
    DefaultBranch,
    /// `pr-<N>`.
    PullRequest(u64),
    /// `branch-<slug>`: another branch built in CI.
    Branch(String),
    /// `local`: a laptop's.
    Local,
}

impl fmt::Display for CacheScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheScope::DefaultBranch => f.write_str(DEFAULT_BRANCH),
            CacheScope::PullRequest(number) => write!(f, "pr-{number}"),
            CacheScope::Branch(slug) => write!(f, "branch-{slug}"),
            CacheScope::Local => f.write_str("local"),
        }
    }
}

impl FromStr for CacheScope {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<CacheScope> {
        if text == DEFAULT_BRANCH {
            return Ok(CacheScope::DefaultBranch);
        }
        if text == "local" {
            return Ok(CacheScope::Local);
        }
        if let Some(number) = text.strip_prefix("pr-").and_then(pull_request_number) {
            return Ok(CacheScope::PullRequest(number));
        }
        if let Some(slug) = text.strip_prefix("branch-").filter(|s| names::is_slug(s)) {
            return Ok(CacheScope::Branch(slug.to_string()));
        }
        bail!("malformed cache scope {text:?}: expected main, local, pr-<N> or branch-<slug>")
    }
}

impl CacheScope {
    /// The scope of a branch: `main` for the default branch, else `branch-<slug>`.
    pub fn of_branch(branch: &str) -> CacheScope {
        if branch == DEFAULT_BRANCH {
            CacheScope::DefaultBranch
        } else {
            CacheScope::Branch(names::slug(branch))
        }
    }
}

/// A tag of the registry cache repository: `<variant>-<scope>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheTag {
    pub variant: String,
    pub scope: CacheScope,
}

impl fmt::Display for CacheTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.variant, self.scope)
    }
}

impl CacheTag {
    /// Reads a cache tag back; `None` for any other shape. Where a tag could
    /// be read two ways, the reading that deletes less wins: a `-main` or
    /// `-local` suffix always protects, and a `-branch-` scope (pruned by age
    /// only) beats a `-pr-` one.
    pub fn parse(tag: &str) -> Option<CacheTag> {
        let variant_ok = |v: &str| {
            !v.is_empty()
                && v.split(['-', '.', '_']).all(|g| {
                    !g.is_empty()
                        && g.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                })
        };
        let candidates = [
            tag.strip_suffix(&format!("-{DEFAULT_BRANCH}"))
                .map(|v| (v, DEFAULT_BRANCH.to_string())),
            tag.strip_suffix("-local").map(|v| (v, "local".to_string())),
            tag.split_once("-branch-")
                .map(|(v, slug)| (v, format!("branch-{slug}"))),
            tag.rsplit_once("-pr-").map(|(v, n)| (v, format!("pr-{n}"))),
        ];
        candidates
            .into_iter()
            .flatten()
            .find_map(|(variant, scope)| {
                let scope: CacheScope = scope.parse().ok()?;
                variant_ok(variant).then(|| CacheTag {
                    variant: variant.to_string(),
                    scope,
                })
            })
    }

    /// `REPO-buildcache:<variant>-<scope>`.
    pub fn registry_ref(&self, repository: &Repository) -> String {
        format!("{repository}{REGISTRY_CACHE_SUFFIX}:{self}")
    }

    /// The scope of the `gha` backend: `<image name>-<variant>-<scope>`.
    pub fn gha_scope(&self, image_name: &str) -> String {
        format!("{image_name}-{self}")
    }
}

/// What cosign stores beside a digest, as a tag `sha256-<hex><suffix>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CosignKind {
    Signature,
    Attestation,
    Sbom,
    /// `sha256-<hex>`, no suffix: the OCI referrers tag schema, an index of
    /// the manifests that refer to the digest (cosign 3's Sigstore bundles
    /// where the registry has no referrers API).
    Referrers,
}

impl CosignKind {
    fn suffix(self) -> &'static str {
        match self {
            CosignKind::Signature => ".sig",
            CosignKind::Attestation => ".att",
            CosignKind::Sbom => ".sbom",
            CosignKind::Referrers => "",
        }
    }
}

/// A cosign tag and the digest it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignTag {
    pub target: String,
    pub kind: CosignKind,
}

impl fmt::Display for CosignTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            self.target.replacen(':', "-", 1),
            self.kind.suffix()
        )
    }
}

impl CosignTag {
    pub fn parse(tag: &str) -> Option<CosignTag> {
        let rest = tag.strip_prefix("sha256-")?;
        [
            CosignKind::Signature,
            CosignKind::Attestation,
            CosignKind::Sbom,
            CosignKind::Referrers,
        ]
        .into_iter()
        .find_map(|kind| {
            let target = format!("sha256:{}", rest.strip_suffix(kind.suffix())?);
            names::validate_digest(&target)
                .is_ok()
                .then_some(CosignTag { target, kind })
        })
    }
}

/// What a release tag says before its variant: the tags that only
/// releases (of `main` or of a version tag `vX.Y.Z`) write. A run from any
/// other ref (`release-image --allow-any-ref`) must write none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseTagKind {
    /// `1.2.3`, `1.2.3-rc.1`: one release, immutable.
    Version(Version),
    /// `1.2`: moves to the newest stable release of the series.
    Minor { major: u64, minor: u64 },
    /// `1`: moves to the newest stable release of the major version
    /// (releases never write `0`, but a `0` is version-shaped all the same).
    Major(u64),
    /// `latest`: the newest stable release.
    Latest,
    /// `main`: the newest build of the default branch.
    DefaultBranch,
    /// `sha-<short commit>`: the default branch's build of that commit.
    Commit(String),
}

impl fmt::Display for ReleaseTagKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseTagKind::Version(version) => f.write_str(&version.tag()),
            ReleaseTagKind::Minor { major, minor } => write!(f, "{major}.{minor}"),
            ReleaseTagKind::Major(major) => write!(f, "{major}"),
            ReleaseTagKind::Latest => f.write_str(LATEST),
            ReleaseTagKind::DefaultBranch => f.write_str(DEFAULT_BRANCH),
            ReleaseTagKind::Commit(sha) => write!(f, "{COMMIT_PREFIX}{sha}"),
        }
    }
}

/// The tag of the newest stable release.
pub const LATEST: &str = "latest";

/// The prefix of the tag that names the commit a build of `main` was made from.
pub const COMMIT_PREFIX: &str = "sha-";

impl ReleaseTagKind {
    /// Reads an unqualified release tag; `None` for any other text.
    fn parse(text: &str) -> Option<ReleaseTagKind> {
        match text {
            LATEST => return Some(ReleaseTagKind::Latest),
            DEFAULT_BRANCH => return Some(ReleaseTagKind::DefaultBranch),
            _ => {}
        }
        if let Some(sha) = text.strip_prefix(COMMIT_PREFIX) {
            return is_short_sha(sha).then(|| ReleaseTagKind::Commit(sha.to_string()));
        }
        // A tag cannot hold `+`, so a version tag never carries build metadata.
        if !text.contains('+') {
            if let Ok(version) = text.parse::<Version>() {
                return Some(ReleaseTagKind::Version(version));
            }
        }
        let numbers: Vec<Option<u64>> = text.split('.').map(decimal).collect();
        match numbers.as_slice() {
            [Some(major)] => Some(ReleaseTagKind::Major(*major)),
            [Some(major), Some(minor)] => Some(ReleaseTagKind::Minor {
                major: *major,
                minor: *minor,
            }),
            _ => None,
        }
    }

    /// What the tag is, in words, for refusals that name it.
    pub fn describe(&self) -> String {
        match self {
            ReleaseTagKind::Version(version) => format!("the tag of release v{version}"),
            ReleaseTagKind::Minor { major, minor } => {
                format!("the floating tag of the v{major}.{minor}.x releases")
            }
            ReleaseTagKind::Major(major) => {
                format!("the floating tag of the v{major}.x.y releases")
            }
            ReleaseTagKind::Latest => "the tag of the newest release".to_string(),
            ReleaseTagKind::DefaultBranch => {
                format!("the tag of the newest build of {DEFAULT_BRANCH}")
            }
            ReleaseTagKind::Commit(sha) => {
                format!("the tag of {DEFAULT_BRANCH}'s build of commit {sha}")
            }
        }
    }
}

/// A decimal without a leading zero (`0`, `12`; not `012` or `+1`).
fn decimal(text: &str) -> Option<u64> {
    let ok = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    ok.then(|| text.parse().ok()).flatten()
}

/// A tag a release writes: `<kind>` (the default variant's bare tags) or
/// `<kind>-<variant>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseTag {
    pub kind: ReleaseTagKind,
    pub variant: Option<String>,
}

impl fmt::Display for ReleaseTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(variant) = &self.variant {
            write!(f, "-{variant}")?;
        }
        Ok(())
    }
}

impl ReleaseTag {
    /// Reads a tag back as the release tag it is, given every variant; `None`
    /// when no release writes it. A version's pre-release may end the way a
    /// variant's tag does (`1.2.3-ubi9`): the variant reading wins, since it
    /// is what the release of `1.2.3` writes for that variant (a release whose
    /// own tag reads back as another is refused, so no two releases share one).
    /// Longer variant names are tried first (`wolfi-base` before `base`).
    pub fn parse(tag: &str, variants: &[String]) -> Option<ReleaseTag> {
        let mut by_length: Vec<&String> = variants.iter().collect();
        by_length.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for variant in by_length {
            let base = tag
                .strip_suffix(variant.as_str())
                .and_then(|rest| rest.strip_suffix('-'));
            if let Some(kind) = base.and_then(ReleaseTagKind::parse) {
                return Some(ReleaseTag {
                    kind,
                    variant: Some(variant.clone()),
                });
            }
        }
        ReleaseTagKind::parse(tag).map(|kind| ReleaseTag {
            kind,
            variant: None,
        })
    }

    /// What the tag is, in words: `the tag of release v1.2.3 (its ubi9 image)`.
    pub fn describe(&self) -> String {
        match &self.variant {
            Some(variant) => format!("{} (its {variant} image)", self.kind.describe()),
            None => self.kind.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names with dashes, dots and digits (tests/grammars.rs runs the same
    /// round trips over every variant discovered under images/).
    fn names_to_try() -> Vec<String> {
        [
            "chainguard",
            "distroless",
            "wolfi-base",
            "ubi9",
            "alpine-3.20",
            "a1-b2-c3",
            "debian_12",
            "x",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn ci_tags_round_trip() {
        for variant in names_to_try() {
            validate_variant(&variant).unwrap();
            for unique in [
                None,
                Some(CiUnique::PullRequest(7)),
                Some(CiUnique::PullRequest(1234)),
                Some(CiUnique::Commit {
                    sha: "abcdef0".into(),
                    dirty: false,
                }),
                Some(CiUnique::Commit {
                    sha: "0123456789abcdef0123456789abcdef01234567".into(),
                    dirty: true,
                }),
            ] {
                let tag = CiTag {
                    variant: variant.clone(),
                    unique,
                };
                let text = tag.to_string();
                names::validate_tag(&text).unwrap();
                assert_eq!(CiTag::parse(&text), Some(tag), "{text}");
            }
        }
    }

    #[test]
    fn cache_tags_round_trip() {
        for variant in names_to_try() {
            for scope in [
                CacheScope::DefaultBranch,
                CacheScope::Local,
                CacheScope::PullRequest(42),
                CacheScope::Branch("feature-x-y".into()),
                CacheScope::Branch("release-1.2".into()),
            ] {
                let tag = CacheTag {
                    variant: variant.clone(),
                    scope,
                };
                let text = tag.to_string();
                names::validate_tag(&text).unwrap();
                assert_eq!(CacheTag::parse(&text), Some(tag), "{text}");
            }
        }
    }

    #[test]
    fn not_ci_tags() {
        for other in [
            "ci-",
            "ci",
            "1.2.3",
            "latest",
            "ci-Ubi9",
            "ci--x",
            "ci-ubi9--pr1",
            "ci-ubi9-abc-dirty",
            "sha256-00.sig",
        ] {
            assert_eq!(CiTag::parse(other), None, "{other}");
        }
        assert_eq!(
            CiTag::parse("ci-wolfi-base-pr3"),
            Some(CiTag {
                variant: "wolfi-base".into(),
                unique: Some(CiUnique::PullRequest(3))
            })
        );
        assert_eq!(
            CiTag::parse("ci-wolfi-base").map(|t| t.variant),
            Some("wolfi-base".into())
        );
        // The grammar alone cannot tell a dashed variant's moving tag from
        // another tag: `ci-ubi9-pr` is the moving tag of a variant `ubi9-pr`
        // (prune counts it as CI only if that variant exists).
        assert_eq!(
            CiTag::parse("ci-ubi9-pr").map(|t| (t.variant, t.unique)),
            Some(("ubi9-pr".into(), None))
        );
    }

    #[test]
    fn ambiguous_cache_tags_read_the_way_that_deletes_less() {
        assert_eq!(
            CacheTag::parse("a-pr-1-main").map(|t| t.scope),
            Some(CacheScope::DefaultBranch)
        );
        assert_eq!(
            CacheTag::parse("a-branch-x-pr-1").map(|t| t.scope),
            Some(CacheScope::Branch("x-pr-1".into()))
        );
        for other in [
            "main",
            "-main",
            "ubi9-pr-0",
            "ubi9-pr-01",
            "ubi9-branch-",
            "ubi9-branch-X",
            "ubi9",
            "Ubi9-main",
        ] {
            assert_eq!(CacheTag::parse(other), None, "{other}");
        }
    }

    #[test]
    fn variant_names_that_would_not_round_trip_are_refused() {
        for bad in [
            "x-pr1",
            "x-abcdef0",
            "x-abcdef0-dirty",
            "x-branch-y",
            "Ubi9",
            "a--b",
            "-a",
            "",
            "a b",
            SHARED_COMPILE,
        ] {
            assert!(validate_variant(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn cosign_tags() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        for kind in [
            CosignKind::Signature,
            CosignKind::Attestation,
            CosignKind::Sbom,
            CosignKind::Referrers,
        ] {
            let tag = CosignTag {
                target: digest.clone(),
                kind,
            };
            assert_eq!(CosignTag::parse(&tag.to_string()), Some(tag));
        }
        let referrers = CosignTag::parse(&format!("sha256-{}", "ab".repeat(32))).unwrap();
        assert_eq!(
            (referrers.target, referrers.kind),
            (digest.clone(), CosignKind::Referrers)
        );
        assert_eq!(CosignTag::parse("sha256-ab.sig"), None);
        assert_eq!(CosignTag::parse("sha256-ab"), None);
        assert_eq!(
            CosignTag::parse(&format!("sha256-{}", "AB".repeat(32))),
            None
        );
        assert_eq!(
            CosignTag::parse(&format!("sha256-{}-x", "ab".repeat(32))),
            None
        );
        assert_eq!(
            CosignTag::parse(&format!("sha256-{}.txt", "ab".repeat(32))),
            None
        );
    }

    fn release_kinds() -> Vec<ReleaseTagKind> {
        vec![
            ReleaseTagKind::Version("1.2.3".parse().unwrap()),
            ReleaseTagKind::Version("0.1.0".parse().unwrap()),
            ReleaseTagKind::Version("1.2.3-rc.1".parse().unwrap()),
            ReleaseTagKind::Version("2.0.0-beta.11".parse().unwrap()),
            ReleaseTagKind::Version("1.0.0-x-y.0".parse().unwrap()),
            ReleaseTagKind::Minor { major: 1, minor: 2 },
            ReleaseTagKind::Minor { major: 0, minor: 4 },
            ReleaseTagKind::Major(1),
            ReleaseTagKind::Major(10),
            ReleaseTagKind::Latest,
            ReleaseTagKind::DefaultBranch,
            ReleaseTagKind::Commit("0123abc".into()),
            ReleaseTagKind::Commit("0123456789abcdef0123456789abcdef01234567".into()),
        ]
    }

    #[test]
    fn release_tags_round_trip() {
        let variants = names_to_try();
        for kind in release_kinds() {
            let bare = ReleaseTag {
                kind: kind.clone(),
                variant: None,
            };
            names::validate_tag(&bare.to_string()).unwrap();
            assert_eq!(
                ReleaseTag::parse(&bare.to_string(), &variants),
                Some(bare.clone()),
                "{bare}"
            );
            for variant in &variants {
                let tag = ReleaseTag {
                    kind: kind.clone(),
                    variant: Some(variant.clone()),
                };
                let text = tag.to_string();
                names::validate_tag(&text).unwrap();
                assert_eq!(ReleaseTag::parse(&text, &variants), Some(tag), "{text}");
            }
        }
    }

    #[test]
    fn release_tags_read_as_releases_write_them() {
        let variants: Vec<String> = ["chainguard", "distroless", "ubi9", "wolfi-base", "base"]
            .map(String::from)
            .to_vec();
        let read = |tag: &str| ReleaseTag::parse(tag, &variants);
        let version = |v: &str| ReleaseTagKind::Version(v.parse().unwrap());
        // A pre-release that ends like a variant's tag reads as that variant's tag.
        assert_eq!(
            read("1.2.3-ubi9"),
            Some(ReleaseTag {
                kind: version("1.2.3"),
                variant: Some("ubi9".into())
            })
        );
        assert_eq!(
            read("1.2.3-rc.1-ubi9"),
            Some(ReleaseTag {
                kind: version("1.2.3-rc.1"),
                variant: Some("ubi9".into())
            })
        );
        assert_eq!(
            read("latest-wolfi-base").and_then(|t| t.variant),
            Some("wolfi-base".into()),
            "the longest variant name first"
        );
        assert_eq!(
            read("1.2.3-rc.1").map(|t| t.kind),
            Some(version("1.2.3-rc.1"))
        );
        // Version-shaped and release words, bare or for a variant: release tags.
        for owned in [
            "1.2.3",
            "1.2.3-rc.1",
            "1.2.3-0",
            "1.2",
            "1",
            "0",
            "latest",
            "latest-ubi9",
            "main",
            "main-distroless",
            "sha-0123abc",
            "sha-0123abc-chainguard",
            "1-ubi9",
            "1.2-wolfi-base",
            "1.2.3-unknownvariant",
        ] {
            assert!(read(owned).is_some(), "{owned} is a release's tag");
        }
        // What metadata-action's fixtures push as tags and branches, and other
        // refs: none of these is a tag a release writes.
        for other in [
            "dev",
            "master",
            "my-feature-1245",
            "sometag",
            "release1",
            "20200110-rc2",
            "p1-v1.0.0",
            "1.0dev4",
            "1.1beta2",
            "1.2.3rc2",
            "1.2post1",
            "v1.2.3",
            "01.2.3",
            "1.02",
            "1.2.3.4",
            "latest-unknownvariant",
            "main-feature",
            "mainline",
            "sha-xyz",
            "sha-0123ab",
            "pr-12",
            "feature-x",
            "ci-ubi9",
            "",
        ] {
            assert_eq!(read(other), None, "{other} is no release's tag");
        }
        assert!(read("latest-ubi9")
            .unwrap()
            .describe()
            .contains("newest release (its ubi9 image)"));
    }

    #[test]
    fn scopes_and_refs() {
        assert_eq!(
            CacheScope::of_branch("feature/X_y"),
            CacheScope::Branch("feature-x-y".into())
        );
        assert_eq!(CacheScope::of_branch("main"), CacheScope::DefaultBranch);
        let tag = CacheTag {
            variant: "ubi9".into(),
            scope: CacheScope::PullRequest(42),
        };
        assert_eq!(
            tag.registry_ref(&"ghcr.io/acme/beacon".parse().unwrap()),
            "ghcr.io/acme/beacon-buildcache:ubi9-pr-42"
        );
        assert_eq!(tag.gha_scope("beacon"), "beacon-ubi9-pr-42");
        assert!("pr-0".parse::<CacheScope>().is_err());
    }
}
