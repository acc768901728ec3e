//! Signing with cosign, by digest only. `cargo xtask sign` completes a
//! release whose signing step failed, without rebuilding anything.

use anyhow::{bail, Result};

use crate::model::names::ImageRef;
use crate::plan::{Signing, SigningRequest};
use crate::{context, exec, preflight, project, render};

#[derive(Debug, Clone)]
pub struct SignOptions {
    /// Images to sign, by digest.
    pub images: Vec<String>,
    pub signing: SigningRequest,
    /// Print the cosign commands instead of running them.
    pub dry_run: bool,
}

pub fn run(args: SignOptions) -> Result<()> {
    let mut references = Vec::new();
    for text in &args.images {
        let image: ImageRef = text.parse()?;
        if image.digest.is_none() {
            bail!("{text} is not a reference by digest: sign by digest, never by tag (REPO@sha256:...; `docker buildx imagetools inspect {text}` shows it)");
        }
        references.push(image);
    }
    let context = context::gather(&project::project_root())?;
    let signing = args.signing.resolve(&context)?;
    if signing == Signing::None {
        bail!("--sign none: nothing to do");
    }
    let invocations: Vec<_> = references
        .iter()
        .filter_map(|r| render::sign_reference(&signing, &r.repository, &r.pinned()))
        .collect();
    if args.dry_run {
        for invocation in &invocations {
            println!("{}", invocation.display());
        }
        return Ok(());
    }
    preflight::check_all(&signing.requirements())?;
    let mut signed = Vec::new();
    for (invocation, reference) in invocations.iter().zip(&references) {
        if let Err(err) = exec::run_one(invocation) {
            let unsigned: Vec<String> = references
                .iter()
                .skip(signed.len())
                .map(ImageRef::pinned)
                .collect();
            bail!("{err}; still unsigned: {}", unsigned.join(" "));
        }
        signed.push(reference.pinned());
        println!("signed {}", reference.pinned());
    }
    Ok(())
}
