//! One compile for every variant of a cached CI build, as a build of its own.
//!
//! The variants' compile stages are the same text, so a bake of several
//! variants runs them once. But when those steps come from an imported
//! cache, BuildKit finds them for one variant of the bake and not for the
//! others, intermittently (docker/buildx#414 and #3878: cache hits for each
//! target built alone, misses when several build at once), and a fresh
//! runner then compiles every dependency again. Measured here with 3
//! variants, an emptied engine and main's registry cache: some runs reused
//! everything, others compiled all 66 dependencies, even with every variant
//! importing every variant's cache.
//!
//! So a build that reads or writes a cache compiles in a bake target of its
//! own (`compile`, the Dockerfile's `binaries-compile` stage), with a cache
//! of its own (`compile-main`, `compile-pr-42`), and every variant takes its
//! binaries from it (`binaries=target:compile`, `BINARIES_FROM=context`):
//! buildx solves it first, alone, as it does a build of one variant, and
//! each variant's image uses its result. A build without a cache compiles in
//! the variants' own stages, as a plain `docker buildx build` does (the local
//! engine's cache has no such misses, and the docker driver would keep the
//! shared build's result as a dangling image in the engine after every run).

use std::collections::BTreeMap;

use crate::model::tags::SHARED_COMPILE;
use crate::plan::cache::{self, CacheInputs};
use crate::plan::{SharedCompile, VariantPlan, BINARIES_CONTEXT, COMPILE_STAGE_ARGS};

/// What decides it: the variants' plans (their compile arguments), and the
/// cache inputs as the variants' own cache plans were made (the variant
/// name is replaced by [`SHARED_COMPILE`]).
pub fn plan(variants: &[VariantPlan], cache_inputs: &CacheInputs<'_>) -> Outcome {
    let Some(first) = variants.first() else {
        return Outcome::NotNeeded;
    };
    if variants
        .iter()
        .any(|v| v.recipe.named_contexts.contains_key(BINARIES_CONTEXT))
    {
        // Host-built binaries: nothing compiles in the image build.
        return Outcome::NotNeeded;
    }
    let cache = cache::plan(&CacheInputs {
        variant: SHARED_COMPILE,
        ..cache_inputs.clone()
    });
    if cache.from.is_empty() && cache.to.is_empty() {
        return Outcome::NotNeeded;
    }
    let compile_args = |variant: &VariantPlan| -> BTreeMap<String, String> {
        variant
            .recipe
            .build_args
            .iter()
            .filter(|(key, _)| COMPILE_STAGE_ARGS.contains(&key.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let build_args = compile_args(first);
    if let Some(other) = variants.iter().find(|v| compile_args(v) != build_args) {
        return Outcome::VariantsDiffer(format!(
            "the compile stages of {} and {} are given different build args ({}): each variant compiles in its own \
             stages, and with several variants a fresh runner may miss the compile cache (docker/buildx#414); \
             set those args for every variant alike",
            first.variant,
            other.variant,
            differing(&build_args, &compile_args(other)).join(", ")
        ));
    }
    Outcome::Shared(SharedCompile {
        dockerfile: first.recipe.dockerfile.clone(),
        context: first.recipe.context.clone(),
        build_args,
        cache,
    })
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Shared(SharedCompile),
    /// No cache, or no compile stage: each variant builds as it would alone.
    NotNeeded,
    /// The variants' compile stages differ; why, for the plan's warnings.
    VariantsDiffer(String),
}

fn differing(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}
