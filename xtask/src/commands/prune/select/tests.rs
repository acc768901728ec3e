//! The tests of select.rs: the selection as a pure function of an inventory.

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
