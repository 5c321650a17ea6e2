//! `ctl events`: transitions as records, recent and followed.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn ctl_events_follow_sees_every_transition_of_a_restart_in_order() {
    let d = Daemon::start("programs:\n  web:\n    cmd: sleep 300\n    starttime: 1\n  other:\n    cmd: sleep 300\n");
    d.wait_all_running(&["web:0", "other:0"]);
    let mut follower = Command::new(&*BIN)
        .args(["ctl", "-s"])
        .arg(&d.socket)
        .args(["events", "-f", "--json", "web"])
        .env(TAG_VAR, &d.dir.tag)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ctl events -f");
    // Lines through a channel, so that a missing event fails at the deadline instead of
    // blocking the read for good.
    let stdout = follower.stdout.take().expect("stdout");
    let (sender, received) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |end: Instant| {
        received.recv_timeout(end.saturating_duration_since(Instant::now())).expect("a line before the deadline")
    };
    // The recent ones first: web's start, and nothing of `other`.
    let mut seen: Vec<serde_json::Value> = Vec::new();
    let end = Instant::now() + WAIT;
    while !seen.iter().any(|event| event["to"] == "RUNNING") {
        assert!(Instant::now() < end, "no RUNNING event among {seen:?}");
        let line = next_line(end);
        seen.push(serde_json::from_str(&line).expect("one JSON object per line"));
    }
    assert!(seen.iter().all(|event| event["program"] == "web"), "{seen:?}");
    let before = seen.len();
    d.ctl_ok(&["restart", "web"]);
    while seen.len() < before + 3 {
        assert!(Instant::now() < end, "the restart's events: {:?}", &seen[before..]);
        let line = next_line(end);
        seen.push(serde_json::from_str(&line).expect("JSON"));
    }
    let restart: Vec<String> = seen[before..]
        .iter()
        .map(|event| {
            format!(
                "{}>{} {}",
                event["from"].as_str().unwrap_or(""),
                event["to"].as_str().unwrap_or(""),
                event["kind"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(restart, ["RUNNING>STOPPING stopping", "STOPPING>STARTING starting", "STARTING>RUNNING running"]);
    let seqs: Vec<u64> = seen.iter().filter_map(|event| event["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "in order: {seqs:?}");
    assert_eq!(seen[before + 1]["exit_signal"], "TERM", "{:?}", seen[before + 1]);
    let _ = follower.kill();
    let _ = follower.wait();

    // Without -f: the recent ones, human-readable, and the event log has the same lines.
    let output = d.ctl_ok(&["events", "web"]);
    assert!(
        output.stdout.lines().any(|line| line.contains("web:0 STARTING -> RUNNING running: RUNNING (pid")),
        "{output}"
    );
    assert!(!output.stdout.contains("other:0"));
    d.wait_event("web:0: RUNNING (pid");
}

#[test]
fn a_follower_that_does_not_read_is_dropped_and_the_daemon_carries_on() {
    let d = Daemon::start(
        "programs:\n  flappy:\n    cmd: [sh, -c, 'exit 1']\n    starttime: 0\n    autorestart: always\n    restart_delay: 0\n    stability_window: 0\n",
    );
    // A follower that never reads: its backlog grows until the daemon drops it.
    let mut stuck = Command::new(&*BIN)
        .args(["ctl", "-s"])
        .arg(&d.socket)
        .args(["events", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ctl events -f");
    let dropped = poll_until(Duration::from_secs(120), || d.stderr().contains("bytes behind; dropping it"));
    let _ = stuck.kill();
    let _ = stuck.wait();
    assert!(dropped, "the stuck follower was not dropped:\n{}", tail(&d.stderr(), 20));
    assert_eq!(d.ctl(&["status"]).code, Some(0));
}
