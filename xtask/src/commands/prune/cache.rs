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
    let limit_text = format_age(limit);
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
        let (candidates, protected): (Vec<_>, Vec<_>) =
            classified.iter().partition(|(_, kind)| kind.is_candidate());
        let mut decide = |doomed: bool, reason: String| {
            let made = decision(
                digest,
                all_tags.clone(),
                variants.clone(),
                &facts,
                policy.now,
                reason,
            );
            if doomed {
                delete.push(made);
            } else {
                keep.push(made);
            }
        };
        if candidates.is_empty() {
            let reasons: Vec<(&str, String)> = protected
                .iter()
                .map(|(tag, kind)| (*tag, kind.protection().to_string()))
                .collect();
            decide(false, per_tag(&reasons, tags.len() > 1));
            continue;
        }
        if !protected.is_empty() {
            let others: Vec<String> = protected
                .iter()
                .map(|(tag, kind)| format!("{tag} ({})", kind.protection()))
                .collect();
            decide(
                false,
                format!("shares its digest with {}", others.join(", ")),
            );
            continue;
        }
        let Some((_, created)) = facts.created else {
            let why = facts
                .unknown_because
                .clone()
                .unwrap_or_else(|| format!("no {CACHE_CREATED} on its layers"));
            decide(false, format!("age unknown ({why})"));
            continue;
        };
        let age = policy.now.saturating_sub(created);
        let expired = age >= limit;
        let mut doomed = Vec::new();
        let mut spared = Vec::new();
        for (tag, kind) in &candidates {
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
            decide(true, per_tag(&doomed, several));
        } else if doomed.is_empty() {
            decide(false, per_tag(&spared, several));
        } else {
            let stay: Vec<&str> = doomed.iter().map(|(tag, _)| *tag).collect();
            decide(
                false,
                format!(
                    "{}; deleting is by digest, so {} stay{} with it",
                    per_tag(&spared, several),
                    stay.join(", "),
                    if stay.len() == 1 { "s" } else { "" }
                ),
            );
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
mod tests {
    use super::*;
    use crate::commands::prune::fixtures::{
        deleted as cache_deleted, digest, inventory, reason_of as cache_reason, tag, DAY, NOW,
    };
    use crate::commands::prune::TagRecord;
    use serde_json::Value;

    /// The facts of a manifest written as JSON (shadows the real one, which takes a typed document).
    fn cache_facts(manifest: &Value) -> ImageFacts {
        let bytes = serde_json::to_vec(manifest).unwrap();
        super::cache_facts(&Document::parse(&bytes).unwrap())
    }

    fn cache_policy(older_than_seconds: u64, open: Option<&[u64]>) -> CachePolicy {
        CachePolicy {
            older_than_seconds,
            open_prs: open.map(|o| o.iter().copied().collect()),
            now: NOW,
        }
    }

    /// A cache manifest (image-manifest=true) whose layers were made `ages` seconds ago.
    fn cache_manifest(ages: &[Option<i64>]) -> Value {
        let layers: Vec<Value> = ages
            .iter()
            .map(|age| match age {
                Some(age) => serde_json::json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "annotations": { CACHE_CREATED: format_epoch(NOW - age) }
                }),
                None => serde_json::json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"
                }),
            })
            .collect();
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": CACHE_CONFIG_TYPE },
            "layers": layers
        })
    }

    /// `2027-01-15T08:00:00.123456789Z` for an epoch second (tests only, UTC).
    fn format_epoch(t: i64) -> String {
        let seconds = crate::model::time::format_rfc3339(t).unwrap();
        format!("{}.123456789Z", seconds.trim_end_matches('Z'))
    }

    fn cache_inventory(tags: Vec<TagRecord>, caches: Vec<(u8, ImageFacts)>) -> Inventory {
        inventory(tags, caches)
    }

    fn cache_aged(seconds_old: i64) -> ImageFacts {
        cache_facts(&cache_manifest(&[Some(seconds_old)]))
    }

    #[test]
    fn classifies_cache_tags() {
        let v = |s: &str| s.to_string();
        assert_eq!(
            classify_cache("ubi9-main"),
            CacheKind::DefaultBranch { variant: v("ubi9") }
        );
        assert_eq!(
            classify_cache("ubi9-pr-42"),
            CacheKind::PullRequest {
                variant: v("ubi9"),
                number: 42
            }
        );
        assert_eq!(
            classify_cache("my-variant-pr-7"),
            CacheKind::PullRequest {
                variant: v("my-variant"),
                number: 7
            }
        );
        assert_eq!(
            classify_cache("ubi9-branch-feature-x-y"),
            CacheKind::Branch { variant: v("ubi9") }
        );
        assert_eq!(
            classify_cache("ubi9-local"),
            CacheKind::Local { variant: v("ubi9") }
        );
        // Ambiguous readings delete less: a branch called "pr-3" is a branch,
        // a branch whose slug ends in -main or -local is protected.
        assert_eq!(
            classify_cache("ubi9-branch-pr-3"),
            CacheKind::Branch { variant: v("ubi9") }
        );
        assert_eq!(
            classify_cache("ubi9-branch-x-main"),
            CacheKind::DefaultBranch {
                variant: v("ubi9-branch-x")
            }
        );
        assert!(matches!(
            classify_cache("ubi9-branch-local"),
            CacheKind::Local { .. }
        ));
        for other in [
            "main",
            "-main",
            "latest",
            "ubi9",
            "ubi9-pr-",
            "ubi9-pr-x",
            "ubi9-pr-007",
            "ubi9-pr-1a",
            "ubi9-pr-99999999999999999999999",
            "-pr-1",
            "pr-1",
            "ubi9-branch-",
            "ubi9-branch-Feature",
            "ubi9-branch--x",
            "ci-ubi9-pr1",
            "sha256-abc.sig",
        ] {
            assert_eq!(classify_cache(other), CacheKind::Other, "{other}");
            assert!(!classify_cache(other).is_candidate(), "{other}");
        }
        assert!(!classify_cache("ubi9-main").is_candidate());
        assert!(!classify_cache("ubi9-local").is_candidate());
        // Exactly the scopes the cache policy writes.
        use crate::context::BuildRef;
        for (build_ref, candidate) in [
            (BuildRef::PullRequest(12), true),
            (BuildRef::Branch("feature/New_thing".into()), true),
            (BuildRef::Branch(DEFAULT_BRANCH.into()), false),
        ] {
            let scope = crate::plan::cache::scope(&build_ref, true)
                .map(|s| s.to_string())
                .unwrap_or_default();
            let kind = classify_cache(&format!("chainguard-{scope}"));
            assert_eq!(kind.is_candidate(), candidate, "{scope}: {kind:?}");
            assert_eq!(kind.variant(), Some("chainguard"), "{scope}");
        }
        let local = crate::plan::cache::scope(&BuildRef::Detached, false)
            .map(|s| s.to_string())
            .unwrap_or_default();
        assert!(matches!(
            classify_cache(&format!("ubi9-{local}")),
            CacheKind::Local { .. }
        ));
    }

    #[test]
    fn open_prs_parse_or_are_refused() {
        let set = |n: &[u64]| n.iter().copied().collect::<BTreeSet<u64>>();
        assert_eq!(parse_open_prs("12,15").unwrap(), set(&[12, 15]));
        assert_eq!(parse_open_prs(" 3 , 1,3 ").unwrap(), set(&[1, 3]));
        assert_eq!(parse_open_prs("7").unwrap(), set(&[7]));
        assert_eq!(parse_open_prs("none").unwrap(), set(&[]));
        for bad in [
            "1,,2",
            "1,",
            ",1",
            "#1",
            "1 2",
            "1\n2",
            "-1",
            "+1",
            "0",
            "1.5",
            "x",
            "all",
            "99999999999999999999999",
        ] {
            let err = parse_open_prs(bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("malformed --open-prs {bad:?}: expected")),
                "{err}"
            );
            assert!(
                err.contains("--open-prs none") && !err.contains('\n'),
                "{err}"
            );
        }
        for empty in ["", "  "] {
            let err = parse_open_prs(empty).unwrap_err().to_string();
            assert!(err.starts_with("empty --open-prs"), "{err}");
            assert!(err.contains("--open-prs none"), "{err}");
        }
    }

    #[test]
    fn cache_age_is_its_newest_layer() {
        let facts = cache_facts(&cache_manifest(&[Some(90 * DAY), Some(3 * DAY), None]));
        assert_eq!(facts.created.as_ref().map(|c| c.1), Some(NOW - 3 * DAY));
        assert_eq!(
            facts.created.map(|c| c.0),
            Some(format_epoch(NOW - 3 * DAY))
        );
        // The real format, nanoseconds and all.
        let real = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": CACHE_CONFIG_TYPE },
            "layers": [{ "annotations": { CACHE_CREATED: "2026-11-25T17:25:33.991851638Z" } }]
        });
        assert_eq!(
            cache_facts(&real).created.map(|c| c.1),
            parse_rfc3339("2026-11-25T17:25:33Z")
        );
        // The older export format: an index whose entries are the config and the layers.
        let legacy = serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                { "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                  "annotations": { CACHE_CREATED: format_epoch(NOW - DAY) } },
                { "mediaType": CACHE_CONFIG_TYPE }
            ]
        });
        assert_eq!(cache_facts(&legacy).created.map(|c| c.1), Some(NOW - DAY));
        // Unknown: no createdat at all, an unreadable one, or not a cache.
        let none = cache_facts(&cache_manifest(&[None, None]));
        assert_eq!(none.created, None);
        assert_eq!(
            none.unknown_because.as_deref(),
            Some("no buildkit/createdat on its layers")
        );
        let mut garbled = cache_manifest(&[Some(DAY)]);
        garbled["layers"][0]["annotations"][CACHE_CREATED] = "yesterday".into();
        assert!(cache_facts(&garbled)
            .unknown_because
            .is_some_and(|w| w.contains("unreadable buildkit/createdat")));
        let image = serde_json::json!({
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json" },
            "layers": [{ "annotations": { CACHE_CREATED: format_epoch(NOW - DAY) } }]
        });
        let facts = cache_facts(&image);
        assert_eq!(facts.created, None);
        assert!(facts
            .unknown_because
            .is_some_and(|w| w.starts_with("not a BuildKit cache manifest")));
    }

    #[test]
    fn cache_age_decides_without_open_prs() {
        let inv = cache_inventory(
            vec![
                tag("a-pr-1", 1),
                tag("a-pr-2", 2),
                tag("a-branch-feature", 3),
                tag("a-branch-other", 4),
            ],
            vec![
                (1, cache_aged(8 * DAY)),
                (2, cache_aged(DAY)),
                (3, cache_aged(7 * DAY)),
                (4, cache_aged(7 * DAY - 60)),
            ],
        );
        let s = select_caches(&inv, &cache_policy(7 * DAY as u64, None));
        assert_eq!(cache_deleted(&s), vec![digest(1), digest(3)]);
        assert_eq!(cache_reason(&s, 1), "8d old, older than 7d");
        assert_eq!(cache_reason(&s, 3), "7d old, older than 7d");
        assert_eq!(cache_reason(&s, 2), "younger than 7d (1d old)");
        assert_eq!(cache_reason(&s, 4), "younger than 7d (6d23h old)");
        assert_eq!(s.policy.open_prs, None);
        let d1 = s.delete.iter().find(|d| d.digest == digest(1)).unwrap();
        assert_eq!(d1.variants, vec!["a"]);
        assert_eq!(d1.age.as_deref(), Some("8d"));
        assert_eq!(d1.created, Some(format_epoch(NOW - 8 * DAY)));
    }

    #[test]
    fn closed_pull_requests_go_whatever_their_age() {
        let inv = cache_inventory(
            vec![
                tag("a-pr-1", 1),
                tag("a-pr-2", 2),
                tag("a-pr-3", 3),
                tag("a-branch-feature", 4),
                tag("b-pr-2", 5),
            ],
            vec![
                (1, cache_aged(60)),
                (2, cache_aged(60)),
                (3, cache_aged(30 * DAY)),
                (4, cache_aged(60)),
                (5, cache_aged(30 * DAY)),
            ],
        );
        let s = select_caches(&inv, &cache_policy(7 * DAY as u64, Some(&[1, 3])));
        // pr-2 closed (young and old), pr-3 open but expired; pr-1 open and young;
        // a branch is not a pull request: only age counts for it.
        assert_eq!(cache_deleted(&s), vec![digest(2), digest(3), digest(5)]);
        assert_eq!(
            cache_reason(&s, 2),
            "pull request 2 is not open (not in --open-prs)"
        );
        assert_eq!(
            cache_reason(&s, 5),
            "pull request 2 is not open (not in --open-prs); 30d old, older than 7d"
        );
        assert_eq!(cache_reason(&s, 3), "30d old, older than 7d");
        assert_eq!(
            cache_reason(&s, 1),
            "pull request 1 is open; younger than 7d (1m old)"
        );
        assert_eq!(cache_reason(&s, 4), "younger than 7d (1m old)");
        assert_eq!(s.policy.open_prs, Some(vec![1, 3]));
        // --open-prs none: every pull request is closed.
        let s = select_caches(&inv, &cache_policy(7 * DAY as u64, Some(&[])));
        assert_eq!(
            cache_deleted(&s),
            vec![digest(1), digest(2), digest(3), digest(5)]
        );
    }

    #[test]
    fn the_default_branch_and_local_caches_are_never_deleted() {
        let inv = cache_inventory(
            vec![
                tag("a-main", 1),
                tag("b-main", 2),
                tag("a-local", 3),
                tag("latest", 4),
                tag("a-pr-9", 5),
            ],
            vec![
                (1, cache_aged(900 * DAY)),
                (2, ImageFacts::default()),
                (3, cache_aged(900 * DAY)),
                (4, cache_aged(900 * DAY)),
                (5, cache_aged(900 * DAY)),
            ],
        );
        for open in [None, Some(&[][..])] {
            let s = select_caches(&inv, &cache_policy(0, open));
            assert_eq!(cache_deleted(&s), vec![digest(5)]);
            assert_eq!(
                cache_reason(&s, 1),
                "the default branch's cache, never deleted"
            );
            assert_eq!(
                cache_reason(&s, 2),
                "the default branch's cache, never deleted"
            );
            assert_eq!(
                cache_reason(&s, 3),
                "a laptop's cache (scope local), never deleted"
            );
            assert_eq!(
                cache_reason(&s, 4),
                "not a pull request or branch cache tag, never deleted"
            );
            // The main cache is reported with its age.
            let main = s.keep.iter().find(|d| d.digest == digest(1)).unwrap();
            assert_eq!(main.age.as_deref(), Some("900d"));
        }
    }

    #[test]
    fn shared_cache_digests_are_deleted_only_with_every_tag_on_them() {
        let inv = cache_inventory(
            vec![
                tag("a-main", 1),
                tag("a-pr-1", 1),
                tag("a-pr-2", 2),
                tag("a-pr-3", 2),
                tag("b-pr-4", 3),
                tag("b-pr-5", 3),
                tag("c-pr-6", 4),
                tag("c-weird", 4),
            ],
            vec![
                (1, cache_aged(90 * DAY)),
                (2, cache_aged(60)),
                (3, cache_aged(60)),
                (4, cache_aged(90 * DAY)),
            ],
        );
        let s = select_caches(&inv, &cache_policy(7 * DAY as u64, Some(&[3])));
        // 1: shares main's digest; 2: pr-3 open and young, so pr-2 (closed) cannot go
        // (deleting is by digest); 3: both closed; 4: an unknown tag protects.
        assert_eq!(cache_deleted(&s), vec![digest(3)]);
        assert_eq!(
            cache_reason(&s, 1),
            "shares its digest with a-main (the default branch's cache, never deleted)"
        );
        assert_eq!(
            cache_reason(&s, 2),
            "a-pr-3: pull request 3 is open; younger than 7d (1m old); \
             deleting is by digest, so a-pr-2 stays with it"
        );
        assert_eq!(
            cache_reason(&s, 3),
            "b-pr-4: pull request 4 is not open (not in --open-prs); \
             b-pr-5: pull request 5 is not open (not in --open-prs)"
        );
        assert!(cache_reason(&s, 4).starts_with("shares its digest with c-weird ("));
        let d3 = &s.delete[0];
        assert_eq!(d3.tags, vec!["b-pr-4", "b-pr-5"]);
        assert_eq!(
            cache_count(&s.delete.iter().collect::<Vec<_>>()),
            "2 cache refs (1 manifest)"
        );
        assert_eq!(
            cache_count(&s.keep.iter().collect::<Vec<_>>()),
            "6 cache refs (3 manifests)"
        );
        // A kept index protects the manifests it references.
        let mut inv = inv;
        inv.tags.push(tag("d-other", 7));
        inv.children.insert(digest(7), vec![digest(3)]);
        let s = select_caches(&inv, &cache_policy(7 * DAY as u64, Some(&[3])));
        assert!(s.delete.is_empty());
        assert!(cache_reason(&s, 3).starts_with(&format!("referenced by index {}", digest(7))));
    }

    #[test]
    fn cache_of_unknown_age_is_kept_even_when_closed() {
        let no_createdat = cache_facts(&cache_manifest(&[None]));
        let inv = cache_inventory(
            vec![tag("a-pr-1", 1), tag("a-pr-2", 2), tag("a-branch-x", 3)],
            vec![(1, no_createdat.clone()), (2, no_createdat)],
        );
        let s = select_caches(&inv, &cache_policy(0, Some(&[])));
        assert!(s.delete.is_empty());
        assert_eq!(
            cache_reason(&s, 1),
            "age unknown (no buildkit/createdat on its layers)"
        );
        assert_eq!(
            cache_reason(&s, 3),
            "age unknown (its manifest was not read)"
        );
        assert_eq!(s.keep.len(), 3);
    }

    #[test]
    fn cache_json_shape() {
        let inv = cache_inventory(
            vec![tag("a-main", 1), tag("a-pr-2", 2)],
            vec![(1, cache_aged(DAY)), (2, cache_aged(60))],
        );
        let value =
            serde_json::to_value(select_caches(&inv, &cache_policy(3600, Some(&[5, 1])))).unwrap();
        assert_eq!(value["delete"][0]["digest"], digest(2));
        assert_eq!(value["delete"][0]["tags"][0], "a-pr-2");
        assert_eq!(value["delete"][0]["age"], "1m");
        assert_eq!(
            value["delete"][0]["reason"],
            "pull request 2 is not open (not in --open-prs)"
        );
        assert!(value["delete"][0].get("cosign_tags").is_none());
        assert_eq!(value["keep"][0]["tags"][0], "a-main");
        assert_eq!(value["keep"][0]["variants"][0], "a");
        assert_eq!(value["open_prs"], serde_json::json!([1, 5]));
        assert_eq!(value["older_than"], "1h");
        let value = serde_json::to_value(select_caches(&inv, &cache_policy(3600, None))).unwrap();
        assert!(value["open_prs"].is_null());
        assert!(value["delete"].as_array().unwrap().is_empty());
    }
}
