//! BuildKit's plain-progress log (`--progress plain`), read back: its steps
//! (`#12 [linux/amd64 deps 3/3] RUN ...`, their output, `#12 CACHED` or
//! `#12 DONE 1.5s`), the crates cargo compiled in the steps that ran, and the
//! one-line errors the compile stages print for the user.
//!
//! A step's header comes again whenever the printer switches between steps
//! running in parallel. The engine may also replay, before this build's own
//! steps, the output of steps it still holds from an earlier build (seen
//! after a build was interrupted): everything printed before the build's
//! first `[internal] load build definition` step is such a replay and is
//! left out, and when a label comes twice only the step printed last counts.

use std::collections::BTreeMap;

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

/// The steps of a log in the order their headers first appear, each label
/// once (the step printed last under that label).
pub fn steps(log: &str) -> Vec<Step> {
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
    let mut last_of_label: BTreeMap<String, String> = BTreeMap::new();
    for id in &order {
        if let Some(step) = by_id.get(id).filter(|s| !s.label.is_empty()) {
            last_of_label.insert(step.label.clone(), id.clone());
        }
    }
    order
        .into_iter()
        .filter_map(|id| {
            let step = by_id.remove(&id)?;
            let last = step.label.is_empty() || last_of_label.get(&step.label) == Some(&id);
            last.then_some(step)
        })
        .collect()
}

/// The crates cargo compiled in this build's own steps whose instruction
/// contains `marker` (every step for ""), as `(step label, crate name)`, from
/// cargo's `Compiling NAME vX.Y.Z` lines. Read by step id, not by label: a
/// bake of several variants reports a step they share once where it ran and
/// again, `CACHED`, under the same label for each further variant, and what
/// ran must count.
pub fn compiled_crates(log: &str, marker: &str) -> Vec<(String, String)> {
    let mut labels: BTreeMap<&str, &str> = BTreeMap::new();
    let mut compiled = Vec::new();
    for line in own_lines(log) {
        let Some((id, rest)) = line.split_once(' ') else {
            continue;
        };
        if let Some(header) = rest.strip_prefix('[') {
            if let Some((label, instruction)) = header.split_once("] ") {
                if instruction.contains(marker) {
                    labels.insert(id, label);
                }
            }
            continue;
        }
        let Some(label) = labels.get(id) else {
            continue;
        };
        let Some((time, text)) = rest.split_once(' ') else {
            continue;
        };
        if time.parse::<f64>().is_err() {
            continue;
        }
        if let Some(name) = text
            .trim_start()
            .strip_prefix("Compiling ")
            .and_then(|r| r.split_whitespace().next())
        {
            compiled.push((label.to_string(), name.to_string()));
        }
    }
    compiled
}

/// The first line a compile stage printed for the user, without its marker.
pub fn user_error(log: &str) -> Option<String> {
    log.lines().find_map(|line| {
        let (_, message) = line.split_once(USER_ERROR_MARKER)?;
        Some(message.trim().to_string())
    })
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
}
