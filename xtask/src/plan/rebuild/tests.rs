//! The decision "how to rebuild platform P of an image built so-and-so on
//! this machine or builder", for the releases this project makes: one
//! runner for both platforms (arm64 cross-compiled on amd64), one native
//! runner per platform, and images whose provenance names no build platform.

use serde_json::json;

use super::*;
use crate::plan::record::provenance_build_platform;

fn linux(arch: &str) -> Platform {
    Platform::linux(arch)
}

/// How each platform was built, as `imagetools inspect --format '{{json
/// .Provenance}}'` renders an index's provenance (SLSA v0.2, BuildKit 0.13):
/// per platform, the platform of the worker that built it.
fn provenance(builds: &[(&str, &str)]) -> serde_json::Value {
    let mut rendered = serde_json::Map::new();
    for (target, build) in builds {
        rendered.insert(
            format!("linux/{target}"),
            json!({"SLSA": {"invocation": {"environment": {"platform": format!("linux/{build}")}}}}),
        );
    }
    serde_json::Value::Object(rendered)
}

/// The image's platforms with how each was built, read from `provenance`
/// as rebuild-check reads it.
fn built(provenance: &serde_json::Value) -> Vec<(Platform, Option<PlatformBuild>)> {
    ["amd64", "arm64"]
        .map(|arch| {
            let platform = linux(arch);
            let build = provenance_build_platform(&provenance[platform.to_string()])
                .map(|on| PlatformBuild::on(on, &platform));
            (platform, build)
        })
        .to_vec()
}

/// One runner for both platforms: arm64 cross-compiled on amd64.
fn single_runner() -> Vec<(Platform, Option<PlatformBuild>)> {
    built(&provenance(&[("amd64", "amd64"), ("arm64", "amd64")]))
}

/// One native runner per platform.
fn native_runners() -> Vec<(Platform, Option<PlatformBuild>)> {
    built(&provenance(&[("amd64", "amd64"), ("arm64", "arm64")]))
}

/// A machine (or a builder) that builds every platform on `on`.
fn machine(on: &str) -> Rebuilder {
    Rebuilder {
        name: format!("this machine (builder \"default\", linux/{on})"),
        builds_on: ["amd64", "arm64"]
            .map(|arch| (linux(arch), linux(on)))
            .into(),
    }
}

/// A builder with a node of each platform (each routed to its own).
fn native_nodes() -> Rebuilder {
    Rebuilder {
        name: "the builder \"fleet\"".to_string(),
        builds_on: ["amd64", "arm64"]
            .map(|arch| (linux(arch), linux(arch)))
            .into(),
    }
}

fn checked(plan: &RebuildPlan) -> Vec<String> {
    plan.checked.iter().map(PlatformRebuild::describe).collect()
}

#[test]
fn a_single_runner_release_is_rebuilt_whole_on_an_amd64_machine_as_today() {
    let plan = plan(&single_runner(), None, &machine("amd64")).unwrap();
    assert_eq!(
        checked(&plan),
        [
            "linux/amd64 (natively on linux/amd64; rebuilt natively on linux/amd64)",
            "linux/arm64 (cross-compiled on linux/amd64; rebuilt cross-compiled on linux/amd64)",
        ]
    );
    assert_eq!(plan.platforms(), [linux("amd64"), linux("arm64")]);
    assert!(plan.unchecked.is_empty());
}

#[test]
fn one_platform_of_a_single_runner_release_is_rebuilt_alone_as_it_was_built() {
    let arm64 = plan(&single_runner(), Some(&linux("arm64")), &machine("amd64")).unwrap();
    assert_eq!(
        checked(&arm64),
        ["linux/arm64 (cross-compiled on linux/amd64; rebuilt cross-compiled on linux/amd64)"],
        "cross-compiled from the recorded build platform, alone"
    );
    assert_eq!(arm64.platforms(), [linux("arm64")]);
    assert_eq!(arm64.unchecked, [linux("amd64")]);
    let amd64 = plan(&single_runner(), Some(&linux("amd64")), &machine("amd64")).unwrap();
    assert_eq!(amd64.platforms(), [linux("amd64")]);
    assert_eq!(amd64.unchecked, [linux("arm64")]);
}

#[test]
fn a_cross_compiled_platform_is_not_rebuilt_natively() {
    // arm64 was cross-compiled on amd64: an arm64 runner would compile it natively.
    let refused = plan(&single_runner(), Some(&linux("arm64")), &machine("arm64")).unwrap_err();
    assert_eq!(
        refused,
        "cannot rebuild linux/arm64 the way it was built: linux/arm64 was built cross-compiled on linux/amd64, \
         and this machine (builder \"default\", linux/arm64) would build it natively on linux/arm64; \
         rebuilt another way it would compare unlike builds, and a mismatch would prove nothing: \
         run rebuild-check on a linux/amd64 machine, or pass --builder NAME with a linux/amd64 node"
    );
}

#[test]
fn each_platform_of_a_native_runners_release_is_checked_on_its_own_runner() {
    let amd64 = plan(&native_runners(), Some(&linux("amd64")), &machine("amd64")).unwrap();
    assert_eq!(
        checked(&amd64),
        ["linux/amd64 (natively on linux/amd64; rebuilt natively on linux/amd64)"]
    );
    let arm64 = plan(&native_runners(), Some(&linux("arm64")), &machine("arm64")).unwrap();
    assert_eq!(
        checked(&arm64),
        ["linux/arm64 (natively on linux/arm64; rebuilt natively on linux/arm64)"]
    );
    // A builder with a native node of each checks both at once.
    let both = plan(&native_runners(), None, &native_nodes()).unwrap();
    assert_eq!(both.platforms(), [linux("amd64"), linux("arm64")]);
}

#[test]
fn a_natively_built_arm64_is_refused_on_an_amd64_machine_in_one_line() {
    let refused = plan(&native_runners(), Some(&linux("arm64")), &machine("amd64")).unwrap_err();
    assert!(!refused.contains('\n'));
    assert_eq!(
        refused,
        "cannot rebuild linux/arm64 the way it was built: linux/arm64 was built natively on linux/arm64, \
         and this machine (builder \"default\", linux/amd64) would build it cross-compiled on linux/amd64; \
         rebuilt another way it would compare unlike builds, and a mismatch would prove nothing: \
         check another platform (--platform linux/amd64), or run rebuild-check on a linux/arm64 machine, \
         or pass --builder NAME with a linux/arm64 node"
    );
    // Without --platform the whole check is refused, not silently narrowed.
    let whole = plan(&native_runners(), None, &machine("amd64")).unwrap_err();
    assert!(
        whole.starts_with("cannot rebuild linux/arm64 the way")
            && whole.contains("(--platform linux/amd64)"),
        "{whole}"
    );
    // On an arm64 machine, the other way round.
    let whole = plan(&native_runners(), None, &machine("arm64")).unwrap_err();
    assert!(
        whole.starts_with("cannot rebuild linux/amd64 the way")
            && whole.contains("(--platform linux/arm64)")
            && whole.contains("on a linux/amd64 machine"),
        "{whole}"
    );
}

#[test]
fn a_platform_the_image_does_not_have_is_refused() {
    let refused = plan(&single_runner(), Some(&linux("s390x")), &machine("amd64")).unwrap_err();
    assert_eq!(
        refused,
        "the image has no platform linux/s390x (it has linux/amd64, linux/arm64): pass one of them to --platform"
    );
}

#[test]
fn a_provenance_that_names_no_build_platform_is_rebuilt_as_this_machine_builds_it() {
    let unknown = built(&json!({"linux/amd64": {"SLSA": {}}, "linux/arm64": {"SLSA": {}}}));
    let plan = plan(&unknown, None, &machine("amd64")).unwrap();
    assert_eq!(
        checked(&plan),
        [
            "linux/amd64 (its provenance does not say how it was built; rebuilt natively on linux/amd64)",
            "linux/arm64 (its provenance does not say how it was built; rebuilt cross-compiled on linux/amd64)",
        ]
    );
}

#[test]
fn a_cpu_variant_of_the_build_platform_builds_the_same_way() {
    // A node whose native platform reads linux/amd64/v2 builds on linux/amd64.
    let mut v2 = machine("amd64");
    v2.builds_on
        .insert(linux("arm64"), "linux/amd64/v2".parse().unwrap());
    let plan = plan(&single_runner(), Some(&linux("arm64")), &v2).unwrap();
    assert_eq!(plan.platforms(), [linux("arm64")]);
}
