//! A Sigstore signing config (`application/vnd.dev.sigstore.signingconfig.v0.2+json`):
//! the services cosign 3 signs through. `cosign signing-config create`
//! writes one; a bare `create` names no service at all (what a key-based
//! release without a transparency log signs with). A config the user gives
//! (`--signing-config`, a private Sigstore deployment) is read here and
//! refused before anything is built when it cannot sign as asked: keyless
//! needs a certificate authority (`caUrls`), `--tlog` a transparency log
//! (`rekorTlogUrls`).

use std::path::Path;

use anyhow::{bail, Result};
use serde::Deserialize;

/// The media types of the signing configs cosign 3 reads start with this.
pub const MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.signingconfig";

/// The fields of a signing config this tool checks (cosign omits empty
/// lists; unknown fields are kept by cosign and ignored here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningConfig {
    pub media_type: String,
    /// Fulcio: who issues a keyless signer its certificate.
    #[serde(default)]
    pub ca_urls: Vec<Service>,
    #[serde(default)]
    pub oidc_urls: Vec<Service>,
    #[serde(default)]
    pub rekor_tlog_urls: Vec<Service>,
    #[serde(default)]
    pub tsa_urls: Vec<Service>,
}

/// One service of a signing config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Service {
    pub url: String,
}

impl SigningConfig {
    /// Reads a signing config; `origin` names it in the error.
    pub fn parse(text: &str, origin: &Path) -> Result<SigningConfig> {
        let how = "make one with `cosign signing-config create --out FILE` (see `cosign signing-config create --help`)";
        let config: SigningConfig = serde_json::from_str(text).map_err(|err| {
            anyhow::anyhow!(
                "{} is not a Sigstore signing config ({err}): {how}",
                origin.display()
            )
        })?;
        if !config.media_type.starts_with(MEDIA_TYPE_PREFIX) {
            bail!(
                "{} is not a Sigstore signing config (mediaType {:?}, expected {MEDIA_TYPE_PREFIX}.v0.2+json): {how}",
                origin.display(),
                config.media_type
            );
        }
        Ok(config)
    }

    /// Whether it can sign as asked, in one line when not: keyless signing
    /// needs a certificate authority; `--tlog` a transparency log.
    pub fn check(&self, origin: &Path, keyless: bool, tlog: bool) -> Result<()> {
        let origin = origin.display();
        if keyless && self.ca_urls.is_empty() {
            bail!(
                "the signing config {origin} names no signer: keyless signing needs a certificate authority (caUrls, Fulcio), and it lists none; \
                 add one (`cosign signing-config create --fulcio=url=https://fulcio.example,api-version=1,start-time=2024-01-01T00:00:00Z,operator=example ...`) \
                 or sign with --key"
            );
        }
        if tlog && self.rekor_tlog_urls.is_empty() {
            bail!(
                "--tlog asks for the transparency log, and the signing config {origin} names none (rekorTlogUrls): \
                 add one (`cosign signing-config create --rekor=... --rekor-config=ANY`) or drop --tlog"
            );
        }
        Ok(())
    }

    /// The services it names, for messages (`none` when there are none).
    pub fn services(&self) -> String {
        let named: Vec<&str> = [
            ("a certificate authority", &self.ca_urls),
            ("an OIDC provider", &self.oidc_urls),
            ("a transparency log", &self.rekor_tlog_urls),
            ("a timestamp authority", &self.tsa_urls),
        ]
        .into_iter()
        .filter(|(_, urls)| !urls.is_empty())
        .map(|(what, _)| what)
        .collect();
        if named.is_empty() {
            "none".to_string()
        } else {
            named.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cosign signing-config create --out FILE` (cosign 3.1.1, no flags).
    const EMPTY: &str = r#"{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json","rekorTlogConfig":{},"tsaConfig":{}}"#;
    /// `create` with every service flag (cosign 3.1.1's `--help` example).
    const FULL: &str = r#"{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json",
 "caUrls":[{"url":"https://fulcio.sigstore.dev","majorApiVersion":1,"validFor":{"start":"2024-01-01T00:00:00Z"},"operator":"sigstore.dev"}],
 "oidcUrls":[{"url":"https://oauth2.sigstore.dev/auth","majorApiVersion":1,"validFor":{"start":"2024-01-01T00:00:00Z"},"operator":"sigstore.dev"}],
 "rekorTlogUrls":[{"url":"https://rekor.sigstore.dev","majorApiVersion":1,"validFor":{"start":"2024-01-01T00:00:00Z"},"operator":"sigstore.dev"}],
 "rekorTlogConfig":{"selector":"ANY"},
 "tsaUrls":[{"url":"https://timestamp.sigstore.dev/api/v1/timestamp","majorApiVersion":1,"validFor":{"start":"2024-01-01T00:00:00Z"},"operator":"sigstore.dev"}],
 "tsaConfig":{"selector":"EXACT","count":1}}"#;

    fn path() -> &'static Path {
        Path::new("sc.json")
    }

    #[test]
    fn an_empty_config_signs_with_a_key_only() {
        let empty = SigningConfig::parse(EMPTY, path()).unwrap();
        assert_eq!(empty.services(), "none");
        empty.check(path(), false, false).unwrap();
        let keyless = empty.check(path(), true, false).unwrap_err().to_string();
        assert!(
            keyless.starts_with("the signing config sc.json names no signer")
                && keyless.contains("caUrls")
                && keyless.contains("--key"),
            "{keyless}"
        );
        let tlog = empty.check(path(), false, true).unwrap_err().to_string();
        assert!(
            tlog.contains("rekorTlogUrls") && tlog.contains("drop --tlog"),
            "{tlog}"
        );
    }

    #[test]
    fn a_full_config_signs_every_way() {
        let full = SigningConfig::parse(FULL, path()).unwrap();
        full.check(path(), true, true).unwrap();
        assert_eq!(
            full.services(),
            "a certificate authority, an OIDC provider, a transparency log, a timestamp authority"
        );
        assert_eq!(full.ca_urls[0].url, "https://fulcio.sigstore.dev");
    }

    #[test]
    fn anything_else_is_refused_in_one_line() {
        for text in [
            "",
            "not json",
            r#"{"caUrls": []}"#,
            r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#,
        ] {
            let err = SigningConfig::parse(text, path()).unwrap_err().to_string();
            assert!(
                err.starts_with("sc.json is not a Sigstore signing config")
                    && err.contains("cosign signing-config create")
                    && !err.contains('\n'),
                "{text}: {err}"
            );
        }
    }
}
