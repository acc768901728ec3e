//! A smoke run of `cargo xtask bench` on the real engine and registry, so
//! the benchmark cannot rot. It compiles in the Dockerfiles' compile stages
//! (the production build for both platforms), and so is CPU-bound for
//! minutes: `cargo xtask test` runs it last in the lane that does not hold
//! e2e_compile.rs, where it overlaps the other lane's rebuild checks instead
//! of lengthening that lane (the longest part of the suite). The engine is
//! shared: a prune in the other lane only makes a build here colder, and the
//! figures are not judged. It fails (never skips) when the stack is missing.

mod support;

use std::process::Command;

use serde_json::Value;

use support::e2e::{compile_fixture, root};

/// A smoke run of `cargo xtask bench` (one repetition, one variant, an
/// engine never emptied) so the benchmark cannot rot. Its figures are not
/// judged here: performance goals live in the benchmark's own report, not in
/// timed tests.
#[test]
fn bench_smoke_run_measures_every_scenario() {
    let _ = compile_fixture();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(root())
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
        "1a ", "1b ", "2a ", "2b ", "3 ", "3a ", "3b ", "3c ", "4 ", "5 ", "6a ", "6b ", "6c ",
        "6d ", "7b ", "8 ",
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
    for timed in ["1a ", "1b ", "2a ", "3a ", "3b ", "4 ", "7b "] {
        let median = scenarios
            .iter()
            .find(|s| s["name"].as_str().unwrap().starts_with(timed))
            .unwrap()["median"]
            .as_f64()
            .unwrap();
        assert!(median > 0.0, "scenario {timed}took no time: it did not run");
    }
    let ratios = report["ratios"].as_array().unwrap();
    assert!(ratios.len() >= 12, "{ratios:?}");
    for name in [
        "fresh-runner PR CI build / cold CI",
        "dependency crates compiled by the fresh-runner PR build",
        "warm local CI rebuild / cold CI",
        "cold production / its floor",
        "fresh runner: host-built path / compile stage",
        "registry bytes a PR build saves",
        "CPU seconds a PR build saves",
    ] {
        assert!(
            ratios
                .iter()
                .any(|r| r["name"].as_str().unwrap().starts_with(name)),
            "ratio {name:?} missing: {ratios:?}"
        );
    }
    // What each build cost was metered: the pushes went through the
    // counting proxy, and CPU was read.
    let costs = report["costs"].as_array().unwrap();
    assert_eq!(costs.len(), 3, "{costs:?}");
    for cost in costs {
        assert!(cost["bytes_written"].as_u64().unwrap() > 0, "{cost}");
        assert!(cost["cpu_seconds"].as_f64().unwrap() > 0.0, "{cost}");
    }
    // Both architectures of the production build compiled, with times.
    let arches: Vec<&str> = report["arch_compiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["arch"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    assert!(ratios
        .iter()
        .all(|r| r["met"].is_boolean() && r["value"].is_number() && r["target"].is_string()));
    assert!(
        report["notes"].to_string().contains("skipped in --smoke"),
        "the cold compile is skipped, and says so"
    );
    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1);
}
