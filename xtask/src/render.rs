//! Rendering: a plan becomes the exact commands that run. All selected
//! variants are built by one `docker buildx bake` invocation (a JSON bake
//! file on stdin), so they build in parallel and share one BuildKit session.
//! Commands that need a result of the build carry a `<digest:VARIANT>`
//! placeholder that the executor fills in.

use serde_json::{json, Map, Value};

use crate::plan::{Output, Plan, PushVia, Signing, VariantPlan, FLAVOR_ARG, PROFILE_ARG};

/// One command to run: program, arguments, optional stdin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Invocation {
    pub program: String,
    pub args: Vec<String>,
    pub stdin: Option<String>,
}

impl Invocation {
    fn new(program: &str, args: Vec<String>) -> Invocation {
        Invocation {
            program: program.to_string(),
            args,
            stdin: None,
        }
    }

    /// Copy with every `<digest:VARIANT>` placeholder replaced.
    pub fn with_digest(&self, variant: &str, digest: &str) -> Invocation {
        let placeholder = digest_placeholder(variant);
        let args = self
            .args
            .iter()
            .map(|a| a.replace(&placeholder, digest))
            .collect();
        Invocation {
            args,
            ..self.clone()
        }
    }

    /// Shell-quoted, for `--dry-run` and logs (stdin shown as a heredoc).
    pub fn display(&self) -> String {
        let mut line = std::iter::once(&self.program)
            .chain(&self.args)
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(stdin) = &self.stdin {
            line.push_str(" <<'EOF'\n");
            line.push_str(stdin.trim_end());
            line.push_str("\nEOF");
        }
        line
    }
}

/// Quotes one field of buildx's comma-separated output spec when needed.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

pub fn digest_placeholder(variant: &str) -> String {
    format!("<digest:{variant}>")
}

fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Where buildx writes its metadata file (relative to the project root).
pub fn metadata_file(plan: &Plan) -> String {
    work_file(plan, "metadata.json")
}

/// A file of the tool's own under `target/xtask/`, one per command.
pub fn work_file(plan: &Plan, name: &str) -> String {
    let mode = match plan.mode {
        crate::plan::Mode::Ci => "ci-image",
        crate::plan::Mode::Release => "release-image",
    };
    format!("target/xtask/{mode}-{name}")
}

/// Where a variant's OCI archive goes when the builder cannot push by digest.
pub fn oci_archive(variant: &str) -> String {
    format!("target/xtask/oci/{variant}.tar")
}

/// Pushes a variant's OCI archive by digest, keeping every digest (the
/// `docker` driver's substitute for BuildKit's push-by-digest).
pub fn push_archive(plan: &Plan, variant: &str) -> Option<Invocation> {
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
    if is_loopback_registry(&plan.repository) {
        args.push("--dest-tls-verify=false".to_string());
    }
    args.push(format!("oci-archive:{}", oci_archive(variant)));
    args.push(format!(
        "docker://{}@{}",
        plan.repository,
        digest_placeholder(variant)
    ));
    Some(Invocation::new("skopeo", args))
}

/// The bake file: one target per variant, and a `default` group of them all.
pub fn bake_file(plan: &Plan) -> Value {
    let mut targets = Map::new();
    for variant in &plan.variants {
        targets.insert(variant.variant.clone(), bake_target(plan, variant));
    }
    json!({
        "group": { "default": { "targets": plan.variant_names() } },
        "target": targets,
    })
}

fn bake_target(plan: &Plan, variant: &VariantPlan) -> Value {
    let (recipe, policy) = (&variant.recipe, &variant.policy);
    let mut args: Map<String, Value> = recipe
        .build_args
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    args.insert(FLAVOR_ARG.to_string(), json!(policy.flavor.as_str()));
    args.insert(PROFILE_ARG.to_string(), json!(policy.cargo_profile));
    if let Some(epoch) = policy.source_date_epoch {
        args.insert("SOURCE_DATE_EPOCH".to_string(), json!(epoch.to_string()));
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
            format!("type=oci,dest={}", oci_archive(&variant.variant))
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
        if !recipe.named_contexts.is_empty() {
            fields.insert("contexts".into(), json!(recipe.named_contexts));
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

/// The one buildx invocation that builds every variant of the plan.
pub fn build(plan: &Plan) -> Invocation {
    let mut args: Vec<String> = [
        "buildx",
        "bake",
        "--file",
        "-",
        "--progress",
        "plain",
        "--metadata-file",
    ]
    .map(String::from)
    .to_vec();
    args.push(metadata_file(plan));
    args.extend(plan.variant_names().into_iter().map(String::from));
    let mut bake = build_file_text(plan);
    bake.push('\n');
    Invocation {
        stdin: Some(bake),
        ..Invocation::new("docker", args)
    }
}

fn build_file_text(plan: &Plan) -> String {
    serde_json::to_string_pretty(&bake_file(plan)).unwrap_or_default()
}

/// The registry is on this machine (tests, a laptop mirror): cosign must be
/// allowed to speak plain HTTP to it. Never for any other registry.
pub fn is_loopback_registry(repository: &str) -> bool {
    let host = repository.split('/').next().unwrap_or_default();
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    name == "localhost" || name == "127.0.0.1" || name == "[::1]"
}

/// `cosign sign` of one variant's pushed digest (none when signing is off).
pub fn sign(plan: &Plan, variant: &str) -> Option<Invocation> {
    sign_reference(
        &plan.signing,
        &plan.repository,
        &format!("{}@{}", plan.repository, digest_placeholder(variant)),
    )
}

/// `cosign sign` of one reference by digest.
pub fn sign_reference(signing: &Signing, repository: &str, reference: &str) -> Option<Invocation> {
    let mut args = vec!["sign".to_string(), "--yes".to_string()];
    match signing {
        Signing::None => return None,
        Signing::Key { key, tlog_upload } => {
            args.push(format!("--key={key}"));
            args.push(format!("--tlog-upload={tlog_upload}"));
        }
        Signing::Keyless => {}
    }
    if is_loopback_registry(repository) {
        args.push("--allow-http-registry=true".to_string());
        args.push("--allow-insecure-registry=true".to_string());
    }
    args.push(reference.to_string());
    Some(Invocation::new("cosign", args))
}

/// Points a variant's tags at its pushed digest (the last, all-or-nothing step).
pub fn tag(plan: &Plan, variant: &VariantPlan) -> Invocation {
    let mut args: Vec<String> = ["buildx", "imagetools", "create"]
        .map(String::from)
        .to_vec();
    for tag in &variant.policy.tags {
        args.push("--tag".to_string());
        args.push(tag.clone());
    }
    args.push(format!(
        "{}@{}",
        plan.repository,
        digest_placeholder(&variant.variant)
    ));
    Invocation::new("docker", args)
}

/// Every command of the plan, in order, as `--dry-run` prints them.
pub fn all(plan: &Plan) -> Vec<Invocation> {
    let mut commands = vec![build(plan)];
    commands.extend(
        plan.variants
            .iter()
            .filter_map(|v| push_archive(plan, &v.variant)),
    );
    if plan.pushes() {
        commands.extend(plan.variants.iter().filter_map(|v| sign(plan, &v.variant)));
        commands.extend(plan.variants.iter().map(|v| tag(plan, v)));
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("type=gha,scope=a"), "type=gha,scope=a");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn loopback() {
        assert!(is_loopback_registry("127.0.0.1:5000/beacon"));
        assert!(is_loopback_registry("localhost/beacon"));
        assert!(!is_loopback_registry("ghcr.io/acme/beacon"));
        assert!(!is_loopback_registry("127.0.0.1.evil.example/beacon"));
    }
}
