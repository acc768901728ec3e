//! `cargo xtask sign`: signs pushed images with cosign, by digest only:
//! every variant of a release record (`--record FILE`, the release
//! workflow's signing job, which builds nothing), or digests named on the
//! command line (completing a release whose signing step failed).
//!
//! A record is checked first: a release to this repository, of this
//! checkout's commit, complete, and matching the registry; each image's
//! annotations must name that commit. The job that holds the OIDC token
//! signs only this commit's production images, whatever the record says.
//!
//! cosign 3 signs Sigstore bundles, cosign 2 (2.5 or newer) `.sig`
//! signatures (`ops::sign` prepares the run: the cosign, its signing config).

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::model::files::RunDir;
use crate::model::reference::{ImageName, ImageRef, Registry};
use crate::ops::record::{self, RecordExpectation};
use crate::ops::sign;
use crate::plan::record::ReleaseRecord;
use crate::plan::{Signing, SigningRequest};
use crate::preflight::{self, Requirement};
use crate::{context, project, render};

#[derive(Debug, Clone)]
pub struct SignOptions {
    /// Images to sign, by digest (empty with `record`).
    pub images: Vec<ImageRef>,
    /// Sign every variant of this release record instead.
    pub record: Option<PathBuf>,
    /// With `record`: the repository it must be a release to.
    pub registry: Option<Registry>,
    pub image_name: ImageName,
    pub signing: SigningRequest,
    /// Print the cosign commands instead of running them.
    pub dry_run: bool,
}

pub fn run(args: SignOptions) -> Result<()> {
    let context = context::gather(&project::project_root())?;
    let references: Vec<ImageRef> = match (&args.record, args.images.is_empty()) {
        (Some(path), true) => {
            let record = ReleaseRecord::read(path)?;
            let repository =
                record::expected_repository(args.registry.as_ref(), &args.image_name, &context)?;
            if !args.dry_run {
                preflight::check_all(&[Requirement::Skopeo])?;
                record::check_record(
                    &record,
                    &path.display().to_string(),
                    &RecordExpectation {
                        repository,
                        commit: Some(context.git.revision.clone()),
                        complete: true,
                    },
                )?;
                record::refuse_other_commits(&record)?;
            }
            record
                .variants
                .iter()
                .map(|v| v.image(&record.repository))
                .collect()
        }
        (None, false) => {
            let mut references = Vec::new();
            for image in &args.images {
                if image.digest.is_none() {
                    bail!("{image} is not a reference by digest: sign by digest, never by tag (REPO@sha256:...; `docker buildx imagetools inspect {image}` shows it)");
                }
                references.push(image.pinned());
            }
            references
        }
        _ => {
            bail!("sign needs IMAGE@DIGEST arguments or a release record (--record FILE), not both")
        }
    };
    let signing = args.signing.resolve(&context)?;
    if signing == Signing::None {
        bail!("--sign none: nothing to do");
    }
    let config = args.signing.signing_config.as_deref();
    if args.dry_run {
        let (run, note) = sign::dry_run(&signing, config, &RunDir::dry_run("sign"))?;
        if let Some(note) = note {
            println!("# {note}");
        }
        for invocation in render::sign_preparation(&signing, &run) {
            println!("{}", invocation.display());
        }
        for reference in &references {
            if let Some(invocation) = render::sign_reference(&signing, &run, reference) {
                println!("{}", invocation.display());
            }
        }
        return Ok(());
    }
    preflight::check_all(&signing.requirements())?;
    let dir = RunDir::new(&project::project_root(), "sign");
    let run = sign::prepare(&signing, config, &dir.path)?;
    sign::sign_references(&signing, &run, &references)?;
    for reference in &references {
        println!("signed {reference}");
    }
    Ok(())
}
