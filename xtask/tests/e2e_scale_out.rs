//! Releases that scale out, end to end on the real stack: two engines as two
//! runners (the main engine builds linux/amd64, the second engine `runner2`
//! linux/arm64, as two processes side by side), each writing a part record,
//! merged by `merge-release` into one index per variant, then signed, gated
//! and promoted from the merged record as a single runner's would be. What
//! the registry holds is inspected at every step. Builds take the host-built
//! binaries (`--binaries`): the compile is exercised natively in
//! e2e_scale_out_compile.rs. These tests fail (never skip) when a piece of
//! the stack is missing.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use support::e2e::{
    engine_lock, fixture, ok, one_line_error, registry_manifest, registry_tags, root, run, stderr,
};
use support::parts::{assert_merged_index, read_json, side_by_side, succeeded, Buildx, Release};
use support::TempDir;

/// One variant stands for all where the point is not per variant.
fn variant() -> String {
    xtask::project::discover_variants(&root()).unwrap()[0].clone()
}

/// The two runners' parts of `release`, side by side: amd64 here, arm64 on runner2.
fn build_parts(
    release: &Release,
    dir: &Path,
    buildx: Buildx,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let fixture = fixture();
    let (amd64, arm64) = (dir.join("part-amd64.json"), dir.join("part-arm64.json"));
    let (outputs, seconds) = side_by_side(vec![
        release.part(fixture, "linux/amd64", false, &amd64, buildx),
        release.part(fixture, "linux/arm64", true, &arm64, buildx),
    ]);
    eprintln!("two runners built their parts in {seconds:.1} s");
    succeeded("the amd64 part (main engine)", &outputs[0]);
    succeeded("the arm64 part (runner2)", &outputs[1]);
    assert!(
        stderr(&outputs[1]).contains("building with \"runner2\" instance"),
        "{}",
        stderr(&outputs[1])
    );
    (amd64, arm64)
}

#[test]
fn two_runners_release_every_variant_merged_signed_gated_and_promoted() {
    let _ = fixture();
    let _engine = engine_lock();
    let release = Release::new("two-runners", "refs/tags/v6.1.0", &[]);
    let scratch = TempDir::new("two-runners");
    let (amd64, arm64) = build_parts(&release, scratch.path(), Buildx::Stack);

    // Each part: its platform of every variant, and how it was built.
    let variants = xtask::project::discover_variants(&root()).unwrap();
    for (path, platform, compile) in [
        (&amd64, "linux/amd64", "native"),
        (&arm64, "linux/arm64", "cross"),
    ] {
        let part = read_json(path);
        assert_eq!(part["format"], "beacon-release-part/v1");
        assert_eq!(part["part"], serde_json::json!([platform]));
        assert_eq!(
            part["platforms"],
            serde_json::json!(["linux/amd64", "linux/arm64"])
        );
        assert_eq!(part["variants"].as_array().unwrap().len(), variants.len());
        for entry in part["variants"].as_array().unwrap() {
            let build = &entry["builds"][platform];
            assert_eq!(
                build["build_platform"], "linux/amd64",
                "both engines run on amd64: {entry}"
            );
            assert_eq!(build["compile"], compile, "{entry}");
        }
    }
    assert!(
        registry_tags(&release.name).is_empty(),
        "a part moves no tag"
    );

    // The merge: one index per variant, in the release record of today.
    let record = scratch.path().join("release-record.json");
    let started = std::time::Instant::now();
    let merged = run(&mut release.merge(fixture(), &[&arm64, &amd64], &record, Buildx::Stack));
    eprintln!("the merge took {:.1} s", started.elapsed().as_secs_f64());
    succeeded("merge-release", &merged);
    assert!(
        stderr(&merged).contains("merged and pushed by digest"),
        "{}",
        stderr(&merged)
    );
    let written = read_json(&record);
    assert_eq!(written["format"], "beacon-release-record/v2");
    assert_eq!(
        written["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    let parts = [read_json(&amd64), read_json(&arm64)];
    for (index, entry) in written["variants"].as_array().unwrap().iter().enumerate() {
        let part_indexes: Vec<String> = parts
            .iter()
            .map(|p| p["variants"][index]["digest"].as_str().unwrap().to_string())
            .collect();
        assert_merged_index(&release.name, entry, &part_indexes);
        assert_eq!(entry["builds"]["linux/arm64"]["compile"], "cross");
        assert_provenance_and_sbom(&release, entry);
    }
    // A re-run of the merge: the same indexes, nothing pushed again.
    let again = scratch.path().join("again.json");
    let rerun = run(&mut release.merge(fixture(), &[&amd64, &arm64], &again, Buildx::Stack));
    succeeded("merge-release again", &rerun);
    assert!(
        stderr(&rerun).contains("the registry held it already"),
        "{}",
        stderr(&rerun)
    );
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&record).unwrap()
    );

    // Signed, gated and promoted from the merged record, as a single runner's.
    let record_arg = record.display().to_string();
    ok(&mut release.xtask(
        &["sign", "--record", &record_arg, &release.key()],
        Buildx::Stack,
    ));
    ok(&mut release.xtask(
        &["verify", "--record", &record_arg, &release.public_key()],
        Buildx::Stack,
    ));
    assert!(
        registry_tags(&release.name)
            .iter()
            .all(|t| t.starts_with("sha256-")),
        "nothing tagged before promote"
    );
    ok(&mut release.xtask(
        &["promote", "--record", &record_arg, &release.public_key()],
        Buildx::Stack,
    ));
    for entry in written["variants"].as_array().unwrap() {
        let variant = entry["variant"].as_str().unwrap();
        let tag = format!("6.1.0-{variant}");
        let index = registry_manifest(&release.name, &tag);
        let digest = support::e2e::registry_digest(&release.name, &tag);
        assert_eq!(
            digest.as_deref(),
            entry["digest"].as_str(),
            "{tag}: {index}"
        );
        // The deploy gate: the signature on the index digest verifies.
        ok(support::e2e::xtask().args([
            "verify",
            &format!("{}:{tag}", release.repository()),
            &release.public_key(),
        ]));
    }
}

/// Per platform of a merged index, BuildKit's provenance names the build
/// platform the record says, and an SBOM is attached.
fn assert_provenance_and_sbom(release: &Release, entry: &Value) {
    let image = format!(
        "{}@{}",
        release.repository(),
        entry["digest"].as_str().unwrap()
    );
    let inspect = |format: &str| -> Value {
        let out = ok(Command::new("docker").args([
            "buildx",
            "imagetools",
            "inspect",
            &image,
            "--format",
            format,
        ]));
        serde_json::from_str(&out).unwrap()
    };
    let provenance = inspect("{{json .Provenance}}");
    let sbom = inspect("{{json .SBOM}}");
    for platform in ["linux/amd64", "linux/arm64"] {
        let build = provenance[platform]["SLSA"]
            .pointer("/invocation/environment/platform")
            .unwrap_or_else(|| panic!("{platform}: no build platform in {provenance}"));
        assert_eq!(
            build, &entry["builds"][platform]["build_platform"],
            "{platform}"
        );
        assert!(
            sbom[platform]["SPDX"]["packages"]
                .as_array()
                .is_some_and(|p| !p.is_empty()),
            "{platform}: an SBOM: {sbom}"
        );
    }
}

#[test]
fn a_merge_after_a_failed_platform_build_moves_no_tag_and_creates_no_index() {
    let fixture = fixture();
    let _engine = engine_lock();
    let variant = variant();
    let release = Release::new("failed-part", "refs/heads/main", &[&variant]);
    let scratch = TempDir::new("failed-part");
    let (amd64, arm64) = (
        scratch.path().join("part-amd64.json"),
        scratch.path().join("part-arm64.json"),
    );
    // runner2's build fails: its binaries lack linux/arm64.
    let broken = scratch.path().join("binaries");
    let binaries = fixture
        .build_options()
        .into_iter()
        .find_map(|o| o.strip_prefix("--binaries=").map(String::from))
        .expect("the fixture builds from host binaries");
    std::fs::create_dir_all(broken.join("linux-amd64")).unwrap();
    std::fs::copy(
        Path::new(&binaries).join("linux-amd64/beacon"),
        broken.join("linux-amd64/beacon"),
    )
    .unwrap();
    let mut options: Vec<String> = fixture
        .build_options()
        .into_iter()
        .filter(|o| !o.starts_with("--binaries="))
        .collect();
    options.push(format!("--binaries={}", broken.display()));
    let failing = release.part_with(
        fixture,
        &options,
        ("linux/arm64", true),
        &arm64,
        Buildx::Stack,
    );
    let (outputs, _) = side_by_side(vec![
        release.part(fixture, "linux/amd64", false, &amd64, Buildx::Stack),
        failing,
    ]);
    succeeded("the amd64 part", &outputs[0]);
    let log = stderr(&outputs[1]);
    let last = log.lines().last().unwrap_or_default();
    assert!(
        !outputs[1].status.success() && last.starts_with("error: the build failed"),
        "{log}"
    );
    assert!(!arm64.exists(), "a failed build writes no part");

    // The merge of what there is: refused in one line, nothing pushed or tagged.
    let record = scratch.path().join("release-record.json");
    let refused = run(&mut release.merge(fixture, &[&amd64], &record, Buildx::Stack));
    let line = one_line_error(&refused);
    assert!(line.contains("no part holds linux/arm64"), "{line}");
    assert!(
        !stderr(&refused).contains("imagetools"),
        "{}",
        stderr(&refused)
    );
    assert!(!record.exists());
    assert!(registry_tags(&release.name).is_empty());

    // "Re-run failed jobs": the failed one builds its part; the other, had it
    // run again, would resume from its part record and build nothing.
    let before = std::fs::read(&amd64).unwrap();
    let (outputs, _) = side_by_side(vec![
        release.part(fixture, "linux/arm64", true, &arm64, Buildx::Stack),
        release.part(fixture, "linux/amd64", false, &amd64, Buildx::Stack),
    ]);
    succeeded("the arm64 part, re-run", &outputs[0]);
    succeeded("the amd64 part, re-run", &outputs[1]);
    let resumed = stderr(&outputs[1]);
    assert!(
        resumed.contains("already pushed; not rebuilt") && !resumed.contains("buildx bake"),
        "{resumed}"
    );
    assert_eq!(
        std::fs::read(&amd64).unwrap(),
        before,
        "the part is kept as it was"
    );

    // A part naming an index the registry does not hold, or one that does
    // not hold its platform's image: refused before anything is pushed.
    let edited = |name: &str, digest: String| {
        let mut part = read_json(&arm64);
        part["variants"][0]["digest"] = digest.into();
        let path = scratch.path().join(name);
        std::fs::write(&path, part.to_string()).unwrap();
        path
    };
    let missing = edited("missing.json", format!("sha256:{}", "0".repeat(64)));
    let other = edited(
        "other.json",
        read_json(&amd64)["variants"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    for (path, expected) in [
        (&missing, "which is not in the registry"),
        (&other, "holds the platform images"),
    ] {
        let refused = run(&mut release.merge(fixture, &[&amd64, path], &record, Buildx::Stack));
        let line = one_line_error(&refused);
        assert!(
            line.contains(expected) && line.contains("nothing was pushed, signed or tagged"),
            "{line}"
        );
    }

    // The merge now makes the index, which none of the refused merges had
    // made (it is pushed now, not found).
    let merged = run(&mut release.merge(fixture, &[&amd64, &arm64], &record, Buildx::Stack));
    succeeded("merge-release", &merged);
    assert!(
        stderr(&merged).contains("merged and pushed by digest"),
        "{}",
        stderr(&merged)
    );
    assert!(
        !stderr(&merged).contains("held it already"),
        "{}",
        stderr(&merged)
    );
    assert!(
        registry_tags(&release.name).is_empty(),
        "a merge moves no tag"
    );
}

#[test]
fn buildx_0_29_builds_parts_and_merges_them_into_the_index_0_13_makes() {
    let _ = fixture();
    let _engine = engine_lock();
    let variant = variant();
    let release = Release::new("buildx-029-parts", "refs/heads/main", &[&variant]);
    let scratch = TempDir::new("buildx-029-parts");
    let (amd64, arm64) = build_parts(&release, scratch.path(), Buildx::Newer);
    let newer = scratch.path().join("newer.json");
    let merged = run(&mut release.merge(fixture(), &[&amd64, &arm64], &newer, Buildx::Newer));
    succeeded("merge-release with buildx 0.29", &merged);
    assert!(
        stderr(&merged).contains("merged and pushed by digest"),
        "{}",
        stderr(&merged)
    );
    let entry = read_json(&newer)["variants"][0].clone();
    let parts: Vec<String> = [&amd64, &arm64]
        .iter()
        .map(|p| {
            read_json(p)["variants"][0]["digest"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_merged_index(&release.name, &entry, &parts);
    // The stack's buildx makes the very same index of the same parts.
    let stack = scratch.path().join("stack.json");
    let again = run(&mut release.merge(fixture(), &[&arm64, &amd64], &stack, Buildx::Stack));
    succeeded("merge-release with buildx 0.13", &again);
    assert!(
        stderr(&again).contains("the registry held it already"),
        "{}",
        stderr(&again)
    );
    assert_eq!(read_json(&stack), read_json(&newer));
}

#[test]
fn one_runners_part_of_every_platform_passes_through_the_merge() {
    let fixture = fixture();
    let _engine = engine_lock();
    let variant = variant();
    let release = Release::new("single-runner", "refs/heads/main", &[&variant]);
    let scratch = TempDir::new("single-runner");
    let part = scratch.path().join("part-all.json");
    let built = run(&mut release.part(
        fixture,
        "linux/amd64,linux/arm64",
        false,
        &part,
        Buildx::Stack,
    ));
    succeeded("the one runner's part", &built);
    let record = scratch.path().join("release-record.json");
    let merged = run(&mut release.merge(fixture, &[&part], &record, Buildx::Stack));
    succeeded("merge-release", &merged);
    assert!(
        stderr(&merged).contains("one part held every platform"),
        "{}",
        stderr(&merged)
    );
    assert!(
        !stderr(&merged).contains("imagetools create"),
        "{}",
        stderr(&merged)
    );
    let (part, record) = (read_json(&part), read_json(&record));
    assert_eq!(
        record["variants"][0]["digest"],
        part["variants"][0]["digest"]
    );
    assert_eq!(
        record["variants"][0]["platform_digests"],
        part["variants"][0]["platform_digests"]
    );
    assert_eq!(record["format"], "beacon-release-record/v2");
}
