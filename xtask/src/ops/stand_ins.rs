//! The stand-ins (`cargo xtask stand-ins`, `ci-image --stand-ins`, the
//! benchmark and the tests): what an offline machine (this project's CI, an
//! air-gapped laptop) needs to build the images without pulling anything:
//! - stand-in base images for every variant, both architectures, pushed to a
//!   local registry: `production` is shell-less (like the real minimal
//!   bases), `ci` is static busybox with sh, wget, nc and nslookup;
//! - an SBOM generator image following BuildKit's scanning protocol, made
//!   from a real syft binary;
//! - static service binaries for linux/amd64 and linux/arm64, built on the
//!   host for `--binaries` (so no builder image is needed): with the `ci`
//!   cargo profile (they are for CI images and tests; production images
//!   compile in their compile stage), with plain cargo like the compile
//!   stage's CI builds (cargo-auditable is for production images' SBOMs).
//!
//! It prints (and writes to `target/stand-ins/overrides.json`) the pinned
//! build args that point the Dockerfiles at the stand-ins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::client::process::{self, Invocation};
use crate::client::{docker, registry};
use crate::model::build_arg::BuildArg;
use crate::model::builder::Selection;
use crate::model::files;
use crate::model::names::Platform;
use crate::model::reference::{ImageRef, Registry, Repository};
use crate::preflight::{self, Requirement};
use crate::project;

/// Where `.ci/setup-stack` leaves the stand-ins' inputs (busybox, syft).
pub const DEFAULT_INPUTS: &str = "/var/lib/xtask-stack";

#[derive(Debug, Clone)]
pub struct StandInsRequest {
    /// Registry to push the stand-ins to (a local one: nothing here is for production).
    pub registry: Registry,
    /// Directory with busybox/{amd64,arm64}/busybox and syft/syft (as .ci/setup-stack leaves them).
    pub inputs: PathBuf,
    /// Only build the host binaries.
    pub binaries_only: bool,
    /// The builder the images are built with (`ci-image --stand-ins --builder`);
    /// `None`: the current one.
    pub builder: Option<Selection>,
}

/// What the stand-ins are, as build args and paths, for tests and users.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overrides {
    /// Per variant: `VARIANT:KEY=VALUE` build args pinning the stand-in bases by digest.
    pub build_args: BTreeMap<String, Vec<BuildArg>>,
    pub sbom_generator: Option<ImageRef>,
    /// Directory for `--binaries` (DIR/linux-amd64/beacon, DIR/linux-arm64/beacon).
    pub binaries: PathBuf,
}

pub fn overrides_file(root: &Path) -> PathBuf {
    root.join("target/stand-ins/overrides.json")
}

pub fn binaries_dir(root: &Path) -> PathBuf {
    root.join("target/image-binaries")
}

pub fn build(args: &StandInsRequest) -> Result<Overrides> {
    let root = project::project_root();
    // Several runs may prepare the stand-ins at once (two terminals, make -j):
    // one does, the others wait and then find them ready (cached builds).
    let _lock = files::lock(&root.join("target/xtask/stand-ins.lock"), "the stand-ins")?;
    let binaries = binaries_dir(&root);
    for platform in [Platform::linux("amd64"), Platform::linux("arm64")] {
        build_host_binary(
            &root,
            &HostBuild {
                platform: &platform,
                profile: "ci",
                target_dir: &root.join("target/stand-ins/cargo"),
            },
            &binaries,
        )?;
    }
    let mut overrides = Overrides {
        build_args: BTreeMap::new(),
        sbom_generator: None,
        binaries,
    };
    if args.binaries_only {
        return Ok(overrides);
    }
    let builder = args.builder.as_ref();
    preflight::check_all_on(
        &[
            Requirement::Docker,
            Requirement::Buildx,
            Requirement::Engine,
            Requirement::Skopeo,
        ],
        builder,
    )?;
    let work = root.join("target/stand-ins");
    for variant in project::discover_variants(&root)? {
        let mut build_args = Vec::new();
        for (arg, flavor) in [("PRODUCTION_BASE", "production"), ("CI_BASE", "ci")] {
            let context = work.join(format!("{variant}-{flavor}"));
            write_base_rootfs(&args.inputs, &context, &variant, flavor)?;
            let reference = stand_in(&args.registry, &variant)?.tagged(flavor)?;
            let pinned = push_image(
                builder,
                &context,
                &reference,
                &["linux/amd64", "linux/arm64"],
            )?;
            build_args.push(BuildArg {
                variant: Some(variant.clone()),
                key: arg.to_string(),
                value: pinned.to_string(),
            });
        }
        overrides.build_args.insert(variant, build_args);
    }
    let context = work.join("sbom-generator");
    write_sbom_generator(&args.inputs, &context)?;
    let native = Platform::native().to_string();
    overrides.sbom_generator = Some(push_image(
        builder,
        &context,
        &stand_in(&args.registry, "sbom-generator")?.tagged("syft")?,
        &[&native],
    )?);
    let file = overrides_file(&root);
    files::write_atomically(&file, serde_json::to_string_pretty(&overrides)?)?;
    eprintln!("stand-ins ready; build args written to {}", file.display());
    Ok(overrides)
}

/// The repository of a stand-in: `REGISTRY/stand-ins/NAME`.
fn stand_in(registry: &Registry, name: &str) -> Result<Repository> {
    format!("{registry}/stand-ins/{name}").parse()
}

/// One host build of the service.
pub struct HostBuild<'a> {
    pub platform: &'a Platform,
    /// A cargo profile of the workspace (`release`, `ci`).
    pub profile: &'a str,
    pub target_dir: &'a Path,
}

/// The cargo build of the service for one platform, on the host, as the
/// compile stage builds CI images: static, `--locked`, plain cargo (only
/// production images go through cargo-auditable, for their SBOM), with the
/// Rust toolchain's own target library or Debian's packaged one.
/// Returns the command and the path of the binary it makes.
pub fn host_build_command(build: &HostBuild<'_>) -> Result<(Invocation, PathBuf)> {
    let (triple, gcc) = match build.platform.arch.as_str() {
        "amd64" => ("x86_64-unknown-linux-gnu", "x86_64-linux-gnu-gcc"),
        "arm64" => ("aarch64-unknown-linux-gnu", "aarch64-linux-gnu-gcc"),
        other => bail!("host builds cover linux/amd64 and linux/arm64, not {other}: pass --platform linux/amd64 or linux/arm64, or build in the compile stage (omit --host-build and --binaries)"),
    };
    let host_triple = match std::env::consts::ARCH {
        "aarch64" => "aarch64-unknown-linux-gnu",
        _ => "x86_64-unknown-linux-gnu",
    };
    if std::env::consts::OS != "linux" {
        bail!("host binaries are built on Linux only; on macOS build the images with their compile stage (omit --host-build and --binaries)");
    }
    let rustc = toolchain_for(triple)?;
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_uppercase().replace('-', "_")
    );
    let (profile, target_dir) = (build.profile, build.target_dir);
    let args = [
        "build",
        "--locked",
        "--profile",
        profile,
        "--package",
        "beacon",
        "--target",
        triple,
    ];
    let mut command = Invocation::new("cargo", args.iter().map(|a| a.to_string()).collect())
        .with_env("RUSTC", rustc)
        .with_env("CARGO_TARGET_DIR", target_dir.display().to_string())
        .with_env("RUSTFLAGS", "-C target-feature=+crt-static");
    if triple != host_triple {
        if preflight::find_program(gcc).is_none() {
            bail!("{gcc} not found: install the cross linker (Debian: apt install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)");
        }
        command = command.with_env(&linker_var, gcc);
    }
    Ok((
        command,
        target_dir.join(triple).join(profile).join("beacon"),
    ))
}

/// Builds a static binary of the service on the host into
/// `out/<os>-<arch>/beacon`.
pub fn build_host_binary(root: &Path, build: &HostBuild<'_>, out: &Path) -> Result<()> {
    let (command, binary) = host_build_command(build)?;
    let command = command.in_dir(root);
    eprintln!("+ {}", command.display());
    if !process::stream(&command)?.success {
        bail!(
            "building the service for {} failed (cargo's output is above)",
            build.platform
        );
    }
    // Atomically: a build of another run may be reading this directory.
    files::copy_atomically(&binary, &out.join(build.platform.slug()).join("beacon"))?;
    Ok(())
}

/// A rustc that has the standard library for `triple`: the active toolchain
/// if it does, else Debian's (`libstd-rust-web-dev:<arch>`).
fn toolchain_for(triple: &str) -> Result<String> {
    for rustc in ["rustc", "/usr/bin/rustc"] {
        if rustc.starts_with('/') && !Path::new(rustc).exists() {
            continue;
        }
        let sysroot = process::read(&Invocation::new(
            rustc,
            vec!["--print".into(), "sysroot".into()],
        ))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
        if !sysroot.is_empty()
            && Path::new(&sysroot)
                .join("lib/rustlib")
                .join(triple)
                .join("lib")
                .is_dir()
        {
            return Ok(rustc.to_string());
        }
    }
    bail!(
        "no Rust standard library for {triple}: run `rustup target add {triple}`, or on Debian install libstd-rust-web-dev for that architecture"
    )
}

/// Writes a stand-in base image's build context: one rootfs per architecture.
fn write_base_rootfs(inputs: &Path, context: &Path, variant: &str, flavor: &str) -> Result<()> {
    let _ = std::fs::remove_dir_all(context);
    for arch in ["amd64", "arm64"] {
        let rootfs = context.join(arch);
        files::create_dir_all(&rootfs.join("etc"))?;
        files::create_dir_all(&rootfs.join("tmp"))?;
        files::write(&rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")?;
        files::write(&rootfs.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n")?;
        files::write(
            &rootfs.join("etc/os-release"),
            format!("ID=stand-in\nNAME=\"stand-in for the {variant} {flavor} base\"\nVARIANT_ID={variant}-{flavor}\n"),
        )?;
        if flavor == "ci" {
            let busybox = inputs.join("busybox").join(arch).join("busybox");
            if !busybox.is_file() {
                bail!("{} is missing: run .ci/setup-stack (it fetches static busybox for both architectures)", busybox.display());
            }
            files::create_dir_all(&rootfs.join("bin"))?;
            files::copy(&busybox, &rootfs.join("bin/busybox"))?;
            for applet in [
                "sh", "wget", "nc", "nslookup", "ls", "cat", "ps", "id", "env", "ping", "netstat",
            ] {
                #[cfg(unix)]
                std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
            }
        }
    }
    files::write(
        &context.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nCOPY ${TARGETARCH}/ /\n",
    )?;
    Ok(())
}

/// The SBOM generator: syft plus a few lines of shell implementing BuildKit's
/// SBOM scanning protocol (scan $BUILDKIT_SCAN_SOURCE, write an in-toto
/// statement with the SPDX document to $BUILDKIT_SCAN_DESTINATION).
fn write_sbom_generator(inputs: &Path, context: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(context);
    let syft = inputs.join("syft/syft");
    if !syft.is_file() {
        bail!(
            "{} is missing: run .ci/setup-stack (it fetches syft from PyPI)",
            syft.display()
        );
    }
    let busybox = inputs
        .join("busybox")
        .join(Platform::native().arch)
        .join("busybox");
    files::create_dir_all(&context.join("bin"))?;
    files::create_dir_all(&context.join("tmp"))?;
    files::copy(&syft, &context.join("bin/syft"))?;
    files::copy(&busybox, &context.join("bin/busybox"))?;
    #[cfg(unix)]
    std::os::unix::fs::symlink("busybox", context.join("bin/sh"))?;
    files::write(
        &context.join("bin/scan"),
        r#"#!/bin/sh
set -eu
export HOME=/tmp PATH=/bin
for src in $BUILDKIT_SCAN_SOURCE ${BUILDKIT_SCAN_SOURCE_EXTRAS:-}; do
  [ -d "$src" ] || continue
  name=$(busybox basename "$src")
  syft scan "dir:$src" -q -o "spdx-json=/tmp/$name.spdx"
  { busybox printf '{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","predicate":'
    busybox cat "/tmp/$name.spdx"
    busybox printf '}'; } > "$BUILDKIT_SCAN_DESTINATION/$name.spdx.json"
done
"#,
    )?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            context.join("bin/scan"),
            std::fs::Permissions::from_mode(0o755),
        )?;
    }
    files::write(
        &context.join("Dockerfile"),
        "FROM scratch\nCOPY . /\nENTRYPOINT [\"/bin/scan\"]\n",
    )?;
    Ok(())
}

/// Builds and pushes a small image; returns `REF@DIGEST`.
fn push_image(
    builder: Option<&Selection>,
    context: &Path,
    reference: &ImageRef,
    platforms: &[&str],
) -> Result<ImageRef> {
    let platforms = platforms.join(",");
    let output = format!("type=image,name={reference},push=true,oci-mediatypes=true");
    // Up to three attempts: the registry (distribution's filesystem driver)
    // rewrites a tag's link file in place, and a HEAD that reads it mid-write
    // answers 500 "invalid checksum digest format". Seen when two runs (the
    // test lanes of `cargo xtask test`) re-push the same stand-in tags.
    let mut attempt = 1;
    loop {
        let build = docker::buildx(
            builder,
            [
                "build",
                "--quiet",
                "--provenance=false",
                "--sbom=false",
                "--platform",
                &platforms,
                "--output",
                &output,
                &context.display().to_string(),
            ]
            .iter()
            .map(|a| a.to_string())
            .collect(),
        );
        let pushed = process::read(&build).map(|_| ());
        match pushed {
            Ok(()) => break,
            Err(err) if attempt == 3 => {
                return Err(err).with_context(|| {
                    format!("building the stand-in {reference} failed (3 attempts)")
                })
            }
            Err(_) => {
                eprintln!(
                    "stand-ins: pushing {reference} failed (attempt {attempt} of 3); trying again"
                );
                std::thread::sleep(std::time::Duration::from_secs(2));
                attempt += 1;
            }
        }
    }
    let digest = registry::resolve_digest(reference)?
        .with_context(|| format!("{reference} was pushed but cannot be found"))?;
    Ok(ImageRef {
        digest: Some(digest.parse()?),
        ..reference.clone()
    })
}
