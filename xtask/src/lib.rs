//! `cargo xtask`: the image build system of this repository, as a library
//! so that its tests import the real functions (the binary is `main.rs`).
//!
//! The modules form layers; each imports only from layers below it (a tidy
//! test checks it, ARCHITECTURE.md draws it):
//!
//! 1. `model`: names and their grammars, versions, times, typed OCI
//!    documents, commands as data;
//! 2. `client`: one client per outside system (the registry, git, tar),
//!    every process through the one runner, `client::process`;
//! 3. facts: `context` (git and CI), `project` (variants on disk),
//!    `preflight` (programs and engine present);
//! 4. `plan`: pure planners, inputs -> typed plan;
//! 5. `render` (plan -> commands) and `report` (results, step outputs);
//! 6. `exec`: runs a plan's build and reads the results back;
//! 7. `ops`: what several commands share (the release record against the
//!    registry, the gate, signing, promotion, scans, stand-ins, the merge
//!    of per-platform parts);
//! 8. `commands`: one leaf per command; no command imports another;
//! 9. `cli`: clap types, converted once into the commands' own options.

pub mod model;

pub mod client;

pub mod context;
pub mod preflight;
pub mod project;

pub mod plan;

pub mod render;
pub mod report;

pub mod exec;

pub mod ops;

pub mod commands;

pub mod cli;
