//! The cost of `LISTEN_PID`: `true` spawned through `sys::spawn` with posix_spawn (no
//! `listen_pid`) against the same spawn with `listen_pid`, which clones by hand to write the
//! child's pid into its environment (`sys::spawn_cloned`).
//!
//! Usage: `spawn_cost [COUNT]` (default 1000 of each), e.g.
//! `cargo run --release --example spawn_cost`.
//!
//! Both ways get the same options: stdin, stdout and stderr on /dev/null, a listening TCP
//! socket as fd 3 and `LISTEN_FDS`/`LISTEN_FDNAMES`. Each spawn is timed from just before
//! `sys::spawn` until `waitpid` has the exit, so it includes the exec and the run of `true`.
//! The two ways alternate, after 20 unmeasured spawns of each, so that noise from the rest of
//! the machine falls on both. Prints median, p90, min and max.

use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sv_lite::activation::listen_env;
use sv_lite::core::ExitStatus;
use sv_lite::daemon::sockets;
use sv_lite::spec::{Launch, Sink, SocketSpec};
use sv_lite::sys::{self, SpawnOptions, Stream};

const WARM_UP: usize = 20;

fn main() -> ExitCode {
    let count = match std::env::args().nth(1).map(|text| text.parse::<usize>()) {
        None => 1000,
        Some(Ok(count)) if count > 0 => count,
        Some(_) => {
            eprintln!("usage: spawn_cost [COUNT]");
            return ExitCode::from(2);
        }
    };
    match run(count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("spawn_cost: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(count: usize) -> Result<(), String> {
    let (listener, _) = sockets::bind(&SocketSpec::Tcp("127.0.0.1:0".parse().map_err(|_| "address")?))?;
    let extra_fds = [(3, listener.as_raw_fd())];
    let launch = Launch {
        argv: vec!["true".to_string()],
        env: listen_env(&["bench".to_string()]),
        workingdir: None,
        umask: None,
        stdout: Sink::Discard,
        stderr: Sink::Discard,
        pid_file: None,
    };
    let options =
        SpawnOptions { extra_fds: &extra_fds, ..SpawnOptions::streams(Stream::Null, Stream::Null, Stream::Null) };
    let variants = [
        ("posix_spawn (listen_pid: false)", options),
        ("clone + LISTEN_PID (listen_pid: true)", SpawnOptions { listen_pid: true, ..options }),
    ];
    let mut times: Vec<Vec<Duration>> = variants.iter().map(|_| Vec::with_capacity(count)).collect();
    for round in 0..WARM_UP + count {
        // Alternate which goes first, so that neither always follows the other.
        for offset in 0..variants.len() {
            let index = (round + offset) % variants.len();
            let took = time_one(&launch, variants[index].1)?;
            if round >= WARM_UP {
                times[index].push(took);
            }
        }
    }
    println!("spawn of `true` through sys::spawn, {count} each, alternating (spawn → exit reaped):");
    let medians: Vec<Duration> =
        variants.iter().zip(times.iter_mut()).map(|((label, _), times)| report(label, times)).collect();
    println!(
        "LISTEN_PID costs {:+.0} µs per spawn ({:.2}× posix_spawn)",
        (medians[1].as_secs_f64() - medians[0].as_secs_f64()) * 1e6,
        medians[1].as_secs_f64() / medians[0].as_secs_f64()
    );
    Ok(())
}

fn time_one(launch: &Launch, options: SpawnOptions<'_>) -> Result<Duration, String> {
    let start = Instant::now();
    let child = sys::spawn(launch, options).map_err(|error| error.to_string())?;
    let status = sys::wait_blocking(child.pid).map_err(|error| format!("waitpid: {error}"))?;
    let took = start.elapsed();
    if status != ExitStatus::Exited(0) {
        return Err(format!("{} exited with {status}", launch.argv.join(" ")));
    }
    Ok(took)
}

/// Prints one line of statistics and returns the median.
fn report(label: &str, times: &mut [Duration]) -> Duration {
    times.sort();
    let nearest_rank =
        |fraction: f64| times[((fraction * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    let median = nearest_rank(0.5);
    println!(
        "  {label}: median {}, p90 {}, min {}, max {} (n={})",
        format_duration(median),
        format_duration(nearest_rank(0.9)),
        format_duration(times[0]),
        format_duration(times[times.len() - 1]),
        times.len()
    );
    median
}

fn format_duration(duration: Duration) -> String {
    format!("{:.0} µs", duration.as_secs_f64() * 1e6)
}
