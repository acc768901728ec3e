//! `cargo xtask`: the image build system of this repository, as a library
//! so that its tests import the real functions (the binary is `main.rs`).
//!
//! The modules form layers; each imports only from layers below it (a tidy
//! test checks it, ARCHITECTURE.md draws it):
//!
//! 1. `model`: names and their grammars, versions, times, typed OCI
//!    documents, commands as data, the one registry client;
//! 2. facts: `context` (git and CI), `project` (variants on disk),
//!    `preflight` (programs and engine present);
//! 3. `plan`: pure planners, inputs -> typed plan (recipe, cache policy, CI
//!    and release plans);
//! 4. `render` (plan -> commands) and `report` (results, step outputs);
//! 5. `exec`: runs a plan and reads the results back;
//! 6. tasks, one file each: `ci_image`, `release_image`, `sign`, `verify`,
//!    `scan`, `promote`, `rebuild_check`, `prune`, `stand_ins`, `bench`,
//!    `lint`, `test_task`, `update_bases`, `variants_cmd`;
//! 7. `cli`: clap types, converted once into the tasks' own options.

pub mod model;

pub mod context;
pub mod preflight;
pub mod project;

pub mod plan;

pub mod render;
pub mod report;

pub mod exec;

pub mod bench;
pub mod ci_image;
pub mod lint;
pub mod promote;
pub mod prune;
pub mod rebuild_check;
pub mod release_image;
pub mod scan;
pub mod sign;
pub mod stand_ins;
pub mod test_task;
pub mod update_bases;
pub mod variants_cmd;
pub mod verify;

pub mod cli;
