//! The gate's signature check: a valid signature of the expected signer on
//! the image's digest, in either format (a cosign 2 `.sig` signature or a
//! cosign 3 Sigstore bundle), whichever cosign runs the gate. cosign's exit
//! code is not enough: what it printed must name a signature (not an
//! attestation of another type) of exactly this digest
//! (`model::cosign::verified`).

use std::path::Path;

use anyhow::{Context as _, Result};

use crate::client::{cosign, process};
use crate::model::cosign::verified::{check_attestation_output, check_verify_output};
use crate::model::cosign::{CosignRun, TRUSTED_ROOT_FOR_KEYS};
use crate::model::files;
use crate::model::reference::{Digest, ImageRef};
use crate::plan::gate::ExpectedSigner;
use crate::render;

/// Who must have signed, and the cosign (and its files) that checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureCheck {
    pub signer: ExpectedSigner,
    pub run: CosignRun,
}

/// Prepares the signature check of a run in `dir`: detects the cosign that
/// runs (refused in one line when it cannot be used), derives the public
/// half of a release's own signing key, and writes the trusted root cosign 2
/// reads a key-signed Sigstore bundle with. `None` when no signature is
/// checked (`--sign none`).
pub fn prepare_signer(
    signer: Option<&ExpectedSigner>,
    dir: &Path,
) -> Result<Option<SignatureCheck>> {
    let Some(signer) = signer else {
        return Ok(None);
    };
    let run = CosignRun::new(cosign::detect()?.release.line, dir);
    if let ExpectedSigner::SigningKey { key, .. } = signer {
        files::create_dir_all(dir)?;
        process::run(&render::public_key(key, &run.public_key())).with_context(|| {
            format!(
                "cannot derive the public key of {key} for the gate (is COSIGN_PASSWORD right?)"
            )
        })?;
    }
    if render::verifies_with_own_trusted_root(signer, &run) {
        files::create_dir_all(dir)?;
        files::write(&run.trusted_root(), TRUSTED_ROOT_FOR_KEYS)?;
    }
    Ok(Some(SignatureCheck {
        signer: signer.clone(),
        run,
    }))
}

/// Whether `reference` (`REPO@DIGEST`) carries a valid signature of the
/// expected signer; the reason when not (cosign's, for each way it tried).
pub fn check_signature(
    check: &SignatureCheck,
    reference: &ImageRef,
    digest: &Digest,
) -> Result<Result<(), String>> {
    let digest = digest.as_str();
    let commands = render::cosign_verify(&check.signer, &check.run, reference);
    let several = commands.len() > 1;
    let mut reasons = Vec::new();
    for invocation in commands {
        let bundles = invocation
            .args
            .first()
            .is_some_and(|a| a == "verify-attestation");
        let verdict = match cosign::verify(&invocation)? {
            Ok(stdout) if bundles => check_attestation_output(&stdout, digest),
            Ok(stdout) => check_verify_output(&stdout, digest),
            Err(reason) => Err(reason),
        };
        match verdict {
            Ok(()) => return Ok(Ok(())),
            Err(reason) if several && bundles => {
                reasons.push(format!("as a Sigstore bundle: {reason}"))
            }
            Err(reason) if several => reasons.push(format!("as a .sig signature: {reason}")),
            Err(reason) => reasons.push(reason),
        }
    }
    Ok(Err(reasons.join("; ")))
}
