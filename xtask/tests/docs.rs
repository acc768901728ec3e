//! The documents are a map of the repository, and a map must match the
//! ground: every relative link of the README, CONTRIBUTING.md,
//! ARCHITECTURE.md and the pages under docs/ leads to a file that exists (and
//! to a heading of it, when it names one), and ARCHITECTURE.md names only
//! modules and paths that exist. (That their `cargo xtask` command lines
//! parse is `tests/workflows.rs`'s.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The documents whose links are checked, relative to the repository root.
fn documents() -> Vec<String> {
    let mut files: Vec<String> = [
        "README.md",
        "CONTRIBUTING.md",
        "ARCHITECTURE.md",
        ".github/pull_request_template.md",
    ]
    .iter()
    .map(|f| f.to_string())
    .collect();
    let mut pages: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

/// A markdown text without its fenced code blocks (their lines kept empty,
/// so line numbers hold).
fn prose(text: &str) -> Vec<String> {
    let mut in_code = false;
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                return String::new();
            }
            if in_code {
                String::new()
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// The anchor GitHub gives a heading: lowercased, everything but letters,
/// digits, spaces, `-` and `_` dropped, spaces turned into `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a markdown file's headings (a repeated heading's later
/// anchors get `-1`, `-2`, ... as on GitHub).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in prose(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading);
        let mut anchor = base.clone();
        let mut n = 0;
        while found.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        found.insert(anchor);
    }
    found
}

#[test]
fn anchors_are_github_s() {
    assert_eq!(
        slug("Retention: `prune-ci-images`"),
        "retention-prune-ci-images"
    );
    assert_eq!(
        slug("The compile stages and the cache"),
        "the-compile-stages-and-the-cache"
    );
    assert_eq!(
        anchors("# A\n```\n# not a heading\n```\n## A\n#hashtag\n"),
        BTreeSet::from(["a".to_string(), "a-1".to_string()])
    );
}

/// The targets of a text's inline links, `[text](target)`, outside code
/// blocks and code spans, with the line each is on. A link's text may span
/// lines; its `](target)` is on one.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    for (number, line) in prose(text).iter().enumerate() {
        // Code spans hold no links: keep the text between them.
        let outside: String = line
            .split('`')
            .enumerate()
            .map(|(i, part)| if i % 2 == 0 { part } else { "" })
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = outside.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            targets.push((number + 1, rest[..end].trim().to_string()));
            rest = &rest[end..];
        }
    }
    targets
}

#[test]
fn relative_links_lead_to_files_and_headings_that_exist() {
    let root = root();
    let mut checked = 0;
    let mut broken = Vec::new();
    for document in documents() {
        let path = root.join(&document);
        let text = read(&path);
        for (line, target) in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let linked = if file.is_empty() {
                path.clone()
            } else {
                path.parent().unwrap().join(file)
            };
            if !linked.exists() {
                broken.push(format!("{document}:{line}: {target}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor {
                if linked.extension().is_some_and(|e| e == "md")
                    && !anchors(&read(&linked)).contains(anchor)
                {
                    broken.push(format!("{document}:{line}: {target}: no such heading"));
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} relative links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// Every page under docs/ is linked from the README: it is the front door.
#[test]
fn the_readme_links_every_page() {
    let readme = read(&root().join("README.md"));
    let linked: BTreeSet<String> = link_targets(&readme)
        .into_iter()
        .map(|(_, target)| target.split('#').next().unwrap().to_string())
        .collect();
    for page in documents().iter().filter(|d| d.starts_with("docs/")) {
        assert!(linked.contains(page), "the README does not link {page}");
    }
}

/// The section of ARCHITECTURE.md under `## {title}`, up to the next `## `.
fn architecture_section(title: &str) -> String {
    let text = read(&root().join("ARCHITECTURE.md"));
    let start = text
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("ARCHITECTURE.md: no section \"{title}\""));
    let section = &text[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |e| e + 3);
    section[..end].to_string()
}

/// Whether a code span names a path: no spaces, and a folder (`render/`),
/// a file in one (`model/files.rs`) or a file by its extension.
fn is_path(span: &str) -> bool {
    !span.contains(' ')
        && !span.contains('(')
        && (span.contains('/')
            || [".rs", ".Dockerfile", ".sh", ".yml"]
                .iter()
                .any(|ext| span.ends_with(ext)))
}

/// Where a path of the "where a change goes" table is: `images/` and
/// `.github/` from the repository root, `tests/` in the crate, anything
/// else in `xtask/src`; a bare file name (`bake.rs`) in the folder the cell
/// named last (`render/`), or in `xtask/src`. `<variant>` is any variant.
fn resolve(span: &str, folder: Option<&str>) -> Vec<PathBuf> {
    let root = root();
    let base = if span.starts_with("images/") || span.starts_with(".github/") {
        root.clone()
    } else if span.starts_with("tests/") {
        root.join("xtask")
    } else if span.contains('/') {
        root.join("xtask/src")
    } else {
        root.join("xtask/src").join(folder.unwrap_or(""))
    };
    if span.contains("<variant>") {
        xtask::project::discover_variants(&root)
            .unwrap()
            .iter()
            .map(|v| base.join(span.replace("<variant>", v)))
            .collect()
    } else {
        vec![base.join(span)]
    }
}

#[test]
fn every_path_of_where_a_change_goes_exists() {
    let section = architecture_section("Where a change goes");
    let mut checked = 0;
    let mut missing = Vec::new();
    for row in section.lines().filter(|l| l.starts_with('|')) {
        // The second column on: where to look.
        for cell in row.split('|').skip(2) {
            let mut folder: Option<String> = None;
            for (i, span) in cell.split('`').enumerate() {
                if i % 2 == 0 || !is_path(span) {
                    continue;
                }
                checked += 1;
                let paths = resolve(span, folder.as_deref());
                if paths.is_empty() || !paths.iter().all(|p| p.exists()) {
                    missing.push(format!("{span}: {}", paths[0].display()));
                }
                if span.ends_with('/') && !span.starts_with("tests/") {
                    folder = Some(span.to_string());
                }
            }
        }
    }
    assert!(checked >= 40, "only {checked} paths found in the table");
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist:\n{}",
        missing.join("\n")
    );
}

/// The layers' drawing names every top-level module of `xtask/src` (and no
/// other), and every module of the layers it lists by name.
#[test]
fn the_layers_drawing_names_the_modules_there_are() {
    let section = architecture_section("The layers of `xtask/src`");
    let drawing = section
        .split("```\n")
        .nth(1)
        .expect("ARCHITECTURE.md: the layers, drawn in a code block");
    let src = root().join("xtask/src");
    let module = |entry: &std::fs::DirEntry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        name.strip_suffix(".rs").unwrap_or(&name).to_string()
    };
    // The first column: `cli/`, `render/, report`, `context, project,`, ...
    let drawn: BTreeSet<String> = drawing
        .lines()
        .map(|l| l.get(..21).unwrap_or(l))
        .flat_map(|column| column.split([',', ' ']))
        .map(|name| name.trim_end_matches('/').to_string())
        .filter(|name| !name.is_empty())
        .collect();
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| module(&e.unwrap()))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    assert_eq!(
        drawn, modules,
        "the layers drawn, and the modules of xtask/src"
    );
    // Each of these layers lists its modules: every one of them is named.
    let words: BTreeSet<&str> = drawing
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .collect();
    for layer in ["cli", "commands", "ops", "exec", "render", "plan", "client"] {
        for entry in std::fs::read_dir(src.join(layer)).unwrap() {
            let name = module(&entry.unwrap());
            if name != "mod" {
                assert!(
                    words.contains(name.as_str()),
                    "ARCHITECTURE.md's drawing does not name {layer}/{name}"
                );
            }
        }
    }
}
