//! The names of images, parsed once where they enter (the command line, a
//! release record, a Dockerfile's pin) and carried as types from there:
//! [`Registry`] (`HOST[:PORT][/NAMESPACE]`), [`ImageName`] (the name under
//! it), [`Repository`] (`REGISTRY/NAME`), [`Digest`] and [`ImageRef`]
//! (`REPO[:TAG][@DIGEST]`). Each parse says in one line what is wrong and
//! what a valid value looks like; each `Display` writes back what was
//! parsed, and serde reads and writes the same strings.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::model::names::{
    looks_like_host, valid_path_component, validate_digest, validate_registry, validate_repository,
    validate_tag,
};

/// Serde as the string the type parses and displays (what records, plans
/// and reports have always held).
macro_rules! text_serde {
    ($type:ty) => {
        impl TryFrom<String> for $type {
            type Error = anyhow::Error;
            fn try_from(text: String) -> Result<$type> {
                text.parse()
            }
        }

        impl From<$type> for String {
            fn from(value: $type) -> String {
                value.to_string()
            }
        }
    };
}

/// A newtype over its validated text: `Display`, `Debug` and `as_str` show
/// the text as it is.
macro_rules! text_newtype {
    ($type:ident) => {
        impl $type {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }

        text_serde!($type);
    };
}

/// The registry host of a path (`127.0.0.1:5000` of `127.0.0.1:5000/beacon`),
/// or `None` when the first component is not a host (`acme/beacon`: Docker Hub).
fn host_of(path: &str) -> Option<&str> {
    let first = path.split('/').next().unwrap_or(path);
    looks_like_host(first).then_some(first)
}

/// A registry and namespace images are named under: `ghcr.io/acme`,
/// `127.0.0.1:5000`, `localhost` (a trailing `/` is dropped).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Registry(String);

text_newtype!(Registry);

impl FromStr for Registry {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Registry> {
        validate_registry(text)?;
        Ok(Registry(text.trim_end_matches('/').to_string()))
    }
}

impl Registry {
    /// `ghcr.io/<owner>`: where GitHub Actions publishes by default.
    pub fn ghcr(owner: &str) -> Result<Registry> {
        format!("ghcr.io/{}", owner.to_lowercase()).parse()
    }

    /// The host (with its port), or `None` for a bare namespace (Docker Hub).
    pub fn host(&self) -> Option<&str> {
        host_of(&self.0)
    }
}

/// The name of an image under its registry: `beacon`, `acme/beacon`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageName(String);

text_newtype!(ImageName);

impl FromStr for ImageName {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<ImageName> {
        if text.is_empty() || text.len() > 255 || !text.split('/').all(valid_path_component) {
            bail!(
                "malformed image name {text:?}: expected lowercase letters and digits separated by \
                 '.', '_', '__' or '-', in '/'-separated parts, such as beacon (the image is then \
                 REGISTRY/NAME, e.g. ghcr.io/acme/beacon)"
            );
        }
        Ok(ImageName(text.to_string()))
    }
}

/// A repository: `REGISTRY/NAME` (`ghcr.io/acme/beacon`,
/// `127.0.0.1:5000/beacon`), or a Docker Hub path without a host.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Repository(String);

text_newtype!(Repository);

impl FromStr for Repository {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Repository> {
        validate_repository(text)?;
        Ok(Repository(text.to_string()))
    }
}

impl Repository {
    /// `REGISTRY/NAME`.
    pub fn new(registry: &Registry, name: &ImageName) -> Result<Repository> {
        format!("{registry}/{name}")
            .parse()
            .map_err(|e| anyhow::anyhow!("malformed image name {:?}: {e}", name.as_str()))
    }

    /// A repository that names its registry host (`127.0.0.1:5000/beacon`),
    /// as anything that deletes from a registry needs.
    pub fn parse_hosted(text: &str) -> Result<Repository> {
        let repository: Repository = text.parse()?;
        if repository.host().is_none() {
            bail!(
                "{text:?} names no registry host: expected HOST[:PORT]/NAME such as 127.0.0.1:5000/beacon or ghcr.io/acme/beacon"
            );
        }
        Ok(repository)
    }

    /// The registry host (with its port), or `None` (Docker Hub).
    pub fn host(&self) -> Option<&str> {
        host_of(&self.0)
    }

    /// The last path component: `beacon` of `ghcr.io/acme/beacon`.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The registry (everything before the last component) and the name,
    /// as `--registry` and `--image-name` give them; `None` for a one-part
    /// repository.
    pub fn registry_and_name(&self) -> Option<(Registry, ImageName)> {
        let (registry, name) = self.0.rsplit_once('/')?;
        Some((registry.parse().ok()?, name.parse().ok()?))
    }

    /// The registry is on this machine (tests, a laptop mirror): the one
    /// case where plain HTTP is allowed. `127.0.0.1.evil.example` is not.
    pub fn is_loopback(&self) -> bool {
        let Some(host) = self.host() else {
            return false;
        };
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        };
        let name = name.to_ascii_lowercase();
        name == "localhost"
            || (name.starts_with("127.")
                && name.split('.').count() == 4
                && name.split('.').all(|octet| octet.parse::<u8>().is_ok()))
    }

    /// GitHub Container Registry, which deletes only through GitHub's packages API.
    pub fn is_ghcr(&self) -> bool {
        self.host()
            .is_some_and(|host| host.eq_ignore_ascii_case("ghcr.io"))
    }

    /// The repository with `suffix` appended to its name (`-buildcache`).
    pub fn with_suffix(&self, suffix: &str) -> Result<Repository> {
        format!("{self}{suffix}").parse()
    }

    /// `REPO:TAG`.
    pub fn tagged(&self, tag: &str) -> Result<ImageRef> {
        validate_tag(tag)?;
        Ok(ImageRef {
            repository: self.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// `REPO@DIGEST`.
    pub fn at(&self, digest: &Digest) -> ImageRef {
        ImageRef {
            repository: self.clone(),
            tag: None,
            digest: Some(digest.clone()),
        }
    }
}

/// A content digest: `sha256:` and 64 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

text_newtype!(Digest);

impl FromStr for Digest {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Digest> {
        validate_digest(text)?;
        Ok(Digest(text.to_string()))
    }
}

impl Digest {
    /// `<digest:LABEL>`: a digest known only once the build ran. Rendered
    /// commands carry it and the executor fills it in; it never parses.
    pub fn placeholder(label: &str) -> Digest {
        Digest(format!("<digest:{label}>"))
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for Digest {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

/// An image reference: `REPO[:TAG][@DIGEST]`. A tag reference (`REPO:TAG`)
/// is where a tag moves to; a reference by digest is what is signed,
/// verified and deployed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef {
    pub repository: Repository,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

text_serde!(ImageRef);

impl ImageRef {
    /// The reference by digest if known, else by tag.
    pub fn pinned(&self) -> ImageRef {
        match &self.digest {
            Some(digest) => self.repository.at(digest),
            None => self.clone(),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<ImageRef> {
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.parse::<Digest>()?)),
            None => (text, None),
        };
        // A ':' after the last '/' separates the tag; one before it is a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        let repository: Repository = repository
            .parse()
            .map_err(|e| anyhow::anyhow!("malformed image reference {text:?}: {e}"))?;
        if let Some(tag) = &tag {
            validate_tag(tag)?;
        }
        Ok(ImageRef {
            repository,
            tag,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(text: &str)
    where
        T: FromStr<Err = anyhow::Error> + fmt::Display + Serialize + for<'a> Deserialize<'a>,
    {
        let parsed: T = text.parse().unwrap();
        assert_eq!(parsed.to_string(), text);
        let json = serde_json::to_string(&parsed).unwrap();
        assert_eq!(json, format!("{text:?}"));
        let back: T = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_string(), text);
    }

    #[test]
    fn every_name_round_trips_through_text_and_serde() {
        for text in ["ghcr.io/acme", "127.0.0.1:5000", "localhost", "acme"] {
            round_trips::<Registry>(text);
        }
        for text in ["beacon", "acme/beacon", "a.b_c__d-e"] {
            round_trips::<ImageName>(text);
        }
        for text in ["ghcr.io/acme/beacon", "127.0.0.1:5000/beacon", "beacon"] {
            round_trips::<Repository>(text);
        }
        let digest = format!("sha256:{}", "a".repeat(64));
        round_trips::<Digest>(&digest);
        for text in [
            "127.0.0.1:5000/beacon:1.2.3".to_string(),
            format!("127.0.0.1:5000/beacon@{digest}"),
            format!("docker.io/docker/buildkit-syft-scanner:1.12.0@{digest}"),
            "beacon".to_string(),
        ] {
            round_trips::<ImageRef>(&text);
        }
        assert_eq!(
            "ghcr.io/acme/".parse::<Registry>().unwrap().as_str(),
            "ghcr.io/acme"
        );
    }

    #[test]
    fn bad_names_say_what_is_expected() {
        let err = |e: anyhow::Error| e.to_string();
        let registry = err("http://x".parse::<Registry>().unwrap_err());
        assert!(
            registry.starts_with("malformed registry \"http://x\"")
                && registry.contains("HOST[:PORT][/NAMESPACE]"),
            "{registry}"
        );
        assert!("ghcr.io/Acme".parse::<Registry>().is_err());
        assert!(
            "GHCR.io/acme".parse::<Registry>().is_ok(),
            "hostnames are case-insensitive"
        );
        let name = err("Bad Name".parse::<ImageName>().unwrap_err());
        assert!(
            name.starts_with("malformed image name \"Bad Name\"") && name.contains("lowercase"),
            "{name}"
        );
        for bad in ["", "a//b", "-a", "a:b"] {
            assert!(bad.parse::<ImageName>().is_err(), "{bad}");
        }
        assert!("ghcr.io/Acme/beacon".parse::<Repository>().is_err());
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!("beacon@sha256:xyz".parse::<ImageRef>().is_err());
        assert!("beacon:bad tag".parse::<ImageRef>().is_err());
        let hostless = err(Repository::parse_hosted("beacon").unwrap_err());
        assert!(
            hostless.contains("names no registry host")
                && hostless.contains("127.0.0.1:5000/beacon"),
            "{hostless}"
        );
    }

    #[test]
    fn repositories_know_their_parts() {
        let registry: Registry = "127.0.0.1:5000".parse().unwrap();
        let name: ImageName = "beacon".parse().unwrap();
        let repository = Repository::new(&registry, &name).unwrap();
        assert_eq!(repository.as_str(), "127.0.0.1:5000/beacon");
        assert_eq!(repository.host(), Some("127.0.0.1:5000"));
        assert_eq!(repository.name(), "beacon");
        assert_eq!(
            repository.registry_and_name(),
            Some((registry.clone(), name.clone()))
        );
        let hub: Repository = "acme/beacon".parse().unwrap();
        assert_eq!(hub.host(), None);
        assert_eq!(Registry::ghcr("Acme").unwrap().as_str(), "ghcr.io/acme");
        assert_eq!(
            repository.with_suffix("-buildcache").unwrap().as_str(),
            "127.0.0.1:5000/beacon-buildcache"
        );
        let long = ImageName(format!("x{}", "y".repeat(250)));
        assert!(Repository::new(&registry, &long)
            .unwrap_err()
            .to_string()
            .starts_with("malformed image name"));
    }

    #[test]
    fn loopback_and_ghcr() {
        let is = |text: &str| text.parse::<Repository>().unwrap();
        for yes in [
            "127.0.0.1:5000/beacon",
            "localhost/beacon",
            "localhost:5000/a",
            "127.1.2.3/x",
        ] {
            assert!(is(yes).is_loopback(), "{yes}");
        }
        for no in [
            "ghcr.io/acme/beacon",
            "127.0.0.1.evil.example/beacon",
            "beacon",
            "acme/localhost",
        ] {
            assert!(!is(no).is_loopback(), "{no}");
        }
        assert!(is("ghcr.io/acme/beacon").is_ghcr() && is("GHCR.io/acme/beacon").is_ghcr());
        assert!(!is("ghcr.io.example/acme/beacon").is_ghcr());
    }

    #[test]
    fn image_refs() {
        let r: ImageRef = "127.0.0.1:5000/beacon:1.2.3".parse().unwrap();
        assert_eq!(r.repository.as_str(), "127.0.0.1:5000/beacon");
        assert_eq!(r.tag.as_deref(), Some("1.2.3"));
        let d: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let r: ImageRef = format!("127.0.0.1:5000/beacon:1@{d}").parse().unwrap();
        assert_eq!(r.pinned().to_string(), format!("127.0.0.1:5000/beacon@{d}"));
        assert_eq!(r.repository.at(&d), r.pinned());
        let r: ImageRef = "127.0.0.1:5000/beacon".parse().unwrap();
        assert_eq!((r.tag, r.digest), (None, None));
        assert_eq!(
            Digest::placeholder("ubi9").to_string(),
            "<digest:ubi9>",
            "a placeholder is text for commands"
        );
        assert!(
            "<digest:ubi9>".parse::<Digest>().is_err(),
            "and never parses"
        );
    }
}
