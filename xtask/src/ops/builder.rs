//! The builder a command builds with (`--builder NAME` of ci-image,
//! release-image, rebuild-check and bench): looked up with `docker buildx
//! inspect NAME`, refused in one line when it does not exist or cannot build
//! the platforms (none of them: add a node or pick another builder; some:
//! today's refusal of the current builder), and turned into the
//! [`Selection`] every engine command of the run takes, which also says
//! which node builds which platform (the run prints it once its checks
//! passed). No name: nothing is looked up and every command is today's.
//! Once built, how each platform was built (on which build platform,
//! natively or cross-compiled) is read from its provenance.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde_json::Value;

use crate::client::docker;
use crate::client::registry::{self, Attestation};
use crate::model::builder::{Builder, Selection};
use crate::model::names::Platform;
use crate::model::reference::ImageRef;
use crate::plan::record::{provenance_build_platform, PlatformBuild};
use crate::preflight::{self, BuilderInfo, Requirement};

/// A builder the user named, and how the run's commands select it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub builder: Builder,
    pub selection: Selection,
}

impl Selected {
    /// The builder as the planners take it (its driver decides how pushing works).
    pub fn info(&self) -> BuilderInfo {
        BuilderInfo::from(&self.builder)
    }
}

/// The selection of a possibly selected builder.
pub fn selection(selected: Option<&Selected>) -> Option<Selection> {
    selected.map(|s| s.selection.clone())
}

/// Looks up the builder `name` for a build of `platforms` (no name: nothing
/// to do). Its engine is checked later, on the selection.
pub fn select(name: Option<&str>, platforms: &[Platform]) -> Result<Option<Selected>> {
    let Some(name) = name else {
        return Ok(None);
    };
    preflight::check_all(&[Requirement::Docker, Requirement::Buildx])?;
    let builder = docker::inspect(name)?;
    let routes = builder.route(platforms);
    if let Some(refusal) = builder.refusal(&routes) {
        bail!("{refusal}");
    }
    if let Some(refusal) = preflight::platforms_refusal(&BuilderInfo::from(&builder), platforms) {
        bail!("{refusal}");
    }
    let selection = builder.selection(&routes);
    Ok(Some(Selected { builder, selection }))
}

/// Where each of `platforms` is built, as far as the builder tells before
/// the build: the routed node's native platform for a selected builder
/// (`--builder`), else `native` (the engine's native platform: the default
/// `docker` driver's). The provenance of what was built says for sure
/// ([`read_builds`]).
pub fn predicted_build_platforms(
    selected: Option<&Selected>,
    native: &Platform,
    platforms: &[Platform],
) -> BTreeMap<Platform, Platform> {
    let routed = |platform: &Platform| -> Option<Platform> {
        let builder = &selected?.builder;
        let route = builder.route(std::slice::from_ref(platform)).pop()?;
        builder
            .nodes
            .get(route.node?)?
            .native_platform()?
            .parse()
            .ok()
    };
    platforms
        .iter()
        .map(|p| (p.clone(), routed(p).unwrap_or_else(|| native.clone())))
        .collect()
}

/// How each of `platforms` of the pushed index `image` was built: the build
/// platform its provenance records (BuildKit's own word), else the
/// predicted one, said in a warning (a provenance that cannot be read or
/// names none).
pub fn read_builds(
    image: &ImageRef,
    platforms: &[Platform],
    predicted: &BTreeMap<Platform, Platform>,
) -> BTreeMap<Platform, PlatformBuild> {
    let provenance = registry::attestation(image, Attestation::Provenance)
        .inspect_err(|err| {
            eprintln!("warning: cannot read the provenance of {image} ({err:#}): the record says where its platforms were to be built");
        })
        .unwrap_or(Value::Null);
    platforms
        .iter()
        .map(|platform| {
            let recorded =
                registry::for_platform(&provenance, &platform.to_string(), platforms.len())
                    .and_then(provenance_build_platform);
            let build = recorded.unwrap_or_else(|| {
                let guess = predicted.get(platform).cloned().unwrap_or_else(Platform::native);
                if !provenance.is_null() {
                    eprintln!("warning: the provenance of {platform} of {image} names no build platform: the record says {guess}, where it was to be built");
                }
                guess
            });
            (platform.clone(), PlatformBuild::on(build, platform))
        })
        .collect()
}
