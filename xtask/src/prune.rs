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
//! The selection is a pure function of an [`Inventory`] read from the
//! registry, so it is unit-tested without one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use crate::distribution::{self, Client, Manifest};

const FLAVOR_LABEL: &str = "dev.beacon.image.flavor";
const ATTESTATION_TYPE: &str = "vnd.docker.reference.type";
const DURATION_HINT: &str = "expected a whole number followed by a unit s, m, h, d or w, \
     optionally combined, e.g. 30m, 12h, 7d, 2w or 1d12h";

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// The repository to prune, REGISTRY/NAME, e.g. 127.0.0.1:5000/beacon.
    #[arg(long, value_name = "REG/NAME")]
    pub registry: String,

    /// Delete ci- images created longer ago than this: 30m, 12h, 7d, 2w, or combined like 1d12h.
    #[arg(long, value_name = "DURATION")]
    pub older_than: String,

    /// Always keep the newest N ci- images of each variant, however old.
    #[arg(long, value_name = "N", default_value = "1")]
    pub keep: String,

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
    /// The facts of every digest a `ci-` tag points to.
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
        recheck(&mut client, &name, &inventory, &mut selection)?;
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
                return Err(deletion_failed(err, what, &deleted, total));
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
                return Err(deletion_failed(err, what, &deleted, total));
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
) -> anyhow::Error {
    if deleted.is_empty() {
        return err.context(format!("{what} (nothing was deleted)"));
    }
    let done: Vec<&str> = deleted.iter().map(|d| d.digest.as_str()).collect();
    err.context(format!(
        "{what} failed after deleting {} of {total} images ({})",
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

    // Never delete a manifest that an index we keep references.
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
    inventory: &Inventory,
    selection: &mut Selection,
) -> Result<()> {
    let before: BTreeMap<&str, &str> = inventory
        .tags
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
    selection.delete.retain(|decision| {
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
    for decision in &mut selection.delete {
        let own = &decision.digest;
        decision.cosign_tags.retain(|cosign| {
            let intruder = now.iter().find(|(tag, digest)| {
                *digest == cosign.digest && classify(tag) != (TagKind::Cosign { target: own.clone() })
            });
            if let Some((tag, _)) = intruder {
                selection.notes.push(format!(
                    "left cosign tag {} of {own}: tag {tag} was moved onto its manifest during this run",
                    cosign.tag
                ));
            }
            intruder.is_none()
        });
    }
    selection.keep.extend(kept);
    selection.keep.sort_by(|a, b| a.digest.cmp(&b.digest));
    Ok(())
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
}
