//! Helpers of the end-to-end tests of the compile stages (e2e_compile.rs,
//! e2e_compile_inputs.rs): checkouts, the release and CI commands they run,
//! and what the build log says was compiled.

use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::model::build_log;

use super::e2e::{compile_fixture, ok, registry, root, xtask};

/// The variant the compile stages are exercised on: every variant takes its
/// binaries from the one compile file, so one stands for all.
pub const VARIANT: &str = "distroless";

/// The steps of the compile stage's `compile-service.sh build` in a build
/// log, by label (`linux/amd64->arm64 compile 2/2`), cached or not.
pub fn compile_steps(log: &str) -> Vec<build_log::Step> {
    build_log::steps(log)
        .into_iter()
        .filter(|s| s.instruction.contains("compile-service.sh build"))
        .collect()
}

/// The crates of the service's graph cargo compiled in this build (in the
/// steps of compile-service.sh, by step: the cargo-tools stage compiles a
/// tool), as `NAME (in STEP)`.
pub fn service_crates_compiled(log: &str) -> Vec<String> {
    build_log::compiled_crates(log, "compile-service.sh")
        .into_iter()
        .map(|(step, name)| format!("{name} (in {step})"))
        .collect()
}

/// The same, without the service itself: the dependencies.
pub fn dependencies_compiled(log: &str) -> Vec<String> {
    service_crates_compiled(log)
        .into_iter()
        .filter(|c| !c.starts_with("beacon "))
        .collect()
}

/// A clean checkout of HEAD (a build from the commit, as in CI, whatever
/// state this working tree is in; tests may edit it).
pub fn clean_checkout(name: &str) -> PathBuf {
    let tree = root().join("target/e2e/trees").join(name);
    remove_checkout(&tree);
    ok(Command::new("git")
        .current_dir(root())
        .args(["worktree", "add", "--detach", "--force"])
        .arg(&tree)
        .arg("HEAD"));
    tree
}

pub fn remove_checkout(tree: &Path) {
    let _ = Command::new("git")
        .current_dir(root())
        .args(["worktree", "remove", "--force"])
        .arg(tree)
        .output();
    let _ = std::fs::remove_dir_all(tree);
}

/// Appends a line to a file of a checkout.
pub fn append(tree: &Path, path: &str, line: &str) {
    let path = tree.join(path);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(line);
    text.push('\n');
    std::fs::write(&path, text).unwrap();
}

/// The xtask binary working on `tree` as a clean CI checkout of `git_ref`.
pub fn xtask_in(tree: &Path, context: &Path) -> Command {
    let mut command = xtask();
    command
        .current_dir(tree)
        .env("XTASK_PROJECT_ROOT", tree)
        .env("XTASK_CONTEXT", context);
    command
}

/// `release-image` of VARIANT as `REGISTRY/NAME`, unsigned, built with the
/// stand-ins and the pinned builder image.
pub fn release_image(command: &mut Command, name: &str) {
    let fixture = compile_fixture();
    command
        .args([
            "release-image",
            "--variant",
            VARIANT,
            "--registry",
            &registry(),
            "--image-name",
            name,
            "--sign",
            "none",
            "--sbom-generator",
            &fixture.sbom_generator,
        ])
        .args(fixture.build_options());
}

/// Empties the engine's build cache, cache mounts included: a fresh runner.
pub fn empty_the_engine() {
    ok(Command::new("docker").args(["buildx", "prune", "--all", "--force"]));
}
