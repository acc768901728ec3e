//! The build of a plan: one bake, streamed, run once more on the engine
//! races that fail a sound build; each variant's digest read from buildx's
//! metadata file; a failure said in one line.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::client::{docker, process};
use crate::model::build_log;
use crate::model::files;
use crate::model::tags::SHARED_COMPILE;
use crate::plan::{Output, Plan, COMPILE_STAGES};
use crate::project;
use crate::render::{self, RunFiles};

/// Runs the bake and returns each variant's digest from the metadata file.
pub(super) fn build(plan: &Plan, files: &RunFiles) -> Result<BTreeMap<String, Built>> {
    let root = project::project_root();
    if let Some(dir) = &files.archives {
        files::create_dir_all(&root.join(dir))?;
    }
    let mut invocation = render::build(plan, files);
    eprintln!(
        "+ {}",
        invocation.display().lines().next().unwrap_or_default()
    );
    // buildx 0.18+ refuses paths outside the project root unless told (0.13 ignores this).
    if let Some((key, value)) = docker::bake_entitlements(&render::bake_file(plan, files), &root) {
        invocation = invocation.with_env(key, value);
    }
    let invocation = invocation.in_dir(&root);
    let mut streamed = process::stream(&invocation)?;
    // Only a failed bake's log is read for a race.
    if let Some(race) = (!streamed.success)
        .then(|| build_log::EngineRace::of(&streamed.log))
        .flatten()
    {
        eprintln!(
            "warning: {}; a failed bake moved no tag: running it once more",
            race.describe()
        );
        streamed = process::stream(&invocation)?;
    }
    if !streamed.success {
        return Err(build_failure(plan, &streamed.log));
    }
    built_of(plan, &root.join(files.metadata()))
}

/// Why a bake failed, in one line: which variants (or the compile, which
/// builds every variant's binaries), what that means for what was
/// published, and how to fix the commonest causes.
fn build_failure(plan: &Plan, log: &str) -> anyhow::Error {
    let mut targets = plan.variant_names();
    if plan.shared_compile.is_some() {
        targets.push(SHARED_COMPILE);
    }
    let mut failed = build_log::failed_variants(log, &targets);
    // The compile's steps are in every variant's build too (its `binaries`
    // context), and a shared step is reported under whichever target's
    // name BuildKit printed first: a failed step of a compile stage is the
    // compile's, whatever it is labelled.
    if plan.shared_compile.is_some()
        && build_log::failed_stages(log)
            .iter()
            .any(|stage| COMPILE_STAGES.contains(&stage.as_str()))
    {
        failed = vec![SHARED_COMPILE.to_string()];
    }
    // A one-target bake does not prefix its steps with the target's name.
    if failed.is_empty() && targets.len() == 1 {
        failed.push(plan.variants[0].variant.clone());
    }
    let which = if failed.iter().any(|f| f == SHARED_COMPILE) {
        "the compile stages, which build every variant's binaries".to_string()
    } else if failed.is_empty() {
        "one or more variants".to_string()
    } else {
        format!("variant(s) {}", failed.join(", "))
    };
    let consequence = match plan.output {
        Output::Load if plan.variants.len() > 1 => {
            "the variants that finished were loaded into the engine"
        }
        Output::Load => "nothing was loaded",
        Output::PushByDigest(_) => "no tag of any variant was moved",
        Output::Archive => "nothing was published",
    };
    anyhow::anyhow!(
        "the build failed for {which} (see the buildx output above); {consequence}{}",
        failure_hint(log)
    )
}

/// What the compile stage itself said is wrong (an out-of-date Cargo.lock),
/// or the commonest cause on an offline machine or behind a mirror: how to
/// fix it (empty when neither).
fn failure_hint(log: &str) -> String {
    if let Some(message) = build_log::user_error(log) {
        format!("; {message}")
    } else if log.contains("failed to resolve source metadata")
        || log.contains("failed to do request")
    {
        "; a base image could not be pulled: on an offline machine or behind a mirror, override the bases \
         (--build-arg [VARIANT:]PRODUCTION_BASE=..., CI_BASE=..., BUILDER_IMAGE=...), or build CI images on local stand-ins (ci-image --stand-ins)".to_string()
    } else {
        String::new()
    }
}

/// Each variant's digest, from buildx's metadata file.
fn built_of(plan: &Plan, metadata_path: &std::path::Path) -> Result<BTreeMap<String, Built>> {
    let text = std::fs::read_to_string(metadata_path).with_context(|| {
        format!(
            "buildx wrote no metadata file at {}",
            metadata_path.display()
        )
    })?;
    let metadata: Value =
        serde_json::from_str(&text).context("buildx wrote an unreadable metadata file")?;
    remove_shared_compile_image(plan, &metadata);
    let mut built = BTreeMap::new();
    for variant in plan.variant_names() {
        let entry = metadata.get(variant);
        let digest = entry
            .and_then(|m| m.get("containerimage.digest"))
            .and_then(Value::as_str)
            .with_context(|| format!("buildx reported no image digest for variant {variant}"))?;
        let media_type = entry
            .and_then(|m| m.pointer("/containerimage.descriptor/mediaType"))
            .and_then(Value::as_str)
            .map(String::from);
        built.insert(
            variant.to_string(),
            Built {
                digest: digest.to_string(),
                media_type,
            },
        );
    }
    Ok(built)
}

/// The docker driver keeps the result of a build without an image output
/// (the shared compile's `type=cacheonly`) as an untagged image: one of a
/// few MB per change of the service, which would pile up on a laptop. It is
/// in the build cache anyway, so it goes, in the background: the engine
/// takes 0.5-0.9 s to remove an image from a store of a few hundred, which
/// made a no-op CI build 0.8 s slower than the same bake by hand (bench
/// scenario 6). An image that stays is harmless (`docker image prune`).
fn remove_shared_compile_image(plan: &Plan, metadata: &Value) {
    let Some(entry) = metadata.get(SHARED_COMPILE) else {
        return;
    };
    let untagged = entry
        .get("image.name")
        .and_then(Value::as_str)
        .is_some_and(|name| name.starts_with("moby-dangling@"));
    let Some(digest) = entry.get("containerimage.digest").and_then(Value::as_str) else {
        return;
    };
    if !untagged {
        return;
    }
    let remove = docker::engine(
        plan.builder.as_ref(),
        vec!["image".into(), "rm".into(), digest.to_string()],
    );
    if let Err(err) = process::start_in_background(&remove) {
        eprintln!(
            "warning: the compile stages' untagged image {digest} stays in the engine ({err}); remove it with `{}`",
            remove.display()
        );
    }
}

/// What buildx says it built for a variant.
pub(super) struct Built {
    pub(super) digest: String,
    /// An image manifest (one platform) or an image index.
    pub(super) media_type: Option<String>,
}
