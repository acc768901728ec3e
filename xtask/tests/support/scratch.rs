//! A scratch copy of the repository with one variant more: every file git
//! knows of (tracked, and untracked but not ignored: what the next commit
//! holds), plus `images/<ADDED>/Dockerfile`, a copy of an existing variant's
//! with its name changed. That directory is all a new variant is; the tests
//! using the copy check that everything else follows (the variants command,
//! the plans, the workflow matrices, the golden renders).

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use xtask::cli::{Cli, Command as XtaskCommand};

/// The variant the copy adds: a dash and a digit in its name, and sorted
/// after the others (the shared compile stage is the first variant's).
pub const ADDED: &str = "wolfi-base2";

pub struct Scratch {
    pub root: PathBuf,
    /// The variant added.
    pub added: String,
    /// The variant whose Dockerfile it copies: the last that is not the
    /// release's default variant (which also gets the bare tags).
    pub source: String,
}

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        let from = super::project_root();
        let root =
            std::env::temp_dir().join(format!("xtask-scratch-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let listed = Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(&from)
            .output()
            .expect("git ls-files (git must be installed)");
        assert!(listed.status.success(), "git ls-files: {listed:?}");
        let mut copied = 0;
        for path in listed.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
            let path = Path::new(std::str::from_utf8(path).expect("UTF-8 paths"));
            let source = from.join(path);
            // Tracked but deleted in the working tree: not in the next commit.
            if !source.is_file() {
                continue;
            }
            let target = root.join(path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&source, &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", source.display()));
            copied += 1;
        }
        assert!(
            copied > 20,
            "only {copied} files copied from {}",
            from.display()
        );

        let variants = xtask::project::discover_variants(&root).unwrap();
        assert!(
            !variants.contains(&ADDED.to_string()),
            "{ADDED} exists already"
        );
        let default = default_variant();
        let source = variants
            .iter()
            .rev()
            .find(|v| **v != default)
            .expect("a variant other than the default one")
            .clone();
        let text = xtask::project::read_dockerfile(&root, &source).unwrap();
        let named = format!("ARG VARIANT={source}\n");
        assert!(
            text.contains(&named),
            "images/{source}/Dockerfile: no `{}`",
            named.trim()
        );
        let dir = root.join("images").join(ADDED);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("Dockerfile"),
            text.replace(&named, &format!("ARG VARIANT={ADDED}\n")),
        )
        .unwrap();
        let scratch = Scratch {
            root,
            added: ADDED.to_string(),
            source,
        };
        assert_ne!(
            scratch.variants()[0],
            ADDED,
            "the added variant must not sort first"
        );
        scratch
    }

    /// The variants of the copy, as the tool discovers them.
    pub fn variants(&self) -> Vec<String> {
        xtask::project::discover_variants(&self.root).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The variant `release-image` gives the bare tags by default.
pub fn default_variant() -> String {
    let cli = Cli::try_parse_from(["xtask", "release-image"]).unwrap();
    let XtaskCommand::ReleaseImage(args) = cli.command else {
        unreachable!()
    };
    args.tags.default_variant
}
