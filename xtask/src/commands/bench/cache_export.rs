//! Scenario 8: the share of a warm CI build spent exporting cache to the
//! registry, per cache mode (`min` is the pull requests' policy).

use anyhow::Result;

use super::harness::Bench;
use super::{median, Results};

pub(super) fn measure(bench: &Bench, results: &mut Results) -> Result<()> {
    eprintln!("bench: 8. cache export share per mode (registry backend)");
    for (mode, target, limit) in [
        ("min", "< 10 % (pull-request policy)", Some(0.10)),
        ("max", "reported", None),
    ] {
        let mut shares = Vec::new();
        for n in 0..bench.repeat {
            bench.one_line_change(300 + n)?;
            let run = bench.ci_image(&bench.pr, &["--cache", "registry", "--cache-mode", mode])?;
            shares.push(cache_export_seconds(&run.log) / run.seconds);
        }
        let share = median(&shares);
        results.scenario(
            &format!("8 cache export share of a warm CI build (a fraction), mode={mode}"),
            shares,
        );
        results.ratio(
            &format!("cache export / warm CI build, mode={mode}"),
            share,
            target,
            limit.is_none_or(|l| share < l),
        );
    }
    Ok(())
}

/// Seconds BuildKit spent exporting cache, from a plain-progress log.
pub(super) fn cache_export_seconds(log: &str) -> f64 {
    let mut steps: Vec<String> = Vec::new();
    let mut total = 0.0;
    for line in log.lines() {
        let mut words = line.split_whitespace();
        let Some(step) = words.next().filter(|w| w.starts_with('#')) else {
            continue;
        };
        let rest: Vec<&str> = words.collect();
        if rest.len() >= 2 && rest[0] == "exporting" && rest[1] == "cache" {
            steps.push(step.to_string());
        } else if rest.first() == Some(&"DONE") && steps.iter().any(|s| s == step) {
            total += rest
                .get(1)
                .and_then(|d| d.trim_end_matches('s').parse::<f64>().ok())
                .unwrap_or(0.0);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cache_export_time_from_buildx_logs() {
        let log = "#12 exporting to image\n#12 DONE 0.3s\n#13 exporting cache to registry\n#13 preparing build cache for export 0.1s done\n#13 DONE 1.5s\n#14 [ubi9 final 1/1] COPY x\n#14 CACHED\n";
        assert_eq!(cache_export_seconds(log), 1.5);
    }
}
