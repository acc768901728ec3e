//! Helpers of the end-to-end tests (e2e_images.rs, e2e_compile.rs,
//! e2e_prune.rs, e2e_prune_cache.rs): the real xtask binary against the real stack of
//! `.ci/setup-stack` (Docker engine with buildx, the OCI registry on
//! 127.0.0.1, cosign), never shims. Missing pieces fail the tests, they never
//! skip them.
//!
//! Use from a test file with `mod support;` and `use support::e2e::...`.
//! Every test binary compiles its own copy: each has its own [`engine_lock`]
//! and its own [`fixture`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub use super::{project_root as root, run, stderr, stdout};

/// The stack's registry (XTASK_TEST_REGISTRY, default 127.0.0.1:5000).
pub fn registry() -> String {
    std::env::var("XTASK_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".to_string())
}

/// `--registry`, `--image-name NAME` and `--cache registry`: an image named
/// under the test registry that reads and writes its registry cache there.
pub fn with_registry_cache(name: &str) -> Vec<String> {
    [
        "--registry",
        &registry(),
        "--image-name",
        name,
        "--cache",
        "registry",
    ]
    .map(String::from)
    .to_vec()
}

/// Who holds the engine and who waits for it.
struct Turns {
    held: bool,
    /// The waiting tests' names (with a ticket, should two share one).
    waiting: BTreeSet<(String, u64)>,
    tickets: u64,
}

static TURNS: Mutex<Turns> = Mutex::new(Turns {
    held: false,
    waiting: BTreeSet::new(),
    tickets: 0,
});
static TURN_ENDED: Condvar = Condvar::new();

fn turns() -> MutexGuard<'static, Turns> {
    TURNS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The engine, held by one test until dropped.
pub struct EngineGuard(());

impl Drop for EngineGuard {
    fn drop(&mut self) {
        turns().held = false;
        TURN_ENDED.notify_all();
    }
}

/// One build at a time: the tests of a binary share one engine, its build
/// cache and the machine's cores. Of the tests waiting for it, the one whose
/// name sorts first goes next (libtest names a test's thread after the test
/// and starts tests in name order), so tests that leave the engine in a
/// state the next one can use (a warm cache) run in the order of their
/// names, whatever the number of test threads; each still runs alone too.
/// Take it first thing in a test, before any fixture, so the tests started
/// together line up by name.
pub fn engine_lock() -> EngineGuard {
    let name = std::thread::current().name().unwrap_or("").to_string();
    let mut turns = turns();
    turns.tickets += 1;
    let me = (name, turns.tickets);
    turns.waiting.insert(me.clone());
    while turns.held || turns.waiting.first() != Some(&me) {
        turns = TURN_ENDED
            .wait(turns)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    turns.waiting.remove(&me);
    turns.held = true;
    EngineGuard(())
}

/// A fixture several tests share, made once by the first that needs it
/// (under the engine lock it holds): `init`'s value, or, if making it
/// failed, the same failure in every test that needs it, without trying
/// again.
pub fn shared<T: Send + Sync>(
    cell: &'static OnceLock<Result<T, String>>,
    what: &str,
    init: impl FnOnce() -> T,
) -> &'static T {
    let made = cell.get_or_init(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(init)).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".to_string())
        })
    });
    match made {
        Ok(value) => value,
        Err(why) => panic!("{what} could not be made (see the first test that needed it): {why}"),
    }
}

/// The xtask binary, started in the project root, with the caller's
/// environment (PATH, HOME, DOCKER_CONFIG, ... the stack needs them) minus
/// what would make it act as CI or pick another target.
pub fn xtask() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.current_dir(root());
    for var in [
        "CI",
        "GITHUB_ACTIONS",
        "GITHUB_REF",
        "GITHUB_OUTPUT",
        "GITHUB_STEP_SUMMARY",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "COSIGN_KEY",
        "IMAGE_REGISTRY",
        "IMAGE_NAME",
        "XTASK_CONTEXT",
        "XTASK_PARSE_ONLY",
    ] {
        command.env_remove(var);
    }
    command
}

/// Asserts that a run succeeded, showing its output otherwise.
#[track_caller]
pub fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "failed:\n{}\n{}",
        stdout(output),
        stderr(output)
    );
}

/// Runs a command and asserts that it succeeded (naming the command and
/// showing its output otherwise).
#[track_caller]
pub fn run_ok(command: &mut Command) -> Output {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed:\n--- stdout\n{}\n--- stderr\n{}",
        stdout(&output),
        stderr(&output)
    );
    output
}

/// Runs a command that must succeed; returns its stdout.
#[track_caller]
pub fn ok(command: &mut Command) -> String {
    stdout(&run_ok(command))
}

pub fn docker(args: &[&str]) -> Output {
    run(Command::new("docker").args(args))
}

/// `git ARGS` in the project root, trimmed stdout.
pub fn git(args: &[&str]) -> String {
    ok(Command::new("git").current_dir(root()).args(args))
        .trim()
        .to_string()
}

/// The architecture of this machine, as in `linux/ARCH`.
pub fn native_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    }
}

/// Minimal HTTP request against a loopback server: (status, head, body).
pub fn http_request(
    host: &str,
    method: &str,
    path: &str,
    accept: &str,
) -> Option<(u16, String, String)> {
    let mut stream = TcpStream::connect(host).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head.to_string(), body.to_string()))
}

/// The body of a 200 answer to `GET path` (None: no answer, or another status).
pub fn http_get(host: &str, path: &str) -> Option<String> {
    http_request(host, "GET", path, "*/*")
        .filter(|(s, _, _)| *s == 200)
        .map(|(_, _, body)| body)
}

/// Polls `GET 127.0.0.1:PORT/PATH` for up to 15 seconds.
pub fn wait_for_http(port: u16, path: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Some(body) = http_get(&format!("127.0.0.1:{port}"), path) {
            return Some(body);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// Starts `image` detached as container `name`, its port 8080 published on
/// loopback; returns what `docker port` says of it.
pub fn start_service(name: &str, image: &str) -> String {
    let started = docker(&["run", "-d", "--name", name, "-p", "127.0.0.1::8080", image]);
    assert!(started.status.success(), "{}", stderr(&started));
    stdout(&docker(&["port", name, "8080/tcp"]))
        .trim()
        .to_string()
}

/// Runs `IMAGE --version` as linux/arm64 (under emulation on another machine).
pub fn arm64_version(image: &str) -> Output {
    docker(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        image,
        "--version",
    ])
}

/// The media types a manifest request accepts: indexes and manifests, OCI and Docker.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// The tags of a repository, straight from the registry API.
pub fn registry_tags(repository: &str) -> Vec<String> {
    let Some(body) = http_get(&registry(), &format!("/v2/{repository}/tags/list")) else {
        return Vec::new();
    };
    let value: Value = serde_json::from_str(&body).unwrap();
    let mut tags: Vec<String> = value["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}

/// The digest a tag resolves to, from the registry API (None: no such tag).
pub fn registry_digest(repository: &str, reference: &str) -> Option<String> {
    let (status, head, _) = http_request(
        &registry(),
        "HEAD",
        &format!("/v2/{repository}/manifests/{reference}"),
        MANIFEST_TYPES,
    )?;
    if status != 200 {
        return None;
    }
    head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .starts_with("docker-content-digest:")
            .then(|| l.split_once(':').unwrap().1.trim().to_string())
    })
}

/// `GET /v2/REPOSITORY/PATH` from the registry as JSON; it must be there.
pub fn registry_json(repository: &str, path: &str) -> Value {
    let (status, _, body) = http_request(
        &registry(),
        "GET",
        &format!("/v2/{repository}/{path}"),
        MANIFEST_TYPES,
    )
    .unwrap_or_else(|| panic!("the registry {} does not answer", registry()));
    assert_eq!(status, 200, "{repository}/{path} is not in the registry");
    serde_json::from_str(&body).unwrap()
}

/// The manifest (or index) a tag or digest names; it must be there.
pub fn registry_manifest(repository: &str, reference: &str) -> Value {
    registry_json(repository, &format!("manifests/{reference}"))
}

/// The `OS/ARCH` of every image of an index, attestation manifests left out, in index order.
pub fn index_platforms(index: &Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["annotations"]["vnd.docker.reference.type"] != "attestation-manifest")
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect()
}

/// The image config of an index's `architecture` image, from the registry.
pub fn platform_config(repository: &str, index: &Value, architecture: &str) -> Value {
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == architecture)
        .unwrap();
    let manifest = registry_manifest(repository, entry["digest"].as_str().unwrap());
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    registry_json(repository, &format!("blobs/{config_digest}"))
}

/// Fails loudly (never skips) when the stack is not there.
pub fn require_stack() {
    let engine = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    assert!(
        engine.as_ref().is_ok_and(|o| o.status.success()),
        "the end-to-end tests need a running Docker engine with buildx: run `sudo .ci/setup-stack` (Debian) or start Docker"
    );
    assert!(
        http_get(&registry(), "/v2/").is_some(),
        "the end-to-end tests need an OCI registry on {}: run `sudo .ci/setup-stack`",
        registry()
    );
}

const BUILDER_REPOSITORY: &str = "stand-ins/rust-builder";
const BUILDER_TAG: &str = "bookworm";

/// The Rust builder image of `.ci/build-builder-image`, pinned by digest;
/// fails loudly (never skips) when it is not in the registry.
fn pinned_builder_image() -> String {
    let digest = registry_digest(BUILDER_REPOSITORY, BUILDER_TAG).unwrap_or_else(|| {
        panic!(
            "the compile-stage end-to-end tests need the Rust builder image {}/{BUILDER_REPOSITORY}:{BUILDER_TAG} \
             (nothing can be pulled here): run `sudo REGISTRY_ADDR={} .ci/build-builder-image` (after \
             `sudo .ci/setup-stack`, which runs it too)",
            registry(),
            registry()
        )
    });
    format!("{}/{BUILDER_REPOSITORY}:{BUILDER_TAG}@{digest}", registry())
}

/// What the builds of the tests use instead of anything pulled: the
/// stand-ins of `cargo xtask stand-ins`.
pub struct Fixture {
    /// `VARIANT:KEY=VALUE` build arguments: the stand-in bases.
    build_args: Vec<String>,
    pub sbom_generator: String,
    /// The host-built binaries, for `--binaries`.
    binaries: String,
    /// The Rust builder image pinned by digest, for builds that run
    /// images/compile.Dockerfile (None: builds take the host binaries).
    builder: Option<String>,
}

impl Fixture {
    /// Options of every build: the stand-in bases, then either the host
    /// binaries (`--binaries`) or, for the compile-stage tests, the pinned
    /// builder image (`--build-arg=BUILDER_IMAGE=...`).
    pub fn build_options(&self) -> Vec<String> {
        let mut options: Vec<String> = self
            .build_args
            .iter()
            .map(|a| format!("--build-arg={a}"))
            .collect();
        match &self.builder {
            Some(builder) => options.push(format!("--build-arg=BUILDER_IMAGE={builder}")),
            None => options.push(format!("--binaries={}", self.binaries)),
        }
        options
    }

    /// The pinned Rust builder image (compile fixture only).
    pub fn builder_image(&self) -> Option<&str> {
        self.builder.as_deref()
    }

    fn stand_ins(builder: Option<String>) -> Fixture {
        let text = ok(xtask().args(["stand-ins", "--registry", &registry()]));
        let overrides: Value = serde_json::from_str(&text).expect("stand-ins prints JSON");
        let build_args = overrides["build_args"]
            .as_object()
            .expect("stand-ins lists build_args per variant")
            .values()
            .flat_map(|v| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
            })
            .collect();
        Fixture {
            build_args,
            sbom_generator: overrides["sbom_generator"].as_str().unwrap().to_string(),
            binaries: overrides["binaries"].as_str().unwrap().to_string(),
            builder,
        }
    }
}

/// The stand-ins, with builds taking the host-built binaries (`--binaries`).
/// Requires the stack.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        require_stack();
        Fixture::stand_ins(None)
    })
}

/// The stand-ins, with builds compiling the service in the pinned builder
/// image (no `--binaries`). Requires the stack and the builder image.
pub fn compile_fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        require_stack();
        let builder = pinned_builder_image();
        Fixture::stand_ins(Some(builder))
    })
}

/// A repository name no other run has used.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "e2e/{prefix}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000
    )
}

/// A context file making the checkout look like a clean CI checkout of `git_ref`.
pub fn context_file(name: &str, git_ref: &str, release_tags: &[&str]) -> PathBuf {
    let dir = root().join("target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.json"));
    let context = serde_json::json!({
        "git": {
            "revision": git(&["rev-parse", "HEAD"]),
            "commit_time": git(&["log", "-1", "--format=%ct"]).parse::<i64>().unwrap(),
            "dirty": false,
            "branch": null,
            "tags_at_head": [],
            "release_tags": release_tags,
            "source_url": "https://github.com/example/beacon"
        },
        "ci": { "github_actions": false, "git_ref": git_ref, "oidc_available": false },
        "native_platform": "linux/amd64"
    });
    std::fs::write(&path, context.to_string()).unwrap();
    path
}

/// A cosign key pair `DIR/cosign.key` (encrypted with `password`) and
/// `DIR/cosign.pub`, generated on first use.
pub fn cosign_keys(dir: &Path, password: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let prefix = dir.join("cosign");
    if !prefix.with_extension("key").exists() {
        ok(Command::new("cosign")
            .args(["generate-key-pair", "--output-key-prefix"])
            .arg(&prefix)
            .env("COSIGN_PASSWORD", password));
    }
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// `xtask-e2e-LABEL-PID-SECONDS-NANOS`: a repository or directory name no
/// other run has used.
pub fn unique_label(label: &str) -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "xtask-e2e-{label}-{}-{}-{}",
        std::process::id(),
        since.as_secs(),
        since.subsec_nanos()
    )
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// `xtask prune-ci-images ARGS...` with `env` set.
pub fn prune_ci_images(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = xtask();
    command.arg("prune-ci-images").args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    run(&mut command)
}

/// Asserts a run that succeeded; returns its stdout.
#[track_caller]
pub fn succeeded(output: &Output) -> String {
    assert_ok(output);
    stdout(output)
}

/// Asserts a failed run (exit 1) that printed exactly one line, `error: ...`,
/// and nothing on stdout; returns the line.
#[track_caller]
pub fn one_line_error(output: &Output) -> String {
    one_line_error_exiting(output, 1)
}

/// [`one_line_error`] of a value the command line refused (exit 2): it says
/// which flag, what is wrong and the expected form.
#[track_caller]
pub fn argument_error(output: &Output) -> String {
    one_line_error_exiting(output, 2)
}

#[track_caller]
fn one_line_error_exiting(output: &Output, code: i32) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(code),
        "expected exit {code}; stdout: {} stderr: {stderr}",
        text(&output.stdout)
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "expected one line on stderr, got: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout expected: {}",
        text(&output.stdout)
    );
    stderr.trim_end().to_string()
}

/// Fails the test (never skips it) when the test stack's registry is not there.
pub fn require_registry(registry: &str) {
    let out = Command::new("curl")
        .args(["-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{registry}/v2/"))
        .output();
    let ok = matches!(&out, Ok(o) if o.status.success() && o.stdout == b"200");
    assert!(
        ok,
        "the test registry {registry} is not reachable ({}): run `.ci/setup-stack` to start the test stack (or set XTASK_TEST_REGISTRY)",
        match &out {
            Ok(o) => format!("{} {}", text(&o.stdout), text(&o.stderr).trim()),
            Err(e) => e.to_string(),
        }
    );
}

/// curl against a registry, accepting any manifest type, with `extra`
/// options and `body` sent: (status, headers lowercased, body).
pub fn curl(
    method: &str,
    url: &str,
    extra: &[&str],
    body: Option<&[u8]>,
) -> (u16, BTreeMap<String, String>, String) {
    let mut command = Command::new("curl");
    command.args(["-sS", "-m", "30", "-D", "-", "-H"]);
    command.arg(format!("Accept: {MANIFEST_TYPES}"));
    match method {
        "HEAD" => command.arg("-I"),
        other => command.args(["-X", other]),
    };
    command.args(extra);
    if body.is_some() {
        command.args(["--data-binary", "@-"]);
    }
    let mut child = command
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        if let Some(body) = body {
            stdin.write_all(body).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "curl {method} {url} failed: {}",
        text(&out.stderr)
    );
    let raw = text(&out.stdout);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// The digest a tag or digest resolves to in `REGISTRY/REPO` (HEAD manifest), from the registry API.
pub fn resolve(registry: &str, repo: &str, reference: &str) -> Option<String> {
    resolve_as(registry, repo, reference, None)
}

/// [`resolve`] as `user` (`NAME:PASSWORD`), if given.
pub fn resolve_as(
    registry: &str,
    repo: &str,
    reference: &str,
    user: Option<&str>,
) -> Option<String> {
    let url = format!("http://{registry}/v2/{repo}/manifests/{reference}");
    let extra = match user {
        Some(user) => vec!["-u", user],
        None => Vec::new(),
    };
    let (status, headers, _) = curl("HEAD", &url, &extra, None);
    match status {
        200 => Some(headers.get("docker-content-digest").cloned().unwrap()),
        404 => None,
        other => panic!("HEAD {reference} in {registry}/{repo} answered {other}"),
    }
}

/// Every tag of a repository and its digest (GET tags/list, then HEAD each).
pub fn tag_map(registry: &str, repo: &str) -> BTreeMap<String, String> {
    let url = format!("http://{registry}/v2/{repo}/tags/list");
    let (status, _, body) = curl("GET", &url, &[], None);
    assert_eq!(status, 200, "tags/list of {repo}: {body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    let tags: Vec<String> = list["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    tags.into_iter()
        .map(|tag| {
            let digest = resolve(registry, repo, &tag).unwrap();
            (tag, digest)
        })
        .collect()
}

/// A build context `DIR/KEY` of a tiny `FROM scratch` image whose one file
/// holds `payload` (which makes it unique); returns its path.
pub fn tiny_context(dir: &Path, key: &str, payload: &str) -> PathBuf {
    let context = dir.join(key);
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("payload"), payload).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY payload /payload\n",
    )
    .unwrap();
    context
}

/// bcrypt (cost 4) of [`SECRET`], for the htpasswd registry.
pub const HTPASSWD: &str = "alice:$2b$04$JBaFZhsCi4/Z7Z1QI6vu8Ou4YoguKucKOPRyGS234WiMwcgXpAb4e";
/// alice's password on the htpasswd registry.
pub const SECRET: &str = "s3cret";

/// A distribution registry with htpasswd (Basic) auth (user alice,
/// [`SECRET`]) and deletion disabled, on a free port; stopped when dropped.
pub struct AuthRegistry {
    child: std::process::Child,
    pub addr: String,
    /// Dropped after `child` is killed (fields drop after `Drop::drop`).
    _dir: super::TempDir,
}

impl AuthRegistry {
    /// Starts it with its files in `dir`.
    pub fn start(dir: super::TempDir) -> AuthRegistry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        std::fs::write(dir.path().join("htpasswd"), format!("{HTPASSWD}\n")).unwrap();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: false\n\
             http:\n  addr: {addr}\nauth:\n  htpasswd:\n    realm: xtask-test\n    path: {}\n",
            dir.path().join("data").display(),
            dir.path().join("htpasswd").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start docker-registry ({e}): run `.ci/setup-stack` to install the test stack"));
        let registry = AuthRegistry {
            child,
            addr,
            _dir: dir,
        };
        for _ in 0..100 {
            let probe = Command::new("curl")
                .args(["-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("http://{}/v2/", registry.addr))
                .output()
                .unwrap();
            if probe.stdout == b"401" {
                return registry;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the htpasswd registry on {} did not start", registry.addr);
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
