//! The GitHub workflows, checked against what they promise and against the
//! real CLI:
//!
//! - ci-build.yml runs on pull requests only and build-push.yml on pushes to
//!   main and release tags only, so no event runs both; the events
//!   build-push.yml runs on are the ones `release-image` publishes from;
//! - update-bases.yml runs `cargo xtask update-bases` on a schedule and
//!   proposes the bumped pins as a pull request, with no more permission
//!   than that takes;
//! - permissions are the least each job needs: in build-push.yml the jobs
//!   that run BuildKit or merge its parts hold no OIDC token, the signing
//!   job builds nothing,
//!   only the promotion (in the protected environment `release`) moves tags,
//!   after every part of the gate, and the Actions runtime token reaches only
//!   the job that writes a gha cache;
//! - every third-party action is pinned to a full commit SHA, with its
//!   version in a comment;
//! - build-push.yml builds on one runner per platform, natively, or on one
//!   runner with the repository variable `RELEASE_RUNNERS=single`: every
//!   platform of the release in exactly one part, which the merge job
//!   combines before anything is signed;
//! - no workflow (nor dependabot.yml) names a variant: every matrix is a
//!   job's output (but the release runners' switch), the per-variant ones
//!   the list of build-push.yml's
//!   read-only `variants` job (`cargo xtask variants --json`), so adding a
//!   variant is adding a directory (tests/variants.rs adds one in a scratch
//!   copy and evaluates the matrices there);
//! - every `cargo xtask ...` line is accepted by the real binary: build
//!   commands are planned with `--dry-run` in the situation the workflow runs
//!   in (a pull request, a tag push, a push to main), the rest are parsed
//!   (`XTASK_PARSE_ONLY=1`), so a renamed flag breaks this test, not a release;
//! - build logic stays in `cargo xtask`: no workflow builds, pushes or signs
//!   with raw docker or cosign commands.
//!
//! The workflows are read with the yaml-rust2 crate (a dev-dependency), and
//! the variants and contexts come from the xtask library itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use xtask::context::{BuildContext, CiEnv, GitState};
use xtask::model::names::Platform;

// ---------------------------------------------------------------------------
// YAML, read by a well-kept crate (YAML 1.2, so `on:` stays a key).

mod yaml {
    use serde_json::{Map, Number, Value};
    use yaml_rust2::{Yaml, YamlLoader};

    /// Parses one YAML document into JSON.
    pub fn parse(text: &str) -> Result<Value, String> {
        let documents = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
        match documents.as_slice() {
            [] => Ok(Value::Null),
            [document] => convert(document),
            _ => Err("more than one YAML document".to_string()),
        }
    }

    fn convert(node: &Yaml) -> Result<Value, String> {
        Ok(match node {
            Yaml::Null => Value::Null,
            Yaml::Boolean(b) => Value::Bool(*b),
            Yaml::Integer(i) => Value::Number((*i).into()),
            Yaml::Real(text) => text
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map_or_else(|| Value::String(text.clone()), Value::Number),
            Yaml::String(text) => Value::String(text.clone()),
            Yaml::Array(items) => {
                Value::Array(items.iter().map(convert).collect::<Result<_, _>>()?)
            }
            Yaml::Hash(map) => {
                let mut object = Map::new();
                for (key, value) in map {
                    let key = match key {
                        Yaml::String(text) | Yaml::Real(text) => text.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        other => return Err(format!("unsupported mapping key {other:?}")),
                    };
                    object.insert(key, convert(value)?);
                }
                Value::Object(object)
            }
            Yaml::Alias(_) | Yaml::BadValue => {
                return Err(format!("unsupported YAML node {node:?}"))
            }
        })
    }

    #[test]
    fn reads_what_the_workflows_use() {
        let value = parse("on:\n  push:\n    branches: [main]\njobs:\n  a:\n    timeout-minutes: 30\n    run: |\n      echo 1\n      echo 2\n").unwrap();
        assert_eq!(value["on"]["push"]["branches"][0], "main");
        assert_eq!(value["jobs"]["a"]["timeout-minutes"], 30);
        assert_eq!(value["jobs"]["a"]["run"], "echo 1\necho 2\n");
        assert!(parse("a: [unclosed").is_err());
    }
}

// ---------------------------------------------------------------------------
// The workflows.

fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

struct Workflow {
    file: String,
    text: String,
    value: Value,
}

impl Workflow {
    fn load(path: &Path) -> Workflow {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let value = yaml::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        Workflow { file, text, value }
    }

    /// Event name -> its configuration, whichever form `on:` takes.
    fn triggers(&self) -> BTreeMap<String, Value> {
        match &self.value["on"] {
            Value::String(event) => BTreeMap::from([(event.clone(), Value::Null)]),
            Value::Array(events) => events
                .iter()
                .map(|e| (e.as_str().unwrap().to_string(), Value::Null))
                .collect(),
            Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            other => panic!("{}: unreadable `on:` {other}", self.file),
        }
    }

    fn jobs(&self) -> &Map<String, Value> {
        self.value["jobs"]
            .as_object()
            .unwrap_or_else(|| panic!("{}: no jobs", self.file))
    }

    fn job(&self, id: &str) -> &Value {
        self.jobs()
            .get(id)
            .unwrap_or_else(|| panic!("{}: no job {id}", self.file))
    }

    /// The permissions a job's token gets: its own, else the workflow's.
    fn permissions(&self, job: &str) -> BTreeMap<String, String> {
        let own = &self.job(job)["permissions"];
        let effective = if own.is_null() {
            &self.value["permissions"]
        } else {
            own
        };
        match effective {
            Value::Object(map) => map
                .iter()
                .map(|(scope, level)| (scope.clone(), level.as_str().unwrap_or_default().to_string()))
                .filter(|(_, level)| level != "none")
                .collect(),
            other => panic!(
                "{} job {job}: permissions must be listed per scope (got {other}); unset means the repository default, often write-all",
                self.file
            ),
        }
    }

    fn steps<'a>(&'a self, job: &str) -> &'a [Value] {
        self.job(job)["steps"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Every step of every job, with its job id.
    fn all_steps(&self) -> Vec<(&str, &Value)> {
        self.jobs()
            .iter()
            .flat_map(|(id, job)| {
                job["steps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |step| (id.as_str(), step))
            })
            .collect()
    }

    fn step_using<'a>(&'a self, job: &str, action: &str) -> Option<&'a Value> {
        self.steps(job).iter().find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with(&format!("{action}@")))
        })
    }

    /// The jobs a job waits for.
    fn needs(&self, job: &str) -> BTreeSet<String> {
        match &self.job(job)["needs"] {
            Value::String(one) => BTreeSet::from([one.clone()]),
            Value::Array(many) => many.iter().map(as_text).collect(),
            _ => BTreeSet::new(),
        }
    }

    fn uses_action(&self, action: &str) -> bool {
        self.all_steps().iter().any(|(_, s)| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with(&format!("{action}@")))
        })
    }

    fn scripts(&self) -> Vec<String> {
        self.all_steps()
            .iter()
            .filter_map(|(_, s)| s["run"].as_str().map(str::to_string))
            .collect()
    }
}

fn workflow_dir() -> PathBuf {
    root().join(".github").join("workflows")
}

fn workflow(file: &str) -> Workflow {
    Workflow::load(&workflow_dir().join(file))
}

fn all_workflows() -> Vec<Workflow> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(workflow_dir())
        .expect("the workflows directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 3,
        "expected the ci-build, build-push and retention workflows, found {paths:?}"
    );
    paths.iter().map(|p| Workflow::load(p)).collect()
}

/// The image variants, as the tool discovers them.
fn variants() -> BTreeSet<String> {
    xtask::project::discover_variants(&root())
        .unwrap()
        .into_iter()
        .collect()
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Triggers and permissions.

#[test]
fn triggers_are_mutually_exclusive() {
    let ci = workflow("ci-build.yml").triggers();
    let release = workflow("build-push.yml").triggers();
    assert_eq!(
        ci.keys().collect::<Vec<_>>(),
        ["pull_request"],
        "ci-build.yml runs on pull requests only"
    );
    assert_eq!(
        release.keys().collect::<Vec<_>>(),
        ["push"],
        "build-push.yml runs on pushes only"
    );
    let push = &release["push"];
    assert_eq!(
        push["branches"],
        json!(["main"]),
        "build-push.yml: pushes to main"
    );
    let tags = push["tags"]
        .as_array()
        .expect("build-push.yml: release tags");
    assert!(
        !tags.is_empty()
            && tags
                .iter()
                .all(|t| t.as_str().is_some_and(|t| t.starts_with("v[0-9]"))),
        "{tags:?}"
    );
    for key in ["branches-ignore", "tags-ignore", "paths", "paths-ignore"] {
        assert!(
            push[key].is_null(),
            "build-push.yml: `{key}` would let some releases skip the workflow"
        );
    }
    let shared: Vec<_> = ci
        .keys()
        .filter(|event| release.contains_key(*event))
        .collect();
    assert!(
        shared.is_empty(),
        "events that run both workflows: {shared:?}"
    );
    for wf in all_workflows() {
        assert!(
            !wf.triggers().contains_key("pull_request_target"),
            "{}: pull_request_target runs untrusted code with secrets",
            wf.file
        );
    }
    let retention = workflow("prune-ci-images.yml").triggers();
    assert_eq!(
        retention.keys().collect::<Vec<_>>(),
        ["schedule", "workflow_dispatch"]
    );
    let bases = workflow("update-bases.yml").triggers();
    assert_eq!(
        bases.keys().collect::<Vec<_>>(),
        ["schedule", "workflow_dispatch"]
    );
    let caches = workflow("ci-cache.yml").triggers();
    assert_eq!(caches.keys().collect::<Vec<_>>(), ["push"]);
    assert_eq!(
        caches["push"],
        json!({"branches": ["main"]}),
        "ci-cache.yml: pushes to main only (the default branch's caches)"
    );
}

/// The pull request's host build restores main's compiled dependencies:
/// ci-cache.yml (pushes to main, read-only token) saves the rust-cache entry
/// under the key ci-build.yml's images job restores, pull requests never save
/// one, and both build with `--host-build`.
#[test]
fn pull_requests_restore_the_rust_cache_main_saves() {
    let ci = workflow("ci-build.yml");
    let caches = workflow("ci-cache.yml");
    let restore = ci
        .step_using("images", "Swatinem/rust-cache")
        .expect("ci-build.yml images: rust-cache");
    let save = caches
        .step_using("ci-cache", "Swatinem/rust-cache")
        .expect("ci-cache.yml: rust-cache");
    let key = as_text(&save["with"]["shared-key"]);
    assert!(key.starts_with("ci-host-build-"), "{key}");
    assert!(
        key.contains("hashFiles('Cargo.toml')"),
        "the profiles are in the key: {key}"
    );
    assert_eq!(as_text(&restore["with"]["shared-key"]), key);
    assert_eq!(as_text(&restore["with"]["save-if"]), "false");
    assert!(save["with"]["save-if"].is_null(), "main saves it");
    for (wf, job) in [(&ci, "images"), (&caches, "ci-cache")] {
        let lines = xtask_lines(wf);
        assert!(
            lines.iter().any(|l| l.job == job
                && l.words[0] == "ci-image"
                && l.words.contains(&"--host-build".to_string())),
            "{}: {job} builds with --host-build",
            wf.file
        );
    }
    assert_eq!(
        caches.permissions("ci-cache"),
        BTreeMap::from([("contents".to_string(), "read".to_string())])
    );
}

/// release-image refuses every event but the ones build-push.yml runs on: a
/// trigger added there without the tool knowing (or the reverse) fails here.
#[test]
fn releases_publish_from_exactly_the_events_build_push_runs_on() {
    let release = workflow("build-push.yml").triggers();
    let events: Vec<&str> = release.keys().map(String::as_str).collect();
    assert_eq!(events, xtask::context::RELEASE_EVENTS);
}

#[test]
fn permissions_are_the_least_each_job_needs() {
    let read_only = BTreeMap::from([("contents".to_string(), "read".to_string())]);
    let ci = workflow("ci-build.yml");
    assert!(
        ci.value["permissions"].as_object().is_some(),
        "ci-build.yml: top-level permissions must be set"
    );
    for job in ci.jobs().keys() {
        assert_eq!(
            ci.permissions(job),
            read_only,
            "ci-build.yml job {job}: contents: read and nothing more"
        );
    }

    let release = workflow("build-push.yml");
    let allowed = [
        "contents:read",
        "packages:write",
        "packages:read",
        "id-token:write",
        "actions:read",
    ];
    for job in release.jobs().keys() {
        for (scope, level) in release.permissions(job) {
            assert!(
                allowed.contains(&format!("{scope}:{level}").as_str()),
                "build-push.yml job {job}: {scope}: {level}"
            );
        }
    }
    let grants = |job: &str| -> Vec<String> {
        release
            .permissions(job)
            .into_iter()
            .map(|(scope, level)| format!("{scope}:{level}"))
            .collect()
    };
    // The job that compiles and runs BuildKit holds no OIDC token; the one
    // that signs builds nothing; only the promotion may move tags, from a
    // protected environment.
    assert_eq!(
        grants("build"),
        ["actions:read", "contents:read", "packages:write"],
        "build-push.yml job build"
    );
    assert_eq!(
        grants("sign"),
        [
            "actions:read",
            "contents:read",
            "id-token:write",
            "packages:write"
        ],
        "build-push.yml job sign"
    );
    assert_eq!(
        grants("promote"),
        ["actions:read", "contents:read", "packages:write"]
    );
    // The merge pushes the merged indexes: no OIDC token, nothing built.
    assert_eq!(
        grants("merge"),
        ["actions:read", "contents:read", "packages:write"],
        "build-push.yml job merge"
    );
    // The job that lists the variants for the gate's matrix reads the
    // checkout and nothing else.
    assert_eq!(
        grants("variants"),
        ["contents:read"],
        "build-push.yml job variants"
    );
    for job in release.jobs().keys() {
        let token = grants(job).contains(&"id-token:write".to_string());
        assert_eq!(
            token,
            job == "sign",
            "build-push.yml job {job}: only the signing job holds id-token: write"
        );
    }
    for (job, step) in release.all_steps() {
        let uses = step["uses"].as_str().unwrap_or_default();
        let run = step["run"].as_str().unwrap_or_default();
        let builds = uses.starts_with("docker/setup-buildx-action@")
            || run.contains("release-image")
            || run.contains("ci-image")
            || run.contains("rebuild-check");
        assert!(
            !(builds && ["sign", "merge"].contains(&job)),
            "build-push.yml job {job} builds nothing: {step}"
        );
    }
    for (id, job) in release.jobs() {
        let environment = as_text(&job["environment"]);
        assert_eq!(
            environment == "release",
            id == "promote",
            "build-push.yml job {id}: only promote runs in the protected environment `release`"
        );
    }

    let retention = workflow("prune-ci-images.yml");
    for job in retention.jobs().keys() {
        let granted = retention.permissions(job);
        // The CI image registry is not GitHub's (ghcr.io cannot delete through
        // the registry API): its credentials are secrets, the token only reads
        // the code and the list of open pull requests (whose caches are kept).
        assert_eq!(
            granted.into_iter().collect::<Vec<_>>(),
            [
                ("contents".to_string(), "read".to_string()),
                ("pull-requests".to_string(), "read".to_string())
            ],
            "prune-ci-images.yml job {job}: contents and pull-requests: read only"
        );
    }

    // Pushing the branch and opening the pull request, nothing else (no
    // packages, no id-token: it reads public registries only).
    let bases = workflow("update-bases.yml");
    for job in bases.jobs().keys() {
        assert_eq!(
            bases.permissions(job).into_iter().collect::<Vec<_>>(),
            [
                ("contents".to_string(), "write".to_string()),
                ("pull-requests".to_string(), "write".to_string())
            ],
            "update-bases.yml job {job}: contents and pull-requests: write only"
        );
    }

    for wf in all_workflows() {
        assert_eq!(
            wf.value["permissions"],
            json!({}),
            "{}: grant nothing at the top level, per job instead",
            wf.file
        );
    }
}

// ---------------------------------------------------------------------------
// Actions.

/// `owner/repo[/path]@<40 hex>`: a commit SHA cannot be moved, a tag can.
fn is_sha_pinned(uses: &str) -> bool {
    if uses.starts_with("./") {
        return true;
    }
    if let Some(image) = uses.strip_prefix("docker://") {
        return image.contains("@sha256:");
    }
    let Some((action, reference)) = uses.split_once('@') else {
        return false;
    };
    action.split('/').count() >= 2
        && reference.len() == 40
        && reference
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

#[test]
fn every_action_is_pinned_to_a_commit_with_its_version() {
    assert!(is_sha_pinned(
        "actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd"
    ));
    for unpinned in [
        "actions/checkout@v6",
        "actions/checkout@main",
        "actions/checkout@de0fac2",
        "docker://alpine:3",
    ] {
        assert!(!is_sha_pinned(unpinned), "{unpinned}");
    }
    let mut checked = 0;
    for wf in all_workflows() {
        let mut uses: Vec<String> = wf
            .all_steps()
            .iter()
            .filter_map(|(_, s)| s["uses"].as_str().map(str::to_string))
            .collect();
        uses.extend(
            wf.jobs()
                .values()
                .filter_map(|job| job["uses"].as_str().map(str::to_string)),
        );
        for action in &uses {
            assert!(
                is_sha_pinned(action),
                "{}: `{action}` is not pinned to a full commit SHA",
                wf.file
            );
        }
        // Each pin says which release it is, for reviewers and Dependabot.
        let lines: Vec<&str> = wf
            .text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("uses:") || l.starts_with("- uses:"))
            .collect();
        assert_eq!(lines.len(), uses.len(), "{}: one `uses:` per line", wf.file);
        for line in lines {
            if line.contains("uses: ./") {
                continue;
            }
            let comment = line
                .split_once(" # ")
                .map(|(_, c)| c.trim())
                .unwrap_or_default();
            let version = comment.strip_prefix('v').unwrap_or_default();
            assert!(
                version.starts_with(|c: char| c.is_ascii_digit()) && version.contains('.'),
                "{}: `{line}` needs its version in a comment (`# vX.Y.Z`)",
                wf.file
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} pinned actions found");
}

#[test]
fn checkouts_do_not_keep_credentials() {
    for wf in all_workflows() {
        for (job, step) in wf.all_steps() {
            if step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/checkout@"))
            {
                assert_eq!(
                    step["with"]["persist-credentials"],
                    json!(false),
                    "{} job {job}: persist-credentials",
                    wf.file
                );
            }
        }
    }
}

#[test]
fn dependabot_updates_actions_base_images_and_crates() {
    let path = root().join(".github").join("dependabot.yml");
    let config = yaml::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(config["version"], json!(2));
    let updates = config["updates"].as_array().expect("updates");
    let entry = |ecosystem: &str| {
        updates
            .iter()
            .find(|u| u["package-ecosystem"] == json!(ecosystem))
            .unwrap_or_else(|| panic!("dependabot.yml: no {ecosystem} entry"))
    };
    assert_eq!(entry("github-actions")["directory"], json!("/"));
    assert_eq!(entry("cargo")["directory"], json!("/"));
    // A glob, not a list of the variants: adding a variant is adding a
    // directory (`no_file_of_github_names_a_variant` checks no name is written).
    let mut docker = BTreeSet::new();
    for pattern in entry("docker")["directories"].as_array().unwrap() {
        let pattern = as_text(pattern);
        let matched = directories_matching(&pattern);
        assert!(
            !matched.is_empty(),
            "dependabot.yml: {pattern} matches no directory"
        );
        docker.extend(matched);
    }
    let expected: BTreeSet<String> = variants().iter().map(|v| format!("/images/{v}")).collect();
    assert_eq!(
        docker, expected,
        "dependabot.yml: every images/<variant> directory, and nothing else"
    );
}

/// The directories of the checkout a Dependabot `directories` entry names:
/// `/a/b`, or `/a/*` (every directory under `a`).
fn directories_matching(pattern: &str) -> BTreeSet<String> {
    let Some(parent) = pattern.strip_suffix("/*") else {
        return BTreeSet::from([pattern.to_string()]);
    };
    assert!(
        !parent.contains('*'),
        "only a last `*` is understood here: {pattern}"
    );
    std::fs::read_dir(root().join(parent.trim_start_matches('/')))
        .unwrap_or_else(|e| panic!("dependabot.yml: {pattern}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| format!("{parent}/{}", p.file_name().unwrap().to_string_lossy()))
        .collect()
}

#[test]
fn dependabot_globs_are_read_like_dependabot() {
    let images = directories_matching("/images/*");
    for variant in variants() {
        assert!(images.contains(&format!("/images/{variant}")), "{images:?}");
    }
    assert!(
        root().join("images/compile-service.sh").is_file()
            && !images.contains("/images/compile-service.sh"),
        "directories only: {images:?}"
    );
    assert_eq!(
        directories_matching("/images"),
        BTreeSet::from(["/images".to_string()])
    );
}

// ---------------------------------------------------------------------------
// Variants: adding one is adding a directory, workflows included
// (tests/variants.rs adds one in a scratch copy and evaluates the matrices).

/// Where a text names one of `names` as a word of its own (not inside a
/// longer name: `ubi9` is in `ci-ubi9` and `images/ubi9/`, not in `ubi90`).
fn named_variants(text: &str, names: &BTreeSet<String>) -> Vec<String> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        for name in names {
            let named = line.match_indices(name.as_str()).any(|(at, _)| {
                let before = line[..at].chars().next_back();
                let after = line[at + name.len()..].chars().next();
                !before.is_some_and(|c| c.is_ascii_alphanumeric())
                    && !after.is_some_and(|c| c.is_ascii_alphanumeric())
            });
            if named {
                found.push(format!("line {}: {name}: {}", number + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn named_variants_are_found_as_words() {
    let names = BTreeSet::from(["ubi9".to_string(), "wolfi-base".to_string()]);
    let text =
        "variant: [ubi9, x]\nimage: ci-ubi9-pr1\nubi90 and wolfi-based\n- /images/wolfi-base\n";
    assert_eq!(
        named_variants(text, &names),
        [
            "line 1: ubi9: variant: [ubi9, x]",
            "line 2: ubi9: image: ci-ubi9-pr1",
            "line 4: wolfi-base: - /images/wolfi-base"
        ]
    );
}

/// No workflow (nor dependabot.yml) names a variant: their lists of
/// variants come from the tool, so a new images/<variant> needs no edit here.
#[test]
fn no_file_of_github_names_a_variant() {
    let mut files: Vec<PathBuf> = all_workflows()
        .iter()
        .map(|wf| workflow_dir().join(&wf.file))
        .collect();
    files.push(root().join(".github/dependabot.yml"));
    let names = variants();
    let mut offenders = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for found in named_variants(&text, &names) {
            offenders.push(format!("{}: {found}", path.display()));
        }
    }
    assert!(
        offenders.is_empty(),
        "variant names written by hand (take them from `cargo xtask variants --json`, a job output):\n{}",
        offenders.join("\n")
    );
}

/// No matrix is written by hand: each is a job's output, read with
/// `fromJSON(needs.<job>.outputs...)` from a job it waits for, and a matrix
/// over variants is the variants job's list.
#[test]
fn every_matrix_is_a_job_output() {
    let mut over_variants = 0;
    for wf in all_workflows() {
        for (id, job) in wf.jobs() {
            let Some(matrix) = job["strategy"]["matrix"].as_object() else {
                continue;
            };
            for (key, value) in matrix {
                let context = format!("{} job {id}: matrix `{key}`", wf.file);
                // The release's runners: a switch on a repository variable
                // (the_release_runners_switch_builds_every_platform_once).
                if wf.file == "build-push.yml" && id == "build" && key == "include" {
                    assert!(as_text(value).contains("vars.RELEASE_RUNNERS"), "{context}");
                    continue;
                }
                let expression = value
                    .as_str()
                    .and_then(|v| v.strip_prefix("${{ fromJSON(needs."))
                    .unwrap_or_else(|| panic!("{context} is written by hand: {value}"));
                let needed = expression.split('.').next().unwrap_or_default();
                assert!(
                    wf.needs(id).contains(needed),
                    "{context}: reads job {needed}, which it does not wait for"
                );
                if key == "variant" {
                    assert_eq!(
                        as_text(value),
                        "${{ fromJSON(needs.variants.outputs.variants) }}",
                        "{context}"
                    );
                    over_variants += 1;
                }
            }
        }
    }
    assert!(over_variants >= 1, "no matrix over the variants found");
}

/// The job that lists the variants: the commit's checkout and `cargo xtask
/// variants --json`, nothing else (no other action, no artifact, no secret,
/// no earlier job), its step output exposed as the job's; run here as the
/// job runs it, it lists exactly the variants the library discovers.
#[test]
fn the_variants_job_lists_the_variants_on_disk() {
    let wf = workflow("build-push.yml");
    let job = wf.job("variants");
    assert!(
        wf.needs("variants").is_empty(),
        "the list is the commit's: it waits for no job"
    );
    let text = job.to_string();
    for forbidden in ["secrets.", "github.token", "environment", "\"env\""] {
        assert!(
            !text.contains(forbidden),
            "build-push.yml job variants: {forbidden}"
        );
    }
    let steps = wf.steps("variants");
    let actions: Vec<&str> = steps
        .iter()
        .filter_map(|s| s["uses"].as_str())
        .map(|u| u.split('@').next().unwrap_or(u))
        .collect();
    assert_eq!(
        actions,
        ["actions/checkout"],
        "nothing but the checkout runs before the list is read"
    );
    let checkout = wf.step_using("variants", "actions/checkout").unwrap();
    for key in ["ref", "repository", "path"] {
        assert!(
            checkout["with"][key].is_null(),
            "the commit's own checkout: {key}"
        );
    }
    let lines: Vec<XtaskLine> = xtask_lines(&wf)
        .into_iter()
        .filter(|l| l.job == "variants")
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].words, ["variants", "--json"]);
    assert_eq!(steps.len(), 2, "the checkout and the list");
    let step = steps.iter().find(|s| s["run"].is_string()).unwrap();
    assert_eq!(
        as_text(&job["outputs"]["variants"]),
        format!(
            "${{{{ steps.{}.outputs.{} }}}}",
            as_text(&step["id"]),
            xtask::commands::variants::STEP_OUTPUT
        )
    );
    let (output, outputs) = run_with_step_outputs(&lines[0].words);
    assert!(output.status.success(), "{output:?}");
    let listed: Vec<String> =
        serde_json::from_str(&outputs[xtask::commands::variants::STEP_OUTPUT]).unwrap();
    assert_eq!(listed, xtask::project::discover_variants(&root()).unwrap());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        outputs[xtask::commands::variants::STEP_OUTPUT],
        "--json prints what the step output holds"
    );
}

/// Runs `cargo xtask WORDS` as a GitHub Actions step would, and returns the
/// step outputs it wrote.
fn run_with_step_outputs(words: &[String]) -> (Output, BTreeMap<String, String>) {
    let file = std::env::temp_dir().join(format!(
        "xtask-workflows-output-{}-{}",
        std::process::id(),
        words.join("_").replace(['/', ' '], "_")
    ));
    let _ = std::fs::remove_file(&file);
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(words)
        .current_dir(root())
        .env_remove("XTASK_PARSE_ONLY")
        .env_remove("XTASK_PROJECT_ROOT")
        .env("GITHUB_OUTPUT", &file)
        .output()
        .expect("run the xtask binary");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let _ = std::fs::remove_file(&file);
    let outputs = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (output, outputs)
}

// ---------------------------------------------------------------------------
// What each workflow does.

#[test]
fn ci_build_builds_smoke_tests_and_scans_every_variant() {
    let wf = workflow("ci-build.yml");
    assert_eq!(wf.value["concurrency"]["cancel-in-progress"], json!(true));
    let group = as_text(&wf.value["concurrency"]["group"]);
    assert!(
        group.contains("github.event.pull_request.number"),
        "one concurrency group per pull request: {group}"
    );
    for (id, job) in wf.jobs() {
        let minutes = job["timeout-minutes"]
            .as_i64()
            .unwrap_or_else(|| panic!("ci-build.yml job {id}: timeout-minutes"));
        assert!(
            (1..=30).contains(&minutes),
            "ci-build.yml job {id}: timeout {minutes} > 30 minutes"
        );
    }

    // One job compiles the service and builds every variant in one bake
    // (`ci-image` without --variant); one job per variant checks its image.
    let images = wf.job("images");
    let builds: Vec<XtaskLine> = xtask_lines(&wf)
        .into_iter()
        .filter(|l| l.words.first().map(String::as_str) == Some("ci-image"))
        .collect();
    assert_eq!(builds.len(), 1, "one CI build per pull request: {builds:?}");
    assert_eq!(builds[0].job, "images");
    assert!(
        !builds[0].words.iter().any(|w| w.starts_with("--variant")),
        "the build covers every variant in one bake: {}",
        builds[0].line
    );
    assert!(
        as_text(&images["outputs"]["result"]).contains("steps.build.outputs.result"),
        "the build's result feeds the per-variant jobs"
    );
    for action in [
        "docker/setup-buildx-action",
        "Swatinem/rust-cache",
        "crazy-max/ghaction-github-runtime",
        "actions/upload-artifact",
    ] {
        assert!(
            wf.step_using("images", action).is_some(),
            "ci-build.yml job images: {action}"
        );
    }
    let check = wf.job("check");
    assert_eq!(as_text(&check["needs"]), "images");
    assert_eq!(
        check["strategy"]["fail-fast"],
        json!(false),
        "one variant's failure must not hide the others'"
    );
    assert_eq!(
        as_text(&check["strategy"]["matrix"]["include"]),
        "${{ fromJSON(needs.images.outputs.result).variants }}",
        "one check per variant the build produced (so every images/<variant>)"
    );
    assert!(wf
        .step_using("check", "actions/download-artifact")
        .is_some());
    assert!(
        wf.steps("check")
            .iter()
            .all(|s| s["run"].as_str().is_none_or(|r| !r.contains("cargo "))),
        "the checks compile nothing"
    );
    let trivy = wf
        .step_using("check", "aquasecurity/trivy-action")
        .expect("a vulnerability scan");
    assert_eq!(as_text(&trivy["with"]["severity"]), "CRITICAL");
    assert_eq!(as_text(&trivy["with"]["exit-code"]), "1");
    assert_eq!(as_text(&trivy["with"]["image-ref"]), "${{ matrix.image }}");
    // CI images' binaries carry no crate list (plain cargo): the crates are
    // scanned from Cargo.lock.
    let crates = wf
        .step_using("lint", "aquasecurity/trivy-action")
        .expect("ci-build.yml scans Cargo.lock's crates");
    assert_eq!(as_text(&crates["with"]["scan-type"]), "fs");
    assert_eq!(as_text(&crates["with"]["scan-ref"]), "Cargo.lock");
    assert_eq!(as_text(&crates["with"]["exit-code"]), "1");
    assert_eq!(as_text(&crates["with"]["severity"]), "CRITICAL");

    let scripts = wf.scripts().join("\n");
    assert!(
        scripts.contains("docker run") && scripts.contains("/healthz"),
        "a smoke test of the loaded image"
    );
    assert!(scripts.contains("GITHUB_STEP_SUMMARY"), "a job summary");
    let lint = xtask_lines(&wf)
        .into_iter()
        .filter(|l| l.words.first().map(String::as_str) == Some("lint"))
        .count();
    assert_eq!(lint, 1, "ci-build.yml runs `cargo xtask lint`");
}

#[test]
fn build_push_publishes_in_stages_and_tags_only_after_the_gate() {
    let wf = workflow("build-push.yml");
    for (id, job) in wf.jobs() {
        let minutes = job["timeout-minutes"]
            .as_i64()
            .unwrap_or_else(|| panic!("build-push.yml job {id}: timeout-minutes"));
        assert!(
            (1..=60).contains(&minutes),
            "build-push.yml job {id}: timeout {minutes} > 60 minutes"
        );
    }
    assert_eq!(
        wf.value["concurrency"]["cancel-in-progress"],
        json!(false),
        "never cancel a release half-way"
    );
    let needs = |job: &str| wf.needs(job);
    // build (every runner) -> merge -> sign -> verify; scan and smoke on the
    // merged digests; promote after every part of the gate.
    let one = |job: &str| BTreeSet::from([job.to_string()]);
    assert_eq!(needs("merge"), one("build"));
    assert_eq!(needs("sign"), one("merge"));
    assert_eq!(needs("verify"), one("sign"));
    assert_eq!(
        needs("scan"),
        BTreeSet::from(["merge".to_string(), "variants".to_string()])
    );
    assert_eq!(needs("smoke"), one("merge"));
    assert_eq!(needs("rebuild-check"), one("merge"));
    let gate: BTreeSet<String> = ["merge", "verify", "scan", "smoke"]
        .map(String::from)
        .into();
    assert_eq!(needs("promote"), gate, "promote waits for the whole gate");

    // The build derives the tags, the merge derives the release again and
    // the promotion the tags (records are untrusted): all need every release tag.
    for job in ["build", "merge", "promote"] {
        let checkout = wf.step_using(job, "actions/checkout").expect("a checkout");
        assert_eq!(
            checkout["with"]["fetch-depth"],
            json!(0),
            "{job}: full history and tags, to compute `latest`"
        );
    }
    // The Dockerfiles cross-compile on the build platform and their
    // production stages run no command: nothing runs under emulation.
    assert!(
        !wf.uses_action("docker/setup-qemu-action"),
        "QEMU only where a Dockerfile still needs emulation"
    );
    // A release must not restore caches a less trusted run could have written.
    for cache in ["Swatinem/rust-cache", "actions/cache"] {
        assert!(
            !wf.uses_action(cache),
            "build-push.yml: no {cache} in the release workflow (cache poisoning)"
        );
    }
    // The Actions runtime token reaches only jobs that write a gha cache.
    for (id, _) in wf.jobs() {
        let exports = wf
            .step_using(id, "crazy-max/ghaction-github-runtime")
            .is_some();
        let writes_gha = xtask_lines(&wf).iter().any(|l| {
            l.job == *id && l.words[0] == "ci-image" && l.words.contains(&"gha".to_string())
        });
        assert_eq!(
            exports, writes_gha,
            "build-push.yml job {id}: the runtime-token export belongs only to jobs that write a gha cache"
        );
    }
    // cosign: pinned in every job that runs it (cosign_3_is_pinned_in_every_job_that_runs_it).
    // The scan: the real trivy, pinned, on every platform of every variant by digest.
    let trivy = wf
        .step_using("scan", "aquasecurity/setup-trivy")
        .expect("trivy is installed in the scan job");
    assert!(
        as_text(&trivy["with"]["version"]).starts_with("v0."),
        "trivy version pinned"
    );
    assert_eq!(
        as_text(&wf.job("scan")["strategy"]["matrix"]["variant"]),
        "${{ fromJSON(needs.variants.outputs.variants) }}",
        "every variant on disk is scanned, as the variants job lists them"
    );
    assert!(
        wf.step_using("scan", "actions/upload-artifact").is_some(),
        "SBOMs uploaded as artifacts"
    );
    // Smoke runs of every platform image, each on a native runner.
    let smoke = wf.job("smoke");
    assert_eq!(
        as_text(&smoke["strategy"]["matrix"]["include"]),
        "${{ fromJSON(needs.merge.outputs.platform-images) }}"
    );
    let runner = as_text(&smoke["runs-on"]);
    for native in [
        "'ubuntu-24.04-arm'",
        "'ubuntu-24.04'",
        "matrix.platform == 'linux/arm64'",
    ] {
        assert!(runner.contains(native), "smoke runs-on {runner}: {native}");
    }
    let smoke_script = wf
        .steps("smoke")
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<String>();
    for step in ["docker run", "/healthz", "/version", "docker stop"] {
        assert!(smoke_script.contains(step), "the smoke run: {step}");
    }
    // The part records and the record travel as artifacts; every later stage
    // reads them, also from an earlier attempt (re-runs resume from them).
    for job in ["build", "merge"] {
        assert!(
            wf.step_using(job, "actions/upload-artifact").is_some(),
            "{job}"
        );
    }
    for job in ["build", "merge", "sign", "verify", "scan", "promote"] {
        let download = wf
            .step_using(job, "actions/download-artifact")
            .unwrap_or_else(|| panic!("build-push.yml job {job} downloads the release record"));
        assert_eq!(
            as_text(&download["with"]["run-id"]),
            "${{ github.run_id }}",
            "{job}"
        );
    }
    assert!(
        wf.scripts().join("\n").contains("GITHUB_STEP_SUMMARY"),
        "a job summary"
    );

    let lines = xtask_lines(&wf);
    let command = |name: &str| {
        lines
            .iter()
            .filter(|l| l.words[0] == name)
            .collect::<Vec<_>>()
    };
    let flag = |line: &XtaskLine, name: &str| {
        line.words
            .iter()
            .position(|w| w == name)
            .map(|i| line.words[i + 1].clone())
    };
    let release = command("release-image");
    assert_eq!(
        release.len(),
        1,
        "build-push.yml runs `cargo xtask release-image` once"
    );
    assert_eq!(release[0].job, "build");
    for word in ["--build-only", "--part"] {
        assert!(
            release[0].words.contains(&word.to_string()),
            "the build job pushes its part and stops: {word}"
        );
    }
    let merged = command("merge-release");
    assert_eq!(merged.len(), 1, "build-push.yml merges once");
    assert_eq!(merged[0].job, "merge");
    let record = flag(merged[0], "--record").expect("the merge job writes the record");
    for (name, job) in [
        ("sign", "sign"),
        ("verify", "verify"),
        ("scan", "scan"),
        ("promote", "promote"),
    ] {
        let found = command(name);
        assert_eq!(
            found.len(),
            1,
            "build-push.yml runs `cargo xtask {name}` once"
        );
        assert_eq!(found[0].job, job, "cargo xtask {name}");
        assert_eq!(
            flag(found[0], "--record"),
            Some(record.clone()),
            "{name} reads the record"
        );
    }
    assert_eq!(
        flag(command("sign")[0], "--sign").as_deref(),
        Some("keyless")
    );
    // The gate's signer is this repository's release workflow, derived by the
    // tool from the repository: no hand-written regexp.
    for name in ["verify", "promote"] {
        let line = command(name)[0];
        assert_eq!(
            flag(line, "--repository").as_deref(),
            Some("acme/beacon"),
            "{name}"
        );
        assert!(
            !line
                .words
                .iter()
                .any(|w| w.starts_with("--certificate-identity")),
            "{name}: the identity is derived, not written"
        );
    }
    let identity =
        xtask::model::identity::SignerIdentity::release_workflow("acme/beacon".parse().unwrap());
    assert_eq!(
        identity.workflow,
        format!(".github/workflows/{}", wf.file),
        "the identity names this workflow"
    );
    let triggers = wf.triggers();
    assert_eq!(
        triggers.keys().collect::<Vec<_>>(),
        [&identity.trigger],
        "the identity's trigger is this workflow's"
    );
}

/// The build matrix of build-push.yml for both values of the repository
/// variable RELEASE_RUNNERS: (`single`, anything else), read from its one
/// expression `fromJSON(vars.RELEASE_RUNNERS == 'single' && 'A' || 'B')`.
fn release_runners(wf: &Workflow) -> (Vec<Value>, Vec<Value>) {
    let expression = as_text(&wf.job("build")["strategy"]["matrix"]["include"]);
    let literals: Vec<&str> = expression.split('\'').skip(1).step_by(2).collect();
    assert_eq!(
        expression
            .split('\'')
            .step_by(2)
            .map(str::trim)
            .collect::<Vec<_>>(),
        ["${{ fromJSON(vars.RELEASE_RUNNERS ==", "&&", "||", ") }}"],
        "build-push.yml job build: one switch on RELEASE_RUNNERS: {expression}"
    );
    assert_eq!(literals[0], "single", "{expression}");
    let entries = |text: &str| -> Vec<Value> {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    };
    (entries(literals[1]), entries(literals[2]))
}

/// Native runners by default, one runner with RELEASE_RUNNERS=single: every
/// platform of the release in exactly one part, each part's line planned
/// as the runner runs it, and every part merged by the merge job.
#[test]
fn the_release_runners_switch_builds_every_platform_once() {
    let wf = workflow("build-push.yml");
    let job = wf.job("build");
    assert_eq!(as_text(&job["runs-on"]), "${{ matrix.runner }}");
    assert_eq!(
        job["strategy"]["fail-fast"],
        json!(false),
        "a failed runner keeps the other's part for the re-run"
    );
    let buildx = wf
        .step_using("build", "docker/setup-buildx-action")
        .expect("build sets up buildx");
    assert_eq!(
        as_text(&buildx["with"]["platforms"]),
        "${{ matrix.platform }}",
        "each runner's builder declares the platforms it builds"
    );
    let (single, native) = release_runners(&wf);
    let release = xtask_lines(&wf)
        .into_iter()
        .find(|l| l.words[0] == "release-image")
        .expect("the build job runs release-image");
    let runner_of = |platform: &str| match platform {
        "linux/arm64" => "ubuntu-24.04-arm",
        _ => "ubuntu-24.04",
    };
    for (mode, entries) in [("single", &single), ("native", &native)] {
        let mut seen: Vec<String> = Vec::new();
        for entry in entries {
            let platform = as_text(&entry["platform"]);
            let runner = as_text(&entry["runner"]);
            let platforms: Vec<String> = platform.split(',').map(String::from).collect();
            if mode == "native" {
                assert_eq!(
                    platforms.len(),
                    1,
                    "{mode}: one platform per runner: {entry}"
                );
                assert_eq!(
                    runner,
                    runner_of(&platform),
                    "{mode}: native runner: {entry}"
                );
            } else {
                assert_eq!(runner, "ubuntu-24.04", "{mode}: {entry}");
            }
            seen.extend(platforms);
            // The runner's line, as it runs there, plans its platforms of every variant.
            let mut line = XtaskLine {
                words: release.words.clone(),
                ..release.clone()
            };
            let at = line.words.iter().position(|w| w == "--platform").unwrap();
            line.words[at + 1] = platform.clone();
            let at = line.words.iter().position(|w| w == "--record").unwrap();
            line.words[at + 1] =
                format!("target/release-parts/part-{}.json", as_text(&entry["part"]));
            check_release_plan(&line, &dry_run_plan(&line, "main"));
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            seen.len(),
            "{mode}: a platform built twice: {seen:?}"
        );
        assert_eq!(
            sorted.join(","),
            xtask::plan::DEFAULT_PLATFORMS,
            "{mode}: every platform of the release"
        );
        let parts: BTreeSet<String> = entries.iter().map(|e| as_text(&e["part"])).collect();
        assert_eq!(parts.len(), entries.len(), "{mode}: part names are unique");
    }
    assert_eq!(single.len(), 1, "RELEASE_RUNNERS=single: one runner");
    // Each part is uploaded under a name the merge job downloads, and merged.
    let upload = wf
        .step_using("build", "actions/upload-artifact")
        .expect("the build job keeps its part");
    assert_eq!(
        as_text(&upload["with"]["name"]),
        "release-part-${{ matrix.part }}"
    );
    assert_eq!(
        as_text(&upload["with"]["path"]),
        "target/release-parts/part-${{ matrix.part }}.json"
    );
    let record = release.words.iter().position(|w| w == "--record").unwrap();
    assert_eq!(
        release.words[record + 1],
        "target/release-parts/part-amd64.json",
        "uploads what it wrote"
    );
    // The jobs that plan the release (a dirty checkout is refused) keep
    // what they download out of it: under target/, which git ignores.
    for job in ["build", "merge"] {
        for step in wf.steps(job) {
            if as_text(&step["uses"]).starts_with("actions/download-artifact@") {
                let path = as_text(&step["with"]["path"]);
                assert!(
                    path.starts_with("target/"),
                    "{job}: downloads into {path:?}"
                );
            }
        }
    }
    let download = wf
        .step_using("merge", "actions/download-artifact")
        .expect("the merge job downloads the parts");
    assert_eq!(as_text(&download["with"]["pattern"]), "release-part-*");
    assert_eq!(download["with"]["merge-multiple"], json!(true));
    let merge = xtask_lines(&wf)
        .into_iter()
        .find(|l| l.words[0] == "merge-release")
        .expect("the merge job runs merge-release");
    let dir = as_text(&download["with"]["path"]);
    assert_eq!(
        merge.words[1..3],
        ["--part".to_string(), format!("{dir}/*.json")]
    );
    let resume = wf
        .step_using("build", "actions/download-artifact")
        .expect("a re-run resumes from its part");
    assert_eq!(
        as_text(&resume["with"]["pattern"]),
        "release-part-${{ matrix.part }}"
    );
    // The switch is documented where a GHES user looks for it: the
    // releasing guide (which the README links).
    let releasing = std::fs::read_to_string(root().join("docs/releasing.md")).unwrap();
    assert!(
        releasing.contains("RELEASE_RUNNERS") && releasing.contains("`single`"),
        "docs/releasing.md: RELEASE_RUNNERS"
    );
}

/// The runner of a `runs-on` of the form `${{ startsWith(matrix.KEY, 'P')
/// && 'A' || 'B' }}` for a matrix entry whose KEY is `value`.
fn runner_for(runs_on: &str, key: &str, value: &str) -> String {
    let literals: Vec<&str> = runs_on.split('\'').skip(1).step_by(2).collect();
    assert_eq!(
        runs_on
            .split('\'')
            .step_by(2)
            .map(str::trim)
            .collect::<Vec<_>>(),
        [
            format!("${{{{ startsWith(matrix.{key},").as_str(),
            ") &&",
            "||",
            "}}"
        ],
        "runs-on: one switch on matrix.{key}: {runs_on}"
    );
    let [prefix, then, otherwise] = literals[..] else {
        panic!("{runs_on}")
    };
    if value.starts_with(prefix) {
        then
    } else {
        otherwise
    }
    .to_string()
}

/// Each platform image is checked on a runner of the platform it was built
/// on, as the record says (`build_platform` of the merge's platform-images),
/// with `--platform`: with native runners each on the runner that built it,
/// with RELEASE_RUNNERS=single both on the one runner (arm64
/// cross-compiled again, as it was built).
#[test]
fn rebuild_check_runs_each_platform_where_it_was_built() {
    let wf = workflow("build-push.yml");
    let job = wf.job("rebuild-check");
    assert_eq!(
        as_text(&job["strategy"]["matrix"]["include"]),
        "${{ fromJSON(needs.merge.outputs.platform-images) }}"
    );
    let runs_on = as_text(&job["runs-on"]);
    let buildx = wf
        .step_using("rebuild-check", "docker/setup-buildx-action")
        .expect("rebuild-check sets up buildx");
    assert_eq!(
        as_text(&buildx["with"]["platforms"]),
        "${{ matrix.platform }}",
        "the builder declares the platform it rebuilds"
    );
    let lines: Vec<XtaskLine> = xtask_lines(&wf)
        .into_iter()
        .filter(|l| l.words[0] == "rebuild-check")
        .collect();
    assert_eq!(lines.len(), 1, "build-push.yml runs rebuild-check once");
    assert_eq!(lines[0].job, "rebuild-check");
    let step = wf
        .steps("rebuild-check")
        .iter()
        .find(|s| as_text(&s["run"]).contains("rebuild-check"))
        .expect("the rebuild-check step");
    assert_eq!(as_text(&step["env"]["INDEX"]), "${{ matrix.index }}");
    assert_eq!(as_text(&step["env"]["PLATFORM"]), "${{ matrix.platform }}");
    assert_eq!(
        as_text(&step["run"]).trim(),
        r#"cargo xtask rebuild-check "$INDEX" --platform "$PLATFORM""#
    );
    // Where each runner of the build job builds, the check of what it built runs.
    let native_of = |runner: &str| match runner {
        "ubuntu-24.04-arm" => "linux/arm64",
        _ => "linux/amd64",
    };
    let (single, native) = release_runners(&wf);
    for (mode, entries) in [("single", &single), ("native", &native)] {
        for entry in entries {
            let runner = as_text(&entry["runner"]);
            for platform in as_text(&entry["platform"]).split(',') {
                assert_eq!(
                    runner_for(&runs_on, "build_platform", native_of(&runner)),
                    runner,
                    "{mode}: {platform} built on {runner} is checked there"
                );
            }
        }
    }
}

#[test]
fn retention_runs_the_pruner() {
    let wf = workflow("prune-ci-images.yml");
    let lines = xtask_lines(&wf);
    assert!(
        lines.iter().any(|l| l.words[0] == "prune-ci-images"),
        "prune-ci-images.yml runs `cargo xtask prune-ci-images`"
    );
}

#[test]
fn update_bases_proposes_the_bumped_pins_as_a_pull_request() {
    let wf = workflow("update-bases.yml");
    let lines = xtask_lines(&wf);
    assert_eq!(
        lines.iter().map(|l| l.words.clone()).collect::<Vec<_>>(),
        [vec!["update-bases".to_string()]],
        "update-bases.yml rewrites the pins (no --check, no --dry-run)"
    );
    let steps = wf.all_steps();
    let position = |needle: &str| {
        steps
            .iter()
            .position(|(_, s)| {
                s["uses"].as_str().is_some_and(|u| u.starts_with(needle))
                    || s["run"].as_str().is_some_and(|r| r.contains(needle))
            })
            .unwrap_or_else(|| panic!("update-bases.yml: no step with {needle}"))
    };
    let (update, propose) = (
        position("cargo xtask update-bases"),
        position("gh pr create"),
    );
    assert!(
        update < propose,
        "the pins move before the pull request is opened"
    );
    let step = &steps[propose].1;
    let script = step["run"].as_str().unwrap_or_default();
    assert!(
        script.contains("git add -- images/*.Dockerfile images/*/Dockerfile")
            && !script.contains("git add -A"),
        "the pull request holds the Dockerfiles' pins and nothing else"
    );
    assert!(
        script.contains("gh pr close") && script.contains("--delete-branch"),
        "the pull request is closed when the pins are current again"
    );
    assert!(
        script.contains("git push --force origin \"HEAD:refs/heads/$BRANCH\""),
        "one branch, updated in place"
    );
    // The App token, when configured, is the one that opens the pull
    // request (so ci-build.yml runs on it); else the job's own token.
    let app = position("actions/create-github-app-token@");
    assert!(app < propose);
    assert_eq!(
        step["env"]["GH_TOKEN"],
        json!("${{ steps.app-token.outputs.token || github.token }}")
    );
    assert_eq!(steps[app].1["with"]["permission-contents"], json!("write"));
    assert_eq!(
        steps[app].1["with"]["permission-pull-requests"],
        json!("write")
    );
    // No third-party action holds the token (zizmor's superfluous-actions).
    assert!(
        steps.iter().all(|(_, s)| s["uses"]
            .as_str()
            .is_none_or(|u| !u.starts_with("peter-evans/"))),
        "update-bases.yml opens the pull request with gh"
    );
}

/// The cosign-installer release that installs cosign 3 (v4.x; v3.x can only
/// install cosign 2), pinned by its commit, and the cosign it installs: the
/// newest 3.1.x.
const COSIGN_INSTALLER: &str = "sigstore/cosign-installer@6f9f17788090df1f26f669e9d70d6ae9567deba6";
const COSIGN_INSTALLER_TAG: &str = "v4.1.2";
const COSIGN_RELEASE: &str = "v3.1.3";

/// Every job that runs cosign (it signs, verifies or promotes) installs
/// cosign 3 first, pinned by the installer's commit and the release input:
/// keyless signatures are then Sigstore bundles, with the exact identity the
/// gate requires (the same `--repository` as before).
#[test]
fn cosign_3_is_pinned_in_every_job_that_runs_it() {
    let wf = workflow("build-push.yml");
    let lines = xtask_lines(&wf);
    let runs_cosign = |job: &str| {
        lines.iter().any(|l| {
            l.job == job
                && (matches!(l.words[0].as_str(), "sign" | "verify" | "promote")
                    || (l.words[0] == "release-image"
                        && !l.words.contains(&"--build-only".to_string())))
        })
    };
    let mut checked = BTreeSet::new();
    for (id, _) in wf.jobs() {
        let installer = wf.step_using(id, "sigstore/cosign-installer");
        if !runs_cosign(id) {
            assert!(
                installer.is_none(),
                "build-push.yml job {id} runs no cosign and installs none"
            );
            continue;
        }
        let step =
            installer.unwrap_or_else(|| panic!("build-push.yml job {id} runs cosign: install it"));
        let uses = as_text(&step["uses"]);
        assert_eq!(uses, COSIGN_INSTALLER, "build-push.yml job {id}");
        assert_eq!(
            as_text(&step["with"]["cosign-release"]),
            COSIGN_RELEASE,
            "build-push.yml job {id}: cosign pinned to the newest 3.1.x"
        );
        let steps = wf.steps(id);
        let install = steps.iter().position(|s| s == step).unwrap();
        let first_xtask = steps
            .iter()
            .position(|s| as_text(&s["run"]).contains("cargo xtask"))
            .unwrap();
        assert!(
            install < first_xtask,
            "build-push.yml job {id}: cosign is installed before it runs"
        );
        checked.insert(id.clone());
    }
    assert_eq!(
        checked,
        ["promote", "sign", "verify"]
            .map(String::from)
            .into_iter()
            .collect(),
        "the jobs that sign, gate and promote"
    );
    // The version comment beside the pinned commit names the tag it is.
    let text = std::fs::read_to_string(workflow_dir().join("build-push.yml")).unwrap();
    for line in text.lines().filter(|l| l.contains(COSIGN_INSTALLER)) {
        assert!(
            line.trim_end()
                .ends_with(&format!("# {COSIGN_INSTALLER_TAG}")),
            "{line}"
        );
    }
    // Keyless signing in the sign job: cosign 3 makes the bundle, no key,
    // no signing config of ours (the public-good one from TUF).
    let sign: Vec<&XtaskLine> = lines.iter().filter(|l| l.job == "sign").collect();
    assert_eq!(sign.len(), 1);
    assert!(
        sign[0].words.windows(2).any(|w| w == ["--sign", "keyless"])
            && !sign[0]
                .words
                .iter()
                .any(|w| w.starts_with("--key") || w.starts_with("--signing-config")),
        "{}",
        sign[0].line
    );
}

#[test]
fn build_logic_stays_in_cargo_xtask() {
    let forbidden = [
        "docker build",
        "docker buildx build",
        "buildx bake",
        "docker push",
        "docker tag",
        "cosign sign",
        "docker login",
    ];
    for wf in all_workflows() {
        for script in wf.scripts() {
            let words = format!(
                " {} ",
                script.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            for command in forbidden {
                let found = words.contains(&format!(" {command} "));
                assert!(
                    !found,
                    "{}: `{command}` belongs in cargo xtask:\n{script}",
                    wf.file
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Every `cargo xtask` line, against the real CLI.

/// One `cargo xtask` command line of a workflow, with expressions and shell
/// variables replaced by sample values.
#[derive(Debug, Clone)]
struct XtaskLine {
    file: String,
    job: String,
    line: String,
    words: Vec<String>,
}

/// The values `${{ ... }}` expressions of the workflows stand for here.
fn expression_sample(expression: &str) -> Option<String> {
    let image = format!("ghcr.io/acme/beacon@sha256:{}", "ab".repeat(32));
    Some(match expression {
        "matrix.variant" => "ubi9".to_string(),
        "matrix.part" => "amd64".to_string(),
        "matrix.platform" => "linux/amd64".to_string(),
        "matrix.image" | "matrix.index" => image,
        "github.repository" => "acme/beacon".to_string(),
        "github.repository_owner" => "Acme".to_string(),
        "vars.CI_IMAGE_REPOSITORY" => "registry.example.com/acme/beacon".to_string(),
        "vars.CI_IMAGE_REGISTRY" => "registry.example.com".to_string(),
        "fromJSON(steps.build.outputs.result).variants[0].image" => {
            "ghcr.io/acme/beacon:ci-ubi9".to_string()
        }
        "steps.build.outputs.result" => {
            json!({"variants": [{"variant": "ubi9", "image": "ghcr.io/acme/beacon:ci-ubi9"}]})
                .to_string()
        }
        "steps.release.outputs.result" => {
            json!({"variants": [{"variant": "ubi9", "image": image}]}).to_string()
        }
        _ => return None,
    })
}

/// Shell variables the scripts set themselves (loop variables).
fn shell_sample(name: &str) -> Option<String> {
    match name {
        "image" => expression_sample("matrix.image"),
        "open_prs" => Some("12,34".to_string()),
        _ => None,
    }
}

fn substitute_expressions(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| format!("unterminated expression in {text:?}"))?;
        let expression = rest[start + 3..start + end].trim();
        let sample = expression_sample(expression).ok_or_else(|| {
            format!("no sample value for `${{{{ {expression} }}}}`: add one to expression_sample")
        })?;
        out.push_str(&sample);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits a shell command into words as bash would, expanding `$NAME`,
/// `${NAME}` and `${NAME,,}`, and stopping at a pipe, redirection, `;`, `&`
/// or comment. Command substitution is refused.
fn shell_words(
    command: &str,
    lookup: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Vec<String>, String> {
    let chars: Vec<char> = command.chars().collect();
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut i = 0;
    let expand = |i: &mut usize| -> Result<String, String> {
        // chars[*i] == '$'
        let next = chars.get(*i + 1).copied();
        if next == Some('(') {
            return Err(format!("unsupported: command substitution in {command:?}"));
        }
        if next == Some('{') {
            let close = chars[*i..]
                .iter()
                .position(|&c| c == '}')
                .ok_or("unterminated ${")?
                + *i;
            let inner: String = chars[*i + 2..close].iter().collect();
            *i = close + 1;
            return match inner
                .strip_suffix(",,")
                .or_else(|| inner.strip_suffix("^^"))
            {
                Some(name) if inner.ends_with(",,") => lookup(name).map(|v| v.to_lowercase()),
                Some(name) => lookup(name).map(|v| v.to_uppercase()),
                None if inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                    lookup(&inner)
                }
                None => Err(format!(
                    "unsupported parameter expansion ${{{inner}}} in {command:?}"
                )),
            };
        }
        let name: String = chars[*i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
            .collect();
        if name.is_empty() {
            return Err(format!("unsupported `$` in {command:?}"));
        }
        *i += 1 + name.len();
        lookup(&name)
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
                i += 1;
            }
            '|' | ';' | '&' | '>' | '<' | ')' => break,
            '#' if word.is_none() => break,
            '\'' => {
                let close = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '\'')
                    .ok_or("unterminated '")?
                    + i
                    + 1;
                word.get_or_insert_with(String::new)
                    .extend(&chars[i + 1..close]);
                i = close + 1;
            }
            '"' => {
                let current = word.get_or_insert_with(String::new);
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("unterminated \" in {command:?}")),
                        Some('"') => break,
                        Some('\\') if matches!(chars.get(i + 1), Some('"' | '\\' | '$' | '`')) => {
                            current.push(chars[i + 1]);
                            i += 2;
                        }
                        Some('$') => current.push_str(&expand(&mut i)?),
                        Some('`') => {
                            return Err(format!("unsupported: command substitution in {command:?}"))
                        }
                        Some(&c) => {
                            current.push(c);
                            i += 1;
                        }
                    }
                }
                i += 1;
            }
            '\\' => {
                if let Some(&next) = chars.get(i + 1) {
                    word.get_or_insert_with(String::new).push(next);
                }
                i += 2;
            }
            '$' => {
                let value = expand(&mut i)?;
                word.get_or_insert_with(String::new).push_str(&value);
            }
            '`' => return Err(format!("unsupported: command substitution in {command:?}")),
            c => {
                word.get_or_insert_with(String::new).push(c);
                i += 1;
            }
        }
    }
    if let Some(w) = word {
        words.push(w);
    }
    Ok(words)
}

/// Every `cargo xtask` command line in a workflow's `run:` scripts.
fn xtask_lines(wf: &Workflow) -> Vec<XtaskLine> {
    let workflow_env = wf.value["env"].as_object().cloned().unwrap_or_default();
    let mut lines = Vec::new();
    for (job, step) in wf.all_steps() {
        let Some(script) = step["run"].as_str() else {
            continue;
        };
        let mut env = workflow_env.clone();
        env.extend(wf.job(job)["env"].as_object().cloned().unwrap_or_default());
        env.extend(step["env"].as_object().cloned().unwrap_or_default());
        let lookup = |name: &str| -> Result<String, String> {
            match env.get(name) {
                Some(value) => substitute_expressions(&as_text(value)),
                None => shell_sample(name).ok_or_else(|| {
                    format!("no sample value for ${name}: add it to the step's env or shell_sample")
                }),
            }
        };
        for logical in script.replace("\\\n", " ").lines() {
            let mut rest = logical;
            while let Some(at) = rest.find("cargo xtask") {
                let before = rest[..at].trim_end();
                let command = &rest[at + "cargo xtask".len()..];
                rest = command;
                if !(before.is_empty()
                    || before.ends_with(['|', ';', '&', '('])
                    || before.ends_with("then")
                    || before.ends_with("do"))
                {
                    continue;
                }
                let context = format!("{} job {job}: `cargo xtask{}`", wf.file, command);
                let command =
                    substitute_expressions(command).unwrap_or_else(|e| panic!("{context}: {e}"));
                let words =
                    shell_words(&command, &lookup).unwrap_or_else(|e| panic!("{context}: {e}"));
                assert!(!words.is_empty(), "{context}: no subcommand");
                lines.push(XtaskLine {
                    file: wf.file.clone(),
                    job: job.to_string(),
                    line: format!("cargo xtask{command}"),
                    words,
                });
            }
        }
    }
    lines
}

/// BuildContext files (the library's own type, as `XTASK_CONTEXT` reads it)
/// for the situations the workflows run in, so plans do not depend on this
/// checkout's state.
fn context_file(situation: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("xtask-workflows-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let git = |branch: Option<&str>, tags_at_head: &[&str]| GitState {
            revision: "0123456789abcdef0123456789abcdef01234567".into(),
            commit_time: 1_700_000_000,
            dirty: false,
            branch: branch.map(String::from),
            tags_at_head: tags_at_head.iter().map(|t| t.to_string()).collect(),
            release_tags: vec!["v1.2.3".into(), "v1.3.0".into()],
            source_url: "https://github.com/acme/beacon".into(),
        };
        let ci = |event: &str, git_ref: &str, workflow: &str, oidc: bool| CiEnv {
            github_actions: true,
            event_name: Some(event.into()),
            git_ref: Some(git_ref.into()),
            repository: Some("acme/beacon".into()),
            repository_owner: Some("Acme".into()),
            server_url: Some("https://github.com".into()),
            workflow_ref: Some(format!(
                "acme/beacon/.github/workflows/{workflow}@{git_ref}"
            )),
            oidc_available: oidc,
        };
        let situations = [
            (
                "pull-request",
                git(None, &[]),
                ci("pull_request", "refs/pull/42/merge", "ci-build.yml", false),
            ),
            (
                "tag",
                git(None, &["v1.3.0"]),
                ci("push", "refs/tags/v1.3.0", "build-push.yml", true),
            ),
            (
                "main",
                git(Some("main"), &[]),
                ci("push", "refs/heads/main", "build-push.yml", true),
            ),
        ];
        for (name, git, ci) in situations {
            let context = BuildContext {
                git,
                ci,
                native_platform: Platform::linux("amd64"),
            };
            std::fs::write(
                dir.join(format!("{name}.json")),
                serde_json::to_string(&context).unwrap(),
            )
            .unwrap();
        }
        dir
    });
    dir.join(format!("{situation}.json"))
}

fn run_xtask(words: &[String], context: Option<&str>, parse_only: bool) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args(words).current_dir(root());
    // Nothing from this environment may change what the workflow line means.
    for name in [
        "XTASK_PARSE_ONLY",
        "XTASK_CONTEXT",
        "IMAGE_REGISTRY",
        "IMAGE_NAME",
        "DEFAULT_VARIANT",
        "COSIGN_KEY",
        "COSIGN_PUBLIC_KEY",
        "SBOM_GENERATOR",
        "GITHUB_OUTPUT",
        "GITHUB_STEP_SUMMARY",
    ] {
        command.env_remove(name);
    }
    if parse_only {
        command.env("XTASK_PARSE_ONLY", "1");
    }
    if let Some(situation) = context {
        command.env("XTASK_CONTEXT", context_file(situation));
    }
    command.output().expect("run the xtask binary")
}

/// Runs a build command as `--dry-run --json` and returns its plan.
fn dry_run_plan(line: &XtaskLine, situation: &str) -> Value {
    let mut words = line.words.clone();
    for flag in ["--dry-run", "--json"] {
        if !words.iter().any(|w| w == flag) {
            words.push(flag.to_string());
        }
    }
    let output = run_xtask(&words, Some(situation), false);
    assert!(
        output.status.success(),
        "{} job {}: `{}` is rejected by cargo xtask (planned as a {situation}):\n{}",
        line.file,
        line.job,
        line.line.trim(),
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: --dry-run --json printed no JSON ({e})",
            line.line.trim()
        )
    });
    printed["plan"].clone()
}

#[test]
fn every_xtask_line_is_accepted_by_the_cli() {
    let mut seen = BTreeSet::new();
    for wf in all_workflows() {
        for line in xtask_lines(&wf) {
            let subcommand = line.words[0].clone();
            seen.insert(subcommand.clone());
            // Every line parses.
            let output = run_xtask(&line.words, None, true);
            assert!(
                output.status.success(),
                "{} job {}: `{}` is rejected by cargo xtask:\n{}",
                line.file,
                line.job,
                line.line.trim(),
                String::from_utf8_lossy(&output.stderr)
            );
            // Build commands are also planned, in the situation their workflow runs in.
            match subcommand.as_str() {
                // ci-cache.yml writes the default branch's caches on pushes to main.
                "ci-image" if line.file.ends_with("ci-cache.yml") => {
                    let plan = dry_run_plan(&line, "main");
                    check_ci_plan(&line, &plan);
                    for variant in plan["variants"].as_array().into_iter().flatten() {
                        let to = variant["policy"]["cache"]["to"].to_string();
                        assert!(
                            to.contains("-main") && to.contains("mode=max"),
                            "ci-cache.yml writes main's scope, mode=max: {to}"
                        );
                    }
                }
                "ci-image" => check_ci_plan(&line, &dry_run_plan(&line, "pull-request")),
                "release-image" => {
                    for situation in ["tag", "main"] {
                        check_release_plan(&line, &dry_run_plan(&line, situation));
                    }
                }
                _ => {}
            }
        }
    }
    // The documents that tell people what to run: every command they show
    // must be one the CLI accepts.
    let mut documented = 0;
    for (file, line, whole) in documented_lines() {
        let words = shell_words(line.trim_start_matches("cargo xtask "), &|_| {
            Ok("sample".to_string())
        })
        .unwrap_or_else(|e| panic!("{file}: `{line}`: {e}"));
        // A span in prose may name a command without its arguments
        // (`cargo xtask scan`), or with placeholders the command line would
        // refuse as values (`verify IMAGE`, `--registry REG/NAME`): its
        // subcommand and flags must exist.
        if !whole {
            let help = run_xtask(&[words[0].clone(), "--help".to_string()], None, true);
            let text = String::from_utf8_lossy(&help.stdout);
            assert!(help.status.success(), "{file}: `{line}`: no such command");
            for flag in words.iter().filter(|w| w.starts_with("--")) {
                let name = flag.split('=').next().unwrap_or(flag);
                assert!(
                    text.contains(&format!("{name} ")) || text.contains(&format!("{name}\n")),
                    "{file}: `{line}`: {} has no {name}",
                    words[0]
                );
            }
            documented += 1;
            continue;
        }
        let output = run_xtask(&words, None, true);
        assert!(
            output.status.success(),
            "{file}: `{line}` is rejected by cargo xtask:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        documented += 1;
    }
    assert!(
        documented >= 30,
        "only {documented} documented commands found"
    );
    for expected in [
        "lint",
        "ci-image",
        "release-image",
        "merge-release",
        "sign",
        "verify",
        "scan",
        "promote",
        "prune-ci-images",
        "update-bases",
        "variants",
    ] {
        assert!(
            seen.contains(expected),
            "no workflow runs `cargo xtask {expected}` (found: {seen:?})"
        );
    }
}

/// Every `cargo xtask` command the documents show: lines of code blocks
/// (whole commands: `true`), and inline code spans without a
/// `<placeholder>` (a command named in prose: `false`).
fn documented_lines() -> Vec<(String, String, bool)> {
    let mut lines = Vec::new();
    // These must show a command; every page under docs/ is read too.
    let showing = [
        "README.md",
        "CONTRIBUTING.md",
        "docs/deploying.md",
        "docs/building.md",
        "docs/releasing.md",
        "docs/gate.md",
        ".github/pull_request_template.md",
    ];
    let mut files: Vec<String> = showing.iter().map(|f| f.to_string()).collect();
    files.push("ARCHITECTURE.md".to_string());
    let mut pages: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|entry| {
            entry
                .expect("docs/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .filter(|path| !files.contains(path))
        .collect();
    pages.sort();
    files.extend(pages);
    for file in &files {
        let file = file.as_str();
        let text = std::fs::read_to_string(root().join(file))
            .unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
        let mut in_code = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with("```") {
                in_code = !in_code;
                continue;
            }
            if in_code {
                if trimmed.starts_with("cargo xtask ") {
                    lines.push((file.to_string(), trimmed.to_string(), true));
                }
                continue;
            }
            for (index, span) in trimmed.split('`').enumerate() {
                if index % 2 == 1
                    && span.starts_with("cargo xtask ")
                    && !span.contains('<')
                    && !span.contains("...")
                {
                    lines.push((file.to_string(), span.to_string(), false));
                }
            }
        }
        assert!(
            !showing.contains(&file) || lines.iter().any(|(f, _, _)| f == file),
            "{file} shows no cargo xtask command"
        );
    }
    lines
}

/// A pull request's CI image: loaded, not pushed or signed, cached in the
/// GitHub Actions cache under a scope of its own variant.
fn check_ci_plan(line: &XtaskLine, plan: &Value) {
    assert_eq!(
        plan["output"]["kind"],
        json!("load"),
        "{}: CI images are loaded, not pushed",
        line.line.trim()
    );
    assert_eq!(plan["signing"]["method"], json!("none"));
    let variants = plan["variants"].as_array().unwrap();
    assert!(!variants.is_empty());
    for variant in variants {
        let name = variant["variant"].as_str().unwrap();
        let cache = &variant["policy"]["cache"];
        let entries: Vec<&str> = ["from", "to"]
            .iter()
            .flat_map(|k| cache[k].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        assert!(
            !cache["to"].as_array().unwrap().is_empty(),
            "{name}: the pull request writes its cache"
        );
        for entry in entries {
            assert!(
                entry.starts_with("type=gha,") && entry.contains(&format!("-{name}-")),
                "{name}: cache {entry} is not the GitHub Actions cache scoped to the variant"
            );
        }
    }
}

/// A release's build stage: every variant for amd64 and arm64, pushed by
/// digest, reading and writing no cache; signing and the gate come later,
/// from the record (the build job holds no signing identity).
fn check_release_plan(line: &XtaskLine, plan: &Value) {
    assert!(
        line.words.contains(&"--build-only".to_string()),
        "{}: the release workflow builds in a job of its own",
        line.line.trim()
    );
    assert_eq!(
        plan["signing"]["method"],
        json!("none"),
        "the build job signs nothing"
    );
    assert_eq!(plan["gate"], Value::Null);
    assert_eq!(plan["output"]["kind"], json!("push-by-digest"));
    let built: BTreeSet<String> = plan["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| as_text(&v["variant"]))
        .collect();
    assert_eq!(built, variants(), "a release builds every variant");
    // A runner's part: the line's platforms; the whole release: both.
    let platform = line
        .words
        .iter()
        .position(|w| w == "--platform")
        .map_or("linux/amd64,linux/arm64", |i| line.words[i + 1].as_str());
    let expected: Vec<&str> = platform.split(',').collect();
    for variant in plan["variants"].as_array().unwrap() {
        let platforms = &variant["policy"]["platforms"];
        assert_eq!(platforms, &json!(expected), "{}", variant["variant"]);
        assert_eq!(
            variant["policy"]["cache"],
            json!({"from": [], "to": []}),
            "a release reads and writes no cache"
        );
    }
}

#[test]
fn shell_words_expand_like_bash() {
    let lookup = |name: &str| match name {
        "VARIANT" => Ok("ubi9".to_string()),
        "OWNER" => Ok("Acme".to_string()),
        other => Err(format!("unknown {other}")),
    };
    let words = shell_words(
        r#" ci-image --variant "$VARIANT" --registry "ghcr.io/${OWNER,,}" 'a b' c\ d > out | tee"#,
        &lookup,
    );
    assert_eq!(
        words.unwrap(),
        [
            "ci-image",
            "--variant",
            "ubi9",
            "--registry",
            "ghcr.io/acme",
            "a b",
            "c d"
        ]
    );
    assert!(shell_words("verify $(jq .x)", &lookup).is_err());
    assert!(shell_words("verify $UNKNOWN", &lookup).is_err());
    assert_eq!(
        substitute_expressions("x ${{ matrix.variant }} y").unwrap(),
        "x ubi9 y"
    );
    assert!(substitute_expressions("${{ secrets.TOKEN }}").is_err());
}

// ---------------------------------------------------------------------------
