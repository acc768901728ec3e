//! Admission policies: the deploy gate, enforced where deployments happen.
//! From the same expected signer `verify` checks ([`ExpectedSigner`]: the
//! release workflow's keyless identity, or a public key), a pure function
//! writes a ready Kyverno `ClusterPolicy` or sigstore policy-controller
//! `ClusterImagePolicy` for the image repository. Nothing here is written
//! by hand twice: the subject regexp, the issuer and the extensions are the
//! identity's own.
//!
//! The policies read the signature format the release writes: Sigstore
//! bundles (cosign 3, what the release workflow signs with) by default, the
//! legacy `.sig` signatures of cosign 2 with [`SignatureFormat::Legacy`].
//! What a controller cannot check in a format is said in the policy's
//! [`Policy::notes`] (printed as comments above it), never left out quietly.

use std::fmt;
use std::str::FromStr;

mod kyverno;
mod policy_controller;

use anyhow::{bail, Result};
use serde_json::Value;

use crate::model::reference::Repository;
use crate::plan::gate::ExpectedSigner;

use self::kyverno::{kyverno, kyverno_notes};
use self::policy_controller::{policy_controller, policy_controller_notes};

/// The public transparency log and certificate authority keyless signatures
/// are recorded in (GitHub Actions signs through them).
pub const REKOR_URL: &str = "https://rekor.sigstore.dev";
pub const FULCIO_URL: &str = "https://fulcio.sigstore.dev";

/// Which admission controller the policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// A Kyverno `ClusterPolicy` (kyverno.io/v1) with `verifyImages`.
    Kyverno,
    /// A sigstore policy-controller `ClusterImagePolicy` (policy.sigstore.dev/v1beta1).
    PolicyController,
}

impl PolicyKind {
    pub const NAMES: &'static [&'static str] = &["kyverno", "policy-controller"];
}

impl FromStr for PolicyKind {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<PolicyKind> {
        match text {
            "kyverno" => Ok(PolicyKind::Kyverno),
            "policy-controller" => Ok(PolicyKind::PolicyController),
            _ => bail!(
                "unknown admission policy kind {text:?}: valid kinds are {}",
                PolicyKind::NAMES.join(", ")
            ),
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyKind::Kyverno => "kyverno",
            PolicyKind::PolicyController => "policy-controller",
        })
    }
}

/// The signature format a policy reads: the one the release wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFormat {
    /// Sigstore bundles (cosign 3), attached as OCI 1.1 referrers (or under
    /// the referrers tag schema `sha256-<hex>` where a registry has no
    /// referrers API).
    Bundle,
    /// `sha256-<hex>.sig` signatures (cosign 2).
    Legacy,
}

impl SignatureFormat {
    pub const NAMES: &'static [&'static str] = &["bundle", "legacy"];
}

impl FromStr for SignatureFormat {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<SignatureFormat> {
        match text {
            "bundle" => Ok(SignatureFormat::Bundle),
            "legacy" => Ok(SignatureFormat::Legacy),
            _ => bail!(
                "unknown signature format {text:?}: bundle (cosign 3, what the release workflow signs) or legacy (.sig, cosign 2)"
            ),
        }
    }
}

/// A policy document and what a reader must know about it (printed as
/// comments above it).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub document: Value,
    pub notes: Vec<String>,
}

/// The signer a policy admits, with what the policy must embed of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmittedSigner {
    /// Keyless: the identity's subject regexp, issuer and (where the
    /// controller can check them) the repository and trigger extensions.
    Keyless(ExpectedSigner),
    /// A public key, as PEM (read from the key file or `env://VAR`).
    PublicKey { pem: String, tlog: bool },
    /// A KMS key URI (`awskms://...`, `gcpkms://...`, ...).
    Kms { uri: String, tlog: bool },
}

/// The policy's name: the repository's last path component, and what it does.
fn policy_name(image_repository: &Repository) -> String {
    format!("{}-production-images", image_repository.name())
}

/// The policy for `image_repository` (`ghcr.io/acme/beacon`): images of it
/// must be referenced by digest, signed by `signer` in `format`, and
/// (Kyverno) neither tagged `ci-` nor labelled a CI image.
pub fn policy(
    kind: PolicyKind,
    image_repository: &Repository,
    signer: &AdmittedSigner,
    format: SignatureFormat,
) -> Result<Policy> {
    if let AdmittedSigner::Keyless(expected) = signer {
        if !matches!(
            expected,
            ExpectedSigner::Workflow { .. } | ExpectedSigner::Regexp { .. }
        ) {
            bail!(
                "an admission policy admits a keyless identity or a public key, not {}",
                expected.describe()
            );
        }
    }
    Ok(match kind {
        PolicyKind::Kyverno => Policy {
            document: kyverno(image_repository, signer, format),
            notes: kyverno_notes(signer, format),
        },
        PolicyKind::PolicyController => {
            let keyless = matches!(signer, AdmittedSigner::Keyless(_));
            // policy-controller reads a Sigstore bundle only from a keyless
            // authority (sigstore/policy-controller#1958).
            let format = if keyless {
                format
            } else {
                SignatureFormat::Legacy
            };
            Policy {
                document: policy_controller(image_repository, signer, format),
                notes: policy_controller_notes(keyless, format),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cosign::SIGNATURE_PREDICATE;
    use crate::model::identity::SignerIdentity;

    fn repository(text: &str) -> Repository {
        text.parse().unwrap()
    }

    fn workflow() -> AdmittedSigner {
        AdmittedSigner::Keyless(ExpectedSigner::Workflow {
            identity: SignerIdentity::release_workflow("acme/beacon".parse().unwrap()),
        })
    }

    #[test]
    fn kyverno_admits_exactly_the_release_identity_by_digest() {
        let written = policy(
            PolicyKind::Kyverno,
            &repository("ghcr.io/acme/beacon"),
            &workflow(),
            SignatureFormat::Bundle,
        )
        .unwrap();
        let policy = &written.document;
        let verify = &policy["spec"]["rules"][0]["verifyImages"][0];
        assert_eq!(verify["type"], "SigstoreBundle");
        assert!(written
            .notes
            .iter()
            .any(|n| n.contains("kyverno/kyverno#16664")));
        assert!(written
            .notes
            .iter()
            .any(|n| n.contains("does not enforce them for Sigstore bundles")));
        assert_eq!(verify["imageReferences"][0], "ghcr.io/acme/beacon*");
        assert_eq!(verify["verifyDigest"], true);
        assert_eq!(verify["mutateDigest"], false);
        let keyless = &verify["attestors"][0]["entries"][0]["keyless"];
        let identity = SignerIdentity::release_workflow("acme/beacon".parse().unwrap());
        assert_eq!(keyless["subjectRegExp"], identity.subject_regexp());
        assert_eq!(keyless["issuer"], identity.issuer);
        assert_eq!(
            keyless["additionalExtensions"]["githubWorkflowTrigger"],
            "push"
        );
        assert_eq!(
            keyless["additionalExtensions"]["githubWorkflowRepository"],
            "acme/beacon"
        );
        let tags =
            &policy["spec"]["rules"][1]["validate"]["pattern"]["spec"]["containers"][0]["image"];
        assert_eq!(tags, "!ghcr.io/acme/beacon:ci-*");
    }

    #[test]
    fn keys_and_kinds() {
        let key = AdmittedSigner::PublicKey {
            pem: "PEM".into(),
            tlog: false,
        };
        let kyverno = policy(
            PolicyKind::Kyverno,
            &repository("r.example/beacon"),
            &key,
            SignatureFormat::Bundle,
        )
        .unwrap();
        assert!(kyverno.notes.iter().any(|n| n.contains("Kyverno 1.19")));
        let kyverno = kyverno.document;
        let keys =
            &kyverno["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"][0]["keys"];
        assert_eq!(keys["publicKeys"], "PEM");
        assert_eq!(keys["rekor"]["ignoreTlog"], true);
        assert_eq!(
            keys["ctlog"]["ignoreSCT"], true,
            "no observer timestamp either"
        );
        let controller = policy(
            PolicyKind::PolicyController,
            &repository("r.example/beacon"),
            &key,
            SignatureFormat::Bundle,
        )
        .unwrap();
        // policy-controller cannot verify key-signed bundles: said, and legacy.
        assert!(controller.notes[0].contains("sigstore/policy-controller#1958"));
        let controller = controller.document;
        assert!(controller["spec"]["authorities"][0]
            .get("signatureFormat")
            .is_none());
        assert_eq!(controller["spec"]["authorities"][0]["key"]["data"], "PEM");
        assert!(controller["spec"]["authorities"][0].get("ctlog").is_none());
        assert_eq!(
            controller["spec"]["images"][0]["glob"],
            "r.example/beacon**"
        );
        let err = "gatekeeper".parse::<PolicyKind>().unwrap_err().to_string();
        assert!(err.contains("kyverno, policy-controller"), "{err}");
        let err = "sig".parse::<SignatureFormat>().unwrap_err().to_string();
        assert!(err.contains("bundle") && err.contains("legacy"), "{err}");
    }

    #[test]
    fn policy_controller_reads_a_keyless_bundle_as_the_signature_predicate() {
        let bundle = policy(
            PolicyKind::PolicyController,
            &repository("ghcr.io/acme/beacon"),
            &workflow(),
            SignatureFormat::Bundle,
        )
        .unwrap();
        let authority = &bundle.document["spec"]["authorities"][0];
        assert_eq!(authority["signatureFormat"], "bundle");
        assert_eq!(
            authority["attestations"][0]["predicateType"],
            SIGNATURE_PREDICATE
        );
        assert_eq!(
            authority["keyless"]["url"], FULCIO_URL,
            "needed for bundles too"
        );
        assert!(bundle
            .notes
            .iter()
            .any(|n| n.contains("subject and issuer only")));
        let legacy = policy(
            PolicyKind::PolicyController,
            &repository("ghcr.io/acme/beacon"),
            &workflow(),
            SignatureFormat::Legacy,
        )
        .unwrap();
        let authority = &legacy.document["spec"]["authorities"][0];
        assert!(
            authority.get("signatureFormat").is_none() && authority.get("attestations").is_none()
        );
        let kyverno = policy(
            PolicyKind::Kyverno,
            &repository("ghcr.io/acme/beacon"),
            &workflow(),
            SignatureFormat::Legacy,
        )
        .unwrap();
        assert_eq!(
            kyverno.document["spec"]["rules"][0]["verifyImages"][0]["type"],
            "Cosign"
        );
    }
}
