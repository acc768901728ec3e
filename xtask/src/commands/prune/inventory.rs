//! Reading a repository through the registry client: its tags, the
//! manifests they point to, what the configs (or, for a cache, the layers)
//! say; and the re-check of every tag right before deleting.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use super::cache::cache_facts;
use super::select::{classify, TagKind};
use super::{Decision, ImageFacts, Inventory, TagRecord, FLAVOR_LABEL};
use crate::client::registry::{self, Fetched};
use crate::model::oci::{Document, ImageConfig};
use crate::model::reference::{Digest, Repository};
use crate::model::time::parse_rfc3339;

/// Reads the repository: every tag's manifest, every index's children, and
/// the configs of every image a ci- tag points to.
pub(super) fn collect(repository: &Repository, variants: Vec<String>) -> Result<Inventory> {
    let (mut inventory, manifests) = collect_tags(repository)?;
    inventory.variants = variants;
    for (digest, manifest) in &manifests {
        if let Some(index) = manifest.document.as_index() {
            let children = index.manifests.iter().map(|m| m.digest.clone()).collect();
            inventory.children.insert(digest.clone(), children);
        }
    }
    let ci_digests: BTreeSet<&str> = inventory
        .tags
        .iter()
        .filter(|r| matches!(classify(&r.tag, &inventory.variants), TagKind::Ci { .. }))
        .map(|r| r.digest.as_str())
        .collect();
    for digest in ci_digests {
        let Some(manifest) = manifests.get(digest) else {
            continue;
        };
        let facts = image_facts(repository, manifest)?;
        inventory.images.insert(digest.to_string(), facts);
    }
    Ok(inventory)
}

/// Every tag and the manifest it points to (each manifest once, by digest):
/// an inventory with only its tags, for each pass to complete.
fn collect_tags(repository: &Repository) -> Result<(Inventory, BTreeMap<String, Fetched>)> {
    let mut inventory = Inventory::default();
    let mut manifests: BTreeMap<String, Fetched> = BTreeMap::new();
    for tag in registry::list_tags(repository)? {
        // A tag deleted since the listing is simply not there any more.
        let Some(manifest) = registry::fetch(&repository.tagged(&tag)?)? else {
            continue;
        };
        inventory.tags.push(TagRecord {
            tag,
            digest: manifest.digest.clone(),
        });
        manifests.entry(manifest.digest.clone()).or_insert(manifest);
    }
    Ok((inventory, manifests))
}

/// Creation time and production label of an image (single manifest or index).
fn image_facts(repository: &Repository, manifest: &Fetched) -> Result<ImageFacts> {
    let unknown = |why: String| ImageFacts {
        unknown_because: Some(why),
        ..ImageFacts::default()
    };
    let mut images = Vec::new();
    match &manifest.document {
        Document::Index(index) => {
            if index.images().next().is_none() {
                return Ok(unknown("an index without platform images".into()));
            }
            for child in index.images() {
                let digest: Digest = child.digest.parse()?;
                match registry::fetch(&repository.at(&digest))? {
                    Some(Fetched {
                        document: Document::Manifest(_),
                        ..
                    }) => images.push(child.digest.clone()),
                    Some(_) => {
                        return Ok(unknown(format!(
                            "its platform entry {} is not an image manifest",
                            child.digest
                        )))
                    }
                    None => {
                        return Ok(unknown(format!(
                            "its platform manifest {} is missing",
                            child.digest
                        )))
                    }
                }
            }
        }
        Document::Manifest(_) => images.push(manifest.digest.clone()),
    }
    let mut configs = Vec::new();
    for digest in &images {
        match registry::config(&repository.at(&digest.parse()?))? {
            Some(config) => configs.push(config),
            None => return Ok(unknown(format!("the config of {digest} is missing"))),
        }
    }
    Ok(facts_from_configs(&configs))
}

/// The newest `created` of the configs (unknown if any lacks one) and
/// whether any is labelled production.
pub fn facts_from_configs(configs: &[ImageConfig]) -> ImageFacts {
    let mut facts = ImageFacts::default();
    let mut newest: Option<(String, i64)> = None;
    for config in configs {
        if config.label(FLAVOR_LABEL) == Some("production") {
            facts.production = true;
        }
        match config
            .created
            .as_deref()
            .map(|text| (text, parse_rfc3339(text)))
        {
            Some((text, Some(t))) => {
                if newest.as_ref().is_none_or(|(_, n)| t > *n) {
                    newest = Some((text.to_string(), t));
                }
            }
            Some((text, None)) => {
                facts.unknown_because = Some(format!("unreadable created {text:?} in its config"));
            }
            None => facts.unknown_because = Some("no created in its config".into()),
        }
    }
    if facts.unknown_because.is_none() {
        facts.created = newest;
    }
    facts
}

/// Resolves every tag again right before deleting: a candidate that any tag
/// not in its own set now points to is kept, and so is a cosign manifest.
pub(super) fn recheck(
    repository: &Repository,
    inventory: &Inventory,
    delete: &mut Vec<Decision>,
    keep: &mut Vec<Decision>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let before: BTreeMap<&str, &str> = inventory
        .tags
        .iter()
        .map(|r| (r.tag.as_str(), r.digest.as_str()))
        .collect();
    let mut now: Vec<(String, String)> = Vec::new();
    for tag in registry::list_tags(repository)? {
        if let Some(digest) = registry::resolve_digest(&repository.tagged(&tag)?)? {
            now.push((tag, digest));
        }
    }
    let mut kept = Vec::new();
    delete.retain(|decision| {
        let newcomer = now.iter().find(|(tag, digest)| {
            *digest == decision.digest
                && before.get(tag.as_str()) != Some(&decision.digest.as_str())
        });
        match newcomer {
            Some((tag, _)) => {
                let mut moved = decision.clone();
                moved.reason = format!("tag {tag} was moved onto it during this run");
                moved.cosign_tags.clear();
                kept.push(moved);
                false
            }
            None => true,
        }
    });
    for decision in delete.iter_mut() {
        let own = &decision.digest;
        decision.cosign_tags.retain(|cosign| {
            let intruder = now.iter().find(|(tag, digest)| {
                *digest == cosign.digest
                    && classify(tag, &inventory.variants) != (TagKind::Cosign { target: own.clone() })
            });
            if let Some((tag, _)) = intruder {
                notes.push(format!(
                    "left cosign tag {} of {own}: tag {tag} was moved onto its manifest during this run",
                    cosign.tag
                ));
            }
            intruder.is_none()
        });
    }
    keep.extend(kept);
    keep.sort_by(|a, b| a.digest.cmp(&b.digest));
    Ok(())
}

/// Reads the cache repository: every tag's manifest (which carries the
/// layers' `buildkit/createdat`, so no blob is fetched) and every index's children.
pub(super) fn collect_caches(repository: &Repository) -> Result<Inventory> {
    let (mut inventory, manifests) = collect_tags(repository)?;
    for (digest, manifest) in &manifests {
        if let Some(index) = manifest.document.as_index() {
            let children = index.manifests.iter().map(|m| m.digest.clone()).collect();
            inventory.children.insert(digest.clone(), children);
        }
        inventory
            .images
            .insert(digest.clone(), cache_facts(&manifest.document));
    }
    Ok(inventory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_give_newest_created_and_production_label() {
        let config = |created: Option<&str>, flavor: &str| {
            let mut c = serde_json::json!({ "config": { "Labels": { FLAVOR_LABEL: flavor } } });
            if let Some(created) = created {
                c["created"] = created.into();
            }
            ImageConfig::parse(&serde_json::to_vec(&c).unwrap()).unwrap()
        };
        let facts = facts_from_configs(&[
            config(Some("2020-01-01T00:00:00Z"), "ci"),
            config(Some("2021-01-01T00:00:00Z"), "ci"),
        ]);
        assert_eq!(
            facts.created,
            Some(("2021-01-01T00:00:00Z".into(), 1_609_459_200))
        );
        assert!(!facts.production);
        assert!(
            facts_from_configs(&[config(Some("2020-01-01T00:00:00Z"), "production")]).production
        );
        let unknown = facts_from_configs(&[
            config(Some("2020-01-01T00:00:00Z"), "ci"),
            config(None, "ci"),
        ]);
        assert_eq!(unknown.created, None);
        assert!(unknown.unknown_because.is_some());
        assert_eq!(
            facts_from_configs(&[config(Some("garbage"), "ci")]).created,
            None
        );
    }
}
