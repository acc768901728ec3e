//! What both paths build: the repository name and each variant's recipe.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use crate::context::BuildContext;
use crate::model::names;
use crate::plan::{
    BuildOptions, Recipe, BINARIES_CONTEXT, COMPILE_STAGE_ARGS, FLAVOR_ARG, PROFILE_ARG,
    TARGET_ARCHES_ARG,
};
use crate::project;

/// `REGISTRY/NAME`. The registry defaults to `ghcr.io/<owner>` in GitHub
/// Actions and to `localhost` elsewhere (a name that can be loaded locally but
/// never pushed anywhere by accident).
pub fn repository(options: &BuildOptions, context: &BuildContext, pushing: bool) -> Result<String> {
    let registry = match &options.registry {
        Some(registry) => registry.trim_end_matches('/').to_string(),
        None => match &context.ci.repository_owner {
            Some(owner) if context.ci.github_actions => format!("ghcr.io/{}", owner.to_lowercase()),
            _ if pushing => bail!(
                "pushing needs a registry: pass --registry (e.g. ghcr.io/acme or 127.0.0.1:5000) or set IMAGE_REGISTRY"
            ),
            _ => "localhost".to_string(),
        },
    };
    names::validate_registry(&registry)?;
    let repository = format!("{registry}/{}", options.image_name);
    names::validate_repository(&repository)
        .map_err(|e| anyhow::anyhow!("malformed image name {:?}: {e}", options.image_name))?;
    Ok(repository)
}

/// Refuses a `VARIANT:KEY=VALUE` build arg whose variant does not exist: a
/// typo must not silently drop an override (a mirror's base, say).
pub fn check_build_arg_scopes(options: &BuildOptions, available: &[String]) -> Result<()> {
    for text in &options.build_args {
        if let Some((key, _)) = text.split_once('=') {
            if let Some((scope, _)) = key.split_once(':') {
                if !available.iter().any(|v| v == scope) {
                    bail!(
                        "--build-arg {text:?} names unknown variant {scope:?}: valid variants are {} (VARIANT:KEY=VALUE)",
                        available.join(", ")
                    );
                }
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
    for text in &options.build_args {
        // `VARIANT:KEY=VALUE` applies to one variant only (bases differ per vendor).
        let (scope, pair) = match text.split_once('=') {
            Some((key, _)) if key.contains(':') => text
                .split_once(':')
                .map_or((None, text.as_str()), |(s, p)| (Some(s), p)),
            _ => (None, text.as_str()),
        };
        let (key, value) = names::parse_key_value(pair)?;
        if let Some(scope) = scope.filter(|_| COMPILE_STAGE_ARGS.contains(&key.as_str())) {
            bail!(
                "--build-arg {text:?} sets {key} for variant {scope} only, but it is an arg of {}, whose one compile \
                 builds every variant's binaries: set it for all of them (--build-arg {pair})",
                project::COMPILE_DOCKERFILE
            );
        }
        if scope.is_some_and(|s| s != variant) {
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
        build_args.insert(key, value);
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
