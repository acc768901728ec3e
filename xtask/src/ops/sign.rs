//! Signing pushed images by digest, never by tag: what `sign` and
//! `release-image` share.

use anyhow::{bail, Result};

use crate::client::process;
use crate::model::reference::ImageRef;
use crate::plan::Signing;
use crate::render;

/// Signs each reference (by digest) in turn; on a failure, says which are
/// still unsigned.
pub fn sign_references(signing: &Signing, references: &[ImageRef]) -> Result<()> {
    for (index, reference) in references.iter().enumerate() {
        let Some(invocation) = render::sign_reference(signing, reference) else {
            return Ok(());
        };
        if let Err(err) = process::run(&invocation) {
            let unsigned: Vec<String> = references[index..]
                .iter()
                .map(ToString::to_string)
                .collect();
            bail!(
                "signing failed ({err}); no tag was moved; still unsigned: {}",
                unsigned.join(" ")
            );
        }
    }
    Ok(())
}
