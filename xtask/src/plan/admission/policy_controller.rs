//! sigstore policy-controller's `ClusterImagePolicy`: the gate's signer
//! (keyless: Sigstore bundles or `.sig` signatures; a key: `.sig` only).

use serde_json::{json, Value};

use super::{policy_name, AdmittedSigner, SignatureFormat, FULCIO_URL, REKOR_URL};
use crate::model::cosign::SIGNATURE_PREDICATE;
use crate::model::reference::Repository;
use crate::plan::gate::ExpectedSigner;

/// Where policy-controller falls short of the gate, in the reader's words.
pub(super) fn policy_controller_notes(keyless: bool, format: SignatureFormat) -> Vec<String> {
    let mut notes = Vec::new();
    if !keyless {
        notes.push(
            "policy-controller cannot verify key-signed Sigstore bundles (sigstore/policy-controller#1958): this policy \
             admits only .sig signatures, which cosign 2 writes and cosign 3 does not. Sign key-based releases with \
             cosign 2 (2.5 or newer) to enforce them with policy-controller, or enforce with Kyverno 1.19+."
                .to_string(),
        );
        return notes;
    }
    match format {
        SignatureFormat::Bundle => notes.push(
            "Reads the release's signature as a Sigstore bundle (signatureFormat: bundle): policy-controller matches it \
             as an attestation of predicate type https://sigstore.dev/cosign/sign/v1 (it reads no bundle as an image \
             signature)."
                .to_string(),
        ),
        SignatureFormat::Legacy => notes.push(
            "Reads .sig signatures (cosign 2): a release signed with cosign 3 writes Sigstore bundles, which this \
             policy does not see: generate it with --signature-format bundle for those."
                .to_string(),
        ),
    }
    notes.push(
        "policy-controller checks the certificate's subject and issuer only, not its trigger or repository extensions: \
         `cargo xtask verify`, or Kyverno with .sig signatures, checks those too."
            .to_string(),
    );
    notes
}

pub(super) fn policy_controller(
    image_repository: &Repository,
    signer: &AdmittedSigner,
    format: SignatureFormat,
) -> Value {
    let keyless = |name: &str, issuer: &str, subject_regexp: &str| {
        let mut authority = json!({
            "name": name,
            "keyless": {
                "url": FULCIO_URL,
                "identities": [{ "issuer": issuer, "subjectRegExp": subject_regexp }],
            },
            "ctlog": { "url": REKOR_URL },
        });
        if format == SignatureFormat::Bundle {
            authority["signatureFormat"] = json!("bundle");
            authority["attestations"] =
                json!([{ "name": "signature", "predicateType": SIGNATURE_PREDICATE }]);
        }
        authority
    };
    let authority = match signer {
        AdmittedSigner::Keyless(ExpectedSigner::Workflow { identity }) => keyless(
            "release-workflow",
            &identity.issuer,
            &identity.subject_regexp(),
        ),
        AdmittedSigner::Keyless(ExpectedSigner::Regexp { regexp, issuer }) => {
            keyless("keyless-signer", issuer, regexp)
        }
        AdmittedSigner::Keyless(_) => json!({}),
        AdmittedSigner::PublicKey { pem, tlog } => {
            let mut authority = json!({ "name": "release-key", "key": { "data": pem } });
            if *tlog {
                authority["ctlog"] = json!({ "url": REKOR_URL });
            }
            authority
        }
        AdmittedSigner::Kms { uri, tlog } => {
            let mut authority = json!({ "name": "release-key", "key": { "kms": uri } });
            if *tlog {
                authority["ctlog"] = json!({ "url": REKOR_URL });
            }
            authority
        }
    };
    json!({
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {
            "name": policy_name(image_repository),
            "annotations": {
                "dev.beacon.image/generated-by": "cargo xtask verify --policy policy-controller",
            },
        },
        "spec": {
            "mode": "enforce",
            "images": [{ "glob": format!("{image_repository}**") }],
            "authorities": [authority],
        },
    })
}
