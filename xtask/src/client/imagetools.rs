//! `docker buildx imagetools create`: one image index made of others (the
//! merge of a release's parts), pushed by digest, untagged.
//!
//! What buildx 0.13 and 0.29 do alike (checked on both): the sources' images
//! and attestation manifests go into the new index in the order of the
//! sources; `--annotation index:KEY=VALUE` sets exactly the new index's
//! annotations (the sources' own are not carried over); `--dry-run` prints
//! the index it would push followed by one newline, so those bytes without
//! it are what is pushed and hash to its digest; `--tag REPO@sha256:D`
//! pushes by digest without a tag, to the digest of the bytes, whatever `D`
//! says (so the caller reads the index back by the digest it computed).
//! No builder is involved: it talks to the registry only.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use crate::client::process::{self, Invocation};
use crate::model::reference::ImageRef;

/// `docker buildx imagetools create` of `sources` (in that order) with the
/// index annotations `annotations`: a dry run (`target` None) or pushed to
/// `target` (`REPO@sha256:...`).
pub fn create_command(
    sources: &[ImageRef],
    annotations: &BTreeMap<String, String>,
    target: Option<&ImageRef>,
) -> Invocation {
    let mut args: Vec<String> = ["buildx", "imagetools", "create"]
        .map(String::from)
        .to_vec();
    match target {
        Some(target) => {
            args.push("--tag".into());
            args.push(target.to_string());
        }
        None => args.push("--dry-run".into()),
    }
    for (key, value) in annotations {
        args.push("--annotation".into());
        args.push(format!("index:{key}={value}"));
    }
    args.extend(sources.iter().map(ToString::to_string));
    Invocation::new("docker", args)
}

/// The bytes `imagetools create --dry-run` says it would push: its output
/// without the one newline it ends with.
pub fn dry_run(sources: &[ImageRef], annotations: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let invocation = create_command(sources, annotations, None);
    let captured = process::capture(&invocation)?;
    if !captured.success {
        bail!(
            "`{}` failed: {}",
            invocation.display(),
            captured.last_words()
        );
    }
    Ok(pushed_bytes(captured.stdout))
}

/// What a `--dry-run` printed, as the bytes pushed: without the one
/// trailing newline (only one: the document's own bytes are kept).
pub fn pushed_bytes(mut printed: Vec<u8>) -> Vec<u8> {
    if printed.last() == Some(&b'\n') {
        printed.pop();
    }
    printed
}

/// Pushes the index of `sources` by digest (`target`, `REPO@sha256:...`).
pub fn create(
    sources: &[ImageRef],
    annotations: &BTreeMap<String, String>,
    target: &ImageRef,
) -> Result<()> {
    process::run(&create_command(sources, annotations, Some(target))).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_names_the_annotations_as_index_ones_and_keeps_the_source_order() {
        let image = |c: char| -> ImageRef {
            format!("r.example/beacon@sha256:{}", c.to_string().repeat(64))
                .parse()
                .unwrap()
        };
        let annotations = BTreeMap::from([
            (
                "org.opencontainers.image.title".to_string(),
                "beacon (ubi9)".to_string(),
            ),
            (
                "org.opencontainers.image.revision".to_string(),
                "abc".to_string(),
            ),
        ]);
        let dry = create_command(&[image('b'), image('a')], &annotations, None);
        assert_eq!(
            dry.display(),
            format!(
                "docker buildx imagetools create --dry-run --annotation index:org.opencontainers.image.revision=abc \
                 --annotation 'index:org.opencontainers.image.title=beacon (ubi9)' {} {}",
                image('b'),
                image('a')
            )
        );
        let push = create_command(&[image('a')], &BTreeMap::new(), Some(&image('c')));
        assert_eq!(
            push.args[3..5],
            ["--tag".to_string(), image('c').to_string()]
        );
        assert_eq!(pushed_bytes(b"{}\n".to_vec()), b"{}");
        assert_eq!(
            pushed_bytes(b"{}\n\n".to_vec()),
            b"{}\n",
            "only one newline goes"
        );
        assert_eq!(pushed_bytes(b"{}".to_vec()), b"{}");
    }
}
