//! `cargo xtask variants`: the image variants on disk, every
//! `images/<variant>/Dockerfile` (as `project::discover_variants` finds and
//! validates them), one per line or, with `--json`, as one JSON array for a
//! workflow matrix: `["chainguard","distroless","ubi9"]`.
//!
//! In GitHub Actions it also writes the array as the step output `variants`:
//! build-push.yml's `variants` job exposes it, and the per-variant jobs take
//! their matrix from it (`fromJSON(needs.variants.outputs.variants)`), so no
//! workflow names a variant and adding one is adding a directory.

use std::path::Path;

use anyhow::Result;

use crate::{project, report};

#[derive(Debug, Clone)]
pub struct VariantsOptions {
    /// Print one JSON array instead of one name per line.
    pub json: bool,
}

/// The step output the array is written to, in GitHub Actions.
pub const STEP_OUTPUT: &str = "variants";

/// The variants under `root`, as one line of JSON: a workflow matrix.
pub fn matrix(root: &Path) -> Result<String> {
    Ok(serde_json::to_string(&project::discover_variants(root)?)?)
}

pub fn run(options: VariantsOptions) -> Result<()> {
    let root = project::project_root();
    let matrix = matrix(&root)?;
    if options.json {
        println!("{matrix}");
    } else {
        for variant in project::discover_variants(&root)? {
            println!("{variant}");
        }
    }
    report::write_step_output(STEP_OUTPUT, &matrix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_is_every_variant_directory_sorted() {
        let root = std::env::temp_dir().join(format!("xtask-variants-cmd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for name in ["ubi9", "wolfi-base", "chainguard"] {
            std::fs::create_dir_all(root.join("images").join(name)).unwrap();
            std::fs::write(
                root.join("images").join(name).join("Dockerfile"),
                "FROM x\n",
            )
            .unwrap();
        }
        // A directory without a Dockerfile is no variant.
        std::fs::create_dir_all(root.join("images/notes")).unwrap();
        assert_eq!(
            matrix(&root).unwrap(),
            r#"["chainguard","ubi9","wolfi-base"]"#
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
