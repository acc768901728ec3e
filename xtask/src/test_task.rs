//! `cargo xtask test`: the whole suite. Unit and CLI tests need nothing; the
//! end-to-end tests need a Docker engine with buildx, cosign, skopeo and a
//! registry on 127.0.0.1 (`.ci/setup-stack` installs and starts them on
//! Debian). They fail, never skip, when the stack is missing.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use xshell::{cmd, Shell};

use crate::preflight::{self, Requirement};
use crate::project;

#[derive(Debug, Clone)]
pub struct TestOptions {
    /// Run only the tests that need no engine (unit, CLI, workflow and tidy tests).
    pub no_engine: bool,
    /// Extra arguments for `cargo test`, e.g. a test name filter.
    pub cargo_args: Vec<String>,
}

/// The integration test files of a crate (`tests/NAME.rs`), by name. Those
/// named `e2e_*` need the real stack: engine, registry, cosign.
fn integration_tests(crate_dir: &Path) -> Result<Vec<String>> {
    let dir = crate_dir.join("tests");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|entry| {
            entry
                .ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".rs")
                .map(String::from)
        })
        .collect();
    names.sort();
    Ok(names)
}

pub fn run(args: TestOptions) -> Result<()> {
    let root = project::project_root();
    let sh = Shell::new()?;
    sh.change_dir(&root);
    let extra = &args.cargo_args;
    if args.no_engine {
        // Unit tests of both crates, then every integration test binary but
        // the end-to-end ones, by name.
        cmd!(
            sh,
            "cargo test --workspace --locked --lib --bins {extra...}"
        )
        .run()?;
        for (package, dir) in [("beacon", "service"), ("xtask", "xtask")] {
            let (engine, rest): (Vec<String>, Vec<String>) = integration_tests(&root.join(dir))?
                .into_iter()
                .partition(|t| t.starts_with("e2e_"));
            let tests: Vec<String> = rest
                .iter()
                .flat_map(|t| ["--test".to_string(), t.clone()])
                .collect();
            if !tests.is_empty() {
                cmd!(sh, "cargo test --locked -p {package} {tests...} {extra...}").run()?;
            }
            if !engine.is_empty() {
                eprintln!(
                    "note: the end-to-end tests of {package} ({}) were not run (--no-engine)",
                    engine.join(", ")
                );
            }
        }
        return Ok(());
    }
    let missing: Vec<String> = [
        Requirement::Docker,
        Requirement::Buildx,
        Requirement::Engine,
        Requirement::Cosign,
        Requirement::Skopeo,
    ]
    .iter()
    .filter_map(|r| preflight::check(r).err())
    .map(|e| e.to_string())
    .collect();
    if !missing.is_empty() {
        bail!(
            "the end-to-end tests need the container stack ({}): on Debian run `sudo .ci/setup-stack`; `cargo xtask test --no-engine` runs the rest",
            missing.join("; ")
        );
    }
    cmd!(sh, "cargo test --workspace --locked {extra...}").run()?;
    Ok(())
}
