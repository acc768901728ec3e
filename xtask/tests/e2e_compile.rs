//! End to end through the Dockerfiles' real compile stage
//! (`FROM --platform=$BUILDPLATFORM ${BUILDER_IMAGE} AS compile`), on the real
//! engine and registry, with nothing pulled: the builder image is made locally
//! by `.ci/build-builder-image` (Debian's Rust toolchain and the arm64 cross
//! toolchain, in the loopback registry), the bases and the SBOM generator are
//! the stand-ins of `cargo xtask stand-ins`. Unlike e2e_images.rs, no build
//! here passes `--binaries`: the service is compiled inside the build.
//!
//! These tests fail (never skip) when the engine, the registry or the builder
//! image is missing. Assertions read what the engine, the registry and the
//! images hold, plus the build log where only it can tell (which platform a
//! step ran on).

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

use support::e2e::{
    arm64_version, compile_fixture, context_file, docker, engine_lock, git, http_get,
    index_platforms, native_arch, ok, platform_config, registry, registry_json, root, run, run_ok,
    start_service, stderr, stdout, unique_name, wait_for_http, xtask,
};

const VARIANT: &str = "distroless";

/// The step labels of the compile stage's compile-service.sh step in a
/// plain-progress build log: what is between the brackets of
/// `#14 [linux/amd64->arm64 compile 4/4] RUN --mount=... ./images/compile-service.sh "arm64" /out`
/// (a bake of several targets puts the target's name first), once per platform.
fn compile_steps(log: &str) -> Vec<String> {
    let mut labels: Vec<String> = log
        .lines()
        .filter(|l| l.starts_with('#') && l.contains("] RUN ") && l.contains("compile-service.sh"))
        .filter_map(|l| {
            let label = l.split_once('[')?.1.split_once(']')?.0;
            label
                .split_whitespace()
                .any(|word| word == "compile")
                .then(|| label.to_string())
        })
        .collect();
    labels.sort();
    labels.dedup();
    labels
}

/// ELF facts of a binary: (e_machine, has a PT_INTERP program header).
fn elf_machine_and_interp(binary: &[u8]) -> (u16, bool) {
    assert!(
        binary.len() > 64 && &binary[..4] == b"\x7fELF",
        "not an ELF file"
    );
    assert_eq!(binary[4], 2, "not a 64-bit ELF");
    assert_eq!(binary[5], 1, "not little-endian");
    let u16_at = |o: usize| u16::from_le_bytes([binary[o], binary[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(binary[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(binary[o..o + 8].try_into().unwrap());
    let machine = u16_at(18);
    let phoff = usize::try_from(u64_at(32)).unwrap();
    let phentsize = usize::from(u16_at(54));
    let phnum = usize::from(u16_at(56));
    const PT_INTERP: u32 = 3;
    let interp = (0..phnum).any(|i| u32_at(phoff + i * phentsize) == PT_INTERP);
    (machine, interp)
}

/// Copies a file out of an image for a platform, without running it.
fn file_from_image(image: &str, platform: &str, path: &str) -> Vec<u8> {
    let created = docker(&["create", "--platform", platform, image]);
    assert!(created.status.success(), "{}", stderr(&created));
    let container = stdout(&created).trim().to_string();
    let dest = std::env::temp_dir().join(format!(
        "e2e-compile-{}-{}",
        std::process::id(),
        platform.replace('/', "-")
    ));
    let copied = docker(&["cp", &format!("{container}:{path}"), dest.to_str().unwrap()]);
    docker(&["rm", "-f", &container]);
    assert!(copied.status.success(), "{}", stderr(&copied));
    let bytes = std::fs::read(&dest).unwrap();
    let _ = std::fs::remove_file(&dest);
    bytes
}

/// `release-image` of VARIANT as `REGISTRY/NAME`, unsigned, built with the
/// stand-ins and the pinned builder image.
fn release_image(name: &str) -> Command {
    let fixture = compile_fixture();
    let mut command = xtask();
    command
        .args([
            "release-image",
            "--variant",
            VARIANT,
            "--registry",
            &registry(),
            "--image-name",
            name,
            "--sign",
            "none",
            "--sbom-generator",
            &fixture.sbom_generator,
        ])
        .args(fixture.build_options());
    command
}

#[test]
fn ci_image_compiles_the_service_in_the_builder_image_and_runs_it() {
    let fixture = compile_fixture();
    let _engine = engine_lock();
    let native_arch = native_arch();
    let output = run_ok(
        xtask()
            .args([
                "ci-image",
                "--json",
                "--variant",
                VARIANT,
                "--registry",
                "localhost/e2e-compile",
            ])
            .args(fixture.build_options()),
    );
    let log = stderr(&output);

    // The binaries came from the compile stage (the only stage that runs
    // compile-service.sh; with `--binaries` it is not built at all): its step
    // is in the log once, for the native platform, compiling natively.
    let steps = compile_steps(&log);
    assert_eq!(
        steps.len(),
        1,
        "the compile stage ran once: {steps:?}\n{log}"
    );
    assert!(
        !steps[0].contains("->"),
        "a native single-platform build compiles natively: {steps:?}"
    );

    let result: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let tags: Vec<String> = result["variants"][0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let image = format!("localhost/e2e-compile/beacon:ci-{VARIANT}");
    assert_eq!(tags[0], image);

    // The binary is a static ELF for the native architecture.
    let binary = file_from_image(
        &image,
        &format!("linux/{native_arch}"),
        "/usr/local/bin/beacon",
    );
    let (machine, interp) = elf_machine_and_interp(&binary);
    let expected_machine = if native_arch == "arm64" { 183 } else { 62 };
    assert_eq!(
        machine, expected_machine,
        "ELF machine of the native binary"
    );
    assert!(!interp, "the binary is static (no program interpreter)");

    // It starts and answers /version as the CI flavor of the variant.
    let name = format!("e2e-compile-{VARIANT}-{}", std::process::id());
    let port_text = start_service(&name, &image);
    let port: Option<u16> = port_text
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse().ok());
    let health = port.and_then(|p| wait_for_http(p, "/healthz"));
    let version = port.and_then(|p| http_get(&format!("127.0.0.1:{p}"), "/version"));
    let logs = docker(&["logs", &name]);
    docker(&["rm", "-f", &name]);
    for tag in &tags {
        docker(&["image", "rm", tag]);
    }
    assert!(
        health.is_some_and(|b| b.contains("ok")),
        "/healthz did not answer (port {port_text:?}); container log:\n{}{}",
        stdout(&logs),
        stderr(&logs)
    );
    let version: Value = serde_json::from_str(&version.expect("/version answers")).unwrap();
    assert_eq!(version["variant"], VARIANT);
    assert_eq!(version["build_target"], "ci");
}

#[test]
fn release_cross_compiles_for_arm64_on_the_build_platform() {
    let _ = compile_fixture();
    let _engine = engine_lock();
    let name = unique_name("compile");
    let context = context_file("compile-v9.9.9", "refs/tags/v9.9.9", &["v9.9.9"]);
    let output = run_ok(release_image(&name).env("XTASK_CONTEXT", &context));
    let log = stderr(&output);

    // The compile stage ran once per target platform, both times on the
    // build platform: BuildKit names a step that runs on another platform
    // than the target's `BUILD->TARGETARCH` (e.g. `linux/amd64->arm64`).
    let build_platform = format!("linux/{}", native_arch());
    let steps = compile_steps(&log);
    assert_eq!(
        steps.len(),
        2,
        "the compile stage ran once per target platform: {steps:?}\n{log}"
    );
    for target in ["amd64", "arm64"] {
        let expected = if build_platform == format!("linux/{target}") {
            build_platform.clone()
        } else {
            format!("{build_platform}->{target}")
        };
        assert!(
            steps
                .iter()
                .any(|label| label.split_whitespace().any(|word| word == expected)),
            "no compile step on {build_platform} for {target} (a label with {expected:?}): {steps:?}"
        );
    }

    // The registry holds an index with both platforms.
    let tag = format!("9.9.9-{VARIANT}");
    let index = registry_json(&name, &format!("manifests/{tag}"));
    let mut platforms = index_platforms(&index);
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let config = platform_config(&name, &index, "arm64");
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(
        config["config"]["Labels"]["dev.beacon.image.flavor"],
        "production"
    );

    // The arm64 binary is a static aarch64 ELF, and it runs (under emulation).
    let reference = format!("{}/{name}:{tag}", registry());
    let binary = file_from_image(&reference, "linux/arm64", "/usr/local/bin/beacon");
    let (machine, interp) = elf_machine_and_interp(&binary);
    assert_eq!(machine, 183, "EM_AARCH64");
    assert!(
        !interp,
        "the arm64 binary is static (no program interpreter)"
    );
    let arm = arm64_version(&reference);
    docker(&["image", "rm", &reference]);
    assert!(
        arm.status.success(),
        "the arm64 image does not run: {}{}",
        stdout(&arm),
        stderr(&arm)
    );
    assert!(
        !stdout(&arm).trim().is_empty(),
        "`beacon --version` printed nothing"
    );
}

/// A clean checkout of HEAD (the release must be built from its commit, as
/// in CI, whatever state this working tree is in).
fn clean_checkout(name: &str) -> PathBuf {
    let tree = root().join("target/e2e/trees").join(name);
    let _ = Command::new("git")
        .current_dir(root())
        .args(["worktree", "remove", "--force"])
        .arg(&tree)
        .output();
    let _ = std::fs::remove_dir_all(&tree);
    ok(Command::new("git")
        .current_dir(root())
        .args(["worktree", "add", "--detach", "--force"])
        .arg(&tree)
        .arg("HEAD"));
    tree
}

fn rebuild_check(reference: &str) -> Output {
    run(xtask().args(["rebuild-check", reference, "--json"]))
}

#[test]
fn rebuild_check_matches_a_release_and_catches_a_tampered_one() {
    let _ = compile_fixture();
    let _engine = engine_lock();
    let name = unique_name("rebuild");
    let tree = clean_checkout("rebuild");
    let context = context_file("rebuild-v3.1.4", "refs/tags/v3.1.4", &["v3.1.4"]);
    let release = |extra: &[&str]| {
        run_ok(
            release_image(&name)
                .current_dir(&tree)
                .env("XTASK_PROJECT_ROOT", &tree)
                .env("XTASK_CONTEXT", &context)
                .args(extra),
        );
    };
    release(&[]);
    let reference = format!("{}/{name}:3.1.4-{VARIANT}", registry());

    // From an emptied build cache, the commit rebuilds to the same image, per platform.
    ok(Command::new("docker").args(["buildx", "prune", "--all", "--force"]));
    let checked = rebuild_check(&reference);
    assert!(
        checked.status.success(),
        "rebuild-check of an honest release failed:\n{}\n{}",
        stdout(&checked),
        stderr(&checked)
    );
    let report: Value = serde_json::from_str(&stdout(&checked)).unwrap();
    let platforms = report["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2);
    for platform in platforms {
        assert_eq!(platform["matches"], true, "{platform}");
        assert_eq!(platform["published"], platform["rebuilt"]);
    }
    assert_eq!(report["inputs"]["variant"], VARIANT);
    assert_eq!(report["inputs"]["revision"], git(&["rev-parse", "HEAD"]));
    assert!(report["inputs"]["images"]["BUILDER_IMAGE"]
        .as_str()
        .unwrap()
        .contains("@sha256:"));
    assert_eq!(
        report["attestation_manifests"], 2,
        "attestations are reported, not compared"
    );

    // Publish a different image under the same tag: the same commit, but a
    // binary the commit does not build (host binaries, one byte appended).
    let tampered = root().join("target/e2e/tampered-binaries");
    for platform in ["linux-amd64", "linux-arm64"] {
        let dir = tampered.join(platform);
        std::fs::create_dir_all(&dir).unwrap();
        let mut binary = std::fs::read(
            root()
                .join("target/image-binaries")
                .join(platform)
                .join("beacon"),
        )
        .unwrap();
        binary.push(0);
        std::fs::write(dir.join("beacon"), binary).unwrap();
    }
    release(&["--force", &format!("--binaries={}", tampered.display())]);
    let checked = rebuild_check(&reference);
    assert!(
        !checked.status.success(),
        "rebuild-check must fail on a tampered image"
    );
    let message = stderr(&checked);
    let last = message.lines().last().unwrap_or_default();
    assert!(
        last.contains("mismatch on linux/amd64, linux/arm64"),
        "{last}"
    );
    let report: Value = serde_json::from_str(&stdout(&checked)).unwrap();
    for platform in report["platforms"].as_array().unwrap() {
        assert_eq!(platform["matches"], false);
        let layers = platform["layers"].as_array().unwrap();
        assert_eq!(
            layers.len(),
            1,
            "exactly the binary's layer differs: {platform}"
        );
        assert_eq!(
            layers[0]["first_differing_file"], "usr/local/bin/beacon",
            "{platform}"
        );
        assert_ne!(layers[0]["published"], layers[0]["rebuilt"]);
    }
    assert!(
        report["notes"].to_string().contains("binaries"),
        "says the release used host-built binaries"
    );
    let _ = Command::new("git")
        .current_dir(root())
        .args(["worktree", "remove", "--force"])
        .arg(&tree)
        .output();
}
