//! `cargo xtask release-image`: gathers the facts (the git checkout, the
//! Dockerfiles' pinned bases, the builder), plans ([`crate::plan::release`])
//! and runs the plan: build, push by digest, sign, then tag.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;

use crate::exec::{self, RunOptions};
use crate::plan::recipe;
use crate::plan::release::{self, ReleaseInputs, ReleaseRequest};
use crate::preflight::{self, Requirement};
use crate::{context, project};

#[derive(Debug, Clone)]
pub struct ReleaseImageOptions {
    pub request: ReleaseRequest,
    /// With `request.output_archive`: the directory the OCI archives go to.
    pub archive_dir: Option<PathBuf>,
    pub run: RunOptions,
}

pub fn run(options: ReleaseImageOptions) -> Result<()> {
    let args = &options.request;
    let root = project::project_root();
    let available = project::discover_variants(&root)?;
    let variants = project::select_variants(&available, &args.build.variants)?;
    recipe::check_build_arg_scopes(&args.build, &available)?;
    let context = context::gather(&root)?;
    let mut dockerfile_args = BTreeMap::new();
    for variant in &variants {
        dockerfile_args.insert(
            variant.clone(),
            project::global_arg_defaults(&project::read_dockerfile(&root, variant)?),
        );
    }
    // The builder decides how pushing works (the docker driver cannot push by
    // digest); a dry run without an engine plans for an unknown one.
    let builder = if options.run.dry_run {
        preflight::builder_info().ok()
    } else {
        preflight::check_all(&[
            Requirement::Docker,
            Requirement::Buildx,
            Requirement::Engine,
        ])?;
        Some(preflight::builder_info()?)
    };
    let plan = release::plan(&ReleaseInputs {
        args,
        available: &available,
        variants: &variants,
        context: &context,
        builder: builder.as_ref(),
        dockerfile_args: &dockerfile_args,
    })?;
    exec::run_plan(&plan, &options.run, options.archive_dir.clone())
}
