//! End to end on the real stack (BuildKit through buildx, the registry on
//! 127.0.0.1, real cosign with key pairs made here): a release published in
//! stages over one release record, as the release workflow's jobs run it,
//! and the gate that stands before every tag move.
//!
//! - the build stage pushes by digest and writes the record; nothing is tagged;
//! - a record that does not match the registry (tampered JSON, another
//!   repository, a digest missing) is refused in one line, nothing tagged;
//! - a gate failure (a signature made with another key, a scanner finding,
//!   a missing SBOM, a relabelled image) moves no tag and keeps the record
//!   resumable;
//! - a resumed release from the record, in a fresh clone, completes without
//!   rebuilding, also after an interrupted promotion moved a version tag;
//! - a push target that is unreachable or refuses the credentials is found
//!   before anything builds;
//! - a record whose tags differ from those the ref derives (a tag added or
//!   removed) moves no tag: promote moves the derived ones only.
//!
//! The vulnerability scan's plumbing runs a stand-in scanner that writes
//! trivy's JSON report (a real vulnerability database cannot be downloaded
//! here); the release workflow runs the real trivy. Builds take the
//! host-built binaries and one or two variants: the point is not per variant.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

use support::e2e::{
    assert_ok, context_file, cosign_keys, engine_lock, fixture, git, ok, registry, registry_digest,
    registry_manifest, registry_tags, root, run, shared, stderr, unique_label, unique_name, xtask,
    AuthRegistry,
};
use support::{write_executable, TempDir};

/// A release of `repository` (REGISTRY/NAME) at `git_ref`, built with the stand-ins.
struct Release {
    registry: String,
    name: String,
    context: PathBuf,
    key: PathBuf,
    public_key: PathBuf,
}

impl Release {
    fn new(label: &str, git_ref: &str) -> Release {
        let name = unique_name(label);
        let (key, public_key) = cosign_keys(&root().join("target/e2e/keys"), "");
        Release {
            registry: registry(),
            context: context_file(&format!("gate-{label}"), git_ref, &[]),
            name,
            key,
            public_key,
        }
    }

    fn repository(&self) -> String {
        format!("{}/{}", self.registry, self.name)
    }

    /// `cargo xtask ARGS` in this release's situation (context, registry, name).
    fn xtask(&self, args: &[&str]) -> Command {
        let mut command = xtask();
        command
            .args(args)
            .args(["--registry", &self.registry, "--image-name", &self.name])
            .env("XTASK_CONTEXT", &self.context)
            .env("COSIGN_PASSWORD", "");
        command
    }

    /// `release-image` of `variants` with the stand-ins (the stand-in SBOM
    /// generator unless `extra` names another) and `extra`.
    fn release_image(&self, variants: &[&str], extra: &[&str]) -> Command {
        let fixture = fixture();
        let mut command = self.xtask(&["release-image"]);
        if !extra.contains(&"--sbom-generator") {
            command.args(["--sbom-generator", &fixture.sbom_generator]);
        }
        for variant in variants {
            command.args(["--variant", variant]);
        }
        command.args(fixture.build_options()).args(extra);
        command
    }

    fn key(&self) -> String {
        format!("--key={}", self.key.display())
    }

    fn public_key(&self) -> String {
        format!("--key={}", self.public_key.display())
    }

    /// The release tags in the registry (cosign's `.sig` tags left out).
    fn tags(&self) -> Vec<String> {
        registry_tags(&self.name)
            .into_iter()
            .filter(|t| !t.ends_with(".sig"))
            .collect()
    }
}

fn read_record(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Asserts one line on stderr that starts with `error: ` and holds every keyword.
#[track_caller]
fn one_line_error(output: &Output, keywords: &[&str]) -> String {
    let err = stderr(output);
    assert!(!output.status.success(), "expected a failure:\n{err}");
    let last = err.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("error: "), "{err}");
    for keyword in keywords {
        assert!(
            last.contains(keyword),
            "the error should mention {keyword:?}: {last}"
        );
    }
    last
}

/// A stand-in for trivy: logs its arguments, then writes trivy's JSON report
/// of the image it was given, with one fixable CRITICAL vulnerability and an
/// unfixed HIGH one (`finding`), or an unfixed HIGH one only (accepted by
/// the production policy).
fn stand_in_scanner(dir: &Path, finding: bool) -> (PathBuf, PathBuf) {
    let log = dir.join(format!("scanner-{finding}.log"));
    let script = dir.join(format!(
        "trivy-{}",
        if finding { "finding" } else { "clean" }
    ));
    let fixable = if finding {
        r#"{"VulnerabilityID": "CVE-2024-0001", "PkgName": "openssl", "InstalledVersion": "3.0.11-1", "FixedVersion": "3.0.13-1", "Status": "fixed", "Severity": "CRITICAL"},"#
    } else {
        ""
    };
    write_executable(
        &script,
        &format!(
            r#"#!/bin/sh
echo "$*" >> '{log}'
for image in "$@"; do :; done
cat <<JSON
{{"SchemaVersion": 2, "ArtifactName": "$image", "Results": [{{"Target": "$image (ubi 9.4)", "Class": "os-pkgs", "Type": "redhat",
  "Vulnerabilities": [{fixable}
    {{"VulnerabilityID": "CVE-2024-0002", "PkgName": "zlib", "InstalledVersion": "1.2.11", "FixedVersion": "", "Status": "affected", "Severity": "HIGH"}}]}}]}}
JSON
"#,
            log = log.display()
        ),
    );
    (script, log)
}

/// A release's build stage (`--build-only`) of two variants over one
/// record: pushed by digest, nothing tagged or signed. The tests that use
/// it never promote it, so it stays untagged; the resumed release builds
/// its own.
struct Staged {
    release: Release,
    /// Where the tests write their edited records and scanners.
    scratch: PathBuf,
    record: PathBuf,
    /// The record as the build stage wrote it.
    original: Vec<u8>,
    /// The build stage's log.
    log: String,
    /// The release's tags right after the build stage.
    tags: Vec<String>,
}

const STAGED_VARIANTS: [&str; 2] = ["ubi9", "distroless"];

/// Runs the build stage of `release` for STAGED_VARIANTS into `record`.
fn build_stage(release: &Release, record: &Path) -> Output {
    let record_arg = record.display().to_string();
    run(&mut release.release_image(&STAGED_VARIANTS, &["--build-only", "--record", &record_arg]))
}

fn staged() -> &'static Staged {
    static STAGED: OnceLock<Result<Staged, String>> = OnceLock::new();
    shared(&STAGED, "the staged release", || {
        let release = Release::new("staged", "refs/tags/v5.1.0");
        let scratch = root()
            .join("target/e2e")
            .join(unique_label("staged-release"));
        std::fs::create_dir_all(&scratch).unwrap();
        let record = scratch.join("release-record.json");
        let built = build_stage(&release, &record);
        assert_ok(&built);
        Staged {
            tags: release.tags(),
            original: std::fs::read(&record).unwrap(),
            log: stderr(&built),
            release,
            scratch,
            record,
        }
    })
}

/// The build stage pushes every variant by digest and writes the record;
/// nothing is tagged or signed.
#[test]
fn a_staged_build_pushes_by_digest_records_and_tags_nothing() {
    let _engine = engine_lock();
    let staged = staged();
    assert!(
        !staged.log.contains("cosign sign"),
        "the build stage signs nothing"
    );
    assert!(
        staged.tags.is_empty(),
        "nothing is tagged: {:?}",
        staged.tags
    );
    let recorded = read_record(&staged.record);
    assert_eq!(recorded["repository"], staged.release.repository());
    assert_eq!(recorded["commit"], git(&["rev-parse", "HEAD"]));
    for (variant, entry) in STAGED_VARIANTS
        .iter()
        .zip(recorded["variants"].as_array().unwrap())
    {
        assert_eq!(entry["variant"], *variant);
        let index = registry_manifest(&staged.release.name, entry["digest"].as_str().unwrap());
        for image in index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["platform"]["os"] == "linux")
        {
            let platform = format!(
                "linux/{}",
                image["platform"]["architecture"].as_str().unwrap()
            );
            assert_eq!(
                entry["platform_digests"][&platform], image["digest"],
                "{variant} {platform}"
            );
        }
    }
}

/// A record that does not match the registry (truncated, a digest
/// missing, digests swapped, another repository) is refused in one line,
/// and nothing is tagged.
#[test]
fn a_record_that_does_not_match_the_registry_is_refused() {
    let _engine = engine_lock();
    let Staged {
        release,
        scratch,
        record,
        original,
        ..
    } = staged();
    let edited = |name: &str, edit: &dyn Fn(&mut Value)| -> String {
        let mut value = read_record(record);
        edit(&mut value);
        let path = scratch.join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path.display().to_string()
    };
    let promote =
        |path: &str| run(&mut release.xtask(&["promote", "--record", path, &release.public_key()]));
    let truncated = scratch.join("truncated.json");
    std::fs::write(&truncated, &original[..original.len() / 2]).unwrap();
    one_line_error(
        &promote(&truncated.display().to_string()),
        &["is not a release record"],
    );
    let missing = edited("missing.json", &|v| {
        v["variants"][0]["digest"] = format!("sha256:{}", "0".repeat(64)).into();
    });
    one_line_error(
        &promote(&missing),
        &[
            "does not match",
            "which is not in the registry",
            "nothing was signed or tagged",
        ],
    );
    let swapped = edited("swapped.json", &|v| {
        let first = v["variants"][0]["digest"].clone();
        v["variants"][0]["digest"] = v["variants"][1]["digest"].clone();
        v["variants"][1]["digest"] = first;
    });
    one_line_error(
        &promote(&swapped),
        &["does not match", "holds the platform images"],
    );
    let elsewhere = run(xtask()
        .args([
            "promote",
            "--record",
            &record.display().to_string(),
            &release.public_key(),
        ])
        .args([
            "--registry",
            &release.registry,
            "--image-name",
            "e2e/elsewhere",
        ])
        .env("XTASK_CONTEXT", &release.context));
    one_line_error(
        &elsewhere,
        &["does not match", "it is a release to", "/e2e/elsewhere"],
    );
    assert!(release.tags().is_empty(), "{:?}", release.tags());
}

/// Signed with another key: the gate names both variants and the check,
/// moves no tag and keeps the record as it was; the workflow's verify job
/// says the same, per variant.
#[test]
fn a_signature_by_another_key_moves_no_tag_and_keeps_the_record() {
    let _engine = engine_lock();
    let Staged {
        release,
        record,
        original,
        ..
    } = staged();
    let record_arg = record.display().to_string();
    let (other_key, _) = cosign_keys(&root().join("target/e2e/keys-other"), "");
    ok(&mut release.xtask(&[
        "sign",
        "--record",
        &record_arg,
        &format!("--key={}", other_key.display()),
    ]));
    let refused =
        run(&mut release.xtask(&["promote", "--record", &record_arg, &release.public_key()]));
    let line = one_line_error(
        &refused,
        &[
            "the gate refused 2 of 2 variant(s), so no tag moves",
            "ubi9 (",
            "distroless (",
            "signature does not verify",
            "to finish:",
            "to abandon:",
        ],
    );
    assert!(
        !line.contains("SBOM") && !line.contains("provenance"),
        "only the signature is wrong: {line}"
    );
    assert!(release.tags().is_empty(), "{:?}", release.tags());
    assert_eq!(
        &std::fs::read(record).unwrap(),
        original,
        "the record is kept as it was"
    );
    let gate = run(&mut release.xtask(&["verify", "--record", &record_arg, &release.public_key()]));
    one_line_error(
        &gate,
        &["the gate refused 2 of 2", "signature does not verify"],
    );
}

/// The scan: every platform image by digest; a fixable CRITICAL fails it
/// and moves no tag, an unfixed HIGH does not fail it.
#[test]
fn the_scan_of_a_record_fails_on_a_fixable_critical_only() {
    let _engine = engine_lock();
    let Staged {
        release, record, ..
    } = staged();
    let record_arg = record.display().to_string();
    let scratch = TempDir::new("gate-scan");
    let (finding, finding_log) = stand_in_scanner(scratch.path(), true);
    let scanned = run(&mut release.xtask(&[
        "scan",
        "--record",
        &record_arg,
        "--scanner",
        &finding.display().to_string(),
    ]));
    one_line_error(
        &scanned,
        &[
            "fixable HIGH,CRITICAL",
            "ubi9 linux/amd64: CVE-2024-0001 (CRITICAL) in openssl",
            "distroless linux/arm64: CVE-2024-0001",
            "no tag may move",
        ],
    );
    assert!(
        !stderr(&scanned).contains("CVE-2024-0002 (HIGH)"),
        "an unfixed HIGH is not a blocker"
    );
    let calls = std::fs::read_to_string(&finding_log).unwrap();
    for entry in read_record(record)["variants"].as_array().unwrap() {
        for digest in entry["platform_digests"].as_object().unwrap().values() {
            let image = format!("{}@{}", release.repository(), digest.as_str().unwrap());
            assert!(
                calls.lines().any(|l| l.ends_with(&image)
                    && l.contains("--severity=HIGH,CRITICAL --ignore-unfixed")),
                "scanned by digest: {image}\n{calls}"
            );
        }
    }
    assert!(release.tags().is_empty(), "{:?}", release.tags());
    let (clean, _) = stand_in_scanner(scratch.path(), false);
    ok(&mut release.xtask(&[
        "scan",
        "--record",
        &record_arg,
        "--scanner",
        &clean.display().to_string(),
    ]));
}

/// An interrupted promotion had moved one version tag onto its recorded
/// digest; the release resumes from the record on a fresh machine (a fresh
/// clone, with only the record, as the workflow's artifact brings it): it
/// rebuilds nothing, its own gate scans every platform image, and every tag
/// then points at its recorded digest, latest included.
#[test]
fn a_staged_release_resumes_from_its_record_in_a_fresh_clone() {
    let _engine = engine_lock();
    let release = Release::new("resumed", "refs/tags/v5.1.0");
    let scratch = TempDir::new("staged-release-resumed");
    let record = scratch.path().join("release-record.json");
    assert_ok(&build_stage(&release, &record));
    let recorded = read_record(&record);
    let ubi9 = recorded["variants"][0]["digest"].as_str().unwrap();
    ok(Command::new("docker").args([
        "buildx",
        "imagetools",
        "create",
        "--tag",
        &format!("{}:5.1.0-ubi9", release.repository()),
        &format!("{}@{ubi9}", release.repository()),
    ]));
    let clone = scratch.path().join("clone");
    ok(Command::new("git")
        .args(["clone", "--quiet"])
        .arg(root())
        .arg(&clone));
    let copied = scratch.path().join("downloaded-record.json");
    std::fs::copy(&record, &copied).unwrap();
    let (clean, clean_log) = stand_in_scanner(scratch.path(), false);
    let mut resumed = release.release_image(
        &STAGED_VARIANTS,
        &[
            "--record",
            &copied.display().to_string(),
            &release.key(),
            "--scanner",
            &clean.display().to_string(),
        ],
    );
    resumed
        .current_dir(&clone)
        .env("XTASK_PROJECT_ROOT", &clone);
    let resumed = run(&mut resumed);
    assert_ok(&resumed);
    let log = stderr(&resumed);
    assert!(
        log.contains("distroless, ubi9 already pushed; not rebuilt"),
        "{log}"
    );
    assert!(
        !log.contains("buildx bake"),
        "the resumed release rebuilt:\n{log}"
    );
    assert!(!log.contains("--force"), "{log}");
    let scans = std::fs::read_to_string(&clean_log).unwrap();
    assert_eq!(
        scans.lines().count(),
        2 * 2,
        "the release's own gate scanned every platform image:\n{scans}"
    );
    let record_arg = record.display().to_string();
    ok(&mut release.xtask(&["verify", "--record", &record_arg, &release.public_key()]));
    let tags = release.tags();
    for (variant, entry) in STAGED_VARIANTS
        .iter()
        .zip(recorded["variants"].as_array().unwrap())
    {
        for tag in ["5.1.0", "5.1", "5", "latest"] {
            let tag = format!("{tag}-{variant}");
            assert!(tags.contains(&tag), "{tag} in {tags:?}");
            assert_eq!(
                registry_digest(&release.name, &tag).as_deref(),
                entry["digest"].as_str(),
                "{tag}"
            );
        }
        assert_ok(&run(xtask().args([
            "verify",
            &format!("{}:5.1.0-{variant}", release.repository()),
            &release.public_key(),
        ])));
    }
}

/// The record travels between jobs as an artifact the build job wrote (the
/// job that runs third-party build scripts): `promote` derives the tags it
/// moves from the ref and the repository's release tags, never from the
/// record. A signed release of a pre-release (`5.2.0-rc.1`: its own tag
/// only) whose record adds a version tag, `latest`, another variant's tag
/// or another repository's, or lacks one of its own, moves no tag, in one
/// line naming the tag; the honest record then moves exactly its own.
#[test]
fn a_record_with_a_tag_added_or_removed_moves_no_tag() {
    let _engine = engine_lock();
    let release = Release::new("record-tags", "refs/tags/v5.2.0-rc.1");
    let scratch = TempDir::new("record-tags");
    let record = scratch.path().join("release-record.json");
    let record_arg = record.display().to_string();
    assert_ok(&run(&mut release.release_image(
        &["ubi9"],
        &["--build-only", "--record", &record_arg],
    )));
    ok(&mut release.xtask(&["sign", "--record", &record_arg, &release.key()]));
    let repository = release.repository();
    let own = format!("{repository}:5.2.0-rc.1-ubi9");
    assert_eq!(
        read_record(&record)["variants"][0]["tags"],
        serde_json::json!([own])
    );
    let promote = |name: &str, edit: &dyn Fn(&mut Vec<Value>)| {
        let mut value = read_record(&record);
        let mut tags = value["variants"][0]["tags"].as_array().unwrap().clone();
        edit(&mut tags);
        // As a forger would: the immutable ones kept among the tags (the
        // record's own check), though promote trusts neither list.
        let immutable: Vec<Value> = value["variants"][0]["immutable"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| tags.contains(t))
            .cloned()
            .collect();
        value["variants"][0]["immutable"] = Value::Array(immutable);
        value["variants"][0]["tags"] = Value::Array(tags);
        let path = scratch.path().join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        let path = path.display().to_string();
        run(&mut release.xtask(&["promote", "--record", &path, &release.public_key()]))
    };
    for (name, added, expected) in [
        ("version", format!("{repository}:5.1.0-ubi9"), "it adds"),
        ("latest", format!("{repository}:latest-ubi9"), "it adds"),
        (
            "variant",
            format!("{repository}:5.2.0-rc.1-distroless"),
            "it adds",
        ),
        ("bare", format!("{repository}:5.2.0-rc.1"), "it adds"),
        (
            "elsewhere",
            format!("{}/other:latest", release.registry),
            "is not a tag of",
        ),
    ] {
        let refused = promote(name, &|tags| tags.push(added.clone().into()));
        let line = one_line_error(&refused, &[expected]);
        assert!(
            line.contains(&added) || expected == "is not a tag of",
            "{name}: {line}"
        );
        assert!(release.tags().is_empty(), "{name}: {:?}", release.tags());
    }
    let removed = promote("removed", &|tags| tags.clear());
    // A variant with no tag at all is refused when the record is read.
    one_line_error(&removed, &["has no tag to move"]);
    let swapped = promote("swapped", &|tags| {
        tags[0] = format!("{repository}:5.2.0-rc.2-ubi9").into()
    });
    let line = one_line_error(&swapped, &["it adds", "it lacks", &own]);
    assert!(line.contains("5.2.0-rc.2-ubi9"), "{line}");
    assert!(release.tags().is_empty(), "{:?}", release.tags());
    // The honest record moves its own tag, and nothing else.
    ok(&mut release.xtask(&["promote", "--record", &record_arg, &release.public_key()]));
    assert_eq!(release.tags(), ["5.2.0-rc.1-ubi9"]);
}

/// An SBOM generator that writes nothing: BuildKit then attaches no SBOM (a
/// mirror's broken scanner, say), and the build itself succeeds; the gate
/// refuses the release, moves no tag and keeps the record for a re-run.
#[test]
fn a_release_without_an_sbom_does_not_pass_the_gate() {
    let _engine = engine_lock();
    let fixture = fixture();
    let release = Release::new("sbom", "refs/tags/v5.2.0");
    let scratch = TempDir::new("gate-sbom");
    let record = scratch.path().join("record.json");
    let context = scratch.path().join("silent-generator");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM {}\nENTRYPOINT [\"/bin/busybox\", \"true\"]\n",
            fixture.sbom_generator
        ),
    )
    .unwrap();
    let silent = format!("{}/{}-generator:silent", release.registry, release.name);
    ok(Command::new("docker")
        .args([
            "buildx",
            "build",
            "--quiet",
            "--provenance=false",
            "--sbom=false",
            "--output",
        ])
        .arg(format!(
            "type=image,name={silent},push=true,oci-mediatypes=true"
        ))
        .arg(&context));
    let digest = registry_digest(&format!("{}-generator", release.name), "silent").unwrap();
    let generator = format!("{silent}@{digest}");
    let refused = run(&mut release.release_image(
        &["ubi9"],
        &[
            "--record",
            &record.display().to_string(),
            &release.key(),
            "--sbom-generator",
            &generator,
        ],
    ));
    let line = one_line_error(
        &refused,
        &[
            "the gate refused 1 of 1",
            "ubi9 (",
            "no SBOM for linux/amd64",
            "no SBOM for linux/arm64",
            "to finish:",
        ],
    );
    assert!(
        !line.contains("signature does not verify"),
        "signed as it should be: {line}"
    );
    assert!(release.tags().is_empty(), "{:?}", release.tags());
    let kept = read_record(&record);
    assert_eq!(
        kept["variants"][0]["variant"], "ubi9",
        "the record is kept for a re-run"
    );
}

/// A relabelled image: the index claims another commit than its
/// provenance records; the deploy gate refuses it, and says only that.
#[test]
fn a_relabelled_image_does_not_pass_the_gate() {
    let _engine = engine_lock();
    let release = Release::new("relabelled", "refs/tags/v5.2.0");
    let scratch = TempDir::new("gate-relabelled");
    let built = run(&mut release.release_image(
        &["ubi9"],
        &[
            "--build-only",
            "--record",
            &scratch.path().join("good.json").display().to_string(),
        ],
    ));
    assert_ok(&built);
    let good = read_record(&scratch.path().join("good.json"))["variants"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let relabelled = format!("{}:relabelled", release.repository());
    ok(Command::new("docker").args([
        "buildx",
        "imagetools",
        "create",
        "--annotation",
        &format!("index:org.opencontainers.image.revision={}", "f".repeat(40)),
        "--tag",
        &relabelled,
        &format!("{}@{good}", release.repository()),
    ]));
    let digest = registry_digest(&release.name, "relabelled").unwrap();
    let by_digest = format!("{}@{digest}", release.repository());
    ok(Command::new("cosign")
        .args([
            "sign",
            "--yes",
            "--tlog-upload=false",
            "--allow-http-registry=true",
            &release.key(),
            &by_digest,
        ])
        .env("COSIGN_PASSWORD", ""));
    let verified = run(xtask().args(["verify", &by_digest, &release.public_key()]));
    let line = one_line_error(
        &verified,
        &[
            "must not be deployed",
            &format!(
                "the provenance of linux/amd64 says it was built from revision {}",
                git(&["rev-parse", "HEAD"])
            ),
            &format!("but the image claims {} (relabelled?)", "f".repeat(40)),
        ],
    );
    assert!(
        !line.contains("signature does not verify")
            && !line.contains("no SBOM")
            && !line.contains("no provenance"),
        "only the labels are wrong: {line}"
    );
}

/// `release-image` and `ci-image --push` of ubi9 to `registry` at v5.3.0,
/// with `docker_config` as DOCKER_CONFIG if given.
fn attempt(registry: &str, args: &[&str], docker_config: Option<&Path>) -> Output {
    let context = context_file("gate-probe", "refs/tags/v5.3.0", &[]);
    let mut command = xtask();
    command
        .args(args)
        .args(["--registry", registry, "--variant", "ubi9"])
        .args(fixture().build_options())
        .env("XTASK_CONTEXT", &context);
    if let Some(dir) = docker_config {
        command.env("DOCKER_CONFIG", dir);
    }
    run(&mut command)
}

const PUSHING_COMMANDS: [&[&str]; 2] = [
    &["release-image", "--sign", "none"],
    &["ci-image", "--push"],
];

/// A push target that cannot be reached is found before anything builds.
#[test]
fn an_unreachable_push_target_is_found_before_building() {
    let _engine = engine_lock();
    let closed = "127.0.0.1:1";
    for args in PUSHING_COMMANDS {
        let output = attempt(closed, args, None);
        one_line_error(
            &output,
            &["cannot reach registry 127.0.0.1:1 (connection refused) for pushing to 127.0.0.1:1/beacon", "nothing was built or pushed"],
        );
        assert!(
            !stderr(&output).contains("buildx bake"),
            "{args:?} started a build:\n{}",
            stderr(&output)
        );
    }
}

/// A registry that refuses the credentials is found before anything builds.
#[test]
fn a_push_target_that_refuses_the_credentials_is_found_before_building() {
    let _engine = engine_lock();
    let auth = AuthRegistry::start(TempDir::new("gate-auth-registry"));
    let scratch = TempDir::new("gate-auth-config");
    std::fs::write(
        scratch.path().join("config.json"),
        serde_json::json!({ "auths": { &auth.addr: { "auth": "YWxpY2U6d3Jvbmc=" } } }).to_string(),
    )
    .unwrap();
    for args in PUSHING_COMMANDS {
        let output = attempt(&auth.addr, args, Some(scratch.path()));
        one_line_error(
            &output,
            &[
                &format!(
                    "registry {} refused the credentials for pushing to {}/beacon",
                    auth.addr, auth.addr
                ),
                "docker login",
                "nothing was built or pushed",
            ],
        );
        assert!(
            !stderr(&output).contains("buildx bake"),
            "{args:?} started a build"
        );
    }
}
