//! End-to-end test of `cargo xtask prune-ci-images --cache` against the test
//! stack's registry (distribution with deletion enabled, default
//! 127.0.0.1:5000, override with XTASK_TEST_REGISTRY): real BuildKit registry
//! caches, exported by `docker buildx build --cache-to type=registry,...`
//! exactly as `--cache registry` builds write them
//! (`REPO-buildcache:<variant>-<scope>`, `image-manifest=true`), are pruned,
//! and the registry API says what is left.
//!
//! A cache's age comes from the `buildkit/createdat` annotations BuildKit
//! writes on its layers; it cannot be faked, so "expired" is made with
//! sleeps and `--older-than` of a few seconds.
//!
//! Each test works on repositories of its own. They fail (they never skip)
//! when the stack is missing: run `.ci/setup-stack` first.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use support::e2e::{
    curl, one_line_error, prune_ci_images, registry, require_registry, resolve, succeeded, tag_map,
    text, tiny_context, unique_label, MANIFEST_TYPES,
};
use support::TempDir;

fn unique(label: &str) -> String {
    unique_label(&format!("prune-cache-{label}"))
}

/// `xtask prune-ci-images ARGS...`.
fn xtask(args: &[&str]) -> Output {
    prune_ci_images(args, &[])
}

/// `xtask prune-ci-images --registry REFERENCE --cache --older-than AGE MORE...`.
fn prune_caches(reference: &str, older_than: &str, more: &[&str]) -> Output {
    let args = [
        "--registry",
        reference,
        "--cache",
        "--older-than",
        older_than,
    ];
    xtask(&[&args[..], more].concat())
}

/// Exports a real BuildKit registry cache of a tiny unique build to
/// `REGISTRY/CACHE_REPO:TAG`, as `--cache registry` builds do; returns its
/// digest. Retries on a registry 500 (distribution 2.8 can answer
/// "invalid checksum digest format" when a tag is read while being written).
fn export_cache(registry: &str, cache_repo: &str, dir: &Path, tag: &str) -> String {
    let context = tiny_context(
        dir,
        tag,
        &format!("{cache_repo} {tag} {}\n", unique("payload")),
    );
    let cache_to = format!(
        "type=registry,ref={registry}/{cache_repo}:{tag},mode=max,image-manifest=true,oci-mediatypes=true"
    );
    let mut failures = Vec::new();
    for _attempt in 0..3 {
        let out = Command::new("docker")
            .args(["buildx", "build", "--quiet", "--cache-to", &cache_to])
            .args(["--output", "type=cacheonly"])
            .arg(&context)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if out.status.success() {
            return resolve(registry, cache_repo, tag)
                .unwrap_or_else(|| panic!("{cache_repo}:{tag} was exported but does not resolve"));
        }
        let stderr = text(&out.stderr);
        let retry = stderr.contains("500");
        failures.push(stderr);
        if !retry {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!(
        "docker buildx build --cache-to {cache_to} failed: {}",
        failures.join("\n---\n")
    );
}

/// Tags an existing manifest once more (PUT of its exact bytes): two cache
/// refs on one digest.
fn retag(registry: &str, repo: &str, from: &str, to: &str) {
    let url = format!("http://{registry}/v2/{repo}/manifests/{from}");
    let (status, headers, body) = curl("GET", &url, &[], None);
    assert_eq!(status, 200, "GET {repo}:{from}: {body}");
    let media_type = headers.get("content-type").cloned().unwrap();
    let url = format!("http://{registry}/v2/{repo}/manifests/{to}");
    for _attempt in 0..3 {
        let (status, _, answer) = curl(
            "PUT",
            &url,
            &["-H", &format!("Content-Type: {media_type}")],
            Some(body.as_bytes()),
        );
        match status {
            201 => return,
            500 => std::thread::sleep(Duration::from_secs(1)),
            other => panic!("PUT {repo}:{to} answered {other}: {answer}"),
        }
    }
    panic!("PUT {repo}:{to} kept answering 500");
}

/// Pushes a tiny image to `REGISTRY/REPO` under `tags` (the image repository,
/// which the cache pass must never touch).
fn push_image(registry: &str, repo: &str, dir: &Path, tags: &[&str]) -> Vec<String> {
    let context = tiny_context(dir, "image", &format!("{repo} image\n"));
    let names: Vec<String> = tags
        .iter()
        .map(|t| format!("{registry}/{repo}:{t}"))
        .collect();
    let out = Command::new("docker")
        .args(["buildx", "build", "--quiet", "--provenance", "false"])
        .args([
            "--output",
            &format!("type=image,\"name={}\",push=true", names.join(",")),
        ])
        .arg(&context)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker buildx build of the image failed: {}",
        text(&out.stderr)
    );
    names
}

/// Best-effort cleanup when dropped (also when the test fails): every
/// manifest of the test's repositories, and the engine's copies of its images.
/// Never panics (a panic while unwinding would abort).
struct Cleanup {
    registry: String,
    repos: Vec<String>,
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            Command::new("curl")
                .args(["-sS", "-m", "30"])
                .args(args)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()
                .map(|o| text(&o.stdout))
                .unwrap_or_default()
        };
        for repo in &self.repos {
            let base = format!("http://{}/v2/{repo}", self.registry);
            let list: Value =
                serde_json::from_str(&quiet(&[&format!("{base}/tags/list")])).unwrap_or_default();
            let tags = list["tags"].as_array().cloned().unwrap_or_default();
            let mut digests = BTreeSet::new();
            for tag in tags.iter().filter_map(Value::as_str) {
                let head = quiet(&[
                    "-I",
                    "-H",
                    &format!("Accept: {MANIFEST_TYPES}"),
                    &format!("{base}/manifests/{tag}"),
                ]);
                digests.extend(head.lines().find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("docker-content-digest")
                        .then(|| value.trim().to_string())
                }));
            }
            for digest in digests {
                quiet(&["-X", "DELETE", &format!("{base}/manifests/{digest}")]);
            }
        }
        if !self.images.is_empty() {
            let _ = Command::new("docker")
                .args(["image", "rm", "-f"])
                .args(&self.images)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn line_starting<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"))
}

fn without(map: &BTreeMap<String, String>, gone: &[&str]) -> BTreeMap<String, String> {
    map.iter()
        .filter(|(tag, _)| !gone.contains(&tag.as_str()))
        .map(|(t, d)| (t.clone(), d.clone()))
        .collect()
}

fn json_digests(json: &Value, key: &str) -> BTreeSet<String> {
    json[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect()
}

/// A repository `REPO` and its cache repository `REPO-buildcache` of one
/// test, removed when dropped (also when the test fails).
struct Repos {
    registry: String,
    repo: String,
    cache_repo: String,
    dir: TempDir,
    cleanup: Cleanup,
}

fn repos(label: &str) -> Repos {
    let registry = registry();
    require_registry(&registry);
    let repo = unique(label);
    let cache_repo = format!("{repo}-buildcache");
    Repos {
        dir: TempDir::new(&unique(&format!("{label}-ctx"))),
        cleanup: Cleanup {
            registry: registry.clone(),
            repos: vec![cache_repo.clone(), repo.clone()],
            images: Vec::new(),
        },
        registry,
        repo,
        cache_repo,
    }
}

impl Repos {
    /// `REGISTRY/REPO`: what `--registry` names.
    fn reference(&self) -> String {
        format!("{}/{}", self.registry, self.repo)
    }

    /// Exports a real cache as `REPO-buildcache:TAG`; its digest.
    fn export(&self, tag: &str) -> String {
        export_cache(&self.registry, &self.cache_repo, self.dir.path(), tag)
    }

    /// The cache repository's tags and digests.
    fn caches(&self) -> BTreeMap<String, String> {
        tag_map(&self.registry, &self.cache_repo)
    }

    /// Pushes an image to the image repository under tags shaped like cache
    /// refs and ci- images: the cache pass must not even look there.
    fn push_image(&mut self, tags: &[&str]) -> BTreeMap<String, String> {
        self.cleanup.images = push_image(&self.registry, &self.repo, self.dir.path(), tags);
        tag_map(&self.registry, &self.repo)
    }
}

/// Malformed or misdirected runs: one line, nothing deleted.
#[test]
fn malformed_or_misdirected_cache_runs_fail_in_one_line_and_delete_nothing() {
    let repos = repos("malformed");
    repos.export("a-pr-1");
    let before = repos.caches();
    let (registry, reference) = (&repos.registry, repos.reference());
    let err = one_line_error(&xtask(&[
        "--registry",
        &reference,
        "--older-than",
        "1h",
        "--cache",
        "--open-prs",
        "1,x",
    ]));
    assert!(
        err.starts_with("error: malformed --open-prs \"1,x\": expected"),
        "{err}"
    );
    assert!(err.contains("--open-prs none"), "{err}");
    let err = one_line_error(&xtask(&[
        "--registry",
        &reference,
        "--older-than",
        "1h",
        "--cache",
        "--open-prs",
        "",
    ]));
    assert!(err.starts_with("error: empty --open-prs"), "{err}");
    let err = one_line_error(&xtask(&[
        "--registry",
        &reference,
        "--older-than",
        "1h",
        "--open-prs",
        "1",
    ]));
    assert!(
        err.starts_with("error: --open-prs applies only to registry caches"),
        "{err}"
    );
    let err = one_line_error(&xtask(&[
        "--registry",
        &format!("{registry}/{}", repos.cache_repo),
        "--older-than",
        "1h",
        "--cache",
    ]));
    assert!(err.contains("names a cache repository"), "{err}");
    let err = one_line_error(&xtask(&[
        "--registry",
        &format!("{registry}/{}", unique("absent")),
        "--older-than",
        "1h",
        "--cache",
    ]));
    assert!(
        err.starts_with("error: cannot read the cache repository")
            && err.contains("-buildcache does not exist"),
        "{err}"
    );
    assert_eq!(repos.caches(), before);
}

/// Young caches, pull requests 1 and 3 open: only closed pull request 2's
/// cache goes (dry run, as JSON, then for real); main's, and a closed pull
/// request's cache ref on main's very manifest, stay. The caches are what
/// the pruner expects: BuildKit cache manifests with createdat on their
/// layers, one per scope.
#[test]
fn the_caches_of_closed_pull_requests_go_never_mains() {
    let repos = repos("closed");
    let (registry, cache_repo) = (&repos.registry, &repos.cache_repo);
    let main = repos.export("a-main");
    let pr1 = repos.export("a-pr-1");
    let pr2 = repos.export("a-pr-2");
    let pr3 = repos.export("a-pr-3");
    let branch = repos.export("a-branch-feature-x");
    // A closed pull request's cache ref on main's very manifest: never deleted.
    retag(registry, cache_repo, "a-main", "a-pr-4");
    let before = repos.caches();
    assert_eq!(before.len(), 6, "{before:?}");
    assert_eq!(before["a-pr-4"], main);
    let distinct: BTreeSet<&String> = [&main, &pr1, &pr2, &pr3, &branch].into();
    assert_eq!(distinct.len(), 5, "every scope has its own cache manifest");
    let url = format!("http://{registry}/v2/{cache_repo}/manifests/a-pr-1");
    let manifest: Value = serde_json::from_str(&curl("GET", &url, &[], None).2).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.buildkit.cacheconfig.v0"
    );
    assert!(
        manifest["layers"][0]["annotations"]["buildkit/createdat"].is_string(),
        "{manifest}"
    );

    let reference = repos.reference();
    let args = [
        "--registry",
        reference.as_str(),
        "--cache",
        "--older-than",
        "1h",
        "--open-prs",
        "1,3",
    ];
    let out = succeeded(&xtask(&[&args[..], &["--dry-run"]].concat()));
    assert_eq!(repos.caches(), before, "--dry-run deletes nothing");
    assert!(
        out.lines().next().unwrap_or("").starts_with(&format!(
            "{registry}/{cache_repo}: caches of pull requests not open (open: 1, 3)"
        )),
        "{out}"
    );
    assert!(out.contains("--keep does not apply to caches"), "{out}");
    assert_eq!(
        line_starting(&out, "would delete "),
        format!("would delete {pr2} [a-pr-2]: pull request 2 is not open (not in --open-prs)")
    );
    assert_eq!(
        line_starting(&out, &format!("keep {main} ")),
        format!("keep {main} [a-main, a-pr-4]: shares its digest with a-main (the default branch's cache, never deleted)")
    );
    for (digest, tag, number) in [(&pr1, "a-pr-1", 1), (&pr3, "a-pr-3", 3)] {
        let line = line_starting(&out, &format!("keep {digest} [{tag}]: "));
        assert!(
            line.contains(&format!("pull request {number} is open; younger than 1h (")),
            "{line}"
        );
    }
    assert!(
        line_starting(&out, &format!("keep {branch} [a-branch-feature-x]: "))
            .contains("younger than 1h (")
    );
    assert_eq!(
        out.lines().last(),
        Some("dry run: would delete 1 cache ref (1 manifest), keep 5 cache refs (4 manifests); nothing was deleted"),
        "{out}"
    );
    let out = succeeded(&xtask(&[&args[..], &["--dry-run", "--json"]].concat()));
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["repository"], format!("{registry}/{cache_repo}"));
    assert_eq!(json["open_prs"], serde_json::json!([1, 3]));
    assert_eq!(json["dry_run"], true);
    assert_eq!(json_digests(&json, "delete"), BTreeSet::from([pr2.clone()]));
    assert_eq!(
        json_digests(&json, "keep"),
        BTreeSet::from([main.clone(), pr1.clone(), pr3.clone(), branch.clone()])
    );
    assert_eq!(repos.caches(), before);

    let out = succeeded(&xtask(&args));
    assert_eq!(
        line_starting(&out, "deleted sha256:"),
        format!("deleted {pr2} [a-pr-2]: pull request 2 is not open (not in --open-prs)")
    );
    assert_eq!(
        out.lines().last(),
        Some("deleted 1 cache ref (1 manifest), kept 5 cache refs (4 manifests)"),
        "{out}"
    );
    assert_eq!(repos.caches(), without(&before, &["a-pr-2"]));
    assert_eq!(
        resolve(registry, cache_repo, &pr2),
        None,
        "{pr2} is deleted"
    );
    assert_eq!(
        resolve(registry, cache_repo, "a-main").as_ref(),
        Some(&main)
    );
}

/// Let the caches age, then export a fresh one: by age alone, every old
/// pull request and branch cache goes, open or not; the fresh one (pull
/// request 5, open) and main stay.
#[test]
fn expired_caches_go_open_or_not_and_a_fresh_one_and_mains_stay() {
    let repos = repos("expired");
    let (registry, cache_repo) = (&repos.registry, &repos.cache_repo);
    let main = repos.export("a-main");
    let pr1 = repos.export("a-pr-1");
    let pr3 = repos.export("a-pr-3");
    let branch = repos.export("a-branch-feature-x");
    retag(registry, cache_repo, "a-main", "a-pr-4");
    std::thread::sleep(Duration::from_secs(6));
    let pr5 = repos.export("a-pr-5");
    let before = repos.caches();
    let reference = repos.reference();
    let out = succeeded(&prune_caches(&reference, "5s", &["--dry-run"]));
    for (digest, tag) in [
        (&pr1, "a-pr-1"),
        (&pr3, "a-pr-3"),
        (&branch, "a-branch-feature-x"),
    ] {
        let line = line_starting(&out, &format!("would delete {digest} [{tag}]: "));
        assert!(line.ends_with("old, older than 5s"), "{line}");
    }
    assert!(
        line_starting(&out, &format!("keep {pr5} [a-pr-5]: ")).contains("younger than 5s ("),
        "{out}"
    );
    assert!(
        out.contains(&format!("keep {main} [a-main, a-pr-4]: ")),
        "{out}"
    );
    assert_eq!(repos.caches(), before);

    let out = prune_caches(&reference, "5s", &["--open-prs", "1,3,5", "--json"]);
    let json: Value = serde_json::from_str(&succeeded(&out)).unwrap();
    assert_eq!(json["dry_run"], false);
    assert_eq!(
        json_digests(&json, "delete"),
        BTreeSet::from([pr1.clone(), pr3.clone(), branch.clone()])
    );
    assert_eq!(
        json_digests(&json, "keep"),
        BTreeSet::from([main.clone(), pr5.clone()])
    );
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.lines().last(),
        Some("deleted 3 cache refs (3 manifests), kept 3 cache refs (2 manifests)"),
        "{stderr}"
    );
    assert_eq!(
        repos.caches(),
        without(&before, &["a-pr-1", "a-pr-3", "a-branch-feature-x"])
    );
    for digest in [&pr1, &pr3, &branch] {
        assert_eq!(resolve(registry, cache_repo, digest), None, "{digest}");
    }
}

/// No pull request open and everything expired: every pull request cache
/// goes, but main (and the ref on main's manifest) stays, by tag and by
/// digest, with its blobs; running again finds nothing to delete; the
/// image repository was never touched.
#[test]
fn with_no_pull_request_open_every_pull_request_cache_goes_but_mains() {
    let mut repos = repos("none-open");
    let image_tags = repos.push_image(&["a-pr-2", "ci-a-pr2"]);
    assert_eq!(image_tags.len(), 2, "{image_tags:?}");
    let (registry, cache_repo) = (repos.registry.clone(), repos.cache_repo.clone());
    let main = repos.export("a-main");
    retag(&registry, &cache_repo, "a-main", "a-pr-4");
    let pr5 = repos.export("a-pr-5");
    std::thread::sleep(Duration::from_secs(2));
    let reference = repos.reference();
    let out = succeeded(&prune_caches(&reference, "1s", &["--open-prs", "none"]));
    assert!(
        line_starting(&out, &format!("deleted {pr5} [a-pr-5]: ")).starts_with(&format!(
            "deleted {pr5} [a-pr-5]: pull request 5 is not open (not in --open-prs); "
        )),
        "{out}"
    );
    assert_eq!(
        line_starting(&out, "kept "),
        format!("kept {main} [a-main, a-pr-4]: shares its digest with a-main (the default branch's cache, never deleted)")
    );
    assert_eq!(
        out.lines().last(),
        Some("deleted 1 cache ref (1 manifest), kept 2 cache refs (1 manifest)"),
        "{out}"
    );
    let last = repos.caches();
    assert_eq!(
        last,
        BTreeMap::from([
            ("a-main".to_string(), main.clone()),
            ("a-pr-4".to_string(), main.clone())
        ])
    );
    assert_eq!(
        resolve(&registry, &cache_repo, "a-main").as_ref(),
        Some(&main)
    );
    assert_eq!(resolve(&registry, &cache_repo, &main).as_ref(), Some(&main));
    let url = format!("http://{registry}/v2/{cache_repo}/manifests/{main}");
    let manifest: Value = serde_json::from_str(&curl("GET", &url, &[], None).2).unwrap();
    let mut blobs = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    for layer in manifest["layers"].as_array().unwrap() {
        blobs.push(layer["digest"].as_str().unwrap().to_string());
    }
    for blob in blobs {
        let url = format!("http://{registry}/v2/{cache_repo}/blobs/{blob}");
        assert_eq!(curl("HEAD", &url, &[], None).0, 200, "blob {blob} of main");
    }

    let out = succeeded(&prune_caches(&reference, "1s", &["--open-prs", "none"]));
    assert_eq!(
        out.lines().last(),
        Some("deleted 0 cache refs (0 manifests), kept 2 cache refs (1 manifest)"),
        "{out}"
    );
    assert_eq!(repos.caches(), last);
    assert_eq!(
        tag_map(&registry, &repos.repo),
        image_tags,
        "the image repository is untouched"
    );
}
