//! The signer identity of production images, over certificate identities
//! (keyless signing cannot run here, so the identity model is tested
//! against the claims Fulcio certificates of GitHub Actions runs carry):
//!
//! - the regexp the gate gives `cosign verify --certificate-identity-regexp`
//!   is checked with a real regex engine (the `regex` crate, whose syntax
//!   for these constructs is RE2's, which cosign uses) against identities
//!   that must pass and identities that must fail;
//! - the identity model's own check agrees with the regexp on every subject,
//!   and also refuses another issuer, repository claim or trigger (the other
//!   flags `cosign verify` gets).

use regex::Regex;
use xtask::model::identity::{CertificateClaims, SignerIdentity, WorkflowRef, GITHUB_OIDC_ISSUER};
use xtask::plan::gate::SignerRequest;

fn identity() -> SignerIdentity {
    SignerIdentity::release_workflow("acme/beacon".parse().unwrap())
}

const WORKFLOW: &str = "https://github.com/acme/beacon/.github/workflows/build-push.yml";

/// Subjects of runs that may release.
fn releasing() -> Vec<String> {
    [
        "refs/heads/main",
        "refs/tags/v1.2.3",
        "refs/tags/v0.1.0",
        "refs/tags/v10.20.30",
        "refs/tags/v2.0.0-rc.1",
        "refs/tags/v2.0.0-beta-2",
        "refs/tags/v2.0.0-rc.1+build.7",
    ]
    .iter()
    .map(|r| format!("{WORKFLOW}@{r}"))
    .collect()
}

/// Subjects that must not sign production images, and why.
fn refused() -> Vec<(String, &'static str)> {
    let mut subjects: Vec<(String, &'static str)> = [
        ("refs/heads/feature", "another branch"),
        ("refs/heads/main-copy", "a branch named like main"),
        ("refs/heads/mainline", "a branch starting with main"),
        ("refs/heads/feature/main", "a branch ending in main"),
        ("refs/heads/v1.2.3", "a branch named like a release"),
        ("refs/tags/1.2.3", "a tag without v"),
        ("refs/tags/v1.2", "a tag that is not a version"),
        ("refs/tags/v1.2.3.4", "four numbers"),
        ("refs/tags/v1.2.3-", "an empty pre-release"),
        ("refs/tags/v1.2.3-rc/1", "a slash in the tag"),
        ("refs/tags/latest", "a tag that is not a version"),
        ("refs/pull/7/merge", "a pull request"),
        ("refs/heads/main\n", "a trailing newline"),
    ]
    .iter()
    .map(|(r, why)| (format!("{WORKFLOW}@{r}"), *why))
    .collect();
    subjects.extend([
        (
            "https://github.com/acme/beacon/.github/workflows/ci-build.yml@refs/heads/main".to_string(),
            "another workflow",
        ),
        (
            "https://github.com/acme/beacon/.github/workflows/build-push.yml.bak@refs/heads/main".to_string(),
            "a copy of the workflow",
        ),
        (
            "https://github.com/acme/beacon/.github/workflows/build-pushXyml@refs/heads/main".to_string(),
            "an unescaped dot would admit this",
        ),
        (
            "https://github.com/fork/beacon/.github/workflows/build-push.yml@refs/heads/main".to_string(),
            "a fork",
        ),
        (
            "https://github.com/acme/beacon2/.github/workflows/build-push.yml@refs/heads/main".to_string(),
            "another repository of the owner",
        ),
        (
            "https://github.com/acme/beacon/.github/workflows/build-push.yml@refs/heads/main/../dev".to_string(),
            "a path after the ref",
        ),
        (
            "https://githubXcom/acme/beacon/.github/workflows/build-push.yml@refs/heads/main".to_string(),
            "another host (an unescaped dot)",
        ),
        (
            "https://github.com.evil.example/acme/beacon/.github/workflows/build-push.yml@refs/heads/main".to_string(),
            "a look-alike host",
        ),
        (
            "xhttps://github.com/acme/beacon/.github/workflows/build-push.yml@refs/heads/main".to_string(),
            "an unanchored prefix",
        ),
        (
            "https://github.com/acme/beacon/.github/workflows/build-push.yml@refs/heads/main@refs/heads/x".to_string(),
            "an unanchored suffix",
        ),
    ]);
    subjects
}

#[test]
fn the_regexp_admits_exactly_the_releasing_runs() {
    let pattern = identity().subject_regexp();
    let regexp = Regex::new(&pattern).unwrap_or_else(|e| panic!("{pattern} does not compile: {e}"));
    for subject in releasing() {
        assert!(regexp.is_match(&subject), "{pattern} must admit {subject}");
    }
    for (subject, why) in refused() {
        assert!(
            !regexp.is_match(&subject),
            "{pattern} must refuse {subject:?} ({why})"
        );
    }
}

fn claims(subject: &str) -> CertificateClaims {
    CertificateClaims {
        subject: subject.to_string(),
        issuer: GITHUB_OIDC_ISSUER.to_string(),
        repository: "acme/beacon".to_string(),
        trigger: "push".to_string(),
    }
}

#[test]
fn the_model_agrees_with_the_regexp_on_every_subject() {
    let identity = identity();
    let regexp = Regex::new(&identity.subject_regexp()).unwrap();
    for subject in releasing() {
        assert_eq!(identity.check(&claims(&subject)), Ok(()), "{subject}");
    }
    for (subject, why) in refused() {
        assert!(
            identity.check(&claims(&subject)).is_err(),
            "{subject:?} ({why})"
        );
        assert_eq!(
            regexp.is_match(&subject),
            identity.check(&claims(&subject)).is_ok()
        );
    }
}

#[test]
fn another_trigger_issuer_or_repository_claim_is_refused() {
    let identity = identity();
    let main = identity.subject_for("refs/heads/main").to_string();
    for trigger in [
        "workflow_dispatch",
        "pull_request_target",
        "schedule",
        "workflow_run",
    ] {
        let mut claims = claims(&main);
        claims.trigger = trigger.to_string();
        let why = identity.check(&claims).unwrap_err();
        assert!(why.contains(trigger), "{why}");
    }
    let mut other_issuer = claims(&main);
    other_issuer.issuer = "https://token.actions.githubusercontent.com/acme".to_string();
    assert!(identity.check(&other_issuer).is_err());
    let mut other_repository = claims(&main);
    other_repository.repository = "evil/beacon".to_string();
    assert!(identity.check(&other_repository).is_err());
    // cosign gets the same three claims as flags of their own.
    let flags = identity.cosign_flags();
    assert!(flags.contains(&"--certificate-github-workflow-trigger=push".to_string()));
    assert!(flags.contains(&"--certificate-github-workflow-repository=acme/beacon".to_string()));
    assert!(flags.contains(&format!("--certificate-oidc-issuer={GITHUB_OIDC_ISSUER}")));
}

#[test]
fn subjects_format_and_parse_side_by_side() {
    for subject in releasing() {
        let parsed: WorkflowRef = subject.parse().unwrap();
        assert_eq!(parsed.to_string(), subject);
    }
}

/// `verify --repository OWNER/REPO` derives exactly this identity: users
/// write no regexp.
#[test]
fn verify_derives_the_identity_from_the_repository() {
    let signer = SignerRequest {
        repository: Some("acme/beacon".parse().unwrap()),
        certificate_oidc_issuer: Some(GITHUB_OIDC_ISSUER.into()),
        ..SignerRequest::default()
    }
    .resolve()
    .unwrap();
    assert_eq!(signer.cosign_flags(""), identity().cosign_flags());
    // The regexp the gate's page shows is the one the tool derives.
    let gate = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/gate.md"),
    )
    .unwrap();
    let shown = SignerIdentity::release_workflow("OWNER/REPO".parse().unwrap()).subject_regexp();
    assert!(
        gate.contains(&shown),
        "docs/gate.md shows the derived identity regexp {shown}"
    );
}
