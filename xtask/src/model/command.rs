//! A command line as data: what the renderer produces, `--dry-run` prints
//! and the executor (or the registry client) runs. Never a shell string:
//! arguments stay separate words; quoting exists only for display.

use std::path::PathBuf;

use serde::Serialize;

/// One command to run: program, arguments, optional stdin, and where and
/// with what environment it runs (the caller's when not said).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invocation {
    pub program: String,
    pub args: Vec<String>,
    pub stdin: Option<String>,
    /// The working directory; `None`: the caller's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Variables set for it, beside the caller's environment.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    /// Variables of the caller's environment it must not see.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_remove: Vec<String>,
}

impl Invocation {
    pub fn new(program: &str, args: Vec<String>) -> Invocation {
        Invocation {
            program: program.to_string(),
            args,
            stdin: None,
            dir: None,
            env: Vec::new(),
            env_remove: Vec::new(),
        }
    }

    /// The same command, run in `dir`.
    pub fn in_dir(mut self, dir: impl Into<PathBuf>) -> Invocation {
        self.dir = Some(dir.into());
        self
    }

    /// The same command, with `key` set to `value` in its environment.
    pub fn with_env(mut self, key: &str, value: impl Into<String>) -> Invocation {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Shell-quoted, for `--dry-run` and logs (stdin shown as a heredoc).
    pub fn display(&self) -> String {
        let mut line = std::iter::once(&self.program)
            .chain(&self.args)
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(stdin) = &self.stdin {
            line.push_str(" <<'EOF'\n");
            line.push_str(stdin.trim_end());
            line.push_str("\nEOF");
        }
        line
    }
}

/// One word as a POSIX shell would need it quoted.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_display() {
        assert_eq!(shell_quote("type=gha,scope=a"), "type=gha,scope=a");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        let mut invocation = Invocation::new("docker", vec!["a b".into(), "<d>".into()]);
        assert_eq!(invocation.display(), "docker 'a b' '<d>'");
        invocation.stdin = Some("{}\n".into());
        assert_eq!(invocation.display(), "docker 'a b' '<d>' <<'EOF'\n{}\nEOF");
    }
}
