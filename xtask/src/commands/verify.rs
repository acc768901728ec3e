//! `cargo xtask verify`: the deploy gate (`ops::gate` holds its checks),
//! on one image, on every variant of a release record (`--record FILE`, as
//! the release workflow's gate job runs it), or written as the cluster's
//! admission policy (`--policy KIND`). An image passes only if it is a
//! production image as `release-image` makes them, signed on its index
//! digest by the expected signer: this repository's release workflow on
//! `main` or a release tag, triggered by a push (`--repository OWNER/REPO`,
//! no regexp to write), or a key. Anything else fails with every reason
//! found.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::model::files::{self, RunDir};
use crate::model::names::Platform;
use crate::model::reference::{ImageName, ImageRef, Registry, Repository};
use crate::model::yaml;
use crate::ops::gate;
use crate::ops::record::{self, RecordExpectation};
use crate::plan::admission::{self, AdmittedSigner, PolicyKind, SignatureFormat};
use crate::plan::gate::{ExpectedSigner, SignerRequest};
use crate::plan::record::ReleaseRecord;
use crate::preflight;
use crate::{context, project};

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The image to check (tag or digest); `None` with `record` or `policy`.
    pub image: Option<ImageRef>,
    /// Print this admission policy for the repository, admitting the
    /// expected signer, instead of checking an image.
    pub policy: Option<PolicyKind>,
    /// With `policy`: the signature format it reads (the release's).
    pub signature_format: SignatureFormat,
    /// Check every variant of a release record instead.
    pub record: Option<PathBuf>,
    /// With `record`: the repository it must be a release to; with
    /// `policy`: the repository the policy guards.
    pub registry: Option<Registry>,
    pub image_name: ImageName,
    pub signer: SignerRequest,
    /// Platforms the image must provide.
    pub platforms: Vec<Platform>,
}

pub fn run(args: VerifyOptions) -> Result<()> {
    if let Some(kind) = args.policy {
        return print_policy(kind, &args);
    }
    let platforms = &args.platforms;
    let signer = args.signer.resolve()?;
    let requirements = signer.requirements();
    match (&args.image, &args.record) {
        (Some(image), None) => {
            preflight::check_all(&requirements)?;
            let dir = RunDir::new(&project::project_root(), "verify");
            let check = gate::prepare_signer(Some(&signer), &dir.path)?;
            let verdict = gate::check_image(image, check.as_ref(), platforms, None)?;
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
            let repository =
                record::expected_repository(args.registry.as_ref(), &args.image_name, &context)?;
            preflight::check_all(&requirements)?;
            record::check_record(
                &record,
                &path.display().to_string(),
                &RecordExpectation {
                    repository,
                    commit: None,
                    complete: true,
                },
            )?;
            let dir = RunDir::new(&project::project_root(), "verify");
            let check = gate::prepare_signer(Some(&signer), &dir.path)?;
            let verdicts = gate::gate_record(&record, check.as_ref(), platforms)?;
            if let Some(failure) = gate::gate_failure(
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
    let registry = match (&args.registry, &signer) {
        (Some(registry), _) => registry.clone(),
        // The release workflow publishes to ghcr.io/<owner>/<name> by default.
        (None, ExpectedSigner::Workflow { identity }) => {
            Registry::ghcr(&identity.repository.owner)?
        }
        (None, _) => bail!(
            "verify --policy {kind} needs the image repository the policy guards: pass --registry (e.g. ghcr.io/acme) and --image-name if not {}",
            args.image_name
        ),
    };
    let repository = Repository::new(&registry, &args.image_name)?;
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
    let policy = admission::policy(kind, &repository, &admitted, args.signature_format)?;
    if kind == PolicyKind::PolicyController && !matches!(admitted, AdmittedSigner::Keyless(_)) {
        eprintln!("warning: policy-controller cannot verify key-signed Sigstore bundles (sigstore/policy-controller#1958): this policy admits only .sig signatures (cosign 2); see the comments above it");
    }
    for note in &policy.notes {
        for line in comment_lines(note, 98) {
            println!("# {line}");
        }
    }
    print!("{}", yaml::to_yaml(&policy.document)?);
    Ok(())
}

/// `text` in lines of at most `width` characters (a longer word stays whole).
fn comment_lines(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().map(|l| l.len()).unwrap_or(0);
        if last > 0 && last + 1 + word.len() > width {
            lines.push(String::new());
        }
        if let Some(line) = lines.last_mut() {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}
