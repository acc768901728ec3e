//! The stages after the build, each rendered whole once the one before
//! told the digests it needs, and run by one loop ([`run_steps`]):
//! pushing OCI archives by digest, moving CI tags (and, from `ops`,
//! signing and the promotion's tag moves).

use std::collections::BTreeMap;

use anyhow::{bail, Context as _, Result};

use crate::client::{process, tar};
use crate::model::oci::{blob_path, Index, Layout};
use crate::plan::Plan;
use crate::project;
use crate::render::{self, Pushed, RunFiles, Step};
use crate::report::VariantResult;

/// Pushes the OCI archives of what `to_build` built by digest (docker
/// driver; BuildKit's own drivers pushed while building): the stage is
/// rendered whole, now that the build told the digests, and run by the one
/// loop; each variant is marked pushed as its push succeeds.
pub(super) fn push_archives(
    to_build: &Plan,
    files: &RunFiles,
    results: &mut [VariantResult],
) -> Result<()> {
    let root = project::project_root();
    let steps: Vec<Step> = render::push_archives(to_build, files, &pushed_of(results))
        .into_iter()
        .map(|s| Step {
            invocation: s.invocation.in_dir(&root),
            ..s
        })
        .collect();
    let outcome = run_steps(&steps, &mut |step| {
        let Some(result) = results.iter_mut().find(|r| r.variant == step.what) else {
            return;
        };
        result.pushed = true;
        // What was pushed is known from the archive (digests preserved),
        // even if the registry fails right after.
        if let Ok(platforms) = archive_platforms(&root.join(files.oci_archive(&result.variant))) {
            result.platform_digests = platforms;
        }
    });
    if let Err(stopped) = outcome {
        let pushed: Vec<String> = results
            .iter()
            .filter(|r| r.pushed)
            .map(|r| r.image.clone())
            .collect();
        bail!(
            "pushing {} failed ({}); no tag of any variant was moved; already pushed untagged: {}",
            stopped.step,
            stopped.error,
            if pushed.is_empty() {
                "none".to_string()
            } else {
                pushed.join(" ")
            }
        );
    }
    // BuildKit's own drivers pushed while building.
    for result in results.iter_mut() {
        result.pushed = true;
    }
    Ok(())
}

/// What a run pushed so far, as the stages after the build name it.
fn pushed_of(results: &[VariantResult]) -> Pushed {
    let mut pushed = Pushed::default();
    for result in results {
        if let Ok(digest) = result.digest.parse() {
            pushed.indexes.insert(result.variant.clone(), digest);
        }
        let platforms = result
            .platform_digests
            .iter()
            .filter_map(|(platform, digest)| Some((platform.clone(), digest.parse().ok()?)))
            .collect();
        pushed.platforms.insert(result.variant.clone(), platforms);
    }
    pushed
}

/// Where a stage stopped: the step that failed (what it did) and why.
#[derive(Debug)]
pub struct Stopped {
    pub step: String,
    /// How many steps ran before it.
    pub done: usize,
    pub error: anyhow::Error,
}

/// The one loop every stage runs through: its steps in order, each said
/// (`+ COMMAND`) and its output kept, through `client::process` (a
/// registry's transient error tried again, any other failure one line);
/// `after` hears of each step that succeeded. Stops at the first failure.
pub fn run_steps(steps: &[Step], after: &mut dyn FnMut(&Step)) -> Result<(), Stopped> {
    for (done, step) in steps.iter().enumerate() {
        if let Err(error) = process::run(&step.invocation) {
            return Err(Stopped {
                step: step.what.clone(),
                done,
                error,
            });
        }
        after(step);
    }
    Ok(())
}

/// The platform images of the index an OCI archive holds: platform -> digest.
fn archive_platforms(archive: &std::path::Path) -> Result<BTreeMap<String, String>> {
    let member = |name: &str| tar::member(archive, name);
    let layout: Layout = serde_json::from_slice(&member("index.json")?)
        .with_context(|| format!("{} holds no OCI layout", archive.display()))?;
    let top = layout.manifests.first().context("an empty OCI layout")?;
    let index: Index = serde_json::from_slice(&member(&blob_path(&top.digest))?)
        .with_context(|| format!("{} holds no image index", archive.display()))?;
    Ok(index
        .images()
        .map(|image| (image.platform_name(), image.digest.clone()))
        .collect())
}

/// Moves the `ci-` tags of a pushed CI plan (no signature, no gate: CI
/// images are never deployed), rendered at once onto the pushed digests.
pub(super) fn tag_ci(plan: &Plan, results: &mut [VariantResult]) -> Result<()> {
    let steps = render::ci_tags(plan, &pushed_of(results));
    run_steps(&steps, &mut |step| {
        if let Some(result) = results.iter_mut().find(|r| r.variant == step.what) {
            result.tagged = true;
        }
    })
    .map_err(|stopped| {
        anyhow::anyhow!(
            "tagging {} failed ({}); re-run to retry",
            stopped.step,
            stopped.error
        )
    })
}
