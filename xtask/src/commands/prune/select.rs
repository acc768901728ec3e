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

/// A digest only CI tags point to, which the age and `--keep` decide.
struct Candidate<'a> {
    digest: &'a str,
    ci_tags: Vec<String>,
    variants: Vec<String>,
    facts: ImageFacts,
}

/// The selection: a pure function of the inventory and the policy.
pub fn select(inventory: &Inventory, policy: &Policy) -> Selection {
    let tags_of = tags_by_digest(inventory);
    let (candidates, mut keep) = candidates(inventory, &tags_of, policy);
    let ranks = Ranks::of(&candidates);
    let limit = i64::try_from(policy.older_than_seconds).unwrap_or(i64::MAX);
    let mut delete: Vec<Decision> = Vec::new();
    for candidate in candidates {
        let (doomed, decision) = decide(candidate, &ranks, limit, policy);
        if doomed {
            delete.push(decision);
        } else {
            keep.push(decision);
        }
    }
    keep_children_of_kept_indexes(inventory, &tags_of, &mut delete, &mut keep);
    let notes = attach_cosign_tags(inventory, &tags_of, &mut delete);
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

/// The digests CI tags point to: those nothing protects are candidates;
/// the others are kept, saying why (another tag, the production label, an
/// unknown creation time).
fn candidates<'a>(
    inventory: &Inventory,
    tags_of: &BTreeMap<&'a str, Vec<&'a str>>,
    policy: &Policy,
) -> (Vec<Candidate<'a>>, Vec<Decision>) {
    let (mut candidates, mut keep) = (Vec::new(), Vec::new());
    for (digest, tags) in tags_of {
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
        match protection(&mut others, &facts) {
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
    (candidates, keep)
}

/// Why a digest CI tags point to is kept whatever its age, if it is.
fn protection(others: &mut [&str], facts: &ImageFacts) -> Option<String> {
    if !others.is_empty() {
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
    }
}

/// The candidates of each variant, newest first (ties by digest, for
/// determinism).
struct Ranks<'a>(BTreeMap<String, Vec<(i64, &'a str)>>);

impl<'a> Ranks<'a> {
    fn of(candidates: &[Candidate<'a>]) -> Ranks<'a> {
        let mut by_variant: BTreeMap<String, Vec<(i64, &str)>> = BTreeMap::new();
        for candidate in candidates {
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
        Ranks(by_variant)
    }

    /// 1 for the newest candidate of the variant.
    fn rank(&self, variant: &str, digest: &str) -> usize {
        self.0
            .get(variant)
            .and_then(|l| l.iter().position(|(_, d)| *d == digest))
            .unwrap_or(0)
            + 1
    }
}

/// Whether a candidate is deleted (older than the limit and beyond
/// `--keep` in every variant), and the decision saying why.
fn decide(candidate: Candidate, ranks: &Ranks, limit: i64, policy: &Policy) -> (bool, Decision) {
    let Candidate {
        digest,
        ci_tags,
        variants,
        facts,
    } = candidate;
    let limit_text = format_age(limit);
    let created = facts.created.as_ref().map_or(0, |(_, t)| *t);
    let age = policy.now.saturating_sub(created);
    let ranks: Vec<(String, usize)> = variants
        .iter()
        .map(|v| (v.clone(), ranks.rank(v, digest)))
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
    let doomed = reasons.is_empty();
    let reason = if doomed {
        let ranks_text: Vec<String> = ranks
            .iter()
            .map(|(v, r)| format!("rank {r} in variant {v}"))
            .collect();
        format!(
            "{} old, older than {limit_text}; {} beyond --keep {}",
            format_age(age),
            ranks_text.join(", "),
            policy.keep
        )
    } else {
        reasons.join("; ")
    };
    let decision = decision(digest, ci_tags, variants, &facts, policy.now, reason);
    (doomed, decision)
}

/// The cosign tags of each deleted image go with it, unless their
/// manifest is shared (another tag, an index kept, another deleted image):
/// returns the notes on those left.
fn attach_cosign_tags(
    inventory: &Inventory,
    tags_of: &BTreeMap<&str, Vec<&str>>,
    delete: &mut [Decision],
) -> Vec<String> {
    let doomed: BTreeSet<String> = delete.iter().map(|d| d.digest.clone()).collect();
    let mut notes = Vec::new();
    let mut cosign_digests_taken = BTreeSet::new();
    for decision in delete {
        let of_this = TagKind::Cosign {
            target: decision.digest.clone(),
        };
        for record in &inventory.tags {
            if classify(&record.tag, &inventory.variants) != of_this {
                continue;
            }
            let others: Vec<&str> = tags_of
                .get(record.digest.as_str())
                .map(|tags| {
                    tags.iter()
                        .copied()
                        .filter(|t| classify(t, &inventory.variants) != of_this)
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
    notes
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
mod tests;
