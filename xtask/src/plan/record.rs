//! The release record: one JSON document that carries a release from stage
//! to stage. The build stage writes it once the variants are pushed by
//! digest (the repository, the commit, and per variant the index digest,
//! the per-platform digests, the recipe and the tags to move); signing, the
//! deploy gate and the promotion read it, in the same job locally or in
//! separate jobs of the release workflow (where it travels as an artifact).
//! A re-run resumes from it: a variant it records, with the same recipe and
//! tags, and still in the registry as recorded, is not built again.
//!
//! The record holds facts, not progress: whether a digest is signed, passed
//! the gate or is tagged is read from the registry, never from the file, so
//! an edited record cannot skip a stage. Parsing is strict (unknown fields,
//! malformed digests, tags of another repository or `ci-` tags are refused);
//! whether it matches the registry is checked by the stages that read it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::model::names::Platform;
use crate::model::reference::{Digest, ImageRef, Repository};
use crate::model::tags::CI_PREFIX;
use crate::plan::{Mode, Plan, Recipe, VariantPlan};

/// The format this code writes and reads; another is refused, not guessed at.
pub const RECORD_FORMAT: &str = "beacon-release-record/v1";

/// The annotations a release plan sets that the record repeats.
const REVISION: &str = "org.opencontainers.image.revision";
const VERSION: &str = "org.opencontainers.image.version";
const SOURCE: &str = "org.opencontainers.image.source";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRecord {
    pub format: String,
    /// `REGISTRY/NAME` every digest and tag belongs to.
    pub repository: Repository,
    /// The commit every variant was built from.
    pub commit: String,
    /// `org.opencontainers.image.version` of every variant.
    pub version: String,
    /// `org.opencontainers.image.source` of every variant.
    pub source: String,
    /// The platforms of every image index.
    pub platforms: Vec<Platform>,
    /// The variants of this release: no tag moves until each is recorded.
    pub planned: Vec<String>,
    /// The variants pushed so far, by digest.
    pub variants: Vec<RecordedVariant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedVariant {
    pub variant: String,
    /// The image index, by digest.
    pub digest: Digest,
    /// Per platform (`linux/amd64`), the image manifest's digest.
    pub platform_digests: BTreeMap<String, Digest>,
    /// Tag references (`REPO:TAG`) the promotion points at the digest.
    pub tags: Vec<ImageRef>,
    /// Those of `tags` that are immutable (version tags): they may exist
    /// only on this digest (an earlier, interrupted promotion moved them).
    pub immutable: Vec<ImageRef>,
    /// What was built, so a changed build is never taken for a resumed one.
    pub recipe: Recipe,
}

impl RecordedVariant {
    /// The index by digest, `REPO@sha256:...`.
    pub fn image(&self, repository: &Repository) -> ImageRef {
        repository.at(&self.digest)
    }

    /// One platform's image by digest.
    pub fn platform_image(&self, repository: &Repository, platform: &str) -> Option<ImageRef> {
        self.platform_digests
            .get(platform)
            .map(|digest| repository.at(digest))
    }

    /// The platform images as text (`linux/amd64` -> `sha256:...`), as a
    /// registry's index lists them.
    pub fn platform_digest_texts(&self) -> BTreeMap<String, String> {
        self.platform_digests
            .iter()
            .map(|(platform, digest)| (platform.clone(), digest.to_string()))
            .collect()
    }
}

/// Tag moves in promotion order: per item every tag but the `latest` ones,
/// then the `latest` ones (so `latest` never points at a release whose
/// other tags did not move). Items without tags of a round are left out.
pub fn latest_last<'a, T>(
    items: &'a [T],
    tags_of: impl Fn(&'a T) -> &'a [ImageRef],
) -> Vec<(&'a T, Vec<ImageRef>)> {
    let mut moves = Vec::new();
    for last in [false, true] {
        for item in items {
            let tags: Vec<ImageRef> = tags_of(item)
                .iter()
                .filter(|t| is_latest(t) == last)
                .cloned()
                .collect();
            if !tags.is_empty() {
                moves.push((item, tags));
            }
        }
    }
    moves
}

/// Whether a tag (`REPO:TAG`) floats to the newest release: it moves last.
pub fn is_latest(reference: &ImageRef) -> bool {
    reference
        .tag
        .as_deref()
        .is_some_and(|tag| tag == "latest" || tag.starts_with("latest-"))
}

impl ReleaseRecord {
    /// An empty record for a release plan (no variant pushed yet).
    pub fn for_plan(plan: &Plan) -> Result<ReleaseRecord> {
        if plan.mode != Mode::Release || !plan.pushes() {
            bail!("only a published release has a release record");
        }
        let first = plan
            .variants
            .first()
            .context("a release of no variant has no record")?;
        let annotation = |key: &str| {
            first
                .policy
                .annotations
                .get(key)
                .cloned()
                .with_context(|| format!("the release plan sets no {key} annotation"))
        };
        Ok(ReleaseRecord {
            format: RECORD_FORMAT.to_string(),
            repository: plan.repository.clone(),
            commit: annotation(REVISION)?,
            version: annotation(VERSION)?,
            source: annotation(SOURCE)?,
            platforms: first.policy.platforms.clone(),
            planned: plan.variant_names().into_iter().map(String::from).collect(),
            variants: Vec::new(),
        })
    }

    /// The record of `variant`, pushed as `digest` with these platform images.
    pub fn entry(
        plan: &Plan,
        variant: &VariantPlan,
        digest: &Digest,
        platform_digests: BTreeMap<String, Digest>,
    ) -> RecordedVariant {
        let immutable = variant
            .policy
            .tags
            .iter()
            .filter(|t| plan.must_not_exist.contains(t))
            .cloned()
            .collect();
        RecordedVariant {
            variant: variant.variant.clone(),
            digest: digest.clone(),
            platform_digests,
            tags: variant.policy.tags.clone(),
            immutable,
            recipe: variant.recipe.clone(),
        }
    }

    /// Records a pushed variant (replacing an earlier entry for it).
    pub fn record(&mut self, entry: RecordedVariant) {
        self.variants.retain(|v| v.variant != entry.variant);
        self.variants.push(entry);
        let order: Vec<String> = self.planned.clone();
        self.variants.sort_by_key(|v| {
            order
                .iter()
                .position(|p| p == &v.variant)
                .unwrap_or(usize::MAX)
        });
    }

    pub fn variant(&self, name: &str) -> Option<&RecordedVariant> {
        self.variants.iter().find(|v| v.variant == name)
    }

    /// The planned variants not recorded yet.
    pub fn missing(&self) -> Vec<&str> {
        self.planned
            .iter()
            .filter(|p| self.variant(p).is_none())
            .map(String::as_str)
            .collect()
    }

    /// Why this record cannot be resumed by `plan` (a release of another
    /// repository, commit, version or set of variants), if it cannot.
    pub fn mismatch_with(&self, plan: &Plan) -> Option<String> {
        let fresh = match ReleaseRecord::for_plan(plan) {
            Ok(fresh) => fresh,
            Err(err) => return Some(err.to_string()),
        };
        let describe = |r: &ReleaseRecord| {
            format!(
                "{} {} at {} ({}; {})",
                r.repository,
                r.version,
                r.commit,
                r.planned.join(", "),
                r.platforms
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let same = self.repository == fresh.repository
            && self.commit == fresh.commit
            && self.version == fresh.version
            && self.source == fresh.source
            && self.platforms == fresh.platforms
            && self.planned == fresh.planned;
        (!same).then(|| {
            format!(
                "it records a release of {}, and this is a release of {}",
                describe(self),
                describe(&fresh)
            )
        })
    }

    /// The recorded variants `plan` can resume: same recipe, same tags.
    pub fn resumable(&self, plan: &Plan) -> Vec<&RecordedVariant> {
        plan.variants
            .iter()
            .filter_map(|planned| {
                let recorded = self.variant(&planned.variant)?;
                let fresh = ReleaseRecord::entry(
                    plan,
                    planned,
                    &recorded.digest,
                    recorded.platform_digests.clone(),
                );
                (recorded == &fresh).then_some(recorded)
            })
            .collect()
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Parses and checks a record; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ReleaseRecord> {
        let record: ReleaseRecord = serde_json::from_str(text).map_err(|e| {
            anyhow::anyhow!("{origin} is not a release record ({e}): use the file the release's build stage wrote, or remove it to start the release over")
        })?;
        record
            .validate()
            .map_err(|e| anyhow::anyhow!("{origin} is not a valid release record: {e:#}"))?;
        Ok(record)
    }

    /// Reads a record file.
    pub fn read(path: &Path) -> Result<ReleaseRecord> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the release record {}: pass the file the release's build stage wrote (--record FILE)",
                path.display()
            )
        })?;
        ReleaseRecord::parse(&text, &path.display().to_string())
    }

    fn validate(&self) -> Result<()> {
        if self.format != RECORD_FORMAT {
            bail!(
                "format {:?}, this xtask reads {RECORD_FORMAT:?}",
                self.format
            );
        }
        if self.commit.len() != 40 || !self.commit.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("commit {:?} is not a full git commit id", self.commit);
        }
        if self.platforms.is_empty() {
            bail!("it names no platform");
        }
        let planned: BTreeSet<&str> = self.planned.iter().map(String::as_str).collect();
        if planned.len() != self.planned.len() || planned.is_empty() {
            bail!("its planned variants are empty or repeated");
        }
        let platforms: BTreeSet<String> = self.platforms.iter().map(ToString::to_string).collect();
        let mut seen = BTreeSet::new();
        for variant in &self.variants {
            let name = &variant.variant;
            if !planned.contains(name.as_str()) || !seen.insert(name.as_str()) {
                bail!("variant {name:?} is not planned, or recorded twice");
            }
            let recorded: BTreeSet<String> = variant.platform_digests.keys().cloned().collect();
            if recorded != platforms {
                bail!(
                    "variant {name} records the platforms {recorded:?}, the release has {platforms:?}"
                );
            }
            if variant.tags.is_empty() {
                bail!("variant {name} has no tag to move");
            }
            for reference in &variant.tags {
                let tag = reference.tag.as_deref().unwrap_or_default();
                if reference.repository != self.repository
                    || reference.digest.is_some()
                    || tag.is_empty()
                {
                    bail!(
                        "variant {name}: {reference} is not a tag of {}",
                        self.repository
                    );
                }
                if tag.starts_with(CI_PREFIX) {
                    bail!("variant {name}: {reference} is a CI tag, which a release never writes");
                }
            }
            if let Some(stray) = variant.immutable.iter().find(|t| !variant.tags.contains(t)) {
                bail!("variant {name}: immutable tag {stray} is not one of its tags");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Attestations, CachePlan, Flavor, Output, Policy, PushVia, Signing};

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    fn texts(references: &[ImageRef]) -> Vec<String> {
        references.iter().map(ToString::to_string).collect()
    }

    fn plan() -> Plan {
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
            refused(&|v| v["variants"][0]["digest"] = "sha256:abc".into())
                .contains("malformed digest")
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
}
