//! Who may sign a production image: the keyless signer identity of the
//! release workflow, as one typed value that everything derives from (the
//! `cosign verify` flags of the deploy gate, the regexp docs/gate.md shows,
//! and the admission policies), so no regexp is ever written by hand.
//!
//! A keyless signature made in GitHub Actions carries a Fulcio certificate
//! whose subject (SAN) is the workflow that ran, at the ref it ran for:
//! `https://github.com/OWNER/REPO/.github/workflows/build-push.yml@refs/tags/v1.2.3`
//! ([`WorkflowRef`], format and parse side by side), plus extensions for
//! the OIDC issuer, the repository and the event that triggered the run.
//! A production image must come from this repository's release workflow,
//! on `main` or a release tag, triggered by a push: a copy of the workflow
//! on another branch, in a fork or behind a `workflow_dispatch` does not
//! sign production images.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// The GitHub server whose workflows sign.
pub const GITHUB_SERVER: &str = "https://github.com";
/// The OIDC issuer of GitHub Actions' job tokens.
pub const GITHUB_OIDC_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// The workflow that publishes production images.
pub const RELEASE_WORKFLOW: &str = ".github/workflows/build-push.yml";
/// The only event that may run it for a release.
pub const RELEASE_TRIGGER: &str = "push";

/// `OWNER/REPO` on GitHub, spelled as GitHub does (`github.repository`);
/// compared exactly, as cosign compares the certificate's claims.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GithubRepository {
    pub owner: String,
    pub name: String,
}

impl fmt::Display for GithubRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

impl FromStr for GithubRepository {
    type Err = anyhow::Error;

    /// GitHub's own rules: an owner is 1-39 letters, digits and inner
    /// dashes; a repository name 1-100 letters, digits, `.`, `_` and `-`.
    fn from_str(text: &str) -> Result<GithubRepository> {
        let hint = "expected OWNER/REPO as GitHub spells it (the workflow's github.repository), e.g. acme/beacon";
        let Some((owner, name)) = text.split_once('/') else {
            bail!("malformed GitHub repository {text:?}: {hint}");
        };
        let owner_ok = (1..=39).contains(&owner.len())
            && owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !owner.starts_with('-')
            && !owner.ends_with('-');
        let name_ok = (1..=100).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && name != "."
            && name != "..";
        if !owner_ok || !name_ok {
            bail!("malformed GitHub repository {text:?}: {hint}");
        }
        Ok(GithubRepository {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }
}

impl TryFrom<String> for GithubRepository {
    type Error = anyhow::Error;
    fn try_from(text: String) -> Result<GithubRepository> {
        text.parse()
    }
}

impl From<GithubRepository> for String {
    fn from(repository: GithubRepository) -> String {
        repository.to_string()
    }
}

/// The subject of a GitHub Actions workflow's signing certificate:
/// `https://github.com/OWNER/REPO/PATH@REF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRef {
    pub repository: GithubRepository,
    /// The workflow file, `.github/workflows/NAME.yml`.
    pub path: String,
    /// The ref the run was for: `refs/heads/main`, `refs/tags/v1.2.3`, ...
    pub git_ref: String,
}

impl fmt::Display for WorkflowRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{GITHUB_SERVER}/{}/{}@{}",
            self.repository, self.path, self.git_ref
        )
    }
}

impl FromStr for WorkflowRef {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<WorkflowRef> {
        let hint = format!("expected {GITHUB_SERVER}/OWNER/REPO/.github/workflows/FILE@REF");
        let Some(rest) = text.strip_prefix(&format!("{GITHUB_SERVER}/")) else {
            bail!("{text:?} is not a GitHub workflow identity: {hint}");
        };
        let Some((location, git_ref)) = rest.split_once('@') else {
            bail!("{text:?} names no ref: {hint}");
        };
        let mut parts = location.splitn(3, '/');
        let (Some(owner), Some(name), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            bail!("{text:?} names no workflow file: {hint}");
        };
        if !path.starts_with(".github/workflows/") || git_ref.is_empty() {
            bail!("{text:?} is not a GitHub workflow identity: {hint}");
        }
        Ok(WorkflowRef {
            repository: format!("{owner}/{name}").parse()?,
            path: path.to_string(),
            git_ref: git_ref.to_string(),
        })
    }
}

/// A ref that may publish production images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "kebab-case")]
pub enum ReleaseRef {
    /// `refs/heads/NAME`, exactly.
    Branch(String),
    /// `refs/tags/vMAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`: the release tags
    /// the workflow runs for.
    VersionTags,
}

/// The pre-release and build characters of a version tag.
fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '-'
}

impl ReleaseRef {
    /// Whether a run for `git_ref` may release. Exactly what [`Self::pattern`]
    /// matches (a test checks the two against the same identities).
    pub fn admits(&self, git_ref: &str) -> bool {
        match self {
            ReleaseRef::Branch(name) => git_ref == format!("refs/heads/{name}"),
            ReleaseRef::VersionTags => {
                let Some(version) = git_ref.strip_prefix("refs/tags/v") else {
                    return false;
                };
                let (core, build) = match version.split_once('+') {
                    Some((core, build)) => (core, Some(build)),
                    None => (version, None),
                };
                let (numbers, prerelease) = match core.split_once('-') {
                    Some((numbers, prerelease)) => (numbers, Some(prerelease)),
                    None => (core, None),
                };
                let numbers: Vec<&str> = numbers.split('.').collect();
                numbers.len() == 3
                    && numbers
                        .iter()
                        .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
                    && [prerelease, build].iter().all(|part| {
                        part.is_none_or(|p| !p.is_empty() && p.chars().all(is_identifier_char))
                    })
            }
        }
    }

    /// The ref as a regexp (RE2 and Rust `regex` syntax), after `refs/`.
    fn pattern(&self) -> String {
        match self {
            ReleaseRef::Branch(name) => format!("heads/{}", escape(name)),
            ReleaseRef::VersionTags => {
                r"tags/v[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?".to_string()
            }
        }
    }
}

/// Escapes the characters regexps give a meaning to.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// What a Fulcio certificate of a GitHub Actions job says about its signer:
/// the claims the gate checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateClaims {
    /// The subject alternative name: the workflow at its ref.
    pub subject: String,
    /// The OIDC issuer extension.
    pub issuer: String,
    /// The GitHub Workflow Repository extension (`OWNER/REPO`).
    pub repository: String,
    /// The GitHub Workflow Trigger extension (the event name).
    pub trigger: String,
}

/// The keyless identity production images must be signed by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerIdentity {
    pub repository: GithubRepository,
    /// The workflow file that signs.
    pub workflow: String,
    /// The refs that may release.
    pub refs: Vec<ReleaseRef>,
    /// The event that must have triggered the run.
    pub trigger: String,
    pub issuer: String,
}

impl SignerIdentity {
    /// This project's release workflow in `repository`: `build-push.yml` on
    /// `main` or a release tag, triggered by a push.
    pub fn release_workflow(repository: GithubRepository) -> SignerIdentity {
        SignerIdentity {
            repository,
            workflow: RELEASE_WORKFLOW.to_string(),
            refs: vec![
                ReleaseRef::Branch(crate::model::tags::DEFAULT_BRANCH.to_string()),
                ReleaseRef::VersionTags,
            ],
            trigger: RELEASE_TRIGGER.to_string(),
            issuer: GITHUB_OIDC_ISSUER.to_string(),
        }
    }

    /// The certificate subject as an anchored regexp, every literal dot
    /// escaped: what `cosign verify --certificate-identity-regexp` gets.
    pub fn subject_regexp(&self) -> String {
        let refs: Vec<String> = self.refs.iter().map(ReleaseRef::pattern).collect();
        format!(
            "^{}/{}/{}@refs/(?:{})$",
            escape(GITHUB_SERVER),
            escape(&self.repository.to_string()),
            escape(&self.workflow),
            refs.join("|")
        )
    }

    /// The subject a run of the workflow for `git_ref` signs with.
    pub fn subject_for(&self, git_ref: &str) -> WorkflowRef {
        WorkflowRef {
            repository: self.repository.clone(),
            path: self.workflow.clone(),
            git_ref: git_ref.to_string(),
        }
    }

    /// The flags that make `cosign verify` require exactly this identity:
    /// the subject, the issuer, and the repository and trigger extensions.
    pub fn cosign_flags(&self) -> Vec<String> {
        vec![
            format!("--certificate-identity-regexp={}", self.subject_regexp()),
            format!("--certificate-oidc-issuer={}", self.issuer),
            format!(
                "--certificate-github-workflow-repository={}",
                self.repository
            ),
            format!("--certificate-github-workflow-trigger={}", self.trigger),
        ]
    }

    /// Whether a certificate's claims are this identity, and if not, why:
    /// what `cosign verify` with [`Self::cosign_flags`] enforces.
    pub fn check(&self, claims: &CertificateClaims) -> std::result::Result<(), String> {
        if claims.issuer != self.issuer {
            return Err(format!(
                "issued by {:?}, not {:?}",
                claims.issuer, self.issuer
            ));
        }
        let subject: WorkflowRef = claims
            .subject
            .parse()
            .map_err(|e: anyhow::Error| e.to_string())?;
        if subject.repository != self.repository {
            return Err(format!(
                "signed by a workflow of {}, not {}",
                subject.repository, self.repository
            ));
        }
        if subject.path != self.workflow {
            return Err(format!(
                "signed by the workflow {}, not {}",
                subject.path, self.workflow
            ));
        }
        if !self.refs.iter().any(|r| r.admits(&subject.git_ref)) {
            return Err(format!(
                "signed by a run for {}, which may not release (main or a release tag vX.Y.Z)",
                subject.git_ref
            ));
        }
        if claims.repository != self.repository.to_string() {
            return Err(format!(
                "the certificate's repository is {:?}, not {}",
                claims.repository, self.repository
            ));
        }
        if claims.trigger != self.trigger {
            return Err(format!(
                "signed by a run triggered by {:?}, not {:?}",
                claims.trigger, self.trigger
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> SignerIdentity {
        SignerIdentity::release_workflow("acme/beacon.rs".parse().unwrap())
    }

    #[test]
    fn repositories_follow_github_rules() {
        let repository: GithubRepository = "Acme-Corp/beacon.rs_x".parse().unwrap();
        assert_eq!(repository.owner, "Acme-Corp");
        assert_eq!(repository.to_string(), "Acme-Corp/beacon.rs_x");
        for bad in [
            "acme",
            "acme/",
            "/beacon",
            "-acme/beacon",
            "ac me/beacon",
            "acme/bea/con",
            "acme/..",
            "acme_corp/beacon",
        ] {
            let err = bad.parse::<GithubRepository>().unwrap_err().to_string();
            assert!(err.contains("OWNER/REPO"), "{bad}: {err}");
        }
    }

    #[test]
    fn workflow_refs_format_and_parse_side_by_side() {
        let text =
            "https://github.com/acme/beacon/.github/workflows/build-push.yml@refs/tags/v1.2.3";
        let parsed: WorkflowRef = text.parse().unwrap();
        assert_eq!(parsed.repository.to_string(), "acme/beacon");
        assert_eq!(parsed.path, ".github/workflows/build-push.yml");
        assert_eq!(parsed.git_ref, "refs/tags/v1.2.3");
        assert_eq!(parsed.to_string(), text);
        for bad in [
            "https://gitlab.com/acme/beacon/.github/workflows/x.yml@refs/heads/main",
            "https://github.com/acme/beacon/.github/workflows/x.yml",
            "https://github.com/acme/beacon/ci/x.yml@refs/heads/main",
            "https://github.com/acme/.github/workflows/x.yml@refs/heads/main",
        ] {
            assert!(bad.parse::<WorkflowRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_regexp_is_anchored_and_escaped() {
        assert_eq!(
            identity().subject_regexp(),
            r"^https://github\.com/acme/beacon\.rs/\.github/workflows/build-push\.yml@refs/(?:heads/main|tags/v[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)$"
        );
        assert_eq!(
            identity().cosign_flags()[1..],
            [
                "--certificate-oidc-issuer=https://token.actions.githubusercontent.com",
                "--certificate-github-workflow-repository=acme/beacon.rs",
                "--certificate-github-workflow-trigger=push",
            ]
        );
    }

    /// The refs a release may come from, and look-alikes that must not pass.
    #[test]
    fn refs_that_may_release() {
        let tags = ReleaseRef::VersionTags;
        for yes in [
            "refs/tags/v1.2.3",
            "refs/tags/v10.0.0-rc.1",
            "refs/tags/v1.2.3-rc.1+build.5",
            "refs/tags/v0.0.1+b",
        ] {
            assert!(tags.admits(yes), "{yes}");
        }
        for no in [
            "refs/tags/1.2.3",
            "refs/tags/v1.2",
            "refs/tags/v1.2.3.4",
            "refs/tags/v1.2.3-",
            "refs/tags/v1.2.3-rc/1",
            "refs/tags/v1.2.x",
            "refs/heads/v1.2.3",
            "refs/tags/v1.2.3 ",
        ] {
            assert!(!tags.admits(no), "{no}");
        }
        let main = ReleaseRef::Branch("main".into());
        assert!(main.admits("refs/heads/main"));
        for no in [
            "refs/heads/main2",
            "refs/heads/mainx",
            "refs/heads/feature/main",
            "refs/tags/main",
        ] {
            assert!(!main.admits(no), "{no}");
        }
    }

    #[test]
    fn claims_are_checked_one_by_one() {
        let identity = SignerIdentity::release_workflow("acme/beacon".parse().unwrap());
        let good = CertificateClaims {
            subject: identity.subject_for("refs/heads/main").to_string(),
            issuer: GITHUB_OIDC_ISSUER.into(),
            repository: "acme/beacon".into(),
            trigger: "push".into(),
        };
        assert_eq!(identity.check(&good), Ok(()));
        let with = |change: &dyn Fn(&mut CertificateClaims)| {
            let mut claims = good.clone();
            change(&mut claims);
            identity.check(&claims).unwrap_err()
        };
        assert!(with(&|c| c.trigger = "workflow_dispatch".into()).contains("workflow_dispatch"));
        assert!(with(&|c| c.issuer = "https://accounts.google.com".into()).contains("issued by"));
        assert!(with(&|c| c.repository = "evil/beacon".into()).contains("evil/beacon"));
        assert!(
            with(&|c| c.subject = c.subject.replace("refs/heads/main", "refs/heads/dev"))
                .contains("refs/heads/dev")
        );
        assert!(
            with(&|c| c.subject = c.subject.replace("build-push", "copy")).contains("copy.yml")
        );
        assert!(with(&|c| c.subject = c.subject.replace("acme/", "fork/")).contains("fork/beacon"));
    }
}
