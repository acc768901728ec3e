//! The tar client: members of OCI archives, layer tarballs listed and
//! unpacked (rebuild-check), through the one process runner.

use std::path::Path;

use anyhow::{bail, Result};

use crate::client::process::{self, Invocation};

fn tar(args: &[&str]) -> Invocation {
    Invocation::new("tar", args.iter().map(|a| a.to_string()).collect())
}

/// One member of an archive, e.g. `index.json` or `blobs/sha256/...` of an
/// OCI archive.
pub fn member(archive: &Path, name: &str) -> Result<Vec<u8>> {
    let archive_text = archive.display().to_string();
    let output = process::capture(&tar(&["-xOf", &archive_text, name]))?;
    if !output.success {
        bail!("{} has no {name}", archive.display());
    }
    Ok(output.stdout)
}

/// `tar -tvz` of a gzipped tarball: one line per entry with its metadata.
pub fn list_gz(file: &Path) -> Result<String> {
    let file = file.display().to_string();
    Ok(process::capture(&tar(&["-tvzf", &file]))?.stdout_text())
}

/// Unpacks a gzipped tarball into `dir` (best effort: entries it cannot
/// create, like device files, are skipped).
pub fn extract_gz(file: &Path, dir: &Path) -> Result<()> {
    let (file, dir) = (file.display().to_string(), dir.display().to_string());
    process::capture(&tar(&["-xzf", &file, "-C", &dir]))?;
    Ok(())
}
