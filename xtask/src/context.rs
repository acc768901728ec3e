//! The facts a plan is computed from: the git checkout and the CI run.
//! Gathering them is the only impure part of planning; `XTASK_CONTEXT=FILE`
//! replaces them with a JSON file so tests can plan any situation (a tag push
//! in GitHub Actions, a pull request, a dirty laptop checkout) without one.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::client::git;
use crate::model::names::Platform;
use crate::model::version::Version;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildContext {
    pub git: GitState,
    pub ci: CiEnv,
    /// The native Linux platform of this machine (the CI path's default).
    pub native_platform: Platform,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitState {
    /// Full commit id of HEAD, or "unknown" outside a git checkout.
    pub revision: String,
    /// Committer time of HEAD in seconds since the epoch: SOURCE_DATE_EPOCH.
    pub commit_time: i64,
    /// Uncommitted changes to tracked files, or untracked files.
    pub dirty: bool,
    /// The checked-out branch, if any.
    pub branch: Option<String>,
    /// Tags pointing at HEAD.
    pub tags_at_head: Vec<String>,
    /// Every `v*` tag of the repository (to tell whether a release is the newest).
    pub release_tags: Vec<String>,
    /// Browsable URL of the source repository.
    pub source_url: String,
}

/// What GitHub Actions tells a job about itself (all empty elsewhere).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiEnv {
    pub github_actions: bool,
    pub event_name: Option<String>,
    /// `GITHUB_REF`: refs/heads/main, refs/tags/v1.2.3, refs/pull/12/merge.
    pub git_ref: Option<String>,
    pub repository: Option<String>,
    pub repository_owner: Option<String>,
    pub server_url: Option<String>,
    /// `GITHUB_WORKFLOW_REF`: the keyless signing identity of this workflow.
    pub workflow_ref: Option<String>,
    /// `ACTIONS_ID_TOKEN_REQUEST_URL` is set: the job may mint an OIDC token.
    pub oidc_available: bool,
}

/// The ref a build is for, as the tag and cache policies see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "kebab-case")]
pub enum BuildRef {
    Branch(String),
    Tag(String),
    PullRequest(u64),
    Detached,
}

/// The GitHub Actions events a release may be published from: the ones
/// build-push.yml runs on (`tests/workflows.rs` keeps the two equal). On a
/// push, `GITHUB_REF` is the branch or tag that was pushed and the checkout
/// is its commit; on other events it is not what was pushed
/// (`pull_request_target`, `workflow_run`, `schedule` and the dispatches say
/// the default branch, whatever code the job checks out).
pub const RELEASE_EVENTS: &[&str] = &["push"];

impl BuildContext {
    /// A fixed context for tests and examples: a clean checkout of `main`
    /// at a fixed commit, in GitHub Actions (acme/beacon) when `git_ref` is
    /// given, on a laptop otherwise.
    pub fn example(git_ref: Option<&str>) -> BuildContext {
        BuildContext {
            git: GitState {
                revision: "0123456789abcdef0123456789abcdef01234567".into(),
                commit_time: 1_700_000_000,
                dirty: false,
                branch: Some("main".into()),
                tags_at_head: Vec::new(),
                release_tags: vec!["v0.9.0".into(), "v1.2.3".into()],
                source_url: "https://github.com/acme/beacon".into(),
            },
            ci: CiEnv {
                github_actions: git_ref.is_some(),
                git_ref: git_ref.map(String::from),
                repository: git_ref.map(|_| "acme/beacon".into()),
                repository_owner: git_ref.map(|_| "Acme".into()),
                server_url: git_ref.map(|_| "https://github.com".into()),
                // What build-push.yml and ci-build.yml run on.
                event_name: git_ref.map(|r| {
                    if r.starts_with("refs/pull/") {
                        "pull_request".into()
                    } else {
                        "push".into()
                    }
                }),
                ..CiEnv::default()
            },
            native_platform: Platform::linux("amd64"),
        }
    }

    /// Refuses to publish from a GitHub Actions event other than
    /// [`RELEASE_EVENTS`], naming why that event's ref cannot be trusted.
    /// `--allow-any-ref` does not lift this: it widens the refs, not the events.
    pub fn check_release_event(&self) -> Result<()> {
        let event = match (&self.ci.event_name, self.ci.github_actions) {
            (Some(event), _) => event.as_str(),
            (None, false) => return Ok(()),
            (None, true) => bail!(
                "this is a GitHub Actions job (GITHUB_ACTIONS=true) without GITHUB_EVENT_NAME, so what started it is unknown: \
                 release-image publishes only from {}; run it from build-push.yml",
                RELEASE_EVENTS.join(", ")
            ),
        };
        if RELEASE_EVENTS.contains(&event) {
            return Ok(());
        }
        let git_ref = self.ci.git_ref.as_deref().unwrap_or("unset");
        let why = match event {
            "pull_request" => "a pull request is built as CI images by ci-build.yml, never released".to_string(),
            "pull_request_target" => format!(
                "its GITHUB_REF ({git_ref}) is the base branch, while the code may be the pull request's"
            ),
            "workflow_dispatch" => format!(
                "a manual run releases whatever ref was picked ({git_ref}), which nobody pushed as a release"
            ),
            "release" => "a GitHub release is made from a tag: pushing that vX.Y.Z tag already releases it".to_string(),
            _ => format!("its GITHUB_REF ({git_ref}) names no branch or tag that was pushed"),
        };
        bail!(
            "release-image publishes only from a {} event (what build-push.yml runs on), and this job was started by \
             {event}: {why}; push to main or push a vX.Y.Z tag instead (--allow-any-ref does not change this)",
            RELEASE_EVENTS.join(" or ")
        )
    }

    pub fn short_revision(&self) -> String {
        self.git.revision.chars().take(7).collect()
    }

    /// In GitHub Actions the event's ref wins (a tag push checks out a
    /// detached HEAD); elsewhere the checkout says: the highest release tag
    /// on HEAD, else the branch.
    pub fn build_ref(&self) -> BuildRef {
        if let Some(git_ref) = &self.ci.git_ref {
            if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
                return BuildRef::Tag(tag.to_string());
            }
            if let Some(rest) = git_ref.strip_prefix("refs/pull/") {
                if let Some(number) = rest.split('/').next().and_then(|n| n.parse().ok()) {
                    return BuildRef::PullRequest(number);
                }
            }
            if let Some(branch) = git_ref.strip_prefix("refs/heads/") {
                return BuildRef::Branch(branch.to_string());
            }
        }
        if let Some(version) = self
            .git
            .tags_at_head
            .iter()
            .filter_map(|t| Version::from_git_tag(t))
            .max()
        {
            return BuildRef::Tag(version.git_tag());
        }
        match &self.git.branch {
            Some(branch) => BuildRef::Branch(branch.clone()),
            None => BuildRef::Detached,
        }
    }
}

/// Reads the context from `XTASK_CONTEXT` if set, else from git and the environment.
pub fn gather(root: &Path) -> Result<BuildContext> {
    if let Ok(file) = std::env::var("XTASK_CONTEXT") {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read XTASK_CONTEXT file {file}"))?;
        return serde_json::from_str(&text)
            .with_context(|| format!("XTASK_CONTEXT file {file} is not a valid context"));
    }
    let ci = CiEnv::from_env();
    let git = GitState::read(root, &ci)?;
    Ok(BuildContext {
        git,
        ci,
        native_platform: Platform::native(),
    })
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl CiEnv {
    pub fn from_env() -> CiEnv {
        CiEnv {
            github_actions: env_nonempty("GITHUB_ACTIONS").as_deref() == Some("true"),
            event_name: env_nonempty("GITHUB_EVENT_NAME"),
            git_ref: env_nonempty("GITHUB_REF"),
            repository: env_nonempty("GITHUB_REPOSITORY"),
            repository_owner: env_nonempty("GITHUB_REPOSITORY_OWNER"),
            server_url: env_nonempty("GITHUB_SERVER_URL"),
            workflow_ref: env_nonempty("GITHUB_WORKFLOW_REF"),
            oidc_available: env_nonempty("ACTIONS_ID_TOKEN_REQUEST_URL").is_some(),
        }
    }
}

impl GitState {
    fn read(root: &Path, ci: &CiEnv) -> Result<GitState> {
        let fallback_source = match (&ci.server_url, &ci.repository) {
            (Some(server), Some(repo)) => format!("{server}/{repo}"),
            _ => "https://github.com/example/beacon".to_string(),
        };
        // One `git log` gives the commit, its time and the refs at HEAD (the
        // branch and tags); the other three queries run concurrently. Git is
        // most of this tool's fixed cost on a no-op build.
        let Ok(head) = git::read(root, &["log", "-1", "--format=%H%n%ct%n%D", "HEAD"]) else {
            // Not a git checkout (a source tarball): CI builds still work,
            // releases refuse (they need a commit to be reproducible from).
            return Ok(GitState {
                revision: "unknown".into(),
                commit_time: 0,
                dirty: true,
                branch: None,
                tags_at_head: Vec::new(),
                release_tags: Vec::new(),
                source_url: fallback_source,
            });
        };
        let mut head_lines = head.lines();
        let revision = head_lines.next().unwrap_or_default().to_string();
        let commit_time = head_lines
            .next()
            .unwrap_or_default()
            .trim()
            .parse()
            .context("git printed an unreadable commit time")?;
        let (branch, tags_at_head) = parse_head_refs(head_lines.next().unwrap_or_default());
        let lines = |text: String| {
            text.lines()
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
        };
        let query = |args: &[&str]| git::answer(root, args);
        let (status, release_tags, remote) = std::thread::scope(|scope| {
            let status =
                scope.spawn(|| query(&["status", "--porcelain", "--untracked-files=normal"]));
            let tags = scope.spawn(|| query(&["tag", "--list", "v*"]));
            let remote = scope.spawn(|| query(&["config", "--get", "remote.origin.url"]));
            let join = |h: std::thread::ScopedJoinHandle<'_, Result<String>>| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a git query panicked")))
            };
            (join(status), join(tags), join(remote))
        });
        let dirty = !status?.is_empty();
        let release_tags = lines(release_tags?);
        let remote = remote?;
        let source_url = if ci.server_url.is_some() && ci.repository.is_some() {
            fallback_source
        } else {
            browsable_url(&remote).unwrap_or(fallback_source)
        };
        Ok(GitState {
            revision,
            commit_time,
            dirty,
            branch,
            tags_at_head,
            release_tags,
            source_url,
        })
    }
}

/// The branch and tags at HEAD from `git log --format=%D`
/// (`HEAD -> main, tag: v1.2.3, origin/main`; a detached HEAD reads `HEAD, tag: v1.2.3`).
fn parse_head_refs(decorations: &str) -> (Option<String>, Vec<String>) {
    let mut branch = None;
    let mut tags = Vec::new();
    for item in decorations.split(", ").map(str::trim) {
        if let Some(name) = item.strip_prefix("HEAD -> ") {
            branch = Some(name.to_string());
        } else if let Some(tag) = item.strip_prefix("tag: ") {
            tags.push(tag.to_string());
        }
    }
    (branch, tags)
}

/// `git@github.com:acme/beacon.git` or `https://github.com/acme/beacon.git`
/// -> `https://github.com/acme/beacon`; credentials in a URL are dropped.
fn browsable_url(remote: &str) -> Option<String> {
    let remote = remote.trim().trim_end_matches(".git");
    if let Some(rest) = remote.strip_prefix("git@") {
        let (host, path) = rest.split_once(':')?;
        return Some(format!("https://{host}/{path}"));
    }
    let rest = remote.strip_prefix("https://")?;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    Some(format!("https://{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(git_ref: Option<&str>) -> BuildContext {
        BuildContext::example(git_ref)
    }

    #[test]
    fn build_ref_from_github_and_git() {
        assert_eq!(
            sample(Some("refs/tags/v1.2.3")).build_ref(),
            BuildRef::Tag("v1.2.3".into())
        );
        assert_eq!(
            sample(Some("refs/pull/42/merge")).build_ref(),
            BuildRef::PullRequest(42)
        );
        assert_eq!(
            sample(Some("refs/heads/main")).build_ref(),
            BuildRef::Branch("main".into())
        );
        let mut local = sample(None);
        assert_eq!(local.build_ref(), BuildRef::Branch("main".into()));
        local.git.tags_at_head = vec!["not-a-release".into(), "v2.0.0".into()];
        assert_eq!(local.build_ref(), BuildRef::Tag("v2.0.0".into()));
        local.git.tags_at_head = vec!["v1.9.0".into(), "v1.10.0".into(), "v1.10.0-rc.1".into()];
        assert_eq!(
            local.build_ref(),
            BuildRef::Tag("v1.10.0".into()),
            "the highest release on HEAD, not the first git lists"
        );
        local.git.tags_at_head.clear();
        local.git.branch = None;
        assert_eq!(local.build_ref(), BuildRef::Detached);
    }

    #[test]
    fn two_release_tags_on_head_release_the_highest() {
        let mut local = sample(None);
        for (tags, highest) in [
            (&["v1.9.0", "v1.10.0"][..], "v1.10.0"),
            (&["v1.10.0", "v1.9.0"][..], "v1.10.0"),
            (&["v2.0.0-rc.1", "v2.0.0"][..], "v2.0.0"),
            (&["v2.0.0", "v2.0.0-rc.1"][..], "v2.0.0"),
            (&["v2.0.0-rc.9", "v2.0.0-rc.10"][..], "v2.0.0-rc.10"),
            (&["latest", "1.2.3", "v1.2", "v3.0.0"][..], "v3.0.0"),
        ] {
            local.git.tags_at_head = tags.iter().map(|t| t.to_string()).collect();
            assert_eq!(local.build_ref(), BuildRef::Tag(highest.into()), "{tags:?}");
        }
        // Tags that are not releases leave the branch as the ref.
        local.git.tags_at_head = vec!["latest".into(), "1.2.3".into(), "v1.2".into()];
        assert_eq!(local.build_ref(), BuildRef::Branch("main".into()));
        // In GitHub Actions the pushed tag is the one released, as pushed.
        let mut pushed = sample(Some("refs/tags/v1.9.0"));
        pushed.git.tags_at_head = vec!["v1.9.0".into(), "v1.10.0".into()];
        assert_eq!(pushed.build_ref(), BuildRef::Tag("v1.9.0".into()));
    }

    #[test]
    fn releases_run_only_from_a_push() {
        let with_event = |event: Option<&str>, git_ref: &str| {
            let mut context = sample(Some(git_ref));
            context.ci.event_name = event.map(String::from);
            context.check_release_event()
        };
        with_event(Some("push"), "refs/heads/main").unwrap();
        with_event(Some("push"), "refs/tags/v1.2.3").unwrap();
        sample(None).check_release_event().unwrap();
        for (event, git_ref, reason) in [
            (
                "pull_request_target",
                "refs/heads/main",
                "is the base branch",
            ),
            ("pull_request", "refs/pull/3/merge", "never released"),
            (
                "workflow_run",
                "refs/heads/main",
                "names no branch or tag that was pushed",
            ),
            (
                "schedule",
                "refs/heads/main",
                "names no branch or tag that was pushed",
            ),
            (
                "repository_dispatch",
                "refs/heads/main",
                "names no branch or tag that was pushed",
            ),
            (
                "issue_comment",
                "refs/heads/main",
                "names no branch or tag that was pushed",
            ),
            ("workflow_dispatch", "refs/heads/main", "a manual run"),
            ("release", "refs/tags/v1.2.3", "pushing that vX.Y.Z tag"),
        ] {
            let err = with_event(Some(event), git_ref).unwrap_err().to_string();
            assert!(
                err.contains(&format!("started by {event}: "))
                    && err.contains(reason)
                    && err.contains("push to main or push a vX.Y.Z tag"),
                "{event}: {err}"
            );
        }
        let err = with_event(None, "refs/heads/main").unwrap_err().to_string();
        assert!(err.contains("without GITHUB_EVENT_NAME"), "{err}");
    }

    #[test]
    fn head_refs() {
        assert_eq!(
            parse_head_refs("HEAD -> main, tag: v1.2.3, tag: latest-x, origin/main"),
            (
                Some("main".to_string()),
                vec!["v1.2.3".to_string(), "latest-x".to_string()]
            )
        );
        assert_eq!(
            parse_head_refs("HEAD, tag: v2.0.0"),
            (None, vec!["v2.0.0".to_string()])
        );
        assert_eq!(parse_head_refs(""), (None, Vec::new()));
    }

    #[test]
    fn remote_urls() {
        assert_eq!(
            browsable_url("git@github.com:acme/beacon.git").as_deref(),
            Some("https://github.com/acme/beacon")
        );
        assert_eq!(
            browsable_url("https://x-access-token:secret@github.com/acme/beacon").as_deref(),
            Some("https://github.com/acme/beacon")
        );
        assert_eq!(browsable_url("/srv/git/beacon"), None);
    }
}
