//! Helpers of the end-to-end tests of `--builder` and of a newer buildx:
//! the second engine `runner2` (a second runner: `.ci/second-engine`, its
//! docker context `runner2` in the default docker config and in the newer
//! buildx's) and buildx 0.29.1 beside the stack's 0.13.1 (its own
//! DOCKER_CONFIG directory), both installed and started by `.ci/setup-stack`.
//! A missing piece fails the test with a line saying to run it, never skips.

use std::path::PathBuf;
use std::process::{Command, Output};

use super::e2e::{run, stderr, stdout, xtask};

/// The second engine's docker context (and buildx builder) name.
pub const RUNNER2: &str = "runner2";

/// The DOCKER_CONFIG directory of the newer buildx (`cli-plugins/docker-buildx`);
/// `.ci/setup-stack`'s BUILDX_NEW_CONFIG, same default.
pub fn buildx_new_config() -> PathBuf {
    std::env::var_os("BUILDX_NEW_CONFIG")
        .map_or_else(|| PathBuf::from("/opt/buildx029"), PathBuf::from)
}

/// `docker ARGS` with the newer buildx (`DOCKER_CONFIG`), or the stack's.
pub fn docker_with(newer_buildx: bool, args: &[&str]) -> Output {
    let mut command = Command::new("docker");
    if newer_buildx {
        command.env("DOCKER_CONFIG", buildx_new_config());
    }
    run(command.args(args))
}

/// `docker --context runner2 ARGS`: the second engine.
pub fn runner2(args: &[&str]) -> Output {
    run(Command::new("docker")
        .args(["--context", RUNNER2])
        .args(args))
}

/// Fails (never skips) unless the second engine answers through its
/// context, in both docker configs.
pub fn require_runner2() {
    for newer in [false, true] {
        let out = docker_with(
            newer,
            &[
                "--context",
                RUNNER2,
                "version",
                "--format",
                "{{.Server.Version}}",
            ],
        );
        let config = if newer {
            format!("DOCKER_CONFIG={}", buildx_new_config().display())
        } else {
            "the default docker config".to_string()
        };
        assert!(
            out.status.success() && !stdout(&out).trim().is_empty(),
            "the second engine {RUNNER2} does not answer through its docker context in {config} ({}): run `.ci/setup-stack` (it starts .ci/second-engine)",
            stderr(&out).trim()
        );
    }
}

/// Fails (never skips) unless the newer buildx (0.29 or later) runs from its
/// DOCKER_CONFIG directory; returns its version line.
pub fn require_newer_buildx() -> String {
    let out = docker_with(true, &["buildx", "version"]);
    let line = stdout(&out).trim().to_string();
    let minor = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.trim_start_matches('v').split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    assert!(
        out.status.success() && minor.is_some_and(|m| m >= 29),
        "buildx 0.29 or later is not in {} (`docker buildx version` with that DOCKER_CONFIG said {:?} {:?}): run `.ci/setup-stack`",
        buildx_new_config().display(),
        line,
        stderr(&out).trim()
    );
    line
}

/// The xtask binary running the newer buildx (its DOCKER_CONFIG).
pub fn xtask_newer_buildx() -> Command {
    require_newer_buildx();
    let mut command = xtask();
    command.env("DOCKER_CONFIG", buildx_new_config());
    command
}

/// `xtask SUBCOMMAND --builder runner2`, the second engine checked first.
pub fn xtask_on_runner2(subcommand: &str) -> Command {
    require_runner2();
    let mut command = xtask();
    command.args([subcommand, "--builder", RUNNER2]);
    command
}
