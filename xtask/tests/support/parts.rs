//! Helpers of the end-to-end tests of releases that scale out
//! (e2e_scale_out.rs, e2e_scale_out_compile.rs): a release built by two
//! runners, the main engine and the second engine `runner2` (`--builder
//! runner2`), each one platform as two processes side by side, then merged
//! with `merge-release`; and what the registry holds afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use serde_json::Value;

use super::builders::{buildx_new_config, require_newer_buildx, require_runner2, RUNNER2};
use super::e2e::{
    context_file, cosign_keys, registry, registry_manifest, root, run, stderr, unique_name, xtask,
    Fixture,
};

/// Which buildx a command runs: the stack's (0.13.1) or the newer one (0.29.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buildx {
    Stack,
    Newer,
}

/// A release to a repository of its own, at `git_ref`.
pub struct Release {
    pub registry: String,
    pub name: String,
    pub context: PathBuf,
    pub key: PathBuf,
    pub public_key: PathBuf,
    /// `--variant` of every command (empty: every variant).
    pub variants: Vec<String>,
}

impl Release {
    pub fn new(label: &str, git_ref: &str, variants: &[&str]) -> Release {
        let name = unique_name(label);
        let (key, public_key) = cosign_keys(&root().join("target/e2e/keys"), "");
        Release {
            registry: registry(),
            context: context_file(&format!("scale-out-{label}"), git_ref, &[]),
            name,
            key,
            public_key,
            variants: variants.iter().map(|v| v.to_string()).collect(),
        }
    }

    pub fn repository(&self) -> String {
        format!("{}/{}", self.registry, self.name)
    }

    /// `cargo xtask ARGS` in this release's situation (context, registry,
    /// name, variants), with the stack's or the newer buildx.
    pub fn xtask(&self, args: &[&str], buildx: Buildx) -> Command {
        let mut command = xtask();
        if buildx == Buildx::Newer {
            require_newer_buildx();
            command.env("DOCKER_CONFIG", buildx_new_config());
        }
        command
            .args(args)
            .args(["--registry", &self.registry, "--image-name", &self.name])
            .env("XTASK_CONTEXT", &self.context)
            .env("COSIGN_PASSWORD", "");
        for variant in &self.variants {
            command.args(["--variant", variant]);
        }
        command
    }

    /// One runner's part: `platform` of every variant, on the main engine
    /// or on runner2, its part record written to `record`.
    pub fn part(
        &self,
        fixture: &Fixture,
        platform: &str,
        on_runner2: bool,
        record: &Path,
        buildx: Buildx,
    ) -> Command {
        let options = fixture.build_options();
        self.part_with(fixture, &options, (platform, on_runner2), record, buildx)
    }

    /// [`Release::part`] with these build options instead of the fixture's.
    pub fn part_with(
        &self,
        fixture: &Fixture,
        options: &[String],
        (platform, on_runner2): (&str, bool),
        record: &Path,
        buildx: Buildx,
    ) -> Command {
        let mut command = self.xtask(&["release-image"], buildx);
        if on_runner2 {
            require_runner2();
            command.args(["--builder", RUNNER2]);
        }
        command
            .args(["--build-only", "--platform", platform, "--part", "--record"])
            .arg(record)
            .args(["--sbom-generator", &fixture.sbom_generator])
            .args(options);
        command
    }

    /// `merge-release` of `parts` into `record`, with the flags the parts were built with.
    pub fn merge(
        &self,
        fixture: &Fixture,
        parts: &[&Path],
        record: &Path,
        buildx: Buildx,
    ) -> Command {
        let mut command = self.xtask(&["merge-release"], buildx);
        command
            .arg("--record")
            .arg(record)
            .args(fixture.build_options());
        for part in parts {
            command.arg("--part").arg(part);
        }
        command
    }

    pub fn key(&self) -> String {
        format!("--key={}", self.key.display())
    }

    pub fn public_key(&self) -> String {
        format!("--key={}", self.public_key.display())
    }
}

/// Runs commands side by side (two runners), each to completion; returns
/// their outputs in order and the wall time of them all.
pub fn side_by_side(commands: Vec<Command>) -> (Vec<Output>, f64) {
    let started = Instant::now();
    let outputs = std::thread::scope(|scope| {
        let handles: Vec<_> = commands
            .into_iter()
            .map(|mut command| scope.spawn(move || run(&mut command)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a runner's thread"))
            .collect::<Vec<Output>>()
    });
    (outputs, started.elapsed().as_secs_f64())
}

/// Asserts that a run succeeded, showing its stderr otherwise.
#[track_caller]
pub fn succeeded(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}",
        stderr(output)
    );
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// An index's entries: (platform images by `os/arch`, attestation manifests
/// by the digest of the image they describe).
pub fn index_entries(index: &Value) -> (Vec<(String, String)>, Vec<String>) {
    let mut images = Vec::new();
    let mut attested = Vec::new();
    for entry in index["manifests"].as_array().unwrap() {
        if entry["annotations"]["vnd.docker.reference.type"] == "attestation-manifest" {
            attested.push(
                entry["annotations"]["vnd.docker.reference.digest"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        } else {
            let platform = format!(
                "{}/{}",
                entry["platform"]["os"].as_str().unwrap(),
                entry["platform"]["architecture"].as_str().unwrap()
            );
            images.push((platform, entry["digest"].as_str().unwrap().to_string()));
        }
    }
    (images, attested)
}

/// Checks one variant's merged index in the registry against its release
/// record entry: both platforms, in platform order, each with its
/// attestation manifest, and the annotations of the parts' indexes (the
/// release's).
#[track_caller]
pub fn assert_merged_index(name: &str, entry: &Value, part_indexes: &[String]) {
    let digest = entry["digest"].as_str().unwrap();
    let index = registry_manifest(name, digest);
    let (images, attested) = index_entries(&index);
    let platforms: Vec<&str> = images.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{index}");
    for (platform, image) in &images {
        assert_eq!(
            entry["platform_digests"][platform],
            image.as_str(),
            "{platform}"
        );
        assert!(
            attested.contains(image),
            "{platform}: an attestation manifest: {index}"
        );
    }
    assert_eq!(attested.len(), 2, "{index}");
    for part in part_indexes {
        assert_ne!(part, digest, "the merged index is a new one");
        let part_index = registry_manifest(name, part);
        assert_eq!(
            index["annotations"], part_index["annotations"],
            "the merged index has the release's annotations"
        );
    }
    assert!(
        index["annotations"]["org.opencontainers.image.revision"].is_string(),
        "{index}"
    );
}
