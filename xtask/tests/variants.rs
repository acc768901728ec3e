//! "Adding a variant is adding a directory", proven: every tag grammar
//! round-trips for every variant discovered under images/, and a scratch
//! copy of the repository's images/ with one more variant, named with a dash
//! and a digit, is discovered, planned, rendered and its tags read back the
//! way `prune-ci-images` reads them. No test counts the variants.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use xtask::commands::prune::{classify, classify_cache, CacheKind, TagKind};
use xtask::context::BuildContext;
use xtask::model::names;
use xtask::model::tags::{self, CacheScope, CacheTag, CiTag, CiUnique};
use xtask::plan::ci::{self, CiRequest};
use xtask::plan::release::{self, ReleaseInputs, ReleaseRequest, DEFAULT_SBOM_GENERATOR};
use xtask::plan::{BuildOptions, SignMethod, SigningRequest};
use xtask::render::{self, RunFiles};

fn root() -> PathBuf {
    xtask::project::project_root()
}

fn context(git_ref: &str) -> BuildContext {
    BuildContext::example(Some(git_ref))
}

fn options() -> BuildOptions {
    BuildOptions {
        variants: Vec::new(),
        registry: Some("registry.example/acme".into()),
        image_name: "beacon".into(),
        build_args: Vec::new(),
        binaries: None,
        cache: None,
        cache_mode: None,
        cache_dir: PathBuf::from("target/buildx-cache"),
        no_cache: false,
    }
}

#[test]
fn every_grammar_round_trips_for_every_discovered_variant() {
    let variants = xtask::project::discover_variants(&root()).unwrap();
    assert!(!variants.is_empty());
    for variant in &variants {
        tags::validate_variant(variant).unwrap();
        for unique in [
            None,
            Some(CiUnique::PullRequest(42)),
            Some(CiUnique::Commit {
                sha: "0123abc".into(),
                dirty: false,
            }),
            Some(CiUnique::Commit {
                sha: "0123abc".into(),
                dirty: true,
            }),
        ] {
            let tag = CiTag {
                variant: variant.clone(),
                unique,
            };
            assert_eq!(CiTag::parse(&tag.to_string()), Some(tag.clone()));
            assert_eq!(
                classify(&tag.to_string(), &variants),
                TagKind::Ci {
                    variant: variant.clone()
                }
            );
        }
        for scope in [
            CacheScope::DefaultBranch,
            CacheScope::Local,
            CacheScope::PullRequest(42),
            CacheScope::of_branch("feature/New_thing"),
        ] {
            let tag = CacheTag {
                variant: variant.clone(),
                scope,
            };
            assert_eq!(CacheTag::parse(&tag.to_string()), Some(tag.clone()));
        }
    }
}

/// Copies images/ of the repository into a scratch root, adding `extra`
/// (a copy of the first variant's Dockerfile with its name replaced).
fn scratch_with_variant(extra: &str) -> (PathBuf, Vec<String>) {
    let scratch =
        std::env::temp_dir().join(format!("xtask-variants-{}-{extra}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let variants = xtask::project::discover_variants(&root()).unwrap();
    for variant in &variants {
        copy_dockerfile(&root(), &scratch, variant, variant);
    }
    copy_dockerfile(&root(), &scratch, &variants[0], extra);
    let discovered = xtask::project::discover_variants(&scratch).unwrap();
    (scratch, discovered)
}

fn copy_dockerfile(from: &Path, to: &Path, variant: &str, name: &str) {
    let text = std::fs::read_to_string(from.join(format!("images/{variant}/Dockerfile"))).unwrap();
    let dir = to.join(format!("images/{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        text.replace(
            &format!("ARG VARIANT={variant}"),
            &format!("ARG VARIANT={name}"),
        ),
    )
    .unwrap();
}

#[test]
fn a_variant_with_a_dash_is_a_directory_away() {
    let (scratch, variants) = scratch_with_variant("wolfi-base2");
    assert!(
        variants.contains(&"wolfi-base2".to_string()),
        "{variants:?}"
    );

    // CI: planned and rendered like every other variant.
    let request = CiRequest {
        build: options(),
        platform: None,
        push: true,
        stand_ins: false,
    };
    let plan = ci::plan(&request, &variants, &context("refs/pull/7/merge"), None).unwrap();
    let wolfi = plan
        .variants
        .iter()
        .find(|v| v.variant == "wolfi-base2")
        .unwrap();
    assert_eq!(wolfi.recipe.dockerfile, "images/wolfi-base2/Dockerfile");
    let tags: Vec<&str> = wolfi
        .policy
        .tags
        .iter()
        .map(|t| t.rsplit(':').next().unwrap())
        .collect();
    assert_eq!(tags, ["ci-wolfi-base2", "ci-wolfi-base2-pr7"]);
    let bake = render::bake_file(&plan, &RunFiles::new(&plan, "test"));
    assert_eq!(
        bake["target"]["wolfi-base2"]["args"]["VARIANT"],
        "wolfi-base2"
    );
    // prune reads its tags back as this variant's CI tags, and its cache refs as its own.
    for tag in &tags {
        assert_eq!(
            classify(tag, &variants),
            TagKind::Ci {
                variant: "wolfi-base2".into()
            },
            "{tag}"
        );
    }
    for reference in wolfi.policy.cache.from.iter().chain(&wolfi.policy.cache.to) {
        let scope = reference
            .split("scope=beacon-")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap();
        assert!(
            matches!(classify_cache(scope), CacheKind::PullRequest { ref variant, number: 7 } | CacheKind::DefaultBranch { ref variant } if variant == "wolfi-base2"),
            "{reference}: {:?}",
            classify_cache(scope)
        );
    }

    // Release: its own qualified tags, never another variant's.
    let dockerfile_args: BTreeMap<String, BTreeMap<String, String>> = variants
        .iter()
        .map(|v| {
            let text = xtask::project::read_dockerfile(&scratch, v).unwrap();
            (v.clone(), xtask::project::global_arg_defaults(&text))
        })
        .collect();
    let request = ReleaseRequest {
        build: options(),
        platform: "linux/amd64,linux/arm64".into(),
        default_variant: variants[0].clone(),
        force: false,
        allow_any_ref: false,
        signing: SigningRequest {
            method: SignMethod::None,
            key: None,
            tlog: false,
            signing_config: None,
        },
        output_archive: false,
        build_only: false,
        sbom_generator: DEFAULT_SBOM_GENERATOR.into(),
    };
    let plan = release::plan(&ReleaseInputs {
        args: &request,
        available: &variants,
        variants: &variants,
        context: &context("refs/tags/v1.2.3"),
        builder: None,
        dockerfile_args: &dockerfile_args,
    })
    .unwrap();
    let wolfi = plan
        .variants
        .iter()
        .find(|v| v.variant == "wolfi-base2")
        .unwrap();
    assert!(wolfi
        .policy
        .tags
        .contains(&"registry.example/acme/beacon:1.2.3-wolfi-base2".to_string()));
    for tag in &wolfi.policy.tags {
        names::validate_tag(tag.rsplit(':').next().unwrap()).unwrap();
        assert_eq!(
            classify(tag.rsplit(':').next().unwrap(), &variants),
            TagKind::Other,
            "a release tag is never a CI tag: {tag}"
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn a_variant_name_that_would_misread_is_refused_at_discovery() {
    for bad in ["edge-pr1", "edge-abcdef0", "x-branch-y"] {
        let (scratch, _) = {
            let scratch = std::env::temp_dir()
                .join(format!("xtask-variants-bad-{}-{bad}", std::process::id()));
            let _ = std::fs::remove_dir_all(&scratch);
            let first = &xtask::project::discover_variants(&root()).unwrap()[0];
            copy_dockerfile(&root(), &scratch, first, bad);
            (scratch, ())
        };
        let err = format!(
            "{:#}",
            xtask::project::discover_variants(&scratch).unwrap_err()
        );
        assert!(
            err.contains(&format!("images/{bad}")) && err.contains("rename"),
            "{bad}: {err}"
        );
        let _ = std::fs::remove_dir_all(&scratch);
    }
}
