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

use anyhow::{bail, Result};

use crate::model::reference::{ImageName, ImageRef, Registry};
use crate::model::vulnerabilities::Policy;
use crate::ops::record::{self, RecordExpectation};
use crate::ops::scan::{command, record_targets, scan_all, Target};
use crate::plan::record::ReleaseRecord;
use crate::preflight::{self, Requirement};
use crate::{context, project};

/// The scanner used unless told otherwise.
pub const DEFAULT_SCANNER: &str = "trivy";

#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// One image, by digest (`None` with `record`).
    pub image: Option<ImageRef>,
    /// Scan every platform image of this release record instead.
    pub record: Option<PathBuf>,
    /// With `record`: only these variants (default: all).
    pub variants: Vec<String>,
    /// With `record`: the repository it must be a release to.
    pub registry: Option<Registry>,
    pub image_name: ImageName,
    /// A trivy binary, or a program that takes its arguments and writes its JSON.
    pub scanner: String,
    pub dry_run: bool,
}

pub fn run(args: ScanOptions) -> Result<()> {
    let targets = match (&args.image, &args.record) {
        (Some(image), None) => {
            if image.digest.is_none() {
                bail!("{image} is not a reference by digest: scan what is released, by digest (REPO@sha256:...)");
            }
            vec![Target {
                name: image.to_string(),
                reference: image.pinned(),
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
                let repository = record::expected_repository(
                    args.registry.as_ref(),
                    &args.image_name,
                    &context,
                )?;
                preflight::check_all(&[Requirement::Skopeo])?;
                record::check_record(
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
