//! The flags of the stages over a release record (`merge-release`, `sign`,
//! `verify`, `scan`, `promote`) and of the checks of a published image
//! (`verify IMAGE`, `rebuild-check`).

use std::path::PathBuf;

use clap::Args;

use super::build::{SigningArgs, TagArgs};
use super::one_of;
use crate::commands::{merge_release, promote, rebuild_check, scan, sign, verify};
use crate::exec::RunOptions;
use crate::model::build_arg::BuildArg;
use crate::model::identity::GithubRepository;
use crate::model::names::{Platform, Platforms};
use crate::model::reference::{ImageName, ImageRef, Registry};
use crate::plan::admission::{PolicyKind, SignatureFormat};
use crate::plan::gate::SignerRequest;
use crate::plan::{BuildOptions, DEFAULT_PLATFORMS};

/// The repository a release record must be a release to, as release-image
/// named it (`sign`, `scan`, `promote`).
#[derive(Debug, Clone, Args)]
pub struct RecordNaming {
    /// The registry and namespace the release record must be a release to (release-image's
    /// --registry), e.g. ghcr.io/acme or 127.0.0.1:5000. Default: ghcr.io/<owner> in GitHub
    /// Actions; required elsewhere.
    #[arg(long, env = "IMAGE_REGISTRY", value_name = "REGISTRY")]
    pub registry: Option<Registry>,

    /// The image name the release record must be a release to (release-image's --image-name).
    #[arg(
        long,
        env = "IMAGE_NAME",
        default_value = "beacon",
        value_name = "NAME"
    )]
    pub image_name: ImageName,
}

#[derive(Debug, Clone, Args)]
pub struct MergeReleaseArgs {
    /// The part records the build jobs wrote (release-image --build-only --part --record FILE),
    /// one per runner: repeat --part, or give several files after one.
    #[arg(long = "part", value_name = "FILE", required = true, num_args = 1..)]
    pub parts: Vec<PathBuf>,

    /// The release record to write: what sign, verify, scan and promote read.
    #[arg(long, value_name = "FILE")]
    pub record: PathBuf,

    #[command(flatten)]
    pub naming: RecordNaming,

    /// The variants of the release, as release-image was given them (repeatable); default:
    /// every directory under images/.
    #[arg(long = "variant", value_name = "NAME")]
    pub variants: Vec<String>,

    /// The build arguments release-image was given (repeatable): the release is planned again
    /// from this checkout, and the parts must be its builds.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<BuildArg>,

    /// The host-built binaries release-image was given, if any.
    #[arg(long, value_name = "DIR")]
    pub binaries: Option<PathBuf>,

    /// The platforms of the whole release: every one in exactly one part.
    #[arg(long, value_name = "OS/ARCH,...", default_value = DEFAULT_PLATFORMS)]
    pub platform: Platforms,

    /// The tags the parts record are derived again from this checkout's ref and its release
    /// tags (check out with full history), as release-image derived them.
    #[command(flatten)]
    pub tags: TagArgs,

    /// Print the checks and the commands of the merge (registry lookups included), push nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the merge plan (with --dry-run) or the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl MergeReleaseArgs {
    pub fn into_options(self) -> merge_release::MergeReleaseOptions {
        merge_release::MergeReleaseOptions {
            parts: self.parts,
            record: self.record,
            build: BuildOptions {
                variants: self.variants,
                registry: self.naming.registry,
                image_name: self.naming.image_name,
                build_args: self.build_args,
                binaries: self.binaries,
                no_cache: false,
            },
            platforms: self.platform.into_vec(),
            default_variant: self.tags.default_variant,
            force: self.tags.force,
            allow_any_ref: self.tags.allow_any_ref,
            run: RunOptions {
                dry_run: self.dry_run,
                json: self.json,
            },
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// Images to sign, by digest (REPO@sha256:...), as a failed release prints them; or --record.
    #[arg(value_name = "IMAGE@DIGEST", required_unless_present = "record")]
    pub images: Vec<ImageRef>,

    /// The release record the build stage wrote (release-image --build-only --record FILE).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    #[command(flatten)]
    pub naming: RecordNaming,

    #[command(flatten)]
    pub signing: SigningArgs,

    /// Print the cosign commands instead of running them.
    #[arg(long)]
    pub dry_run: bool,
}

impl SignArgs {
    pub fn into_options(self) -> sign::SignOptions {
        sign::SignOptions {
            signing: self.signing.request(),
            images: self.images,
            record: self.record,
            registry: self.naming.registry,
            image_name: self.naming.image_name,
            dry_run: self.dry_run,
        }
    }
}

/// Who must have signed an image: one of --repository, --key, --certificate-identity-regexp.
#[derive(Debug, Clone, Args)]
pub struct SignerArgs {
    /// Keyless: the images must be signed by this repository's release workflow
    /// (.github/workflows/build-push.yml) on main or a release tag vX.Y.Z, triggered by a push.
    #[arg(long, value_name = "OWNER/REPO")]
    pub repository: Option<GithubRepository>,

    /// The public key the images must be signed with (file, env://VAR or KMS URI).
    #[arg(long, env = "COSIGN_PUBLIC_KEY", value_name = "KEY")]
    pub key: Option<String>,

    /// Keyless, another signer: its identity as an anchored regexp (prefer --repository).
    #[arg(long, value_name = "REGEXP")]
    pub certificate_identity_regexp: Option<String>,

    /// Keyless: the OIDC issuer of the signer.
    #[arg(
        long,
        value_name = "URL",
        default_value = "https://token.actions.githubusercontent.com"
    )]
    pub certificate_oidc_issuer: String,

    /// With --key: also require a transparency log entry (key-signed images have one only if
    /// released with --tlog; keyless signatures always have one).
    #[arg(long)]
    pub tlog: bool,
}

impl SignerArgs {
    fn request(&self) -> SignerRequest {
        SignerRequest {
            key: self.key.clone(),
            repository: self.repository.clone(),
            certificate_identity_regexp: self.certificate_identity_regexp.clone(),
            certificate_oidc_issuer: Some(self.certificate_oidc_issuer.clone()),
            tlog: self.tlog,
        }
    }
}

/// The repository `verify` checks a record against, or writes a policy for.
#[derive(Debug, Clone, Args)]
pub struct VerifyNaming {
    /// With --record: the registry and namespace the release must be a release to (release-image's
    /// --registry; default: ghcr.io/<owner> in GitHub Actions, required elsewhere). With --policy:
    /// those of the repository the policy guards (default: ghcr.io/<owner> of --repository).
    /// An IMAGE names its own.
    #[arg(long, env = "IMAGE_REGISTRY", value_name = "REGISTRY")]
    pub registry: Option<Registry>,

    /// With --record or --policy: the image name under the registry (release-image's --image-name).
    #[arg(
        long,
        env = "IMAGE_NAME",
        default_value = "beacon",
        value_name = "NAME"
    )]
    pub image_name: ImageName,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The image to check (tag or digest); or --record, or --policy.
    #[arg(value_name = "IMAGE", required_unless_present_any = ["record", "policy"])]
    pub image: Option<ImageRef>,

    /// Print an admission policy instead: a Kyverno ClusterPolicy or a sigstore policy-controller
    /// ClusterImagePolicy admitting only images of the repository (--registry/--image-name; default
    /// ghcr.io/<owner>/beacon with --repository) signed by the expected signer, by digest.
    #[arg(long, value_name = "KIND", conflicts_with_all = ["image", "record"], value_parser = one_of::<PolicyKind>(PolicyKind::NAMES))]
    pub policy: Option<PolicyKind>,

    /// With --policy: the signatures' format, the one the release wrote: bundle (cosign 3's
    /// Sigstore bundles, what the release workflow signs) or legacy (cosign 2's .sig signatures).
    #[arg(long, value_name = "FORMAT", default_value = "bundle", requires = "policy", value_parser = one_of::<SignatureFormat>(SignatureFormat::NAMES))]
    pub signature_format: SignatureFormat,

    /// The release record the build stage wrote (release-image --build-only --record FILE).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    #[command(flatten)]
    pub naming: VerifyNaming,

    #[command(flatten)]
    pub signer: SignerArgs,

    /// Platforms the image (every variant of the record) must provide.
    #[arg(long, value_name = "OS/ARCH,...", default_value = DEFAULT_PLATFORMS)]
    pub platform: Platforms,
}

impl VerifyArgs {
    pub fn into_options(self) -> verify::VerifyOptions {
        verify::VerifyOptions {
            image: self.image,
            policy: self.policy,
            signature_format: self.signature_format,
            record: self.record,
            registry: self.naming.registry,
            image_name: self.naming.image_name,
            signer: self.signer.request(),
            platforms: self.platform.into_vec(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    /// One image to scan, by digest; or --record.
    #[arg(value_name = "IMAGE@DIGEST", required_unless_present = "record")]
    pub image: Option<ImageRef>,

    /// The release record the build stage wrote (release-image --build-only --record FILE).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    #[command(flatten)]
    pub naming: RecordNaming,

    /// With --record: scan only this variant (repeatable); default: every variant.
    #[arg(long = "variant", value_name = "NAME")]
    pub variants: Vec<String>,

    /// The scanner: trivy, or a program that takes trivy's arguments and writes its JSON report.
    #[arg(long, value_name = "PROGRAM", default_value = scan::DEFAULT_SCANNER)]
    pub scanner: String,

    /// Print the scanner's command lines, and run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl ScanArgs {
    pub fn into_options(self) -> scan::ScanOptions {
        scan::ScanOptions {
            image: self.image,
            record: self.record,
            variants: self.variants,
            registry: self.naming.registry,
            image_name: self.naming.image_name,
            scanner: self.scanner,
            dry_run: self.dry_run,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct PromoteArgs {
    /// The release record the build stage wrote.
    #[arg(long, value_name = "FILE")]
    pub record: PathBuf,

    #[command(flatten)]
    pub naming: RecordNaming,

    #[command(flatten)]
    pub signer: SignerArgs,

    /// Platforms every image must provide.
    #[arg(long, value_name = "OS/ARCH,...", default_value = DEFAULT_PLATFORMS)]
    pub platform: Platforms,

    /// The tags moved are derived again from this checkout's ref and its
    /// release tags (check out with full history), as release-image derived
    /// them; the record's list must be the same.
    #[command(flatten)]
    pub tags: TagArgs,

    /// Print the gate's checks and the tag moves, and run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl PromoteArgs {
    pub fn into_options(self) -> promote::PromoteOptions {
        promote::PromoteOptions {
            record: self.record,
            registry: self.naming.registry,
            image_name: self.naming.image_name,
            signer: self.signer.request(),
            platforms: self.platform.into_vec(),
            default_variant: self.tags.default_variant,
            force: self.tags.force,
            allow_any_ref: self.tags.allow_any_ref,
            dry_run: self.dry_run,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct RebuildCheckArgs {
    /// The published image (tag or digest).
    #[arg(value_name = "IMAGE")]
    pub image: ImageRef,

    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,

    /// The buildx builder to build with (one `docker buildx ls` lists); default: the current
    /// one. A `docker`-driver builder of another docker context is used through its engine:
    /// every engine command of the run becomes `docker --context CONTEXT ...`.
    #[arg(long, value_name = "NAME")]
    pub builder: Option<String>,

    /// Check only this platform of the image (default: every platform), rebuilt the way it
    /// was built: natively on a machine (or --builder node) of its platform, or
    /// cross-compiled from the build platform its provenance records.
    #[arg(long, value_name = "OS/ARCH", value_parser = one_platform_to_check)]
    pub platform: Option<Platform>,
}

/// `--platform` of `rebuild-check`: exactly one platform (none: all).
fn one_platform_to_check(text: &str) -> anyhow::Result<Platform> {
    match text.parse::<Platforms>()?.into_vec().as_slice() {
        [one] => Ok(one.clone()),
        _ => anyhow::bail!(
            "rebuild-check checks one platform (--platform linux/arm64) or, without --platform, every platform of the image; got {text:?}"
        ),
    }
}

impl RebuildCheckArgs {
    pub fn into_options(self) -> rebuild_check::RebuildCheckOptions {
        rebuild_check::RebuildCheckOptions {
            image: self.image,
            json: self.json,
            builder: self.builder,
            platform: self.platform,
        }
    }
}
