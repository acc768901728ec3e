//! Where things are: the project root, the image variants under `images/`,
//! the compile file they share, and what their Dockerfiles declare.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

/// The workspace root (the parent of the xtask crate), independent of the
/// directory `cargo xtask` was started from. `XTASK_PROJECT_ROOT` points the
/// tool at another checkout of the repository (the benchmark's scratch copy).
pub fn project_root() -> PathBuf {
    if let Some(root) = std::env::var_os("XTASK_PROJECT_ROOT").filter(|r| !r.is_empty()) {
        return PathBuf::from(root);
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The image variants: every directory `images/<variant>/` that holds a
/// `Dockerfile`. Adding a variant is adding a directory.
pub fn discover_variants(root: &Path) -> Result<Vec<String>> {
    let images = root.join("images");
    let entries = std::fs::read_dir(&images).with_context(|| {
        format!(
            "cannot read {}: is this the project checkout?",
            images.display()
        )
    })?;
    let mut variants = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.path().join("Dockerfile").is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            crate::model::tags::validate_variant(&name)
                .with_context(|| format!("image variant directory images/{name}"))?;
            variants.push(name);
        }
    }
    variants.sort();
    if variants.is_empty() {
        bail!(
            "no image variants found: expected images/<variant>/Dockerfile under {}",
            root.display()
        );
    }
    Ok(variants)
}

/// Resolves the user's `--variant` choices against the discovered variants:
/// none means all of them; an unknown name lists the valid ones.
pub fn select_variants(available: &[String], requested: &[String]) -> Result<Vec<String>> {
    if requested.is_empty() {
        return Ok(available.to_vec());
    }
    let mut selected = Vec::new();
    for name in requested {
        if !available.contains(name) {
            bail!(
                "unknown variant {name:?}: valid variants are {} (directories under images/)",
                available.join(", ")
            );
        }
        if !selected.contains(name) {
            selected.push(name.clone());
        }
    }
    Ok(selected)
}

pub fn dockerfile_path(variant: &str) -> String {
    format!("images/{variant}/Dockerfile")
}

/// The compile stages, written once: every variant takes its binaries from
/// this file's result (the named context `binaries`). Not a variant: no
/// directory of its own.
pub const COMPILE_DOCKERFILE: &str = "images/compile.Dockerfile";

/// Every Dockerfile of the images, relative to the root: the shared ones
/// (`images/*.Dockerfile`, such as [`COMPILE_DOCKERFILE`]), then each
/// variant's. Where pinned images are looked for.
pub fn dockerfiles(root: &Path) -> Result<Vec<String>> {
    let images = root.join("images");
    let mut shared = Vec::new();
    for entry in
        std::fs::read_dir(&images).with_context(|| format!("cannot read {}", images.display()))?
    {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".Dockerfile") && images.join(&name).is_file() {
            shared.push(format!("images/{name}"));
        }
    }
    shared.sort();
    let variants = discover_variants(root)?;
    Ok(shared
        .into_iter()
        .chain(variants.iter().map(|v| dockerfile_path(v)))
        .collect())
}

/// The `ARG` defaults a variant's image is built with: the compile file's
/// (the builder image, the cross linker) and the variant's own (its bases).
pub fn build_arg_defaults(root: &Path, variant: &str) -> Result<BTreeMap<String, String>> {
    let path = root.join(COMPILE_DOCKERFILE);
    let compile = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut args = global_arg_defaults(&compile);
    args.extend(global_arg_defaults(&read_dockerfile(root, variant)?));
    Ok(args)
}

/// The global `ARG NAME=default` lines of a Dockerfile (those before the
/// first `FROM`), which is where every external image is pinned.
pub fn global_arg_defaults(dockerfile: &str) -> BTreeMap<String, String> {
    let mut args = BTreeMap::new();
    for line in logical_lines(dockerfile) {
        let mut words = line.split_whitespace();
        match words.next().map(str::to_ascii_uppercase).as_deref() {
            Some("FROM") => break,
            Some("ARG") => {
                for word in words {
                    if let Some((name, value)) = word.split_once('=') {
                        args.insert(name.to_string(), value.trim_matches('"').to_string());
                    }
                }
            }
            _ => {}
        }
    }
    args
}

/// Dockerfile lines with comments dropped and `\` continuations joined.
pub fn logical_lines(dockerfile: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in dockerfile.lines() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            if !current.trim().is_empty() {
                lines.push(current.trim().to_string());
            }
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        lines.push(current.trim().to_string());
    }
    lines
}

pub fn read_dockerfile(root: &Path, variant: &str) -> Result<String> {
    let path = root.join(dockerfile_path(variant));
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection() {
        let all: Vec<String> = ["chainguard", "distroless", "ubi9"]
            .map(String::from)
            .to_vec();
        assert_eq!(select_variants(&all, &[]).unwrap(), all);
        assert_eq!(
            select_variants(&all, &["ubi9".into(), "ubi9".into()]).unwrap(),
            vec!["ubi9"]
        );
        let err = select_variants(&all, &["alpine".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown variant \"alpine\"")
                && err.contains("chainguard, distroless, ubi9"),
            "{err}"
        );
    }

    #[test]
    fn arg_defaults_stop_at_first_from() {
        let text = "# c\nARG A=x@sha256:1 \\\n  B=\"y\"\nARG C\nFROM a\nARG D=z\n";
        let args = global_arg_defaults(text);
        assert_eq!(args.get("A").map(String::as_str), Some("x@sha256:1"));
        assert_eq!(args.get("B").map(String::as_str), Some("y"));
        assert!(!args.contains_key("C") && !args.contains_key("D"));
    }
}
