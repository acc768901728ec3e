//! Scenario 9: production on two runners against its floor. Two engines of
//! this machine (the bench's own, and `--second-builder`, `runner2` by
//! default: a second dockerd with its own data root, exec root, socket and
//! containerd namespaces, `.ci/second-engine`), each held to one core
//! (`pin.rs`), build one platform each of every variant side by side, as
//! the release workflow's build jobs do (`release-image --build-only
//! --platform P --part --record F`), then `merge-release` and a key-based
//! `sign --record` of the merged record. Its floor is one such part alone:
//! one platform on one engine held to one core, the same work but the merge
//! and the signature; the slower platform's is the floor (the two-runner
//! release waits for its slower part). The release and its floor alternate
//! in order across repetitions, as in scenarios 1 and 2; medians.
//!
//! Cold, for both and on both engines: the build cache and cache mounts
//! emptied (`buildx prune --all`), so the crates are downloaded again from
//! crates.io (the second engine's RUN steps reach it through its NAT,
//! `R2_NAT=1`) and every dependency compiled; the images the builds read
//! (the builder image, the stand-in bases, the SBOM generator) are in both
//! engines' image stores before anything is timed, pulled once, and never
//! pulled in a timed run. Outside the engines nothing is held to a core:
//! containerd (shared by both engines), the registry, the tool and its
//! buildx client, skopeo and cosign may run on either core, in the floor too.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};

use crate::client::docker;
use crate::client::process::Invocation;
use crate::model::builder::Selection;
use crate::model::files;
use crate::model::names::Platform;
use crate::ops::builder;

use super::harness::Bench;
use super::meter::{self, cost, Run, Usage};
use super::pin::{self, Engine, Pinned, Watched};
use super::{median, Results};

/// One runner: an engine held to one core, building one platform.
struct Runner {
    /// `main engine`, or the name of its builder.
    label: String,
    /// `--builder` of its builds (`None`: the current one).
    builder: Option<String>,
    selection: Option<Selection>,
    platform: Platform,
    core: usize,
    engine: Engine,
    /// Its part record.
    record: PathBuf,
}

/// What the repetitions measured; per runner in the order of the runners.
#[derive(Default)]
struct Samples {
    /// The release: the parts side by side, the merge and the signature.
    release: Vec<f64>,
    parts: Vec<f64>,
    merge_and_sign: Vec<f64>,
    release_usage: Vec<Usage>,
    release_busy: Vec<Vec<f64>>,
    floor: Vec<Vec<f64>>,
    floor_usage: Vec<Vec<Usage>>,
    floor_busy: Vec<Vec<Vec<f64>>>,
    watched: Watched,
    /// Turns that failed once and were run again (their figures discarded).
    rerun: Vec<String>,
}

pub(super) fn measure(bench: &Bench, results: &mut Results) -> Result<()> {
    eprintln!("bench: 9. production on two runners (two engines, one core each) and its floor (one part, one engine, one core), interleaved");
    if let Some(said) = pin::restore_interrupted()? {
        eprintln!("bench: {said}");
        results.note(said);
    }
    let runners = runners(bench)?;
    for runner in &runners {
        pull_inputs(bench, runner)?;
    }
    let engines: Vec<(&Engine, usize)> = runners.iter().map(|r| (&r.engine, r.core)).collect();
    let pinned = Pinned::hold(&engines)?;
    let measured = repetitions(bench, &runners, &pinned);
    let restored = pinned.restore();
    let samples = measured?;
    restored?;
    report(&runners, samples, results);
    Ok(())
}

/// The two runners: the bench's engine builds linux/amd64 on core 0, the
/// second builder's linux/arm64 on core 1.
fn runners(bench: &Bench) -> Result<Vec<Runner>> {
    let (amd64, arm64) = (Platform::linux("amd64"), Platform::linux("arm64"));
    let second = builder::select(Some(&bench.second_builder), std::slice::from_ref(&arm64))?;
    let second_selection = builder::selection(second.as_ref());
    let first_label = bench.builder.as_deref().unwrap_or("main engine");
    let runners = vec![
        Runner {
            label: first_label.to_string(),
            builder: bench.builder.clone(),
            engine: pin::engine(bench.selection.as_ref(), first_label)?,
            selection: bench.selection.clone(),
            record: bench.work.join("two-runners-part-amd64.json"),
            platform: amd64,
            core: 0,
        },
        Runner {
            label: bench.second_builder.clone(),
            builder: Some(bench.second_builder.clone()),
            engine: pin::engine(second_selection.as_ref(), &bench.second_builder)?,
            selection: second_selection,
            record: bench.work.join("two-runners-part-arm64.json"),
            platform: arm64,
            core: 1,
        },
    ];
    if runners[0].engine.pid == runners[1].engine.pid {
        bail!(
            "the two runners must be two engines, but {} and {} are both dockerd {}: pass --second-builder a builder of another engine (.ci/second-engine start)",
            runners[0].label, runners[1].label, runners[0].engine.pid
        );
    }
    Ok(runners)
}

/// Puts the images a runner's builds read into its engine's image store,
/// untimed: the builder image and the SBOM generator for the build
/// platform, the stand-in bases for its platform.
fn pull_inputs(bench: &Bench, runner: &Runner) -> Result<()> {
    let native = Platform::native().to_string();
    let target = runner.platform.to_string();
    let images = (bench.images.native.iter().map(|i| (i, &native)))
        .chain(bench.images.bases.iter().map(|i| (i, &target)));
    for (image, platform) in images {
        let pull = ["pull", "--quiet", "--platform", platform, image].map(String::from);
        meter::timed(&docker::engine(runner.selection.as_ref(), pull.to_vec()))?;
    }
    Ok(())
}

/// The release and its floor, alternating in order across repetitions.
fn repetitions(bench: &Bench, runners: &[Runner], pinned: &Pinned) -> Result<Samples> {
    let mut samples = Samples {
        floor: vec![Vec::new(); runners.len()],
        floor_usage: vec![Vec::new(); runners.len()],
        floor_busy: vec![Vec::new(); runners.len()],
        ..Samples::default()
    };
    for n in 0..bench.repeat {
        for release_turn in [n % 2 == 0, n % 2 == 1] {
            let turn = |samples: &mut Samples| {
                if release_turn {
                    release(bench, runners, pinned, samples)
                } else {
                    floor(bench, runners, pinned, samples)
                }
            };
            // Cold parts download every crate again, four times a
            // repetition: a download that fails past cargo's own retries
            // (two runs here lost their third repetition's release to a
            // failed `cargo fetch` / `cargo install`) costs that turn, not
            // the run. The turn runs once more, cold again; nothing of
            // the failed one is counted, and the report says so.
            if let Err(error) = turn(&mut samples) {
                let what = if release_turn { "release" } else { "floor" };
                let first = format!("{error:#}").chars().take(300).collect::<String>();
                eprintln!("bench: repetition {} of the two-runner {what} failed, running it once more: {first}", n + 1);
                samples.rerun.push(format!("repetition {} of the {what}: {first}", n + 1));
                turn(&mut samples)?;
            }
        }
    }
    Ok(samples)
}

/// `release-image --build-only --platform P --part --record F` on the runner's engine.
fn part(bench: &Bench, runner: &Runner) -> Invocation {
    let mut args = bench.release_args(runner.builder.as_deref());
    args.extend(["--build-only", "--platform"].map(String::from));
    args.push(runner.platform.to_string());
    args.extend(["--part", "--record"].map(String::from));
    args.push(runner.record.display().to_string());
    bench.xtask(&bench.main, args)
}

/// The stage commands after the parts: merge-release, then sign.
fn merge_and_sign(bench: &Bench, runners: &[Runner], record: &std::path::Path) -> [Invocation; 2] {
    let naming = ["--registry", &bench.registry, "--image-name", &bench.name].map(String::from);
    let record = record.display().to_string();
    let mut merge = vec!["merge-release".to_string()];
    for runner in runners {
        merge.extend(["--part".to_string(), runner.record.display().to_string()]);
    }
    merge.extend(["--record".to_string(), record.clone()]);
    merge.extend(naming.iter().cloned());
    merge.extend(bench.variant_args_on(None));
    merge.extend(bench.build_args.iter().cloned());
    let mut sign = vec!["sign".to_string(), "--record".to_string(), record];
    sign.extend(naming);
    sign.push(format!("--key={}", bench.key.display()));
    [merge, sign].map(|args| bench.xtask(&bench.main, args))
}

/// One cold release on two runners: both engines emptied, their parts side
/// by side, then the merge and the signature, metered together.
fn release(bench: &Bench, runners: &[Runner], pinned: &Pinned, samples: &mut Samples) -> Result<()> {
    let record = bench.work.join("two-runners-record.json");
    for runner in runners {
        bench.cold_on(runner.selection.as_ref())?;
        files::remove_file_if_exists(&runner.record)?;
    }
    files::remove_file_if_exists(&record)?;
    let watch = pin::watch(pinned.cores());
    let (ticks, meter) = (meter::core_ticks(), meter::Meter::start(&bench.proxy));
    let started = Instant::now();
    let parts = meter::together(&runners.iter().map(|r| part(bench, r)).collect::<Vec<_>>())?;
    let parts_seconds = started.elapsed().as_secs_f64();
    for invocation in merge_and_sign(bench, runners, &record) {
        meter::streamed(&invocation)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let usage = meter.read(&bench.proxy);
    let busy = meter::busy_shares(&ticks, &meter::core_ticks());
    add_watched(&mut samples.watched, watch.finish()?);
    for (runner, run) in runners.iter().zip(&parts) {
        check(bench, &format!("two runners: the {} part on {}", runner.platform, runner.label), run)?;
    }
    samples.release.push(seconds);
    samples.parts.push(parts_seconds);
    samples.merge_and_sign.push(seconds - parts_seconds);
    samples.release_usage.push(usage);
    samples.release_busy.push(busy);
    Ok(())
}

/// The floor: each runner's part alone, its engine emptied, the other idle.
/// Counted only when every part succeeded.
fn floor(bench: &Bench, runners: &[Runner], pinned: &Pinned, samples: &mut Samples) -> Result<()> {
    let mut runs = Vec::new();
    for runner in runners {
        bench.cold_on(runner.selection.as_ref())?;
        files::remove_file_if_exists(&runner.record)?;
        let watch = pin::watch(pinned.cores());
        let ticks = meter::core_ticks();
        let run = bench.metered(&part(bench, runner))?;
        let busy = meter::busy_shares(&ticks, &meter::core_ticks());
        add_watched(&mut samples.watched, watch.finish()?);
        check(bench, &format!("the floor: the {} part alone on {}", runner.platform, runner.label), &run)?;
        runs.push((run, busy));
    }
    for (i, (run, busy)) in runs.into_iter().enumerate() {
        samples.floor[i].push(run.seconds);
        samples.floor_usage[i].push(run.usage);
        samples.floor_busy[i].push(busy);
    }
    Ok(())
}

/// A part that compiled no dependency was not cold; its log is kept.
fn check(bench: &Bench, what: &str, run: &Run) -> Result<()> {
    let name: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    bench.keep_log(&name, run)?;
    bench.check_cold(what, run)
}

fn add_watched(all: &mut Watched, one: Watched) {
    all.samples += one.samples;
    all.processes.extend(one.processes);
}

/// The median share of each core busy over some runs: `core 0 97 %, core 1 95 %`.
fn busy_text(runs: &[Vec<f64>]) -> String {
    let cores = runs.iter().map(Vec::len).max().unwrap_or(0);
    (0..cores)
        .map(|core| {
            let shares: Vec<f64> = runs.iter().filter_map(|r| r.get(core).copied()).collect();
            format!("core {core} {:.0} %", 100.0 * median(&shares))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(runners: &[Runner], samples: Samples, results: &mut Results) {
    let release = results.scenario(
        "9 production on two runners (one core each): their parts side by side, merge, sign; cold",
        samples.release.clone(),
    );
    let mut floor = (0.0, 0);
    for (i, runner) in runners.iter().enumerate() {
        let name = format!(
            "9{} two runners' floor: one part alone, cold: {} on {} held to core {}",
            ['a', 'b'].get(i).copied().unwrap_or('x'),
            runner.platform,
            runner.label,
            runner.core
        );
        let median = results.scenario(&name, samples.floor[i].clone());
        if median > floor.0 {
            floor = (median, i);
        }
    }
    let parts = results.scenario("9c two runners: the parts side by side", samples.parts.clone());
    results.scenario("9d two runners: merge-release and sign", samples.merge_and_sign.clone());
    results.ratio(
        "production on two runners / its floor (the slower part alone, one engine, one core)",
        release / floor.0,
        "<= 1.15",
        release / floor.0 <= 1.15,
    );
    results.ratio(
        "two runners: parts side by side / their floor (sharing one machine)",
        parts / floor.0,
        "reported",
        true,
    );
    for rerun in &samples.rerun {
        results.note(format!("two runners: run again after a failure (not counted): {rerun}"));
    }
    report_costs(runners, &samples, results);
}

/// What the release and its floor cost, and where the CPU went.
fn report_costs(runners: &[Runner], samples: &Samples, results: &mut Results) {
    let release_cost = cost(
        "two-runner production release, cold (a part per engine, one core each, merge, sign)",
        &samples.release_usage,
        &samples.release,
    );
    let floor_costs: Vec<_> = runners
        .iter()
        .zip(&samples.floor_usage)
        .zip(&samples.floor)
        .map(|((runner, usage), seconds)| {
            cost(
                &format!("two-runner floor: the {} part alone on {}, one core, cold", runner.platform, runner.label),
                usage,
                seconds,
            )
        })
        .collect();
    let floor_cpu: Option<f64> = floor_costs.iter().map(|c| c.cpu_seconds).sum();
    if let (Some(release_cpu), Some(floor_cpu)) = (release_cost.cpu_seconds, floor_cpu) {
        results.ratio(
            "two runners: CPU seconds of the release / of its two parts alone",
            release_cpu / floor_cpu,
            "reported",
            true,
        );
    }
    let containerd: Vec<f64> = samples.release_usage.iter().map(|u| u.containerd_seconds).collect();
    results.note(format!(
        "two runners: containerd, which both engines share and which is held to no core, used {:.1} CPU s of the release's {} (median); the registry, the tool, buildx's client, skopeo and cosign ran outside the engines too, on either core",
        median(&containerd),
        release_cost.cpu_seconds.map_or("(not read)".to_string(), |c| format!("{c:.1}"))
    ));
    results.costs.push(release_cost);
    results.costs.extend(floor_costs);
    let floors: Vec<String> = runners
        .iter()
        .zip(&samples.floor_busy)
        .map(|(runner, busy)| format!("{} alone: {}", runner.platform, busy_text(busy)))
        .collect();
    results.note(format!(
        "two runners: cores busy (medians): the release {}; {}",
        busy_text(&samples.release_busy),
        floors.join("; ")
    ));
    let engines: Vec<String> = runners
        .iter()
        .map(|r| format!("{} (dockerd {}) on core {}", r.label, r.engine.pid, r.core))
        .collect();
    results.note(format!(
        "two runners: {}; checked in {} samples of every process under them ({} in all: dockerd, runc and the RUN steps): none left its core; cold: build caches emptied on both engines, the builder image, bases and SBOM generator already in both image stores",
        engines.join(", "),
        samples.watched.samples,
        samples.watched.processes.len()
    ));
}
