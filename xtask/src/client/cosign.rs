//! cosign, the one client: which cosign runs, detected once per run (one
//! cosign binary per run: the first on PATH), and cosign's own commands.
//!
//! The version comes from `cosign version --json` (`gitVersion`, `v3.1.1`
//! for upstream binaries). Distribution builds report `devel`; then the
//! flags decide (`model::cosign::line_from_flags`). A cosign older than 2.5,
//! or one whose version cannot be read, is refused in one line naming what
//! was found and what is needed, before anything is built.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Result};

use crate::client::process::{self, Captured, Invocation};
use crate::model::cosign::{
    line_from_flags, read_version_json, refusal, CosignRelease, Probe, Reported, INSTALL_HINT,
};

/// The cosign of this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosign {
    /// Where it was found on PATH.
    pub path: PathBuf,
    pub release: CosignRelease,
}

/// The cosign on PATH, or why it cannot be used (one line). Asked once per
/// run; every later call answers from that.
pub fn detect() -> Result<Cosign> {
    static DETECTED: OnceLock<std::result::Result<Cosign, String>> = OnceLock::new();
    match DETECTED.get_or_init(detect_now) {
        Ok(cosign) => Ok(cosign.clone()),
        Err(reason) => bail!("{reason}"),
    }
}

/// The cosign a dry run renders for: the detected one, or `None` when
/// there is no cosign on PATH (the dry run then says which line it
/// assumed). A cosign that is there but cannot be used is refused, as a real
/// run would.
pub fn detect_for_dry_run() -> Result<Option<Cosign>> {
    if find().is_none() {
        return Ok(None);
    }
    detect().map(Some)
}

/// The first `cosign` on PATH, without running it.
pub fn find() -> Option<PathBuf> {
    process::find_program("cosign")
}

fn cosign(args: &[&str]) -> Invocation {
    Invocation::new("cosign", args.iter().map(|a| a.to_string()).collect())
}

/// `cosign version --json`.
pub fn version_command() -> Invocation {
    cosign(&["version", "--json"])
}

/// `cosign SUBCOMMAND --help`: the flags it has, and their defaults.
pub fn help_command(subcommand: &str) -> Invocation {
    cosign(&[subcommand, "--help"])
}

fn detect_now() -> std::result::Result<Cosign, String> {
    let Some(path) = find() else {
        return Err(format!(
            "cosign not found on PATH: this tool needs cosign 2.5 or newer (3.x recommended): {INSTALL_HINT}, or pass --sign none"
        ));
    };
    let shown = path.display().to_string();
    let ask = |invocation: &Invocation| -> std::result::Result<Captured, String> {
        process::capture(invocation).map_err(|err| refusal(&shown, &format!("nothing ({err:#})")))
    };
    let version = ask(&version_command())?;
    let reported = if version.success {
        read_version_json(&version.stdout_text())
    } else {
        Err(format!(
            "`cosign version --json` failed: {}",
            version.last_words()
        ))
    }
    .map_err(|why| refusal(&shown, &format!("none that can be read ({why})")))?;
    let release = match reported {
        Reported::Release(reported, version) => match version.line() {
            Some(line) => CosignRelease {
                reported,
                version: Some(version),
                line,
            },
            None => return Err(refusal(&shown, &reported)),
        },
        Reported::Unnumbered(reported) => {
            let sign = ask(&help_command("sign"))?.stdout_text();
            let mut probe = line_from_flags(&sign, None);
            if probe == Probe::AskVerifyAttestation {
                let verify = ask(&help_command("verify-attestation"))?.stdout_text();
                probe = line_from_flags(&sign, Some(&verify));
            }
            match probe {
                Probe::Line(line) => CosignRelease {
                    reported,
                    version: None,
                    line,
                },
                Probe::TooOld | Probe::AskVerifyAttestation => {
                    return Err(refusal(
                        &shown,
                        &format!(
                            "{reported:?} (a build without a version number, whose flags are those of cosign 2.4 or older: \
                             no `verify-attestation --trusted-root`)"
                        ),
                    ))
                }
            }
        }
    };
    Ok(Cosign { path, release })
}

/// `cosign signing-config create --out FILE`: a signing config that names
/// no service (a key signs, nothing goes to a transparency log or a
/// timestamp authority). Works offline.
pub fn create_signing_config(out: &Path) -> Invocation {
    Invocation::new(
        "cosign",
        vec![
            "signing-config".to_string(),
            "create".to_string(),
            format!("--out={}", out.display()),
        ],
    )
}

/// `cosign public-key`: writes the public half of `key` to `out`.
pub fn public_key(key: &str, out: &Path) -> Invocation {
    Invocation::new(
        "cosign",
        vec![
            "public-key".to_string(),
            format!("--key={key}"),
            format!("--outfile={}", out.display()),
        ],
    )
}

/// Runs a cosign verification quietly: its stdout when it passed,
/// otherwise the reason it gave (its last `Error:` line).
pub fn verify(invocation: &Invocation) -> Result<std::result::Result<String, String>> {
    let captured = process::capture(invocation)?;
    if captured.success {
        return Ok(Ok(captured.stdout_text()));
    }
    let stderr = captured.stderr_text();
    let reason = stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| {
            l.starts_with("Error") || l.contains("no signatures") || l.contains("no matching")
        })
        .map(String::from)
        .unwrap_or_else(|| captured.last_words());
    let reason = ["error during command execution: ", "Error: "]
        .iter()
        .fold(reason.as_str(), |r, prefix| {
            r.strip_prefix(prefix).unwrap_or(r)
        })
        .to_string();
    Ok(Err(reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_own_commands() {
        assert_eq!(
            create_signing_config(Path::new("run/signing-config.json")).display(),
            "cosign signing-config create --out=run/signing-config.json"
        );
        assert_eq!(version_command().display(), "cosign version --json");
        assert_eq!(help_command("sign").display(), "cosign sign --help");
        assert_eq!(
            public_key("k.key", Path::new("run/cosign.pub")).display(),
            "cosign public-key --key=k.key --outfile=run/cosign.pub"
        );
    }

    #[test]
    fn a_verification_reports_cosigns_reason() {
        let sh = |script: &str| Invocation::new("sh", vec!["-c".into(), script.into()]);
        assert_eq!(verify(&sh("echo '[]'")).unwrap(), Ok("[]\n".to_string()));
        assert_eq!(
            verify(&sh("echo 'WARNING: x' >&2; echo 'Error: no matching signatures: invalid signature' >&2; echo 'error during command execution: no matching signatures' >&2; exit 12")).unwrap(),
            Err("no matching signatures".to_string())
        );
    }
}
