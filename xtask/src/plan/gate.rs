//! What the deploy gate requires of a production image, as data: who must
//! have signed it ([`ExpectedSigner`]) and the platforms it must hold. The
//! checks themselves run in `ops::gate`; the same gate runs before any tag
//! of a release moves (`promote`, `release-image`) and for deployers
//! (`verify`).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::model::identity::{GithubRepository, SignerIdentity, GITHUB_OIDC_ISSUER};
use crate::model::names::Platform;
use crate::plan::Signing;
use crate::preflight::Requirement;

/// What a release's images must pass before any of its tags moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    /// `None`: the release is not signed (`--sign none`), and the gate
    /// checks everything but a signature (the deploy gate still refuses it).
    pub signer: Option<ExpectedSigner>,
    /// Every image index holds all of these.
    pub platforms: Vec<Platform>,
}

impl Gate {
    /// The gate of a release signed as `signing`: its own signature is
    /// what it requires. `repository` is GitHub's `OWNER/REPO` of the run
    /// (keyless signing happens only there).
    pub fn for_release(
        signing: &Signing,
        repository: Option<&GithubRepository>,
        platforms: &[Platform],
    ) -> Result<Gate> {
        let signer = match signing {
            Signing::None => None,
            // A KMS key verifies by its URI; a file or env:// key by its public half.
            Signing::Key { key, tlog_upload }
                if key.contains("://") && !key.starts_with("env://") =>
            {
                Some(ExpectedSigner::Key {
                    key: key.clone(),
                    tlog: *tlog_upload,
                })
            }
            Signing::Key { key, tlog_upload } => Some(ExpectedSigner::SigningKey {
                key: key.clone(),
                tlog: *tlog_upload,
            }),
            Signing::Keyless => {
                let Some(repository) = repository else {
                    bail!("keyless signing in GitHub Actions needs GITHUB_REPOSITORY (the signer identity the gate requires)");
                };
                Some(ExpectedSigner::Workflow {
                    identity: SignerIdentity::release_workflow(repository.clone()),
                })
            }
        };
        Ok(Gate {
            signer,
            platforms: platforms.to_vec(),
        })
    }
}

/// Who must have signed an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ExpectedSigner {
    /// The public half of the private key the release signs with
    /// (`cosign public-key`): a release's own gate.
    SigningKey { key: String, tlog: bool },
    /// A public key: a file, `env://VAR`, or a KMS URI.
    Key {
        key: String,
        /// Require a transparency log entry (key-based releases skip it unless `--tlog`).
        tlog: bool,
    },
    /// The release workflow of a repository (keyless), derived from
    /// `--repository OWNER/REPO`: no regexp written by hand.
    Workflow { identity: SignerIdentity },
    /// Another keyless identity, as an anchored regexp.
    Regexp { regexp: String, issuer: String },
}

/// How a user named the expected signer (the flags of `verify` and `promote`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignerRequest {
    pub key: Option<String>,
    /// `OWNER/REPO`: its release workflow is the signer.
    pub repository: Option<GithubRepository>,
    pub certificate_identity_regexp: Option<String>,
    pub certificate_oidc_issuer: Option<String>,
    pub tlog: bool,
}

impl SignerRequest {
    /// The expected signer, or why the request names none (or two).
    pub fn resolve(&self) -> Result<ExpectedSigner> {
        let given = [
            self.key.is_some(),
            self.repository.is_some(),
            self.certificate_identity_regexp.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given == 0 {
            bail!("the gate needs the expected signer: --repository OWNER/REPO (keyless, signed by that repository's build-push.yml on main or a release tag), --key PUBLIC_KEY, or --certificate-identity-regexp REGEXP (keyless)");
        }
        if given > 1 {
            bail!("name the expected signer once: --repository, --key or --certificate-identity-regexp, not several");
        }
        if let Some(key) = &self.key {
            return Ok(ExpectedSigner::Key {
                key: key.clone(),
                tlog: self.tlog,
            });
        }
        if let Some(repository) = &self.repository {
            let mut identity = SignerIdentity::release_workflow(repository.clone());
            if let Some(issuer) = &self.certificate_oidc_issuer {
                identity.issuer = issuer.clone();
            }
            return Ok(ExpectedSigner::Workflow { identity });
        }
        let regexp = self.certificate_identity_regexp.clone().unwrap_or_default();
        // An unanchored regexp matches inside any longer identity (a fork's
        // workflow, another ref): refuse it rather than guess.
        if !regexp.starts_with('^') || !regexp.ends_with('$') {
            bail!("--certificate-identity-regexp {regexp:?} is not anchored (^...$), so it also admits identities that merely contain it: anchor it, or use --repository OWNER/REPO");
        }
        Ok(ExpectedSigner::Regexp {
            regexp,
            issuer: self
                .certificate_oidc_issuer
                .clone()
                .unwrap_or_else(|| GITHUB_OIDC_ISSUER.to_string()),
        })
    }
}

impl ExpectedSigner {
    /// The `cosign verify` flags that require this signer; a
    /// [`ExpectedSigner::SigningKey`] verifies with its public half, written
    /// to `public_key` first.
    pub fn cosign_flags(&self, public_key: &str) -> Vec<String> {
        match self {
            ExpectedSigner::SigningKey { tlog, .. } => ExpectedSigner::Key {
                key: public_key.to_string(),
                tlog: *tlog,
            }
            .cosign_flags(public_key),
            ExpectedSigner::Key { key, tlog } => {
                let mut flags = vec![format!("--key={key}")];
                if !tlog {
                    flags.push("--insecure-ignore-tlog=true".to_string());
                }
                flags
            }
            ExpectedSigner::Workflow { identity } => identity.cosign_flags(),
            ExpectedSigner::Regexp { regexp, issuer } => vec![
                format!("--certificate-identity-regexp={regexp}"),
                format!("--certificate-oidc-issuer={issuer}"),
            ],
        }
    }

    /// A key whose signatures carry no transparency log entry: checked with
    /// a trusted root that trusts no service, nothing fetched from TUF.
    pub fn key_without_tlog(&self) -> bool {
        matches!(
            self,
            ExpectedSigner::SigningKey { tlog: false, .. }
                | ExpectedSigner::Key { tlog: false, .. }
        )
    }

    /// A key file this signer needs on disk (checked before anything runs).
    pub fn key_file(&self) -> Option<&str> {
        match self {
            ExpectedSigner::Key { key, .. } if !key.contains("://") => Some(key),
            _ => None,
        }
    }

    /// What checking this signer's signatures needs, checked before anything
    /// runs: the tools, and the key file when there is one on disk.
    pub fn requirements(&self) -> Vec<Requirement> {
        let mut requirements = vec![
            Requirement::Docker,
            Requirement::Buildx,
            Requirement::Cosign,
            Requirement::Skopeo,
        ];
        if let Some(key) = self.key_file() {
            requirements.push(Requirement::SigningKeyFile(key.to_string()));
        }
        requirements
    }

    /// Who, in words, for messages.
    pub fn describe(&self) -> String {
        match self {
            ExpectedSigner::SigningKey { key, .. } => format!("the signing key {key}"),
            ExpectedSigner::Key { key, .. } => format!("the key {key}"),
            ExpectedSigner::Workflow { identity } => format!(
                "{}'s {} on main or a release tag, triggered by {}",
                identity.repository, identity.workflow, identity.trigger
            ),
            ExpectedSigner::Regexp { regexp, .. } => format!("an identity matching {regexp}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_is_enough_for_keyless() {
        let signer = SignerRequest {
            repository: Some("acme/beacon".parse().unwrap()),
            ..SignerRequest::default()
        }
        .resolve()
        .unwrap();
        let flags = signer.cosign_flags("");
        assert!(flags[0].starts_with(r"--certificate-identity-regexp=^https://github\.com/acme/beacon/\.github/workflows/build-push\.yml@refs/(?:heads/main|tags/v"));
        assert!(flags.contains(&"--certificate-github-workflow-trigger=push".to_string()));
        assert!(signer
            .describe()
            .contains("acme/beacon's .github/workflows/build-push.yml"));
    }

    #[test]
    fn requests_name_one_signer() {
        let none = SignerRequest::default().resolve().unwrap_err().to_string();
        assert!(
            none.contains("--repository OWNER/REPO") && none.contains("--key"),
            "{none}"
        );
        let two = SignerRequest {
            key: Some("k.pub".into()),
            repository: Some("acme/beacon".parse().unwrap()),
            ..SignerRequest::default()
        };
        assert!(two
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("not several"));
        let loose = SignerRequest {
            certificate_identity_regexp: Some("https://github.com/acme/".into()),
            ..SignerRequest::default()
        };
        assert!(loose
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("not anchored"));
        let key = SignerRequest {
            key: Some("k.pub".into()),
            ..SignerRequest::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            key.cosign_flags(""),
            ["--key=k.pub", "--insecure-ignore-tlog=true"]
        );
        assert_eq!(key.key_file(), Some("k.pub"));
    }

    #[test]
    fn a_release_gates_on_its_own_signature() {
        let platforms = [Platform::linux("amd64")];
        let key = Signing::Key {
            key: "cosign.key".into(),
            tlog_upload: false,
        };
        let gate = Gate::for_release(&key, None, &platforms).unwrap();
        assert_eq!(
            gate.signer.unwrap().cosign_flags("run/cosign.pub"),
            ["--key=run/cosign.pub", "--insecure-ignore-tlog=true"]
        );
        let kms = Signing::Key {
            key: "awskms:///alias/x".into(),
            tlog_upload: true,
        };
        assert_eq!(
            Gate::for_release(&kms, None, &platforms)
                .unwrap()
                .signer
                .unwrap()
                .cosign_flags("unused"),
            ["--key=awskms:///alias/x"]
        );
        let acme = "acme/beacon".parse().unwrap();
        let keyless = Gate::for_release(&Signing::Keyless, Some(&acme), &platforms).unwrap();
        assert!(matches!(
            keyless.signer,
            Some(ExpectedSigner::Workflow { .. })
        ));
        assert!(Gate::for_release(&Signing::Keyless, None, &platforms).is_err());
        assert_eq!(
            Gate::for_release(&Signing::None, None, &platforms)
                .unwrap()
                .signer,
            None
        );
    }
}
