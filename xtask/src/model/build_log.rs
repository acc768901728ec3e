//! BuildKit's plain-progress log (`--progress plain`), read back: its steps
//! (`#12 [linux/amd64 deps 3/3] RUN ...`, their output, `#12 CACHED` or
//! `#12 DONE 1.5s`), the crates cargo compiled in the steps that ran, the
//! one-line errors the compile stages print for the user, and buildx's
//! summary of a failed build (which variants and stages failed, and whether
//! the engine itself lost a race).
//!
//! A step's header comes again whenever the printer switches between steps
//! running in parallel. The engine may also replay, before this build's own
//! steps, the output of steps it still holds from an earlier build (seen
//! after a build was interrupted): everything printed before the build's
//! first `[internal] load build definition` step is such a replay and is
//! left out, and when a label comes twice only the step printed last counts.

use std::collections::{BTreeMap, BTreeSet};

/// Lines with this prefix in a step's output are meant for the user:
/// `images/compile-service.sh` prints them before it fails.
pub const USER_ERROR_MARKER: &str = "beacon-build-error:";

/// One step of a build, as the log shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// `#12`.
    pub id: String,
    /// What is between the brackets of its header: `linux/amd64 deps 3/3`
    /// (a bake of several targets puts the target's name first).
    pub label: String,
    /// The instruction after the brackets: `RUN ...`, `COPY ...`.
    pub instruction: String,
    /// Answered from the cache (`#12 CACHED`).
    pub cached: bool,
    /// Layer blobs were fetched for it (`#12 sha256:... 55MB / 55MB done`,
    /// `#12 extracting sha256:...`): how a result found in an imported cache
    /// shows when a later step needs its files.
    pub pulled: bool,
    /// Stopped before it finished (`#12 CANCELED`): in a build that did not
    /// fail, because the cache answered a later step that needs its result.
    pub canceled: bool,
    /// Seconds from `#12 DONE 1.5s`, when it finished.
    pub done: Option<f64>,
    /// Its output, without the `#12 0.123 ` prefix.
    pub output: Vec<String>,
}

impl Step {
    /// The step's result came from a cache: it is `CACHED`, or it ran
    /// nothing (no output) and either its layers were pulled from an imported
    /// cache or BuildKit canceled it because the cache answered the step that
    /// needed it (a fresh runner's shared compile step, seen in a clean-clone
    /// run). Read it on a build that succeeded: a failed one cancels its
    /// other steps too.
    pub fn from_cache(&self) -> bool {
        self.cached || ((self.pulled || self.canceled) && self.output.is_empty())
    }
}

/// The lines of this build's own steps: from its first `[internal] load
/// build definition` step on (what comes before replays an earlier build).
pub fn own_lines(log: &str) -> impl Iterator<Item = &str> {
    let own = log
        .lines()
        .position(|line| line.starts_with('#') && line.contains("internal] load build definition"))
        .unwrap_or(0);
    log.lines().skip(own)
}

/// Every step of a log, by id, in the order their headers first appear. A
/// label may come more than once (a step that ran, then the same label
/// `CACHED` for a further variant of a bake).
pub fn steps_by_id(log: &str) -> Vec<Step> {
    let mut by_id: BTreeMap<String, Step> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for line in own_lines(log) {
        let Some((id, rest)) = line.split_once(' ') else {
            continue;
        };
        if !id.starts_with('#') || !id[1..].chars().all(|c| c.is_ascii_digit()) || id.len() < 2 {
            continue;
        }
        let step = by_id.entry(id.to_string()).or_insert_with(|| {
            order.push(id.to_string());
            Step {
                id: id.to_string(),
                ..Step::default()
            }
        });
        if let Some(header) = rest.strip_prefix('[') {
            if let Some((label, instruction)) = header.split_once("] ") {
                step.label = label.to_string();
                step.instruction = instruction.to_string();
            }
        } else if rest == "CACHED" {
            step.cached = true;
        } else if rest == "CANCELED" {
            step.canceled = true;
        } else if rest.starts_with("sha256:") || rest.starts_with("extracting sha256:") {
            step.pulled = true;
        } else if let Some(seconds) = rest.strip_prefix("DONE ") {
            step.done = seconds.trim_end_matches('s').parse().ok();
        } else if let Some((time, text)) = rest.split_once(' ') {
            if time.parse::<f64>().is_ok() {
                step.output.push(text.to_string());
            }
        }
    }
    order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .collect()
}

/// The steps of a log in the order their headers first appear, each label
/// once (the step printed last under that label).
pub fn steps(log: &str) -> Vec<Step> {
    // From the end: the first step met under a label is the last printed.
    let mut labels_seen = BTreeSet::new();
    let mut kept: Vec<Step> = steps_by_id(log)
        .into_iter()
        .rev()
        .filter(|step| step.label.is_empty() || labels_seen.insert(step.label.clone()))
        .collect();
    kept.reverse();
    kept
}

/// The crates cargo compiled in this build's own steps whose instruction
/// contains `marker` (every step for ""), as `(step label, crate name)`, from
/// cargo's `Compiling NAME vX.Y.Z` lines. Read by step id, not by label: a
/// bake of several variants reports a step they share once where it ran and
/// again, `CACHED`, under the same label for each further variant, and what
/// ran must count.
pub fn compiled_crates(log: &str, marker: &str) -> Vec<(String, String)> {
    steps_by_id(log)
        .into_iter()
        .filter(|step| !step.label.is_empty() && step.instruction.contains(marker))
        .flat_map(|step| {
            let label = step.label;
            step.output
                .into_iter()
                .filter_map(|text| {
                    text.trim_start()
                        .strip_prefix("Compiling ")
                        .and_then(|r| r.split_whitespace().next())
                        .map(String::from)
                })
                .map(move |name| (label.clone(), name))
        })
        .collect()
}

/// The first line a compile stage printed for the user, without its marker.
pub fn user_error(log: &str) -> Option<String> {
    log.lines().find_map(|line| {
        let (_, message) = line.split_once(USER_ERROR_MARKER)?;
        Some(message.trim().to_string())
    })
}

/// A failure of the engine, not of the build: the same bake, run once more,
/// finds the finished steps in the engine's cache and succeeds. A failed bake
/// moved no tag (pushes go by digest; archives are pushed after the bake), so
/// the second try repeats nothing anyone saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineRace {
    /// BuildKit's solver lost track of a step it merged with another build's
    /// (moby/buildkit#2303: the steps of every platform and variant of a bake
    /// are merged, and so are identical steps of builds running at the same
    /// time). depot's CLI retries it the same way.
    Solver,
    /// An export lost a blob it had just written (`exporting to oci image
    /// format` ... `ERROR: failed to solve: not found`): BuildKit 0.13's
    /// timestamp rewriting loses content now and then (moby/buildkit#4793,
    /// fixed in 0.14 by #5008; Debian's engine 26.1 embeds 0.13). Hit once in a
    /// clean-clone release of two variants through the docker driver.
    Export,
}

impl EngineRace {
    /// What the warning says happened, and the upstream issue.
    pub fn describe(self) -> &'static str {
        match self {
            EngineRace::Solver => {
                "BuildKit lost track of a step it shared with another build (\"inconsistent graph state\", moby/buildkit#2303)"
            }
            EngineRace::Export => {
                "BuildKit lost a blob while exporting an image (\"not found\" in an export step, moby/buildkit#4793)"
            }
        }
    }

    /// Which race, if any, a failed bake's log shows. Only buildx's own
    /// `ERROR:` line counts, never a step's output.
    pub fn of(log: &str) -> Option<EngineRace> {
        let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("ERROR: ")).collect();
        if errors
            .iter()
            .any(|l| l.contains("inconsistent graph state"))
        {
            return Some(EngineRace::Solver);
        }
        // buildx names the failed step between dashes: `------`, then
        // ` > [distroless] exporting to oci image format:`.
        let export_failed = log.lines().any(|line| {
            line.trim_start()
                .strip_prefix("> [")
                .and_then(|rest| rest.split_once("] "))
                .is_some_and(|(_, step)| step.starts_with("exporting to "))
        });
        let lost_content = errors.iter().any(|l| l.trim_end().ends_with(": not found"));
        (export_failed && lost_content).then_some(EngineRace::Export)
    }
}

/// Which variants a failed bake names: buildx prints `ERROR: target NAME: ...`
/// and the failing step as `> [NAME stage n/m] ...`.
pub fn failed_variants(log: &str, variants: &[&str]) -> Vec<String> {
    let mut failed = Vec::new();
    for line in log.lines() {
        let named = line
            .split_once("target ")
            .filter(|_| line.contains("ERROR"))
            .map(|(_, rest)| rest.split(':').next().unwrap_or_default().trim())
            .or_else(|| {
                // `> [ubi9 compile 2/2] RUN ...`: a step that failed; not
                // `> [ubi9] importing cache manifest from ...`, a warning
                // buildx repeats for a cache that is not there yet.
                line.trim_start()
                    .strip_prefix("> [")
                    .filter(|rest| !rest.contains("] importing cache manifest"))
                    .and_then(|rest| rest.split_whitespace().next())
            });
        if let Some(name) = named.map(|n| n.trim_end_matches(']')) {
            if variants.contains(&name) && !failed.iter().any(|f| f == name) {
                failed.push(name.to_string());
            }
        }
    }
    failed
}

/// The stages of the steps buildx reports as failed (`> [ubi9 deps 3/3] RUN
/// ...`: `deps`), from its summary at the end of a failed build.
pub fn failed_stages(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| line.trim_start().strip_prefix("> ["))
        .filter_map(|rest| rest.split_once(']').map(|(label, _)| label))
        .filter_map(|label| {
            let words: Vec<&str> = label.split_whitespace().collect();
            let step = words.last()?;
            let is_step = step.split_once('/').is_some_and(|(n, m)| {
                n.chars().all(|c| c.is_ascii_digit()) && m.chars().all(|c| c.is_ascii_digit())
            });
            (is_step && words.len() >= 2).then(|| words[words.len() - 2].to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
#1 [cargo-tools 2/2] RUN cargo install cargo-auditable
#1 0.1    Compiling serde v1.0.228
#1 DONE 105.8s
#2 [internal] load build definition from Dockerfile
#2 DONE 0.0s
#3 [fetch 6/6] RUN sh compile-service.sh fetch
#3 DONE 2.6s
#4 [linux/amd64 deps 3/3] RUN sh compile-service.sh deps amd64
#4 0.638    Compiling proc-macro2 v1.0.107
#5 [linux/amd64->arm64 deps 3/3] RUN sh compile-service.sh deps arm64
#5 0.700    Compiling proc-macro2 v1.0.107
#4 [linux/amd64 deps 3/3] RUN sh compile-service.sh deps amd64
#4 9.1    Compiling tokio v1.54.1
#4 DONE 145.6s
#5 DONE 150.0s
#9 [fetch 6/6] RUN sh compile-service.sh fetch
#9 CACHED
#11 [linux/amd64 toolchain 1/1] RUN sh compile-service.sh toolchain amd64
#11 sha256:8511a2210b10029a1051944ad87dfa4c578c2b5548c7897e7942c4584004aa5d 55.74MB / 55.74MB 0.6s done
#11 extracting sha256:8511a2210b10029a1051944ad87dfa4c578c2b5548c7897e7942c4584004aa5d 2.9s done
#11 DONE 3.7s
#10 [linux/amd64 compile 2/2] RUN sh compile-service.sh build amd64 /out
#10 0.791    Compiling beacon v0.1.0 (/src/service)
#10 DONE 16.7s
";

    #[test]
    fn reads_steps_once_per_label_the_last_printed() {
        let steps = steps(LOG);
        let labels: Vec<&str> = steps.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "internal",
                "linux/amd64 deps 3/3",
                "linux/amd64->arm64 deps 3/3",
                "fetch 6/6",
                "linux/amd64 toolchain 1/1",
                "linux/amd64 compile 2/2"
            ]
        );
        assert_eq!(steps[1].done, Some(145.6));
        assert_eq!(steps[1].output.len(), 2);
        assert!(steps[3].cached && steps[3].id == "#9");
        // Pulled from an imported cache, nothing run: from the cache too.
        assert!(steps[4].pulled && !steps[4].cached && steps[4].from_cache());
        // Canceled with nothing run: the cache answered the step needing it.
        let canceled = super::steps(
            "#38 [ubi9 compile 2/2] RUN sh compile-service.sh build\n#38 CANCELED\n#39 [ubi9 binaries 1/1] COPY --from=compile /out/ /\n#39 CACHED\n",
        );
        assert!(canceled[0].canceled && canceled[0].from_cache());
        // Canceled after it ran: not from the cache.
        let ran = super::steps(
            "#38 [ubi9 compile 2/2] RUN x\n#38 0.5    Compiling beacon v0.1.0\n#38 CANCELED\n",
        );
        assert!(!ran[0].from_cache());
        assert!(!steps[5].from_cache());
    }

    #[test]
    fn counts_what_cargo_compiled_in_steps_that_ran() {
        let crates = compiled_crates(LOG, "");
        assert_eq!(crates.len(), 4);
        assert_eq!(
            crates.last(),
            Some(&("linux/amd64 compile 2/2".to_string(), "beacon".to_string()))
        );
        assert_eq!(compiled_crates(LOG, "compile-service.sh build").len(), 1);
        // A bake of several variants: the shared step ran for one and comes
        // back CACHED, under the same label, for another. It still counts.
        let bake = "#2 [ubi9 internal] load build definition from Dockerfile\n\
#33 [ubi9 deps 3/3] RUN sh compile-service.sh deps\n#33 0.6    Compiling proc-macro2 v1.0.107\n#33 DONE 71.9s\n\
#52 [ubi9 deps 3/3] RUN sh compile-service.sh deps\n#52 CACHED\n";
        assert_eq!(
            compiled_crates(bake, "compile-service.sh"),
            [("ubi9 deps 3/3".to_string(), "proc-macro2".to_string())]
        );
        // A replayed step counts for nothing: one printed before the
        // build's own steps (buildx replays an earlier build's progress).
        let replayed = "#1 [deps 3/3] RUN x\n#1 0.1    Compiling tokio v1\n#1 DONE 9.0s\n\
#2 [internal] load build definition from Dockerfile\n#7 [deps 3/3] RUN x\n#7 CACHED\n";
        assert!(compiled_crates(replayed, "").is_empty());
    }

    #[test]
    fn finds_the_line_meant_for_the_user() {
        let log = "#7 1.2 error: the lock file needs to be updated\n#7 1.3 beacon-build-error: Cargo.lock is out of date: run `cargo update --workspace`\n#7 ERROR: process did not complete\n";
        assert_eq!(
            user_error(log).as_deref(),
            Some("Cargo.lock is out of date: run `cargo update --workspace`")
        );
        assert_eq!(user_error(LOG), None);
    }

    #[test]
    fn reads_the_failed_steps_of_a_failed_bake() {
        let log = "\
#32 ERROR: process \"/bin/sh -c sh compile-service.sh fetch\" did not complete successfully: exit code: 1
 > [ubi9] importing cache manifest from r.example/beacon-buildcache:ubi9-main:
 > [distroless fetch 6/6] RUN sh /usr/local/lib/compile-service.sh fetch:
 > [linux/amd64 final 2/3] COPY --from=selected-binaries /x /y:
ERROR: failed to solve: process did not complete successfully: exit code: 1
";
        assert_eq!(failed_stages(log), ["fetch", "final"]);
        // The warning about a cache not there yet names no failed variant.
        assert_eq!(
            failed_variants(log, &["ubi9", "distroless"]),
            ["distroless"]
        );
    }

    #[test]
    fn tells_an_engine_race_from_a_failed_build() {
        assert_eq!(
            EngineRace::of(
                "#12 DONE 1.0s\nERROR: failed to solve: failed to get edge: inconsistent graph state\n"
            ),
            Some(EngineRace::Solver)
        );
        // What the clean-clone release printed (moby/buildkit#4793).
        let export = "#31 exporting config sha256:14cc 0.0s done\n#31 ERROR: not found\n\
                      ------\n > [distroless] exporting to oci image format:\n------\n\
                      ERROR: failed to solve: not found\n";
        assert_eq!(EngineRace::of(export), Some(EngineRace::Export));
        // The build's own failure, or the words in a step's output, are not it.
        assert_eq!(
            EngineRace::of(
                "ERROR: failed to solve: process \"/bin/sh -c exit 1\" did not complete successfully\n"
            ),
            None
        );
        assert_eq!(
            EngineRace::of(
                "#7 0.3 inconsistent graph state\nERROR: failed to solve: exit code 1\n"
            ),
            None
        );
        // A base image that is not there fails in a build step, not an export.
        assert_eq!(
            EngineRace::of(
                "------\n > [ubi9 internal] load metadata for 127.0.0.1:5000/x:1:\n------\n\
                 ERROR: failed to solve: 127.0.0.1:5000/x:1: not found\n"
            ),
            None
        );
        // An export that fails for another reason is the build's failure.
        assert_eq!(
            EngineRace::of(
                "------\n > [ubi9] exporting to image:\n------\n\
                 ERROR: failed to solve: failed to push 127.0.0.1:5000/x: unauthorized\n"
            ),
            None
        );
    }
}
