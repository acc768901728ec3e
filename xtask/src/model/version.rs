//! Release versions: strict SemVer 2.0 (<https://semver.org>), written as git
//! tags `vMAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`. Parse and format sit side
//! by side; ordering is SemVer precedence (build metadata ignored).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

/// One dot-separated pre-release identifier: numeric ones compare as
/// numbers and rank below alphanumeric ones (SemVer 2.0 §11).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    Numeric(u64),
    Alphanumeric(String),
}

impl Ord for Identifier {
    fn cmp(&self, other: &Identifier) -> Ordering {
        match (self, other) {
            (Identifier::Numeric(a), Identifier::Numeric(b)) => a.cmp(b),
            (Identifier::Numeric(_), Identifier::Alphanumeric(_)) => Ordering::Less,
            (Identifier::Alphanumeric(_), Identifier::Numeric(_)) => Ordering::Greater,
            (Identifier::Alphanumeric(a), Identifier::Alphanumeric(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Identifier {
    fn partial_cmp(&self, other: &Identifier) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identifier::Numeric(n) => write!(f, "{n}"),
            Identifier::Alphanumeric(s) => f.write_str(s),
        }
    }
}

/// A SemVer 2.0 version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Empty for a stable release.
    pub prerelease: Vec<Identifier>,
    /// Build metadata: kept for display, ignored by precedence.
    pub build: Vec<String>,
}

impl Version {
    pub fn is_prerelease(&self) -> bool {
        !self.prerelease.is_empty()
    }

    /// `MAJOR.MINOR.PATCH[-PRERELEASE]`: the version as an image tag (a tag
    /// cannot hold `+`, and build metadata does not change precedence).
    pub fn tag(&self) -> String {
        let mut text = format!("{}.{}.{}", self.major, self.minor, self.patch);
        if self.is_prerelease() {
            text.push('-');
            text.push_str(&join(&self.prerelease));
        }
        text
    }

    /// The git tag of this version: `v` and the full version.
    pub fn git_tag(&self) -> String {
        format!("v{self}")
    }

    /// Parses a git tag `vX.Y.Z...`; `None` for anything that is not a
    /// strict SemVer version behind a `v`.
    pub fn from_git_tag(tag: &str) -> Option<Version> {
        tag.strip_prefix('v')?.parse().ok()
    }
}

fn join(items: &[impl fmt::Display]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.is_prerelease(), other.is_prerelease()) {
                // A pre-release ranks below its release (§11.3).
                (false, false) => Ordering::Equal,
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (true, true) => self.prerelease.cmp(&other.prerelease),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tag())?;
        if !self.build.is_empty() {
            write!(f, "+{}", self.build.join("."))?;
        }
        Ok(())
    }
}

const HINT: &str =
    "expected SemVer 2.0: MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], e.g. 1.2.3 or 1.2.3-rc.1";

fn numeric(text: &str, what: &str, whole: &str) -> Result<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        bail!("{whole:?} is not a version: its {what} {text:?} is not a number; {HINT}");
    }
    if text.len() > 1 && text.starts_with('0') {
        bail!("{whole:?} is not a version: its {what} {text:?} has a leading zero; {HINT}");
    }
    text.parse().map_err(|_| {
        anyhow::anyhow!("{whole:?} is not a version: its {what} {text:?} is too large")
    })
}

fn identifiers<'a>(text: &'a str, what: &str, whole: &str) -> Result<Vec<&'a str>> {
    let parts: Vec<&str> = text.split('.').collect();
    for part in &parts {
        if part.is_empty() {
            bail!("{whole:?} is not a version: its {what} has an empty identifier; {HINT}");
        }
        if !part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            bail!("{whole:?} is not a version: its {what} identifier {part:?} may hold only [0-9A-Za-z-]; {HINT}");
        }
    }
    Ok(parts)
}

impl FromStr for Version {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Version> {
        let (rest, build) = match text.split_once('+') {
            Some((rest, build)) => (rest, identifiers(build, "build metadata", text)?),
            None => (text, Vec::new()),
        };
        // The core holds no '-': the first one starts the pre-release.
        let (core, prerelease) = match rest.split_once('-') {
            Some((core, pre)) => (core, identifiers(pre, "pre-release", text)?),
            None => (rest, Vec::new()),
        };
        let numbers: Vec<&str> = core.split('.').collect();
        let [major, minor, patch] = numbers.as_slice() else {
            bail!("{text:?} is not a version: it needs exactly MAJOR.MINOR.PATCH; {HINT}");
        };
        let prerelease = prerelease
            .into_iter()
            .map(|part| {
                if part.bytes().all(|b| b.is_ascii_digit()) {
                    numeric(part, "pre-release identifier", text).map(Identifier::Numeric)
                } else {
                    Ok(Identifier::Alphanumeric(part.to_string()))
                }
            })
            .collect::<Result<_>>()?;
        Ok(Version {
            major: numeric(major, "major version", text)?,
            minor: numeric(minor, "minor version", text)?,
            patch: numeric(patch, "patch version", text)?,
            prerelease,
            build: build.into_iter().map(String::from).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn strict_semver_parses_and_formats() {
        for good in [
            "0.0.4",
            "1.2.3",
            "10.20.30",
            "1.1.2-prerelease+meta",
            "1.1.2+meta",
            "1.1.2+meta-valid",
            "1.0.0-alpha",
            "1.0.0-alpha.beta.1",
            "1.0.0-alpha.0valid",
            "1.0.0-rc.1+build.1",
            "2.0.0-rc.1+build.123",
            "1.2.3-beta",
            "10.2.3-DEV-SNAPSHOT",
            "1.2.3----RC-SNAPSHOT.12.9.1--.12+788",
            "1.0.0+0.build.1-rc.10000aaa-kk-0.1",
            "1.0.0-0A.is.legal",
            // The rest of semver.org's list of valid versions.
            "1.0.0-beta",
            "1.0.0-alpha.beta",
            "1.0.0-alpha.1",
            "1.0.0-alpha0.valid",
            "1.0.0-alpha-a.b-c-somethinglong+build.1-aef.1-its-okay",
            "1.2.3-SNAPSHOT-123",
            "1.0.0",
            "2.0.0",
            "1.1.7",
            "2.0.0+build.1848",
            "2.0.1-alpha.1227",
            "1.0.0-alpha+beta",
            "1.2.3----R-S.12.9.1--.12+meta",
            "1.2.3----RC-SNAPSHOT.12.9.1--.12",
            // A lone zero is a number without a leading zero.
            "1.2.3-0",
            "1.2.3-rc.0",
            "0.0.0",
        ] {
            assert_eq!(v(good).to_string(), good, "round trip of {good}");
        }
        for bad in [
            "1",
            "1.2",
            "1.2.3-0123",
            "1.2.3-0123.0123",
            "1.1.2+.123",
            "+invalid",
            "-invalid",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-a..b",
            "01.1.1",
            "1.01.1",
            "1.1.01",
            "1.2.3.DEV",
            "1.2-SNAPSHOT",
            "1.0.0-alpha_beta",
            "1.2.3-ü",
            "",
            "v1.2.3",
            // Valid SemVer, but a number this tool cannot hold: refused, not misread.
            "99999999999999999999999.999999999999999999.99999999999999999",
            // The rest of semver.org's list of invalid versions.
            "-invalid+invalid",
            "-invalid.01",
            "alpha",
            "alpha.beta",
            "alpha.beta.1",
            "alpha.1",
            "alpha+beta",
            "alpha_beta",
            "alpha.",
            "alpha..",
            "beta",
            "-alpha.",
            "1.0.0-alpha..",
            "1.0.0-alpha..1",
            "1.0.0-alpha...1",
            "1.0.0-alpha....1",
            "1.0.0-alpha.....1",
            "1.2.31.2.3----RC-SNAPSHOT.12.09.1--..12+788",
            "1.2-RC-SNAPSHOT",
            "-1.0.3-gamma+b7718",
            "+justmeta",
            "9.8.7+meta+meta",
            "9.8.7-whatever+meta+meta",
            "99999999999999999999999.999999999999999999.99999999999999999----RC-SNAPSHOT.12.09.1--------------------------------..12",
            // Leading zeros in numeric pre-release identifiers, empty build
            // metadata or identifiers, and other near misses.
            "1.2.3-01",
            "1.2.3-rc.01",
            "1.2.3-rc.1.00",
            "1.2.3+",
            "1.2.3-rc.1+",
            "1.2.3+build.",
            "1.2.3+.build",
            "1.2.3+build..1",
            "1.2.3-+build",
            " 1.2.3",
            "1.2.3 ",
            "1.2.3\n",
            "1.2.3-rc 1",
            "1.2.3-rc/1",
            "1.2.3-r\u{e9}",
            "\u{661}.2.3",
            "1.2.3rc2",
            "1.2.3.4",
            "1..3",
            "1.2.-3",
            "+1.2.3",
            "1.2.+3",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn precedence_follows_semver() {
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.9.0",
            "1.10.0",
            "2.0.0",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("1.0.0+a").cmp(&v("1.0.0+b")), Ordering::Equal);
        // Two release tags on one commit: the highest wins, whatever git lists first.
        let highest = |tags: &[&str]| {
            tags.iter()
                .filter_map(|t| Version::from_git_tag(t))
                .max()
                .map(|v| v.git_tag())
        };
        assert_eq!(highest(&["v1.9.0", "v1.10.0"]).as_deref(), Some("v1.10.0"));
        assert_eq!(
            highest(&["v2.0.0", "v2.0.0-rc.2"]).as_deref(),
            Some("v2.0.0")
        );
        assert_eq!(
            highest(&["v2.0.0-rc.10", "v2.0.0-rc.9"]).as_deref(),
            Some("v2.0.0-rc.10")
        );
        assert_eq!(
            highest(&["v1.0.0-alpha.beta", "v1.0.0-alpha.1"]).as_deref(),
            Some("v1.0.0-alpha.beta")
        );
    }

    #[test]
    fn git_tags_and_image_tags() {
        assert_eq!(
            Version::from_git_tag("v1.2.3-rc.1+b7"),
            Some(v("1.2.3-rc.1+b7"))
        );
        assert_eq!(v("1.2.3-rc.1+b7").tag(), "1.2.3-rc.1");
        assert_eq!(v("1.2.3").git_tag(), "v1.2.3");
        assert_eq!(Version::from_git_tag("1.2.3"), None);
        assert_eq!(Version::from_git_tag("v1.2"), None);
        for not_a_release in [
            "V1.2.3",
            "vv1.2.3",
            "v 1.2.3",
            "v01.2.3",
            "v1.2.3-01",
            "v1.2.3+",
            "v1.2.3rc2",
        ] {
            assert_eq!(
                Version::from_git_tag(not_a_release),
                None,
                "{not_a_release}"
            );
        }
    }
}
