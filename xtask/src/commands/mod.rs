//! The commands, one leaf each: a command parses nothing and decides
//! nothing a plan decides; what several commands share lives below them
//! (`ops`, `exec`, ...). No command imports another (a tidy test checks it).

pub mod bench;
pub mod ci_image;
pub mod lint;
pub mod merge_release;
pub mod promote;
pub mod prune;
pub mod rebuild_check;
pub mod release_image;
pub mod scan;
pub mod sign;
pub mod stand_ins;
pub mod test_task;
pub mod update_bases;
pub mod variants;
pub mod verify;
