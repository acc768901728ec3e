//! The tags only releases write: versions (`1.2.3`, `1.2.3-rc.1`), their
//! floating series (`1.2`, `1`), `latest`, `main` and `sha-<commit>`, bare
//! or qualified by a variant (`1.2.3-ubi9`, `latest-ubi9`).

use std::fmt;

use super::{is_short_sha, DEFAULT_BRANCH};
use crate::model::version::Version;

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
    use crate::model::names;
    use crate::model::tags::tests::names_to_try;

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
}
