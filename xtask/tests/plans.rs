//! Tests of planning and rendering without an engine, through the library's
//! real functions: what would run, for every variant and every git/CI
//! situation (golden files in `xtask/tests/golden/`; `UPDATE_GOLDEN=1 cargo
//! test` rewrites them). A scratch copy of the repository with one more
//! variant changes every golden render by exactly that variant's commands.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use clap::Parser;
use serde_json::Value;
use support::scratch::Scratch;

use xtask::cli::{Cli, Command};
use xtask::context::BuildContext;
use xtask::model::cosign::{CosignLine, CosignRun};
use xtask::model::identity::SignerIdentity;
use xtask::model::names::Platform;
use xtask::plan::gate::ExpectedSigner;
use xtask::plan::release::{self, ReleaseInputs};
use xtask::plan::{ci, Attestations, Plan, Signing};
use xtask::preflight::BuilderInfo;
use xtask::project;
use xtask::render::{self, Invocation, RunFiles};

/// A checkout at a fixed commit on main; in GitHub Actions when `git_ref` is given.
fn sample(git_ref: Option<&str>) -> BuildContext {
    BuildContext::example(git_ref)
}

fn variants() -> Vec<String> {
    variants_in(&project::project_root())
}

/// The variants of the checkout at `root` (this one, or a scratch copy).
fn variants_in(root: &Path) -> Vec<String> {
    project::discover_variants(root).unwrap()
}

fn dockerfile_args() -> BTreeMap<String, BTreeMap<String, String>> {
    dockerfile_args_in(&project::project_root())
}

fn dockerfile_args_in(root: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    variants_in(root)
        .into_iter()
        .map(|v| {
            let args = project::build_arg_defaults(root, &v).unwrap();
            (v, args)
        })
        .collect()
}

fn ci_plan(argv: &[&str], context: &BuildContext) -> anyhow::Result<Plan> {
    ci_plan_in(&project::project_root(), argv, context)
}

fn ci_plan_in(root: &Path, argv: &[&str], context: &BuildContext) -> anyhow::Result<Plan> {
    let cli = Cli::try_parse_from([&["xtask", "ci-image"], argv].concat())?;
    let Command::CiImage(args) = cli.command else {
        unreachable!()
    };
    let options = args.into_options();
    let selected = project::select_variants(&variants_in(root), &options.request.build.variants)?;
    ci::plan(&options.request, &selected, context, None)
}

fn builder(driver: &str) -> BuilderInfo {
    BuilderInfo {
        name: "default".into(),
        driver: driver.into(),
        platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
    }
}

fn release_plan(argv: &[&str], context: &BuildContext) -> anyhow::Result<Plan> {
    release_plan_in(&project::project_root(), argv, context)
}

fn release_plan_in(root: &Path, argv: &[&str], context: &BuildContext) -> anyhow::Result<Plan> {
    let cli = Cli::try_parse_from([&["xtask", "release-image"], argv].concat())?;
    let Command::ReleaseImage(args) = cli.command else {
        unreachable!()
    };
    let request = args.into_options().request;
    let available = variants_in(root);
    let selected = project::select_variants(&available, &request.build.variants)?;
    let builder = builder("docker-container");
    release::plan(&ReleaseInputs {
        args: &request,
        available: &available,
        variants: &selected,
        context,
        builder: Some(&builder),
        dockerfile_args: &dockerfile_args_in(root),
    })
}

fn tag_push() -> BuildContext {
    let mut context = sample(Some("refs/tags/v1.2.3"));
    context.ci.oidc_available = true;
    context
}

/// The files a run would use, as a dry run names them.
fn files(plan: &Plan) -> RunFiles {
    RunFiles::new(plan, "<run>")
}

/// Every command of the plan, a release's as the cosign of `line` signs and checks.
fn rendered_with(plan: &Plan, line: CosignLine) -> String {
    display(&render::all(plan, &files(plan), line))
}

fn display(commands: &[Invocation]) -> String {
    commands
        .iter()
        .map(Invocation::display)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Every command of the plan, a release's with cosign 3 (what the release workflow installs).
fn rendered(plan: &Plan) -> String {
    rendered_with(plan, CosignLine::V3)
}

fn golden(name: &str, actual: &str) {
    let path = project::project_root()
        .join("xtask/tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run UPDATE_GOLDEN=1 cargo test", path.display()));
    assert_eq!(
        actual,
        expected,
        "{} differs (UPDATE_GOLDEN=1 cargo test rewrites it; review the diff)",
        path.display()
    );
}

/// The golden files, whether each one's scenario builds every variant
/// (else it names the variants it builds), and the cosign that signs and
/// checks it (what the release workflow installs, 3, unless the name says 2).
const GOLDEN: &[(&str, bool, CosignLine)] = &[
    ("ci-pull-request.txt", true, CosignLine::V3),
    ("ci-laptop-push.txt", true, CosignLine::V3),
    ("release-tag-keyless.txt", true, CosignLine::V3),
    ("release-tag-keyless-cosign2.txt", true, CosignLine::V2),
    ("release-main-key-docker-driver.txt", false, CosignLine::V3),
    (
        "release-main-key-docker-driver-cosign2.txt",
        false,
        CosignLine::V2,
    ),
];

/// The plan a golden file renders, of the checkout at `root`.
fn golden_plan(root: &Path, name: &str) -> Plan {
    match name.replace("-cosign2", "").as_str() {
        "ci-pull-request.txt" => ci_plan_in(root, &[], &sample(Some("refs/pull/42/merge"))),
        "ci-laptop-push.txt" => {
            let mut context = sample(None);
            context.git.dirty = true;
            ci_plan_in(
                root,
                &[
                    "--push",
                    "--registry",
                    "127.0.0.1:5000",
                    "--binaries",
                    "target/image-binaries",
                    "--cache",
                    "local",
                ],
                &context,
            )
        }
        "release-tag-keyless.txt" => release_plan_in(root, &[], &tag_push()),
        "release-main-key-docker-driver.txt" => {
            let cli = Cli::try_parse_from([
                "xtask",
                "release-image",
                "--key",
                "cosign.key",
                "--registry",
                "127.0.0.1:5000",
                "--variant",
                "ubi9",
            ])
            .unwrap();
            let Command::ReleaseImage(args) = cli.command else {
                unreachable!()
            };
            let request = args.into_options().request;
            let builder = builder("docker");
            release::plan(&ReleaseInputs {
                args: &request,
                available: &variants_in(root),
                variants: &["ubi9".to_string()],
                context: &sample(None),
                builder: Some(&builder),
                dockerfile_args: &dockerfile_args_in(root),
            })
        }
        other => panic!("no golden scenario {other}"),
    }
    .unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

#[test]
fn golden_ci_pull_request_in_github_actions() {
    let name = "ci-pull-request.txt";
    golden(
        name,
        &rendered(&golden_plan(&project::project_root(), name)),
    );
}

#[test]
fn golden_ci_laptop_push_with_host_binaries() {
    let name = "ci-laptop-push.txt";
    golden(
        name,
        &rendered(&golden_plan(&project::project_root(), name)),
    );
}

#[test]
fn golden_release_tag_keyless_in_github_actions() {
    let name = "release-tag-keyless.txt";
    golden(
        name,
        &rendered(&golden_plan(&project::project_root(), name)),
    );
}

/// Keyless signing cannot run on this machine (no OIDC token, no Fulcio):
/// its commands are checked here, for both lines of cosign. cosign 2 signs
/// a `.sig` signature and its gate also reads a Sigstore bundle; cosign 3
/// signs a bundle through the public-good signing config (TUF), and its
/// one `verify` reads both. The identity flags are the same for both.
#[test]
fn golden_release_tag_keyless_in_github_actions_with_cosign_2() {
    let plan = release_plan(&[], &tag_push()).unwrap();
    golden(
        "release-tag-keyless-cosign2.txt",
        &rendered_with(&plan, CosignLine::V2),
    );
}

#[test]
fn golden_release_main_with_key_on_docker_driver() {
    let name = "release-main-key-docker-driver.txt";
    golden(
        name,
        &rendered(&golden_plan(&project::project_root(), name)),
    );
}

#[test]
fn every_golden_file_has_its_scenario() {
    let mut files: Vec<String> =
        std::fs::read_dir(project::project_root().join("xtask/tests/golden"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    files.sort();
    let mut listed: Vec<String> = GOLDEN.iter().map(|(name, ..)| name.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed, "GOLDEN lists every golden file");
}

/// Whether a command's argument names `variant` as a word of its own
/// (`1.2.3-ubi9`, `<digest:ubi9:linux/amd64>`), not as a path segment of a
/// base image (`registry.access.redhat.com/ubi9/ubi-micro`).
fn names_variant(arg: &str, variant: &str) -> bool {
    let bound = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '/');
    arg.match_indices(variant).any(|(at, _)| {
        bound(arg[..at].chars().next_back()) && bound(arg[at + variant.len()..].chars().next())
    })
}

/// A render split into what does not name `variant` (its bake file without
/// the variant's target, the bake without its name) and what does, as text:
/// the variant's bake target and every command naming it.
fn take_variant(commands: &[Invocation], variant: &str) -> (Vec<Invocation>, Vec<String>) {
    let (mut kept, mut taken) = (Vec::new(), Vec::new());
    for command in commands {
        if let Some(stdin) = &command.stdin {
            let mut bake: Value = serde_json::from_str(stdin).expect("a bake file on stdin");
            let target = bake["target"].as_object_mut().unwrap().remove(variant);
            if let Some(target) = target {
                taken.push(format!(
                    "bake target {}",
                    serde_json::to_string_pretty(&target).unwrap()
                ));
            }
            bake["group"]["default"]["targets"]
                .as_array_mut()
                .unwrap()
                .retain(|t| t != variant);
            let mut command = command.clone();
            command.args.retain(|a| a != variant);
            command.stdin = Some(serde_json::to_string_pretty(&bake).unwrap() + "\n");
            kept.push(command);
        } else if command.args.iter().any(|a| names_variant(a, variant)) {
            taken.push(command.display());
        } else {
            kept.push(command.clone());
        }
    }
    (kept, taken)
}

#[test]
fn take_variant_takes_its_target_and_commands() {
    let plan = golden_plan(&project::project_root(), "release-tag-keyless.txt");
    let commands = render::all(&plan, &files(&plan), CosignLine::V3);
    let variant = &plan.variants.last().unwrap().variant;
    let (kept, taken) = take_variant(&commands, variant);
    assert_eq!(
        taken
            .iter()
            .filter(|t| t.starts_with("bake target {"))
            .count(),
        1,
        "{taken:?}"
    );
    assert!(taken.len() > 5, "{taken:?}");
    assert!(
        !display(&kept).contains(&format!("{variant}/Dockerfile")),
        "{}",
        display(&kept)
    );
    assert_eq!(kept.len() + taken.len() - 1, commands.len());
    assert!(names_variant("ghcr.io/acme/beacon:1.2.3-ubi9", "ubi9"));
    assert!(names_variant(
        "'ghcr.io/acme/beacon@<digest:ubi9:linux/arm64>'",
        "ubi9"
    ));
    assert!(!names_variant(
        "registry.access.redhat.com/ubi9/ubi-micro:9",
        "ubi9"
    ));
    assert!(!names_variant("ci-ubi90", "ubi9"));
}

/// Adding a variant changes every golden render by exactly that variant's
/// commands: in a scratch copy of the repository with one more
/// `images/<variant>/Dockerfile` (a copy of an existing variant's, renamed),
/// each render with the new variant's bake target and commands taken out is
/// its golden file again, and what was taken out is what the copied variant
/// renders, under the new name. A scenario naming its variants is unchanged.
#[test]
fn a_new_variant_changes_each_golden_render_by_its_own_commands() {
    let scratch = Scratch::new("golden");
    assert!(variants_in(&scratch.root).contains(&scratch.added));
    let golden_dir = project::project_root().join("xtask/tests/golden");
    for &(name, every_variant, line) in GOLDEN {
        let expected = std::fs::read_to_string(golden_dir.join(name)).unwrap();
        let here = golden_plan(&project::project_root(), name);
        let here = render::all(&here, &files(&here), line);
        assert_eq!(
            display(&here),
            expected,
            "{name} is not current: see golden_*"
        );

        let plan = golden_plan(&scratch.root, name);
        let (kept, added) = take_variant(&render::all(&plan, &files(&plan), line), &scratch.added);
        assert_eq!(
            display(&kept),
            expected,
            "{name}: with {}'s commands taken out, the scratch copy's render is the golden file",
            scratch.added
        );
        let (_, copied) = take_variant(&here, &scratch.source);
        if every_variant {
            let renamed: Vec<String> = added
                .iter()
                .map(|c| c.replace(&scratch.added, &scratch.source))
                .collect();
            assert!(!renamed.is_empty(), "{name}: nothing of {}", scratch.added);
            assert_eq!(
                renamed, copied,
                "{name}: {} renders as {}, whose Dockerfile it copies, under its own name",
                scratch.added, scratch.source
            );
        } else {
            assert_eq!(added, Vec::<String>::new(), "{name} names its variants");
        }
    }
}

#[test]
fn golden_release_main_with_key_on_docker_driver_with_cosign_2() {
    golden(
        "release-main-key-docker-driver-cosign2.txt",
        &rendered_with(
            &golden_plan(
                &project::project_root(),
                "release-main-key-docker-driver.txt",
            ),
            CosignLine::V2,
        ),
    );
}

const SIGNED: &str =
    "ghcr.io/acme/beacon@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn cosign_run(line: CosignLine, signing_config: Option<&str>) -> CosignRun {
    CosignRun {
        signing_config: signing_config.map(Into::into),
        ..CosignRun::new(line, "run")
    }
}

fn key(tlog_upload: bool) -> Signing {
    Signing::Key {
        key: "k.key".into(),
        tlog_upload,
    }
}

/// `cosign sign` as each line makes it; cosign 3 gets no deprecated flag.
fn signed(signing: &Signing, run: &CosignRun) -> Vec<String> {
    let mut commands: Vec<String> = render::sign_preparation(signing, run)
        .iter()
        .map(render::Invocation::display)
        .collect();
    commands.extend(
        render::sign_reference(signing, run, &SIGNED.parse().unwrap()).map(|i| i.display()),
    );
    if run.line == CosignLine::V3 {
        for deprecated in [
            "--tlog-upload",
            "--new-bundle-format",
            "--use-signing-config",
            "--experimental-oci11",
            "--private-infrastructure",
        ] {
            assert!(
                commands.iter().all(|c| !c.contains(deprecated)),
                "{deprecated}: {commands:?}"
            );
        }
    }
    commands
}

#[test]
fn cosign_3_signs_bundles_through_a_signing_config_and_cosign_2_signs_as_today() {
    let v3 = cosign_run(CosignLine::V3, None);
    // A key, no transparency log: the run's own signing config (no service)
    // and a trusted root that trusts none: nothing fetched from TUF.
    assert_eq!(
        signed(&key(false), &v3),
        [
            "cosign signing-config create --out=run/signing-config.json".to_string(),
            format!("cosign sign --yes --key=k.key --signing-config=run/signing-config.json --trusted-root=run/trusted-root.json {SIGNED}"),
        ]
    );
    assert!(render::signs_with_own_trusted_root(&key(false), &v3));
    // A key with --tlog, and keyless: the public-good services (TUF's signing config).
    assert_eq!(
        signed(&key(true), &v3),
        [format!("cosign sign --yes --key=k.key {SIGNED}")]
    );
    assert_eq!(
        signed(&Signing::Keyless, &v3),
        [format!("cosign sign --yes {SIGNED}")]
    );
    // A private Sigstore deployment's signing config, as given.
    let private = cosign_run(CosignLine::V3, Some("private.json"));
    assert_eq!(
        signed(&Signing::Keyless, &private),
        [format!(
            "cosign sign --yes --signing-config=private.json {SIGNED}"
        )]
    );
    assert_eq!(
        signed(&key(false), &private),
        [format!(
            "cosign sign --yes --key=k.key --signing-config=private.json {SIGNED}"
        )]
    );
    // cosign 2: the .sig signature, as before.
    let v2 = cosign_run(CosignLine::V2, None);
    assert_eq!(
        signed(&key(false), &v2),
        [format!(
            "cosign sign --yes --key=k.key --tlog-upload=false {SIGNED}"
        )]
    );
    assert_eq!(
        signed(&Signing::Keyless, &v2),
        [format!("cosign sign --yes {SIGNED}")]
    );
    assert!(signed(&Signing::None, &v3).is_empty());
}

#[test]
fn the_gate_reads_either_format_whichever_cosign_runs_it() {
    let verify = |signer: &ExpectedSigner, line: CosignLine| -> Vec<String> {
        render::cosign_verify(signer, &cosign_run(line, None), &SIGNED.parse().unwrap())
            .iter()
            .map(render::Invocation::display)
            .collect()
    };
    let key = ExpectedSigner::Key {
        key: "k.pub".into(),
        tlog: false,
    };
    // cosign 3: one `verify` reads .sig signatures and Sigstore bundles.
    assert_eq!(
        verify(&key, CosignLine::V3),
        [format!(
            "cosign verify --key=k.pub --insecure-ignore-tlog=true {SIGNED}"
        )]
    );
    // cosign 2: `verify` reads .sig signatures, `verify-attestation` the bundles.
    assert_eq!(
        verify(&key, CosignLine::V2),
        [
            format!("cosign verify --key=k.pub --insecure-ignore-tlog=true {SIGNED}"),
            format!("cosign verify-attestation --new-bundle-format --type=https://sigstore.dev/cosign/sign/v1 --key=k.pub --insecure-ignore-tlog=true --trusted-root=run/trusted-root.json {SIGNED}"),
        ]
    );
    // Keyless: the same identity flags; the Sigstore root comes from TUF (online).
    let workflow = ExpectedSigner::Workflow {
        identity: SignerIdentity::release_workflow("acme/beacon".parse().unwrap()),
    };
    let flags = SignerIdentity::release_workflow("acme/beacon".parse().unwrap())
        .cosign_flags()
        .iter()
        .map(|f| render::Invocation::new("x", vec![f.clone()]).display()[2..].to_string())
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        verify(&workflow, CosignLine::V3),
        [format!("cosign verify {flags} {SIGNED}")]
    );
    assert_eq!(
        verify(&workflow, CosignLine::V2),
        [
            format!("cosign verify {flags} {SIGNED}"),
            format!("cosign verify-attestation --new-bundle-format --type=https://sigstore.dev/cosign/sign/v1 {flags} {SIGNED}"),
        ]
    );
    // A key with the transparency log: checked online, no trusted root of ours.
    let logged = ExpectedSigner::Key {
        key: "k.pub".into(),
        tlog: true,
    };
    assert!(verify(&logged, CosignLine::V2)
        .iter()
        .all(|c| !c.contains("--trusted-root") && !c.contains("--insecure-ignore-tlog")));
}

/// One Dockerfile per variant serves both paths: the recipes are identical,
/// and the rendered builds differ only in the policy's build args.
#[test]
fn ci_and_release_plans_differ_only_in_policy() {
    let context = tag_push();
    let builder = format!(
        "BUILDER_IMAGE=mirror.example/rust:1-bookworm@sha256:{}",
        "a".repeat(64)
    );
    let args = ["--registry", "ghcr.io/acme", "--build-arg", &builder];
    let ci = ci_plan(&args, &context).unwrap();
    let release = release_plan(&args, &context).unwrap();
    assert_eq!(ci.variants.len(), variants().len());
    for (c, r) in ci.variants.iter().zip(&release.variants) {
        assert_eq!(c.variant, r.variant);
        assert_eq!(c.recipe, r.recipe, "{}: the recipe is shared", c.variant);
        assert_ne!(c.policy, r.policy);
        let ci_target = &render::bake_file(&ci, &files(&ci))["target"][&c.variant];
        let release_target = &render::bake_file(&release, &files(&release))["target"][&r.variant];
        for field in ["context", "dockerfile"] {
            assert_eq!(ci_target.get(field), release_target.get(field), "{field}");
        }
        let mut ci_args = ci_target["args"].as_object().unwrap().clone();
        let mut release_args = release_target["args"].as_object().unwrap().clone();
        // Both take their binaries from the compile file's own build.
        for target in [ci_target, release_target] {
            assert_eq!(target["contexts"]["binaries"], "target:compile");
        }
        assert_eq!(ci_args.remove("IMAGE_FLAVOR").unwrap(), "ci");
        assert_eq!(release_args.remove("IMAGE_FLAVOR").unwrap(), "production");
        assert!(release_args.remove("SOURCE_DATE_EPOCH").is_some());
        assert_eq!(ci_args.remove("CARGO_PROFILE").unwrap(), "ci");
        assert_eq!(release_args.remove("CARGO_PROFILE").unwrap(), "release");
        // The compile stage's targets follow the platforms (a policy field).
        let native = Platform::native().arch;
        assert_eq!(ci_args.remove("TARGET_ARCHES").unwrap(), native.as_str());
        assert_eq!(release_args.remove("TARGET_ARCHES").unwrap(), "amd64 arm64");
        assert_eq!(
            ci_args, release_args,
            "{}: no other build arg differs",
            c.variant
        );
    }
    // One compile file, built alike but for the policy's args.
    let ci_compile = &render::bake_file(&ci, &files(&ci))["target"]["compile"];
    let release_compile = &render::bake_file(&release, &files(&release))["target"]["compile"];
    for field in ["context", "dockerfile", "target", "output"] {
        assert_eq!(ci_compile[field], release_compile[field], "{field}");
    }
    assert_eq!(ci_compile["dockerfile"], "images/compile.Dockerfile");
    assert_eq!(ci_compile["target"], "binaries");
    let mut ci_args = ci_compile["args"].as_object().unwrap().clone();
    let mut release_args = release_compile["args"].as_object().unwrap().clone();
    assert_eq!(ci_args.remove("IMAGE_FLAVOR").unwrap(), "ci");
    assert_eq!(release_args.remove("IMAGE_FLAVOR").unwrap(), "production");
    assert_eq!(ci_args.remove("CARGO_PROFILE").unwrap(), "ci");
    assert_eq!(release_args.remove("CARGO_PROFILE").unwrap(), "release");
    assert_eq!(
        ci_args.remove("TARGET_ARCHES").unwrap(),
        Platform::native().arch.as_str()
    );
    assert_eq!(release_args.remove("TARGET_ARCHES").unwrap(), "amd64 arm64");
    assert!(release_args.remove("SOURCE_DATE_EPOCH").is_some());
    assert_eq!(ci_args, release_args);
    // The compile's args: those of the compile file the run sets, no other.
    assert_eq!(
        ci_args.keys().collect::<Vec<_>>(),
        ["BUILDER_IMAGE"],
        "{ci_args:?}"
    );
}

/// The compile stage builds every architecture of the platforms, whatever
/// their order (one set of compile steps and cache mounts per set).
#[test]
fn the_compile_stage_targets_follow_the_platforms_in_any_order() {
    for (platforms, arches) in [
        ("linux/arm64,linux/amd64", "amd64 arm64"),
        ("linux/amd64,linux/arm64", "amd64 arm64"),
        ("linux/arm64", "arm64"),
    ] {
        let plan = release_plan(&["--platform", platforms, "--sign", "none"], &tag_push()).unwrap();
        for variant in &plan.variants {
            let target = &render::bake_file(&plan, &files(&plan))["target"][&variant.variant];
            assert_eq!(target["args"]["TARGET_ARCHES"], arches, "{platforms}");
        }
    }
}

#[test]
fn ci_plans_write_only_ci_tags_and_turn_attestations_off() {
    for context in [sample(Some("refs/pull/7/merge")), sample(None), tag_push()] {
        let plan = ci_plan(&["--push", "--registry", "ghcr.io/acme"], &context).unwrap();
        assert_eq!(plan.signing, Signing::None);
        for variant in &plan.variants {
            assert_eq!(variant.policy.platforms.len(), 1);
            assert!(
                variant
                    .policy
                    .tags
                    .iter()
                    .all(|t| t.to_string().contains(&format!(":ci-{}", variant.variant))),
                "{:?}",
                variant.policy.tags
            );
            assert_eq!(
                variant.policy.attestations,
                Attestations {
                    provenance: None,
                    sbom: None
                }
            );
            assert_eq!(
                variant.policy.labels["dev.beacon.image.not-for-production"],
                "true"
            );
        }
    }
    let pr = ci_plan(&[], &sample(Some("refs/pull/7/merge"))).unwrap();
    assert_eq!(
        pr.variants[0].policy.tags[1].to_string(),
        format!("ghcr.io/acme/beacon:ci-{}-pr7", pr.variants[0].variant)
    );
    assert_eq!(
        pr.variants[0].policy.cache.from.len(),
        2,
        "a PR reads its own scope and main's"
    );
    assert!(pr.variants[0].policy.cache.to[0].ends_with("mode=min"));
}

#[test]
fn release_tags_follow_metadata_action_conventions() {
    let tags = |git_ref: Option<&str>, release_tags: &[&str], allow: bool| {
        let mut context = sample(git_ref);
        context.git.release_tags = release_tags.iter().map(|t| t.to_string()).collect();
        release::base_tags(
            &context,
            release::TagRules {
                allow_any_ref: allow,
                variants: &variants(),
                writes_tags: true,
            },
        )
    };
    let (all, immutable) = tags(Some("refs/tags/v1.2.3"), &["v1.2.3", "v1.1.0"], false).unwrap();
    assert_eq!(all, ["1.2.3", "1.2", "1", "latest"]);
    assert_eq!(immutable, ["1.2.3"]);
    let (all, _) = tags(
        Some("refs/tags/v1.2.3"),
        &["v1.2.3", "v2.0.0", "v3.0.0-rc.1"],
        false,
    )
    .unwrap();
    assert_eq!(
        all,
        ["1.2.3", "1.2", "1"],
        "not the newest stable release: no latest"
    );
    let (all, _) = tags(Some("refs/tags/v0.4.1"), &[], false).unwrap();
    assert_eq!(all, ["0.4.1", "0.4", "latest"], "no floating 0 tag");
    let (all, immutable) = tags(Some("refs/tags/v2.0.0-rc.1"), &[], false).unwrap();
    assert_eq!(
        (all.as_slice(), immutable.as_slice()),
        (
            &["2.0.0-rc.1".to_string()][..],
            &["2.0.0-rc.1".to_string()][..]
        )
    );
    let (all, immutable) = tags(Some("refs/heads/main"), &[], false).unwrap();
    assert_eq!(all, ["main", "sha-0123456"]);
    assert!(immutable.is_empty());
    let err = tags(Some("refs/heads/feature/x"), &[], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--allow-any-ref"), "{err}");
    assert_eq!(
        tags(Some("refs/heads/feature/x"), &[], true).unwrap().0,
        ["feature-x", "sha-0123456"]
    );
    assert!(tags(Some("refs/pull/3/merge"), &[], false).is_err());
    assert!(tags(Some("refs/tags/v1.2"), &[], false).is_err());
    assert_eq!(
        release::qualify(&["1.2.3".into()], "ubi9", "chainguard"),
        ["1.2.3-ubi9"]
    );
    assert_eq!(
        release::qualify(&["1.2.3".into()], "chainguard", "chainguard"),
        ["1.2.3-chainguard", "1.2.3"]
    );
    assert!(xtask::model::version::Version::from_git_tag("v01.2.3").is_none());
}

#[test]
fn release_plans_annotate_label_and_pin() {
    let plan = release_plan(&["--registry", "ghcr.io/acme"], &tag_push()).unwrap();
    assert_eq!(plan.signing, Signing::Keyless);
    assert_eq!(
        plan.must_not_exist.len(),
        variants().len() + 1,
        "1.2.3-<variant> for each, and bare 1.2.3: {:?}",
        plan.must_not_exist
    );
    for variant in &plan.variants {
        let policy = &variant.policy;
        assert_eq!(
            policy
                .platforms
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["linux/amd64", "linux/arm64"]
        );
        for key in [
            "source",
            "revision",
            "created",
            "version",
            "title",
            "description",
            "licenses",
            "base.name",
            "base.digest",
        ] {
            let key = format!("org.opencontainers.image.{key}");
            assert!(policy.annotations.contains_key(&key), "annotation {key}");
            assert_eq!(
                policy.labels.get(&key),
                policy.annotations.get(&key),
                "label {key}"
            );
        }
        assert_eq!(
            policy.annotations["org.opencontainers.image.created"],
            "2023-11-14T22:13:20Z"
        );
        assert!(policy.annotations["org.opencontainers.image.base.digest"].starts_with("sha256:"));
        assert_eq!(policy.source_date_epoch, Some(1_700_000_000));
        assert!(policy.rewrite_timestamp);
        assert_eq!(policy.attestations.provenance.as_deref(), Some("max"));
        assert!(policy
            .tags
            .iter()
            .all(|t| !t.tag.as_deref().unwrap().starts_with("ci-")));
    }
}

#[test]
fn release_refusals() {
    let mut dirty = tag_push();
    dirty.git.dirty = true;
    assert!(release_plan(&[], &dirty)
        .unwrap_err()
        .to_string()
        .contains("uncommitted"));
    let unpinned = release_plan(
        &[
            "--build-arg",
            "PRODUCTION_BASE=cgr.dev/chainguard/static:latest",
        ],
        &tag_push(),
    )
    .unwrap_err();
    assert!(
        unpinned.to_string().contains("not pinned by digest"),
        "{unpinned}"
    );
    let no_identity = release_plan(&[], &sample(None)).unwrap_err().to_string();
    assert!(
        no_identity.contains("no signing identity") && no_identity.contains("--sign none"),
        "{no_identity}"
    );
    let ci_tag = release_plan(
        &["--allow-any-ref", "--sign", "none"],
        &sample(Some("refs/heads/ci-hack")),
    )
    .unwrap_err();
    assert!(
        ci_tag.to_string().contains("reserved for CI images"),
        "{ci_tag}"
    );
    let flavor = ci_plan(&["--build-arg", "IMAGE_FLAVOR=production"], &sample(None)).unwrap_err();
    assert!(
        flavor.to_string().contains("chosen by the path"),
        "{flavor}"
    );
    assert!(release_plan(
        &["--default-variant", "alpine", "--sign", "none"],
        &tag_push()
    )
    .is_err());
    assert!(release_plan(&["--force", "--sign", "none"], &tag_push())
        .unwrap()
        .must_not_exist
        .is_empty());
}

#[test]
fn dockerfile_args_exist() {
    assert!(Path::new(&project::project_root()).join("images").is_dir());
    assert_eq!(dockerfile_args().len(), variants().len());
}

/// Every build compiles once, in a build of its own (the compile file) that
/// every variant takes its binaries from: a cached CI build with a cache of
/// its own, one without a cache and a release (both platforms, no cache,
/// SOURCE_DATE_EPOCH) alike; host-built binaries replace it. Its args are
/// the same for every variant: setting one for one variant is refused.
#[test]
fn every_build_compiles_once_in_a_build_of_its_own() {
    let pr = sample(Some("refs/pull/42/merge"));
    let shared = ci_plan(&["--cache", "registry", "--registry", "r.example"], &pr).unwrap();
    let compile = shared.shared_compile.as_ref().expect("a shared compile");
    assert_eq!(compile.dockerfile, project::COMPILE_DOCKERFILE);
    assert_eq!(
        compile.cache.from,
        [
            "type=registry,ref=r.example/beacon-buildcache:compile-pr-42",
            "type=registry,ref=r.example/beacon-buildcache:compile-main"
        ]
    );
    assert!(compile.cache.to[0].contains("compile-pr-42,mode=min"));
    let bake = render::bake_file(&shared, &files(&shared));
    for variant in &shared.variants {
        let target = &bake["target"][&variant.variant];
        assert_eq!(target["contexts"]["binaries"], "target:compile");
        assert!(target["args"].get("BINARIES_FROM").is_none());
    }
    assert_eq!(bake["target"]["compile"]["output"][0], "type=cacheonly");
    // Only the variants are asked for: buildx builds what they name.
    let build = render::build(&shared, &files(&shared));
    assert!(!build.args.iter().any(|a| a == "compile"));

    // Without a cache (a laptop's default): the same compile, no cache.
    let plain = ci_plan(&[], &sample(None)).unwrap();
    let bake = render::bake_file(&plain, &files(&plain));
    let compile = &bake["target"]["compile"];
    assert_eq!(compile["dockerfile"], "images/compile.Dockerfile");
    assert!(compile.get("cache-from").is_none() && compile.get("cache-to").is_none());
    assert!(
        compile.get("no-cache-filter").is_none(),
        "CI builds reuse it"
    );
    assert_eq!(
        bake["target"][&plain.variants[0].variant]["contexts"]["binaries"],
        "target:compile"
    );

    // A release: both platforms' binaries in one compile, reproducibly.
    let release = release_plan(&["--sign", "none"], &tag_push()).unwrap();
    let bake = render::bake_file(&release, &files(&release));
    let compile = &bake["target"]["compile"];
    assert_eq!(compile["platforms"], json!(["linux/amd64", "linux/arm64"]));
    assert_eq!(compile["args"]["TARGET_ARCHES"], "amd64 arm64");
    assert_eq!(compile["args"]["SOURCE_DATE_EPOCH"], "1700000000");
    assert_eq!(compile["args"]["IMAGE_FLAVOR"], "production");
    assert!(compile.get("cache-from").is_none() && compile.get("cache-to").is_none());
    // Its binaries carry the commit time whatever the engine's cache holds.
    assert_eq!(compile["no-cache-filter"], json!(["binaries"]));
    let rebuild = release_plan(
        &[
            "--sign",
            "none",
            "--no-cache",
            "--output-archive",
            "target/a",
        ],
        &tag_push(),
    )
    .unwrap();
    let bake = render::bake_file(&rebuild, &files(&rebuild));
    assert_eq!(bake["target"]["compile"]["no-cache"], true, "rebuild-check");
    // Its archive says where each platform was rebuilt (and, of one
    // platform, is an index, which index annotations need); no SBOM.
    for variant in &rebuild.variants {
        assert_eq!(
            bake["target"][&variant.variant]["attest"],
            json!(["type=provenance,mode=max", "type=sbom,disabled=true"]),
            "{}",
            variant.variant
        );
    }

    // Host-built binaries: no compile at all.
    let host = ci_plan(
        &[
            "--cache",
            "registry",
            "--registry",
            "r.example",
            "--binaries",
            "target/bin",
        ],
        &pr,
    )
    .unwrap();
    assert_eq!(host.shared_compile, None);
    let bake = render::bake_file(&host, &files(&host));
    assert!(bake["target"].get("compile").is_none());
    assert_eq!(
        bake["target"][&host.variants[0].variant]["contexts"]["binaries"],
        "target/bin"
    );

    // A compile arg for one variant only: refused, naming the way out.
    let mirror = format!(
        "ubi9:BUILDER_IMAGE=mirror.example/rust:1@sha256:{}",
        "b".repeat(64)
    );
    let err = ci_plan(&["--build-arg", &mirror], &pr)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("BUILDER_IMAGE")
            && err.contains("images/compile.Dockerfile")
            && err.contains("--build-arg BUILDER_IMAGE=mirror.example"),
        "{err}"
    );
    // A base of one variant is no compile arg: still one compile.
    let base = format!(
        "ubi9:CI_BASE=mirror.example/ubi:9@sha256:{}",
        "c".repeat(64)
    );
    let bases = ci_plan(
        &[
            "--cache",
            "registry",
            "--registry",
            "r.example",
            "--build-arg",
            &base,
        ],
        &pr,
    )
    .unwrap();
    assert!(bases.shared_compile.is_some() && bases.warnings.is_empty());
}
