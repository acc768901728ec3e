use anyhow::Result;
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {}

pub fn run(_args: PruneArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
