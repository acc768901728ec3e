//! End-to-end tests of `cargo xtask update-bases` against the test stack's
//! registry (XTASK_TEST_REGISTRY, default 127.0.0.1:5000) with a tag that
//! moves: an image is pushed under a tag, a scratch checkout's Dockerfiles
//! pin it, another image is pushed under the same tag; `--check` then fails
//! naming the pin, and `update-bases` rewrites exactly that digest. Images are
//! tiny `FROM scratch` builds pushed by the real BuildKit; the lookups are the
//! tool's own (skopeo). Bad inputs (an unknown tag, an unreachable registry,
//! a mirror that lacks the image, an ARG that cannot be read, a Dockerfile
//! that cannot be written) each end in one line and leave every Dockerfile
//! as it was. The real Dockerfiles are never touched: each test works on a
//! scratch checkout (XTASK_PROJECT_ROOT).
//!
//! These tests fail (they never skip) when the stack is missing: run
//! `.ci/setup-stack` first.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::e2e::{
    argument_error, engine_lock, one_line_error, registry, require_registry, resolve, text,
    tiny_context, unique_label, xtask,
};
use support::TempDir;

/// Builds a tiny image holding `payload` and pushes it as `REGISTRY/REPO:TAG`; returns its digest.
fn push(dir: &Path, repo: &str, tag: &str, payload: &str) -> String {
    let registry = registry();
    let context = tiny_context(dir, &unique_label("ctx"), payload);
    let mut command = Command::new("docker");
    command
        .args([
            "buildx",
            "build",
            "--quiet",
            "--provenance",
            "false",
            "--output",
        ])
        .arg(format!("type=image,name={registry}/{repo}:{tag},push=true"))
        .arg(&context);
    // distribution 2.8 can answer a tag read racing a write of the same tag
    // with "500 Internal Server Error": retry that (and only that) twice.
    let mut out = command.output().expect("docker buildx build");
    for _ in 0..2 {
        if out.status.success() || !text(&out.stderr).contains("500 Internal Server Error") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        out = command.output().expect("docker buildx build");
    }
    assert!(
        out.status.success(),
        "pushing {repo}:{tag} failed: {}",
        text(&out.stderr)
    );
    resolve(&registry, repo, tag).expect("the pushed tag resolves")
}

/// A scratch checkout with `images/<variant>/Dockerfile` for each entry, or
/// `images/<name>` for a shared one (`compile.Dockerfile`).
fn checkout(dir: &Path, dockerfiles: &[(&str, String)]) -> PathBuf {
    let root = dir.join("checkout");
    for (variant, text) in dockerfiles {
        if variant.ends_with(".Dockerfile") {
            std::fs::create_dir_all(root.join("images")).unwrap();
            std::fs::write(root.join("images").join(variant), text).unwrap();
            continue;
        }
        let path = root.join("images").join(variant);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("Dockerfile"), text).unwrap();
    }
    root
}

/// Every Dockerfile of a checkout and its bytes.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(root.join("images")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            for file in std::fs::read_dir(&path).unwrap() {
                paths.push(file.unwrap().path());
            }
        } else {
            paths.push(path);
        }
    }
    for path in paths {
        files.insert(
            path.strip_prefix(root).unwrap().display().to_string(),
            std::fs::read(&path).unwrap(),
        );
    }
    files
}

fn update_bases(root: &Path, args: &[&str]) -> Output {
    let output = xtask()
        .env("XTASK_PROJECT_ROOT", root)
        .env_remove("BASE_IMAGE_MIRRORS")
        .arg("update-bases")
        .args(args)
        .output()
        .expect("run xtask");
    output
}

/// A run that must fail in one line, change no Dockerfile and leave no temporary file.
#[track_caller]
fn refused(root: &Path, args: &[&str], keywords: &[&str]) -> String {
    let before = snapshot(root);
    let output = update_bases(root, args);
    let line = one_line_error(&output);
    for keyword in keywords {
        assert!(line.contains(keyword), "expected {keyword:?} in: {line}");
    }
    assert_eq!(snapshot(root), before, "no Dockerfile may change: {line}");
    line
}

fn dockerfile(pins: &[(&str, &str)]) -> String {
    let mut text = String::from("# A scratch Dockerfile of the update-bases tests.\n");
    for (name, value) in pins {
        text.push_str(&format!("ARG {name}={value}\n"));
    }
    text.push_str("FROM ${BASE}\n");
    text
}

#[test]
fn a_tag_that_moves_is_reported_stale_and_its_pin_rewritten() {
    require_registry(&registry());
    let _engine = engine_lock();
    let dir = TempDir::new("update-bases-moves");
    let registry = registry();
    let repo = format!("e2e/update-bases/{}", unique_label("moves"));
    let first = push(dir.path(), &repo, "moving", "first\n");
    let steady = push(dir.path(), &repo, "steady", "steady\n");
    let image = format!("{registry}/{repo}");
    // Two variants' Dockerfiles: one pin on a plain line, one after a
    // continuation, one that never moves; the other holds the same moving
    // pin, and so does a shared one (images/compile.Dockerfile, no variant).
    let alpha = format!(
        "# escape=\\\nARG BASE={image}:moving@{first} \\\n    # the tag that moves\n    STEADY_BASE=\"{image}:steady@{steady}\"\nARG PLAIN=nothing\nFROM ${{BASE}}\n"
    );
    let beta = dockerfile(&[("BASE", &format!("{image}:moving@{first}"))]);
    let compile = dockerfile(&[("BUILDER_IMAGE", &format!("{image}:moving@{first}"))]);
    let root = checkout(
        dir.path(),
        &[
            ("alpha", alpha.clone()),
            ("beta", beta.clone()),
            ("compile.Dockerfile", compile.clone()),
        ],
    );

    let output = update_bases(&root, &["--check"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report = text(&output.stdout);
    assert!(
        report.contains("all 4 pinned images are current"),
        "{report}"
    );

    let second = push(dir.path(), &repo, "moving", "second\n");
    assert_ne!(first, second, "the tag moved");

    let line = refused(
        &root,
        &["--check"],
        &[
            "3 of 4 pinned images are stale",
            &format!("images/alpha/Dockerfile:2 BASE {image}:moving ({first} -> {second})"),
            &format!("images/beta/Dockerfile:2 BASE {image}:moving ({first} -> {second})"),
            &format!(
                "images/compile.Dockerfile:2 BUILDER_IMAGE {image}:moving ({first} -> {second})"
            ),
            "run `cargo xtask update-bases`",
        ],
    );
    assert!(!line.contains("STEADY_BASE"), "{line}");

    let output = update_bases(&root, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report = text(&output.stdout);
    assert!(
        report.contains("updated 3 of 4 pinned images in 3 Dockerfile(s)")
            && report.contains(&format!(
                "images/alpha/Dockerfile:4 STEADY_BASE {image}:steady: current"
            )),
        "{report}"
    );
    // Exactly the digests changed, byte for byte.
    let after = snapshot(&root);
    assert_eq!(
        String::from_utf8(after["images/alpha/Dockerfile"].clone()).unwrap(),
        alpha.replace(&first, &second)
    );
    assert_eq!(
        String::from_utf8(after["images/beta/Dockerfile"].clone()).unwrap(),
        beta.replace(&first, &second)
    );
    assert_eq!(
        String::from_utf8(after["images/compile.Dockerfile"].clone()).unwrap(),
        compile.replace(&first, &second)
    );
    assert_eq!(
        after.len(),
        3,
        "no temporary file is left: {:?}",
        after.keys()
    );
    let output = update_bases(&root, &["--check"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// A scratch checkout pinning an image of a registry that does not exist
/// here (UNREACHABLE), and a mirror namespace under the test registry that
/// holds the image (its digest: `first`).
struct Mirrored {
    dir: TempDir,
    root: PathBuf,
    namespace: String,
    first: String,
}

const UNREACHABLE: &str = "registry.invalid/chainguard/static";

fn mirrored(label: &str) -> Mirrored {
    require_registry(&registry());
    let dir = TempDir::new(&format!("update-bases-{label}"));
    let namespace = format!("e2e/update-bases/{}", unique_label(label));
    let first = push(
        dir.path(),
        &format!("{namespace}/static"),
        "latest",
        "one\n",
    );
    let root = checkout(
        dir.path(),
        &[(
            "alpha",
            dockerfile(&[("BASE", &format!("{UNREACHABLE}:latest@{first}"))]),
        )],
    );
    Mirrored {
        dir,
        root,
        namespace,
        first,
    }
}

impl Mirrored {
    /// `registry.invalid/chainguard=REGISTRY/NAMESPACE`.
    fn mirror(&self) -> String {
        format!(
            "registry.invalid/chainguard={}/{}",
            registry(),
            self.namespace
        )
    }
}

/// Without a mirror, a pin of a registry that cannot be reached is refused
/// in one line that names the way out (`--mirror`).
#[test]
fn a_registry_that_cannot_be_reached_is_refused_naming_the_mirror_flag() {
    let _engine = engine_lock();
    let mirrored = mirrored("unreachable");
    refused(
        &mirrored.root,
        &["--check"],
        &[
            "cannot resolve registry.invalid/chainguard/static:latest",
            "cannot reach registry registry.invalid",
            "--mirror PREFIX=MIRROR",
        ],
    );
}

/// A mirror answers for a registry that cannot be reached: `--check`
/// passes, `--dry-run` names the mirror's lookup, and a rewrite keeps the
/// pin's name with the mirror's digest.
#[test]
fn a_mirror_answers_for_a_registry_that_cannot_be_reached() {
    let _engine = engine_lock();
    let mirrored = mirrored("mirror");
    let (root, mirror, namespace) = (&mirrored.root, mirrored.mirror(), &mirrored.namespace);
    let registry = registry();
    let output = update_bases(root, &["--check", "--mirror", &mirror]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let dry = update_bases(root, &["--dry-run", "--mirror", &mirror]);
    assert_eq!(
        text(&dry.stdout).trim(),
        format!(
            "skopeo inspect --raw --tls-verify=false docker://{registry}/{namespace}/static:latest"
        )
    );
    let second = push(
        mirrored.dir.path(),
        &format!("{namespace}/static"),
        "latest",
        "two\n",
    );
    assert_ne!(mirrored.first, second, "the tag moved");
    let output = update_bases(root, &["--mirror", &mirror]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let written = String::from_utf8(snapshot(root)["images/alpha/Dockerfile"].clone()).unwrap();
    assert!(
        written.contains(&format!("ARG BASE={UNREACHABLE}:latest@{second}\n")),
        "the pin keeps its name and gets the mirror's digest:\n{written}"
    );
}

/// A mirror that lacks the image says so, and how to fill it.
#[test]
fn a_mirror_that_lacks_the_image_is_refused() {
    let _engine = engine_lock();
    let mirrored = mirrored("mirror-empty");
    let registry = registry();
    let namespace = &mirrored.namespace;
    let empty = format!("registry.invalid/chainguard={registry}/{namespace}-empty");
    refused(
        &mirrored.root,
        &["--mirror", &empty],
        &[
            &format!("the mirror {empty} has no {registry}/{namespace}-empty/static:latest"),
            "skopeo copy --all",
            "drop that --mirror",
        ],
    );
}

/// BASE_IMAGE_MIRRORS works like `--mirror`.
#[test]
fn the_mirror_environment_variable_works_like_the_flag() {
    let _engine = engine_lock();
    let mirrored = mirrored("mirror-env");
    let output = xtask()
        .env("XTASK_PROJECT_ROOT", &mirrored.root)
        .env("BASE_IMAGE_MIRRORS", mirrored.mirror())
        .args(["update-bases", "--check"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// A repository under the test registry whose tag `moving` was pushed twice:
/// (scratch dir, image, the first digest, the stale pin's Dockerfile).
fn moved(label: &str) -> (TempDir, String, String, (&'static str, String)) {
    require_registry(&registry());
    let dir = TempDir::new(&format!("update-bases-{label}"));
    let repo = format!("e2e/update-bases/{}", unique_label(label));
    let first = push(dir.path(), &repo, "moving", "first\n");
    let _second = push(dir.path(), &repo, "moving", "second\n");
    let image = format!("{}/{repo}", registry());
    // alpha's pin is stale and would be rewritten.
    let stale = (
        "alpha",
        dockerfile(&[("BASE", &format!("{image}:moving@{first}"))]),
    );
    (dir, image, first, stale)
}

/// alpha's pin is stale and would be rewritten, but beta's cannot be
/// resolved or read (an unknown tag, an unreachable registry, a variable,
/// no tag): one line naming file and line, with and without `--check`, and
/// nothing is written.
#[test]
fn a_pin_that_cannot_be_resolved_or_read_ends_in_one_line_and_changes_no_dockerfile() {
    let _engine = engine_lock();
    let (_dir, image, first, stale) = moved("bad");
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            dockerfile(&[("BASE", &format!("{image}:no-such-tag@{first}"))]),
            vec![
                format!("cannot resolve {image}:no-such-tag (images/beta/Dockerfile:2 BASE)"),
                "has no tag no-such-tag".into(),
                "fix the tag in images/beta/Dockerfile:2".into(),
            ],
        ),
        (
            dockerfile(&[("BASE", &format!("127.0.0.1:9/x/base:1@{first}"))]),
            vec![
                "cannot reach registry 127.0.0.1:9 (connection refused)".into(),
                "check the network".into(),
            ],
        ),
        (
            dockerfile(&[("BASE", &format!("${{REGISTRY}}/base:1@{first}"))]),
            vec![
                "images/beta/Dockerfile:2: cannot read ARG BASE=${REGISTRY}/base:1@".into(),
                "uses a variable".into(),
                "ARG NAME=REPOSITORY:TAG@sha256:DIGEST".into(),
            ],
        ),
        (
            dockerfile(&[("BASE", &format!("{image}@{first}"))]),
            vec![
                "images/beta/Dockerfile:2: cannot read ARG".into(),
                "without a tag".into(),
            ],
        ),
    ];
    for (beta, keywords) in cases {
        let case = TempDir::new("update-bases-bad-case");
        let root = checkout(case.path(), &[stale.clone(), ("beta", beta)]);
        let keywords: Vec<&str> = keywords.iter().map(String::as_str).collect();
        for args in [&[][..], &["--check"][..]] {
            refused(&root, args, &keywords);
        }
    }
}

/// A malformed `--mirror` is refused before any lookup.
#[test]
fn a_malformed_mirror_is_refused() {
    let _engine = engine_lock();
    let (dir, _, _, stale) = moved("bad-mirror");
    let root = checkout(dir.path(), std::slice::from_ref(&stale));
    let before = snapshot(&root);
    let line = argument_error(&update_bases(&root, &["--mirror", "nonsense"]));
    for keyword in ["malformed mirror \"nonsense\"", "--mirror PREFIX=MIRROR"] {
        assert!(line.contains(keyword), "expected {keyword:?} in: {line}");
    }
    assert_eq!(snapshot(&root), before, "no Dockerfile may change: {line}");
}

/// A Dockerfile that cannot be written: none is, though the other's new
/// text was ready.
#[test]
fn a_dockerfile_that_cannot_be_written_leaves_every_dockerfile_as_it_was() {
    let _engine = engine_lock();
    let (dir, image, first, stale) = moved("readonly");
    let beta = (
        "beta",
        dockerfile(&[("BASE", &format!("{image}:moving@{first}"))]),
    );
    let root = checkout(dir.path(), &[stale, beta]);
    let locked = root.join("images/beta");
    let chattr = |flag: &str| {
        let out = Command::new("chattr").arg(flag).arg(&locked).output();
        assert!(
            out.as_ref().is_ok_and(|o| o.status.success()),
            "chattr {flag} {} failed ({out:?}): the test needs chattr (Debian: apt install e2fsprogs), root and a filesystem with the immutable attribute (ext4)",
            locked.display()
        );
    };
    chattr("+i");
    let before = snapshot(&root);
    let output = update_bases(&root, &[]);
    chattr("-i");
    let line = one_line_error(&output);
    assert!(line.contains("no Dockerfile was changed"), "{line}");
    assert_eq!(snapshot(&root), before, "nothing changed: {line}");
}
