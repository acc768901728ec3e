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

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{anyhow, bail, Context as _, Result};

use crate::client::registry;
use crate::model::files;
use crate::model::names;
use crate::model::reference::{ImageRef, Repository};
use crate::preflight;
use crate::project;

#[derive(Debug, Clone, Default)]
pub struct UpdateBasesOptions {
    /// Change nothing; fail listing every pin whose tag moved.
    pub check: bool,
    /// Print the registry lookups and change nothing.
    pub dry_run: bool,
    /// `PREFIX=MIRROR`: look images under PREFIX up in MIRROR instead.
    pub mirrors: Vec<Mirror>,
}

/// One pinned image of a Dockerfile: `ARG NAME=REPOSITORY:TAG@DIGEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The ARG's name, e.g. `PRODUCTION_BASE`.
    pub name: String,
    pub repository: Repository,
    pub tag: String,
    pub digest: String,
    /// The 1-based line of the digest.
    pub line: usize,
    /// Where the digest is in the file's bytes.
    pub digest_at: Range<usize>,
}

impl Pin {
    /// `REPOSITORY:TAG`: what is followed.
    pub fn image(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

/// How to fix an ARG this command cannot read, after what is wrong with it.
const PIN_HINT: &str =
    "write pinned images as ARG NAME=REPOSITORY:TAG@sha256:DIGEST, the value spelt out in full";

/// One character of an instruction and the byte of the file it came from
/// (continuation escapes and comment lines removed).
type Located = (char, usize);

/// The escape character a Dockerfile's parser directive chooses (`\` or
/// `` ` ``). Directives are the first lines, `# syntax=`, `# escape=` or
/// `# check=`; any other line (a comment, an unknown directive) ends them.
fn escape_character(text: &str) -> char {
    for line in text.lines() {
        let Some((key, value)) = line
            .trim()
            .strip_prefix('#')
            .and_then(|d| d.split_once('='))
        else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        if !["syntax", "escape", "check"].contains(&key.as_str()) {
            break;
        }
        if key == "escape" && value.trim() == "`" {
            return '`';
        }
    }
    '\\'
}

/// The Dockerfile's instructions, each with the 1-based line it starts on,
/// as BuildKit's parser joins them: a line ending in the escape character
/// continues on the next, comment and empty lines inside a continuation are
/// dropped, and heredoc bodies (`RUN <<EOF ... EOF`) are not instructions.
fn instructions(text: &str) -> Vec<(usize, Vec<Located>)> {
    let escape = escape_character(text);
    let mut found = Vec::new();
    let mut current: Option<(usize, Vec<Located>)> = None;
    let mut heredoc_ends: Vec<String> = Vec::new();
    let mut offset = 0;
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        if let Some(end) = heredoc_ends.first() {
            let body_line = line.trim_start_matches('\t');
            if body_line == end {
                heredoc_ends.remove(0);
            }
            continue;
        }
        // Comment and empty lines, between instructions or inside a continuation.
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (continues, content) = match line.trim_end().strip_suffix(escape) {
            Some(before) => (true, before),
            None => (false, line),
        };
        let instruction = current.get_or_insert_with(|| (index + 1, Vec::new()));
        instruction
            .1
            .extend(content.char_indices().map(|(i, c)| (c, start + i)));
        if !continues {
            if let Some(done) = current.take() {
                heredoc_ends = heredoc_terminators(&done.1);
                found.push(done);
            }
        }
    }
    if let Some(unfinished) = current {
        found.push(unfinished);
    }
    found
}

/// The words that end the heredocs an instruction opens, in order: in `RUN`,
/// `COPY` and `ADD`, every word `<<EOF`, `<<-EOF` or `<<"EOF"` (the word
/// starts with a letter or `_`, as BuildKit's parser requires; `$((1<<2))`
/// is no heredoc).
fn heredoc_terminators(instruction: &[Located]) -> Vec<String> {
    let text: String = instruction.iter().map(|(c, _)| c).collect();
    let mut words = text.split_whitespace();
    let opens = words.next().is_some_and(|k| {
        ["RUN", "COPY", "ADD"]
            .iter()
            .any(|i| k.eq_ignore_ascii_case(i))
    });
    if !opens {
        return Vec::new();
    }
    words
        .filter_map(|word| {
            let rest = word.strip_prefix("<<")?;
            let rest = rest.strip_prefix('-').unwrap_or(rest);
            let rest = rest.trim_matches(['"', '\'']);
            let starts_well = rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
            let whole = rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            (starts_well && whole).then(|| rest.to_string())
        })
        .collect()
}

/// Splits an instruction's arguments into words, as the parser does for
/// `ARG`: whitespace separates, quotes group (and are removed), the escape
/// character keeps the next character as it is.
fn words(arguments: &[Located], escape: char) -> Vec<Vec<Located>> {
    let mut words = Vec::new();
    let mut word: Vec<Located> = Vec::new();
    let mut quote: Option<char> = None;
    let mut chars = arguments.iter().copied().peekable();
    while let Some((c, at)) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == escape => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            Some(_) => word.push((c, at)),
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == escape => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            None => word.push((c, at)),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The 1-based line of byte `at` of `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Every pinned image of a Dockerfile: each `ARG` whose value holds
/// `@sha256:`, in order. `label` names the file in errors
/// (`images/ubi9/Dockerfile:9: ...`). An ARG that pins a digest but cannot
/// be read as `REPOSITORY:TAG@sha256:DIGEST` is refused, never skipped.
pub fn parse_pins(label: &str, text: &str) -> Result<Vec<Pin>> {
    let escape = escape_character(text);
    let mut pins = Vec::new();
    for (first_line, instruction) in instructions(text) {
        let mut rest = instruction
            .iter()
            .skip_while(|(c, _)| c.is_whitespace())
            .copied()
            .peekable();
        let keyword: String = rest
            .by_ref()
            .take_while(|(c, _)| !c.is_whitespace())
            .map(|(c, _)| c)
            .collect();
        if !keyword.eq_ignore_ascii_case("ARG") {
            continue;
        }
        let arguments: Vec<Located> = rest.collect();
        for word in words(&arguments, escape) {
            let value_text: String = word.iter().map(|(c, _)| c).collect();
            let Some((name, value)) = value_text.split_once('=') else {
                continue; // declared without a default
            };
            if !value.contains("@sha256:") {
                continue;
            }
            let line = word
                .first()
                .map_or(first_line, |(_, at)| line_of(text, *at));
            let refuse = |why: String| {
                anyhow!("{label}:{line}: cannot read ARG {value_text}: {why}; {PIN_HINT}")
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(refuse(format!("{name:?} is not an ARG name")));
            }
            if value.contains('$') {
                return Err(refuse(
                    "its value uses a variable, which update-bases cannot resolve".to_string(),
                ));
            }
            let image: ImageRef = value.parse().map_err(|e| refuse(format!("{e}")))?;
            let (Some(tag), Some(digest)) = (image.tag, image.digest) else {
                return Err(refuse(
                    "it pins a digest without a tag, so there is no tag to follow".to_string(),
                ));
            };
            let digest = digest.to_string();
            // The digest's characters, which must sit side by side in the file
            // (a continuation inside a digest could not be rewritten in place).
            let value_start = name.chars().count() + 1;
            let digest_start =
                value_start + value.find('@').map_or(0, |i| value[..=i].chars().count());
            let located = &word[digest_start..digest_start + digest.len()];
            let first = located.first().map_or(0, |(_, at)| *at);
            let contiguous = located
                .iter()
                .enumerate()
                .all(|(i, (_, at))| *at == first + i);
            if !contiguous || text.get(first..first + digest.len()) != Some(digest.as_str()) {
                return Err(refuse(
                    "its digest is split across lines or quoted in pieces".to_string(),
                ));
            }
            pins.push(Pin {
                name: name.to_string(),
                repository: image.repository,
                tag,
                digest,
                line: line_of(text, first),
                digest_at: first..first + located.len(),
            });
        }
    }
    Ok(pins)
}

/// The Dockerfile's text with the given pins' digests replaced.
pub fn rewrite(text: &str, changes: &[(Range<usize>, String)]) -> String {
    let mut sorted: Vec<&(Range<usize>, String)> = changes.iter().collect();
    sorted.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    let mut out = text.to_string();
    for (range, digest) in sorted {
        out.replace_range(range.clone(), digest);
    }
    out
}

/// `PREFIX=MIRROR`: images whose repository starts with PREFIX (whole path
/// components) are looked up under MIRROR instead. A mirror must hold them
/// by their own digests (a pull-through cache, or `skopeo copy --all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub prefix: String,
    pub mirror: String,
}

impl FromStr for Mirror {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Mirror> {
        let hint =
            "expected --mirror PREFIX=MIRROR, e.g. docker.io/library=registry.example/hub-library";
        let Some((prefix, mirror)) = text.split_once('=') else {
            bail!("malformed mirror {text:?}: {hint}");
        };
        let (prefix, mirror) = (prefix.trim_end_matches('/'), mirror.trim_end_matches('/'));
        for part in [prefix, mirror] {
            if names::validate_repository(part).is_err() {
                bail!("malformed mirror {text:?}: {part:?} is not a registry or repository path; {hint}");
            }
        }
        Ok(Mirror {
            prefix: prefix.to_string(),
            mirror: mirror.to_string(),
        })
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.prefix, self.mirror)
    }
}

/// Where `repository` is looked up: under the mirror of the longest prefix
/// that matches it whole components at a time, else where it is.
pub fn lookup_repository<'a>(
    repository: &Repository,
    mirrors: &'a [Mirror],
) -> Result<(Repository, Option<&'a Mirror>)> {
    let path = repository.as_str();
    let matching = mirrors
        .iter()
        .filter(|m| {
            path == m.prefix
                || path
                    .strip_prefix(&m.prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|m| m.prefix.len());
    Ok(match matching {
        Some(m) => (
            format!("{}{}", m.mirror, &path[m.prefix.len()..]).parse()?,
            Some(m),
        ),
        None => (repository.clone(), None),
    })
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
        let mut printed = Vec::new();
        for pin in dockerfiles.iter().flat_map(|d| &d.pins) {
            let (repository, _) = lookup_repository(&pin.repository, mirrors)?;
            let line = registry::inspect_command(&repository.tagged(&pin.tag)?).display();
            if !printed.contains(&line) {
                println!("{line}");
                printed.push(line);
            }
        }
        return Ok(());
    }
    if preflight::find_program("skopeo").is_none() {
        bail!("skopeo not found on PATH, and update-bases looks every tag up with it: install skopeo (apt install skopeo, brew install skopeo)");
    }
    let current = resolve_all(&dockerfiles, mirrors)?;
    let mut report = Vec::new();
    let mut stale = Vec::new();
    for dockerfile in &dockerfiles {
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

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn pins(text: &str) -> Vec<(String, String, usize)> {
        parse_pins("Dockerfile", text)
            .unwrap()
            .into_iter()
            .map(|p| (p.name.clone(), p.image(), p.line))
            .collect()
    }

    fn refused(text: &str) -> String {
        format!("{:#}", parse_pins("images/x/Dockerfile", text).unwrap_err())
    }

    #[test]
    fn reads_pins_in_every_form_an_arg_can_take() {
        let text = format!(
            "# syntax=docker/dockerfile:1\n\
             ARG BUILDER_IMAGE=docker.io/library/rust:1-bookworm@{A}\n\
             arg lower=127.0.0.1:5000/x/y:tag@{B}\n\
             ARG ONE=r.example/one:1@{A} TWO=\"r.example/two:2@{B}\" PLAIN=nothing\n\
             ARG CONTINUED=r.example/c:1@{A} \\\n\
             \x20   # a comment inside the continuation\n\
             \n\
             \x20   NEXT='r.example/n:2@{B}'\n\
             ARG UNSET\n\
             FROM ${{BUILDER_IMAGE}} AS compile\n\
             ARG STAGE_BASE=r.example/stage:3@{A}\n\
             RUN echo ARG FAKE=r.example/fake:1@{A}\n"
        );
        assert_eq!(
            pins(&text),
            [
                (
                    "BUILDER_IMAGE".into(),
                    "docker.io/library/rust:1-bookworm".into(),
                    2
                ),
                ("lower".into(), "127.0.0.1:5000/x/y:tag".into(), 3),
                ("ONE".into(), "r.example/one:1".into(), 4),
                ("TWO".into(), "r.example/two:2".into(), 4),
                ("CONTINUED".into(), "r.example/c:1".into(), 5),
                ("NEXT".into(), "r.example/n:2".into(), 8),
                ("STAGE_BASE".into(), "r.example/stage:3".into(), 11),
            ]
        );
        for pin in parse_pins("Dockerfile", &text).unwrap() {
            assert_eq!(&text[pin.digest_at.clone()], pin.digest, "{}", pin.name);
        }
    }

    #[test]
    fn heredocs_and_the_escape_directive_are_followed() {
        let text = format!(
            "# escape=`\n\
             ARG A=r.example/a:1@{A} `\n\
             \x20   B=r.example/b:1@{B}\n\
             RUN <<EOF\n\
             ARG NOT_AN_ARG=${{X}}/oops:1@{A}\n\
             EOF\n\
             ARG C=r.example/c:1@{A}\n"
        );
        let found: Vec<String> = pins(&text).into_iter().map(|(n, ..)| n).collect();
        assert_eq!(found, ["A", "B", "C"]);
    }

    #[test]
    fn an_arg_that_cannot_be_read_is_refused_in_one_line_naming_file_and_line() {
        for (text, reason) in [
            (
                format!("ARG BASE=${{REGISTRY}}/static:1@{A}\n"),
                "uses a variable",
            ),
            (
                format!("\nARG BASE=r.example/static@{A}\n"),
                "without a tag",
            ),
            (
                "ARG BASE=r.example/static:1@sha256:abc\n".to_string(),
                "malformed digest",
            ),
            (format!("ARG BASE=R.example/Static:1@{A}\n"), "malformed"),
            (
                format!("ARG BASE=r.example/static:1@{}\\\n{}\n", &A[..20], &A[20..]),
                "split across lines",
            ),
            (
                format!("ARG BA-SE=r.example/static:1@{A}\n"),
                "is not an ARG name",
            ),
        ] {
            let err = refused(&text);
            assert!(
                err.starts_with("images/x/Dockerfile:")
                    && err.contains("cannot read ARG")
                    && err.contains(reason)
                    && err.contains("ARG NAME=REPOSITORY:TAG@sha256:DIGEST")
                    && !err.contains('\n'),
                "{reason}: {err}"
            );
        }
        assert!(refused(&format!("\n\nARG BASE=r.example/static@{A}\n"))
            .starts_with("images/x/Dockerfile:3:"));
    }

    #[test]
    fn rewrites_only_the_digests() {
        let text = format!("ARG X=r.example/x:1@{A} \\\n  Y=\"r.example/y:1@{A}\"\n# {A}\n");
        let found = parse_pins("Dockerfile", &text).unwrap();
        let changes: Vec<(Range<usize>, String)> = found
            .iter()
            .map(|p| (p.digest_at.clone(), B.to_string()))
            .collect();
        let out = rewrite(&text, &changes);
        assert_eq!(
            out,
            format!("ARG X=r.example/x:1@{B} \\\n  Y=\"r.example/y:1@{B}\"\n# {A}\n")
        );
        let again = parse_pins("Dockerfile", &out).unwrap();
        assert!(again.iter().all(|p| p.digest == B));
    }

    #[test]
    fn mirrors_match_whole_components_and_the_longest_prefix() {
        let mirrors: Vec<Mirror> = ["docker.io=m.example/hub", "docker.io/library=m.example/lib"]
            .iter()
            .map(|m| m.parse().unwrap())
            .collect();
        let lookup = |repository: &str| {
            let repository = repository.parse().unwrap();
            lookup_repository(&repository, &mirrors)
                .unwrap()
                .0
                .to_string()
        };
        assert_eq!(lookup("docker.io/library/rust"), "m.example/lib/rust");
        assert_eq!(lookup("docker.io/acme/x"), "m.example/hub/acme/x");
        assert_eq!(lookup("docker.io.evil/x"), "docker.io.evil/x");
        assert_eq!(lookup("docker.io/libraryx/y"), "m.example/hub/libraryx/y");
        let chainguard = "cgr.dev/chainguard/static".parse().unwrap();
        assert!(lookup_repository(&chainguard, &mirrors)
            .unwrap()
            .1
            .is_none());
        for bad in [
            "nothing",
            "=m.example",
            "docker.io=",
            "docker.io/X=m",
            "a=b=c",
        ] {
            let err = bad.parse::<Mirror>().unwrap_err().to_string();
            assert!(err.contains("--mirror PREFIX=MIRROR"), "{bad}: {err}");
        }
    }

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

    #[test]
    fn the_real_dockerfiles_pin_every_image_in_a_form_this_reads() {
        let root = project::project_root();
        let labels = project::dockerfiles(&root).unwrap();
        assert!(labels.contains(&project::COMPILE_DOCKERFILE.to_string()));
        for label in labels {
            let text = std::fs::read_to_string(root.join(&label)).unwrap();
            let found = parse_pins(&label, &text).unwrap();
            let names: Vec<&str> = found.iter().map(|p| p.name.as_str()).collect();
            let expected: &[&str] = if label == project::COMPILE_DOCKERFILE {
                &["BUILDER_IMAGE"]
            } else {
                &["PRODUCTION_BASE", "CI_BASE"]
            };
            assert_eq!(names, expected, "{label}");
            // The same pins as the release path reads (its ARG defaults).
            let defaults = project::global_arg_defaults(&text);
            for pin in &found {
                if let Some(default) = defaults.get(&pin.name) {
                    assert_eq!(
                        default,
                        &format!("{}@{}", pin.image(), pin.digest),
                        "{label}"
                    );
                }
            }
        }
    }
}
