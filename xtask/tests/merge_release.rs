//! `merge-release` and `release-image --part` on the command line, with
//! recording shims in place of docker and skopeo: part records of this
//! checkout's release (made with the library's own planner, as a runner's
//! build job would record them) are merged as a dry run, and parts that
//! disagree, with each other or with the checkout, are refused in one line
//! before any program that talks to a registry or an engine runs.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::{assert_one_line_error, project_root, run, stdout, xtask, Context, Shims};
use xtask::model::names::Platform;
use xtask::plan::record::{PartRecord, PlatformBuild, ReleaseRecord};
use xtask::plan::release::{self, ReleaseInputs, ReleaseRequest, DEFAULT_SBOM_GENERATOR};
use xtask::plan::{BuildOptions, Plan, SigningRequest};

const REGISTRY: &str = "r.example";

/// This checkout's release as the build jobs plan it in `context`, for `platforms`.
fn release_plan(context: &Context, platforms: &[&str]) -> Plan {
    let root = project_root();
    let available = xtask::project::discover_variants(&root).unwrap();
    let dockerfile_args = available
        .iter()
        .map(|v| {
            let defaults = xtask::project::build_arg_defaults(&root, v).unwrap();
            (v.clone(), defaults)
        })
        .collect::<BTreeMap<_, _>>();
    let request = ReleaseRequest {
        build: BuildOptions {
            variants: Vec::new(),
            registry: Some(REGISTRY.parse().unwrap()),
            image_name: "beacon".parse().unwrap(),
            build_args: Vec::new(),
            binaries: None,
            no_cache: false,
        },
        platforms: platforms.iter().map(|p| p.parse().unwrap()).collect(),
        default_variant: "chainguard".into(),
        force: false,
        allow_any_ref: false,
        signing: SigningRequest::unsigned(),
        output_archive: false,
        build_only: true,
        sbom_generator: DEFAULT_SBOM_GENERATOR.parse().unwrap(),
    };
    release::plan(&ReleaseInputs {
        args: &request,
        available: &available,
        variants: &available,
        context: &context.build_context(),
        builder: None,
        dockerfile_args: &dockerfile_args,
    })
    .unwrap()
}

/// The part record a runner writes for `platform` (every variant pushed,
/// digests made up from `seed`), in `dir`; `edit` changes it first.
fn part(
    dir: &Path,
    context: &Context,
    platform: &str,
    seed: char,
    edit: &dyn Fn(&mut PartRecord),
) -> PathBuf {
    let plan = release_plan(context, &[platform]);
    let target: Platform = platform.parse().unwrap();
    let mut record = ReleaseRecord::for_plan(&plan).unwrap();
    for (i, variant) in plan.variants.iter().enumerate() {
        let digest = |c: char| {
            format!("sha256:{}", c.to_string().repeat(64))
                .parse()
                .unwrap()
        };
        let index = digest(['a', 'b', 'c', 'd', 'e', 'f'][i % 6]);
        let images = BTreeMap::from([(platform.to_string(), digest(seed))]);
        let builds = BTreeMap::from([(target.clone(), PlatformBuild::on(target.clone(), &target))]);
        record.record(ReleaseRecord::entry(&plan, variant, &index, images).with_builds(builds));
    }
    let both: Vec<Platform> = ["linux/amd64", "linux/arm64"]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    let mut part = PartRecord::of(record, &both).unwrap();
    edit(&mut part);
    let path = dir.join(format!("part-{}-{seed}.json", target.arch));
    std::fs::write(&path, part.to_json()).unwrap();
    path
}

/// Shims for docker and skopeo that log every call and fail: nothing may run.
fn shims(label: &str) -> Shims {
    let shims = Shims::new(label);
    shims.script("docker", "exit 1");
    shims.script("skopeo", "exit 1");
    shims
}

fn merge(shims: &Shims, context: &Context, parts: &[&Path], extra: &[&str]) -> Output {
    let file = context.write(shims.scratch());
    let mut command = xtask();
    command
        .env("PATH", shims.path())
        .env("XTASK_CONTEXT", file)
        .args(["merge-release", "--registry", REGISTRY, "--record"])
        .arg(shims.scratch().join("release-record.json"))
        .args(extra);
    for part in parts {
        command.arg("--part").arg(part);
    }
    run(&mut command)
}

#[test]
fn the_parts_of_the_checkouts_release_merge_as_a_dry_run_without_running_anything() {
    let shims = shims("merge-dry-run");
    let context = Context::default();
    let dir = shims.scratch();
    let amd64 = part(dir, &context, "linux/amd64", '1', &|_| {});
    let arm64 = part(dir, &context, "linux/arm64", '2', &|_| {});
    let output = merge(
        &shims,
        &context,
        &[&arm64, &amd64],
        &["--dry-run", "--json"],
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(shims.log(), "", "a dry run runs nothing");
    let printed: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let variants = printed["merge"]["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 3);
    let plan = release_plan(&context, &["linux/amd64", "linux/arm64"]);
    for (merged, planned) in variants.iter().zip(&plan.variants) {
        let origins: Vec<&str> = merged["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["origin"].as_str().unwrap())
            .collect();
        assert!(
            origins[0].ends_with("part-amd64-1.json"),
            "sorted by platform: {origins:?}"
        );
        assert_eq!(
            merged["annotations"],
            serde_json::to_value(&planned.policy.annotations).unwrap()
        );
    }
    let commands: Vec<String> = printed["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let dry: Vec<&String> = commands
        .iter()
        .filter(|c| c.contains("imagetools create --dry-run"))
        .collect();
    assert_eq!(dry.len(), 3, "{commands:?}");
    assert!(
        dry[0].contains(&format!(
            "--annotation index:org.opencontainers.image.revision={}",
            context.revision
        )),
        "{}",
        dry[0]
    );
    assert!(
        commands
            .iter()
            .any(|c| c.contains("imagetools create --tag r.example/beacon@<digest:")),
        "{commands:?}"
    );
    assert!(!shims.scratch().join("release-record.json").exists());
}

#[test]
fn parts_that_disagree_are_refused_before_any_registry_or_engine_is_asked() {
    let context = Context::default();
    type Edit = Box<dyn Fn(&mut PartRecord)>;
    const NOTHING: &str = "nothing was pushed, signed or tagged";
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        (
            "another commit",
            Box::new(|p| p.commit = "f".repeat(40)),
            &["they are not parts of one release", "the commit", NOTHING],
        ),
        (
            "another version",
            Box::new(|p| p.version = "9.9.9".into()),
            &["the version", NOTHING],
        ),
        (
            // Its tags are no longer its repository's: refused as it is read.
            "another repository",
            Box::new(|p| p.repository = "r.example/other".parse().unwrap()),
            &[
                "is not a valid part record",
                "is not a tag of r.example/other",
            ],
        ),
        (
            "a build arg",
            Box::new(|p| {
                p.variants[0]
                    .recipe
                    .build_args
                    .insert("BUILDER_IMAGE".into(), "x@sha256:0".into());
            }),
            &[
                "built chainguard differently",
                "build arg BUILDER_IMAGE",
                NOTHING,
            ],
        ),
        (
            "a variant less",
            Box::new(|p| {
                p.variants.pop();
            }),
            &["holds no ubi9 of linux/arm64", "did not finish", NOTHING],
        ),
    ];
    for (what, edit, keywords) in cases {
        let shims = shims(what);
        let dir = shims.scratch();
        let amd64 = part(dir, &context, "linux/amd64", '1', &|_| {});
        let arm64 = part(dir, &context, "linux/arm64", '2', &*edit);
        let output = merge(&shims, &context, &[&amd64, &arm64], &[]);
        assert_one_line_error(&output, keywords);
        assert_eq!(shims.log(), "", "{what}: nothing ran");
    }
    // Both parts of another commit than this checkout's.
    let shims = shims("other-commit");
    let other = Context {
        revision: "f".repeat(40),
        ..Context::default()
    };
    let dir = shims.scratch();
    let parts = [
        part(dir, &other, "linux/amd64", '1', &|_| {}),
        part(dir, &other, "linux/arm64", '2', &|_| {}),
    ];
    let output = merge(&shims, &context, &[&parts[0], &parts[1]], &[]);
    assert_one_line_error(&output, &["this checkout's release", &context.revision]);
    // A platform missing, a platform twice.
    let amd64 = part(dir, &context, "linux/amd64", '1', &|_| {});
    let output = merge(&shims, &context, &[&amd64], &[]);
    assert_one_line_error(&output, &["no part holds linux/arm64"]);
    let again = part(dir, &context, "linux/amd64", '3', &|_| {});
    let output = merge(&shims, &context, &[&amd64, &again], &[]);
    assert_one_line_error(&output, &["linux/amd64 is given twice"]);
    // A release record is not a part.
    let record = dir.join("record.json");
    std::fs::write(
        &record,
        ReleaseRecord::for_plan(&release_plan(&context, &["linux/amd64"]))
            .unwrap()
            .to_json(),
    )
    .unwrap();
    let output = merge(&shims, &context, &[&record], &[]);
    assert_one_line_error(&output, &["is not a part record"]);
    assert_eq!(shims.log(), "", "nothing ran");
}

#[test]
fn a_part_is_some_of_the_releases_platforms_built_and_pushed_only() {
    let shims = shims("part-refusals");
    let file = Context::default().write(shims.scratch());
    let attempt = |args: &[&str]| {
        run(xtask()
            .env("PATH", shims.path())
            .env("XTASK_CONTEXT", &file)
            .args(["release-image", "--registry", REGISTRY])
            .args(args))
    };
    let output = attempt(&["--part", "--platform", "linux/amd64"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        support::stderr(&output).contains("--build-only"),
        "{output:?}"
    );
    let output = attempt(&[
        "--build-only",
        "--part",
        "linux/amd64",
        "--platform",
        "linux/arm64",
    ]);
    assert_one_line_error(
        &output,
        &["--platform linux/arm64 is not a platform of the release (--part linux/amd64)"],
    );
    assert_eq!(shims.log(), "", "refused before anything ran");
}
