//! `--builder` and a newer buildx, end to end: the second engine `runner2`
//! (a docker-driver builder of another docker context, started by
//! `.ci/setup-stack`) as the builder of a CI image and of a release, a
//! builder that does not exist, the dry run that shows the selection, and
//! `ci-image` under buildx 0.29.1. These tests fail (never skip) when a piece
//! is missing. Builds take the host-built binaries (`--binaries`) to stay fast.
//!
//! Assertions read what the engines and the registry hold.

mod support;

use std::path::Path;

use serde_json::Value;

use support::builders::{
    require_newer_buildx, runner2, xtask_newer_buildx, xtask_on_runner2, RUNNER2,
};
use support::e2e::{
    context_file, docker, engine_lock, fixture, index_platforms, one_line_error, registry,
    registry_manifest, root, run, run_ok, stderr, stdout, unique_name,
};
use support::TempDir;

/// One variant stands for all: the builder changes where, not what, is built.
fn variant() -> String {
    xtask::project::discover_variants(&root()).unwrap()[0].clone()
}

#[test]
fn ci_image_on_runner2_is_built_by_the_second_engine_and_lands_in_its_image_store() {
    let fixture = fixture();
    let _engine = engine_lock();
    let variant = variant();
    let name = unique_name("builder-ci");
    let out = run_ok(
        xtask_on_runner2("ci-image")
            .args([
                "--variant",
                &variant,
                "--registry",
                "localhost",
                "--image-name",
                &name,
            ])
            .args(fixture.build_options()),
    );
    let log = stderr(&out);
    assert!(
        log.contains("linux/amd64 on node runner2 (runner2)")
            || log.contains("linux/arm64 on node runner2 (runner2)"),
        "the preflight says which node builds the platform:\n{log}"
    );
    assert!(
        log.contains("building with \"runner2\" instance using docker driver"),
        "{log}"
    );
    let image = format!("localhost/{name}:ci-{variant}");
    let there = runner2(&["image", "inspect", "--format", "{{.Id}}", &image]);
    assert!(
        there.status.success(),
        "{image} is in runner2's image store: {}",
        stderr(&there)
    );
    let here = docker(&["image", "inspect", "--format", "{{.Id}}", &image]);
    assert!(
        !here.status.success(),
        "{image} is not in the main engine's: {}",
        stdout(&here)
    );
    let tags = run(std::process::Command::new("docker").args([
        "--context",
        RUNNER2,
        "image",
        "ls",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]));
    for tag in stdout(&tags)
        .lines()
        .filter(|t| t.starts_with(&format!("localhost/{name}:")))
    {
        let _ = runner2(&["image", "rm", tag]);
    }
}

#[test]
fn a_builder_that_does_not_exist_is_refused_in_one_line() {
    let _engine = engine_lock();
    let out = run(support::e2e::xtask().args([
        "ci-image",
        "--builder",
        "no-such-builder",
        "--variant",
        &variant(),
    ]));
    let line = one_line_error(&out);
    for part in ["no-such-builder", "docker buildx ls"] {
        assert!(line.contains(part), "{part:?} in {line}");
    }
}

#[test]
fn a_dry_run_on_runner2_shows_every_engine_command_on_its_context_with_either_buildx() {
    let _engine = engine_lock();
    let variant = variant();
    for newer_buildx in [false, true] {
        let mut command = if newer_buildx {
            let mut command = xtask_newer_buildx();
            command.args(["ci-image", "--builder", RUNNER2]);
            command
        } else {
            xtask_on_runner2("ci-image")
        };
        let out = run_ok(command.args(["--variant", &variant, "--dry-run", "--json"]));
        let dry: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(
            dry["plan"]["builder"]["via"]["context"], RUNNER2,
            "{}",
            dry["plan"]
        );
        let commands: Vec<Vec<&str>> = dry["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                c["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect()
            })
            .collect();
        let bake = commands
            .iter()
            .find(|a| a.contains(&"bake"))
            .expect("a bake");
        assert_eq!(
            bake[..4],
            ["--context", RUNNER2, "buildx", "bake"],
            "{bake:?}"
        );
        let text = run_ok(xtask_on_runner2("ci-image").args(["--variant", &variant, "--dry-run"]));
        assert!(
            stdout(&text).contains(&format!("docker --context {RUNNER2} buildx bake")),
            "{}",
            stdout(&text)
        );
    }
}

#[test]
fn ci_image_under_buildx_0_29_builds_from_binaries_outside_the_checkout() {
    let fixture = fixture();
    let _engine = engine_lock();
    let version = require_newer_buildx();
    let variant = variant();
    // Host binaries outside the project root: bake of buildx 0.18+ refuses
    // such a path unless told (the tool sets BUILDX_BAKE_ENTITLEMENTS_FS=0 then).
    let outside = TempDir::new("binaries-outside");
    let binaries = fixture
        .build_options()
        .into_iter()
        .find_map(|o| o.strip_prefix("--binaries=").map(String::from))
        .expect("the fixture builds from host binaries");
    copy_dir(Path::new(&binaries), outside.path());
    let mut options: Vec<String> = fixture
        .build_options()
        .into_iter()
        .filter(|o| !o.starts_with("--binaries"))
        .collect();
    options.push(format!("--binaries={}", outside.path().display()));
    let name = unique_name("buildx-new");
    let out = run_ok(
        xtask_newer_buildx()
            .args([
                "ci-image",
                "--variant",
                &variant,
                "--registry",
                "localhost",
                "--image-name",
                &name,
            ])
            .args(&options),
    );
    let log = stderr(&out);
    assert!(
        log.contains("Read access to path"),
        "{version} warned of the path outside (and built):\n{log}"
    );
    let image = format!("localhost/{name}:ci-{variant}");
    let inspect = docker(&["image", "inspect", "--format", "{{.Os}}", &image]);
    assert_eq!(stdout(&inspect).trim(), "linux", "{}", stderr(&inspect));
    let _ = docker(&["image", "rm", &image]);
}

#[test]
fn a_release_built_on_runner2_is_pushed_to_the_registry() {
    let fixture = fixture();
    let _engine = engine_lock();
    let variant = variant();
    let name = unique_name("builder-release");
    let record = root().join(format!("target/e2e/{}-record.json", name.replace('/', "-")));
    let context = context_file(&name.replace('/', "-"), "refs/heads/main", &[]);
    let out = run_ok(
        xtask_on_runner2("release-image")
            .args([
                "--variant",
                &variant,
                "--registry",
                &registry(),
                "--image-name",
                &name,
            ])
            .args([
                "--build-only",
                "--sign",
                "none",
                "--default-variant",
                "none",
            ])
            .args(["--sbom-generator", &fixture.sbom_generator])
            .arg(format!("--record={}", record.display()))
            .args(fixture.build_options())
            .env("XTASK_CONTEXT", context),
    );
    let log = stderr(&out);
    assert!(
        log.contains("building with \"runner2\" instance using docker driver"),
        "{log}"
    );
    assert!(
        log.contains(
            "linux/amd64 on node runner2 (runner2), linux/arm64 on node runner2 (runner2)"
        ),
        "{log}"
    );
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    let digest = written["variants"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let index = registry_manifest(&name, &digest);
    assert_eq!(
        index_platforms(&index),
        ["linux/amd64", "linux/arm64"],
        "{index}"
    );
    let attestations = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
        .count();
    assert_eq!(attestations, 2, "provenance and SBOM per platform: {index}");
    let _ = std::fs::remove_file(record);
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
