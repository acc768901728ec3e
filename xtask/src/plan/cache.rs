//! The cache policy. CI builds read their own scope and then the default
//! branch's (so a pull request's first build is warm), and write only their
//! own scope, in a mode that follows the path: CI builds of the default
//! branch write `max` (they feed every pull request), pull requests `min`
//! (cheap to export, small). Production builds read and write no cache at
//! all: a release then depends on no cache entry anyone wrote (a poisoned
//! entry of a less trusted build cannot reach it), and its `release` cargo
//! profile differs from the CI builds' anyway, so their layers would not
//! warm it.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Result};

use crate::context::BuildRef;
use crate::model::reference::Repository;
use crate::model::tags::{CacheScope, CacheTag};
use crate::plan::{CachePlan, Flavor};

/// Where build caches are exported to and imported from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheBackend {
    /// GitHub's cache service (GitHub Actions only).
    Gha,
    /// A registry repository `<image>-buildcache`.
    Registry,
    /// A directory.
    Local,
    None,
}

impl CacheBackend {
    pub const NAMES: &'static [&'static str] = &["gha", "registry", "local", "none"];
}

impl FromStr for CacheBackend {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<CacheBackend> {
        Ok(match text {
            "gha" => CacheBackend::Gha,
            "registry" => CacheBackend::Registry,
            "local" => CacheBackend::Local,
            "none" => CacheBackend::None,
            _ => bail!(
                "unknown cache backend {text:?}: expected one of {}",
                CacheBackend::NAMES.join(", ")
            ),
        })
    }
}

/// What a build writes to the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheMode {
    /// Export every intermediate layer (best hit rate, slowest export).
    Max,
    /// Export only the final image's layers.
    Min,
    /// Read the cache, write nothing.
    ReadOnly,
}

impl CacheMode {
    pub const NAMES: &'static [&'static str] = &["max", "min", "read-only"];
}

impl FromStr for CacheMode {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<CacheMode> {
        Ok(match text {
            "max" => CacheMode::Max,
            "min" => CacheMode::Min,
            "read-only" => CacheMode::ReadOnly,
            _ => bail!(
                "unknown cache mode {text:?}: expected one of {}",
                CacheMode::NAMES.join(", ")
            ),
        })
    }
}

impl fmt::Display for CacheMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CacheMode::Max => "max",
            CacheMode::Min => "min",
            CacheMode::ReadOnly => "read-only",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheInputs<'a> {
    pub backend: CacheBackend,
    pub mode_override: Option<CacheMode>,
    pub build_ref: &'a BuildRef,
    /// Production builds write no cache by default (see the module comment).
    pub flavor: Flavor,
    pub github_actions: bool,
    pub repository: &'a Repository,
    pub variant: &'a str,
    pub local_dir: &'a Path,
}

/// The scope a ref writes its cache to: `pr-42`, `main`, `branch-foo`,
/// `local`; none for a release tag.
pub fn scope(build_ref: &BuildRef, github_actions: bool) -> Option<CacheScope> {
    match build_ref {
        BuildRef::PullRequest(number) => Some(CacheScope::PullRequest(*number)),
        BuildRef::Branch(branch) => match CacheScope::of_branch(branch) {
            CacheScope::Branch(_) if !github_actions => Some(CacheScope::Local),
            // A branch whose name leaves no slug (`_`) shares the laptop scope.
            CacheScope::Branch(slug) if slug.is_empty() => Some(CacheScope::Local),
            scope => Some(scope),
        },
        // Release tags write nothing: the default branch holds the same layers.
        BuildRef::Tag(_) => None,
        BuildRef::Detached => Some(CacheScope::Local),
    }
}

/// The export mode a build writes with, unless overridden.
pub fn default_mode(build_ref: &BuildRef, flavor: Flavor) -> CacheMode {
    match (flavor, build_ref) {
        (Flavor::Production, _) | (_, BuildRef::Tag(_)) => CacheMode::ReadOnly,
        (Flavor::Ci, BuildRef::PullRequest(_)) => CacheMode::Min,
        (Flavor::Ci, _) => CacheMode::Max,
    }
}

pub fn plan(inputs: &CacheInputs<'_>) -> CachePlan {
    if inputs.flavor == Flavor::Production {
        return CachePlan::default();
    }
    let own = scope(inputs.build_ref, inputs.github_actions);
    let mode = inputs
        .mode_override
        .unwrap_or_else(|| default_mode(inputs.build_ref, inputs.flavor));
    let mut read_scopes: Vec<CacheScope> = own.iter().cloned().collect();
    if own != Some(CacheScope::DefaultBranch) {
        read_scopes.push(CacheScope::DefaultBranch);
    }
    let write_scope = match mode {
        CacheMode::ReadOnly => None,
        CacheMode::Max | CacheMode::Min => own,
    };
    let mode_text = match mode {
        CacheMode::Min => "min",
        _ => "max",
    };
    let tag = |scope: &CacheScope| CacheTag {
        variant: inputs.variant.to_string(),
        scope: scope.clone(),
    };
    let name = inputs.repository.name();
    let (from, to): (Vec<String>, Option<String>) = match inputs.backend {
        CacheBackend::None => (Vec::new(), None),
        CacheBackend::Gha => (
            read_scopes
                .iter()
                .map(|s| format!("type=gha,scope={}", tag(s).gha_scope(name)))
                .collect(),
            write_scope.map(|s| {
                format!(
                    "type=gha,scope={},mode={mode_text}",
                    tag(&s).gha_scope(name)
                )
            }),
        ),
        CacheBackend::Registry => (
            read_scopes
                .iter()
                .map(|s| {
                    format!(
                        "type=registry,ref={}",
                        tag(s).registry_ref(inputs.repository)
                    )
                })
                .collect(),
            write_scope.map(|s| {
                format!(
                    "type=registry,ref={},mode={mode_text},image-manifest=true,oci-mediatypes=true",
                    tag(&s).registry_ref(inputs.repository)
                )
            }),
        ),
        CacheBackend::Local => {
            let dir = |s: &CacheScope| {
                inputs
                    .local_dir
                    .join(tag(s).to_string())
                    .display()
                    .to_string()
            };
            (
                read_scopes
                    .iter()
                    .map(|s| format!("type=local,src={}", dir(s)))
                    .collect(),
                write_scope.map(|s| format!("type=local,dest={},mode={mode_text}", dir(&s))),
            )
        }
    };
    CachePlan {
        from,
        to: to.into_iter().collect(),
    }
}

/// Default backend: GitHub's cache service inside Actions; elsewhere none
/// (the local engine's build cache still makes rebuilds warm).
pub fn default_backend(github_actions: bool) -> CacheBackend {
    if github_actions {
        CacheBackend::Gha
    } else {
        CacheBackend::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(
        backend: CacheBackend,
        build_ref: &'a BuildRef,
        mode: Option<CacheMode>,
    ) -> CacheInputs<'a> {
        CacheInputs {
            backend,
            mode_override: mode,
            build_ref,
            flavor: Flavor::Ci,
            github_actions: true,
            repository: Box::leak(Box::new("ghcr.io/acme/beacon".parse().unwrap())),
            variant: "ubi9",
            local_dir: Path::new("/cache"),
        }
    }

    #[test]
    fn pull_request_reads_own_and_main_writes_own_min() {
        let pr = BuildRef::PullRequest(42);
        let gha = plan(&inputs(CacheBackend::Gha, &pr, None));
        assert_eq!(
            gha.from,
            [
                "type=gha,scope=beacon-ubi9-pr-42",
                "type=gha,scope=beacon-ubi9-main"
            ]
        );
        assert_eq!(gha.to, ["type=gha,scope=beacon-ubi9-pr-42,mode=min"]);
        let registry = plan(&inputs(CacheBackend::Registry, &pr, None));
        assert_eq!(
            registry.from,
            [
                "type=registry,ref=ghcr.io/acme/beacon-buildcache:ubi9-pr-42",
                "type=registry,ref=ghcr.io/acme/beacon-buildcache:ubi9-main"
            ]
        );
        assert!(registry.to[0]
            .starts_with("type=registry,ref=ghcr.io/acme/beacon-buildcache:ubi9-pr-42,mode=min"));
        let local = plan(&inputs(CacheBackend::Local, &pr, None));
        assert_eq!(
            local.from,
            [
                "type=local,src=/cache/ubi9-pr-42",
                "type=local,src=/cache/ubi9-main"
            ]
        );
        assert_eq!(local.to, ["type=local,dest=/cache/ubi9-pr-42,mode=min"]);
    }

    #[test]
    fn default_branch_writes_max_and_reads_only_itself() {
        let main = BuildRef::Branch("main".into());
        for backend in [
            CacheBackend::Gha,
            CacheBackend::Registry,
            CacheBackend::Local,
        ] {
            let cache = plan(&inputs(backend, &main, None));
            assert_eq!(cache.from.len(), 1, "{backend:?}");
            assert!(
                cache.to[0].contains("main") && cache.to[0].contains("mode=max"),
                "{backend:?}"
            );
        }
    }

    #[test]
    fn tags_read_main_and_write_nothing_and_overrides_apply() {
        let tag = BuildRef::Tag("v1.2.3".into());
        let cache = plan(&inputs(CacheBackend::Gha, &tag, None));
        assert_eq!(cache.from, ["type=gha,scope=beacon-ubi9-main"]);
        assert!(cache.to.is_empty());
        let pr = BuildRef::PullRequest(7);
        assert!(
            plan(&inputs(CacheBackend::Gha, &pr, Some(CacheMode::ReadOnly)))
                .to
                .is_empty()
        );
        assert!(
            plan(&inputs(CacheBackend::Gha, &pr, Some(CacheMode::Max))).to[0].ends_with("mode=max")
        );
        assert_eq!(
            plan(&inputs(CacheBackend::None, &pr, None)),
            CachePlan::default()
        );
    }

    #[test]
    fn production_builds_read_and_write_no_cache_at_all() {
        for build_ref in [
            BuildRef::Branch("main".into()),
            BuildRef::Tag("v1.2.3".into()),
        ] {
            for backend in [
                CacheBackend::Gha,
                CacheBackend::Registry,
                CacheBackend::Local,
            ] {
                for mode in [None, Some(CacheMode::Max), Some(CacheMode::ReadOnly)] {
                    let mut release = inputs(backend, &build_ref, mode);
                    release.flavor = Flavor::Production;
                    assert_eq!(
                        plan(&release),
                        CachePlan::default(),
                        "{build_ref:?} {backend:?} {mode:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn other_refs() {
        assert_eq!(
            scope(&BuildRef::Branch("feature/X_y".into()), true),
            Some(CacheScope::Branch("feature-x-y".into()))
        );
        assert_eq!(
            scope(&BuildRef::Branch("feature".into()), false),
            Some(CacheScope::Local)
        );
        assert_eq!(
            scope(&BuildRef::Branch("_".into()), true),
            Some(CacheScope::Local)
        );
        assert_eq!(scope(&BuildRef::Detached, false), Some(CacheScope::Local));
        assert_eq!(default_backend(false), CacheBackend::None);
    }
}
