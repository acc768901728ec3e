//! The bottom layer: the vocabulary every other module speaks, with no
//! knowledge of tasks, plans or the command line. Names and their grammars
//! (each format beside its parse: `names`, `reference`, `build_arg`,
//! `tags`), versions, times, typed OCI documents, commands as data, and file
//! operations that name their paths. The clients that use them (the one
//! registry client among them) are the layer above, `client`.

pub mod build_arg;
pub mod build_log;
pub mod builder;
pub mod command;
pub mod cosign;
pub mod files;
pub mod identity;
pub mod names;
pub mod oci;
pub mod reference;
pub mod tags;
pub mod time;
pub mod version;
pub mod vulnerabilities;
pub mod yaml;
