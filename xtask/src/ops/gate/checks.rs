//! The gate's checks of what an image says about itself: pure functions
//! of the documents the registry returned.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::client::registry;
use crate::model::oci::ImageConfig;
use crate::plan::LABEL_NS;

use super::Recorded;

const REVISION: &str = "org.opencontainers.image.revision";
const SOURCE: &str = "org.opencontainers.image.source";
const VERSION: &str = "org.opencontainers.image.version";

/// Which platforms lack SLSA provenance (buildx renders one platform's
/// provenance unkeyed, several keyed by platform).
pub fn provenance_problems(provenance: &Value, platforms: &[String]) -> Vec<String> {
    attestation_problems(provenance, platforms, "SLSA", "provenance attestation")
}

/// Which platforms lack an SBOM (SPDX, as BuildKit's generators write it).
pub fn sbom_problems(sbom: &Value, platforms: &[String]) -> Vec<String> {
    attestation_problems(sbom, platforms, "SPDX", "SBOM")
}

fn attestation_problems(
    rendered: &Value,
    platforms: &[String],
    key: &str,
    what: &str,
) -> Vec<String> {
    let has = |value: Option<&Value>| value.and_then(|p| p.get(key)).is_some_and(|s| !s.is_null());
    if platforms.is_empty() {
        return if has(Some(rendered)) {
            Vec::new()
        } else {
            vec![format!("no {what}")]
        };
    }
    platforms
        .iter()
        .filter(|platform| !has(registry::for_platform(rendered, platform, platforms.len())))
        .map(|platform| format!("no {what} for {platform}"))
        .collect()
}

/// Why the image configs' labels say this is not a production image.
pub fn label_problems(configs: &[(String, ImageConfig)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (platform, config) in configs {
        match config.label(&format!("{LABEL_NS}.flavor")) {
            Some("production") => {}
            Some(other) => problems.push(format!(
                "{platform} is labelled {LABEL_NS}.flavor={other}, not production"
            )),
            None => problems.push(format!(
                "{platform} has no {LABEL_NS}.flavor label (not built by release-image)"
            )),
        }
        if config.label(&format!("{LABEL_NS}.not-for-production")) == Some("true") {
            problems.push(format!(
                "{platform} is labelled {LABEL_NS}.not-for-production=true"
            ));
        }
    }
    problems
}

/// One thing the provenance records, and where in it.
pub type Claim = (&'static str, String);

/// What a platform's provenance says the image was built from: the
/// revisions and sources it records (buildx's git metadata of the build
/// context, the build args and the labels as the build was asked for them).
pub fn provenance_origin(slsa: &Value) -> (Vec<Claim>, Vec<Claim>) {
    let vcs = slsa.pointer("/metadata/https:~1~1mobyproject.org~1buildkit@v1#metadata/vcs");
    let args = slsa.pointer("/invocation/parameters/args");
    let text = |value: Option<&Value>, key: &str| {
        value
            .and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let revisions = [
        ("the build's git checkout", text(vcs, "revision")),
        ("the REVISION build arg", text(args, "build-arg:REVISION")),
        (
            "the revision label it was built with",
            text(args, &format!("label:{REVISION}")),
        ),
    ];
    let sources = [
        (
            "the build's git remote",
            text(vcs, "source").filter(|s| is_url(s)),
        ),
        (
            "the source label it was built with",
            text(args, &format!("label:{SOURCE}")),
        ),
    ];
    let keep = |claims: &[(&'static str, Option<String>)]| {
        claims
            .iter()
            .filter_map(|(what, value)| value.clone().map(|v| (*what, v)))
            .collect()
    };
    (keep(&revisions), keep(&sources))
}

/// A remote URL (not a local path, as a clone of a clone has).
fn is_url(text: &str) -> bool {
    text.contains("://") || text.starts_with("git@")
}

/// `git@github.com:acme/beacon.git`, `https://github.com/Acme/beacon/` and
/// `https://github.com/acme/beacon` name the same repository.
fn normalized_source(text: &str) -> String {
    let text = text.trim().trim_end_matches('/').trim_end_matches(".git");
    let text = match text.strip_prefix("git@") {
        Some(rest) => format!("https://{}", rest.replacen(':', "/", 1)),
        None => text.to_string(),
    };
    text.to_ascii_lowercase()
}

/// Whether what the image says it was built from holds together: the
/// provenance of every platform records the revision and source its index
/// annotations and labels claim (a relabelled image does not), and, with a
/// record, those are the release's commit, version and variant.
pub fn origin_problems(
    annotations: &BTreeMap<String, String>,
    configs: &[(String, ImageConfig)],
    provenance: &Value,
    platforms: &[String],
    recorded: Option<&Recorded>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(revision) = annotations.get(REVISION).filter(|r| !r.is_empty()) else {
        return vec![format!(
            "its index has no {REVISION} annotation (not built by release-image)"
        )];
    };
    let source = annotations.get(SOURCE).cloned().unwrap_or_default();
    for (platform, config) in configs {
        for (key, claimed) in [(REVISION, revision.as_str()), (SOURCE, source.as_str())] {
            let label = config.label(key).unwrap_or_default();
            if label != claimed {
                problems.push(format!(
                    "{platform} is labelled {key}={label:?}, its index says {claimed:?}"
                ));
            }
        }
        if let Some(recorded) = recorded {
            let variant = config
                .label(&format!("{LABEL_NS}.variant"))
                .unwrap_or_default();
            if variant != recorded.variant {
                problems.push(format!(
                    "{platform} is labelled {LABEL_NS}.variant={variant:?}, the record says {}",
                    recorded.variant
                ));
            }
        }
    }
    for platform in platforms {
        let Some(slsa) = registry::for_platform(provenance, platform, platforms.len())
            .and_then(|p| p.get("SLSA"))
            .filter(|s| !s.is_null())
        else {
            continue; // reported as missing provenance
        };
        let (revisions, sources) = provenance_origin(slsa);
        if revisions.is_empty() {
            problems.push(format!(
                "the provenance of {platform} records no source revision"
            ));
        }
        for (recorded_revision, what) in disagreeing(&revisions, |r| r == revision) {
            problems.push(format!(
                "the provenance of {platform} says it was built from revision {recorded_revision} ({what}), but the image claims {revision} (relabelled?)"
            ));
        }
        for (recorded_source, what) in disagreeing(&sources, |s| {
            normalized_source(s) == normalized_source(&source)
        }) {
            problems.push(format!(
                "the provenance of {platform} says it was built from {recorded_source} ({what}), but the image claims {source:?} (relabelled?)"
            ));
        }
    }
    if let Some(recorded) = recorded {
        if revision != &recorded.commit {
            problems.push(format!(
                "it was built from {revision}, and the release is of commit {}",
                recorded.commit
            ));
        }
        let version = annotations.get(VERSION).cloned().unwrap_or_default();
        if version != recorded.version {
            problems.push(format!(
                "it is version {version:?}, and the release is {:?}",
                recorded.version
            ));
        }
    }
    problems
}

/// The claims that disagree with the image, one entry per recorded value
/// with every place it is recorded.
fn disagreeing(claims: &[Claim], agrees: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut grouped: Vec<(String, Vec<&str>)> = Vec::new();
    for (what, value) in claims.iter().filter(|(_, v)| !agrees(v)) {
        match grouped.iter_mut().find(|(v, _)| v == value) {
            Some((_, places)) => places.push(what),
            None => grouped.push((value.clone(), vec![what])),
        }
    }
    grouped
        .into_iter()
        .map(|(value, places)| (value, places.join(", ")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attestations_keyed_by_platform_or_not() {
        let two = vec!["linux/amd64".to_string(), "linux/arm64".to_string()];
        let keyed = json!({"linux/amd64": {"SLSA": {"builder": {}}}, "linux/arm64": {"SLSA": {"builder": {}}}});
        assert!(provenance_problems(&keyed, &two).is_empty());
        let half = json!({"linux/amd64": {"SLSA": {"builder": {}}}});
        assert_eq!(
            provenance_problems(&half, &two),
            ["no provenance attestation for linux/arm64"]
        );
        let one = vec!["linux/amd64".to_string()];
        assert!(provenance_problems(&json!({"SLSA": {"builder": {}}}), &one).is_empty());
        assert_eq!(
            provenance_problems(&Value::Null, &one),
            ["no provenance attestation for linux/amd64"]
        );
        assert_eq!(
            provenance_problems(&json!({"SLSA": null}), &[]),
            ["no provenance attestation"]
        );
        assert_eq!(
            sbom_problems(&json!({}), &two),
            ["no SBOM for linux/amd64", "no SBOM for linux/arm64"]
        );
        let sboms = json!({"linux/amd64": {"SPDX": {}}, "linux/arm64": {"SPDX": {}}});
        assert!(sbom_problems(&sboms, &two).is_empty());
    }

    fn config(labels: serde_json::Value) -> ImageConfig {
        ImageConfig::parse(&serde_json::to_vec(&json!({"config": {"Labels": labels}})).unwrap())
            .unwrap()
    }

    #[test]
    fn labels_tell_ci_from_production() {
        let ci = config(
            json!({"dev.beacon.image.flavor": "ci", "dev.beacon.image.not-for-production": "true"}),
        );
        assert_eq!(label_problems(&[("the image".into(), ci)]).len(), 2);
        let prod = config(json!({"dev.beacon.image.flavor": "production"}));
        assert!(label_problems(&[("linux/amd64".into(), prod)]).is_empty());
        let foreign = config(json!({}));
        assert!(label_problems(&[("linux/amd64".into(), foreign)])[0]
            .contains("no dev.beacon.image.flavor label"));
    }

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    fn slsa(vcs_revision: &str, source: &str) -> Value {
        json!({"SLSA": {
            "metadata": {"https://mobyproject.org/buildkit@v1#metadata": {"vcs": {"revision": vcs_revision, "source": source}}},
            "invocation": {"parameters": {"args": {
                "build-arg:REVISION": COMMIT,
                "label:org.opencontainers.image.revision": COMMIT,
                "label:org.opencontainers.image.source": "https://github.com/acme/beacon"
            }}}
        }})
    }

    fn labelled(revision: &str) -> Vec<(String, ImageConfig)> {
        vec![(
            "linux/amd64".to_string(),
            config(json!({
                "org.opencontainers.image.revision": revision,
                "org.opencontainers.image.source": "https://github.com/acme/beacon",
                "dev.beacon.image.variant": "ubi9"
            })),
        )]
    }

    fn annotations(revision: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (REVISION.to_string(), revision.to_string()),
            (
                SOURCE.to_string(),
                "https://github.com/acme/beacon".to_string(),
            ),
            (VERSION.to_string(), "1.2.3".to_string()),
        ])
    }

    #[test]
    fn provenance_must_agree_with_the_labels() {
        let one = ["linux/amd64".to_string()];
        let honest = slsa(COMMIT, "https://github.com/Acme/beacon.git");
        assert_eq!(
            origin_problems(&annotations(COMMIT), &labelled(COMMIT), &honest, &one, None),
            Vec::<String>::new()
        );
        // A local clone's remote is a path, not a claim about the source.
        let cloned = slsa(COMMIT, "/tmp/clone");
        assert!(
            origin_problems(&annotations(COMMIT), &labelled(COMMIT), &cloned, &one, None)
                .is_empty()
        );
        // Relabelled: the index and labels claim another commit than the provenance records.
        let other = "f".repeat(40);
        let problems =
            origin_problems(&annotations(&other), &labelled(&other), &honest, &one, None);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains(&format!("built from revision {COMMIT} (the build's git checkout, the REVISION build arg, the revision label it was built with), but the image claims {other}")), "{problems:?}");
        // Built from another repository than the label says.
        let fork = slsa(COMMIT, "git@github.com:evil/beacon.git");
        let problems = origin_problems(&annotations(COMMIT), &labelled(COMMIT), &fork, &one, None);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("git@github.com:evil/beacon.git"),
            "{problems:?}"
        );
        // Index annotation and label disagree.
        let problems =
            origin_problems(&annotations(COMMIT), &labelled(&other), &honest, &one, None);
        assert!(
            problems[0].contains("is labelled org.opencontainers.image.revision"),
            "{problems:?}"
        );
        assert!(
            origin_problems(&BTreeMap::new(), &labelled(COMMIT), &honest, &one, None)[0]
                .contains("no org.opencontainers.image.revision annotation")
        );
        let silent = json!({"SLSA": {"invocation": {"parameters": {"args": {}}}}});
        assert!(
            origin_problems(&annotations(COMMIT), &labelled(COMMIT), &silent, &one, None)[0]
                .contains("records no source revision")
        );
    }

    #[test]
    fn a_recorded_image_is_the_release_it_is_recorded_as() {
        let one = ["linux/amd64".to_string()];
        let honest = slsa(COMMIT, "https://github.com/acme/beacon");
        let recorded = Recorded {
            variant: "distroless".into(),
            commit: "e".repeat(40),
            version: "1.3.0".into(),
            platform_digests: BTreeMap::new(),
        };
        let problems = origin_problems(
            &annotations(COMMIT),
            &labelled(COMMIT),
            &honest,
            &one,
            Some(&recorded),
        );
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("variant=\"ubi9\", the record says distroless"));
        assert!(problems[1].contains("the release is of commit eeee"));
        assert!(problems[2].contains("version \"1.2.3\", and the release is \"1.3.0\""));
    }
}
