//! `cargo xtask update-bases` without a registry: what it reads, what it
//! would look up, and every bad input that is refused before any lookup, in
//! one line and with no Dockerfile changed. Recording shims stand in for
//! skopeo, to prove a dry run or a refusal looks nothing up; the lookups
//! themselves and the rewrite are tested against a real registry in
//! `e2e_update_bases.rs`.

mod support;

use std::path::Path;

use support::{assert_one_line_error, run, stdout, xtask, Shims};

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A scratch checkout under `dir` with one Dockerfile per (variant, text).
fn checkout(dir: &Path, dockerfiles: &[(&str, &str)]) -> std::path::PathBuf {
    let root = dir.join("checkout");
    for (variant, text) in dockerfiles {
        std::fs::create_dir_all(root.join("images").join(variant)).unwrap();
        std::fs::write(root.join("images").join(variant).join("Dockerfile"), text).unwrap();
    }
    root
}

fn update_bases(shims: &Shims, root: &Path, args: &[&str]) -> std::process::Output {
    run(xtask()
        .env("PATH", shims.path())
        .env("XTASK_PROJECT_ROOT", root)
        .arg("update-bases")
        .args(args))
}

#[test]
fn a_dry_run_prints_each_lookup_once_and_runs_none() {
    let shims = Shims::new("update-bases-dry-run");
    shims.program("skopeo", &[]);
    let pin = format!("docker.io/library/rust:1-bookworm@{DIGEST}");
    let root = checkout(
        shims.scratch(),
        &[
            ("alpha", &format!("ARG BUILDER_IMAGE={pin}\nARG CI_BASE=cgr.dev/chainguard/wolfi-base:latest@{DIGEST}\nFROM scratch\n")),
            ("beta", &format!("ARG BUILDER_IMAGE={pin}\nFROM scratch\n")),
        ],
    );
    let output = update_bases(
        &shims,
        &root,
        &[
            "--dry-run",
            "--mirror",
            "docker.io/library=127.0.0.1:5999/hub",
        ],
    );
    assert!(output.status.success(), "{}", support::stderr(&output));
    assert_eq!(
        stdout(&output),
        "skopeo inspect --raw --tls-verify=false docker://127.0.0.1:5999/hub/rust:1-bookworm\n\
         skopeo inspect --raw docker://cgr.dev/chainguard/wolfi-base:latest\n"
    );
    assert_eq!(shims.log(), "", "a dry run looks nothing up");
}

#[test]
fn the_real_dockerfiles_dry_run_names_every_pinned_image() {
    let shims = Shims::new("update-bases-real");
    shims.program("skopeo", &[]);
    let output = update_bases(&shims, &support::project_root(), &["--dry-run"]);
    assert!(output.status.success(), "{}", support::stderr(&output));
    let lines = stdout(&output);
    let root = support::project_root();
    let mut followed = 0;
    // The compile file's builder image, each variant's bases.
    for path in xtask::project::dockerfiles(&root).unwrap() {
        let text = std::fs::read_to_string(root.join(&path)).unwrap();
        for (image, value) in xtask::project::global_arg_defaults(&text) {
            if !(image.ends_with("_BASE") || image.ends_with("_IMAGE")) {
                continue;
            }
            followed += 1;
            let name = value.split('@').next().unwrap();
            assert!(
                lines.contains(&format!("docker://{name}\n")),
                "{path} {image}={value} is looked up:\n{lines}"
            );
        }
    }
    let variants = xtask::project::discover_variants(&root).unwrap();
    assert_eq!(
        followed,
        1 + 2 * variants.len(),
        "BUILDER_IMAGE and two bases each"
    );
    assert!(
        lines.contains("docker://docker.io/library/rust:"),
        "{lines}"
    );
    assert_eq!(shims.log(), "");
}

#[test]
fn bad_inputs_are_refused_before_any_lookup() {
    let cases: Vec<(String, &[&str], Vec<&str>)> = vec![
        (
            format!("ARG BASE=${{MIRROR}}/static:latest@{DIGEST}\n"),
            &[],
            vec![
                "images/alpha/Dockerfile:1: cannot read ARG BASE=${MIRROR}/static:latest@",
                "uses a variable",
                "ARG NAME=REPOSITORY:TAG@sha256:DIGEST",
            ],
        ),
        (
            format!("# pinned without a tag\nARG BASE=cgr.dev/chainguard/static@{DIGEST}\n"),
            &["--check"],
            vec![
                "images/alpha/Dockerfile:2: cannot read ARG",
                "without a tag",
            ],
        ),
        (
            "ARG BASE=cgr.dev/chainguard/static:latest@sha256:0123\n".to_string(),
            &[],
            vec![
                "images/alpha/Dockerfile:1: cannot read ARG",
                "malformed digest",
            ],
        ),
        (
            "ARG BASE=cgr.dev/chainguard/static:latest\nFROM ${BASE}\n".to_string(),
            &[],
            vec![
                "no pinned image in images/*/Dockerfile",
                "pin the bases first",
            ],
        ),
        (
            format!("ARG BASE=cgr.dev/chainguard/static:latest@{DIGEST}\n"),
            &["--mirror", "cgr.dev"],
            vec!["malformed mirror \"cgr.dev\"", "--mirror PREFIX=MIRROR"],
        ),
        (
            format!("ARG BASE=cgr.dev/chainguard/static:latest@{DIGEST}\n"),
            &["--mirror", "cgr.dev=Mirror.example/UPPER"],
            vec!["malformed mirror", "is not a registry or repository path"],
        ),
    ];
    for (text, args, keywords) in cases {
        let shims = Shims::new("update-bases-bad");
        shims.program("skopeo", &[]);
        let root = checkout(shims.scratch(), &[("alpha", &text)]);
        let output = update_bases(&shims, &root, args);
        assert_one_line_error(&output, &keywords);
        assert_eq!(stdout(&output), "");
        assert_eq!(shims.log(), "", "refused before any lookup");
        let after = std::fs::read_to_string(root.join("images/alpha/Dockerfile")).unwrap();
        assert_eq!(after, text, "the Dockerfile is unchanged");
    }
}

#[test]
fn without_skopeo_it_says_how_to_install_it() {
    let shims = Shims::new("update-bases-no-skopeo");
    let bin = support::path_with_only_git(shims.scratch());
    let text = format!("ARG BASE=cgr.dev/chainguard/static:latest@{DIGEST}\n");
    let root = checkout(shims.scratch(), &[("alpha", &text)]);
    let output = run(xtask()
        .env("PATH", &bin)
        .env("XTASK_PROJECT_ROOT", &root)
        .args(["update-bases", "--check"]));
    assert_one_line_error(
        &output,
        &[
            "skopeo not found on PATH",
            "update-bases looks every tag up",
            "apt install skopeo",
        ],
    );
}
