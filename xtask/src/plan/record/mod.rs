//! The release record: one JSON document that carries a release from stage
//! to stage. The build stage writes it once the variants are pushed by
//! digest (the repository, the commit, and per variant the index digest,
//! the per-platform digests, the recipe and the tags to move); signing, the
//! deploy gate and the promotion read it, in the same job locally or in
//! separate jobs of the release workflow (where it travels as an artifact).
//! A re-run resumes from it: a variant it records, with the same recipe and
//! tags, and still in the registry as recorded, is not built again.
//!
//! The record holds facts, not progress: whether a digest is signed, passed
//! the gate or is tagged is read from the registry, never from the file, so
//! an edited record cannot skip a stage. Parsing is strict (unknown fields,
//! malformed digests, tags of another repository or `ci-` tags are refused);
//! whether it matches the registry is checked by the stages that read it.
//!
//! Format `beacon-release-record/v2` adds, per variant and platform, how it
//! was built (`builds`: the build platform, native or cross; see [`build`]);
//! a v1 record (none) is still read, and written back as it was. A release
//! built by several runners is first written as part records ([`part`]),
//! which `merge-release` combines into one release record.

mod build;
mod part;

pub use self::build::{is_native, provenance_build_platform, Compile, PlatformBuild};
pub use self::part::{PartRecord, PART_FORMAT};

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::model::names::Platform;
use crate::model::reference::{Digest, ImageRef, Repository};
use crate::model::tags::CI_PREFIX;
use crate::plan::{Mode, Plan, Recipe, VariantPlan};

/// The format this code writes; it reads this one and [`RECORD_FORMAT_V1`],
/// another is refused, not guessed at.
pub const RECORD_FORMAT: &str = "beacon-release-record/v2";
/// The format before `builds`: read (and written back unchanged) still.
pub const RECORD_FORMAT_V1: &str = "beacon-release-record/v1";

/// The annotations a release plan sets that the record repeats.
const REVISION: &str = "org.opencontainers.image.revision";
const VERSION: &str = "org.opencontainers.image.version";
const SOURCE: &str = "org.opencontainers.image.source";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRecord {
    pub format: String,
    /// `REGISTRY/NAME` every digest and tag belongs to.
    pub repository: Repository,
    /// The commit every variant was built from.
    pub commit: String,
    /// `org.opencontainers.image.version` of every variant.
    pub version: String,
    /// `org.opencontainers.image.source` of every variant.
    pub source: String,
    /// The platforms of every image index.
    pub platforms: Vec<Platform>,
    /// The variants of this release: no tag moves until each is recorded.
    pub planned: Vec<String>,
    /// The variants pushed so far, by digest.
    pub variants: Vec<RecordedVariant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedVariant {
    pub variant: String,
    /// The image index, by digest.
    pub digest: Digest,
    /// Per platform (`linux/amd64`), the image manifest's digest.
    pub platform_digests: BTreeMap<String, Digest>,
    /// Tag references (`REPO:TAG`) the promotion points at the digest.
    pub tags: Vec<ImageRef>,
    /// Those of `tags` that are immutable (version tags): they may exist
    /// only on this digest (an earlier, interrupted promotion moved them).
    pub immutable: Vec<ImageRef>,
    /// What was built, so a changed build is never taken for a resumed one.
    pub recipe: Recipe,
    /// Per platform, how it was built (v2; empty in a v1 record, and for a
    /// variant a v2 run resumed from a v1 record).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub builds: BTreeMap<Platform, PlatformBuild>,
}

impl RecordedVariant {
    /// The index by digest, `REPO@sha256:...`.
    pub fn image(&self, repository: &Repository) -> ImageRef {
        repository.at(&self.digest)
    }

    /// One platform's image by digest.
    pub fn platform_image(&self, repository: &Repository, platform: &str) -> Option<ImageRef> {
        self.platform_digests
            .get(platform)
            .map(|digest| repository.at(digest))
    }

    /// The same entry, with how each platform was built.
    pub fn with_builds(self, builds: BTreeMap<Platform, PlatformBuild>) -> RecordedVariant {
        RecordedVariant { builds, ..self }
    }

    /// The platform images as text (`linux/amd64` -> `sha256:...`), as a
    /// registry's index lists them.
    pub fn platform_digest_texts(&self) -> BTreeMap<String, String> {
        self.platform_digests
            .iter()
            .map(|(platform, digest)| (platform.clone(), digest.to_string()))
            .collect()
    }
}

/// Tag moves in promotion order: per item every tag but the `latest` ones,
/// then the `latest` ones (so `latest` never points at a release whose
/// other tags did not move). Items without tags of a round are left out.
pub fn latest_last<'a, T>(
    items: &'a [T],
    tags_of: impl Fn(&'a T) -> &'a [ImageRef],
) -> Vec<(&'a T, Vec<ImageRef>)> {
    let mut moves = Vec::new();
    for last in [false, true] {
        for item in items {
            let tags: Vec<ImageRef> = tags_of(item)
                .iter()
                .filter(|t| is_latest(t) == last)
                .cloned()
                .collect();
            if !tags.is_empty() {
                moves.push((item, tags));
            }
        }
    }
    moves
}

/// Whether a tag (`REPO:TAG`) floats to the newest release: it moves last.
pub fn is_latest(reference: &ImageRef) -> bool {
    reference
        .tag
        .as_deref()
        .is_some_and(|tag| tag == "latest" || tag.starts_with("latest-"))
}

impl ReleaseRecord {
    /// An empty record for a release plan (no variant pushed yet).
    pub fn for_plan(plan: &Plan) -> Result<ReleaseRecord> {
        if plan.mode != Mode::Release || !plan.pushes() {
            bail!("only a published release has a release record");
        }
        let first = plan
            .variants
            .first()
            .context("a release of no variant has no record")?;
        let annotation = |key: &str| {
            first
                .policy
                .annotations
                .get(key)
                .cloned()
                .with_context(|| format!("the release plan sets no {key} annotation"))
        };
        Ok(ReleaseRecord {
            format: RECORD_FORMAT.to_string(),
            repository: plan.repository.clone(),
            commit: annotation(REVISION)?,
            version: annotation(VERSION)?,
            source: annotation(SOURCE)?,
            platforms: first.policy.platforms.clone(),
            planned: plan.variant_names().into_iter().map(String::from).collect(),
            variants: Vec::new(),
        })
    }

    /// The record of `variant`, pushed as `digest` with these platform images.
    pub fn entry(
        plan: &Plan,
        variant: &VariantPlan,
        digest: &Digest,
        platform_digests: BTreeMap<String, Digest>,
    ) -> RecordedVariant {
        let immutable = variant
            .policy
            .tags
            .iter()
            .filter(|t| plan.must_not_exist.contains(t))
            .cloned()
            .collect();
        RecordedVariant {
            variant: variant.variant.clone(),
            digest: digest.clone(),
            platform_digests,
            tags: variant.policy.tags.clone(),
            immutable,
            recipe: variant.recipe.clone(),
            builds: BTreeMap::new(),
        }
    }

    /// Records a pushed variant (replacing an earlier entry for it). A v1
    /// record that gets an entry saying how it was built becomes v2.
    pub fn record(&mut self, entry: RecordedVariant) {
        if !entry.builds.is_empty() {
            self.format = RECORD_FORMAT.to_string();
        }
        self.variants.retain(|v| v.variant != entry.variant);
        self.variants.push(entry);
        let order: Vec<String> = self.planned.clone();
        self.variants.sort_by_key(|v| {
            order
                .iter()
                .position(|p| p == &v.variant)
                .unwrap_or(usize::MAX)
        });
    }

    pub fn variant(&self, name: &str) -> Option<&RecordedVariant> {
        self.variants.iter().find(|v| v.variant == name)
    }

    /// The planned variants not recorded yet.
    pub fn missing(&self) -> Vec<&str> {
        self.planned
            .iter()
            .filter(|p| self.variant(p).is_none())
            .map(String::as_str)
            .collect()
    }

    /// Why this record cannot be resumed by `plan` (a release of another
    /// repository, commit, version or set of variants), if it cannot.
    pub fn mismatch_with(&self, plan: &Plan) -> Option<String> {
        let fresh = match ReleaseRecord::for_plan(plan) {
            Ok(fresh) => fresh,
            Err(err) => return Some(err.to_string()),
        };
        let describe = |r: &ReleaseRecord| {
            format!(
                "{} {} at {} ({}; {})",
                r.repository,
                r.version,
                r.commit,
                r.planned.join(", "),
                r.platforms
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let same = self.repository == fresh.repository
            && self.commit == fresh.commit
            && self.version == fresh.version
            && self.source == fresh.source
            && self.platforms == fresh.platforms
            && self.planned == fresh.planned;
        (!same).then(|| {
            format!(
                "it records a release of {}, and this is a release of {}",
                describe(self),
                describe(&fresh)
            )
        })
    }

    /// The recorded variants `plan` can resume: same recipe, same tags.
    pub fn resumable(&self, plan: &Plan) -> Vec<&RecordedVariant> {
        plan.variants
            .iter()
            .filter_map(|planned| {
                let recorded = self.variant(&planned.variant)?;
                let fresh = ReleaseRecord::entry(
                    plan,
                    planned,
                    &recorded.digest,
                    recorded.platform_digests.clone(),
                )
                .with_builds(recorded.builds.clone());
                (recorded == &fresh).then_some(recorded)
            })
            .collect()
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Parses and checks a record; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ReleaseRecord> {
        let record: ReleaseRecord = serde_json::from_str(text).map_err(|e| {
            anyhow::anyhow!("{origin} is not a release record ({e}): use the file the release's build stage wrote, or remove it to start the release over")
        })?;
        record
            .validate()
            .map_err(|e| anyhow::anyhow!("{origin} is not a valid release record: {e:#}"))?;
        Ok(record)
    }

    /// Reads a record file.
    pub fn read(path: &Path) -> Result<ReleaseRecord> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the release record {}: pass the file the release's build stage wrote (--record FILE)",
                path.display()
            )
        })?;
        ReleaseRecord::parse(&text, &path.display().to_string())
    }

    fn validate(&self) -> Result<()> {
        if self.format != RECORD_FORMAT && self.format != RECORD_FORMAT_V1 {
            bail!(
                "format {:?}, this xtask reads {RECORD_FORMAT:?} and {RECORD_FORMAT_V1:?}",
                self.format
            );
        }
        self.validate_fields()
    }

    /// Everything but the format (a part record checks its own).
    fn validate_fields(&self) -> Result<()> {
        if self.commit.len() != 40 || !self.commit.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("commit {:?} is not a full git commit id", self.commit);
        }
        if self.platforms.is_empty() {
            bail!("it names no platform");
        }
        let planned: BTreeSet<&str> = self.planned.iter().map(String::as_str).collect();
        if planned.len() != self.planned.len() || planned.is_empty() {
            bail!("its planned variants are empty or repeated");
        }
        let platforms: BTreeSet<String> = self.platforms.iter().map(ToString::to_string).collect();
        let mut seen = BTreeSet::new();
        for variant in &self.variants {
            let name = &variant.variant;
            if !planned.contains(name.as_str()) || !seen.insert(name.as_str()) {
                bail!("variant {name:?} is not planned, or recorded twice");
            }
            let recorded: BTreeSet<String> = variant.platform_digests.keys().cloned().collect();
            if recorded != platforms {
                bail!(
                    "variant {name} records the platforms {recorded:?}, the release has {platforms:?}"
                );
            }
            if variant.tags.is_empty() {
                bail!("variant {name} has no tag to move");
            }
            for reference in &variant.tags {
                let tag = reference.tag.as_deref().unwrap_or_default();
                if reference.repository != self.repository
                    || reference.digest.is_some()
                    || tag.is_empty()
                {
                    bail!(
                        "variant {name}: {reference} is not a tag of {}",
                        self.repository
                    );
                }
                if tag.starts_with(CI_PREFIX) {
                    bail!("variant {name}: {reference} is a CI tag, which a release never writes");
                }
            }
            if let Some(stray) = variant.immutable.iter().find(|t| !variant.tags.contains(t)) {
                bail!("variant {name}: immutable tag {stray} is not one of its tags");
            }
            self.validate_builds(variant)?;
        }
        Ok(())
    }

    /// A variant's builds: none (v1, or resumed from v1) or one per platform,
    /// native exactly when built on the target platform.
    fn validate_builds(&self, variant: &RecordedVariant) -> Result<()> {
        let name = &variant.variant;
        if variant.builds.is_empty() {
            return Ok(());
        }
        if self.format == RECORD_FORMAT_V1 {
            bail!("variant {name} records builds, which a {RECORD_FORMAT_V1} record has none of");
        }
        let built: Vec<&Platform> = variant.builds.keys().collect();
        let platforms: BTreeSet<&Platform> = self.platforms.iter().collect();
        if built.iter().copied().collect::<BTreeSet<_>>() != platforms {
            bail!("variant {name} records builds of {built:?}, the release has {platforms:?}");
        }
        for (platform, build) in &variant.builds {
            if build.compile != PlatformBuild::on(build.build_platform.clone(), platform).compile {
                bail!(
                    "variant {name}: {platform} built on {} cannot be {}",
                    build.build_platform,
                    build.compile.as_str()
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
