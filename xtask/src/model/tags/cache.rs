//! Build cache scopes and refs: `<variant>-<scope>` (`main`, `local`,
//! `pr-<N>`, `branch-<slug>`) in the repository `REPO-buildcache`.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

use super::{pull_request_number, DEFAULT_BRANCH, REGISTRY_CACHE_SUFFIX};
use crate::model::names;
use crate::model::reference::Repository;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tags::tests::names_to_try;

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
