//! Forwarded output never blocks the loop: with the reader of sv-lite's stdout stalled, the
//! daemon answers, restarts, reaps and shuts down; once the reader drains, every line arrives
//! whole and in order.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::ChildStdout;
use std::time::{Duration, Instant};

use common::{Daemon, Launch, TestDir, WAIT};

/// Starts the daemon with its stdout a pipe that nobody reads yet.
fn start_with_stalled_stdout(yaml: &str) -> (Daemon, ChildStdout) {
    let mut d = Daemon::start_with(TestDir::new(), yaml, Launch { stdout_pipe: true, ..Launch::default() });
    let stdout = d.child.stdout.take().expect("the daemon's stdout pipe");
    (d, stdout)
}

fn stalled(d: &Daemon, instance: &str) -> bool {
    d.row(instance).is_some_and(|row| row["output_stalled"] == true)
}

#[test]
fn a_stalled_stdout_reader_stops_neither_control_nor_restarts_nor_shutdown() {
    let (mut d, stdout) = start_with_stalled_stdout(
        r#"
programs:
  chatty:
    cmd: ["/bin/sh", "-c", "exec yes 'a line from yes that keeps coming'"]
    starttime: 0
  victim:
    cmd: sleep 100000
    starttime: 0
"#,
    );
    // The pipe fills (64 KiB), then sv-lite's queue (1 MiB): chatty's output is held back.
    d.wait_for("chatty's output to be reported stalled", WAIT, || stalled(&d, "chatty:0"));
    let table = d.ctl_ok(&["status"]).stdout;
    assert!(table.lines().any(|line| line.starts_with("chatty:0") && line.contains("output stalled")), "{table}");

    // Control still answers: before the fix this hung for good.
    let asked = Instant::now();
    let status = d.ctl(&["status", "chatty"]);
    eprintln!("ctl status answered in {:?} while stdout was stalled", asked.elapsed());
    assert_eq!(status.code, Some(0), "{status}");

    // A killed program is reaped and restarted.
    let victim = d.wait_running("victim:0");
    assert!(common::send_signal(victim, "KILL"));
    d.wait_for("victim:0 to run again with a new pid", WAIT, || {
        d.row("victim:0").is_some_and(|row| row["state"] == "RUNNING" && row["pid"].as_i64() != Some(victim.into()))
    });

    // SIGTERM ends everything, though the reader still reads nothing.
    d.signal("TERM");
    let exit = d.wait_exit(WAIT);
    assert_eq!(exit.code(), Some(0), "{}", d.diagnostics());
    let stderr = d.stderr();
    assert!(stderr.contains("every instance is down"), "{stderr}");
    drop(stdout);
}

#[test]
fn once_the_reader_drains_every_line_arrives_whole_and_in_order() {
    const LINES: usize = 20_000;
    const WRITERS: usize = 3;
    let (d, stdout) = start_with_stalled_stdout(&format!(
        r#"
programs:
  writer:
    cmd: ["/bin/sh", "-c", "i=0; while [ $i -lt {LINES} ]; do echo \"w%(instance_number)d $i 0123456789abcdefghijklmnopqrstuvwxyz\"; i=$((i+1)); done; exec sleep 100000"]
    numprocs: {WRITERS}
    starttime: 0
"#
    ));
    // 3 × 20,000 lines of about 50 bytes is 3 MB: more than the pipe and the queue hold.
    d.wait_for("some writer's output to be reported stalled", WAIT, || {
        (0..WRITERS).any(|n| stalled(&d, &format!("writer:{n}")))
    });

    // Now read: every line of every writer, whole, in order per writer.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut next = [0usize; WRITERS];
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let result = loop {
            if next.iter().all(|&n| n == LINES) {
                break Ok(next);
            }
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => break Err(format!("EOF after {next:?}")),
                Ok(_) => {}
                Err(error) => break Err(format!("read: {error}")),
            }
            let Some((prefix, body)) = line.trim_end_matches('\n').split_once(" | ") else {
                break Err(format!("unprefixed or torn line: {line:?}"));
            };
            let Some(index) = prefix.strip_prefix("writer:").and_then(|n| n.parse::<usize>().ok()) else {
                break Err(format!("bad prefix: {line:?}"));
            };
            let expected = format!("w{index} {} 0123456789abcdefghijklmnopqrstuvwxyz", next[index]);
            if body != expected {
                break Err(format!("expected {expected:?}, got {body:?}"));
            }
            next[index] += 1;
        };
        let _ = sender.send(result);
        // Keep reading until the daemon exits, so that its last lines never wait.
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
    });
    let result = receiver.recv_timeout(Duration::from_secs(60)).expect("the reader finished");
    assert_eq!(result, Ok([LINES; WRITERS]), "{}", d.diagnostics());
    d.wait_for("no writer stalled any more", WAIT, || (0..WRITERS).all(|n| !stalled(&d, &format!("writer:{n}"))));
    assert_eq!(d.shutdown().code(), Some(0));
}
