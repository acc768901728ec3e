//! The two lines of cosign the end-to-end tests sign and gate with: the
//! stack's cosign 2.5 (the first `cosign` on PATH, Debian trixie's) and
//! cosign 3 installed beside it by `.ci/setup-stack` (Debian sid's, in
//! `/opt/cosign3`; `XTASK_TEST_COSIGN3` names another). A test picks one by
//! putting it first on PATH for the xtask process ([`Cosign::first_on_path`]),
//! which is how the tool finds cosign. Missing or the wrong line fails the
//! test loudly, never skips it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A line of cosign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cosign {
    /// The stack's cosign 2.5: `.sig` signatures.
    Two,
    /// cosign 3 beside it: Sigstore bundles.
    Three,
}

impl Cosign {
    pub const BOTH: [Cosign; 2] = [Cosign::Two, Cosign::Three];

    /// The binary.
    pub fn binary(self) -> PathBuf {
        static FOUND: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
        let (two, three) = FOUND.get_or_init(|| {
            let three = std::env::var_os("XTASK_TEST_COSIGN3")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/opt/cosign3/cosign"));
            let two = super::find_on_path("cosign").expect(
                "no cosign on PATH: the end-to-end tests need the stack's cosign 2.5: run `sudo .ci/setup-stack`",
            );
            assert!(
                three.is_file(),
                "no cosign 3 at {}: the sign and gate tests run with cosign 2.5 and 3; run `sudo .ci/setup-stack` \
                 (it installs Debian sid's cosign 3 there) or set XTASK_TEST_COSIGN3",
                three.display()
            );
            for (binary, three_expected) in [(&two, false), (&three, true)] {
                let help = Command::new(binary)
                    .args(["sign", "--help"])
                    .output()
                    .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
                let is_three = String::from_utf8_lossy(&help.stdout)
                    .contains("--use-signing-config=true");
                assert_eq!(
                    is_three,
                    three_expected,
                    "{} is not the cosign {} the tests expect (by its `sign --help`): run `sudo .ci/setup-stack`",
                    binary.display(),
                    if three_expected { "3" } else { "2.5" }
                );
            }
            (two, three)
        });
        match self {
            Cosign::Two => two.clone(),
            Cosign::Three => three.clone(),
        }
    }

    /// A directory holding only `cosign` (this one), to put first on PATH;
    /// made once per test binary (and atomically: other binaries may run).
    pub fn bin_dir(self) -> PathBuf {
        static DIRS: OnceLock<[PathBuf; 2]> = OnceLock::new();
        let dirs = DIRS.get_or_init(|| Cosign::BOTH.map(Cosign::make_bin_dir));
        dirs[self as usize].clone()
    }

    fn make_bin_dir(self) -> PathBuf {
        let dir = super::project_root()
            .join("target/e2e/cosign")
            .join(self.label());
        let link = dir.join("cosign");
        if std::fs::read_link(&link).ok() != Some(self.binary()) {
            std::fs::create_dir_all(&dir).unwrap();
            let temporary = dir.join(format!("cosign.{}", std::process::id()));
            let _ = std::fs::remove_file(&temporary);
            #[cfg(unix)]
            std::os::unix::fs::symlink(self.binary(), &temporary).unwrap();
            std::fs::rename(&temporary, &link).unwrap();
        }
        dir
    }

    /// `command` with this cosign first on its PATH.
    pub fn first_on_path(self, command: &mut Command) -> &mut Command {
        let mut dirs = vec![self.bin_dir()];
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        command.env("PATH", std::env::join_paths(dirs).unwrap())
    }

    /// `cosign ARGS` of this line (no password on the test keys).
    pub fn command(self, args: &[&str]) -> Command {
        let mut command = Command::new(self.binary());
        command.args(args).env("COSIGN_PASSWORD", "");
        command
    }

    /// `cosign2` / `cosign3`, for names and messages.
    pub fn label(self) -> &'static str {
        match self {
            Cosign::Two => "cosign2",
            Cosign::Three => "cosign3",
        }
    }

    /// How this line stores a signature of `digest` under a tag: cosign 2's
    /// `sha256-<hex>.sig`, cosign 3's referrers tag `sha256-<hex>` (the
    /// registry here has no referrers API).
    pub fn signature_tag(self, digest: &str) -> String {
        let tag = digest.replacen(':', "-", 1);
        match self {
            Cosign::Two => format!("{tag}.sig"),
            Cosign::Three => tag,
        }
    }
}

/// The empty signing config cosign 3 signs with a key and no transparency
/// log, and a trusted root that trusts no service, in `dir`; for tests that
/// run cosign 3 themselves.
pub fn offline_signing_files(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("signing-config.json");
    let root = dir.join("trusted-root.json");
    let made = Cosign::Three
        .command(&["signing-config", "create", "--out"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::write(
        &root,
        "{\"mediaType\":\"application/vnd.dev.sigstore.trustedroot+json;version=0.1\"}\n",
    )
    .unwrap();
    (config, root)
}
