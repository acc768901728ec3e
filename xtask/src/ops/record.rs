//! The release record against the world: where a release keeps its
//! record, which earlier record a run resumes from, and the checks every
//! stage that reads a record makes before acting on it (a release to this
//! repository and commit, complete, matching the registry, each image
//! built from the recorded commit). The record is untrusted input: what a
//! stage acts on is what these checks verified.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::client::registry;
use crate::context;
use crate::exec::Resumed;
use crate::model::names;
use crate::model::reference::{ImageName, Registry, Repository};
use crate::plan::record::ReleaseRecord;
use crate::plan::{recipe, Plan};

/// The repository a record must be a release to: `--registry` and
/// `--image-name`, defaulting as `release-image` does (ghcr.io/OWNER in
/// GitHub Actions).
pub fn expected_repository(
    registry: Option<&Registry>,
    image_name: &ImageName,
    context: &context::BuildContext,
) -> Result<Repository> {
    recipe::repository(registry, image_name, context, true).map_err(|_| {
        anyhow::anyhow!("name the repository the release record must be for: pass --registry (e.g. ghcr.io/acme or 127.0.0.1:5000) or set IMAGE_REGISTRY")
    })
}

/// Where releases keep their records by default, under the project root.
pub const RECORDS_DIR: &str = "target/xtask/releases";

/// `target/xtask/releases/<repository>-<version>-<commit>.json`: a re-run
/// of the same release finds it, another release never does.
pub fn default_record_path(root: &Path, plan: &Plan, revision: &str) -> PathBuf {
    let version = ReleaseRecord::for_plan(plan)
        .map(|r| r.version)
        .unwrap_or_default();
    let short: String = revision.chars().take(12).collect();
    root.join(RECORDS_DIR).join(format!(
        "{}-{}-{short}.json",
        names::slug(plan.repository.as_str()),
        names::slug(&version)
    ))
}

/// The record an earlier run of this release left, if any. A record that
/// cannot be read is refused; one of another release is refused when it was
/// named (`--record`), and started over when it is the default file.
pub fn earlier_record(plan: &Plan, path: &Path, explicit: bool) -> Result<Option<ReleaseRecord>> {
    if !path.exists() {
        return Ok(None);
    }
    let record = ReleaseRecord::read(path)?;
    match record.mismatch_with(plan) {
        None => Ok(Some(record)),
        Some(why) if explicit => bail!(
            "the release record {} does not belong to this release: {why}; nothing was built or tagged: pass the record of this release, or remove the file to start over",
            path.display()
        ),
        Some(_) => Ok(None),
    }
}

/// The recorded variants this run does not build again: the same recipe
/// and tags, and still in the registry with the recorded platform images.
/// A dry run trusts the record (it looks nothing up beyond what it prints).
pub fn resumable(
    plan: &Plan,
    record: Option<&ReleaseRecord>,
    dry_run: bool,
) -> Result<BTreeMap<String, Resumed>> {
    let mut resumed = BTreeMap::new();
    for recorded in record.map(|r| r.resumable(plan)).unwrap_or_default() {
        let present = dry_run || {
            let reference = recorded.image(&plan.repository);
            registry::fetch(&reference)?.is_some_and(|fetched| {
                fetched.document.as_index().is_some_and(|index| {
                    let listed: BTreeMap<String, String> = index
                        .images()
                        .map(|i| (i.platform_name(), i.digest.clone()))
                        .collect();
                    listed == recorded.platform_digest_texts()
                })
            })
        };
        if present {
            resumed.insert(
                recorded.variant.clone(),
                Resumed {
                    digest: recorded.digest.clone(),
                    platform_digests: recorded.platform_digests.clone(),
                },
            );
        } else {
            eprintln!(
                "note: the release record names {} for {}, which is not in the registry as recorded: it is built again",
                recorded.image(&plan.repository),
                recorded.variant
            );
        }
    }
    Ok(resumed)
}

/// What the stages that read a record expect of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordExpectation {
    /// The repository the release publishes to (`--registry`, `--image-name`).
    pub repository: Repository,
    /// The commit of this checkout: the record must be a release of it.
    pub commit: Option<String>,
    /// Whether every planned variant must be recorded (signing and
    /// promotion of a release happen for all of its variants or none).
    pub complete: bool,
}

/// Refuses, in one line, a record that is not a release of this repository
/// (and commit), is incomplete, or does not match the registry: a digest
/// missing, or an index whose platform images are not the recorded ones.
pub fn check_record(
    record: &ReleaseRecord,
    origin: &str,
    expect: &RecordExpectation,
) -> Result<()> {
    let refuse = |why: String| -> Result<()> {
        bail!("the release record {origin} does not match: {why}; nothing was signed or tagged (use the record of this release's build stage, or re-run release-image to build it again)")
    };
    if record.repository != expect.repository {
        return refuse(format!(
            "it is a release to {}, not to {} (--registry, --image-name)",
            record.repository, expect.repository
        ));
    }
    if let Some(commit) = &expect.commit {
        if &record.commit != commit {
            return refuse(format!(
                "it is a release of commit {}, and this checkout is at {commit}",
                record.commit
            ));
        }
    }
    let missing = record.missing();
    if expect.complete && !missing.is_empty() {
        return refuse(format!(
            "variant(s) {} were never pushed (their build failed)",
            missing.join(", ")
        ));
    }
    for variant in &record.variants {
        let reference = variant.image(&record.repository);
        let Some(fetched) = registry::fetch(&reference)? else {
            return refuse(format!(
                "{} is recorded as {reference}, which is not in the registry",
                variant.variant
            ));
        };
        let listed: BTreeMap<String, String> = fetched
            .document
            .as_index()
            .map(|index| {
                index
                    .images()
                    .map(|image| (image.platform_name(), image.digest.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if listed != variant.platform_digest_texts() {
            return refuse(format!(
                "{reference} ({}) holds the platform images {listed:?}, the record says {:?}",
                variant.variant, variant.platform_digests
            ));
        }
    }
    Ok(())
}

/// Signs nothing the record names that its annotations do not say is a
/// production image of the recorded commit (a record whose digest was
/// swapped for another image of the repository).
pub fn refuse_other_commits(record: &ReleaseRecord) -> Result<()> {
    for variant in &record.variants {
        let reference = variant.image(&record.repository);
        let fetched = registry::fetch_existing(&reference)?;
        let revision = fetched
            .document
            .as_index()
            .and_then(|i| {
                i.annotations
                    .get("org.opencontainers.image.revision")
                    .cloned()
            })
            .unwrap_or_default();
        if revision != record.commit {
            bail!(
                "the release record says {} is {reference}, but that image was built from {:?}, not {}: nothing was signed; use the record of this release's build stage",
                variant.variant,
                revision,
                record.commit
            );
        }
    }
    Ok(())
}
