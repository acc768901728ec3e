//! The git client: the commands the xtask asks git, run through the one
//! process runner in a directory of the caller's choosing.

use std::path::Path;

use anyhow::Result;

use crate::client::process::{self, Invocation};

/// `git ARGS` in `dir`.
pub fn command(dir: &Path, args: &[&str]) -> Invocation {
    Invocation::new("git", args.iter().map(|a| a.to_string()).collect()).in_dir(dir)
}

/// Its stdout, trimmed; an error in one line if git failed.
pub fn read(dir: &Path, args: &[&str]) -> Result<String> {
    Ok(process::read(&command(dir, args))?.trim().to_string())
}

/// Its stdout, trimmed, whatever its exit status (`git config --get` of
/// an unset key prints nothing and fails): only a git that cannot start is
/// an error.
pub fn answer(dir: &Path, args: &[&str]) -> Result<String> {
    Ok(process::capture(&command(dir, args))?
        .stdout_text()
        .trim()
        .to_string())
}
