use anyhow::Result;
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct SignArgs {}

pub fn run(_args: SignArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
