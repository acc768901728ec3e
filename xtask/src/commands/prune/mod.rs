//! `cargo xtask prune-ci-images`: the retention policy of the ephemeral `ci-`
//! tags. Deleting is the one operation of this project that can destroy
//! something a user needs, so the selection is conservative by construction:
//!
//! - only digests that `ci-<variant>[-<unique>]` tags point to are candidates;
//!   a digest that any other tag points to (a release tag, `latest`, a tag of
//!   unknown shape) is never deleted, nor is one that an index we keep
//!   references, nor one whose config is labelled
//!   `dev.beacon.image.flavor=production`, nor one whose creation time cannot
//!   be read from its config;
//! - a candidate is deleted only if it is older than `--older-than` (from the
//!   `created` of its config; for an index the newest of its platform images)
//!   and not among the newest `--keep` candidates of any of its variants;
//! - the cosign tags (`sha256-<hex>.sig`/`.att`/`.sbom`, and the referrers
//!   tag `sha256-<hex>` with the manifests its index lists) of a deleted
//!   digest are deleted with it (they belong to it and would be orphans),
//!   unless their manifest is shared with any other tag; cosign tags of
//!   anything else are never touched;
//! - right before deleting, every tag is resolved again; a candidate that a
//!   tag has moved onto meanwhile is kept.
//!
//! With `--cache` it prunes the registry cache repository instead
//! (`REG/NAME-buildcache`, tags `<variant>-<scope>`, see `crate::cache`), with
//! rules of its own, just as conservative:
//!
//! - only `<variant>-pr-<N>` and `<variant>-branch-<slug>` tags are
//!   candidates; `<variant>-main` (the default branch's cache, which every
//!   build reads), `<variant>-local` and tags of any other shape are never
//!   deleted, and neither is a digest that any of them points to;
//! - a candidate is deleted if its age (now minus the newest
//!   `buildkit/createdat` among its layers) is at least `--older-than`, or,
//!   with `--open-prs`, if it is the cache of a pull request not in that list;
//!   a cache whose age cannot be read is never deleted;
//! - `--keep` does not apply; nothing in the image repository is touched.
//!
//! The selections are pure functions of an [`Inventory`] read from the
//! registry, so they are unit-tested without one: `select.rs` (the `ci-`
//! images) and `cache.rs` (the caches, and the `--cache` run) decide,
//! `inventory.rs` reads the registry and re-checks it before deleting,
//! `time.rs` reads and writes durations and times; this file holds the
//! arguments, the vocabulary they share, and the run.

mod cache;
mod inventory;
mod select;
mod time;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use serde::{Serialize, Serializer};

use crate::client::registry;
use crate::model::reference::Repository;
use crate::model::tags::REGISTRY_CACHE_SUFFIX;
use crate::model::time::now_seconds;
use crate::project;

pub use self::cache::{classify_cache, CacheKind};
pub use self::select::{classify, TagKind};

use self::cache::run_cache;
use self::inventory::{collect, recheck};
use self::select::{select, Policy};
use self::time::{format_age, parse_duration};

pub use self::time::parse_keep;

const FLAVOR_LABEL: &str = "dev.beacon.image.flavor";

#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// The repository to prune, REGISTRY/NAME (on a registry host).
    pub registry: Repository,
    /// `30m`, `12h`, `7d`, `2w`, ...
    pub older_than: OlderThan,
    /// The newest N ci- images of each variant always stay.
    pub keep: usize,
    /// Prune the registry cache repository REG/NAME-buildcache instead.
    pub cache: bool,
    /// With `cache`: the pull requests still open.
    pub open_prs: Option<String>,
    pub dry_run: bool,
    pub json: bool,
}

/// `--older-than`: an age as it was written (`7d`, `1d12h`), and in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OlderThan {
    text: String,
    seconds: u64,
}

impl OlderThan {
    pub fn seconds(&self) -> u64 {
        self.seconds
    }

    /// The age a selection states itself (`1h`), from its seconds.
    fn of_seconds(seconds: i64) -> OlderThan {
        OlderThan {
            text: format_age(seconds),
            seconds: u64::try_from(seconds).unwrap_or(0),
        }
    }
}

impl FromStr for OlderThan {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<OlderThan> {
        Ok(OlderThan {
            text: text.to_string(),
            seconds: parse_duration(text)?,
        })
    }
}

impl fmt::Display for OlderThan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for OlderThan {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// One tag and the digest it points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRecord {
    pub tag: String,
    pub digest: String,
}

/// What the configs of an image say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// The newest `created` among its platform images, as written and in epoch seconds.
    pub created: Option<(String, i64)>,
    /// Some config is labelled `dev.beacon.image.flavor=production`.
    pub production: bool,
    /// Why `created` is unknown, if it is.
    pub unknown_because: Option<String>,
}

/// Everything the selection needs to know about a repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub tags: Vec<TagRecord>,
    /// The facts of every digest a `ci-` tag points to (for a cache
    /// repository: of every tagged digest, its age from `buildkit/createdat`).
    pub images: BTreeMap<String, ImageFacts>,
    /// The manifests every index in the repository references.
    pub children: BTreeMap<String, Vec<String>>,
    /// The variants of this repository (images/): only their CI tags are CI tags.
    pub variants: Vec<String>,
}

/// A cosign tag that goes with a deleted image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CosignTag {
    pub tag: String,
    pub digest: String,
    /// A referrers tag's (`sha256-<hex>`) index lists the manifests that
    /// refer to the image (cosign 3's Sigstore bundles): deleted after it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<String>,
}

/// The decision about one CI image (one digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub digest: String,
    /// The ci- tags pointing to it (all removed with it).
    pub tags: Vec<String>,
    pub variants: Vec<String>,
    pub created: Option<String>,
    pub age: Option<String>,
    pub reason: String,
    /// Its own cosign tags, deleted with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cosign_tags: Vec<CosignTag>,
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

pub fn run(args: PruneOptions) -> Result<()> {
    if args.cache {
        return run_cache(&args);
    }
    if args.open_prs.is_some() {
        bail!("--open-prs applies only to registry caches: add --cache to prune REG/NAME{REGISTRY_CACHE_SUFFIX}, or drop --open-prs");
    }
    refuse_ghcr(&args.registry)?;
    let policy = Policy {
        older_than_seconds: args.older_than.seconds(),
        keep: args.keep,
        now: now_seconds()?,
    };
    let variants = project::discover_variants(&project::project_root())?;
    prune(
        &args,
        &args.registry,
        |repository| collect(repository, variants),
        |inventory| select(inventory, &policy),
    )
}

/// Each pass calls this itself: the cache pass refuses a cache repository
/// name first, and that order decides which error a user sees first.
fn refuse_ghcr(repository: &Repository) -> Result<()> {
    if repository.is_ghcr() {
        bail!("{}", registry::GHCR_UNSUPPORTED);
    }
    Ok(())
}

/// The decisions of a pass about a repository, one per digest: what the
/// run prints, re-checks and deletes, and its JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report<P> {
    /// The repository the run read (set by the run, after the selection).
    pub repository: Option<Repository>,
    pub older_than: OlderThan,
    /// What differs between the passes: their policy as the JSON states it
    /// (`keep_newest`, `open_prs`), in this place among the fields.
    #[serde(flatten)]
    pub policy: P,
    pub dry_run: bool,
    pub delete: Vec<Decision>,
    pub keep: Vec<Decision>,
    /// Things worth knowing that are not decisions (e.g. a cosign tag left alone).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl<P> Report<P> {
    /// A report of a dry run; the run fills in the repository and the
    /// flags it was given.
    fn new(
        older_than_seconds: i64,
        policy: P,
        delete: Vec<Decision>,
        keep: Vec<Decision>,
        notes: Vec<String>,
    ) -> Report<P> {
        Report {
            repository: None,
            older_than: OlderThan::of_seconds(older_than_seconds),
            policy,
            dry_run: true,
            delete,
            keep,
            notes,
        }
    }

    /// The repository, for a report's header.
    fn repository_text(&self) -> String {
        self.repository
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }
}

/// What differs between the image pass and the cache pass once the
/// selection is made, besides the policy in their JSON: how a report is
/// headed and counted.
pub(super) trait Pass: Serialize + Sized {
    /// What one deleted decision is, in the error of a failed deletion.
    const UNITS: &'static str;
    /// Whether a run that deletes prints the header first. The cache pass
    /// does; the image pass never has, and its output stays as it was.
    const HEADER_WHEN_DELETING: bool;
    /// What the run looks for, in one line.
    fn header(report: &Report<Self>) -> String;
    /// What `delete` amounts to, e.g. `3 images (4 tags)` or `3 cache refs (2 manifests)`.
    fn delete_count(report: &Report<Self>) -> String;
    /// What `keep` amounts to.
    fn keep_count(report: &Report<Self>) -> String;
}

/// The run of both passes once their arguments are checked: read the
/// repository `REG/NAME`, select, print; without `--dry-run`, re-check,
/// delete and sum up.
fn prune<P: Pass>(
    args: &PruneOptions,
    repository: &Repository,
    collect: impl FnOnce(&Repository) -> Result<Inventory>,
    select: impl FnOnce(&Inventory) -> Report<P>,
) -> Result<()> {
    let inventory = collect(repository)?;
    let mut selection = select(&inventory);
    selection.repository = Some(repository.clone());
    selection.older_than = args.older_than.clone();
    selection.dry_run = args.dry_run;
    let log = |line: String| {
        if args.json {
            eprintln!("{line}")
        } else {
            println!("{line}")
        }
    };

    if args.dry_run {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&selection)?);
        } else {
            print_selection(&selection, &log);
            log(format!(
                "dry run: would delete {}, keep {}; nothing was deleted",
                P::delete_count(&selection),
                P::keep_count(&selection)
            ));
        }
        return Ok(());
    }

    if !selection.delete.is_empty() {
        recheck(
            repository,
            &inventory,
            &mut selection.delete,
            &mut selection.keep,
            &mut selection.notes,
        )?;
    }
    if P::HEADER_WHEN_DELETING && !args.json {
        log(P::header(&selection));
    }
    for decision in &selection.keep {
        log(format!("kept {}: {}", describe(decision), decision.reason));
    }
    for note in &selection.notes {
        log(format!("note: {note}"));
    }
    let already_gone = delete_selected(repository, &selection, &log)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&selection)?);
    }
    let gone = if already_gone > 0 {
        format!(" ({already_gone} of them were already gone)")
    } else {
        String::new()
    };
    // Every decision of `delete` was deleted by now (a failure returned above).
    log(format!(
        "deleted {}{gone}, kept {}",
        P::delete_count(&selection),
        P::keep_count(&selection)
    ));
    Ok(())
}

/// Deletes every decision of `delete` (with its cosign tags) from
/// `repository`, saying so per image; returns how many were already gone.
/// Fails at the first deletion that fails, saying how far it got.
fn delete_selected<P: Pass>(
    repository: &Repository,
    selection: &Report<P>,
    log: &dyn Fn(String),
) -> Result<usize> {
    let mut deleted: Vec<&Decision> = Vec::new();
    let mut already_gone = 0;
    let total = selection.delete.len();
    for decision in &selection.delete {
        match registry::delete(repository, &decision.digest) {
            Ok(true) => {}
            Ok(false) => already_gone += 1,
            Err(err) => {
                let what = format!("deleting {} from {repository}", decision.digest);
                return Err(deletion_failed(err, what, &deleted, total, P::UNITS));
            }
        }
        deleted.push(decision);
        log(format!(
            "deleted {}: {}",
            describe(decision),
            decision.reason
        ));
        // Only ci- images have cosign tags; a cache decision has none.
        for cosign in &decision.cosign_tags {
            if let Err(err) = registry::delete(repository, &cosign.digest) {
                let what = format!("deleting cosign tag {} of {}", cosign.tag, decision.digest);
                return Err(deletion_failed(err, what, &deleted, total, P::UNITS));
            }
            log(format!(
                "deleted cosign tag {} ({}) of {}",
                cosign.tag, cosign.digest, decision.digest
            ));
            for referrer in &cosign.referrers {
                if let Err(err) = registry::delete(repository, referrer) {
                    let what = format!("deleting {referrer}, listed by cosign tag {}", cosign.tag);
                    return Err(deletion_failed(err, what, &deleted, total, P::UNITS));
                }
                log(format!(
                    "deleted {referrer}, listed by cosign tag {}",
                    cosign.tag
                ));
            }
        }
    }
    Ok(already_gone)
}

/// A deletion error that says how far the run got.
fn deletion_failed(
    err: anyhow::Error,
    what: String,
    deleted: &[&Decision],
    total: usize,
    things: &str,
) -> anyhow::Error {
    if deleted.is_empty() {
        return err.context(format!("{what} (nothing was deleted)"));
    }
    let done: Vec<&str> = deleted.iter().map(|d| d.digest.as_str()).collect();
    err.context(format!(
        "{what} failed after deleting {} of {total} {things} ({})",
        done.len(),
        done.join(", ")
    ))
}

/// `sha256:… [ci-a, ci-a-pr1]`
fn describe(decision: &Decision) -> String {
    format!("{} [{}]", decision.digest, decision.tags.join(", "))
}

/// The dry run's report.
fn print_selection<P: Pass>(selection: &Report<P>, log: &dyn Fn(String)) {
    log(P::header(selection));
    // Only a ci- image to delete has cosign tags (a kept one and a cache
    // never do), so one loop prints both lists.
    for (verb, decisions) in [
        ("would delete", &selection.delete),
        ("keep", &selection.keep),
    ] {
        for decision in decisions {
            log(format!(
                "{verb} {}: {}",
                describe(decision),
                decision.reason
            ));
            for cosign in &decision.cosign_tags {
                log(format!(
                    "{verb} cosign tag {} ({}) of {}",
                    cosign.tag, cosign.digest, decision.digest
                ));
                for referrer in &cosign.referrers {
                    log(format!(
                        "{verb} {referrer}, listed by cosign tag {}",
                        cosign.tag
                    ));
                }
            }
        }
    }
    for note in &selection.notes {
        log(format!("note: {note}"));
    }
}

/// What the tests of every part build their inventories from.
#[cfg(test)]
mod fixtures {
    use std::collections::BTreeMap;

    use super::{ImageFacts, Inventory, Report, TagRecord};

    pub const DAY: i64 = 86_400;
    pub const NOW: i64 = 1_800_000_000;

    pub fn digest(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    pub fn tag(tag: &str, n: u8) -> TagRecord {
        TagRecord {
            tag: tag.into(),
            digest: digest(n),
        }
    }

    /// The variants the fixtures' repository has.
    pub fn known() -> Vec<String> {
        ["a", "b", "chainguard", "distroless", "ubi9", "wolfi-base"]
            .map(String::from)
            .to_vec()
    }

    pub fn inventory(tags: Vec<TagRecord>, images: Vec<(u8, ImageFacts)>) -> Inventory {
        Inventory {
            tags,
            images: images.into_iter().map(|(n, f)| (digest(n), f)).collect(),
            children: BTreeMap::new(),
            variants: known(),
        }
    }

    /// The digests a selection deletes.
    pub fn deleted<P>(s: &Report<P>) -> Vec<String> {
        s.delete.iter().map(|d| d.digest.clone()).collect()
    }

    /// The reason of the decision about `digest(n)` (empty: there is none).
    pub fn reason_of<P>(s: &Report<P>, n: u8) -> String {
        s.keep
            .iter()
            .chain(&s.delete)
            .find(|d| d.digest == digest(n))
            .map(|d| d.reason.clone())
            .unwrap_or_default()
    }
}
