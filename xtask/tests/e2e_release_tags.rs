//! End-to-end: a `release-image --allow-any-ref` run looks every tag it
//! would write up in the real registry before anything is built, and refuses
//! in one line when one exists, here the `sha-<commit>` tag a release of
//! `main` wrote for the same commit. Nothing is built, pushed or moved; with
//! `--force` the plan looks nothing up. The planner's rules for every
//! class of ref are in `release_tags.rs`; the immutable version tag's check
//! is in `e2e_images.rs`.
//!
//! These tests fail (they never skip) when the stack is missing: run
//! `.ci/setup-stack` first.

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use support::e2e::{
    context_file, engine_lock, git, one_line_error, registry, require_stack, resolve, tag_map,
    text, tiny_context, unique_label, unique_name, xtask,
};
use support::TempDir;

/// A repository where main's release of this commit left its
/// `sha-<commit>` tag for ubi9, and a feature branch's `--allow-any-ref`
/// release of ubi9 to it.
struct Existing {
    registry: String,
    name: String,
    short: String,
    /// `REGISTRY/NAME:sha-SHORT-ubi9`.
    existing: String,
    before: BTreeMap<String, String>,
    _dir: TempDir,
}

fn existing(label: &str) -> Existing {
    require_stack();
    let registry = registry();
    let name = unique_name(label);
    let short: String = git(&["rev-parse", "HEAD"]).chars().take(7).collect();
    let dir = TempDir::new(label);
    let context = tiny_context(dir.path(), "main-release", &unique_label("main's image"));
    let existing = format!("{registry}/{name}:sha-{short}-ubi9");
    let pushed = Command::new("docker")
        .args([
            "buildx",
            "build",
            "--quiet",
            "--provenance",
            "false",
            "--output",
        ])
        .arg(format!("type=image,name={existing},push=true"))
        .arg(&context)
        .output()
        .unwrap();
    assert!(pushed.status.success(), "{}", text(&pushed.stderr));
    Existing {
        before: tag_map(&registry, &name),
        registry,
        name,
        short,
        existing,
        _dir: dir,
    }
}

impl Existing {
    /// The feature branch's release, with `extra`.
    fn release(&self, extra: &[&str]) -> Output {
        let feature = context_file("any-ref-feature", "refs/heads/feature/x", &[]);
        xtask()
            .env("XTASK_CONTEXT", &feature)
            .args([
                "release-image",
                "--allow-any-ref",
                "--registry",
                &self.registry,
                "--image-name",
                &self.name,
                "--variant",
                "ubi9",
                "--platform",
                "linux/amd64",
                "--sign",
                "none",
            ])
            .args(extra)
            .output()
            .unwrap()
    }
}

/// The run is refused in one line naming the tag; nothing is pushed or moved.
#[test]
fn an_any_ref_run_refuses_a_tag_that_exists_before_building() {
    let _engine = engine_lock();
    let existing = existing("any-ref-exists");
    let line = one_line_error(&existing.release(&[]));
    assert!(
        line.contains(&format!("{} already exists", existing.existing))
            && line.contains("--allow-any-ref writes only tags that do not exist yet")
            && line.contains("--force"),
        "{line}"
    );
    assert_eq!(
        tag_map(&existing.registry, &existing.name),
        existing.before,
        "nothing was pushed or moved"
    );
}

/// The dry run names every lookup it makes first; with `--force` it looks
/// nothing up.
#[test]
fn an_any_ref_dry_run_names_its_lookups_and_force_makes_none() {
    let _engine = engine_lock();
    let existing = existing("any-ref-dry-run");
    let Existing {
        registry,
        name,
        short,
        ..
    } = &existing;
    let dry = existing.release(&["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let printed = text(&dry.stdout);
    for tag in ["feature-x-ubi9", &format!("sha-{short}-ubi9")] {
        assert!(
            printed.contains(&format!("docker://{registry}/{name}:{tag}\n")),
            "looks {tag} up:\n{printed}"
        );
    }
    assert!(
        printed.contains("# refuses if any of these tags exists"),
        "{printed}"
    );
    let forced = existing.release(&["--dry-run", "--force"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    let printed = text(&forced.stdout);
    assert!(
        !printed.contains("refuses if any")
            && !printed.contains(&format!("docker://{registry}/{name}:feature-x-ubi9\n")),
        "--force looks nothing up:\n{printed}"
    );
    assert_eq!(
        resolve(registry, name, &format!("sha-{short}-ubi9")),
        existing.before.get(&format!("sha-{short}-ubi9")).cloned()
    );
}
