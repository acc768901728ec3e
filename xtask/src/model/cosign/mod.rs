//! cosign, as data: which line of cosign runs (2.x writes signatures as
//! `sha256-<hex>.sig` tags; 3.x writes Sigstore bundles, attached as OCI
//! 1.1 referrers, or under the referrers tag schema `sha256-<hex>` where a
//! registry has no referrers API), how its version is read (`cosign version
//! --json`, or its flags when a build reports none), and the files one run
//! gives it. The client that asks cosign is `client::cosign`; the signing
//! config is [`signing_config`], what `cosign verify` printed is
//! [`verified`].

pub mod signing_config;
pub mod verified;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The payload type of a cosign 2.x (legacy, `.sig`) signature.
pub const LEGACY_SIGNATURE_TYPE: &str = "cosign container image signature";
/// The in-toto predicate type of a cosign 3.x signature (a Sigstore bundle).
pub const SIGNATURE_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// A Sigstore trusted root that trusts no service: enough to sign and check
/// with a key and no transparency log or timestamp, with nothing fetched
/// from Sigstore's TUF repository (which an offline machine cannot reach).
pub const TRUSTED_ROOT_FOR_KEYS: &str =
    "{\"mediaType\":\"application/vnd.dev.sigstore.trustedroot+json;version=0.1\"}\n";
/// Where to get cosign, for messages.
pub const INSTALL_HINT: &str = "install one (https://docs.sigstore.dev/cosign/system_config/installation/; \
     in GitHub Actions sigstore/cosign-installer with cosign-release v3.x) and put it first on PATH";

/// The line of cosign that runs: what the commands and the signature format depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CosignLine {
    /// cosign 2.5 and newer 2.x: signs `.sig` signatures; reads Sigstore
    /// bundles with `verify-attestation --new-bundle-format`.
    V2,
    /// cosign 3.x: signs Sigstore bundles through a signing config; `verify`
    /// reads both formats.
    V3,
}

impl fmt::Display for CosignLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CosignLine::V2 => "cosign 2.x (signs .sig signatures)",
            CosignLine::V3 => "cosign 3.x (signs Sigstore bundles)",
        })
    }
}

/// A release number `MAJOR.MINOR.PATCH` (a pre-release or build suffix is
/// read past: only the numbers decide what cosign can do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Version {
    /// `v3.1.1`, `3.1.1`, `v2.5.0-rc.1`, `v3.1.1+dirty`; `None` for anything
    /// else (`devel`, `unknown`, `v3.1`).
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let core = text.split(['-', '+']).next().unwrap_or_default();
        let numbers: Vec<u64> = core
            .split('.')
            .map(|n| {
                (!n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
                    .then(|| n.parse().ok())
                    .flatten()
            })
            .collect::<Option<_>>()?;
        match numbers[..] {
            [major, minor, patch] => Some(Version {
                major,
                minor,
                patch,
            }),
            _ => None,
        }
    }

    /// The line this release belongs to; `None` before 2.5.
    pub fn line(self) -> Option<CosignLine> {
        match (self.major, self.minor) {
            (0..=1, _) | (2, 0..=4) => None,
            (2, _) => Some(CosignLine::V2),
            _ => Some(CosignLine::V3),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The cosign that runs, as it was detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignRelease {
    /// What `cosign version --json` said as `gitVersion` (`v3.1.1`, `devel`).
    pub reported: String,
    /// The release number, when it reported one.
    pub version: Option<Version>,
    pub line: CosignLine,
}

impl fmt::Display for CosignRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(version) => write!(f, "cosign {version}"),
            None => write!(
                f,
                "cosign {} (a build without a version; {} by its flags)",
                self.reported,
                match self.line {
                    CosignLine::V2 => "2.5 or a newer 2.x",
                    CosignLine::V3 => "3.x",
                }
            ),
        }
    }
}

/// What `cosign version --json` reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// A release number: it decides.
    Release(String, Version),
    /// No release number (`devel`: distribution builds): the flags decide.
    Unnumbered(String),
}

/// Reads `cosign version --json`'s `gitVersion`; `Err` with what was found
/// when there is none.
pub fn read_version_json(stdout: &str) -> Result<Reported, String> {
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).map_err(|_| {
        let first = stdout.lines().map(str::trim).find(|l| !l.is_empty());
        format!(
            "`cosign version --json` printed {}",
            first.map_or("nothing".to_string(), |l| format!("{l:?}, not JSON"))
        )
    })?;
    let Some(reported) = value.get("gitVersion").and_then(|v| v.as_str()) else {
        return Err("`cosign version --json` names no gitVersion".to_string());
    };
    Ok(match Version::parse(reported) {
        Some(version) => Reported::Release(reported.to_string(), version),
        None => Reported::Unnumbered(reported.to_string()),
    })
}

/// Whether `help` (a cosign command's `--help`) lists `flag`, and its
/// default: `None` when absent, `Some("")` when it has none. Reads both
/// cosign's own layout (`    --flag=DEFAULT:`) and cobra's (`--flag ...
/// (default DEFAULT)`).
pub fn flag_default(help: &str, flag: &str) -> Option<String> {
    let name = format!("--{flag}");
    help.lines().find_map(|line| {
        let line = line.trim();
        // A flag's own line starts with it (`-k, --key` in cobra's layout);
        // examples and descriptions that mention it do not.
        let rest = line.strip_prefix(&name).or_else(|| {
            line.starts_with('-')
                .then(|| line.split_once(&format!(" {name}")).map(|(_, r)| r))
                .flatten()
        })?;
        if let Some(value) = rest.strip_prefix('=') {
            let value = value.split_whitespace().next().unwrap_or_default();
            return Some(value.trim_end_matches(':').trim_matches('\'').to_string());
        }
        if !rest.is_empty() && !rest.starts_with(' ') {
            return None; // a longer flag: --flag-more
        }
        let default = rest
            .split_once("(default ")
            .map(|(_, d)| d.trim_end_matches(')').trim_matches('"').to_string());
        Some(default.unwrap_or_default())
    })
}

/// The line of a cosign that reported no release number, from its flags:
/// `cosign sign --use-signing-config` defaults to true from 3.0 on and to
/// false in 2.6; 2.5 added `verify-attestation --trusted-root` (the gate
/// reads Sigstore bundles with it). `verify_attestation_help` is asked for
/// only when `sign_help` does not decide.
pub fn line_from_flags(sign_help: &str, verify_attestation_help: Option<&str>) -> Probe {
    match flag_default(sign_help, "use-signing-config").as_deref() {
        Some("true") => return Probe::Line(CosignLine::V3),
        Some(_) => return Probe::Line(CosignLine::V2),
        None => {}
    }
    match verify_attestation_help {
        None => Probe::AskVerifyAttestation,
        Some(help) if flag_default(help, "trusted-root").is_some() => Probe::Line(CosignLine::V2),
        Some(_) => Probe::TooOld,
    }
}

/// What a cosign's flags say of its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Line(CosignLine),
    /// `cosign sign` does not decide: ask `cosign verify-attestation --help`.
    AskVerifyAttestation,
    /// The flags of cosign 2.4 or older.
    TooOld,
}

/// The one-line refusal of a cosign this tool cannot use: which version was
/// found and what is needed.
pub fn refusal(path: &str, found: &str) -> String {
    format!(
        "cosign at {path} reports version {found}; this tool needs cosign 2.5 or newer (3.x recommended): {INSTALL_HINT}"
    )
}

/// The files one run gives cosign, in the run's own directory, and the line
/// that runs: what the commands of the run are rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignRun {
    pub line: CosignLine,
    /// The run's directory (`target/xtask/runs/<command>-<id>`).
    pub dir: PathBuf,
    /// cosign 3: a signing config the user gave (`--signing-config`), used
    /// instead of the one the run makes or the public-good one from TUF.
    pub signing_config: Option<PathBuf>,
}

impl CosignRun {
    pub fn new(line: CosignLine, dir: impl Into<PathBuf>) -> CosignRun {
        CosignRun {
            line,
            dir: dir.into(),
            signing_config: None,
        }
    }

    /// The signing config a cosign-3 key-based run without a transparency
    /// log makes (`cosign signing-config create`: no service at all).
    pub fn own_signing_config(&self) -> PathBuf {
        self.dir.join("signing-config.json")
    }

    /// [`TRUSTED_ROOT_FOR_KEYS`], written for a key-based run without a
    /// transparency log (cosign 3 signs with it, cosign 2 reads bundles with it).
    pub fn trusted_root(&self) -> PathBuf {
        self.dir.join("trusted-root.json")
    }

    /// The public half of a signing key, derived for the release's own gate.
    pub fn public_key(&self) -> PathBuf {
        self.dir.join("cosign.pub")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_their_lines() {
        let line = |text: &str| Version::parse(text).and_then(Version::line);
        assert_eq!(line("v3.1.1"), Some(CosignLine::V3));
        assert_eq!(line("3.1.3"), Some(CosignLine::V3));
        assert_eq!(line("v4.0.0"), Some(CosignLine::V3));
        assert_eq!(line("v2.5.0"), Some(CosignLine::V2));
        assert_eq!(line("v2.6.5-rc.1+dirty"), Some(CosignLine::V2));
        assert_eq!(line("v2.4.3"), None);
        assert_eq!(line("v1.13.1"), None);
        for unnumbered in ["devel", "", "v3.1", "v3.1.x", "vv3.1.1", "3..1"] {
            assert_eq!(Version::parse(unnumbered), None, "{unnumbered}");
        }
        assert_eq!(Version::parse("v2.5.0").unwrap().to_string(), "2.5.0");
    }

    #[test]
    fn version_json_as_upstream_and_debian_print_it() {
        let upstream = r#"{"gitVersion":"v3.1.1","gitCommit":"7914231b","gitTreeState":"clean","buildDate":"2026-06-01T00:00:00Z","goVersion":"go1.25.1","compiler":"gc","platform":"linux/amd64"}"#;
        assert!(matches!(
            read_version_json(upstream),
            Ok(Reported::Release(ref r, v)) if r == "v3.1.1" && v.major == 3
        ));
        let debian = "{\n  \"gitVersion\": \"devel\",\n  \"gitCommit\": \"unknown\"\n}\n";
        assert_eq!(
            read_version_json(debian),
            Ok(Reported::Unnumbered("devel".into()))
        );
        assert_eq!(
            read_version_json("").unwrap_err(),
            "`cosign version --json` printed nothing"
        );
        assert!(read_version_json("GitVersion: v2.0.0\n")
            .unwrap_err()
            .contains("\"GitVersion: v2.0.0\", not JSON"));
        assert!(read_version_json("{}")
            .unwrap_err()
            .contains("no gitVersion"));
    }

    /// Lines of the real `--help` of Debian's cosign 3.1.1 and 2.5.0, and of cobra's layout.
    #[test]
    fn flags_decide_the_line_of_an_unnumbered_build() {
        let v3 = "      --signing-config='':\n\tpath to a signing config file.\n    --use-signing-config=true:\n\twhether to use a TUF-provided signing config\n";
        let v26 =
            "    --use-signing-config=false:\n\twhether to use a TUF-provided signing config\n";
        let v25 = "    --tlog-upload=true:\n\twhether or not to upload to the tlog\n";
        let cobra =
            "      --use-signing-config          whether to use a signing config (default true)\n";
        let example = "  cosign sign --use-signing-config=false <IMAGE DIGEST>\n";
        assert_eq!(flag_default(example, "use-signing-config"), None);
        assert_eq!(
            flag_default(v3, "use-signing-config").as_deref(),
            Some("true")
        );
        assert_eq!(flag_default(v3, "signing-config").as_deref(), Some(""));
        assert_eq!(
            flag_default(cobra, "use-signing-config").as_deref(),
            Some("true")
        );
        assert_eq!(flag_default(v25, "use-signing-config"), None);
        assert_eq!(
            flag_default(v25, "tlog"),
            None,
            "a longer flag is another flag"
        );
        assert_eq!(line_from_flags(v3, None), Probe::Line(CosignLine::V3));
        assert_eq!(line_from_flags(cobra, None), Probe::Line(CosignLine::V3));
        assert_eq!(line_from_flags(v26, None), Probe::Line(CosignLine::V2));
        assert_eq!(line_from_flags(v25, None), Probe::AskVerifyAttestation);
        let verify25 = "    --trusted-root='':\n\tPath to a Sigstore TrustedRoot JSON file.\n";
        assert_eq!(
            line_from_flags(v25, Some(verify25)),
            Probe::Line(CosignLine::V2)
        );
        assert_eq!(line_from_flags(v25, Some("    --key='':\n")), Probe::TooOld);
    }

    #[test]
    fn a_refusal_says_what_was_found_and_what_is_needed() {
        let line = refusal("/usr/bin/cosign", "v2.4.1");
        assert!(line.starts_with("cosign at /usr/bin/cosign reports version v2.4.1; this tool needs cosign 2.5 or newer (3.x recommended): install"), "{line}");
        assert!(!line.contains('\n'));
        let release = CosignRelease {
            reported: "devel".into(),
            version: None,
            line: CosignLine::V3,
        };
        assert_eq!(
            release.to_string(),
            "cosign devel (a build without a version; 3.x by its flags)"
        );
    }

    #[test]
    fn a_run_keeps_its_files_in_its_own_directory() {
        let run = CosignRun::new(CosignLine::V3, "target/xtask/runs/sign-1");
        assert_eq!(
            run.own_signing_config(),
            PathBuf::from("target/xtask/runs/sign-1/signing-config.json")
        );
        assert!(run.trusted_root().starts_with(&run.dir));
        assert!(run.public_key().ends_with("cosign.pub"));
        assert!(TRUSTED_ROOT_FOR_KEYS.contains("trustedroot+json"));
    }
}
