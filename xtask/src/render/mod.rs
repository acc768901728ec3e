//! Rendering: a plan becomes the exact commands that run, a stage at a
//! time. The build is one `docker buildx bake` of every variant
//! ([`bake`]); each later stage (pushing OCI archives by digest, moving CI
//! tags, signing, the gate, the promotion's tag moves) is rendered whole
//! from what the stages before it pushed ([`Pushed`]), and run by one
//! loop (`exec::run_steps`). A digest not known yet is named by a
//! placeholder (`<digest:VARIANT>`): that is what `--dry-run` prints, and
//! what a real run never does (it renders a stage once the digests are
//! known). Every path a command names is under the run's own [`RunFiles`]
//! directory, so two runs in one checkout never share a file.

mod bake;
mod cosign;

pub use self::bake::{bake_file, build};
pub use self::cosign::{
    cosign_verify, gate_image, public_key, sign_preparation, sign_reference,
    signs_with_own_trusted_root, verifies_with_own_trusted_root,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::client::registry;
pub use crate::model::command::Invocation;
use crate::model::cosign::{CosignLine, CosignRun};
use crate::model::names::Platform;
use crate::model::reference::{Digest, ImageRef};
use crate::plan::gate::ExpectedSigner;
use crate::plan::record::latest_last;
use crate::plan::{Mode, Output, Plan, PushVia, Signing, VariantPlan};

/// What the stages before pushed, as a later stage's commands name it:
/// each variant's index digest, and its platform images' digests. What is
/// not known (yet, or in a dry run) is named by a placeholder:
/// `<digest:VARIANT>`, `<digest:VARIANT:PLATFORM>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pushed {
    pub indexes: BTreeMap<String, Digest>,
    /// Per variant, per platform (`linux/amd64`), the image's digest.
    pub platforms: BTreeMap<String, BTreeMap<String, Digest>>,
}

impl Pushed {
    /// A variant's pushed index, by digest.
    pub fn index(&self, plan: &Plan, variant: &str) -> ImageRef {
        let digest = self
            .indexes
            .get(variant)
            .cloned()
            .unwrap_or_else(|| Digest::placeholder(variant));
        plan.repository.at(&digest)
    }

    /// One platform image of a variant's pushed index.
    pub fn platform(&self, variant: &str, platform: &Platform) -> Digest {
        self.platforms
            .get(variant)
            .and_then(|p| p.get(&platform.to_string()))
            .cloned()
            .unwrap_or_else(|| Digest::placeholder(&format!("{variant}:{platform}")))
    }
}

/// One command of a stage, and what it does (named when it fails).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub what: String,
    pub invocation: Invocation,
}

impl Step {
    fn new(what: impl Into<String>, invocation: Invocation) -> Step {
        Step {
            what: what.into(),
            invocation,
        }
    }
}

/// The commands of steps, as a dry run prints them.
pub fn commands(steps: Vec<Step>) -> impl Iterator<Item = Invocation> {
    steps.into_iter().map(|s| s.invocation)
}

/// The files of one run, in a directory of its own: buildx's metadata file
/// and the OCI archives (docker driver pushes, rebuild-check's output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFiles {
    /// The run's directory (relative to the project root, where buildx runs).
    pub dir: PathBuf,
    /// Where OCI archives go when they are the result (`Output::Archive`).
    pub archives: Option<PathBuf>,
}

impl RunFiles {
    /// The directory `target/xtask/runs/<command>-<id>` of a run.
    pub fn new(plan: &Plan, id: &str) -> RunFiles {
        let command = match plan.mode {
            Mode::Ci => "ci-image",
            Mode::Release => "release-image",
        };
        RunFiles {
            dir: Path::new("target/xtask/runs").join(format!("{command}-{id}")),
            archives: None,
        }
    }

    /// Where buildx writes its metadata file.
    pub fn metadata(&self) -> PathBuf {
        self.dir.join("metadata.json")
    }

    /// Where a variant's OCI archive goes.
    pub fn oci_archive(&self, variant: &str) -> PathBuf {
        match &self.archives {
            Some(dir) => dir.join(format!("{variant}.tar")),
            None => self.dir.join("oci").join(format!("{variant}.tar")),
        }
    }
}

/// The `docker` driver's substitute for BuildKit's push by digest: each
/// variant's OCI archive copied to the registry, every digest kept.
pub fn push_archives(plan: &Plan, files: &RunFiles, pushed: &Pushed) -> Vec<Step> {
    if plan.output != Output::PushByDigest(PushVia::OciArchive) {
        return Vec::new();
    }
    plan.variants
        .iter()
        .map(|v| {
            let mut args: Vec<String> = [
                "copy",
                "--all",
                "--preserve-digests",
                "--retry-times=2",
                "--quiet",
            ]
            .map(String::from)
            .to_vec();
            if plan.repository.is_loopback() {
                args.push("--dest-tls-verify=false".to_string());
            }
            args.push(format!(
                "oci-archive:{}",
                files.oci_archive(&v.variant).display()
            ));
            args.push(format!("docker://{}", pushed.index(plan, &v.variant)));
            Step::new(&v.variant, Invocation::new("skopeo", args))
        })
        .collect()
}

/// A CI plan's tag moves: each variant's `ci-` tags onto its pushed digest.
pub fn ci_tags(plan: &Plan, pushed: &Pushed) -> Vec<Step> {
    plan.variants
        .iter()
        .map(|v| {
            let index = pushed.index(plan, &v.variant);
            Step::new(&v.variant, tag_digest(&v.policy.tags, &index))
        })
        .collect()
}

/// Signing every reference by digest: one `cosign sign` each (none when
/// signing is off); what a run prepares once before ([`sign_preparation`])
/// runs when the run is prepared, before anything is built.
pub fn signatures(signing: &Signing, run: &CosignRun, references: &[ImageRef]) -> Vec<Step> {
    references
        .iter()
        .filter_map(|reference| {
            sign_reference(signing, run, reference).map(|i| Step::new(reference.to_string(), i))
        })
        .collect()
}

/// Points `tags` (tag references) at `reference` (by digest), keeping the
/// digest: `docker buildx imagetools create`.
pub fn tag_digest(tags: &[ImageRef], reference: &ImageRef) -> Invocation {
    let mut args: Vec<String> = ["buildx", "imagetools", "create"]
        .map(String::from)
        .to_vec();
    for tag in tags {
        args.push("--tag".to_string());
        args.push(tag.to_string());
    }
    args.push(reference.to_string());
    Invocation::new("docker", args)
}

/// The promotion's tag moves, in the order given (`latest` last): each
/// variant's tags onto its index.
pub fn tag_moves(moves: &[(String, Vec<ImageRef>, ImageRef)]) -> Vec<Step> {
    moves
        .iter()
        .map(|(variant, tags, index)| Step::new(variant, tag_digest(tags, index)))
        .collect()
}

/// A release plan's tag moves (`latest` last), onto what was pushed.
pub fn plan_tag_moves(plan: &Plan, pushed: &Pushed) -> Vec<Step> {
    let moves: Vec<(String, Vec<ImageRef>, ImageRef)> =
        latest_last(&plan.variants, |variant| &variant.policy.tags)
            .into_iter()
            .map(|(v, tags)| (v.variant.clone(), tags, pushed.index(plan, &v.variant)))
            .collect();
    tag_moves(&moves)
}

/// The gate of a release plan, before any tag moves: the public key first
/// (key-signed releases), then every variant's image as [`gate_image`] reads it.
pub fn gate(plan: &Plan, run: &CosignRun, pushed: &Pushed) -> Vec<Invocation> {
    let Some(gate) = &plan.gate else {
        return Vec::new();
    };
    let mut commands = Vec::new();
    if let Some(ExpectedSigner::SigningKey { key, .. }) = &gate.signer {
        commands.push(public_key(key, &run.public_key()));
    }
    for variant in &plan.variants {
        let platform_digests: Vec<Digest> = variant
            .policy
            .platforms
            .iter()
            .map(|p| pushed.platform(&variant.variant, p))
            .collect();
        commands.extend(gate_image(
            gate.signer.as_ref(),
            run,
            &pushed.index(plan, &variant.variant),
            &platform_digests,
        ));
    }
    commands
}

/// The registry lookups a run makes before building: the push target is
/// probed, and each immutable tag that must not exist yet is looked up.
pub fn lookups(plan: &Plan) -> Vec<Invocation> {
    let probe = plan
        .pushes()
        .then(|| registry::probe_command(&plan.repository));
    probe
        .into_iter()
        .chain(plan.must_not_exist.iter().map(registry::inspect_command))
        .collect()
}

/// The build stage's commands: the lookups, the build, the pushes and, for
/// a pushed plan, reading each pushed index back (its platform digests).
pub fn build_stage(plan: &Plan, files: &RunFiles, pushed: &Pushed) -> Vec<Invocation> {
    let mut commands = lookups(plan);
    commands.push(build(plan, files));
    commands.extend(commands_of(push_archives(plan, files, pushed)));
    if plan.pushes() {
        commands.extend(
            plan.variants
                .iter()
                .flat_map(|v| read_back(plan, v, pushed)),
        );
    }
    commands
}

fn commands_of(steps: Vec<Step>) -> Vec<Invocation> {
    commands(steps).collect()
}

/// Every command of the plan, in order, as `--dry-run` prints them: the
/// build stage; for a CI push the tag moves; for a release the signatures
/// (as the cosign of `line` makes them), the gate and only then the tag
/// moves, `latest` last.
pub fn all(plan: &Plan, files: &RunFiles, line: CosignLine) -> Vec<Invocation> {
    let pushed = Pushed::default();
    let mut commands = build_stage(plan, files, &pushed);
    match (plan.mode, plan.pushes()) {
        (Mode::Ci, true) => commands.extend(commands_of(ci_tags(plan, &pushed))),
        (Mode::Release, true) => {
            let run = CosignRun::new(line, &files.dir);
            let references: Vec<ImageRef> = plan
                .variants
                .iter()
                .map(|v| pushed.index(plan, &v.variant))
                .collect();
            commands.extend(sign_preparation(&plan.signing, &run));
            commands.extend(commands_of(signatures(&plan.signing, &run, &references)));
            commands.extend(gate(plan, &run, &pushed));
            commands.extend(commands_of(plan_tag_moves(plan, &pushed)));
        }
        _ => {}
    }
    commands
}

/// What the report reads back from the registry once a variant is pushed:
/// its index, and each platform's manifest (digest and size).
pub fn read_back(plan: &Plan, variant: &VariantPlan, pushed: &Pushed) -> Vec<Invocation> {
    let index = pushed.index(plan, &variant.variant);
    std::iter::once(registry::inspect_command(&index))
        .chain(variant.policy.platforms.iter().map(|platform| {
            let digest = pushed.platform(&variant.variant, platform);
            registry::inspect_command(&plan.repository.at(&digest))
        }))
        .collect()
}
