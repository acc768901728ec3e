//! Signing pushed images by digest, never by tag: what `sign` and
//! `release-image` share. Before anything is built or signed, a run is
//! prepared once ([`prepare`]): the cosign that runs is detected (and
//! refused in one line when it is older than 2.5 or reports no version that
//! can be read), a signing config the user gave is checked (cosign 3 only;
//! keyless needs a certificate authority in it, `--tlog` a transparency
//! log), and a cosign-3 key-based run without the transparency log makes
//! its own signing config, which names no service, and a trusted root that
//! trusts none, in the run's directory.

use std::path::Path;

use anyhow::{bail, Context as _, Result};

use crate::client::{cosign, process};
use crate::model::cosign::signing_config::SigningConfig;
use crate::model::cosign::{CosignLine, CosignRun, TRUSTED_ROOT_FOR_KEYS};
use crate::model::files;
use crate::model::reference::ImageRef;
use crate::plan::Signing;
use crate::{exec, render};

/// The run's cosign setup, as [`prepare`] would make it, checked but with
/// nothing written: what a dry run prints. `cosign` names the cosign that
/// runs, for the refusal of a signing config it cannot use.
pub fn check_run(
    signing: &Signing,
    signing_config: Option<&Path>,
    dir: &Path,
    line: CosignLine,
    cosign: &str,
) -> Result<CosignRun> {
    let mut run = CosignRun::new(line, dir);
    let Some(path) = signing_config.filter(|_| *signing != Signing::None) else {
        return Ok(run);
    };
    if line == CosignLine::V2 {
        bail!(
            "--signing-config needs cosign 3, and {cosign} runs here: install cosign 3 (sigstore/cosign-installer with cosign-release v3.x) \
             and put it first on PATH, or drop --signing-config (cosign 2 signs .sig signatures with --tlog-upload instead)"
        );
    }
    let config = SigningConfig::parse(&files::read_to_string(path)?, path)?;
    config.check(
        path,
        *signing == Signing::Keyless,
        matches!(
            signing,
            Signing::Key {
                tlog_upload: true,
                ..
            }
        ),
    )?;
    run.signing_config = Some(path.to_path_buf());
    Ok(run)
}

/// The line a dry run renders for and what it says about it: the detected
/// cosign's (refused as a real run would refuse it), or cosign 3's when
/// there is none on PATH.
pub fn dry_run_line() -> Result<(CosignLine, String, Option<String>)> {
    Ok(match cosign::detect_for_dry_run()? {
        Some(cosign) => (
            cosign.release.line,
            format!("{} (at {})", cosign.release, cosign.path.display()),
            None,
        ),
        None => (
            CosignLine::V3,
            "cosign 3".to_string(),
            Some("cosign is not on PATH: these are the commands cosign 3 would run".to_string()),
        ),
    })
}

/// [`check_run`] for a dry run: the run, and a note to print when no
/// cosign was found.
pub fn dry_run(
    signing: &Signing,
    signing_config: Option<&Path>,
    dir: &Path,
) -> Result<(CosignRun, Option<String>)> {
    let (line, shown, note) = dry_run_line()?;
    Ok((check_run(signing, signing_config, dir, line, &shown)?, note))
}

/// Prepares a run that signs as `signing` (see the module comment) in
/// `dir`; refuses, in one line, what cannot sign.
pub fn prepare(signing: &Signing, signing_config: Option<&Path>, dir: &Path) -> Result<CosignRun> {
    let cosign = cosign::detect()?;
    let shown = format!("{} (at {})", cosign.release, cosign.path.display());
    let run = check_run(signing, signing_config, dir, cosign.release.line, &shown)?;
    if render::signs_with_own_trusted_root(signing, &run) {
        files::create_dir_all(dir)?;
        files::write(&run.trusted_root(), TRUSTED_ROOT_FOR_KEYS)?;
    }
    for invocation in render::sign_preparation(signing, &run) {
        process::run(&invocation).context(
            "cannot make the signing config for a key without the transparency log (is cosign 3 working? `cosign signing-config create --help`)",
        )?;
    }
    Ok(run)
}

/// Signs every reference by digest: the stage rendered at once, run by the
/// one loop; on a failure, says which are still unsigned.
pub fn sign_references(signing: &Signing, run: &CosignRun, references: &[ImageRef]) -> Result<()> {
    let steps = render::signatures(signing, run, references);
    if let Err(stopped) = exec::run_steps(&steps, &mut |_| {}) {
        let unsigned: Vec<&str> = steps[stopped.done..]
            .iter()
            .map(|s| s.what.as_str())
            .collect();
        bail!(
            "signing failed ({}); no tag was moved; still unsigned: {}",
            stopped.error,
            unsigned.join(" ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tlog_upload: bool) -> Signing {
        Signing::Key {
            key: "cosign.key".into(),
            tlog_upload,
        }
    }

    #[test]
    fn a_signing_config_is_checked_before_anything_runs() {
        let dir = std::env::temp_dir().join(format!("xtask-sign-{}", files::unique_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.json");
        std::fs::write(
            &empty,
            r#"{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json","rekorTlogConfig":{},"tsaConfig":{}}"#,
        )
        .unwrap();
        let run = check_run(
            &key(false),
            Some(&empty),
            &dir,
            CosignLine::V3,
            "cosign 3.1.1",
        )
        .unwrap();
        assert_eq!(run.signing_config.as_deref(), Some(empty.as_path()));
        let keyless = check_run(
            &Signing::Keyless,
            Some(&empty),
            &dir,
            CosignLine::V3,
            "cosign 3.1.1",
        )
        .unwrap_err()
        .to_string();
        assert!(keyless.contains("names no signer"), "{keyless}");
        let tlog = check_run(
            &key(true),
            Some(&empty),
            &dir,
            CosignLine::V3,
            "cosign 3.1.1",
        )
        .unwrap_err()
        .to_string();
        assert!(tlog.contains("rekorTlogUrls"), "{tlog}");
        let old = check_run(
            &key(false),
            Some(&empty),
            &dir,
            CosignLine::V2,
            "cosign 2.5.0 (at /usr/bin/cosign)",
        )
        .unwrap_err()
        .to_string();
        assert!(
            old.starts_with(
                "--signing-config needs cosign 3, and cosign 2.5.0 (at /usr/bin/cosign) runs here"
            ),
            "{old}"
        );
        let missing = check_run(
            &key(false),
            Some(&dir.join("none.json")),
            &dir,
            CosignLine::V3,
            "c",
        )
        .unwrap_err();
        assert!(format!("{missing:#}").contains("none.json"));
        // Not signing: the config is not read.
        assert!(check_run(
            &Signing::None,
            Some(&dir.join("none.json")),
            &dir,
            CosignLine::V2,
            "c"
        )
        .is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
