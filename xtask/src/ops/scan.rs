//! The vulnerability scan of the deploy gate, shared by `scan` and
//! `release-image --scanner`: every platform image by digest, with trivy or
//! any scanner that takes trivy's arguments and writes its JSON report,
//! judged here against the policy (not by the scanner's exit code).

use anyhow::{bail, Context as _, Result};

use crate::client::process;
use crate::model::command::Invocation;
use crate::model::reference::ImageRef;
use crate::model::vulnerabilities::{Finding, Policy, Report};
use crate::plan::record::ReleaseRecord;

/// One image to scan: what it is, for messages, and its reference by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub reference: ImageRef,
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
                reference: record.repository.at(digest),
            })
        })
        .collect()
}

/// The scanner's command line for one image: trivy's JSON report of its
/// vulnerabilities at the policy's severities; the exit code is ours to set.
pub fn command(scanner: &str, policy: &Policy, reference: &ImageRef) -> Invocation {
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
    if reference.repository.is_loopback() {
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
    let output = process::capture(&invocation)
        .with_context(|| format!("cannot run the scanner {scanner}"))?;
    if !output.success {
        bail!(
            "the scanner {scanner} failed on {} ({}): no tag may move until the scan passes",
            target.name,
            output.last_words()
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
        let digest = format!("sha256:{}", "a".repeat(64));
        let image = |repository: &str| format!("{repository}@{digest}").parse().unwrap();
        let remote = command(
            "trivy",
            &Policy::production(),
            &image("ghcr.io/acme/beacon"),
        );
        assert_eq!(
            remote.display(),
            format!("trivy image --quiet --format json --scanners vuln --exit-code 0 --severity=HIGH,CRITICAL --ignore-unfixed ghcr.io/acme/beacon@{digest}")
        );
        let local = command(
            "trivy",
            &Policy::production(),
            &image("127.0.0.1:5000/beacon"),
        );
        assert!(local.args.contains(&"--insecure".to_string()));
    }
}
