//! End to end through images/compile.Dockerfile's real stages (fetch, toolchain,
//! deps, compile: see images/compile-service.sh), on the real engine and
//! registry, with nothing pulled: the builder image is made locally by
//! `.ci/build-builder-image` (Debian's Rust toolchain and the arm64 cross
//! toolchain, in the loopback registry), the bases and the SBOM generator are
//! the stand-ins of `cargo xtask stand-ins`. Unlike e2e_images.rs, builds here
//! compile the service inside the build (no `--binaries`), but for the
//! tampered image of the rebuild check.
//!
//! Every build here compiles the real dependency graph, so the tests share
//! what they build: one release ([`release`], built by the first test that
//! needs it) that the `release_*` tests check (cross compile, SBOM,
//! reproducibility, of both platforms and of each alone), and one CI build of `main` ([`mains_ci_build`]) whose
//! registry cache the `with_only_mains_registry_cache_*` tests build pull
//! requests from on an emptied engine; the benchmark's smoke run is a test
//! of its own. Each test runs alone too (`cargo test --test e2e_compile
//! NAME`). Run together, the engine lock lets them in the order of their
//! names, so each reuses what the one before left in the engine: the
//! release's rebuild-check compiles both architectures from an emptied
//! engine, the rebuilds of one platform alone (`--platform`) and the
//! tampered image's rebuild find those dependencies in the cache mounts, the benchmark's smoke run (which never empties the engine)
//! finds that release in the cache, and main's CI build finds the smoke
//! run's CI compile (its pull requests empty the engine themselves). (The
//! two checks of the compile stages' inputs that compile nothing are in
//! e2e_compile_inputs.rs, in the other lane of `cargo xtask test`.) They
//! fail (never skip) when the engine, the registry or the builder image is
//! missing. Assertions read what the engine, the registry and the images
//! hold, plus the build log where only it can tell (which platform a step
//! ran on, which crates cargo compiled).

mod support;

use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use xtask::model::build_log;

use support::compile::{
    append, clean_checkout, compile_steps, dependencies_compiled, empty_the_engine, release_image,
    remove_checkout, service_crates_compiled, xtask_in, VARIANT,
};
use support::e2e::{
    arm64_version, compile_fixture, context_file, docker, engine_lock, git, http_get,
    index_platforms, native_arch, platform_config, registry, registry_json, root, run, run_ok,
    shared, start_service, stderr, stdout, unique_name, wait_for_http, with_registry_cache, xtask,
};

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

/// The version Cargo.lock pins for a package.
fn locked_version(package: &str) -> String {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
    lock.split("[[package]]")
        .find(|entry| entry.contains(&format!("name = \"{package}\"\n")))
        .and_then(|entry| {
            entry
                .lines()
                .find_map(|l| l.strip_prefix("version = \""))
                .map(|v| v.trim_end_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("{package} is not in Cargo.lock"))
}

/// The release every `release_*` test checks: VARIANT at v3.1.4, compiled
/// in the compile stages for both platforms, from a clean checkout.
struct Release {
    /// The repository under the test registry.
    name: String,
    /// `REGISTRY/NAME:3.1.4-VARIANT`.
    reference: String,
    /// `3.1.4-VARIANT`.
    tag: String,
    /// The release's build log.
    log: String,
}

fn release() -> &'static Release {
    static RELEASE: OnceLock<Result<Release, String>> = OnceLock::new();
    shared(&RELEASE, "the release of the compile-stage tests", || {
        let name = unique_name("release-compile");
        let tree = clean_checkout("release-compile");
        let context = context_file("release-compile-v3.1.4", "refs/tags/v3.1.4", &["v3.1.4"]);
        let mut command = xtask_in(&tree, &context);
        release_image(&mut command, &name);
        let output = run(&mut command);
        remove_checkout(&tree);
        let log = stderr(&output);
        assert!(output.status.success(), "the release failed:\n{log}");
        let tag = format!("3.1.4-{VARIANT}");
        Release {
            reference: format!("{}/{name}:{tag}", registry()),
            name,
            tag,
            log,
        }
    })
}

/// The compile stage runs once for both target platforms, on the build
/// platform: BuildKit labels a step that runs on another platform than the
/// one it is built for `BUILD->TARGET` (`linux/amd64->arm64`), and the one
/// step both platforms share carries either platform's label. One cargo
/// invocation compiled both targets (the script names them), and what
/// compiled in the compile step (when it ran) was the service alone.
#[test]
fn release_compiles_both_platforms_in_one_step_on_the_build_platform() {
    let _engine = engine_lock();
    let log = &release().log;
    let build_platform = format!("linux/{}", native_arch());
    let steps = compile_steps(log);
    assert_eq!(
        steps.len(),
        1,
        "one compile for both platforms: {steps:?}\n{log}"
    );
    assert!(
        steps[0]
            .label
            .split_whitespace()
            .any(|word| word == build_platform || word.starts_with(&format!("{build_platform}->"))),
        "the compile step runs on {build_platform}: {steps:?}"
    );
    for command in ["deps", "build"] {
        let instruction = format!("compile-service.sh {command}");
        let ran: Vec<build_log::Step> = build_log::steps(log)
            .into_iter()
            .filter(|s| {
                s.instruction.ends_with(&instruction)
                    || s.instruction.contains(&format!("{instruction} "))
            })
            .collect();
        assert_eq!(
            ran.len(),
            1,
            "one {command} step for both platforms: {ran:?}"
        );
        let targets = format!("{instruction}: targets amd64 arm64");
        assert!(
            ran[0].from_cache() || ran[0].output.iter().any(|l| l.trim() == targets),
            "the {command} step compiled both targets ({targets:?}): {:?}",
            ran[0]
        );
    }
    for (step, name) in build_log::compiled_crates(log, "compile-service.sh") {
        if step.contains(" compile ") {
            assert_eq!(name, "beacon", "only the service compiles in {step}");
        }
    }
}

/// The registry holds an index with both platforms, labelled production.
#[test]
fn release_index_holds_both_platforms_labelled_production() {
    let _engine = engine_lock();
    let release = release();
    let index = registry_json(&release.name, &format!("manifests/{}", release.tag));
    let mut platforms = index_platforms(&index);
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let config = platform_config(&release.name, &index, "arm64");
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(
        config["config"]["Labels"]["dev.beacon.image.flavor"],
        "production"
    );
}

/// The SBOM of each platform lists what ships: the service and the crates
/// compiled into it, at Cargo.lock's versions (cargo-auditable; syft reads
/// them as rust-crate packages).
#[test]
fn release_sbom_lists_the_service_and_its_crates_at_cargo_lock_versions() {
    let _engine = engine_lock();
    let release = release();
    let sbom = docker(&[
        "buildx",
        "imagetools",
        "inspect",
        &release.reference,
        "--format",
        "{{json .SBOM}}",
    ]);
    assert!(sbom.status.success(), "{}", stderr(&sbom));
    let sbom: Value = serde_json::from_slice(&sbom.stdout).unwrap();
    for platform in ["linux/amd64", "linux/arm64"] {
        let packages = sbom[platform]["SPDX"]["packages"]
            .as_array()
            .unwrap_or_else(|| panic!("no SPDX packages for {platform}: {sbom}"));
        for (crate_name, version) in [
            ("beacon", "0.1.0".to_string()),
            ("tokio", locked_version("tokio")),
            ("axum", locked_version("axum")),
        ] {
            let purl = format!("pkg:cargo/{crate_name}@{version}");
            assert!(
                packages.iter().any(|p| {
                    p["name"] == crate_name
                        && p["versionInfo"] == version.as_str()
                        && p["externalRefs"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|r| r["referenceLocator"] == purl.as_str())
                }),
                "the {platform} SBOM lists {purl}: {}",
                packages
                    .iter()
                    .map(|p| format!("{} {}", p["name"], p["versionInfo"]))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}

/// The arm64 binary is a static aarch64 ELF, and it runs (under emulation).
#[test]
fn release_arm64_binary_is_static_and_runs() {
    let _engine = engine_lock();
    let reference = &release().reference;
    let binary = file_from_image(reference, "linux/arm64", "/usr/local/bin/beacon");
    let (machine, interp) = elf_machine_and_interp(&binary);
    assert_eq!(machine, 183, "EM_AARCH64");
    assert!(
        !interp,
        "the arm64 binary is static (no program interpreter)"
    );
    let arm = arm64_version(reference);
    docker(&["image", "rm", reference]);
    assert!(
        arm.status.success(),
        "the arm64 image does not run: {}{}",
        stdout(&arm),
        stderr(&arm)
    );
}

/// From an emptied engine, the commit rebuilds to the same image, per
/// platform: through the new dependency layers, with no cache at all.
#[test]
fn release_rebuilds_identically_from_an_emptied_engine() {
    let _engine = engine_lock();
    let release = release();
    empty_the_engine();
    let checked = rebuild_check(&release.reference);
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
        // Built by one runner, and rebuilt as it was: the other platform
        // cross-compiled on the build platform (both provenances say so).
        let build_platform = format!("linux/{}", native_arch());
        let compile = if platform["platform"] == build_platform.as_str() {
            "native"
        } else {
            "cross"
        };
        let how = serde_json::json!({"build_platform": build_platform, "compile": compile});
        assert_eq!(platform["how_built"], how, "{platform}");
        assert_eq!(platform["how_rebuilt"], how, "{platform}");
    }
    assert_eq!(report["unchecked"], serde_json::json!([]));
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
}

/// Checks one platform of the release (built by one runner for both, arm64
/// cross-compiled): rebuilt alone (`--platform`, so the compile stage
/// compiles its one target, where the release compiled both in one cargo
/// invocation), the way it was built, it matches; the other platform is
/// reported unchecked. Run after the honest rebuild of both, its compile
/// finds the dependencies in the cache mounts.
fn rebuild_one_platform(platform: &str) {
    let release = release();
    let started = std::time::Instant::now();
    let checked = run(xtask().args([
        "rebuild-check",
        &release.reference,
        "--json",
        "--platform",
        platform,
    ]));
    let log = stderr(&checked);
    assert!(
        checked.status.success(),
        "rebuild-check --platform {platform} of an honest release failed:\n{}\n{log}",
        stdout(&checked)
    );
    eprintln!(
        "rebuild-check --platform {platform}: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let report: Value = serde_json::from_str(&stdout(&checked)).unwrap();
    let platforms = report["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 1, "only {platform} is compared: {report}");
    let checked = &platforms[0];
    assert_eq!(checked["platform"], platform);
    assert_eq!(checked["matches"], true, "{checked}");
    assert_eq!(checked["published"], checked["rebuilt"]);
    let build_platform = format!("linux/{}", native_arch());
    let how = if platform == build_platform {
        "native"
    } else {
        "cross"
    };
    for how_key in ["how_built", "how_rebuilt"] {
        assert_eq!(
            checked[how_key],
            serde_json::json!({"build_platform": build_platform, "compile": how}),
            "{how_key}: {checked}"
        );
    }
    let other = if platform == "linux/amd64" {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    assert_eq!(report["unchecked"], serde_json::json!([other]));
    let arch = platform.trim_start_matches("linux/");
    let targets = format!("compile-service.sh build: targets {arch}");
    assert!(
        compile_steps(&log)
            .iter()
            .any(|s| s.output.iter().any(|l| l.trim() == targets)),
        "the compile stage compiled {arch} alone:\n{log}"
    );
}

/// linux/amd64 alone, as it was built (natively on an amd64 machine).
#[test]
fn release_rebuilds_one_platform_alone_amd64() {
    let _engine = engine_lock();
    rebuild_one_platform("linux/amd64");
}

/// linux/arm64 alone, as it was built (cross-compiled on an amd64 machine).
#[test]
fn release_rebuilds_one_platform_alone_arm64() {
    let _engine = engine_lock();
    rebuild_one_platform("linux/arm64");
}

/// A release of the same commit whose binary the commit does not build
/// (host binaries, one byte appended) is a mismatch naming the binary's
/// layer and file. Its rebuild reuses the dependencies an earlier compile
/// left in the cache mounts (--no-cache keeps them): run after the honest
/// rebuild, only the service compiles again.
#[test]
fn release_tampered_is_a_mismatch_naming_the_binary() {
    let _engine = engine_lock();
    let _ = compile_fixture();
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
    let name = unique_name("release-tampered");
    let tree = clean_checkout("release-tampered");
    let context = context_file("release-tampered-v3.1.4", "refs/tags/v3.1.4", &["v3.1.4"]);
    let mut command = xtask_in(&tree, &context);
    release_image(&mut command, &name);
    let published = run(command.arg(format!("--binaries={}", tampered.display())));
    remove_checkout(&tree);
    assert!(published.status.success(), "{}", stderr(&published));
    let checked = rebuild_check(&format!("{}/{name}:3.1.4-{VARIANT}", registry()));
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
}

fn rebuild_check(reference: &str) -> Output {
    run(xtask().args(["rebuild-check", reference, "--json"]))
}

/// Every engine's dockerd (pid) and the cores it may run on.
fn dockerd_cores() -> Vec<(u32, String)> {
    let mut engines = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let cores = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|c| c.trim().to_string());
        if let (true, Some(cores)) = (comm.trim() == "dockerd", cores) {
            engines.push((pid, cores));
        }
    }
    engines.sort();
    engines
}

/// A smoke run of `cargo xtask bench` (one repetition, one variant, an
/// engine never emptied) so the benchmark cannot rot. Its figures are not
/// judged here: performance goals live in the benchmark's own report, not in
/// timed tests.
#[test]
fn the_benchmark_smoke_run_measures_every_scenario() {
    let _engine = engine_lock();
    let engines_before = dockerd_cores();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(root())
        .args(["bench", "--smoke", "--json"])
        .env_remove("XTASK_CONTEXT")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "bench --smoke failed (run `sudo .ci/setup-stack` if the stack is missing):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["repeat"], 1);
    assert_eq!(report["variants"].as_array().unwrap().len(), 1);
    let scenarios = report["scenarios"].as_array().unwrap();
    for prefix in [
        "1a ", "1b ", "2a ", "2b ", "3 ", "3a ", "3b ", "3c ", "4 ", "5 ", "6a ", "6b ", "6c ",
        "6d ", "7b ", "8 ", "9 ", "9a ", "9b ", "9c ", "9d ",
    ] {
        let found = scenarios
            .iter()
            .find(|s| s["name"].as_str().unwrap().starts_with(prefix));
        let found = found.unwrap_or_else(|| panic!("scenario {prefix}missing: {scenarios:?}"));
        assert_eq!(
            found["samples"].as_array().unwrap().len().min(1),
            1,
            "{found}"
        );
    }
    for timed in [
        "1a ", "1b ", "2a ", "3a ", "3b ", "4 ", "7b ", "9 ", "9a ", "9b ",
    ] {
        let median = scenarios
            .iter()
            .find(|s| s["name"].as_str().unwrap().starts_with(timed))
            .unwrap()["median"]
            .as_f64()
            .unwrap();
        assert!(median > 0.0, "scenario {timed}took no time: it did not run");
    }
    let ratios = report["ratios"].as_array().unwrap();
    assert!(ratios.len() >= 12, "{ratios:?}");
    for name in [
        "fresh-runner PR CI build / cold CI",
        "dependency crates compiled by the fresh-runner PR build",
        "warm local CI rebuild / cold CI",
        "cold production / its floor (the slowest single-platform release), wall",
        "cold production / its floor (the slowest single-platform release), CPU",
        "production on two runners / its floor",
        "fresh runner: host-built path / compile stage",
        "registry bytes a PR build saves",
        "CPU seconds a PR build saves",
    ] {
        assert!(
            ratios
                .iter()
                .any(|r| r["name"].as_str().unwrap().starts_with(name)),
            "ratio {name:?} missing: {ratios:?}"
        );
    }
    // What each build cost was metered: the pushes went through the
    // counting proxy, and CPU was read (the two-runner release, and each of
    // its parts alone, among them).
    let costs = report["costs"].as_array().unwrap();
    assert_eq!(costs.len(), 6, "{costs:?}");
    for cost in costs {
        assert!(cost["bytes_written"].as_u64().unwrap() > 0, "{cost}");
        assert!(cost["cpu_seconds"].as_f64().unwrap() > 0.0, "{cost}");
    }
    // Both architectures of the production build compiled, with times.
    let arches: Vec<&str> = report["arch_compiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["arch"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    assert!(ratios
        .iter()
        .all(|r| r["met"].is_boolean() && r["value"].is_number() && r["target"].is_string()));
    assert!(
        report["notes"].to_string().contains("skipped in --smoke"),
        "the cold compile is skipped, and says so"
    );
    // The two runners were two engines, each held to its core while it
    // built, and were given their cores back.
    assert!(
        report["notes"].to_string().contains("none left its core"),
        "{}",
        report["notes"]
    );
    assert_eq!(
        dockerd_cores(),
        engines_before,
        "the engines' cores restored"
    );
    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1);
}

/// Main's CI build of every variant (which compiles once, in a build of its
/// own: plan/shared_compile.rs), writing main's registry cache (mode=max):
/// what a fresh runner's pull request builds from.
struct MainsBuild {
    name: String,
    log: String,
    /// The CI build's result (`--json`).
    result: Value,
    /// VARIANT's image by its unique tag (a pull request's build moves
    /// `ci-VARIANT`, not this one).
    image: String,
}

fn mains_ci_build() -> &'static MainsBuild {
    static MAIN: OnceLock<Result<MainsBuild, String>> = OnceLock::new();
    shared(&MAIN, "main's CI build", || {
        let name = unique_name("fresh-runner");
        let tree = clean_checkout("fresh-runner-main");
        let main = fresh_runner_ci_image(&tree, &name, "refs/heads/main", "main");
        remove_checkout(&tree);
        let result: Value = serde_json::from_str(&stdout(&main)).unwrap();
        let image = result["variants"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["variant"] == VARIANT)
            .and_then(|v| v["tags"][1].as_str())
            .unwrap_or_else(|| panic!("no unique tag of {VARIANT} in {result}"))
            .to_string();
        MainsBuild {
            name,
            log: stderr(&main),
            result,
            image,
        }
    })
}

/// `ci-image --json` of every variant in `tree` as REGISTRY/NAME at
/// `git_ref`, reading and writing its registry cache.
fn fresh_runner_ci_image(tree: &std::path::Path, name: &str, git_ref: &str, label: &str) -> Output {
    let context = context_file(&format!("fresh-runner-{label}"), git_ref, &[]);
    run_ok(
        xtask_in(tree, &context)
            .args(["ci-image", "--json"])
            .args(with_registry_cache(name))
            .args(compile_fixture().build_options()),
    )
}

/// Removes the images a pull request's build loaded (all of REGISTRY/NAME
/// but main's build's own tags).
fn remove_loaded_images(name: &str, keep: &[String]) {
    let loaded = docker(&[
        "image",
        "ls",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        &format!("{}/{name}", registry()),
    ]);
    for tag in stdout(&loaded).lines() {
        if !keep.iter().any(|k| k == tag) {
            docker(&["image", "rm", tag]);
        }
    }
}

/// Main's tags, as its CI build's result lists them.
fn mains_tags(main: &MainsBuild) -> Vec<String> {
    main.result["variants"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|v| v["tags"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(String::from))
        .collect()
}

/// The CI image of `main` that writes the fresh runners' cache is the
/// compile stage's own, for every variant from one compile: the shared
/// step ran at most once (BuildKit runs it under one variant's label and
/// prints it again, CACHED, under the others'; the benchmark's smoke run
/// may have left it in the engine), natively; VARIANT's image holds a
/// static binary for the native platform that starts and says what it is.
#[test]
fn with_only_mains_registry_cache_mains_ci_image_is_native_static_and_serves() {
    let _engine = engine_lock();
    let main = mains_ci_build();
    let steps = compile_steps(&main.log);
    let ran: Vec<_> = steps.iter().filter(|s| !s.from_cache()).collect();
    assert!(
        !steps.is_empty() && ran.len() <= 1,
        "the compile stage ran at most once: {steps:?}\n{}",
        main.log
    );
    assert!(
        steps.iter().all(|s| !s.label.contains("->")),
        "a native single-platform build compiles natively: {steps:?}"
    );
    let built = main.result["variants"]
        .as_array()
        .expect("variants in the result");
    let every_variant = xtask::project::discover_variants(&root()).unwrap();
    assert_eq!(
        built.len(),
        every_variant.len(),
        "every variant: {}",
        main.result
    );
    let binary = file_from_image(
        &main.image,
        &format!("linux/{}", native_arch()),
        "/usr/local/bin/beacon",
    );
    let (machine, interp) = elf_machine_and_interp(&binary);
    let expected_machine = if native_arch() == "arm64" { 183 } else { 62 };
    assert_eq!(
        machine, expected_machine,
        "ELF machine of the native binary"
    );
    assert!(!interp, "the binary is static (no program interpreter)");
    let container = format!("e2e-fresh-runner-{}", std::process::id());
    let port_text = start_service(&container, &main.image);
    let port: Option<u16> = port_text
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse().ok());
    let health = port.and_then(|p| wait_for_http(p, "/healthz"));
    let version = port.and_then(|p| http_get(&format!("127.0.0.1:{p}"), "/version"));
    let logs = docker(&["logs", &container]);
    docker(&["rm", "-f", &container]);
    remove_loaded_images(&main.name, &[]);
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

/// A pull request that changes only xtask/, the README and a workflow, on a
/// fresh runner: the compile stage comes from main's cache (none of them is
/// in its context), and nothing is compiled.
#[test]
fn with_only_mains_registry_cache_a_change_outside_the_service_compiles_nothing() {
    let _engine = engine_lock();
    let main = mains_ci_build();
    let tree = clean_checkout("fresh-runner-pr-41");
    append(&tree, "xtask/src/lib.rs", "// e2e: an xtask-only change");
    append(&tree, "README.md", "<!-- e2e: a README change -->");
    append(
        &tree,
        ".github/workflows/ci-build.yml",
        "# e2e: a workflow change",
    );
    empty_the_engine();
    let output = fresh_runner_ci_image(&tree, &main.name, "refs/pull/41/merge", "pr-41");
    remove_checkout(&tree);
    remove_loaded_images(&main.name, &mains_tags(main));
    let log = stderr(&output);
    let steps = compile_steps(&log);
    assert!(
        !steps.is_empty() && steps.iter().all(|s| s.from_cache()),
        "the compile step came from main's cache: {steps:?}\n{log}"
    );
    assert_eq!(
        service_crates_compiled(&log),
        Vec::<String>::new(),
        "nothing compiled"
    );
}

/// A one-line change to the service, on a fresh runner (an emptied engine
/// and main's registry cache): the service is compiled, and no dependency
/// (the deps layer is in the exported cache).
#[test]
fn with_only_mains_registry_cache_a_one_line_change_compiles_no_dependency() {
    let _engine = engine_lock();
    let main = mains_ci_build();
    let name = &main.name;
    let tree = clean_checkout("fresh-runner-pr-42");
    // Unique to this run: the engine may still hold records of an earlier
    // run's change (images loaded from it keep them), a fresh runner never.
    append(
        &tree,
        "service/src/main.rs",
        &format!("// e2e: a one-line change, {name}"),
    );
    empty_the_engine();
    let output = fresh_runner_ci_image(&tree, name, "refs/pull/42/merge", "pr-42");
    remove_checkout(&tree);
    remove_loaded_images(name, &mains_tags(main));
    let log = stderr(&output);
    for cache in [VARIANT, "compile"] {
        assert!(
            log.contains(&format!(
                "importing cache manifest from {}/{name}-buildcache:{cache}-main",
                registry()
            )),
            "the pull request imports main's {cache} cache"
        );
    }
    let compiled = service_crates_compiled(&log);
    assert!(
        compiled.iter().any(|c| c.starts_with("beacon ")),
        "the service itself was compiled: {compiled:?}\n{log}"
    );
    assert_eq!(
        dependencies_compiled(&log),
        Vec::<String>::new(),
        "no dependency compiled on a fresh runner with main's cache"
    );
    let deps: Vec<_> = build_log::steps(&log)
        .into_iter()
        .filter(|s| s.instruction.contains("compile-service.sh deps"))
        .collect();
    assert!(
        !deps.is_empty() && deps.iter().all(|s| s.from_cache()),
        "the deps layer came from main's cache: {deps:?}\n{log}"
    );
}
