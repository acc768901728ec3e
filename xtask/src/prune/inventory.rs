//! Reading a repository through the registry API: its tags, the manifests
//! they point to, what the configs (or, for a cache, the layers) say; and
//! the re-check of every tag right before deleting.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde_json::Value;

use super::cache::cache_facts;
use super::select::{classify, TagKind};
use super::time::parse_rfc3339;
use super::{Decision, ImageFacts, Inventory, TagRecord, FLAVOR_LABEL};
use crate::distribution::{Client, Manifest};

const ATTESTATION_TYPE: &str = "vnd.docker.reference.type";

/// Reads the repository: every tag's manifest, every index's children, and
/// the configs of every image a ci- tag points to.
pub(super) fn collect(client: &mut Client, name: &str) -> Result<Inventory> {
    let (mut inventory, manifests) = collect_tags(client, name)?;
    for (digest, manifest) in &manifests {
        if manifest.is_index() {
            inventory
                .children
                .insert(digest.clone(), child_digests(&manifest.json()?, false));
        }
    }
    let ci_digests: BTreeSet<&str> = inventory
        .tags
        .iter()
        .filter(|r| matches!(classify(&r.tag), TagKind::Ci { .. }))
        .map(|r| r.digest.as_str())
        .collect();
    for digest in ci_digests {
        let Some(manifest) = manifests.get(digest) else {
            continue;
        };
        let facts = image_facts(client, name, manifest)?;
        inventory.images.insert(digest.to_string(), facts);
    }
    Ok(inventory)
}

/// Every tag and the manifest it points to (each manifest once, by digest):
/// an inventory with only its tags, for each pass to complete.
fn collect_tags(
    client: &mut Client,
    name: &str,
) -> Result<(Inventory, BTreeMap<String, Manifest>)> {
    let mut inventory = Inventory::default();
    let mut manifests: BTreeMap<String, Manifest> = BTreeMap::new();
    for tag in client.list_tags(name)? {
        // A tag deleted since the listing is simply not there any more.
        let Some(manifest) = client.get_manifest(name, &tag)? else {
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

/// The digests an index references; without attestation manifests if asked.
fn child_digests(index: &Value, skip_attestations: bool) -> Vec<String> {
    let Some(list) = index.get("manifests").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter(|m| {
            !skip_attestations
                || m.get("annotations")
                    .and_then(|a| a.get(ATTESTATION_TYPE))
                    .and_then(Value::as_str)
                    != Some("attestation-manifest")
        })
        .filter_map(|m| m.get("digest").and_then(Value::as_str).map(String::from))
        .collect()
}

/// Creation time and production label of an image (single manifest or index).
fn image_facts(client: &mut Client, name: &str, manifest: &Manifest) -> Result<ImageFacts> {
    let json = manifest.json()?;
    let mut images = Vec::new();
    if manifest.is_index() {
        let children = child_digests(&json, true);
        if children.is_empty() {
            return Ok(ImageFacts {
                unknown_because: Some("an index without platform images".into()),
                ..ImageFacts::default()
            });
        }
        for child in children {
            let Some(child_manifest) = client.get_manifest(name, &child)? else {
                return Ok(ImageFacts {
                    unknown_because: Some(format!("its platform manifest {child} is missing")),
                    ..ImageFacts::default()
                });
            };
            images.push(child_manifest.json()?);
        }
    } else {
        images.push(json);
    }
    let mut configs = Vec::new();
    for image in &images {
        let Some(config_digest) = image
            .get("config")
            .and_then(|c| c.get("digest"))
            .and_then(Value::as_str)
        else {
            return Ok(ImageFacts {
                unknown_because: Some("a manifest without a config".into()),
                ..ImageFacts::default()
            });
        };
        let Some(bytes) = client.get_blob(name, config_digest)? else {
            return Ok(ImageFacts {
                unknown_because: Some(format!("its config blob {config_digest} is missing")),
                ..ImageFacts::default()
            });
        };
        let config: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        configs.push(config);
    }
    Ok(facts_from_configs(&configs))
}

/// The newest `created` of the configs (unknown if any lacks one) and
/// whether any is labelled production.
pub fn facts_from_configs(configs: &[Value]) -> ImageFacts {
    let mut facts = ImageFacts::default();
    let mut newest: Option<(String, i64)> = None;
    for config in configs {
        let labels = config.get("config").and_then(|c| c.get("Labels"));
        if labels
            .and_then(|l| l.get(FLAVOR_LABEL))
            .and_then(Value::as_str)
            == Some("production")
        {
            facts.production = true;
        }
        let created = config.get("created").and_then(Value::as_str);
        match created.map(|text| (text, parse_rfc3339(text))) {
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
    client: &mut Client,
    name: &str,
    before: &[TagRecord],
    delete: &mut Vec<Decision>,
    keep: &mut Vec<Decision>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let before: BTreeMap<&str, &str> = before
        .iter()
        .map(|r| (r.tag.as_str(), r.digest.as_str()))
        .collect();
    let mut now: Vec<(String, String)> = Vec::new();
    for tag in client.list_tags(name)? {
        if let Some(digest) = client.head_manifest(name, &tag)? {
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
                *digest == cosign.digest && classify(tag) != (TagKind::Cosign { target: own.clone() })
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
pub(super) fn collect_caches(client: &mut Client, name: &str) -> Result<Inventory> {
    let (mut inventory, manifests) = collect_tags(client, name)?;
    for (digest, manifest) in &manifests {
        let facts = match manifest.json() {
            Ok(json) => {
                if manifest.is_index() {
                    inventory
                        .children
                        .insert(digest.clone(), child_digests(&json, false));
                }
                cache_facts(&json)
            }
            Err(_) => ImageFacts {
                unknown_because: Some("its manifest is not JSON".into()),
                ..ImageFacts::default()
            },
        };
        inventory.images.insert(digest.clone(), facts);
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
            c
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
