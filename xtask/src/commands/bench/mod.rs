//! `cargo xtask bench`: the split's promises, measured side by side in one
//! run on this machine, against the local stack, on the real dependency
//! graph. Each scenario runs what that path really runs (the production path
//! compiles both platforms in images/compile.Dockerfile's stages, pushes,
//! attests and signs); medians of several repetitions, the ratios between
//! them with their targets, and what each build cost (CPU seconds, bytes
//! written to the registry).
//!
//! "Cold" empties the engine (`docker buildx prune --all`: its build cache
//! and every cache mount). A "fresh runner" is a cold engine that can read
//! only the default branch's registry cache, as a GitHub-hosted runner can
//! read only its cache service. It works on a scratch checkout of HEAD
//! (`target/bench/tree`), so its one-line changes never touch your tree.
//!
//! Every push goes through a byte-counting proxy in front of the registry
//! (bytes written per build); CPU seconds are BuildKit's RUN steps (its
//! cgroup), the engine's daemons and the tool with its children, so another
//! build on the same engine at the same time counts too.
//!
//! The two-runner scenario (`two_runners.rs`) builds on two engines of this
//! machine, the bench's and `--second-builder` (`runner2`,
//! `.ci/second-engine`), each held to a core of its own (`pin.rs`: taskset
//! on each dockerd, restored afterwards). `--scenario NAME` runs only the
//! scenarios named.
//!
//! Layout: this file holds the options, the run and the report; each
//! scenario is a file of its own with a `measure(&Bench, &mut Results)`
//! function, listed once in [`scenarios!`] below, in the order they run (a
//! scenario may divide by a figure an earlier one measured: [`Figures`]).
//! What they share: `harness.rs` (the builds on the scratch checkout, as
//! the workflows run them), `meter.rs` (CPU seconds, bytes through the
//! counting proxy, timed runs), `tree.rs` (the scratch checkout).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use serde_json::Value;

use crate::client::process::{self, Invocation};
use crate::client::{docker, registry};
use crate::model::builder::Selection;
use crate::model::files;
use crate::model::names::Platform;
use crate::model::reference::Registry;
use crate::ops::{builder, stand_ins};
use crate::preflight::{self, Requirement};
use crate::project;

mod harness;
mod meter;
mod pin;
mod tree;

use harness::Bench;

/// One scenario of the benchmark: runs its builds on the bench and adds its
/// rows (scenarios, ratios, costs, notes) to the results.
type Measure = fn(&Bench, &mut Results) -> Result<()>;

/// Declares the scenarios, each a file of this folder with
/// `pub(super) fn measure(bench: &Bench, results: &mut Results) -> Result<()>`,
/// in the order they run: adding one is adding its file and its line here.
macro_rules! scenarios {
    ($($scenario:ident),* $(,)?) => {
        $(mod $scenario;)*
        const SCENARIOS: &[(&str, Measure)] = &[$((stringify!($scenario), $scenario::measure)),*];
        /// The scenarios' names, in the order they run (`--scenario NAME`).
        pub const SCENARIO_NAMES: &[&str] = &[$(stringify!($scenario)),*];
    };
}

scenarios! {
    // 1 and 2: cold CI, cold production and the production floor, interleaved.
    ci_vs_production,
    // 3: a fresh runner's pull request build with main's registry cache only.
    fresh_runner,
    // 4: a warm local rebuild after a one-line change.
    warm_rebuild,
    // 5: a no-op rebuild.
    noop_rebuild,
    // 6: the tool against the same bake by hand (ABBA pairs), and its fixed cost.
    overhead,
    // 8: the share of a warm CI build spent exporting cache, per mode.
    cache_export,
    // 3b: the fresh runner's host-built path (`ci-image --host-build`).
    host_path,
    // 7: the xtask crate's cold compile and start-up.
    xtask_compile,
    // 9: production on two runners (two engines, one core each) against its floor, interleaved.
    two_runners,
    // The proposal's cost claim: what a pull request saves against a release.
    pr_savings,
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Repetitions per scenario; medians are reported.
    pub repeat: usize,
    /// One repetition of every scenario on one variant, on a warm engine.
    pub smoke: bool,
    /// Local registry for the stand-ins, pushes and registry caches.
    pub registry: Registry,
    /// Builder image for the compile stage; `dockerfile` keeps the Dockerfile's own.
    pub builder_image: Option<String>,
    /// Print the results as JSON.
    pub json: bool,
    /// The buildx builder every build runs on (`docker buildx ls`); `None`: the current one.
    pub builder: Option<String>,
    /// The second runner's builder (the two-runner scenario): another engine on this machine.
    pub second_builder: String,
    /// Only these scenarios (names of [`SCENARIO_NAMES`]); empty: all of them.
    pub scenarios: Vec<String>,
}

/// One measured row: a named build (or figure) and its samples.
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

/// What one kind of build cost, medians over its samples.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub build: String,
    pub seconds: f64,
    /// None where no BuildKit cgroup could be read.
    pub cpu_seconds: Option<f64>,
    pub bytes_written: u64,
    pub bytes_read: u64,
}

/// When each architecture of a two-platform release compiled (seconds from
/// the build's start, from the build log's arrival times).
#[derive(Debug, Clone, Serialize)]
pub struct ArchCompile {
    pub arch: String,
    pub start: f64,
    pub end: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Value,
    pub repeat: usize,
    pub variants: Vec<String>,
    pub scenarios: Vec<Scenario>,
    pub ratios: Vec<Ratio>,
    pub costs: Vec<Cost>,
    /// The compile steps (deps and service) per architecture, in the last
    /// cold production build.
    pub arch_compiles: Vec<ArchCompile>,
    pub notes: Vec<String>,
}

/// Medians an earlier scenario measured that a later one compares against.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    /// Cold CI build (1a): what the rebuilds are measured against.
    pub cold_ci: Option<f64>,
    /// Cold production release (1b).
    pub cold_production: Option<f64>,
    /// The production floor: the slowest cold single-platform release (2a, 2b).
    pub floor: Option<f64>,
    /// Fresh runner's pull request build through the compile stage (3a).
    pub fresh_runner: Option<f64>,
}

/// Needs a figure the earlier scenario `scenario` measured.
fn earlier(figure: Option<f64>, what: &str, scenario: &str) -> Result<f64> {
    figure.with_context(|| {
        format!("the benchmark needs {what}, which scenario {scenario} measures before it: add --scenario {scenario} (and keep it before this one in scenarios! of commands/bench/mod.rs)")
    })
}

/// What the scenarios measured so far, in the order they reported it.
struct Results {
    pub scenarios: Vec<Scenario>,
    pub ratios: Vec<Ratio>,
    pub costs: Vec<Cost>,
    pub arch_compiles: Vec<ArchCompile>,
    pub notes: Vec<String>,
    pub figures: Figures,
}

impl Results {
    fn new(notes: Vec<String>) -> Results {
        Results {
            scenarios: Vec::new(),
            ratios: Vec::new(),
            costs: Vec::new(),
            arch_compiles: Vec::new(),
            notes,
            figures: Figures::default(),
        }
    }

    /// Adds a row of samples; returns their median.
    pub fn scenario(&mut self, name: &str, samples: Vec<f64>) -> f64 {
        let median = median(&samples);
        self.scenarios.push(Scenario {
            name: name.to_string(),
            median,
            samples,
        });
        median
    }

    pub fn ratio(&mut self, name: &str, value: f64, target: &str, met: bool) {
        self.ratios.push(Ratio {
            name: name.to_string(),
            value,
            target: target.to_string(),
            met,
        });
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
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

pub fn run(args: BenchOptions) -> Result<()> {
    check_scenarios(&args.scenarios)?;
    let platforms = [Platform::linux("amd64"), Platform::linux("arm64")];
    let selected = builder::select(args.builder.as_deref(), &platforms)?;
    let selection = builder::selection(selected.as_ref());
    preflight::check_all_on(
        &[
            Requirement::Docker,
            Requirement::Buildx,
            Requirement::Engine,
            Requirement::Cosign,
            Requirement::Skopeo,
        ],
        selection.as_ref(),
    )?;
    if let Some(selection) = &selection {
        eprintln!("bench: {}", selection.describe());
    }
    let root = project::project_root();
    let work = root.join("target/bench");
    files::create_dir_all(&work)?;
    let mut notes = Vec::new();

    eprintln!("bench: preparing stand-ins, the builder image and a scratch checkout of HEAD");
    let inputs = build_inputs(&args, selection.as_ref(), &mut notes)?;
    let tree = tree::Tree::check_out(&root, work.join("tree"))?;
    notes.push(
        "built from a scratch checkout of HEAD (uncommitted changes are not measured)".to_string(),
    );
    let key = cosign_key(&work)?;
    let bench = Bench::new(
        &args,
        selection.clone(),
        root,
        work,
        tree.path(),
        inputs,
        key,
    )?;
    if args.smoke {
        notes.push("smoke run: one repetition, one variant, and the engine is never emptied, so the cold and fresh-runner figures are warm ones: they prove the scenarios run, nothing more".to_string());
    }
    let mut results = Results::new(notes);
    let measured = measure(&bench, &mut results, &args.scenarios);
    drop(tree);
    measured?;
    let report = Report {
        machine: machine(&args, selection.as_ref()),
        repeat: bench.repeat,
        variants: bench.variants.clone(),
        scenarios: results.scenarios,
        ratios: results.ratios,
        costs: results.costs,
        arch_compiles: results.arch_compiles,
        notes: results.notes,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// Refuses a scenario name no scenario has, before anything runs.
fn check_scenarios(only: &[String]) -> Result<()> {
    if let Some(unknown) = only.iter().find(|o| !SCENARIO_NAMES.contains(&o.as_str())) {
        bail!(
            "there is no benchmark scenario {unknown:?}: pass --scenario one of {}",
            SCENARIO_NAMES.join(", ")
        );
    }
    Ok(())
}

/// Every scenario, or only those named, in order.
fn measure(bench: &Bench, results: &mut Results, only: &[String]) -> Result<()> {
    for (name, measure) in SCENARIOS {
        if only.is_empty() || only.iter().any(|o| o == name) {
            measure(bench, results)?;
        }
    }
    Ok(())
}

/// What every build of the benchmark is given: the stand-ins' build
/// arguments, the builder image pinned by digest, the SBOM generator.
struct BuildInputs {
    pub build_args: Vec<String>,
    pub sbom_generator: String,
    pub images: InputImages,
}

/// The images the builds read, by digest (the two-runner scenario pulls
/// them into both engines before it times anything).
#[derive(Debug, Clone, Default)]
struct InputImages {
    /// Run on the build platform: the builder image, the SBOM generator.
    pub native: Vec<String>,
    /// Read for each target platform: the stand-in bases.
    pub bases: Vec<String>,
}

fn build_inputs(
    args: &BenchOptions,
    selection: Option<&Selection>,
    notes: &mut Vec<String>,
) -> Result<BuildInputs> {
    let overrides = stand_ins::build(&stand_ins::StandInsRequest {
        registry: args.registry.clone(),
        inputs: PathBuf::from(stand_ins::DEFAULT_INPUTS),
        binaries_only: false,
        builder: selection.cloned(),
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
    let mut images = InputImages {
        native: overrides
            .sbom_generator
            .iter()
            .map(|g| g.to_string())
            .collect(),
        bases: overrides
            .build_args
            .values()
            .flatten()
            .map(|a| a.value.clone())
            .collect(),
    };
    if let Some(image) = builder {
        let digest = registry::resolve_digest(&image.parse()?)?
            .with_context(|| format!("builder image {image} not found: the benchmark measures the real compile stage; run .ci/build-builder-image or pass --builder-image"))?;
        let pinned = format!("{}@{digest}", image.split('@').next().unwrap_or(&image));
        build_args.push(format!("--build-arg=BUILDER_IMAGE={pinned}"));
        notes.push(format!("compile stage on builder image {pinned}"));
        images.native.push(pinned);
    }
    Ok(BuildInputs {
        build_args,
        images,
        sbom_generator: overrides
            .sbom_generator
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    })
}

/// The benchmark's own cosign key pair (no password), made once.
fn cosign_key(work: &Path) -> Result<PathBuf> {
    let prefix = work.join("cosign");
    if !prefix.with_extension("key").exists() {
        let generate = Invocation::new(
            "cosign",
            vec![
                "generate-key-pair".to_string(),
                "--output-key-prefix".to_string(),
                prefix.display().to_string(),
            ],
        )
        .with_env("COSIGN_PASSWORD", "");
        meter::timed(&generate)?;
    }
    Ok(prefix.with_extension("key"))
}

/// The machine the figures come from.
fn machine(args: &BenchOptions, selection: Option<&Selection>) -> Value {
    let version = ["version", "--format", "{{.Server.Version}}"].map(String::from);
    let version = docker::engine(selection, version.to_vec());
    let engine = process::capture(&version)
        .ok()
        .filter(|c| c.success)
        .map(|c| c.stdout_text().trim().to_string())
        .unwrap_or_default();
    serde_json::json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "arch": std::env::consts::ARCH,
        "os": std::env::consts::OS,
        "engine": engine,
        "builder": args.builder.as_deref().unwrap_or("(current)"),
        "builder_driver": preflight::builder_info_on(selection).map(|b| b.driver).unwrap_or_default(),
    })
}

fn print_table(report: &Report) {
    println!("machine: {}", report.machine);
    println!(
        "variants: {}; repetitions: {}\n",
        report.variants.join(", "),
        report.repeat
    );
    println!("{:<96} {:>9}  samples", "scenario", "median");
    for s in &report.scenarios {
        let samples: Vec<String> = s.samples.iter().map(|v| format!("{v:.2}")).collect();
        println!("{:<96} {:>8.2}s  {}", s.name, s.median, samples.join(" "));
    }
    println!("\n{:<84} {:>9}  {:<36} met", "ratio", "value", "target");
    for r in &report.ratios {
        println!(
            "{:<84} {:>9.3}  {:<36} {}",
            r.name,
            r.value,
            r.target,
            if r.met { "yes" } else { "NO" }
        );
    }
    println!(
        "\n{:<84} {:>9} {:>9} {:>12} {:>12}",
        "cost per build (medians)", "seconds", "CPU s", "MB written", "MB read"
    );
    for c in &report.costs {
        println!(
            "{:<84} {:>9.1} {:>9} {:>12.1} {:>12.1}",
            c.build,
            c.seconds,
            c.cpu_seconds
                .map_or("n/a".to_string(), |v| format!("{v:.1}")),
            c.bytes_written as f64 / 1e6,
            c.bytes_read as f64 / 1e6
        );
    }
    if !report.arch_compiles.is_empty() {
        println!("\ncompile steps per architecture in the last cold production build (seconds from its start):");
        for a in &report.arch_compiles {
            println!("  {:<6} {:>7.1} .. {:>7.1}", a.arch, a.start, a.end);
        }
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
    fn scenarios_run_in_the_reports_order() {
        let names: Vec<&str> = SCENARIOS.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "ci_vs_production",
                "fresh_runner",
                "warm_rebuild",
                "noop_rebuild",
                "overhead",
                "cache_export",
                "host_path",
                "xtask_compile",
                "two_runners",
                "pr_savings"
            ]
        );
        assert_eq!(SCENARIO_NAMES, names);
    }
}
