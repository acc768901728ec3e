//! Release versions: strict SemVer 2.0 (<https://semver.org>), written as git
//! tags `vMAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`. The grammar is the
//! `semver` crate's; ordering is SemVer precedence, which ignores build
//! metadata (`semver::Version`'s own `Ord` does not).

use std::cmp::Ordering;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use anyhow::Result;

/// A SemVer 2.0 version; its parts (`major`, `pre`, `build`...) are
/// `semver::Version`'s.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(semver::Version);

impl Deref for Version {
    type Target = semver::Version;

    fn deref(&self) -> &semver::Version {
        &self.0
    }
}

impl Version {
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    /// `MAJOR.MINOR.PATCH[-PRERELEASE]`: the version as an image tag (a tag
    /// cannot hold `+`, and build metadata does not change precedence).
    pub fn tag(&self) -> String {
        self.without_build().to_string()
    }

    /// The same version without its build metadata.
    pub fn without_build(&self) -> Version {
        Version(semver::Version {
            build: semver::BuildMetadata::EMPTY,
            ..self.0.clone()
        })
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

/// SemVer precedence (§11): build metadata is ignored, a pre-release ranks
/// below its release, numeric identifiers compare as numbers.
impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        self.0.cmp_precedence(&other.0)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

const HINT: &str =
    "expected SemVer 2.0: MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], e.g. 1.2.3 or 1.2.3-rc.1";

impl FromStr for Version {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Version> {
        semver::Version::parse(text)
            .map(Version)
            .map_err(|e| anyhow::anyhow!("{text:?} is not a version: {e}; {HINT}"))
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
            // A pre-release number of any length compares as a number.
            "1.0.0-rc.99999999999999999999",
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
            "1.0.0-rc.99999999999999999999",
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
