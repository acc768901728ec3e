//! Scenario 4: a warm local CI rebuild after a one-line change, against a
//! cold CI build (the engine and its cache mounts as the fresh-runner
//! builds left them).

use anyhow::Result;

use super::harness::Bench;
use super::{earlier, Results};

pub(super) fn measure(bench: &Bench, results: &mut Results) -> Result<()> {
    eprintln!("bench: 4. warm local rebuild after a one-line change");
    let ci = earlier(results.figures.cold_ci, "the cold CI build", "ci_vs_production")?;
    bench.ci_image(&bench.pr, &["--cache", "none"])?;
    let mut warm = Vec::new();
    for n in 0..bench.repeat {
        bench.one_line_change(100 + n)?;
        warm.push(bench.ci_image(&bench.pr, &["--cache", "none"])?.seconds);
    }
    let warm_median = results.scenario("4 warm local CI rebuild after a one-line change", warm);
    results.ratio(
        "warm local CI rebuild / cold CI",
        warm_median / ci,
        "<= 0.15",
        warm_median / ci <= 0.15,
    );
    Ok(())
}
