//! Benchmark helper (`examples/bench.rs`): the child whose start is timed.
//!
//! `stamp FILE` first reads CLOCK_MONOTONIC, then appends one 32-byte line
//! `{pid:>10} {nanoseconds:>20}\n` to FILE (one `O_APPEND` write, so lines of concurrent stamps
//! never mix), then waits in `pause()` until a signal ends it.
#![allow(unsafe_code)]

use std::fs::OpenOptions;
use std::io::Write;
use std::process::ExitCode;

fn monotonic_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid out-pointer for the duration of the call; CLOCK_MONOTONIC is
    // always available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

fn main() -> ExitCode {
    let started = monotonic_ns();
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: stamp FILE");
        return ExitCode::from(2);
    };
    let line = format!("{:>10} {started:>20}\n", std::process::id());
    let written =
        OpenOptions::new().create(true).append(true).open(&path).and_then(|mut file| file.write(line.as_bytes()));
    match written {
        Ok(n) if n == line.len() => {}
        Ok(n) => {
            eprintln!("stamp: short write ({n} bytes)");
            return ExitCode::from(1);
        }
        Err(error) => {
            eprintln!("stamp: {}: {error}", path.to_string_lossy());
            return ExitCode::from(1);
        }
    }
    loop {
        // SAFETY: pause() only suspends the thread until a signal arrives.
        unsafe { libc::pause() };
    }
}
