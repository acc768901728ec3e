//! End to end, what the compile stages take in, on the real engine and
//! registry with the builder image of `.ci/build-builder-image`: an
//! out-of-date Cargo.lock fails in one line before anything compiles or is
//! pushed, and the cross linker is installed at its pinned versions when the
//! builder lacks it. Neither compiles the dependency graph, so they run in
//! the lane beside the costly compile tests (`cargo xtask test`). They fail
//! (never skip) when the engine, the registry or the builder image is
//! missing.

mod support;

use std::process::Command;

use support::compile::{
    clean_checkout, release_image, remove_checkout, service_crates_compiled, xtask_in,
};
use support::e2e::{
    compile_fixture, context_file, engine_lock, http_get, ok, registry, registry_digest, root, run,
    stderr, unique_name, with_registry_cache,
};

/// An out-of-date Cargo.lock fails a release with one line that names the
/// compile (images/compile.Dockerfile, a build of its own every variant
/// takes its binaries from), says what is wrong and how to fix it, before
/// anything is compiled or pushed.
#[test]
fn an_out_of_date_cargo_lock_fails_in_one_line_and_pushes_nothing() {
    let _ = compile_fixture();
    let _engine = engine_lock();
    let tree = clean_checkout("stale-lock");
    let manifest = tree.join("service/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("version = \"0.1.0\""), "{text}");
    std::fs::write(
        &manifest,
        text.replacen("version = \"0.1.0\"", "version = \"0.1.1\"", 1),
    )
    .unwrap();
    let name = unique_name("stale-lock");
    let context = context_file("stale-lock-v8.8.8", "refs/tags/v8.8.8", &["v8.8.8"]);
    let mut command = xtask_in(&tree, &context);
    release_image(&mut command, &name);
    let output = run(&mut command);
    remove_checkout(&tree);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let log = stderr(&output);
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "error: the build failed for the compile stages, which build every variant's binaries"
        ) && last.contains("Cargo.lock is out of date")
            && last.contains("cargo update --workspace")
            && last.contains("commit Cargo.lock")
            && last.contains("no tag of any variant was moved"),
        "the last line says what is wrong and how to fix it: {last}"
    );
    assert_eq!(
        service_crates_compiled(&log),
        Vec::<String>::new(),
        "nothing was compiled"
    );
    // Nothing reached the registry: no tag, and no repository at all (a push
    // by digest would have created it).
    let catalog = http_get(&registry(), "/v2/_catalog?n=100000").unwrap_or_default();
    assert!(
        !catalog.contains(&format!("\"{name}\"")),
        "nothing was pushed: {catalog}"
    );
}

/// The same in a cached CI build of every variant, whose compile has a
/// cache of its own (plan/shared_compile.rs): the one line names the compile
/// stages, says how to fix the lock, and nothing is pushed, cache included.
#[test]
fn an_out_of_date_cargo_lock_fails_a_shared_compile_in_one_line() {
    let fixture = compile_fixture();
    let _engine = engine_lock();
    let tree = clean_checkout("stale-lock-ci");
    let manifest = tree.join("service/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replacen("version = \"0.1.0\"", "version = \"0.1.1\"", 1),
    )
    .unwrap();
    let name = unique_name("stale-lock-ci");
    let context = context_file("stale-lock-pr-7", "refs/pull/7/merge", &[]);
    let output = run(xtask_in(&tree, &context)
        .args(["ci-image", "--push"])
        .args(with_registry_cache(&name))
        .args(fixture.build_options()));
    remove_checkout(&tree);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.contains(&format!(
            "[compile] importing cache manifest from {}/{name}-buildcache:compile-main",
            registry()
        )),
        "the compile stages ran as a build of their own, with main's compile cache:\n{log}"
    );
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "error: the build failed for the compile stages, which build every variant's binaries"
        ) && last.contains("Cargo.lock is out of date")
            && last.contains("cargo update --workspace")
            && last.contains("no tag of any variant was moved"),
        "the last line says what is wrong and how to fix it: {last}"
    );
    let catalog = http_get(&registry(), "/v2/_catalog?n=100000").unwrap_or_default();
    for repository in [name.clone(), format!("{name}-buildcache")] {
        assert!(
            !catalog.contains(&format!("\"{repository}\"")),
            "nothing was pushed to {repository}: {catalog}"
        );
    }
}

/// On a builder image without the cross linker (the official rust image),
/// the toolchain step installs it, at exactly the pinned versions, from the
/// pinned Debian source only; a version that source does not have fails
/// the build instead of installing another one. Nothing here reaches
/// snapshot.debian.org, so the mirror override points at the machine's own
/// Debian mirror, which serves the same bookworm versions.
#[test]
fn the_cross_linker_is_installed_at_its_pinned_versions_when_missing() {
    let fixture = compile_fixture();
    let _engine = engine_lock();
    let builder = fixture
        .builder_image()
        .expect("the compile fixture has a builder image");
    // The builder without the arm64 linker, as the official rust image is.
    let dir = root().join("target/e2e/builder-without-cross-linker");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {builder}\nRUN dpkg --remove --force-depends gcc-aarch64-linux-gnu && ! command -v aarch64-linux-gnu-gcc\n"
        ),
    )
    .unwrap();
    let image = format!("{}/e2e/builder-without-cross-linker:bookworm", registry());
    ok(Command::new("docker").args([
        "buildx",
        "build",
        "--quiet",
        "--provenance=false",
        "--output",
        &format!("type=image,name={image},push=true"),
        dir.to_str().unwrap(),
    ]));
    let digest = registry_digest("e2e/builder-without-cross-linker", "bookworm").unwrap();
    let mirror = debian_mirror();
    let toolchain = |gcc_version: &str| {
        run(Command::new("docker").current_dir(root()).args([
            "buildx",
            "build",
            "--progress",
            "plain",
            "--file",
            xtask::project::COMPILE_DOCKERFILE,
            "--target",
            "toolchain",
            // The compile stages build the targets TARGET_ARCHES lists.
            "--build-arg",
            "TARGET_ARCHES=arm64",
            "--no-cache-filter",
            "toolchain",
            "--build-arg",
            &format!("BUILDER_IMAGE={image}@{digest}"),
            "--build-arg",
            &format!("CROSS_APT_MIRROR={mirror}"),
            "--build-arg",
            &format!("CROSS_GCC_VERSION={gcc_version}"),
            "--output",
            "type=cacheonly",
            ".",
        ]))
    };
    let args = xtask::project::global_arg_defaults(
        &std::fs::read_to_string(root().join(xtask::project::COMPILE_DOCKERFILE)).unwrap(),
    );
    let pinned = &args["CROSS_GCC_VERSION"];
    let installed = toolchain(pinned);
    let log = stderr(&installed);
    assert!(installed.status.success(), "{log}");
    assert!(
        log.contains(&format!("Setting up gcc-aarch64-linux-gnu ({pinned})")),
        "the pinned version was installed:\n{log}"
    );
    let refused = toolchain("4:0.0.0-0");
    assert!(
        !refused.status.success(),
        "a version the pinned source lacks must fail the build"
    );
    assert!(
        stderr(&refused).contains("Version '4:0.0.0-0' for 'gcc-aarch64-linux-gnu' was not found"),
        "{}",
        stderr(&refused)
    );
}

/// The machine's own Debian mirror (from its apt sources), for the mirror
/// override of the cross linker's source.
fn debian_mirror() -> String {
    let sources = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .expect("the test machine is Debian with deb822 apt sources (.ci/setup-stack)");
    sources
        .split("\n\n")
        .filter(|entry| {
            entry
                .lines()
                .any(|l| l.starts_with("Suites:") && l.contains(" bookworm"))
        })
        .find_map(|entry| entry.lines().find_map(|l| l.strip_prefix("URIs:")))
        .map(|uris| {
            uris.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .expect("an apt source for bookworm")
}
