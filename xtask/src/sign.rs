//! Signing with cosign, by digest only. `cargo xtask sign` completes a
//! release whose signing step failed, without rebuilding anything.

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};

use crate::context::BuildContext;
use crate::names::ImageRef;
use crate::plan::{Requirement, Signing};
use crate::render;

/// How to sign, shared by `release-image` and `sign`.
#[derive(Debug, Clone, Args)]
pub struct SigningArgs {
    /// How to sign: auto = keyless in GitHub Actions (OIDC), else with --key; none opts out.
    #[arg(long, value_enum, default_value = "auto")]
    pub sign: SignMethod,

    /// Cosign key for key-based signing: a file, env://VAR, or a KMS URI.
    #[arg(long, env = "COSIGN_KEY", value_name = "KEY")]
    pub key: Option<String>,

    /// Upload key-based signatures to the public transparency log (keyless always does).
    #[arg(long)]
    pub tlog: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignMethod {
    Auto,
    Key,
    Keyless,
    None,
}

impl SigningArgs {
    /// The signing identity to use, or why there is none.
    pub fn resolve(&self, context: &BuildContext) -> Result<Signing> {
        let key = || -> Result<Signing> {
            match &self.key {
                Some(key) => Ok(Signing::Key { key: key.clone(), tlog_upload: self.tlog }),
                None => bail!(
                    "signing is on but there is no signing identity: pass --key FILE (make one with `cosign generate-key-pair`) \
                     or set COSIGN_KEY, run in GitHub Actions with `permissions: id-token: write` for keyless signing, or opt out with --sign none"
                ),
            }
        };
        match self.sign {
            SignMethod::None => Ok(Signing::None),
            SignMethod::Key => key(),
            SignMethod::Keyless if context.ci.oidc_available => Ok(Signing::Keyless),
            SignMethod::Keyless => bail!(
                "--sign keyless needs an OIDC identity, and none is available: in GitHub Actions grant `permissions: id-token: write`; elsewhere use --key"
            ),
            SignMethod::Auto if self.key.is_some() => key(),
            SignMethod::Auto if context.ci.oidc_available => Ok(Signing::Keyless),
            SignMethod::Auto => key(),
        }
    }

    /// What must be present before signing with `signing`.
    pub fn requirements(signing: &Signing) -> Vec<Requirement> {
        let mut requirements = Vec::new();
        if *signing != Signing::None {
            requirements.push(Requirement::Cosign);
        }
        if let Signing::Key { key, .. } = signing {
            if !key.contains("://") {
                requirements.push(Requirement::SigningKeyFile(key.clone()));
            }
        }
        requirements
    }
}

#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// Images to sign, by digest (REPO@sha256:...), as a failed release prints them.
    #[arg(required = true, value_name = "IMAGE@DIGEST")]
    pub images: Vec<String>,

    #[command(flatten)]
    pub signing: SigningArgs,

    /// Print the cosign commands instead of running them.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: SignArgs) -> Result<()> {
    let mut references = Vec::new();
    for text in &args.images {
        let image: ImageRef = text.parse()?;
        if image.digest.is_none() {
            bail!("{text} is not a reference by digest: sign by digest, never by tag (REPO@sha256:...; `docker buildx imagetools inspect {text}` shows it)");
        }
        references.push(image);
    }
    let context = crate::context::gather(&crate::project::project_root())?;
    let signing = args.signing.resolve(&context)?;
    if signing == Signing::None {
        bail!("--sign none: nothing to do");
    }
    let invocations: Vec<_> = references
        .iter()
        .filter_map(|r| render::sign_reference(&signing, &r.repository, &r.pinned()))
        .collect();
    if args.dry_run {
        for invocation in &invocations {
            println!("{}", invocation.display());
        }
        return Ok(());
    }
    crate::preflight::check_all(&SigningArgs::requirements(&signing))?;
    let mut signed = Vec::new();
    for (invocation, reference) in invocations.iter().zip(&references) {
        if let Err(err) = crate::exec::run_one(invocation) {
            let unsigned: Vec<String> = references
                .iter()
                .skip(signed.len())
                .map(ImageRef::pinned)
                .collect();
            bail!("{err}; still unsigned: {}", unsigned.join(" "));
        }
        signed.push(reference.pinned());
        println!("signed {}", reference.pinned());
    }
    Ok(())
}
