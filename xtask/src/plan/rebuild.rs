//! How `rebuild-check` rebuilds a published image: each platform (or only
//! the one asked for, `--platform`) the way it was built, or not at all.
//!
//! A platform's provenance records its build platform (see
//! [`crate::plan::record::PlatformBuild`]): natively built when it is the
//! target, else cross-compiled from it. The rebuild runs where the machine
//! (its current builder) or the chosen builder (`--builder`: the node it
//! routes the platform to) builds it; that must be the recorded build
//! platform, so a natively built platform is rebuilt natively and a
//! cross-compiled one is cross-compiled from the same build platform. When
//! it is not (a natively built arm64 checked on an amd64 machine), the
//! platform is refused in one line saying how it was built and the way out:
//! a rebuild another way would compare unlike builds, and its mismatch
//! would prove nothing.
//!
//! The platforms checked are rebuilt together, in one release build (one
//! compile of their targets): a target's binary does not depend on the
//! other targets compiled beside it (one cargo invocation builds each
//! target's crates apart; the end-to-end tests rebuild each platform of a
//! two-target release alone and get its digests), so a platform of a
//! release built by one runner for both is checked alone, cross-compiled
//! from the recorded build platform as it was.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::names::Platform;
use crate::plan::record::{is_native, Compile, PlatformBuild};

/// What rebuilds: this machine's current builder or the one named, and
/// where it builds each platform (the routed node's native platform).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilder {
    /// `this machine (builder "default")`, `the builder "fleet"`.
    pub name: String,
    /// Per platform, the platform it is built on here.
    pub builds_on: BTreeMap<Platform, Platform>,
}

impl Rebuilder {
    /// Where `platform` is built here (unknown: this process's platform).
    fn build_platform(&self, platform: &Platform) -> Platform {
        self.builds_on
            .get(platform)
            .cloned()
            .unwrap_or_else(Platform::native)
    }
}

/// One platform's check: how it was built and how it is rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformRebuild {
    pub platform: Platform,
    /// As its provenance records it; `None`: the provenance names no build
    /// platform (it is rebuilt as this machine builds it, and said so).
    pub built: Option<PlatformBuild>,
    /// How the rebuild builds it.
    pub rebuilt: PlatformBuild,
}

impl PlatformRebuild {
    /// `linux/arm64 (cross-compiled on linux/amd64; rebuilt cross-compiled on linux/amd64)`.
    pub fn describe(&self) -> String {
        let built = match &self.built {
            Some(build) => how(build),
            None => "its provenance does not say how it was built".to_string(),
        };
        format!(
            "{} ({built}; rebuilt {})",
            self.platform,
            how(&self.rebuilt)
        )
    }
}

/// `built natively on linux/arm64`, `cross-compiled on linux/amd64`.
pub fn how(build: &PlatformBuild) -> String {
    match build.compile {
        Compile::Native => format!("natively on {}", build.build_platform),
        Compile::Cross => format!("cross-compiled on {}", build.build_platform),
    }
}

/// The rebuild of an image: the platforms checked, in the image's order,
/// and those left unchecked (`--platform` named another).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebuildPlan {
    pub checked: Vec<PlatformRebuild>,
    pub unchecked: Vec<Platform>,
}

impl RebuildPlan {
    /// The platforms the one release build builds (`--platform` of it).
    pub fn platforms(&self) -> Vec<Platform> {
        self.checked.iter().map(|c| c.platform.clone()).collect()
    }
}

/// The platforms to check: `only`, which must be one of the image's, or all.
pub fn select(image: &[Platform], only: Option<&Platform>) -> Result<Vec<Platform>, String> {
    let Some(only) = only else {
        return Ok(image.to_vec());
    };
    match image.iter().find(|p| *p == only) {
        Some(found) => Ok(vec![found.clone()]),
        None => Err(format!(
            "the image has no platform {only} (it has {}): pass one of them to --platform",
            names(image)
        )),
    }
}

/// Plans the rebuild of `built` (each platform of the image, in its order,
/// with how it was built) on `rebuilder`, for `only` one platform or all:
/// every checked platform rebuilt on its recorded build platform, or a
/// one-line refusal naming each that cannot be.
pub fn plan(
    built: &[(Platform, Option<PlatformBuild>)],
    only: Option<&Platform>,
    rebuilder: &Rebuilder,
) -> Result<RebuildPlan, String> {
    let image: Vec<Platform> = built.iter().map(|(p, _)| p.clone()).collect();
    let selected = select(&image, only)?;
    let rebuilds: Vec<(PlatformRebuild, bool)> = built
        .iter()
        .map(|(platform, build)| {
            let here = rebuilder.build_platform(platform);
            let fits = build
                .as_ref()
                .is_none_or(|b| is_native(&here, &b.build_platform));
            let rebuild = PlatformRebuild {
                platform: platform.clone(),
                built: build.clone(),
                rebuilt: PlatformBuild::on(here, platform),
            };
            (rebuild, fits)
        })
        .collect();
    let refused: Vec<&PlatformRebuild> = rebuilds
        .iter()
        .filter(|(r, fits)| !fits && selected.contains(&r.platform))
        .map(|(r, _)| r)
        .collect();
    if !refused.is_empty() {
        let others: Vec<&Platform> = rebuilds
            .iter()
            .filter(|(_, fits)| *fits)
            .map(|(r, _)| &r.platform)
            .collect();
        return Err(refusal(&refused, &others, rebuilder));
    }
    let (checked, unchecked) = rebuilds
        .into_iter()
        .map(|(r, _)| r)
        .partition::<Vec<_>, _>(|r| selected.contains(&r.platform));
    Ok(RebuildPlan {
        checked,
        unchecked: unchecked.into_iter().map(|r| r.platform).collect(),
    })
}

/// The one line that refuses `refused` (how each was built, how it would
/// be rebuilt here), with the ways out: `others`, the platforms this
/// rebuilder can check, another runner, another builder.
fn refusal(refused: &[&PlatformRebuild], others: &[&Platform], rebuilder: &Rebuilder) -> String {
    let mut each = Vec::new();
    let mut needed: Vec<String> = Vec::new();
    for rebuild in refused {
        let Some(build) = &rebuild.built else {
            continue;
        };
        each.push(format!(
            "{} was built {}, and {} would build it {}",
            rebuild.platform,
            how(build),
            rebuilder.name,
            how(&rebuild.rebuilt)
        ));
        let platform = build.build_platform.to_string();
        if !needed.contains(&platform) {
            needed.push(platform);
        }
    }
    let needed = needed.join(" or ");
    let mut ways = Vec::new();
    if !others.is_empty() {
        let others: Vec<String> = others.iter().map(|p| format!("--platform {p}")).collect();
        ways.push(format!("check another platform ({})", others.join(" or ")));
    }
    ways.push(format!("run rebuild-check on a {needed} machine"));
    ways.push(format!("pass --builder NAME with a {needed} node"));
    let platforms: Vec<String> = refused.iter().map(|r| r.platform.to_string()).collect();
    format!(
        "cannot rebuild {} the way it was built: {}; rebuilt another way it would compare unlike builds, and a mismatch would prove nothing: {}",
        platforms.join(", "),
        each.join("; "),
        ways.join(", or ")
    )
}

fn names(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
