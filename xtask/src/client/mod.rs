//! One client per outside system. Every process the xtask starts goes
//! through [`process`]; the registry is read and written only through
//! [`registry`].

pub mod cosign;
pub mod docker;
pub mod git;
pub mod process;
pub mod registry;
pub mod tar;
