//! Scenario 6: the tool's overhead. `cargo xtask ci-image` against the same
//! `docker buildx bake` run by hand (the one its `--dry-run --json` prints),
//! both read line by line as they run, so the difference is the tool's
//! alone: after a one-line change (the representative case) and on a no-op
//! build (the tool's fixed cost: checks, git, planning). The two ways run
//! interleaved in ABBA order (the tool first in one pair, the hand-run bake
//! first in the next) so neither gets a warmer engine or a steadier
//! machine; an even number of pairs balances the orders.

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::client::process::Invocation;
use crate::model::files;

use super::harness::Bench;
use super::meter::timed;
use super::{median, Results};

/// The run directory a dry run names, made real for the hand-run bake.
const BY_HAND_DIR: &str = "target/xtask/runs/bench-by-hand";

pub(super) fn measure(bench: &Bench, results: &mut Results) -> Result<()> {
    eprintln!("bench: 6. cargo xtask ci-image vs the same buildx bake by hand");
    let by_hand = hand_run_bake(bench)?;
    let pairs = bench.repeat.max(if bench.smoke { 1 } else { 12 });
    let (tool, hand) = pairs_of(bench, &by_hand, pairs, true)?;
    let (tool_median, hand_median) = (median(&tool), median(&hand));
    results.scenario("6a cargo xtask ci-image (after a one-line change)", tool);
    results.scenario(
        "6b the same docker buildx bake by hand (after a one-line change)",
        hand,
    );
    let overhead = (tool_median - hand_median) / hand_median;
    results.ratio(
        "tool overhead vs buildx by hand (a one-line change)",
        overhead,
        "< 5 %",
        overhead < 0.05,
    );
    let (tool_noop, hand_noop) = pairs_of(bench, &by_hand, pairs, false)?;
    let fixed_cost = median(&tool_noop) - median(&hand_noop);
    results.scenario("6c cargo xtask ci-image (no-op)", tool_noop);
    results.scenario("6d the same docker buildx bake by hand (no-op)", hand_noop);
    results.ratio(
        "tool fixed cost on a no-op build, seconds",
        fixed_cost,
        "reported",
        true,
    );
    Ok(())
}

/// `pairs` ABBA-ordered pairs of the tool's build and the hand-run bake,
/// each after a one-line change when `changed`; (tool's, hand's) seconds.
fn pairs_of(
    bench: &Bench,
    by_hand: &Invocation,
    pairs: usize,
    changed: bool,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let (mut tool, mut hand) = (Vec::new(), Vec::new());
    for n in 0..pairs {
        for tool_turn in [n % 2 == 0, n % 2 == 1] {
            if changed {
                bench.one_line_change(200 + 2 * n + usize::from(tool_turn))?;
            }
            if tool_turn {
                tool.push(bench.ci_image(&bench.pr, &["--cache", "none"])?.seconds);
            } else {
                // Run and timed the way the tool is (its output read line by
                // line as it arrives): a bake whose output went to /dev/null
                // saved the reading the tool's run pays.
                let run = bench
                    .metered(by_hand)
                    .context("the hand-run buildx bake failed")?;
                hand.push(run.seconds);
            }
        }
    }
    Ok((tool, hand))
}

/// The `docker buildx bake` the tool runs for the pull request's CI build,
/// as its `--dry-run --json` prints it, to run by hand on the scratch
/// checkout.
fn hand_run_bake(bench: &Bench) -> Result<Invocation> {
    let args = [
        vec!["ci-image".to_string()],
        bench.variant_args(),
        bench.build_args.clone(),
        [
            "--registry",
            &bench.registry,
            "--image-name",
            &bench.name,
            "--cache",
            "none",
            "--dry-run",
            "--json",
        ]
        .map(String::from)
        .to_vec(),
    ]
    .concat();
    let (_, plan_text) = timed(&bench.xtask(&bench.pr, args))?;
    let plan: Value = serde_json::from_str(plan_text.trim_start_matches(|c| c != '{'))
        .context("unreadable --dry-run --json output")?;
    let bake = plan["commands"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| {
            c["args"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == "bake"))
        })
        .context("--dry-run --json printed no buildx bake")?;
    files::create_dir_all(&bench.tree.join(BY_HAND_DIR))?;
    let bake_args: Vec<String> = bake["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .map(|arg| arg.replace("target/xtask/runs/ci-image-<run>", BY_HAND_DIR))
                .collect()
        })
        .unwrap_or_default();
    let mut invocation = Invocation::new("docker", bake_args).in_dir(&bench.tree);
    invocation.stdin = Some(bake["stdin"].as_str().unwrap_or_default().to_string());
    Ok(invocation)
}
