//! The admission policies `cargo xtask verify --policy KIND` prints, from the
//! real binary: parsed as YAML, their fields checked against the identity
//! the deploy gate itself requires (the library's `SignerIdentity`), the
//! Kyverno policy validated against Kyverno's published JSON schemas (the
//! npm package `@kubernetes-models/kyverno`, pinned), and the bad inputs
//! refused in one line. No validator of policy-controller's CRD can be had
//! from the package registries; its document is checked field by field.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde_json::Value;
use support::{assert_one_line_error, run, stdout, xtask};
use xtask::model::identity::SignerIdentity;

/// The schema package, pinned (its version follows Kyverno's API).
const KYVERNO_MODELS: &str = "@kubernetes-models/kyverno@2.0.0";

/// Validates the policy file named by its argument, or throws.
const VALIDATE: &str = r#"
import { readFileSync } from "node:fs";
import { ClusterPolicy } from "@kubernetes-models/kyverno/kyverno.io/v1";
const policy = new ClusterPolicy(JSON.parse(readFileSync(process.argv[2], "utf8")));
policy.validate();
console.log("valid");
"#;

fn yaml(text: &str) -> Value {
    let documents = yaml_rust2::YamlLoader::load_from_str(text)
        .unwrap_or_else(|e| panic!("not YAML ({e}):\n{text}"));
    assert_eq!(documents.len(), 1, "one document");
    to_json(&documents[0])
}

fn to_json(node: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match node {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) | Yaml::Real(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().expect("string keys").to_string(), to_json(v)))
                .collect(),
        ),
        other => panic!("unexpected YAML node {other:?}"),
    }
}

fn policy(args: &[&str]) -> Value {
    let output = run(xtask().arg("verify").args(args));
    assert!(
        output.status.success(),
        "verify {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    yaml(&stdout(&output))
}

fn identity() -> SignerIdentity {
    SignerIdentity::release_workflow("Acme/beacon".parse().unwrap())
}

#[test]
fn kyverno_policy_admits_the_gates_identity_by_digest_and_refuses_ci_images() {
    let policy = policy(&["--policy", "kyverno", "--repository", "Acme/beacon"]);
    assert_eq!(policy["apiVersion"], "kyverno.io/v1");
    assert_eq!(policy["kind"], "ClusterPolicy");
    let rules = policy["spec"]["rules"].as_array().unwrap();
    let verify = &rules[0]["verifyImages"][0];
    // ghcr.io/<owner, lowercased>/beacon, what build-push.yml publishes to.
    assert_eq!(verify["imageReferences"][0], "ghcr.io/acme/beacon*");
    assert_eq!(verify["verifyDigest"], true, "images by digest only");
    assert_eq!(
        verify["mutateDigest"], false,
        "a tag is refused, not resolved"
    );
    assert_eq!(verify["required"], true);
    assert_eq!(verify["failureAction"], "Enforce");
    assert_eq!(
        verify["type"], "SigstoreBundle",
        "the release workflow signs with cosign 3: Sigstore bundles"
    );
    let keyless = &verify["attestors"][0]["entries"][0]["keyless"];
    let identity = identity();
    assert_eq!(keyless["subjectRegExp"], identity.subject_regexp());
    assert_eq!(keyless["issuer"], identity.issuer);
    assert_eq!(
        keyless["additionalExtensions"]["githubWorkflowRepository"],
        identity.repository.to_string()
    );
    assert_eq!(
        keyless["additionalExtensions"]["githubWorkflowTrigger"],
        identity.trigger
    );
    // The same flags `verify --repository` gives cosign, in the policy's words.
    let attested = [
        &keyless["subjectRegExp"],
        &keyless["issuer"],
        &keyless["additionalExtensions"]["githubWorkflowRepository"],
        &keyless["additionalExtensions"]["githubWorkflowTrigger"],
    ];
    for flag in identity.cosign_flags() {
        let value = flag.split_once('=').unwrap().1;
        assert!(
            attested.iter().any(|a| a.as_str() == Some(value)),
            "{flag} is in the attestor: {keyless}"
        );
    }
    let pattern = &rules[1]["validate"]["pattern"]["spec"];
    for containers in ["containers", "=(initContainers)", "=(ephemeralContainers)"] {
        assert_eq!(
            pattern[containers][0]["image"], "!ghcr.io/acme/beacon:ci-*",
            "{containers}"
        );
    }
    let labels = serde_json::to_string(&rules[2]["validate"]).unwrap();
    assert!(
        labels.contains("dev.beacon.image.flavor")
            && labels.contains("dev.beacon.image.not-for-production"),
        "{labels}"
    );
    validate_with_kyverno_schema(&policy);
}

#[test]
fn a_key_policy_embeds_the_public_key_for_either_controller() {
    let dir = support::TempDir::new("admission-key");
    let key = dir.path().join("cosign.pub");
    let pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEexampleexampleexampleexample\n-----END PUBLIC KEY-----\n";
    std::fs::write(&key, pem).unwrap();
    let key = key.display().to_string();
    let kyverno = policy(&[
        "--policy",
        "kyverno",
        "--key",
        &key,
        "--registry",
        "registry.example/acme",
    ]);
    let keys =
        &kyverno["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"][0]["keys"];
    assert_eq!(keys["publicKeys"], pem);
    assert_eq!(
        keys["rekor"]["ignoreTlog"], true,
        "key-based releases skip the log unless --tlog"
    );
    assert_eq!(
        kyverno["spec"]["rules"][0]["verifyImages"][0]["imageReferences"][0],
        "registry.example/acme/beacon*"
    );
    validate_with_kyverno_schema(&kyverno);

    let controller = policy(&[
        "--policy",
        "policy-controller",
        "--key",
        &key,
        "--registry",
        "registry.example/acme",
    ]);
    assert_eq!(controller["apiVersion"], "policy.sigstore.dev/v1beta1");
    assert_eq!(controller["kind"], "ClusterImagePolicy");
    assert_eq!(controller["spec"]["mode"], "enforce");
    assert_eq!(
        controller["spec"]["images"][0]["glob"],
        "registry.example/acme/beacon**"
    );
    assert_eq!(controller["spec"]["authorities"][0]["key"]["data"], pem);
}

#[test]
fn a_policy_controller_policy_admits_the_gates_identity() {
    let controller = policy(&[
        "--policy",
        "policy-controller",
        "--repository",
        "Acme/beacon",
    ]);
    let authority = &controller["spec"]["authorities"][0];
    let identity = identity();
    assert_eq!(
        authority["keyless"]["identities"][0]["subjectRegExp"],
        identity.subject_regexp()
    );
    assert_eq!(
        authority["keyless"]["identities"][0]["issuer"],
        identity.issuer
    );
    assert_eq!(authority["ctlog"]["url"], "https://rekor.sigstore.dev");
    assert_eq!(
        controller["spec"]["images"][0]["glob"],
        "ghcr.io/acme/beacon**"
    );
    // cosign 3's signature is a Sigstore bundle: policy-controller's bundle
    // setting, and the signature matched as its predicate.
    assert_eq!(authority["signatureFormat"], "bundle");
    assert_eq!(authority["attestations"][0]["name"], "signature");
    assert_eq!(
        authority["attestations"][0]["predicateType"],
        "https://sigstore.dev/cosign/sign/v1"
    );
}

/// What a controller cannot check is said above the policy, as comments:
/// the reader sees it where they review the document.
fn comments(args: &[&str]) -> (String, String) {
    let output = run(xtask().arg("verify").args(args));
    assert!(output.status.success(), "{}", support::stderr(&output));
    let text = stdout(&output);
    let comments: Vec<&str> = text
        .lines()
        .take_while(|l| l.starts_with("# "))
        .map(|l| &l[2..])
        .collect();
    (comments.join(" "), support::stderr(&output))
}

#[test]
fn the_kyverno_policy_says_what_kyverno_cannot_check_for_bundles() {
    let (said, _) = comments(&["--policy", "kyverno", "--repository", "Acme/beacon"]);
    for words in [
        "type: SigstoreBundle",
        "OCI referrers API",
        "GHCR",
        "kyverno/kyverno#16664",
        "does not enforce them for Sigstore bundles",
    ] {
        assert!(said.contains(words), "{words:?} in: {said}");
    }
}

#[test]
fn a_key_signed_policy_for_policy_controller_says_it_reads_only_sig_signatures() {
    let dir = support::TempDir::new("admission-key-controller");
    let key = dir.path().join("cosign.pub");
    std::fs::write(
        &key,
        "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let key = key.display().to_string();
    let args = [
        "--policy",
        "policy-controller",
        "--key",
        &key,
        "--registry",
        "registry.example/acme",
    ];
    let (said, warned) = comments(&args);
    assert!(
        said.contains("sigstore/policy-controller#1958")
            && said.contains("admits only .sig signatures")
            && said.contains("cosign 3 does not"),
        "{said}"
    );
    assert!(
        warned.contains("warning: policy-controller cannot verify key-signed Sigstore bundles"),
        "{warned}"
    );
    let authority = &policy(&args)["spec"]["authorities"][0];
    assert!(authority.get("signatureFormat").is_none(), "{authority}");
}

#[test]
fn legacy_signatures_get_the_legacy_policies() {
    let kyverno = policy(&[
        "--policy",
        "kyverno",
        "--repository",
        "Acme/beacon",
        "--signature-format",
        "legacy",
    ]);
    let verify = &kyverno["spec"]["rules"][0]["verifyImages"][0];
    assert_eq!(verify["type"], "Cosign");
    assert_eq!(
        verify["attestors"][0]["entries"][0]["keyless"]["additionalExtensions"]
            ["githubWorkflowTrigger"],
        "push",
        "enforced for .sig signatures"
    );
    validate_with_kyverno_schema(&kyverno);
    let controller = policy(&[
        "--policy",
        "policy-controller",
        "--repository",
        "Acme/beacon",
        "--signature-format",
        "legacy",
    ]);
    assert!(controller["spec"]["authorities"][0]
        .get("signatureFormat")
        .is_none());
    assert_one_line_error(
        &run(xtask().args([
            "verify",
            "--policy",
            "kyverno",
            "--repository",
            "acme/beacon",
            "--signature-format",
            "sig",
        ])),
        &["sig", "bundle", "legacy"],
    );
}

#[test]
fn bad_policy_requests_are_one_line() {
    assert_one_line_error(
        &run(xtask().args([
            "verify",
            "--policy",
            "gatekeeper",
            "--repository",
            "acme/beacon",
        ])),
        &["gatekeeper", "kyverno", "policy-controller"],
    );
    assert_one_line_error(
        &run(xtask().args(["verify", "--policy", "kyverno"])),
        &[
            "needs the signer",
            "--repository OWNER/REPO",
            "--key PUBLIC_KEY",
            "kyverno, policy-controller",
        ],
    );
    assert_one_line_error(
        &run(xtask().args([
            "verify",
            "--policy",
            "kyverno",
            "--key",
            "/nonexistent/cosign.pub",
            "--registry",
            "r.example/a",
        ])),
        &["/nonexistent/cosign.pub"],
    );
    assert_one_line_error(
        &run(xtask().args(["verify", "--policy", "kyverno", "--key", "cosign.pub"])),
        &["needs the image repository", "--registry"],
    );
}

/// Validates a Kyverno policy against `@kubernetes-models/kyverno`'s JSON
/// schemas (installed once, pinned, into target/). Its schemas check types,
/// enums and required fields; they do not refuse unknown fields, which the
/// field checks above cover.
fn validate_with_kyverno_schema(policy: &Value) {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = validator_dir();
    let document = dir.join(format!(
        "policy-{}-{}.json",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&document, policy.to_string()).unwrap();
    let path = dir.join("validate.mjs");
    let output = Command::new("node")
        .arg(&path)
        .arg(&document)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run node ({e}): install Node.js (Debian: apt install nodejs npm)")
        });
    let _ = std::fs::remove_file(&document);
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("valid"),
        "the Kyverno schema refuses the policy: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The validator's directory, installed once per test run (the tests of
/// this file run in parallel).
fn validator_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = support::project_root().join("target/admission-validator");
        let installed = dir.join("node_modules/@kubernetes-models/kyverno/package.json");
        if !installed.is_file() {
            std::fs::create_dir_all(&dir).unwrap();
            install(&dir);
        }
        std::fs::write(dir.join("validate.mjs"), VALIDATE).unwrap();
        dir
    })
    .clone()
}

fn install(dir: &Path) {
    let output = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--silent",
            "--prefix",
        ])
        .arg(dir)
        .arg(KYVERNO_MODELS)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run npm ({e}): install Node.js and npm (Debian: apt install nodejs npm)")
        });
    assert!(
        output.status.success(),
        "npm install {KYVERNO_MODELS} failed (is the npm registry reachable?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
