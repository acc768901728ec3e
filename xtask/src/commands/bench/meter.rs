//! What a benchmark step costs and how long it takes: wall time, CPU
//! seconds (BuildKit's cgroup, the engine's daemons, the tool's children)
//! and the bytes that went through a counting proxy in front of the
//! registry. Every command runs through `client::process`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};

use crate::client::process::{self, Invocation};

use super::{median, Cost};

/// One run of a command: wall time, output, and when each line arrived.
pub(super) struct Run {
    pub seconds: f64,
    pub log: String,
    /// (seconds since the start, line).
    pub lines: Vec<(f64, String)>,
    pub usage: Usage,
}

/// What a run cost, from the meters.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Usage {
    pub cpu_seconds: Option<f64>,
    /// Of those, containerd's (the daemon the engines share).
    pub containerd_seconds: f64,
    pub bytes_written: u64,
    pub bytes_read: u64,
}

/// The same command with an empty stdin (a benchmark step reads nothing
/// from the terminal) unless it was given one.
fn without_input(invocation: &Invocation) -> Invocation {
    let mut invocation = invocation.clone();
    invocation.stdin.get_or_insert_with(String::new);
    invocation
}

/// Runs a command quietly; returns (seconds, stdout and stderr); fails on
/// a non-zero exit with its last lines.
pub(super) fn timed(invocation: &Invocation) -> Result<(f64, String)> {
    let started = Instant::now();
    let captured = process::capture(&without_input(invocation))?;
    let seconds = started.elapsed().as_secs_f64();
    let text = format!("{}{}", captured.stdout_text(), captured.stderr_text());
    if !captured.success {
        bail!(
            "benchmark step failed: {}: {}",
            invocation.display(),
            tail(&text)
        );
    }
    Ok((seconds, text))
}

/// Runs a command, its merged output read line by line as it arrives (each
/// line's arrival timed), and meters it; fails on a non-zero exit.
pub(super) fn metered(invocation: &Invocation, proxy: &ByteProxy) -> Result<Run> {
    let meter = Meter::start(proxy);
    let mut run = streamed(invocation)?;
    run.usage = meter.read(proxy);
    Ok(run)
}

/// Runs a command as [`metered`] does, unmetered (its usage left empty):
/// one of several that a [`Meter`] reads together.
pub(super) fn streamed(invocation: &Invocation) -> Result<Run> {
    let started = Instant::now();
    let mut lines = Vec::new();
    let streamed = process::stream_with(&without_input(invocation), &mut |line| {
        lines.push((started.elapsed().as_secs_f64(), line.trim_end().to_string()));
    })?;
    let seconds = started.elapsed().as_secs_f64();
    if !streamed.success {
        // The tail says what failed; the whole log is kept to say why.
        let kept = std::env::temp_dir().join(format!(
            "xtask-bench-failed-{}-{}.log",
            std::process::id(),
            started.elapsed().as_millis()
        ));
        let where_kept = match std::fs::write(&kept, &streamed.log) {
            Ok(()) => format!(" (whole log: {})", kept.display()),
            Err(_) => String::new(),
        };
        bail!("benchmark step failed{where_kept}: {}", tail(&streamed.log));
    }
    Ok(Run {
        seconds,
        log: streamed.log,
        lines,
        usage: Usage::default(),
    })
}

/// Runs commands side by side, each to completion and each [`streamed`]
/// (a meter around the call reads them together); fails naming the first
/// that failed, after all have ended.
pub(super) fn together(invocations: &[Invocation]) -> Result<Vec<Run>> {
    let runs: Vec<Result<Run>> = std::thread::scope(|scope| {
        let threads: Vec<_> = invocations
            .iter()
            .map(|invocation| scope.spawn(move || streamed(invocation)))
            .collect();
        threads
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a benchmark step's thread panicked")))
            })
            .collect()
    });
    runs.into_iter().collect()
}

/// The meters' readings at a step's start: what it cost is read against them.
pub(super) struct Meter {
    cpu: Option<f64>,
    containerd: f64,
    bytes: (u64, u64),
}

impl Meter {
    pub fn start(proxy: &ByteProxy) -> Meter {
        Meter {
            cpu: cpu_seconds_so_far(),
            containerd: daemon_seconds_so_far(&["containerd"]),
            bytes: proxy.bytes(),
        }
    }

    /// What was used since [`Meter::start`].
    pub fn read(&self, proxy: &ByteProxy) -> Usage {
        let bytes = proxy.bytes();
        Usage {
            cpu_seconds: self
                .cpu
                .zip(cpu_seconds_so_far())
                .map(|(before, after)| after - before),
            containerd_seconds: daemon_seconds_so_far(&["containerd"]) - self.containerd,
            bytes_written: bytes.0 - self.bytes.0,
            bytes_read: bytes.1 - self.bytes.1,
        }
    }
}

/// The last five lines of a command's output, on one line.
pub(super) fn tail(text: &str) -> String {
    let last: Vec<&str> = text.lines().rev().take(5).collect();
    last.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// The medians of what a set of runs cost.
pub(super) fn cost(build: &str, runs: &[Usage], seconds: &[f64]) -> Cost {
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

/// A TCP proxy in front of the registry that counts the bytes each way.
pub(super) struct ByteProxy {
    pub address: String,
    written: Arc<AtomicU64>,
    read: Arc<AtomicU64>,
}

impl ByteProxy {
    pub fn start(target: &str) -> Result<ByteProxy> {
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
                pipe(&client, &server, up.clone());
                pipe(&server, &client, down.clone());
            }
        });
        Ok(ByteProxy {
            address,
            written,
            read,
        })
    }

    /// (bytes written to the registry, bytes read from it) so far.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.written.load(Ordering::Relaxed),
            self.read.load(Ordering::Relaxed),
        )
    }
}

/// Copies one direction of a proxied connection in a thread of its own,
/// counting the bytes.
fn pipe(from: &TcpStream, to: &TcpStream, counter: Arc<AtomicU64>) {
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
    let daemons = daemon_seconds_so_far(&["dockerd", "containerd"]);
    let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    Some(buildkit + daemons + ticks(&own, [16, 17]))
}

/// CPU seconds the processes named `names` (every dockerd, containerd) used so far.
fn daemon_seconds_so_far(names: &[&str]) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut seconds = 0.0;
    for entry in entries.flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if names.contains(&comm.trim()) {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            seconds += ticks(&stat, [14, 15]);
        }
    }
    seconds
}

/// (busy, all) clock ticks of each core so far, from /proc/stat's `cpuN`
/// lines (busy: all but idle and iowait); empty where it cannot be read.
pub(super) fn core_ticks() -> Vec<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    parse_core_ticks(&stat)
}

fn parse_core_ticks(stat: &str) -> Vec<(u64, u64)> {
    stat.lines()
        .filter(|line| {
            line.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(|line| {
            let values: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            let all: u64 = values.iter().take(8).sum();
            let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
            (all.saturating_sub(idle), all)
        })
        .collect()
}

/// The share of each core that was busy between two [`core_ticks`] readings.
pub(super) fn busy_shares(before: &[(u64, u64)], after: &[(u64, u64)]) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|((busy0, all0), (busy1, all1))| {
            let all = all1.saturating_sub(*all0);
            if all == 0 {
                0.0
            } else {
                busy1.saturating_sub(*busy0) as f64 / all as f64
            }
        })
        .collect()
}

/// Seconds in two fields of a `/proc/PID/stat` line: utime + stime (fields
/// 14 and 15), or cutime + cstime (16 and 17), in clock ticks (100 a second
/// on Linux).
fn ticks(stat: &str, fields: [usize; 2]) -> f64 {
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let values: Vec<&str> = after.split_whitespace().collect();
    fields
        .iter()
        .filter_map(|f| values.get(f - 3).and_then(|v| v.parse::<f64>().ok()))
        .sum::<f64>()
        / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_runs_through_the_process_runner_and_fails_in_one_line() {
        let sh = |script: &str| Invocation::new("sh", vec!["-c".into(), script.into()]);
        let (seconds, text) = timed(&sh("echo out; echo err >&2")).unwrap();
        assert!(seconds >= 0.0);
        assert_eq!(text, "out\nerr\n");
        // Nothing on stdin: a step never waits for the terminal.
        assert_eq!(timed(&sh("cat")).unwrap().1, "");
        let err = timed(&sh("echo one; echo two; exit 3")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "benchmark step failed: sh -c 'echo one; echo two; exit 3': one | two"
        );
    }

    #[test]
    fn reads_each_cores_busy_share_from_proc_stat() {
        let before = parse_core_ticks(
            "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 5 0 5 40 0 0 0 0 0 0\nintr 1 2\n",
        );
        assert_eq!(before, [(10, 50), (10, 50)]);
        // core 0: 90 of 100 ticks busy; core 1: 10 of 100 (iowait is idle).
        let after =
            parse_core_ticks("cpu0 50 0 50 50 0 0 0 0 0 0\ncpu1 10 0 10 110 20 0 0 0 0 0\n");
        let shares = busy_shares(&before, &after);
        assert_eq!(shares, [0.9, 0.1]);
    }

    #[test]
    fn reads_cpu_ticks_from_proc_stat() {
        // pid (comm with ) inside) state ppid ... utime stime cutime cstime
        let stat = "42 (a) b) S 1 2 3 4 5 6 7 8 9 10 150 50 300 100 20";
        assert_eq!(ticks(stat, [14, 15]), 2.0);
        assert_eq!(ticks(stat, [16, 17]), 4.0);
    }
}
