//! Operations several commands share, so that no command calls another:
//! the release record against the registry and the checkout (`record`), the
//! deploy gate (`gate`), signing by digest (`sign`), the promotion and its
//! tag moves (`promote`), the vulnerability scan of a record (`scan`), and
//! the stand-ins an offline machine builds against (`stand_ins`), the builder
//! a build was asked to use and how each platform was built (`builder`), the
//! merge of a release's per-platform parts (`merge`).

pub mod builder;
pub mod gate;
pub mod merge;
pub mod promote;
pub mod record;
pub mod scan;
pub mod sign;
pub mod stand_ins;
