//! The compile file (`images/compile.Dockerfile`) as a build of its own,
//! whose result every variant takes its binaries from.
//!
//! The compile stages are written once, in a file no variant is: each
//! variant's Dockerfile copies the service out of its named context
//! `binaries`. So every build that compiles (CI and release, cached or
//! not) has a bake target of its own, `compile` (the compile file's
//! `binaries` stage), and every variant's `binaries` context names it
//! (`target:compile`). buildx solves it first, once for every variant and
//! for every platform of the build (its steps run on the build platform and
//! compile every target of `TARGET_ARCHES` in one cargo invocation), and
//! each variant's image uses its result.
//!
//! It has a cache of its own (`compile-main`, `compile-pr-42`), beside the
//! variants': when several targets of one bake run the same steps and those
//! come from an imported cache, BuildKit finds them for one target and
//! misses them for another, intermittently (docker/buildx#414 and #3878),
//! and a fresh runner compiled every dependency again. A build of its own,
//! solved first, as a build of one variant is, does not miss. A release
//! reads and writes no cache, its compile included (plan/cache.rs).
//!
//! A build with `SOURCE_DATE_EPOCH` (a release) builds the `binaries` stage
//! again every time, as it does its final stage: the compile step stamps the
//! binaries with the commit time, but the stage copies them by content
//! (BuildKit's cache key of a copy ignores modification times), so a cached
//! copy would keep the time of whichever older commit with the same binary
//! wrote it, and the image would not be what its commit rebuilds to.
//!
//! Host-built binaries (`--binaries DIR`) replace it: nothing compiles in
//! the image build.

use std::collections::BTreeMap;

use crate::model::tags::SHARED_COMPILE;
use crate::plan::cache::{self, CacheInputs};
use crate::plan::{
    CachePlan, SharedCompile, VariantPlan, BINARIES_CONTEXT, COMPILE_STAGE, COMPILE_STAGE_ARGS,
};

/// The compile's own cache: the variants' cache inputs, under the name
/// [`SHARED_COMPILE`] (`compile-main`, `compile-pr-42`).
pub fn cache_plan(cache_inputs: &CacheInputs<'_>) -> CachePlan {
    cache::plan(&CacheInputs {
        variant: SHARED_COMPILE,
        ..cache_inputs.clone()
    })
}
use crate::project::COMPILE_DOCKERFILE;

/// The compile of a plan, from the variants' plans (their compile
/// arguments: the same for every variant, as `recipe` allows only those)
/// and its cache plan ([`cache_plan`] for a CI build; a release has none).
/// `None`: host-built binaries, or no variant.
pub fn plan(variants: &[VariantPlan], cache: CachePlan) -> Option<SharedCompile> {
    let first = variants.first()?;
    if variants
        .iter()
        .any(|v| v.recipe.named_contexts.contains_key(BINARIES_CONTEXT))
    {
        // Host-built binaries: nothing compiles in the image build.
        return None;
    }
    let build_args: BTreeMap<String, String> = first
        .recipe
        .build_args
        .iter()
        .filter(|(key, _)| COMPILE_STAGE_ARGS.contains(&key.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(SharedCompile {
        dockerfile: COMPILE_DOCKERFILE.to_string(),
        context: first.recipe.context.clone(),
        build_args,
        cache,
        no_cache_stages: if first.policy.source_date_epoch.is_some() {
            vec![COMPILE_STAGE.to_string()]
        } else {
            Vec::new()
        },
    })
}
