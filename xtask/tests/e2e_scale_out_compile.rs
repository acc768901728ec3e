//! A release that scales out, compiled in its compile stage: the main
//! engine builds the linux/amd64 part on its own platform, so the compile
//! stage compiles natively (the build log says so: no cross linker), while
//! the second engine `runner2` builds linux/arm64 on amd64, cross-compiling;
//! both side by side, merged into one index whose SBOMs list the service's
//! crates on each platform and whose provenance names each build platform,
//! as the part records do; `rebuild-check` then rebuilds each platform the
//! way it was built (amd64 natively, arm64 cross-compiled on amd64) and
//! matches it. The service is changed by a comment committed in a scratch
//! checkout, so its compile step runs (the dependencies may come from the
//! engine's cache) and the rebuild has the commit to check out. Fails, never
//! skips, when a piece of the stack is missing.

mod support;

use serde_json::Value;

use support::compile::{append, clean_checkout, compile_steps, remove_checkout, VARIANT};
use support::e2e::{compile_fixture, engine_lock, ok, stderr};
use support::parts::{read_json, side_by_side, succeeded, Buildx, Release};

/// The crates the SBOM of `platform` must list: the service and two of its
/// dependencies (cargo-auditable embeds them; syft reads them).
fn assert_sbom_lists_the_crates(sbom: &Value, platform: &str) {
    let packages = sbom[platform]["SPDX"]["packages"]
        .as_array()
        .unwrap_or_else(|| panic!("no SPDX packages for {platform}: {sbom}"));
    for name in ["beacon", "tokio", "axum"] {
        assert!(
            packages.iter().any(|p| p["name"] == name),
            "the {platform} SBOM lists {name}"
        );
    }
}

#[test]
fn a_native_and_a_cross_compiled_part_merge_into_one_index_listing_the_crates() {
    let fixture = compile_fixture();
    let _engine = engine_lock();
    let tree = clean_checkout("scale-out-compile");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    append(
        &tree,
        "service/src/main.rs",
        &format!("// scale-out {nanos}"),
    );
    let release = Release::new("compile-parts", "refs/heads/main", &[VARIANT]);
    commit_the_change(&tree, &release.context);
    let in_tree = |mut command: std::process::Command| {
        command.current_dir(&tree).env("XTASK_PROJECT_ROOT", &tree);
        command
    };
    let dir = tree.join("target/e2e-parts");
    std::fs::create_dir_all(&dir).unwrap();
    let (amd64, arm64) = (dir.join("part-amd64.json"), dir.join("part-arm64.json"));
    let (outputs, seconds) = side_by_side(vec![
        in_tree(release.part(fixture, "linux/amd64", false, &amd64, Buildx::Stack)),
        in_tree(release.part(fixture, "linux/arm64", true, &arm64, Buildx::Stack)),
    ]);
    eprintln!("two runners compiled and built their parts in {seconds:.1} s");
    succeeded("the amd64 part (main engine)", &outputs[0]);
    succeeded("the arm64 part (runner2)", &outputs[1]);

    // The main engine compiled amd64 natively: one compile step, run on the
    // platform it builds for, no cross linker.
    let native = stderr(&outputs[0]);
    let steps = compile_steps(&native);
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert!(
        !steps[0].label.contains("->"),
        "a native step carries no BUILD->TARGET label: {steps:?}"
    );
    let said = steps[0].output.join("\n");
    assert!(
        said.contains("compile-service.sh build: targets amd64")
            && said.contains("x86_64-unknown-linux-gnu compiled natively, no cross linker")
            && !said.contains("cross-compiled"),
        "{said}"
    );
    // runner2 (an amd64 engine) cross-compiled arm64 with its linker.
    let cross = compile_steps(&stderr(&outputs[1]));
    let said = cross[0].output.join("\n");
    assert!(
        said.contains("aarch64-unknown-linux-gnu cross-compiled on x86_64-unknown-linux-gnu, linked by aarch64-linux-gnu-gcc"),
        "{said}"
    );
    for (path, platform, compile) in [
        (&amd64, "linux/amd64", "native"),
        (&arm64, "linux/arm64", "cross"),
    ] {
        let build = &read_json(path)["variants"][0]["builds"][platform];
        assert_eq!(build["compile"], compile, "{path:?}");
    }

    // Merged: both platforms, each SBOM listing the crates, each provenance
    // naming the build platform the record names.
    let record = dir.join("release-record.json");
    succeeded(
        "merge-release",
        &support::e2e::run(&mut in_tree(release.merge(
            fixture,
            &[&amd64, &arm64],
            &record,
            Buildx::Stack,
        ))),
    );
    let entry = read_json(&record)["variants"][0].clone();
    let image = format!(
        "{}@{}",
        release.repository(),
        entry["digest"].as_str().unwrap()
    );
    let inspect = |format: &str| -> Value {
        let out = ok(std::process::Command::new("docker").args([
            "buildx",
            "imagetools",
            "inspect",
            &image,
            "--format",
            format,
        ]));
        serde_json::from_str(&out).unwrap()
    };
    let (sbom, provenance) = (inspect("{{json .SBOM}}"), inspect("{{json .Provenance}}"));
    for platform in ["linux/amd64", "linux/arm64"] {
        assert_sbom_lists_the_crates(&sbom, platform);
        assert_eq!(
            provenance[platform]["SLSA"]["invocation"]["environment"]["platform"],
            entry["builds"][platform]["build_platform"],
            "{platform}"
        );
    }

    // Each platform rebuilt the way it was built matches: on this amd64
    // machine, amd64 natively and arm64 cross-compiled from amd64, both in
    // one compile, where each part compiled its target alone.
    let checked = support::e2e::run(
        in_tree(support::e2e::xtask())
            .args(["rebuild-check", &image, "--json"])
            .env_remove("XTASK_CONTEXT"),
    );
    assert!(
        checked.status.success(),
        "rebuild-check of the merged index failed:\n{}\n{}",
        String::from_utf8_lossy(&checked.stdout),
        stderr(&checked)
    );
    let report: Value = serde_json::from_slice(&checked.stdout).unwrap();
    let platforms = report["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2, "{report}");
    for checked in platforms {
        let platform = checked["platform"].as_str().unwrap();
        assert_eq!(checked["matches"], true, "{checked}");
        assert_eq!(checked["published"], checked["rebuilt"], "{checked}");
        assert_eq!(checked["how_built"], entry["builds"][platform], "{checked}");
        assert_eq!(checked["how_rebuilt"], checked["how_built"], "{checked}");
    }
    assert_eq!(report["unchecked"], serde_json::json!([]));
    remove_checkout(&tree);
}

/// Commits the scratch checkout's change and points the release's context
/// at that commit, so the images name a revision `rebuild-check` can check
/// out (the checkout shares this repository's objects).
fn commit_the_change(tree: &std::path::Path, context: &std::path::Path) {
    let git = |args: &[&str]| {
        ok(std::process::Command::new("git")
            .current_dir(tree)
            .args(["-c", "user.name=e2e", "-c", "user.email=e2e@example.com"])
            .args(args))
        .trim()
        .to_string()
    };
    git(&["commit", "-q", "-a", "-m", "e2e: scale-out compile"]);
    let mut json = read_json(context);
    json["git"]["revision"] = Value::from(git(&["rev-parse", "HEAD"]));
    json["git"]["commit_time"] =
        Value::from(git(&["log", "-1", "--format=%ct"]).parse::<i64>().unwrap());
    std::fs::write(context, json.to_string()).unwrap();
}
