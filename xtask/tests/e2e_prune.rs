//! End-to-end tests of `cargo xtask prune-ci-images` against real registries:
//! the test stack's registry (distribution, deletion enabled, default
//! 127.0.0.1:5000, override with XTASK_TEST_REGISTRY), a second distribution
//! registry this test starts with htpasswd auth and deletion disabled, and a
//! small fake registry for the Bearer token flow (distribution's own token
//! auth needs a signing token server). Images are built with
//! `docker buildx build` from tiny `FROM scratch` contexts, their creation
//! time set with SOURCE_DATE_EPOCH. Every test uses repositories of its own.
//!
//! These tests fail (they never skip) when the stack is missing: run
//! `.ci/setup-stack` first.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use support::e2e::{
    argument_error, curl, one_line_error, prune_ci_images as xtask, registry, require_registry,
    resolve, resolve_as, succeeded, tag_map, text, tiny_context, unique_label, AuthRegistry,
    SECRET,
};
use support::TempDir;

const OLD: i64 = 1_577_836_800; // 2020-01-01
const OLDER: i64 = 1_546_300_800; // 2019-01-01
const LESS_OLD: i64 = 1_609_459_200; // 2021-01-01
/// base64("alice:s3cret")
const BASIC_GOOD: &str = "YWxpY2U6czNjcmV0";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn unique(label: &str) -> String {
    unique_label(&format!("prune-{label}"))
}

fn scratch(label: &str) -> TempDir {
    TempDir::new(&unique(label))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Spec<'a> {
    key: &'a str,
    tags: Vec<String>,
    created: i64,
    flavor: &'a str,
    multi_platform: bool,
}

/// Builds a tiny unique image and pushes it under every tag; returns its digest.
fn push(registry: &str, repo: &str, dir: &Path, spec: &Spec, pushed: &mut Vec<String>) -> String {
    let context = tiny_context(dir, spec.key, &format!("{repo} {}\n", spec.key));
    let names: Vec<String> = spec
        .tags
        .iter()
        .map(|t| format!("{registry}/{repo}:{t}"))
        .collect();
    let mut command = Command::new("docker");
    command.args(["buildx", "build", "--quiet"]);
    if spec.multi_platform {
        command.args([
            "--platform",
            "linux/amd64,linux/arm64",
            "--provenance",
            "mode=min",
        ]);
    } else {
        command.args(["--provenance", "false"]);
    }
    command
        .args([
            "--build-arg",
            &format!("SOURCE_DATE_EPOCH={}", spec.created),
        ])
        .args([
            "--label",
            &format!("dev.beacon.image.flavor={}", spec.flavor),
        ]);
    if spec.flavor == "ci" {
        command.args(["--label", "dev.beacon.image.not-for-production=true"]);
    }
    command
        .args([
            "--output",
            &format!("type=image,\"name={}\",push=true", names.join(",")),
        ])
        .arg(&context);
    // BuildKit pushes an image's tags concurrently, and distribution 2.8 can
    // answer a tag read racing a write of the same tag with "500 invalid
    // checksum digest format": retry that (and only that) twice.
    let mut out = command.output().unwrap();
    for _ in 0..2 {
        if out.status.success() || !text(&out.stderr).contains("500 Internal Server Error") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        out = command.output().unwrap();
    }
    assert!(
        out.status.success(),
        "docker buildx build of {} failed: {}",
        spec.key,
        text(&out.stderr)
    );
    pushed.extend(names);
    let digest = resolve(registry, repo, &spec.tags[0]).unwrap();
    for tag in &spec.tags[1..] {
        assert_eq!(
            resolve(registry, repo, tag).as_deref(),
            Some(digest.as_str()),
            "{tag} should share the digest"
        );
    }
    digest
}

/// Pushes the images of a test to `REGISTRY/REPO`, remembering their names
/// for [`cleanup`].
struct Pusher<'a> {
    registry: &'a str,
    repo: &'a str,
    dir: &'a Path,
    pushed: Vec<String>,
}

impl Pusher<'_> {
    /// A single-platform image labelled with `flavor`, under `tags`; returns its digest.
    fn image(&mut self, key: &str, tags: &[&str], created: i64, flavor: &str) -> String {
        self.push(key, tags, created, flavor, false)
    }

    /// A multi-platform index (with attestations) labelled with `flavor`, under `tags`.
    fn index(&mut self, key: &str, tags: &[&str], created: i64, flavor: &str) -> String {
        self.push(key, tags, created, flavor, true)
    }

    /// An old image tagged as the cosign `kind` (`sig`, `att`) of `digest`.
    fn cosign(&mut self, key: &str, digest: &str, kind: &str) -> String {
        self.image(key, &[&cosign_tag(digest, kind)], OLD, "signature")
    }

    fn push(
        &mut self,
        key: &str,
        tags: &[&str],
        created: i64,
        flavor: &str,
        multi_platform: bool,
    ) -> String {
        let spec = Spec {
            key,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            created,
            flavor,
            multi_platform,
        };
        push(self.registry, self.repo, self.dir, &spec, &mut self.pushed)
    }
}

/// The tag of a cosign signature (`sig`) or attestation (`att`) of `digest`.
fn cosign_tag(digest: &str, kind: &str) -> String {
    format!("sha256-{}.{kind}", digest.trim_start_matches("sha256:"))
}

/// Best-effort cleanup: the test repositories' manifests and the engine's copies.
fn cleanup(registry: &str, repo: &str, pushed: &[String]) {
    for digest in tag_map(registry, repo).values().collect::<BTreeSet<_>>() {
        let _ = curl(
            "DELETE",
            &format!("http://{registry}/v2/{repo}/manifests/{digest}"),
            &[],
            None,
        );
    }
    let _ = Command::new("docker")
        .args(["image", "rm", "-f"])
        .args(pushed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A repository of CI images, expired or not, and images a prune must
/// never touch, as the registry holds it once pushed: what the tests of the
/// image pass prune (each its own). Removed when dropped.
struct Population {
    registry: String,
    repo: String,
    _dir: TempDir,
    recent_chainguard: String,
    expired: String,
    expired_index: String,
    expired_distroless: String,
    kept_by_rank: String,
    shared: String,
    labelled: String,
    production: String,
    production_sig: String,
    odd: String,
    expired_sig: String,
    expired_att: String,
    pushed: Vec<String>,
    /// Every tag and its digest, as pushed.
    before: BTreeMap<String, String>,
}

fn populate(label: &str) -> Population {
    let registry = registry();
    require_registry(&registry);
    let repo = unique(label);
    let dir = scratch(label);
    let recent = now() - 3600;
    let mut images = Pusher {
        registry: &registry,
        repo: &repo,
        dir: dir.path(),
        pushed: Vec::new(),
    };
    // chainguard: a recent image (two tags), an expired one and an expired multi-platform index.
    let recent_chainguard = images.image(
        "b",
        &["ci-chainguard", "ci-chainguard-bbbbbbb"],
        recent,
        "ci",
    );
    let expired = images.image("a", &["ci-chainguard-aaaaaaa"], OLD, "ci");
    let expired_index = images.index("g", &["ci-chainguard-pr7"], OLDER, "ci");
    // distroless: two expired images; --keep 1 keeps the newer.
    let expired_distroless = images.image("c", &["ci-distroless-pr12"], OLD, "ci");
    let kept_by_rank = images.image("d", &["ci-distroless-pr13"], LESS_OLD, "ci");
    // ubi9: an expired CI image that a production tag shares, and a ci-only image labelled production.
    let shared = images.image("e", &["ci-ubi9-ccccccc", "1.0.0-ubi9"], OLD, "ci");
    let labelled = images.image("f", &["ci-ubi9-ddddddd"], OLD, "production");
    // Production: an old multi-platform index with two tags and its signature.
    let production = images.index("p", &["1.0.0", "latest"], OLD, "production");
    let production_sig = images.cosign("psig", &production, "sig");
    // A tag that looks like CI but is not of a CI shape: never touched.
    let odd = images.image("h", &["ci-ubi9-experiment"], OLD, "ci");
    // The expired image's own cosign tags: deleted with it.
    let expired_sig = images.cosign("asig", &expired, "sig");
    let expired_att = images.cosign("aatt", &expired, "att");
    let pushed = images.pushed;
    let before = tag_map(&registry, &repo);
    assert_eq!(before.len(), 15, "{before:?}");
    Population {
        registry,
        repo,
        _dir: dir,
        recent_chainguard,
        expired,
        expired_index,
        expired_distroless,
        kept_by_rank,
        shared,
        labelled,
        production,
        production_sig,
        odd,
        expired_sig,
        expired_att,
        pushed,
        before,
    }
}

impl Population {
    /// `REGISTRY/REPO`.
    fn reference(&self) -> String {
        format!("{}/{}", self.registry, self.repo)
    }

    fn tags(&self) -> BTreeMap<String, String> {
        tag_map(&self.registry, &self.repo)
    }
}

impl Drop for Population {
    fn drop(&mut self) {
        cleanup(&self.registry, &self.repo, &self.pushed);
    }
}

/// Malformed inputs: one line, exit 1, nothing deleted.
#[test]
fn malformed_arguments_fail_in_one_line_and_delete_nothing() {
    let images = populate("malformed");
    let reference = images.reference();
    let err = argument_error(&xtask(
        &["--registry", &reference, "--older-than", "30x"],
        &[],
    ));
    assert!(
        err.contains(
            "'--older-than <DURATION>': malformed duration \"30x\" for --older-than: expected"
        ),
        "{err}"
    );
    assert!(err.contains("30m, 12h, 7d, 2w"), "{err}");
    let err = argument_error(&xtask(
        &[
            "--registry",
            &reference,
            "--older-than",
            "30d",
            "--keep",
            "many",
        ],
        &[],
    ));
    assert!(
        err.contains("'--keep <N>': malformed --keep \"many\""),
        "{err}"
    );
    let err = argument_error(&xtask(
        &[
            "--registry",
            &format!("{}/UPPER", images.registry),
            "--older-than",
            "30d",
        ],
        &[],
    ));
    assert!(
        err.contains("'--registry <REG/NAME>': malformed repository"),
        "{err}"
    );
    assert_eq!(
        images.tags(),
        images.before,
        "a failed run must delete nothing"
    );
}

/// `--dry-run` says exactly what it would delete and keep and why, and
/// deletes nothing; `--dry-run --json` is the same selection as data.
#[test]
fn a_dry_run_says_what_and_why_and_deletes_nothing() {
    let images = populate("dry-run");
    let reference = images.reference();
    let Population {
        recent_chainguard,
        expired,
        expired_index,
        expired_distroless,
        kept_by_rank,
        shared,
        labelled,
        production,
        production_sig,
        odd,
        expired_sig,
        expired_att,
        before,
        ..
    } = &images;
    let args = [
        "--registry",
        reference.as_str(),
        "--older-than",
        "30d",
        "--keep",
        "1",
    ];
    let out = succeeded(&xtask(&[&args[..], &["--dry-run"]].concat(), &[]));
    assert_eq!(&images.tags(), before, "--dry-run must delete nothing");
    for (digest, tag) in [
        (expired, "ci-chainguard-aaaaaaa"),
        (expired_index, "ci-chainguard-pr7"),
        (expired_distroless, "ci-distroless-pr12"),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("would delete {digest} [{tag}]: ")))
            .unwrap_or_else(|| panic!("{tag} missing: {out}"));
        assert!(
            line.contains("old, older than 30d") && line.contains("beyond --keep 1"),
            "{line}"
        );
    }
    for (kind, cosign_digest) in [("sig", expired_sig), ("att", expired_att)] {
        assert!(
            out.contains(&format!(
                "would delete cosign tag {} ({cosign_digest}) of {expired}",
                cosign_tag(expired, kind)
            )),
            "{out}"
        );
    }
    assert!(
        out.contains(&format!(
            "keep {shared} [ci-ubi9-ccccccc]: shares its digest with non-ci tag 1.0.0-ubi9"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("keep {labelled} [ci-ubi9-ddddddd]: its config is labelled dev.beacon.image.flavor=production")), "{out}");
    assert!(out.contains(&format!("keep {kept_by_rank} [ci-distroless-pr13]: within the newest 1 of variant distroless (rank 1)")), "{out}");
    assert!(
        out.contains(&format!(
            "keep {recent_chainguard} [ci-chainguard, ci-chainguard-bbbbbbb]: younger than 30d (1h"
        )),
        "{out}"
    );
    assert!(
        !out.contains(production.as_str())
            && !out.contains(odd.as_str())
            && !out.contains(production_sig.as_str()),
        "production must not even be mentioned: {out}"
    );
    assert_eq!(
        out.lines().last(),
        Some("dry run: would delete 3 images (3 tags) and 2 cosign tags of them, keep 4; nothing was deleted"),
        "{out}"
    );

    let out = succeeded(&xtask(&[&args[..], &["--dry-run", "--json"]].concat(), &[]));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let digests = |key: &str| -> BTreeSet<String> {
        json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["digest"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        digests("delete"),
        BTreeSet::from([
            expired.clone(),
            expired_index.clone(),
            expired_distroless.clone()
        ])
    );
    assert_eq!(
        digests("keep"),
        BTreeSet::from([
            recent_chainguard.clone(),
            kept_by_rank.clone(),
            shared.clone(),
            labelled.clone()
        ])
    );
    assert_eq!(json["dry_run"], true);
    assert_eq!(
        &images.tags(),
        before,
        "--dry-run --json must delete nothing"
    );
}

/// The real thing: exactly the expired CI-only images (and their cosign
/// tags) go, everything else still resolves, the production index is
/// intact; running again finds nothing more to delete.
#[test]
fn prunes_exactly_the_expired_ci_only_images() {
    let images = populate("main");
    let reference = images.reference();
    let Population {
        registry,
        repo,
        expired,
        expired_index,
        expired_distroless,
        expired_sig,
        expired_att,
        before,
        ..
    } = &images;
    let args = [
        "--registry",
        reference.as_str(),
        "--older-than",
        "30d",
        "--keep",
        "1",
    ];
    let out = succeeded(&xtask(&args, &[]));
    assert_eq!(
        out.lines().last(),
        Some("deleted 3 images (3 tags) and 2 cosign tags of them, kept 4"),
        "{out}"
    );
    let after = images.tags();
    let s = |t: &str| t.to_string();
    let gone: BTreeSet<String> = [
        s("ci-chainguard-aaaaaaa"),
        s("ci-chainguard-pr7"),
        s("ci-distroless-pr12"),
        cosign_tag(expired, "sig"),
        cosign_tag(expired, "att"),
    ]
    .into();
    let expected: BTreeMap<String, String> = before
        .iter()
        .filter(|(t, _)| !gone.contains(*t))
        .map(|(t, d)| (t.clone(), d.clone()))
        .collect();
    assert_eq!(
        after, expected,
        "exactly the expired CI-only images (and their cosign tags) must be gone"
    );
    for digest in [
        expired,
        expired_index,
        expired_distroless,
        expired_sig,
        expired_att,
    ] {
        assert_eq!(
            resolve(registry, repo, digest),
            None,
            "{digest} should be deleted"
        );
    }
    for (tag, digest) in before {
        if !gone.contains(tag) {
            assert_eq!(
                resolve(registry, repo, tag).as_ref(),
                Some(digest),
                "{tag} must still resolve to {digest}"
            );
            assert_eq!(resolve(registry, repo, digest).as_ref(), Some(digest));
        }
    }
    for tag in ["1.0.0", "latest", "1.0.0-ubi9"] {
        assert!(after.contains_key(tag), "production tag {tag} must survive");
    }
    // The production index's platform manifests are intact.
    let (status, _, body) = curl(
        "GET",
        &format!("http://{registry}/v2/{repo}/manifests/1.0.0"),
        &[],
        None,
    );
    assert_eq!(status, 200);
    let index: serde_json::Value = serde_json::from_str(&body).unwrap();
    for child in index["manifests"].as_array().unwrap() {
        let child = child["digest"].as_str().unwrap();
        assert_eq!(resolve(registry, repo, child).as_deref(), Some(child));
    }

    // Running again finds nothing more to delete.
    let out = succeeded(&xtask(&args, &[]));
    assert_eq!(
        out.lines().last(),
        Some("deleted 0 images (0 tags), kept 4"),
        "{out}"
    );
    assert_eq!(images.tags(), expected);
}

/// A variant named with a dash (`wolfi-base`, in a scratch copy of the
/// repository's images/) has its CI images pruned like any other, while a
/// `ci-` tag of a variant that does not exist protects its digest.
#[test]
fn a_dashed_variants_ci_images_are_pruned_like_any_other() {
    let registry = registry();
    require_registry(&registry);
    let repo = unique("dashed");
    let dir = scratch("dashed");
    // The scratch checkout: the repository's variants and wolfi-base.
    let checkout = dir.path().join("checkout");
    let root = support::project_root();
    for variant in xtask::project::discover_variants(&root)
        .unwrap()
        .into_iter()
        .chain(["wolfi-base".to_string()])
    {
        let source = xtask::project::discover_variants(&root).unwrap()[0].clone();
        let from = if variant == "wolfi-base" {
            &source
        } else {
            &variant
        };
        std::fs::create_dir_all(checkout.join("images").join(&variant)).unwrap();
        std::fs::copy(
            root.join("images").join(from).join("Dockerfile"),
            checkout.join("images").join(&variant).join("Dockerfile"),
        )
        .unwrap();
    }
    let mut images = Pusher {
        registry: &registry,
        repo: &repo,
        dir: dir.path(),
        pushed: Vec::new(),
    };
    let expired = images.image("w1", &["ci-wolfi-base-pr3", "ci-wolfi-base"], OLD, "ci");
    let expired_sha = images.image("w2", &["ci-wolfi-base-abcdef1"], OLD, "ci");
    let unknown_variant = images.image("w3", &["ci-wolfi-edge"], OLD, "ci");
    let pushed = images.pushed;
    let reference = format!("{registry}/{repo}");
    let checkout_root = checkout.display().to_string();
    let out = succeeded(&xtask(
        &[
            "--registry",
            &reference,
            "--older-than",
            "7d",
            "--keep",
            "0",
        ],
        &[("XTASK_PROJECT_ROOT", &checkout_root)],
    ));
    let tags = tag_map(&registry, &repo);
    assert!(
        !tags.values().any(|d| d == &expired || d == &expired_sha),
        "wolfi-base's expired CI images are gone: {tags:?}\n{out}"
    );
    assert_eq!(
        tags.get("ci-wolfi-edge"),
        Some(&unknown_variant),
        "a ci- tag of no variant of the repository stays: {out}"
    );
    cleanup(&registry, &repo, &pushed);
}

#[test]
fn unreachable_registry_is_one_clear_line() {
    let port = free_port();
    let out = xtask(
        &[
            "--registry",
            &format!("127.0.0.1:{port}/beacon"),
            "--older-than",
            "7d",
        ],
        &[],
    );
    let err = one_line_error(&out);
    assert_eq!(
        err,
        format!("error: cannot reach registry 127.0.0.1:{port} (connection refused) for listing the tags of 127.0.0.1:{port}/beacon: check --registry and that the registry is running")
    );
}

#[test]
fn malformed_duration_fails_before_any_network() {
    // Port 9 (discard) on loopback: the duration is checked before anything is contacted.
    for bad in ["", "7", "7x", "d", "1.5d", "7 d"] {
        let err = argument_error(&xtask(
            &["--registry", "127.0.0.1:9/beacon", "--older-than", bad],
            &[],
        ));
        assert!(
            err.contains(&format!(
                "malformed duration {bad:?} for --older-than: expected"
            )),
            "{err}"
        );
    }
}

#[test]
fn ghcr_is_refused_with_the_packages_api_pointer() {
    let err = one_line_error(&xtask(
        &[
            "--registry",
            "ghcr.io/acme/beacon",
            "--older-than",
            "7d",
            "--dry-run",
        ],
        &[],
    ));
    assert!(
        err.contains("GitHub Container Registry (ghcr.io) is not supported"),
        "{err}"
    );
    assert!(err.contains("actions/delete-package-versions"), "{err}");
}

#[test]
fn a_registry_without_a_host_is_refused() {
    let err = argument_error(&xtask(&["--registry", "beacon", "--older-than", "7d"], &[]));
    assert!(err.contains("names no registry host"), "{err}");
}

fn docker_config(dir: &Path, json: &serde_json::Value) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
    dir.display().to_string()
}

/// Runs `args` against `host` with no credentials, then with a wrong password
/// in auths (docker configs under `dir`): each fails with the one line that
/// says to `docker login`.
#[track_caller]
fn assert_credentials_refused(dir: &Path, host: &str, repo: &str, args: &[&str]) {
    let anonymous = docker_config(&dir.join("none"), &serde_json::json!({}));
    let err = one_line_error(&xtask(args, &[("DOCKER_CONFIG", &anonymous)]));
    assert!(
        err.starts_with(&format!(
            "error: registry {host} requires credentials for listing the tags of {host}/{repo} ("
        )) && err.ends_with(&format!("run `docker login {host}`")),
        "{err}"
    );

    let wrong = docker_config(
        &dir.join("wrong"),
        &serde_json::json!({ "auths": { host: { "auth": "YWxpY2U6d3Jvbmc=" } } }),
    );
    let err = one_line_error(&xtask(args, &[("DOCKER_CONFIG", &wrong)]));
    assert!(
        err.starts_with(&format!("error: registry {host} refused the credentials for listing the tags of {host}/{repo} ("))
            && err.ends_with(&format!("run `docker login {host}` with the right account")),
        "{err}"
    );
}

/// A second registry, with htpasswd auth and deletion disabled, holding an
/// expired CI image (copied from the test registry, whose copy goes when
/// this is dropped).
struct AuthSetup {
    auth: AuthRegistry,
    repo: String,
    digest: String,
    dir: TempDir,
    pushed: Vec<String>,
}

fn auth_setup(label: &str) -> AuthSetup {
    let registry = registry();
    require_registry(&registry);
    let auth = AuthRegistry::start(scratch(&format!("{label}-registry")));
    let repo = unique(label);
    let dir = scratch(label);
    let mut pushed = Vec::new();
    let spec = Spec {
        key: "x",
        tags: vec!["ci-chainguard-pr1".into()],
        created: OLD,
        flavor: "ci",
        multi_platform: false,
    };
    let digest = push(&registry, &repo, dir.path(), &spec, &mut pushed);
    let copy = Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .args(["--dest-creds", &format!("alice:{SECRET}")])
        .arg(format!("docker://{registry}/{repo}:ci-chainguard-pr1"))
        .arg(format!("docker://{}/{repo}:ci-chainguard-pr1", auth.addr))
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "skopeo copy failed: {}",
        text(&copy.stderr)
    );
    let setup = AuthSetup {
        auth,
        repo,
        digest,
        dir,
        pushed,
    };
    assert_eq!(setup.resolved().as_deref(), Some(setup.digest.as_str()));
    setup
}

impl AuthSetup {
    /// `--registry HOST/REPO --older-than 30d --keep 0`.
    fn args(&self) -> Vec<String> {
        let reference = format!("{}/{}", self.auth.addr, self.repo);
        [
            "--registry",
            &reference,
            "--older-than",
            "30d",
            "--keep",
            "0",
        ]
        .map(String::from)
        .to_vec()
    }

    /// [`Self::args`] and `--dry-run`.
    fn dry_run(&self) -> Vec<String> {
        let mut args = self.args();
        args.push("--dry-run".into());
        args
    }

    /// The digest of the image's tag, read with the right password.
    fn resolved(&self) -> Option<String> {
        let user = format!("alice:{SECRET}");
        resolve_as(
            &self.auth.addr,
            &self.repo,
            "ci-chainguard-pr1",
            Some(&user),
        )
    }

    /// A docker config with the right password in auths (base64 user:password).
    fn good_config(&self) -> String {
        docker_config(
            &self.dir.path().join("good"),
            &serde_json::json!({ "auths": { format!("http://{}", self.auth.addr): { "auth": BASIC_GOOD } } }),
        )
    }
}

impl Drop for AuthSetup {
    fn drop(&mut self) {
        cleanup(&registry(), &self.repo, &self.pushed);
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// No credentials at all, and a wrong password in auths: one line each,
/// saying to `docker login`.
#[test]
fn basic_auth_without_or_with_wrong_credentials_says_docker_login() {
    let setup = auth_setup("auth-refused");
    assert_credentials_refused(
        setup.dir.path(),
        &setup.auth.addr,
        &setup.repo,
        &strs(&setup.dry_run()),
    );
}

/// The right password in the docker config's auths.
#[test]
fn basic_auth_from_the_docker_config() {
    let setup = auth_setup("auth-config");
    let good = setup.good_config();
    let out = succeeded(&xtask(&strs(&setup.dry_run()), &[("DOCKER_CONFIG", &good)]));
    assert!(
        out.contains(&format!(
            "would delete {} [ci-chainguard-pr1]",
            setup.digest
        )),
        "{out}"
    );
    assert!(!out.contains(SECRET) && !out.contains(BASIC_GOOD), "{out}");
}

/// The same password from a credential helper named by credsStore.
#[test]
fn basic_auth_from_a_credential_helper_named_by_creds_store() {
    let setup = auth_setup("auth-helper");
    let host = &setup.auth.addr;
    let bin = setup.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-xtasktest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r server\nif [ \"$server\" = \"{host}\" ]; then\n  \
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"alice\",\"Secret\":\"{SECRET}\"}}' \"$server\"\nelse\n  \
             echo 'credentials not found in native keychain'; exit 1\nfi\n"
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&helper)
        .status()
        .unwrap();
    let store = docker_config(
        &setup.dir.path().join("store"),
        &serde_json::json!({ "credsStore": "xtasktest" }),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = succeeded(&xtask(
        &strs(&setup.dry_run()),
        &[("DOCKER_CONFIG", &store), ("PATH", &path)],
    ));
    assert!(
        out.contains(&format!(
            "would delete {} [ci-chainguard-pr1]",
            setup.digest
        )),
        "{out}"
    );
}

/// Deleting from a registry with deletion disabled: a clear line, nothing
/// deleted, and no secret printed.
#[test]
fn a_registry_that_refuses_deletion_is_one_line_and_nothing_is_deleted() {
    let setup = auth_setup("auth-delete");
    let good = setup.good_config();
    let out = xtask(&strs(&setup.args()), &[("DOCKER_CONFIG", &good)]);
    let err = one_line_error(&out);
    assert!(
        err.contains(&format!(
            "registry {} does not allow deletion (405",
            setup.auth.addr
        )),
        "{err}"
    );
    assert!(err.contains("enable storage.delete.enabled"), "{err}");
    assert_eq!(setup.resolved().as_deref(), Some(setup.digest.as_str()));
    for output in [text(&out.stdout), text(&out.stderr)] {
        assert!(
            !output.contains(SECRET) && !output.contains(BASIC_GOOD),
            "a secret was printed: {output}"
        );
    }
}

/// A fake registry that speaks the Bearer token flow and paginates its tag list.
struct FakeRegistry {
    addr: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn sha256(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    format!(
        "sha256:{}",
        text(&out.stdout).split_whitespace().next().unwrap()
    )
}

impl FakeRegistry {
    fn start(name: &str) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let config = br#"{"created":"2020-01-01T00:00:00Z","config":{"Labels":{"dev.beacon.image.flavor":"ci"}}}"#.to_vec();
        let config_digest = sha256(&config);
        let manifest = |config: &str, size: usize| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{size}}},"layers":[]}}"#
            )
            .into_bytes()
        };
        let ci_manifest = manifest(&config_digest, config.len());
        let production_manifest = manifest(&sha256(b"{}"), 2);
        let (name, realm, log) = (
            name.to_string(),
            format!("http://{addr}/token"),
            Arc::clone(&requests),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (method, target, authorization) = read_request(&stream);
                log.lock()
                    .unwrap()
                    .push(format!("{method} {target} {authorization}"));
                let digest_header =
                    |body: &[u8]| vec![("Docker-Content-Digest".to_string(), sha256(body))];
                type Answer = (u16, Vec<(String, String)>, Vec<u8>);
                let challenge = || -> Answer {
                    let challenge = format!(
                        r#"Bearer realm="{realm}",service="fake-registry",scope="repository:{name}:pull""#
                    );
                    let body = br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_vec();
                    (401, vec![("WWW-Authenticate".into(), challenge)], body)
                };
                let tags = |tags: &str| format!(r#"{{"name":"{name}","tags":[{tags}]}}"#);
                let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                let (status, headers, body): Answer = if path == "/token" {
                    if authorization == format!("Basic {BASIC_GOOD}") {
                        (200, vec![], br#"{"token":"tok-1"}"#.to_vec())
                    } else {
                        (401, vec![], br#"{"details":"bad credentials"}"#.to_vec())
                    }
                } else if authorization != "Bearer tok-1" {
                    challenge()
                } else if path == "/v2/" {
                    (200, vec![], b"{}".to_vec())
                } else {
                    match path.strip_prefix(&format!("/v2/{name}/")).unwrap_or("") {
                        // Two pages: the second only through the Link header.
                        "tags/list" if !query.contains("last=") => {
                            let link = format!(r#"</v2/{name}/tags/list?last=1.0.0>; rel="next""#);
                            (
                                200,
                                vec![("Link".into(), link)],
                                tags(r#""1.0.0""#).into_bytes(),
                            )
                        }
                        "tags/list" => (200, vec![], tags(r#""ci-chainguard-pr1""#).into_bytes()),
                        "manifests/1.0.0" => (
                            200,
                            digest_header(&production_manifest),
                            production_manifest.clone(),
                        ),
                        "manifests/ci-chainguard-pr1" => {
                            (200, digest_header(&ci_manifest), ci_manifest.clone())
                        }
                        by_digest if by_digest == format!("manifests/{}", sha256(&ci_manifest)) => {
                            (200, digest_header(&ci_manifest), ci_manifest.clone())
                        }
                        blob if blob == format!("blobs/{config_digest}") => {
                            (200, vec![], config.clone())
                        }
                        _ => (
                            404,
                            vec![],
                            br#"{"errors":[{"code":"NOT_FOUND"}]}"#.to_vec(),
                        ),
                    }
                };
                write_response(stream, status, &headers, &body);
            }
        });
        FakeRegistry { addr, requests }
    }
}

/// (method, target, Authorization header) of one HTTP/1.1 request.
fn read_request(stream: &TcpStream) -> (String, String, String) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap_or(0);
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut authorization = String::new();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "authorization" => authorization = value.trim().to_string(),
                "content-length" => length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    (method, target, authorization)
}

fn write_response(mut stream: TcpStream, status: u16, headers: &[(String, String)], body: &[u8]) {
    // A manifest says its media type, as registries do; anything else is JSON.
    let content_type = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(String::from))
        .unwrap_or_else(|| "application/json".to_string());
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\nContent-Type: {content_type}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// `--registry HOST/acme/beacon ... --dry-run --json` against a fake
/// registry of the Bearer token flow.
fn bearer_args(host: &str) -> Vec<String> {
    [
        "--registry",
        &format!("{host}/acme/beacon"),
        "--older-than",
        "30d",
        "--keep",
        "0",
        "--dry-run",
        "--json",
    ]
    .map(String::from)
    .to_vec()
}

/// The token flow: a token bought with the docker config's Basic
/// credentials for the repository's pull scope, then used on every read,
/// including the second tag page, reached only through the Link header.
#[test]
fn bearer_token_flow_with_credentials_and_tag_pagination() {
    let name = "acme/beacon";
    let fake = FakeRegistry::start(name);
    let dir = scratch("bearer");
    let host = fake.addr.clone();
    let good = docker_config(
        &dir.path().join("good"),
        &serde_json::json!({ "auths": { &host: { "auth": BASIC_GOOD } } }),
    );
    let out = xtask(&strs(&bearer_args(&host)), &[("DOCKER_CONFIG", &good)]);
    let stdout = succeeded(&out);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["delete"][0]["tags"][0], "ci-chainguard-pr1", "{json}");
    assert_eq!(json["delete"][0]["created"], "2020-01-01T00:00:00Z");
    assert_eq!(json["keep"].as_array().map(Vec::len), Some(0));
    let log = fake.requests.lock().unwrap().clone();
    let token_requests: Vec<&String> = log
        .iter()
        .filter(|r| r.starts_with("GET /token?"))
        .collect();
    assert!(!token_requests.is_empty(), "{log:#?}");
    for request in &token_requests {
        assert!(
            request.contains("scope=repository%3Aacme%2Fbeacon%3Apull")
                && request.ends_with(&format!("Basic {BASIC_GOOD}")),
            "{request}"
        );
    }
    assert!(
        log.iter().any(
            |r| r.starts_with(&format!("GET /v2/{name}/tags/list?last=1.0.0"))
                && r.ends_with("Bearer tok-1")
        ),
        "{log:#?}"
    );
    assert!(
        log.iter().any(
            |r| r.starts_with(&format!("GET /v2/{name}/blobs/")) && r.ends_with("Bearer tok-1")
        ),
        "the config was read with the token: {log:#?}"
    );
    assert!(!text(&out.stderr).contains(SECRET) && !stdout.contains(SECRET));
}

/// The token flow without credentials, or with wrong ones: one line each,
/// saying to `docker login`.
#[test]
fn bearer_token_flow_without_or_with_wrong_credentials_says_docker_login() {
    let name = "acme/beacon";
    let fake = FakeRegistry::start(name);
    let dir = scratch("bearer-refused");
    assert_credentials_refused(
        dir.path(),
        &fake.addr,
        name,
        &strs(&bearer_args(&fake.addr)),
    );
}
