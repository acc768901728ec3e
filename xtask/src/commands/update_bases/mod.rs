//! `cargo xtask update-bases`: keeps the pinned images of the Dockerfiles
//! fresh. Every `ARG NAME=IMAGE:TAG@sha256:DIGEST` of `images/*/Dockerfile`
//! and `images/*.Dockerfile` (the bases, and the builder image of
//! `images/compile.Dockerfile`; Dependabot reads `FROM` lines only,
//! dependabot-core#2057) is looked up again: where the tag now names another
//! digest, the pin is rewritten to it. `--check` changes nothing and fails
//! listing the stale pins; `--mirror PREFIX=MIRROR` looks tags up in a
//! mirror (offline machines, tests) while the pins keep their names.
//!
//! Plan, then act: every Dockerfile is parsed and every tag resolved before
//! anything is written, so an ARG that cannot be read, a tag that does not
//! exist or a registry that cannot be reached changes nothing. The rewrite
//! itself is all or nothing: every new Dockerfile is written beside its
//! original first, then each is renamed over it; should a rename fail, the
//! ones already replaced are put back.
//!
//! `pins.rs` reads and rewrites a Dockerfile's pins, `mirror.rs` says where
//! an image is looked up; this file resolves them and writes the result.

mod mirror;
mod pins;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};

use crate::client::registry;
use crate::model::files;
use crate::preflight;
use crate::project;

pub use self::mirror::{lookup_repository, Mirror};
pub use self::pins::{parse_pins, rewrite, Pin};

#[derive(Debug, Clone, Default)]
pub struct UpdateBasesOptions {
    /// Change nothing; fail listing every pin whose tag moved.
    pub check: bool,
    /// Print the registry lookups and change nothing.
    pub dry_run: bool,
    /// `PREFIX=MIRROR`: look images under PREFIX up in MIRROR instead.
    pub mirrors: Vec<Mirror>,
}

/// One Dockerfile and its pins.
struct Dockerfile {
    path: PathBuf,
    label: String,
    text: String,
    pins: Vec<Pin>,
}

/// Reads and parses every Dockerfile of the images (`images/*.Dockerfile`,
/// `images/*/Dockerfile`).
fn read_dockerfiles(root: &Path) -> Result<Vec<Dockerfile>> {
    let mut dockerfiles = Vec::new();
    for label in project::dockerfiles(root)? {
        let path = root.join(&label);
        let text = files::read_to_string(&path)?;
        let pins = parse_pins(&label, &text)?;
        dockerfiles.push(Dockerfile {
            path,
            label,
            text,
            pins,
        });
    }
    Ok(dockerfiles)
}

/// Resolves every distinct `REPOSITORY:TAG` the pins follow, concurrently;
/// any failure is an error naming the first pin (in file order) it concerns.
fn resolve_all(dockerfiles: &[Dockerfile], mirrors: &[Mirror]) -> Result<BTreeMap<String, String>> {
    let mut wanted: Vec<(String, &str, usize, &Pin)> = Vec::new();
    for dockerfile in dockerfiles {
        for pin in &dockerfile.pins {
            if !wanted.iter().any(|(image, ..)| *image == pin.image()) {
                wanted.push((pin.image(), &dockerfile.label, pin.line, pin));
            }
        }
    }
    let results: Vec<Result<(String, String)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = wanted
            .iter()
            .map(|(image, label, line, pin)| {
                scope.spawn(move || resolve_one(image, label, *line, pin, mirrors))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a registry lookup panicked")))
            })
            .collect()
    });
    results.into_iter().collect()
}

fn resolve_one(
    image: &str,
    label: &str,
    line: usize,
    pin: &Pin,
    mirrors: &[Mirror],
) -> Result<(String, String)> {
    let (repository, mirror) = lookup_repository(&pin.repository, mirrors)?;
    let reference = repository.tagged(&pin.tag)?;
    let where_from = format!("{label}:{line} {}", pin.name);
    let unreachable_hint = match mirror {
        Some(m) => format!("check --mirror {m} and that the mirror is running"),
        None => "check the network (and its proxy), or look the tag up in a mirror with --mirror PREFIX=MIRROR".to_string(),
    };
    let found = registry::fetch_reaching(&reference, &unreachable_hint)
        .with_context(|| format!("cannot resolve {image} ({where_from})"))?;
    match (found, mirror) {
        (Some(fetched), _) => Ok((image.to_string(), fetched.digest)),
        (None, Some(m)) => bail!(
            "cannot resolve {image} ({where_from}): the mirror {m} has no {reference}; copy it there \
             (skopeo copy --all docker://{image} docker://{reference}) or drop that --mirror"
        ),
        (None, None) => bail!(
            "cannot resolve {image} ({where_from}): {} has no tag {} (or no such repository); fix the tag in {label}:{line}",
            pin.repository,
            pin.tag
        ),
    }
}

/// A pin whose tag now names another digest.
struct Stale<'a> {
    label: &'a str,
    pin: &'a Pin,
    current: &'a str,
}

impl fmt::Display for Stale<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} {} {} ({} -> {})",
            self.label,
            self.pin.line,
            self.pin.name,
            self.pin.image(),
            self.pin.digest,
            self.current
        )
    }
}

pub fn run(options: UpdateBasesOptions) -> Result<()> {
    let mirrors = &options.mirrors;
    let root = project::project_root();
    let dockerfiles = read_dockerfiles(&root)?;
    let pin_count: usize = dockerfiles.iter().map(|d| d.pins.len()).sum();
    if pin_count == 0 {
        bail!("no pinned image in images/*/Dockerfile or images/*.Dockerfile (ARG NAME=REPOSITORY:TAG@sha256:DIGEST): nothing to update; pin the bases first");
    }
    if options.dry_run {
        print_lookups(&dockerfiles, mirrors)?;
        return Ok(());
    }
    if preflight::find_program("skopeo").is_none() {
        bail!("skopeo not found on PATH, and update-bases looks every tag up with it: install skopeo (apt install skopeo, brew install skopeo)");
    }
    let current = resolve_all(&dockerfiles, mirrors)?;
    let (report, stale) = compare(&dockerfiles, &current);
    if options.check && !stale.is_empty() {
        // One line, like every refusal: it lists them all.
        let listed: Vec<String> = stale.iter().map(ToString::to_string).collect();
        bail!(
            "{} of {pin_count} pinned images are stale (their tags moved): {}; run `cargo xtask update-bases` to rewrite the pins",
            stale.len(),
            listed.join(", ")
        );
    }
    if options.check {
        for line in &report {
            println!("{line}");
        }
        println!("all {pin_count} pinned images are current");
        return Ok(());
    }
    let mut rewritten = Vec::new();
    for dockerfile in &dockerfiles {
        let changes: Vec<(Range<usize>, String)> = stale
            .iter()
            .filter(|s| s.label == dockerfile.label)
            .map(|s| (s.pin.digest_at.clone(), s.current.to_string()))
            .collect();
        if !changes.is_empty() {
            rewritten.push((dockerfile, rewrite(&dockerfile.text, &changes)));
        }
    }
    replace_all(&rewritten)?;
    for line in &report {
        println!("{line}");
    }
    println!(
        "updated {} of {pin_count} pinned images in {} Dockerfile(s)",
        stale.len(),
        rewritten.len()
    );
    Ok(())
}

/// `--dry-run`: the registry lookups a run makes, each once.
fn print_lookups(dockerfiles: &[Dockerfile], mirrors: &[Mirror]) -> Result<()> {
    let mut printed = Vec::new();
    for pin in dockerfiles.iter().flat_map(|d| &d.pins) {
        let (repository, _) = lookup_repository(&pin.repository, mirrors)?;
        let line = registry::inspect_command(&repository.tagged(&pin.tag)?).display();
        if !printed.contains(&line) {
            println!("{line}");
            printed.push(line);
        }
    }
    Ok(())
}

/// Every pin against the digest its tag names now: a report line per pin
/// (`current` or `moved`), and the stale ones.
fn compare<'a>(
    dockerfiles: &'a [Dockerfile],
    current: &'a BTreeMap<String, String>,
) -> (Vec<String>, Vec<Stale<'a>>) {
    let mut report = Vec::new();
    let mut stale = Vec::new();
    for dockerfile in dockerfiles {
        for pin in &dockerfile.pins {
            let digest = current.get(&pin.image()).map_or("", String::as_str);
            if digest == pin.digest {
                report.push(format!(
                    "{}:{} {} {}: current",
                    dockerfile.label,
                    pin.line,
                    pin.name,
                    pin.image()
                ));
            } else {
                let entry = Stale {
                    label: &dockerfile.label,
                    pin,
                    current: digest,
                };
                report.push(format!("{entry}: moved"));
                stale.push(entry);
            }
        }
    }
    (report, stale)
}

/// Replaces every Dockerfile with its new text, all or nothing: each new
/// text is written beside its file first (nothing is replaced if one cannot
/// be), then each is renamed over its file; if a rename fails, the files
/// already replaced get their old text back.
fn replace_all(rewritten: &[(&Dockerfile, String)]) -> Result<()> {
    let mut staged: Vec<(PathBuf, &Path)> = Vec::new();
    let discard = |staged: &[(PathBuf, &Path)]| {
        for (temporary, _) in staged {
            let _ = std::fs::remove_file(temporary);
        }
    };
    for (dockerfile, text) in rewritten {
        let temporary = dockerfile.path.with_file_name(format!(
            ".Dockerfile.update-bases-{}",
            files::unique_suffix()
        ));
        let written = std::fs::write(&temporary, text).and_then(|()| {
            let permissions = std::fs::metadata(&dockerfile.path)?.permissions();
            std::fs::set_permissions(&temporary, permissions)
        });
        staged.push((temporary.clone(), &dockerfile.path));
        if let Err(err) = written {
            discard(&staged);
            bail!(
                "cannot write {} ({err}): no Dockerfile was changed; check that you may write there",
                temporary.display()
            );
        }
    }
    for (index, (temporary, target)) in staged.iter().enumerate() {
        if let Err(err) = std::fs::rename(temporary, target) {
            discard(&staged[index..]);
            let mut restored = true;
            for (dockerfile, _) in &rewritten[..index] {
                restored &= files::write_atomically(&dockerfile.path, &dockerfile.text).is_ok();
            }
            bail!(
                "cannot replace {} ({err}): {}; check that you may write there",
                target.display(),
                if restored {
                    "the Dockerfiles already replaced were restored, so none changed"
                } else {
                    "some Dockerfiles already replaced could not be restored: `git checkout images/` restores them"
                }
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rename_that_fails_puts_back_the_dockerfiles_already_replaced() {
        let dir =
            std::env::temp_dir().join(format!("xtask-update-bases-{}", files::unique_suffix()));
        let first = dir.join("a/Dockerfile");
        std::fs::create_dir_all(first.parent().unwrap()).unwrap();
        std::fs::write(&first, "old a\n").unwrap();
        // The second "Dockerfile" is a directory with a file in it: nothing
        // can be renamed over it, so the rename of the second one fails.
        let second = dir.join("b/Dockerfile");
        std::fs::create_dir_all(second.join("x")).unwrap();
        let dockerfile = |path: &Path, text: &str| Dockerfile {
            path: path.to_path_buf(),
            label: path.display().to_string(),
            text: text.to_string(),
            pins: Vec::new(),
        };
        let (a, b) = (
            dockerfile(&first, "old a\n"),
            dockerfile(&second, "old b\n"),
        );
        let err = replace_all(&[(&a, "new a\n".to_string()), (&b, "new b\n".to_string())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("were restored, so none changed"), "{err}");
        assert_eq!(std::fs::read_to_string(&first).unwrap(), "old a\n");
        let left: Vec<String> = ["a", "b"]
            .iter()
            .flat_map(|d| std::fs::read_dir(dir.join(d)).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            ["Dockerfile", "Dockerfile"],
            "no temporary file is left"
        );
        replace_all(&[(&a, "new a\n".to_string())]).unwrap();
        assert_eq!(std::fs::read_to_string(&first).unwrap(), "new a\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
