//! Tests of planning and rendering without an engine, through the library's
//! real functions: what would run, for every variant and every git/CI
//! situation (golden files in `xtask/tests/golden/`; `UPDATE_GOLDEN=1 cargo
//! test` rewrites them).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use clap::Parser;

use xtask::cli::{Cli, Command};
use xtask::context::BuildContext;
use xtask::model::names::Platform;
use xtask::plan::release::{self, ReleaseInputs};
use xtask::plan::{ci, Attestations, Plan, Signing};
use xtask::preflight::BuilderInfo;
use xtask::project;
use xtask::render::{self, RunFiles};

/// A checkout at a fixed commit on main; in GitHub Actions when `git_ref` is given.
fn sample(git_ref: Option<&str>) -> BuildContext {
    BuildContext::example(git_ref)
}

fn variants() -> Vec<String> {
    project::discover_variants(&project::project_root()).unwrap()
}

fn dockerfile_args() -> BTreeMap<String, BTreeMap<String, String>> {
    let root = project::project_root();
    variants()
        .into_iter()
        .map(|v| {
            let args = project::build_arg_defaults(&root, &v).unwrap();
            (v, args)
        })
        .collect()
}

fn ci_plan(argv: &[&str], context: &BuildContext) -> anyhow::Result<Plan> {
    let cli = Cli::try_parse_from([&["xtask", "ci-image"], argv].concat())?;
    let Command::CiImage(args) = cli.command else {
        unreachable!()
    };
    let options = args.into_options();
    let selected = project::select_variants(&variants(), &options.request.build.variants)?;
    ci::plan(&options.request, &selected, context, None)
}

fn builder(driver: &str) -> BuilderInfo {
    BuilderInfo {
        name: "default".into(),
        driver: driver.into(),
        platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
    }
}

fn release_plan(argv: &[&str], context: &BuildContext) -> anyhow::Result<Plan> {
    let cli = Cli::try_parse_from([&["xtask", "release-image"], argv].concat())?;
    let Command::ReleaseImage(args) = cli.command else {
        unreachable!()
    };
    let request = args.into_options().request;
    let available = variants();
    let selected = project::select_variants(&available, &request.build.variants)?;
    let builder = builder("docker-container");
    release::plan(&ReleaseInputs {
        args: &request,
        available: &available,
        variants: &selected,
        context,
        builder: Some(&builder),
        dockerfile_args: &dockerfile_args(),
    })
}

fn tag_push() -> BuildContext {
    let mut context = sample(Some("refs/tags/v1.2.3"));
    context.ci.oidc_available = true;
    context
}

/// The files a run would use, as a dry run names them.
fn files(plan: &Plan) -> RunFiles {
    RunFiles::new(plan, "<run>")
}

fn rendered(plan: &Plan) -> String {
    render::all(plan, &files(plan))
        .iter()
        .map(render::Invocation::display)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn golden(name: &str, actual: &str) {
    let path = project::project_root()
        .join("xtask/tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run UPDATE_GOLDEN=1 cargo test", path.display()));
    assert_eq!(
        actual,
        expected,
        "{} differs (UPDATE_GOLDEN=1 cargo test rewrites it; review the diff)",
        path.display()
    );
}

#[test]
fn golden_ci_pull_request_in_github_actions() {
    let plan = ci_plan(&[], &sample(Some("refs/pull/42/merge"))).unwrap();
    golden("ci-pull-request.txt", &rendered(&plan));
}

#[test]
fn golden_ci_laptop_push_with_host_binaries() {
    let mut context = sample(None);
    context.git.dirty = true;
    let plan = ci_plan(
        &[
            "--push",
            "--registry",
            "127.0.0.1:5000",
            "--binaries",
            "target/image-binaries",
            "--cache",
            "local",
        ],
        &context,
    )
    .unwrap();
    golden("ci-laptop-push.txt", &rendered(&plan));
}

#[test]
fn golden_release_tag_keyless_in_github_actions() {
    let plan = release_plan(&[], &tag_push()).unwrap();
    golden("release-tag-keyless.txt", &rendered(&plan));
}

#[test]
fn golden_release_main_with_key_on_docker_driver() {
    let cli = Cli::try_parse_from([
        "xtask",
        "release-image",
        "--key",
        "cosign.key",
        "--registry",
        "127.0.0.1:5000",
        "--variant",
        "ubi9",
    ])
    .unwrap();
    let Command::ReleaseImage(args) = cli.command else {
        unreachable!()
    };
    let request = args.into_options().request;
    let builder = builder("docker");
    let plan = release::plan(&ReleaseInputs {
        args: &request,
        available: &variants(),
        variants: &["ubi9".to_string()],
        context: &sample(None),
        builder: Some(&builder),
        dockerfile_args: &dockerfile_args(),
    })
    .unwrap();
    golden("release-main-key-docker-driver.txt", &rendered(&plan));
}

/// One Dockerfile per variant serves both paths: the recipes are identical,
/// and the rendered builds differ only in the policy's build args.
#[test]
fn ci_and_release_plans_differ_only_in_policy() {
    let context = tag_push();
    let builder = format!(
        "BUILDER_IMAGE=mirror.example/rust:1-bookworm@sha256:{}",
        "a".repeat(64)
    );
    let args = ["--registry", "ghcr.io/acme", "--build-arg", &builder];
    let ci = ci_plan(&args, &context).unwrap();
    let release = release_plan(&args, &context).unwrap();
    assert_eq!(ci.variants.len(), variants().len());
    for (c, r) in ci.variants.iter().zip(&release.variants) {
        assert_eq!(c.variant, r.variant);
        assert_eq!(c.recipe, r.recipe, "{}: the recipe is shared", c.variant);
        assert_ne!(c.policy, r.policy);
        let ci_target = &render::bake_file(&ci, &files(&ci))["target"][&c.variant];
        let release_target = &render::bake_file(&release, &files(&release))["target"][&r.variant];
        for field in ["context", "dockerfile"] {
            assert_eq!(ci_target.get(field), release_target.get(field), "{field}");
        }
        let mut ci_args = ci_target["args"].as_object().unwrap().clone();
        let mut release_args = release_target["args"].as_object().unwrap().clone();
        // Both take their binaries from the compile file's own build.
        for target in [ci_target, release_target] {
            assert_eq!(target["contexts"]["binaries"], "target:compile");
        }
        assert_eq!(ci_args.remove("IMAGE_FLAVOR").unwrap(), "ci");
        assert_eq!(release_args.remove("IMAGE_FLAVOR").unwrap(), "production");
        assert!(release_args.remove("SOURCE_DATE_EPOCH").is_some());
        assert_eq!(ci_args.remove("CARGO_PROFILE").unwrap(), "ci");
        assert_eq!(release_args.remove("CARGO_PROFILE").unwrap(), "release");
        // The compile stage's targets follow the platforms (a policy field).
        let native = Platform::native().arch;
        assert_eq!(ci_args.remove("TARGET_ARCHES").unwrap(), native.as_str());
        assert_eq!(release_args.remove("TARGET_ARCHES").unwrap(), "amd64 arm64");
        assert_eq!(
            ci_args, release_args,
            "{}: no other build arg differs",
            c.variant
        );
    }
    // One compile file, built alike but for the policy's args.
    let ci_compile = &render::bake_file(&ci, &files(&ci))["target"]["compile"];
    let release_compile = &render::bake_file(&release, &files(&release))["target"]["compile"];
    for field in ["context", "dockerfile", "target", "output"] {
        assert_eq!(ci_compile[field], release_compile[field], "{field}");
    }
    assert_eq!(ci_compile["dockerfile"], "images/compile.Dockerfile");
    assert_eq!(ci_compile["target"], "binaries");
    let mut ci_args = ci_compile["args"].as_object().unwrap().clone();
    let mut release_args = release_compile["args"].as_object().unwrap().clone();
    assert_eq!(ci_args.remove("IMAGE_FLAVOR").unwrap(), "ci");
    assert_eq!(release_args.remove("IMAGE_FLAVOR").unwrap(), "production");
    assert_eq!(ci_args.remove("CARGO_PROFILE").unwrap(), "ci");
    assert_eq!(release_args.remove("CARGO_PROFILE").unwrap(), "release");
    assert_eq!(
        ci_args.remove("TARGET_ARCHES").unwrap(),
        Platform::native().arch.as_str()
    );
    assert_eq!(release_args.remove("TARGET_ARCHES").unwrap(), "amd64 arm64");
    assert!(release_args.remove("SOURCE_DATE_EPOCH").is_some());
    assert_eq!(ci_args, release_args);
    // The compile's args: those of the compile file the run sets, no other.
    assert_eq!(
        ci_args.keys().collect::<Vec<_>>(),
        ["BUILDER_IMAGE"],
        "{ci_args:?}"
    );
}

/// The compile stage builds every architecture of the platforms, whatever
/// their order (one set of compile steps and cache mounts per set).
#[test]
fn the_compile_stage_targets_follow_the_platforms_in_any_order() {
    for (platforms, arches) in [
        ("linux/arm64,linux/amd64", "amd64 arm64"),
        ("linux/amd64,linux/arm64", "amd64 arm64"),
        ("linux/arm64", "arm64"),
    ] {
        let plan = release_plan(&["--platform", platforms, "--sign", "none"], &tag_push()).unwrap();
        for variant in &plan.variants {
            let target = &render::bake_file(&plan, &files(&plan))["target"][&variant.variant];
            assert_eq!(target["args"]["TARGET_ARCHES"], arches, "{platforms}");
        }
    }
}

#[test]
fn ci_plans_write_only_ci_tags_and_turn_attestations_off() {
    for context in [sample(Some("refs/pull/7/merge")), sample(None), tag_push()] {
        let plan = ci_plan(&["--push", "--registry", "ghcr.io/acme"], &context).unwrap();
        assert_eq!(plan.signing, Signing::None);
        for variant in &plan.variants {
            assert_eq!(variant.policy.platforms.len(), 1);
            assert!(
                variant
                    .policy
                    .tags
                    .iter()
                    .all(|t| t.contains(&format!(":ci-{}", variant.variant))),
                "{:?}",
                variant.policy.tags
            );
            assert_eq!(
                variant.policy.attestations,
                Attestations {
                    provenance: None,
                    sbom: None
                }
            );
            assert_eq!(
                variant.policy.labels["dev.beacon.image.not-for-production"],
                "true"
            );
        }
    }
    let pr = ci_plan(&[], &sample(Some("refs/pull/7/merge"))).unwrap();
    assert_eq!(
        pr.variants[0].policy.tags[1],
        "ghcr.io/acme/beacon:ci-chainguard-pr7"
    );
    assert_eq!(
        pr.variants[0].policy.cache.from.len(),
        2,
        "a PR reads its own scope and main's"
    );
    assert!(pr.variants[0].policy.cache.to[0].ends_with("mode=min"));
}

#[test]
fn release_tags_follow_metadata_action_conventions() {
    let tags = |git_ref: Option<&str>, release_tags: &[&str], allow: bool| {
        let mut context = sample(git_ref);
        context.git.release_tags = release_tags.iter().map(|t| t.to_string()).collect();
        release::base_tags(
            &context,
            release::TagRules {
                allow_any_ref: allow,
                variants: &variants(),
                writes_tags: true,
            },
        )
    };
    let (all, immutable) = tags(Some("refs/tags/v1.2.3"), &["v1.2.3", "v1.1.0"], false).unwrap();
    assert_eq!(all, ["1.2.3", "1.2", "1", "latest"]);
    assert_eq!(immutable, ["1.2.3"]);
    let (all, _) = tags(
        Some("refs/tags/v1.2.3"),
        &["v1.2.3", "v2.0.0", "v3.0.0-rc.1"],
        false,
    )
    .unwrap();
    assert_eq!(
        all,
        ["1.2.3", "1.2", "1"],
        "not the newest stable release: no latest"
    );
    let (all, _) = tags(Some("refs/tags/v0.4.1"), &[], false).unwrap();
    assert_eq!(all, ["0.4.1", "0.4", "latest"], "no floating 0 tag");
    let (all, immutable) = tags(Some("refs/tags/v2.0.0-rc.1"), &[], false).unwrap();
    assert_eq!(
        (all.as_slice(), immutable.as_slice()),
        (
            &["2.0.0-rc.1".to_string()][..],
            &["2.0.0-rc.1".to_string()][..]
        )
    );
    let (all, immutable) = tags(Some("refs/heads/main"), &[], false).unwrap();
    assert_eq!(all, ["main", "sha-0123456"]);
    assert!(immutable.is_empty());
    let err = tags(Some("refs/heads/feature/x"), &[], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--allow-any-ref"), "{err}");
    assert_eq!(
        tags(Some("refs/heads/feature/x"), &[], true).unwrap().0,
        ["feature-x", "sha-0123456"]
    );
    assert!(tags(Some("refs/pull/3/merge"), &[], false).is_err());
    assert!(tags(Some("refs/tags/v1.2"), &[], false).is_err());
    assert_eq!(
        release::qualify(&["1.2.3".into()], "ubi9", "chainguard"),
        ["1.2.3-ubi9"]
    );
    assert_eq!(
        release::qualify(&["1.2.3".into()], "chainguard", "chainguard"),
        ["1.2.3-chainguard", "1.2.3"]
    );
    assert!(xtask::model::version::Version::from_git_tag("v01.2.3").is_none());
}

#[test]
fn release_plans_annotate_label_and_pin() {
    let plan = release_plan(&["--registry", "ghcr.io/acme"], &tag_push()).unwrap();
    assert_eq!(plan.signing, Signing::Keyless);
    assert_eq!(
        plan.must_not_exist.len(),
        variants().len() + 1,
        "1.2.3-<variant> for each, and bare 1.2.3: {:?}",
        plan.must_not_exist
    );
    for variant in &plan.variants {
        let policy = &variant.policy;
        assert_eq!(
            policy
                .platforms
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["linux/amd64", "linux/arm64"]
        );
        for key in [
            "source",
            "revision",
            "created",
            "version",
            "title",
            "description",
            "licenses",
            "base.name",
            "base.digest",
        ] {
            let key = format!("org.opencontainers.image.{key}");
            assert!(policy.annotations.contains_key(&key), "annotation {key}");
            assert_eq!(
                policy.labels.get(&key),
                policy.annotations.get(&key),
                "label {key}"
            );
        }
        assert_eq!(
            policy.annotations["org.opencontainers.image.created"],
            "2023-11-14T22:13:20Z"
        );
        assert!(policy.annotations["org.opencontainers.image.base.digest"].starts_with("sha256:"));
        assert_eq!(policy.source_date_epoch, Some(1_700_000_000));
        assert!(policy.rewrite_timestamp);
        assert_eq!(policy.attestations.provenance.as_deref(), Some("max"));
        assert!(policy
            .tags
            .iter()
            .all(|t| !t.rsplit(':').next().unwrap().starts_with("ci-")));
    }
}

#[test]
fn release_refusals() {
    let mut dirty = tag_push();
    dirty.git.dirty = true;
    assert!(release_plan(&[], &dirty)
        .unwrap_err()
        .to_string()
        .contains("uncommitted"));
    let unpinned = release_plan(
        &[
            "--build-arg",
            "PRODUCTION_BASE=cgr.dev/chainguard/static:latest",
        ],
        &tag_push(),
    )
    .unwrap_err();
    assert!(
        unpinned.to_string().contains("not pinned by digest"),
        "{unpinned}"
    );
    let no_identity = release_plan(&[], &sample(None)).unwrap_err().to_string();
    assert!(
        no_identity.contains("no signing identity") && no_identity.contains("--sign none"),
        "{no_identity}"
    );
    let ci_tag = release_plan(
        &["--allow-any-ref", "--sign", "none"],
        &sample(Some("refs/heads/ci-hack")),
    )
    .unwrap_err();
    assert!(
        ci_tag.to_string().contains("reserved for CI images"),
        "{ci_tag}"
    );
    let flavor = ci_plan(&["--build-arg", "IMAGE_FLAVOR=production"], &sample(None)).unwrap_err();
    assert!(
        flavor.to_string().contains("chosen by the path"),
        "{flavor}"
    );
    assert!(release_plan(
        &["--default-variant", "alpine", "--sign", "none"],
        &tag_push()
    )
    .is_err());
    assert!(release_plan(&["--force", "--sign", "none"], &tag_push())
        .unwrap()
        .must_not_exist
        .is_empty());
}

#[test]
fn dockerfile_args_exist() {
    assert!(Path::new(&project::project_root()).join("images").is_dir());
    assert_eq!(dockerfile_args().len(), variants().len());
}

/// Every build compiles once, in a build of its own (the compile file) that
/// every variant takes its binaries from: a cached CI build with a cache of
/// its own, one without a cache and a release (both platforms, no cache,
/// SOURCE_DATE_EPOCH) alike; host-built binaries replace it. Its args are
/// the same for every variant: setting one for one variant is refused.
#[test]
fn every_build_compiles_once_in_a_build_of_its_own() {
    let pr = sample(Some("refs/pull/42/merge"));
    let shared = ci_plan(&["--cache", "registry", "--registry", "r.example"], &pr).unwrap();
    let compile = shared.shared_compile.as_ref().expect("a shared compile");
    assert_eq!(compile.dockerfile, project::COMPILE_DOCKERFILE);
    assert_eq!(
        compile.cache.from,
        [
            "type=registry,ref=r.example/beacon-buildcache:compile-pr-42",
            "type=registry,ref=r.example/beacon-buildcache:compile-main"
        ]
    );
    assert!(compile.cache.to[0].contains("compile-pr-42,mode=min"));
    let bake = render::bake_file(&shared, &files(&shared));
    for variant in &shared.variants {
        let target = &bake["target"][&variant.variant];
        assert_eq!(target["contexts"]["binaries"], "target:compile");
        assert!(target["args"].get("BINARIES_FROM").is_none());
    }
    assert_eq!(bake["target"]["compile"]["output"][0], "type=cacheonly");
    // Only the variants are asked for: buildx builds what they name.
    let build = render::build(&shared, &files(&shared));
    assert!(!build.args.iter().any(|a| a == "compile"));

    // Without a cache (a laptop's default): the same compile, no cache.
    let plain = ci_plan(&[], &sample(None)).unwrap();
    let bake = render::bake_file(&plain, &files(&plain));
    let compile = &bake["target"]["compile"];
    assert_eq!(compile["dockerfile"], "images/compile.Dockerfile");
    assert!(compile.get("cache-from").is_none() && compile.get("cache-to").is_none());
    assert!(
        compile.get("no-cache-filter").is_none(),
        "CI builds reuse it"
    );
    assert_eq!(
        bake["target"][&plain.variants[0].variant]["contexts"]["binaries"],
        "target:compile"
    );

    // A release: both platforms' binaries in one compile, reproducibly.
    let release = release_plan(&["--sign", "none"], &tag_push()).unwrap();
    let bake = render::bake_file(&release, &files(&release));
    let compile = &bake["target"]["compile"];
    assert_eq!(compile["platforms"], json!(["linux/amd64", "linux/arm64"]));
    assert_eq!(compile["args"]["TARGET_ARCHES"], "amd64 arm64");
    assert_eq!(compile["args"]["SOURCE_DATE_EPOCH"], "1700000000");
    assert_eq!(compile["args"]["IMAGE_FLAVOR"], "production");
    assert!(compile.get("cache-from").is_none() && compile.get("cache-to").is_none());
    // Its binaries carry the commit time whatever the engine's cache holds.
    assert_eq!(compile["no-cache-filter"], json!(["binaries"]));
    let rebuild = release_plan(
        &[
            "--sign",
            "none",
            "--no-cache",
            "--output-archive",
            "target/a",
        ],
        &tag_push(),
    )
    .unwrap();
    let bake = render::bake_file(&rebuild, &files(&rebuild));
    assert_eq!(bake["target"]["compile"]["no-cache"], true, "rebuild-check");

    // Host-built binaries: no compile at all.
    let host = ci_plan(
        &[
            "--cache",
            "registry",
            "--registry",
            "r.example",
            "--binaries",
            "target/bin",
        ],
        &pr,
    )
    .unwrap();
    assert_eq!(host.shared_compile, None);
    let bake = render::bake_file(&host, &files(&host));
    assert!(bake["target"].get("compile").is_none());
    assert_eq!(
        bake["target"][&host.variants[0].variant]["contexts"]["binaries"],
        "target/bin"
    );

    // A compile arg for one variant only: refused, naming the way out.
    let mirror = format!(
        "ubi9:BUILDER_IMAGE=mirror.example/rust:1@sha256:{}",
        "b".repeat(64)
    );
    let err = ci_plan(&["--build-arg", &mirror], &pr)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("BUILDER_IMAGE")
            && err.contains("images/compile.Dockerfile")
            && err.contains("--build-arg BUILDER_IMAGE=mirror.example"),
        "{err}"
    );
    // A base of one variant is no compile arg: still one compile.
    let base = format!(
        "ubi9:CI_BASE=mirror.example/ubi:9@sha256:{}",
        "c".repeat(64)
    );
    let bases = ci_plan(
        &[
            "--cache",
            "registry",
            "--registry",
            "r.example",
            "--build-arg",
            &base,
        ],
        &pr,
    )
    .unwrap();
    assert!(bases.shared_compile.is_some() && bases.warnings.is_empty());
}
