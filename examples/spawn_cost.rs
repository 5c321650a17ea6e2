//! The cost of the socket-activation trampoline: `true` spawned directly against `true`
//! spawned as `sv-lite --exec-listen-pid true`, both through `sys::spawn` as the daemon does.
//!
//! Usage: `spawn_cost PATH_TO_SV_LITE [COUNT]` with the static release binary (`make static`
//! builds target/x86_64-unknown-linux-gnu/release/sv-lite); COUNT defaults to 1000 of each.
//!
//! Both ways get the same options: stdin, stdout and stderr on /dev/null, a listening TCP
//! socket as fd 3 and `LISTEN_FDS`/`LISTEN_FDNAMES`. Each spawn is timed from just before
//! `sys::spawn` until `waitpid` has the exit, so it includes the exec (two for the trampoline)
//! and the run of `true`. The two ways alternate, after 20 unmeasured spawns of each, so that
//! noise from the rest of the machine falls on both. Prints median, p90, min and max.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sv_lite::activation::{listen_env, trampoline_argv};
use sv_lite::core::ExitStatus;
use sv_lite::daemon::sockets;
use sv_lite::spec::{Launch, Sink, SocketSpec};
use sv_lite::sys::{self, SpawnOptions, Stream};

const WARM_UP: usize = 20;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(sv_lite) = args.next().map(PathBuf::from) else {
        eprintln!("usage: spawn_cost PATH_TO_SV_LITE [COUNT]");
        return ExitCode::from(2);
    };
    let count = match args.next().map(|text| text.parse::<usize>()) {
        None => 1000,
        Some(Ok(count)) if count > 0 => count,
        Some(_) => {
            eprintln!("spawn_cost: COUNT must be a positive number");
            return ExitCode::from(2);
        }
    };
    match run(&sv_lite, count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("spawn_cost: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(sv_lite: &std::path::Path, count: usize) -> Result<(), String> {
    let (listener, _) = sockets::bind(&SocketSpec::Tcp("127.0.0.1:0".parse().map_err(|_| "address")?))?;
    let extra_fds = [(3, listener.as_raw_fd())];
    let launch = |argv: Vec<String>| Launch {
        argv,
        env: listen_env(&["bench".to_string()]),
        workingdir: None,
        umask: None,
        stdout: Sink::Discard,
        stderr: Sink::Discard,
        pid_file: None,
    };
    let direct = launch(vec!["true".to_string()]);
    let trampoline = launch(trampoline_argv(sv_lite, &["true".to_string()]));
    let options = SpawnOptions {
        stdin: Stream::Null,
        stdout: Stream::Null,
        stderr: Stream::Null,
        foreground_tty: false,
        extra_fds: &extra_fds,
    };
    let mut direct_times = Vec::with_capacity(count);
    let mut trampoline_times = Vec::with_capacity(count);
    for round in 0..WARM_UP + count {
        // Alternate which goes first, so neither always follows the other.
        let order = if round % 2 == 0 { [true, false] } else { [false, true] };
        for through_trampoline in order {
            let (spawned, times) =
                if through_trampoline { (&trampoline, &mut trampoline_times) } else { (&direct, &mut direct_times) };
            let took = time_one(spawned, options)?;
            if round >= WARM_UP {
                times.push(took);
            }
        }
    }
    println!("spawn of `true` through sys::spawn, {count} each, alternating (spawn → exit reaped):");
    let direct_median = report("direct", &mut direct_times);
    let trampoline_median = report(&format!("via {} --exec-listen-pid", sv_lite.display()), &mut trampoline_times);
    println!(
        "trampoline cost: +{} per spawn ({:.2}× the direct spawn)",
        format_duration(trampoline_median.saturating_sub(direct_median)),
        trampoline_median.as_secs_f64() / direct_median.as_secs_f64()
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
