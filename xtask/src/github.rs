//! GitHub Actions integration: step outputs and the job summary.

use std::io::Write;

use anyhow::{Context as _, Result};

use crate::exec::RunResult;

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

/// Writes `result` (the whole JSON) and `digest-<variant>` step outputs, and a
/// summary table, when running in GitHub Actions (no-op elsewhere).
pub fn write_outputs(result: &RunResult) -> Result<()> {
    let mut outputs = format!("result={}\n", serde_json::to_string(result)?);
    for v in &result.variants {
        outputs.push_str(&format!("digest-{}={}\n", v.variant, v.digest));
    }
    append("GITHUB_OUTPUT", &outputs)?;
    append("GITHUB_STEP_SUMMARY", &summary(result))
}

pub fn summary(result: &RunResult) -> String {
    let mut text = format!(
        "### {} images ({:.0} s build)\n\n| variant | tags | digest | platforms | pushed | signed | tagged |\n|---|---|---|---|---|---|---|\n",
        match result.mode {
            crate::plan::Mode::Ci => "CI",
            crate::plan::Mode::Release => "Production",
        },
        result.build_seconds
    );
    for v in &result.variants {
        let tags: Vec<&str> = v
            .tags
            .iter()
            .map(|t| t.rsplit(':').next().unwrap_or(t))
            .collect();
        text.push_str(&format!(
            "| {} | {} | `{}` | {} | {} | {} | {} |\n",
            v.variant,
            tags.join(", "),
            v.digest,
            v.platforms.join(", "),
            yes_no(v.pushed),
            yes_no(v.signed),
            yes_no(v.tagged)
        ));
    }
    text
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}
