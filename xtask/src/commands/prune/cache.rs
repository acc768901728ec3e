//! `--cache`: the registry cache repository REG/NAME-buildcache. Which
//! tags are pull request and branch caches, how old a cache is, the
//! selection (a pure function of the inventory and the policy) and the run.

use std::collections::BTreeSet;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use super::inventory::collect_caches;
use super::select::{decision, facts_of, keep_children_of_kept_indexes, tags_by_digest};
use super::time::format_age;
use super::{
    plural, prune, refuse_ghcr, Decision, ImageFacts, Inventory, Pass, PruneOptions, Report,
};
use crate::model::oci::Document;
use crate::model::tags::{self, CacheScope, DEFAULT_BRANCH, REGISTRY_CACHE_SUFFIX};
use crate::model::time::{now_seconds, parse_rfc3339};

/// The config media type of a BuildKit registry cache manifest.
const CACHE_CONFIG_TYPE: &str = "application/vnd.buildkit.cacheconfig.v0";
/// The layer annotation in which BuildKit records when a cached layer was made.
const CACHE_CREATED: &str = "buildkit/createdat";
const OPEN_PRS_HINT: &str = "expected the open pull request numbers separated by commas, e.g. --open-prs 12,15 \
     (gh pr list --state open --json number --jq 'map(.number) | join(\",\")'), or --open-prs none when no pull request is open";

/// What a tag of the cache repository is, by its name `<variant>-<scope>`
/// (the grammar of `model::tags::CacheTag`, which the cache policy writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheKind {
    /// `<variant>-main`: the default branch's cache, which every build reads. Never deleted.
    DefaultBranch { variant: String },
    /// `<variant>-pr-<N>`: a pull request's cache. A candidate.
    PullRequest { variant: String, number: u64 },
    /// `<variant>-branch-<slug>`: another branch's cache (GitHub Actions). A candidate, by age only.
    Branch { variant: String },
    /// `<variant>-local`: a laptop's cache. Never deleted.
    Local { variant: String },
    /// Anything else. Never deleted, and it protects the digest it points to.
    Other,
}

impl CacheKind {
    fn is_candidate(&self) -> bool {
        matches!(
            self,
            CacheKind::PullRequest { .. } | CacheKind::Branch { .. }
        )
    }

    fn variant(&self) -> Option<&str> {
        match self {
            CacheKind::DefaultBranch { variant }
            | CacheKind::PullRequest { variant, .. }
            | CacheKind::Branch { variant }
            | CacheKind::Local { variant } => Some(variant),
            CacheKind::Other => None,
        }
    }

    /// Why a tag that is not a candidate stays.
    fn protection(&self) -> &'static str {
        match self {
            CacheKind::DefaultBranch { .. } => "the default branch's cache, never deleted",
            CacheKind::Local { .. } => "a laptop's cache (scope local), never deleted",
            _ => "not a pull request or branch cache tag, never deleted",
        }
    }
}

/// Classifies a tag of the cache repository by the cache tag grammar.
/// Where a tag could be read two ways, the reading that deletes less wins
/// (see `model::tags::CacheTag::parse`).
pub fn classify_cache(tag: &str) -> CacheKind {
    let Some(parsed) = tags::CacheTag::parse(tag) else {
        return CacheKind::Other;
    };
    let variant = parsed.variant;
    match parsed.scope {
        CacheScope::DefaultBranch => CacheKind::DefaultBranch { variant },
        CacheScope::PullRequest(number) => CacheKind::PullRequest { variant, number },
        CacheScope::Branch(_) => CacheKind::Branch { variant },
        CacheScope::Local => CacheKind::Local { variant },
    }
}

/// `12,15` (spaces around the numbers allowed) or `none`. An empty list is
/// refused: it is what a failed `$(gh pr list ...)` leaves behind, and it
/// would make every pull request look closed.
pub fn parse_open_prs(text: &str) -> Result<BTreeSet<u64>> {
    let trimmed = text.trim();
    if trimmed == "none" {
        return Ok(BTreeSet::new());
    }
    if trimmed.is_empty() {
        bail!("empty --open-prs: {OPEN_PRS_HINT} (an empty list is refused: it is what a failed command substitution leaves)");
    }
    trimmed
        .split(',')
        .map(|part| {
            let part = part.trim();
            let number = if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse::<u64>().ok().filter(|n| *n > 0)
            } else {
                None
            };
            number.ok_or_else(|| anyhow::anyhow!("malformed --open-prs {text:?}: {OPEN_PRS_HINT}"))
        })
        .collect()
}

/// The age of a BuildKit cache manifest: the newest `buildkit/createdat`
/// among its layers (BuildKit records no export time). Unknown (so never
/// deleted) for a manifest that is not a BuildKit cache, for one without any
/// `buildkit/createdat`, and for one with an unreadable one. Both export
/// formats are read: an image manifest (`image-manifest=true`) and the older
/// index whose entries are the layers.
pub fn cache_facts(manifest: &Document) -> ImageFacts {
    let unknown = |why: String| ImageFacts {
        unknown_because: Some(why),
        ..ImageFacts::default()
    };
    let descriptors = match manifest {
        Document::Manifest(m) if m.config.media_type == CACHE_CONFIG_TYPE => &m.layers,
        Document::Index(index)
            if index
                .manifests
                .iter()
                .any(|d| d.media_type == CACHE_CONFIG_TYPE) =>
        {
            &index.manifests
        }
        Document::Manifest(m) => {
            return unknown(format!(
                "not a BuildKit cache manifest: config media type {}",
                if m.config.media_type.is_empty() {
                    "missing"
                } else {
                    &m.config.media_type
                }
            ))
        }
        Document::Index(_) => {
            return unknown("not a BuildKit cache manifest: config media type missing".to_string())
        }
    };
    let mut newest: Option<(String, i64)> = None;
    for descriptor in descriptors {
        let Some(created) = descriptor.annotations.get(CACHE_CREATED) else {
            continue;
        };
        let Some(t) = parse_rfc3339(created) else {
            return unknown(format!("unreadable {CACHE_CREATED} {created:?} on a layer"));
        };
        if newest.as_ref().is_none_or(|(_, n)| t > *n) {
            newest = Some((created.clone(), t));
        }
    }
    match newest {
        Some(created) => ImageFacts {
            created: Some(created),
            ..ImageFacts::default()
        },
        None => unknown(format!("no {CACHE_CREATED} on its layers")),
    }
}

/// The cache retention policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    pub older_than_seconds: u64,
    /// The pull requests still open; `None` when unknown (only age counts).
    pub open_prs: Option<BTreeSet<u64>>,
    /// Seconds since the Unix epoch.
    pub now: i64,
}

/// What the JSON of the cache pass says of its policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenPrs {
    /// The pull requests given as open; `null` without --open-prs.
    pub open_prs: Option<Vec<u64>>,
}

/// The decisions about a cache repository (REGISTRY/NAME-buildcache).
pub type CacheSelection = Report<OpenPrs>;

/// `3 cache refs (2 manifests)`
fn cache_count(decisions: &[&Decision]) -> String {
    let refs: usize = decisions.iter().map(|d| d.tags.len()).sum();
    format!(
        "{refs} cache ref{} ({} manifest{})",
        plural(refs),
        decisions.len(),
        plural(decisions.len())
    )
}

/// One reason per tag, prefixed by the tag only when the digest has several.
fn per_tag(reasons: &[(&str, String)], several: bool) -> String {
    match reasons {
        [(_, only)] if !several => only.clone(),
        _ => reasons
            .iter()
            .map(|(tag, reason)| format!("{tag}: {reason}"))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// The selection of caches: a pure function of the inventory and the policy.
pub fn select_caches(inventory: &Inventory, policy: &CachePolicy) -> CacheSelection {
    let mut tags_of = tags_by_digest(inventory);
    // Sorted and deduplicated here only: the image pass keeps the registry's order.
    for tags in tags_of.values_mut() {
        tags.sort_unstable();
        tags.dedup();
    }
    let limit = i64::try_from(policy.older_than_seconds).unwrap_or(i64::MAX);
    let mut delete = Vec::new();
    let mut keep = Vec::new();
    for (digest, tags) in &tags_of {
        let classified: Vec<(&str, CacheKind)> =
            tags.iter().map(|tag| (*tag, classify_cache(tag))).collect();
        let variants: Vec<String> = classified
            .iter()
            .filter_map(|(_, kind)| kind.variant().map(String::from))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let all_tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        let facts = facts_of(inventory, digest, "its manifest was not read");
        let (doomed, reason) = verdict(&classified, &facts, policy, limit);
        let made = decision(digest, all_tags, variants, &facts, policy.now, reason);
        if doomed {
            delete.push(made);
        } else {
            keep.push(made);
        }
    }
    keep_children_of_kept_indexes(inventory, &tags_of, &mut delete, &mut keep);
    delete.sort_by(|a, b| a.digest.cmp(&b.digest));
    keep.sort_by(|a, b| a.digest.cmp(&b.digest));
    let open_prs = OpenPrs {
        open_prs: policy
            .open_prs
            .as_ref()
            .map(|open| open.iter().copied().collect()),
    };
    Report::new(limit, open_prs, delete, keep, Vec::new())
}

/// Whether the cache manifest the `classified` tags point to is deleted,
/// and why: never if any of its tags is protected or its age is unknown;
/// else by its age and the pull requests still open.
fn verdict(
    classified: &[(&str, CacheKind)],
    facts: &ImageFacts,
    policy: &CachePolicy,
    limit: i64,
) -> (bool, String) {
    let (candidates, protected): (Vec<_>, Vec<_>) =
        classified.iter().partition(|(_, kind)| kind.is_candidate());
    if candidates.is_empty() {
        let reasons: Vec<(&str, String)> = protected
            .iter()
            .map(|(tag, kind)| (*tag, kind.protection().to_string()))
            .collect();
        return (false, per_tag(&reasons, classified.len() > 1));
    }
    if !protected.is_empty() {
        let others: Vec<String> = protected
            .iter()
            .map(|(tag, kind)| format!("{tag} ({})", kind.protection()))
            .collect();
        return (
            false,
            format!("shares its digest with {}", others.join(", ")),
        );
    }
    let Some(created) = facts.created.as_ref().map(|(_, t)| *t) else {
        let why = facts
            .unknown_because
            .clone()
            .unwrap_or_else(|| format!("no {CACHE_CREATED} on its layers"));
        return (false, format!("age unknown ({why})"));
    };
    let age = policy.now.saturating_sub(created);
    by_age_and_open_prs(&candidates, age, policy, limit)
}

/// The verdict on a manifest only candidate tags point to, `age` old:
/// deleted when every tag on it goes (expired, or a pull request not open).
fn by_age_and_open_prs(
    candidates: &[&(&str, CacheKind)],
    age: i64,
    policy: &CachePolicy,
    limit: i64,
) -> (bool, String) {
    let limit_text = format_age(limit);
    let expired = age >= limit;
    let mut doomed = Vec::new();
    let mut spared = Vec::new();
    for (tag, kind) in candidates {
        let number = match kind {
            CacheKind::PullRequest { number, .. } => Some(*number),
            _ => None,
        };
        let open = match (&policy.open_prs, number) {
            (Some(open), Some(n)) => Some(open.contains(&n)),
            _ => None,
        };
        let mut why = Vec::new();
        if let (Some(false), Some(n)) = (open, number) {
            why.push(format!("pull request {n} is not open (not in --open-prs)"));
        }
        if expired {
            why.push(format!("{} old, older than {limit_text}", format_age(age)));
        }
        if why.is_empty() {
            let young = format!("younger than {limit_text} ({} old)", format_age(age));
            spared.push(match (open, number) {
                (Some(true), Some(n)) => (*tag, format!("pull request {n} is open; {young}")),
                _ => (*tag, young),
            });
        } else {
            doomed.push((*tag, why.join("; ")));
        }
    }
    // Deleting removes the digest and so every tag on it: all must go.
    let several = candidates.len() > 1;
    if spared.is_empty() {
        (true, per_tag(&doomed, several))
    } else if doomed.is_empty() {
        (false, per_tag(&spared, several))
    } else {
        let stay: Vec<&str> = doomed.iter().map(|(tag, _)| *tag).collect();
        let reason = format!(
            "{}; deleting is by digest, so {} stay{} with it",
            per_tag(&spared, several),
            stay.join(", "),
            if stay.len() == 1 { "s" } else { "" }
        );
        (false, reason)
    }
}

pub(super) fn run_cache(args: &PruneOptions) -> Result<()> {
    let open_prs = args.open_prs.as_deref().map(parse_open_prs).transpose()?;
    if args.registry.name().ends_with(REGISTRY_CACHE_SUFFIX) {
        bail!(
            "--registry {} names a cache repository: with --cache give the image repository REG/NAME, \
             whose cache repository REG/NAME{REGISTRY_CACHE_SUFFIX} is pruned",
            args.registry
        );
    }
    refuse_ghcr(&args.registry)?;
    let policy = CachePolicy {
        older_than_seconds: args.older_than.seconds(),
        open_prs,
        now: now_seconds()?,
    };
    let repository = args.registry.with_suffix(REGISTRY_CACHE_SUFFIX)?;
    prune(
        args,
        &repository,
        |repository| {
            collect_caches(repository).with_context(|| {
                format!(
                    "cannot read the cache repository {repository} (--cache prunes REG/NAME{REGISTRY_CACHE_SUFFIX}, \
                     where builds with --cache registry write)"
                )
            })
        },
        |inventory| select_caches(inventory, &policy),
    )
}

impl Pass for OpenPrs {
    const UNITS: &'static str = "cache manifests";
    const HEADER_WHEN_DELETING: bool = true;

    fn header(selection: &CacheSelection) -> String {
        cache_header(selection)
    }

    fn delete_count(selection: &CacheSelection) -> String {
        cache_count(&selection.delete.iter().collect::<Vec<_>>())
    }

    fn keep_count(selection: &CacheSelection) -> String {
        cache_count(&selection.keep.iter().collect::<Vec<_>>())
    }
}

/// What a cache run looks for, in one line.
fn cache_header(selection: &CacheSelection) -> String {
    let closed = match &selection.policy.open_prs {
        None => String::new(),
        Some(open) if open.is_empty() => {
            "caches of pull requests not open (none is open), and ".to_string()
        }
        Some(open) => {
            let open: Vec<String> = open.iter().map(u64::to_string).collect();
            format!(
                "caches of pull requests not open (open: {}), and ",
                open.join(", ")
            )
        }
    };
    format!(
        "{}: {closed}pull request and branch caches older than {}; never the default branch's \
         (<variant>-{DEFAULT_BRANCH}); --keep does not apply to caches",
        selection.repository_text(),
        selection.older_than
    )
}

#[cfg(test)]
mod tests;
