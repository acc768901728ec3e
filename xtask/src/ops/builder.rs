//! The builder a command builds with (`--builder NAME` of ci-image,
//! release-image, rebuild-check and bench): looked up with `docker buildx
//! inspect NAME`, refused in one line when it does not exist or cannot build
//! the platforms (none of them: add a node or pick another builder; some:
//! today's refusal of the current builder), and turned into the
//! [`Selection`] every engine command of the run takes, which also says
//! which node builds which platform (the run prints it once its checks
//! passed). No name: nothing is looked up and every command is today's.

use anyhow::{bail, Result};

use crate::client::docker;
use crate::model::builder::{Builder, Selection};
use crate::model::names::Platform;
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
