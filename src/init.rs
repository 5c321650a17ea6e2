//! One-command mode, `sv-lite -- CMD ARGS...`: the job of tini.
//!
//! Runs one program in its own process group, forwards every catchable signal to that group,
//! reaps every zombie (as PID 1 or as child subreaper), and exits with the program's exit code,
//! or 128 + the signal that killed it. When stdin is a terminal the program gets the foreground
//! process group, so Ctrl-C and job control behave as they do under tini.
//!
//! Blocking on the signal self-pipe is the whole event loop here: there is no socket, no pipe
//! and no timer to multiplex.

use signal_hook::consts::signal::*;
use signal_hook::iterator::Signals;

use crate::spec::{Launch, Signal, Sink};
use crate::sys::{self, SpawnOptions, Stream};

/// Signals passed on to the program. SIGCHLD is ours; SIGKILL and SIGSTOP cannot be caught;
/// the fault signals (SEGV, BUS, ILL, FPE) concern us, not the program.
pub const FORWARDED: &[i32] = &[
    SIGHUP,
    SIGINT,
    SIGQUIT,
    SIGTERM,
    SIGUSR1,
    SIGUSR2,
    SIGALRM,
    SIGWINCH,
    SIGCONT,
    SIGTSTP,
    SIGTTIN,
    SIGTTOU,
    SIGURG,
    SIGPIPE,
    SIGXCPU,
    SIGXFSZ,
    SIGVTALRM,
    SIGPROF,
    SIGIO,
    libc::SIGPWR,
    SIGSYS,
    SIGTRAP,
    SIGABRT,
];

/// Runs `argv` to completion; returns the exit code sv-lite should exit with.
pub fn run(argv: Vec<String>) -> u8 {
    let mut watched = FORWARDED.to_vec();
    watched.push(SIGCHLD);
    // Handlers first, so no SIGCHLD of the child is missed.
    let mut signals = match Signals::new(&watched) {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("sv-lite: cannot install signal handlers: {error}");
            return 2;
        }
    };
    if sys::getpid() != 1 {
        if let Err(error) = sys::set_child_subreaper() {
            log::warn!("cannot become child subreaper: {error}; orphans of the program will not be reaped");
        }
    }
    let launch = Launch {
        argv,
        env: Vec::new(),
        workingdir: None,
        umask: None,
        stdout: Sink::Forward,
        stderr: Sink::Forward,
        pid_file: None,
    };
    let terminal = sys::isatty(libc::STDIN_FILENO);
    let options = SpawnOptions {
        foreground_tty: terminal,
        ..SpawnOptions::streams(Stream::Inherit, Stream::Inherit, Stream::Inherit)
    };
    let child = match sys::spawn(&launch, options) {
        Ok(child) => child,
        Err(error) => {
            eprintln!("sv-lite: {error}");
            return error.shell_code();
        }
    };
    log::debug!("spawned {} as pid {}", launch.argv[0], child.pid);
    let mut reaped = Vec::new();
    loop {
        for signal in signals.wait() {
            if signal != SIGCHLD {
                forward(child.pid, signal);
                continue;
            }
            sys::reap_all(&mut reaped);
            for (pid, status) in reaped.drain(..) {
                if pid == child.pid {
                    log::debug!("{} exited with {status}", launch.argv[0]);
                    // Collect whatever else is already dead before leaving.
                    let mut rest = Vec::new();
                    sys::reap_all(&mut rest);
                    return status.shell_code();
                }
                log::debug!("reaped orphan pid {pid} ({status})");
            }
        }
    }
}

fn forward(pid: i32, signal: i32) {
    match sys::kill(pid, Signal(signal), true) {
        Ok(true) => log::debug!("forwarded {} to process group {pid}", Signal(signal)),
        Ok(false) => log::debug!("process group {pid} is gone; {} not forwarded", Signal(signal)),
        Err(error) => log::warn!("cannot forward {} to process group {pid}: {error}", Signal(signal)),
    }
}
