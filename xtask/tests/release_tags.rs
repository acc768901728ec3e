//! The release tag rules, class by class, through the real planner: which
//! ref and event may publish, which tags each writes, which must not exist
//! yet, and the one-line refusal (true reason, way out) for every hole a
//! release could otherwise fall through. Many cases come from
//! docker/metadata-action's own test fixtures (`__tests__/fixtures/*.env`:
//! its events and refs), re-stated here, not copied.

mod support;

use std::collections::BTreeMap;

use clap::Parser;

use support::Context;
use xtask::cli::{Cli, Command};
use xtask::context::BuildContext;
use xtask::plan::release::{self, ReleaseInputs, TagRules};
use xtask::plan::Plan;
use xtask::preflight::BuilderInfo;
use xtask::project;

fn variants() -> Vec<String> {
    project::discover_variants(&project::project_root()).unwrap()
}

fn dockerfile_args() -> BTreeMap<String, BTreeMap<String, String>> {
    let root = project::project_root();
    variants()
        .into_iter()
        .map(|v| {
            let args = project::global_arg_defaults(&project::read_dockerfile(&root, &v).unwrap());
            (v, args)
        })
        .collect()
}

/// A GitHub Actions job of `event` for `git_ref`, with an OIDC identity.
fn github(event: &str, git_ref: &str) -> BuildContext {
    Context {
        event_name: Some(event.into()),
        oidc_available: true,
        release_tags: vec!["v1.0.0".into(), "v1.2.3".into()],
        ..Context::github(git_ref)
    }
    .build_context()
}

/// A clean laptop checkout of `branch` (None: detached) with `tags` at HEAD.
fn laptop(branch: Option<&str>, tags: &[&str]) -> BuildContext {
    Context {
        branch: branch.map(String::from),
        tags_at_head: tags.iter().map(|t| t.to_string()).collect(),
        release_tags: tags.iter().map(|t| t.to_string()).collect(),
        ..Context::default()
    }
    .build_context()
}

/// The release plan of `release-image ARGS --registry ghcr.io/acme --sign none`.
fn plan(args: &[&str], context: &BuildContext) -> anyhow::Result<Plan> {
    let argv = [
        &[
            "xtask",
            "release-image",
            "--registry",
            "ghcr.io/acme",
            "--sign",
            "none",
        ],
        args,
    ]
    .concat();
    let Command::ReleaseImage(parsed) = Cli::try_parse_from(argv)?.command else {
        unreachable!()
    };
    let request = parsed.into_options().request;
    let available = variants();
    let builder = BuilderInfo {
        name: "default".into(),
        driver: "docker-container".into(),
        platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
    };
    release::plan(&ReleaseInputs {
        args: &request,
        available: &available,
        variants: &available,
        context,
        builder: Some(&builder),
        dockerfile_args: &dockerfile_args(),
    })
}

/// The bare tags (before variant qualification) and those that must be new.
fn tags(context: &BuildContext, allow_any_ref: bool) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    release::base_tags(
        context,
        TagRules {
            allow_any_ref,
            variants: &variants(),
            writes_tags: true,
        },
    )
}

#[track_caller]
fn refused(result: anyhow::Result<impl std::fmt::Debug>, keywords: &[&str]) -> String {
    let err = format!("{:#}", result.expect_err("expected a refusal"));
    assert!(!err.contains('\n'), "one line: {err}");
    for keyword in keywords {
        assert!(err.contains(keyword), "expected {keyword:?} in: {err}");
    }
    err
}

/// Every tag the plan moves, without the repository.
fn written(plan: &Plan) -> Vec<String> {
    plan.variants
        .iter()
        .flat_map(|v| v.policy.tags.iter())
        .map(|t| t.tag.clone().unwrap())
        .collect()
}

#[test]
fn refs_named_like_releases_are_refused_with_allow_any_ref() {
    // (ref name, the tag it would write, what that tag is)
    let cases = [
        ("1.2.3", "1.2.3", "the tag of release v1.2.3"),
        ("1.2.3-rc.1", "1.2.3-rc.1", "the tag of release v1.2.3-rc.1"),
        ("1.2", "1.2", "the floating tag of the v1.2.x releases"),
        ("1", "1", "the floating tag of the v1.x.y releases"),
        ("latest", "latest", "the tag of the newest release"),
        ("Latest", "latest", "the tag of the newest release"),
        (
            "latest-ubi9",
            "latest-ubi9",
            "the tag of the newest release (its ubi9 image)",
        ),
        (
            "1.2.3-ubi9",
            "1.2.3-ubi9",
            "the tag of release v1.2.3 (its ubi9 image)",
        ),
        ("release/1.2.3", "release-1.2.3", ""),
        (
            "main-distroless",
            "main-distroless",
            "the tag of the newest build of main (its distroless image)",
        ),
        ("MAIN", "main", "the tag of the newest build of main"),
        (
            "sha-0123abc",
            "sha-0123abc",
            "the tag of main's build of commit 0123abc",
        ),
        (
            "sha-0123abc-chainguard",
            "sha-0123abc-chainguard",
            "the tag of main's build of commit 0123abc (its chainguard image)",
        ),
        (
            "1.2.3+build.5",
            "1.2.3-build.5",
            "the tag of release v1.2.3-build.5",
        ),
    ];
    for (name, tag, what) in cases {
        for (kind, git_ref) in [
            ("branch", format!("refs/heads/{name}")),
            ("tag", format!("refs/tags/{name}")),
        ] {
            let context = github("push", &git_ref);
            if what.is_empty() {
                // Not a release's tag: planned, with its tag.
                assert_eq!(tags(&context, true).unwrap().0[0], tag, "{git_ref}");
                continue;
            }
            let err = refused(
                tags(&context, true),
                &[
                    &format!("{kind} {name:?} would be tagged {tag:?}, which is {what}"),
                    "--allow-any-ref never writes a tag that releases own",
                ],
            );
            let way_out = if kind == "tag" && what.starts_with("the tag of release") {
                "tag the commit v"
            } else {
                "rename the "
            };
            assert!(err.contains(way_out), "{err}");
            // The same refusal through the whole planner, before anything is built.
            refused(
                plan(&["--allow-any-ref"], &context),
                &[&format!("would be tagged {tag:?}")],
            );
        }
    }
}

#[test]
fn a_ref_qualified_by_a_variant_is_checked_too() {
    for variant in variants() {
        let err = refused(
            tags(
                &github("push", &format!("refs/heads/latest-{variant}")),
                true,
            ),
            &[&format!("(its {variant} image)")],
        );
        assert!(err.contains("rename the branch"), "{err}");
    }
    // With variants `wolfi-base` and `base`, branch `latest-wolfi` is no
    // release's tag, but qualified for `base` it would write
    // `latest-wolfi-base`: the newest release of `wolfi-base`.
    let two = ["wolfi-base".to_string(), "base".to_string()];
    let rules = TagRules {
        allow_any_ref: true,
        variants: &two,
        writes_tags: true,
    };
    refused(
        release::base_tags(&github("push", "refs/heads/latest-wolfi"), rules),
        &[
            "branch \"latest-wolfi\" would be tagged \"latest-wolfi-base\"",
            "the tag of the newest release (its wolfi-base image)",
        ],
    );
}

#[test]
fn a_ref_without_a_taggable_character_names_that_reason() {
    for name in ["_", "__", "/", "#", "-", ".", "é"] {
        let err = refused(
            tags(&github("push", &format!("refs/heads/{name}")), true),
            &[
                &format!("branch {name:?} has no character an image tag can hold"),
                "rename the branch",
            ],
        );
        assert!(
            !err.contains("release tag"),
            "not a release-tag lookalike: {err}"
        );
    }
}

#[test]
fn ci_shaped_refs_are_refused_and_no_ref_reaches_a_cosign_tag() {
    refused(
        tags(&github("push", "refs/heads/ci-hack"), true),
        &["\"ci-hack\"", "reserved for CI images", "rename the branch"],
    );
    // A ref's tag is at most 63 characters, a cosign tag 75: a branch named
    // like a signature is cut short of being one.
    let signature = format!("sha256-{}.sig", "ab".repeat(32));
    let (all, _) = tags(&github("push", &format!("refs/heads/{signature}")), true).unwrap();
    assert!(
        xtask::model::tags::CosignTag::parse(&all[0]).is_none(),
        "{all:?}"
    );
}

#[test]
fn metadata_action_fixture_refs_are_tagged_like_metadata_action() {
    // (event fixture's GITHUB_REF, the ref's tag with --allow-any-ref)
    for (git_ref, tag) in [
        ("refs/heads/dev", "dev"),
        ("refs/heads/master", "master"),
        ("refs/heads/my/feature#1245", "my-feature-1245"),
        ("refs/tags/sometag", "sometag"),
        ("refs/tags/release1", "release1"),
        ("refs/tags/20200110-RC2", "20200110-rc2"),
        ("refs/tags/p1/v1.0.0", "p1-v1.0.0"),
        ("refs/tags/1.0dev4", "1.0dev4"),
        ("refs/tags/1.1beta2", "1.1beta2"),
        ("refs/tags/1.2.3rc2", "1.2.3rc2"),
        ("refs/tags/1.2post1", "1.2post1"),
        ("refs/tags/v1.2.3rc2", "v1.2.3rc2"),
    ] {
        let context = github("push", git_ref);
        let (all, must_be_new) = tags(&context, true).unwrap();
        assert_eq!(all, [tag, "sha-0123456"], "{git_ref}");
        assert_eq!(
            must_be_new, all,
            "{git_ref}: every tag of the run must be new"
        );
        refused(tags(&context, false), &["--allow-any-ref"]);
    }
    // The fixtures' SemVer tags: a version release with its floating tags
    // (v1.2.3 exists, so `1` and `latest` stay where they are).
    let (all, must_be_new) = tags(&github("push", "refs/tags/v1.1.1"), false).unwrap();
    assert_eq!(
        (all, must_be_new),
        (
            vec!["1.1.1".into(), "1.1".into()],
            vec!["1.1.1".to_string()]
        )
    );
    let (all, _) = tags(&github("push", "refs/tags/v2.0.8-beta.67"), false).unwrap();
    assert_eq!(all, ["2.0.8-beta.67"]);
    // A tag that is not strict SemVer is no release.
    for tag in [
        "v1.2.3rc2",
        "v1.2",
        "v01.2.3",
        "v1.2.3-01",
        "v1.2.3-rc..1",
        "1.2.3",
    ] {
        refused(
            tags(&github("push", &format!("refs/tags/{tag}")), false),
            &[
                "is not a release tag",
                "strict SemVer 2.0",
                "--allow-any-ref",
            ],
        );
    }
    // The fixtures' other events never publish, whatever their ref says.
    for (event, git_ref) in [
        ("pull_request_target", "refs/heads/master"),
        ("pull_request_target", "refs/heads/main"),
        ("pull_request", "refs/pull/15/merge"),
        ("schedule", "refs/heads/main"),
        ("workflow_dispatch", "refs/heads/main"),
        ("workflow_dispatch", "refs/heads/dev"),
        ("create", "refs/tags/v2.1.8-beta.67"),
        ("create", "refs/heads/dev"),
        ("release", "refs/tags/v1.1.1"),
        ("discussion", "refs/heads/main"),
        ("issues", "refs/heads/main"),
        ("workflow_run", "refs/heads/main"),
    ] {
        for extra in [&[][..], &["--allow-any-ref"][..]] {
            refused(
                plan(extra, &github(event, git_ref)),
                &[
                    &format!("started by {event}: "),
                    "push to main or push a vX.Y.Z tag",
                ],
            );
        }
    }
}

#[test]
fn pull_request_target_is_never_released_as_main() {
    let context = github("pull_request_target", "refs/heads/main");
    refused(
        plan(&[], &context),
        &[
            "release-image publishes only from a push event",
            "pull_request_target",
            "is the base branch",
        ],
    );
    // The same ref on a push is main's release.
    let main = plan(&[], &github("push", "refs/heads/main")).unwrap();
    assert!(written(&main).contains(&"main".to_string()));
}

#[test]
fn two_release_tags_on_head_release_the_highest_version() {
    for (at_head, full, latest) in [
        (&["v1.9.0", "v1.10.0"][..], "1.10.0", true),
        (&["v1.10.0", "v1.9.0"][..], "1.10.0", true),
        (&["v2.0.0-rc.1", "v2.0.0"][..], "2.0.0", true),
        (&["v2.0.0", "v2.0.0-rc.1"][..], "2.0.0", true),
        (&["v3.0.0-rc.2", "v3.0.0-rc.10"][..], "3.0.0-rc.10", false),
    ] {
        let context = laptop(Some("main"), at_head);
        let (all, must_be_new) = tags(&context, false).unwrap();
        assert_eq!(all[0], full, "{at_head:?}");
        assert_eq!(must_be_new, [full], "{at_head:?}");
        assert_eq!(
            all.contains(&"latest".to_string()),
            latest,
            "{at_head:?}: {all:?}"
        );
        let plan = plan(&[], &context).unwrap();
        let version = &plan.variants[0].policy.annotations["org.opencontainers.image.version"];
        assert_eq!(version, full);
    }
}

#[test]
fn floating_tags_only_move_forwards() {
    let released = |tag: &str, others: &[&str]| {
        let mut context = github("push", &format!("refs/tags/{tag}"));
        context.git.release_tags = others.iter().map(|t| t.to_string()).collect();
        tags(&context, false).unwrap().0
    };
    let history = ["v1.1.8", "v1.2.0", "v1.2.5", "v2.0.0", "v3.0.0-rc.1"];
    // A backport moves its own series' tag only.
    assert_eq!(released("v1.1.9", &history), ["1.1.9", "1.1"]);
    assert_eq!(released("v1.2.4", &history), ["1.2.4"]);
    assert_eq!(released("v1.2.6", &history), ["1.2.6", "1.2", "1"]);
    assert_eq!(
        released("v2.0.1", &history),
        ["2.0.1", "2.0", "2", "latest"]
    );
    // A pre-release of a newer version holds nothing back, and moves nothing.
    assert_eq!(released("v3.0.0-rc.2", &history), ["3.0.0-rc.2"]);
    assert_eq!(
        released("v3.0.0", &history),
        ["3.0.0", "3.0", "3", "latest"]
    );
    // Build metadata does not make an equal version newer.
    assert_eq!(
        released("v2.0.0+rebuild.1", &history),
        ["2.0.0", "2.0", "2", "latest"]
    );
}

#[test]
fn a_pre_release_named_like_a_variant_is_refused() {
    for variant in variants() {
        let err = refused(
            tags(
                &github("push", &format!("refs/tags/v1.2.3-{variant}")),
                false,
            ),
            &[
                &format!("the release v1.2.3-{variant} would write the tag \"1.2.3-{variant}\""),
                &format!("the tag of release v1.2.3 (its {variant} image)"),
                "must not end in -<variant>",
            ],
        );
        assert!(err.contains("v1.2.3-rc.1"), "{err}");
    }
    // A pre-release whose last identifier is not a variant is fine.
    assert_eq!(
        tags(&github("push", "refs/tags/v1.2.3-rc.1"), false)
            .unwrap()
            .0,
        ["1.2.3-rc.1"]
    );
    let long = format!("v1.2.3-{}", "a".repeat(120));
    refused(
        tags(&github("push", &format!("refs/tags/{long}")), false),
        &[
            "longer than the 128 characters a tag may hold",
            "shorten its pre-release",
        ],
    );
}

#[test]
fn every_tag_of_an_any_ref_run_must_be_new_unless_forced() {
    let context = github("push", "refs/heads/feature/x");
    let plan = plan(&["--allow-any-ref"], &context).unwrap();
    let mut expected: Vec<String> = written(&plan)
        .into_iter()
        .map(|t| format!("ghcr.io/acme/beacon:{t}"))
        .collect();
    let mut checked: Vec<String> = plan
        .must_not_exist
        .iter()
        .map(ToString::to_string)
        .collect();
    expected.sort();
    checked.sort();
    assert_eq!(
        checked, expected,
        "every tag it writes, every variant's and the bare ones"
    );
    assert!(
        checked.contains(&"ghcr.io/acme/beacon:sha-0123456-ubi9".to_string()),
        "{checked:?}"
    );
    assert!(
        plan.must_not_exist_because
            .contains("--allow-any-ref writes only tags that do not exist yet")
            && plan.must_not_exist_because.contains("--force"),
        "{}",
        plan.must_not_exist_because
    );
    // They are looked up before the build, in the order a dry run prints
    // (after the probe of the push target).
    let lookups = xtask::render::lookups(&plan);
    assert_eq!(
        lookups.len(),
        checked.len() + 1,
        "the push-target probe, then each tag"
    );
    assert!(lookups.iter().all(|l| l.program == "skopeo"));
    for (lookup, tag) in lookups[1..].iter().zip(&plan.must_not_exist) {
        assert_eq!(lookup.args.last(), Some(&format!("docker://{tag}")));
    }
    let forced = self::plan(&["--allow-any-ref", "--force"], &context).unwrap();
    assert!(forced.must_not_exist.is_empty());
    // A detached HEAD writes its commit's tags only, all new.
    let detached = self::plan(&["--allow-any-ref"], &laptop(None, &[])).unwrap();
    assert!(written(&detached)
        .iter()
        .all(|t| t.starts_with("sha-0123456")));
    assert_eq!(detached.must_not_exist.len(), written(&detached).len());
}

#[test]
fn releases_check_their_version_tag_and_main_moves() {
    let version = plan(&[], &github("push", "refs/tags/v1.2.3")).unwrap();
    assert_eq!(version.must_not_exist.len(), variants().len() + 1);
    assert!(version
        .must_not_exist
        .iter()
        .all(|t| t.to_string().contains(":1.2.3")));
    assert!(
        version.must_not_exist_because.contains("immutable"),
        "{}",
        version.must_not_exist_because
    );
    let main = plan(&[], &github("push", "refs/heads/main")).unwrap();
    assert!(
        main.must_not_exist.is_empty(),
        "main and sha-<commit> move with main"
    );
}

#[test]
fn an_archive_for_rebuild_check_is_never_refused_for_tags_it_does_not_write() {
    // rebuild-check rebuilds a detached --allow-any-ref release as branch
    // `sha-<commit>` (its version annotation): it writes no tag, so it is planned.
    let context = Context {
        git_ref: Some("refs/heads/sha-0123456".into()),
        ..Context::default()
    }
    .build_context();
    let argv = [
        "xtask",
        "release-image",
        "--registry",
        "ghcr.io/acme",
        "--allow-any-ref",
        "--output-archive",
        "/tmp/x",
    ];
    let Command::ReleaseImage(parsed) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    let request = parsed.into_options().request;
    let available = variants();
    let plan = release::plan(&ReleaseInputs {
        args: &request,
        available: &available,
        variants: &available,
        context: &context,
        builder: None,
        dockerfile_args: &dockerfile_args(),
    })
    .unwrap();
    assert!(plan.must_not_exist.is_empty());
    assert_eq!(
        plan.variants[0].policy.annotations["org.opencontainers.image.version"],
        "sha-0123456"
    );
}
