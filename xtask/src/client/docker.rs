//! The Docker CLI as the builds use it: the engine's commands and buildx's,
//! each addressed to the builder a run selected (`--builder NAME`,
//! [`Selection`]), and the builders as `docker buildx inspect` describes them.
//! Without a selection every command is exactly what it was before builders
//! could be selected. Registry operations (skopeo, `buildx imagetools`) go
//! through `client::registry` and need no builder.

use std::path::{Component, Path};

use anyhow::{bail, Result};
use serde_json::Value;

use crate::client::process::{self, Invocation};
use crate::model::builder::{self, Builder, Selection, Via};

/// The docker CLI's global arguments that select the builder's engine:
/// `--context CONTEXT` or `--host HOST` for a `docker`-driver builder.
pub fn global_args(selection: Option<&Selection>) -> Vec<String> {
    match selection.map(|s| &s.via) {
        Some(Via::Context(context)) => vec!["--context".into(), context.clone()],
        Some(Via::Host(host)) => vec!["--host".into(), host.clone()],
        Some(Via::Builder) | None => Vec::new(),
    }
}

/// An engine command (`version`, `image rm`, `image inspect`, ...): `docker [--context C] ARGS`.
pub fn engine(selection: Option<&Selection>, args: Vec<String>) -> Invocation {
    let mut all = global_args(selection);
    all.extend(args);
    Invocation::new("docker", all)
}

/// A buildx command (`bake`, `build`, `inspect`, `prune`): `docker [--context C]
/// buildx [--builder NAME] ARGS`. Selected by its engine, BUILDX_BUILDER (which
/// would name another builder) is kept from it.
pub fn buildx(selection: Option<&Selection>, args: Vec<String>) -> Invocation {
    let mut all = global_args(selection);
    all.push("buildx".into());
    let via = selection.map(|s| (&s.via, &s.builder));
    if let Some((Via::Builder, builder)) = via {
        all.push("--builder".into());
        all.push(builder.clone());
    }
    all.extend(args);
    let mut invocation = Invocation::new("docker", all);
    if matches!(via, Some((Via::Context(_) | Via::Host(_), _))) {
        invocation.env_remove.push("BUILDX_BUILDER".into());
    }
    invocation
}

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output")
}

/// The builder named `name` (`docker buildx inspect NAME`, which reads every
/// builder, other contexts' included). Refuses in one line a name buildx
/// does not know.
pub fn inspect(name: &str) -> Result<Builder> {
    let args = vec!["inspect".to_string(), name.to_string()];
    let out = process::capture(&buildx(None, args))?;
    if !out.success {
        let said = out.stderr_text();
        let said = first_line(&said).trim_start_matches("ERROR: ");
        if said.contains("no builder") {
            bail!("there is no buildx builder {name:?} ({said}): pass --builder one of those `docker buildx ls` lists, or leave --builder out to build with the current one");
        }
        bail!("cannot inspect the buildx builder {name:?} ({said}): check `docker buildx ls` and that its engine is running");
    }
    builder::parse(&out.stdout_text())
}

/// The builder a run builds with: the selected one, else the current one
/// (`docker buildx inspect`).
pub fn inspect_selected(selection: Option<&Selection>) -> Result<Builder> {
    let out = process::capture(&buildx(selection, vec!["inspect".into()]))?;
    if !out.success {
        let said = out.stderr_text();
        bail!(
            "cannot inspect the buildx builder ({}): check `docker buildx ls`",
            first_line(&said)
        );
    }
    builder::parse(&out.stdout_text())
}

/// buildx's bake (0.18 and later) refuses, before building, local contexts
/// and outputs outside the directory it runs in unless granted (`--allow
/// fs.read=...`, which buildx 0.13 rejects as an unknown flag); the
/// environment variable this returns turns the check off and older buildx
/// ignores it. Only for a bake that names such a path (`--binaries
/// /elsewhere`, rebuild-check's archives beside its checkout).
pub fn bake_entitlements(bake: &Value, dir: &Path) -> Option<(&'static str, &'static str)> {
    local_paths(bake)
        .iter()
        .any(|path| outside(Path::new(path), dir))
        .then_some(("BUILDX_BAKE_ENTITLEMENTS_FS", "0"))
}

/// The local files a bake file reads or writes: contexts, local named
/// contexts, `dest=` of outputs and `src=`/`dest=` of local caches.
fn local_paths(bake: &Value) -> Vec<String> {
    let mut paths = Vec::new();
    let targets = bake.get("target").and_then(Value::as_object);
    for target in targets.into_iter().flat_map(|t| t.values()) {
        let text = |key: &str| target.get(key).and_then(Value::as_str).map(String::from);
        paths.extend(text("context"));
        let contexts = target.get("contexts").and_then(Value::as_object);
        paths.extend(
            contexts
                .into_iter()
                .flat_map(|c| c.values())
                .filter_map(Value::as_str)
                .filter(|c| !c.contains("://") && !c.starts_with("target:"))
                .map(String::from),
        );
        for key in ["output", "cache-from", "cache-to"] {
            let specs = target.get(key).and_then(Value::as_array);
            for spec in specs.into_iter().flatten().filter_map(Value::as_str) {
                if key != "output" && !spec.split(',').any(|f| f == "type=local") {
                    continue;
                }
                paths.extend(
                    spec.split(',')
                        .filter_map(|f| f.strip_prefix("dest=").or(f.strip_prefix("src=")))
                        .map(String::from),
                );
            }
        }
    }
    paths
}

/// Whether `path` (relative to `dir`, or absolute) leaves `dir`.
fn outside(path: &Path, dir: &Path) -> bool {
    if path.is_absolute() {
        return !path.starts_with(dir);
    }
    let mut depth: i64 = 0;
    for component in path.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn selection(builder: &str, driver: &str, via: Via) -> Selection {
        Selection {
            builder: builder.into(),
            driver: driver.into(),
            via,
            routes: String::new(),
        }
    }

    fn context() -> Selection {
        selection("runner2", "docker", Via::Context("runner2".into()))
    }

    fn named() -> Selection {
        selection("fleet", "remote", Via::Builder)
    }

    #[test]
    fn no_selection_is_todays_command() {
        let bake = buildx(None, vec!["bake".into(), "--file".into(), "-".into()]);
        assert_eq!(bake.display(), "docker buildx bake --file -");
        assert!(bake.env_remove.is_empty());
        let rm = engine(None, vec!["image".into(), "rm".into(), "x".into()]);
        assert_eq!(rm.display(), "docker image rm x");
    }

    #[test]
    fn a_docker_driver_builder_selects_its_engine_for_every_command() {
        let bake = buildx(Some(&context()), vec!["bake".into()]);
        assert_eq!(bake.display(), "docker --context runner2 buildx bake");
        assert_eq!(bake.env_remove, ["BUILDX_BUILDER"]);
        let version = engine(Some(&context()), vec!["version".into()]);
        assert_eq!(version.display(), "docker --context runner2 version");
        let host = selection("r", "docker", Via::Host("unix:///run/r.sock".into()));
        let inspect = engine(Some(&host), vec!["image".into(), "inspect".into()]);
        assert_eq!(
            inspect.display(),
            "docker --host unix:///run/r.sock image inspect"
        );
    }

    #[test]
    fn another_driver_is_named_to_buildx_and_leaves_the_engine_alone() {
        let bake = buildx(Some(&named()), vec!["bake".into()]);
        assert_eq!(bake.display(), "docker buildx --builder fleet bake");
        assert!(bake.env_remove.is_empty());
        let rm = engine(Some(&named()), vec!["image".into(), "rm".into()]);
        assert_eq!(rm.display(), "docker image rm");
    }

    #[test]
    fn bake_entitlements_only_for_paths_outside_the_working_dir() {
        let dir = Path::new("/work/project");
        let bake = |contexts: Value, output: &str, cache: &str| {
            json!({"target": {"ubi9": {
                "context": ".",
                "contexts": contexts,
                "output": [output],
                "cache-to": [cache],
            }}})
        };
        let inside = bake(
            json!({"binaries": "/work/project/target/image-binaries", "other": "target:shared-compile"}),
            "type=oci,dest=target/xtask/runs/x/oci/ubi9.tar,rewrite-timestamp=true",
            "type=local,dest=target/buildx-cache/ubi9,mode=max",
        );
        assert_eq!(bake_entitlements(&inside, dir), None);
        let images = bake(
            json!({"base": "docker-image://127.0.0.1:5000/x"}),
            "type=docker",
            "type=registry,ref=127.0.0.1:5000/cache",
        );
        assert_eq!(bake_entitlements(&images, dir), None);
        for (contexts, output, cache) in [
            (
                json!({"binaries": "/tmp/binaries"}),
                "type=docker",
                "type=inline",
            ),
            (
                json!({}),
                "type=oci,dest=../archives/ubi9.tar",
                "type=inline",
            ),
            (
                json!({}),
                "type=docker",
                "type=local,dest=/var/cache/buildx",
            ),
            (
                json!({"binaries": "target/../../x"}),
                "type=docker",
                "type=inline",
            ),
        ] {
            let outside = bake(contexts, output, cache);
            assert_eq!(
                bake_entitlements(&outside, dir),
                Some(("BUILDX_BAKE_ENTITLEMENTS_FS", "0")),
                "{outside}"
            );
        }
    }
}
