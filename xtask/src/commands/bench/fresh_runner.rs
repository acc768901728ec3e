//! Scenario 3: a fresh runner, a cold engine that can read only main's
//! registry cache. Main's CI build writes that cache (mode=max); then, per
//! repetition, a one-line change to the service is built as a pull request
//! on an emptied engine. It should compile no dependency.

use anyhow::Result;

use super::harness::{dependencies_compiled, Bench};
use super::meter::cost;
use super::{earlier, Results};

pub(super) fn measure(bench: &Bench, results: &mut Results) -> Result<()> {
    eprintln!("bench: 3. fresh runner: a pull request's build with main's registry cache only");
    let ci = earlier(results.figures.cold_ci, "the cold CI build", "ci_vs_production")?;
    bench.cold()?;
    let main_build = bench.ci_image(&bench.main, &["--cache", "registry"])?;
    bench.keep_log("3-main-ci-build", &main_build)?;
    results.scenario(
        "3 main's CI build, writing main's registry cache (mode=max)",
        vec![main_build.seconds],
    );
    let (mut fresh, mut fresh_usage, mut compiled) = (Vec::new(), Vec::new(), 0usize);
    for n in 0..bench.repeat {
        bench.one_line_change(n)?;
        bench.cold()?;
        let context = bench.context(
            &format!("pr-fresh-{n}"),
            Some(&format!("refs/pull/{}/merge", 1000 + n)),
        )?;
        let run = bench.ci_image(&context, &["--cache", "registry"])?;
        bench.keep_log(&format!("3a-fresh-runner-pr-{n}"), &run)?;
        if run.usage.bytes_read < 1_000_000 && !bench.smoke {
            results.note(format!(
                "3a (run {n}): the fresh-runner build read only {} bytes from the registry, so it did not import main's cache: it measures a cold build (log: target/bench/logs/3a-fresh-runner-pr-{n}.log)",
                run.usage.bytes_read
            ));
        }
        compiled = compiled.max(dependencies_compiled(&run.log).len());
        fresh.push(run.seconds);
        fresh_usage.push(run.usage);
    }
    results.costs.push(cost(
        "pull request CI build (1 platform, load, cache export mode=min), fresh runner",
        &fresh_usage,
        &fresh,
    ));
    let fresh_median = results.scenario(
        "3a fresh runner, compile stage: PR CI build after a one-line change",
        fresh,
    );
    results.ratio(
        "fresh-runner PR CI build / cold CI",
        fresh_median / ci,
        "<= 0.25",
        fresh_median / ci <= 0.25,
    );
    results.ratio(
        "dependency crates compiled by the fresh-runner PR build (most of any run)",
        compiled as f64,
        "0",
        compiled == 0,
    );
    results.figures.fresh_runner = Some(fresh_median);
    Ok(())
}
