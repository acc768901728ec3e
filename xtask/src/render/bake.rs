//! The build of a plan: one `docker buildx bake` of every variant (a JSON
//! bake file on stdin), so they build in parallel and share one BuildKit
//! session, with the compile file's target their binaries come from.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{Invocation, RunFiles};
use crate::client::docker;
use crate::model::tags::SHARED_COMPILE;
use crate::plan::{
    Output, Plan, Policy, PushVia, SharedCompile, VariantPlan, BINARIES_CONTEXT, COMPILE_STAGE,
    FLAVOR_ARG, PROFILE_ARG, TARGET_ARCHES_ARG,
};

/// Quotes one field of buildx's comma-separated output spec when needed.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// The bake file: one target per variant, a `default` group of them all, and
/// the compile file's target their binaries come from (none with host-built
/// binaries).
pub fn bake_file(plan: &Plan, files: &RunFiles) -> Value {
    let mut targets = Map::new();
    for variant in &plan.variants {
        targets.insert(variant.variant.clone(), bake_target(plan, files, variant));
    }
    if let (Some(compile), Some(first)) = (&plan.shared_compile, plan.variants.first()) {
        targets.insert(
            SHARED_COMPILE.to_string(),
            shared_compile_target(compile, &first.policy),
        );
    }
    json!({
        "group": { "default": { "targets": plan.variant_names() } },
        "target": targets,
    })
}

fn bake_target(plan: &Plan, files: &RunFiles, variant: &VariantPlan) -> Value {
    let (recipe, policy) = (&variant.recipe, &variant.policy);
    // Every build arg of the run, the compile's included: the image's
    // provenance records what its binaries were compiled with
    // (rebuild-check reads the builder image back from it).
    let args = build_args(&recipe.build_args, policy);
    let mut named_contexts = recipe.named_contexts.clone();
    if plan.shared_compile.is_some() {
        // The binaries come from the compile file's own build.
        named_contexts.insert(
            BINARIES_CONTEXT.to_string(),
            format!("target:{SHARED_COMPILE}"),
        );
    }
    let mut target = json!({
        "context": recipe.context,
        "dockerfile": recipe.dockerfile,
        "args": args,
        "platforms": policy.platforms.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "labels": policy.labels,
        "attest": attestations(policy),
        "output": [output(plan, files, variant)],
    });
    if let Some(fields) = target.as_object_mut() {
        // Pushed builds are untagged until every variant succeeded; loaded
        // builds are tagged by the engine as they land.
        if plan.output == Output::Load {
            fields.insert("tags".into(), json!(policy.tags));
        }
        if policy.no_cache {
            fields.insert("no-cache".into(), json!(true));
        }
        let mut optional = |key: &str, value: Value, empty: bool| {
            if !empty {
                fields.insert(key.into(), value);
            }
        };
        let stages = &policy.no_cache_stages;
        optional("no-cache-filter", json!(stages), stages.is_empty());
        optional("contexts", json!(named_contexts), named_contexts.is_empty());
        let cache = &policy.cache;
        optional("cache-from", json!(cache.from), cache.from.is_empty());
        optional("cache-to", json!(cache.to), cache.to.is_empty());
    }
    target
}

/// The attestations a target asks for, each explicitly on or off (buildx
/// adds provenance by default otherwise).
fn attestations(policy: &Policy) -> Vec<String> {
    let mut attest = Vec::new();
    match &policy.attestations.provenance {
        Some(mode) => attest.push(format!("type=provenance,mode={mode}")),
        None => attest.push("type=provenance,disabled=true".to_string()),
    }
    match &policy.attestations.sbom {
        Some(request) => attest.push(match &request.generator {
            Some(generator) => format!("type=sbom,generator={generator}"),
            None => "type=sbom".to_string(),
        }),
        None => attest.push("type=sbom,disabled=true".to_string()),
    }
    attest
}

/// A target's output: loaded, pushed by digest, or an OCI archive; with
/// rewritten timestamps and the policy's annotations (exporter attributes,
/// not bake's `annotations` field: they work with every buildx version and
/// reach both the index and each manifest).
fn output(plan: &Plan, files: &RunFiles, variant: &VariantPlan) -> String {
    let policy = &variant.policy;
    let mut output = match plan.output {
        Output::Load => "type=docker".to_string(),
        Output::PushByDigest(PushVia::Builder) => {
            format!("type=image,name={},push-by-digest=true,name-canonical=true,push=true,oci-mediatypes=true", plan.repository)
        }
        Output::PushByDigest(PushVia::OciArchive) | Output::Archive => {
            format!(
                "type=oci,dest={}",
                files.oci_archive(&variant.variant).display()
            )
        }
    };
    if policy.rewrite_timestamp {
        output.push_str(",rewrite-timestamp=true");
    }
    for (key, value) in &policy.annotations {
        for level in ["index", "manifest"] {
            output.push(',');
            output.push_str(&csv_field(&format!("annotation-{level}.{key}={value}")));
        }
    }
    output
}

/// A target's build args: the recipe's, and those its policy sets.
fn build_args(recipe_args: &BTreeMap<String, String>, policy: &Policy) -> Map<String, Value> {
    let mut args: Map<String, Value> = recipe_args
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    args.insert(FLAVOR_ARG.to_string(), json!(policy.flavor.as_str()));
    args.insert(PROFILE_ARG.to_string(), json!(policy.cargo_profile));
    args.insert(TARGET_ARCHES_ARG.to_string(), json!(policy.target_arches()));
    if let Some(epoch) = policy.source_date_epoch {
        args.insert("SOURCE_DATE_EPOCH".to_string(), json!(epoch.to_string()));
    }
    args
}

/// The compile file's own build: the variants' policy (the same for them
/// all: flavor, profile, platforms, SOURCE_DATE_EPOCH, --no-cache), the
/// binaries as its result, kept only in the build cache.
fn shared_compile_target(compile: &SharedCompile, policy: &Policy) -> Value {
    let mut target = json!({
        "context": compile.context,
        "dockerfile": compile.dockerfile,
        "target": COMPILE_STAGE,
        "args": build_args(&compile.build_args, policy),
        "platforms": policy.platforms.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "output": ["type=cacheonly"],
    });
    if let Some(fields) = target.as_object_mut() {
        if policy.no_cache {
            fields.insert("no-cache".into(), json!(true));
        }
        if !compile.no_cache_stages.is_empty() {
            fields.insert("no-cache-filter".into(), json!(compile.no_cache_stages));
        }
        if !compile.cache.from.is_empty() {
            fields.insert("cache-from".into(), json!(compile.cache.from));
        }
        if !compile.cache.to.is_empty() {
            fields.insert("cache-to".into(), json!(compile.cache.to));
        }
    }
    target
}

/// The one buildx invocation that builds every variant of the plan (on the
/// selected builder, if any).
pub fn build(plan: &Plan, files: &RunFiles) -> Invocation {
    let mut args: Vec<String> = [
        "bake",
        "--file",
        "-",
        "--progress",
        "plain",
        "--metadata-file",
    ]
    .map(String::from)
    .to_vec();
    args.push(files.metadata().display().to_string());
    args.extend(plan.variant_names().into_iter().map(String::from));
    let mut bake = serde_json::to_string_pretty(&bake_file(plan, files)).unwrap_or_default();
    bake.push('\n');
    Invocation {
        stdin: Some(bake),
        ..docker::buildx(plan.builder.as_ref(), args)
    }
}
