//! The control shell (`sv-lite ctl` without a command) against a real daemon: scripted from a
//! pipe, and interactive in a real pseudo-terminal driven through tmux (typing with `send-keys`,
//! reading the screen with `capture-pane`). Every wait polls for something visible, with a
//! generous deadline; nothing sleeps a fixed time.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::BIN;
const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);
const PROMPT: &str = "sv-lite> ";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name no other test (or test run) uses.
fn unique(label: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.subsec_nanos());
    format!("{label}-{}-{}-{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Polls `probe` until it returns `Some`, or panics after [`DEADLINE`] with `what` and the last
/// thing `describe` says.
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>, describe: impl Fn() -> String) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= end {
            panic!("timed out after {DEADLINE:?} waiting for {what}; last seen:\n{}", describe());
        }
        std::thread::sleep(POLL);
    }
}

/// Waits for `child` to exit (killing it and failing after the deadline) and returns its output.
fn finish(mut child: Child, what: &str) -> Output {
    let end = Instant::now() + DEADLINE;
    while child.try_wait().expect("poll child").is_none() {
        if Instant::now() >= end {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect output");
            panic!("{what} did not finish within {DEADLINE:?}; output so far:\n{}", text(&output));
        }
        std::thread::sleep(POLL);
    }
    child.wait_with_output().expect("collect output")
}

fn text(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A daemon supervising `web` and `worker` (each `sleep 1000`) in a fresh temp dir. Dropping it
/// stops the daemon (SIGTERM, then SIGKILL) and removes the dir.
struct Daemon {
    dir: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    fn start(label: &str) -> Daemon {
        let dir = std::env::temp_dir().join(unique(&format!("sv-lite-shell-{label}")));
        fs::create_dir_all(&dir).expect("create the test dir");
        let config = dir.join("sv-lite.yaml");
        fs::write(&config, "programs:\n  web:\n    cmd: sleep 1000\n  worker:\n    cmd: sleep 1000\n")
            .expect("write the config");
        let socket = dir.join("ctl.sock");
        let log = fs::File::create(dir.join("daemon.log")).expect("create the daemon log");
        let child = Command::new(&*BIN)
            .arg("-c")
            .arg(&config)
            .arg("-s")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("start the daemon");
        let daemon = Daemon { dir, socket, child: Some(child) };
        wait_for(
            "the daemon to report web:0 and worker:0 RUNNING",
            || {
                let output = daemon.ctl(&["status"]);
                let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
                let running =
                    |name: &str| stdout.lines().any(|line| line.starts_with(name) && line.contains("RUNNING"));
                (output.status.success() && running("web:0") && running("worker:0")).then_some(())
            },
            || daemon.log(),
        );
        daemon
    }

    fn ctl(&self, args: &[&str]) -> Output {
        let child = Command::new(&*BIN)
            .arg("ctl")
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sv-lite ctl");
        finish(child, &format!("sv-lite ctl {}", args.join(" ")))
    }

    /// `sv-lite ctl` with no command, fed `script` on a pipe.
    fn shell_script(&self, script: &str) -> Output {
        let mut child = Command::new(&*BIN)
            .arg("ctl")
            .arg("-s")
            .arg(&self.socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sv-lite ctl");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("the shell's stdin");
            stdin.write_all(script.as_bytes()).expect("write the script");
        }
        finish(child, "the scripted shell")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let end = Instant::now() + DEADLINE;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < end {
                std::thread::sleep(POLL);
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill(); // SIGKILL
                let _ = child.wait();
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The `web:0` rows of every status table in `stdout`, in order.
fn web_rows(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|line| line.starts_with("web:0 ")).collect()
}

#[test]
fn a_script_on_stdin_runs_each_command_in_order() {
    let daemon = Daemon::start("script");
    let output = daemon.shell_script("status\nstop web\nstatus\n");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", text(&output));
    let rows = web_rows(&stdout);
    assert_eq!(rows.len(), 2, "two status tables expected:\n{}", text(&output));
    assert!(rows[0].contains("RUNNING"), "web first RUNNING:\n{}", text(&output));
    assert!(rows[1].contains("STOPPED"), "then STOPPED:\n{}", text(&output));
    assert!(!stdout.contains(PROMPT), "no prompt when stdin is not a terminal:\n{}", text(&output));
}

#[test]
fn a_script_skips_comments_survives_errors_and_exits_with_the_worst_code() {
    let daemon = Daemon::start("errors");
    let output = daemon.shell_script("# restart the web tier\n\nexplode\nstart web:7\nstatus web\n");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `explode` is a usage error (2), `web:7` a failed target (1): the worst is 2.
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(stderr.contains("unknown command `explode`"), "{}", text(&output));
    assert!(stderr.contains("web:7"), "{}", text(&output));
    assert!(web_rows(&stdout).first().is_some_and(|row| row.contains("RUNNING")), "{}", text(&output));

    let output = daemon.shell_script("help\nhelp stop\nstatus\n");
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("  restart [--no-wait] TARGET..."), "{}", text(&output));
    assert!(stdout.contains("usage: stop [--no-wait] TARGET..."), "{}", text(&output));
}

fn require_tmux() {
    let found = Command::new("tmux").arg("-V").output().is_ok_and(|output| output.status.success());
    assert!(
        found,
        "tmux is not installed: the shell's terminal tests need it (apt-get install tmux; .ci/run installs it)"
    );
}

/// A tmux server of its own, killed on drop. Sessions run with `remain-on-exit`, so the screen
/// of a shell that exited stays readable.
struct Tmux {
    server: String,
    config: PathBuf,
}

impl Tmux {
    fn new(dir: &Path) -> Tmux {
        let config = dir.join("tmux.conf");
        fs::write(&config, "set -g remain-on-exit on\n").expect("write tmux.conf");
        Tmux { server: unique("sv-lite-test"), config }
    }

    fn tmux(&self, args: &[&str]) -> Output {
        let output = Command::new("tmux")
            .arg("-L")
            .arg(&self.server)
            .arg("-f")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tmux");
        assert!(output.status.success(), "tmux {args:?} failed: {}", text(&output));
        output
    }

    /// Starts `command` (a shell command line) in a new 200x50 session named `session`.
    fn start(&self, session: &str, command: &str) {
        self.tmux(&["new-session", "-d", "-s", session, "-x", "200", "-y", "50", command]);
    }

    /// Types `text` literally.
    fn type_text(&self, session: &str, text: &str) {
        self.tmux(&["send-keys", "-t", session, "-l", text]);
    }

    /// Presses keys by tmux name (`Tab`, `Left`, `BSpace`, `Enter`, `Up`, `C-c`).
    fn press(&self, session: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", session];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    fn screen(&self, session: &str) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", session]).stdout).into_owned()
    }

    /// Waits until the screen satisfies `check` and returns it.
    fn wait_screen(&self, session: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        wait_for(
            &format!("{what} on the screen"),
            || {
                let screen = self.screen(session);
                check(&screen).then_some(screen)
            },
            || self.screen(session),
        )
    }

    /// Waits until the line being edited (the last prompt line) reads exactly `line`.
    fn wait_line(&self, session: &str, line: &str) -> String {
        let expected = format!("{PROMPT}{line}").trim_end().to_string();
        self.wait_screen(session, &format!("the edited line `{expected}`"), |screen| {
            last_prompt_line(screen) == Some(expected.as_str())
        })
    }

    fn wait_exit(&self, session: &str) {
        wait_for(
            &format!("the shell in {session} to exit"),
            || {
                let dead = self.tmux(&["display-message", "-p", "-t", session, "#{pane_dead}"]);
                (String::from_utf8_lossy(&dead.stdout).trim() == "1").then_some(())
            },
            || self.screen(session),
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-L").arg(&self.server).arg("kill-server").stderr(Stdio::null()).status();
    }
}

/// Whether a process runs whose argv ends with `tail` (as exec'd, so no longer a copy of the
/// process that forked it).
fn process_with_args(tail: &[&str]) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else { return false };
    entries.flatten().any(|entry| {
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).filter(|arg| !arg.is_empty()).collect();
        args.len() >= tail.len()
            && args[args.len() - tail.len()..].iter().zip(tail).all(|(arg, want)| *arg == want.as_bytes())
    })
}

/// The last screen line that starts with the prompt, without trailing blanks.
fn last_prompt_line(screen: &str) -> Option<&str> {
    screen.lines().rev().map(str::trim_end).find(|line| line.starts_with(PROMPT.trim_end()))
}

fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[test]
fn the_interactive_shell_edits_completes_and_remembers() {
    require_tmux();
    let daemon = Daemon::start("tty");
    let tmux = Tmux::new(&daemon.dir);
    let state = daemon.dir.join("state");
    let command = format!(
        "env XDG_STATE_HOME={} HOME={} {} ctl -s {}",
        quote(&state),
        quote(&daemon.dir.join("home")),
        quote(BIN.as_path()),
        quote(&daemon.socket)
    );

    tmux.start("one", &command);
    tmux.wait_line("one", "");

    // Command names: `sta` is ambiguous, so Tab lists both candidates.
    tmux.type_text("one", "sta");
    tmux.wait_line("one", "sta");
    tmux.press("one", &["Tab"]);
    let screen = tmux.wait_screen("one", "the candidates start and status", |screen| {
        screen.lines().any(|line| !line.starts_with(PROMPT) && line.contains("start") && line.contains("status"))
    });
    assert_eq!(last_prompt_line(&screen), Some("sv-lite> sta"), "{screen}");
    // Ctrl-C clears the line.
    tmux.press("one", &["C-c"]);
    tmux.wait_line("one", "");

    // A unique command name completes whole.
    tmux.type_text("one", "rel");
    tmux.wait_line("one", "rel");
    tmux.press("one", &["Tab"]);
    tmux.wait_line("one", "reload");
    tmux.press("one", &["C-c"]);
    tmux.wait_line("one", "");

    // Program names come from the daemon: `we` completes to `web` (web and web:0 share it).
    tmux.type_text("one", "start we");
    tmux.wait_line("one", "start we");
    tmux.press("one", &["Tab"]);
    let screen = tmux.wait_line("one", "start web");
    assert!(
        screen.lines().any(|line| line.contains("web:0") && !line.starts_with(PROMPT)),
        "candidates listed:\n{screen}"
    );
    tmux.press("one", &["C-c"]);
    tmux.wait_line("one", "");

    // Ctrl-C during a command ends the command (here an endless `tail -f`), not the shell.
    tmux.type_text("one", "tail -f web:0");
    tmux.wait_line("one", "tail -f web:0");
    tmux.press("one", &["Enter"]);
    let socket = daemon.socket.to_string_lossy().into_owned();
    wait_for(
        "the shell's `sv-lite ctl -s SOCKET tail -f web:0` child",
        || process_with_args(&[&socket, "tail", "-f", "web:0"]).then_some(()),
        || tmux.screen("one"),
    );
    tmux.press("one", &["C-c"]);
    tmux.wait_line("one", "");

    // Line editing: fix `stauts` with the arrow keys and Backspace, then run it.
    tmux.type_text("one", "stauts");
    tmux.wait_line("one", "stauts");
    tmux.press("one", &["Left", "Left", "BSpace"]);
    tmux.wait_line("one", "stats");
    tmux.press("one", &["Right"]);
    tmux.type_text("one", "u");
    tmux.wait_line("one", "status");
    tmux.press("one", &["Enter"]);
    tmux.wait_screen("one", "the status table", |screen| {
        screen.contains("NAME") && screen.lines().any(|line| line.starts_with("web:0 ") && line.contains("RUNNING"))
    });
    tmux.wait_line("one", "");

    // `help` works in the shell, and `quit` leaves it.
    tmux.type_text("one", "help");
    tmux.press("one", &["Enter"]);
    tmux.wait_screen("one", "the help listing", |screen| screen.contains("list the commands, or explain one"));
    tmux.wait_line("one", "");
    tmux.type_text("one", "quit");
    tmux.press("one", &["Enter"]);
    tmux.wait_exit("one");

    let history = state.join("sv-lite").join("history");
    let saved =
        fs::read_to_string(&history).unwrap_or_else(|error| panic!("history file {}: {error}", history.display()));
    assert!(saved.lines().any(|line| line == "status"), "history:\n{saved}");
    assert!(!saved.lines().any(|line| line == "quit"), "quit is not kept:\n{saved}");

    // A new shell remembers: Up brings back the last command (help), then status.
    tmux.start("two", &command);
    tmux.wait_line("two", "");
    tmux.press("two", &["Up"]);
    tmux.wait_line("two", "help");
    tmux.press("two", &["Up"]);
    tmux.wait_line("two", "status");
    // Ctrl-D on an empty line leaves.
    tmux.press("two", &["C-c"]);
    tmux.wait_line("two", "");
    tmux.press("two", &["C-d"]);
    tmux.wait_exit("two");
}

/// The source files under src/ whose text contains `needle`, sorted.
fn sources_containing(needle: &str) -> Vec<PathBuf> {
    fn visit(dir: &Path, needle: &str, found: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                visit(&path, needle, found);
            } else if path.extension().is_some_and(|ext| ext == "rs")
                && fs::read_to_string(&path).expect("read source").contains(needle)
            {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    visit(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), needle, &mut found);
    found.sort();
    found
}

/// rustyline is client code: only the shell uses it, and only `sv-lite ctl` (main.rs) opens the
/// shell, so the daemon's path never reaches the line editor.
#[test]
fn the_line_editor_stays_in_the_client() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    assert_eq!(
        sources_containing("rustyline::"),
        vec![src.join("client").join("shell.rs")],
        "rustyline belongs in src/client/shell.rs alone"
    );
    assert_eq!(
        sources_containing("shell::"),
        vec![src.join("main.rs")],
        "only main.rs (sv-lite ctl) may open the shell"
    );
}
