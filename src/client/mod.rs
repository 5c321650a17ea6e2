//! The client side of the control socket: `sv-lite ctl` ([`ctl`]: one command, one request)
//! and its interactive shell ([`shell`]). Nothing here runs in the daemon.

pub mod ctl;
pub mod shell;
