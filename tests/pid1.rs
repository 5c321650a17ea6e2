//! sv-lite as PID 1 of a PID namespace (`unshare --pid --fork --mount-proc`), the way it runs as
//! a container's ENTRYPOINT. See issue 3; README "Containers".
//!
//! These tests need root (or user namespaces). Where `unshare` is refused they print why and
//! return, except under CI (`CI=true`), where that is a failure.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

/// The static release binary when built (`make static`), else the debug one.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SV_LITE_STATIC_BIN") {
        return PathBuf::from(path);
    }
    let static_bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/x86_64-unknown-linux-gnu/release/sv-lite");
    if static_bin.exists() {
        static_bin
    } else {
        PathBuf::from(env!("CARGO_BIN_EXE_sv-lite"))
    }
}

fn unshare_works() -> bool {
    let ok = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "unshare --pid --fork --mount-proc is refused, and CI must run these tests"
        );
        eprintln!("skipping: unshare --pid --fork --mount-proc is refused here (needs root or user namespaces)");
    }
    ok
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "sv-lite-pid1-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn str(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `unshare --pid --fork --mount-proc [extra] BINARY ARGS`, in its own process group so that
/// cleanup can kill everything.
struct Namespace {
    unshare: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Namespace {
    fn start(dir: &TempDir, extra: &[&str], program: &Path, args: &[&str]) -> Namespace {
        let stdout = dir.path("stdout");
        let stderr = dir.path("stderr");
        let unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc"])
            .args(extra)
            .arg(program)
            .args(args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("stdout file"))
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .process_group(0)
            .spawn()
            .expect("spawn unshare");
        Namespace { unshare, stdout, stderr }
    }

    /// The host pid of the namespace's PID 1 (unshare's only child).
    fn init_pid(&self) -> u32 {
        let children = format!("/proc/{0}/task/{0}/children", self.unshare.id());
        wait_for("unshare to fork the namespace's PID 1", || {
            fs::read_to_string(&children)
                .ok()
                .and_then(|text| text.split_whitespace().next().map(String::from))
                .is_some()
        });
        let text = fs::read_to_string(&children).expect("children of unshare");
        text.split_whitespace().next().and_then(|pid| pid.parse().ok()).expect("a pid")
    }

    fn signal_init(&self, signal: &str) {
        let pid = self.init_pid();
        let status = Command::new("kill").args(["-s", signal, &pid.to_string()]).status().expect("kill");
        assert!(status.success(), "kill -s {signal} {pid}");
    }

    fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.unshare.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() > DEADLINE {
                panic!("namespace did not exit within {DEADLINE:?}\nstderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Processes in the namespace, as (host pid, state letter), read from the host's /proc.
    fn processes(&self) -> Vec<(u32, char)> {
        let init = self.init_pid();
        let Ok(ns) = fs::read_link(format!("/proc/{init}/ns/pid")) else { return Vec::new() };
        let mut found = Vec::new();
        for entry in fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            if fs::read_link(format!("/proc/{pid}/ns/pid")).ok().as_ref() != Some(&ns) {
                continue;
            }
            if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) {
                if let Some(state) = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()) {
                    found.push((pid, state));
                }
            }
        }
        found
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Ok(None) = self.unshare.try_wait() {
            // Killing the namespace's PID 1 kills every process in the namespace.
            let children = format!("/proc/{0}/task/{0}/children", self.unshare.id());
            if let Ok(text) = fs::read_to_string(children) {
                for pid in text.split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("kill").args(["-KILL", &format!("-{}", self.unshare.id())]).status();
            let _ = self.unshare.wait();
        }
    }
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out after {DEADLINE:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ctl(socket: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary()).arg("ctl").arg("-s").arg(socket).args(args).output().expect("run ctl")
}

fn write_config(dir: &TempDir, yaml: &str) -> PathBuf {
    let path = dir.path("sv-lite.yaml");
    fs::write(&path, yaml.replace("{dir}", dir.str())).expect("write config");
    path
}

fn start_daemon(dir: &TempDir, yaml: &str) -> (Namespace, PathBuf) {
    let config = write_config(dir, yaml);
    let socket = dir.path("sock");
    let namespace = Namespace::start(
        dir,
        &[],
        &binary(),
        &["-c", config.to_str().expect("utf-8"), "-s", socket.to_str().expect("utf-8")],
    );
    wait_for("the daemon to answer on its socket", || ctl(&socket, &["status"]).status.success());
    (namespace, socket)
}

#[test]
fn pid1_reaps_two_hundred_double_forked_orphans() {
    if !unshare_works() {
        return;
    }
    let dir = TempDir::new("orphans");
    let (mut namespace, socket) = start_daemon(
        &dir,
        r#"
programs:
  orphans:
    cmd: ["/bin/sh", "-c", "i=0; while [ $i -lt 200 ]; do (sleep 0.01 &); i=$((i+1)); done; touch {dir}/spawned; exec sleep 1000"]
    starttime: 0
"#,
    );
    wait_for("the program to fork 200 orphans", || dir.path("spawned").exists());
    wait_for("every orphan to be reaped", || {
        let stderr = namespace.stderr();
        stderr.matches("an adopted orphan").count() >= 200
    });
    let stderr = namespace.stderr();
    assert_eq!(stderr.matches("an adopted orphan").count(), 200, "each orphan reaped exactly once");
    wait_for("no zombie left in the namespace", || namespace.processes().iter().all(|&(_, state)| state != 'Z'));
    let processes = namespace.processes();
    assert_eq!(processes.len(), 2, "only sv-lite and the program's sleep remain: {processes:?}");
    assert!(ctl(&socket, &["shutdown"]).status.success());
    assert_eq!(namespace.wait().code(), Some(0));
}

#[test]
fn sigterm_to_pid1_stops_everything_kills_the_stubborn_and_exits_zero() {
    if !unshare_works() {
        return;
    }
    let dir = TempDir::new("sigterm");
    let (mut namespace, socket) = start_daemon(
        &dir,
        r#"
programs:
  polite:
    cmd: sleep 1000
    starttime: 0
    numprocs: 2
  stubborn:
    cmd: ["/bin/sh", "-c", "trap '' TERM; touch {dir}/stubborn-ready; while :; do sleep 1; done"]
    starttime: 0
    stoptime: 2
"#,
    );
    wait_for("the stubborn program to be ready", || dir.path("stubborn-ready").exists());
    let status = String::from_utf8_lossy(&ctl(&socket, &["status"]).stdout).to_string();
    assert_eq!(status.matches("RUNNING").count(), 3, "{status}");
    namespace.signal_init("TERM");
    let exit = namespace.wait();
    let stderr = namespace.stderr();
    assert_eq!(exit.code(), Some(0), "PID 1 exits 0 after a requested shutdown\n{stderr}");
    assert!(stderr.contains("polite:0: stopped (signal SIGTERM)"), "{stderr}");
    assert!(stderr.contains("polite:1: stopped (signal SIGTERM)"), "{stderr}");
    assert!(stderr.contains("stubborn:0: still running 2s after SIGTERM; sending SIGKILL"), "{stderr}");
    assert!(stderr.contains("stubborn:0: stopped (signal SIGKILL)"), "{stderr}");
    assert!(!socket.exists(), "the socket is removed on exit");
}

#[test]
fn a_critical_program_going_fatal_makes_pid1_exit_with_its_code() {
    if !unshare_works() {
        return;
    }
    let dir = TempDir::new("critical");
    let config = write_config(
        &dir,
        r#"
programs:
  db:
    cmd: ["/bin/sh", "-c", "exit 42"]
    critical: true
    startretries: 1
    starttime: 5
  web:
    cmd: sleep 1000
    starttime: 0
"#,
    );
    let mut namespace = Namespace::start(
        &dir,
        &[],
        &binary(),
        &["-c", config.to_str().expect("utf-8"), "-s", dir.path("sock").to_str().expect("utf-8")],
    );
    let exit = namespace.wait();
    let stderr = namespace.stderr();
    assert_eq!(exit.code(), Some(42), "{stderr}");
    assert!(stderr.contains("db:0: critical program failed; shutting down with exit code 42"), "{stderr}");
    assert!(stderr.contains("web:0: stopped (signal SIGTERM)"), "{stderr}");
}

#[test]
fn one_command_mode_forwards_signals_and_returns_the_exit_code() {
    if !unshare_works() {
        return;
    }
    let dir = TempDir::new("one");
    let script = format!(
        "trap 'echo USR1 >> {d}/got' USR1; trap 'echo HUP >> {d}/got' HUP; trap 'echo WINCH >> {d}/got' WINCH; \
         trap 'exit 7' TERM; touch {d}/ready; while :; do sleep 0.05; done",
        d = dir.str()
    );
    let mut namespace = Namespace::start(&dir, &[], &binary(), &["--", "/bin/sh", "-c", &script]);
    wait_for("the program to be ready", || dir.path("ready").exists());
    for signal in ["USR1", "HUP", "WINCH"] {
        namespace.signal_init(signal);
        wait_for(&format!("the program to get {signal}"), || {
            fs::read_to_string(dir.path("got")).is_ok_and(|text| text.lines().any(|line| line == signal))
        });
    }
    namespace.signal_init("TERM");
    assert_eq!(namespace.wait().code(), Some(7), "the program's own exit code\n{}", namespace.stderr());

    // Killed by a signal: 128 + N, as a shell reports it.
    let dir = TempDir::new("one-killed");
    let script = format!("touch {}/ready; exec sleep 1000", dir.str());
    let mut namespace = Namespace::start(&dir, &[], &binary(), &["--", "/bin/sh", "-c", &script]);
    wait_for("the program to be ready", || dir.path("ready").exists());
    namespace.signal_init("TERM");
    assert_eq!(namespace.wait().code(), Some(128 + 15));

    // A command that does not exist: 127, as tini and shells say.
    let dir = TempDir::new("one-missing");
    let mut namespace = Namespace::start(&dir, &[], &binary(), &["--", "/nonexistent/program"]);
    assert_eq!(namespace.wait().code(), Some(127));
    assert!(
        namespace.stderr().contains("exec /nonexistent/program: No such file or directory"),
        "{}",
        namespace.stderr()
    );
}

#[test]
fn one_command_mode_outside_a_namespace_reaps_orphans_as_subreaper() {
    let dir = TempDir::new("subreaper");
    let script = format!("(sleep 0.2 &); (sleep 0.2 &); touch {}/forked; sleep 1; exit 3", dir.str());
    let output = Command::new(binary())
        .args(["--", "/bin/sh", "-c", &script])
        .env("RUST_LOG", "debug")
        .output()
        .expect("run sv-lite --");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.matches("reaped orphan pid").count(), 2, "{stderr}");
}

#[test]
fn a_scratch_image_with_only_sv_lite_busybox_and_a_config_supervises_and_shuts_down() {
    if !unshare_works() {
        return;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"].into_iter().map(Path::new).find(|path| path.exists());
    let Some(busybox) = busybox else {
        panic!("busybox (Debian package busybox-static) is needed; .ci/run installs it");
    };
    let sv_lite = binary();
    let ldd = Command::new("ldd").arg(&sv_lite).output().expect("ldd");
    let ldd_text = format!("{}{}", String::from_utf8_lossy(&ldd.stdout), String::from_utf8_lossy(&ldd.stderr));
    let is_static = ldd_text.contains("not a dynamic executable") || ldd_text.contains("statically linked");
    assert!(is_static, "{} must be static (make static): {ldd_text}", sv_lite.display());

    let root = TempDir::new("image");
    for sub in ["bin", "proc", "dev", "run", "data"] {
        fs::create_dir_all(root.path(sub)).expect("mkdir");
    }
    fs::copy(&sv_lite, root.path("sv-lite")).expect("copy sv-lite");
    fs::copy(busybox, root.path("bin/busybox")).expect("copy busybox");
    // A container engine provides /dev/null; so do we.
    let mknod = Command::new("mknod")
        .args(["-m", "666"])
        .arg(root.path("dev/null"))
        .args(["c", "1", "3"])
        .status()
        .expect("mknod");
    assert!(mknod.success(), "mknod /dev/null");
    fs::write(
        root.path("sv-lite.yaml"),
        r#"
socket: /run/sv-lite.sock
logfile: /data/events.log
programs:
  ticker:
    cmd: ["/bin/busybox", "sh", "-c", "echo tick > /data/ticked; exec /bin/busybox sleep 1000"]
    starttime: 0
  worker:
    cmd: ["/bin/busybox", "sh", "-c", "echo working; exec /bin/busybox sleep 1000"]
    numprocs: 2
    starttime: 0
"#,
    )
    .expect("write config");
    let mut namespace =
        Namespace::start(&root, &["--root", root.str()], Path::new("/sv-lite"), &["-c", "/sv-lite.yaml"]);
    let socket = root.path("run/sv-lite.sock");
    wait_for("the ticker to run", || root.path("data/ticked").exists());
    wait_for("three instances RUNNING", || {
        String::from_utf8_lossy(&ctl(&socket, &["status"]).stdout).matches("RUNNING").count() == 3
    });
    wait_for("both workers' forwarded lines", || namespace.stdout().matches("| working").count() == 2);
    namespace.signal_init("TERM");
    let exit = namespace.wait();
    assert_eq!(exit.code(), Some(0), "{}", namespace.stderr());
    let events = fs::read_to_string(root.path("data/events.log")).expect("event log");
    assert!(events.contains("every instance is down; exiting with code 0"), "{events}");
    assert!(!socket.exists());
}

#[test]
fn a_root_without_dev_still_starts_programs_with_an_empty_stdin_and_drained_discards() {
    if !unshare_works() {
        return;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"].into_iter().map(Path::new).find(|path| path.exists());
    let Some(busybox) = busybox else {
        panic!("busybox (Debian package busybox-static) is needed; .ci/run installs it");
    };
    let root = TempDir::new("nodev");
    // No /dev at all: only sv-lite, busybox, a config and the directories it names.
    for sub in ["bin", "proc", "run", "data"] {
        fs::create_dir_all(root.path(sub)).expect("mkdir");
    }
    fs::copy(binary(), root.path("sv-lite")).expect("copy sv-lite");
    fs::copy(busybox, root.path("bin/busybox")).expect("copy busybox");
    fs::write(
        root.path("sv-lite.yaml"),
        r#"
socket: /run/sv-lite.sock
programs:
  reader:
    cmd: ["/bin/busybox", "sh", "-c", "/bin/busybox cat; echo ended > stdin-ended; exec /bin/busybox sleep 1000"]
    workingdir: /data
    starttime: 0
  quiet:
    cmd: ["/bin/busybox", "sh", "-c", "echo discarded-line; echo discarded-error >&2; exec /bin/busybox sleep 1000"]
    stdout: discard
    stderr: discard
    starttime: 0
"#,
    )
    .expect("write config");
    assert!(!root.path("dev").exists());
    let mut namespace =
        Namespace::start(&root, &["--root", root.str()], Path::new("/sv-lite"), &["-c", "/sv-lite.yaml"]);
    let socket = root.path("run/sv-lite.sock");
    wait_for("both programs RUNNING", || {
        String::from_utf8_lossy(&ctl(&socket, &["status"]).stdout).matches("RUNNING").count() == 2
    });
    // stdin was empty (EOF at once), in the working directory asked for.
    wait_for("the reader to see the end of its stdin", || root.path("data/stdin-ended").exists());
    // A discarded stream is drained by the daemon: the program never blocks, tail still works.
    wait_for("the discarded line in the tail ring", || {
        String::from_utf8_lossy(&ctl(&socket, &["tail", "quiet"]).stdout).contains("discarded-line")
    });
    let status = String::from_utf8_lossy(&ctl(&socket, &["status"]).stdout).into_owned();
    assert!(!status.contains("FATAL"), "{status}");
    namespace.signal_init("TERM");
    assert_eq!(namespace.wait().code(), Some(0), "{}", namespace.stderr());
}

#[test]
fn fifty_children_writing_ten_thousand_lines_each_produce_no_torn_line() {
    if !unshare_works() {
        return;
    }
    let dir = TempDir::new("lines");
    let (mut namespace, socket) = start_daemon(
        &dir,
        r#"
programs:
  writer:
    cmd: ["/bin/sh", "-c", "i=0; while [ $i -lt 10000 ]; do echo \"w%(instance_number)d line $i abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789\"; i=$((i+1)); done"]
    numprocs: 50
    starttime: 0
    autorestart: never
"#,
    );
    wait_for("all 50 writers to exit", || {
        String::from_utf8_lossy(&ctl(&socket, &["status"]).stdout).matches("EXITED").count() == 50
    });
    assert!(ctl(&socket, &["shutdown"]).status.success());
    assert_eq!(namespace.wait().code(), Some(0));
    let file = fs::File::open(&namespace.stdout).expect("stdout");
    let mut next_line = vec![0u32; 50];
    let mut total = 0;
    for line in BufReader::new(file).lines() {
        let line = line.expect("utf-8 line");
        // writer:N | wN line I abc...
        let (prefix, body) = line.split_once(" | ").unwrap_or_else(|| panic!("torn or unprefixed line: {line:?}"));
        let index: usize = prefix
            .strip_prefix("writer:")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad prefix: {line:?}"));
        let expected = format!(
            "w{index} line {} abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789",
            next_line[index]
        );
        assert_eq!(body, expected, "line out of order or torn");
        next_line[index] += 1;
        total += 1;
    }
    assert_eq!(total, 500_000);
    assert!(next_line.iter().all(|&n| n == 10_000), "{next_line:?}");
}
