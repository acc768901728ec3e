//! `cargo xtask ci-image`: gathers the facts, plans ([`crate::plan::ci`])
//! and runs the plan. With `--stand-ins` it first builds (or reuses) the
//! offline stand-ins and builds against them.

use std::path::PathBuf;

use anyhow::Result;

use crate::exec::{self, RunOptions};
use crate::model::build_arg::BuildArg;
use crate::model::names::Platform;
use crate::model::reference::Registry;
use crate::ops::{builder, stand_ins};
use crate::plan::ci::{self, CiRequest};
use crate::plan::recipe;
use crate::{context, preflight, project};

#[derive(Debug, Clone)]
pub struct CiImageOptions {
    pub request: CiRequest,
    /// Build the stand-ins into this registry first, and build against them.
    pub stand_ins_registry: Option<Registry>,
    /// Compile the service on the host first, and build from that binary.
    pub host_build: bool,
    /// The buildx builder to build with (`docker buildx ls`); `None`: the current one.
    pub builder: Option<String>,
    pub run: RunOptions,
}

pub fn run(mut options: CiImageOptions) -> Result<()> {
    let root = project::project_root();
    let context = context::gather(&root)?;
    let request = &mut options.request;
    // The named builder first: every engine command below runs on it.
    let selected = match options.builder.as_deref() {
        Some(name) => {
            let platform = ci::requested_platform(request, &context.native_platform);
            builder::select(Some(name), &[platform])?
        }
        None => None,
    };
    let selection = builder::selection(selected.as_ref());
    if let Some(registry) = options.stand_ins_registry.clone() {
        let overrides = stand_ins::build(&stand_ins::StandInsRequest {
            registry,
            inputs: std::path::PathBuf::from(stand_ins::DEFAULT_INPUTS),
            binaries_only: false,
            builder: selection.clone(),
        })?;
        // The user's own build args come last, so they still win.
        let mut build_args: Vec<BuildArg> = overrides.build_args.into_values().flatten().collect();
        build_args.append(&mut request.build.build_args);
        request.build.build_args = build_args;
        request.build.binaries.get_or_insert(overrides.binaries);
    }
    if options.host_build {
        request.build.binaries = Some(host_build(&root, request, options.run.dry_run)?);
    }
    let available = project::discover_variants(&root)?;
    let variants = project::select_variants(&available, &request.build.variants)?;
    recipe::check_build_arg_scopes(&request.build, &available)?;
    // Pushing needs to know whether the builder can push by digest itself.
    let builder = match &selected {
        Some(selected) => Some(selected.info()),
        None if request.push => preflight::builder_info().ok(),
        None => None,
    };
    let plan = ci::plan(request, &variants, &context, builder.as_ref())?.on_builder(selection);
    exec::run_plan(&plan, &options.run, None)
}

/// Compiles the service for the request's platform with the host's cargo,
/// as the compile stage builds CI images (the `ci` profile, static), into
/// the cargo target directory (where rust-cache restores the dependencies
/// from), and returns the `--binaries` directory holding it. A dry run
/// compiles nothing and names the directory.
fn host_build(root: &std::path::Path, request: &CiRequest, dry_run: bool) -> Result<PathBuf> {
    let platform = ci::requested_platform(request, &Platform::native());
    let out = root.join("target/xtask/host-binaries");
    if preflight::find_program("cargo").is_none() {
        anyhow::bail!("--host-build compiles the service with this machine's cargo, and there is no cargo on PATH: install Rust (https://rustup.rs), or omit --host-build to compile in the images' compile stage");
    }
    if dry_run {
        eprintln!(
            "dry run: would compile the service on the host for {platform} (cargo build --locked --profile ci --package beacon) into {}",
            out.display()
        );
        return Ok(out);
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    stand_ins::build_host_binary(
        root,
        &stand_ins::HostBuild {
            platform: &platform,
            profile: "ci",
            target_dir: &target_dir,
        },
        &out,
    )?;
    Ok(out)
}
