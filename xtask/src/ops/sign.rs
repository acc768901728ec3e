//! Signing pushed images by digest, never by tag: what `sign` and
//! `release-image` share.

use anyhow::{bail, Result};

use crate::client::process;
use crate::plan::Signing;
use crate::render;

/// Signs each reference (by digest) in turn; on a failure, says which are
/// still unsigned.
pub fn sign_references(signing: &Signing, repository: &str, references: &[String]) -> Result<()> {
    for (index, reference) in references.iter().enumerate() {
        let Some(invocation) = render::sign_reference(signing, repository, reference) else {
            return Ok(());
        };
        if let Err(err) = process::run(&invocation) {
            bail!(
                "signing failed ({err}); no tag was moved; still unsigned: {}",
                references[index..].join(" ")
            );
        }
    }
    Ok(())
}
