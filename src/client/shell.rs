//! `sv-lite ctl` without a command: the control shell.
//!
//! On a terminal it is a line editor (rustyline) with the prompt `sv-lite> `, persistent history
//! and tab completion of command names, options, signal and state names, and of the program and
//! instance names the daemon currently knows. Otherwise it reads one command per line from stdin,
//! so `printf 'status\nstop web\n' | sv-lite ctl` is a script.
//!
//! Every line is split into words and handed to [`ctl::parse_command`] and [`ctl::run`], so the
//! shell accepts exactly what one-shot `sv-lite ctl COMMAND` accepts; only `help`, `quit` and
//! `exit` are its own. At the prompt Ctrl-C clears the line; while a command runs it ends that
//! command (`tail -f`, `wait`) and not the shell: the interactive shell catches SIGINT and runs
//! each parsed command as a child `sv-lite ctl -s SOCKET WORDS...`. This is client code: the
//! daemon never reaches this module, nor rustyline.

use std::cell::RefCell;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustyline::completion::{Completer, Pair};
use rustyline::config::{CompletionType, Config};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use crate::client::ctl;
use crate::control::{WireReply, WireRequest};

/// The interactive prompt.
pub const PROMPT: &str = "sv-lite> ";

/// Exit code of a line the shell cannot run (bad quoting, unknown command, bad arguments), as for
/// a one-shot `sv-lite ctl` with a wrong command line.
const EXIT_USAGE: u8 = 2;

/// How long completion reuses the names it fetched from the daemon.
const NAMES_TTL: Duration = Duration::from_secs(1);

/// How long completion waits for the daemon before offering no names.
const NAMES_TIMEOUT: Duration = Duration::from_secs(1);

const HISTORY_LINES: usize = 1000;

/// One command as `help` shows it.
struct Entry {
    name: &'static str,
    /// The arguments, exactly as in [`ctl::USAGE`]; completion reads its options and
    /// placeholders (`TARGET`, `SIG`, `STATE`, `stdout|stderr`) from here.
    args: &'static str,
    /// One line for the listing.
    summary: &'static str,
    /// The explanation `help NAME` adds below the usage line.
    details: &'static str,
}

/// The ctl commands, in the order of [`ctl::USAGE`]. A row shows up (in `help` and completion)
/// only while [`ctl::COMMANDS`] has the command; a unit test keeps the two in step.
const CTL_COMMANDS: &[Entry] = &[
    Entry {
        name: "status",
        args: "[--json] [TARGET...]",
        summary: "show instances (all when no target)",
        details: "One row per instance: name, state, pid, and uptime or how it last exited.
Without targets, every instance. --json prints the same facts as a JSON array.",
    },
    Entry {
        name: "start",
        args: "[--no-wait] TARGET...",
        summary: "start and wait until RUNNING (or failed)",
        details: "Starts the targets and waits until each is RUNNING (it stayed up for its
starttime) or has failed, then prints one line per instance. Instances that are
already up are left alone. --no-wait returns as soon as the start is requested.",
    },
    Entry {
        name: "stop",
        args: "[--no-wait] TARGET...",
        summary: "stop and wait until down; stays down until `start`",
        details: "Sends each target its stopsignal and waits until it is down (killing it after
stopwaitsecs). A stopped instance stays down across daemon restarts and reloads
until `start`. --no-wait returns at once.",
    },
    Entry {
        name: "zap",
        args: "TARGET... [--timeout SECS]",
        summary: "stop and wait; exit 1 if still running after SECS",
        details: "Proc::tored's stop: like `stop`, and with --timeout gives up waiting after SECS
seconds with exit code 1 when a target is still running.",
    },
    Entry {
        name: "restart",
        args: "[--no-wait] TARGET...",
        summary: "stop, then start and wait until RUNNING",
        details: "Stops the targets that are up, starts them again and waits until each is
RUNNING or has failed. --no-wait returns at once.",
    },
    Entry {
        name: "signal",
        args: "SIG TARGET...",
        summary: "send a signal to the instances' process groups",
        details: "Sends SIG (a name such as TERM, HUP or SIGUSR1, or a number such as 9) to the
process group of each target instance.",
    },
    Entry {
        name: "pause",
        args: "TARGET...",
        summary: "SIGSTOP the process groups (state PAUSED)",
        details: "Freezes each target's process group with SIGSTOP. A paused instance shows as
PAUSED and is not treated as dead or restarted. `resume` continues it.",
    },
    Entry {
        name: "resume",
        args: "TARGET...",
        summary: "SIGCONT paused instances",
        details: "Continues paused targets: SIGCONT to their process groups.",
    },
    Entry {
        name: "snooze",
        args: "[--for DURATION] TARGET...",
        summary: "skip health checks (creates .healthchecksnooze)",
        details: "Creates .healthchecksnooze in each target's working directory: while it exists,
health checks are skipped and not counted (status says SNOOZED), as in Aurora.
With --for (e.g. 30m), sv-lite removes the file when the time is up. Instances
that share a working directory share the snooze.",
    },
    Entry {
        name: "unsnooze",
        args: "TARGET...",
        summary: "remove the snooze file; health checks count again",
        details: "Removes .healthchecksnooze from each target's working directory.",
    },
    Entry {
        name: "port",
        args: "TARGET NAME",
        summary: "the number of an instance's named port",
        details: "Prints the port number that the target instance got for NAME (from `ports:`).",
    },
    Entry {
        name: "pid",
        args: "[TARGET...]",
        summary: "the daemon's pid, or the instances' pids",
        details: "Without a target, the daemon's pid; with targets, the pid of each of their
instances, one per line (for scripts).",
    },
    Entry {
        name: "info",
        args: "",
        summary: "the daemon's version, pid, config and tree-stop method",
        details: "Prints the daemon's version, pid and config file, and how it stops and measures
each instance's whole process tree: a cgroup v2 of its own per instance, or a
walk of /proc with SV_LITE_INSTANCE markers (and why).",
    },
    Entry {
        name: "wait",
        args: "TARGET... [--state STATE] [--timeout SECS]",
        summary: "block until the targets are in STATE",
        details: "Blocks until every target is in STATE (RUNNING unless --state says otherwise,
for example STOPPED or PAUSED). With --timeout, gives up after SECS seconds and
exits 1. Ctrl-C stops waiting.",
    },
    Entry {
        name: "tail",
        args: "[-f] [-n N] TARGET [stdout|stderr]",
        summary: "recent output of one instance; -f follows",
        details: "Prints the last N lines (default 10) of one instance's stdout, or stderr, from
the daemon's in-memory ring, whatever the program's output is configured to do.
With -f, keeps printing new output until Ctrl-C.",
    },
    Entry {
        name: "events",
        args: "[-f] [--json] [TARGET...]",
        summary: "recent transitions; -f follows new ones",
        details: "Prints the daemon's last 1000 transitions (of TARGETs, or all), one per line:
time, instance, from -> to, what happened, and why. --json prints one object per line.
With -f, keeps printing new ones until Ctrl-C; a reader that falls behind is dropped.",
    },
    Entry {
        name: "reload",
        args: "",
        summary: "re-read the config and apply the difference",
        details: "Re-reads the daemon's config file. New programs are added (and started when
autostart), removed ones are stopped, changed ones are restarted; the rest are
untouched. An invalid config changes nothing and the errors are printed.",
    },
    Entry {
        name: "shutdown",
        args: "",
        summary: "stop everything and exit the daemon",
        details: "Stops every instance, then the daemon exits. The shell stays open.",
    },
];

/// The shell's own commands.
const SHELL_COMMANDS: &[Entry] = &[
    Entry {
        name: "help",
        args: "[COMMAND]",
        summary: "list the commands, or explain one",
        details: "Without a COMMAND, one line per command; with one, its usage and what it
does. `COMMAND --help` does the same.",
    },
    Entry {
        name: "quit",
        args: "",
        summary: "leave the shell (so do `exit` and Ctrl-D)",
        details: "Leaves the shell; the daemon keeps running. Ctrl-C only clears the line.",
    },
    Entry {
        name: "exit",
        args: "",
        summary: "leave the shell, as quit",
        details: "Leaves the shell; the daemon keeps running.",
    },
];

const TARGET_NOTE: &str = "TARGET is NAME (all its instances), NAME:N (one instance) or all.";

/// States `wait --state` can name.
const STATE_NAMES: &[&str] =
    &["STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "PAUSED", "WAITING", "SCHEDULED"];

fn ctl_knows(name: &str) -> bool {
    ctl::COMMANDS.contains(&name)
}

/// The commands the shell offers now: ctl's (those it knows), then the shell's own.
fn commands() -> impl Iterator<Item = &'static Entry> {
    CTL_COMMANDS.iter().filter(|entry| ctl_knows(entry.name)).chain(SHELL_COMMANDS)
}

fn find_command(name: &str) -> Option<&'static Entry> {
    commands().find(|entry| entry.name == name)
}

impl Entry {
    fn synopsis(&self) -> String {
        if self.args.is_empty() {
            self.name.to_string()
        } else {
            format!("{} {}", self.name, self.args)
        }
    }
}

/// Opens the shell on `socket`: interactive on a terminal, else a script read from stdin.
/// Returns the exit code: 0 for the interactive shell, the worst code seen for a script.
pub fn run(socket: &Path) -> u8 {
    if crate::sys::isatty(0) {
        run_interactive(socket)
    } else {
        run_script(socket, std::io::stdin().lock())
    }
}

/// Runs one command per line of `input`, skipping blank lines and `#` comments, until the end or
/// `quit`. Errors are printed and the script goes on; returns the worst exit code (0 if none).
pub fn run_script(socket: &Path, input: impl BufRead) -> u8 {
    let mut worst = ctl::EXIT_OK;
    for line in input.lines() {
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                eprintln!("sv-lite ctl: reading commands from stdin: {error}");
                return worst.max(EXIT_USAGE);
            }
        };
        match execute(socket, &line, None) {
            Outcome::Done(code) => worst = worst.max(code),
            Outcome::Quit => break,
        }
    }
    worst
}

enum Outcome {
    Done(u8),
    Quit,
}

/// Runs one line: a shell command, or a ctl command sent to the daemon. With `exe`, ctl commands
/// run in a child process (see [`run_in_child`]), else in this one.
fn execute(socket: &Path, line: &str, exe: Option<&Path>) -> Outcome {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Outcome::Done(ctl::EXIT_OK);
    }
    let words = match split_words(line) {
        Ok(words) => words,
        Err(error) => {
            eprintln!("sv-lite: {error}");
            return Outcome::Done(EXIT_USAGE);
        }
    };
    let Some((name, rest)) = words.split_first() else {
        return Outcome::Done(ctl::EXIT_OK);
    };
    let code = match name.as_str() {
        "quit" | "exit" => return Outcome::Quit,
        "help" | "?" => help(rest),
        _ if rest.iter().any(|word| word == "--help" || word == "-h") => help(std::slice::from_ref(name)),
        _ => match ctl::parse_command(&words) {
            Ok(command) => match exe.and_then(|exe| run_in_child(exe, socket, &words)) {
                Some(code) => code,
                None => ctl::run(socket, &command),
            },
            Err(error) => {
                eprintln!("sv-lite: {error} (`help` lists the commands)");
                EXIT_USAGE
            }
        },
    };
    let _ = std::io::stdout().flush();
    Outcome::Done(code)
}

/// Runs `sv-lite ctl -s SOCKET WORDS...` as a child process, so that Ctrl-C, which the
/// interactive shell survives (see [`survive_ctrl_c`]), ends the command (`tail -f`, `wait`, a
/// slow `start`) and not the shell. `None` when the child cannot be started.
fn run_in_child(exe: &Path, socket: &Path, words: &[String]) -> Option<u8> {
    let status = std::process::Command::new(exe).arg("ctl").arg("-s").arg(socket).args(words).status().ok()?;
    Some(match status.code() {
        Some(code) => u8::try_from(code).unwrap_or(ctl::EXIT_FAILED),
        None => {
            // Killed by Ctrl-C: the terminal shows ^C; start the prompt on a line of its own.
            println!();
            ctl::EXIT_FAILED
        }
    })
}

/// The executable to run commands with when Ctrl-C must only end the command: this one, once
/// SIGINT is caught (a caught signal is reset to its default in the child). `None` keeps
/// commands in this process, which Ctrl-C then ends as it ends one-shot `sv-lite ctl`.
fn survive_ctrl_c() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok().filter(|exe| exe.is_file())?;
    let caught = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, caught).ok()?;
    Some(exe)
}

/// `help` and `help COMMAND`.
fn help(args: &[String]) -> u8 {
    match args {
        [] => {
            print!("{}", help_listing());
            ctl::EXIT_OK
        }
        [name] => match find_command(name) {
            Some(entry) => {
                print!("{}", help_command(entry));
                ctl::EXIT_OK
            }
            None => {
                eprintln!("help: no command `{name}` (`help` lists the commands)");
                EXIT_USAGE
            }
        },
        _ => {
            eprintln!("help takes at most one COMMAND");
            EXIT_USAGE
        }
    }
}

fn help_listing() -> String {
    let entries: Vec<&Entry> = commands().collect();
    let width = entries.iter().map(|entry| entry.synopsis().len()).max().unwrap_or(0).max(28);
    let mut out = String::from("commands:\n");
    for entry in entries {
        out.push_str(&format!("  {:<width$}  {}\n", entry.synopsis(), entry.summary));
    }
    out.push_str(&format!("\n{TARGET_NOTE}\n`help COMMAND` explains one; Tab completes; Ctrl-D leaves.\n"));
    out
}

fn help_command(entry: &Entry) -> String {
    let mut out = format!("usage: {}\n  {}\n\n{}\n", entry.synopsis(), entry.summary, entry.details);
    if entry.args.contains("TARGET") {
        out.push_str(&format!("\n{TARGET_NOTE}\n"));
    }
    out
}

/// Splits a line into words at whitespace. '…' and "…" quote (a backslash escapes inside "…"),
/// a backslash outside quotes escapes the next character.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(close) if close == c => break,
                        Some('\\') if c == '"' => match chars.next() {
                            Some(escaped) => word.push(escaped),
                            None => return Err(format!("unclosed {c} quote")),
                        },
                        Some(other) => word.push(other),
                        None => return Err(format!("unclosed {c} quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(escaped) => word.push(escaped),
                    None => return Err("the line ends with a lone backslash".to_string()),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn run_interactive(socket: &Path) -> u8 {
    let config =
        Config::builder().auto_add_history(false).history_ignore_space(true).max_history_size(HISTORY_LINES).map(
            |builder| builder.completion_type(CompletionType::List).completion_show_all_if_ambiguous(true).build(),
        );
    let editor = config.and_then(Editor::<ShellHelper, DefaultHistory>::with_config);
    let mut editor = match editor {
        Ok(editor) => editor,
        Err(error) => {
            eprintln!("sv-lite ctl: no line editing ({error}); reading commands line by line");
            return run_script(socket, std::io::stdin().lock());
        }
    };
    editor.set_helper(Some(ShellHelper::new(socket)));
    let exe = survive_ctrl_c();
    let history = history_path().and_then(|path| prepare_history(&mut editor, path));
    println!("sv-lite ctl on {}: `help` lists the commands, Ctrl-D leaves", socket.display());
    let mut history = history;
    loop {
        let line = match editor.readline(PROMPT) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted | ReadlineError::Signal(_)) => continue,
            Err(ReadlineError::Eof) => break,
            Err(error) => {
                eprintln!("sv-lite ctl: reading the command line: {error}");
                break;
            }
        };
        let trimmed = line.trim();
        if !trimmed.is_empty() && !matches!(trimmed, "quit" | "exit") {
            let _ = editor.add_history_entry(line.as_str());
            if let Some(path) = &history {
                if let Err(error) = editor.append_history(path) {
                    eprintln!("sv-lite ctl: cannot save history to {}: {error}", path.display());
                    history = None;
                }
            }
        }
        if let Outcome::Quit = execute(socket, &line, exe.as_deref()) {
            break;
        }
    }
    ctl::EXIT_OK
}

/// Creates the history file's directory and loads the file; `None` (after a warning) when the
/// history cannot be kept.
fn prepare_history(editor: &mut Editor<ShellHelper, DefaultHistory>, path: PathBuf) -> Option<PathBuf> {
    if let Some(dir) = path.parent() {
        if let Err(error) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
            eprintln!("sv-lite ctl: no history: cannot create {}: {error}", dir.display());
            return None;
        }
    }
    match editor.load_history(&path) {
        Ok(()) => Some(path),
        Err(ReadlineError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => Some(path),
        Err(error) => {
            eprintln!("sv-lite ctl: no history: cannot read {}: {error}", path.display());
            None
        }
    }
}

/// `$XDG_STATE_HOME/sv-lite/history` when that is set (and absolute), else
/// `~/.sv-lite_history`; `None` without either.
#[must_use]
pub fn history_path() -> Option<PathBuf> {
    history_path_from(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
}

fn history_path_from(state_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let absolute = |value: Option<OsString>| value.map(PathBuf::from).filter(|path| path.is_absolute());
    match absolute(state_home) {
        Some(dir) => Some(dir.join("sv-lite").join("history")),
        None => absolute(home).map(|home| home.join(".sv-lite_history")),
    }
}

/// Completion for the line editor; the instance names come from a `status` request.
struct ShellHelper {
    socket: PathBuf,
    names: RefCell<Option<(Instant, Vec<String>)>>,
}

impl ShellHelper {
    fn new(socket: &Path) -> Self {
        ShellHelper { socket: socket.to_path_buf(), names: RefCell::new(None) }
    }

    /// The instance names the daemon knows, fetched at most once per [`NAMES_TTL`]; none when
    /// the daemon does not answer (completion must not print or hang).
    fn instance_names(&self) -> Vec<String> {
        if let Some((fetched, names)) = &*self.names.borrow() {
            if fetched.elapsed() < NAMES_TTL {
                return names.clone();
            }
        }
        let names = fetch_instance_names(&self.socket).unwrap_or_default();
        *self.names.borrow_mut() = Some((Instant::now(), names.clone()));
        names
    }
}

fn fetch_instance_names(socket: &Path) -> Result<Vec<String>, String> {
    let stream = ctl::connect(socket)?;
    stream.set_read_timeout(Some(NAMES_TIMEOUT)).map_err(|error| error.to_string())?;
    stream.set_write_timeout(Some(NAMES_TIMEOUT)).map_err(|error| error.to_string())?;
    let request = WireRequest { op: "status".to_string(), ..WireRequest::default() };
    let mut line = serde_json::to_vec(&request).map_err(|error| error.to_string())?;
    line.push(b'\n');
    (&stream).write_all(&line).map_err(|error| error.to_string())?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(|error| error.to_string())?;
    let reply: WireReply = serde_json::from_str(&answer).map_err(|error| error.to_string())?;
    Ok(reply.status.unwrap_or_default().into_iter().map(|row| row.name).collect())
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, words) = completions(&line[..pos], &|| self.instance_names());
        let pairs = words.into_iter().map(|word| Pair { replacement: format!("{word} "), display: word }).collect();
        Ok((start, pairs))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

/// Where the word being completed starts in `head` (the line up to the cursor), and the
/// candidates for it, sorted. `instances` lists the daemon's instance names (`web:0`).
fn completions(head: &str, instances: &dyn Fn() -> Vec<String>) -> (usize, Vec<String>) {
    let start = head.char_indices().rev().find(|(_, c)| c.is_whitespace()).map_or(0, |(index, c)| index + c.len_utf8());
    let partial = &head[start..];
    let Ok(before) = split_words(&head[..start]) else {
        return (start, Vec::new());
    };
    let mut candidates = match before.split_first() {
        None => commands().map(|entry| entry.name.to_string()).collect(),
        Some((name, rest)) if name == "help" && rest.is_empty() => {
            commands().map(|entry| entry.name.to_string()).collect()
        }
        Some((name, rest)) => match CTL_COMMANDS.iter().find(|entry| entry.name == name) {
            Some(entry) => argument_candidates(entry.args, rest, partial, instances),
            None => Vec::new(),
        },
    };
    candidates.retain(|candidate| candidate.starts_with(partial));
    candidates.sort();
    candidates.dedup();
    (start, candidates)
}

/// An option of a synopsis, with the placeholder of its value if it takes one.
struct Flag {
    name: String,
    value: Option<String>,
}

/// The options and positional placeholders of a synopsis such as
/// `[-f] [-n N] TARGET [stdout|stderr]`; a trailing `...` marks the last positional repeatable.
fn parse_synopsis(args: &str) -> (Vec<Flag>, Vec<String>, bool) {
    let tokens: Vec<&str> = args.split_whitespace().collect();
    let mut flags = Vec::new();
    let mut positionals = Vec::new();
    let mut repeats = false;
    let mut index = 0;
    while index < tokens.len() {
        let token = tokens[index];
        let bare = token.trim_start_matches('[').trim_end_matches(']');
        if bare.starts_with('-') {
            // `[-n N]`: the value sits in the same brackets as its option.
            let value = match tokens.get(index + 1) {
                Some(next) if token.starts_with('[') && !token.ends_with(']') && !next.starts_with('[') => {
                    index += 1;
                    Some(next.trim_end_matches(']').to_string())
                }
                _ => None,
            };
            flags.push(Flag { name: bare.to_string(), value });
        } else {
            repeats = bare.ends_with("...");
            positionals.push(bare.trim_end_matches("...").to_string());
        }
        index += 1;
    }
    (flags, positionals, repeats)
}

/// Candidates for the next argument of a command whose synopsis is `args`, after the words
/// `rest`.
fn argument_candidates(args: &str, rest: &[String], partial: &str, instances: &dyn Fn() -> Vec<String>) -> Vec<String> {
    let (flags, positionals, repeats) = parse_synopsis(args);
    if partial.starts_with('-') {
        return flags.iter().map(|flag| flag.name.clone()).collect();
    }
    let mut position = 0;
    let mut pending_value = None;
    for word in rest {
        if pending_value.take().is_some() {
            continue;
        }
        match flags.iter().find(|flag| flag.name == *word) {
            Some(flag) => pending_value = flag.value.clone(),
            None if word.starts_with('-') => {}
            None => position += 1,
        }
    }
    let placeholder = match pending_value {
        Some(value) => value,
        None => match positionals.get(position).or(if repeats { positionals.last() } else { None }) {
            Some(placeholder) => placeholder.clone(),
            None => return Vec::new(),
        },
    };
    placeholder_candidates(&placeholder, instances)
}

fn placeholder_candidates(placeholder: &str, instances: &dyn Fn() -> Vec<String>) -> Vec<String> {
    match placeholder {
        "TARGET" => {
            let names = instances();
            let programs = names.iter().map(|name| name.split_once(':').map_or(name.as_str(), |(program, _)| program));
            std::iter::once("all").chain(programs).map(String::from).chain(names.iter().cloned()).collect()
        }
        "SIG" => crate::spec::SIGNAL_NAMES.iter().map(|(name, _)| (*name).to_string()).collect(),
        "STATE" | "RUNNING" => STATE_NAMES.iter().map(|name| (*name).to_string()).collect(),
        literal if literal.contains('|') || literal.chars().all(|c| c.is_ascii_lowercase()) => {
            literal.split('|').map(String::from).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    fn instances() -> Vec<String> {
        words("web:0 web:1 worker:0 db:0")
    }

    fn complete(head: &str) -> Vec<String> {
        completions(head, &instances).1
    }

    #[test]
    fn words_split_at_whitespace_and_respect_quotes() {
        assert_eq!(split_words("  stop  web:0\tdb "), Ok(words("stop web:0 db")));
        assert_eq!(
            split_words(r#"signal 'HUP' "my prog" a\ b"#),
            Ok(vec!["signal".into(), "HUP".into(), "my prog".into(), "a b".into()])
        );
        assert_eq!(split_words(r#"x "a\"b" ''"#), Ok(vec!["x".into(), "a\"b".into(), String::new()]));
        assert_eq!(split_words("stop 'web"), Err("unclosed ' quote".to_string()));
        assert_eq!(split_words("stop web\\"), Err("the line ends with a lone backslash".to_string()));
    }

    /// The command lines of ctl::USAGE's `commands:` section, as (name, synopsis).
    fn usage_synopses() -> Vec<(String, String)> {
        ctl::USAGE
            .lines()
            .skip_while(|line| !line.starts_with("commands:"))
            .skip(1)
            .take_while(|line| !line.trim().is_empty())
            .filter(|line| line.starts_with("  ") && line[2..].starts_with(|c: char| c.is_ascii_lowercase()))
            .map(|line| {
                let synopsis = line.trim().split("  ").next().unwrap_or_default().trim().to_string();
                (synopsis.split_whitespace().next().unwrap_or_default().to_string(), synopsis)
            })
            .collect()
    }

    /// Every ctl command has a row here whose arguments read as in ctl's usage text, so `help`
    /// and completion follow ctl.
    #[test]
    fn the_table_follows_ctl() {
        let usage = usage_synopses();
        assert!(usage.len() >= 6, "could not find the commands in ctl::USAGE: {usage:?}");
        for (name, _) in &usage {
            assert!(ctl_knows(name), "ctl::USAGE lists `{name}` but ctl::COMMANDS does not");
        }
        for name in ctl::COMMANDS {
            let Some(entry) = CTL_COMMANDS.iter().find(|entry| entry.name == *name) else {
                panic!("ctl knows `{name}` but src/client/shell.rs CTL_COMMANDS has no row for it")
            };
            let listed = usage.iter().find(|(listed, _)| listed == name).map(|(_, synopsis)| synopsis.as_str());
            assert_eq!(
                Some(entry.synopsis().as_str()),
                listed,
                "src/client/shell.rs: make the `{name}` row match ctl::USAGE"
            );
        }
    }

    #[test]
    fn help_lists_known_commands_and_explains_one() {
        let listing = help_listing();
        for name in ["status", "start", "stop", "restart", "reload", "shutdown", "help", "quit"] {
            assert!(listing.contains(&format!("\n  {name}")), "{name} missing from:\n{listing}");
        }
        assert!(!listing.contains("explode"));
        let status = find_command("status").map(help_command).unwrap_or_default();
        assert!(status.starts_with("usage: status [--json] [TARGET...]\n"), "{status}");
        assert!(status.contains(TARGET_NOTE));
        assert!(find_command("explode").is_none());
    }

    #[test]
    fn completes_commands_then_their_arguments() {
        assert_eq!(complete("sta"), words("start status"));
        assert!(complete("").contains(&"help".to_string()));
        let help_re = complete("help re");
        assert!(help_re.contains(&"reload".to_string()) && help_re.contains(&"restart".to_string()), "{help_re:?}");
        assert!(help_re.iter().all(|name| name.starts_with("re")), "{help_re:?}");
        assert_eq!(complete("start we"), words("web web:0 web:1"));
        assert_eq!(complete("stop web:0 w"), words("web web:0 web:1 worker worker:0"));
        assert_eq!(complete("status a"), words("all"));
        assert_eq!(complete("status --j"), words("--json"));
        assert_eq!(complete("start --"), words("--no-wait"));
        assert_eq!(complete("reload "), Vec::<String>::new());
        assert_eq!(complete("explode "), Vec::<String>::new());
        assert_eq!(completions("stop  we", &instances).0, 6);
    }

    #[test]
    fn synopses_drive_argument_completion() {
        let none = || Vec::new();
        let next = |args: &str, rest: &str| argument_candidates(args, &words(rest), "", &instances);
        assert_eq!(next("SIG TARGET...", "")[..2], ["HUP".to_string(), "INT".to_string()]);
        assert!(next("SIG TARGET...", "HUP").contains(&"web:1".to_string()));
        assert!(next("SIG TARGET...", "HUP web").contains(&"all".to_string()));
        assert_eq!(next("[-f] [-n N] TARGET [stdout|stderr]", "-n"), Vec::<String>::new());
        assert!(next("[-f] [-n N] TARGET [stdout|stderr]", "-f -n 5").contains(&"db".to_string()));
        assert_eq!(next("[-f] [-n N] TARGET [stdout|stderr]", "-n 5 web:0"), words("stdout stderr"));
        assert_eq!(next("[-f] [-n N] TARGET [stdout|stderr]", "web:0 stderr"), Vec::<String>::new());
        assert!(next("TARGET... [--state RUNNING] [--timeout SECS]", "web --state").contains(&"STOPPED".to_string()));
        assert_eq!(argument_candidates("[-f] [-n N] TARGET", &[], "-", &none), words("-f -n"));
    }

    #[test]
    fn history_goes_to_xdg_state_home_else_home() {
        let path = |state: Option<&str>, home: Option<&str>| {
            history_path_from(state.map(OsString::from), home.map(OsString::from))
        };
        assert_eq!(path(Some("/s"), Some("/h")), Some(PathBuf::from("/s/sv-lite/history")));
        assert_eq!(path(Some(""), Some("/h")), Some(PathBuf::from("/h/.sv-lite_history")));
        assert_eq!(path(Some("relative"), Some("/h")), Some(PathBuf::from("/h/.sv-lite_history")));
        assert_eq!(path(None, None), None);
    }

    #[test]
    fn scripts_skip_comments_keep_going_and_report_the_worst_code() {
        let nowhere = Path::new("/nonexistent/sv-lite-test.sock");
        assert_eq!(run_script(nowhere, "# a comment\n\n   \nhelp\nhelp status\n".as_bytes()), 0);
        assert_eq!(run_script(nowhere, "explode\nhelp\n".as_bytes()), EXIT_USAGE);
        assert_eq!(run_script(nowhere, "status\n".as_bytes()), ctl::EXIT_UNREACHABLE);
        assert_eq!(run_script(nowhere, "quit\nexplode\n".as_bytes()), 0);
        assert_eq!(run_script(nowhere, "stop 'web\n".as_bytes()), EXIT_USAGE);
    }
}
