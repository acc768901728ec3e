//! `cargo xtask scan`: the vulnerability scan of the deploy gate. Scans
//! every platform image of a release record by digest (or one image), with
//! trivy or any scanner that takes trivy's arguments and writes trivy's
//! JSON report, and fails on what the production policy does not accept:
//! a vulnerability of HIGH or CRITICAL severity with a released fix.
//!
//! The release workflow runs it with the real trivy (pinned) before any tag
//! moves; `release-image --scanner PROGRAM` runs it as part of the local
//! gate. The report is judged here, not by the scanner's exit code, so the
//! same policy applies whatever the scanner's own defaults.

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};

use crate::exec::{self, RecordExpectation};
use crate::model::command::Invocation;
use crate::model::names::{self, ImageRef};
use crate::model::vulnerabilities::{Finding, Policy, Report};
use crate::plan::record::ReleaseRecord;
use crate::preflight::{self, Requirement};
use crate::{context, project, verify};

/// The scanner used unless told otherwise.
pub const DEFAULT_SCANNER: &str = "trivy";

#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// One image, by digest (`None` with `record`).
    pub image: Option<String>,
    /// Scan every platform image of this release record instead.
    pub record: Option<PathBuf>,
    /// With `record`: only these variants (default: all).
    pub variants: Vec<String>,
    /// With `record`: the repository it must be a release to.
    pub registry: Option<String>,
    pub image_name: String,
    /// A trivy binary, or a program that takes its arguments and writes its JSON.
    pub scanner: String,
    pub dry_run: bool,
}

/// One image to scan: what it is, for messages, and its reference by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub reference: String,
}

pub fn run(args: ScanOptions) -> Result<()> {
    let targets = match (&args.image, &args.record) {
        (Some(image), None) => {
            let parsed: ImageRef = image.parse()?;
            if parsed.digest.is_none() {
                bail!("{image} is not a reference by digest: scan what is released, by digest (REPO@sha256:...)");
            }
            vec![Target {
                name: image.clone(),
                reference: parsed.pinned(),
            }]
        }
        (None, Some(path)) => {
            let record = ReleaseRecord::read(path)?;
            if let Some(unknown) = args.variants.iter().find(|v| !record.planned.contains(v)) {
                bail!(
                    "variant {unknown:?} is not part of the release in {}: it has {}",
                    path.display(),
                    record.planned.join(", ")
                );
            }
            if !args.dry_run {
                let context = context::gather(&project::project_root())?;
                let repository =
                    verify::expected_repository(&args.registry, &args.image_name, &context)?;
                preflight::check_all(&[Requirement::Skopeo])?;
                exec::check_record(
                    &record,
                    &path.display().to_string(),
                    &RecordExpectation {
                        repository,
                        commit: None,
                        complete: false,
                    },
                )?;
            }
            record_targets(&record, &args.variants)
        }
        _ => bail!("scan needs IMAGE@DIGEST or a release record (--record FILE): give exactly one"),
    };
    if args.dry_run {
        for target in &targets {
            println!(
                "{}",
                command(&args.scanner, &Policy::production(), &target.reference).display()
            );
        }
        return Ok(());
    }
    preflight::check_all(&[Requirement::Scanner(args.scanner.clone())])?;
    scan_all(&args.scanner, &targets, &Policy::production())
}

/// Every platform image of the record's variants (all, or `only`), by digest.
pub fn record_targets(record: &ReleaseRecord, only: &[String]) -> Vec<Target> {
    record
        .variants
        .iter()
        .filter(|v| only.is_empty() || only.contains(&v.variant))
        .flat_map(|v| {
            v.platform_digests.iter().map(|(platform, digest)| Target {
                name: format!("{} {platform}", v.variant),
                reference: format!("{}@{digest}", record.repository),
            })
        })
        .collect()
}

/// The scanner's command line for one image: trivy's JSON report of its
/// vulnerabilities at the policy's severities; the exit code is ours to set.
pub fn command(scanner: &str, policy: &Policy, reference: &str) -> Invocation {
    let mut args: Vec<String> = [
        "image",
        "--quiet",
        "--format",
        "json",
        "--scanners",
        "vuln",
        "--exit-code",
        "0",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("--severity={}", policy.severity_list()));
    if policy.fixable_only {
        args.push("--ignore-unfixed".to_string());
    }
    if names::is_loopback(reference) {
        args.push("--insecure".to_string());
    }
    args.push(reference.to_string());
    Invocation::new(scanner, args)
}

/// Scans every target and fails, in one line, naming each image and
/// finding the policy does not accept.
pub fn scan_all(scanner: &str, targets: &[Target], policy: &Policy) -> Result<()> {
    let mut failed = Vec::new();
    for target in targets {
        let findings = scan(scanner, policy, target)?;
        if findings.is_empty() {
            eprintln!(
                "scan: {} has no fixable {} vulnerability",
                target.name,
                policy.severity_list()
            );
        } else {
            let listed: Vec<String> = findings.iter().map(Finding::to_string).collect();
            failed.push(format!("{}: {}", target.name, listed.join(", ")));
        }
    }
    if !failed.is_empty() {
        bail!(
            "the vulnerability scan found fixable {} vulnerabilities, so no tag may move: {} | to finish: rebuild on fixed bases or dependencies and release again (a re-run of the scan resumes the same record if the findings were wrong); to abandon: nothing to undo, the gate keeps every tag where it was",
            policy.severity_list(),
            failed.join(" | ")
        );
    }
    Ok(())
}

fn scan(scanner: &str, policy: &Policy, target: &Target) -> Result<Vec<Finding>> {
    let invocation = command(scanner, policy, &target.reference);
    eprintln!("+ {}", invocation.display());
    let output = duct::cmd(&invocation.program, &invocation.args)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .with_context(|| format!("cannot run the scanner {scanner}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "the scanner {scanner} failed on {} ({}): no tag may move until the scan passes",
            target.name,
            stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output")
                .trim()
        );
    }
    let report = Report::parse(&output.stdout).with_context(|| {
        format!(
            "the scanner {scanner} printed no report for {}",
            target.name
        )
    })?;
    Ok(report.findings(policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_asks_for_fixable_high_and_critical_as_json() {
        let remote = command(
            "trivy",
            &Policy::production(),
            "ghcr.io/acme/beacon@sha256:ab",
        );
        assert_eq!(
            remote.display(),
            "trivy image --quiet --format json --scanners vuln --exit-code 0 --severity=HIGH,CRITICAL --ignore-unfixed ghcr.io/acme/beacon@sha256:ab"
        );
        let local = command(
            "trivy",
            &Policy::production(),
            "127.0.0.1:5000/beacon@sha256:ab",
        );
        assert!(local.args.contains(&"--insecure".to_string()));
    }
}
