use anyhow::Result;
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct LintArgs {}

pub fn run(_args: LintArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
