//! `cargo xtask verify`: the deploy gate. An image passes only if it is a
//! production image as `release-image` makes them: an index holding every
//! required platform, labelled production on every platform, with SLSA
//! provenance and an SBOM attached for every platform, whose provenance
//! agrees with its labels and annotations (the source repository and the
//! revision it was built from), and signed on its index digest by the
//! expected signer: this repository's release workflow on `main` or a
//! release tag, triggered by a push (`--repository OWNER/REPO`, no regexp to
//! write), or a key. Anything else fails with every reason found.
//!
//! The same checks gate a release before any of its tags moves
//! (`promote`, `release-image`), over the digests of its release record;
//! `verify --record FILE` runs them on a record as the release workflow's
//! gate job does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use crate::exec::{self, RecordExpectation};
use crate::model::names::{self, ImageRef, Platform};
use crate::model::oci::ImageConfig;
use crate::model::registry::{self, Attestation};
use crate::model::tags::CI_PREFIX;
use crate::model::{files, yaml};
use crate::plan::admission::{self, AdmittedSigner, PolicyKind};
use crate::plan::gate::{ExpectedSigner, SignerRequest};
use crate::plan::record::{RecordedVariant, ReleaseRecord};
use crate::plan::{recipe, BuildOptions, LABEL_NS};
use crate::preflight;
use crate::{context, project, render};

const REVISION: &str = "org.opencontainers.image.revision";
const SOURCE: &str = "org.opencontainers.image.source";
const VERSION: &str = "org.opencontainers.image.version";

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The image to check (tag or digest); `None` with `record` or `policy`.
    pub image: Option<String>,
    /// Print this admission policy for the repository, admitting the
    /// expected signer, instead of checking an image.
    pub policy: Option<PolicyKind>,
    /// Check every variant of a release record instead.
    pub record: Option<PathBuf>,
    /// With `record`: the repository it must be a release to.
    pub registry: Option<String>,
    pub image_name: String,
    pub signer: SignerRequest,
    /// Platforms the image must provide, comma-separated.
    pub platform: String,
}

/// What a release record says an image is, checked against what it says itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub variant: String,
    pub commit: String,
    pub version: String,
    /// Per platform, the image manifest digest.
    pub platform_digests: BTreeMap<String, String>,
}

impl Recorded {
    pub fn of(record: &ReleaseRecord, variant: &RecordedVariant) -> Recorded {
        Recorded {
            variant: variant.variant.clone(),
            commit: record.commit.clone(),
            version: record.version.clone(),
            platform_digests: variant.platform_digests.clone(),
        }
    }
}

/// The gate's finding on one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// As asked for (tag or digest).
    pub image: String,
    /// The index digest it resolved to.
    pub digest: String,
    pub platforms: Vec<String>,
    /// Every reason it must not be deployed; empty: it passed.
    pub problems: Vec<String>,
}

pub fn run(args: VerifyOptions) -> Result<()> {
    if let Some(kind) = args.policy {
        return print_policy(kind, &args);
    }
    let platforms = names::parse_platforms(&args.platform)?;
    let signer = args.signer.resolve()?;
    let requirements = signer.requirements();
    match (&args.image, &args.record) {
        (Some(image), None) => {
            let image: ImageRef = image.parse()?;
            preflight::check_all(&requirements)?;
            let verdict = check_image(&image, Some(&signer), Path::new(""), &platforms, None)?;
            if !verdict.problems.is_empty() {
                bail!(
                    "{image} must not be deployed: {}",
                    verdict.problems.join("; ")
                );
            }
            println!(
                "ok: {image} ({}) is a production image for {}, signed by {}, with provenance and an SBOM for every platform",
                verdict.digest,
                verdict.platforms.join(", "),
                signer.describe()
            );
            Ok(())
        }
        (None, Some(path)) => {
            let record = ReleaseRecord::read(path)?;
            let context = context::gather(&project::project_root())?;
            let repository = expected_repository(&args.registry, &args.image_name, &context)?;
            preflight::check_all(&requirements)?;
            exec::check_record(
                &record,
                &path.display().to_string(),
                &RecordExpectation {
                    repository,
                    commit: None,
                    complete: true,
                },
            )?;
            let verdicts = gate_record(&record, Some(&signer), Path::new(""), &platforms)?;
            if let Some(failure) = gate_failure(
                &record,
                &verdicts,
                &format!(
                    "fix the cause and re-run this check (`cargo xtask verify --record {}`)",
                    path.display()
                ),
            ) {
                return Err(failure);
            }
            for verdict in &verdicts {
                println!(
                    "ok: {} passed the gate (signed by {})",
                    verdict.image,
                    signer.describe()
                );
            }
            Ok(())
        }
        _ => bail!("verify checks one IMAGE or a release record (--record FILE): give exactly one"),
    }
}

/// The repository a record must be a release to: `--registry` and
/// `--image-name`, defaulting as `release-image` does (ghcr.io/OWNER in
/// GitHub Actions).
pub fn expected_repository(
    registry: &Option<String>,
    image_name: &str,
    context: &context::BuildContext,
) -> Result<String> {
    let options = BuildOptions {
        variants: Vec::new(),
        registry: registry.clone(),
        image_name: image_name.to_string(),
        build_args: Vec::new(),
        binaries: None,
        cache: None,
        cache_mode: None,
        cache_dir: PathBuf::new(),
        no_cache: false,
    };
    recipe::repository(&options, context, true).map_err(|_| {
        anyhow::anyhow!("name the repository the release record must be for: pass --registry (e.g. ghcr.io/acme or 127.0.0.1:5000) or set IMAGE_REGISTRY")
    })
}

/// `--policy KIND`: the admission policy for the image repository,
/// admitting exactly the signer this gate requires, on stdout.
fn print_policy(kind: PolicyKind, args: &VerifyOptions) -> Result<()> {
    let named = args.signer.key.is_some()
        || args.signer.repository.is_some()
        || args.signer.certificate_identity_regexp.is_some();
    if !named {
        bail!(
            "verify --policy {kind} needs the signer the policy admits: --repository OWNER/REPO (keyless: that repository's \
             release workflow) or --key PUBLIC_KEY (a file, env://VAR or a KMS URI); valid kinds are {}",
            PolicyKind::NAMES.join(", ")
        );
    }
    let signer = args.signer.resolve()?;
    let repository = match (&args.registry, &signer) {
        (Some(registry), _) => format!("{}/{}", registry.trim_end_matches('/'), args.image_name),
        // The release workflow publishes to ghcr.io/<owner>/<name> by default.
        (None, ExpectedSigner::Workflow { identity }) => format!(
            "ghcr.io/{}/{}",
            identity.repository.owner.to_lowercase(),
            args.image_name
        ),
        (None, _) => bail!(
            "verify --policy {kind} needs the image repository the policy guards: pass --registry (e.g. ghcr.io/acme) and --image-name if not {}",
            args.image_name
        ),
    };
    names::validate_repository(&repository)?;
    let admitted = match &signer {
        ExpectedSigner::Key { key, tlog } if key.starts_with("env://") => {
            let var = key.trim_start_matches("env://");
            let pem = std::env::var(var).map_err(|_| {
                anyhow::anyhow!("--key {key}: the environment variable {var} is not set (it must hold the public key PEM)")
            })?;
            AdmittedSigner::PublicKey { pem, tlog: *tlog }
        }
        ExpectedSigner::Key { key, tlog } if key.contains("://") => AdmittedSigner::Kms {
            uri: key.clone(),
            tlog: *tlog,
        },
        ExpectedSigner::Key { key, tlog } => {
            let pem = files::read_to_string(Path::new(key))?;
            if !pem.contains("-----BEGIN PUBLIC KEY-----") {
                bail!("--key {key} holds no PEM public key (-----BEGIN PUBLIC KEY-----): pass the .pub half of the key pair (`cosign public-key --key cosign.key` prints it)");
            }
            AdmittedSigner::PublicKey { pem, tlog: *tlog }
        }
        other => AdmittedSigner::Keyless(other.clone()),
    };
    let document = admission::policy(kind, &repository, &admitted)?;
    print!("{}", yaml::to_yaml(&document)?);
    Ok(())
}

/// Writes the public half of a signing key for the gate into `dir` (a
/// release's own gate); other signers need nothing. Returns the file.
pub fn prepare_signer(signer: Option<&ExpectedSigner>, dir: &Path) -> Result<PathBuf> {
    let public_key = dir.join("cosign.pub");
    if let Some(ExpectedSigner::SigningKey { key, .. }) = signer {
        files::create_dir_all(dir)?;
        exec::run_one(&render::public_key(key, &public_key)).with_context(|| {
            format!(
                "cannot derive the public key of {key} for the gate (is COSIGN_PASSWORD right?)"
            )
        })?;
    }
    Ok(public_key)
}

/// Runs the gate on every variant of a record, by digest.
pub fn gate_record(
    record: &ReleaseRecord,
    signer: Option<&ExpectedSigner>,
    public_key: &Path,
    platforms: &[Platform],
) -> Result<Vec<Verdict>> {
    let mut verdicts = Vec::new();
    for variant in &record.variants {
        let image: ImageRef = variant.image(&record.repository).parse()?;
        let recorded = Recorded::of(record, variant);
        let mut verdict = check_image(&image, signer, public_key, platforms, Some(&recorded))?;
        verdict.image = format!("{} ({})", variant.variant, verdict.image);
        verdicts.push(verdict);
    }
    Ok(verdicts)
}

/// The one-line refusal of a gate that did not pass: which variant failed
/// which check, that no tag moved, and how to finish or abandon.
pub fn gate_failure(
    record: &ReleaseRecord,
    verdicts: &[Verdict],
    finish: &str,
) -> Option<anyhow::Error> {
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.problems.is_empty())
        .map(|v| format!("{}: {}", v.image, v.problems.join("; ")))
        .collect();
    if failed.is_empty() {
        return None;
    }
    let digests: Vec<String> = record
        .variants
        .iter()
        .map(|v| v.image(&record.repository))
        .collect();
    Some(anyhow::anyhow!(
        "the gate refused {} of {} variant(s), so no tag moves: {} | to finish: {finish}; to abandon: nothing to undo, no tag points at the untagged digests {}",
        failed.len(),
        verdicts.len(),
        failed.join(" | "),
        digests.join(" ")
    ))
}

/// Every check of the gate on one image (by tag or digest); `recorded`: what
/// its release record says it is. Registry errors are errors; everything
/// the image gets wrong is a problem of the verdict.
pub fn check_image(
    image: &ImageRef,
    signer: Option<&ExpectedSigner>,
    public_key: &Path,
    platforms: &[Platform],
    recorded: Option<&Recorded>,
) -> Result<Verdict> {
    let mut problems = Vec::new();
    if let Some(tag) = image.tag.as_deref().filter(|t| t.starts_with(CI_PREFIX)) {
        problems.push(format!(
            "it is tagged {tag:?}, a CI tag (CI images are never deployed)"
        ));
    }
    let fetched = registry::fetch_existing(&image.to_string())?;
    let digest = fetched.digest.clone();
    if let Some(expected) = &image.digest {
        if expected != &digest {
            problems.push(format!(
                "it resolves to {digest}, not the requested {expected}"
            ));
        }
    }
    let by_digest = format!("{}@{digest}", image.repository);
    let mut annotations = BTreeMap::new();
    let (listed, configs) = match fetched.document.as_index() {
        Some(index) => {
            annotations = index.annotations.clone();
            let mut configs = Vec::new();
            for entry in index.images() {
                let config =
                    registry::config(&image.repository, &entry.digest)?.unwrap_or_default();
                configs.push((entry.platform_name(), config));
            }
            if let Some(recorded) = recorded {
                let actual: BTreeMap<String, String> = index
                    .images()
                    .map(|e| (e.platform_name(), e.digest.clone()))
                    .collect();
                if actual != recorded.platform_digests {
                    problems.push(format!(
                        "its platform images {actual:?} are not the recorded {:?}",
                        recorded.platform_digests
                    ));
                }
            }
            (index.platforms(), configs)
        }
        None => {
            problems.push("it is a single-platform image, not a multi-platform index".to_string());
            let config = registry::config(&image.repository, &digest)?.unwrap_or_default();
            (Vec::new(), vec![("the image".to_string(), config)])
        }
    };
    for platform in platforms {
        if !listed.contains(&platform.to_string()) {
            problems.push(format!(
                "it has no {platform} image (it has: {})",
                if listed.is_empty() {
                    "one unnamed platform".into()
                } else {
                    listed.join(", ")
                }
            ));
        }
    }
    problems.extend(label_problems(&configs));
    let provenance = registry::attestation(&by_digest, Attestation::Provenance)?;
    problems.extend(provenance_problems(&provenance, &listed));
    let sbom = registry::attestation(&by_digest, Attestation::Sbom)?;
    problems.extend(sbom_problems(&sbom, &listed));
    problems.extend(origin_problems(
        &annotations,
        &configs,
        &provenance,
        &listed,
        recorded,
    ));
    match signer {
        Some(signer) => {
            if let Err(err) = cosign_verify(signer, public_key, &by_digest) {
                problems.push(format!(
                    "its signature does not verify as {} ({err})",
                    signer.describe()
                ));
            }
        }
        None => eprintln!("warning: {by_digest}: no signature checked (--sign none)"),
    }
    Ok(Verdict {
        image: image.to_string(),
        digest,
        platforms: listed,
        problems,
    })
}

/// Which platforms lack SLSA provenance (buildx renders one platform's
/// provenance unkeyed, several keyed by platform).
pub fn provenance_problems(provenance: &Value, platforms: &[String]) -> Vec<String> {
    attestation_problems(provenance, platforms, "SLSA", "provenance attestation")
}

/// Which platforms lack an SBOM (SPDX, as BuildKit's generators write it).
pub fn sbom_problems(sbom: &Value, platforms: &[String]) -> Vec<String> {
    attestation_problems(sbom, platforms, "SPDX", "SBOM")
}

fn attestation_problems(
    rendered: &Value,
    platforms: &[String],
    key: &str,
    what: &str,
) -> Vec<String> {
    let has = |value: Option<&Value>| value.and_then(|p| p.get(key)).is_some_and(|s| !s.is_null());
    if platforms.is_empty() {
        return if has(Some(rendered)) {
            Vec::new()
        } else {
            vec![format!("no {what}")]
        };
    }
    platforms
        .iter()
        .filter(|platform| !has(registry::for_platform(rendered, platform, platforms.len())))
        .map(|platform| format!("no {what} for {platform}"))
        .collect()
}

/// Why the image configs' labels say this is not a production image.
pub fn label_problems(configs: &[(String, ImageConfig)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (platform, config) in configs {
        match config.label(&format!("{LABEL_NS}.flavor")) {
            Some("production") => {}
            Some(other) => problems.push(format!(
                "{platform} is labelled {LABEL_NS}.flavor={other}, not production"
            )),
            None => problems.push(format!(
                "{platform} has no {LABEL_NS}.flavor label (not built by release-image)"
            )),
        }
        if config.label(&format!("{LABEL_NS}.not-for-production")) == Some("true") {
            problems.push(format!(
                "{platform} is labelled {LABEL_NS}.not-for-production=true"
            ));
        }
    }
    problems
}

/// One thing the provenance records, and where in it.
pub type Claim = (&'static str, String);

/// What a platform's provenance says the image was built from: the
/// revisions and sources it records (buildx's git metadata of the build
/// context, the build args and the labels as the build was asked for them).
pub fn provenance_origin(slsa: &Value) -> (Vec<Claim>, Vec<Claim>) {
    let vcs = slsa.pointer("/metadata/https:~1~1mobyproject.org~1buildkit@v1#metadata/vcs");
    let args = slsa.pointer("/invocation/parameters/args");
    let text = |value: Option<&Value>, key: &str| {
        value
            .and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let revisions = [
        ("the build's git checkout", text(vcs, "revision")),
        ("the REVISION build arg", text(args, "build-arg:REVISION")),
        (
            "the revision label it was built with",
            text(args, &format!("label:{REVISION}")),
        ),
    ];
    let sources = [
        (
            "the build's git remote",
            text(vcs, "source").filter(|s| is_url(s)),
        ),
        (
            "the source label it was built with",
            text(args, &format!("label:{SOURCE}")),
        ),
    ];
    let keep = |claims: &[(&'static str, Option<String>)]| {
        claims
            .iter()
            .filter_map(|(what, value)| value.clone().map(|v| (*what, v)))
            .collect()
    };
    (keep(&revisions), keep(&sources))
}

/// A remote URL (not a local path, as a clone of a clone has).
fn is_url(text: &str) -> bool {
    text.contains("://") || text.starts_with("git@")
}

/// `git@github.com:acme/beacon.git`, `https://github.com/Acme/beacon/` and
/// `https://github.com/acme/beacon` name the same repository.
fn normalized_source(text: &str) -> String {
    let text = text.trim().trim_end_matches('/').trim_end_matches(".git");
    let text = match text.strip_prefix("git@") {
        Some(rest) => format!("https://{}", rest.replacen(':', "/", 1)),
        None => text.to_string(),
    };
    text.to_ascii_lowercase()
}

/// Whether what the image says it was built from holds together: the
/// provenance of every platform records the revision and source its index
/// annotations and labels claim (a relabelled image does not), and, with a
/// record, those are the release's commit, version and variant.
pub fn origin_problems(
    annotations: &BTreeMap<String, String>,
    configs: &[(String, ImageConfig)],
    provenance: &Value,
    platforms: &[String],
    recorded: Option<&Recorded>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(revision) = annotations.get(REVISION).filter(|r| !r.is_empty()) else {
        return vec![format!(
            "its index has no {REVISION} annotation (not built by release-image)"
        )];
    };
    let source = annotations.get(SOURCE).cloned().unwrap_or_default();
    for (platform, config) in configs {
        for (key, claimed) in [(REVISION, revision.as_str()), (SOURCE, source.as_str())] {
            let label = config.label(key).unwrap_or_default();
            if label != claimed {
                problems.push(format!(
                    "{platform} is labelled {key}={label:?}, its index says {claimed:?}"
                ));
            }
        }
        if let Some(recorded) = recorded {
            let variant = config
                .label(&format!("{LABEL_NS}.variant"))
                .unwrap_or_default();
            if variant != recorded.variant {
                problems.push(format!(
                    "{platform} is labelled {LABEL_NS}.variant={variant:?}, the record says {}",
                    recorded.variant
                ));
            }
        }
    }
    for platform in platforms {
        let Some(slsa) = registry::for_platform(provenance, platform, platforms.len())
            .and_then(|p| p.get("SLSA"))
            .filter(|s| !s.is_null())
        else {
            continue; // reported as missing provenance
        };
        let (revisions, sources) = provenance_origin(slsa);
        if revisions.is_empty() {
            problems.push(format!(
                "the provenance of {platform} records no source revision"
            ));
        }
        for (recorded_revision, what) in disagreeing(&revisions, |r| r == revision) {
            problems.push(format!(
                "the provenance of {platform} says it was built from revision {recorded_revision} ({what}), but the image claims {revision} (relabelled?)"
            ));
        }
        for (recorded_source, what) in disagreeing(&sources, |s| {
            normalized_source(s) == normalized_source(&source)
        }) {
            problems.push(format!(
                "the provenance of {platform} says it was built from {recorded_source} ({what}), but the image claims {source:?} (relabelled?)"
            ));
        }
    }
    if let Some(recorded) = recorded {
        if revision != &recorded.commit {
            problems.push(format!(
                "it was built from {revision}, and the release is of commit {}",
                recorded.commit
            ));
        }
        let version = annotations.get(VERSION).cloned().unwrap_or_default();
        if version != recorded.version {
            problems.push(format!(
                "it is version {version:?}, and the release is {:?}",
                recorded.version
            ));
        }
    }
    problems
}

/// The claims that disagree with the image, one entry per recorded value
/// with every place it is recorded.
fn disagreeing(claims: &[Claim], agrees: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut grouped: Vec<(String, Vec<&str>)> = Vec::new();
    for (what, value) in claims.iter().filter(|(_, v)| !agrees(v)) {
        match grouped.iter_mut().find(|(v, _)| v == value) {
            Some((_, places)) => places.push(what),
            None => grouped.push((value.clone(), vec![what])),
        }
    }
    grouped
        .into_iter()
        .map(|(value, places)| (value, places.join(", ")))
        .collect()
}

fn cosign_verify(signer: &ExpectedSigner, public_key: &Path, reference: &str) -> Result<()> {
    let invocation = render::cosign_verify(signer, public_key, reference);
    let output = duct::cmd(&invocation.program, &invocation.args)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .context("cannot run cosign")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr
            .lines()
            .rev()
            .find(|l| {
                l.starts_with("Error") || l.contains("no signatures") || l.contains("no matching")
            })
            .or_else(|| stderr.lines().last());
        bail!("{}", reason.unwrap_or("cosign verify failed").trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attestations_keyed_by_platform_or_not() {
        let two = vec!["linux/amd64".to_string(), "linux/arm64".to_string()];
        let keyed = json!({"linux/amd64": {"SLSA": {"builder": {}}}, "linux/arm64": {"SLSA": {"builder": {}}}});
        assert!(provenance_problems(&keyed, &two).is_empty());
        let half = json!({"linux/amd64": {"SLSA": {"builder": {}}}});
        assert_eq!(
            provenance_problems(&half, &two),
            ["no provenance attestation for linux/arm64"]
        );
        let one = vec!["linux/amd64".to_string()];
        assert!(provenance_problems(&json!({"SLSA": {"builder": {}}}), &one).is_empty());
        assert_eq!(
            provenance_problems(&Value::Null, &one),
            ["no provenance attestation for linux/amd64"]
        );
        assert_eq!(
            provenance_problems(&json!({"SLSA": null}), &[]),
            ["no provenance attestation"]
        );
        assert_eq!(
            sbom_problems(&json!({}), &two),
            ["no SBOM for linux/amd64", "no SBOM for linux/arm64"]
        );
        let sboms = json!({"linux/amd64": {"SPDX": {}}, "linux/arm64": {"SPDX": {}}});
        assert!(sbom_problems(&sboms, &two).is_empty());
    }

    fn config(labels: serde_json::Value) -> ImageConfig {
        ImageConfig::parse(&serde_json::to_vec(&json!({"config": {"Labels": labels}})).unwrap())
            .unwrap()
    }

    #[test]
    fn labels_tell_ci_from_production() {
        let ci = config(
            json!({"dev.beacon.image.flavor": "ci", "dev.beacon.image.not-for-production": "true"}),
        );
        assert_eq!(label_problems(&[("the image".into(), ci)]).len(), 2);
        let prod = config(json!({"dev.beacon.image.flavor": "production"}));
        assert!(label_problems(&[("linux/amd64".into(), prod)]).is_empty());
        let foreign = config(json!({}));
        assert!(label_problems(&[("linux/amd64".into(), foreign)])[0]
            .contains("no dev.beacon.image.flavor label"));
    }

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    fn slsa(vcs_revision: &str, source: &str) -> Value {
        json!({"SLSA": {
            "metadata": {"https://mobyproject.org/buildkit@v1#metadata": {"vcs": {"revision": vcs_revision, "source": source}}},
            "invocation": {"parameters": {"args": {
                "build-arg:REVISION": COMMIT,
                "label:org.opencontainers.image.revision": COMMIT,
                "label:org.opencontainers.image.source": "https://github.com/acme/beacon"
            }}}
        }})
    }

    fn labelled(revision: &str) -> Vec<(String, ImageConfig)> {
        vec![(
            "linux/amd64".to_string(),
            config(json!({
                "org.opencontainers.image.revision": revision,
                "org.opencontainers.image.source": "https://github.com/acme/beacon",
                "dev.beacon.image.variant": "ubi9"
            })),
        )]
    }

    fn annotations(revision: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (REVISION.to_string(), revision.to_string()),
            (
                SOURCE.to_string(),
                "https://github.com/acme/beacon".to_string(),
            ),
            (VERSION.to_string(), "1.2.3".to_string()),
        ])
    }

    #[test]
    fn provenance_must_agree_with_the_labels() {
        let one = ["linux/amd64".to_string()];
        let honest = slsa(COMMIT, "https://github.com/Acme/beacon.git");
        assert_eq!(
            origin_problems(&annotations(COMMIT), &labelled(COMMIT), &honest, &one, None),
            Vec::<String>::new()
        );
        // A local clone's remote is a path, not a claim about the source.
        let cloned = slsa(COMMIT, "/tmp/clone");
        assert!(
            origin_problems(&annotations(COMMIT), &labelled(COMMIT), &cloned, &one, None)
                .is_empty()
        );
        // Relabelled: the index and labels claim another commit than the provenance records.
        let other = "f".repeat(40);
        let problems =
            origin_problems(&annotations(&other), &labelled(&other), &honest, &one, None);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains(&format!("built from revision {COMMIT} (the build's git checkout, the REVISION build arg, the revision label it was built with), but the image claims {other}")), "{problems:?}");
        // Built from another repository than the label says.
        let fork = slsa(COMMIT, "git@github.com:evil/beacon.git");
        let problems = origin_problems(&annotations(COMMIT), &labelled(COMMIT), &fork, &one, None);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("git@github.com:evil/beacon.git"),
            "{problems:?}"
        );
        // Index annotation and label disagree.
        let problems =
            origin_problems(&annotations(COMMIT), &labelled(&other), &honest, &one, None);
        assert!(
            problems[0].contains("is labelled org.opencontainers.image.revision"),
            "{problems:?}"
        );
        assert!(
            origin_problems(&BTreeMap::new(), &labelled(COMMIT), &honest, &one, None)[0]
                .contains("no org.opencontainers.image.revision annotation")
        );
        let silent = json!({"SLSA": {"invocation": {"parameters": {"args": {}}}}});
        assert!(
            origin_problems(&annotations(COMMIT), &labelled(COMMIT), &silent, &one, None)[0]
                .contains("records no source revision")
        );
    }

    #[test]
    fn a_recorded_image_is_the_release_it_is_recorded_as() {
        let one = ["linux/amd64".to_string()];
        let honest = slsa(COMMIT, "https://github.com/acme/beacon");
        let recorded = Recorded {
            variant: "distroless".into(),
            commit: "e".repeat(40),
            version: "1.3.0".into(),
            platform_digests: BTreeMap::new(),
        };
        let problems = origin_problems(
            &annotations(COMMIT),
            &labelled(COMMIT),
            &honest,
            &one,
            Some(&recorded),
        );
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("variant=\"ubi9\", the record says distroless"));
        assert!(problems[1].contains("the release is of commit eeee"));
        assert!(problems[2].contains("version \"1.2.3\", and the release is \"1.3.0\""));
    }
}
