//! `cargo xtask`: the image build system of this repository.
//!
//! Every image task goes through the same three steps (see `plan.rs`):
//! a pure function turns the inputs into a typed [`plan::Plan`], `render.rs`
//! turns the plan into the exact commands, and `exec.rs` runs them and reads
//! the results back. `--dry-run` stops after rendering, `--json` prints the
//! plan or the result as data.

mod cache;
mod ci_image;
mod cli;
mod context;
mod distribution;
mod exec;
mod github;
mod lint;
mod names;
mod plan;
#[cfg(test)]
mod plan_tests;
mod preflight;
mod project;
mod prune;
mod recipe;
mod registry;
mod release_image;
mod render;
mod sign;
mod stand_ins;
mod test_task;
mod verify;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Lets tests check that a command line (from a workflow, the README, the
    // Makefile) is accepted by the real CLI without running it.
    if std::env::var_os("XTASK_PARSE_ONLY").is_some() {
        return ExitCode::SUCCESS;
    }
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: what is wrong and how to fix it. Causes are appended on the
            // same line so nothing is lost, but the first words say what failed.
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

fn one_line(err: &anyhow::Error) -> String {
    err.chain()
        .map(|cause| cause.to_string().replace('\n', " "))
        .collect::<Vec<_>>()
        .join(": ")
}
