//! File operations whose errors name the path and what to do, and the two
//! ways runs in one checkout share files safely: writes that are whole or
//! absent (a temporary file renamed over the target), and a lock for
//! preparations that several runs may start at once (stand-ins, host
//! binaries).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

const HINT: &str = "check that the path exists, the disk has room and you may write there";

/// A name no other run in this checkout uses at the same time: the process
/// id and the clock (two runs of one process are never concurrent).
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{nanos:09}", std::process::id())
}

/// Where a run keeps its own files, under the project root.
pub const RUNS_DIR: &str = "target/xtask/runs";

/// A run's own directory, `target/xtask/runs/<command>-<unique suffix>`
/// under `root` (created by whoever writes into it), removed with
/// everything in it when dropped.
#[derive(Debug)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(root: &Path, command: &str) -> RunDir {
        RunDir {
            path: root
                .join(RUNS_DIR)
                .join(format!("{command}-{}", unique_suffix())),
        }
    }

    /// The directory a dry run names for `command` (nothing is created).
    pub fn dry_run(command: &str) -> PathBuf {
        Path::new(RUNS_DIR).join(format!("{command}-<run>"))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub fn create_dir_all(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path)
        .with_context(|| format!("cannot create the directory {}: {HINT}", path.display()))
}

pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}: check that it exists and you may read it",
            path.display()
        )
    })
}

pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, contents)
        .with_context(|| format!("cannot write {}: {HINT}", path.display()))
}

/// Removes a file; one that is not there is already removed.
pub fn remove_file_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("cannot remove {}: {HINT}", path.display()))
        }
        _ => Ok(()),
    }
}

pub fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .with_context(|| format!("cannot copy {} to {}: {HINT}", from.display(), to.display()))
}

/// A temporary path beside `path`, unique to this run.
fn beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp-{}", unique_suffix()))
}

/// Writes a file whole or not at all, so a concurrent reader never sees half of it.
pub fn write_atomically(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    if let Some(dir) = path.parent() {
        create_dir_all(dir)?;
    }
    let temporary = beside(path);
    write(&temporary, contents)?;
    rename(&temporary, path)
}

/// Copies a file whole or not at all (a build reading the target meanwhile
/// sees the old file or the new one, never a torn one).
pub fn copy_atomically(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        create_dir_all(dir)?;
    }
    let temporary = beside(to);
    copy(from, &temporary)?;
    rename(&temporary, to)
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).with_context(|| {
        let _ = std::fs::remove_file(from);
        format!("cannot replace {}: {HINT}", to.display())
    })
}

/// An exclusive lock on a file, held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Takes the lock `path` (created if needed), waiting for another run that
/// holds it; says so when it has to wait.
pub fn lock(path: &Path, what: &str) -> Result<Lock> {
    if let Some(dir) = path.parent() {
        create_dir_all(dir)?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open the lock file {}: {HINT}", path.display()))?;
    if file.try_lock().is_err() {
        eprintln!(
            "waiting for another run in this checkout to finish {what} ({})",
            path.display()
        );
        file.lock()
            .with_context(|| format!("cannot lock {}: {HINT}", path.display()))?;
    }
    Ok(Lock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_leave_no_temporary_and_errors_name_the_path() {
        let dir = std::env::temp_dir().join(format!("xtask-files-{}", unique_suffix()));
        let target = dir.join("a/b.json");
        write_atomically(&target, "one").unwrap();
        write_atomically(&target, "two").unwrap();
        assert_eq!(read_to_string(&target).unwrap(), "two");
        let names: Vec<String> = std::fs::read_dir(dir.join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["b.json"]);
        let missing = dir.join("nope/x");
        let err = format!("{:#}", read_to_string(&missing).unwrap_err());
        assert!(
            err.contains(&missing.display().to_string()) && err.contains("check"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_lock_is_exclusive_until_dropped() {
        let dir = std::env::temp_dir().join(format!("xtask-lock-{}", unique_suffix()));
        let path = dir.join("x.lock");
        let held = lock(&path, "a test").unwrap();
        let other = File::options().write(true).open(&path).unwrap();
        assert!(other.try_lock().is_err(), "held by the first");
        drop(held);
        assert!(other.try_lock().is_ok(), "free once dropped");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
