//! Vulnerability scan reports as trivy writes them (`trivy image --format
//! json`, schema version 2), and the policies that judge them: production
//! images must have no *fixable* HIGH or CRITICAL vulnerability (one
//! without a released fix is tracked, not a release blocker); CI images no
//! fixable CRITICAL one. Only the fields the policy reads are modelled.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    const ALL: [Severity; 5] = [
        Severity::Unknown,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "UNKNOWN",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<Severity> {
        Severity::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
            .with_context(|| {
                format!(
                    "unknown severity {text:?}: expected UNKNOWN, LOW, MEDIUM, HIGH or CRITICAL"
                )
            })
    }
}

/// Parses `HIGH,CRITICAL` (trivy's `--severity` syntax).
pub fn parse_severities(text: &str) -> Result<Vec<Severity>> {
    let severities: Vec<Severity> = text.split(',').map(str::parse).collect::<Result<_>>()?;
    if severities.is_empty() {
        bail!("no severity given: e.g. HIGH,CRITICAL");
    }
    Ok(severities)
}

/// Which findings fail a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub severities: Vec<Severity>,
    /// Only vulnerabilities with a released fix count.
    pub fixable_only: bool,
}

impl Policy {
    /// Production images: no fixable HIGH or CRITICAL vulnerability.
    pub fn production() -> Policy {
        Policy {
            severities: vec![Severity::High, Severity::Critical],
            fixable_only: true,
        }
    }

    /// `HIGH,CRITICAL`, as trivy's `--severity` takes it.
    pub fn severity_list(&self) -> String {
        self.severities
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A trivy JSON report.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Report {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub artifact_name: String,
    #[serde(default)]
    pub results: Option<Vec<ScanResult>>,
}

/// One scanned target of a report (an OS package database, a binary, ...).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScanResult {
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub vulnerabilities: Option<Vec<Vulnerability>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Vulnerability {
    #[serde(rename = "VulnerabilityID")]
    pub id: String,
    #[serde(default)]
    pub pkg_name: String,
    #[serde(default)]
    pub installed_version: String,
    #[serde(default)]
    pub fixed_version: String,
    #[serde(default)]
    pub severity: String,
}

/// A vulnerability the policy does not accept, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub id: String,
    pub severity: Severity,
    pub package: String,
    pub installed: String,
    pub fixed: String,
    pub target: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) in {} {} of {}, fixed in {}",
            self.id, self.severity, self.package, self.installed, self.target, self.fixed
        )
    }
}

impl Report {
    pub fn parse(bytes: &[u8]) -> Result<Report> {
        let report: Report = serde_json::from_slice(bytes)
            .context("not a trivy JSON report (trivy image --format json)")?;
        if report.schema_version != 2 {
            bail!(
                "a trivy report of schema version {}, this xtask reads version 2",
                report.schema_version
            );
        }
        Ok(report)
    }

    /// The findings `policy` does not accept.
    pub fn findings(&self, policy: &Policy) -> Vec<Finding> {
        let mut findings = Vec::new();
        for result in self.results.iter().flatten() {
            for vulnerability in result.vulnerabilities.iter().flatten() {
                let severity = vulnerability.severity.parse().unwrap_or(Severity::Unknown);
                let fixable = !vulnerability.fixed_version.trim().is_empty();
                if policy.severities.contains(&severity) && (fixable || !policy.fixable_only) {
                    findings.push(Finding {
                        id: vulnerability.id.clone(),
                        severity,
                        package: vulnerability.pkg_name.clone(),
                        installed: vulnerability.installed_version.clone(),
                        fixed: vulnerability.fixed_version.clone(),
                        target: result.target.clone(),
                    });
                }
            }
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(vulnerabilities: serde_json::Value) -> Report {
        Report::parse(
            json!({"SchemaVersion": 2, "ArtifactName": "r/b@sha256:1", "Results": [
                {"Target": "r/b (debian 12.5)", "Class": "os-pkgs", "Vulnerabilities": vulnerabilities},
                {"Target": "usr/local/bin/beacon", "Class": "lang-pkgs"}
            ]})
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn production_fails_on_fixable_high_and_critical_only() {
        let scanned = report(json!([
            {"VulnerabilityID": "CVE-1", "PkgName": "openssl", "InstalledVersion": "3.0.1", "FixedVersion": "3.0.2", "Severity": "CRITICAL"},
            {"VulnerabilityID": "CVE-2", "PkgName": "zlib", "InstalledVersion": "1.2", "FixedVersion": "", "Severity": "HIGH", "Status": "affected"},
            {"VulnerabilityID": "CVE-3", "PkgName": "bash", "InstalledVersion": "5", "FixedVersion": "5.1", "Severity": "MEDIUM"},
            {"VulnerabilityID": "CVE-4", "PkgName": "glibc", "InstalledVersion": "2.36", "FixedVersion": "2.36-9", "Severity": "HIGH"}
        ]));
        let findings = scanned.findings(&Policy::production());
        let ids: Vec<&str> = findings.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["CVE-1", "CVE-4"]);
        assert_eq!(
            findings[0].to_string(),
            "CVE-1 (CRITICAL) in openssl 3.0.1 of r/b (debian 12.5), fixed in 3.0.2"
        );
        let everything = Policy {
            severities: parse_severities("HIGH,critical").unwrap(),
            fixable_only: false,
        };
        assert_eq!(scanned.findings(&everything).len(), 3);
        assert_eq!(Policy::production().severity_list(), "HIGH,CRITICAL");
    }

    #[test]
    fn clean_and_bad_reports() {
        assert!(report(serde_json::Value::Null)
            .findings(&Policy::production())
            .is_empty());
        let empty = Report::parse(br#"{"SchemaVersion": 2, "ArtifactName": "x"}"#).unwrap();
        assert!(empty.findings(&Policy::production()).is_empty());
        assert!(Report::parse(b"not json").is_err());
        assert!(Report::parse(br#"{"SchemaVersion": 1}"#)
            .unwrap_err()
            .to_string()
            .contains("version 1"));
        assert!(parse_severities("HIGH,SEVERE").is_err());
    }
}
