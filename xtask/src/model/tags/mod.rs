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
//! One file per grammar (`ci.rs`, `cache.rs`, `cosign.rs`, `release.rs`);
//! the variant names, which every grammar must read back, here.
//!
//! A round-trip test runs every grammar over the discovered variants and over
//! names with dashes and digits; discovery refuses a variant name that would
//! not round-trip, so no grammar can misread a variant's tags.

use anyhow::{bail, Result};

mod cache;
mod ci;
mod cosign;
mod release;

pub use cache::{CacheScope, CacheTag};
pub use ci::{CiTag, CiUnique};
pub use cosign::{CosignKind, CosignTag};
pub use release::{ReleaseTag, ReleaseTagKind, COMMIT_PREFIX, LATEST};

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

/// 7 to 40 lowercase hex digits: a commit, shortened or not.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Names with dashes, dots and digits (tests/grammars.rs runs the same
    /// round trips over every variant discovered under images/).
    pub(super) fn names_to_try() -> Vec<String> {
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
}
