//! Engines held to cores (the two-runner scenario): each engine's dockerd,
//! found by the socket it listens on, is pinned with `taskset -a -p -c CORE
//! PID` (every thread of it). BuildKit is embedded in dockerd and runs each
//! RUN step under runc, a child of dockerd, so the steps inherit the core; a
//! watch checks, while the builds run, that every process under each
//! engine stays on it. What runs outside the engines is held to no core:
//! containerd (which both engines share: it stores and unpacks layers and
//! compresses the ones exported), the registry, the tool with its buildx
//! client, skopeo and cosign.
//!
//! The engines' own affinity is written to a state file before they are
//! pinned and restored afterwards, when the scenario fails or panics too
//! ([`Pinned`]'s drop); a run killed before it could restore leaves that
//! file, and the next run restores from it first ([`restore_interrupted`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::client::process::{self, Invocation};
use crate::model::builder::{Selection, Via};
use crate::model::files;

/// An engine's daemon.
#[derive(Debug, Clone)]
pub(super) struct Engine {
    /// What the report calls it: `main engine`, or its builder's name.
    pub label: String,
    pub pid: u32,
}

/// The dockerd of the engine `selection` builds on (`None`: the current
/// docker context's), found by the unix socket it listens on.
pub(super) fn engine(selection: Option<&Selection>, label: &str) -> Result<Engine> {
    let host = match selection.map(|s| &s.via) {
        Some(Via::Builder) => bail!(
            "the two-runner scenario holds each engine's dockerd to a core: builder {label} is not a docker-driver builder of an engine on this machine"
        ),
        Some(Via::Host(host)) => host.clone(),
        Some(Via::Context(context)) => context_host(Some(context))?,
        None => context_host(None)?,
    };
    let Some(socket) = host.strip_prefix("unix://") else {
        bail!("the two-runner scenario holds each engine's dockerd to a core: {label}'s engine is at {host}, not on a unix socket of this machine");
    };
    let pid = listening_dockerd(Path::new(socket))?;
    Ok(Engine {
        label: label.to_string(),
        pid,
    })
}

/// The engine address of a docker context (`None`: the current one,
/// DOCKER_HOST included).
fn context_host(context: Option<&str>) -> Result<String> {
    let mut args = vec!["context".to_string(), "inspect".to_string()];
    args.extend(context.map(String::from));
    args.extend(["--format", "{{.Endpoints.docker.Host}}"].map(String::from));
    let host = process::read(&Invocation::new("docker", args))?;
    Ok(host.trim().to_string())
}

/// The pid of the dockerd listening on `socket`: the inode of the listening
/// socket bound to that path (/proc/net/unix), held open by a dockerd.
fn listening_dockerd(socket: &Path) -> Result<u32> {
    let table = std::fs::read_to_string("/proc/net/unix")
        .context("cannot read /proc/net/unix to find the engine's dockerd")?;
    let wanted = std::fs::canonicalize(socket).unwrap_or_else(|_| socket.to_path_buf());
    let inodes = listening_inodes(&table, |path| {
        std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path)) == wanted
    });
    for pid in pids() {
        if comm(pid) != "dockerd" {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| {
                let target = target.to_string_lossy();
                target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                    .is_some_and(|inode| inodes.contains(inode))
            })
        });
        if holds {
            return Ok(pid);
        }
    }
    bail!(
        "no dockerd of this machine listens on {} (run as root to see the engines' sockets): the two-runner scenario holds each engine to a core",
        socket.display()
    )
}

/// The inodes of the listening unix sockets (flag `__SO_ACCEPTCON`) whose
/// path `matches`, from /proc/net/unix's table.
fn listening_inodes(table: &str, matches: impl Fn(&str) -> bool) -> BTreeSet<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = u32::from_str_radix(fields.get(3)?, 16).ok()?;
            let path = fields.get(7)?;
            (flags & 0x0001_0000 != 0 && matches(path)).then(|| fields[6].to_string())
        })
        .collect()
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_default()
}

/// The cores a task may run on (`Cpus_allowed_list` of its status file).
fn cpus_allowed(status_path: &str) -> Option<String> {
    let status = std::fs::read_to_string(status_path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|l| l.trim().to_string())
}

/// The cores of each thread of process `pid`.
fn thread_cpus(pid: u32) -> Vec<(u32, String)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let tid = t.file_name().to_str()?.parse().ok()?;
            Some((
                tid,
                cpus_allowed(&format!("/proc/{pid}/task/{tid}/status"))?,
            ))
        })
        .collect()
}

/// `taskset -a -p -c CPUS PID`: every thread of `pid` to `cpus`.
fn taskset(pid: u32, cpus: &str, label: &str) -> Result<()> {
    let args = ["-a", "-p", "-c", cpus, &pid.to_string()].map(String::from);
    let out = process::capture(&Invocation::new("taskset", args.to_vec()))
        .with_context(|| format!("cannot run taskset to hold {label} (dockerd {pid}) to cores {cpus}: install util-linux"))?;
    if !out.success {
        bail!(
            "cannot hold {label} (dockerd {pid}) to cores {cpus}: {} (run the benchmark as root)",
            out.last_words()
        );
    }
    Ok(())
}

/// An engine held to a core, and where it was before.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Held {
    label: String,
    pid: u32,
    core: usize,
    /// Its affinity before (`Cpus_allowed_list`), restored afterwards.
    before: String,
}

/// Where the engines' affinity before the scenario is kept until restored:
/// the temporary directory, as the engines are the machine's, not a checkout's.
fn state_file() -> PathBuf {
    std::env::temp_dir().join("xtask-bench-pinned-engines.json")
}

/// Engines held to their cores until [`Pinned::restore`] or the drop.
pub(super) struct Pinned {
    held: Vec<Held>,
    restored: bool,
}

impl Pinned {
    /// Holds each engine to its core, every thread of its dockerd; the
    /// affinity each had is kept in the state file first.
    pub fn hold(engines: &[(&Engine, usize)]) -> Result<Pinned> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Some((engine, core)) = engines.iter().find(|(_, core)| *core >= cores) {
            bail!("the two-runner scenario holds {} to core {core}, which this machine ({cores} cores) does not have", engine.label);
        }
        let mut held = Vec::new();
        for (engine, core) in engines {
            let before =
                cpus_allowed(&format!("/proc/{}/status", engine.pid)).with_context(|| {
                    format!(
                        "cannot read the cores of {} (dockerd {})",
                        engine.label, engine.pid
                    )
                })?;
            held.push(Held {
                label: engine.label.clone(),
                pid: engine.pid,
                core: *core,
                before,
            });
        }
        files::write_atomically(&state_file(), serde_json::to_string_pretty(&held)?)?;
        // From here the drop restores them, whatever fails below.
        let pinned = Pinned {
            held,
            restored: false,
        };
        for h in &pinned.held {
            taskset(h.pid, &h.core.to_string(), &h.label)?;
            let stray = thread_cpus(h.pid)
                .into_iter()
                .find(|(_, cpus)| *cpus != h.core.to_string());
            if let Some((tid, cpus)) = stray {
                bail!(
                    "{} (dockerd {}) is not held to core {}: its thread {tid} may run on {cpus}",
                    h.label,
                    h.pid,
                    h.core
                );
            }
            eprintln!(
                "bench: {} (dockerd {}) held to core {} (it had {})",
                h.label, h.pid, h.core, h.before
            );
        }
        Ok(pinned)
    }

    /// What a watch compares each engine's processes against.
    pub fn cores(&self) -> Vec<(u32, String, String)> {
        self.held
            .iter()
            .map(|h| (h.pid, h.core.to_string(), h.label.clone()))
            .collect()
    }

    /// Gives each engine back the cores it had; fails naming those it could not.
    pub fn restore(mut self) -> Result<()> {
        self.restored = true;
        restore_all(&self.held)
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if !self.restored {
            if let Err(err) = restore_all(&self.held) {
                eprintln!("warning: {err:#}");
            }
        }
    }
}

/// Restores every held engine that still runs (an engine restarted since
/// has a new dockerd, on every core); removes the state file once all are.
fn restore_all(held: &[Held]) -> Result<()> {
    let mut failed = Vec::new();
    for h in held {
        if comm(h.pid) != "dockerd" {
            continue;
        }
        match taskset(h.pid, &h.before, &h.label) {
            Ok(()) => eprintln!(
                "bench: {} (dockerd {}) back on cores {}",
                h.label, h.pid, h.before
            ),
            Err(err) => failed.push(format!("{err:#}")),
        }
    }
    if !failed.is_empty() {
        bail!(
            "the engines could not all be given their cores back ({}); the state is in {}: `taskset -a -p -c CORES PID` by hand",
            failed.join("; "),
            state_file().display()
        );
    }
    files::remove_file_if_exists(&state_file())
}

/// Restores engines a run that was killed left held to cores (its state
/// file); says what it did, if anything.
pub(super) fn restore_interrupted() -> Result<Option<String>> {
    let path = state_file();
    if !path.exists() {
        return Ok(None);
    }
    let held: Vec<Held> =
        serde_json::from_str(&files::read_to_string(&path)?).with_context(|| {
            format!(
                "cannot read {}: remove it once the engines run on every core",
                path.display()
            )
        })?;
    restore_all(&held)?;
    let engines: Vec<String> = held
        .iter()
        .map(|h| format!("{} (dockerd {}) to {}", h.label, h.pid, h.before))
        .collect();
    Ok(Some(format!(
        "an earlier run ended with engines held to cores: restored {} first",
        engines.join(", ")
    )))
}

/// What a watch saw: the processes under the engines and whether each
/// stayed on its engine's core.
#[derive(Debug, Clone, Default)]
pub(super) struct Watched {
    pub samples: usize,
    /// Every (engine label, pid) seen under an engine, dockerd included.
    pub processes: BTreeSet<(String, u32)>,
    /// Processes seen on other cores than their engine's: `COMM PID (under LABEL) on CPUS`.
    pub strays: Vec<String>,
}

/// Samples, twice a second until finished, every process under each engine
/// (its dockerd and all descendants, every thread) and the cores it may run on.
pub(super) struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Watched>>,
}

/// Watches the engines `cores` names: (dockerd pid, its core list, label).
pub(super) fn watch(cores: Vec<(u32, String, String)>) -> Watch {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut watched = Watched::default();
        loop {
            sample(&cores, &mut watched);
            if stopped.load(Ordering::Relaxed) {
                return watched;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    Watch {
        stop,
        thread: Some(thread),
    }
}

impl Watch {
    /// Stops watching; fails if a process under an engine left its core.
    pub fn finish(mut self) -> Result<Watched> {
        self.stop.store(true, Ordering::Relaxed);
        let watched = self
            .thread
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        if !watched.strays.is_empty() {
            bail!(
                "the engines were not held to their cores: {} (of {} processes seen under them)",
                watched.strays.join(", "),
                watched.processes.len()
            );
        }
        Ok(watched)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One look at every process under each engine.
fn sample(cores: &[(u32, String, String)], watched: &mut Watched) {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for pid in pids() {
        if let Some(parent) = parent_of(pid) {
            children.entry(parent).or_default().push(pid);
        }
    }
    for (engine, core, label) in cores {
        let mut pending = vec![*engine];
        while let Some(pid) = pending.pop() {
            pending.extend(children.get(&pid).into_iter().flatten());
            let threads = thread_cpus(pid);
            if threads.is_empty() {
                continue; // it ended
            }
            watched.processes.insert((label.clone(), pid));
            if let Some((_, cpus)) = threads.iter().find(|(_, cpus)| cpus != core) {
                if watched.strays.len() < 5 {
                    watched
                        .strays
                        .push(format!("{} {pid} (under {label}) on {cpus}", comm(pid)));
                }
            }
        }
    }
    watched.samples += 1;
}

/// The parent of a process (`/proc/PID/stat`'s 4th field).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_listening_socket_of_a_path_not_its_connections() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
0000000087288326: 00000002 00000000 00010000 0001 01  8222 /var/run/docker.sock\n\
000000002c8f2840: 00000003 00000000 00000000 0001 03 1683335\n\
00000000e0bb2a92: 00000003 00000000 00000000 0001 03 1683336 /var/run/docker.sock\n\
0000000090b94803: 00000002 00000000 00010000 0001 01 808152 /var/lib/xtask-stack/runner2/docker.sock\n";
        let main = listening_inodes(table, |p| p == "/var/run/docker.sock");
        assert_eq!(main.into_iter().collect::<Vec<_>>(), ["8222"]);
        let runner2 = listening_inodes(table, |p| p.ends_with("runner2/docker.sock"));
        assert_eq!(runner2.into_iter().collect::<Vec<_>>(), ["808152"]);
        assert!(listening_inodes(table, |p| p == "/elsewhere.sock").is_empty());
    }

    #[test]
    fn reads_a_parent_and_its_own_cores() {
        let me = std::process::id();
        assert_eq!(parent_of(me), Some(std::os::unix::process::parent_id()));
        let threads = thread_cpus(me);
        assert!(!threads.is_empty());
        assert!(threads.iter().all(|(_, cpus)| !cpus.is_empty()));
    }

    #[test]
    fn a_watch_of_no_engine_sees_nothing_and_passes() {
        let watched = watch(Vec::new()).finish().unwrap();
        assert!(watched.samples >= 1);
        assert!(watched.processes.is_empty());
    }
}
