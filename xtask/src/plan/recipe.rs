//! What both paths build: the repository name and each variant's recipe.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use crate::context::BuildContext;
use crate::model::reference::{ImageName, Registry, Repository};
use crate::plan::{
    BuildOptions, Recipe, BINARIES_CONTEXT, COMPILE_STAGE_ARGS, FLAVOR_ARG, PROFILE_ARG,
    TARGET_ARCHES_ARG,
};
use crate::project;

/// `REGISTRY/NAME`. The registry defaults to `ghcr.io/<owner>` in GitHub
/// Actions and to `localhost` elsewhere (a name that can be loaded locally but
/// never pushed anywhere by accident).
pub fn repository(
    registry: Option<&Registry>,
    image_name: &ImageName,
    context: &BuildContext,
    pushing: bool,
) -> Result<Repository> {
    let registry = match registry {
        Some(registry) => registry.clone(),
        None => match &context.ci.repository_owner {
            Some(owner) if context.ci.github_actions => Registry::ghcr(owner)?,
            _ if pushing => bail!(
                "pushing needs a registry: pass --registry (e.g. ghcr.io/acme or 127.0.0.1:5000) or set IMAGE_REGISTRY"
            ),
            _ => "localhost".parse()?,
        },
    };
    Repository::new(&registry, image_name)
}

/// Refuses a `VARIANT:KEY=VALUE` build arg whose variant does not exist: a
/// typo must not silently drop an override (a mirror's base, say).
pub fn check_build_arg_scopes(options: &BuildOptions, available: &[String]) -> Result<()> {
    for arg in &options.build_args {
        if let Some(scope) = &arg.variant {
            if !available.contains(scope) {
                bail!(
                    "--build-arg {:?} names unknown variant {scope:?}: valid variants are {} (VARIANT:KEY=VALUE)",
                    arg.to_string(),
                    available.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// The recipe of one variant: the same for `ci-image` and `release-image`.
pub fn recipe(options: &BuildOptions, variant: &str, context: &BuildContext) -> Result<Recipe> {
    let mut build_args = BTreeMap::from([
        ("VARIANT".to_string(), variant.to_string()),
        ("REVISION".to_string(), context.git.revision.clone()),
    ]);
    for arg in &options.build_args {
        let key = arg.key.as_str();
        if let Some(scope) = arg
            .variant
            .as_deref()
            .filter(|_| COMPILE_STAGE_ARGS.contains(&key))
        {
            bail!(
                "--build-arg {arg} sets {key} for variant {scope} only, but it is an arg of {}, whose one compile \
                 builds every variant's binaries: set it for all of them (--build-arg {key}={})",
                project::COMPILE_DOCKERFILE,
                arg.value
            );
        }
        // `VARIANT:KEY=VALUE` applies to one variant only (bases differ per vendor).
        if !arg.applies_to(variant) {
            continue;
        }
        if key == FLAVOR_ARG {
            bail!("--build-arg {FLAVOR_ARG} is chosen by the path (ci-image builds ci, release-image production); remove it");
        }
        if key == PROFILE_ARG {
            bail!("--build-arg {key} is chosen by the path (ci-image builds ci, release-image release); remove it");
        }
        if key == TARGET_ARCHES_ARG {
            bail!("--build-arg {key} is chosen by the platforms (it lists their architectures); use --platform instead");
        }
        if key == "SOURCE_DATE_EPOCH" {
            bail!("--build-arg SOURCE_DATE_EPOCH is set by release-image from the commit time; remove it");
        }
        build_args.insert(arg.key.clone(), arg.value.clone());
    }
    let mut named_contexts = BTreeMap::new();
    if let Some(dir) = &options.binaries {
        named_contexts.insert(BINARIES_CONTEXT.to_string(), dir.display().to_string());
    }
    Ok(Recipe {
        dockerfile: project::dockerfile_path(variant),
        context: ".".to_string(),
        build_args,
        named_contexts,
    })
}
