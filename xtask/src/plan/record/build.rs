//! How each platform of a release was built: on which build platform (the
//! BuildKit worker that ran the compile stage: `FROM
//! --platform=$BUILDPLATFORM`), and so whether its binaries were compiled
//! natively (the build platform is the target: no cross linker, no
//! emulation) or cross-compiled. The release record and each part record
//! keep it per variant and platform; BuildKit's provenance states the same
//! (SLSA v0.2 `invocation.environment.platform`, v1
//! `buildDefinition.internalParameters.builderPlatform`), which is where a
//! release reads it from.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::names::Platform;

/// One platform's build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformBuild {
    /// The platform the build ran on (BuildKit's `BUILDPLATFORM`).
    pub build_platform: Platform,
    /// `native` when it is the target platform, else `cross`.
    pub compile: Compile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compile {
    /// Built on a machine of the target platform.
    Native,
    /// Built on another platform (cross-compiled; nothing runs emulated).
    Cross,
}

impl Compile {
    pub fn as_str(self) -> &'static str {
        match self {
            Compile::Native => "native",
            Compile::Cross => "cross",
        }
    }
}

/// Whether a build on `build` for `target` is native: the same OS and
/// architecture (a CPU variant such as `amd64/v2` builds `amd64`).
pub fn is_native(build: &Platform, target: &Platform) -> bool {
    build.os == target.os && build.arch == target.arch
}

impl PlatformBuild {
    /// The build of `target` on `build`.
    pub fn on(build: Platform, target: &Platform) -> PlatformBuild {
        let compile = if is_native(&build, target) {
            Compile::Native
        } else {
            Compile::Cross
        };
        PlatformBuild {
            build_platform: build,
            compile,
        }
    }

    /// `linux/arm64 cross-compiled on linux/amd64`, `linux/amd64 native`.
    pub fn describe(&self, target: &Platform) -> String {
        match self.compile {
            Compile::Native => format!("{target} built natively"),
            Compile::Cross => format!("{target} cross-compiled on {}", self.build_platform),
        }
    }
}

/// The build platform one platform's provenance (what `imagetools inspect
/// --format '{{json .Provenance}}'` gives per platform, `{"SLSA": ...}`)
/// records, if any: SLSA v0.2 (BuildKit 0.13: `invocation.environment.platform`)
/// or v1 (`buildDefinition.internalParameters.builderPlatform`).
pub fn provenance_build_platform(provenance: &Value) -> Option<Platform> {
    let slsa = provenance.get("SLSA").unwrap_or(provenance);
    [
        "/invocation/environment/platform",
        "/buildDefinition/internalParameters/builderPlatform",
    ]
    .iter()
    .find_map(|pointer| slsa.pointer(pointer).and_then(Value::as_str))
    .and_then(|text| text.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn native_is_the_same_os_and_architecture() {
        let amd64 = Platform::linux("amd64");
        let arm64 = Platform::linux("arm64");
        let v2: Platform = "linux/amd64/v2".parse().unwrap();
        assert_eq!(
            PlatformBuild::on(amd64.clone(), &amd64).compile,
            Compile::Native
        );
        assert_eq!(PlatformBuild::on(v2, &amd64).compile, Compile::Native);
        let cross = PlatformBuild::on(amd64.clone(), &arm64);
        assert_eq!(cross.compile, Compile::Cross);
        assert_eq!(
            cross.describe(&arm64),
            "linux/arm64 cross-compiled on linux/amd64"
        );
        assert_eq!(
            serde_json::to_value(&cross).unwrap(),
            json!({"build_platform": "linux/amd64", "compile": "cross"})
        );
    }

    #[test]
    fn the_build_platform_is_read_from_either_provenance_version() {
        // BuildKit 0.13 (SLSA v0.2): the worker's platform, also for an arm64 image.
        let v02 = json!({"SLSA": {"invocation": {"environment": {"platform": "linux/amd64"}}}});
        assert_eq!(
            provenance_build_platform(&v02),
            Some(Platform::linux("amd64"))
        );
        let v1 = json!({"SLSA": {"buildDefinition": {"internalParameters": {"builderPlatform": "linux/arm64"}}}});
        assert_eq!(
            provenance_build_platform(&v1),
            Some(Platform::linux("arm64"))
        );
        assert_eq!(provenance_build_platform(&json!({"SLSA": {}})), None);
        assert_eq!(provenance_build_platform(&Value::Null), None);
    }
}
