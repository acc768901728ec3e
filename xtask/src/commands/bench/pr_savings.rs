//! The proposal's cost claim: a pull request's build against what every
//! pull request used to build (a production release), in CPU seconds and
//! registry bytes, from the costs the earlier scenarios metered.

use anyhow::Result;

use crate::model::names::Platform;

use super::harness::Bench;
use super::Results;

pub(super) fn measure(_: &Bench, results: &mut Results) -> Result<()> {
    let pr_cost = results
        .costs
        .iter()
        .find(|c| c.build.starts_with("pull request"))
        .cloned();
    let release_cost = results
        .costs
        .iter()
        .find(|c| c.build.starts_with("production"))
        .cloned();
    if let (Some(pr_cost), Some(release_cost)) = (pr_cost, release_cost) {
        if let (Some(pr_cpu), Some(release_cpu)) = (pr_cost.cpu_seconds, release_cost.cpu_seconds) {
            let saved = 1.0 - pr_cpu / release_cpu;
            results.ratio(
                "CPU seconds a PR build saves against a production build",
                saved,
                ">= 0.40 (the proposal's 40-60 %)",
                saved >= 0.4,
            );
        } else {
            results.note("CPU seconds could not be read (no BuildKit cgroup under /sys/fs/cgroup): the cost claim is judged on bytes only");
        }
        let saved = 1.0 - pr_cost.bytes_written as f64 / release_cost.bytes_written.max(1) as f64;
        results.ratio(
            "registry bytes a PR build saves against a production build",
            saved,
            ">= 0.40 (the proposal's 40-60 %)",
            saved >= 0.4,
        );
    }
    results.note(format!(
        "CPU seconds count BuildKit's RUN steps, dockerd, containerd and the tool's own processes on this {} machine; other builds on the same engine at the same time count too",
        Platform::native()
    ));
    Ok(())
}
