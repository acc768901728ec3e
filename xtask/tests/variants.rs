//! "Adding a variant is adding a directory", proven: every tag grammar
//! round-trips for every variant discovered under images/, and a scratch
//! copy of the repository with one more variant (`support::scratch`: its
//! tracked files and one more `images/<variant>/Dockerfile`, named with a
//! dash and a digit) is listed by `cargo xtask variants`, planned, rendered,
//! its tags read back the way `prune-ci-images` reads them, and every
//! workflow matrix over variants, evaluated in the copy, holds it (plans.rs
//! checks the golden renders change by exactly its commands). No test
//! counts the variants.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::scratch::Scratch;
use yaml_rust2::{Yaml, YamlLoader};

use xtask::commands::prune::{classify, classify_cache, CacheKind, TagKind};
use xtask::context::BuildContext;
use xtask::model::names::{self, Platform};
use xtask::model::tags::{self, CacheScope, CacheTag, CiTag, CiUnique};
use xtask::plan::ci::{self, CiRequest};
use xtask::plan::release::{self, ReleaseInputs, ReleaseRequest, DEFAULT_SBOM_GENERATOR};
use xtask::plan::{BuildOptions, SigningRequest};
use xtask::render::{self, RunFiles};

fn root() -> PathBuf {
    xtask::project::project_root()
}

fn context(git_ref: &str) -> BuildContext {
    BuildContext::example(Some(git_ref))
}

fn options() -> BuildOptions {
    BuildOptions {
        variants: Vec::new(),
        registry: Some("registry.example/acme".parse().unwrap()),
        image_name: "beacon".parse().unwrap(),
        build_args: Vec::new(),
        binaries: None,
        no_cache: false,
    }
}

#[test]
fn every_grammar_round_trips_for_every_discovered_variant() {
    let variants = xtask::project::discover_variants(&root()).unwrap();
    assert!(!variants.is_empty());
    for variant in &variants {
        tags::validate_variant(variant).unwrap();
        for unique in [
            None,
            Some(CiUnique::PullRequest(42)),
            Some(CiUnique::Commit {
                sha: "0123abc".into(),
                dirty: false,
            }),
            Some(CiUnique::Commit {
                sha: "0123abc".into(),
                dirty: true,
            }),
        ] {
            let tag = CiTag {
                variant: variant.clone(),
                unique,
            };
            assert_eq!(CiTag::parse(&tag.to_string()), Some(tag.clone()));
            assert_eq!(
                classify(&tag.to_string(), &variants),
                TagKind::Ci {
                    variant: variant.clone()
                }
            );
        }
        for scope in [
            CacheScope::DefaultBranch,
            CacheScope::Local,
            CacheScope::PullRequest(42),
            CacheScope::of_branch("feature/New_thing"),
        ] {
            let tag = CacheTag {
                variant: variant.clone(),
                scope,
            };
            assert_eq!(CacheTag::parse(&tag.to_string()), Some(tag.clone()));
        }
    }
}

fn copy_dockerfile(from: &Path, to: &Path, variant: &str, name: &str) {
    let text = std::fs::read_to_string(from.join(format!("images/{variant}/Dockerfile"))).unwrap();
    let dir = to.join(format!("images/{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        text.replace(
            &format!("ARG VARIANT={variant}"),
            &format!("ARG VARIANT={name}"),
        ),
    )
    .unwrap();
}

/// Runs `cargo xtask ARGS` on the scratch copy (`XTASK_PROJECT_ROOT`), as a
/// GitHub Actions step: returns what it printed and the step outputs it wrote.
fn xtask_in(scratch: &Scratch, args: &[&str]) -> (Output, BTreeMap<String, String>) {
    let outputs = scratch.root.join("step-outputs");
    let _ = std::fs::remove_file(&outputs);
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(&scratch.root)
        .env_remove("XTASK_PARSE_ONLY")
        .env("XTASK_PROJECT_ROOT", &scratch.root)
        .env("GITHUB_OUTPUT", &outputs)
        .output()
        .expect("run the xtask binary");
    assert!(
        output.status.success(),
        "cargo xtask {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    let written = std::fs::read_to_string(&outputs).unwrap_or_default();
    let written = written
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (output, written)
}

#[test]
fn a_variant_with_a_dash_is_a_directory_away() {
    let scratch_copy = Scratch::new("plans");
    let scratch = scratch_copy.root.clone();
    let variants = scratch_copy.variants();
    assert!(
        variants.contains(&"wolfi-base2".to_string()),
        "{variants:?}"
    );
    assert_eq!(scratch_copy.added, "wolfi-base2");

    // `cargo xtask variants` lists it, for people and for workflow matrices.
    let (listed, _) = xtask_in(&scratch_copy, &["variants"]);
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .collect::<Vec<_>>(),
        variants
    );
    let (listed, _) = xtask_in(&scratch_copy, &["variants", "--json"]);
    let listed: Vec<String> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed, variants);

    // CI: planned and rendered like every other variant.
    let request = CiRequest {
        build: options(),
        platform: None,
        push: true,
        stand_ins: false,
        cache: None,
        cache_mode: None,
        cache_dir: PathBuf::from("target/buildx-cache"),
    };
    let plan = ci::plan(&request, &variants, &context("refs/pull/7/merge"), None).unwrap();
    let wolfi = plan
        .variants
        .iter()
        .find(|v| v.variant == "wolfi-base2")
        .unwrap();
    assert_eq!(wolfi.recipe.dockerfile, "images/wolfi-base2/Dockerfile");
    let tags: Vec<&str> = wolfi
        .policy
        .tags
        .iter()
        .map(|t| t.tag.as_deref().unwrap())
        .collect();
    assert_eq!(tags, ["ci-wolfi-base2", "ci-wolfi-base2-pr7"]);
    let bake = render::bake_file(&plan, &RunFiles::new(&plan, "test"));
    assert_eq!(
        bake["target"]["wolfi-base2"]["args"]["VARIANT"],
        "wolfi-base2"
    );
    // prune reads its tags back as this variant's CI tags, and its cache refs as its own.
    for tag in &tags {
        assert_eq!(
            classify(tag, &variants),
            TagKind::Ci {
                variant: "wolfi-base2".into()
            },
            "{tag}"
        );
    }
    for reference in wolfi.policy.cache.from.iter().chain(&wolfi.policy.cache.to) {
        let scope = reference
            .split("scope=beacon-")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap();
        assert!(
            matches!(classify_cache(scope), CacheKind::PullRequest { ref variant, number: 7 } | CacheKind::DefaultBranch { ref variant } if variant == "wolfi-base2"),
            "{reference}: {:?}",
            classify_cache(scope)
        );
    }

    // Release: its own qualified tags, never another variant's.
    let dockerfile_args: BTreeMap<String, BTreeMap<String, String>> = variants
        .iter()
        .map(|v| {
            let text = xtask::project::read_dockerfile(&scratch, v).unwrap();
            (v.clone(), xtask::project::global_arg_defaults(&text))
        })
        .collect();
    let request = ReleaseRequest {
        build: options(),
        platforms: vec![Platform::linux("amd64"), Platform::linux("arm64")],
        default_variant: variants[0].clone(),
        force: false,
        allow_any_ref: false,
        signing: SigningRequest::unsigned(),
        output_archive: false,
        build_only: false,
        sbom_generator: DEFAULT_SBOM_GENERATOR.parse().unwrap(),
    };
    let plan = release::plan(&ReleaseInputs {
        args: &request,
        available: &variants,
        variants: &variants,
        context: &context("refs/tags/v1.2.3"),
        builder: None,
        dockerfile_args: &dockerfile_args,
    })
    .unwrap();
    let wolfi = plan
        .variants
        .iter()
        .find(|v| v.variant == "wolfi-base2")
        .unwrap();
    assert!(wolfi.policy.tags.contains(
        &"registry.example/acme/beacon:1.2.3-wolfi-base2"
            .parse()
            .unwrap()
    ));
    for tag in &wolfi.policy.tags {
        let text = tag.tag.as_deref().unwrap();
        names::validate_tag(text).unwrap();
        assert_eq!(
            classify(text, &variants),
            TagKind::Other,
            "a release tag is never a CI tag: {tag}"
        );
    }
}

/// Where `text` names one of `names` as a word of its own (`ubi9` in
/// `[ubi9, x]`, `ci-ubi9` or `images/ubi9/`; not in `ubi90`).
fn named_variants(text: &str, names: &[String]) -> Vec<String> {
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

/// The workflows of the copy follow the new variant with no edit: no file of
/// .github names a variant, and every matrix over variants, evaluated as
/// GitHub would (the job output is the step output of its `cargo xtask`
/// line, run in the copy), lists every variant, the new one included.
#[test]
fn every_workflow_matrix_follows_a_new_variant() {
    let scratch = Scratch::new("workflows");
    let variants = scratch.variants();
    assert!(variants.contains(&scratch.added));

    let workflow_dir = scratch.root.join(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&workflow_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let mut offenders = Vec::new();
    for path in files
        .iter()
        .chain([&scratch.root.join(".github/dependabot.yml")])
    {
        let text = std::fs::read_to_string(path).unwrap();
        for found in named_variants(&text, &variants) {
            offenders.push(format!("{}: {found}", path.display()));
        }
    }
    assert!(
        offenders.is_empty(),
        "variant names written by hand:\n{}",
        offenders.join("\n")
    );

    let mut evaluated = Vec::new();
    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let workflow = YamlLoader::load_from_str(&text).unwrap().remove(0);
        let Some(jobs) = workflow["jobs"].as_hash() else {
            continue;
        };
        for (id, job) in jobs {
            let id = id.as_str().unwrap();
            let Some(matrix) = job["strategy"]["matrix"].as_hash() else {
                continue;
            };
            for (key, value) in matrix {
                let key = key.as_str().unwrap();
                if key != "variant" {
                    // A build's result (one entry per image it built, so per
                    // variant planned): the plans above include the new one.
                    continue;
                }
                let list = evaluate_matrix(&scratch, &workflow, value)
                    .unwrap_or_else(|e| panic!("{file} job {id}: matrix `{key}`: {e}"));
                assert_eq!(list, variants, "{file} job {id}: matrix `{key}`");
                evaluated.push(format!("{file} {id}"));
            }
        }
    }
    assert!(
        evaluated.iter().any(|e| e == "build-push.yml scan"),
        "the release's scan runs per variant: {evaluated:?}"
    );
}

/// `${{ fromJSON(needs.JOB.outputs.NAME) }}`, evaluated: JOB's output NAME
/// is `${{ steps.STEP.outputs.OUT }}`, STEP runs one `cargo xtask` line, and
/// OUT is what that line writes to `$GITHUB_OUTPUT`, run in the copy.
fn evaluate_matrix(
    scratch: &Scratch,
    workflow: &Yaml,
    value: &Yaml,
) -> Result<Vec<String>, String> {
    let expression = value
        .as_str()
        .ok_or_else(|| format!("written by hand: {value:?}"))?;
    let (job, output) = expression
        .strip_prefix("${{ fromJSON(needs.")
        .and_then(|rest| rest.strip_suffix(") }}"))
        .and_then(|rest| rest.split_once(".outputs."))
        .ok_or_else(|| format!("not a job's output: {expression}"))?;
    let job = &workflow["jobs"][job];
    let step_output = job["outputs"][output]
        .as_str()
        .ok_or_else(|| format!("no job output {output}"))?;
    let (step_id, out) = step_output
        .strip_prefix("${{ steps.")
        .and_then(|rest| rest.strip_suffix(" }}"))
        .and_then(|rest| rest.split_once(".outputs."))
        .ok_or_else(|| format!("not a step's output: {step_output}"))?;
    let step = job["steps"]
        .as_vec()
        .into_iter()
        .flatten()
        .find(|s| s["id"].as_str() == Some(step_id))
        .ok_or_else(|| format!("no step {step_id}"))?;
    let line = step["run"].as_str().unwrap_or_default().trim();
    let args: Vec<&str> = line
        .strip_prefix("cargo xtask ")
        .ok_or_else(|| format!("step {step_id} is not one `cargo xtask` line: {line}"))?
        .split_whitespace()
        .collect();
    let (_, outputs) = xtask_in(scratch, &args);
    let written = outputs
        .get(out)
        .ok_or_else(|| format!("`{line}` wrote no step output {out}: {outputs:?}"))?;
    serde_json::from_str(written).map_err(|e| format!("{out}={written}: {e}"))
}

#[test]
fn a_variant_name_that_would_misread_is_refused_at_discovery() {
    for bad in ["edge-pr1", "edge-abcdef0", "x-branch-y"] {
        let (scratch, _) = {
            let scratch = std::env::temp_dir()
                .join(format!("xtask-variants-bad-{}-{bad}", std::process::id()));
            let _ = std::fs::remove_dir_all(&scratch);
            let first = &xtask::project::discover_variants(&root()).unwrap()[0];
            copy_dockerfile(&root(), &scratch, first, bad);
            (scratch, ())
        };
        let err = format!(
            "{:#}",
            xtask::project::discover_variants(&scratch).unwrap_err()
        );
        assert!(
            err.contains(&format!("images/{bad}")) && err.contains("rename"),
            "{bad}: {err}"
        );
        let _ = std::fs::remove_dir_all(&scratch);
    }
}
