//! The deploy gate, the checks `verify`, `promote` and `release-image`
//! share: an image passes only if it is a production image as
//! `release-image` makes them: an index holding every required platform,
//! labelled production on every platform, with SLSA provenance and an SBOM
//! attached for every platform, whose provenance agrees with its labels and
//! annotations (the source repository and the revision it was built from),
//! and signed on its index digest by the expected signer, in either format
//! (a `.sig` signature or a Sigstore bundle, `signature.rs`). Anything else
//! is a problem of the verdict, every reason found.

mod checks;
mod signature;

use std::collections::BTreeMap;

use anyhow::Result;

use crate::client::registry::{self, Attestation, Fetched};
use crate::model::names::Platform;
use crate::model::oci::ImageConfig;
use crate::model::reference::{Digest, ImageRef};
use crate::model::tags::CI_PREFIX;
use crate::plan::record::{RecordedVariant, ReleaseRecord};

pub use checks::{
    label_problems, origin_problems, provenance_origin, provenance_problems, sbom_problems, Claim,
};
pub use signature::{check_signature, prepare_signer, SignatureCheck};

/// What a release record says an image is, checked against what it says itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub variant: String,
    pub commit: String,
    pub version: String,
    /// Per platform, the image manifest digest.
    pub platform_digests: BTreeMap<String, String>,
}

impl Recorded {
    pub fn of(record: &ReleaseRecord, variant: &RecordedVariant) -> Recorded {
        Recorded {
            variant: variant.variant.clone(),
            commit: record.commit.clone(),
            version: record.version.clone(),
            platform_digests: variant.platform_digest_texts(),
        }
    }
}

/// The gate's finding on one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// As asked for (tag or digest).
    pub image: String,
    /// The index digest it resolved to.
    pub digest: String,
    pub platforms: Vec<String>,
    /// Every reason it must not be deployed; empty: it passed.
    pub problems: Vec<String>,
}

/// Runs the gate on every variant of a record, by digest.
pub fn gate_record(
    record: &ReleaseRecord,
    signature: Option<&SignatureCheck>,
    platforms: &[Platform],
) -> Result<Vec<Verdict>> {
    let mut verdicts = Vec::new();
    for variant in &record.variants {
        let image = variant.image(&record.repository);
        let recorded = Recorded::of(record, variant);
        let mut verdict = check_image(&image, signature, platforms, Some(&recorded))?;
        verdict.image = format!("{} ({})", variant.variant, verdict.image);
        verdicts.push(verdict);
    }
    Ok(verdicts)
}

/// The one-line refusal of a gate that did not pass: which variant failed
/// which check, that no tag moved, and how to finish or abandon.
pub fn gate_failure(
    record: &ReleaseRecord,
    verdicts: &[Verdict],
    finish: &str,
) -> Option<anyhow::Error> {
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.problems.is_empty())
        .map(|v| format!("{}: {}", v.image, v.problems.join("; ")))
        .collect();
    if failed.is_empty() {
        return None;
    }
    let digests: Vec<String> = record
        .variants
        .iter()
        .map(|v| v.image(&record.repository).to_string())
        .collect();
    Some(anyhow::anyhow!(
        "the gate refused {} of {} variant(s), so no tag moves: {} | to finish: {finish}; to abandon: nothing to undo, no tag points at the untagged digests {}",
        failed.len(),
        verdicts.len(),
        failed.join(" | "),
        digests.join(" ")
    ))
}

/// What an image holds, as the gate reads it: its index annotations, the
/// platforms it lists, and each platform's config.
struct Contents {
    annotations: BTreeMap<String, String>,
    listed: Vec<String>,
    configs: Vec<(String, ImageConfig)>,
}

/// Reads what `fetched` (the image `image` resolved to) holds; what is wrong
/// with it (not an index, platform images other than `recorded`'s) goes
/// into `problems`.
fn contents(
    image: &ImageRef,
    fetched: &Fetched,
    recorded: Option<&Recorded>,
    problems: &mut Vec<String>,
) -> Result<Contents> {
    let Some(index) = fetched.document.as_index() else {
        problems.push("it is a single-platform image, not a multi-platform index".to_string());
        let by_digest = image.repository.at(&fetched.digest.parse()?);
        let config = registry::config(&by_digest)?.unwrap_or_default();
        return Ok(Contents {
            annotations: BTreeMap::new(),
            listed: Vec::new(),
            configs: vec![("the image".to_string(), config)],
        });
    };
    let mut configs = Vec::new();
    for entry in index.images() {
        let config =
            registry::config(&image.repository.at(&entry.digest.parse()?))?.unwrap_or_default();
        configs.push((entry.platform_name(), config));
    }
    if let Some(recorded) = recorded {
        let actual: BTreeMap<String, String> = index
            .images()
            .map(|e| (e.platform_name(), e.digest.clone()))
            .collect();
        if actual != recorded.platform_digests {
            problems.push(format!(
                "its platform images {actual:?} are not the recorded {:?}",
                recorded.platform_digests
            ));
        }
    }
    Ok(Contents {
        annotations: index.annotations.clone(),
        listed: index.platforms(),
        configs,
    })
}

/// Every check of the gate on one image (by tag or digest); `recorded`: what
/// its release record says it is. Registry errors are errors; everything
/// the image gets wrong is a problem of the verdict.
pub fn check_image(
    image: &ImageRef,
    signature: Option<&SignatureCheck>,
    platforms: &[Platform],
    recorded: Option<&Recorded>,
) -> Result<Verdict> {
    let mut problems = Vec::new();
    if let Some(tag) = image.tag.as_deref().filter(|t| t.starts_with(CI_PREFIX)) {
        problems.push(format!(
            "it is tagged {tag:?}, a CI tag (CI images are never deployed)"
        ));
    }
    let fetched = registry::fetch_existing(image)?;
    let digest: Digest = fetched.digest.parse()?;
    if let Some(expected) = &image.digest {
        if expected != &digest {
            problems.push(format!(
                "it resolves to {digest}, not the requested {expected}"
            ));
        }
    }
    let by_digest = image.repository.at(&digest);
    let contents = contents(image, &fetched, recorded, &mut problems)?;
    let (annotations, listed, configs) = (contents.annotations, contents.listed, contents.configs);
    for platform in platforms {
        if !listed.contains(&platform.to_string()) {
            problems.push(format!(
                "it has no {platform} image (it has: {})",
                if listed.is_empty() {
                    "one unnamed platform".into()
                } else {
                    listed.join(", ")
                }
            ));
        }
    }
    problems.extend(label_problems(&configs));
    let provenance = registry::attestation(&by_digest, Attestation::Provenance)?;
    problems.extend(provenance_problems(&provenance, &listed));
    let sbom = registry::attestation(&by_digest, Attestation::Sbom)?;
    problems.extend(sbom_problems(&sbom, &listed));
    problems.extend(origin_problems(
        &annotations,
        &configs,
        &provenance,
        &listed,
        recorded,
    ));
    match signature {
        Some(check) => {
            if let Err(reason) = check_signature(check, &by_digest, &digest)? {
                problems.push(format!(
                    "its signature does not verify as {} ({reason})",
                    check.signer.describe()
                ));
            }
        }
        None => eprintln!("warning: {by_digest}: no signature checked (--sign none)"),
    }
    Ok(Verdict {
        image: image.to_string(),
        digest: digest.to_string(),
        platforms: listed,
        problems,
    })
}
