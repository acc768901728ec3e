//! Tests of the module above (a file of its own: `#[cfg(test)] mod tests;`).
#![cfg(test)]

use super::*;
use crate::plan::record::tests::{digest, plan as release_plan, COMMIT};

const HEX: &[char] = &['a', 'b', 'c', 'd', 'e', 'f', '3', '4', '5', '6'];

fn platforms(texts: &[&str]) -> Vec<Platform> {
    texts.iter().map(|t| t.parse().unwrap()).collect()
}

/// The part record a runner of `release` writes for `built` (every variant
/// pushed, each platform built natively); `n` tells its indexes apart.
fn part(release: &Plan, built: &[&str], n: usize) -> Part {
    let built = platforms(built);
    let mut sub = release.clone();
    for variant in sub.variants.iter_mut() {
        variant.policy.platforms = built.clone();
    }
    let mut record = ReleaseRecord::for_plan(&sub).unwrap();
    for (i, variant) in sub.variants.iter().enumerate() {
        let images: BTreeMap<String, Digest> = built
            .iter()
            .map(|p| {
                let c = if p.arch == "amd64" { '1' } else { '2' };
                (p.to_string(), digest(c))
            })
            .collect();
        let builds = built
            .iter()
            .map(|p| (p.clone(), PlatformBuild::on(p.clone(), p)))
            .collect();
        let index = digest(HEX[(n * 2 + i) % HEX.len()]);
        record.record(ReleaseRecord::entry(&sub, variant, &index, images).with_builds(builds));
    }
    let name: Vec<&str> = built.iter().map(|p| p.arch.as_str()).collect();
    Part {
        origin: format!("part-{}.json", name.join("-")),
        record: PartRecord::of(record, &release_platforms(release)).unwrap(),
    }
}

fn refused(release: &Plan, parts: &[Part]) -> String {
    let line = plan(release, parts).unwrap_err().to_string();
    assert!(
        line.ends_with("nothing was pushed, signed or tagged"),
        "{line}"
    );
    assert!(!line.contains('\n'), "one line: {line}");
    line
}

#[test]
fn two_parts_merge_sorted_by_platform_with_the_plans_annotations() {
    let release = release_plan();
    let (amd64, arm64) = (
        part(&release, &["linux/amd64"], 0),
        part(&release, &["linux/arm64"], 1),
    );
    // Whatever order the parts come in, the sources are sorted by platform.
    for parts in [
        vec![arm64.clone(), amd64.clone()],
        vec![amd64.clone(), arm64.clone()],
    ] {
        let merge = plan(&release, &parts).unwrap();
        assert_eq!(merge.repository, release.repository);
        assert_eq!(merge.variants.len(), 2);
        for (variant, planned) in merge.variants.iter().zip(&release.variants) {
            assert_eq!(variant.variant, planned.variant);
            let origins: Vec<&str> = variant.sources.iter().map(|s| s.origin.as_str()).collect();
            assert_eq!(origins, ["part-amd64.json", "part-arm64.json"]);
            assert!(variant.pass_through().is_none());
            assert_eq!(variant.annotations, planned.policy.annotations);
            assert_eq!(
                variant.platform_digests.keys().collect::<Vec<_>>(),
                ["linux/amd64", "linux/arm64"]
            );
            assert_eq!(variant.builds.len(), 2);
            let images = variant.source_images(&release.repository);
            assert_eq!(images[0].digest, Some(variant.sources[0].index.clone()));
        }
    }
}

#[test]
fn one_part_of_every_platform_passes_through() {
    let release = release_plan();
    let whole = part(&release, &["linux/amd64", "linux/arm64"], 0);
    let merge = plan(&release, std::slice::from_ref(&whole)).unwrap();
    for (variant, recorded) in merge.variants.iter().zip(&whole.record.variants) {
        let only = variant.pass_through().expect("one source");
        assert_eq!(only.index, recorded.digest);
        assert_eq!(variant.platform_digests, recorded.platform_digests);
    }
}

type Edit = Box<dyn Fn(&mut Vec<Part>)>;

#[test]
fn parts_that_disagree_are_refused_before_the_registry() {
    let release = release_plan();
    let both = || {
        vec![
            part(&release, &["linux/amd64"], 0),
            part(&release, &["linux/arm64"], 1),
        ]
    };
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "another commit",
            Box::new(|p| p[1].record.commit = "f".repeat(40)),
            "part-amd64.json has the commit",
        ),
        (
            "another repository",
            Box::new(|p| p[1].record.repository = "r.example/other".parse().unwrap()),
            "has the repository \"r.example/beacon\", part-arm64.json \"r.example/other\"",
        ),
        (
            "another version",
            Box::new(|p| p[1].record.version = "1.2.4".into()),
            "the version \"1.2.3\", part-arm64.json \"1.2.4\"",
        ),
        (
            "another source",
            Box::new(|p| p[1].record.source = "https://github.com/evil/beacon".into()),
            "the source",
        ),
        (
            "other variants",
            Box::new(|p| p[1].record.planned = vec!["ubi9".into()]),
            "the variants \"ubi9, distroless\", part-arm64.json \"ubi9\"",
        ),
        (
            "another build arg",
            Box::new(|p| {
                p[1].record.variants[0]
                    .recipe
                    .build_args
                    .insert("PRODUCTION_BASE".into(), "x@sha256:0".into());
            }),
            "part-amd64.json and part-arm64.json built ubi9 differently: build arg PRODUCTION_BASE is unset against \"x@sha256:0\"",
        ),
        (
            "other tags",
            Box::new(|p| p[1].record.variants[1].tags.pop().map(|_| ()).unwrap()),
            "give distroless other tags",
        ),
    ];
    for (what, edit, expected) in cases {
        let mut parts = both();
        edit(&mut parts);
        let line = refused(&release, &parts);
        assert!(line.contains(expected), "{what}: {line}");
    }
}

#[test]
fn platforms_missing_or_twice_and_parts_of_none_are_refused() {
    let release = release_plan();
    let amd64 = part(&release, &["linux/amd64"], 0);
    let arm64 = part(&release, &["linux/arm64"], 1);
    let whole = part(&release, &["linux/amd64", "linux/arm64"], 2);
    let line = refused(&release, std::slice::from_ref(&amd64));
    assert!(
        line.contains("no part holds linux/arm64 (given: part-amd64.json (linux/amd64))"),
        "{line}"
    );
    let line = refused(&release, &[whole.clone(), amd64.clone()]);
    assert!(
        line.contains("linux/amd64 is given twice, by part-amd64-arm64.json and part-amd64.json"),
        "{line}"
    );
    let mut empty = arm64.clone();
    empty.record.part.clear();
    empty.origin = "part-none.json".into();
    assert!(refused(&release, &[amd64.clone(), empty]).contains("part-none.json holds no platform"));
    assert!(refused(&release, &[]).contains("no part record given"));
    // A build that did not finish: its part lacks a variant.
    let mut unfinished = arm64.clone();
    unfinished.record.variants.retain(|v| v.variant == "ubi9");
    let line = refused(&release, &[amd64, unfinished]);
    assert!(
        line.contains(
            "part-arm64.json holds no distroless of linux/arm64: its build did not finish"
        ),
        "{line}"
    );
}

#[test]
fn parts_of_another_release_than_the_checkouts_are_refused() {
    let release = release_plan();
    let mut other = release.clone();
    for variant in other.variants.iter_mut() {
        variant
            .policy
            .annotations
            .insert("org.opencontainers.image.revision".into(), "e".repeat(40));
    }
    let parts = [
        part(&other, &["linux/amd64"], 0),
        part(&other, &["linux/arm64"], 1),
    ];
    let line = refused(&release, &parts);
    assert!(
        line.contains(&format!("has the commit \"{}\"", "e".repeat(40)))
            && line.contains(&format!("this checkout's release (merge-release's flags: pass those the parts were built with) \"{COMMIT}\"")),
        "{line}"
    );
    // The same release, built from another recipe than this checkout plans.
    let mut changed = release.clone();
    changed.variants[1]
        .recipe
        .named_contexts
        .insert("binaries".into(), "/elsewhere".into());
    let parts = [
        part(&changed, &["linux/amd64"], 0),
        part(&changed, &["linux/arm64"], 1),
    ];
    let line = refused(&release, &parts);
    assert!(
        line.contains(
            "built distroless differently: named context binaries is \"/elsewhere\" against unset"
        ),
        "{line}"
    );
}
