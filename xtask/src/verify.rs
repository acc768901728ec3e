use anyhow::Result;
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {}

pub fn run(_args: VerifyArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
