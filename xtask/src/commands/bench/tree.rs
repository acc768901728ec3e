//! The scratch checkout the benchmark builds: a detached git worktree of
//! HEAD under `target/bench/tree`, so its one-line changes never touch your
//! tree (and uncommitted changes are not measured). It is removed when the
//! benchmark ends, however it ends.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::client::process::{self, Invocation};

pub(super) struct Tree {
    /// The repository the worktree belongs to.
    root: PathBuf,
    path: PathBuf,
}

impl Tree {
    /// A fresh worktree of HEAD at `path` (one an earlier run left is
    /// removed first).
    pub fn check_out(root: &Path, path: PathBuf) -> Result<Tree> {
        let tree = Tree {
            root: root.to_path_buf(),
            path,
        };
        tree.remove();
        let path = tree.path.display().to_string();
        let added = process::capture(
            &tree.git(&["worktree", "add", "--detach", "--force", &path, "HEAD"]),
        )?;
        if !added.success {
            bail!(
                "cannot check out HEAD at {} for the benchmark: {}",
                tree.path.display(),
                added.last_words()
            );
        }
        Ok(tree)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `git ARGS` in the repository.
    fn git(&self, args: &[&str]) -> Invocation {
        Invocation::new("git", args.iter().map(|a| a.to_string()).collect()).in_dir(&self.root)
    }

    /// `git worktree remove --force`, quietly: there may be none.
    fn remove_worktree(&self) {
        let path = self.path.display().to_string();
        let _ = process::capture(&self.git(&["worktree", "remove", "--force", &path]));
    }

    /// Removes the worktree and whatever is left at its path.
    fn remove(&self) {
        self.remove_worktree();
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        self.remove_worktree();
    }
}
