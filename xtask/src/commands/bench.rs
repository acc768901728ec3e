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

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use serde_json::Value;

use crate::client::{docker, process, registry};
use crate::context::BuildContext;
use crate::model::builder::Selection;
use crate::model::names::Platform;
use crate::model::reference::Registry;
use crate::model::{build_log, files};
use crate::ops::{builder, stand_ins};
use crate::preflight::{self, Requirement};
use crate::project;

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

/// One run of a command: wall time, output, and when each line arrived.
struct Run {
    seconds: f64,
    log: String,
    /// (seconds since the start, line).
    lines: Vec<(f64, String)>,
    usage: Usage,
}

/// What a run cost, from the meters.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    cpu_seconds: Option<f64>,
    bytes_written: u64,
    bytes_read: u64,
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
        bail!("benchmark step failed: {expression:?}: {}", tail(&text));
    }
    Ok((seconds, text))
}

fn tail(text: &str) -> String {
    let last: Vec<&str> = text.lines().rev().take(5).collect();
    last.into_iter().rev().collect::<Vec<_>>().join(" | ")
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

/// The dependency crates of the service cargo compiled in a build: its
/// `Compiling` lines in the compile stages' steps (not the cargo-tools
/// stage, which builds a tool), by step (`build_log::compiled_crates`), the
/// service itself left out.
pub fn dependencies_compiled(log: &str) -> Vec<String> {
    build_log::compiled_crates(log, "compile-service.sh")
        .into_iter()
        .map(|(_, name)| name)
        .filter(|name| name != "beacon")
        .collect()
}

/// The same for a host cargo build's output.
fn host_dependencies_compiled(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Compiling "))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|name| *name != "beacon")
        .map(String::from)
        .collect()
}

/// When the compile steps (`compile-service.sh deps|build`) of each
/// architecture started and ended, from the arrival times of a build log's
/// lines: a step starts with its first line and ends with its `DONE`; its
/// architectures are those its `compile-service.sh deps: targets ...` line
/// names (one step compiles every target of the build), or, for a step the
/// cache answered (it printed nothing), every one of `build_arches`.
pub fn arch_compiles(lines: &[(f64, String)], build_arches: &[&str]) -> Vec<ArchCompile> {
    let mut first_seen: BTreeMap<&str, f64> = BTreeMap::new();
    let mut done: BTreeMap<&str, f64> = BTreeMap::new();
    let mut step_arches: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (at, line) in lines {
        let Some((id, rest)) = line.split_once(' ') else {
            continue;
        };
        if !id.starts_with('#') {
            continue;
        }
        first_seen.entry(id).or_insert(*at);
        let header = rest.starts_with('[')
            && (rest.ends_with("compile-service.sh deps")
                || rest.contains("compile-service.sh build "));
        if header {
            step_arches
                .entry(id)
                .or_insert_with(|| build_arches.iter().map(|a| a.to_string()).collect());
        }
        if rest.starts_with("DONE") || rest.starts_with("CACHED") {
            done.insert(id, *at);
        }
        let targets = rest.split_once("compile-service.sh ").and_then(|(_, r)| {
            r.strip_prefix("deps: targets ")
                .or_else(|| r.strip_prefix("build: targets "))
        });
        if let Some(targets) = targets {
            step_arches.insert(id, targets.split_whitespace().map(String::from).collect());
        }
    }
    let mut spans: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (id, arches) in &step_arches {
        let start = first_seen.get(id).copied().unwrap_or_default();
        let end = done.get(id).copied().unwrap_or(start);
        for arch in arches {
            let span = spans.entry(arch.clone()).or_insert((start, end));
            span.0 = span.0.min(start);
            span.1 = span.1.max(end);
        }
    }
    spans
        .into_iter()
        .map(|(arch, (start, end))| ArchCompile { arch, start, end })
        .collect()
}

/// The share of the shorter architecture's compile that overlapped the
/// other's (1: fully in parallel, 0: one after the other).
pub fn overlap(compiles: &[ArchCompile]) -> Option<f64> {
    let [a, b] = compiles else { return None };
    let common = (a.end.min(b.end) - a.start.max(b.start)).max(0.0);
    let shorter = (a.end - a.start).min(b.end - b.start);
    (shorter > 0.0).then(|| common / shorter)
}

/// A TCP proxy in front of the registry that counts the bytes each way.
struct ByteProxy {
    address: String,
    written: Arc<AtomicU64>,
    read: Arc<AtomicU64>,
}

impl ByteProxy {
    fn start(target: &str) -> Result<ByteProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").context("cannot listen on 127.0.0.1")?;
        let address = listener.local_addr()?.to_string();
        let written = Arc::new(AtomicU64::new(0));
        let read = Arc::new(AtomicU64::new(0));
        let (up, down) = (written.clone(), read.clone());
        let target = target.to_string();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (up, down) = (up.clone(), down.clone());
                let pipe = |from: &TcpStream, to: &TcpStream, counter: Arc<AtomicU64>| {
                    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
                        return;
                    };
                    std::thread::spawn(move || {
                        let mut buffer = vec![0u8; 64 * 1024];
                        while let Ok(n) = from.read(&mut buffer) {
                            if n == 0 || to.write_all(&buffer[..n]).is_err() {
                                break;
                            }
                            counter.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                pipe(&client, &server, up);
                pipe(&server, &client, down);
            }
        });
        Ok(ByteProxy {
            address,
            written,
            read,
        })
    }

    fn bytes(&self) -> (u64, u64) {
        (
            self.written.load(Ordering::Relaxed),
            self.read.load(Ordering::Relaxed),
        )
    }
}

/// CPU seconds used so far by BuildKit's RUN steps, the engine's daemons
/// and this process's waited-for children; None where BuildKit's cgroup
/// cannot be read (not Linux, another cgroup layout).
fn cpu_seconds_so_far() -> Option<f64> {
    let buildkit = std::fs::read_to_string("/sys/fs/cgroup/cpuacct/docker/buildkit/cpuacct.usage")
        .ok()
        .and_then(|t| t.trim().parse::<f64>().ok())
        .map(|ns| ns / 1e9)
        .or_else(|| {
            let stat = std::fs::read_to_string("/sys/fs/cgroup/docker/buildkit/cpu.stat").ok()?;
            stat.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|us| us / 1e6)
        })?;
    // utime + stime (fields 14 and 15 of /proc/PID/stat), and cutime +
    // cstime (16 and 17), in clock ticks (100 a second on Linux).
    let ticks = |stat: &str, fields: [usize; 2]| -> f64 {
        let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
        let values: Vec<&str> = after.split_whitespace().collect();
        fields
            .iter()
            .filter_map(|f| values.get(f - 3).and_then(|v| v.parse::<f64>().ok()))
            .sum::<f64>()
            / 100.0
    };
    let mut daemons = 0.0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if matches!(comm.trim(), "dockerd" | "containerd") {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            daemons += ticks(&stat, [14, 15]);
        }
    }
    let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    Some(buildkit + daemons + ticks(&own, [16, 17]))
}

struct Bench {
    exe: PathBuf,
    tree: PathBuf,
    work: PathBuf,
    /// The registry the builds push to and cache in: the counting proxy.
    registry: String,
    proxy: ByteProxy,
    name: String,
    variants: Vec<String>,
    build_args: Vec<String>,
    sbom_generator: String,
    key: PathBuf,
    repeat: usize,
    smoke: bool,
    /// `--builder NAME` of every build, and how the bench's own engine commands select it.
    builder: Option<String>,
    selection: Option<Selection>,
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

    /// `--variant` of each variant, and `--builder` (every build command takes both).
    fn variant_args(&self) -> Vec<String> {
        let builder = self
            .builder
            .iter()
            .flat_map(|b| ["--builder".to_string(), b.clone()]);
        self.variants
            .iter()
            .flat_map(|v| ["--variant".to_string(), v.clone()])
            .chain(builder)
            .collect()
    }

    /// Runs a command, metering it; its lines are timed as they arrive.
    fn metered(&self, expression: duct::Expression) -> Result<Run> {
        let cpu_before = cpu_seconds_so_far();
        let bytes_before = self.proxy.bytes();
        let started = Instant::now();
        let reader = expression
            .stdin_null()
            .stderr_to_stdout()
            .unchecked()
            .reader()
            .context("cannot start the benchmark step")?;
        let mut lines = Vec::new();
        let mut log = String::new();
        let mut buffered = BufReader::new(&reader);
        let mut line = String::new();
        while buffered.read_line(&mut line)? > 0 {
            lines.push((started.elapsed().as_secs_f64(), line.trim_end().to_string()));
            log.push_str(&line);
            line.clear();
        }
        let status = reader.try_wait()?.map(|o| o.status.success());
        let seconds = started.elapsed().as_secs_f64();
        if status != Some(true) {
            bail!("benchmark step failed: {}", tail(&log));
        }
        let bytes_after = self.proxy.bytes();
        let usage = Usage {
            cpu_seconds: cpu_before
                .zip(cpu_seconds_so_far())
                .map(|(before, after)| after - before),
            bytes_written: bytes_after.0 - bytes_before.0,
            bytes_read: bytes_after.1 - bytes_before.1,
        };
        Ok(Run {
            seconds,
            log,
            lines,
            usage,
        })
    }

    fn ci_image(&self, context: &Path, extra: &[&str]) -> Result<Run> {
        self.ci_image_named(&self.name, context, extra)
    }

    /// `ci-image` under another image name (and so another registry cache).
    fn ci_image_named(&self, name: &str, context: &Path, extra: &[&str]) -> Result<Run> {
        self.metered(self.xtask(context, self.ci_image_args(name, extra)))
    }

    /// The arguments of `ci-image` under image name `name`, then `extra`.
    fn ci_image_args(&self, name: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["ci-image".to_string()];
        args.extend(self.variant_args());
        args.extend(self.build_args.iter().cloned());
        args.extend(["--registry", &self.registry, "--image-name", name].map(String::from));
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    fn release_image(&self, context: &Path, extra: &[&str]) -> Result<Run> {
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
        args.extend(extra.iter().map(|a| a.to_string()));
        // Every release here is a first release: a re-run of the same
        // release resumes from the record the last one left (nothing is
        // rebuilt), and the same commit is released again and again here (a
        // repetition whose production build followed the last one took 3.9 s).
        let records = self.tree.join(crate::ops::record::RECORDS_DIR);
        if records.exists() {
            std::fs::remove_dir_all(&records)
                .with_context(|| format!("cannot remove {}", records.display()))?;
        }
        self.metered(self.xtask(context, args))
    }

    /// A cold build compiles the dependencies: one that compiled none was
    /// not cold (a smoke run never empties the engine), and its time would
    /// be taken for a cold build's.
    fn check_cold(&self, what: &str, run: &Run) -> Result<()> {
        if !self.smoke && dependencies_compiled(&run.log).is_empty() {
            bail!("benchmark step '{what}' compiled no dependency although the engine was emptied: its time is not a cold build's");
        }
        Ok(())
    }

    /// Empties the engine's build cache, cache mounts (the cargo target
    /// dirs of the compile stages) included. Not in a smoke run: it would
    /// make every later build of the test suite compile from scratch.
    fn cold(&self) -> Result<()> {
        if !self.smoke {
            let args = ["prune", "--all", "--force"].map(String::from).to_vec();
            let prune = docker::buildx(self.selection.as_ref(), args);
            timed(duct::cmd(&prune.program, &prune.args))?;
        }
        Ok(())
    }

    /// A change to the service's source no earlier run made (the engine
    /// may still hold records of those: images loaded from them keep them).
    fn one_line_change(&self, n: usize) -> Result<()> {
        let path = self.tree.join("service/src/main.rs");
        let mut text = files::read_to_string(&path)?;
        text.push_str(&format!("// benchmark edit {n} of {}\n", self.name));
        files::write(&path, text)?;
        Ok(())
    }

    fn context(&self, name: &str, base: &BuildContext, git_ref: Option<&str>) -> Result<PathBuf> {
        let mut context = base.clone();
        context.git.dirty = false;
        context.git.branch = Some("main".to_string());
        context.ci.git_ref = git_ref.map(String::from);
        let path = self.work.join(format!("{name}.json"));
        files::write(&path, serde_json::to_string(&context)?)?;
        Ok(path)
    }

    /// Keeps a scenario's whole log under target/bench/logs, to read a
    /// surprising figure against what the build did.
    fn keep_log(&self, name: &str, run: &Run) -> Result<()> {
        let dir = self.work.join("logs");
        files::create_dir_all(&dir)?;
        files::write(&dir.join(format!("{name}.log")), &run.log)
    }

    fn reps(&self) -> usize {
        self.repeat
    }
}

pub fn run(args: BenchOptions) -> Result<()> {
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
    let overrides = stand_ins::build(&stand_ins::StandInsRequest {
        registry: args.registry.clone(),
        inputs: PathBuf::from(stand_ins::DEFAULT_INPUTS),
        binaries_only: false,
        builder: selection.clone(),
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
        let digest = registry::resolve_digest(&image.parse()?)?
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
    let proxy = ByteProxy::start(args.registry.as_str())?;
    let bench = Bench {
        exe: std::env::current_exe()?,
        tree: tree.clone(),
        work: work.clone(),
        registry: proxy.address.clone(),
        proxy,
        name: format!("bench/beacon-{stamp}"),
        variants,
        build_args,
        sbom_generator: overrides
            .sbom_generator
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        key: key_prefix.with_extension("key"),
        repeat: if args.smoke { 1 } else { args.repeat.max(1) },
        smoke: args.smoke,
        builder: args.builder.clone(),
        selection: selection.clone(),
    };
    if args.smoke {
        notes.push("smoke run: one repetition, one variant, and the engine is never emptied, so the cold and fresh-runner figures are warm ones: they prove the scenarios run, nothing more".to_string());
    }
    let base = crate::context::gather(&tree)?;
    let result = measure(&bench, &base, &root, &mut notes);
    let _ = xshell::cmd!(sh, "git worktree remove --force {tree_text}")
        .quiet()
        .ignore_stderr()
        .run();
    let measured = result?;
    let version = ["version", "--format", "{{.Server.Version}}"].map(String::from);
    let engine = process::read(&docker::engine(selection.as_ref(), version.to_vec()));
    let machine = serde_json::json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "arch": std::env::consts::ARCH,
        "os": std::env::consts::OS,
        "engine": engine.map(|v| v.trim().to_string()).unwrap_or_default(),
        "builder": args.builder.as_deref().unwrap_or("(current)"),
        "builder_driver": preflight::builder_info_on(selection.as_ref()).map(|b| b.driver).unwrap_or_default(),
    });
    let report = Report {
        machine,
        repeat: bench.repeat,
        variants: bench.variants.clone(),
        scenarios: measured.scenarios,
        ratios: measured.ratios,
        costs: measured.costs,
        arch_compiles: measured.arch_compiles,
        notes,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

struct Measured {
    scenarios: Vec<Scenario>,
    ratios: Vec<Ratio>,
    costs: Vec<Cost>,
    arch_compiles: Vec<ArchCompile>,
}

/// The medians of what a set of runs cost.
fn cost(build: &str, runs: &[Usage], seconds: &[f64]) -> Cost {
    let cpu: Vec<f64> = runs.iter().filter_map(|u| u.cpu_seconds).collect();
    let written: Vec<f64> = runs.iter().map(|u| u.bytes_written as f64).collect();
    let read: Vec<f64> = runs.iter().map(|u| u.bytes_read as f64).collect();
    Cost {
        build: build.to_string(),
        seconds: median(seconds),
        cpu_seconds: (cpu.len() == runs.len()).then(|| median(&cpu)),
        bytes_written: median(&written) as u64,
        bytes_read: median(&read) as u64,
    }
}

fn measure(
    bench: &Bench,
    base: &BuildContext,
    root: &Path,
    notes: &mut Vec<String>,
) -> Result<Measured> {
    let pr = bench.context("pr", base, Some("refs/pull/1/merge"))?;
    let main = bench.context("main", base, Some("refs/heads/main"))?;
    let mut scenarios = Vec::new();
    let mut ratios = Vec::new();
    let mut costs = Vec::new();
    let reps = bench.reps();
    let native = Platform::native();

    // 1 and 2. Cold CI vs cold production, and production vs its floor (the
    // slowest single-platform release), every selected variant. The builds
    // of one repetition run back to back, the production build before its
    // floor in one repetition and after it in the next: this machine's speed
    // drifts over minutes (the same release measured 147 s and 219 s in two
    // runs), and a ratio of builds run far apart measures the drift.
    eprintln!("bench: 1 and 2. cold CI, cold production and its floor (single-platform releases), interleaved");
    let (mut cold_ci, mut cold_release) = (Vec::new(), Vec::new());
    let (mut release_usage, mut floor_usage) = (Vec::new(), Vec::new());
    let mut arch_spans = Vec::new();
    let floor_platforms = [
        ("2a", Platform::linux("amd64")),
        ("2b", Platform::linux("arm64")),
    ];
    let mut floor_samples: Vec<Vec<f64>> = vec![Vec::new(); floor_platforms.len()];
    for n in 0..reps {
        bench.cold()?;
        let run = bench.ci_image(&pr, &["--cache", "none"])?;
        bench.check_cold("cold CI build", &run)?;
        cold_ci.push(run.seconds);
        for production_turn in [n % 2 == 0, n % 2 == 1] {
            if production_turn {
                bench.cold()?;
                let run = bench.release_image(&main, &[])?;
                bench.check_cold("cold production release", &run)?;
                cold_release.push(run.seconds);
                release_usage.push(run.usage);
                // The release builds the default platforms.
                let arches: Vec<&str> = crate::plan::DEFAULT_PLATFORMS
                    .split(',')
                    .filter_map(|p| p.split('/').nth(1))
                    .collect();
                arch_spans = arch_compiles(&run.lines, &arches);
                continue;
            }
            for (samples, (_, platform)) in floor_samples.iter_mut().zip(&floor_platforms) {
                bench.cold()?;
                let run = bench.release_image(&main, &[&format!("--platform={platform}")])?;
                bench.check_cold("production floor", &run)?;
                samples.push(run.seconds);
                floor_usage.push(run.usage);
            }
        }
    }
    let (ci, release) = (median(&cold_ci), median(&cold_release));
    costs.push(cost(
        "production release (2 platforms, push, SBOM, provenance, sign), cold",
        &release_usage,
        &cold_release,
    ));
    let floor_seconds: Vec<f64> = floor_samples.iter().flatten().copied().collect();
    costs.push(cost(
        "single-platform production release (the floor's builds), cold",
        &floor_usage,
        &floor_seconds,
    ));
    scenarios.push(scenario("1a cold CI build (1 platform, load)", cold_ci));
    scenarios.push(scenario(
        "1b cold production build (2 platforms, push, SBOM, provenance, sign)",
        cold_release,
    ));
    ratios.push(ratio(
        "cold CI / cold production",
        ci / release,
        "<= 0.50",
        ci / release <= 0.5,
    ));
    if let Some(share) = overlap(&arch_spans) {
        ratios.push(ratio(
            "the two architectures' compiles overlapping (share of the shorter)",
            share,
            "reported",
            true,
        ));
    }
    let mut floor = 0.0;
    for (samples, (label, platform)) in floor_samples.into_iter().zip(&floor_platforms) {
        let name = format!(
            "{label} production floor: cold single-platform release (push, SBOM, provenance, sign), {platform}"
        );
        floor = f64::max(floor, median(&samples));
        scenarios.push(scenario(&name, samples));
    }
    ratios.push(ratio(
        "cold production / its floor (the slowest single-platform release)",
        release / floor,
        "<= 1.25",
        release / floor <= 1.25,
    ));

    // 3. A fresh runner: main's registry cache only, a one-line change.
    eprintln!("bench: 3. fresh runner: a pull request's build with main's registry cache only");
    bench.cold()?;
    let main_build = bench.ci_image(&main, &["--cache", "registry"])?;
    bench.keep_log("3-main-ci-build", &main_build)?;
    scenarios.push(scenario(
        "3 main's CI build, writing main's registry cache (mode=max)",
        vec![main_build.seconds],
    ));
    let (mut fresh, mut fresh_usage, mut compiled) = (Vec::new(), Vec::new(), 0usize);
    for n in 0..reps {
        bench.one_line_change(n)?;
        bench.cold()?;
        let context = bench.context(
            &format!("pr-fresh-{n}"),
            base,
            Some(&format!("refs/pull/{}/merge", 1000 + n)),
        )?;
        let run = bench.ci_image(&context, &["--cache", "registry"])?;
        bench.keep_log(&format!("3a-fresh-runner-pr-{n}"), &run)?;
        if run.usage.bytes_read < 1_000_000 && !bench.smoke {
            notes.push(format!(
                "3a (run {n}): the fresh-runner build read only {} bytes from the registry, so it did not import main's cache: it measures a cold build (log: target/bench/logs/3a-fresh-runner-pr-{n}.log)",
                run.usage.bytes_read
            ));
        }
        compiled = compiled.max(dependencies_compiled(&run.log).len());
        fresh.push(run.seconds);
        fresh_usage.push(run.usage);
    }
    let fresh_median = median(&fresh);
    costs.push(cost(
        "pull request CI build (1 platform, load, cache export mode=min), fresh runner",
        &fresh_usage,
        &fresh,
    ));
    scenarios.push(scenario(
        "3a fresh runner, compile stage: PR CI build after a one-line change",
        fresh,
    ));
    ratios.push(ratio(
        "fresh-runner PR CI build / cold CI",
        fresh_median / ci,
        "<= 0.25",
        fresh_median / ci <= 0.25,
    ));
    ratios.push(ratio(
        "dependency crates compiled by the fresh-runner PR build (most of any run)",
        compiled as f64,
        "0",
        compiled == 0,
    ));

    // 4. Warm local rebuild after a one-line change vs cold CI (the engine
    // and its cache mounts as the fresh-runner builds left them).
    eprintln!("bench: 4. warm local rebuild after a one-line change");
    bench.ci_image(&pr, &["--cache", "none"])?;
    let mut warm = Vec::new();
    for n in 0..reps {
        bench.one_line_change(100 + n)?;
        warm.push(bench.ci_image(&pr, &["--cache", "none"])?.seconds);
    }
    let warm_median = median(&warm);
    scenarios.push(scenario(
        "4 warm local CI rebuild after a one-line change",
        warm,
    ));
    ratios.push(ratio(
        "warm local CI rebuild / cold CI",
        warm_median / ci,
        "<= 0.15",
        warm_median / ci <= 0.15,
    ));

    // 5. No-op CI rebuild.
    eprintln!("bench: 5. no-op CI rebuild");
    let mut noop = Vec::new();
    for _ in 0..reps {
        noop.push(bench.ci_image(&pr, &["--cache", "none"])?.seconds);
    }
    let noop_median = median(&noop);
    scenarios.push(scenario("5 no-op CI rebuild", noop));
    ratios.push(ratio(
        "no-op CI rebuild, seconds",
        noop_median,
        "< 5 s",
        noop_median < 5.0,
    ));

    // 6. The tool's overhead: the same bake by hand, interleaved.
    eprintln!("bench: 6. cargo xtask ci-image vs the same buildx bake by hand");
    measure_overhead(bench, &pr, &mut scenarios, &mut ratios)?;

    // 8. The share of a warm CI build spent exporting cache, per mode.
    eprintln!("bench: 8. cache export share per mode (registry backend)");
    for (mode, target, limit) in [
        ("min", "< 10 % (pull-request policy)", Some(0.10)),
        ("max", "reported", None),
    ] {
        let mut shares = Vec::new();
        for n in 0..reps {
            bench.one_line_change(300 + n)?;
            let run = bench.ci_image(&pr, &["--cache", "registry", "--cache-mode", mode])?;
            shares.push(cache_export_seconds(&run.log) / run.seconds);
        }
        let share = median(&shares);
        scenarios.push(scenario(
            &format!("8 cache export share of a warm CI build (a fraction), mode={mode}"),
            shares,
        ));
        ratios.push(ratio(
            &format!("cache export / warm CI build, mode={mode}"),
            share,
            target,
            limit.is_none_or(|l| share < l),
        ));
    }

    // 3b. The same change through the host-built path, as ci-build.yml runs
    // it (`ci-image --host-build`): cargo on the runner with its target
    // directory restored the way Swatinem/rust-cache restores it (the
    // dependencies, not the workspace's own crates; unpacked from a zstd
    // tarball), then the images from that binary, main's registry cache only.
    eprintln!("bench: 3b. fresh runner: the host-built path (ci-image --host-build)");
    let host = HostPath::prepare(bench, root)?;
    let host_name = format!("{}-host", bench.name);
    // main's images from the same path (what ci-cache.yml runs), writing
    // main's registry cache.
    bench.cold()?;
    host.build_images(bench, &host_name, &main)?;
    let (mut host_total, mut host_cargo, mut host_compiled) = (Vec::new(), Vec::new(), 0usize);
    for n in 0..reps {
        bench.one_line_change(50 + n)?;
        host.restore(bench)?;
        bench.cold()?;
        let context = bench.context(
            &format!("pr-host-{n}"),
            base,
            Some(&format!("refs/pull/{}/merge", 2000 + n)),
        )?;
        let image = host.build_images(bench, &host_name, &context)?;
        host_compiled = host_compiled.max(host_dependencies_compiled(&image.log).len());
        // cargo's part: until its `Finished` line.
        let cargo_seconds = image
            .lines
            .iter()
            .find(|(_, line)| line.trim_start().starts_with("Finished `ci` profile"))
            .map(|(at, _)| *at)
            .context("the host build printed no cargo `Finished` line")?;
        host_cargo.push(cargo_seconds);
        // What the runner pays: unpacking the restored target dir, then the step.
        host_total.push(host.restore_seconds() + image.seconds);
    }
    let host_median = median(&host_total);
    scenarios.push(scenario(
        "3b fresh runner, host-built path: target dir unpacked + ci-image --host-build",
        host_total,
    ));
    scenarios.push(scenario(
        "3c of which the host cargo build (until cargo's Finished)",
        host_cargo,
    ));
    ratios.push(ratio(
        "fresh runner: host-built path / compile stage",
        host_median / fresh_median,
        "reported (< 1: the host path is faster)",
        true,
    ));
    notes.push(format!(
        "3b: dependency crates the host cargo build compiled (most of any run): {host_compiled}; unpacking its target directory ({:.0} MB compressed, as rust-cache saves it; a runner downloads it first, here it is local) took {:.1} s, counted in 3b",
        host.saved_bytes() as f64 / 1e6,
        host.restore_seconds()
    ));

    // 7. The xtask's own cold compile and start-up.
    if bench.smoke {
        notes.push("7a (xtask cold compile) skipped in --smoke".to_string());
    } else {
        eprintln!("bench: 7. cold compile of the xtask crate");
        let target = bench.work.join("xtask-cold");
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
        scenarios.push(scenario("7a cold compile of the xtask crate", compile));
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        ratios.push(ratio(
            &format!("xtask cold compile, seconds ({cpus} cores)"),
            compile_median,
            "< 40 s on 2 cores",
            compile_median < 40.0,
        ));
    }
    let mut startup = Vec::new();
    for _ in 0..10 {
        startup.push(timed(duct::cmd!(&bench.exe, "--help"))?.0);
    }
    scenarios.push(scenario("7b cargo xtask --help start-up", startup));

    // The proposal's cost claim: a pull request's build against what every
    // pull request used to build (a production release).
    if let (Some(pr_cost), Some(release_cost)) = (
        costs.iter().find(|c| c.build.starts_with("pull request")),
        costs.iter().find(|c| c.build.starts_with("production")),
    ) {
        if let (Some(pr_cpu), Some(release_cpu)) = (pr_cost.cpu_seconds, release_cost.cpu_seconds) {
            let saved = 1.0 - pr_cpu / release_cpu;
            ratios.push(ratio(
                "CPU seconds a PR build saves against a production build",
                saved,
                ">= 0.40 (the proposal's 40-60 %)",
                saved >= 0.4,
            ));
        } else {
            notes.push("CPU seconds could not be read (no BuildKit cgroup under /sys/fs/cgroup): the cost claim is judged on bytes only".to_string());
        }
        let saved = 1.0 - pr_cost.bytes_written as f64 / release_cost.bytes_written.max(1) as f64;
        ratios.push(ratio(
            "registry bytes a PR build saves against a production build",
            saved,
            ">= 0.40 (the proposal's 40-60 %)",
            saved >= 0.4,
        ));
    }
    notes.push(format!(
        "CPU seconds count BuildKit's RUN steps, dockerd, containerd and the tool's own processes on this {} machine; other builds on the same engine at the same time count too",
        native
    ));
    Ok(Measured {
        scenarios,
        ratios,
        costs,
        arch_compiles: arch_spans,
    })
}

fn measure_overhead(
    bench: &Bench,
    pr: &Path,
    scenarios: &mut Vec<Scenario>,
    ratios: &mut Vec<Ratio>,
) -> Result<()> {
    let reps = bench.reps();
    let (_, plan_text) = timed(
        bench.xtask(
            pr,
            [
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
            .concat(),
        ),
    )?;
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
    // The run directory a dry run names, made real for the hand-run bake.
    let by_hand_dir = "target/xtask/runs/bench-by-hand";
    files::create_dir_all(&bench.tree.join(by_hand_dir))?;
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
    // Run and timed the way the tool is (`metered`: its output read line by
    // line as it arrives), so the difference is the tool's alone; a bake
    // whose output went to /dev/null saved the reading the tool's run pays.
    let by_hand = || -> Result<f64> {
        let bake = duct::cmd("docker", &bake_args)
            .dir(&bench.tree)
            .stdin_bytes(bake_stdin.as_bytes());
        Ok(bench
            .metered(bake)
            .context("the hand-run buildx bake failed")?
            .seconds)
    };
    // The representative case: a rebuild after a one-line change, the two
    // ways interleaved in ABBA order (tool first in one pair, the hand-run
    // bake first in the next) so neither gets a warmer engine or a steadier
    // machine; an even number of pairs balances the orders.
    let pairs = reps.max(if bench.smoke { 1 } else { 12 });
    let (mut tool, mut hand) = (Vec::new(), Vec::new());
    for n in 0..pairs {
        for tool_turn in [n % 2 == 0, n % 2 == 1] {
            bench.one_line_change(200 + 2 * n + usize::from(tool_turn))?;
            if tool_turn {
                tool.push(bench.ci_image(pr, &["--cache", "none"])?.seconds);
            } else {
                hand.push(by_hand()?);
            }
        }
    }
    let (tool_median, hand_median) = (median(&tool), median(&hand));
    scenarios.push(scenario(
        "6a cargo xtask ci-image (after a one-line change)",
        tool,
    ));
    scenarios.push(scenario(
        "6b the same docker buildx bake by hand (after a one-line change)",
        hand,
    ));
    let overhead = (tool_median - hand_median) / hand_median;
    ratios.push(ratio(
        "tool overhead vs buildx by hand (a one-line change)",
        overhead,
        "< 5 %",
        overhead < 0.05,
    ));
    // The worst case, in absolute terms: a no-op build, where the tool's
    // fixed cost (checks, git, planning) is all there is to see.
    let (mut tool_noop, mut hand_noop) = (Vec::new(), Vec::new());
    for n in 0..pairs {
        for tool_turn in [n % 2 == 0, n % 2 == 1] {
            if tool_turn {
                tool_noop.push(bench.ci_image(pr, &["--cache", "none"])?.seconds);
            } else {
                hand_noop.push(by_hand()?);
            }
        }
    }
    let fixed_cost = median(&tool_noop) - median(&hand_noop);
    scenarios.push(scenario("6c cargo xtask ci-image (no-op)", tool_noop));
    scenarios.push(scenario(
        "6d the same docker buildx bake by hand (no-op)",
        hand_noop,
    ));
    ratios.push(ratio(
        "tool fixed cost on a no-op build, seconds",
        fixed_cost,
        "reported",
        true,
    ));
    Ok(())
}

/// The host-built path of a pull request: the service compiled by cargo on
/// the runner (the `ci` profile, as the compile stage builds CI images),
/// with a target directory that holds what rust-cache restores.
struct HostPath {
    target: PathBuf,
    saved: PathBuf,
    platform: Platform,
    restore_seconds: std::cell::Cell<f64>,
}

impl HostPath {
    /// A target directory as main's rust-cache would hold it: seeded from
    /// the stand-ins' host build (the same profile and flags) when there is
    /// one, built once, then without the workspace's own crates.
    fn prepare(bench: &Bench, root: &Path) -> Result<HostPath> {
        let host = HostPath {
            target: bench.work.join("host-target"),
            saved: bench.work.join("host-target.tar"),
            platform: Platform::native(),
            restore_seconds: std::cell::Cell::new(0.0),
        };
        let _ = std::fs::remove_dir_all(&host.target);
        let _ = std::fs::remove_file(&host.saved);
        let stand_ins = root.join("target/stand-ins/cargo");
        if stand_ins.is_dir() {
            let _lock = files::lock(&root.join("target/xtask/stand-ins.lock"), "the stand-ins")?;
            timed(duct::cmd!("cp", "-a", &stand_ins, &host.target))?;
        }
        host.build(bench)?;
        // rust-cache keeps the dependencies and cleans the workspace's crates.
        let sh = xshell::Shell::new()?;
        let triple_dirs = std::fs::read_dir(&host.target)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir());
        for dir in triple_dirs {
            for profile in ["ci", "release", "debug"] {
                let profile_dir = dir.join(profile);
                for sub in ["deps", ".fingerprint", "incremental"] {
                    for entry in std::fs::read_dir(profile_dir.join(sub))
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if name.starts_with("beacon-") || name.starts_with("xtask-") {
                            let path = entry.path();
                            xshell::cmd!(sh, "rm -rf {path}").quiet().run()?;
                        }
                    }
                }
                let _ = std::fs::remove_file(profile_dir.join("beacon"));
            }
        }
        // Saved as rust-cache saves it (actions/cache: a zstd tarball), so
        // the restore pays for unpacking it, as on a runner.
        let (work, name) = (&bench.work, "host-target");
        timed(duct::cmd!(
            "tar",
            Self::compression(),
            "-cf",
            &host.saved,
            "-C",
            work,
            name
        ))?;
        Ok(host)
    }

    /// zstd as actions/cache uses it where it is installed, else gzip.
    fn compression() -> &'static str {
        if preflight::find_program("zstd").is_some() {
            "--zstd"
        } else {
            "--gzip"
        }
    }

    /// The size of the saved target directory: what a runner downloads.
    fn saved_bytes(&self) -> u64 {
        self.saved.metadata().map(|m| m.len()).unwrap_or(0)
    }

    /// Puts back the target directory from its archive (as a cache restore would).
    fn restore(&self, bench: &Bench) -> Result<()> {
        let started = Instant::now();
        let _ = std::fs::remove_dir_all(&self.target);
        timed(duct::cmd!(
            "tar",
            Self::compression(),
            "-xf",
            &self.saved,
            "-C",
            &bench.work
        ))?;
        self.restore_seconds.set(started.elapsed().as_secs_f64());
        Ok(())
    }

    fn restore_seconds(&self) -> f64 {
        self.restore_seconds.get()
    }

    /// `cargo build` of the scratch checkout into the target directory.
    fn build(&self, bench: &Bench) -> Result<()> {
        let build = stand_ins::HostBuild {
            platform: &self.platform,
            profile: "ci",
            target_dir: &self.target,
        };
        let (command, _) = stand_ins::host_build_command(&build)?;
        let output = process::capture(&command.in_dir(&bench.tree))
            .context("cannot run the host cargo build")?;
        if !output.success {
            bail!(
                "the host cargo build failed: {}",
                tail(&output.stderr_text())
            );
        }
        Ok(())
    }

    /// Exactly what the workflows run (`ci-image --cache registry
    /// --host-build`) as image name `name` in `context`, cargo's target
    /// directory being the one rust-cache restored.
    fn build_images(&self, bench: &Bench, name: &str, context: &Path) -> Result<Run> {
        let args = bench.ci_image_args(name, &["--cache", "registry", "--host-build"]);
        bench.metered(
            bench
                .xtask(context, args)
                .env("CARGO_TARGET_DIR", &self.target),
        )
    }
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
    println!("\n{:<72} {:>9}  {:<36} met", "ratio", "value", "target");
    for r in &report.ratios {
        println!(
            "{:<72} {:>9.3}  {:<36} {}",
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
    fn reads_cache_export_time_from_buildx_logs() {
        let log = "#12 exporting to image\n#12 DONE 0.3s\n#13 exporting cache to registry\n#13 preparing build cache for export 0.1s done\n#13 DONE 1.5s\n#14 [ubi9 final 1/1] COPY x\n#14 CACHED\n";
        assert_eq!(cache_export_seconds(log), 1.5);
    }

    #[test]
    fn counts_the_service_dependencies_compiled_not_the_tools() {
        let log = "#2 [internal] load build definition from Dockerfile\n\
#5 [cargo-tools 2/2] RUN cargo install cargo-auditable\n#5 3.0    Compiling serde v1.0.228\n#5 DONE 30.0s\n\
#6 [deps 3/3] RUN sh /usr/local/lib/compile-service.sh deps\n#6 1.0    Compiling tokio v1.54.1\n#6 DONE 9.0s\n\
#7 [compile 2/2] RUN sh /usr/local/lib/compile-service.sh build /out\n#7 0.4    Compiling beacon v0.1.0 (/src/service)\n#7 DONE 9.0s\n";
        assert_eq!(dependencies_compiled(log), ["tokio"]);
        // A bake of several variants: the shared step ran for one and comes
        // back CACHED, under the same label, for another. It still counts.
        let bake = "#2 [ubi9 internal] load build definition from Dockerfile\n\
#33 [ubi9 deps 3/3] RUN sh /usr/local/lib/compile-service.sh deps\n#33 0.6    Compiling proc-macro2 v1.0.107\n#33 DONE 71.9s\n\
#52 [ubi9 deps 3/3] RUN sh /usr/local/lib/compile-service.sh deps\n#52 CACHED\n";
        assert_eq!(dependencies_compiled(bake), ["proc-macro2"]);
        assert_eq!(
            host_dependencies_compiled(
                "   Compiling beacon v0.1.0 (/x)\n    Finished `ci` profile\n"
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn reads_when_each_architecture_compiled() {
        // One step per subcommand compiles every target; its first output
        // line names them (and arrives after the step's first line).
        let lines: Vec<(f64, String)> = [
            (1.0, "#10 [linux/amd64 deps 3/3] RUN --mount=type=bind,source=images/compile-service.sh,target=/usr/local/lib/compile-service.sh     sh /usr/local/lib/compile-service.sh deps"),
            (1.5, "#11 [linux/amd64 cargo-tools 1/1] RUN cargo install cargo-auditable"),
            (2.0, "#10 0.05 compile-service.sh deps: targets amd64 arm64"),
            (3.0, "#10 5.0    Compiling tokio v1"),
            (30.0, "#11 DONE 28.5s"),
            (50.0, "#10 DONE 49.0s"),
            (61.0, "#12 [linux/amd64->arm64 compile 2/2] RUN sh compile-service.sh build /out"),
            (61.5, "#12 0.04 compile-service.sh build: targets amd64 arm64"),
            (120.0, "#12 DONE 59.0s"),
        ]
        .into_iter()
        .map(|(t, l)| (t, l.to_string()))
        .collect();
        let spans = arch_compiles(&lines, &["amd64", "arm64"]);
        assert_eq!(spans.len(), 2, "{spans:?}");
        assert_eq!(
            (spans[0].arch.as_str(), spans[0].start, spans[0].end),
            ("amd64", 1.0, 120.0)
        );
        assert_eq!(
            (spans[1].arch.as_str(), spans[1].start, spans[1].end),
            ("arm64", 1.0, 120.0)
        );
        assert_eq!(overlap(&spans), Some(1.0));
        // Steps of one architecture each (an older layout) still read apart.
        let apart: Vec<(f64, String)> = [
            (0.0, "#3 [deps 3/3] RUN sh compile-service.sh deps"),
            (0.1, "#3 0.01 compile-service.sh deps: targets amd64"),
            (10.0, "#3 DONE 10.0s"),
            (10.0, "#4 [deps 3/3] RUN sh compile-service.sh deps"),
            (10.1, "#4 0.01 compile-service.sh deps: targets arm64"),
            (30.0, "#4 DONE 20.0s"),
        ]
        .into_iter()
        .map(|(t, l)| (t, l.to_string()))
        .collect();
        let spans = arch_compiles(&apart, &["amd64", "arm64"]);
        assert_eq!(overlap(&spans), Some(0.0), "{spans:?}");
        // Steps the cache answered print no targets: they stand for every
        // architecture of the build.
        let cached: Vec<(f64, String)> = [
            (
                0.5,
                "#7 [linux/amd64 deps 3/3] RUN sh /usr/local/lib/compile-service.sh deps",
            ),
            (0.5, "#7 CACHED"),
            (
                0.6,
                "#8 [linux/amd64 compile 2/2] RUN sh /usr/local/lib/compile-service.sh build /out",
            ),
            (0.7, "#8 CACHED"),
        ]
        .into_iter()
        .map(|(t, l)| (t, l.to_string()))
        .collect();
        let spans = arch_compiles(&cached, &["amd64", "arm64"]);
        let arches: Vec<&str> = spans.iter().map(|s| s.arch.as_str()).collect();
        assert_eq!(arches, ["amd64", "arm64"]);
        assert_eq!((spans[0].start, spans[0].end), (0.5, 0.7));
    }
}
