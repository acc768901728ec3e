//! The one process runner. Every program the xtask starts (buildx, skopeo,
//! cosign, git, cargo, the linters, a scanner) runs from an [`Invocation`]
//! (a command as data, what `--dry-run` prints) through one of three calls:
//!
//! - [`capture`]: quiet, stdout and stderr kept apart; a non-zero exit is
//!   the caller's to read (a registry lookup that finds nothing is not an
//!   error), only a program that cannot start is an error;
//! - [`run`]: says `+ COMMAND` on stderr and fails in one line naming the
//!   program and its last words; a registry's transient server error is
//!   tried twice more;
//! - [`stream`]: a long-lived command (a build, a test lane) whose merged
//!   output is echoed line by line as it comes and kept for diagnosis.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

pub use crate::model::command::Invocation;

/// What a finished command said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Captured {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The last non-empty line it printed (stderr first): what a one-line
    /// error quotes.
    pub fn last_words(&self) -> String {
        last_line(&self.stderr_text())
            .or_else(|| last_line(&self.stdout_text()))
            .unwrap_or_else(|| "no output".to_string())
    }
}

fn last_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(String::from)
}

/// Finds a program on PATH without running it.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

pub fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// The expression duct runs for an invocation: its program, arguments,
/// stdin, directory and environment; never a shell.
fn expression(invocation: &Invocation) -> duct::Expression {
    let mut expression = duct::cmd(&invocation.program, &invocation.args).unchecked();
    if let Some(stdin) = &invocation.stdin {
        expression = expression.stdin_bytes(stdin.as_bytes().to_vec());
    }
    if let Some(dir) = &invocation.dir {
        expression = expression.dir(dir);
    }
    for (key, value) in &invocation.env {
        expression = expression.env(key, value);
    }
    for key in &invocation.env_remove {
        expression = expression.env_remove(key);
    }
    expression
}

fn cannot_start(invocation: &Invocation) -> String {
    format!(
        "cannot run {}: is it installed and on PATH?",
        invocation.program
    )
}

/// Runs quietly and keeps what it printed; only a program that cannot be
/// started is an error.
pub fn capture(invocation: &Invocation) -> Result<Captured> {
    let output = expression(invocation)
        .stdout_capture()
        .stderr_capture()
        .run()
        .with_context(|| cannot_start(invocation))?;
    Ok(Captured {
        success: output.status.success(),
        stdout: output.stdout,
        stderr: output.stderr,
    })
}

/// A registry's transient server error (distribution 2.8 answers 500 to a
/// tag read while the same tag is being written), worth another try.
fn transient(captured: &Captured) -> bool {
    let text = format!("{}{}", captured.stdout_text(), captured.stderr_text());
    [
        "500 Internal Server Error",
        "502 Bad Gateway",
        "503 Service Unavailable",
    ]
    .iter()
    .any(|status| text.contains(status))
}

/// Runs, saying `+ COMMAND` on stderr first; fails in one line naming the
/// program and its last words. A transient registry error gets two more
/// tries; anything else fails at once. Returns what it printed.
pub fn run(invocation: &Invocation) -> Result<Captured> {
    const ATTEMPTS: u32 = 3;
    let mut attempt = 1;
    loop {
        eprintln!("+ {}", invocation.display());
        let captured = capture(invocation)?;
        if captured.success {
            return Ok(captured);
        }
        if !transient(&captured) || attempt == ATTEMPTS {
            bail!("{} failed: {}", invocation.program, captured.last_words());
        }
        std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
        attempt += 1;
    }
}

/// Runs quietly and returns its stdout; fails in one line like [`run`].
pub fn read(invocation: &Invocation) -> Result<String> {
    let captured = capture(invocation)?;
    if !captured.success {
        bail!("{} failed: {}", invocation.program, captured.last_words());
    }
    Ok(captured.stdout_text())
}

/// What a streamed command did: whether it succeeded, and its merged output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streamed {
    pub success: bool,
    pub log: String,
}

/// Runs a long-lived command, echoing its merged stdout and stderr to our
/// stderr line by line as it comes (each line through `echo`), and keeping
/// it for diagnosis.
pub fn stream_with(invocation: &Invocation, echo: &mut dyn FnMut(&str)) -> Result<Streamed> {
    let reader = expression(invocation)
        .stderr_to_stdout()
        .reader()
        .with_context(|| cannot_start(invocation))?;
    let mut log = String::new();
    let mut lines = BufReader::new(&reader);
    let mut line = String::new();
    while lines.read_line(&mut line)? > 0 {
        echo(&line);
        log.push_str(&line);
        line.clear();
    }
    let success = reader
        .try_wait()?
        .is_some_and(|output| output.status.success());
    Ok(Streamed { success, log })
}

/// Starts a housekeeping command and does not wait for it: its output goes
/// nowhere and its exit is not read (the process outlives this one if it
/// must). For work whose failure costs nothing and whose wait would be the
/// user's: removing an untagged image takes the engine 0.5-0.9 s with a few
/// hundred images in its store, more than a no-op build. Only a program that
/// cannot be started is an error.
pub fn start_in_background(invocation: &Invocation) -> Result<()> {
    // A duct handle dropped unwaited neither kills nor waits for its child.
    expression(invocation)
        .stdin_null()
        .stdout_null()
        .stderr_null()
        .start()
        .map(drop)
        .with_context(|| cannot_start(invocation))
}

/// [`stream_with`], echoing to stderr as it is.
pub fn stream(invocation: &Invocation) -> Result<Streamed> {
    stream_with(invocation, &mut |line| eprint!("{line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Invocation {
        Invocation::new("sh", vec!["-c".into(), script.into()])
    }

    #[test]
    fn capture_keeps_both_streams_and_the_status() {
        let captured = capture(&sh("echo out; echo err >&2; exit 3")).unwrap();
        assert!(!captured.success);
        assert_eq!(captured.stdout_text(), "out\n");
        assert_eq!(captured.last_words(), "err");
    }

    #[test]
    fn run_fails_in_one_line_and_read_returns_stdout() {
        let err = run(&sh("echo first >&2; echo 'the reason' >&2; exit 1")).unwrap_err();
        assert_eq!(err.to_string(), "sh failed: the reason");
        assert_eq!(read(&sh("printf hello")).unwrap(), "hello");
        let missing = capture(&Invocation::new("no-such-program-xtask", vec![])).unwrap_err();
        assert!(missing
            .to_string()
            .contains("cannot run no-such-program-xtask"));
    }

    #[test]
    fn stdin_dir_and_env_reach_the_program() {
        let mut invocation = sh("cat; pwd; echo \"$XTASK_PROCESS_TEST\"");
        invocation.stdin = Some("in\n".into());
        invocation.dir = Some(std::path::PathBuf::from("/"));
        invocation.env = vec![("XTASK_PROCESS_TEST".into(), "set".into())];
        assert_eq!(read(&invocation).unwrap(), "in\n/\nset\n");
    }

    #[test]
    fn stream_echoes_every_line_and_keeps_the_log() {
        let mut seen = Vec::new();
        let streamed = stream_with(&sh("echo a; echo b >&2; exit 2"), &mut |line| {
            seen.push(line.to_string())
        })
        .unwrap();
        assert!(!streamed.success);
        assert_eq!(streamed.log, "a\nb\n");
        assert_eq!(seen, ["a\n", "b\n"]);
    }

    #[test]
    fn a_background_command_runs_on_after_the_call_returns() {
        let dir = std::env::temp_dir().join(format!("xtask-background-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let done = dir.join("done");
        let started = std::time::Instant::now();
        start_in_background(&sh(&format!("sleep 0.3; echo ok > {}", done.display()))).unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "it did not wait"
        );
        assert!(!done.exists());
        while !done.exists() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(std::fs::read_to_string(&done).unwrap(), "ok\n");
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = Invocation::new("no-such-program-xtask", vec![]);
        let err = start_in_background(&missing).unwrap_err().to_string();
        assert!(err.contains("cannot run no-such-program-xtask"), "{err}");
    }
}
