//! `cargo xtask verify IMAGE`: the deploy gate. Passes only for a production
//! image: an index holding every required platform, production labels on
//! every platform, provenance attached, and a valid cosign signature on the
//! index digest (by key, or by the expected keyless identity). Anything else
//! fails with every reason found.

use anyhow::{bail, Result};
use serde_json::Value;
use xshell::{cmd, Shell};

use crate::model::names::{self, ImageRef};
use crate::model::oci::ImageConfig;
use crate::model::registry::{self, Attestation};
use crate::model::tags::CI_PREFIX;
use crate::plan::LABEL_NS;
use crate::preflight::{self, Requirement};

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The image to check (tag or digest).
    pub image: String,
    /// Public key the image must be signed with (file, env://VAR or KMS URI).
    pub key: Option<String>,
    /// Keyless: the signer identity (regexp).
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer of the signer.
    pub certificate_oidc_issuer: String,
    /// Platforms the image must provide, comma-separated.
    pub platform: String,
    /// Require a transparency log entry for key-based signatures.
    pub tlog: bool,
}

pub fn run(args: VerifyOptions) -> Result<()> {
    let image: ImageRef = args.image.parse()?;
    let platforms = names::parse_platforms(&args.platform)?;
    if args.key.is_none() && args.certificate_identity_regexp.is_none() {
        bail!("verify needs the expected signer: --key PUBLIC_KEY, or --certificate-identity-regexp REGEXP (keyless)");
    }
    let mut requirements = vec![
        Requirement::Docker,
        Requirement::Buildx,
        Requirement::Cosign,
        Requirement::Skopeo,
    ];
    if let Some(key) = args.key.as_deref().filter(|k| !k.contains("://")) {
        requirements.push(Requirement::SigningKeyFile(key.to_string()));
    }
    preflight::check_all(&requirements)?;

    let mut reasons = Vec::new();
    if image
        .tag
        .as_deref()
        .is_some_and(|t| t.starts_with(CI_PREFIX))
    {
        reasons.push(format!(
            "it is tagged {:?}, a CI tag (CI images are never deployed)",
            image.tag.as_deref().unwrap_or_default()
        ));
    }
    let fetched = registry::fetch_existing(&image.to_string())?;
    let digest = fetched.digest.clone();
    if let Some(expected) = &image.digest {
        if expected != &digest {
            reasons.push(format!(
                "it resolves to {digest}, not the requested {expected}"
            ));
        }
    }
    let by_digest = format!("{}@{digest}", image.repository);
    let (listed, configs) = match fetched.document.as_index() {
        Some(index) => {
            let mut configs = Vec::new();
            for entry in index.images() {
                let config =
                    registry::config(&image.repository, &entry.digest)?.unwrap_or_default();
                configs.push((entry.platform_name(), config));
            }
            (index.platforms(), configs)
        }
        None => {
            reasons.push("it is a single-platform image, not a multi-platform index".to_string());
            let config = registry::config(&image.repository, &digest)?.unwrap_or_default();
            (Vec::new(), vec![("the image".to_string(), config)])
        }
    };
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
    reasons.extend(label_problems(&configs));
    let provenance = registry::attestation(&by_digest, Attestation::Provenance)?;
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

/// Which platforms lack SLSA provenance (buildx renders one platform's
/// provenance unkeyed, several keyed by platform).
pub fn provenance_problems(provenance: &Value, platforms: &[String]) -> Vec<String> {
    let has = |value: Option<&Value>| {
        value
            .and_then(|p| p.get("SLSA"))
            .is_some_and(|s| !s.is_null())
    };
    if platforms.is_empty() {
        return if has(Some(provenance)) {
            Vec::new()
        } else {
            vec!["no provenance attestation".to_string()]
        };
    }
    platforms
        .iter()
        .filter(|platform| {
            !has(registry::for_platform(
                provenance,
                platform,
                platforms.len(),
            ))
        })
        .map(|platform| format!("no provenance attestation for {platform}"))
        .collect()
}

/// Why the image configs' labels say this is not a production image.
pub fn label_problems(configs: &[(String, ImageConfig)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (platform, config) in configs {
        match config.label(&format!("{LABEL_NS}.flavor")) {
            Some("production") => {}
            Some(other) => problems.push(format!(
                "{platform} is labelled {LABEL_NS}.flavor={other}, not production"
            )),
            None => problems.push(format!(
                "{platform} has no {LABEL_NS}.flavor label (not built by release-image)"
            )),
        }
        if config.label(&format!("{LABEL_NS}.not-for-production")) == Some("true") {
            problems.push(format!(
                "{platform} is labelled {LABEL_NS}.not-for-production=true"
            ));
        }
    }
    problems
}

fn cosign_verify(args: &VerifyOptions, reference: &str) -> Result<()> {
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
    if names::is_loopback(reference) {
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

    fn config(labels: serde_json::Value) -> ImageConfig {
        ImageConfig::parse(&serde_json::to_vec(&json!({"config": {"Labels": labels}})).unwrap())
            .unwrap()
    }

    #[test]
    fn labels_tell_ci_from_production() {
        let ci = config(
            json!({"dev.beacon.image.flavor": "ci", "dev.beacon.image.not-for-production": "true"}),
        );
        assert_eq!(label_problems(&[("the image".into(), ci)]).len(), 2);
        let prod = config(json!({"dev.beacon.image.flavor": "production"}));
        assert!(label_problems(&[("linux/amd64".into(), prod)]).is_empty());
        let foreign = config(json!({}));
        assert!(label_problems(&[("linux/amd64".into(), foreign)])[0]
            .contains("no dev.beacon.image.flavor label"));
    }
}
