//! Parsing and validation of the names users type and registries hold:
//! platforms, the grammars of repositories, registry hosts, tags and
//! digests (the types built on them are `model::reference`'s), slugs. Each
//! error says what is wrong and what a valid value looks like; each format
//! sits beside its parse.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

const KNOWN_ARCHES: &[&str] = &[
    "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64",
];

/// A platform such as `linux/amd64` or `linux/arm/v7`. One type for what a
/// user asks for (`FromStr`: the Linux platforms the images are built for)
/// and what an OCI index says (`model::oci`: any `os`/`architecture`, read
/// as the spec's object). Plans, records and reports hold it as its text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn linux(arch: &str) -> Platform {
        Platform {
            os: "linux".into(),
            arch: arch.into(),
            variant: None,
        }
    }

    /// The native Linux platform of this machine: an Apple Silicon Mac builds
    /// linux/arm64 images natively, an x86-64 machine linux/amd64.
    pub fn native() -> Platform {
        match std::env::consts::ARCH {
            "aarch64" => Platform::linux("arm64"),
            "arm" => Platform {
                os: "linux".into(),
                arch: "arm".into(),
                variant: Some("v7".into()),
            },
            "x86" => Platform::linux("386"),
            "powerpc64" => Platform::linux("ppc64le"),
            "s390x" => Platform::linux("s390x"),
            "riscv64" => Platform::linux("riscv64"),
            _ => Platform::linux("amd64"),
        }
    }

    /// `linux-amd64`: the directory name of a platform's binary in a binaries context.
    pub fn slug(&self) -> String {
        self.to_string().replace('/', "-")
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Platform> {
        let hint = "expected OS/ARCH[/VARIANT] such as linux/amd64 or linux/arm64";
        let parts: Vec<&str> = text.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            bail!("malformed platform {text:?}: {hint}");
        }
        if parts[0] != "linux" {
            bail!("unsupported platform {text:?}: the images are Linux images; {hint}");
        }
        if !KNOWN_ARCHES.contains(&parts[1]) {
            bail!(
                "unknown architecture in platform {text:?}: expected one of {}",
                KNOWN_ARCHES.join(", ")
            );
        }
        Ok(Platform {
            os: parts[0].to_string(),
            arch: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl TryFrom<String> for Platform {
    type Error = anyhow::Error;
    fn try_from(text: String) -> Result<Platform> {
        text.parse()
    }
}

impl From<Platform> for String {
    fn from(platform: Platform) -> String {
        platform.to_string()
    }
}

/// A comma-separated list of platforms (`linux/amd64,linux/arm64`), each
/// once, in the order given: `--platform` of the commands that build or
/// check several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platforms(Vec<Platform>);

impl Platforms {
    pub fn into_vec(self) -> Vec<Platform> {
        self.0
    }
}

impl FromStr for Platforms {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Platforms> {
        let mut platforms: Vec<Platform> = Vec::new();
        for item in text.split(',').map(str::trim) {
            let platform: Platform = item.parse()?;
            if !platforms.contains(&platform) {
                platforms.push(platform);
            }
        }
        Ok(Platforms(platforms))
    }
}

impl fmt::Display for Platforms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&texts.join(","))
    }
}

/// The longest tag the distribution spec allows.
pub const TAG_MAX: usize = 128;

/// Checks a tag against the distribution spec: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<()> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok || tag.len() > TAG_MAX {
        bail!(
            "malformed tag {tag:?}: a tag is 1-128 characters of letters, digits, '_', '.' and '-', \
             and does not start with '.' or '-'"
        );
    }
    Ok(())
}

/// Checks one path component of a repository name: lowercase alphanumerics
/// separated by `.`, `_`, `__` or runs of `-`.
pub(crate) fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() || !is_lower_alnum(bytes[0]) || !is_lower_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if is_lower_alnum(c) {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__' or one or more '-', then an alphanumeric.
        let start = i;
        while i < bytes.len() && !is_lower_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

pub(crate) fn looks_like_host(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    name_ok && port_ok
}

/// Checks a repository such as `ghcr.io/acme/beacon` or `127.0.0.1:5000/beacon`.
pub fn validate_repository(repo: &str) -> Result<()> {
    let hint = "expected [HOST[:PORT]/]PATH in lowercase, such as ghcr.io/acme/beacon or 127.0.0.1:5000/beacon";
    let components: Vec<&str> = repo.split('/').collect();
    let (host, path) = match components.split_first() {
        Some((first, rest)) if components.len() > 1 && looks_like_host(first) => {
            (Some(*first), rest)
        }
        _ => (None, components.as_slice()),
    };
    if let Some(host) = host {
        if !valid_host(host) {
            bail!("malformed registry host {host:?} in {repo:?}: {hint}");
        }
    }
    if path.is_empty() || !path.iter().all(|c| valid_path_component(c)) {
        bail!("malformed repository {repo:?}: {hint}");
    }
    if repo.len() > 255 {
        bail!("repository {repo:?} is longer than 255 characters");
    }
    Ok(())
}

/// A registry prefix such as `ghcr.io/acme` or `127.0.0.1:5000`: the part of
/// a repository in front of the image name.
pub fn validate_registry(registry: &str) -> Result<()> {
    validate_repository(&format!("{}/x", registry.trim_end_matches('/')))
        .map_err(|_| anyhow::anyhow!("malformed registry {registry:?}: expected HOST[:PORT][/NAMESPACE] in lowercase, such as ghcr.io/acme or 127.0.0.1:5000"))
}

/// The longest slug a tag or cache scope carries.
pub const SLUG_MAX: usize = 63;

/// A ref name (a branch, a tag that is not a release) as a tag-safe slug, the
/// way docker/metadata-action sanitises refs: lowercase, every run of
/// characters other than `[a-z0-9.]` one `-`, no leading or trailing `-` or
/// `.`, at most [`SLUG_MAX`] characters. Empty when nothing usable is left
/// (a branch named `_`); callers refuse that with their own reason.
pub fn slug(text: &str) -> String {
    let mut slug = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let trimmed: String = slug
        .trim_matches(['-', '.'])
        .chars()
        .take(SLUG_MAX)
        .collect();
    trimmed.trim_end_matches(['-', '.']).to_string()
}

/// Whether `text` is already a slug (what [`slug`] returns for it).
pub fn is_slug(text: &str) -> bool {
    !text.is_empty() && slug(text) == text
}

pub fn validate_digest(digest: &str) -> Result<()> {
    let ok = digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    });
    if !ok {
        bail!("malformed digest {digest:?}: expected sha256: followed by 64 lowercase hex digits");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_reject() {
        assert_eq!(
            "linux/arm64".parse::<Platform>().unwrap(),
            Platform::linux("arm64")
        );
        assert_eq!(
            "linux/arm/v7".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v7"
        );
        for bad in [
            "linux",
            "linux/",
            "amd64",
            "windows/amd64",
            "linux/amd65",
            "linux/arm/v7/x",
            "",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad} should be rejected");
        }
        let platforms: Platforms = "linux/amd64, linux/arm64,linux/amd64".parse().unwrap();
        assert_eq!(platforms.to_string(), "linux/amd64,linux/arm64");
        assert_eq!(platforms.into_vec().len(), 2);
        assert_eq!(Platform::linux("amd64").slug(), "linux-amd64");
    }

    #[test]
    fn tags() {
        for good in ["ci-chainguard", "1.2.3", "sha-abc1234", "_x", "A"] {
            validate_tag(good).unwrap();
        }
        for bad in ["", "-x", ".x", "a/b", "a:b", "a b", &"x".repeat(129)] {
            assert!(validate_tag(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn repositories() {
        for good in [
            "beacon",
            "ghcr.io/acme/beacon",
            "127.0.0.1:5000/beacon",
            "localhost/beacon",
            "a/b-c/d__e.f",
        ] {
            validate_repository(good).unwrap();
        }
        for bad in [
            "Beacon",
            "ghcr.io/Acme/beacon",
            "ghcr.io//beacon",
            "127.0.0.1:port/beacon",
            "a/b_",
            "a/-b",
            "",
            "a/b:c",
        ] {
            assert!(
                validate_repository(bad).is_err(),
                "{bad} should be rejected"
            );
        }
        validate_registry("ghcr.io/acme").unwrap();
        validate_registry("127.0.0.1:5000").unwrap();
        assert!(validate_registry("http://ghcr.io").is_err());
        assert!(
            validate_registry("GHCR.io/acme").is_ok(),
            "hostnames are case-insensitive"
        );
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("feature/X_y"), "feature-x-y");
        assert_eq!(slug("release/1.2"), "release-1.2");
        assert_eq!(slug("--a..b--"), "a..b");
        assert_eq!(slug("_"), "");
        assert_eq!(slug(&"a".repeat(100)).len(), SLUG_MAX);
        assert_eq!(slug(&format!("{}-b", "a".repeat(62))), "a".repeat(62));
        assert!(is_slug("feature-x") && !is_slug("Feature") && !is_slug(""));
    }
}
