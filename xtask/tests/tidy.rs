//! Repository-wide checks that keep the tree honest (after rust-analyzer's
//! tidy tests): pinned bases, Dockerfiles that cannot drift apart, no
//! `unwrap` outside tests, shims without logic, documented commands that the
//! real CLI accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: impl AsRef<Path>) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn variants() -> Vec<String> {
    let mut variants: Vec<String> = std::fs::read_dir(root().join("images"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Dockerfile").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    variants.sort();
    variants
}

#[test]
fn the_three_variants_exist() {
    assert_eq!(variants(), ["chainguard", "distroless", "ubi9"]);
}

/// Every external image is an ARG default pinned NAME:TAG@sha256:<64 hex>.
#[test]
fn every_external_image_is_pinned_by_tag_and_digest() {
    for variant in variants() {
        let text = read(format!("images/{variant}/Dockerfile"));
        let mut images = 0;
        for line in text.lines().take_while(|l| !l.starts_with("FROM")) {
            let Some(assignment) = line.strip_prefix("ARG ") else {
                continue;
            };
            let Some((name, value)) = assignment.split_once('=') else {
                continue;
            };
            if !(name.ends_with("_BASE") || name.ends_with("_IMAGE")) {
                continue;
            }
            images += 1;
            let (reference, digest) = value
                .split_once("@sha256:")
                .unwrap_or_else(|| panic!("{variant}: {name} is not pinned by digest"));
            assert!(
                digest.len() == 64
                    && digest
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                "{variant}: {name} digest"
            );
            let last = reference.rsplit('/').next().unwrap();
            assert!(
                last.contains(':'),
                "{variant}: {name} names a tag too (for Dependabot and humans)"
            );
        }
        assert_eq!(
            images, 3,
            "{variant}: BUILDER_IMAGE, PRODUCTION_BASE and CI_BASE"
        );
        // Every FROM is either a stage, scratch, or one of those ARGs.
        for line in text.lines().filter(|l| l.starts_with("FROM ")) {
            let image = line
                .split_whitespace()
                .find(|w| !w.starts_with("FROM") && !w.starts_with("--platform"))
                .unwrap();
            assert!(
                image.starts_with("${")
                    || image == "scratch"
                    || image == "binaries"
                    || image.starts_with("base-")
                    || image.starts_with("binaries-"),
                "{variant}: FROM {image} must come from a pinned ARG or a stage"
            );
        }
    }
}

/// The final stage, where CI and production meet, is the same text in every
/// variant (but for the variant's name): the paths cannot drift apart.
#[test]
fn the_final_stage_is_identical_across_variants() {
    let finals: Vec<(String, String)> = variants()
        .into_iter()
        .map(|variant| {
            let text = read(format!("images/{variant}/Dockerfile"));
            let start = text
                .find("FROM base-${IMAGE_FLAVOR} AS final")
                .unwrap_or_else(|| panic!("{variant}: no final stage chosen by IMAGE_FLAVOR"));
            (
                variant.clone(),
                text[start..].replace(&format!("ARG VARIANT={variant}"), "ARG VARIANT=<variant>"),
            )
        })
        .collect();
    for (variant, text) in &finals[1..] {
        assert_eq!(
            text, &finals[0].1,
            "{variant}'s final stage differs from {}'s",
            finals[0].0
        );
    }
    let text = &finals[0].1;
    assert!(text.contains("USER 65532:65532"), "non-root");
    assert!(
        text.contains("ENTRYPOINT [\"/usr/local/bin/beacon\"]"),
        "exec-form entrypoint"
    );
    assert!(
        text.contains("HEALTHCHECK")
            && text.contains("CMD [\"/usr/local/bin/beacon\", \"healthcheck\"]"),
        "shell-less healthcheck"
    );
    assert!(
        !text.contains("RUN "),
        "the final stage runs nothing: production bases have no shell"
    );
    for variant in variants() {
        let text = read(format!("images/{variant}/Dockerfile"));
        assert!(
            text.contains("ARG IMAGE_FLAVOR=production"),
            "{variant}: production is the default"
        );
        assert!(
            text.contains("FROM --platform=$BUILDPLATFORM ${BUILDER_IMAGE} AS compile"),
            "{variant}: compile on the build platform"
        );
        assert!(
            text.contains("--mount=type=cache"),
            "{variant}: cache mounts"
        );
        let production = text
            .split("AS base-production")
            .nth(1)
            .unwrap()
            .split("FROM ")
            .next()
            .unwrap()
            .to_string();
        assert!(
            !production.contains("RUN "),
            "{variant}: the production base stage runs nothing"
        );
    }
}

/// No `unwrap`/`expect` outside tests (rust-analyzer's rule, ours too).
#[test]
fn no_unwrap_outside_tests() {
    let mut offenders = Vec::new();
    // Module directories (`src/prune/`) included.
    let mut dirs = vec![root().join("xtask/src"), root().join("service/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with("_tests.rs") {
                continue;
            }
            let shown = path.strip_prefix(root()).unwrap().display().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for (number, line) in code.lines().enumerate() {
                if (line.contains(".unwrap()") || line.contains(".expect("))
                    && !line.trim_start().starts_with("//")
                {
                    offenders.push(format!("{shown}:{}: {}", number + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "unwrap/expect outside tests:\n{}",
        offenders.join("\n")
    );
}

/// The Makefile holds shims, not logic: every recipe calls `cargo xtask`.
#[test]
fn makefile_targets_are_one_line_shims() {
    let makefile = read("Makefile");
    let recipes: Vec<&str> = makefile.lines().filter(|l| l.starts_with('\t')).collect();
    assert!(recipes.len() >= 6);
    for recipe in recipes {
        let recipe = recipe.trim();
        assert!(
            recipe.starts_with("cargo xtask ") || recipe.starts_with("@grep"),
            "not a shim: {recipe}"
        );
    }
    for target in ["help:", "ci-image:", "release-image:", "test:", "lint:"] {
        assert!(makefile.contains(target), "make {target}");
    }
}

/// The README's commands are a promise: each `cargo xtask` line parses, and
/// `.ci/run` runs the README's test command.
#[test]
fn readme_commands_exist_and_parse() {
    let readme = read("README.md");
    assert!(
        readme.contains("\ncargo xtask ci-image\n"),
        "the main job command"
    );
    assert!(readme.contains("\ncargo xtask test\n"), "the test command");
    assert!(
        read(".ci/run")
            .lines()
            .any(|l| l.trim() == "cargo xtask test"),
        ".ci/run runs the README's test command"
    );
    let mut checked = 0;
    for line in readme
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cargo xtask "))
    {
        let words: Vec<String> = line
            .trim_start_matches("cargo xtask ")
            .split_whitespace()
            .take_while(|w| !w.starts_with('#') && *w != "|" && *w != "&&" && *w != "\\")
            .map(|w| w.trim_matches('\'').trim_matches('"').to_string())
            .collect();
        let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(&words)
            .env("XTASK_PARSE_ONLY", "1")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "README line rejected by the CLI: {line}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 5, "README shows the commands ({checked} found)");
}
