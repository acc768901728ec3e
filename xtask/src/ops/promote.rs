//! The promotion, the only step that moves tags: it trusts no earlier stage
//! or job order. It checks the record against the registry and this
//! checkout, runs the deploy gate itself on every digest, refuses a version
//! tag that exists on another digest, and only when every variant passed
//! moves the tags, `latest` last. What `promote` and `release-image` share.

use anyhow::{bail, Result};

use crate::client::{process, registry};
use crate::model::names::Platform;
use crate::model::reference::ImageRef;
use crate::ops::gate::{self, SignatureCheck};
use crate::ops::record::{self, RecordExpectation};
use crate::plan::record::{latest_last, RecordedVariant, ReleaseRecord};
use crate::plan::release::ReleaseTags;
use crate::{render, report};

/// Checks the record (against the registry, the checkout and the tags
/// derived from its ref: `derived`), gates every digest and moves the
/// derived tags (see the module comment). Returns the tags moved.
pub fn promote(
    record: &ReleaseRecord,
    origin: &str,
    expect: &RecordExpectation,
    derived: &ReleaseTags,
    signature: Option<&SignatureCheck>,
    platforms: &[Platform],
    rerun: &str,
) -> Result<Vec<ImageRef>> {
    record::check_record(record, origin, expect)?;
    record::check_tags(record, origin, derived)?;
    eprintln!(
        "gate: checking {} variant(s) of {} {} before any tag moves",
        record.variants.len(),
        record.repository,
        record.version
    );
    let verdicts = gate::gate_record(record, signature, platforms)?;
    if let Some(failure) = gate::gate_failure(record, &verdicts, rerun) {
        return Err(failure);
    }
    for variant in &record.variants {
        let immutable = derived
            .variants
            .get(&variant.variant)
            .map(|v| v.immutable.as_slice())
            .unwrap_or_default();
        for reference in immutable {
            if let Some(digest) = registry::resolve_digest(reference)? {
                if variant.digest != digest {
                    bail!("{reference} already exists ({digest}), and the release record puts it on {}: release tags are immutable, so no tag moved; bump the version and release again", variant.digest);
                }
            }
        }
    }
    let moved = move_tags(record, &tag_moves(record, derived), rerun)?;
    report::write_step_summary(&report::promotion_summary(record, &moved))?;
    Ok(moved)
}

/// The promotion's tag moves: each recorded (verified) digest gets its
/// variant's derived tags, `latest` last.
pub fn tag_moves<'a>(
    record: &'a ReleaseRecord,
    derived: &ReleaseTags,
) -> Vec<(&'a RecordedVariant, Vec<ImageRef>)> {
    let tags: Vec<(&RecordedVariant, Vec<ImageRef>)> = record
        .variants
        .iter()
        .map(|v| {
            let tags = derived.variants.get(&v.variant).map(|t| t.tags.clone());
            (v, tags.unwrap_or_default())
        })
        .collect();
    latest_last(&tags, |(_, tags)| tags)
        .into_iter()
        .map(|((variant, _), tags)| (*variant, tags))
        .collect()
}

/// Moves the tags of a (gated) release record onto its digests, in the
/// order given (`latest` last). A failure says exactly how to finish: every
/// digest is pushed, signed and has passed the gate.
pub fn move_tags(
    record: &ReleaseRecord,
    moves: &[(&RecordedVariant, Vec<ImageRef>)],
    finish: &str,
) -> Result<Vec<ImageRef>> {
    let mut moved = Vec::new();
    for (index, (variant, tags)) in moves.iter().enumerate() {
        let invocation = render::tag_digest(tags, &variant.image(&record.repository));
        if let Err(err) = process::run(&invocation) {
            let words = |tags: &mut dyn Iterator<Item = &ImageRef>| {
                tags.map(ToString::to_string).collect::<Vec<_>>().join(" ")
            };
            let remaining = words(&mut moves[index..].iter().flat_map(|(_, tags)| tags));
            bail!(
                "moving the tags of {} failed ({err}); moved already: {}; not yet: {remaining}; every digest passed the gate, so finish with: {finish}",
                variant.variant,
                if moved.is_empty() { "none".to_string() } else { words(&mut moved.iter()) },
            );
        }
        moved.extend(tags.iter().cloned());
    }
    Ok(moved)
}
