//! Tests of the module above (a file of its own: `#[cfg(test)] mod tests;`).
#![cfg(test)]

use super::*;
use crate::plan::{Attestations, CachePlan, Flavor, Output, Policy, PushVia, Signing};

pub(crate) const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

pub(crate) fn digest(c: char) -> Digest {
    format!("sha256:{}", c.to_string().repeat(64))
        .parse()
        .unwrap()
}

fn texts(references: &[ImageRef]) -> Vec<String> {
    references.iter().map(ToString::to_string).collect()
}

pub(crate) fn plan() -> Plan {
    let variant = |name: &str| VariantPlan {
        variant: name.to_string(),
        recipe: Recipe {
            dockerfile: format!("images/{name}/Dockerfile"),
            context: ".".into(),
            build_args: BTreeMap::from([("VARIANT".to_string(), name.to_string())]),
            named_contexts: BTreeMap::new(),
        },
        policy: Policy {
            flavor: Flavor::Production,
            platforms: vec![Platform::linux("amd64"), Platform::linux("arm64")],
            tags: ["1.2.3", "1.2", "latest"]
                .iter()
                .map(|t| format!("r.example/beacon:{t}-{name}").parse().unwrap())
                .collect(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::from([
                (REVISION.to_string(), COMMIT.to_string()),
                (VERSION.to_string(), "1.2.3".to_string()),
                (
                    SOURCE.to_string(),
                    "https://github.com/acme/beacon".to_string(),
                ),
            ]),
            attestations: Attestations::default(),
            cache: CachePlan::default(),
            source_date_epoch: Some(1),
            rewrite_timestamp: true,
            no_cache: false,
            no_cache_stages: Vec::new(),
            cargo_profile: "release".into(),
        },
    };
    Plan {
        mode: Mode::Release,
        repository: "r.example/beacon".parse().unwrap(),
        output: Output::PushByDigest(PushVia::Builder),
        variants: vec![variant("ubi9"), variant("distroless")],
        signing: Signing::None,
        must_not_exist: vec![
            "r.example/beacon:1.2.3-ubi9".parse().unwrap(),
            "r.example/beacon:1.2.3-distroless".parse().unwrap(),
        ],
        must_not_exist_because: String::new(),
        preflight: Vec::new(),
        warnings: Vec::new(),
        gate: None,
        shared_compile: None,
        builder: None,
    }
}

fn pushed(plan: &Plan, index: usize, c: char) -> RecordedVariant {
    let platforms = BTreeMap::from([
        ("linux/amd64".to_string(), digest('1')),
        ("linux/arm64".to_string(), digest('2')),
    ]);
    ReleaseRecord::entry(plan, &plan.variants[index], &digest(c), platforms)
}

#[test]
fn a_record_round_trips_and_says_what_is_missing() {
    let plan = plan();
    let mut record = ReleaseRecord::for_plan(&plan).unwrap();
    assert_eq!(record.commit, COMMIT);
    assert_eq!(record.missing(), ["ubi9", "distroless"]);
    record.record(pushed(&plan, 1, 'b'));
    record.record(pushed(&plan, 0, 'a'));
    assert_eq!(record.variants[0].variant, "ubi9", "kept in plan order");
    assert_eq!(
        texts(&record.variants[0].immutable),
        ["r.example/beacon:1.2.3-ubi9"]
    );
    assert!(record.missing().is_empty());
    let parsed = ReleaseRecord::parse(&record.to_json(), "r.json").unwrap();
    assert_eq!(parsed, record);
    assert_eq!(parsed.resumable(&plan).len(), 2);
    assert_eq!(parsed.mismatch_with(&plan), None);
}

#[test]
fn latest_moves_last() {
    let plan = plan();
    let mut record = ReleaseRecord::for_plan(&plan).unwrap();
    record.record(pushed(&plan, 0, 'a'));
    record.record(pushed(&plan, 1, 'b'));
    let moves: Vec<(String, Vec<String>)> = latest_last(&record.variants, |v| &v.tags)
        .into_iter()
        .map(|(v, tags)| (v.variant.clone(), texts(&tags)))
        .collect();
    assert_eq!(moves.len(), 4);
    assert_eq!(moves[0].0, "ubi9");
    assert_eq!(
        moves[0].1,
        ["r.example/beacon:1.2.3-ubi9", "r.example/beacon:1.2-ubi9"]
    );
    assert_eq!(moves[2].1, ["r.example/beacon:latest-ubi9"]);
    assert_eq!(moves[3].1, ["r.example/beacon:latest-distroless"]);
    let tag = |text: &str| text.parse::<ImageRef>().unwrap();
    assert!(is_latest(&tag("r:5000/b:latest")) && !is_latest(&tag("r/b:1.2.3-latest")));
}

#[test]
fn another_release_or_a_changed_build_does_not_resume() {
    let plan = plan();
    let mut record = ReleaseRecord::for_plan(&plan).unwrap();
    record.record(pushed(&plan, 0, 'a'));
    let mut other = plan.clone();
    other.repository = "r.example/other".parse().unwrap();
    assert!(record
        .mismatch_with(&other)
        .unwrap()
        .contains("r.example/other"));
    let mut changed = plan.clone();
    changed.variants[0]
        .recipe
        .build_args
        .insert("PRODUCTION_BASE".into(), "x@sha256:0".into());
    assert!(record.resumable(&changed).is_empty());
    assert_eq!(record.resumable(&plan).len(), 1);
}

#[test]
fn tampered_records_are_refused() {
    let plan = plan();
    let mut record = ReleaseRecord::for_plan(&plan).unwrap();
    record.record(pushed(&plan, 0, 'a'));
    let text = record.to_json();
    let refused = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        edit(&mut value);
        ReleaseRecord::parse(&value.to_string(), "r.json")
            .unwrap_err()
            .to_string()
    };
    assert!(ReleaseRecord::parse("{", "r.json")
        .unwrap_err()
        .to_string()
        .contains("r.json is not a release record"));
    assert!(refused(&|v| v["extra"] = 1.into()).contains("unknown field"));
    assert!(refused(&|v| v["format"] = "v0".into()).contains("format"));
    assert!(
        refused(&|v| v["variants"][0]["digest"] = "sha256:abc".into()).contains("malformed digest")
    );
    assert!(
        refused(&|v| v["variants"][0]["tags"][0] = "r.example/evil:1".into())
            .contains("not a tag of r.example/beacon")
    );
    assert!(
        refused(&|v| v["variants"][0]["tags"][0] = "r.example/beacon:ci-ubi9".into())
            .contains("CI tag")
    );
    assert!(
        refused(&|v| v["variants"][0]["platform_digests"] = serde_json::json!({}))
            .contains("platforms")
    );
    assert!(refused(&|v| v["variants"][0]["variant"] = "alpine".into()).contains("not planned"));
    assert!(refused(&|v| v["commit"] = "abc".into()).contains("commit"));
}

/// A record as the build stage wrote it before its fields were typed
/// (an end-to-end release's): read and written back byte for byte.
#[test]
fn a_record_of_the_string_era_reads_and_writes_back_unchanged() {
    let text = r#"{
  "format": "beacon-release-record/v1",
  "repository": "127.0.0.1:5000/e2e/release-2299-306568102",
  "commit": "19f4d15f128b3e77f29d56bc7e7ce344e9ee2395",
  "version": "0.9.0",
  "source": "https://github.com/example/beacon",
  "platforms": [
    "linux/amd64",
    "linux/arm64"
  ],
  "planned": [
    "distroless"
  ],
  "variants": [
    {
      "variant": "distroless",
      "digest": "sha256:4293b1c383def3046923b7d075bf00bd24aa2b523b38ef3e64fea931398e1620",
      "platform_digests": {
        "linux/amd64": "sha256:3defcee88b543fb3fbe84643dcc3ad1ca74bf99a9d826d490ed9f12a67a5c0a6",
        "linux/arm64": "sha256:123c144c4e0fbd210c5a99782ed1bdaede5764debe6c24d93274e9a89d9e33ac"
      },
      "tags": [
        "127.0.0.1:5000/e2e/release-2299-306568102:0.9.0-distroless",
        "127.0.0.1:5000/e2e/release-2299-306568102:0.9-distroless"
      ],
      "immutable": [
        "127.0.0.1:5000/e2e/release-2299-306568102:0.9.0-distroless"
      ],
      "recipe": {
        "dockerfile": "images/distroless/Dockerfile",
        "context": ".",
        "build_args": {
          "BINARIES_FROM": "context",
          "CI_BASE": "127.0.0.1:5000/stand-ins/distroless:ci@sha256:62cb8a257f485f0a1ab75dab0bf638da1c8e96c514213b37078497d246667ba3",
          "PRODUCTION_BASE": "127.0.0.1:5000/stand-ins/distroless:production@sha256:a594662b210406c0d028b3dca782ef33710752327da6ad59eeee8d1a88273455",
          "REVISION": "19f4d15f128b3e77f29d56bc7e7ce344e9ee2395",
          "VARIANT": "distroless"
        },
        "named_contexts": {
          "binaries": "/work/main/target/image-binaries"
        }
      }
    }
  ]
}
"#;
    let record = ReleaseRecord::parse(text, "r.json").unwrap();
    assert_eq!(record.to_json(), text);
    assert_eq!(record.repository.name(), "release-2299-306568102");
    assert_eq!(
        record.variants[0].tags[1].tag.as_deref(),
        Some("0.9-distroless")
    );
}

fn built(plan: &Plan, index: usize, c: char) -> RecordedVariant {
    let builds = plan.variants[index]
        .policy
        .platforms
        .iter()
        .map(|p| (p.clone(), PlatformBuild::on(Platform::linux("amd64"), p)))
        .collect();
    let mut entry = pushed(plan, index, c).with_builds(builds);
    let platforms: Vec<String> = plan.variants[index]
        .policy
        .platforms
        .iter()
        .map(ToString::to_string)
        .collect();
    entry.platform_digests.retain(|p, _| platforms.contains(p));
    entry
}

#[test]
fn a_v2_record_says_how_each_platform_was_built_and_a_v1_record_still_reads() {
    let plan = plan();
    let mut record = ReleaseRecord::for_plan(&plan).unwrap();
    assert_eq!(record.format, RECORD_FORMAT);
    record.record(built(&plan, 0, 'a'));
    let text = record.to_json();
    assert!(
        text.contains(
            r#""linux/arm64": {
          "build_platform": "linux/amd64",
          "compile": "cross"
        }"#
        ),
        "{text}"
    );
    assert_eq!(ReleaseRecord::parse(&text, "r.json").unwrap(), record);
    assert_eq!(
        record.resumable(&plan).len(),
        1,
        "builds do not stop a resume"
    );
    let refused = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        edit(&mut value);
        ReleaseRecord::parse(&value.to_string(), "r.json")
            .unwrap_err()
            .to_string()
    };
    let builds = "/variants/0/builds";
    assert!(refused(&|v| v["format"] = RECORD_FORMAT_V1.into()).contains("which a"));
    assert!(refused(&|v| {
        v.pointer_mut(builds).unwrap()["linux/arm64"]["compile"] = "native".into();
    })
    .contains("linux/arm64 built on linux/amd64 cannot be native"));
    assert!(refused(&|v| {
        v.pointer_mut(builds)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove("linux/amd64");
    })
    .contains("records builds of"));
    // A v1 record gets a v2 entry: it becomes v2, its old entries keep no builds.
    let mut old = ReleaseRecord::for_plan(&plan).unwrap();
    old.format = RECORD_FORMAT_V1.to_string();
    old.record(pushed(&plan, 0, 'a'));
    let old = ReleaseRecord::parse(&old.to_json(), "r.json").unwrap();
    assert_eq!(old.format, RECORD_FORMAT_V1);
    let mut upgraded = old.clone();
    upgraded.record(built(&plan, 1, 'b'));
    assert_eq!(upgraded.format, RECORD_FORMAT);
    ReleaseRecord::parse(&upgraded.to_json(), "r.json").unwrap();
}

#[test]
fn a_part_record_is_its_own_format_and_as_strict() {
    let plan = plan();
    let mut amd64 = plan.clone();
    for variant in amd64.variants.iter_mut() {
        variant.policy.platforms = vec![Platform::linux("amd64")];
    }
    let mut record = ReleaseRecord::for_plan(&amd64).unwrap();
    record.record(built(&amd64, 0, 'a'));
    let release_platforms = plan.variants[0].policy.platforms.clone();
    let part = PartRecord::of(record.clone(), &release_platforms).unwrap();
    assert_eq!(part.format, PART_FORMAT);
    assert_eq!(part.describe_part(), "linux/amd64");
    let text = part.to_json();
    assert_eq!(PartRecord::parse(&text, "p.json").unwrap(), part);
    assert_eq!(
        part.to_record(),
        record,
        "what a re-run of the part resumes from"
    );
    // Neither kind of record is taken for the other.
    let as_record = ReleaseRecord::parse(&text, "p.json")
        .unwrap_err()
        .to_string();
    assert!(as_record.contains("unknown field `part`"), "{as_record}");
    let as_part = PartRecord::parse(&record.to_json(), "r.json")
        .unwrap_err()
        .to_string();
    assert!(as_part.contains("is not a part record"), "{as_part}");
    let refused = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        edit(&mut value);
        PartRecord::parse(&value.to_string(), "p.json")
            .unwrap_err()
            .to_string()
    };
    assert!(refused(&|v| v["part"] = serde_json::json!([])).contains("built no platform"));
    assert!(refused(&|v| v["part"] = serde_json::json!(["linux/s390x"]))
        .contains("not a platform of the release"));
    assert!(
        refused(&|v| v["part"] = serde_json::json!(["linux/amd64", "linux/amd64"]))
            .contains("repeated")
    );
    assert!(refused(&|v| {
        v["variants"][0].as_object_mut().unwrap().remove("builds");
    })
    .contains("does not say how its platforms were built"));
    assert!(refused(&|v| v["extra"] = 1.into()).contains("unknown field"));
    assert!(refused(
        &|v| v["variants"][0]["platform_digests"]["linux/arm64"] = digest('2').to_string().into()
    )
    .contains("platforms"));
}
