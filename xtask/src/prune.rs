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
//! - the cosign tags (`sha256-<hex>.sig`/`.att`/`.sbom`) of a deleted digest
//!   are deleted with it (they belong to it and would be orphans), unless
//!   their manifest is shared with any other tag; cosign tags of anything
//!   else are never touched;
//! - right before deleting, every tag is resolved again; a candidate that a
//!   tag has moved onto meanwhile is kept.
//!
//! With `--cache` it prunes the registry cache repository instead
//! (`REG/NAME-buildcache`, tags `<variant>-<scope>`, see `cache.rs`), with
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
//! registry, so they are unit-tested without one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use crate::cache::REGISTRY_CACHE_SUFFIX;
use crate::context::DEFAULT_BRANCH;
use crate::distribution::{self, Client, Manifest};

const FLAVOR_LABEL: &str = "dev.beacon.image.flavor";
const ATTESTATION_TYPE: &str = "vnd.docker.reference.type";
/// The config media type of a BuildKit registry cache manifest.
const CACHE_CONFIG_TYPE: &str = "application/vnd.buildkit.cacheconfig.v0";
/// The layer annotation in which BuildKit records when a cached layer was made.
const CACHE_CREATED: &str = "buildkit/createdat";
const OPEN_PRS_HINT: &str = "expected the open pull request numbers separated by commas, e.g. --open-prs 12,15 \
     (gh pr list --state open --json number --jq 'map(.number) | join(\",\")'), or --open-prs none when no pull request is open";
const DURATION_HINT: &str = "expected a whole number followed by a unit s, m, h, d or w, \
     optionally combined, e.g. 30m, 12h, 7d, 2w or 1d12h";

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// The repository to prune, REGISTRY/NAME, e.g. 127.0.0.1:5000/beacon (with --cache: its cache repository REGISTRY/NAME-buildcache).
    #[arg(long, value_name = "REG/NAME")]
    pub registry: String,

    /// Delete ci- images (with --cache: pull request and branch caches) older than this: 30m, 12h, 7d, 2w, or combined like 1d12h.
    #[arg(long, value_name = "DURATION")]
    pub older_than: String,

    /// Always keep the newest N ci- images of each variant, however old. Does not apply to --cache: caches are not ranked.
    #[arg(long, value_name = "N", default_value = "1")]
    pub keep: String,

    /// Prune the registry cache repository REG/NAME-buildcache instead of the ci- images: delete the
    /// caches of pull requests (<variant>-pr-<N>) and branches (<variant>-branch-<slug>) older than
    /// --older-than (by their newest layer) and, with --open-prs, those of pull requests that are not open;
    /// never <variant>-main (the default branch's), <variant>-local or any other tag, nor a digest they point to.
    #[arg(long)]
    pub cache: bool,

    /// With --cache: the pull requests still open, comma-separated (e.g. 12,15, or none); the cache of any
    /// other pull request is deleted whatever its age. Without it only age counts.
    #[arg(long, value_name = "N,N,...")]
    pub open_prs: Option<String>,

    /// Print what would be deleted and why, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the selection (and, without --dry-run, what was deleted) as JSON on stdout; logs go to stderr.
    #[arg(long)]
    pub json: bool,
}

/// The retention policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub older_than_seconds: u64,
    pub keep: usize,
    /// Seconds since the Unix epoch.
    pub now: i64,
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
}

/// What a tag is, by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagKind {
    /// `ci-<variant>` or `ci-<variant>-<unique>`.
    Ci { variant: String },
    /// A cosign tag `sha256-<hex>.sig`, `.att` or `.sbom` of the digest `sha256:<hex>`.
    Cosign { target: String },
    /// Anything else; it protects the digest it points to.
    Other,
}

/// Classifies a tag. Only the exact CI shapes count as CI tags: `ci-<variant>`,
/// `ci-<variant>-pr<N>`, `ci-<variant>-<short sha>` and `ci-<variant>-<short sha>-dirty`.
pub fn classify(tag: &str) -> TagKind {
    if let Some(rest) = tag.strip_prefix("sha256-") {
        for suffix in [".sig", ".att", ".sbom"] {
            if let Some(hex) = rest.strip_suffix(suffix) {
                if hex.len() == 64
                    && hex
                        .chars()
                        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                {
                    return TagKind::Cosign {
                        target: format!("sha256:{hex}"),
                    };
                }
            }
        }
        return TagKind::Other;
    }
    let Some(rest) = tag.strip_prefix("ci-") else {
        return TagKind::Other;
    };
    let (variant, unique) = match rest.split_once('-') {
        Some((variant, unique)) => (variant, Some(unique)),
        None => (rest, None),
    };
    let variant_ok = !variant.is_empty()
        && variant
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.'));
    let unique_ok = unique.is_none_or(|u| {
        let sha = u.strip_suffix("-dirty").unwrap_or(u);
        let pull_request = u
            .strip_prefix("pr")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        let short_sha = (7..=40).contains(&sha.len())
            && sha
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        pull_request || short_sha
    });
    if variant_ok && unique_ok {
        TagKind::Ci {
            variant: variant.to_string(),
        }
    } else {
        TagKind::Other
    }
}

/// A cosign tag that goes with a deleted image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CosignTag {
    pub tag: String,
    pub digest: String,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selection {
    pub repository: String,
    pub older_than: String,
    pub keep_newest: usize,
    pub dry_run: bool,
    pub delete: Vec<Decision>,
    pub keep: Vec<Decision>,
    /// Things worth knowing that are not decisions (e.g. a cosign tag left alone).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Selection {
    fn deleted_tag_count(&self) -> usize {
        self.delete.iter().map(|d| d.tags.len()).sum()
    }

    fn cosign_count(&self) -> usize {
        self.delete.iter().map(|d| d.cosign_tags.len()).sum()
    }

    /// `3 images (4 tags) and 1 cosign tag`
    fn deletion_summary(&self) -> String {
        let images = self.delete.len();
        let mut text = format!(
            "{images} image{} ({} tag{})",
            plural(images),
            self.deleted_tag_count(),
            plural(self.deleted_tag_count())
        );
        let cosign = self.cosign_count();
        if cosign > 0 {
            text.push_str(&format!(
                " and {cosign} cosign tag{} of them",
                plural(cosign)
            ));
        }
        text
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

pub fn run(args: PruneArgs) -> Result<()> {
    let older_than_seconds = parse_duration(&args.older_than)?;
    if args.cache {
        return run_cache(&args, older_than_seconds);
    }
    if args.open_prs.is_some() {
        bail!("--open-prs applies only to registry caches: add --cache to prune REG/NAME{REGISTRY_CACHE_SUFFIX}, or drop --open-prs");
    }
    let keep = parse_keep(&args.keep)?;
    let (host, name) = distribution::split_repository(&args.registry)
        .map_err(|err| anyhow::anyhow!("malformed --registry: {err}"))?;
    if distribution::is_ghcr(&host) {
        bail!("{}", distribution::GHCR_UNSUPPORTED);
    }
    let policy = Policy {
        older_than_seconds,
        keep,
        now: now_seconds()?,
    };
    let mut client = Client::new(&host);
    let repository = format!("{host}/{name}");
    let inventory = collect(&mut client, &name)?;
    let mut selection = select(&inventory, &policy);
    selection.repository = repository.clone();
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
            print_selection(&selection, "would delete", "keep", &log);
            log(format!(
                "dry run: would delete {}, keep {}; nothing was deleted",
                selection.deletion_summary(),
                selection.keep.len()
            ));
        }
        return Ok(());
    }

    if !selection.delete.is_empty() {
        recheck(
            &mut client,
            &name,
            &inventory.tags,
            &mut selection.delete,
            &mut selection.keep,
            &mut selection.notes,
        )?;
    }
    for decision in &selection.keep {
        log(format!("kept {}: {}", describe(decision), decision.reason));
    }
    for note in &selection.notes {
        log(format!("note: {note}"));
    }
    let mut deleted: Vec<&Decision> = Vec::new();
    let mut already_gone = 0;
    let total = selection.delete.len();
    for decision in &selection.delete {
        match client.delete_manifest(&name, &decision.digest) {
            Ok(true) => {}
            Ok(false) => already_gone += 1,
            Err(err) => {
                let what = format!("deleting {} from {repository}", decision.digest);
                return Err(deletion_failed(err, what, &deleted, total, "images"));
            }
        }
        deleted.push(decision);
        log(format!(
            "deleted {}: {}",
            describe(decision),
            decision.reason
        ));
        for cosign in &decision.cosign_tags {
            if let Err(err) = client.delete_manifest(&name, &cosign.digest) {
                let what = format!("deleting cosign tag {} of {}", cosign.tag, decision.digest);
                return Err(deletion_failed(err, what, &deleted, total, "images"));
            }
            log(format!(
                "deleted cosign tag {} ({}) of {}",
                cosign.tag, cosign.digest, decision.digest
            ));
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&selection)?);
    }
    let gone = if already_gone > 0 {
        format!(" ({already_gone} of them were already gone)")
    } else {
        String::new()
    };
    log(format!(
        "deleted {}{gone}, kept {}",
        selection.deletion_summary(),
        selection.keep.len()
    ));
    Ok(())
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

fn print_selection(
    selection: &Selection,
    delete_verb: &str,
    keep_verb: &str,
    log: &dyn Fn(String),
) {
    log(format!(
        "{}: ci- images older than {} beyond the newest {} per variant",
        selection.repository, selection.older_than, selection.keep_newest
    ));
    for decision in &selection.delete {
        log(format!(
            "{delete_verb} {}: {}",
            describe(decision),
            decision.reason
        ));
        for cosign in &decision.cosign_tags {
            log(format!(
                "{delete_verb} cosign tag {} ({}) of {}",
                cosign.tag, cosign.digest, decision.digest
            ));
        }
    }
    for decision in &selection.keep {
        log(format!(
            "{keep_verb} {}: {}",
            describe(decision),
            decision.reason
        ));
    }
    for note in &selection.notes {
        log(format!("note: {note}"));
    }
}

fn now_seconds() -> Result<i64> {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970; fix the clock")?;
    i64::try_from(elapsed.as_secs())
        .context("the system clock is implausibly far in the future; fix the clock")
}

/// `30m`, `12h`, `7d`, `2w`, `90s`, or combinations such as `1d12h`, in seconds.
pub fn parse_duration(text: &str) -> Result<u64> {
    let malformed =
        || anyhow::anyhow!("malformed duration {text:?} for --older-than: {DURATION_HINT}");
    if text.is_empty() {
        return Err(malformed());
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(digit)))
                    .ok_or_else(malformed)?,
            );
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(malformed()),
        };
        let value = number.take().ok_or_else(malformed)?;
        total = value
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(malformed)?;
    }
    if number.is_some() {
        return Err(malformed());
    }
    // Keep the arithmetic with epoch seconds (i64) exact.
    if total > i64::MAX as u64 / 2 {
        return Err(malformed());
    }
    Ok(total)
}

pub fn parse_keep(text: &str) -> Result<usize> {
    text.parse::<usize>().map_err(|_| {
        anyhow::anyhow!("malformed --keep {text:?}: expected a whole number of ci- images to keep per variant, e.g. --keep 3")
    })
}

/// `2155d3h`, `5h12m`, `42s`: the two largest units.
pub fn format_age(seconds: i64) -> String {
    if seconds < 0 {
        return format!("-{}", format_age(-seconds));
    }
    let units = [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)];
    let mut parts = Vec::new();
    let mut rest = seconds;
    for (name, size) in units {
        if rest >= size || (parts.is_empty() && size == 1) {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        } else if !parts.is_empty() {
            break;
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.concat()
}

/// Parses an RFC 3339 time such as `2024-05-01T12:34:56.123Z` or
/// `2024-05-01T14:34:56+02:00` into seconds since the Unix epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let minutes = number(i + 1..i + 3)? * 60 + number(i + 4..i + 6)?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The selection: a pure function of the inventory and the policy.
pub fn select(inventory: &Inventory, policy: &Policy) -> Selection {
    let mut tags_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for record in &inventory.tags {
        tags_of
            .entry(record.digest.as_str())
            .or_default()
            .push(record.tag.as_str());
    }

    struct Candidate<'a> {
        digest: &'a str,
        ci_tags: Vec<String>,
        variants: Vec<String>,
        facts: ImageFacts,
    }
    let mut keep: Vec<Decision> = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    for (digest, tags) in &tags_of {
        let mut ci_tags = Vec::new();
        let mut variants = BTreeSet::new();
        let mut others = Vec::new();
        for tag in tags {
            match classify(tag) {
                TagKind::Ci { variant } => {
                    ci_tags.push(tag.to_string());
                    variants.insert(variant);
                }
                _ => others.push(*tag),
            }
        }
        if ci_tags.is_empty() {
            continue;
        }
        ci_tags.sort();
        let facts = inventory
            .images
            .get(*digest)
            .cloned()
            .unwrap_or_else(|| ImageFacts {
                unknown_because: Some("its manifest and config were not read".into()),
                ..ImageFacts::default()
            });
        let variants: Vec<String> = variants.into_iter().collect();
        let refuse = if !others.is_empty() {
            others.sort();
            Some(format!(
                "shares its digest with non-ci tag{} {}",
                plural(others.len()),
                others.join(", ")
            ))
        } else if facts.production {
            Some(format!("its config is labelled {FLAVOR_LABEL}=production"))
        } else if facts.created.is_none() {
            Some(format!(
                "creation time unknown ({})",
                facts
                    .unknown_because
                    .as_deref()
                    .unwrap_or("no created in its config")
            ))
        } else {
            None
        };
        match refuse {
            Some(reason) => keep.push(decision(digest, ci_tags, variants, &facts, policy, reason)),
            None => candidates.push(Candidate {
                digest,
                ci_tags,
                variants,
                facts,
            }),
        }
    }

    // Rank the candidates of each variant, newest first (ties by digest, for determinism).
    let mut by_variant: BTreeMap<String, Vec<(i64, &str)>> = BTreeMap::new();
    for candidate in &candidates {
        let created = candidate
            .facts
            .created
            .as_ref()
            .map_or(i64::MIN, |(_, t)| *t);
        for variant in &candidate.variants {
            by_variant
                .entry(variant.clone())
                .or_default()
                .push((created, candidate.digest));
        }
    }
    for list in by_variant.values_mut() {
        list.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    }
    let rank = |variant: &str, digest: &str| -> usize {
        by_variant
            .get(variant)
            .and_then(|l| l.iter().position(|(_, d)| *d == digest))
            .unwrap_or(0)
            + 1
    };

    let limit = i64::try_from(policy.older_than_seconds).unwrap_or(i64::MAX);
    let limit_text = format_age(limit);
    let mut delete: Vec<Decision> = Vec::new();
    for candidate in candidates {
        let Candidate {
            digest,
            ci_tags,
            variants,
            facts,
        } = candidate;
        let created = facts.created.as_ref().map_or(0, |(_, t)| *t);
        let age = policy.now.saturating_sub(created);
        let ranks: Vec<(String, usize)> = variants
            .iter()
            .map(|v| (v.clone(), rank(v, digest)))
            .collect();
        let mut reasons = Vec::new();
        if age < limit {
            reasons.push(format!(
                "younger than {limit_text} ({} old)",
                format_age(age)
            ));
        }
        for (variant, r) in &ranks {
            if *r <= policy.keep {
                reasons.push(format!(
                    "within the newest {} of variant {variant} (rank {r})",
                    policy.keep
                ));
            }
        }
        if reasons.is_empty() {
            let ranks_text: Vec<String> = ranks
                .iter()
                .map(|(v, r)| format!("rank {r} in variant {v}"))
                .collect();
            let reason = format!(
                "{} old, older than {limit_text}; {} beyond --keep {}",
                format_age(age),
                ranks_text.join(", "),
                policy.keep
            );
            delete.push(decision(digest, ci_tags, variants, &facts, policy, reason));
        } else {
            keep.push(decision(
                digest,
                ci_tags,
                variants,
                &facts,
                policy,
                reasons.join("; "),
            ));
        }
    }

    keep_children_of_kept_indexes(inventory, &tags_of, &mut delete, &mut keep);

    // The cosign tags of each deleted image go with it, unless shared.
    let doomed: BTreeSet<String> = delete.iter().map(|d| d.digest.clone()).collect();
    let mut notes = Vec::new();
    let mut cosign_digests_taken = BTreeSet::new();
    for decision in &mut delete {
        for record in &inventory.tags {
            if classify(&record.tag)
                != (TagKind::Cosign {
                    target: decision.digest.clone(),
                })
            {
                continue;
            }
            let others: Vec<&str> = tags_of
                .get(record.digest.as_str())
                .map(|tags| {
                    tags.iter()
                        .copied()
                        .filter(|t| {
                            classify(t)
                                != (TagKind::Cosign {
                                    target: decision.digest.clone(),
                                })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let referenced = inventory
                .children
                .iter()
                .any(|(parent, kids)| !doomed.contains(parent) && kids.contains(&record.digest));
            if !others.is_empty() || referenced || doomed.contains(&record.digest) {
                notes.push(format!(
                    "left cosign tag {} of {}: its manifest {} is also {}",
                    record.tag,
                    decision.digest,
                    record.digest,
                    if others.is_empty() {
                        "referenced elsewhere".to_string()
                    } else {
                        format!("tagged {}", others.join(", "))
                    }
                ));
                continue;
            }
            if cosign_digests_taken.insert(record.digest.clone()) {
                decision.cosign_tags.push(CosignTag {
                    tag: record.tag.clone(),
                    digest: record.digest.clone(),
                });
            }
        }
    }

    delete.sort_by(|a, b| a.digest.cmp(&b.digest));
    keep.sort_by(|a, b| a.digest.cmp(&b.digest));
    Selection {
        repository: String::new(),
        older_than: format_age(limit),
        keep_newest: policy.keep,
        dry_run: true,
        delete,
        keep,
        notes,
    }
}

/// Never delete a manifest that an index we keep references: moves such
/// decisions from `delete` to `keep`, saying which index.
fn keep_children_of_kept_indexes(
    inventory: &Inventory,
    tags_of: &BTreeMap<&str, Vec<&str>>,
    delete: &mut Vec<Decision>,
    keep: &mut Vec<Decision>,
) {
    loop {
        let doomed: BTreeSet<String> = delete.iter().map(|d| d.digest.clone()).collect();
        let protected = delete.iter().position(|d| {
            inventory
                .children
                .iter()
                .any(|(parent, kids)| !doomed.contains(parent) && kids.contains(&d.digest))
        });
        let Some(position) = protected else { break };
        let mut moved = delete.remove(position);
        let parents: Vec<String> = inventory
            .children
            .iter()
            .filter(|(parent, kids)| !doomed.contains(*parent) && kids.contains(&moved.digest))
            .map(|(parent, _)| {
                let tags = tags_of
                    .get(parent.as_str())
                    .map(|t| t.join(", "))
                    .unwrap_or_default();
                if tags.is_empty() {
                    parent.clone()
                } else {
                    format!("{parent} [{tags}]")
                }
            })
            .collect();
        moved.reason = format!("referenced by index {}, which is kept", parents.join(", "));
        keep.push(moved);
    }
}

fn decision(
    digest: &str,
    tags: Vec<String>,
    variants: Vec<String>,
    facts: &ImageFacts,
    policy: &Policy,
    reason: String,
) -> Decision {
    Decision {
        digest: digest.to_string(),
        tags,
        variants,
        created: facts.created.as_ref().map(|(text, _)| text.clone()),
        age: facts
            .created
            .as_ref()
            .map(|(_, t)| format_age(policy.now.saturating_sub(*t))),
        reason,
        cosign_tags: Vec::new(),
    }
}

/// Reads the repository: every tag's manifest, every index's children, and
/// the configs of every image a ci- tag points to.
fn collect(client: &mut Client, name: &str) -> Result<Inventory> {
    let mut inventory = Inventory::default();
    let mut manifests: BTreeMap<String, Manifest> = BTreeMap::new();
    for tag in client.list_tags(name)? {
        // A tag deleted since the listing is simply not there any more.
        let Some(manifest) = client.get_manifest(name, &tag)? else {
            continue;
        };
        inventory.tags.push(TagRecord {
            tag,
            digest: manifest.digest.clone(),
        });
        manifests.entry(manifest.digest.clone()).or_insert(manifest);
    }
    for (digest, manifest) in &manifests {
        if manifest.is_index() {
            inventory
                .children
                .insert(digest.clone(), child_digests(&manifest.json()?, false));
        }
    }
    let ci_digests: BTreeSet<&str> = inventory
        .tags
        .iter()
        .filter(|r| matches!(classify(&r.tag), TagKind::Ci { .. }))
        .map(|r| r.digest.as_str())
        .collect();
    for digest in ci_digests {
        let Some(manifest) = manifests.get(digest) else {
            continue;
        };
        let facts = image_facts(client, name, manifest)?;
        inventory.images.insert(digest.to_string(), facts);
    }
    Ok(inventory)
}

/// The digests an index references; without attestation manifests if asked.
fn child_digests(index: &Value, skip_attestations: bool) -> Vec<String> {
    let Some(list) = index.get("manifests").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter(|m| {
            !skip_attestations
                || m.get("annotations")
                    .and_then(|a| a.get(ATTESTATION_TYPE))
                    .and_then(Value::as_str)
                    != Some("attestation-manifest")
        })
        .filter_map(|m| m.get("digest").and_then(Value::as_str).map(String::from))
        .collect()
}

/// Creation time and production label of an image (single manifest or index).
fn image_facts(client: &mut Client, name: &str, manifest: &Manifest) -> Result<ImageFacts> {
    let json = manifest.json()?;
    let mut images = Vec::new();
    if manifest.is_index() {
        let children = child_digests(&json, true);
        if children.is_empty() {
            return Ok(ImageFacts {
                unknown_because: Some("an index without platform images".into()),
                ..ImageFacts::default()
            });
        }
        for child in children {
            let Some(child_manifest) = client.get_manifest(name, &child)? else {
                return Ok(ImageFacts {
                    unknown_because: Some(format!("its platform manifest {child} is missing")),
                    ..ImageFacts::default()
                });
            };
            images.push(child_manifest.json()?);
        }
    } else {
        images.push(json);
    }
    let mut configs = Vec::new();
    for image in &images {
        let Some(config_digest) = image
            .get("config")
            .and_then(|c| c.get("digest"))
            .and_then(Value::as_str)
        else {
            return Ok(ImageFacts {
                unknown_because: Some("a manifest without a config".into()),
                ..ImageFacts::default()
            });
        };
        let Some(bytes) = client.get_blob(name, config_digest)? else {
            return Ok(ImageFacts {
                unknown_because: Some(format!("its config blob {config_digest} is missing")),
                ..ImageFacts::default()
            });
        };
        let config: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        configs.push(config);
    }
    Ok(facts_from_configs(&configs))
}

/// The newest `created` of the configs (unknown if any lacks one) and
/// whether any is labelled production.
pub fn facts_from_configs(configs: &[Value]) -> ImageFacts {
    let mut facts = ImageFacts::default();
    let mut newest: Option<(String, i64)> = None;
    for config in configs {
        let labels = config.get("config").and_then(|c| c.get("Labels"));
        if labels
            .and_then(|l| l.get(FLAVOR_LABEL))
            .and_then(Value::as_str)
            == Some("production")
        {
            facts.production = true;
        }
        let created = config.get("created").and_then(Value::as_str);
        match created.map(|text| (text, parse_rfc3339(text))) {
            Some((text, Some(t))) => {
                if newest.as_ref().is_none_or(|(_, n)| t > *n) {
                    newest = Some((text.to_string(), t));
                }
            }
            Some((text, None)) => {
                facts.unknown_because = Some(format!("unreadable created {text:?} in its config"));
            }
            None => facts.unknown_because = Some("no created in its config".into()),
        }
    }
    if facts.unknown_because.is_none() {
        facts.created = newest;
    }
    facts
}

/// Resolves every tag again right before deleting: a candidate that any tag
/// not in its own set now points to is kept, and so is a cosign manifest.
fn recheck(
    client: &mut Client,
    name: &str,
    before: &[TagRecord],
    delete: &mut Vec<Decision>,
    keep: &mut Vec<Decision>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let before: BTreeMap<&str, &str> = before
        .iter()
        .map(|r| (r.tag.as_str(), r.digest.as_str()))
        .collect();
    let mut now: Vec<(String, String)> = Vec::new();
    for tag in client.list_tags(name)? {
        if let Some(digest) = client.head_manifest(name, &tag)? {
            now.push((tag, digest));
        }
    }
    let mut kept = Vec::new();
    delete.retain(|decision| {
        let newcomer = now.iter().find(|(tag, digest)| {
            *digest == decision.digest
                && before.get(tag.as_str()) != Some(&decision.digest.as_str())
        });
        match newcomer {
            Some((tag, _)) => {
                let mut moved = decision.clone();
                moved.reason = format!("tag {tag} was moved onto it during this run");
                moved.cosign_tags.clear();
                kept.push(moved);
                false
            }
            None => true,
        }
    });
    for decision in delete.iter_mut() {
        let own = &decision.digest;
        decision.cosign_tags.retain(|cosign| {
            let intruder = now.iter().find(|(tag, digest)| {
                *digest == cosign.digest && classify(tag) != (TagKind::Cosign { target: own.clone() })
            });
            if let Some((tag, _)) = intruder {
                notes.push(format!(
                    "left cosign tag {} of {own}: tag {tag} was moved onto its manifest during this run",
                    cosign.tag
                ));
            }
            intruder.is_none()
        });
    }
    keep.extend(kept);
    keep.sort_by(|a, b| a.digest.cmp(&b.digest));
    Ok(())
}

// ---------------------------------------------------------------------------
// `--cache`: the registry cache repository REG/NAME-buildcache.

/// What a tag of the cache repository is, by its name `<variant>-<scope>`
/// (the scopes of `cache::scope`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheTag {
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

impl CacheTag {
    fn is_candidate(&self) -> bool {
        matches!(self, CacheTag::PullRequest { .. } | CacheTag::Branch { .. })
    }

    fn variant(&self) -> Option<&str> {
        match self {
            CacheTag::DefaultBranch { variant }
            | CacheTag::PullRequest { variant, .. }
            | CacheTag::Branch { variant }
            | CacheTag::Local { variant } => Some(variant),
            CacheTag::Other => None,
        }
    }

    /// Why a tag that is not a candidate stays.
    fn protection(&self) -> &'static str {
        match self {
            CacheTag::DefaultBranch { .. } => "the default branch's cache, never deleted",
            CacheTag::Local { .. } => "a laptop's cache (scope local), never deleted",
            _ => "not a pull request or branch cache tag, never deleted",
        }
    }
}

/// Classifies a tag of the cache repository. Where a tag could be read two
/// ways, the reading that deletes less wins: a `-main` or `-local` suffix
/// always protects, and a `-branch-` scope (age only) beats a `-pr-` one.
pub fn classify_cache(tag: &str) -> CacheTag {
    let variant_ok = |v: &str| {
        !v.is_empty()
            && !v.starts_with(['-', '.'])
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    if let Some(variant) = tag.strip_suffix(&format!("-{DEFAULT_BRANCH}")) {
        return if variant_ok(variant) {
            CacheTag::DefaultBranch {
                variant: variant.to_string(),
            }
        } else {
            CacheTag::Other
        };
    }
    if let Some(variant) = tag.strip_suffix("-local") {
        return if variant_ok(variant) {
            CacheTag::Local {
                variant: variant.to_string(),
            }
        } else {
            CacheTag::Other
        };
    }
    if let Some((variant, slug)) = tag.split_once("-branch-") {
        let slug_ok = !slug.is_empty()
            && slug.len() <= 40
            && !slug.starts_with('-')
            && !slug.ends_with('-')
            && slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if variant_ok(variant) && slug_ok {
            return CacheTag::Branch {
                variant: variant.to_string(),
            };
        }
    }
    if let Some((variant, number)) = tag.rsplit_once("-pr-") {
        let digits = !number.is_empty()
            && !number.starts_with('0')
            && number.bytes().all(|b| b.is_ascii_digit());
        if let (true, true, Ok(number)) = (variant_ok(variant), digits, number.parse::<u64>()) {
            return CacheTag::PullRequest {
                variant: variant.to_string(),
                number,
            };
        }
    }
    CacheTag::Other
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
pub fn cache_facts(manifest: &Value) -> ImageFacts {
    let unknown = |why: String| ImageFacts {
        unknown_because: Some(why),
        ..ImageFacts::default()
    };
    fn media_type(descriptor: &Value) -> Option<&str> {
        descriptor.get("mediaType").and_then(Value::as_str)
    }
    let config_type = manifest.get("config").and_then(media_type);
    let descriptors = if config_type == Some(CACHE_CONFIG_TYPE) {
        manifest.get("layers").and_then(Value::as_array)
    } else {
        manifest
            .get("manifests")
            .and_then(Value::as_array)
            .filter(|list| {
                list.iter()
                    .any(|d| media_type(d) == Some(CACHE_CONFIG_TYPE))
            })
    };
    let Some(descriptors) = descriptors else {
        return unknown(format!(
            "not a BuildKit cache manifest: config media type {}",
            config_type.unwrap_or("missing")
        ));
    };
    let mut newest: Option<(String, i64)> = None;
    for descriptor in descriptors {
        let Some(created) = descriptor
            .get("annotations")
            .and_then(|a| a.get(CACHE_CREATED))
        else {
            continue;
        };
        let parsed = created
            .as_str()
            .and_then(|text| parse_rfc3339(text).map(|t| (text, t)));
        let Some((text, t)) = parsed else {
            return unknown(format!("unreadable {CACHE_CREATED} {created} on a layer"));
        };
        if newest.as_ref().is_none_or(|(_, n)| t > *n) {
            newest = Some((text.to_string(), t));
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

/// The decisions about a cache repository, one per digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheSelection {
    /// The cache repository, REGISTRY/NAME-buildcache.
    pub repository: String,
    pub older_than: String,
    /// The pull requests given as open; `null` without --open-prs.
    pub open_prs: Option<Vec<u64>>,
    pub dry_run: bool,
    pub delete: Vec<Decision>,
    pub keep: Vec<Decision>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

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
    let mut tags_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for record in &inventory.tags {
        tags_of
            .entry(record.digest.as_str())
            .or_default()
            .push(record.tag.as_str());
    }
    for tags in tags_of.values_mut() {
        tags.sort_unstable();
        tags.dedup();
    }
    let limit = i64::try_from(policy.older_than_seconds).unwrap_or(i64::MAX);
    let limit_text = format_age(limit);
    let decision_policy = Policy {
        older_than_seconds: policy.older_than_seconds,
        keep: 0,
        now: policy.now,
    };
    let mut delete = Vec::new();
    let mut keep = Vec::new();
    for (digest, tags) in &tags_of {
        let classified: Vec<(&str, CacheTag)> =
            tags.iter().map(|tag| (*tag, classify_cache(tag))).collect();
        let variants: Vec<String> = classified
            .iter()
            .filter_map(|(_, kind)| kind.variant().map(String::from))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let all_tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        let facts = inventory
            .images
            .get(*digest)
            .cloned()
            .unwrap_or_else(|| ImageFacts {
                unknown_because: Some("its manifest was not read".into()),
                ..ImageFacts::default()
            });
        let (candidates, protected): (Vec<_>, Vec<_>) =
            classified.iter().partition(|(_, kind)| kind.is_candidate());
        let mut decide = |doomed: bool, reason: String| {
            let made = decision(
                digest,
                all_tags.clone(),
                variants.clone(),
                &facts,
                &decision_policy,
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
                CacheTag::PullRequest { number, .. } => Some(*number),
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
    CacheSelection {
        repository: String::new(),
        older_than: limit_text,
        open_prs: policy
            .open_prs
            .as_ref()
            .map(|open| open.iter().copied().collect()),
        dry_run: true,
        delete,
        keep,
        notes: Vec::new(),
    }
}

/// Reads the cache repository: every tag's manifest (which carries the
/// layers' `buildkit/createdat`, so no blob is fetched) and every index's children.
fn collect_caches(client: &mut Client, name: &str) -> Result<Inventory> {
    let mut inventory = Inventory::default();
    let mut manifests: BTreeMap<String, Manifest> = BTreeMap::new();
    for tag in client.list_tags(name)? {
        // A tag deleted since the listing is simply not there any more.
        let Some(manifest) = client.get_manifest(name, &tag)? else {
            continue;
        };
        inventory.tags.push(TagRecord {
            tag,
            digest: manifest.digest.clone(),
        });
        manifests.entry(manifest.digest.clone()).or_insert(manifest);
    }
    for (digest, manifest) in &manifests {
        let facts = match manifest.json() {
            Ok(json) => {
                if manifest.is_index() {
                    inventory
                        .children
                        .insert(digest.clone(), child_digests(&json, false));
                }
                cache_facts(&json)
            }
            Err(_) => ImageFacts {
                unknown_because: Some("its manifest is not JSON".into()),
                ..ImageFacts::default()
            },
        };
        inventory.images.insert(digest.clone(), facts);
    }
    Ok(inventory)
}

fn run_cache(args: &PruneArgs, older_than_seconds: u64) -> Result<()> {
    let open_prs = args.open_prs.as_deref().map(parse_open_prs).transpose()?;
    let (host, name) = distribution::split_repository(&args.registry)
        .map_err(|err| anyhow::anyhow!("malformed --registry: {err}"))?;
    if name.ends_with(REGISTRY_CACHE_SUFFIX) {
        bail!(
            "--registry {} names a cache repository: with --cache give the image repository REG/NAME, \
             whose cache repository REG/NAME{REGISTRY_CACHE_SUFFIX} is pruned",
            args.registry
        );
    }
    if distribution::is_ghcr(&host) {
        bail!("{}", distribution::GHCR_UNSUPPORTED);
    }
    let policy = CachePolicy {
        older_than_seconds,
        open_prs,
        now: now_seconds()?,
    };
    let cache_name = format!("{name}{REGISTRY_CACHE_SUFFIX}");
    let repository = format!("{host}/{cache_name}");
    let mut client = Client::new(&host);
    let inventory = collect_caches(&mut client, &cache_name).with_context(|| {
        format!(
            "cannot read the cache repository {repository} (--cache prunes REG/NAME{REGISTRY_CACHE_SUFFIX}, \
             where builds with --cache registry write)"
        )
    })?;
    let mut selection = select_caches(&inventory, &policy);
    selection.repository = repository.clone();
    selection.older_than = args.older_than.clone();
    selection.dry_run = args.dry_run;
    let log = |line: String| {
        if args.json {
            eprintln!("{line}")
        } else {
            println!("{line}")
        }
    };
    fn all(list: &[Decision]) -> Vec<&Decision> {
        list.iter().collect()
    }

    if args.dry_run {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&selection)?);
        } else {
            log(cache_header(&selection));
            for decision in &selection.delete {
                log(format!(
                    "would delete {}: {}",
                    describe(decision),
                    decision.reason
                ));
            }
            for decision in &selection.keep {
                log(format!("keep {}: {}", describe(decision), decision.reason));
            }
            log(format!(
                "dry run: would delete {}, keep {}; nothing was deleted",
                cache_count(&all(&selection.delete)),
                cache_count(&all(&selection.keep))
            ));
        }
        return Ok(());
    }

    if !selection.delete.is_empty() {
        recheck(
            &mut client,
            &cache_name,
            &inventory.tags,
            &mut selection.delete,
            &mut selection.keep,
            &mut selection.notes,
        )?;
    }
    if !args.json {
        log(cache_header(&selection));
    }
    for decision in &selection.keep {
        log(format!("kept {}: {}", describe(decision), decision.reason));
    }
    for note in &selection.notes {
        log(format!("note: {note}"));
    }
    let mut deleted: Vec<&Decision> = Vec::new();
    let mut already_gone = 0;
    let total = selection.delete.len();
    for decision in &selection.delete {
        match client.delete_manifest(&cache_name, &decision.digest) {
            Ok(true) => {}
            Ok(false) => already_gone += 1,
            Err(err) => {
                let what = format!("deleting {} from {repository}", decision.digest);
                return Err(deletion_failed(
                    err,
                    what,
                    &deleted,
                    total,
                    "cache manifests",
                ));
            }
        }
        deleted.push(decision);
        log(format!(
            "deleted {}: {}",
            describe(decision),
            decision.reason
        ));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&selection)?);
    }
    let gone = if already_gone > 0 {
        format!(" ({already_gone} of them were already gone)")
    } else {
        String::new()
    };
    log(format!(
        "deleted {}{gone}, kept {}",
        cache_count(&deleted),
        cache_count(&all(&selection.keep))
    ));
    Ok(())
}

/// What a cache run looks for, in one line.
fn cache_header(selection: &CacheSelection) -> String {
    let closed = match &selection.open_prs {
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
        selection.repository, selection.older_than
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_800_000_000;

    fn digest(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    fn policy(days: u64, keep: usize) -> Policy {
        Policy {
            older_than_seconds: days * DAY as u64,
            keep,
            now: NOW,
        }
    }

    fn tag(tag: &str, n: u8) -> TagRecord {
        TagRecord {
            tag: tag.into(),
            digest: digest(n),
        }
    }

    fn aged(days_old: i64) -> ImageFacts {
        ImageFacts {
            created: Some((format!("{days_old} days ago"), NOW - days_old * DAY)),
            ..ImageFacts::default()
        }
    }

    fn inventory(tags: Vec<TagRecord>, images: Vec<(u8, ImageFacts)>) -> Inventory {
        Inventory {
            tags,
            images: images.into_iter().map(|(n, f)| (digest(n), f)).collect(),
            children: BTreeMap::new(),
        }
    }

    fn deleted(s: &Selection) -> Vec<String> {
        s.delete.iter().map(|d| d.digest.clone()).collect()
    }

    fn reason_of(s: &Selection, n: u8) -> String {
        s.keep
            .iter()
            .chain(&s.delete)
            .find(|d| d.digest == digest(n))
            .map(|d| d.reason.clone())
            .unwrap_or_default()
    }

    #[test]
    fn classifies_tags() {
        let ci = |v: &str| TagKind::Ci { variant: v.into() };
        assert_eq!(classify("ci-chainguard"), ci("chainguard"));
        assert_eq!(classify("ci-ubi9-pr42"), ci("ubi9"));
        assert_eq!(classify("ci-distroless-abc1234"), ci("distroless"));
        assert_eq!(classify("ci-distroless-abc1234-dirty"), ci("distroless"));
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
            assert_eq!(classify(other), TagKind::Other, "{other}");
        }
        let hex = "ab".repeat(32);
        for suffix in ["sig", "att", "sbom"] {
            assert_eq!(
                classify(&format!("sha256-{hex}.{suffix}")),
                TagKind::Cosign {
                    target: format!("sha256:{hex}")
                }
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m").unwrap(), 1800);
        assert_eq!(parse_duration("12h").unwrap(), 43_200);
        assert_eq!(parse_duration("7d").unwrap(), 604_800);
        assert_eq!(parse_duration("2w").unwrap(), 1_209_600);
        assert_eq!(parse_duration("1d12h").unwrap(), 129_600);
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert_eq!(parse_duration("0d").unwrap(), 0);
        for bad in [
            "",
            "7",
            "d",
            "7x",
            "7 d",
            "-7d",
            "7D",
            "1.5d",
            "d7",
            "7dd",
            "99999999999999999999d",
            "1y",
        ] {
            let err = parse_duration(bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "malformed duration {bad:?} for --older-than: expected"
                )),
                "{err}"
            );
            assert!(
                err.contains("30m, 12h, 7d, 2w") && !err.contains('\n'),
                "{err}"
            );
        }
        assert_eq!(parse_keep("3").unwrap(), 3);
        assert!(parse_keep("-1")
            .unwrap_err()
            .to_string()
            .contains("--keep \"-1\""));
        assert!(parse_keep("x").is_err());
    }

    #[test]
    fn ages_format() {
        assert_eq!(format_age(0), "0s");
        assert_eq!(format_age(42), "42s");
        assert_eq!(format_age(3600 + 120 + 5), "1h2m");
        assert_eq!(format_age(30 * DAY), "30d");
        assert_eq!(format_age(2155 * DAY + 3 * 3600 + 7), "2155d3h");
        assert_eq!(format_age(-90), "-1m30s");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2020-01-01T00:00:00Z"), Some(1_577_836_800));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.123456789Z"),
            Some(1_709_208_000)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T14:00:00+02:00"),
            Some(1_709_208_000)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T11:30:00-00:30"),
            Some(1_709_208_000)
        );
        for bad in [
            "",
            "2024-02-29",
            "2024-02-29T12:00:00",
            "2024-13-01T00:00:00Z",
            "2024-02-29T12:00:00.Z",
            "yesterday",
            "2024-02-29T12:00:00Zjunk",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn configs_give_newest_created_and_production_label() {
        let config = |created: Option<&str>, flavor: &str| {
            let mut c = serde_json::json!({ "config": { "Labels": { FLAVOR_LABEL: flavor } } });
            if let Some(created) = created {
                c["created"] = created.into();
            }
            c
        };
        let facts = facts_from_configs(&[
            config(Some("2020-01-01T00:00:00Z"), "ci"),
            config(Some("2021-01-01T00:00:00Z"), "ci"),
        ]);
        assert_eq!(
            facts.created,
            Some(("2021-01-01T00:00:00Z".into(), 1_609_459_200))
        );
        assert!(!facts.production);
        assert!(
            facts_from_configs(&[config(Some("2020-01-01T00:00:00Z"), "production")]).production
        );
        let unknown = facts_from_configs(&[
            config(Some("2020-01-01T00:00:00Z"), "ci"),
            config(None, "ci"),
        ]);
        assert_eq!(unknown.created, None);
        assert!(unknown.unknown_because.is_some());
        assert_eq!(
            facts_from_configs(&[config(Some("garbage"), "ci")]).created,
            None
        );
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

    // --- --cache ---

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
        let days = t.div_euclid(DAY);
        let secs = t.rem_euclid(DAY);
        // Civil from days (Howard Hinnant).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.123456789Z",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )
    }

    fn cache_inventory(tags: Vec<TagRecord>, caches: Vec<(u8, ImageFacts)>) -> Inventory {
        inventory(tags, caches)
    }

    fn cache_aged(seconds_old: i64) -> ImageFacts {
        cache_facts(&cache_manifest(&[Some(seconds_old)]))
    }

    fn cache_reason(s: &CacheSelection, n: u8) -> String {
        s.keep
            .iter()
            .chain(&s.delete)
            .find(|d| d.digest == digest(n))
            .map(|d| d.reason.clone())
            .unwrap_or_default()
    }

    fn cache_deleted(s: &CacheSelection) -> Vec<String> {
        s.delete.iter().map(|d| d.digest.clone()).collect()
    }

    #[test]
    fn classifies_cache_tags() {
        let v = |s: &str| s.to_string();
        assert_eq!(
            classify_cache("ubi9-main"),
            CacheTag::DefaultBranch { variant: v("ubi9") }
        );
        assert_eq!(
            classify_cache("ubi9-pr-42"),
            CacheTag::PullRequest {
                variant: v("ubi9"),
                number: 42
            }
        );
        assert_eq!(
            classify_cache("my-variant-pr-7"),
            CacheTag::PullRequest {
                variant: v("my-variant"),
                number: 7
            }
        );
        assert_eq!(
            classify_cache("ubi9-branch-feature-x-y"),
            CacheTag::Branch { variant: v("ubi9") }
        );
        assert_eq!(
            classify_cache("ubi9-local"),
            CacheTag::Local { variant: v("ubi9") }
        );
        // Ambiguous readings delete less: a branch called "pr-3" is a branch,
        // a branch whose slug ends in -main or -local is protected.
        assert_eq!(
            classify_cache("ubi9-branch-pr-3"),
            CacheTag::Branch { variant: v("ubi9") }
        );
        assert_eq!(
            classify_cache("ubi9-branch-x-main"),
            CacheTag::DefaultBranch {
                variant: v("ubi9-branch-x")
            }
        );
        assert!(matches!(
            classify_cache("ubi9-branch-local"),
            CacheTag::Local { .. }
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
            assert_eq!(classify_cache(other), CacheTag::Other, "{other}");
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
            let scope = crate::cache::scope(&build_ref, true).unwrap_or_default();
            let kind = classify_cache(&format!("chainguard-{scope}"));
            assert_eq!(kind.is_candidate(), candidate, "{scope}: {kind:?}");
            assert_eq!(kind.variant(), Some("chainguard"), "{scope}");
        }
        let local = crate::cache::scope(&BuildRef::Detached, false).unwrap_or_default();
        assert!(matches!(
            classify_cache(&format!("ubi9-{local}")),
            CacheTag::Local { .. }
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
        assert_eq!(s.open_prs, None);
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
        assert_eq!(s.open_prs, Some(vec![1, 3]));
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
