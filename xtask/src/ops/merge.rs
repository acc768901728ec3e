//! The merge of a release's part records against the registry (the plan is
//! `plan::merge`'s, whose refusals come first and touch nothing): every
//! part's index is read back and checked before anything is pushed (it
//! exists, holds the platform images its part records, an attestation
//! manifest for each, and exactly the release plan's index annotations),
//! then per variant the merged index is made: `imagetools create --dry-run`
//! gives its bytes, their digest is the index's, it is pushed by that
//! digest (untagged) unless the registry holds it already (a re-run), and
//! read back by it. One part of every platform passes through. Nothing is
//! signed or tagged here.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _, Result};

use crate::client::process::Invocation;
use crate::client::{imagetools, registry};
use crate::model::oci::{Document, Index};
use crate::model::reference::{Digest, ImageRef, Repository};
use crate::plan::merge::{MergePlan, VariantMerge};

/// How a variant's merged index came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// One part held every platform: its index is the release's.
    PassThrough,
    /// Pushed now.
    Created,
    /// The registry held it already (a re-run of the merge).
    Found,
}

/// A variant's merged index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub variant: String,
    pub digest: Digest,
    pub how: How,
}

fn refuse(why: String) -> anyhow::Error {
    anyhow::anyhow!("cannot merge the part records: {why}; nothing was pushed, signed or tagged")
}

/// Checks every part's index, then makes each variant's merged index (see
/// the module comment).
pub fn merge(plan: &MergePlan) -> Result<Vec<Merged>> {
    check_sources(plan)?;
    let mut merged: Vec<Merged> = Vec::new();
    for variant in &plan.variants {
        let made = merge_variant(&plan.repository, variant).map_err(|err| {
            let pushed: Vec<String> = merged
                .iter()
                .filter(|m| m.how == How::Created)
                .map(|m| plan.repository.at(&m.digest).to_string())
                .collect();
            anyhow::anyhow!(
                "merging {} failed ({err:#}); pushed already, untagged: {}; nothing was signed or tagged: fix the cause and run merge-release again (it finds what it pushed)",
                variant.variant,
                if pushed.is_empty() { "none".to_string() } else { pushed.join(" ") }
            )
        })?;
        merged.push(made);
    }
    Ok(merged)
}

/// Every part's index, read back: refused in one line before anything is
/// pushed when one is missing or is not what its part records.
pub fn check_sources(plan: &MergePlan) -> Result<()> {
    for variant in &plan.variants {
        for source in &variant.sources {
            let image = plan.repository.at(&source.index);
            let Some(fetched) = registry::fetch(&image)? else {
                return Err(refuse(format!(
                    "{} names {image} for {}, which is not in the registry",
                    source.origin, variant.variant
                )));
            };
            let Some(index) = fetched.document.as_index() else {
                return Err(refuse(format!(
                    "{image} ({} of {}) is not an image index",
                    variant.variant, source.origin
                )));
            };
            if let Some(problem) =
                index_problem(index, &source.platform_digests, &variant.annotations)
            {
                return Err(refuse(format!(
                    "{image} ({} of {}) {problem}",
                    variant.variant, source.origin
                )));
            }
        }
    }
    Ok(())
}

/// What is wrong with an index that must hold exactly `images` (platform ->
/// digest), an attestation manifest for each, and the annotations
/// `annotations`; `None` when nothing is.
pub fn index_problem(
    index: &Index,
    images: &BTreeMap<String, Digest>,
    annotations: &BTreeMap<String, String>,
) -> Option<String> {
    let listed: BTreeMap<String, String> = index
        .images()
        .map(|i| (i.platform_name(), i.digest.clone()))
        .collect();
    let expected: BTreeMap<String, String> = images
        .iter()
        .map(|(p, d)| (p.clone(), d.to_string()))
        .collect();
    if listed != expected {
        return Some(format!(
            "holds the platform images {listed:?}, its part records {expected:?}"
        ));
    }
    let unattested: Vec<&String> = images
        .iter()
        .filter(|(_, digest)| index.attestation_for(digest.as_str()).is_none())
        .map(|(platform, _)| platform)
        .collect();
    if !unattested.is_empty() {
        return Some(format!(
            "has no attestation manifest (provenance, SBOM) for {unattested:?}"
        ));
    }
    if &index.annotations != annotations {
        let keys: std::collections::BTreeSet<&String> =
            index.annotations.keys().chain(annotations.keys()).collect();
        let differing: Vec<String> = keys
            .into_iter()
            .filter(|k| index.annotations.get(*k) != annotations.get(*k))
            .map(|k| {
                format!(
                    "{k} is {:?} where the release has {:?}",
                    index.annotations.get(k),
                    annotations.get(k)
                )
            })
            .collect();
        return Some(format!(
            "is annotated otherwise than this release: {}",
            differing.join(", ")
        ));
    }
    None
}

/// One variant's merged index: the one part's, or made from the parts'.
fn merge_variant(repository: &Repository, variant: &VariantMerge) -> Result<Merged> {
    let merged = |digest: Digest, how: How| Merged {
        variant: variant.variant.clone(),
        digest,
        how,
    };
    if let Some(only) = variant.pass_through() {
        return Ok(merged(only.index.clone(), How::PassThrough));
    }
    let sources = variant.source_images(repository);
    let bytes = imagetools::dry_run(&sources, &variant.annotations)?;
    let digest: Digest = registry::manifest_digest(&bytes)?.parse()?;
    let document =
        Document::parse(&bytes).context("imagetools create --dry-run printed no index")?;
    let problem = |document: &Document| match document.as_index() {
        Some(index) => index_problem(index, &variant.platform_digests, &variant.annotations),
        None => Some("is not an image index".to_string()),
    };
    if let Some(problem) = problem(&document) {
        bail!("the index imagetools would make {problem}");
    }
    let target = repository.at(&digest);
    if registry::fetch(&target)?.is_some() {
        eprintln!(
            "{}: the merged index {target} is in the registry already",
            variant.variant
        );
        return Ok(merged(digest, How::Found));
    }
    imagetools::create(&sources, &variant.annotations, &target)?;
    // imagetools pushes to the digest of what it made, whatever --tag says:
    // read back by the one computed (fetch checks the content's digest).
    let Some(pushed) = registry::fetch(&target)? else {
        bail!("imagetools create pushed no {target}: the index it made is not the one its dry run printed");
    };
    if let Some(problem) = problem(&pushed.document) {
        bail!("the merged index {target} {problem}");
    }
    eprintln!("{}: merged index {target} pushed", variant.variant);
    Ok(merged(digest, How::Created))
}

/// The commands a merge runs, as `--dry-run` prints them: every part's
/// index read back, then per variant the dry run, the push by the digest it
/// gives (`<digest:VARIANT>`) and the read-back.
pub fn commands(plan: &MergePlan) -> Vec<Invocation> {
    let mut commands: Vec<Invocation> = plan
        .variants
        .iter()
        .flat_map(|v| v.source_images(&plan.repository))
        .map(|image| registry::inspect_command(&image))
        .collect();
    for variant in plan.variants.iter().filter(|v| v.pass_through().is_none()) {
        let sources = variant.source_images(&plan.repository);
        let target: ImageRef = plan.repository.at(&Digest::placeholder(&variant.variant));
        commands.push(imagetools::create_command(
            &sources,
            &variant.annotations,
            None,
        ));
        commands.push(registry::inspect_command(&target));
        commands.push(imagetools::create_command(
            &sources,
            &variant.annotations,
            Some(&target),
        ));
        commands.push(registry::inspect_command(&target));
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::oci::Descriptor;

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    /// A part's index as BuildKit makes it: the image, its attestation manifest.
    fn index(annotations: &BTreeMap<String, String>, attested: bool) -> Index {
        let mut manifests = vec![Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: digest('1').to_string(),
            size: 1,
            platform: Some("linux/amd64".parse().unwrap()),
            annotations: BTreeMap::new(),
        }];
        if attested {
            manifests.push(Descriptor {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: digest('a').to_string(),
                size: 1,
                platform: None,
                annotations: BTreeMap::from([
                    (
                        "vnd.docker.reference.type".into(),
                        "attestation-manifest".into(),
                    ),
                    (
                        "vnd.docker.reference.digest".into(),
                        digest('1').to_string(),
                    ),
                ]),
            });
        }
        Index {
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            manifests,
            annotations: annotations.clone(),
        }
    }

    #[test]
    fn a_part_index_must_hold_its_images_attested_and_the_releases_annotations() {
        let images = BTreeMap::from([("linux/amd64".to_string(), digest('1'))]);
        let annotations = BTreeMap::from([(
            "org.opencontainers.image.revision".to_string(),
            "abc".to_string(),
        )]);
        assert_eq!(
            index_problem(&index(&annotations, true), &images, &annotations),
            None
        );
        let unattested = index_problem(&index(&annotations, false), &images, &annotations);
        assert!(unattested.unwrap().contains("no attestation manifest"));
        let other = BTreeMap::from([(
            "org.opencontainers.image.revision".to_string(),
            "def".to_string(),
        )]);
        let relabelled = index_problem(&index(&other, true), &images, &annotations).unwrap();
        assert!(
            relabelled.contains("org.opencontainers.image.revision is Some(\"def\") where the release has Some(\"abc\")"),
            "{relabelled}"
        );
        let arm64 = BTreeMap::from([("linux/arm64".to_string(), digest('1'))]);
        assert!(
            index_problem(&index(&annotations, true), &arm64, &annotations)
                .unwrap()
                .contains("holds the platform images")
        );
    }
}
