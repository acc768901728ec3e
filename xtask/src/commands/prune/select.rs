//! The selection of `ci-` images to delete: which tags are CI tags, and a
//! pure function of the inventory and the policy that decides, with a
//! reason, about every digest a CI tag points to.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::time::format_age;
use super::{plural, CosignTag, Decision, ImageFacts, Inventory, Pass, Report, FLAVOR_LABEL};
use crate::model::tags::{self, CiTag};

/// The retention policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub older_than_seconds: u64,
    pub keep: usize,
    /// Seconds since the Unix epoch.
    pub now: i64,
}

/// What a tag is, by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagKind {
    /// `ci-<variant>` or `ci-<variant>-<unique>`.
    Ci { variant: String },
    /// A cosign tag `sha256-<hex>.sig`, `.att` or `.sbom` of the digest `sha256:<hex>`.
    Cosign { target: String },
    /// Anything else; it protects the digest it points to.
    Other,
}

/// Classifies a tag by the grammars of `model::tags`: only the exact CI
/// shapes count as CI tags (`ci-<variant>`, `ci-<variant>-pr<N>`,
/// `ci-<variant>-<short sha>`, `ci-<variant>-<short sha>-dirty`), and only
/// for a variant the repository has (`variants`, discovered from images/),
/// whatever dashes it holds: `ci-ubi9-experiment` is not the moving tag of a
/// variant `ubi9-experiment` that does not exist, so it protects its digest
/// like any tag of unknown shape.
pub fn classify(tag: &str, variants: &[String]) -> TagKind {
    if let Some(cosign) = tags::CosignTag::parse(tag) {
        return TagKind::Cosign {
            target: cosign.target,
        };
    }
    match CiTag::parse(tag) {
        Some(ci) if variants.contains(&ci.variant) => TagKind::Ci {
            variant: ci.variant,
        },
        _ => TagKind::Other,
    }
}

/// What the JSON of the image pass says of its policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeepNewest {
    pub keep_newest: usize,
}

/// The decisions about the ci- images of a repository.
pub type Selection = Report<KeepNewest>;

impl Selection {
    fn deleted_tag_count(&self) -> usize {
        self.delete.iter().map(|d| d.tags.len()).sum()
    }

    fn cosign_count(&self) -> usize {
        self.delete.iter().map(|d| d.cosign_tags.len()).sum()
    }

    /// `3 images (4 tags) and 1 cosign tag of them`
    pub(super) fn deletion_summary(&self) -> String {
        let images = self.delete.len();
        let mut text = format!(
            "{images} image{} ({} tag{})",
            plural(images),
            self.deleted_tag_count(),
            plural(self.deleted_tag_count())
        );
        let cosign = self.cosign_count();
        if cosign > 0 {
            text.push_str(&format!(
                " and {cosign} cosign tag{} of them",
                plural(cosign)
            ));
        }
        text
    }
}

impl Pass for KeepNewest {
    const UNITS: &'static str = "images";
    const HEADER_WHEN_DELETING: bool = false;

    fn header(selection: &Selection) -> String {
        format!(
            "{}: ci- images older than {} beyond the newest {} per variant",
            selection.repository_text(),
            selection.older_than,
            selection.policy.keep_newest
        )
    }

    fn delete_count(selection: &Selection) -> String {
        selection.deletion_summary()
    }

    fn keep_count(selection: &Selection) -> String {
        selection.keep.len().to_string()
    }
}

/// The selection: a pure function of the inventory and the policy.
pub fn select(inventory: &Inventory, policy: &Policy) -> Selection {
    let tags_of = tags_by_digest(inventory);

    struct Candidate<'a> {
        digest: &'a str,
        ci_tags: Vec<String>,
        variants: Vec<String>,
        facts: ImageFacts,
    }
    let mut keep: Vec<Decision> = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    for (digest, tags) in &tags_of {
        let mut ci_tags = Vec::new();
        let mut variants = BTreeSet::new();
        let mut others = Vec::new();
        for tag in tags {
            match classify(tag, &inventory.variants) {
                TagKind::Ci { variant } => {
                    ci_tags.push(tag.to_string());
                    variants.insert(variant);
                }
                _ => others.push(*tag),
            }
        }
        if ci_tags.is_empty() {
            continue;
        }
        ci_tags.sort();
        let facts = facts_of(inventory, digest, "its manifest and config were not read");
        let variants: Vec<String> = variants.into_iter().collect();
        let refuse = if !others.is_empty() {
            others.sort();
            Some(format!(
                "shares its digest with non-ci tag{} {}",
                plural(others.len()),
                others.join(", ")
            ))
        } else if facts.production {
            Some(format!("its config is labelled {FLAVOR_LABEL}=production"))
        } else if facts.created.is_none() {
            Some(format!(
                "creation time unknown ({})",
                facts
                    .unknown_because
                    .as_deref()
                    .unwrap_or("no created in its config")
            ))
        } else {
            None
        };
        match refuse {
            Some(reason) => keep.push(decision(
                digest, ci_tags, variants, &facts, policy.now, reason,
            )),
            None => candidates.push(Candidate {
                digest,
                ci_tags,
                variants,
                facts,
            }),
        }
    }

    // Rank the candidates of each variant, newest first (ties by digest, for determinism).
    let mut by_variant: BTreeMap<String, Vec<(i64, &str)>> = BTreeMap::new();
    for candidate in &candidates {
        let created = candidate
            .facts
            .created
            .as_ref()
            .map_or(i64::MIN, |(_, t)| *t);
        for variant in &candidate.variants {
            by_variant
                .entry(variant.clone())
                .or_default()
                .push((created, candidate.digest));
        }
    }
    for list in by_variant.values_mut() {
        list.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    }
    let rank = |variant: &str, digest: &str| -> usize {
        by_variant
            .get(variant)
            .and_then(|l| l.iter().position(|(_, d)| *d == digest))
            .unwrap_or(0)
            + 1
    };

    let limit = i64::try_from(policy.older_than_seconds).unwrap_or(i64::MAX);
    let limit_text = format_age(limit);
    let mut delete: Vec<Decision> = Vec::new();
    for candidate in candidates {
        let Candidate {
            digest,
            ci_tags,
            variants,
            facts,
        } = candidate;
        let created = facts.created.as_ref().map_or(0, |(_, t)| *t);
        let age = policy.now.saturating_sub(created);
        let ranks: Vec<(String, usize)> = variants
            .iter()
            .map(|v| (v.clone(), rank(v, digest)))
            .collect();
        let mut reasons = Vec::new();
        if age < limit {
            reasons.push(format!(
                "younger than {limit_text} ({} old)",
                format_age(age)
            ));
        }
        for (variant, r) in &ranks {
            if *r <= policy.keep {
                reasons.push(format!(
                    "within the newest {} of variant {variant} (rank {r})",
                    policy.keep
                ));
            }
        }
        if reasons.is_empty() {
            let ranks_text: Vec<String> = ranks
                .iter()
                .map(|(v, r)| format!("rank {r} in variant {v}"))
                .collect();
            let reason = format!(
                "{} old, older than {limit_text}; {} beyond --keep {}",
                format_age(age),
                ranks_text.join(", "),
                policy.keep
            );
            delete.push(decision(
                digest, ci_tags, variants, &facts, policy.now, reason,
            ));
        } else {
            keep.push(decision(
                digest,
                ci_tags,
                variants,
                &facts,
                policy.now,
                reasons.join("; "),
            ));
        }
    }

    keep_children_of_kept_indexes(inventory, &tags_of, &mut delete, &mut keep);

    // The cosign tags of each deleted image go with it, unless shared.
    let doomed: BTreeSet<String> = delete.iter().map(|d| d.digest.clone()).collect();
    let mut notes = Vec::new();
    let mut cosign_digests_taken = BTreeSet::new();
    for decision in &mut delete {
        for record in &inventory.tags {
            if classify(&record.tag, &inventory.variants)
                != (TagKind::Cosign {
                    target: decision.digest.clone(),
                })
            {
                continue;
            }
            let others: Vec<&str> = tags_of
                .get(record.digest.as_str())
                .map(|tags| {
                    tags.iter()
                        .copied()
                        .filter(|t| {
                            classify(t, &inventory.variants)
                                != (TagKind::Cosign {
                                    target: decision.digest.clone(),
                                })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let referenced = inventory
                .children
                .iter()
                .any(|(parent, kids)| !doomed.contains(parent) && kids.contains(&record.digest));
            if !others.is_empty() || referenced || doomed.contains(&record.digest) {
                notes.push(format!(
                    "left cosign tag {} of {}: its manifest {} is also {}",
                    record.tag,
                    decision.digest,
                    record.digest,
                    if others.is_empty() {
                        "referenced elsewhere".to_string()
                    } else {
                        format!("tagged {}", others.join(", "))
                    }
                ));
                continue;
            }
            if cosign_digests_taken.insert(record.digest.clone()) {
                // A referrers index's own manifests, unless anything else
                // tags or lists them.
                let referrers = inventory
                    .children
                    .get(&record.digest)
                    .into_iter()
                    .flatten()
                    .filter(|child| {
                        !tags_of.contains_key(child.as_str())
                            && !inventory.children.iter().any(|(parent, kids)| {
                                parent != &record.digest && kids.contains(child)
                            })
                    })
                    .cloned()
                    .collect();
                decision.cosign_tags.push(CosignTag {
                    tag: record.tag.clone(),
                    digest: record.digest.clone(),
                    referrers,
                });
            }
        }
    }

    delete.sort_by(|a, b| a.digest.cmp(&b.digest));
    keep.sort_by(|a, b| a.digest.cmp(&b.digest));
    Report::new(
        limit,
        KeepNewest {
            keep_newest: policy.keep,
        },
        delete,
        keep,
        notes,
    )
}

/// Never delete a manifest that an index we keep references: moves such
/// decisions from `delete` to `keep`, saying which index.
pub(super) fn keep_children_of_kept_indexes(
    inventory: &Inventory,
    tags_of: &BTreeMap<&str, Vec<&str>>,
    delete: &mut Vec<Decision>,
    keep: &mut Vec<Decision>,
) {
    loop {
        let doomed: BTreeSet<String> = delete.iter().map(|d| d.digest.clone()).collect();
        let protected = delete.iter().position(|d| {
            inventory
                .children
                .iter()
                .any(|(parent, kids)| !doomed.contains(parent) && kids.contains(&d.digest))
        });
        let Some(position) = protected else { break };
        let mut moved = delete.remove(position);
        let parents: Vec<String> = inventory
            .children
            .iter()
            .filter(|(parent, kids)| !doomed.contains(*parent) && kids.contains(&moved.digest))
            .map(|(parent, _)| {
                let tags = tags_of
                    .get(parent.as_str())
                    .map(|t| t.join(", "))
                    .unwrap_or_default();
                if tags.is_empty() {
                    parent.clone()
                } else {
                    format!("{parent} [{tags}]")
                }
            })
            .collect();
        moved.reason = format!("referenced by index {}, which is kept", parents.join(", "));
        keep.push(moved);
    }
}

/// The tags of every tagged digest, in the order the registry listed them.
pub(super) fn tags_by_digest(inventory: &Inventory) -> BTreeMap<&str, Vec<&str>> {
    let mut tags_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for record in &inventory.tags {
        tags_of
            .entry(record.digest.as_str())
            .or_default()
            .push(record.tag.as_str());
    }
    tags_of
}

/// What the inventory knows of a digest; unknown, for the reason given, if
/// it was not read.
pub(super) fn facts_of(inventory: &Inventory, digest: &str, unread: &str) -> ImageFacts {
    inventory
        .images
        .get(digest)
        .cloned()
        .unwrap_or_else(|| ImageFacts {
            unknown_because: Some(unread.into()),
            ..ImageFacts::default()
        })
}

/// A decision about `digest`, with its creation time and its age at `now`.
pub(super) fn decision(
    digest: &str,
    tags: Vec<String>,
    variants: Vec<String>,
    facts: &ImageFacts,
    now: i64,
    reason: String,
) -> Decision {
    Decision {
        digest: digest.to_string(),
        tags,
        variants,
        created: facts.created.as_ref().map(|(text, _)| text.clone()),
        age: facts
            .created
            .as_ref()
            .map(|(_, t)| format_age(now.saturating_sub(*t))),
        reason,
        cosign_tags: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::prune::fixtures::{
        deleted, digest, inventory, known, reason_of, tag, DAY, NOW,
    };

    fn policy(days: u64, keep: usize) -> Policy {
        Policy {
            older_than_seconds: days * DAY as u64,
            keep,
            now: NOW,
        }
    }

    fn aged(days_old: i64) -> ImageFacts {
        ImageFacts {
            created: Some((format!("{days_old} days ago"), NOW - days_old * DAY)),
            ..ImageFacts::default()
        }
    }

    #[test]
    fn classifies_tags() {
        let ci = |v: &str| TagKind::Ci { variant: v.into() };
        assert_eq!(classify("ci-chainguard", &known()), ci("chainguard"));
        assert_eq!(classify("ci-ubi9-pr42", &known()), ci("ubi9"));
        assert_eq!(
            classify("ci-distroless-abc1234", &known()),
            ci("distroless")
        );
        assert_eq!(
            classify("ci-distroless-abc1234-dirty", &known()),
            ci("distroless")
        );
        for other in [
            "latest",
            "1.2.3",
            "ci-",
            "ci--pr1",
            "ci-ubi9-feature",
            "ci-ubi9-pr",
            "ci-ubi9-abc12",
            "ci-UBI9",
            "ci-ubi9-abc1234-x",
            "xci-ubi9",
            "sha256-abc.sig",
        ] {
            assert_eq!(classify(other, &known()), TagKind::Other, "{other}");
        }
        let hex = "ab".repeat(32);
        for suffix in [".sig", ".att", ".sbom", ""] {
            assert_eq!(
                classify(&format!("sha256-{hex}{suffix}"), &known()),
                TagKind::Cosign {
                    target: format!("sha256:{hex}")
                }
            );
        }
    }

    #[test]
    fn age_limit_decides() {
        let inv = inventory(
            vec![tag("ci-a-pr1", 1), tag("ci-a-pr2", 2), tag("ci-a-pr3", 3)],
            vec![(1, aged(40)), (2, aged(31)), (3, aged(5))],
        );
        let s = select(&inv, &policy(30, 0));
        assert_eq!(deleted(&s), vec![digest(1), digest(2)]);
        assert!(
            reason_of(&s, 3).starts_with("younger than 30d (5d old)"),
            "{}",
            reason_of(&s, 3)
        );
        assert!(
            reason_of(&s, 1).contains("40d old, older than 30d"),
            "{}",
            reason_of(&s, 1)
        );
        // An image exactly at the limit is expired; a minute younger is not.
        let inv = inventory(
            vec![tag("ci-a", 1)],
            vec![(
                1,
                ImageFacts {
                    created: Some(("t".into(), NOW - 30 * DAY + 60)),
                    ..ImageFacts::default()
                },
            )],
        );
        assert!(select(&inv, &policy(30, 0)).delete.is_empty());
        let inv = inventory(vec![tag("ci-a", 1)], vec![(1, aged(30))]);
        assert_eq!(select(&inv, &policy(30, 0)).delete.len(), 1);
    }

    #[test]
    fn keeps_newest_n_per_variant() {
        let inv = inventory(
            vec![
                tag("ci-a-pr1", 1),
                tag("ci-a-pr2", 2),
                tag("ci-a-pr3", 3),
                tag("ci-a", 3),
                tag("ci-b-pr1", 4),
                tag("ci-b-pr2", 5),
            ],
            vec![
                (1, aged(300)),
                (2, aged(200)),
                (3, aged(100)),
                (4, aged(90)),
                (5, aged(80)),
            ],
        );
        let s = select(&inv, &policy(30, 2));
        assert_eq!(deleted(&s), vec![digest(1)]);
        assert!(
            reason_of(&s, 1).contains("rank 3 in variant a beyond --keep 2"),
            "{}",
            reason_of(&s, 1)
        );
        assert!(reason_of(&s, 3).contains("within the newest 2 of variant a (rank 1)"));
        assert!(reason_of(&s, 5).contains("within the newest 2 of variant b (rank 1)"));
        let s = select(&inv, &policy(30, 0));
        assert_eq!(deleted(&s).len(), 5);
        // Deleting digest 3 removes both its tags.
        let d3 = s.delete.iter().find(|d| d.digest == digest(3)).unwrap();
        assert_eq!(d3.tags, vec!["ci-a", "ci-a-pr3"]);
        assert_eq!(s.deletion_summary(), "5 images (6 tags)");
        let s = select(&inv, &policy(30, 100));
        assert!(s.delete.is_empty());
    }

    #[test]
    fn shared_digests_are_never_deleted_and_do_not_use_up_keep() {
        let inv = inventory(
            vec![
                tag("ci-a-pr1", 1),
                tag("1.0.0", 1),
                tag("ci-a-pr2", 2),
                tag("ci-a-pr3", 3),
                tag("latest", 9),
                tag("ci-a-pr9", 9),
            ],
            vec![
                (1, aged(10)),
                (2, aged(400)),
                (3, aged(500)),
                (9, aged(900)),
            ],
        );
        let s = select(&inv, &policy(1, 1));
        assert_eq!(deleted(&s), vec![digest(3)]);
        assert_eq!(reason_of(&s, 1), "shares its digest with non-ci tag 1.0.0");
        assert_eq!(reason_of(&s, 9), "shares its digest with non-ci tag latest");
        assert!(reason_of(&s, 2).contains("within the newest 1 of variant a (rank 1)"));
        // A tag of unknown shape protects like a release tag.
        let inv = inventory(
            vec![tag("ci-a-pr1", 1), tag("ci-a-experiment", 1)],
            vec![(1, aged(400))],
        );
        let s = select(&inv, &policy(1, 0));
        assert!(s.delete.is_empty());
        assert_eq!(
            reason_of(&s, 1),
            "shares its digest with non-ci tag ci-a-experiment"
        );
    }

    #[test]
    fn production_label_and_unknown_age_protect() {
        let production = ImageFacts {
            production: true,
            ..aged(400)
        };
        let inv = inventory(
            vec![tag("ci-a-pr1", 1), tag("ci-a-pr2", 2), tag("ci-a-pr3", 3)],
            vec![(1, production), (2, ImageFacts::default())],
        );
        let s = select(&inv, &policy(1, 0));
        assert!(s.delete.is_empty());
        assert_eq!(
            reason_of(&s, 1),
            format!("its config is labelled {FLAVOR_LABEL}=production")
        );
        assert!(reason_of(&s, 2).starts_with("creation time unknown"));
        assert!(reason_of(&s, 3)
            .starts_with("creation time unknown (its manifest and config were not read)"));
    }

    #[test]
    fn children_of_kept_indexes_are_kept() {
        let mut inv = inventory(
            vec![
                tag("ci-a-pr1", 1),
                tag("ci-a-pr2", 2),
                tag("1.0.0", 7),
                tag("ci-a-pr3", 3),
                tag("ci-a-pr4", 4),
            ],
            vec![(1, aged(400)), (2, aged(400)), (3, aged(1)), (4, aged(500))],
        );
        // Production index 7 references digest 1; young CI index 3 references digest 2;
        // expired CI index 4 references nothing that is kept.
        inv.children.insert(digest(7), vec![digest(1), digest(8)]);
        inv.children.insert(digest(3), vec![digest(2)]);
        inv.children.insert(digest(4), vec![digest(5)]);
        let s = select(&inv, &policy(30, 0));
        assert_eq!(deleted(&s), vec![digest(4)]);
        assert!(
            reason_of(&s, 1).starts_with(&format!("referenced by index {} [1.0.0]", digest(7))),
            "{}",
            reason_of(&s, 1)
        );
        assert!(reason_of(&s, 2).contains(&digest(3)));
        // If the parent is deleted too, the child may go.
        inv.images.insert(digest(3), aged(400));
        let s = select(&inv, &policy(30, 0));
        assert_eq!(deleted(&s), vec![digest(2), digest(3), digest(4)]);
    }

    #[test]
    fn cosign_tags_go_with_their_image_only() {
        let hex = |n: u8| format!("{n:02x}").repeat(32);
        let inv = inventory(
            vec![
                tag("ci-a-pr1", 1),
                tag(&format!("sha256-{}.sig", hex(1)), 11),
                tag(&format!("sha256-{}.att", hex(1)), 12),
                tag(&format!("sha256-{}.sbom", hex(1)), 13),
                tag("oops", 13),
                tag("1.0.0", 2),
                tag("ci-a-pr2", 2),
                tag(&format!("sha256-{}.sig", hex(2)), 21),
            ],
            vec![(1, aged(400)), (2, aged(400))],
        );
        let s = select(&inv, &policy(30, 0));
        assert_eq!(deleted(&s), vec![digest(1)]);
        let cosign: Vec<&str> = s.delete[0]
            .cosign_tags
            .iter()
            .map(|c| c.tag.as_str())
            .collect();
        assert_eq!(
            cosign,
            vec![
                format!("sha256-{}.sig", hex(1)),
                format!("sha256-{}.att", hex(1))
            ]
        );
        assert_eq!(s.notes.len(), 1);
        assert!(s.notes[0].contains("also tagged oops"), "{}", s.notes[0]);
        assert_eq!(
            s.deletion_summary(),
            "1 image (1 tag) and 2 cosign tags of them"
        );
        // The production image's signature is not even mentioned.
        assert!(!format!("{s:?}").contains(&format!("sha256-{}.sig", hex(2))));
    }

    /// cosign 3 on a registry without the referrers API: the tag
    /// `sha256-<hex>` names an index of the image's Sigstore bundles; both go
    /// with the image.
    #[test]
    fn a_referrers_tag_goes_with_its_image_and_takes_its_bundles() {
        let hex = |n: u8| format!("{n:02x}").repeat(32);
        let mut inv = inventory(
            vec![
                tag("ci-a-pr1", 1),
                tag(&format!("sha256-{}", hex(1)), 11),
                tag("ci-a-pr2", 2),
                tag(&format!("sha256-{}", hex(2)), 21),
            ],
            vec![(1, aged(400)), (2, aged(1))],
        );
        inv.children
            .insert(digest(11), vec![digest(12), digest(13)]);
        inv.children.insert(digest(21), vec![digest(22)]);
        let s = select(&inv, &policy(30, 0));
        assert_eq!(deleted(&s), vec![digest(1)]);
        let cosign = &s.delete[0].cosign_tags;
        assert_eq!(cosign.len(), 1);
        assert_eq!(cosign[0].tag, format!("sha256-{}", hex(1)));
        assert_eq!(cosign[0].referrers, vec![digest(12), digest(13)]);
        // The kept image's referrers are not touched.
        assert!(!format!("{s:?}").contains(&digest(22)));
    }

    #[test]
    fn nothing_but_ci_tags_is_ever_selected() {
        let inv = inventory(
            vec![
                tag("latest", 1),
                tag("1.0.0", 2),
                tag(&format!("sha256-{}.sig", "01".repeat(32)), 3),
            ],
            vec![],
        );
        let s = select(&inv, &policy(0, 0));
        assert!(s.delete.is_empty() && s.keep.is_empty());
    }

    #[test]
    fn json_shape() {
        let inv = inventory(
            vec![tag("ci-a-pr1", 1), tag("ci-a-pr2", 2)],
            vec![(1, aged(400)), (2, aged(1))],
        );
        let value = serde_json::to_value(select(&inv, &policy(30, 0))).unwrap();
        assert_eq!(value["delete"][0]["digest"], digest(1));
        assert_eq!(value["delete"][0]["tags"][0], "ci-a-pr1");
        assert_eq!(value["keep"][0]["variants"][0], "a");
        assert_eq!(value["keep_newest"], 0);
    }
}
