//! `cargo xtask stand-ins`: builds the stand-in bases, the SBOM generator
//! and the host binaries an offline machine builds against
//! (`ops::stand_ins` does the work), and prints the build args that point
//! the Dockerfiles at them.

use anyhow::Result;

use crate::ops::stand_ins;
pub use crate::ops::stand_ins::StandInsRequest as StandInsOptions;
pub use crate::ops::stand_ins::DEFAULT_INPUTS;

pub fn run(args: StandInsOptions) -> Result<()> {
    let overrides = stand_ins::build(&args)?;
    println!("{}", serde_json::to_string_pretty(&overrides)?);
    Ok(())
}
