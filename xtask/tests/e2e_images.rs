//! End to end on a real engine: BuildKit through buildx, the OCI registry on
//! 127.0.0.1 and real cosign. The stack comes from `.ci/setup-stack`; these
//! tests fail (never skip) when it is missing. Nothing is pulled: the stand-in
//! bases, SBOM generator and host-built binaries come from `cargo xtask stand-ins`.
//!
//! Assertions read what the engine and the registry hold, not the tool's output.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

use support::e2e::{
    arm64_version, assert_ok, context_file, cosign_keys, docker, engine_lock, fixture, git,
    http_get, index_platforms, native_arch, ok, platform_config, registry, registry_digest,
    registry_manifest, registry_tags, root, run, shared, start_service, stderr, stdout,
    unique_name, wait_for_http, xtask,
};

/// The variants, as the tool discovers them.
fn variants() -> Vec<String> {
    xtask::project::discover_variants(&root()).unwrap()
}

/// Runs `script` with the image's /bin/sh (CI images have one).
fn shell_in(image: &str, script: &str) -> Output {
    docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        script,
    ])
}

#[test]
fn ci_images_of_every_variant_load_run_and_say_what_they_are() {
    let fixture = fixture();
    let _engine = engine_lock();
    let text = ok(xtask()
        .args(["ci-image", "--json", "--registry", "localhost/e2e"])
        .args(fixture.build_options()));
    let result: Value = serde_json::from_str(&text).unwrap();
    let built = result["variants"].as_array().unwrap();
    assert_eq!(
        built.len(),
        variants().len(),
        "default: every variant under images/"
    );

    for variant in variants() {
        let image = format!("localhost/e2e/beacon:ci-{variant}");
        // Both ci- tags exist in the engine and name the same image.
        let tags = result["variants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["variant"] == variant)
            .unwrap()["tags"]
            .clone();
        let tags: Vec<&str> = tags
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(tags[0], image);
        assert!(
            tags[1].starts_with(&format!("{image}-")),
            "unique tag {}",
            tags[1]
        );
        let ids: Vec<String> = tags
            .iter()
            .map(|t| {
                stdout(&docker(&["image", "inspect", "--format", "{{.Id}}", t]))
                    .trim()
                    .to_string()
            })
            .collect();
        assert!(
            !ids[0].is_empty() && ids[0] == ids[1],
            "both ci- tags are in the engine: {ids:?}"
        );

        // Exactly one platform: buildx exported a single manifest, not an index.
        let media_type = result["variants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["variant"] == variant)
            .unwrap()["media_type"]
            .as_str()
            .unwrap();
        assert!(
            media_type.contains("manifest.v2") || media_type.contains("manifest.v1"),
            "{variant}: {media_type}"
        );
        let inspect: Value =
            serde_json::from_slice(&docker(&["image", "inspect", &image]).stdout).unwrap();
        let config = &inspect[0];
        assert_eq!(config["Architecture"], native_arch());
        assert_eq!(config["Os"], "linux");

        // Labels mark it as a CI image, in our namespace, and the description says so.
        let labels = &config["Config"]["Labels"];
        assert_eq!(labels["dev.beacon.image.flavor"], "ci");
        assert_eq!(labels["dev.beacon.image.not-for-production"], "true");
        assert_eq!(labels["dev.beacon.image.variant"], variant);
        assert!(labels["org.opencontainers.image.description"]
            .as_str()
            .unwrap()
            .contains("NOT FOR PRODUCTION"));
        assert!(labels
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("org.opencontainers.image.ci")));

        // Non-root, exec-form entrypoint.
        assert_eq!(config["Config"]["User"], "65532:65532");
        assert_eq!(config["Config"]["Entrypoint"][0], "/usr/local/bin/beacon");
        let uid = shell_in(&image, "id -u");
        assert_eq!(stdout(&uid).trim(), "65532", "{variant} runs as non-root");

        // The debug tools are there: a shell, an HTTP client, netcat, a DNS tool.
        let tools = shell_in(
            &image,
            "command -v wget && command -v nc && command -v nslookup",
        );
        assert!(
            tools.status.success(),
            "{variant} lacks debug tools: {}",
            stderr(&tools)
        );

        // It starts, answers /healthz and /version with the right variant, and stops cleanly on SIGTERM.
        let name = format!("e2e-{variant}-{}", std::process::id());
        let port_text = start_service(&name, &image);
        let port: u16 = port_text.rsplit(':').next().unwrap().parse().unwrap();
        let health = wait_for_http(port, "/healthz");
        let version = http_get(&format!("127.0.0.1:{port}"), "/version");
        let stop = docker(&["stop", "--time", "5", &name]);
        let exit_code = stdout(&docker(&[
            "inspect",
            "--format",
            "{{.State.ExitCode}}",
            &name,
        ]))
        .trim()
        .to_string();
        docker(&["rm", "-f", &name]);
        assert!(stop.status.success());
        assert!(
            health.is_some_and(|b| b.contains("ok")),
            "{variant}: /healthz did not answer"
        );
        let version: Value = serde_json::from_str(&version.expect("/version answers")).unwrap();
        assert_eq!(version["variant"], variant);
        assert_eq!(version["build_target"], "ci");
        assert_eq!(version["revision"], git(&["rev-parse", "HEAD"]));
        assert_eq!(exit_code, "0", "{variant} exits 0 on SIGTERM as PID 1");
    }
}

/// `ci-image` as `REGISTRY/NAME` with `args`, built with the stand-ins.
fn ci_image(name: &str, args: &[&str]) -> Command {
    let mut command = xtask();
    command
        .args(["ci-image", "--registry", &registry(), "--image-name", name])
        .args(args)
        .args(fixture().build_options());
    command
}

#[test]
fn ci_image_push_writes_only_ephemeral_ci_tags() {
    let _ = fixture();
    let _engine = engine_lock();
    let name = unique_name("ci-push");
    ok(&mut ci_image(
        &name,
        &["--push", "--variant", "distroless", "--variant", "ubi9"],
    ));
    let tags = registry_tags(&name);
    assert_eq!(tags.len(), 4, "two ci- tags per variant: {tags:?}");
    assert!(
        tags.iter()
            .all(|t| t.starts_with("ci-distroless") || t.starts_with("ci-ubi9")),
        "{tags:?}"
    );
    // Exactly one platform and no attestations (the docker driver's OCI
    // export wraps it in a one-entry index; BuildKit's own drivers push the
    // bare manifest).
    let manifest = registry_manifest(&name, "ci-ubi9");
    if let Some(entries) = manifest.get("manifests").and_then(Value::as_array) {
        assert_eq!(
            entries.len(),
            1,
            "one platform, no attestation manifests: {manifest}"
        );
        assert_eq!(entries[0]["platform"]["os"], "linux");
    }
}

struct Release {
    repository: String,
    key: PathBuf,
}

fn release(release: &Release, git_ref: &str, extra: &[&str], password: &str) -> Output {
    let fixture = fixture();
    let context = context_file(&git_ref.replace('/', "-"), git_ref, &["v1.2.3"]);
    let (registry_part, name) = release.repository.split_once('/').unwrap();
    run(xtask()
        .args([
            "release-image",
            "--registry",
            registry_part,
            "--image-name",
            name,
            "--sbom-generator",
            &fixture.sbom_generator,
        ])
        .arg(format!("--key={}", release.key.display()))
        .args(fixture.build_options())
        .args(extra)
        .env("XTASK_CONTEXT", context)
        .env("COSIGN_PASSWORD", password))
}

fn verify(image: &str, key: &Path) -> Output {
    run(xtask()
        .args(["verify", image])
        .arg(format!("--key={}", key.display())))
}

/// A release of every variant at v1.2.3, signed with a key without a
/// password: what the `release_*` tests check, and what
/// `a_second_release_*` and `a_rerun_*` release again.
struct Published {
    /// The repository under the test registry.
    name: String,
    release: Release,
    public_key: PathBuf,
    /// The release's `--json` result.
    result: Value,
}

fn published() -> &'static Published {
    static PUBLISHED: OnceLock<Result<Published, String>> = OnceLock::new();
    shared(&PUBLISHED, "the release of every variant", || {
        let name = unique_name("release");
        let (key, public_key) = cosign_keys(&root().join("target/e2e/keys"), "");
        let release_of = Release {
            repository: format!("{}/{name}", registry()),
            key,
        };
        let first = release(&release_of, "refs/tags/v1.2.3", &["--json"], "");
        assert_ok(&first);
        Published {
            name,
            release: release_of,
            public_key,
            result: serde_json::from_str(&stdout(&first)).unwrap(),
        }
    })
}

/// The JSON result lists per variant the index digest, the per-platform
/// digests, the tags and whether it was signed; the registry agrees. A
/// release writes its version's tags, bare for the default variant, and
/// never a ci- tag.
#[test]
fn release_result_and_tags_are_what_the_registry_holds() {
    let _engine = engine_lock();
    let Published { name, result, .. } = published();
    for variant in result["variants"].as_array().unwrap() {
        let name_tag = format!("1.2.3-{}", variant["variant"].as_str().unwrap());
        assert_eq!(
            variant["digest"].as_str(),
            registry_digest(name, &name_tag).as_deref()
        );
        assert_eq!(
            (&variant["pushed"], &variant["signed"], &variant["tagged"]),
            (&Value::Bool(true), &Value::Bool(true), &Value::Bool(true))
        );
        let index = registry_manifest(name, &name_tag);
        for entry in index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["platform"]["os"] == "linux")
        {
            let platform = format!(
                "linux/{}",
                entry["platform"]["architecture"].as_str().unwrap()
            );
            assert_eq!(
                variant["platform_digests"][&platform], entry["digest"],
                "{platform}"
            );
            assert!(
                variant["sizes"][&platform].as_u64().unwrap() > 100_000,
                "{platform} size"
            );
        }
        assert!(variant["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().ends_with(&format!(":{name_tag}"))));
    }
    let tags = registry_tags(name);
    assert!(
        tags.iter().all(|t| !t.starts_with("ci-")),
        "a release never writes a ci- tag: {tags:?}"
    );
    for tag in ["1.2.3", "1.2", "1", "latest"] {
        assert!(
            tags.contains(&tag.to_string()),
            "bare {tag} for the default variant: {tags:?}"
        );
        for variant in variants() {
            assert!(
                tags.contains(&format!("{tag}-{variant}")),
                "{tag}-{variant} in {tags:?}"
            );
        }
    }
}

/// Every variant's index holds both platforms, an attestation manifest for
/// each, the version, revision and base annotations; provenance (SLSA) and
/// an SBOM (SPDX) for both platforms.
#[test]
fn release_indexes_hold_both_platforms_attested_and_annotated() {
    let _engine = engine_lock();
    let Published { name, release, .. } = published();
    for variant in variants() {
        let reference = format!("{}:1.2.3-{variant}", release.repository);
        let index = registry_manifest(name, &format!("1.2.3-{variant}"));
        let manifests = index["manifests"].as_array().unwrap();
        let platforms = index_platforms(&index);
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{variant}");
        assert_eq!(
            manifests
                .iter()
                .filter(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
                .count(),
            2
        );
        assert_eq!(
            index["annotations"]["org.opencontainers.image.version"],
            "1.2.3"
        );
        assert_eq!(
            index["annotations"]["org.opencontainers.image.revision"],
            git(&["rev-parse", "HEAD"])
        );
        assert!(index["annotations"]["org.opencontainers.image.base.digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"));
        for (format, key) in [("{{json .Provenance}}", "SLSA"), ("{{json .SBOM}}", "SPDX")] {
            let out = docker(&[
                "buildx",
                "imagetools",
                "inspect",
                &reference,
                "--format",
                format,
            ]);
            let value: Value = serde_json::from_slice(&out.stdout).unwrap();
            for platform in ["linux/amd64", "linux/arm64"] {
                assert!(
                    !value[platform][key].is_null(),
                    "{variant} {platform} lacks {key}"
                );
            }
        }
    }
}

/// The arm64 image runs (under emulation) and is really arm64 (its config,
/// from the registry, says so); the images are minimal (no shell, no tools)
/// and labelled production.
#[test]
fn release_images_run_on_arm64_are_minimal_and_labelled_production() {
    let _engine = engine_lock();
    let Published { name, release, .. } = published();
    for variant in variants() {
        let reference = format!("{}:1.2.3-{variant}", release.repository);
        let arm = arm64_version(&reference);
        assert!(
            arm.status.success(),
            "{variant} arm64 does not run: {}",
            stderr(&arm)
        );
        let index = registry_manifest(name, &format!("1.2.3-{variant}"));
        let config = platform_config(name, &index, "arm64");
        assert_eq!(config["architecture"], "arm64");
        for tool in [
            "/bin/sh",
            "/bin/busybox",
            "/usr/bin/curl",
            "/bin/wget",
            "/bin/nc",
        ] {
            let out = docker(&[
                "run",
                "--rm",
                "--platform",
                "linux/amd64",
                "--entrypoint",
                tool,
                &reference,
                "--help",
            ]);
            assert!(
                !out.status.success(),
                "{variant} production image has {tool}"
            );
        }
        let labels = docker(&[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            &reference,
        ]);
        let labels: Value = serde_json::from_slice(&labels.stdout).unwrap();
        assert_eq!(labels["dev.beacon.image.flavor"], "production");
        assert!(labels.get("dev.beacon.image.not-for-production").is_none());
    }
}

/// Every variant is signed by digest (cosign itself says so) and passes the
/// deploy gate.
#[test]
fn release_images_are_signed_by_digest_and_pass_the_gate() {
    let _engine = engine_lock();
    let Published {
        name,
        release,
        public_key,
        ..
    } = published();
    for variant in variants() {
        let digest = registry_digest(name, &format!("1.2.3-{variant}")).unwrap();
        ok(Command::new("cosign")
            .args([
                "verify",
                "--insecure-ignore-tlog",
                "--allow-http-registry",
                "--key",
            ])
            .arg(public_key)
            .arg(format!("{}@{digest}", release.repository)));
        assert_ok(&verify(
            &format!("{}:1.2.3-{variant}", release.repository),
            public_key,
        ));
    }
}

/// The deploy gate refuses a CI image.
#[test]
fn verify_refuses_a_ci_image() {
    let _engine = engine_lock();
    let name = unique_name("verify-ci");
    let (_, public_key) = cosign_keys(&root().join("target/e2e/keys"), "");
    ok(&mut ci_image(&name, &["--push", "--variant", "ubi9"]));
    let ci = verify(&format!("{}/{name}:ci-ubi9", registry()), &public_key);
    assert!(!ci.status.success());
    assert!(
        stderr(&ci).contains("CI tag") && stderr(&ci).contains("flavor=ci"),
        "{}",
        stderr(&ci)
    );
}

/// The deploy gate refuses an unsigned release.
#[test]
fn verify_refuses_an_unsigned_image() {
    let _engine = engine_lock();
    let name = unique_name("verify-unsigned");
    let repository = format!("{}/{name}", registry());
    let (key, public_key) = cosign_keys(&root().join("target/e2e/keys"), "");
    let unsigned = release(
        &Release {
            repository: repository.clone(),
            key,
        },
        "refs/tags/v0.9.0",
        &["--sign", "none", "--variant", "distroless"],
        "",
    );
    assert_ok(&unsigned);
    let out = verify(&format!("{repository}:0.9.0-distroless"), &public_key);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("signature does not verify"),
        "{}",
        stderr(&out)
    );
}

/// Another release of a released version (not the one its record holds)
/// is refused before anything is built; no tag moves.
#[test]
fn a_second_release_of_a_version_is_refused_before_building() {
    let _engine = engine_lock();
    let Published {
        name, release: rel, ..
    } = published();
    let before = registry_digest(name, "1.2.3-ubi9");
    let fresh = root().join(format!(
        "target/e2e/{}-fresh-record.json",
        name.replace('/', "-")
    ));
    let _ = std::fs::remove_file(&fresh);
    let again = release(
        rel,
        "refs/tags/v1.2.3",
        &["--record", &fresh.display().to_string()],
        "",
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists") && stderr(&again).contains("--force"),
        "{}",
        stderr(&again)
    );
    assert!(
        !stderr(&again).contains("buildx bake"),
        "refused before building"
    );
    assert_eq!(registry_digest(name, "1.2.3-ubi9"), before);
}

/// A re-run of the finished release itself resumes from its record:
/// nothing is rebuilt, and every tag stays on its digest.
#[test]
fn a_rerun_of_a_finished_release_resumes_from_its_record() {
    let _engine = engine_lock();
    let Published {
        name, release: rel, ..
    } = published();
    let before = registry_digest(name, "1.2.3-ubi9");
    let rerun = release(rel, "refs/tags/v1.2.3", &[], "");
    assert_ok(&rerun);
    assert!(
        !stderr(&rerun).contains("buildx bake"),
        "{}",
        stderr(&rerun)
    );
    assert_eq!(registry_digest(name, "1.2.3-ubi9"), before);
}

/// A release of every variant at v1.2.3, signed with a key that has a
/// password: the floating tags the failures below must not move.
struct PasswordRelease {
    name: String,
    release: Release,
    public_key: PathBuf,
}

const PASSWORD: &str = "correct horse";

fn password_release() -> &'static PasswordRelease {
    static RELEASED: OnceLock<Result<PasswordRelease, String>> = OnceLock::new();
    shared(&RELEASED, "the release signed with a password", || {
        let name = unique_name("all-or-nothing");
        let (key, public_key) =
            cosign_keys(&root().join("target/e2e/keys-with-password"), PASSWORD);
        let release_of = Release {
            repository: format!("{}/{name}", registry()),
            key,
        };
        assert_ok(&release(&release_of, "refs/tags/v1.2.3", &[], PASSWORD));
        PasswordRelease {
            name,
            release: release_of,
            public_key,
        }
    })
}

/// The digests `TAG-VARIANT` names now, for every variant and tag.
fn snapshot(name: &str, tags: &[&str]) -> Vec<Option<String>> {
    let mut digests = Vec::new();
    for variant in variants() {
        for tag in tags {
            digests.push(registry_digest(name, &format!("{tag}-{variant}")));
        }
    }
    digests
}

const FLOATING: [&str; 2] = ["1", "latest"];

/// One variant's build fails: no tag of any variant moves.
#[test]
fn a_failed_variant_build_moves_no_tag() {
    let _engine = engine_lock();
    let PasswordRelease {
        name, release: rel, ..
    } = password_release();
    let before = snapshot(name, &FLOATING);
    assert!(before.iter().all(Option::is_some));
    let broken = format!(
        "--build-arg=ubi9:PRODUCTION_BASE={}/stand-ins/missing:x@sha256:{}",
        registry(),
        "0".repeat(64)
    );
    let failed = release(rel, "refs/tags/v1.3.0", &[&broken], PASSWORD);
    assert!(!failed.status.success());
    let message = stderr(&failed);
    assert!(
        message.lines().last().unwrap().contains("variant(s) ubi9") && message.contains("no tag"),
        "{message}"
    );
    assert_eq!(
        snapshot(name, &FLOATING),
        before,
        "floating tags did not move"
    );
    assert!(
        snapshot(name, &["1.3.0"]).iter().all(Option::is_none),
        "no 1.3.0 tag exists"
    );
}

/// Signing fails after the push: non-zero, the untagged digests are named,
/// no tag moved; `cargo xtask sign` signs them without rebuilding, and the
/// re-run then completes and tags.
#[test]
fn a_signing_failure_moves_no_tag_and_sign_then_a_rerun_completes() {
    let _engine = engine_lock();
    let PasswordRelease {
        name,
        release: rel,
        public_key,
    } = password_release();
    let before = snapshot(name, &FLOATING);
    let failed = release(rel, "refs/tags/v1.4.0", &["--json"], "wrong password");
    assert!(!failed.status.success());
    // The JSON result still says, per variant, how far it got.
    let result: Value = serde_json::from_str(&stdout(&failed))
        .expect("--json prints the result of a failed release");
    for variant in result["variants"].as_array().unwrap() {
        assert_eq!(
            (&variant["pushed"], &variant["signed"], &variant["tagged"]),
            (&Value::Bool(true), &Value::Bool(false), &Value::Bool(false)),
            "{variant}"
        );
    }
    let message = stderr(&failed);
    let last = message.lines().last().unwrap().to_string();
    assert!(
        last.contains("still unsigned:") && last.contains("no tag was moved"),
        "{last}"
    );
    let unsigned: Vec<&str> = last
        .rsplit("still unsigned: ")
        .next()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(unsigned.len(), variants().len(), "{last}");
    assert_eq!(snapshot(name, &FLOATING), before);
    assert!(snapshot(name, &["1.4.0"]).iter().all(Option::is_none));

    let mut sign = xtask();
    sign.arg("sign")
        .args(&unsigned)
        .arg(format!("--key={}", rel.key.display()))
        .env("COSIGN_PASSWORD", PASSWORD);
    ok(&mut sign);
    let rerun = release(rel, "refs/tags/v1.4.0", &[], PASSWORD);
    assert_ok(&rerun);
    // It did not rebuild what the failed run had pushed: no bake ran at all.
    let log = stderr(&rerun);
    assert!(
        log.contains(&format!(
            ": {} already pushed; not rebuilt",
            variants().join(", ")
        )),
        "{log}"
    );
    assert!(!log.contains("buildx bake"), "the re-run rebuilt: {log}");
    assert!(snapshot(name, &["1.4.0"]).iter().all(Option::is_some));
    assert_ne!(
        snapshot(name, &FLOATING),
        before,
        "latest and 1 moved to 1.4.0"
    );
    for variant in variants() {
        assert_ok(&verify(
            &format!("{}:1.4.0-{variant}", rel.repository),
            public_key,
        ));
    }
}

/// A TCP proxy in front of the registry that stops accepting writes once it
/// has forwarded the first image index upload (the end of the first
/// variant's push): every later connection, and every later request on an
/// open one, is cut. `heal` brings the registry back.
struct FaultyRegistry {
    port: u16,
    broken: std::sync::Arc<std::sync::atomic::AtomicBool>,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FaultyRegistry {
    fn start() -> FaultyRegistry {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let broken = Arc::new(AtomicBool::new(false));
        let armed = Arc::new(AtomicBool::new(false));
        let (b, a) = (broken.clone(), armed.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if b.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(registry()) else {
                    continue;
                };
                let (mut client_read, mut server_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut server_read, mut client_write) = (server, client);
                let (b1, a1) = (b.clone(), a.clone());
                std::thread::spawn(move || {
                    let mut window = Vec::new();
                    let mut seen_index_put = false;
                    let mut buffer = [0u8; 16384];
                    loop {
                        let n = match client_read.read(&mut buffer) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        // Once broken, other connections are cut; the one that
                        // carried the index upload may finish it.
                        if !seen_index_put && b1.load(Ordering::SeqCst) {
                            break;
                        }
                        window.extend_from_slice(&buffer[..n]);
                        let text = String::from_utf8_lossy(&window).to_ascii_lowercase();
                        if a1.load(Ordering::SeqCst)
                            && text.contains("put /v2/")
                            && text
                                .contains("content-type: application/vnd.oci.image.index.v1+json")
                        {
                            // This upload goes through; nothing after it does.
                            seen_index_put = true;
                            b1.store(true, Ordering::SeqCst);
                        }
                        if window.len() > 4096 {
                            window.drain(..window.len() - 4096);
                        }
                        if server_write.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server_read, &mut client_write);
                    let _ = client_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        FaultyRegistry {
            port,
            broken,
            armed,
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// From now on the first index upload breaks the registry.
    fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn heal(&self) {
        self.armed.store(false, std::sync::atomic::Ordering::SeqCst);
        self.broken
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_registry_failing_mid_release_moves_no_tag_and_a_rerun_completes() {
    let fixture = fixture();
    let _engine = engine_lock();
    let proxy = FaultyRegistry::start();
    let name = unique_name("faulty-registry");
    let (key, public_key) = cosign_keys(&root().join("target/e2e/keys"), "");
    let context = context_file("faulty-v2", "refs/tags/v2.0.0", &[]);
    let release = || {
        run(xtask()
            .args([
                "release-image",
                "--registry",
                &proxy.address(),
                "--image-name",
                &name,
                "--sbom-generator",
                &fixture.sbom_generator,
            ])
            .arg(format!("--key={}", key.display()))
            .args(fixture.build_options())
            .env("XTASK_CONTEXT", &context)
            .env("COSIGN_PASSWORD", ""))
    };
    proxy.arm();
    let failed = release();
    assert!(
        !failed.status.success(),
        "the release must fail when the registry stops accepting writes"
    );
    let last = stderr(&failed)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.contains("no tag of any variant was moved")
            && last.contains("already pushed untagged:"),
        "{last}"
    );
    let untagged = last
        .rsplit("already pushed untagged: ")
        .next()
        .unwrap()
        .to_string();
    assert!(
        untagged.contains(&format!("{}/{name}@sha256:", proxy.address())),
        "names the pushed digest: {last}"
    );
    assert!(
        registry_tags(&name).is_empty(),
        "no tag exists: {:?}",
        registry_tags(&name)
    );

    proxy.heal();
    let again = release();
    assert_ok(&again);
    // The variant pushed before the registry failed is not built again.
    let log = stderr(&again);
    assert!(
        log.contains(": chainguard already pushed; not rebuilt"),
        "{log}"
    );
    let bake = log
        .lines()
        .find(|l| l.contains("buildx bake"))
        .unwrap_or_default();
    assert!(
        bake.ends_with("distroless ubi9 <<'EOF'"),
        "only the rest is built: {bake}"
    );
    let tags = registry_tags(&name);
    for variant in variants() {
        assert!(tags.contains(&format!("2.0.0-{variant}")), "{tags:?}");
        assert_ok(&verify(
            &format!("{}/{name}:2.0.0-{variant}", registry()),
            &public_key,
        ));
    }
}

#[test]
fn a_pull_requests_first_build_reuses_the_default_branch_cache() {
    let _ = fixture();
    let _engine = engine_lock();
    let name = unique_name("cache-policy");
    let ci = |context: &Path| {
        run(
            ci_image(&name, &["--variant", "ubi9", "--cache", "registry"])
                .env("XTASK_CONTEXT", context),
        )
    };
    // The default branch writes its scope (mode=max) ...
    let main = ci(&context_file("cache-main", "refs/heads/main", &[]));
    assert_ok(&main);
    assert!(registry_tags(&format!("{name}-buildcache")).contains(&"ubi9-main".to_string()));
    // ... and a pull request's first build, on an empty engine cache, reads it.
    ok(Command::new("docker").args(["buildx", "prune", "--all", "--force"]));
    let pr = ci(&context_file("cache-pr", "refs/pull/77/merge", &[]));
    assert_ok(&pr);
    let log = stderr(&pr);
    assert!(
        log.contains(&format!("{name}-buildcache:ubi9-main")),
        "the PR imports main's cache"
    );
    // The final stage's COPY (step #N) was answered from the imported cache.
    let step = log
        .lines()
        .find(|l| l.contains("COPY --from=binaries "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the build log shows the final COPY step")
        .to_string();
    assert!(
        log.lines().any(|l| l.trim() == format!("{step} CACHED")),
        "the PR build's final step came from main's cache:\n{log}"
    );
    // It writes only its own scope, in min mode.
    let tags = registry_tags(&format!("{name}-buildcache"));
    assert_eq!(tags, ["ubi9-main", "ubi9-pr-77"], "{tags:?}");
}

#[test]
fn ci_image_with_stand_ins_works_offline_and_says_so() {
    let _ = fixture();
    let _engine = engine_lock();
    ok(xtask().args([
        "ci-image",
        "--stand-ins",
        "--variant",
        "distroless",
        "--registry",
        "localhost/e2e-offline",
    ]));
    let labels = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        "localhost/e2e-offline/beacon:ci-distroless",
    ]);
    let labels: Value = serde_json::from_slice(&labels.stdout).unwrap();
    assert_eq!(labels["dev.beacon.image.bases"], "stand-ins");
    assert_eq!(labels["dev.beacon.image.flavor"], "ci");
}

/// The deploy gate refuses a signed, attested production image that lacks
/// a platform.
#[test]
fn verify_refuses_a_release_missing_a_platform() {
    let _engine = engine_lock();
    let repository = format!("{}/{}", registry(), unique_name("verify-platform"));
    let (key, public_key) = cosign_keys(&root().join("target/e2e/keys"), "");
    let rel = Release {
        repository: repository.clone(),
        key,
    };
    assert_ok(&release(
        &rel,
        "refs/tags/v4.0.0",
        &["--variant", "ubi9", "--platform", "linux/amd64"],
        "",
    ));
    let out = verify(&format!("{repository}:4.0.0-ubi9"), &public_key);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(message.contains("no linux/arm64 image"), "{message}");
    assert!(
        !message.contains("signature does not verify") && !message.contains("provenance"),
        "only the platform is wrong: {message}"
    );
}

/// The deploy gate refuses a signed, production-labelled image of both
/// platforms built without provenance.
#[test]
fn verify_refuses_an_image_without_provenance() {
    let _engine = engine_lock();
    let _ = fixture();
    let name = unique_name("verify-provenance");
    let repository = format!("{}/{name}", registry());
    let (key, public_key) = cosign_keys(&root().join("target/e2e/keys"), "");
    let context = root().join("target/e2e/no-provenance");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY Dockerfile /marker\n",
    )
    .unwrap();
    let reference = format!("{repository}:no-provenance");
    ok(Command::new("docker")
        .args([
            "buildx",
            "build",
            "--quiet",
            "--platform",
            "linux/amd64,linux/arm64",
            "--provenance=false",
            "--sbom=false",
            "--label",
            "dev.beacon.image.flavor=production",
            "--output",
            &format!("type=image,name={reference},push=true,oci-mediatypes=true"),
        ])
        .arg(&context));
    let digest = registry_digest(&name, "no-provenance").unwrap();
    ok(Command::new("cosign")
        .args([
            "sign",
            "--yes",
            "--tlog-upload=false",
            "--allow-http-registry=true",
        ])
        .arg(format!("--key={}", key.display()))
        .arg(format!("{repository}@{digest}"))
        .env("COSIGN_PASSWORD", ""));
    let out = verify(&reference, &public_key);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("no provenance attestation for linux/amd64")
            && message.contains("linux/arm64"),
        "{message}"
    );
    assert!(
        !message.contains("signature does not verify"),
        "the signature is fine: {message}"
    );
}

/// Two runs in one checkout, started together (two terminals, `make -j`):
/// each has its own work files, the shared stand-ins and host binaries are
/// prepared once under a lock, and both succeed.
#[test]
fn two_runs_started_together_in_one_checkout_both_succeed() {
    let _engine = engine_lock();
    let all = variants();
    let (first, second) = (&all[0], &all[all.len() - 1]);
    let start = |variant: &str| {
        let mut command = xtask();
        command
            .args(["ci-image", "--stand-ins", &registry(), "--variant", variant])
            .args(["--registry", "localhost/e2e-concurrent"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command.spawn().unwrap()
    };
    let runs = [start(first), start(second)];
    for (run, variant) in runs.into_iter().zip([first, second]) {
        let output = run.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "the {variant} run failed:\n{}",
            stderr(&output)
        );
        let image = format!("localhost/e2e-concurrent/beacon:ci-{variant}");
        assert!(
            docker(&["image", "inspect", &image]).status.success(),
            "{image} is loaded"
        );
    }
    // Each run's files went with it.
    let runs_dir = root().join("target/xtask/runs");
    let left: Vec<String> = std::fs::read_dir(&runs_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ci-image-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "run directories left behind: {left:?}");
}

/// `ci-image --host-build`, what ci-build.yml runs: the host's cargo
/// compiles the service (the `ci` profile, static) into the cargo target
/// directory, and the image is built from that binary, not in the compile
/// stage: the image holds exactly the binary cargo wrote.
#[test]
fn ci_image_host_build_compiles_on_the_host_and_builds_from_that_binary() {
    let options: Vec<String> = fixture()
        .build_options()
        .into_iter()
        .filter(|o| !o.starts_with("--binaries="))
        .collect();
    let _engine = engine_lock();
    let name = unique_name("host-build");
    // The stand-ins' host build has the same profile and flags: its target
    // directory stands for the one rust-cache restores (only the service compiles).
    let output = run(xtask()
        .env("CARGO_TARGET_DIR", root().join("target/stand-ins/cargo"))
        .args(["ci-image", "--host-build", "--variant", "distroless"])
        .args([
            "--registry",
            "localhost/e2e-host-build",
            "--image-name",
            &name,
        ])
        .args(&options));
    assert_ok(&output);
    let log = stderr(&output);
    assert!(
        !log.contains("compile-service.sh"),
        "no compile stage ran:\n{log}"
    );
    let binary = root().join(format!(
        "target/xtask/host-binaries/linux-{}/beacon",
        native_arch()
    ));
    let on_host = run(Command::new("sha256sum").arg(&binary));
    assert_ok(&on_host);
    let image = format!("localhost/e2e-host-build/{name}:ci-distroless");
    let in_image = shell_in(&image, "sha256sum /usr/local/bin/beacon");
    assert_ok(&in_image);
    let digest = |text: String| {
        text.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        digest(stdout(&in_image)),
        digest(stdout(&on_host)),
        "the image holds the binary the host's cargo wrote"
    );
}
