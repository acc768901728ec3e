//! cosign's commands: signing by digest (as the cosign that runs signs:
//! a `.sig` signature with 2.x, a Sigstore bundle through a signing config
//! with 3.x), and the gate's reads of an image and its signature.

use std::path::Path;

use super::Invocation;
use crate::client::{cosign, registry};
use crate::model::cosign::{CosignLine, CosignRun, SIGNATURE_PREDICATE};
use crate::model::reference::{Digest, ImageRef};
use crate::plan::gate::ExpectedSigner;
use crate::plan::Signing;

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
