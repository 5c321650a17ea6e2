//! sv-lite: a process supervisor for Linux in one static binary.
//!
//! The crate is a library plus the `sv-lite` binary so that integration tests and benchmarks can
//! reach the pure parts (config, core) directly. See ARCHITECTURE.md for the codemap.

pub mod activation;
pub mod client;
pub mod config;
pub mod control;
pub mod core;
pub mod daemon;
pub mod init;
pub mod ledger;
pub mod pidfile;
pub mod schedule;
pub mod spec;
pub mod state_dir;
pub mod sys;
pub mod users;

/// The client modules' old paths (`sv_lite::ctl`, `sv_lite::shell`), kept for main.rs, tests and
/// examples.
pub use client::{ctl, shell};

/// Marks a state the code believes impossible: panics in debug builds and tests, logs an error
/// and carries on in release builds (the daemon must not die over a bookkeeping bug).
#[macro_export]
macro_rules! never {
    ($($arg:tt)*) => {{
        if cfg!(debug_assertions) {
            panic!($($arg)*);
        } else {
            log::error!("internal error (please report): {}", format!($($arg)*));
        }
    }};
}
