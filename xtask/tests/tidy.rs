//! Repository-wide checks that keep the tree honest (after rust-analyzer's
//! tidy tests): pinned bases, Dockerfiles that cannot drift apart, no
//! `unwrap` outside tests, shims without logic, documented commands that the
//! real CLI accepts, units a reader can hold (files and functions of a
//! bounded length).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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

/// The variants as the tool itself discovers them (no copy of its rules here).
fn variants() -> Vec<String> {
    xtask::project::discover_variants(&root()).unwrap()
}

/// The compile file every variant takes its binaries from.
const COMPILE_FILE: &str = xtask::project::COMPILE_DOCKERFILE;

fn compile_file() -> String {
    read(COMPILE_FILE)
}

/// Every Dockerfile of the images as the tool finds them (the compile file
/// and each variant's): (path, text).
fn dockerfiles() -> Vec<(String, String)> {
    xtask::project::dockerfiles(&root())
        .unwrap()
        .into_iter()
        .map(|path| {
            let text = read(&path);
            (path, text)
        })
        .collect()
}

/// Every external image is an ARG default pinned NAME:TAG@sha256:<64 hex>,
/// in the file that uses it: the builder image in the compile file, the
/// bases in each variant's.
#[test]
fn every_external_image_is_pinned_by_tag_and_digest() {
    let all = dockerfiles();
    let paths: Vec<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths.len(),
        variants().len() + 1,
        "the compile file and one per variant: {paths:?}"
    );
    assert!(paths.contains(&COMPILE_FILE));
    for (path, text) in &all {
        let mut images = Vec::new();
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
            images.push(name.to_string());
            let (reference, digest) = value
                .split_once("@sha256:")
                .unwrap_or_else(|| panic!("{path}: {name} is not pinned by digest"));
            assert!(
                digest.len() == 64
                    && digest
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                "{path}: {name} digest"
            );
            let last = reference.rsplit('/').next().unwrap();
            assert!(
                last.contains(':'),
                "{path}: {name} names a tag too (for Dependabot and humans)"
            );
        }
        let required: &[&str] = if path == COMPILE_FILE {
            &["BUILDER_IMAGE"]
        } else {
            &["PRODUCTION_BASE", "CI_BASE"]
        };
        assert_eq!(images, required, "{path}: the pinned ARGs");
        // Every FROM is an earlier stage, scratch, a stage chosen by an ARG,
        // or one of those pinned ARGs; every COPY --from an earlier stage or
        // the named context `binaries`.
        let mut stages: Vec<String> = Vec::new();
        for line in xtask::project::logical_lines(text) {
            let words: Vec<&str> = line
                .split_whitespace()
                .filter(|w| !w.starts_with("--platform"))
                .collect();
            if words[0] == "FROM" {
                let image = words[1];
                assert!(
                    image.starts_with("${")
                        || image == "scratch"
                        || stages.iter().any(|s| s == image)
                        || image.starts_with("base-${")
                        || image.starts_with("compile-tools-${"),
                    "{path}: FROM {image} must come from a pinned ARG or an earlier stage"
                );
                if let [_, _, as_word, name] = words[..] {
                    assert!(as_word.eq_ignore_ascii_case("AS"), "{path}: {line}");
                    stages.push(name.to_string());
                }
            }
            for from in words.iter().filter_map(|w| w.strip_prefix("--from=")) {
                assert!(
                    stages.iter().any(|s| s == from) || from == xtask::plan::BINARIES_CONTEXT,
                    "{path}: {line} copies from neither an earlier stage nor the binaries context"
                );
            }
        }
    }
}

/// The final stage, where CI and production meet, is the same text in every
/// variant (but for the variant's name): the paths cannot drift apart. It
/// copies the service out of the named context `binaries` (the compile
/// file's result, or host-built binaries) and runs nothing; the labels are
/// the plan's (plan/ci.rs, plan/release.rs), written once. A variant's
/// Dockerfile is its bases and that stage: it compiles nothing and reads
/// nothing from the build context.
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
    assert!(
        text.contains(
            "COPY --from=binaries --chmod=0555 /linux-${TARGETARCH}/beacon /usr/local/bin/beacon"
        ),
        "the binary comes from the binaries context, the compile file's layout"
    );
    assert!(
        !text.contains("LABEL "),
        "the labels are the plan's, for both paths"
    );
    for variant in variants() {
        let text = read(format!("images/{variant}/Dockerfile"));
        assert!(
            text.contains("ARG IMAGE_FLAVOR=production"),
            "{variant}: production is the default"
        );
        let stages = stages(&text);
        assert_eq!(
            stages.keys().collect::<Vec<_>>(),
            ["base-ci", "base-production", "final"],
            "{variant}: its bases and the final stage"
        );
        assert!(
            !stages["base-production"].join("\n").contains("RUN "),
            "{variant}: the production base stage runs nothing"
        );
        for line in xtask::project::logical_lines(&text) {
            assert!(
                !line.contains("BUILDER_IMAGE")
                    && !line.contains("compile-service.sh")
                    && !line.contains("--mount="),
                "{variant}: compiles nothing ({line})"
            );
            assert!(
                !(line.starts_with("COPY ") || line.starts_with("ADD "))
                    || line.contains("--from="),
                "{variant}: reads nothing from the build context ({line})"
            );
        }
    }
}

/// The stages of a Dockerfile by name: the logical lines from its `FROM ... AS NAME`
/// up to the next `FROM`.
fn stages(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut stages: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in xtask::project::logical_lines(text) {
        if line.starts_with("FROM ") {
            current = line.split_whitespace().last().map(String::from);
        }
        if let Some(name) = &current {
            stages.entry(name.clone()).or_default().push(line);
        }
    }
    stages
}

/// The compile stages are written once, in the compile file, which no
/// variant is: they run on the build platform (cross-compiling, never under
/// emulation), and its last stage holds the binaries every variant's
/// `binaries` context takes (`plan::COMPILE_STAGE`).
#[test]
fn the_compile_stages_are_written_once() {
    let text = compile_file();
    assert!(
        !variants()
            .iter()
            .any(|v| xtask::project::dockerfile_path(v) == COMPILE_FILE),
        "the compile file is no variant"
    );
    assert!(
        text.contains("ARG IMAGE_FLAVOR=production"),
        "production binaries are the default"
    );
    for stage in ["fetch", "toolchain"] {
        assert!(
            text.contains(&format!(
                "FROM --platform=$BUILDPLATFORM ${{BUILDER_IMAGE}} AS {stage}"
            )),
            "{stage} runs on the build platform"
        );
    }
    for chain in [
        "FROM toolchain AS cargo-tools",
        "FROM toolchain AS deps",
        "FROM deps AS compile-tools-production",
        "FROM deps AS compile-tools-ci",
        "FROM compile-tools-${IMAGE_FLAVOR} AS compile",
        "FROM scratch AS binaries",
    ] {
        assert!(
            text.contains(chain),
            "compile on the build platform ({chain})"
        );
    }
    assert!(text.contains("--mount=type=cache"), "cache mounts");
    let stages = stages(&text);
    assert_eq!(
        stages[xtask::plan::COMPILE_STAGE],
        [
            format!("FROM scratch AS {}", xtask::plan::COMPILE_STAGE),
            "COPY --from=compile /out/ /".to_string()
        ],
        "the result: /linux-ARCH/beacon of every target"
    );
    let last = xtask::project::logical_lines(&text)
        .into_iter()
        .rfind(|l| l.starts_with("FROM "))
        .unwrap();
    assert!(
        last.ends_with(&format!(" AS {}", xtask::plan::COMPILE_STAGE)),
        "the binaries are the default target: {last}"
    );
}

/// The compile file's stages are those the plan knows (`plan::COMPILE_STAGES`),
/// and the build args it reads are those the plan gives the compile's own
/// build (`plan::COMPILE_STAGE_ARGS`, and those the policy sets): an arg
/// missing from the list would be dropped.
#[test]
fn the_compile_stages_read_only_the_args_the_plan_knows() {
    let policy_args = [
        "IMAGE_FLAVOR",
        "CARGO_PROFILE",
        "TARGET_ARCHES",
        "SOURCE_DATE_EPOCH",
    ];
    let expected: BTreeSet<String> = xtask::plan::COMPILE_STAGE_ARGS
        .iter()
        .chain(policy_args.iter())
        .map(|s| s.to_string())
        .collect();
    let lines = xtask::project::logical_lines(&compile_file());
    let first_from = lines.iter().position(|l| l.starts_with("FROM ")).unwrap();
    for global in xtask::project::global_arg_defaults(&compile_file()).keys() {
        assert!(expected.contains(global), "global ARG {global}");
    }
    let stage_names: Vec<&str> = lines[first_from..]
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(stage_names, xtask::plan::COMPILE_STAGES);
    let mut read_args = BTreeSet::new();
    for line in &lines[first_from..] {
        if let Some(declared) = line.strip_prefix("ARG ") {
            let name = declared.split(['=', ' ']).next().unwrap();
            read_args.insert(name.to_string());
        } else if line.starts_with("FROM ") {
            for part in line.split("${").skip(1) {
                let name = part.split('}').next().unwrap();
                read_args.insert(name.to_string());
            }
        }
    }
    assert_eq!(read_args, expected);
}

/// The ARGs a Dockerfile declares, globally or in a stage.
fn declared_args(text: &str) -> BTreeSet<String> {
    xtask::project::logical_lines(text)
        .iter()
        .filter_map(|l| l.strip_prefix("ARG "))
        .flat_map(|declared| declared.split_whitespace())
        .map(|word| word.split('=').next().unwrap().to_string())
        .collect()
}

/// The plain build of docs/building.md (two `docker buildx build` commands,
/// without the tool) is in step with the files: the compile file's stage
/// that holds the binaries, written where the variant's `binaries` context
/// reads them, a variant's Dockerfile, and only build args those files
/// declare.
#[test]
fn the_docs_build_a_variant_by_hand_with_the_files_as_they_are() {
    let building = read("docs/building.md");
    let section = building
        .split("\n## Build one variant by hand\n")
        .nth(1)
        .expect("docs/building.md: a section \"Build one variant by hand\"");
    let section = section.split("\n#").next().unwrap();
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the commands, in a sh block");
    let mut commands = Vec::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[..3], ["docker", "buildx", "build"], "{line}");
        assert_eq!(
            words.last(),
            Some(&"."),
            "the repository root is the context: {line}"
        );
        let mut flags: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut rest = words[3..words.len() - 1].iter();
        while let Some(flag) = rest.next() {
            match *flag {
                "--load" => {
                    flags.entry(flag).or_default();
                }
                "-f" | "--target" | "--output" | "--build-context" | "--build-arg" | "--tag" => {
                    let value = rest
                        .next()
                        .unwrap_or_else(|| panic!("{flag} needs a value: {line}"));
                    flags.entry(flag).or_default().push(value);
                }
                _ => panic!("a flag this test does not know, {flag}: {line}"),
            }
        }
        commands.push((line, flags));
    }
    assert_eq!(commands.len(), 2, "compile, then the variant: {block}");
    let (compile, image) = (&commands[0].1, &commands[1].1);
    assert_eq!(compile["-f"], [COMPILE_FILE]);
    assert_eq!(compile["--target"], [xtask::plan::COMPILE_STAGE]);
    assert!(stages(&compile_file()).contains_key(xtask::plan::COMPILE_STAGE));
    let dest = compile["--output"][0]
        .strip_prefix("type=local,dest=")
        .expect("the binaries go to a directory");
    let dockerfile = image["-f"][0];
    assert!(
        variants()
            .iter()
            .any(|v| xtask::project::dockerfile_path(v) == dockerfile),
        "{dockerfile} is a variant's"
    );
    assert_eq!(
        image["--build-context"],
        [format!("{}={dest}", xtask::plan::BINARIES_CONTEXT)],
        "the variant reads its binaries where the compile wrote them"
    );
    for (line, flags) in &commands {
        let text = read(flags["-f"][0]);
        for arg in flags.get("--build-arg").into_iter().flatten() {
            let key = arg.split('=').next().unwrap();
            assert!(
                declared_args(&text).contains(key),
                "{line}: {key} is no ARG of the file"
            );
        }
    }
    // The build args the section's text adds are those of the compile file
    // or of every variant.
    let compile_args = declared_args(&compile_file());
    let mentioned: Vec<&str> = section
        .split("--build-arg ")
        .skip(1)
        .map(|rest| rest.split('=').next().unwrap())
        .collect();
    assert!(mentioned.len() >= 4, "{mentioned:?}");
    for key in mentioned {
        assert!(
            compile_args.contains(key)
                || variants().iter().all(|v| {
                    declared_args(&read(xtask::project::dockerfile_path(v))).contains(key)
                }),
            "docs/building.md's plain build names --build-arg {key}, which no file declares"
        );
    }
}

/// The dependency layers are keyed only by what determines them: `fetch`
/// copies only the manifests and Cargo.lock, `deps` leaves the compiled
/// dependencies in its layer (`/deps-target`: cache mounts are in no
/// exported cache), and only `compile` sees the service's sources.
#[test]
fn dependencies_compile_in_layers_of_their_own() {
    let script = read("images/compile-service.sh");
    assert!(
        script.contains("cp -a \"target/$dir\" /deps-target/")
            && script.contains("cp -a /deps-target/. target/"),
        "deps copies its result into the layer, build seeds its cache mount from it"
    );
    let stages = stages(&compile_file());
    let copies = |stage: &str| -> Vec<String> {
        stages[stage]
            .iter()
            .filter(|l| l.starts_with("COPY "))
            .cloned()
            .collect()
    };
    assert_eq!(
        copies("fetch"),
        [
            "COPY Cargo.toml Cargo.lock ./",
            "COPY service/Cargo.toml service/",
            "COPY xtask/Cargo.toml xtask/"
        ],
        "{COMPILE_FILE}: fetch sees only the manifests and Cargo.lock"
    );
    assert_eq!(
        copies("deps"),
        ["COPY --from=fetch /src/ /src/"],
        "{COMPILE_FILE}"
    );
    assert_eq!(
        copies("compile"),
        ["COPY service/src/ /src/service/src/"],
        "{COMPILE_FILE}"
    );
    for stage in ["cargo-tools", "toolchain", "fetch", "deps"] {
        let text = stages[stage].join("\n");
        assert!(
            !text.contains("SOURCE_DATE_EPOCH"),
            "{COMPILE_FILE}: stage {stage} must not depend on the commit time"
        );
        assert!(
            !text.contains("target=/deps-target"),
            "{COMPILE_FILE}: stage {stage} must leave /deps-target in its layer, not in a mount"
        );
    }
    for stage in ["cargo-tools", "toolchain", "fetch"] {
        assert!(
            !stages[stage].iter().any(|l| l.contains("type=cache")),
            "{COMPILE_FILE}: stage {stage} must leave its result in its layer, not a cache mount"
        );
    }
    // No compile stage reads the platform it is built for: every platform
    // of a build has the same steps, which BuildKit runs once, each
    // compiling every target of TARGET_ARCHES (set from --platform).
    for stage in ["fetch", "toolchain", "cargo-tools", "deps", "compile"] {
        let text = stages[stage].join("\n");
        assert!(
            !text.contains("TARGETARCH")
                && !text.contains("TARGETPLATFORM")
                && !text.contains("TARGETOS")
                && !text.contains("TARGETVARIANT"),
            "{COMPILE_FILE}: stage {stage} is the same step for every target platform"
        );
    }
    assert!(
        !stages["fetch"].join("\n").contains("TARGET"),
        "{COMPILE_FILE}: fetch is the same for every set of targets"
    );
    for stage in ["toolchain", "deps", "compile"] {
        assert!(
            stages[stage]
                .iter()
                .any(|l| l == "ARG TARGET_ARCHES=\"amd64 arm64\""),
            "{COMPILE_FILE}: {stage} compiles the targets cargo xtask lists (both by default)"
        );
    }
    for (stage, id) in [
        ("deps", "beacon-deps-${CARGO_PROFILE}"),
        ("compile", "beacon-target-${CARGO_PROFILE}-${TARGET_ARCHES}"),
    ] {
        let text = stages[stage].join("\n");
        assert!(
            text.contains(&format!("--mount=type=cache,id={id},target=/src/target")),
            "{COMPILE_FILE}: {stage} compiles in its own cache mount ({id})"
        );
    }
}

/// The build context holds only what the compile stages read (the variants'
/// Dockerfiles read nothing from it): an xtask, README or workflow change
/// never reruns them.
#[test]
fn the_build_context_is_only_what_the_compile_stages_read() {
    let ignore = read(".dockerignore");
    let rules: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(rules.first(), Some(&"*"), "everything is excluded first");
    let included: Vec<&str> = rules[1..]
        .iter()
        .map(|r| r.strip_prefix('!').expect("only re-inclusions after `*`"))
        .collect();
    assert_eq!(
        included,
        [
            "Cargo.toml",
            "Cargo.lock",
            "service/Cargo.toml",
            "service/src",
            "xtask/Cargo.toml",
            "images/compile-service.sh"
        ]
    );
    for (path, text) in dockerfiles() {
        for line in xtask::project::logical_lines(&text) {
            let mut sources: Vec<String> = Vec::new();
            if let Some(copy) = line.strip_prefix("COPY ") {
                let words: Vec<&str> = copy.split_whitespace().collect();
                if !words.iter().any(|w| w.starts_with("--from=")) {
                    let paths: Vec<&str> = words
                        .iter()
                        .filter(|w| !w.starts_with("--"))
                        .copied()
                        .collect();
                    sources.extend(paths[..paths.len() - 1].iter().map(|p| p.to_string()));
                }
            }
            for mount in line.split("--mount=").skip(1) {
                let mount = mount.split_whitespace().next().unwrap_or_default();
                if mount.starts_with("type=bind") && !mount.contains("from=") {
                    let source = mount
                        .split(',')
                        .find_map(|f| f.strip_prefix("source="))
                        .expect("a bind mount of the context names its source");
                    sources.push(source.to_string());
                }
            }
            for source in sources {
                let source = source.trim_end_matches('/');
                assert!(
                    included
                        .iter()
                        .any(|i| source == *i || source.starts_with(&format!("{i}/"))),
                    "{path}: {source} is read by the build but not in .dockerignore's list"
                );
            }
        }
    }
}

/// Release builds install nothing unpinned: the compile script's only
/// `apt-get install` (the cross linker, when the builder image lacks it)
/// names exact versions from build args pinned to a Debian snapshot, and the
/// Dockerfiles install no Debian package themselves. The compile stage's
/// cargo-auditable is an exact version, installed `--locked`.
#[test]
fn the_compile_stages_install_only_pinned_versions() {
    let script = read("images/compile-service.sh");
    let installs: Vec<&str> = script
        .lines()
        .filter(|l| l.contains("apt-get") && l.contains(" install"))
        .collect();
    assert_eq!(installs.len(), 1, "{installs:?}");
    assert!(
        installs[0].trim_end().ends_with("$packages"),
        "{}",
        installs[0]
    );
    let packages: Vec<&str> = script
        .lines()
        .filter_map(|l| l.trim().split_once(") packages=\"").map(|(_, p)| p))
        .flat_map(|p| {
            p.trim_end_matches(" ;;")
                .trim_end_matches('"')
                .split_whitespace()
        })
        .collect();
    assert!(packages.len() >= 4, "{packages:?}");
    for package in packages {
        let (_, version) = package
            .split_once('=')
            .unwrap_or_else(|| panic!("{package} is installed without a version"));
        assert!(
            version.starts_with("${CROSS_") && version.ends_with("_VERSION:?}"),
            "{package}"
        );
    }
    assert!(
        script.contains("-o Dir::Etc::SourceParts=-"),
        "only the pinned source is read"
    );
    for (path, text) in dockerfiles() {
        assert!(
            !text.contains("apt-get"),
            "{path}: no apt-get in the Dockerfile"
        );
    }
    let text = compile_file();
    let args = xtask::project::global_arg_defaults(&text);
    assert!(
        args["CROSS_APT_MIRROR"].starts_with("http://snapshot.debian.org/archive/debian/20"),
        "{COMPILE_FILE}: the cross linker comes from a pinned snapshot"
    );
    for arg in ["CROSS_GCC_VERSION", "CROSS_LIBC_VERSION"] {
        assert!(
            args[arg].chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{COMPILE_FILE}: {arg} is an exact version"
        );
    }
    let auditable = text
        .lines()
        .find_map(|l| l.strip_prefix("ARG CARGO_AUDITABLE_VERSION="))
        .unwrap_or_else(|| panic!("{COMPILE_FILE}: no ARG CARGO_AUDITABLE_VERSION"));
    assert!(
        auditable.split('.').count() == 3
            && auditable
                .split('.')
                .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())),
        "{COMPILE_FILE}: cargo-auditable is pinned to an exact version, not {auditable:?}"
    );
    assert!(
        text.contains("cargo install --debug --locked")
            && text.contains("--version \"${CARGO_AUDITABLE_VERSION}\""),
        "{COMPILE_FILE}: cargo-auditable installs --locked at the pinned version"
    );
}

/// Every `.rs` file under a directory, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The lines of a source file that are not test code: everything but the
/// items behind `#[cfg(test)]` (a `mod tests { ... }` block, skipped to its
/// closing brace, or a one-line item), wherever in the file they are; none
/// of a file that is test code as a whole (`#![cfg(test)]`: the tests of a
/// module, in a file of their own).
fn non_test_lines(text: &str) -> Vec<(usize, &str)> {
    if text.lines().any(|l| l.trim() == "#![cfg(test)]") {
        return Vec::new();
    }
    let mut lines = Vec::new();
    let mut skipping_next_item = false;
    let mut depth: i64 = 0;
    let mut in_test_block = false;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if in_test_block {
            depth += line.matches('{').count() as i64 - line.matches('}').count() as i64;
            if depth <= 0 {
                in_test_block = false;
            }
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            skipping_next_item = true;
            continue;
        }
        if skipping_next_item {
            if trimmed.starts_with("#[") || trimmed.is_empty() {
                continue;
            }
            skipping_next_item = false;
            depth = line.matches('{').count() as i64 - line.matches('}').count() as i64;
            in_test_block = depth > 0;
            continue;
        }
        lines.push((number + 1, line));
    }
    lines
}

/// The files of a source tree that are test code as a whole: the modules a
/// `#[cfg(test)] mod NAME;` declares (`NAME.rs` or `NAME/mod.rs`, beside a
/// `mod.rs` or `lib.rs`, else in the folder named after the declaring file)
/// and every file under them.
fn test_only_files(src: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    for path in rust_files(src) {
        let text = std::fs::read_to_string(&path).unwrap();
        let parent = path.parent().unwrap();
        let stem = path.file_stem().unwrap().to_string_lossy();
        let dir = match stem.as_ref() {
            "mod" | "lib" | "main" => parent.to_path_buf(),
            other => parent.join(other),
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            if *line != "#[cfg(test)]" {
                continue;
            }
            let declared = lines[i + 1..]
                .iter()
                .find(|l| !l.starts_with("#["))
                .and_then(|l| l.split_once("mod "))
                .and_then(|(_, rest)| rest.strip_suffix(';'));
            let Some(name) = declared else { continue };
            let file = dir.join(format!("{name}.rs"));
            if file.is_file() {
                found.insert(file);
            }
            if dir.join(name).is_dir() {
                found.extend(rust_files(&dir.join(name)));
            }
        }
    }
    found
}

/// The lines of a file under xtask/src that are not test code: none of a
/// test-only file, else [`non_test_lines`].
fn code_lines<'a>(path: &Path, text: &'a str) -> Vec<(usize, &'a str)> {
    static TEST_ONLY: std::sync::OnceLock<BTreeSet<PathBuf>> = std::sync::OnceLock::new();
    let test_only = TEST_ONLY.get_or_init(|| test_only_files(&root().join("xtask/src")));
    if test_only.contains(path) {
        Vec::new()
    } else {
        non_test_lines(text)
    }
}

#[test]
fn test_modules_in_files_of_their_own_are_test_code() {
    let found = test_only_files(&root().join("xtask/src"));
    let src = root().join("xtask/src");
    for file in [
        "commands/prune/select/tests.rs",
        "commands/prune/cache/tests.rs",
    ] {
        assert!(found.contains(&src.join(file)), "{file}: {found:?}");
    }
    assert!(!found.contains(&src.join("commands/prune/select.rs")));
}

#[test]
fn non_test_lines_skip_test_items_anywhere() {
    let text = "fn a() {}\n#[cfg(test)]\nmod tests {\n    fn t() { x.unwrap(); }\n}\nfn b() { y.unwrap(); }\n#[cfg(test)]\nuse foo;\n";
    let kept: Vec<&str> = non_test_lines(text).into_iter().map(|(_, l)| l).collect();
    assert_eq!(kept, ["fn a() {}", "fn b() { y.unwrap(); }"]);
    let whole = "//! Tests of the module.\n#![cfg(test)]\nfn t() { x.unwrap(); }\n";
    assert!(non_test_lines(whole).is_empty());
}

/// No `unwrap`/`expect` outside tests (rust-analyzer's rule, ours too): every
/// non-test line of every file of both crates, module directories included.
#[test]
fn no_unwrap_outside_tests() {
    let mut offenders = Vec::new();
    let mut checked = 0;
    for path in rust_files(&root().join("xtask/src"))
        .into_iter()
        .chain(rust_files(&root().join("service/src")))
    {
        let shown = path.strip_prefix(root()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for (number, line) in code_lines(&path, &text) {
            checked += 1;
            if (line.contains(".unwrap()") || line.contains(".expect("))
                && !line.trim_start().starts_with("//")
            {
                offenders.push(format!("{shown}:{number}: {}", line.trim()));
            }
        }
    }
    assert!(checked > 1000, "only {checked} lines checked");
    assert!(
        offenders.is_empty(),
        "unwrap/expect outside tests:\n{}",
        offenders.join("\n")
    );
}

/// The layers of xtask/src, bottom first (see lib.rs and ARCHITECTURE.md):
/// a module imports only from its own layer or those below it, and no
/// modules import each other in a cycle (a folder counts as one module).
const LAYERS: &[&[&str]] = &[
    &["model"],
    &["client"],
    &["context", "project", "preflight"],
    &["plan"],
    &["render", "report"],
    &["exec"],
    &["ops"],
    &["commands"],
    &["cli"],
    &["lib", "main"],
];

/// The top-level module a file of xtask/src belongs to.
fn module_of(path: &Path) -> String {
    let relative = path.strip_prefix(root().join("xtask/src")).unwrap();
    let first = relative
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// The top-level modules a piece of code names through `crate::` (or
/// `xtask::` from the binary), including `use crate::{a, b::c}` groups.
fn imported_modules(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: after `{` or a `,` at depth 0.
            let mut depth = 0;
            let mut name = String::new();
            let mut expecting = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !name.is_empty() {
                            found.insert(std::mem::take(&mut name));
                        }
                        expecting = true;
                    }
                    c if expecting && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ if expecting && !name.is_empty() => {
                        found.insert(std::mem::take(&mut name));
                        expecting = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                found.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn imports_are_read_from_groups_and_paths() {
    let code = "use crate::{bench, plan::{cache::X, Y}, model};\nlet x = crate::exec::run();\nuse notcrate::z;";
    let found: Vec<String> = imported_modules(code, "crate::").into_iter().collect();
    assert_eq!(found, ["bench", "exec", "model", "plan"]);
}

#[test]
fn imports_run_one_way() {
    let rank = |module: &str| {
        LAYERS
            .iter()
            .position(|layer| layer.contains(&module))
            .unwrap_or_else(|| {
                panic!(
                    "module {module} is in no layer of tidy.rs's LAYERS: add it where it belongs"
                )
            })
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for path in rust_files(&root().join("xtask/src")) {
        let module = module_of(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        let code: String = code_lines(&path, &text)
            .into_iter()
            .map(|(_, line)| line.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let prefix = if module == "main" {
            "xtask::"
        } else {
            "crate::"
        };
        for target in imported_modules(&code, prefix) {
            if target == module {
                continue;
            }
            if rank(&target) > rank(&module) {
                upward.push(format!(
                    "{} imports {target}, a layer above it",
                    path.strip_prefix(root()).unwrap().display()
                ));
            }
            edges.entry(module.clone()).or_default().insert(target);
        }
    }
    assert!(upward.is_empty(), "{}", upward.join("\n"));
    assert!(edges.len() > 10, "too few modules seen: {edges:?}");
    // No cycle, even inside a layer.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

/// Commands are leaves: no command (a file or folder under
/// xtask/src/commands/) imports another, whether by `crate::commands::X`,
/// `super::X` or a `use crate::commands::{..}` group. What several commands
/// share lives in a layer below them (`ops`, `exec`, ...).
#[test]
fn commands_are_leaves() {
    let dir = root().join("xtask/src/commands");
    let command_of = |path: &Path| -> String {
        let relative = path.strip_prefix(&dir).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        first.to_string_lossy().trim_end_matches(".rs").to_string()
    };
    let commands: BTreeSet<String> = rust_files(&dir)
        .iter()
        .map(|p| command_of(p))
        .filter(|c| c != "mod")
        .collect();
    assert!(commands.len() >= 12, "too few commands seen: {commands:?}");
    let mut offenders = Vec::new();
    for path in rust_files(&dir) {
        let command = command_of(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        let code: String = code_lines(&path, &text)
            .into_iter()
            .map(|(_, line)| line.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let mut named = imported_modules(&code, "crate::commands::");
        // `super::X` from a command's own file is a sibling command.
        if path.parent() == Some(dir.as_path()) {
            named.extend(imported_modules(&code, "super::"));
        }
        for other in named {
            if other != command && commands.contains(&other) {
                offenders.push(format!(
                    "{} imports the command {other}",
                    path.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

/// Below the command line, no module knows clap.
#[test]
fn no_clap_below_the_cli() {
    for path in rust_files(&root().join("xtask/src")) {
        let module = module_of(&path);
        if ["cli", "main"].contains(&module.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("clap::") && !text.contains("use clap"),
            "{} uses clap: only cli.rs may",
            path.display()
        );
    }
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

/// The README's two commands are a promise: the main job and the tests, and
/// `.ci/run` runs the README's test command. (Every `cargo xtask` line of the
/// README and the other documents is run through the real CLI by
/// `tests/workflows.rs`, with the workflows' own lines.)
#[test]
fn readme_gives_the_two_commands_and_ci_runs_the_test_one() {
    let readme = read("README.md");
    assert!(
        readme.contains("\ncargo xtask ci-image\n"),
        "the main job command"
    );
    assert!(readme.contains("\ncargo xtask test\n"), "the test command");
    assert!(
        read(".ci/run")
            .lines()
            .map(str::trim)
            // As written in the README, its status kept (`|| status=$?`).
            .any(|l| l == "cargo xtask test" || l.starts_with("cargo xtask test || ")),
        ".ci/run runs the README's test command"
    );
}

/// Source text with comments, string and char literals blanked out (their
/// newlines kept, so line numbers hold), for scanning braces and keywords:
/// `//` and nested `/* */` comments, `"..."` and `b"..."` strings with their
/// escapes, raw strings (`r#"..."#`), and char literals (`'{'`, `'\''`), told
/// apart from lifetimes and labels (`'a`, `'static`).
fn code_only(text: &str) -> Vec<char> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = chars.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut out[from..to.min(chars.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
        match chars[i] {
            '/' if at(i + 1) == '/' => {
                let end = (i..chars.len())
                    .find(|&k| chars[k] == '\n')
                    .unwrap_or(chars.len());
                blank(&mut out, i, end);
                i = end;
            }
            '/' if at(i + 1) == '*' => {
                let (mut depth, mut k) = (0, i);
                while k < chars.len() {
                    if at(k) == '/' && at(k + 1) == '*' {
                        depth += 1;
                        k += 2;
                    } else if at(k) == '*' && at(k + 1) == '/' {
                        depth -= 1;
                        k += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        k += 1;
                    }
                }
                blank(&mut out, i, k);
                i = k;
            }
            'r' | 'b' if (i == 0 || !ident(at(i - 1))) && raw_string_start(&chars, i).is_some() => {
                let (hashes, open) = raw_string_start(&chars, i).unwrap_or_default();
                let close: Vec<char> = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let mut k = open + 1;
                while k < chars.len() && chars[k..].iter().take(close.len()).ne(close.iter()) {
                    k += 1;
                }
                let end = (k + close.len()).min(chars.len());
                blank(&mut out, open + 1, k);
                i = end;
            }
            '"' => {
                let mut k = i + 1;
                while k < chars.len() && chars[k] != '"' {
                    k += if chars[k] == '\\' { 2 } else { 1 };
                }
                blank(&mut out, i + 1, k);
                i = k + 1;
            }
            '\'' if at(i + 1) == '\\' => {
                // The escaped character may be a quote itself (`'\''`).
                let mut k = i + 3;
                while k < chars.len() && chars[k] != '\'' {
                    k += 1;
                }
                blank(&mut out, i + 1, k);
                i = k + 1;
            }
            '\'' if at(i + 2) == '\'' => {
                blank(&mut out, i + 1, i + 2);
                i += 3;
            }
            c if ident(c) => {
                // A whole word: a `b` or `r` inside one starts no string.
                while i < chars.len() && ident(chars[i]) {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// At `r"`, `r#"`, `br"`, `br#"`...: the number of `#` and where the `"` is.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let mut k = i;
    if chars.get(k) == Some(&'b') {
        k += 1;
    }
    if chars.get(k) != Some(&'r') {
        return None;
    }
    k += 1;
    let hashes = chars[k..].iter().take_while(|c| **c == '#').count();
    (chars.get(k + hashes) == Some(&'"')).then_some((hashes, k + hashes))
}

/// A function of a source file and its length in lines, from its `fn` line
/// to its closing brace.
#[derive(Debug, PartialEq)]
struct Function {
    name: String,
    line: usize,
    lines: usize,
}

/// Where the item starting at `from` ends: its first `;` or the brace that
/// closes its first `{`, outside parentheses and brackets (`[u8; 4]`,
/// attributes). Returns the index of that `;` or `}`, and of the `{` if any.
fn item_end(code: &[char], from: usize) -> Option<(usize, Option<usize>)> {
    let mut nesting = 0i64;
    for k in from..code.len() {
        match code[k] {
            '(' | '[' => nesting += 1,
            ')' | ']' => nesting -= 1,
            ';' if nesting == 0 => return Some((k, None)),
            '{' if nesting == 0 => {
                let mut depth = 0i64;
                for (j, c) in code.iter().enumerate().skip(k) {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => continue,
                    }
                    if depth == 0 {
                        return Some((j, Some(k)));
                    }
                }
                return None;
            }
            _ => {}
        }
    }
    None
}

/// The functions of a Rust source file with a body, outside the items
/// behind `#[cfg(test)]` (a test module, a test helper), nested ones and
/// methods included; fn pointer types and bodiless declarations are not
/// functions.
fn functions(text: &str) -> Vec<Function> {
    let code = code_only(text);
    let line_of = |k: usize| code[..k].iter().filter(|c| **c == '\n').count() + 1;
    let word_at = |k: usize, word: &str| {
        let w: Vec<char> = word.chars().collect();
        code[k..].starts_with(&w)
            && (k == 0 || !(code[k - 1].is_alphanumeric() || code[k - 1] == '_'))
            && code
                .get(k + w.len())
                .is_none_or(|c| !(c.is_alphanumeric() || *c == '_'))
    };
    let cfg_test: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut found = Vec::new();
    let mut k = 0;
    while k < code.len() {
        if code[k..].starts_with(&cfg_test) {
            // Skip the test item, whatever it is.
            match item_end(&code, k + cfg_test.len()) {
                Some((end, _)) => k = end + 1,
                None => break,
            }
            continue;
        }
        if word_at(k, "fn") {
            let rest: String = code[k + 2..].iter().take(200).collect();
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let named = rest.starts_with(char::is_whitespace) && !name.is_empty();
            if let (true, Some((end, Some(_)))) = (named, item_end(&code, k)) {
                let line = line_of(k);
                found.push(Function {
                    name,
                    line,
                    lines: line_of(end) - line + 1,
                });
            }
        }
        k += 1;
    }
    found
}

#[test]
fn functions_are_measured_by_their_braces_not_by_their_text() {
    let text = r##"
fn short() { let s = "}}}"; let c = '{'; let e = '\''; }
fn with_lifetime<'a>(x: &'a str, y: [u8; 4]) -> &'a str {
    // a } in a comment
    /* and { in /* a nested */ block */
    let raw = r#"{ "}" "#;
    let quotes = ['\'','{'];
    x
}
trait T { fn declared(&self); fn defaulted(&self) {} }
type Pointer = fn(&str) -> usize;
#[cfg(test)]
mod tests {
    fn hidden() {}
}
#[cfg(test)]
fn also_hidden() {
}
fn last() {
    let inner = |c| c == '}';
}
"##;
    let found: Vec<(String, usize, usize)> = functions(text)
        .into_iter()
        .map(|f| (f.name, f.line, f.lines))
        .collect();
    let expected = [
        ("short", 2, 1),
        ("with_lifetime", 3, 7),
        ("defaulted", 10, 1),
        ("last", 19, 3),
    ];
    let expected: Vec<(String, usize, usize)> = expected
        .iter()
        .map(|(n, l, c)| (n.to_string(), *l, *c))
        .collect();
    assert_eq!(found, expected);
}

/// The limits of a unit a reader can hold.
const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 80;

/// Files over MAX_FILE_LINES (`(file, "")`) and functions over MAX_FN_LINES
/// outside tests (`(file, "function")`) that were there when the limits
/// came. To be split; this list only shrinks.
const KNOWN_LONG: &[(&str, &str)] = &[];

/// No file under xtask/src over 600 lines (tests included), no function
/// over 80 lines outside tests, but for those in KNOWN_LONG; and every
/// entry of KNOWN_LONG is still too long (a split unit leaves the list).
#[test]
fn units_a_reader_can_hold() {
    let mut long = BTreeMap::new();
    for path in rust_files(&root().join("xtask/src")) {
        let shown = path.strip_prefix(root()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines = text.lines().count();
        if lines > MAX_FILE_LINES {
            long.insert((shown.clone(), String::new()), lines);
        }
        if code_lines(&path, &text).is_empty() {
            continue;
        }
        for function in functions(&text) {
            if function.lines > MAX_FN_LINES {
                long.insert((shown.clone(), function.name), function.lines);
            }
        }
    }
    let known: BTreeSet<(String, String)> = KNOWN_LONG
        .iter()
        .map(|(file, function)| (file.to_string(), function.to_string()))
        .collect();
    let new: Vec<String> = long
        .iter()
        .filter(|(unit, _)| !known.contains(*unit))
        .map(|((file, function), lines)| match function.as_str() {
            "" => format!("{file}: {lines} lines (at most {MAX_FILE_LINES})"),
            name => format!("{file}: fn {name}: {lines} lines (at most {MAX_FN_LINES})"),
        })
        .collect();
    assert!(
        new.is_empty(),
        "split these units (a file by topic, a function into named steps):\n{}",
        new.join("\n")
    );
    let gone: Vec<String> = known
        .iter()
        .filter(|unit| !long.contains_key(*unit))
        .map(|(file, function)| format!("({file:?}, {function:?})"))
        .collect();
    assert!(
        gone.is_empty(),
        "no longer too long: remove from KNOWN_LONG in tests/tidy.rs:\n{}",
        gone.join("\n")
    );
}
