//! Scenario 7: the xtask crate's own cold compile (not in a smoke run) and
//! the binary's start-up (`cargo xtask --help`).

use anyhow::Result;

use crate::client::process::Invocation;

use super::harness::Bench;
use super::meter::timed;
use super::Results;

pub(super) fn measure(bench: &Bench, results: &mut Results) -> Result<()> {
    if bench.smoke {
        results.note("7a (xtask cold compile) skipped in --smoke");
    } else {
        cold_compile(bench, results)?;
    }
    let help = Invocation::new(&bench.exe.display().to_string(), vec!["--help".into()]);
    let mut startup = Vec::new();
    for _ in 0..10 {
        startup.push(timed(&help)?.0);
    }
    results.scenario("7b cargo xtask --help start-up", startup);
    Ok(())
}

fn cold_compile(bench: &Bench, results: &mut Results) -> Result<()> {
    eprintln!("bench: 7. cold compile of the xtask crate");
    let target = bench.work.join("xtask-cold");
    let build = Invocation::new(
        "cargo",
        ["build", "--quiet", "--package", "xtask"]
            .map(String::from)
            .to_vec(),
    )
    .in_dir(&bench.tree)
    .with_env("CARGO_TARGET_DIR", target.display().to_string());
    let mut compile = Vec::new();
    for _ in 0..bench.repeat {
        let _ = std::fs::remove_dir_all(&target);
        compile.push(timed(&build)?.0);
    }
    let compile_median = results.scenario("7a cold compile of the xtask crate", compile);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    results.ratio(
        &format!("xtask cold compile, seconds ({cpus} cores)"),
        compile_median,
        "< 40 s on 2 cores",
        compile_median < 40.0,
    );
    Ok(())
}
