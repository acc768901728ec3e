//! A smoke run of `cargo xtask bench` (one repetition, one variant) so the
//! benchmark cannot rot. Its figures are not judged here: performance goals
//! live in the benchmark's own report, not in timed tests. Needs the real
//! stack (engine, registry, cosign, skopeo, the builder image); fails, never
//! skips, without it.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[test]
fn bench_smoke_run_measures_every_scenario() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(root)
        .args(["bench", "--smoke", "--json"])
        .env_remove("XTASK_CONTEXT")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "bench --smoke failed (run `sudo .ci/setup-stack` if the stack is missing):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["repeat"], 1);
    assert_eq!(report["variants"].as_array().unwrap().len(), 1);
    let scenarios = report["scenarios"].as_array().unwrap();
    for prefix in [
        "1a ", "1b ", "2 ", "3 ", "4a ", "4b ", "4c ", "4d ", "5b ", "6 ", "7a ", "7b ",
    ] {
        let found = scenarios
            .iter()
            .find(|s| s["name"].as_str().unwrap().starts_with(prefix));
        let found = found.unwrap_or_else(|| panic!("scenario {prefix}missing: {scenarios:?}"));
        assert_eq!(
            found["samples"].as_array().unwrap().len().min(1),
            1,
            "{found}"
        );
    }
    for timed in ["1a ", "1b ", "2 ", "7b "] {
        let median = scenarios
            .iter()
            .find(|s| s["name"].as_str().unwrap().starts_with(timed))
            .unwrap()["median"]
            .as_f64()
            .unwrap();
        assert!(median > 0.0, "scenario {timed}took no time: it did not run");
    }
    let ratios = report["ratios"].as_array().unwrap();
    assert!(ratios.len() >= 8, "{ratios:?}");
    assert!(ratios
        .iter()
        .all(|r| r["met"].is_boolean() && r["value"].is_number() && r["target"].is_string()));
    assert!(
        report["notes"].to_string().contains("skipped in --smoke"),
        "the cold compile is skipped, and says so"
    );
    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1);
}
