//! The tests of cache.rs: the selection as a pure function of an inventory.

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
