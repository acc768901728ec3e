//! One client per outside system. Every process the xtask starts goes
//! through [`process`]; the registry is read and written only through
//! [`registry`] and, for an index made of others, [`imagetools`].

pub mod cosign;
pub mod docker;
pub mod git;
pub mod imagetools;
pub mod process;
pub mod registry;
pub mod tar;
