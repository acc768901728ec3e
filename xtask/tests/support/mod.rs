//! Helpers shared by the integration tests of `cargo xtask`: they run the
//! real binary (never through cargo, so cargo's own output never mixes in),
//! in a controlled environment, with recording shims in place of docker,
//! cosign and friends.
//!
//! Use from a test file with `mod support;`; [`e2e`] holds the helpers of
//! the end-to-end tests on the real stack.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod builders;
pub mod compile;
pub mod cosign;
pub mod e2e;
pub mod parts;
pub mod scratch;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use xtask::context::{BuildContext, CiEnv, GitState};

/// Held while an executable file is written and while a child is spawned, so
/// no child forked by another test thread inherits a shim still open for
/// writing (executing it would then fail with ETXTBSY, "Text file busy").
static SPAWN_LOCK: Mutex<()> = Mutex::new(());

fn spawn_lock() -> std::sync::MutexGuard<'static, ()> {
    SPAWN_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The project root (the parent of the xtask crate).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The xtask binary, with an empty environment except `HOME`, started in the
/// project root. Nothing of the caller's environment leaks in (`CI`,
/// `GITHUB_*`, `IMAGE_REGISTRY`, `COSIGN_KEY`, `XTASK_PARSE_ONLY`, ...); set
/// `PATH` and `XTASK_CONTEXT` explicitly for what a test needs.
pub fn xtask() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.env_clear();
    if let Some(home) = std::env::var_os("HOME") {
        command.env("HOME", home);
    }
    // Belt and braces: env_clear already removed them.
    for name in [
        "CI",
        "GITHUB_ACTIONS",
        "XTASK_CONTEXT",
        "XTASK_PARSE_ONLY",
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
    ] {
        command.env_remove(name);
    }
    command.current_dir(project_root());
    command
}

/// Runs a command to completion, stdin empty, capturing stdout and stderr.
pub fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = {
        let _guard = spawn_lock();
        command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
    };
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot wait for {command:?}: {e}"))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::SeqCst);
        let label: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = std::env::temp_dir().join(format!(
            "xtask-test-{}-{unique}-{label}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("cannot create a temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Writes an executable file (mode 0755).
pub fn write_executable(path: &Path, contents: &str) {
    let _guard = spawn_lock();
    std::fs::write(path, contents)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .expect("cannot chmod a shim");
    }
}

/// Single-quotes a word for /bin/sh.
pub fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// What a shim answers to one command line.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Matches when the arguments (joined by spaces) start with this.
    pub args_prefix: String,
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    pub fn ok(args_prefix: &str, stdout: &str) -> Reply {
        Reply {
            args_prefix: args_prefix.into(),
            status: 0,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    pub fn fail(args_prefix: &str, status: i32, stderr: &str) -> Reply {
        Reply {
            args_prefix: args_prefix.into(),
            status,
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }
}

/// What `docker buildx inspect` prints for a docker-container builder with these platforms.
pub fn buildx_inspect(platforms: &str) -> String {
    format!("Name: default\nDriver: docker-container\nPlatforms: {platforms}\n")
}

/// A temp directory of shim executables to put first on PATH. Every shim
/// appends `PROGRAM ARGS...` as one line to a shared log, then answers by the
/// first matching [`Reply`] (or exits 0 silently).
pub struct Shims {
    dir: TempDir,
    bin: PathBuf,
    log: PathBuf,
}

impl Shims {
    pub fn new(label: &str) -> Shims {
        let dir = TempDir::new(label);
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("cannot create the shim dir");
        let log = dir.path().join("calls.log");
        std::fs::write(&log, "").expect("cannot create the shim log");
        Shims { dir, bin, log }
    }

    /// The directory holding the shims.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// A scratch directory that is removed with the shims.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// A shim `name` that logs its call and runs `body` (shell) after that.
    pub fn script(&self, name: &str, body: &str) -> &Shims {
        let text = format!(
            "#!/bin/sh\nprintf '%s %s\\n' {name} \"$*\" >> {log}\n{body}\n",
            name = sh_quote(name),
            log = sh_quote(&self.log.display().to_string()),
        );
        write_executable(&self.bin.join(name), &text);
        self
    }

    /// A shim `name` answering by `replies` (first matching prefix wins), else exiting 0.
    pub fn program(&self, name: &str, replies: &[Reply]) -> &Shims {
        let mut body = String::from("case \"$*\" in\n");
        for reply in replies {
            let _ = writeln!(
                body,
                "  {prefix}*) printf '%s' {out}; printf '%s' {err} >&2; exit {status};;",
                prefix = sh_quote(&reply.args_prefix),
                out = sh_quote(&reply.stdout),
                err = sh_quote(&reply.stderr),
                status = reply.status,
            );
        }
        body.push_str("esac\nexit 0");
        self.script(name, &body)
    }

    /// A docker whose buildx works, whose engine answers, and whose builder
    /// (driver docker-container) builds `platforms` (as `docker buildx inspect` lists them).
    pub fn healthy_docker(&self, platforms: &str) -> &Shims {
        self.program(
            "docker",
            &[
                Reply::ok(
                    "buildx version",
                    "github.com/docker/buildx v0.20.0 0123456\n",
                ),
                Reply::ok("version", "27.5.1\n"),
                Reply::ok("buildx inspect", &buildx_inspect(platforms)),
            ],
        )
    }

    /// A shim that logs its call and then runs the real program at `real`.
    pub fn wrap(&self, name: &str, real: &Path) -> &Shims {
        self.script(
            name,
            &format!("exec {} \"$@\"", sh_quote(&real.display().to_string())),
        )
    }

    /// PATH with the shims first, then the test's own PATH.
    pub fn path(&self) -> OsString {
        let mut dirs = vec![self.bin.clone()];
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        std::env::join_paths(dirs).expect("PATH entries are joinable")
    }

    /// Every recorded call, one `PROGRAM ARGS...` per line.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails if any shim was asked to build, push, tag, sign or delete.
    pub fn assert_nothing_built_or_pushed(&self) {
        let log = self.log();
        for line in log.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let joined = words.join(" ");
            if words.last() == Some(&"--help") {
                continue; // asking a program for its flags (cosign's line) does nothing
            }
            let forbidden = [
                "buildx bake",
                "buildx build",
                "imagetools create",
                "cosign sign",
                "cosign attest",
                "skopeo copy",
            ]
            .iter()
            .any(|f| joined.contains(f))
                || words
                    .iter()
                    .any(|w| matches!(*w, "push" | "--push" | "load" | "--load" | "tag" | "rmi"));
            assert!(
                !forbidden,
                "a shim was asked to build, push, tag or sign: {line}\nall calls:\n{log}"
            );
        }
    }
}

/// Finds an executable on the test's own PATH.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                candidate
                    .metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            }
            #[cfg(not(unix))]
            {
                candidate.is_file()
            }
        })
}

/// A directory holding only a `git` symlink (when git is installed): a PATH
/// on which everything else, docker included, is missing.
pub fn path_with_only_git(dir: &Path) -> PathBuf {
    let bin = dir.join("only-git");
    std::fs::create_dir_all(&bin).expect("cannot create the bin dir");
    #[cfg(unix)]
    if let Some(git) = find_on_path("git") {
        let _guard = spawn_lock();
        let _ = std::os::unix::fs::symlink(git, bin.join("git"));
    }
    bin
}

/// The facts `XTASK_CONTEXT` replaces, flattened for tests to write
/// `..Context::default()`; written as the library's own `BuildContext`. The
/// default is a clean laptop checkout of `main`, outside any CI.
#[derive(Debug, Clone)]
pub struct Context {
    pub revision: String,
    pub commit_time: i64,
    pub dirty: bool,
    pub branch: Option<String>,
    pub tags_at_head: Vec<String>,
    pub release_tags: Vec<String>,
    pub source_url: String,
    pub github_actions: bool,
    pub event_name: Option<String>,
    pub git_ref: Option<String>,
    pub repository: Option<String>,
    pub repository_owner: Option<String>,
    pub server_url: Option<String>,
    pub workflow_ref: Option<String>,
    pub oidc_available: bool,
    pub native_platform: String,
}

impl Default for Context {
    fn default() -> Context {
        Context {
            revision: "0123456789abcdef0123456789abcdef01234567".into(),
            commit_time: 1_700_000_000,
            dirty: false,
            branch: Some("main".into()),
            tags_at_head: Vec::new(),
            release_tags: Vec::new(),
            source_url: "https://github.com/acme/beacon".into(),
            github_actions: false,
            event_name: None,
            git_ref: None,
            repository: None,
            repository_owner: None,
            server_url: None,
            workflow_ref: None,
            oidc_available: false,
            native_platform: "linux/amd64".into(),
        }
    }
}

impl Context {
    /// A GitHub Actions job of acme/beacon (owner spelled `Acme`) for `git_ref`
    /// (refs/heads/main, refs/tags/v1.2.3, refs/pull/7/merge), with a detached
    /// checkout as actions/checkout leaves it.
    pub fn github(git_ref: &str) -> Context {
        let event = if git_ref.starts_with("refs/pull/") {
            "pull_request"
        } else {
            "push"
        };
        Context {
            branch: None,
            github_actions: true,
            event_name: Some(event.into()),
            git_ref: Some(git_ref.into()),
            repository: Some("Acme/beacon".into()),
            repository_owner: Some("Acme".into()),
            server_url: Some("https://github.com".into()),
            workflow_ref: Some(
                "Acme/beacon/.github/workflows/build-push.yml@".to_string() + git_ref,
            ),
            ..Context::default()
        }
    }

    /// The library's own context type, which `XTASK_CONTEXT` reads.
    pub fn build_context(&self) -> BuildContext {
        BuildContext {
            git: GitState {
                revision: self.revision.clone(),
                commit_time: self.commit_time,
                dirty: self.dirty,
                branch: self.branch.clone(),
                tags_at_head: self.tags_at_head.clone(),
                release_tags: self.release_tags.clone(),
                source_url: self.source_url.clone(),
            },
            ci: CiEnv {
                github_actions: self.github_actions,
                event_name: self.event_name.clone(),
                git_ref: self.git_ref.clone(),
                repository: self.repository.clone(),
                repository_owner: self.repository_owner.clone(),
                server_url: self.server_url.clone(),
                workflow_ref: self.workflow_ref.clone(),
                oidc_available: self.oidc_available,
            },
            native_platform: self
                .native_platform
                .parse()
                .expect("a valid native platform"),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.build_context()).expect("a context serializes")
    }

    /// Writes the context as `DIR/context.json` and returns its path (for `XTASK_CONTEXT`).
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("context.json");
        std::fs::write(&path, self.to_json()).expect("cannot write the context file");
        path
    }
}

/// Asserts a refusal: a non-zero exit and a stderr of exactly one line that
/// starts with `error: ` and contains every one of `keywords`. Returns the line.
#[track_caller]
pub fn assert_one_line_error(output: &Output, keywords: &[&str]) -> String {
    let (out, err) = (stdout(output), stderr(output));
    assert!(
        !output.status.success(),
        "expected a failure, got {}\nstdout:\n{out}\nstderr:\n{err}",
        output.status
    );
    assert!(
        err.ends_with('\n') && err.lines().count() == 1,
        "stderr must be exactly one line, got:\n{err}"
    );
    let line = err.trim_end_matches('\n').to_string();
    assert!(
        line.starts_with("error: "),
        "stderr must start with `error: `, got: {line}"
    );
    for keyword in keywords {
        assert!(
            line.contains(keyword),
            "the error should mention {keyword:?}: {line}"
        );
    }
    line
}
