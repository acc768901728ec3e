//! `--mirror PREFIX=MIRROR`: where an image is looked up instead of its
//! own registry, the pins keeping their names.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

use crate::model::names;
use crate::model::reference::Repository;

/// `PREFIX=MIRROR`: images whose repository starts with PREFIX (whole path
/// components) are looked up under MIRROR instead. A mirror must hold them
/// by their own digests (a pull-through cache, or `skopeo copy --all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub prefix: String,
    pub mirror: String,
}

impl FromStr for Mirror {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Mirror> {
        let hint =
            "expected --mirror PREFIX=MIRROR, e.g. docker.io/library=registry.example/hub-library";
        let Some((prefix, mirror)) = text.split_once('=') else {
            bail!("malformed mirror {text:?}: {hint}");
        };
        let (prefix, mirror) = (prefix.trim_end_matches('/'), mirror.trim_end_matches('/'));
        for part in [prefix, mirror] {
            if names::validate_repository(part).is_err() {
                bail!("malformed mirror {text:?}: {part:?} is not a registry or repository path; {hint}");
            }
        }
        Ok(Mirror {
            prefix: prefix.to_string(),
            mirror: mirror.to_string(),
        })
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.prefix, self.mirror)
    }
}

/// Where `repository` is looked up: under the mirror of the longest prefix
/// that matches it whole components at a time, else where it is.
pub fn lookup_repository<'a>(
    repository: &Repository,
    mirrors: &'a [Mirror],
) -> Result<(Repository, Option<&'a Mirror>)> {
    let path = repository.as_str();
    let matching = mirrors
        .iter()
        .filter(|m| {
            path == m.prefix
                || path
                    .strip_prefix(&m.prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|m| m.prefix.len());
    Ok(match matching {
        Some(m) => (
            format!("{}{}", m.mirror, &path[m.prefix.len()..]).parse()?,
            Some(m),
        ),
        None => (repository.clone(), None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_match_whole_components_and_the_longest_prefix() {
        let mirrors: Vec<Mirror> = ["docker.io=m.example/hub", "docker.io/library=m.example/lib"]
            .iter()
            .map(|m| m.parse().unwrap())
            .collect();
        let lookup = |repository: &str| {
            let repository = repository.parse().unwrap();
            lookup_repository(&repository, &mirrors)
                .unwrap()
                .0
                .to_string()
        };
        assert_eq!(lookup("docker.io/library/rust"), "m.example/lib/rust");
        assert_eq!(lookup("docker.io/acme/x"), "m.example/hub/acme/x");
        assert_eq!(lookup("docker.io.evil/x"), "docker.io.evil/x");
        assert_eq!(lookup("docker.io/libraryx/y"), "m.example/hub/libraryx/y");
        let chainguard = "cgr.dev/chainguard/static".parse().unwrap();
        assert!(lookup_repository(&chainguard, &mirrors)
            .unwrap()
            .1
            .is_none());
        for bad in [
            "nothing",
            "=m.example",
            "docker.io=",
            "docker.io/X=m",
            "a=b=c",
        ] {
            let err = bad.parse::<Mirror>().unwrap_err().to_string();
            assert!(err.contains("--mirror PREFIX=MIRROR"), "{bad}: {err}");
        }
    }
}
