//! beacon: the small HTTP service our container images ship.
//!
//! It runs as PID 1 in shell-less, statically linked images, so it installs its
//! own SIGTERM/SIGINT handler (see `signal`) and carries its own HEALTHCHECK
//! client (`beacon healthcheck`). std only, no dependencies.

// Enforced here rather than by convention: a panic in PID 1 takes the container down.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// The only unsafe code is the `signal()` call, and that module opts in explicitly.
#![deny(unsafe_code)]

/// One line to stdout. Write errors are ignored on purpose: `println!` panics
/// when stdout is gone, and a vanished log reader must not kill the service.
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// One line to stderr, with the same reasoning as `log!`.
macro_rules! elog {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod cli;
mod healthcheck;
mod http;
mod server;
#[allow(unsafe_code)]
mod signal;

use std::process::ExitCode;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.into_string())
        .collect();
    let env_port = std::env::var("BEACON_PORT").ok().filter(|p| !p.is_empty());
    let command = match args {
        Ok(args) => cli::parse(&args, env_port.as_deref()),
        Err(arg) => Err(format!("argument {arg:?} is not valid UTF-8")),
    };

    match command {
        Err(msg) => {
            elog!("beacon: {msg} (see --help)");
            ExitCode::from(2)
        }
        Ok(cli::Command::Help) => {
            log!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(cli::Command::Version) => {
            log!("beacon {VERSION}");
            ExitCode::SUCCESS
        }
        Ok(cli::Command::Serve { port }) => match server::run(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                elog!("beacon: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(cli::Command::Healthcheck { port, path }) => match healthcheck::check(port, &path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                elog!("healthcheck failed: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
