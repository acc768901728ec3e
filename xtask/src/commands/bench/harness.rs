//! The bench every scenario runs on: the xtask binary on the scratch
//! checkout, run as CI and the release workflow run it (`ci-image`,
//! `release-image`), pushing through the counting proxy; a cold engine,
//! one-line changes to the service, and the contexts of `main` and of a
//! pull request.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::client::docker;
use crate::client::process::Invocation;
use crate::context::BuildContext;
use crate::model::builder::Selection;
use crate::model::{build_log, files};

use super::meter::{self, ByteProxy, Run};
use super::{BenchOptions, BuildInputs, InputImages};

pub(super) struct Bench {
    pub exe: PathBuf,
    /// The project root (where the stand-ins' host build lives).
    pub root: PathBuf,
    /// The scratch checkout every build runs on.
    pub tree: PathBuf,
    /// `target/bench`: contexts, logs, the key, the host path's target dir.
    pub work: PathBuf,
    /// The registry the builds push to and cache in: the counting proxy.
    pub registry: String,
    pub proxy: ByteProxy,
    pub name: String,
    pub variants: Vec<String>,
    pub build_args: Vec<String>,
    pub sbom_generator: String,
    pub key: PathBuf,
    pub repeat: usize,
    pub smoke: bool,
    /// `--builder NAME` of every build, and how the bench's own engine commands select it.
    pub builder: Option<String>,
    pub selection: Option<Selection>,
    /// The builder of the second runner (`--second-builder`): another engine.
    pub second_builder: String,
    /// The images every build reads: the builder image, the stand-in bases, the SBOM generator.
    pub images: InputImages,
    /// The scratch checkout's context, as a clean CI checkout of main.
    pub base: BuildContext,
    /// Context files: a pull request's build, and main's.
    pub pr: PathBuf,
    pub main: PathBuf,
}

impl Bench {
    pub fn new(
        options: &BenchOptions,
        selection: Option<Selection>,
        root: PathBuf,
        work: PathBuf,
        tree: &Path,
        inputs: BuildInputs,
        key: PathBuf,
    ) -> Result<Bench> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let all_variants = crate::project::discover_variants(tree)?;
        let variants = if options.smoke {
            all_variants.iter().take(1).cloned().collect()
        } else {
            all_variants
        };
        let proxy = ByteProxy::start(options.registry.as_str())?;
        let base = crate::context::gather(tree)?;
        let pr = write_context(&work, "pr", &base, Some("refs/pull/1/merge"))?;
        let main = write_context(&work, "main", &base, Some("refs/heads/main"))?;
        Ok(Bench {
            exe: std::env::current_exe()?,
            root,
            tree: tree.to_path_buf(),
            work,
            registry: proxy.address.clone(),
            proxy,
            name: format!("bench/beacon-{stamp}"),
            variants,
            build_args: inputs.build_args,
            sbom_generator: inputs.sbom_generator,
            key,
            repeat: if options.smoke {
                1
            } else {
                options.repeat.max(1)
            },
            smoke: options.smoke,
            builder: options.builder.clone(),
            selection,
            second_builder: options.second_builder.clone(),
            images: inputs.images,
            base,
            pr,
            main,
        })
    }

    /// The xtask binary on the scratch checkout, in the given situation.
    pub fn xtask(&self, context: &Path, args: Vec<String>) -> Invocation {
        let mut invocation = Invocation::new(&self.exe.display().to_string(), args)
            .in_dir(&self.tree)
            .with_env("XTASK_PROJECT_ROOT", self.tree.display().to_string())
            .with_env("XTASK_CONTEXT", context.display().to_string())
            .with_env("COSIGN_PASSWORD", "");
        invocation.env_remove = vec!["GITHUB_OUTPUT".into(), "GITHUB_STEP_SUMMARY".into()];
        invocation
    }

    /// `--variant` of each variant, and `--builder` (every build command takes both).
    pub fn variant_args(&self) -> Vec<String> {
        self.variant_args_on(self.builder.as_deref())
    }

    /// `--variant` of each variant, and `--builder BUILDER` if one is given.
    pub fn variant_args_on(&self, builder: Option<&str>) -> Vec<String> {
        let builder = builder
            .into_iter()
            .flat_map(|b| ["--builder".to_string(), b.to_string()]);
        self.variants
            .iter()
            .flat_map(|v| ["--variant".to_string(), v.clone()])
            .chain(builder)
            .collect()
    }

    /// Runs a command, metering it; its lines are timed as they arrive.
    pub fn metered(&self, invocation: &Invocation) -> Result<Run> {
        meter::metered(invocation, &self.proxy)
    }

    pub fn ci_image(&self, context: &Path, extra: &[&str]) -> Result<Run> {
        self.metered(&self.xtask(context, self.ci_image_args(&self.name, extra)))
    }

    /// The arguments of `ci-image` under image name `name`, then `extra`.
    pub fn ci_image_args(&self, name: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["ci-image".to_string()];
        args.extend(self.variant_args());
        args.extend(self.build_args.iter().cloned());
        args.extend(["--registry", &self.registry, "--image-name", name].map(String::from));
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    /// The arguments of a `release-image` on `builder` (`None`: the current
    /// one), before its stage flags: variants, build args, registry, name,
    /// SBOM generator.
    pub fn release_args(&self, builder: Option<&str>) -> Vec<String> {
        let mut args = vec!["release-image".to_string()];
        args.extend(self.variant_args_on(builder));
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
        args
    }

    pub fn release_image(&self, context: &Path, extra: &[&str]) -> Result<Run> {
        let mut args = self.release_args(self.builder.as_deref());
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
        self.metered(&self.xtask(context, args))
    }

    /// A cold build compiles the dependencies: one that compiled none was
    /// not cold (a smoke run never empties the engine), and its time would
    /// be taken for a cold build's.
    pub fn check_cold(&self, what: &str, run: &Run) -> Result<()> {
        if !self.smoke && dependencies_compiled(&run.log).is_empty() {
            bail!("benchmark step '{what}' compiled no dependency although the engine was emptied: its time is not a cold build's");
        }
        Ok(())
    }

    /// Empties the engine's build cache, cache mounts (the cargo target
    /// dirs of the compile stages) included. Not in a smoke run: it would
    /// make every later build of the test suite compile from scratch.
    pub fn cold(&self) -> Result<()> {
        self.cold_on(self.selection.as_ref())
    }

    /// [`Bench::cold`] of the engine of `selection` (`None`: the current one).
    pub fn cold_on(&self, selection: Option<&Selection>) -> Result<()> {
        if !self.smoke {
            let prune = ["prune", "--all", "--force"].map(String::from).to_vec();
            meter::timed(&docker::buildx(selection, prune))?;
        }
        Ok(())
    }

    /// A change to the service's source no earlier run made (the engine
    /// may still hold records of those: images loaded from them keep them).
    pub fn one_line_change(&self, n: usize) -> Result<()> {
        let path = self.tree.join("service/src/main.rs");
        let mut text = files::read_to_string(&path)?;
        text.push_str(&format!("// benchmark edit {n} of {}\n", self.name));
        files::write(&path, text)?;
        Ok(())
    }

    /// A context file `name` of the scratch checkout built for `git_ref`.
    pub fn context(&self, name: &str, git_ref: Option<&str>) -> Result<PathBuf> {
        write_context(&self.work, name, &self.base, git_ref)
    }

    /// Keeps a scenario's whole log under target/bench/logs, to read a
    /// surprising figure against what the build did.
    pub fn keep_log(&self, name: &str, run: &Run) -> Result<()> {
        let dir = self.work.join("logs");
        files::create_dir_all(&dir)?;
        files::write(&dir.join(format!("{name}.log")), &run.log)
    }
}

/// Writes `work/NAME.json`: the checkout's context as a clean checkout of
/// main's branch, built for `git_ref`.
fn write_context(
    work: &Path,
    name: &str,
    base: &BuildContext,
    git_ref: Option<&str>,
) -> Result<PathBuf> {
    let mut context = base.clone();
    context.git.dirty = false;
    context.git.branch = Some("main".to_string());
    context.ci.git_ref = git_ref.map(String::from);
    let path = work.join(format!("{name}.json"));
    files::write(&path, serde_json::to_string(&context)?)?;
    Ok(path)
}

/// The dependency crates of the service cargo compiled in a build: its
/// `Compiling` lines in the compile stages' steps (not the cargo-tools
/// stage, which builds a tool), by step (`build_log::compiled_crates`), the
/// service itself left out.
pub(super) fn dependencies_compiled(log: &str) -> Vec<String> {
    build_log::compiled_crates(log, "compile-service.sh")
        .into_iter()
        .map(|(_, name)| name)
        .filter(|name| name != "beacon")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
