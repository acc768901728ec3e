//! The pins of a Dockerfile: every `ARG NAME=REPOSITORY:TAG@sha256:DIGEST`,
//! read as BuildKit's parser reads instructions (the escape directive,
//! continuations, comments inside them, heredocs, quotes), with where each
//! digest is so a rewrite changes exactly those bytes.

use std::ops::Range;

use anyhow::{anyhow, Result};

use crate::model::reference::{ImageRef, Repository};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project;

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
