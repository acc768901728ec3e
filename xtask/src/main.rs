//! `cargo xtask`: the image build system of this repository (the library
//! `lib.rs` holds it all; this is its entry point).
//!
//! Every image task goes through the same three steps: a pure function turns
//! the inputs into a typed plan (`plan/`), `render.rs` turns the plan into
//! the exact commands, and `exec.rs` runs them and reads the results back.
//! `--dry-run` stops after rendering, `--json` prints the plan or the result
//! as data.

use std::process::ExitCode;

use clap::Parser;
use xtask::cli;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return argument_error(err),
    };
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

/// Help and version go to stdout as clap renders them; a bad argument is one
/// line like every other error: clap's message and where to look.
fn argument_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let rendered = err.render().to_string();
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_string();
    // The missing arguments clap lists under its first line (`  --record
    // <FILE>`), the possible values and its tip; not the usage and help lines.
    let details: Vec<&str> = lines
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| {
            l.starts_with("[possible values")
                || l.starts_with("tip:")
                || l.starts_with('<')
                || l.starts_with("--")
        })
        .collect();
    let mut line = first;
    for detail in details {
        line.push_str(if line.ends_with(':') { " " } else { "; " });
        line.push_str(detail);
    }
    eprintln!("error: {line}; see `cargo xtask --help` or `cargo xtask <command> --help`");
    ExitCode::from(2)
}

fn one_line(err: &anyhow::Error) -> String {
    err.chain()
        .map(|cause| cause.to_string().replace('\n', " "))
        .collect::<Vec<_>>()
        .join(": ")
}
