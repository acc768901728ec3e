//! Checks every prerequisite up front and says how to get what is missing,
//! before anything is built or pushed.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::client::process::{self, Invocation};
use crate::client::{cosign, docker, registry};
use crate::model::builder::{Builder, Selection};
use crate::model::names::Platform;
use crate::model::reference::Repository;

/// A prerequisite checked before anything is built.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Requirement {
    Docker,
    Buildx,
    Engine,
    /// The builder can build every one of these platforms.
    BuilderPlatforms(Vec<Platform>),
    Cosign,
    /// Pushes OCI archives by digest for the `docker` driver.
    Skopeo,
    /// The signing key exists (a file path).
    SigningKeyFile(String),
    /// The registry of this repository answers and accepts the credentials
    /// a push would use (a lookup, nothing written).
    PushTarget(Repository),
    /// A vulnerability scanner (trivy, or a program that writes its JSON).
    Scanner(String),
}

/// The builder buildx would use, as `docker buildx inspect` describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuilderInfo {
    pub name: String,
    pub driver: String,
    pub platforms: Vec<String>,
}

impl From<&Builder> for BuilderInfo {
    /// The builder as a whole: every node's platforms together.
    fn from(builder: &Builder) -> BuilderInfo {
        BuilderInfo {
            name: builder.name.clone(),
            driver: builder.driver.clone(),
            platforms: builder.platforms(),
        }
    }
}

impl BuilderInfo {
    pub fn supports(&self, platform: &Platform) -> bool {
        let wanted = platform.to_string();
        self.platforms
            .iter()
            .any(|p| p == &wanted || p.starts_with(&format!("{wanted}/")))
    }
}

pub use crate::client::process::{find_program, is_executable};

/// Checks every requirement, concurrently (each is a short command and
/// together they are most of the tool's fixed cost), and reports the first
/// failing one in the order given.
pub fn check_all(requirements: &[Requirement]) -> Result<()> {
    check_all_on(requirements, None)
}

/// [`check_all`], the engine and builder ones on the selected builder.
pub fn check_all_on(requirements: &[Requirement], selection: Option<&Selection>) -> Result<()> {
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = requirements
            .iter()
            .map(|r| scope.spawn(move || check_on(r, selection)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a prerequisite check panicked")))
            })
            .collect()
    });
    results.into_iter().collect()
}

fn docker(args: &[&str]) -> Invocation {
    Invocation::new("docker", args.iter().map(|a| a.to_string()).collect())
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output")
        .to_string()
}

pub fn check(requirement: &Requirement) -> Result<()> {
    check_on(requirement, None)
}

/// [`check`], the engine and builder ones on the selected builder.
pub fn check_on(requirement: &Requirement, selection: Option<&Selection>) -> Result<()> {
    match requirement {
        Requirement::Docker => {
            if find_program("docker").is_none() {
                bail!("docker not found on PATH: install Docker Engine (Linux) or Docker Desktop (macOS), see https://docs.docker.com/get-docker/");
            }
        }
        Requirement::Buildx => check_buildx()?,
        Requirement::Engine => check_engine(selection)?,
        Requirement::BuilderPlatforms(platforms) => {
            if let Some(refusal) = platforms_refusal(&builder_info_on(selection)?, platforms) {
                bail!("{refusal}");
            }
        }
        Requirement::Cosign => {
            // Not found, too old, or no version to read: one line each,
            // saying what was found and what is needed.
            cosign::detect()?;
        }
        Requirement::Skopeo => {
            if find_program("skopeo").is_none() {
                bail!(
                    "skopeo not found on PATH: it probes the push target before the build, reads pushed digests back and, \
                     with the docker driver, pushes by digest: install skopeo (apt install skopeo, brew install skopeo)"
                );
            }
        }
        Requirement::Scanner(program) => {
            let found = if program.contains('/') {
                is_executable(Path::new(program))
            } else {
                find_program(program).is_some()
            };
            if !found {
                bail!("the vulnerability scanner {program:?} is not installed: install trivy (https://trivy.dev/latest/getting-started/installation/; in GitHub Actions aquasecurity/setup-trivy), or pass --scanner PROGRAM (a program that takes trivy's arguments and writes its JSON)");
            }
        }
        Requirement::PushTarget(repository) => {
            // Without skopeo the Skopeo requirement reports it, with its hint.
            if find_program("skopeo").is_some() {
                registry::probe(repository)
                    .map_err(|e| anyhow::anyhow!("{e:#}; nothing was built or pushed"))?;
            }
        }
        Requirement::SigningKeyFile(path) => {
            if !Path::new(path).is_file() {
                bail!("key file {path:?} does not exist: pass an existing --key (`cosign generate-key-pair` makes a key pair)");
            }
        }
    }
    Ok(())
}

/// The buildx plugin answers.
fn check_buildx() -> Result<()> {
    // Three processes (the CLI, its plugin lookup, the plugin), most of
    // a rebuild's fixed cost: a success is remembered for this docker
    // client and these plugin directories (see `buildx_fingerprint`).
    let fingerprint = buildx_fingerprint();
    let remembered = buildx_check_file();
    if let (Some(fingerprint), Some(file)) = (&fingerprint, &remembered) {
        if std::fs::read_to_string(file).is_ok_and(|text| &text == fingerprint) {
            return Ok(());
        }
    }
    let out = process::capture(&docker(&["buildx", "version"]))?;
    if !out.success {
        bail!(
            "docker buildx is not available ({}): install the buildx plugin (Debian/Ubuntu: apt install docker-buildx; see https://docs.docker.com/go/buildx/)",
            first_line(&out.stderr_text())
        );
    }
    if let (Some(fingerprint), Some(file)) = (fingerprint, remembered) {
        // Best effort: a write that fails only means checking again next time.
        let temporary = file.with_extension(format!("{}", std::process::id()));
        if std::fs::write(&temporary, fingerprint).is_ok() {
            let _ = std::fs::rename(&temporary, &file);
        }
    }
    Ok(())
}

/// The engine (of the selected builder) answers.
fn check_engine(selection: Option<&Selection>) -> Result<()> {
    // `docker version` asks the engine for its version and nothing else
    // (`docker info` gathers the engine's whole state: twice as slow).
    let version = ["version", "--format", "{{.Server.Version}}"].map(String::from);
    let out = process::capture(&docker::engine(selection, version.to_vec()))?;
    let version = out.stdout_text().trim().to_string();
    if !out.success || version.is_empty() {
        bail!(
            "the Docker engine is not reachable ({}): start it (Linux: sudo systemctl start docker; macOS: open Docker Desktop) and check `docker info`",
            first_line(&out.stderr_text())
        );
    }
    Ok(())
}

/// Why `builder` cannot build every one of `platforms`, in one line; `None` if it can.
pub fn platforms_refusal(builder: &BuilderInfo, platforms: &[Platform]) -> Option<String> {
    let missing: Vec<String> = platforms
        .iter()
        .filter(|p| !builder.supports(p))
        .map(ToString::to_string)
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "the buildx builder {:?} (driver {}) cannot build {} (it can build: {}): enable QEMU emulation \
         (docker run --privileged --rm tonistiigi/binfmt --install all, or apt install qemu-user-static) \
         or select a builder that can (docker buildx create --use --platform {})",
        builder.name,
        builder.driver,
        missing.join(", "),
        builder.platforms.join(", "),
        platforms.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    ))
}

/// Where a successful buildx check is remembered, if this is a checkout.
fn buildx_check_file() -> Option<PathBuf> {
    let dir = crate::project::project_root().join("target/xtask");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join("buildx-check"))
}

/// What a successful `docker buildx version` depended on: the docker client
/// found on PATH (its path, size and modification time), the environment
/// that points it elsewhere, and the modification times of the directories
/// it loads CLI plugins from (installing, upgrading or removing buildx
/// changes them) and of its config file (extra plugin directories), and the
/// day, so the check runs again at least daily. `None` when there is no
/// docker on PATH.
fn buildx_fingerprint() -> Option<String> {
    use std::fmt::Write as _;
    fn modified(path: &Path) -> String {
        path.metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or_else(|| "-".to_string(), |d| d.as_nanos().to_string())
    }
    let docker = find_program("docker")?;
    let size = docker.metadata().map(|m| m.len()).unwrap_or(0);
    let mut text = format!("docker {} {size} {}\n", docker.display(), modified(&docker));
    for var in [
        "DOCKER_CONFIG",
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_CLI_PLUGIN_EXTRA_DIRS",
    ] {
        let value = std::env::var_os(var).unwrap_or_default();
        let _ = writeln!(text, "{var}={}", value.to_string_lossy());
    }
    let config = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")))
        .unwrap_or_default();
    let mut places = vec![config.join("cli-plugins"), config.join("config.json")];
    places.extend(
        [
            "/usr/local/lib/docker/cli-plugins",
            "/usr/local/libexec/docker/cli-plugins",
            "/usr/lib/docker/cli-plugins",
            "/usr/libexec/docker/cli-plugins",
            "/opt/homebrew/lib/docker/cli-plugins",
            "/Applications/Docker.app/Contents/Resources/cli-plugins",
        ]
        .map(PathBuf::from),
    );
    for place in places {
        let _ = writeln!(text, "{} {}", place.display(), modified(&place));
    }
    let day = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    let _ = writeln!(text, "day {day}");
    Some(text)
}

/// Reads the current builder's name, driver and platforms.
pub fn builder_info() -> Result<BuilderInfo> {
    builder_info_on(None)
}

/// Reads the selected builder's (else the current one's) name, driver and platforms.
pub fn builder_info_on(selection: Option<&Selection>) -> Result<BuilderInfo> {
    Ok(BuilderInfo::from(&docker::inspect_selected(selection)?))
}

#[cfg(test)]
fn parse_builder_info(text: &str) -> BuilderInfo {
    BuilderInfo::from(&crate::model::builder::parse(text).unwrap_or_else(|e| panic!("{e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_inspect() {
        let text = "Name:          default\nDriver:        docker\n\nNodes:\nName:      default\nEndpoint:  default\nStatus:    running\nPlatforms: linux/amd64, linux/amd64/v2, linux/arm64*, linux/386\n";
        let info = parse_builder_info(text);
        assert_eq!(info.name, "default");
        assert_eq!(info.driver, "docker");
        assert!(info.supports(&Platform::linux("arm64")));
        assert!(info.supports(&Platform::linux("amd64")));
        assert!(!info.supports(&Platform::linux("s390x")));
    }
}
