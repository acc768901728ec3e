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
use crate::plan::record::ReleaseRecord;
use crate::{render, report};

/// Checks the record, gates every digest and moves the tags (see the
/// module comment). Returns the tags moved.
pub fn promote(
    record: &ReleaseRecord,
    origin: &str,
    expect: &RecordExpectation,
    signature: Option<&SignatureCheck>,
    platforms: &[Platform],
    rerun: &str,
) -> Result<Vec<ImageRef>> {
    record::check_record(record, origin, expect)?;
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
        for reference in &variant.immutable {
            if let Some(digest) = registry::resolve_digest(reference)? {
                if variant.digest != digest {
                    bail!("{reference} already exists ({digest}), and the release record puts it on {}: release tags are immutable, so no tag moved; bump the version and release again", variant.digest);
                }
            }
        }
    }
    let moved = move_tags(record, rerun)?;
    report::write_step_summary(&report::promotion_summary(record, &moved))?;
    Ok(moved)
}

/// Moves every tag of a (gated) release record onto its digest, `latest`
/// last. A failure says exactly how to finish: every digest is pushed,
/// signed and has passed the gate.
pub fn move_tags(record: &ReleaseRecord, finish: &str) -> Result<Vec<ImageRef>> {
    let moves = record.tag_moves();
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
