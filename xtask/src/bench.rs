//! `cargo xtask bench`: the split's promises, measured side by side in one
//! run on this machine, against the local stack. Each scenario runs what that
//! path really runs (the production path compiles both platforms in the
//! Dockerfile's compile stage, pushes, attests and signs); medians of several
//! repetitions, and the ratios between them, with their targets.
//!
//! It works on a scratch checkout of HEAD (`target/bench/tree`), so the
//! one-line change of scenario 2 never touches your tree.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use serde_json::Value;

use crate::context::BuildContext;
use crate::model::registry;
use crate::preflight::{self, Requirement};
use crate::{project, stand_ins};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Repetitions per scenario; medians are reported.
    pub repeat: usize,
    /// One repetition of every scenario on one variant, without the xtask cold compile.
    pub smoke: bool,
    /// Local registry for the stand-ins, pushes and registry caches.
    pub registry: String,
    /// Builder image for the compile stage; `dockerfile` keeps the Dockerfile's own.
    pub builder_image: Option<String>,
    /// Print the results as JSON.
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub samples: Vec<f64>,
    pub median: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub name: String,
    pub value: f64,
    pub target: String,
    pub met: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Value,
    pub repeat: usize,
    pub variants: Vec<String>,
    pub scenarios: Vec<Scenario>,
    pub ratios: Vec<Ratio>,
    pub notes: Vec<String>,
}

struct Bench {
    exe: PathBuf,
    tree: PathBuf,
    work: PathBuf,
    registry: String,
    name: String,
    variants: Vec<String>,
    build_args: Vec<String>,
    sbom_generator: String,
    key: PathBuf,
    repeat: usize,
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn scenario(name: &str, samples: Vec<f64>) -> Scenario {
    Scenario {
        name: name.to_string(),
        median: median(&samples),
        samples,
    }
}

fn ratio(name: &str, value: f64, target: &str, met: bool) -> Ratio {
    Ratio {
        name: name.to_string(),
        value,
        target: target.to_string(),
        met,
    }
}

/// Runs a command, returning (seconds, combined output); fails on a non-zero exit.
fn timed(expression: duct::Expression) -> Result<(f64, String)> {
    let started = Instant::now();
    let output = expression
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .with_context(|| format!("cannot run {expression:?}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        bail!(
            "benchmark step failed: {expression:?}: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
    }
    Ok((seconds, text))
}

/// Seconds BuildKit spent exporting cache, from a plain-progress log.
pub fn cache_export_seconds(log: &str) -> f64 {
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

/// Steps BuildKit answered from cache, from a plain-progress log.
pub fn cached_steps(log: &str) -> usize {
    log.lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("CACHED"))
        .count()
}

impl Bench {
    /// The xtask binary on the scratch checkout, in the given situation.
    fn xtask(&self, context: &Path, args: Vec<String>) -> duct::Expression {
        duct::cmd(&self.exe, args)
            .dir(&self.tree)
            .env("XTASK_PROJECT_ROOT", &self.tree)
            .env("XTASK_CONTEXT", context)
            .env("COSIGN_PASSWORD", "")
            .env_remove("GITHUB_OUTPUT")
            .env_remove("GITHUB_STEP_SUMMARY")
    }

    fn variant_args(&self) -> Vec<String> {
        self.variants
            .iter()
            .flat_map(|v| ["--variant".to_string(), v.clone()])
            .collect()
    }

    fn ci_image(&self, context: &Path, extra: &[&str]) -> Result<(f64, String)> {
        self.ci_image_named(&self.name, context, extra)
    }

    /// `ci-image` under another image name (and so another registry cache).
    fn ci_image_named(&self, name: &str, context: &Path, extra: &[&str]) -> Result<(f64, String)> {
        let mut args = vec!["ci-image".to_string()];
        args.extend(self.variant_args());
        args.extend(self.build_args.iter().cloned());
        args.extend(["--registry", &self.registry, "--image-name", name].map(String::from));
        args.extend(extra.iter().map(|a| a.to_string()));
        timed(self.xtask(context, args))
    }

    fn release_image(&self, context: &Path) -> Result<(f64, String)> {
        let mut args = vec!["release-image".to_string()];
        args.extend(self.variant_args());
        args.extend(self.build_args.iter().cloned());
        args.extend(
            [
                "--registry",
                &self.registry,
                "--image-name",
                &self.name,
                "--sbom-generator",
                &self.sbom_generator,
            ]
            .map(String::from),
        );
        args.push(format!("--key={}", self.key.display()));
        timed(self.xtask(context, args))
    }

    /// Empties the engine's build cache, cache mounts (the cargo registry and
    /// target dirs of the compile stage) included.
    fn cold(&self) -> Result<()> {
        timed(duct::cmd!("docker", "buildx", "prune", "--all", "--force"))?;
        Ok(())
    }

    fn one_line_change(&self, n: usize) -> Result<()> {
        let path = self.tree.join("service/src/main.rs");
        let mut text = std::fs::read_to_string(&path)?;
        text.push_str(&format!("// benchmark edit {n}\n"));
        std::fs::write(&path, text)?;
        Ok(())
    }

    fn context(&self, name: &str, base: &BuildContext, git_ref: Option<&str>) -> Result<PathBuf> {
        let mut context = base.clone();
        context.git.dirty = false;
        context.git.branch = Some("main".to_string());
        context.ci.git_ref = git_ref.map(String::from);
        let path = self.work.join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string(&context)?)?;
        Ok(path)
    }
}

pub fn run(args: BenchOptions) -> Result<()> {
    preflight::check_all(&[
        Requirement::Docker,
        Requirement::Buildx,
        Requirement::Engine,
        Requirement::Cosign,
        Requirement::Skopeo,
    ])?;
    let root = project::project_root();
    let work = root.join("target/bench");
    std::fs::create_dir_all(&work)?;
    let mut notes = Vec::new();

    eprintln!("bench: preparing stand-ins, the builder image and a scratch checkout of HEAD");
    let overrides = stand_ins::build(&stand_ins::StandInsOptions {
        registry: args.registry.clone(),
        inputs: PathBuf::from(stand_ins::DEFAULT_INPUTS),
        binaries_only: false,
    })?;
    let builder = match args.builder_image.as_deref() {
        Some("dockerfile") => None,
        Some(image) => Some(image.to_string()),
        None => Some(format!("{}/stand-ins/rust-builder:bookworm", args.registry)),
    };
    let mut build_args: Vec<String> = overrides
        .build_args
        .values()
        .flatten()
        .map(|a| format!("--build-arg={a}"))
        .collect();
    if let Some(image) = builder {
        let digest = registry::resolve_digest(&image)?
            .with_context(|| format!("builder image {image} not found: the benchmark measures the real compile stage; run .ci/build-builder-image or pass --builder-image"))?;
        let pinned = format!("{}@{digest}", image.split('@').next().unwrap_or(&image));
        build_args.push(format!("--build-arg=BUILDER_IMAGE={pinned}"));
        notes.push(format!("compile stage on builder image {pinned}"));
    }
    let tree = work.join("tree");
    let sh = xshell::Shell::new()?;
    sh.change_dir(&root);
    let tree_text = tree.display().to_string();
    let _ = xshell::cmd!(sh, "git worktree remove --force {tree_text}")
        .quiet()
        .ignore_stderr()
        .run();
    let _ = std::fs::remove_dir_all(&tree);
    xshell::cmd!(sh, "git worktree add --detach --force {tree_text} HEAD")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()?;
    notes.push(
        "built from a scratch checkout of HEAD (uncommitted changes are not measured)".to_string(),
    );

    let key_prefix = work.join("cosign");
    if !key_prefix.with_extension("key").exists() {
        timed(
            duct::cmd!(
                "cosign",
                "generate-key-pair",
                "--output-key-prefix",
                &key_prefix
            )
            .env("COSIGN_PASSWORD", ""),
        )?;
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let all_variants = project::discover_variants(&tree)?;
    let variants = if args.smoke {
        all_variants.iter().take(1).cloned().collect()
    } else {
        all_variants
    };
    let bench = Bench {
        exe: std::env::current_exe()?,
        tree: tree.clone(),
        work: work.clone(),
        registry: args.registry.clone(),
        name: format!("bench/beacon-{stamp}"),
        variants,
        build_args,
        sbom_generator: overrides.sbom_generator.clone().unwrap_or_default(),
        key: key_prefix.with_extension("key"),
        repeat: if args.smoke { 1 } else { args.repeat.max(1) },
    };
    let base = crate::context::gather(&tree)?;
    let result = measure(&bench, &base, args.smoke, &mut notes);
    let _ = xshell::cmd!(sh, "git worktree remove --force {tree_text}")
        .quiet()
        .ignore_stderr()
        .run();
    let (scenarios, ratios) = result?;
    let version_format = "{{.Server.Version}}";
    let machine = serde_json::json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "arch": std::env::consts::ARCH,
        "os": std::env::consts::OS,
        "engine": xshell::cmd!(sh, "docker version --format {version_format}").quiet().ignore_stderr().read().unwrap_or_default(),
        "builder_driver": preflight::builder_info().map(|b| b.driver).unwrap_or_default(),
    });
    let report = Report {
        machine,
        repeat: bench.repeat,
        variants: bench.variants.clone(),
        scenarios,
        ratios,
        notes,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn measure(
    bench: &Bench,
    base: &BuildContext,
    smoke: bool,
    notes: &mut Vec<String>,
) -> Result<(Vec<Scenario>, Vec<Ratio>)> {
    let pr = bench.context("pr", base, Some("refs/pull/1/merge"))?;
    let main = bench.context("main", base, Some("refs/heads/main"))?;
    let mut scenarios = Vec::new();
    let mut ratios = Vec::new();
    let reps = bench.repeat;

    // 1. Cold CI vs cold production, every selected variant.
    eprintln!("bench: 1. cold CI vs cold production builds");
    let (mut cold_ci, mut cold_release) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        bench.cold()?;
        cold_ci.push(bench.ci_image(&pr, &["--cache", "none"])?.0);
        bench.cold()?;
        cold_release.push(bench.release_image(&main)?.0);
    }
    let (ci, release) = (median(&cold_ci), median(&cold_release));
    scenarios.push(scenario("1a cold CI build (1 platform, load)", cold_ci));
    scenarios.push(scenario(
        "1b cold production build (2 platforms, push, SBOM, provenance, sign)",
        cold_release,
    ));
    ratios.push(ratio(
        "1 cold CI / cold production",
        ci / release,
        "<= 0.50",
        ci / release <= 0.5,
    ));

    // 2. Warm CI rebuild after a one-line change vs cold CI.
    eprintln!("bench: 2. warm CI rebuild after a one-line change");
    bench.ci_image(&pr, &["--cache", "none"])?;
    let mut warm = Vec::new();
    for n in 0..reps {
        bench.one_line_change(n)?;
        warm.push(bench.ci_image(&pr, &["--cache", "none"])?.0);
    }
    let warm_median = median(&warm);
    scenarios.push(scenario("2 warm CI rebuild after a one-line change", warm));
    ratios.push(ratio(
        "2 warm CI / cold CI",
        warm_median / ci,
        "<= 0.40",
        warm_median / ci <= 0.4,
    ));

    // 3. No-op CI rebuild.
    eprintln!("bench: 3. no-op CI rebuild");
    let mut noop = Vec::new();
    for _ in 0..reps {
        noop.push(bench.ci_image(&pr, &["--cache", "none"])?.0);
    }
    let noop_median = median(&noop);
    scenarios.push(scenario("3 no-op CI rebuild", noop));
    ratios.push(ratio(
        "3 no-op CI rebuild, seconds",
        noop_median,
        "< 5 s",
        noop_median < 5.0,
    ));

    // 4. The tool's overhead: the same bake by hand, interleaved.
    eprintln!("bench: 4. cargo xtask ci-image vs the same buildx bake by hand");
    let (_, plan_text) = bench.ci_image(&pr, &["--cache", "none", "--dry-run", "--json"])?;
    let plan: Value = serde_json::from_str(plan_text.trim_start_matches(|c| c != '{'))
        .context("unreadable --dry-run --json output")?;
    let bake = plan["commands"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["args"][1] == "bake")
        .context("--dry-run --json printed no buildx bake")?;
    // The run directory a dry run names, made real for the hand-run bake.
    let by_hand_dir = "target/xtask/runs/bench-by-hand";
    crate::model::files::create_dir_all(&bench.tree.join(by_hand_dir))?;
    let bake_args: Vec<String> = bake["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .map(|arg| arg.replace("target/xtask/runs/ci-image-<run>", by_hand_dir))
                .collect()
        })
        .unwrap_or_default();
    let bake_stdin = bake["stdin"].as_str().unwrap_or_default().to_string();
    let by_hand = || -> Result<f64> {
        let started = Instant::now();
        let status = duct::cmd("docker", &bake_args)
            .dir(&bench.tree)
            .stdin_bytes(bake_stdin.as_bytes())
            .stdout_null()
            .stderr_null()
            .unchecked()
            .run()?
            .status;
        if !status.success() {
            bail!("the hand-run buildx bake failed");
        }
        Ok(started.elapsed().as_secs_f64())
    };
    // The representative case: a rebuild after a one-line change, the two
    // ways interleaved so neither gets a warmer cache.
    let (mut tool, mut hand) = (Vec::new(), Vec::new());
    for n in 0..reps.max(if smoke { 1 } else { 9 }) {
        bench.one_line_change(200 + 2 * n)?;
        tool.push(bench.ci_image(&pr, &["--cache", "none"])?.0);
        bench.one_line_change(201 + 2 * n)?;
        hand.push(by_hand()?);
    }
    let (tool_median, hand_median) = (median(&tool), median(&hand));
    scenarios.push(scenario(
        "4a cargo xtask ci-image (after a one-line change)",
        tool,
    ));
    scenarios.push(scenario(
        "4b the same docker buildx bake by hand (after a one-line change)",
        hand,
    ));
    let overhead = (tool_median - hand_median) / hand_median;
    ratios.push(ratio(
        "4 tool overhead vs buildx by hand",
        overhead,
        "< 5 %",
        overhead < 0.05,
    ));
    // The worst case, reported in absolute terms: a no-op build, where the
    // tool's fixed cost (checks, git, planning) is all there is to see.
    let (mut tool_noop, mut hand_noop) = (Vec::new(), Vec::new());
    for _ in 0..reps.max(if smoke { 1 } else { 9 }) {
        tool_noop.push(bench.ci_image(&pr, &["--cache", "none"])?.0);
        hand_noop.push(by_hand()?);
    }
    let fixed_cost = median(&tool_noop) - median(&hand_noop);
    scenarios.push(scenario("4c cargo xtask ci-image (no-op)", tool_noop));
    scenarios.push(scenario(
        "4d the same docker buildx bake by hand (no-op)",
        hand_noop,
    ));
    ratios.push(ratio(
        "4 tool fixed cost on a no-op build, seconds",
        fixed_cost,
        "reported",
        true,
    ));

    // 5. The xtask's own cold compile and start-up.
    if smoke {
        notes.push("5 (xtask cold compile) skipped in --smoke".to_string());
    } else {
        eprintln!("bench: 5. cold compile of the xtask crate");
        let target = bench.work.join("xtask-cold");
        let _ = std::fs::remove_dir_all(&target);
        let mut compile = Vec::new();
        for _ in 0..reps {
            let _ = std::fs::remove_dir_all(&target);
            compile.push(
                timed(
                    duct::cmd!("cargo", "build", "--quiet", "--package", "xtask")
                        .dir(&bench.tree)
                        .env("CARGO_TARGET_DIR", &target),
                )?
                .0,
            );
        }
        let compile_median = median(&compile);
        scenarios.push(scenario("5a cold compile of the xtask crate", compile));
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        ratios.push(ratio(
            &format!("5a xtask cold compile, seconds ({cpus} cores)"),
            compile_median,
            "< 40 s on 2 cores",
            compile_median < 40.0,
        ));
    }
    let mut startup = Vec::new();
    for _ in 0..10 {
        startup.push(timed(duct::cmd!(&bench.exe, "--help"))?.0);
    }
    scenarios.push(scenario("5b cargo xtask --help start-up", startup));

    // 6. The share of a warm CI build spent exporting cache, per mode.
    eprintln!("bench: 6. cache export share per mode (registry backend)");
    for (mode, target, limit) in [
        ("min", "< 10 % (pull-request policy)", Some(0.10)),
        ("max", "reported", None),
    ] {
        let mut shares = Vec::new();
        for n in 0..reps {
            bench.one_line_change(100 + n)?;
            let (seconds, log) =
                bench.ci_image(&pr, &["--cache", "registry", "--cache-mode", mode])?;
            shares.push(cache_export_seconds(&log) / seconds);
        }
        let share = median(&shares);
        scenarios.push(scenario(
            &format!("6 cache export share of the build (a fraction), mode={mode}"),
            shares,
        ));
        ratios.push(ratio(
            &format!("6 cache export / warm CI build, mode={mode}"),
            share,
            target,
            limit.is_none_or(|l| share < l),
        ));
    }

    // 7. A pull request's first build with the default branch's cache vs without.
    eprintln!("bench: 7. a PR's first build with and without main's cache");
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let mut hits = (0, 0);
    for n in 0..reps {
        bench.cold()?;
        bench.ci_image(&main, &["--cache", "registry"])?;
        let first_pr = bench.context(
            &format!("pr-first-{n}"),
            base,
            Some(&format!("refs/pull/{}/merge", 1000 + n)),
        )?;
        bench.cold()?;
        let (seconds, log) = bench.ci_image(&first_pr, &["--cache", "registry"])?;
        with.push(seconds);
        hits.0 += cached_steps(&log);
        bench.cold()?;
        let lonely = format!("{}-nocache{n}", bench.name);
        let (seconds, log) = bench.ci_image_named(&lonely, &first_pr, &["--cache", "registry"])?;
        without.push(seconds);
        hits.1 += cached_steps(&log);
    }
    let (with_median, without_median) = (median(&with), median(&without));
    scenarios.push(scenario("7a PR first build, main's cache available", with));
    scenarios.push(scenario("7b PR first build, no cache", without));
    ratios.push(ratio(
        "7 PR first build with main's cache / without",
        with_median / without_median,
        "< 1 (reported)",
        with_median < without_median,
    ));
    notes.push(format!(
        "7: steps answered from cache: {} with main's cache, {} without",
        hits.0, hits.1
    ));
    Ok((scenarios, ratios))
}

fn print_table(report: &Report) {
    println!("machine: {}", report.machine);
    println!(
        "variants: {}; repetitions: {}\n",
        report.variants.join(", "),
        report.repeat
    );
    println!("{:<72} {:>9}  samples", "scenario", "median");
    for s in &report.scenarios {
        let samples: Vec<String> = s.samples.iter().map(|v| format!("{v:.2}")).collect();
        println!("{:<72} {:>8.2}s  {}", s.name, s.median, samples.join(" "));
    }
    println!("\n{:<56} {:>9}  {:<30} met", "ratio", "value", "target");
    for r in &report.ratios {
        println!(
            "{:<56} {:>9.3}  {:<30} {}",
            r.name,
            r.value,
            r.target,
            if r.met { "yes" } else { "NO" }
        );
    }
    for note in &report.notes {
        println!("note: {note}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn reads_cache_export_time_from_buildx_logs() {
        let log = "#12 exporting to image\n#12 DONE 0.3s\n#13 exporting cache to registry\n#13 preparing build cache for export 0.1s done\n#13 DONE 1.5s\n#14 [ubi9 final 1/1] COPY x\n#14 CACHED\n";
        assert_eq!(cache_export_seconds(log), 1.5);
        assert_eq!(cached_steps(log), 1);
    }
}
