use anyhow::Result;
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct TestArgs {}

pub fn run(_args: TestArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
