//! Admission policies: the deploy gate, enforced where deployments happen.
//! From the same expected signer `verify` checks ([`ExpectedSigner`]: the
//! release workflow's keyless identity, or a public key), a pure function
//! writes a ready Kyverno `ClusterPolicy` or sigstore policy-controller
//! `ClusterImagePolicy` for the image repository. Nothing here is written
//! by hand twice: the subject regexp, the issuer and the extensions are the
//! identity's own.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::model::reference::Repository;
use crate::model::tags::CI_PREFIX;
use crate::plan::gate::ExpectedSigner;
use crate::plan::LABEL_NS;

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
/// must be referenced by digest, signed by `signer`, and (Kyverno) neither
/// tagged `ci-` nor labelled a CI image.
pub fn policy(
    kind: PolicyKind,
    image_repository: &Repository,
    signer: &AdmittedSigner,
) -> Result<Value> {
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
        PolicyKind::Kyverno => kyverno(image_repository, signer),
        PolicyKind::PolicyController => policy_controller(image_repository, signer),
    })
}

/// Kyverno's keyless attestor entry or key attestor for `signer`.
fn kyverno_attestor(signer: &AdmittedSigner) -> Value {
    let ignore_tlog = |tlog: bool| {
        if tlog {
            json!({ "url": REKOR_URL })
        } else {
            json!({ "ignoreTlog": true })
        }
    };
    match signer {
        AdmittedSigner::Keyless(ExpectedSigner::Workflow { identity }) => json!({
            "keyless": {
                "subjectRegExp": identity.subject_regexp(),
                "issuer": identity.issuer,
                "additionalExtensions": {
                    "githubWorkflowRepository": identity.repository.to_string(),
                    "githubWorkflowTrigger": identity.trigger,
                },
                "rekor": { "url": REKOR_URL },
            }
        }),
        AdmittedSigner::Keyless(ExpectedSigner::Regexp { regexp, issuer }) => json!({
            "keyless": {
                "subjectRegExp": regexp,
                "issuer": issuer,
                "rekor": { "url": REKOR_URL },
            }
        }),
        AdmittedSigner::Keyless(_) => json!({}),
        AdmittedSigner::PublicKey { pem, tlog } => json!({
            "keys": {
                "publicKeys": pem,
                "rekor": ignore_tlog(*tlog),
                "ctlog": { "ignoreSCT": !tlog },
            }
        }),
        AdmittedSigner::Kms { uri, tlog } => json!({
            "keys": {
                "kms": uri,
                "rekor": ignore_tlog(*tlog),
                "ctlog": { "ignoreSCT": !tlog },
            }
        }),
    }
}

fn kyverno(image_repository: &Repository, signer: &AdmittedSigner) -> Value {
    let pods = json!({ "any": [{ "resources": { "kinds": ["Pod"] } }] });
    let ci_tags = format!("!{image_repository}:{CI_PREFIX}*");
    let containers = |pattern: &Value| {
        json!({
            "spec": {
                "=(initContainers)": [pattern],
                "=(ephemeralContainers)": [pattern],
                "containers": [pattern],
            }
        })
    };
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": policy_name(image_repository),
            "annotations": {
                "policies.kyverno.io/title": format!("Production images of {image_repository} only"),
                "policies.kyverno.io/description": format!(
                    "Generated by `cargo xtask verify --policy kyverno`. Admits images of {image_repository} \
                     only by digest and signed by the release signer; refuses its ci- tags and images labelled \
                     {LABEL_NS}.flavor=ci (CI images are never deployed)."
                ),
            },
        },
        "spec": {
            "background": false,
            "webhookTimeoutSeconds": 30,
            "rules": [
                {
                    "name": "signed-by-the-release-signer",
                    "match": pods,
                    "verifyImages": [{
                        "imageReferences": [format!("{image_repository}*")],
                        "failureAction": "Enforce",
                        // Deployed by digest, as the deploy guide says: a tag
                        // is refused rather than resolved.
                        "mutateDigest": false,
                        "verifyDigest": true,
                        "required": true,
                        "attestors": [{ "count": 1, "entries": [kyverno_attestor(signer)] }],
                    }],
                },
                {
                    "name": "no-ci-tags",
                    "match": pods,
                    "validate": {
                        "failureAction": "Enforce",
                        "message": format!(
                            "{image_repository}:{CI_PREFIX}* tags are CI images (unsigned, single-platform, debug tools): deploy a release by digest"
                        ),
                        "pattern": containers(&json!({ "image": ci_tags })),
                    },
                },
                {
                    "name": "not-labelled-ci",
                    "match": pods,
                    "validate": {
                        "failureAction": "Enforce",
                        "message": format!("{{{{ element.image }}}} is labelled {LABEL_NS}.flavor=ci: CI images are never deployed"),
                        "foreach": [{
                            "list": "request.object.spec.containers",
                            "preconditions": {
                                "all": [{
                                    "key": "{{ element.image }}",
                                    "operator": "Equals",
                                    "value": format!("{image_repository}*"),
                                }],
                            },
                            "context": [{
                                "name": "imageData",
                                "imageRegistry": { "reference": "{{ element.image }}" },
                            }],
                            "deny": {
                                "conditions": {
                                    "any": [
                                        {
                                            "key": format!("{{{{ imageData.configData.config.Labels.\"{LABEL_NS}.flavor\" || '' }}}}"),
                                            "operator": "Equals",
                                            "value": "ci",
                                        },
                                        {
                                            "key": format!("{{{{ imageData.configData.config.Labels.\"{LABEL_NS}.not-for-production\" || '' }}}}"),
                                            "operator": "Equals",
                                            "value": "true",
                                        },
                                    ],
                                },
                            },
                        }],
                    },
                },
            ],
        },
    })
}

fn policy_controller(image_repository: &Repository, signer: &AdmittedSigner) -> Value {
    let authority = match signer {
        AdmittedSigner::Keyless(ExpectedSigner::Workflow { identity }) => json!({
            "name": "release-workflow",
            "keyless": {
                "url": FULCIO_URL,
                "identities": [{ "issuer": identity.issuer, "subjectRegExp": identity.subject_regexp() }],
            },
            "ctlog": { "url": REKOR_URL },
        }),
        AdmittedSigner::Keyless(ExpectedSigner::Regexp { regexp, issuer }) => json!({
            "name": "keyless-signer",
            "keyless": {
                "url": FULCIO_URL,
                "identities": [{ "issuer": issuer, "subjectRegExp": regexp }],
            },
            "ctlog": { "url": REKOR_URL },
        }),
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

#[cfg(test)]
mod tests {
    use super::*;
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
        let policy = policy(
            PolicyKind::Kyverno,
            &repository("ghcr.io/acme/beacon"),
            &workflow(),
        )
        .unwrap();
        let verify = &policy["spec"]["rules"][0]["verifyImages"][0];
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
        let kyverno = policy(PolicyKind::Kyverno, &repository("r.example/beacon"), &key).unwrap();
        let keys =
            &kyverno["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"][0]["keys"];
        assert_eq!(keys["publicKeys"], "PEM");
        assert_eq!(keys["rekor"]["ignoreTlog"], true);
        let controller = policy(
            PolicyKind::PolicyController,
            &repository("r.example/beacon"),
            &key,
        )
        .unwrap();
        assert_eq!(controller["spec"]["authorities"][0]["key"]["data"], "PEM");
        assert!(controller["spec"]["authorities"][0].get("ctlog").is_none());
        assert_eq!(
            controller["spec"]["images"][0]["glob"],
            "r.example/beacon**"
        );
        let err = "gatekeeper".parse::<PolicyKind>().unwrap_err().to_string();
        assert!(err.contains("kyverno, policy-controller"), "{err}");
    }
}
