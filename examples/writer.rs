//! Benchmark helper (`examples/bench.rs`): a fast producer of log lines.
//!
//! `writer MIB STAMPFILE` fills a 1 MiB buffer with 8192 lines of 128 bytes (127 printable
//! bytes and a newline), appends `start NANOSECONDS` (CLOCK_MONOTONIC) to STAMPFILE, writes the
//! buffer MIB times to fd 1 with write(2), then appends `end NANOSECONDS`.
#![allow(unsafe_code)]

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::process::ExitCode;

const LINE: usize = 128;
const BUFFER: usize = 1 << 20;

fn monotonic_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid out-pointer for the duration of the call; CLOCK_MONOTONIC is
    // always available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Writes all of `bytes` to fd 1, retrying short writes and EINTR.
fn write_stdout(mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe a live slice; write(2) does not keep them.
        let written = unsafe { libc::write(1, bytes.as_ptr().cast(), bytes.len()) };
        if written < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        bytes = &bytes[written as usize..];
    }
    Ok(())
}

fn run(mib: usize, stamp_path: &str) -> io::Result<()> {
    let mut buffer = Vec::with_capacity(BUFFER);
    for line in 0..BUFFER / LINE {
        let text = format!("line {line:05} ");
        let mut row: Vec<u8> = text.bytes().chain((0..).map(|i| b'a' + (i % 26) as u8)).take(LINE - 1).collect();
        row.push(b'\n');
        buffer.extend_from_slice(&row);
    }
    let mut stamps = OpenOptions::new().create(true).append(true).open(stamp_path)?;
    stamps.write_all(format!("start {}\n", monotonic_ns()).as_bytes())?;
    for _ in 0..mib {
        write_stdout(&buffer)?;
    }
    stamps.write_all(format!("end {}\n", monotonic_ns()).as_bytes())?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mib), Some(stamp_path)) = (args.first().and_then(|mib| mib.parse().ok()), args.get(1)) else {
        eprintln!("usage: writer MIB STAMPFILE");
        return ExitCode::from(2);
    };
    match run(mib, stamp_path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("writer: {error}");
            ExitCode::from(1)
        }
    }
}
