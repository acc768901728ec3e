//! `cargo xtask test`: the whole suite. Unit and CLI tests need nothing; the
//! end-to-end tests need a Docker engine with buildx, cosign, skopeo and a
//! registry on 127.0.0.1 (`.ci/setup-stack` installs and starts them on
//! Debian). They fail, never skip, when the stack is missing.
//!
//! The end-to-end test binaries run in two lanes side by side. The compile
//! lane holds the binaries that compile the service's dependency graph in
//! the engine (both architectures, from an emptied engine: CPU-bound for
//! minutes); the other lane holds the rest, which wait mostly on the
//! registry, cosign, skopeo and containers and build only from host-built
//! binaries. Run one after the other they add up; side by side the waits of
//! one fill the other's CPU. They share the engine safely: every test names
//! its own repositories and images, and none asserts on another's cache (a
//! prune in one lane only makes the other's next build colder).

use std::path::Path;

use anyhow::{bail, Context as _, Result};

use crate::client::process::{self, Invocation};
use crate::preflight::{self, Requirement};
use crate::project;

#[derive(Debug, Clone)]
pub struct TestOptions {
    /// Run only the tests that need no engine (unit, CLI, workflow and tidy tests).
    pub no_engine: bool,
    /// Extra arguments for `cargo test`, e.g. a test name filter.
    pub cargo_args: Vec<String>,
}

/// The end-to-end test binaries of the compile lane (see the module comment).
const COMPILE_LANE: &[&str] = &["e2e_compile"];

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

fn test_args(tests: &[String]) -> Vec<String> {
    tests
        .iter()
        .flat_map(|t| ["--test".to_string(), t.clone()])
        .collect()
}

pub fn run(args: TestOptions) -> Result<()> {
    let root = project::project_root();
    let extra = &args.cargo_args;
    if !args.no_engine {
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
        // Every test binary first, so the lanes below do not race to build them.
        cargo(
            &root,
            &["test", "--workspace", "--locked", "--no-run"],
            extra,
        )?;
    }
    // Unit tests of both crates and every integration test binary but the
    // end-to-end ones, by name. Always `--workspace`: a `-p` run resolves
    // features for that package alone and would build every test binary again.
    let (mut engine, mut rest) = (Vec::new(), Vec::new());
    for dir in ["service", "xtask"] {
        for test in integration_tests(&root.join(dir))? {
            if test.starts_with("e2e_") {
                engine.push(test);
            } else {
                rest.push(test);
            }
        }
    }
    let mut tests = test_args(&rest);
    tests.extend(extra.iter().cloned());
    cargo(
        &root,
        &["test", "--workspace", "--locked", "--lib", "--bins"],
        &tests,
    )?;
    if args.no_engine {
        eprintln!(
            "note: the end-to-end tests ({}) were not run (--no-engine)",
            engine.join(", ")
        );
        return Ok(());
    }
    let (compile, images): (Vec<String>, Vec<String>) = engine
        .into_iter()
        .partition(|t| COMPILE_LANE.contains(&t.as_str()));
    run_lanes(&root, &[("compile", compile), ("images", images)], extra)
}

/// `cargo ARGS EXTRA...` in the project root, its output as it comes.
fn cargo(root: &Path, args: &[&str], extra: &[String]) -> Result<()> {
    let args = args
        .iter()
        .map(|a| a.to_string())
        .chain(extra.iter().cloned());
    let invocation = Invocation::new("cargo", args.collect()).in_dir(root);
    eprintln!("$ {}", invocation.display());
    if !process::stream(&invocation)?.success {
        bail!("`{}` failed (its output is above)", invocation.display());
    }
    Ok(())
}

/// Runs each lane's test binaries (`cargo test --workspace --test ...`) in a
/// child of its own, all at once, printing their lines as they come,
/// prefixed with the lane's name; fails naming every lane that failed.
fn run_lanes(root: &Path, lanes: &[(&str, Vec<String>)], extra: &[String]) -> Result<()> {
    let lanes: Vec<&(&str, Vec<String>)> = lanes.iter().filter(|(_, t)| !t.is_empty()).collect();
    for (name, tests) in &lanes {
        eprintln!(
            "test: lane {name}: {} (side by side with the other lane)",
            tests.join(", ")
        );
    }
    let mut running = Vec::new();
    for (name, tests) in &lanes {
        let args: Vec<String> = ["test", "--workspace", "--locked"]
            .into_iter()
            .map(String::from)
            .chain(test_args(tests))
            .chain(extra.iter().cloned())
            .collect();
        let invocation = Invocation::new("cargo", args).in_dir(root);
        let name = name.to_string();
        running.push(std::thread::spawn(move || -> Result<(String, bool)> {
            let streamed = process::stream_with(&invocation, &mut |line| print!("[{name}] {line}"))
                .with_context(|| format!("cannot start the {name} lane's cargo test"))?;
            Ok((name, streamed.success))
        }));
    }
    let mut failed = Vec::new();
    for lane in running {
        let (name, passed) = lane
            .join()
            .map_err(|_| anyhow::anyhow!("a test lane's output reader panicked"))??;
        if !passed {
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        bail!(
            "end-to-end tests failed in lane(s) {} (their lines above, prefixed [lane], say which and why)",
            failed.join(", ")
        );
    }
    Ok(())
}
