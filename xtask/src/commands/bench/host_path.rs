//! Scenario 3b: the same one-line change through the host-built path, as
//! ci-build.yml runs it (`ci-image --host-build`): cargo on the runner with
//! its target directory restored the way Swatinem/rust-cache restores it
//! (the dependencies, not the workspace's own crates; unpacked from a zstd
//! tarball), then the images from that binary, main's registry cache only.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};

use crate::client::process::{self, Invocation};
use crate::model::files;
use crate::model::names::Platform;
use crate::ops::stand_ins;
use crate::preflight;

use super::harness::Bench;
use super::meter::{tail, timed, Run};
use super::{earlier, Results};

pub(super) fn measure(bench: &Bench, results: &mut Results) -> Result<()> {
    eprintln!("bench: 3b. fresh runner: the host-built path (ci-image --host-build)");
    let compile_stage = earlier(results.figures.fresh_runner, "the fresh-runner build", "fresh_runner")?;
    let host = HostPath::prepare(bench)?;
    let host_name = format!("{}-host", bench.name);
    // main's images from the same path (what ci-cache.yml runs), writing
    // main's registry cache.
    bench.cold()?;
    host.build_images(bench, &host_name, &bench.main)?;
    let (mut host_total, mut host_cargo, mut host_compiled) = (Vec::new(), Vec::new(), 0usize);
    for n in 0..bench.repeat {
        bench.one_line_change(50 + n)?;
        host.restore(bench)?;
        bench.cold()?;
        let context = bench.context(
            &format!("pr-host-{n}"),
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
        host_total.push(host.restore_seconds.get() + image.seconds);
    }
    let host_median = results.scenario(
        "3b fresh runner, host-built path: target dir unpacked + ci-image --host-build",
        host_total,
    );
    results.scenario(
        "3c of which the host cargo build (until cargo's Finished)",
        host_cargo,
    );
    results.ratio(
        "fresh runner: host-built path / compile stage",
        host_median / compile_stage,
        "reported (< 1: the host path is faster)",
        true,
    );
    results.note(format!(
        "3b: dependency crates the host cargo build compiled (most of any run): {host_compiled}; unpacking its target directory ({:.0} MB compressed, as rust-cache saves it; a runner downloads it first, here it is local) took {:.1} s, counted in 3b",
        host.saved_bytes() as f64 / 1e6,
        host.restore_seconds.get()
    ));
    Ok(())
}

/// The dependency crates a host cargo build compiled, from its output, the
/// service itself left out.
fn host_dependencies_compiled(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Compiling "))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|name| *name != "beacon")
        .map(String::from)
        .collect()
}

/// The host-built path of a pull request: the service compiled by cargo on
/// the runner (the `ci` profile, as the compile stage builds CI images),
/// with a target directory that holds what rust-cache restores.
struct HostPath {
    target: PathBuf,
    saved: PathBuf,
    platform: Platform,
    restore_seconds: Cell<f64>,
}

impl HostPath {
    /// A target directory as main's rust-cache would hold it: seeded from
    /// the stand-ins' host build (the same profile and flags) when there is
    /// one, built once, then without the workspace's own crates; saved as
    /// rust-cache saves it (actions/cache: a zstd tarball), so the restore
    /// pays for unpacking it, as on a runner.
    fn prepare(bench: &Bench) -> Result<HostPath> {
        let host = HostPath {
            target: bench.work.join("host-target"),
            saved: bench.work.join("host-target.tar"),
            platform: Platform::native(),
            restore_seconds: Cell::new(0.0),
        };
        let _ = std::fs::remove_dir_all(&host.target);
        let _ = std::fs::remove_file(&host.saved);
        let stand_ins = bench.root.join("target/stand-ins/cargo");
        if stand_ins.is_dir() {
            let lock = bench.root.join("target/xtask/stand-ins.lock");
            let _lock = files::lock(&lock, "the stand-ins")?;
            let copy = vec!["-a".into(), text(&stand_ins), text(&host.target)];
            timed(&Invocation::new("cp", copy))?;
        }
        host.build(bench)?;
        host.clean_workspace_crates()?;
        let (saved, work) = (text(&host.saved), text(&bench.work));
        let save = [Self::compression(), "-cf", &saved, "-C", &work, "host-target"];
        timed(&Invocation::new("tar", save.map(String::from).to_vec()))?;
        Ok(host)
    }

    /// What rust-cache keeps: the dependencies, not the workspace's crates.
    fn clean_workspace_crates(&self) -> Result<()> {
        let triple_dirs = std::fs::read_dir(&self.target)?
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
                            remove_all(&entry.path())?;
                        }
                    }
                }
                let _ = std::fs::remove_file(profile_dir.join("beacon"));
            }
        }
        Ok(())
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

    /// Puts back the target directory from its archive (as a cache restore
    /// would), timing it.
    fn restore(&self, bench: &Bench) -> Result<()> {
        let started = Instant::now();
        let _ = std::fs::remove_dir_all(&self.target);
        let (saved, work) = (text(&self.saved), text(&bench.work));
        let unpack = [Self::compression(), "-xf", &saved, "-C", &work];
        timed(&Invocation::new("tar", unpack.map(String::from).to_vec()))?;
        self.restore_seconds.set(started.elapsed().as_secs_f64());
        Ok(())
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
        let invocation = bench
            .xtask(context, args)
            .with_env("CARGO_TARGET_DIR", self.target.display().to_string());
        bench.metered(&invocation)
    }
}

/// A path as a command's argument.
fn text(path: &Path) -> String {
    path.display().to_string()
}

/// Removes a file or a directory with everything in it.
fn remove_all(path: &Path) -> Result<()> {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    removed.with_context(|| format!("cannot remove {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_host_builds_dependencies_not_the_service() {
        assert_eq!(
            host_dependencies_compiled(
                "   Compiling tokio v1.0.0\n   Compiling beacon v0.1.0 (/x)\n    Finished `ci` profile\n"
            ),
            ["tokio"]
        );
    }
}
