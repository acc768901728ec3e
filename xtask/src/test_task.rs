//! `cargo xtask test`: the whole suite. Unit and CLI tests need nothing; the
//! end-to-end tests need a Docker engine with buildx, cosign, skopeo and a
//! registry on 127.0.0.1 (`.ci/setup-stack` installs and starts them on
//! Debian). They fail, never skip, when the stack is missing.

use anyhow::{bail, Result};
use clap::Args;
use xshell::{cmd, Shell};

use crate::plan::Requirement;
use crate::{preflight, project};

#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    /// Run only the tests that need no engine (unit, CLI, workflow and tidy tests).
    #[arg(long)]
    pub no_engine: bool,

    /// Extra arguments for `cargo test` (after --), e.g. a test name filter.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

/// The integration test binaries that need the real stack.
const ENGINE_TESTS: &[&str] = &["e2e_bench", "e2e_compile", "e2e_images", "e2e_prune"];

pub fn run(args: TestArgs) -> Result<()> {
    let sh = Shell::new()?;
    sh.change_dir(project::project_root());
    let extra = &args.cargo_args;
    if args.no_engine {
        // Every test binary but the end-to-end ones, by name.
        cmd!(
            sh,
            "cargo test --workspace --locked --lib --bins {extra...}"
        )
        .run()?;
        cmd!(sh, "cargo test --locked -p beacon --tests {extra...}").run()?;
        cmd!(
            sh,
            "cargo test --locked -p xtask --test cli --test workflows --test tidy {extra...}"
        )
        .run()?;
        eprintln!(
            "note: the end-to-end tests ({}) were not run (--no-engine)",
            ENGINE_TESTS.join(", ")
        );
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
