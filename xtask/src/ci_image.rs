//! `cargo xtask ci-image`: gathers the facts, plans ([`crate::plan::ci`])
//! and runs the plan. With `--stand-ins` it first builds (or reuses) the
//! offline stand-ins and builds against them.

use anyhow::Result;

use crate::exec::{self, RunOptions};
use crate::plan::ci::{self, CiRequest};
use crate::plan::recipe;
use crate::{context, preflight, project, stand_ins};

#[derive(Debug, Clone)]
pub struct CiImageOptions {
    pub request: CiRequest,
    /// Build the stand-ins into this registry first, and build against them.
    pub stand_ins_registry: Option<String>,
    pub run: RunOptions,
}

pub fn run(mut options: CiImageOptions) -> Result<()> {
    let root = project::project_root();
    let request = &mut options.request;
    if let Some(registry) = options.stand_ins_registry.clone() {
        let overrides = stand_ins::build(&stand_ins::StandInsOptions {
            registry,
            inputs: std::path::PathBuf::from(stand_ins::DEFAULT_INPUTS),
            binaries_only: false,
        })?;
        // The user's own build args come last, so they still win.
        let mut build_args: Vec<String> = overrides.build_args.into_values().flatten().collect();
        build_args.append(&mut request.build.build_args);
        request.build.build_args = build_args;
        request.build.binaries.get_or_insert(overrides.binaries);
    }
    let available = project::discover_variants(&root)?;
    let variants = project::select_variants(&available, &request.build.variants)?;
    recipe::check_build_arg_scopes(&request.build, &available)?;
    let context = context::gather(&root)?;
    // Pushing needs to know whether the builder can push by digest itself.
    let builder = if request.push {
        preflight::builder_info().ok()
    } else {
        None
    };
    let plan = ci::plan(request, &variants, &context, builder.as_ref())?;
    exec::run_plan(&plan, &options.run, None)
}
