//! What a build run reports: the result per variant (how far each got), as
//! text or JSON, and in GitHub Actions as step outputs and a job summary.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::model::reference::{ImageRef, Repository};
use crate::plan::record::ReleaseRecord;
use crate::plan::Mode;

#[derive(Debug, Clone, Serialize)]
pub struct VariantResult {
    pub variant: String,
    /// The image by digest (pushed) or by its first tag (loaded).
    pub image: String,
    /// Index digest of a pushed image, or the image digest the engine holds.
    pub digest: String,
    /// What buildx built: an image manifest (one platform) or an index
    /// (unknown for a variant an earlier run pushed).
    pub media_type: Option<String>,
    pub platforms: Vec<String>,
    pub tags: Vec<String>,
    pub pushed: bool,
    pub signed: bool,
    pub tagged: bool,
    /// Per platform: the image manifest's digest (pushed images).
    pub platform_digests: BTreeMap<String, String>,
    /// Per platform: the platform it was built on, where the run knows it
    /// (merge-release: from the parts' records); empty otherwise.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub build_platforms: BTreeMap<String, String>,
    /// Per platform: compressed size in the registry (pushed), or the engine's
    /// image size (loaded, in a GitHub job); empty when unknown.
    pub sizes: BTreeMap<String, u64>,
    /// The build's wall time: all variants build in one bake, in parallel.
    pub build_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub mode: Mode,
    pub repository: Repository,
    pub build_seconds: f64,
    pub variants: Vec<VariantResult>,
}

/// Prints the result (JSON on stdout with --json) and, in GitHub Actions,
/// writes step outputs and a job summary.
pub fn report(result: &RunResult, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(result)?);
    } else {
        for v in &result.variants {
            println!("{}: {} ({})", v.variant, v.image, v.platforms.join(", "));
            for tag in &v.tags {
                println!("    {tag}");
            }
        }
    }
    write_outputs(result)
}

fn append(path_var: &str, text: &str) -> Result<()> {
    let Some(path) = std::env::var_os(path_var) else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot write {path_var} at {}", path.to_string_lossy()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Writes `result` (the whole JSON), `digest-<variant>` and, for pushed
/// images, `platform-images` (one `{variant, platform, image, index}` per
/// platform image by digest, with `build_platform` where known: the matrix
/// of the release workflow's smoke runs and rebuild checks) step outputs,
/// and a summary table, when running in GitHub Actions (no-op elsewhere).
pub fn write_outputs(result: &RunResult) -> Result<()> {
    let mut outputs = format!("result={}\n", serde_json::to_string(result)?);
    for v in &result.variants {
        outputs.push_str(&format!("digest-{}={}\n", v.variant, v.digest));
    }
    outputs.push_str(&format!(
        "platform-images={}\n",
        serde_json::to_string(&platform_images(result))?
    ));
    append("GITHUB_OUTPUT", &outputs)?;
    append("GITHUB_STEP_SUMMARY", &summary(result))
}

/// One entry per pushed platform image, by digest: its variant, platform,
/// the index holding it (the variant's image, by digest) and, where the
/// run knows it, the platform it was built on.
pub fn platform_images(result: &RunResult) -> Vec<serde_json::Value> {
    let mut images = Vec::new();
    for v in &result.variants {
        for (platform, digest) in &v.platform_digests {
            let mut entry = serde_json::json!({
                "variant": v.variant,
                "platform": platform,
                "image": format!("{}@{digest}", result.repository),
                "index": v.image,
            });
            if let Some(build) = v.build_platforms.get(platform) {
                entry["build_platform"] = serde_json::json!(build);
            }
            images.push(entry);
        }
    }
    images
}

/// Appends to the GitHub job summary (no-op outside GitHub Actions).
pub fn write_step_summary(text: &str) -> Result<()> {
    append("GITHUB_STEP_SUMMARY", text)
}

/// Writes one step output, `name=value` on one line (no-op outside GitHub Actions).
pub fn write_step_output(name: &str, value: &str) -> Result<()> {
    append("GITHUB_OUTPUT", &format!("{name}={value}\n"))
}

/// The job summary of a promotion: per variant its digest and the tags now on it.
pub fn promotion_summary(record: &ReleaseRecord, moved: &[ImageRef]) -> String {
    let mut text = format!(
        "### Promoted {} {}\n\nEvery digest passed the gate before any tag moved (`latest` last).\n\n| variant | digest | tags |\n|---|---|---|\n",
        record.repository, record.version
    );
    for variant in &record.variants {
        let tags: Vec<&str> = variant
            .tags
            .iter()
            .filter(|t| moved.contains(t))
            .filter_map(|t| t.tag.as_deref())
            .collect();
        text.push_str(&format!(
            "| {} | `{}` | {} |\n",
            variant.variant,
            variant.digest,
            tags.join(", ")
        ));
    }
    text
}

/// The one line a CI summary puts next to its images: what they are not for.
pub const CI_NOT_FOR_DEPLOYMENT: &str = "**CI image, not for deployment**: one platform, debug tools inside, unsigned, ephemeral `ci-` tags, labelled `dev.beacon.image.flavor=ci`; deploy only release digests that pass `cargo xtask verify` (docs/deploying.md).";

pub fn summary(result: &RunResult) -> String {
    let warning = match result.mode {
        Mode::Ci => format!("{CI_NOT_FOR_DEPLOYMENT}\n\n"),
        Mode::Release => String::new(),
    };
    let mut text = format!(
        "### {} images\n\n{warning}| variant | tags | digest | platforms | size | build time | pushed | signed | tagged |\n|---|---|---|---|---|---|---|---|---|\n",
        match result.mode {
            Mode::Ci => "CI",
            Mode::Release => "Production",
        }
    );
    for v in &result.variants {
        let tags: Vec<&str> = v
            .tags
            .iter()
            .map(|t| t.rsplit(':').next().unwrap_or(t))
            .collect();
        let sizes: Vec<String> = v
            .sizes
            .iter()
            .map(|(platform, bytes)| format!("{platform}: {}", human_size(*bytes)))
            .collect();
        text.push_str(&format!(
            "| {} | {} | `{}` | {} | {} | {:.0} s | {} | {} | {} |\n",
            v.variant,
            tags.join(", "),
            v.digest,
            v.platforms.join(", "),
            if sizes.is_empty() {
                "unknown".to_string()
            } else {
                sizes.join(", ")
            },
            v.build_seconds,
            yes_no(v.pushed),
            yes_no(v.signed),
            yes_no(v.tagged)
        ));
    }
    text
}

pub fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_says_per_variant_how_far_it_got() {
        let result = RunResult {
            mode: Mode::Release,
            repository: "ghcr.io/acme/beacon".parse().unwrap(),
            build_seconds: 42.4,
            variants: vec![VariantResult {
                variant: "ubi9".into(),
                image: "ghcr.io/acme/beacon@sha256:ab".into(),
                digest: "sha256:ab".into(),
                media_type: None,
                platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
                tags: vec!["ghcr.io/acme/beacon:1.2.3-ubi9".into()],
                pushed: true,
                signed: true,
                tagged: false,
                platform_digests: BTreeMap::new(),
                build_platforms: BTreeMap::new(),
                sizes: BTreeMap::from([
                    ("linux/amd64".to_string(), 3 << 20),
                    ("linux/arm64".to_string(), 2048),
                ]),
                build_seconds: 42.4,
            }],
        };
        let text = summary(&result);
        assert!(text.contains("| variant | tags | digest | platforms | size | build time | pushed | signed | tagged |"));
        assert!(text.contains("| ubi9 | 1.2.3-ubi9 | `sha256:ab` | linux/amd64, linux/arm64 | linux/amd64: 3.0 MiB, linux/arm64: 2.0 KiB | 42 s | yes | yes | no |"), "{text}");
        assert!(!text.contains(CI_NOT_FOR_DEPLOYMENT));
        assert_eq!(human_size(512), "512 B");

        let ci = RunResult {
            mode: Mode::Ci,
            ..result
        };
        let text = summary(&ci);
        let warning = text.find(CI_NOT_FOR_DEPLOYMENT).expect("CI summary warns");
        assert!(
            warning < text.find("| ubi9 |").unwrap_or(0),
            "the line is next to (above) the images: {text}"
        );
    }

    /// The matrix of the release workflow's per-platform jobs: each platform
    /// image with its index and, where known, where it was built (the
    /// rebuild check runs there).
    #[test]
    fn platform_images_name_their_index_and_build_platform() {
        let variant = |builds: &[(&str, &str)]| VariantResult {
            variant: "ubi9".into(),
            image: "ghcr.io/acme/beacon@sha256:ab".into(),
            digest: "sha256:ab".into(),
            media_type: None,
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            tags: Vec::new(),
            pushed: true,
            signed: false,
            tagged: false,
            platform_digests: BTreeMap::from([
                ("linux/amd64".to_string(), "sha256:a1".to_string()),
                ("linux/arm64".to_string(), "sha256:a2".to_string()),
            ]),
            build_platforms: builds
                .iter()
                .map(|(p, b)| (p.to_string(), b.to_string()))
                .collect(),
            sizes: BTreeMap::new(),
            build_seconds: 0.0,
        };
        let result = |variant| RunResult {
            mode: Mode::Release,
            repository: "ghcr.io/acme/beacon".parse().unwrap(),
            build_seconds: 0.0,
            variants: vec![variant],
        };
        let single = result(variant(&[
            ("linux/amd64", "linux/amd64"),
            ("linux/arm64", "linux/amd64"),
        ]));
        assert_eq!(
            platform_images(&single),
            [
                serde_json::json!({"variant": "ubi9", "platform": "linux/amd64", "image": "ghcr.io/acme/beacon@sha256:a1",
                    "index": "ghcr.io/acme/beacon@sha256:ab", "build_platform": "linux/amd64"}),
                serde_json::json!({"variant": "ubi9", "platform": "linux/arm64", "image": "ghcr.io/acme/beacon@sha256:a2",
                    "index": "ghcr.io/acme/beacon@sha256:ab", "build_platform": "linux/amd64"}),
            ]
        );
        let unknown = platform_images(&result(variant(&[])));
        assert!(unknown.iter().all(|e| e.get("build_platform").is_none()));
    }
}
