//! The promotion, the only step that moves tags: it trusts no earlier stage
//! or job order. It checks the record against the registry and this
//! checkout, runs the deploy gate itself on every digest, refuses a version
//! tag that exists on another digest, and only when every variant passed
//! moves the tags, `latest` last. What `promote` and `release-image` share.

use anyhow::{bail, Result};

use crate::client::registry;
use crate::model::names::Platform;
use crate::model::reference::ImageRef;
use crate::ops::gate::{self, SignatureCheck};
use crate::ops::record::{self, RecordExpectation};
use crate::plan::record::{latest_last, RecordedVariant, ReleaseRecord};
use crate::plan::release::ReleaseTags;
use crate::{exec, render, report};

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
/// order given (`latest` last): the stage rendered at once, run by the one
/// loop. A failure says exactly how to finish: every digest is pushed,
/// signed and has passed the gate.
pub fn move_tags(
    record: &ReleaseRecord,
    moves: &[(&RecordedVariant, Vec<ImageRef>)],
    finish: &str,
) -> Result<Vec<ImageRef>> {
    let rendered: Vec<(String, Vec<ImageRef>, ImageRef)> = moves
        .iter()
        .map(|(variant, tags)| {
            let index = variant.image(&record.repository);
            (variant.variant.clone(), tags.clone(), index)
        })
        .collect();
    let steps = render::tag_moves(&rendered);
    if let Err(stopped) = exec::run_steps(&steps, &mut |_| {}) {
        let words = |moves: &[(&RecordedVariant, Vec<ImageRef>)]| {
            let tags: Vec<String> = moves
                .iter()
                .flat_map(|(_, tags)| tags.iter().map(ToString::to_string))
                .collect();
            if tags.is_empty() {
                "none".to_string()
            } else {
                tags.join(" ")
            }
        };
        bail!(
            "moving the tags of {} failed ({}); moved already: {}; not yet: {}; every digest passed the gate, so finish with: {finish}",
            stopped.step,
            stopped.error,
            words(&moves[..stopped.done]),
            words(&moves[stopped.done..]),
        );
    }
    Ok(moves.iter().flat_map(|(_, tags)| tags.clone()).collect())
}
