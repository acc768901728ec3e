//! Rendering: a plan becomes the exact commands that run. All selected
//! variants are built by one `docker buildx bake` invocation (a JSON bake
//! file on stdin), so they build in parallel and share one BuildKit session.
//! Commands that need a result of the build carry a `<digest:VARIANT>`
//! placeholder that the executor fills in. Every path a command names is
//! under the run's own [`RunFiles`] directory, so two runs in one checkout
//! never share a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::client::{cosign, docker, registry};
pub use crate::model::command::Invocation;
use crate::model::cosign::{CosignLine, CosignRun, SIGNATURE_PREDICATE};
use crate::model::reference::{Digest, ImageRef};
use crate::model::tags::SHARED_COMPILE;
use crate::plan::gate::ExpectedSigner;
use crate::plan::record::latest_last;
use crate::plan::{
    Mode, Output, Plan, Policy, PushVia, SharedCompile, Signing, VariantPlan, BINARIES_CONTEXT,
    COMPILE_STAGE, FLAVOR_ARG, PROFILE_ARG, TARGET_ARCHES_ARG,
};

/// Quotes one field of buildx's comma-separated output spec when needed.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

pub fn digest_placeholder(variant: &str) -> String {
    Digest::placeholder(variant).to_string()
}

/// A variant's pushed index, by the digest the build will tell.
fn pending_index(plan: &Plan, variant: &str) -> ImageRef {
    plan.repository.at(&Digest::placeholder(variant))
}

/// One platform image of a variant's pushed index, by the digest the
/// registry will tell (`<digest:VARIANT:PLATFORM>`).
pub fn pending_platform_digest(variant: &str, platform: &impl std::fmt::Display) -> Digest {
    Digest::placeholder(&format!("{variant}:{platform}"))
}

/// Fills in the digest of `variant` wherever a command names it.
pub fn with_digest(invocation: &Invocation, variant: &str, digest: &str) -> Invocation {
    invocation.replacing(&digest_placeholder(variant), digest)
}

/// The files of one run, in a directory of its own: buildx's metadata file
/// and the OCI archives (docker driver pushes, rebuild-check's output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFiles {
    /// The run's directory (relative to the project root, where buildx runs).
    pub dir: PathBuf,
    /// Where OCI archives go when they are the result (`Output::Archive`).
    pub archives: Option<PathBuf>,
}

impl RunFiles {
    /// The directory `target/xtask/runs/<command>-<id>` of a run.
    pub fn new(plan: &Plan, id: &str) -> RunFiles {
        let command = match plan.mode {
            Mode::Ci => "ci-image",
            Mode::Release => "release-image",
        };
        RunFiles {
            dir: Path::new("target/xtask/runs").join(format!("{command}-{id}")),
            archives: None,
        }
    }

    /// Where buildx writes its metadata file.
    pub fn metadata(&self) -> PathBuf {
        self.dir.join("metadata.json")
    }

    /// Where a variant's OCI archive goes.
    pub fn oci_archive(&self, variant: &str) -> PathBuf {
        match &self.archives {
            Some(dir) => dir.join(format!("{variant}.tar")),
            None => self.dir.join("oci").join(format!("{variant}.tar")),
        }
    }
}

/// Pushes a variant's OCI archive by digest, keeping every digest (the
/// `docker` driver's substitute for BuildKit's push-by-digest).
pub fn push_archive(plan: &Plan, files: &RunFiles, variant: &str) -> Option<Invocation> {
    if plan.output != Output::PushByDigest(PushVia::OciArchive) {
        return None;
    }
    let mut args: Vec<String> = [
        "copy",
        "--all",
        "--preserve-digests",
        "--retry-times=2",
        "--quiet",
    ]
    .map(String::from)
    .to_vec();
    if plan.repository.is_loopback() {
        args.push("--dest-tls-verify=false".to_string());
    }
    args.push(format!(
        "oci-archive:{}",
        files.oci_archive(variant).display()
    ));
    args.push(format!("docker://{}", pending_index(plan, variant)));
    Some(Invocation::new("skopeo", args))
}

/// The bake file: one target per variant, a `default` group of them all, and
/// the compile file's target their binaries come from (none with host-built
/// binaries).
pub fn bake_file(plan: &Plan, files: &RunFiles) -> Value {
    let mut targets = Map::new();
    for variant in &plan.variants {
        targets.insert(variant.variant.clone(), bake_target(plan, files, variant));
    }
    if let (Some(compile), Some(first)) = (&plan.shared_compile, plan.variants.first()) {
        targets.insert(
            SHARED_COMPILE.to_string(),
            shared_compile_target(compile, &first.policy),
        );
    }
    json!({
        "group": { "default": { "targets": plan.variant_names() } },
        "target": targets,
    })
}

fn bake_target(plan: &Plan, files: &RunFiles, variant: &VariantPlan) -> Value {
    let (recipe, policy) = (&variant.recipe, &variant.policy);
    // Every build arg of the run, the compile's included: the image's
    // provenance records what its binaries were compiled with
    // (rebuild-check reads the builder image back from it).
    let args = build_args(&recipe.build_args, policy);
    let mut named_contexts = recipe.named_contexts.clone();
    if plan.shared_compile.is_some() {
        // The binaries come from the compile file's own build.
        named_contexts.insert(
            BINARIES_CONTEXT.to_string(),
            format!("target:{SHARED_COMPILE}"),
        );
    }
    let mut attest = Vec::new();
    match &policy.attestations.provenance {
        Some(mode) => attest.push(format!("type=provenance,mode={mode}")),
        None => attest.push("type=provenance,disabled=true".to_string()),
    }
    match &policy.attestations.sbom {
        Some(request) => attest.push(match &request.generator {
            Some(generator) => format!("type=sbom,generator={generator}"),
            None => "type=sbom".to_string(),
        }),
        None => attest.push("type=sbom,disabled=true".to_string()),
    }
    let mut output = match plan.output {
        Output::Load => "type=docker".to_string(),
        Output::PushByDigest(PushVia::Builder) => {
            format!("type=image,name={},push-by-digest=true,name-canonical=true,push=true,oci-mediatypes=true", plan.repository)
        }
        Output::PushByDigest(PushVia::OciArchive) | Output::Archive => {
            format!(
                "type=oci,dest={}",
                files.oci_archive(&variant.variant).display()
            )
        }
    };
    if policy.rewrite_timestamp {
        output.push_str(",rewrite-timestamp=true");
    }
    // Exporter attributes, not bake's `annotations` field: they work with
    // every buildx version and reach both the index and each manifest.
    for (key, value) in &policy.annotations {
        for level in ["index", "manifest"] {
            output.push(',');
            output.push_str(&csv_field(&format!("annotation-{level}.{key}={value}")));
        }
    }
    let mut target = json!({
        "context": recipe.context,
        "dockerfile": recipe.dockerfile,
        "args": args,
        "platforms": policy.platforms.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "labels": policy.labels,
        "attest": attest,
        "output": [output],
    });
    let fields = target.as_object_mut();
    if let Some(fields) = fields {
        // Pushed builds are untagged until every variant succeeded; loaded
        // builds are tagged by the engine as they land.
        if plan.output == Output::Load {
            fields.insert("tags".into(), json!(policy.tags));
        }
        if policy.no_cache {
            fields.insert("no-cache".into(), json!(true));
        }
        if !policy.no_cache_stages.is_empty() {
            fields.insert("no-cache-filter".into(), json!(policy.no_cache_stages));
        }
        if !named_contexts.is_empty() {
            fields.insert("contexts".into(), json!(named_contexts));
        }
        if !policy.cache.from.is_empty() {
            fields.insert("cache-from".into(), json!(policy.cache.from));
        }
        if !policy.cache.to.is_empty() {
            fields.insert("cache-to".into(), json!(policy.cache.to));
        }
    }
    target
}

/// A target's build args: the recipe's, and those its policy sets.
fn build_args(recipe_args: &BTreeMap<String, String>, policy: &Policy) -> Map<String, Value> {
    let mut args: Map<String, Value> = recipe_args
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    args.insert(FLAVOR_ARG.to_string(), json!(policy.flavor.as_str()));
    args.insert(PROFILE_ARG.to_string(), json!(policy.cargo_profile));
    args.insert(TARGET_ARCHES_ARG.to_string(), json!(policy.target_arches()));
    if let Some(epoch) = policy.source_date_epoch {
        args.insert("SOURCE_DATE_EPOCH".to_string(), json!(epoch.to_string()));
    }
    args
}

/// The compile file's own build: the variants' policy (the same for them
/// all: flavor, profile, platforms, SOURCE_DATE_EPOCH, --no-cache), the
/// binaries as its result, kept only in the build cache.
fn shared_compile_target(compile: &SharedCompile, policy: &Policy) -> Value {
    let mut target = json!({
        "context": compile.context,
        "dockerfile": compile.dockerfile,
        "target": COMPILE_STAGE,
        "args": build_args(&compile.build_args, policy),
        "platforms": policy.platforms.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "output": ["type=cacheonly"],
    });
    if let Some(fields) = target.as_object_mut() {
        if policy.no_cache {
            fields.insert("no-cache".into(), json!(true));
        }
        if !compile.no_cache_stages.is_empty() {
            fields.insert("no-cache-filter".into(), json!(compile.no_cache_stages));
        }
        if !compile.cache.from.is_empty() {
            fields.insert("cache-from".into(), json!(compile.cache.from));
        }
        if !compile.cache.to.is_empty() {
            fields.insert("cache-to".into(), json!(compile.cache.to));
        }
    }
    target
}

/// The one buildx invocation that builds every variant of the plan (on the
/// selected builder, if any).
pub fn build(plan: &Plan, files: &RunFiles) -> Invocation {
    let mut args: Vec<String> = [
        "bake",
        "--file",
        "-",
        "--progress",
        "plain",
        "--metadata-file",
    ]
    .map(String::from)
    .to_vec();
    args.push(files.metadata().display().to_string());
    args.extend(plan.variant_names().into_iter().map(String::from));
    let mut bake = serde_json::to_string_pretty(&bake_file(plan, files)).unwrap_or_default();
    bake.push('\n');
    Invocation {
        stdin: Some(bake),
        ..docker::buildx(plan.builder.as_ref(), args)
    }
}

/// `cosign sign` of one variant's pushed digest (none when signing is off).
pub fn sign(plan: &Plan, run: &CosignRun, variant: &str) -> Option<Invocation> {
    sign_reference(&plan.signing, run, &pending_index(plan, variant))
}

/// What a run does once before it signs: a cosign-3 key-based run without
/// the transparency log makes its signing config, which names no service
/// (the trusted root beside it is written by the run itself).
pub fn sign_preparation(signing: &Signing, run: &CosignRun) -> Vec<Invocation> {
    match signing {
        Signing::Key {
            tlog_upload: false, ..
        } if run.line == CosignLine::V3 && run.signing_config.is_none() => {
            vec![cosign::create_signing_config(&run.own_signing_config())]
        }
        _ => Vec::new(),
    }
}

/// Whether a run writes [`CosignRun::trusted_root`] before signing.
pub fn signs_with_own_trusted_root(signing: &Signing, run: &CosignRun) -> bool {
    !sign_preparation(signing, run).is_empty()
}

/// `cosign sign` of one reference by digest. cosign 2 writes a `.sig`
/// signature (`--tlog-upload` as asked); cosign 3 a Sigstore bundle whose
/// services come from a signing config: the user's (`--signing-config`),
/// the run's own that names none (a key without `--tlog`: nothing leaves
/// the machine but the push, with a trusted root that trusts no service so
/// nothing is fetched from TUF either), or the public-good one from TUF
/// (keyless, or a key with `--tlog`). No deprecated flag is passed to either.
pub fn sign_reference(
    signing: &Signing,
    run: &CosignRun,
    reference: &ImageRef,
) -> Option<Invocation> {
    let mut args = vec!["sign".to_string(), "--yes".to_string()];
    let given = run.signing_config.as_ref();
    match (signing, run.line) {
        (Signing::None, _) => return None,
        (Signing::Key { key, tlog_upload }, CosignLine::V2) => {
            args.push(format!("--key={key}"));
            args.push(format!("--tlog-upload={tlog_upload}"));
        }
        (Signing::Keyless, CosignLine::V2) => {}
        (Signing::Key { key, .. }, CosignLine::V3) => {
            args.push(format!("--key={key}"));
            if let Some(config) = given {
                args.push(format!("--signing-config={}", config.display()));
            } else if signs_with_own_trusted_root(signing, run) {
                args.push(format!(
                    "--signing-config={}",
                    run.own_signing_config().display()
                ));
                args.push(format!("--trusted-root={}", run.trusted_root().display()));
            }
        }
        (Signing::Keyless, CosignLine::V3) => {
            if let Some(config) = given {
                args.push(format!("--signing-config={}", config.display()));
            }
        }
    }
    if reference.repository.is_loopback() {
        args.push("--allow-http-registry=true".to_string());
        args.push("--allow-insecure-registry=true".to_string());
    }
    args.push(reference.to_string());
    Some(Invocation::new("cosign", args))
}

/// Points a CI variant's tags at its pushed digest.
pub fn tag(plan: &Plan, variant: &VariantPlan) -> Invocation {
    tag_digest(&variant.policy.tags, &pending_index(plan, &variant.variant))
}

/// Points `tags` (tag references) at `reference` (by digest), keeping the
/// digest: `docker buildx imagetools create`.
pub fn tag_digest(tags: &[ImageRef], reference: &ImageRef) -> Invocation {
    let mut args: Vec<String> = ["buildx", "imagetools", "create"]
        .map(String::from)
        .to_vec();
    for tag in tags {
        args.push("--tag".to_string());
        args.push(tag.to_string());
    }
    args.push(reference.to_string());
    Invocation::new("docker", args)
}

/// The promotion's tag moves of a release plan, in order: every tag but the
/// `latest` ones per variant, then the `latest` ones.
pub fn tag_moves(plan: &Plan) -> Vec<Invocation> {
    latest_last(&plan.variants, |variant| &variant.policy.tags)
        .into_iter()
        .map(|(variant, tags)| tag_digest(&tags, &pending_index(plan, &variant.variant)))
        .collect()
}

/// Writes the public half of a signing key where the gate reads it.
pub fn public_key(key: &str, out: &Path) -> Invocation {
    cosign::public_key(key, out)
}

/// The cosign commands that check `reference`'s signature (by digest), in
/// the order they are tried: the signature verifies when one passes and
/// what it printed names a signature of the digest (`ops::gate`). cosign 3's
/// `verify` reads both formats; cosign 2's reads `.sig` signatures, and
/// `verify-attestation --new-bundle-format` of the signature predicate reads
/// cosign 3's Sigstore bundles (with a trusted root that trusts no service
/// for a key without the transparency log; keyless, the Sigstore root from
/// TUF, online).
pub fn cosign_verify(
    signer: &ExpectedSigner,
    run: &CosignRun,
    reference: &ImageRef,
) -> Vec<Invocation> {
    let public_key = run.public_key().display().to_string();
    let mut insecure = Vec::new();
    if reference.repository.is_loopback() {
        insecure.push("--allow-http-registry=true".to_string());
        insecure.push("--allow-insecure-registry=true".to_string());
    }
    let mut verify = vec!["verify".to_string()];
    verify.extend(signer.cosign_flags(&public_key));
    verify.extend(insecure.iter().cloned());
    verify.push(reference.to_string());
    let mut commands = vec![Invocation::new("cosign", verify)];
    if run.line == CosignLine::V2 {
        let mut bundle = vec![
            "verify-attestation".to_string(),
            "--new-bundle-format".to_string(),
            format!("--type={SIGNATURE_PREDICATE}"),
        ];
        bundle.extend(signer.cosign_flags(&public_key));
        if verifies_with_own_trusted_root(signer, run) {
            bundle.push(format!("--trusted-root={}", run.trusted_root().display()));
        }
        bundle.extend(insecure);
        bundle.push(reference.to_string());
        commands.push(Invocation::new("cosign", bundle));
    }
    commands
}

/// Whether the run's signature check reads Sigstore bundles with
/// [`CosignRun::trusted_root`] (written by the run): cosign 2, a key
/// without the transparency log.
pub fn verifies_with_own_trusted_root(signer: &ExpectedSigner, run: &CosignRun) -> bool {
    run.line == CosignLine::V2 && signer.key_without_tlog()
}

/// What the gate reads of one image index (by digest) with the platform
/// images `platform_digests`: the index, each platform's config, the
/// provenance and SBOM BuildKit attached, and the signature.
pub fn gate_image(
    signer: Option<&ExpectedSigner>,
    run: &CosignRun,
    index: &ImageRef,
    platform_digests: &[Digest],
) -> Vec<Invocation> {
    let mut commands = vec![registry::inspect_command(index)];
    commands.extend(
        platform_digests
            .iter()
            .map(|digest| registry::config_command(&index.repository.at(digest))),
    );
    commands.push(registry::attestation_command(
        index,
        registry::Attestation::Provenance,
    ));
    commands.push(registry::attestation_command(
        index,
        registry::Attestation::Sbom,
    ));
    if let Some(signer) = signer {
        commands.extend(cosign_verify(signer, run, index));
    }
    commands
}

/// The gate of a release plan, before any tag moves: the public key first
/// (key-signed releases), then every variant's image as [`gate_image`] reads it.
pub fn gate(plan: &Plan, run: &CosignRun) -> Vec<Invocation> {
    let Some(gate) = &plan.gate else {
        return Vec::new();
    };
    let mut commands = Vec::new();
    if let Some(ExpectedSigner::SigningKey { key, .. }) = &gate.signer {
        commands.push(public_key(key, &run.public_key()));
    }
    for variant in &plan.variants {
        let platform_digests: Vec<Digest> = variant
            .policy
            .platforms
            .iter()
            .map(|p| pending_platform_digest(&variant.variant, p))
            .collect();
        commands.extend(gate_image(
            gate.signer.as_ref(),
            run,
            &pending_index(plan, &variant.variant),
            &platform_digests,
        ));
    }
    commands
}

/// The registry lookups a run makes before building: the push target is
/// probed, and each immutable tag that must not exist yet is looked up.
pub fn lookups(plan: &Plan) -> Vec<Invocation> {
    let probe = plan
        .pushes()
        .then(|| registry::probe_command(&plan.repository));
    probe
        .into_iter()
        .chain(plan.must_not_exist.iter().map(registry::inspect_command))
        .collect()
}

/// The build stage's commands: the lookups, the build, the pushes and, for
/// a pushed plan, reading each pushed index back (its platform digests).
pub fn build_stage(plan: &Plan, files: &RunFiles) -> Vec<Invocation> {
    let mut commands = lookups(plan);
    commands.push(build(plan, files));
    commands.extend(
        plan.variants
            .iter()
            .filter_map(|v| push_archive(plan, files, &v.variant)),
    );
    if plan.pushes() {
        commands.extend(plan.variants.iter().flat_map(|v| read_back(plan, v)));
    }
    commands
}

/// Every command of the plan, in order, as `--dry-run` prints them: the
/// build stage; for a CI push the tag moves; for a release the signatures
/// (as the cosign of `line` makes them), the gate and only then the tag
/// moves, `latest` last.
pub fn all(plan: &Plan, files: &RunFiles, line: CosignLine) -> Vec<Invocation> {
    let mut commands = build_stage(plan, files);
    match (plan.mode, plan.pushes()) {
        (Mode::Ci, true) => commands.extend(plan.variants.iter().map(|v| tag(plan, v))),
        (Mode::Release, true) => {
            let run = CosignRun::new(line, &files.dir);
            commands.extend(sign_preparation(&plan.signing, &run));
            commands.extend(
                plan.variants
                    .iter()
                    .filter_map(|v| sign(plan, &run, &v.variant)),
            );
            commands.extend(gate(plan, &run));
            commands.extend(tag_moves(plan));
        }
        _ => {}
    }
    commands
}

/// What the report reads back from the registry once a variant is pushed:
/// its index, and each platform's manifest (digest and size).
pub fn read_back(plan: &Plan, variant: &VariantPlan) -> Vec<Invocation> {
    let index = pending_index(plan, &variant.variant);
    std::iter::once(registry::inspect_command(&index))
        .chain(variant.policy.platforms.iter().map(|platform| {
            let digest = pending_platform_digest(&variant.variant, platform);
            registry::inspect_command(&plan.repository.at(&digest))
        }))
        .collect()
}
