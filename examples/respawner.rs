//! Benchmark helper (`examples/bench.rs`): the minimal baselines sv-lite is compared with.
//!
//! - `respawner loop PROGRAM ARG...`: spawn PROGRAM, `waitpid` it, spawn it again, forever.
//! - `respawner spawn-n N PROGRAM ARG...`: spawn N copies in a loop, then wait for all of them.
//!
//! Children are started with `std::process::Command` (posix_spawn, no shell), inheriting
//! stdin, stdout and stderr: the cheapest way a Rust program has to start a process.

use std::process::{Child, Command, ExitCode};

fn spawn(argv: &[String]) -> Result<Child, String> {
    Command::new(&argv[0]).args(&argv[1..]).spawn().map_err(|error| format!("respawner: spawn {}: {error}", argv[0]))
}

fn run(args: &[String]) -> Result<(), String> {
    match args {
        [mode, argv @ ..] if mode == "loop" && !argv.is_empty() => loop {
            let mut child = spawn(argv)?;
            child.wait().map_err(|error| format!("respawner: waitpid: {error}"))?;
        },
        [mode, count, argv @ ..] if mode == "spawn-n" && !argv.is_empty() => {
            let count: usize = count.parse().map_err(|_| format!("respawner: bad count {count:?}"))?;
            let mut children = Vec::with_capacity(count);
            for _ in 0..count {
                children.push(spawn(argv)?);
            }
            for mut child in children {
                child.wait().map_err(|error| format!("respawner: waitpid: {error}"))?;
            }
            Ok(())
        }
        _ => Err("usage: respawner loop PROGRAM [ARG...] | respawner spawn-n N PROGRAM [ARG...]".to_string()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(1)
        }
    }
}
