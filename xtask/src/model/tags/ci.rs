//! CI image tags: `ci-<variant>` (moving) and `ci-<variant>-<unique>`
//! (`pr<N>`, a short commit, `-dirty`).

use std::fmt;

use super::{is_short_sha, pull_request_number, CI_PREFIX};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::names;
    use crate::model::tags::tests::names_to_try;
    use crate::model::tags::validate_variant;

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
}
