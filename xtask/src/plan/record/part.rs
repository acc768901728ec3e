//! A part record: what one runner of a release built (some of its
//! platforms, every variant), as `release-image --build-only --platform P
//! --part` writes it, and what `merge-release` combines into the release
//! record. It holds the release record's fields for the platforms built
//! (`part`), and the platforms of the whole release (`platforms`: what the
//! merge must produce); every variant says how each of its platforms was
//! built. Its format is its own, so neither kind of record is ever taken for
//! the other. Parsing is as strict as the release record's.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::{RecordedVariant, ReleaseRecord, RECORD_FORMAT};
use crate::model::names::Platform;
use crate::model::reference::Repository;

/// The format of a part record.
pub const PART_FORMAT: &str = "beacon-release-part/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartRecord {
    pub format: String,
    /// `REGISTRY/NAME` every digest and tag belongs to.
    pub repository: Repository,
    /// The commit every variant was built from.
    pub commit: String,
    pub version: String,
    pub source: String,
    /// The platforms of the whole release: what the merge produces.
    pub platforms: Vec<Platform>,
    /// The platforms this part built (each variant's index holds these).
    pub part: Vec<Platform>,
    /// The variants of the release.
    pub planned: Vec<String>,
    /// The variants this part pushed, by digest (its own index per variant).
    pub variants: Vec<RecordedVariant>,
}

impl PartRecord {
    /// The part of a release of `platforms` that `record` (a record of the
    /// part's platforms) holds.
    pub fn of(record: ReleaseRecord, platforms: &[Platform]) -> Result<PartRecord> {
        let part = PartRecord {
            format: PART_FORMAT.to_string(),
            repository: record.repository,
            commit: record.commit,
            version: record.version,
            source: record.source,
            platforms: platforms.to_vec(),
            part: record.platforms,
            planned: record.planned,
            variants: record.variants,
        };
        part.validate_part()?;
        Ok(part)
    }

    /// The part as a release record of its own platforms (what a re-run of
    /// its build resumes from).
    pub fn to_record(&self) -> ReleaseRecord {
        ReleaseRecord {
            format: RECORD_FORMAT.to_string(),
            repository: self.repository.clone(),
            commit: self.commit.clone(),
            version: self.version.clone(),
            source: self.source.clone(),
            platforms: self.part.clone(),
            planned: self.planned.clone(),
            variants: self.variants.clone(),
        }
    }

    /// `linux/amd64, linux/arm64`: the platforms it built.
    pub fn describe_part(&self) -> String {
        join(&self.part)
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Parses and checks a part record; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<PartRecord> {
        let part: PartRecord = serde_json::from_str(text).map_err(|e| {
            anyhow::anyhow!("{origin} is not a part record ({e}): pass the file `release-image --build-only --part` wrote")
        })?;
        if part.format != PART_FORMAT {
            bail!(
                "{origin} is not a part record: format {:?}, this xtask reads {PART_FORMAT:?} (a release record is not a part: merge the parts its runners wrote)",
                part.format
            );
        }
        part.validate_part()
            .map_err(|e| anyhow::anyhow!("{origin} is not a valid part record: {e:#}"))?;
        Ok(part)
    }

    /// Reads a part record file.
    pub fn read(path: &Path) -> Result<PartRecord> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the part record {}: pass the file a build job wrote (release-image --build-only --part --record FILE)",
                path.display()
            )
        })?;
        PartRecord::parse(&text, &path.display().to_string())
    }

    /// The part's platforms are some of the release's, each once; every
    /// variant holds exactly those and says how each was built.
    fn validate_part(&self) -> Result<()> {
        let release: BTreeSet<&Platform> = self.platforms.iter().collect();
        if release.len() != self.platforms.len() || release.is_empty() {
            bail!("the release's platforms are empty or repeated");
        }
        let part: BTreeSet<&Platform> = self.part.iter().collect();
        if part.is_empty() {
            bail!("it built no platform");
        }
        if part.len() != self.part.len() {
            bail!("its platforms {} are repeated", join(&self.part));
        }
        if let Some(stray) = self.part.iter().find(|p| !release.contains(p)) {
            bail!(
                "it built {stray}, which is not a platform of the release ({})",
                join(&self.platforms)
            );
        }
        self.to_record().validate_fields()?;
        for variant in &self.variants {
            if variant.builds.is_empty() {
                bail!(
                    "variant {} does not say how its platforms were built",
                    variant.variant
                );
            }
        }
        Ok(())
    }
}

fn join(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
