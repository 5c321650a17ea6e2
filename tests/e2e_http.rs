//! The HTTP endpoint end to end: probes, status, metrics checked by promtool, hostile clients.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a port")
}

/// `GET path` with `Connection: close`: (status, body).
fn get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("response");
    let status = answer.get(9..12).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    (status, body)
}

fn start(port: u16) -> Daemon {
    Daemon::start(&format!(
        "http: 127.0.0.1:{port}
programs:
  web:
    cmd: sleep 300
  slow:
    cmd: sleep 300
    starttime: 8
"
    ))
}

#[test]
fn probes_flip_with_the_state_and_status_matches_ctl() {
    let port = free_port();
    let d = start(port);
    assert_eq!(get(port, "/healthz"), (200, "ok\n".to_string()));
    let (status, body) = get(port, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("slow:0 STARTING"), "{body}");
    d.wait_all_running(&["web:0", "slow:0"]);
    assert_eq!(get(port, "/readyz"), (200, "ready\n".to_string()));
    d.ctl_ok(&["restart", "--no-wait", "slow"]);
    d.wait_for("/readyz to say 503 again", WAIT, || get(port, "/readyz").0 == 503);
    let (status, json) = get(port, "/status");
    assert_eq!(status, 200);
    let rows: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let names: Vec<&str> = rows.as_array().expect("array").iter().filter_map(|row| row["name"].as_str()).collect();
    assert_eq!(names, d.names());
    assert_eq!(get(port, "/nope").0, 404);
}

#[test]
fn metrics_pass_promtool_and_match_status() {
    let port = free_port();
    let d = start(port);
    d.wait_all_running(&["web:0", "slow:0"]);
    let (status, metrics) = get(port, "/metrics");
    assert_eq!(status, 200);
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; .ci/run installs it)");
    promtool.stdin.take().expect("stdin").write_all(metrics.as_bytes()).expect("write");
    let output = promtool.wait_with_output().expect("promtool");
    assert!(
        output.status.success(),
        "promtool: {}{}\n{metrics}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(metrics.contains("sv_lite_instance_up{program=\"web\",instance=\"web:0\"} 1\n"), "{metrics}");
    assert!(metrics.contains("sv_lite_instance_state{program=\"web\",instance=\"web:0\",state=\"RUNNING\"} 1\n"));
    assert!(metrics.contains("sv_lite_instance_resident_memory_bytes{program=\"web\",instance=\"web:0\"} "));
    // A restart is counted.
    d.ctl_ok(&["restart", "web"]);
    d.wait_running("web:0");
    let (_, after) = get(port, "/metrics");
    assert!(after.contains("sv_lite_instance_restarts_total{program=\"web\",instance=\"web:0\"} 1\n"), "{after}");
}

#[test]
fn hostile_http_clients_cost_only_themselves() {
    let port = free_port();
    let d = start(port);
    // A slowloris client, and one sending a megabyte of headers.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").expect("write");
    let mut big = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    big.set_write_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let header = format!("X-Junk: {}\r\n", "x".repeat(1000));
    for _ in 0..1000 {
        if big.write_all(header.as_bytes()).is_err() {
            break; // Answered (431) and closed.
        }
    }
    let garbage = TcpStream::connect(("127.0.0.1", port))
        .and_then(|mut stream| stream.write_all(b"\x00\x01garbage\r\n\r\n").map(|()| stream));
    assert!(garbage.is_ok());
    // Garbage is answered 400 and closed, not kept.
    let mut garbage = garbage.expect("connected");
    garbage.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut answer = String::new();
    let _ = garbage.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    // Meanwhile the endpoint and the control socket answer.
    assert_eq!(get(port, "/healthz").0, 200);
    assert_eq!(d.ctl(&["status"]).code, Some(0));
    let _ = slow.write_all(b"Host: x\r\n");
}
