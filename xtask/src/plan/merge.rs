//! The merge of a release's part records (one per runner, each some of the
//! release's platforms of every variant) into its release record: a pure
//! function of the release plan (derived again from the checkout and the
//! flags, as `promote` derives the tags) and the parts, which are untrusted
//! input (they travel between jobs as artifacts, written by jobs that run
//! third-party build scripts). Every refusal happens here, in one line,
//! before the registry is asked anything: parts of different commits,
//! repositories, versions, sources, variants, recipes or tags; parts of
//! another release than this checkout's; a platform no part holds, or two
//! parts hold; a part of no platform; a part that lacks a variant (its build
//! did not finish).
//!
//! Per variant, the merged index holds the parts' indexes' images and
//! attestation manifests, the sources sorted by platform, with the release
//! plan's index annotations (`--annotation index:K=V`, the ones the
//! single-runner path writes; imagetools does not carry the parts' over).
//! The same parts give the same index, byte for byte. One part holding
//! every platform is taken as it is (a pass-through: no new index).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde::Serialize;

use crate::model::names::Platform;
use crate::model::reference::{Digest, ImageRef, Repository};
use crate::plan::record::{PartRecord, PlatformBuild, RecordedVariant, ReleaseRecord};
use crate::plan::{Plan, Recipe, VariantPlan};

/// A part record and where it came from (its file, in messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub origin: String,
    pub record: PartRecord,
}

/// What the merge does: per variant, the parts' indexes to combine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergePlan {
    pub repository: Repository,
    pub variants: Vec<VariantMerge>,
}

/// One variant's merged index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantMerge {
    pub variant: String,
    /// The parts' indexes, sorted by platform: the merged index's sources.
    pub sources: Vec<Source>,
    /// The merged index's annotations: the release plan's.
    pub annotations: BTreeMap<String, String>,
    /// Every platform image the merged index holds.
    pub platform_digests: BTreeMap<String, Digest>,
    /// How each platform was built, as its part says.
    pub builds: BTreeMap<Platform, PlatformBuild>,
}

/// One part's index of a variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// The part record it is named in.
    pub origin: String,
    pub index: Digest,
    /// The platform images it holds, as its part records them.
    pub platform_digests: BTreeMap<String, Digest>,
}

impl VariantMerge {
    /// The one part's index, when one part holds every platform: the
    /// merged index is that index as it is.
    pub fn pass_through(&self) -> Option<&Source> {
        match self.sources.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// The sources by digest, in the merged index's order.
    pub fn source_images(&self, repository: &Repository) -> Vec<ImageRef> {
        self.sources
            .iter()
            .map(|s| repository.at(&s.index))
            .collect()
    }
}

/// The refusal of a merge, in one line.
fn refuse(why: String) -> anyhow::Error {
    anyhow::anyhow!("cannot merge the part records: {why}; nothing was pushed, signed or tagged")
}

/// The merge of `parts` into the release `release` plans (see the module
/// comment), or the refusal.
pub fn plan(release: &Plan, parts: &[Part]) -> Result<MergePlan> {
    let Some(first) = parts.first() else {
        return Err(refuse(
            "no part record given (--part FILE, one per runner)".into(),
        ));
    };
    if let Some(empty) = parts.iter().find(|p| p.record.part.is_empty()) {
        return Err(refuse(format!("{} holds no platform", empty.origin)));
    }
    for other in &parts[1..] {
        refuse_disagreement(first, other)?;
    }
    refuse_other_release(release, first)?;
    refuse_platforms(&release_platforms(release), parts)?;
    let variants = release
        .variants
        .iter()
        .map(|variant| variant_merge(variant, parts))
        .collect::<Result<Vec<_>>>()?;
    Ok(MergePlan {
        repository: release.repository.clone(),
        variants,
    })
}

fn release_platforms(release: &Plan) -> Vec<Platform> {
    release
        .variants
        .first()
        .map(|v| v.policy.platforms.clone())
        .unwrap_or_default()
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The facts every part of one release shares, named.
fn facts(part: &PartRecord) -> [(&'static str, String); 6] {
    [
        ("repository", part.repository.to_string()),
        ("commit", part.commit.clone()),
        ("version", part.version.clone()),
        ("source", part.source.clone()),
        ("platforms", join(&part.platforms)),
        ("variants", part.planned.join(", ")),
    ]
}

/// Two parts of one release agree on everything but their platforms.
fn refuse_disagreement(first: &Part, other: &Part) -> Result<()> {
    let (a, b) = (&first.record, &other.record);
    for ((what, left), (_, right)) in facts(a).into_iter().zip(facts(b)) {
        if left != right {
            return Err(refuse(format!(
                "they are not parts of one release: {} has the {what} {left:?}, {} {right:?}",
                first.origin, other.origin
            )));
        }
    }
    for ours in &a.variants {
        let Some(theirs) = b.variants.iter().find(|v| v.variant == ours.variant) else {
            continue;
        };
        let between = format!("{} and {}", first.origin, other.origin);
        if let Some(why) = recipe_difference(&ours.recipe, &theirs.recipe) {
            return Err(refuse(format!(
                "{between} built {} differently: {why}",
                ours.variant
            )));
        }
        if ours.tags != theirs.tags || ours.immutable != theirs.immutable {
            return Err(refuse(format!(
                "{between} give {} other tags: {} against {}",
                ours.variant,
                join(&ours.tags),
                join(&theirs.tags)
            )));
        }
    }
    Ok(())
}

/// What differs between two recipes, named (the first difference found).
fn recipe_difference(a: &Recipe, b: &Recipe) -> Option<String> {
    if a.dockerfile != b.dockerfile || a.context != b.context {
        return Some(format!(
            "{} in {} against {} in {}",
            a.dockerfile, a.context, b.dockerfile, b.context
        ));
    }
    for (what, left, right) in [
        ("build arg", &a.build_args, &b.build_args),
        ("named context", &a.named_contexts, &b.named_contexts),
    ] {
        let keys: BTreeSet<&String> = left.keys().chain(right.keys()).collect();
        for key in keys {
            let (l, r) = (left.get(key), right.get(key));
            if l != r {
                let shown =
                    |v: Option<&String>| v.map_or("unset".to_string(), |v| format!("{v:?}"));
                return Some(format!("{what} {key} is {} against {}", shown(l), shown(r)));
            }
        }
    }
    None
}

/// The parts are of the release this checkout (and the flags) plans: its
/// repository, commit, version, source, platforms, variants, recipes, tags.
fn refuse_other_release(release: &Plan, first: &Part) -> Result<()> {
    let fresh = ReleaseRecord::for_plan(release)?;
    let planned = PartRecord::of(fresh, &release_platforms(release))?;
    let mine = Part {
        origin:
            "this checkout's release (merge-release's flags: pass those the parts were built with)"
                .into(),
        record: planned,
    };
    refuse_disagreement(first, &mine)?;
    for variant in &release.variants {
        let Some(recorded) = first
            .record
            .variants
            .iter()
            .find(|v| v.variant == variant.variant)
        else {
            continue;
        };
        let expected = ReleaseRecord::entry(release, variant, &recorded.digest, BTreeMap::new());
        let planned_part = Part {
            record: PartRecord {
                variants: vec![expected],
                ..mine.record.clone()
            },
            ..mine.clone()
        };
        refuse_disagreement(first, &planned_part)?;
    }
    Ok(())
}

/// Every platform of the release is in exactly one part.
fn refuse_platforms(platforms: &[Platform], parts: &[Part]) -> Result<()> {
    let mut holder: BTreeMap<&Platform, &str> = BTreeMap::new();
    for part in parts {
        for platform in &part.record.part {
            if let Some(earlier) = holder.insert(platform, &part.origin) {
                return Err(refuse(format!(
                    "{platform} is given twice, by {earlier} and {}: pass one part per platform",
                    part.origin
                )));
            }
        }
    }
    let missing: Vec<&Platform> = platforms
        .iter()
        .filter(|p| !holder.contains_key(p))
        .collect();
    if !missing.is_empty() {
        let given: Vec<String> = parts
            .iter()
            .map(|p| format!("{} ({})", p.origin, p.record.describe_part()))
            .collect();
        return Err(refuse(format!(
            "no part holds {} (given: {}): pass every runner's part, or re-run the build that failed",
            join(&missing),
            given.join(", ")
        )));
    }
    Ok(())
}

/// One variant's sources, annotations, platform images and builds.
fn variant_merge(variant: &VariantPlan, parts: &[Part]) -> Result<VariantMerge> {
    let name = &variant.variant;
    let mut sources = Vec::new();
    let mut merged = VariantMerge {
        variant: name.clone(),
        sources: Vec::new(),
        annotations: variant.policy.annotations.clone(),
        platform_digests: BTreeMap::new(),
        builds: BTreeMap::new(),
    };
    for part in parts {
        let Some(recorded) = part.record.variants.iter().find(|v| &v.variant == name) else {
            return Err(refuse(format!(
                "{} holds no {name} of {}: its build did not finish (re-run it; it resumes from its part record), then merge",
                part.origin,
                part.record.describe_part()
            )));
        };
        let first = part.record.part.iter().min().cloned();
        sources.push((first, source(part, recorded)));
        merged
            .platform_digests
            .extend(recorded.platform_digests.clone());
        merged.builds.extend(recorded.builds.clone());
    }
    sources.sort_by(|(a, _), (b, _)| a.cmp(b));
    merged.sources = sources.into_iter().map(|(_, s)| s).collect();
    Ok(merged)
}

fn source(part: &Part, recorded: &RecordedVariant) -> Source {
    Source {
        origin: part.origin.clone(),
        index: recorded.digest.clone(),
        platform_digests: recorded.platform_digests.clone(),
    }
}

#[cfg(test)]
mod tests;
