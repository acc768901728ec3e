//! beacon: the small HTTP service our container images ship.
//!
//! It runs as PID 1 in shell-less, statically linked images: it handles
//! SIGTERM/SIGINT itself (see `shutdown`), because the kernel ignores
//! default-disposition signals sent to PID 1, and it carries its own
//! HEALTHCHECK client (`beacon healthcheck`), because the images have no curl.
//!
//! Modules: `cli` (arguments and environment), `routes` (the HTTP surface and
//! its middleware), `server` (accept loop and graceful drain), `shutdown`
//! (signals), `telemetry` (JSON logs), `healthcheck` (the client).

// Enforced here rather than by convention: a panic in PID 1 takes the
// container down (and release builds abort on panic).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// tokio owns the signal handling, so nothing here needs unsafe code.
#![deny(unsafe_code)]

mod cli;
mod healthcheck;
mod routes;
mod server;
mod shutdown;
mod telemetry;

use std::process::ExitCode;
use std::time::Duration;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long the runtime may take to wind down after `server::run` returns.
/// Connections abandoned after the shutdown grace period are cancelled, so
/// this only bounds how long their tasks take to notice.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

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
            print_line(
                &mut std::io::stderr(),
                &format!("beacon: {msg} (see --help)"),
            );
            ExitCode::from(2)
        }
        Ok(cli::Command::Help) => {
            print_line(&mut std::io::stdout(), cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(cli::Command::Version) => {
            print_line(&mut std::io::stdout(), &format!("beacon {VERSION}"));
            ExitCode::SUCCESS
        }
        Ok(cli::Command::Serve { port }) => serve(port),
        Ok(cli::Command::Healthcheck { port, path }) => match healthcheck::check(port, &path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                print_line(&mut std::io::stderr(), &format!("healthcheck failed: {e}"));
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(port: u16) -> ExitCode {
    telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("beacon-worker")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(server::run(port));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, port, "cannot serve");
            ExitCode::FAILURE
        }
    }
}

/// One line of CLI output. Write errors are ignored on purpose: `println!`
/// panics when stdout is gone, and that must not turn into a crash.
fn print_line(out: &mut impl std::io::Write, line: &str) {
    let _ = writeln!(out, "{line}");
}
