//! `--builder NAME` against a recording docker shim (no engine): every engine
//! command of a run goes to the selected builder (a docker-driver builder of
//! another context by `docker --context`, any other by `buildx --builder`),
//! registry operations stay as they are, no flag means today's commands, and
//! a builder that does not exist or cannot build the platforms is refused in
//! one line before anything runs. The buildx texts are the captured ones of
//! `tests/fixtures/buildx-inspect/`.

mod support;

use std::path::PathBuf;
use std::process::Output;

use serde_json::json;

use support::{assert_one_line_error, run, sh_quote, stderr, stdout, xtask, Context, Shims};
use xtask::model::tags::SHARED_COMPILE;

fn fixture(name: &str) -> PathBuf {
    support::project_root().join(format!("xtask/tests/fixtures/buildx-inspect/{name}.txt"))
}

fn variants() -> Vec<String> {
    xtask::project::discover_variants(&support::project_root()).unwrap()
}

/// What bake's metadata file says of a CI build of every variant: one image
/// each, and the shared compile's untagged image (which the tool removes).
fn metadata() -> String {
    let mut metadata = serde_json::Map::new();
    for variant in variants() {
        metadata.insert(
            variant,
            json!({"containerimage.digest": "sha256:aa", "containerimage.descriptor": {"mediaType": "application/vnd.oci.image.manifest.v1+json"}}),
        );
    }
    metadata.insert(
        SHARED_COMPILE.into(),
        json!({"containerimage.digest": "sha256:cc", "image.name": "moby-dangling@sha256:cc"}),
    );
    serde_json::Value::Object(metadata).to_string()
}

/// A docker that knows the builders `inspect` (name -> `buildx inspect`
/// text file) and answers the engine commands of a CI build only when they
/// start with `prefix` (`--context runner2 ` or nothing); anything else fails
/// the run.
fn docker(label: &str, prefix: &str, inspect: &[(&str, PathBuf)]) -> Shims {
    let shims = Shims::new(label);
    let mut body = String::from(
        "case \"$*\" in\n  'buildx version') echo 'github.com/docker/buildx 0.13.1 x';;\n",
    );
    for (name, file) in inspect {
        let file = file.display().to_string();
        body.push_str(&format!(
            "  {}) cat {};;\n",
            sh_quote(&format!("buildx inspect {name}")),
            sh_quote(&file)
        ));
    }
    let engine = |args: &str| sh_quote(&format!("{prefix}{args}"));
    body.push_str(&format!(
        "  {}) cat {};;\n  {}) echo 26.1.5;;\n  {}*) while [ $# -gt 0 ]; do [ \"$1\" = --metadata-file ] && printf '%s' {} > \"$2\"; shift; done;;\n  {}*) echo deleted;;\n  {}*) echo 1234;;\n",
        engine("buildx inspect").trim_end(),
        sh_quote(&inspect.first().map_or_else(|| fixture("default-0.13.1"), |i| i.1.clone()).display().to_string()),
        engine("version --format {{.Server.Version}}"),
        engine("buildx bake "),
        sh_quote(&metadata()),
        engine("image rm "),
        engine("image inspect "),
    ));
    body.push_str("  *) echo \"unexpected: docker $*\" >&2; exit 3;;\nesac");
    shims.script("docker", &body);
    shims
}

fn ci_image(shims: &Shims, args: &[&str]) -> Output {
    let context = Context::default().write(shims.scratch());
    let summary = shims.scratch().join("summary.md");
    run(xtask()
        .env("PATH", shims.path())
        .env("XTASK_CONTEXT", context)
        // A job summary makes the run read the loaded image's size back.
        .env("GITHUB_STEP_SUMMARY", summary)
        .arg("ci-image")
        .args(args))
}

fn docker_calls(shims: &Shims) -> Vec<String> {
    shims
        .log()
        .lines()
        .filter(|l| l.starts_with("docker "))
        .map(String::from)
        .collect()
}

#[test]
fn every_engine_command_of_a_build_on_runner2_goes_to_its_engine() {
    let shims = docker(
        "on-runner2",
        "--context runner2 ",
        &[("runner2", fixture("runner2-0.13.1"))],
    );
    // Another platform than the native one: the preflight inspects the builder too.
    let out = ci_image(
        &shims,
        &["--builder", "runner2", "--platform", "linux/arm64"],
    );
    assert!(out.status.success(), "{}\n{}", stderr(&out), shims.log());
    let calls = docker_calls(&shims);
    for call in &calls {
        // The client's plugin check and the lookup of the builder by name are the only others.
        let own =
            ["docker buildx version", "docker buildx inspect runner2"].contains(&call.as_str());
        assert!(
            own || call.starts_with("docker --context runner2 "),
            "{call}\nall:\n{}",
            calls.join("\n")
        );
    }
    for command in [
        "version",
        "buildx inspect",
        "buildx bake",
        "image rm sha256:cc",
        "image inspect",
    ] {
        let wanted = format!("docker --context runner2 {command}");
        assert!(
            calls.iter().any(|c| c.starts_with(&wanted)),
            "{wanted}:\n{}",
            calls.join("\n")
        );
    }
    assert!(
        stderr(&out).contains("builder runner2 (driver docker; every engine command runs as `docker --context runner2 ...`): linux/arm64 on node runner2 (runner2)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn without_builder_the_commands_are_todays() {
    let shims = docker("no-builder", "", &[]);
    let out = ci_image(&shims, &[]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), shims.log());
    let calls = docker_calls(&shims);
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("docker buildx bake --file -")),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c == "docker image rm sha256:cc"),
        "{calls:?}"
    );
    for call in &calls {
        assert!(
            !call.contains("--context") && !call.contains("--builder"),
            "{call}"
        );
    }
    assert!(
        !stderr(&out).contains("builder "),
        "no builder said: {}",
        stderr(&out)
    );
}

#[test]
fn a_builder_of_another_driver_is_named_to_buildx_and_its_routes_said() {
    let shims = docker(
        "multi-dry",
        "",
        &[("bxmulti", fixture("multi-node-0.29.1"))],
    );
    let out = ci_image(
        &shims,
        &[
            "--builder",
            "bxmulti",
            "--platform",
            "linux/arm64",
            "--dry-run",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("\ndocker buildx --builder bxmulti bake --file -"),
        "{text}"
    );
    assert!(
        text.contains("# builder bxmulti (driver docker-container; buildx runs as `docker buildx --builder bxmulti ...`): linux/arm64 on node bxm-arm (runner2)"),
        "{text}"
    );
    shims.assert_nothing_built_or_pushed();
}

#[test]
fn a_builder_that_builds_none_of_the_platforms_is_refused_in_one_line() {
    let shims = docker(
        "multi-none",
        "",
        &[("bxmulti", fixture("multi-node-0.13.1"))],
    );
    let out = ci_image(
        &shims,
        &["--builder", "bxmulti", "--platform", "linux/s390x"],
    );
    assert_one_line_error(
        &out,
        &[
            "\"bxmulti\" (driver docker-container) can build none of linux/s390x",
            "node bxm-amd inactive: linux/amd64",
            "exec format error",
            "docker buildx create --append --name bxmulti --platform linux/s390x",
            "docker buildx ls",
            "docker buildx inspect --bootstrap bxmulti",
        ],
    );
    shims.assert_nothing_built_or_pushed();
}

#[test]
fn a_release_needs_a_builder_that_builds_every_platform() {
    let scratch = support::TempDir::new("amd-only-text");
    let text = scratch.path().join("amd-only.txt");
    std::fs::write(
        &text,
        "Name: amd-only\nDriver: docker-container\n\nNodes:\nName: amd-only0\nEndpoint: unix:///var/run/docker.sock\nStatus: running\nPlatforms: linux/amd64\n",
    )
    .unwrap();
    let shims = docker("amd-only", "", &[("amd-only", text)]);
    let context = Context::default().write(shims.scratch());
    let out = run(xtask()
        .env("PATH", shims.path())
        .env("XTASK_CONTEXT", context)
        .args([
            "release-image",
            "--builder",
            "amd-only",
            "--sign",
            "none",
            "--registry",
            "127.0.0.1:5000",
        ]));
    assert_one_line_error(
        &out,
        &[
            "builder \"amd-only\" (driver docker-container) cannot build linux/arm64",
            "it can build: linux/amd64",
        ],
    );
    shims.assert_nothing_built_or_pushed();
}

#[test]
fn a_builder_that_does_not_exist_is_refused_in_one_line() {
    let shims = Shims::new("no-such");
    shims.program(
        "docker",
        &[
            support::Reply::ok("buildx version", "github.com/docker/buildx 0.13.1 x\n"),
            support::Reply::fail(
                "buildx inspect nope",
                1,
                "ERROR: no builder \"nope\" found\n",
            ),
        ],
    );
    let out = ci_image(&shims, &["--builder", "nope"]);
    assert_one_line_error(
        &out,
        &["there is no buildx builder \"nope\"", "docker buildx ls"],
    );
    shims.assert_nothing_built_or_pushed();
}
