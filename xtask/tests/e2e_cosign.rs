//! End to end on the real stack, with both lines of cosign: the stack's
//! cosign 2.5 (`.sig` signatures) and cosign 3 beside it (Sigstore bundles,
//! which this registry, without the referrers API, keeps under the tag
//! `sha256-<hex>`). The tool picks the cosign first on PATH; each test puts
//! the line it means there for the xtask process.
//!
//! A release is built once (one variant, both platforms, the stand-ins and
//! the host-built binaries) and each test works on its own copy of it, the
//! same digests in a repository of its own, so no test sees another's
//! signatures:
//!
//! - a release signed by either cosign passes the gate of either (the same
//!   format and across formats);
//! - a signature by another key is refused, in either format, by either;
//! - an attestation of another type by the right key is not a signature;
//! - `release-image` signs, gates and promotes with either, and a release
//!   signed by one is promoted by the other.
//!
//! Keyless signing cannot run here (no OIDC token, no Fulcio, no network):
//! its commands are checked in tests/plans.rs for both lines.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

use support::cosign::{offline_signing_files, Cosign};
use support::e2e::{
    assert_ok, context_file, cosign_keys, engine_lock, fixture, registry, registry_digest,
    registry_tags, root, run, stderr, unique_name, xtask,
};
use support::TempDir;

const VERSION: &str = "6.1.0";
const VARIANT: &str = "ubi9";

/// The release every test copies: built and pushed by digest, recorded, unsigned.
struct Base {
    repository: String,
    digest: String,
    record: String,
    context: PathBuf,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let fixture = fixture();
        let _engine = engine_lock();
        let name = unique_name("cosign-base");
        let context = context_file("cosign-lines", &format!("refs/tags/v{VERSION}"), &[]);
        let dir = root().join("target/e2e");
        let record = dir.join(format!("cosign-base-{}.json", std::process::id()));
        let built = run(xtask()
            .args(["release-image", "--build-only", "--variant", VARIANT])
            .args(["--registry", &registry(), "--image-name", &name])
            .args(["--sbom-generator", &fixture.sbom_generator])
            .args(fixture.build_options())
            .arg("--record")
            .arg(&record)
            .env("XTASK_CONTEXT", &context));
        assert_ok(&built);
        let text = std::fs::read_to_string(&record).unwrap();
        let _ = std::fs::remove_file(&record);
        let value: Value = serde_json::from_str(&text).unwrap();
        Base {
            repository: format!("{}/{name}", registry()),
            digest: value["variants"][0]["digest"].as_str().unwrap().to_string(),
            record: text,
            context,
        }
    })
}

/// The test keys: the release's, and another one (made once, not by
/// parallel tests at the same time).
fn keys() -> [(PathBuf, PathBuf); 2] {
    static KEYS: OnceLock<[(PathBuf, PathBuf); 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            cosign_keys(&root().join("target/e2e/keys"), ""),
            cosign_keys(&root().join("target/e2e/keys-other"), ""),
        ]
    })
    .clone()
}

/// A copy of the base release in a repository of its own, with its record.
struct Release {
    name: String,
    digest: String,
    record: PathBuf,
    _scratch: TempDir,
}

impl Release {
    fn copy(label: &str) -> Release {
        let base = base();
        let name = unique_name(label);
        let repository = format!("{}/{name}", registry());
        let copied = run(Command::new("skopeo").args([
            "copy",
            "--all",
            "--preserve-digests",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{}@{}", base.repository, base.digest),
            &format!("docker://{repository}@{}", base.digest),
        ]));
        assert_ok(&copied);
        let scratch = TempDir::new(label);
        let record = scratch.path().join("release-record.json");
        std::fs::write(&record, base.record.replace(&base.repository, &repository)).unwrap();
        Release {
            name,
            digest: base.digest.clone(),
            record,
            _scratch: scratch,
        }
    }

    fn repository(&self) -> String {
        format!("{}/{}", registry(), self.name)
    }

    fn by_digest(&self) -> String {
        format!("{}@{}", self.repository(), self.digest)
    }

    /// `cargo xtask ARGS` for this release, with `cosign` first on PATH.
    fn xtask(&self, cosign: Cosign, args: &[&str]) -> Command {
        let mut command = xtask();
        command
            .args(args)
            .args(["--registry", &registry(), "--image-name", &self.name])
            .env("XTASK_CONTEXT", &base().context)
            .env("COSIGN_PASSWORD", "");
        cosign.first_on_path(&mut command);
        command
    }

    fn record(&self) -> String {
        self.record.display().to_string()
    }

    /// `sign --record` with `key`, by `cosign`; it must succeed.
    fn sign(&self, cosign: Cosign, key: &Path) {
        let signed = run(&mut self.xtask(
            cosign,
            &[
                "sign",
                "--record",
                &self.record(),
                &format!("--key={}", key.display()),
            ],
        ));
        assert_ok(&signed);
        // The command it ran (`+ cosign sign ...`): cosign 3 signs through a
        // signing config, with no deprecated flag.
        let log = stderr(&signed);
        let command = log
            .lines()
            .find(|l| l.starts_with("+ cosign sign "))
            .unwrap_or_else(|| panic!("no cosign sign in:\n{log}"));
        match cosign {
            Cosign::Two => assert!(command.contains("--tlog-upload=false"), "{command}"),
            Cosign::Three => assert!(
                command.contains("--signing-config=")
                    && command.contains("--trusted-root=")
                    && !command.contains("--tlog-upload")
                    && !command.contains("--new-bundle-format"),
                "{command}"
            ),
        }
    }

    /// The gate (`verify --record`) with `public_key`, by `cosign`.
    fn gate(&self, cosign: Cosign, public_key: &Path) -> Output {
        run(&mut self.xtask(
            cosign,
            &[
                "verify",
                "--record",
                &self.record(),
                &format!("--key={}", public_key.display()),
            ],
        ))
    }

    /// The signature tags of the image: `.sig` (cosign 2), `sha256-<hex>` (cosign 3).
    fn signature_tags(&self) -> Vec<String> {
        let own = self.digest.replacen(':', "-", 1);
        registry_tags(&self.name)
            .into_iter()
            .filter(|t| t.starts_with(&own))
            .collect()
    }

    /// Signed by `cosign` in its own format, and only that.
    #[track_caller]
    fn assert_signed_as(&self, cosign: Cosign) {
        assert_eq!(
            self.signature_tags(),
            [cosign.signature_tag(&self.digest)],
            "{} signs in its own format",
            cosign.label()
        );
    }
}

/// One line on stderr, `error: ` first, holding every keyword.
#[track_caller]
fn refused(output: &Output, keywords: &[&str]) -> String {
    let err = stderr(output);
    assert!(!output.status.success(), "expected a refusal:\n{err}");
    let last = err.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("error: "), "{err}");
    for keyword in keywords {
        assert!(last.contains(keyword), "{keyword:?} in: {last}");
    }
    last
}

/// Signed by `signer`, gated by `gate`, with the release's key: it passes.
fn passes(signer: Cosign, gate: Cosign) {
    let [(key, public_key), _] = keys();
    let release = Release::copy(&format!("{}-{}", signer.label(), gate.label()));
    release.sign(signer, &key);
    release.assert_signed_as(signer);
    let gated = release.gate(gate, &public_key);
    assert_ok(&gated);
    assert!(
        String::from_utf8_lossy(&gated.stdout).contains("passed the gate"),
        "{}",
        stderr(&gated)
    );
}

/// Signed by `signer` with another key, gated by `gate`: refused.
fn refuses_another_key(signer: Cosign, gate: Cosign) {
    let [(_, public_key), (other, _)] = keys();
    let release = Release::copy(&format!("wrong-{}-{}", signer.label(), gate.label()));
    release.sign(signer, &other);
    release.assert_signed_as(signer);
    let line = refused(
        &release.gate(gate, &public_key),
        &[
            "the gate refused 1 of 1",
            "its signature does not verify as the key",
        ],
    );
    assert!(
        !line.contains("SBOM") && !line.contains("provenance"),
        "only the signature is wrong: {line}"
    );
}

#[test]
fn a_release_signed_by_cosign3_passes_the_gate_of_cosign3() {
    passes(Cosign::Three, Cosign::Three);
}

#[test]
fn a_release_signed_by_cosign2_passes_the_gate_of_cosign2() {
    passes(Cosign::Two, Cosign::Two);
}

/// A Sigstore bundle, read by cosign 2.5's `verify-attestation`.
#[test]
fn a_release_signed_by_cosign3_passes_the_gate_of_cosign2() {
    passes(Cosign::Three, Cosign::Two);
}

/// A `.sig` signature, read by cosign 3's `verify`.
#[test]
fn a_release_signed_by_cosign2_passes_the_gate_of_cosign3() {
    passes(Cosign::Two, Cosign::Three);
}

#[test]
fn a_bundle_by_another_key_is_refused_by_the_gate_of_cosign3() {
    refuses_another_key(Cosign::Three, Cosign::Three);
}

#[test]
fn a_bundle_by_another_key_is_refused_by_the_gate_of_cosign2() {
    refuses_another_key(Cosign::Three, Cosign::Two);
}

#[test]
fn a_sig_by_another_key_is_refused_by_the_gate_of_cosign3() {
    refuses_another_key(Cosign::Two, Cosign::Three);
}

#[test]
fn a_sig_by_another_key_is_refused_by_the_gate_of_cosign2() {
    refuses_another_key(Cosign::Two, Cosign::Two);
}

/// An attestation of another predicate type, by the release's key, on an
/// unsigned image: cosign 3's `verify` exits 0 for it; the gate reads what
/// cosign verified and refuses it.
fn an_attestation_is_not_a_signature(gate: Cosign) {
    let [(key, public_key), _] = keys();
    let release = Release::copy(&format!("attested-{}", gate.label()));
    let scratch = TempDir::new("attestation");
    let predicate = scratch.path().join("predicate.json");
    std::fs::write(&predicate, "{\"built\": \"by a test\"}").unwrap();
    let (config, trusted_root) = offline_signing_files(scratch.path());
    let attested = run(Cosign::Three
        .command(&[
            "attest",
            "--yes",
            "--type=https://example.com/custom/v1",
            "--allow-http-registry=true",
            "--allow-insecure-registry=true",
        ])
        .arg(format!("--key={}", key.display()))
        .arg(format!("--predicate={}", predicate.display()))
        .arg(format!("--signing-config={}", config.display()))
        .arg(format!("--trusted-root={}", trusted_root.display()))
        .arg(release.by_digest()));
    assert_ok(&attested);
    let line = refused(
        &release.gate(gate, &public_key),
        &["the gate refused 1 of 1", "its signature does not verify"],
    );
    // cosign 3 exits 0 for the attestation: what it printed refuses it.
    // cosign 2 finds no signature predicate among the bundles.
    let why = match gate {
        Cosign::Three => "cosign verified \"https://example.com/custom/v1\"",
        Cosign::Two => "none of the attestations matched the predicate type",
    };
    assert!(line.contains(why), "{why:?} in: {line}");
}

#[test]
fn an_attestation_of_another_type_is_not_a_signature_to_the_gate_of_cosign3() {
    an_attestation_is_not_a_signature(Cosign::Three);
}

#[test]
fn an_attestation_of_another_type_is_not_a_signature_to_the_gate_of_cosign2() {
    an_attestation_is_not_a_signature(Cosign::Two);
}

/// `release-image` resumed from the record (nothing is rebuilt) with
/// `cosign` on PATH: it signs in its format, gates and promotes; a deployer
/// with the other cosign verifies the release by tag.
fn release_image_end_to_end(cosign: Cosign) {
    let fixture = fixture();
    let [(key, public_key), _] = keys();
    let release = Release::copy(&format!("release-image-{}", cosign.label()));
    let mut command = release.xtask(
        cosign,
        &[
            "release-image",
            "--variant",
            VARIANT,
            "--record",
            &release.record(),
            &format!("--key={}", key.display()),
            "--sbom-generator",
            &fixture.sbom_generator,
        ],
    );
    command.args(fixture.build_options());
    let released = run(&mut command);
    assert_ok(&released);
    let log = stderr(&released);
    assert!(!log.contains("buildx bake"), "nothing is rebuilt:\n{log}");
    release.assert_signed_as(cosign);
    for tag in [VERSION, "6.1", "6", "latest"] {
        assert_eq!(
            registry_digest(&release.name, &format!("{tag}-{VARIANT}")).as_deref(),
            Some(release.digest.as_str()),
            "{tag}-{VARIANT}"
        );
    }
    let other = if cosign == Cosign::Two {
        Cosign::Three
    } else {
        Cosign::Two
    };
    let mut deployer = xtask();
    deployer.args([
        "verify",
        &format!("{}:{VERSION}-{VARIANT}", release.repository()),
        &format!("--key={}", public_key.display()),
    ]);
    other.first_on_path(&mut deployer);
    assert_ok(&run(&mut deployer));
}

#[test]
fn release_image_signs_gates_and_promotes_with_cosign3() {
    release_image_end_to_end(Cosign::Three);
}

#[test]
fn release_image_signs_gates_and_promotes_with_cosign2() {
    release_image_end_to_end(Cosign::Two);
}

/// Signed by one cosign (`sign --record`), promoted by the other
/// (`promote --record`, which runs the gate itself).
fn signed_by_one_promoted_by_the_other(signer: Cosign, promoter: Cosign) {
    let [(key, public_key), _] = keys();
    let release = Release::copy(&format!("promote-{}-{}", signer.label(), promoter.label()));
    release.sign(signer, &key);
    let promoted = run(&mut release.xtask(
        promoter,
        &[
            "promote",
            "--record",
            &release.record(),
            &format!("--key={}", public_key.display()),
        ],
    ));
    assert_ok(&promoted);
    assert_eq!(
        registry_digest(&release.name, &format!("latest-{VARIANT}")).as_deref(),
        Some(release.digest.as_str())
    );
}

#[test]
fn a_release_signed_by_cosign3_is_promoted_by_cosign2() {
    signed_by_one_promoted_by_the_other(Cosign::Three, Cosign::Two);
}

#[test]
fn a_release_signed_by_cosign2_is_promoted_by_cosign3() {
    signed_by_one_promoted_by_the_other(Cosign::Two, Cosign::Three);
}

/// The cosign each line of tests runs is the one the tool detects.
#[test]
fn the_tool_detects_each_cosign_by_its_flags() {
    for cosign in Cosign::BOTH {
        let image = format!("{}/x@sha256:{}", registry(), "a".repeat(64));
        let mut command = xtask();
        command.args(["sign", &image, "--key", "k.key", "--dry-run"]);
        cosign.first_on_path(&mut command);
        let output = run(&mut command);
        assert_ok(&output);
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        match cosign {
            Cosign::Two => assert!(text.contains("--tlog-upload=false"), "{text}"),
            Cosign::Three => assert!(
                text.contains("cosign signing-config create") && !text.contains("--tlog-upload"),
                "{text}"
            ),
        }
    }
}
