//! Scenario 5: a CI rebuild with nothing changed.

use anyhow::Result;

use super::harness::Bench;
use super::Results;

pub(super) fn measure(bench: &Bench, results: &mut Results) -> Result<()> {
    eprintln!("bench: 5. no-op CI rebuild");
    let mut noop = Vec::new();
    for _ in 0..bench.repeat {
        noop.push(bench.ci_image(&bench.pr, &["--cache", "none"])?.seconds);
    }
    let noop_median = results.scenario("5 no-op CI rebuild", noop);
    results.ratio(
        "no-op CI rebuild, seconds",
        noop_median,
        "< 5 s",
        noop_median < 5.0,
    );
    Ok(())
}
