//! Operations several commands share, so that no command calls another:
//! the release record against the registry and the checkout (`record`), the
//! deploy gate (`gate`), signing by digest (`sign`), the promotion and its
//! tag moves (`promote`), the vulnerability scan of a record (`scan`), and
//! the stand-ins an offline machine builds against (`stand_ins`), the builder
//! a build was asked to use (`builder`).

pub mod builder;
pub mod gate;
pub mod promote;
pub mod record;
pub mod scan;
pub mod sign;
pub mod stand_ins;
