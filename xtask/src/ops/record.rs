//! The release record against the world: where a release keeps its
//! record, which earlier record a run resumes from, and the checks every
//! stage that reads a record makes before acting on it (a release to this
//! repository and commit, complete, matching the registry, each image
//! built from the recorded commit). The record is untrusted input: what a
//! stage acts on is what these checks verified.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::client::registry;
use crate::context;
use crate::exec::Resumed;
use crate::model::files;
use crate::model::names::{self, Platform};
use crate::model::reference::{ImageName, Registry, Repository};
use crate::plan::record::{PartRecord, ReleaseRecord};
use crate::plan::release::{differences, ReleaseTags};
use crate::plan::{recipe, Plan};

/// The repository a record must be a release to: `--registry` and
/// `--image-name`, defaulting as `release-image` does (ghcr.io/OWNER in
/// GitHub Actions).
pub fn expected_repository(
    registry: Option<&Registry>,
    image_name: &ImageName,
    context: &context::BuildContext,
) -> Result<Repository> {
    recipe::repository(registry, image_name, context, true).map_err(|_| {
        anyhow::anyhow!("name the repository the release record must be for: pass --registry (e.g. ghcr.io/acme or 127.0.0.1:5000) or set IMAGE_REGISTRY")
    })
}

/// Where releases keep their records by default, under the project root.
pub const RECORDS_DIR: &str = "target/xtask/releases";

/// `target/xtask/releases/<repository>-<version>-<commit>.json` (a part's:
/// `...-<commit>-part-<platforms>.json`): a re-run of the same release (or
/// part) finds it, another release never does.
pub fn default_record_path(
    root: &Path,
    plan: &Plan,
    revision: &str,
    part: Option<&[Platform]>,
) -> PathBuf {
    let version = ReleaseRecord::for_plan(plan)
        .map(|r| r.version)
        .unwrap_or_default();
    let short: String = revision.chars().take(12).collect();
    let part = match (part, plan.variants.first()) {
        (Some(_), Some(first)) => {
            let built: Vec<String> = first.policy.platforms.iter().map(Platform::slug).collect();
            format!("-part-{}", built.join("-"))
        }
        _ => String::new(),
    };
    root.join(RECORDS_DIR).join(format!(
        "{}-{}-{short}{part}.json",
        names::slug(plan.repository.as_str()),
        names::slug(&version)
    ))
}

/// The record an earlier run of this release (or of this part of it, with
/// `part`: the whole release's platforms) left, if any. A record that
/// cannot be read is refused; one of another release is refused when it was
/// named (`--record`), and started over when it is the default file.
pub fn earlier_record(
    plan: &Plan,
    path: &Path,
    explicit: bool,
    part: Option<&[Platform]>,
) -> Result<Option<ReleaseRecord>> {
    if !path.exists() {
        return Ok(None);
    }
    let record = match part {
        None => ReleaseRecord::read(path)?,
        Some(platforms) => {
            let part = PartRecord::read(path)?;
            if part.platforms != platforms && !explicit {
                return Ok(None);
            }
            if part.platforms != platforms {
                bail!(
                    "the part record {} is a part of a release of {}, and this is a part of one of {}: nothing was built; pass --part with the release's platforms, or remove the file to start over",
                    path.display(),
                    join(&part.platforms),
                    join(platforms)
                );
            }
            part.to_record()
        }
    };
    match record.mismatch_with(plan) {
        None => Ok(Some(record)),
        Some(why) if explicit => bail!(
            "the release record {} does not belong to this release: {why}; nothing was built or tagged: pass the record of this release, or remove the file to start over",
            path.display()
        ),
        Some(_) => Ok(None),
    }
}

fn join(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes the record (whole, or not at all), as a part of a release of
/// `part` (its platforms) when there is one.
pub fn write(path: &Path, record: &ReleaseRecord, part: Option<&[Platform]>) -> Result<()> {
    let text = match part {
        None => record.to_json(),
        Some(platforms) => PartRecord::of(record.clone(), platforms)?.to_json(),
    };
    files::write_atomically(path, text)
}

/// The recorded variants this run does not build again: the same recipe
/// and tags, and still in the registry with the recorded platform images.
/// A dry run trusts the record (it looks nothing up beyond what it prints).
pub fn resumable(
    plan: &Plan,
    record: Option<&ReleaseRecord>,
    dry_run: bool,
) -> Result<BTreeMap<String, Resumed>> {
    let mut resumed = BTreeMap::new();
    for recorded in record.map(|r| r.resumable(plan)).unwrap_or_default() {
        let present = dry_run || {
            let reference = recorded.image(&plan.repository);
            registry::fetch(&reference)?.is_some_and(|fetched| {
                fetched.document.as_index().is_some_and(|index| {
                    let listed: BTreeMap<String, String> = index
                        .images()
                        .map(|i| (i.platform_name(), i.digest.clone()))
                        .collect();
                    listed == recorded.platform_digest_texts()
                })
            })
        };
        if present {
            resumed.insert(
                recorded.variant.clone(),
                Resumed {
                    digest: recorded.digest.clone(),
                    platform_digests: recorded.platform_digests.clone(),
                },
            );
        } else {
            eprintln!(
                "note: the release record names {} for {}, which is not in the registry as recorded: it is built again",
                recorded.image(&plan.repository),
                recorded.variant
            );
        }
    }
    Ok(resumed)
}

/// What the stages that read a record expect of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordExpectation {
    /// The repository the release publishes to (`--registry`, `--image-name`).
    pub repository: Repository,
    /// The commit of this checkout: the record must be a release of it.
    pub commit: Option<String>,
    /// Whether every planned variant must be recorded (signing and
    /// promotion of a release happen for all of its variants or none).
    pub complete: bool,
}

/// Refuses, in one line, a record that is not a release of this repository
/// (and commit), is incomplete, or does not match the registry: a digest
/// missing, or an index whose platform images are not the recorded ones.
pub fn check_record(
    record: &ReleaseRecord,
    origin: &str,
    expect: &RecordExpectation,
) -> Result<()> {
    let refuse = |why: String| -> Result<()> {
        bail!("the release record {origin} does not match: {why}; nothing was signed or tagged (use the record of this release's build stage, or re-run release-image to build it again)")
    };
    if record.repository != expect.repository {
        return refuse(format!(
            "it is a release to {}, not to {} (--registry, --image-name)",
            record.repository, expect.repository
        ));
    }
    if let Some(commit) = &expect.commit {
        if &record.commit != commit {
            return refuse(format!(
                "it is a release of commit {}, and this checkout is at {commit}",
                record.commit
            ));
        }
    }
    let missing = record.missing();
    if expect.complete && !missing.is_empty() {
        return refuse(format!(
            "variant(s) {} were never pushed (their build failed)",
            missing.join(", ")
        ));
    }
    for variant in &record.variants {
        let reference = variant.image(&record.repository);
        let Some(fetched) = registry::fetch(&reference)? else {
            return refuse(format!(
                "{} is recorded as {reference}, which is not in the registry",
                variant.variant
            ));
        };
        let listed: BTreeMap<String, String> = fetched
            .document
            .as_index()
            .map(|index| {
                index
                    .images()
                    .map(|image| (image.platform_name(), image.digest.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if listed != variant.platform_digest_texts() {
            return refuse(format!(
                "{reference} ({}) holds the platform images {listed:?}, the record says {:?}",
                variant.variant, variant.platform_digests
            ));
        }
    }
    Ok(())
}

/// Refuses, in one line, a record whose version or tags are not the ones
/// this release moves, derived again from the checkout's ref and the
/// repository's release tags (`plan::release::release_tags`): every tag the
/// record adds or lacks is named. A record is untrusted input (it travels
/// between jobs as an artifact, written by the job that runs third-party
/// build scripts): the tags moved are the derived ones, never the record's.
pub fn check_tags(record: &ReleaseRecord, origin: &str, derived: &ReleaseTags) -> Result<()> {
    let refuse = |why: String| -> Result<()> {
        bail!("the release record {origin} does not match: {why}; a release's tags are derived from the ref it builds and the repository's release tags, never taken from the record, so nothing was tagged (use the record of this release's build stage, from a checkout of the same ref with its tags: `fetch-depth: 0`)")
    };
    if record.version != derived.version {
        return refuse(format!(
            "it is a release of version {:?}, and this checkout's ref releases {:?}",
            record.version, derived.version
        ));
    }
    for variant in &record.variants {
        let Some(expected) = derived.variants.get(&variant.variant) else {
            return refuse(format!(
                "it names the variant {}, which this checkout does not have (images/{}/Dockerfile)",
                variant.variant, variant.variant
            ));
        };
        let (extra, missing) = differences(&variant.tags, &expected.tags);
        if !extra.is_empty() || !missing.is_empty() {
            let mut why = format!("the tags of {} are not this release's:", variant.variant);
            if !extra.is_empty() {
                why.push_str(&format!(" it adds {}", extra.join(" ")));
            }
            if !missing.is_empty() {
                if !extra.is_empty() {
                    why.push(';');
                }
                why.push_str(&format!(" it lacks {}", missing.join(" ")));
            }
            return refuse(why);
        }
    }
    Ok(())
}

/// Signs nothing the record names that its annotations do not say is a
/// production image of the recorded commit (a record whose digest was
/// swapped for another image of the repository).
pub fn refuse_other_commits(record: &ReleaseRecord) -> Result<()> {
    for variant in &record.variants {
        let reference = variant.image(&record.repository);
        let fetched = registry::fetch_existing(&reference)?;
        let revision = fetched
            .document
            .as_index()
            .and_then(|i| {
                i.annotations
                    .get("org.opencontainers.image.revision")
                    .cloned()
            })
            .unwrap_or_default();
        if revision != record.commit {
            bail!(
                "the release record says {} is {reference}, but that image was built from {:?}, not {}: nothing was signed; use the record of this release's build stage",
                variant.variant,
                revision,
                record.commit
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::BuildContext;
    use crate::model::reference::{ImageRef, Repository};
    use crate::plan::record::{RecordedVariant, RECORD_FORMAT};
    use crate::plan::release::{release_tags, TagRequest, TagRules};
    use crate::plan::Recipe;

    const REPOSITORY: &str = "r.example/beacon";

    fn variants() -> Vec<String> {
        ["chainguard", "distroless", "ubi9"]
            .map(String::from)
            .to_vec()
    }

    /// What a release of `git_ref` derives (chainguard gets the bare tags).
    fn derived(git_ref: &str, release_tags_in_repo: &[&str]) -> ReleaseTags {
        let mut context = BuildContext::example(Some(git_ref));
        context.git.release_tags = release_tags_in_repo.iter().map(|t| t.to_string()).collect();
        let repository: Repository = REPOSITORY.parse().unwrap();
        let request = TagRequest {
            rules: TagRules {
                allow_any_ref: false,
                variants: &variants(),
                writes_tags: true,
            },
            default_variant: "chainguard",
            force: false,
        };
        release_tags(&context, request, &repository, &variants()).unwrap()
    }

    /// The record the build stage writes for `derived`.
    fn record_of(derived: &ReleaseTags) -> ReleaseRecord {
        let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        ReleaseRecord {
            format: RECORD_FORMAT.to_string(),
            repository: REPOSITORY.parse().unwrap(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            version: derived.version.clone(),
            source: "https://github.com/acme/beacon".into(),
            platforms: vec!["linux/amd64".parse().unwrap()],
            planned: variants(),
            variants: derived
                .variants
                .iter()
                .map(|(variant, tags)| RecordedVariant {
                    variant: variant.clone(),
                    digest: digest('a').parse().unwrap(),
                    platform_digests: [("linux/amd64".to_string(), digest('b').parse().unwrap())]
                        .into(),
                    tags: tags.tags.clone(),
                    immutable: tags.immutable.clone(),
                    recipe: Recipe {
                        dockerfile: format!("images/{variant}/Dockerfile"),
                        context: ".".into(),
                        build_args: Default::default(),
                        named_contexts: Default::default(),
                    },
                    builds: Default::default(),
                })
                .collect(),
        }
    }

    fn tag(text: &str) -> ImageRef {
        format!("{REPOSITORY}:{text}").parse().unwrap()
    }

    fn refused(record: &ReleaseRecord, derived: &ReleaseTags) -> String {
        check_tags(record, "r.json", derived)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_record_of_the_derived_tags_passes() {
        let tags = derived("refs/tags/v1.2.4", &["v1.2.3", "v1.2.4"]);
        let record = record_of(&tags);
        assert!(record.variants[0].tags.contains(&tag("latest")));
        check_tags(&record, "r.json", &tags).unwrap();
    }

    #[test]
    fn a_tag_added_or_removed_is_refused_naming_it() {
        let main = derived("refs/heads/main", &["v1.0.0"]);
        type Edit = Box<dyn Fn(&mut ReleaseRecord)>;
        let edits: [(&str, Edit, &str); 5] = [
            (
                "a version tag",
                Box::new(|r| r.variants[0].tags.push(tag("1.0.0-ubi9"))),
                "it adds r.example/beacon:1.0.0-ubi9",
            ),
            (
                "latest",
                Box::new(|r| r.variants[0].tags.push(tag("latest"))),
                "it adds r.example/beacon:latest",
            ),
            (
                "another variant's tag",
                Box::new(|r| r.variants[0].tags.push(tag("main-ubi9"))),
                "it adds r.example/beacon:main-ubi9",
            ),
            (
                "a tag of another repository",
                Box::new(|r| {
                    r.variants[1]
                        .tags
                        .push("r.example/other:main".parse().unwrap())
                }),
                "it adds r.example/other:main",
            ),
            (
                "one removed",
                Box::new(|r| {
                    r.variants[2].tags.pop();
                }),
                "it lacks r.example/beacon:sha-0123456-ubi9",
            ),
        ];
        for (what, edit, expected) in edits {
            let mut record = record_of(&main);
            edit(&mut record);
            let line = refused(&record, &main);
            assert!(line.contains(expected), "{what}: {line}");
            assert!(line.contains("nothing was tagged"), "{what}: {line}");
            assert!(!line.contains('\n'), "{what}: one line");
        }
    }

    #[test]
    fn a_backport_never_moves_latest_whatever_the_record_says() {
        // v1.1.9 after v1.2.0: the record claims `latest`, the derived tags do not.
        let backport = derived("refs/tags/v1.1.9", &["v1.1.8", "v1.1.9", "v1.2.0"]);
        let mut record = record_of(&backport);
        record.variants[0].tags.push(tag("latest"));
        assert!(refused(&record, &backport).contains("it adds r.example/beacon:latest"));
    }

    #[test]
    fn another_version_or_an_unknown_variant_is_refused() {
        let release = derived("refs/tags/v1.2.4", &["v1.2.4"]);
        let mut record = record_of(&release);
        record.version = "1.2.5".into();
        assert!(refused(&record, &release).contains("version \"1.2.5\""));
        let mut record = record_of(&release);
        record.variants[0].variant = "alpine".into();
        assert!(refused(&record, &release).contains("the variant alpine"));
    }
}
