//! The flags of the commands around the images: pruning, stand-ins, base
//! updates, the benchmark, the linters and the test suite.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::Args;

use super::one_of;
use crate::commands::lint::Linter;
use crate::commands::prune::OlderThan;
use crate::commands::update_bases::Mirror;
use crate::commands::{bench, lint, prune, stand_ins, test_task, update_bases, variants};
use crate::model::reference::{Registry, Repository};

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// The repository to prune, REGISTRY/NAME, e.g. 127.0.0.1:5000/beacon (with --cache: its cache repository REGISTRY/NAME-buildcache).
    #[arg(long, value_name = "REG/NAME", value_parser = Repository::parse_hosted)]
    pub registry: Repository,

    /// Delete ci- images (with --cache: pull request and branch caches) older than this: 30m, 12h, 7d, 2w, or combined like 1d12h.
    #[arg(long, value_name = "DURATION")]
    pub older_than: OlderThan,

    /// Always keep the newest N ci- images of each variant, however old. Does not apply to --cache: caches are not ranked.
    #[arg(long, value_name = "N", default_value = "1", value_parser = prune::parse_keep)]
    pub keep: usize,

    /// Prune the registry cache repository REG/NAME-buildcache instead of the ci- images: delete the
    /// caches of pull requests (<variant>-pr-<N>) and branches (<variant>-branch-<slug>) older than
    /// --older-than (by their newest layer) and, with --open-prs, those of pull requests that are not open;
    /// never <variant>-main (the default branch's), <variant>-local or any other tag, nor a digest they point to.
    #[arg(long)]
    pub cache: bool,

    /// With --cache: the pull requests still open, comma-separated (e.g. 12,15, or none); the cache of any
    /// other pull request is deleted whatever its age. Without it only age counts.
    #[arg(long, value_name = "N,N,...")]
    pub open_prs: Option<String>,

    /// Print what would be deleted and why, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the selection (and, without --dry-run, what was deleted) as JSON on stdout; logs go to stderr.
    #[arg(long)]
    pub json: bool,
}

impl PruneArgs {
    pub fn into_options(self) -> prune::PruneOptions {
        prune::PruneOptions {
            registry: self.registry,
            older_than: self.older_than,
            keep: self.keep,
            cache: self.cache,
            open_prs: self.open_prs,
            dry_run: self.dry_run,
            json: self.json,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct StandInsArgs {
    /// Registry to push the stand-ins to (a local one: nothing here is for production).
    #[arg(long, env = "XTASK_TEST_REGISTRY", default_value = "127.0.0.1:5000")]
    pub registry: Registry,

    /// Directory with busybox/{amd64,arm64}/busybox and syft/syft (as .ci/setup-stack leaves them).
    #[arg(long, env = "STAND_IN_INPUTS", default_value = stand_ins::DEFAULT_INPUTS)]
    pub inputs: PathBuf,

    /// Only build the host binaries.
    #[arg(long)]
    pub binaries_only: bool,
}

impl StandInsArgs {
    pub fn into_options(self) -> stand_ins::StandInsOptions {
        stand_ins::StandInsOptions {
            registry: self.registry,
            inputs: self.inputs,
            binaries_only: self.binaries_only,
            builder: None,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct UpdateBasesArgs {
    /// Change nothing: list every pin whose tag now names another digest, and fail if there is one.
    #[arg(long)]
    pub check: bool,

    /// Look images under PREFIX up in MIRROR instead (repeatable; whole path components, the longest
    /// prefix wins), e.g. docker.io/library=registry.example/hub; the pins keep their names, so the
    /// mirror must hold the images by their own digests.
    #[arg(
        long = "mirror",
        env = "BASE_IMAGE_MIRRORS",
        value_delimiter = ',',
        value_name = "PREFIX=MIRROR"
    )]
    pub mirrors: Vec<Mirror>,

    /// Print the registry lookups that would run, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl UpdateBasesArgs {
    pub fn into_options(self) -> update_bases::UpdateBasesOptions {
        update_bases::UpdateBasesOptions {
            check: self.check,
            dry_run: self.dry_run,
            mirrors: self.mirrors,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Repetitions per scenario; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,

    /// One repetition of every scenario on one variant, without the xtask cold
    /// compile and without emptying the engine (cold figures are then warm):
    /// proves the benchmark still works (the test suite runs it).
    #[arg(long)]
    pub smoke: bool,

    /// Local registry for the stand-ins, pushes and registry caches.
    #[arg(long, env = "XTASK_TEST_REGISTRY", default_value = "127.0.0.1:5000")]
    pub registry: Registry,

    /// Builder image for the compile stage (pinned by digest when resolved);
    /// `dockerfile` keeps the Dockerfile's own (needs network).
    #[arg(long, value_name = "IMAGE")]
    pub builder_image: Option<String>,

    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,

    /// The buildx builder to build with (one `docker buildx ls` lists); default: the current
    /// one. A `docker`-driver builder of another docker context is used through its engine:
    /// every engine command of the run becomes `docker --context CONTEXT ...`.
    #[arg(long, value_name = "NAME")]
    pub builder: Option<String>,

    /// The second runner of the two-runner scenario: a buildx builder of another engine on
    /// this machine (`.ci/second-engine start`), held to a core of its own beside the first.
    #[arg(long, value_name = "NAME", default_value = "runner2")]
    pub second_builder: String,

    /// Run only this scenario (repeatable; a scenario that divides by an earlier one's figure
    /// needs that one too); default: every scenario, in order.
    #[arg(long = "scenario", value_name = "NAME", value_parser = PossibleValuesParser::new(bench::SCENARIO_NAMES))]
    pub scenarios: Vec<String>,
}

impl BenchArgs {
    pub fn into_options(self) -> bench::BenchOptions {
        bench::BenchOptions {
            repeat: self.repeat,
            smoke: self.smoke,
            registry: self.registry,
            builder_image: self.builder_image,
            json: self.json,
            builder: self.builder,
            second_builder: self.second_builder,
            scenarios: self.scenarios,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct LintArgs {
    /// Run only these linters (repeatable); default: all of them.
    #[arg(long = "only", value_name = "LINTER", value_parser = one_of::<Linter>(Linter::NAMES))]
    pub only: Vec<Linter>,

    /// Skip these linters (repeatable).
    #[arg(long = "skip", value_name = "LINTER", value_parser = one_of::<Linter>(Linter::NAMES))]
    pub skip: Vec<Linter>,

    /// First install the pinned external linters from PyPI into target/lint-tools
    /// (a Python virtual environment; needs python3 with venv). CI does this.
    #[arg(long)]
    pub install: bool,
}

impl LintArgs {
    pub fn into_options(self) -> lint::LintOptions {
        lint::LintOptions {
            only: self.only,
            skip: self.skip,
            install: self.install,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    /// Run only the tests that need no engine (unit, CLI, workflow and tidy tests).
    #[arg(long)]
    pub no_engine: bool,

    /// Extra arguments for `cargo test` (after --), e.g. a test name filter.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

impl TestArgs {
    pub fn into_options(self) -> test_task::TestOptions {
        test_task::TestOptions {
            no_engine: self.no_engine,
            cargo_args: self.cargo_args,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct VariantsArgs {
    /// Print one JSON array, e.g. ["chainguard","distroless","ubi9"] (in GitHub Actions the
    /// step output `variants` holds it either way).
    #[arg(long)]
    pub json: bool,
}

impl VariantsArgs {
    pub fn into_options(self) -> variants::VariantsOptions {
        variants::VariantsOptions { json: self.json }
    }
}
