//! `cargo xtask verify IMAGE`: the deploy gate. Passes only for a production
//! image: an index holding every required platform, production labels on
//! every platform, provenance attached, and a valid cosign signature on the
//! index digest (by key, or by the expected keyless identity). Anything else
//! fails with every reason found.

use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde_json::Value;
use xshell::{cmd, Shell};

use crate::names::{self, ImageRef};
use crate::plan::{Requirement, LABEL_NS};
use crate::render::is_loopback_registry;
use crate::{preflight, registry, release_image};

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The image to check (tag or digest).
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// Public key the image must be signed with (file, env://VAR or KMS URI).
    #[arg(long, env = "COSIGN_PUBLIC_KEY", value_name = "KEY")]
    pub key: Option<String>,

    /// Keyless: the signer identity (regexp), e.g. ^https://github.com/ORG/REPO/.github/workflows/build-push.yml@
    #[arg(long, value_name = "REGEXP")]
    pub certificate_identity_regexp: Option<String>,

    /// Keyless: the OIDC issuer of the signer.
    #[arg(
        long,
        value_name = "URL",
        default_value = "https://token.actions.githubusercontent.com"
    )]
    pub certificate_oidc_issuer: String,

    /// Platforms the image must provide.
    #[arg(long, value_name = "OS/ARCH,...", default_value = release_image::DEFAULT_PLATFORMS)]
    pub platform: String,

    /// Key-signed images were signed without the transparency log unless
    /// released with --tlog; pass --tlog to require a log entry.
    #[arg(long)]
    pub tlog: bool,
}

pub fn run(args: VerifyArgs) -> Result<()> {
    let image: ImageRef = args.image.parse()?;
    let platforms = names::parse_platforms(&args.platform)?;
    if args.key.is_none() && args.certificate_identity_regexp.is_none() {
        bail!("verify needs the expected signer: --key PUBLIC_KEY, or --certificate-identity-regexp REGEXP (keyless)");
    }
    let mut requirements = vec![
        Requirement::Docker,
        Requirement::Buildx,
        Requirement::Cosign,
    ];
    if let Some(key) = args.key.as_deref().filter(|k| !k.contains("://")) {
        requirements.push(Requirement::SigningKeyFile(key.to_string()));
    }
    preflight::check_all(&requirements)?;

    let mut reasons = Vec::new();
    if image.tag.as_deref().is_some_and(|t| t.starts_with("ci-")) {
        reasons.push(format!(
            "it is tagged {:?}, a CI tag (CI images are never deployed)",
            image.tag.as_deref().unwrap_or_default()
        ));
    }
    let digest = registry::resolve_digest(&image.to_string())?
        .with_context(|| format!("{image} does not exist in its registry"))?;
    if let Some(expected) = &image.digest {
        if expected != &digest {
            reasons.push(format!(
                "it resolves to {digest}, not the requested {expected}"
            ));
        }
    }
    let by_digest = format!("{}@{digest}", image.repository);
    let manifest = registry::raw_manifest(&by_digest)?;
    let listed = image_platforms(&manifest);
    if listed.is_empty() {
        reasons.push("it is a single-platform image, not a multi-platform index".to_string());
    }
    for platform in &platforms {
        if !listed.contains(&platform.to_string()) {
            reasons.push(format!(
                "it has no {platform} image (it has: {})",
                if listed.is_empty() {
                    "one unnamed platform".into()
                } else {
                    listed.join(", ")
                }
            ));
        }
    }
    reasons.extend(label_problems(&registry::inspect_format(
        &by_digest,
        "{{json .Image}}",
    )?));
    let provenance = registry::inspect_format(&by_digest, "{{json .Provenance}}")?;
    reasons.extend(provenance_problems(&provenance, &listed));
    if let Err(err) = cosign_verify(&args, &by_digest) {
        reasons.push(format!("its signature does not verify ({err})"));
    }
    if !reasons.is_empty() {
        bail!("{image} must not be deployed: {}", reasons.join("; "));
    }
    println!(
        "ok: {image} ({digest}) is a signed production image for {} with provenance",
        listed.join(", ")
    );
    Ok(())
}

/// The platforms of an index's images (attestation manifests excluded).
pub fn image_platforms(manifest: &Value) -> Vec<String> {
    image_entries(manifest)
        .into_iter()
        .map(|(platform, _)| platform)
        .collect()
}

/// (platform, digest) of an index's images, attestation manifests excluded.
pub fn image_entries(manifest: &Value) -> Vec<(String, String)> {
    let Some(entries) = manifest.get("manifests").and_then(Value::as_array) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|m| {
            m.pointer("/annotations/vnd.docker.reference.type")
                .and_then(Value::as_str)
                != Some("attestation-manifest")
        })
        .filter_map(|m| {
            let os = m.pointer("/platform/os")?.as_str()?;
            let arch = m.pointer("/platform/architecture")?.as_str()?;
            let platform = match m.pointer("/platform/variant").and_then(Value::as_str) {
                Some(variant) => format!("{os}/{arch}/{variant}"),
                None => format!("{os}/{arch}"),
            };
            Some((
                platform,
                m.get("digest")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            ))
        })
        .collect()
}

/// Which platforms lack SLSA provenance. buildx renders one platform's
/// provenance unkeyed (a single-platform image, or an index with one image)
/// and several keyed by platform.
pub fn provenance_problems(provenance: &Value, platforms: &[String]) -> Vec<String> {
    let has = |value: Option<&Value>| {
        value
            .and_then(|p| p.get("SLSA"))
            .is_some_and(|s| !s.is_null())
    };
    if platforms.len() <= 1 && provenance.get("SLSA").is_some() {
        return if has(Some(provenance)) {
            Vec::new()
        } else {
            vec!["no provenance attestation".to_string()]
        };
    }
    if platforms.is_empty() {
        return vec!["no provenance attestation".to_string()];
    }
    platforms
        .iter()
        .filter(|platform| !has(provenance.get(platform.as_str())))
        .map(|platform| format!("no provenance attestation for {platform}"))
        .collect()
}

/// Why the image configs' labels say this is not a production image.
pub fn label_problems(images: &Value) -> Vec<String> {
    // buildx prints one config for a single-platform image, a map by platform otherwise.
    let configs: Vec<(String, &Value)> = if images.get("config").is_some() {
        vec![("the image".to_string(), images)]
    } else {
        images
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v)).collect())
            .unwrap_or_default()
    };
    let mut problems = Vec::new();
    for (platform, config) in configs {
        let label = |key: &str| {
            config
                .pointer(&format!("/config/Labels/{}", key.replace('/', "~1")))
                .and_then(Value::as_str)
        };
        match label(&format!("{LABEL_NS}.flavor")) {
            Some("production") => {}
            Some(other) => problems.push(format!(
                "{platform} is labelled {LABEL_NS}.flavor={other}, not production"
            )),
            None => problems.push(format!(
                "{platform} has no {LABEL_NS}.flavor label (not built by release-image)"
            )),
        }
        if label(&format!("{LABEL_NS}.not-for-production")) == Some("true") {
            problems.push(format!(
                "{platform} is labelled {LABEL_NS}.not-for-production=true"
            ));
        }
    }
    problems
}

fn cosign_verify(args: &VerifyArgs, reference: &str) -> Result<()> {
    let sh = Shell::new()?;
    let mut flags: Vec<String> = Vec::new();
    match (&args.key, &args.certificate_identity_regexp) {
        (Some(key), _) => {
            flags.push(format!("--key={key}"));
            if !args.tlog {
                flags.push("--insecure-ignore-tlog=true".to_string());
            }
        }
        (None, Some(identity)) => {
            flags.push(format!("--certificate-identity-regexp={identity}"));
            flags.push(format!(
                "--certificate-oidc-issuer={}",
                args.certificate_oidc_issuer
            ));
        }
        (None, None) => bail!("no signer given"),
    }
    if is_loopback_registry(reference) {
        flags.push("--allow-http-registry=true".to_string());
        flags.push("--allow-insecure-registry=true".to_string());
    }
    let output = cmd!(sh, "cosign verify {flags...} {reference}")
        .quiet()
        .ignore_status()
        .output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("Error") || l.contains("no signatures"))
            .or_else(|| stderr.lines().last());
        bail!("{}", reason.unwrap_or("cosign verify failed").trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn platforms_skip_attestations() {
        let index = json!({"manifests": [
            {"platform": {"os": "linux", "architecture": "amd64"}},
            {"platform": {"os": "linux", "architecture": "arm64"}},
            {"platform": {"os": "unknown", "architecture": "unknown"}, "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
        ]});
        assert_eq!(image_platforms(&index), ["linux/amd64", "linux/arm64"]);
        assert!(image_platforms(&json!({"config": {}})).is_empty());
    }

    #[test]
    fn provenance_keyed_by_platform_or_not() {
        let two = vec!["linux/amd64".to_string(), "linux/arm64".to_string()];
        let keyed = json!({"linux/amd64": {"SLSA": {"builder": {}}}, "linux/arm64": {"SLSA": {"builder": {}}}});
        assert!(provenance_problems(&keyed, &two).is_empty());
        let half = json!({"linux/amd64": {"SLSA": {"builder": {}}}});
        assert_eq!(
            provenance_problems(&half, &two),
            ["no provenance attestation for linux/arm64"]
        );
        let one = vec!["linux/amd64".to_string()];
        assert!(provenance_problems(&json!({"SLSA": {"builder": {}}}), &one).is_empty());
        assert_eq!(
            provenance_problems(&Value::Null, &one),
            ["no provenance attestation for linux/amd64"]
        );
        assert_eq!(
            provenance_problems(&json!({"SLSA": null}), &[]),
            ["no provenance attestation"]
        );
        assert_eq!(
            provenance_problems(&Value::Null, &[]),
            ["no provenance attestation"]
        );
    }

    #[test]
    fn labels_tell_ci_from_production() {
        let ci = json!({"config": {"Labels": {"dev.beacon.image.flavor": "ci", "dev.beacon.image.not-for-production": "true"}}});
        assert_eq!(label_problems(&ci).len(), 2);
        let prod = json!({"linux/amd64": {"config": {"Labels": {"dev.beacon.image.flavor": "production"}}}});
        assert!(label_problems(&prod).is_empty());
        let foreign = json!({"linux/amd64": {"config": {"Labels": {}}}});
        assert!(label_problems(&foreign)[0].contains("no dev.beacon.image.flavor label"));
    }
}
