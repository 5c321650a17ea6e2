//! The ledger of live instances on disk (`STATE_DIR/instances.journal`; format and compaction
//! in `crate::ledger`), and what a daemon does with it at start-up: stop the processes a
//! crashed run left behind before anything is started.
//!
//! Writing: the driver records each process it spawns (and each new main pid it accepts from
//! `MAINPID=` or a pid file) and each exit it reaps; [`Journal::flush`], once per turn of the
//! loop, appends the turn's lines with one `write`. Past twice the live set the journal is
//! rewritten: a temporary file, then `rename` over the old one, so a reader finds either the
//! old journal or the new one. Never fsynced: the ledger guards against a crash of the daemon
//! process (SIGKILL, OOM kill, a panic), whose writes the kernel still has, not against a
//! crash of the machine, after which none of the processes it names exist anyway.
//!
//! Start-up ([`reclaim`]): each entry whose pid is alive with the start time recorded (so a
//! pid reused by an unrelated process is left alone) is stopped with its stop sequence: the
//! stop signal to its process group and to the descendants that left the group, SIGKILL
//! after its stop time. These processes are not our children (they were re-parented when the
//! old daemon died), so they are watched through pidfds, or `/proc` every 20 ms where
//! `pidfd_open` is refused. The wait is bounded: the longest stop time plus [`KILL_WAIT`].
//! A missing ledger is a first start; an unreadable or damaged one is logged with its path and
//! the daemon carries on (it cannot know what an earlier run left, so it stops nothing).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::eventlog::EventLog;
use super::{usage, Driver};
use crate::core::{human_duration, InstanceId, Pid};
use crate::ledger::{self, Book, Entry};
use crate::spec::Signal;
use crate::{pidfile, sys};

/// How long a process of an earlier run gets to vanish after SIGKILL (one in `D` state may
/// take a moment) before the daemon gives up on it and starts the programs anyway.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// How often `/proc` is read for a process without a pidfd.
const PROC_POLL: Duration = Duration::from_millis(20);

/// The ledger file and the live set it describes.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    path: PathBuf,
    book: Book,
    /// Open for appending; `None` after a failed write or rewrite: the next change rewrites
    /// the whole file (appending after a partial line would glue two lines together).
    file: Option<File>,
    /// A failure was reported and no write has succeeded since.
    failing: bool,
}

impl Journal {
    /// A fresh ledger in `dir` holding `entries`, written now (a failure is reported; the
    /// next change tries again).
    pub fn start(dir: &Path, entries: Vec<Entry>, event_log: &mut EventLog) -> Journal {
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            path: dir.join(ledger::FILE_NAME),
            book: Book::new(entries),
            file: None,
            failing: false,
        };
        journal.rewrite(event_log);
        journal
    }

    /// Records a live process.
    pub fn record(&mut self, entry: Entry) {
        let name = entry.name.clone();
        if !self.book.add(entry) {
            log::warn!("{name}: not recorded in the ledger of live instances: the name cannot be written there");
        }
    }

    /// Records that `pid` exited (nothing when it was never recorded).
    pub fn exited(&mut self, pid: Pid) {
        self.book.remove(pid);
    }

    /// Writes this turn's changes: one append, or a rewrite when the journal has grown past
    /// twice the live set or the file is not open.
    pub fn flush(&mut self, event_log: &mut EventLog) {
        if !self.book.has_pending() {
            return;
        }
        if self.book.wants_compaction() {
            // Entries whose exit was never reaped by us (a pid-file daemon reaped by its own
            // parent) go now: one /proc read per entry, once per compaction.
            self.book.retain(still_running);
            self.rewrite(event_log);
            return;
        }
        let Some(file) = &mut self.file else {
            self.rewrite(event_log);
            return;
        };
        let bytes = self.book.take_pending();
        match file.write_all(&bytes) {
            Ok(()) => self.failing = false,
            Err(error) => {
                self.file = None;
                self.report(event_log, &format!("cannot append: {error}"));
            }
        }
    }

    /// Replaces the file with the live set: a temporary file renamed over the journal.
    fn rewrite(&mut self, event_log: &mut EventLog) {
        let snapshot = self.book.snapshot();
        let temporary = self.dir.join(format!("{}.tmp", ledger::FILE_NAME));
        let written = fs::create_dir_all(&self.dir)
            .map_err(|error| format!("cannot create {}: {error}", self.dir.display()))
            .and_then(|()| {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&temporary)
                    .map_err(|error| format!("cannot create {}: {error}", temporary.display()))?;
                file.write_all(&snapshot).map_err(|error| format!("cannot write {}: {error}", temporary.display()))?;
                fs::rename(&temporary, &self.path)
                    .map_err(|error| format!("cannot rename {} over it: {error}", temporary.display()))?;
                // The descriptor now names the journal, positioned at its end.
                Ok(file)
            });
        match written {
            Ok(file) => {
                self.file = Some(file);
                self.book.compacted();
                self.failing = false;
            }
            Err(why) => {
                self.file = None;
                let _ = fs::remove_file(&temporary);
                self.report(event_log, &why);
            }
        }
    }

    /// Reports a write failure once, until a write succeeds again.
    fn report(&mut self, event_log: &mut EventLog, why: &str) {
        if !self.failing {
            self.failing = true;
            let message = format!(
                "ledger of live instances {}: {why}; a daemon started after a crash of this one may not find \
                 their processes; retrying at the next change",
                self.path.display()
            );
            event_log.write(log::Level::Warn, &message);
        }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether the process an entry names is still the one recorded.
fn still_running(entry: &Entry) -> bool {
    matches!(pidfile::stat(entry.pid), Some(stat) if stat.start_time == entry.start_time && !matches!(stat.state, 'Z' | 'X'))
}

/// The process group of a live process (field 5 of `/proc/PID/stat`).
fn process_group(pid: Pid) -> Option<Pid> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(") ")?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

impl Driver {
    /// Records a process `id` now runs: one it spawned (`group`: it leads its own process
    /// group) or a main pid it was told of. A process already gone is not recorded: its exit
    /// is reaped, or it never was ours.
    pub(super) fn ledger_record(&mut self, id: InstanceId, name: &str, pid: Pid, group: bool) {
        let Some((signal, stoptime)) = self.supervisor.stop_sequence(id) else { return };
        let Some(stat) = pidfile::stat(pid) else { return };
        self.ledger.record(Entry { name: name.to_string(), pid, start_time: stat.start_time, signal, stoptime, group });
    }

    /// After a `MAINPID=` or a pid file was handed to the core: records the pid if the core
    /// took it as the instance's main process.
    pub(super) fn ledger_main_pid(&mut self, id: InstanceId, pid: Pid) {
        if self.supervisor.instance_with_main_pid(pid) != Some(id) {
            return;
        }
        let Some(name) = self.supervisor.instance_of_pid(pid).map(str::to_string) else { return };
        let group = process_group(pid) == Some(pid);
        self.ledger_record(id, &name, pid, group);
    }
}

/// Start-up, before anything is started: stops what the ledger in `dir` names that is still
/// alive, then starts a fresh ledger. Blocks for at most the longest stop time of what it
/// found plus [`KILL_WAIT`]; the loop has not started yet.
pub fn reclaim(dir: &Path, event_log: &mut EventLog) -> Journal {
    let path = dir.join(ledger::FILE_NAME);
    let entries = read_entries(&path, event_log);
    let survivors = stop_all(entries, event_log);
    Journal::start(dir, survivors, event_log)
}

/// The live entries of the ledger at `path`; none (with a message saying why) when there is no
/// ledger or it cannot be read.
fn read_entries(path: &Path, event_log: &mut EventLog) -> Vec<Entry> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            log::debug!("no ledger of live instances at {}: nothing of an earlier run to stop", path.display());
            return Vec::new();
        }
        Err(error) => {
            let message = format!(
                "ledger of live instances {}: cannot read it: {error}; processes an earlier run may have left \
                 are not stopped",
                path.display()
            );
            event_log.write(log::Level::Warn, &message);
            return Vec::new();
        }
    };
    match ledger::parse(&String::from_utf8_lossy(&bytes)) {
        Ok(parsed) => {
            if parsed.bad_lines > 0 {
                let message = format!(
                    "ledger of live instances {}: skipped {} lines that do not parse",
                    path.display(),
                    parsed.bad_lines
                );
                event_log.write(log::Level::Warn, &message);
            }
            if parsed.torn_tail {
                log::debug!("ledger of live instances {}: skipped a torn last line", path.display());
            }
            parsed.entries
        }
        Err(why) => {
            let message = format!(
                "{} is not a ledger of live instances ({why}); ignoring it, processes an earlier run may have \
                 left are not stopped, and a fresh ledger replaces it",
                path.display()
            );
            event_log.write(log::Level::Warn, &message);
            Vec::new()
        }
    }
}

/// A process of an earlier run being stopped.
struct Orphan {
    entry: Entry,
    /// `None` where the kernel refused a pidfd: then `/proc` is read every [`PROC_POLL`].
    pidfd: Option<OwnedFd>,
    deadline: Instant,
    killed: bool,
}

impl Orphan {
    /// Whether the process is gone, by `/proc` (for one without a pidfd).
    fn gone_by_proc(&self) -> bool {
        !still_running(&self.entry)
    }
}

/// Stops every entry's process that is still the one recorded; returns the entries whose
/// process outlived the wait (kept in the fresh ledger, so a later start tries again).
fn stop_all(entries: Vec<Entry>, event_log: &mut EventLog) -> Vec<Entry> {
    let me = sys::getpid();
    let mut orphans = Vec::new();
    for entry in entries {
        if entry.pid == me {
            continue;
        }
        // The pidfd first, then the start time: a pidfd opened on a reused pid would fail the
        // start-time check, so one that passes names the recorded process for good.
        let pidfd = match sys::pidfd_open(entry.pid) {
            Ok(fd) => Some(fd),
            Err(error) if error.raw_os_error() == Some(libc::ESRCH) => {
                log::debug!("{} (pid {}) of a previous run is gone", entry.name, entry.pid);
                continue;
            }
            Err(error) => {
                log::debug!("pidfd_open({}): {error}; watching /proc instead", entry.pid);
                None
            }
        };
        match pidfile::stat(entry.pid) {
            Some(stat) if stat.start_time == entry.start_time && !matches!(stat.state, 'Z' | 'X') => {}
            Some(stat) if stat.start_time != entry.start_time => {
                log::info!(
                    "pid {} of {} (a previous run) now belongs to another process (pid reused); left alone",
                    entry.pid,
                    entry.name
                );
                continue;
            }
            _ => {
                log::debug!("{} (pid {}) of a previous run is gone", entry.name, entry.pid);
                continue;
            }
        }
        let message = format!(
            "found {} (pid {}) of a previous run still alive; stopping it: {} to its {}, SIGKILL after {}",
            entry.name,
            entry.pid,
            entry.signal,
            if entry.group { "process group" } else { "pid" },
            human_duration(entry.stoptime)
        );
        event_log.write(log::Level::Warn, &message);
        let deadline = Instant::now() + entry.stoptime;
        orphans.push(Orphan { entry, pidfd, deadline, killed: false });
    }
    if orphans.is_empty() {
        return Vec::new();
    }
    let started = Instant::now();
    let found = orphans.len();
    let first: Vec<&Orphan> = orphans.iter().collect();
    signal_all(&first, None, me);
    let mut survivors = Vec::new();
    while !orphans.is_empty() {
        let now = Instant::now();
        // Deadlines: SIGKILL after the stop time, give up after KILL_WAIT more.
        let mut to_kill = Vec::new();
        let mut index = 0;
        while index < orphans.len() {
            let orphan = &mut orphans[index];
            if orphan.deadline > now {
                index += 1;
            } else if !orphan.killed {
                let message = format!(
                    "{} (pid {}) of a previous run still running {} after {}; sending SIGKILL",
                    orphan.entry.name,
                    orphan.entry.pid,
                    human_duration(orphan.entry.stoptime),
                    orphan.entry.signal
                );
                event_log.write(log::Level::Warn, &message);
                orphan.killed = true;
                orphan.deadline = now + KILL_WAIT;
                to_kill.push(index);
                index += 1;
            } else {
                let orphan = orphans.swap_remove(index);
                let message = format!(
                    "{} (pid {}) of a previous run did not exit {} after SIGKILL; starting the programs anyway",
                    orphan.entry.name,
                    orphan.entry.pid,
                    human_duration(KILL_WAIT)
                );
                event_log.write(log::Level::Error, &message);
                survivors.push(orphan.entry);
            }
        }
        if !to_kill.is_empty() {
            let targets: Vec<&Orphan> = to_kill.iter().map(|&index| &orphans[index]).collect();
            signal_all(&targets, Some(Signal::KILL), me);
        }
        // Wait for exits until the next deadline (or the next /proc reading).
        let Some(next) = orphans.iter().map(|orphan| orphan.deadline).min() else { break };
        let mut timeout = next.saturating_duration_since(Instant::now());
        if orphans.iter().any(|orphan| orphan.pidfd.is_none()) {
            timeout = timeout.min(PROC_POLL);
        }
        let watched: Vec<(usize, BorrowedFd<'_>)> = orphans
            .iter()
            .enumerate()
            .filter_map(|(index, orphan)| orphan.pidfd.as_ref().map(|fd| (index, fd.as_fd())))
            .collect();
        let fds: Vec<BorrowedFd<'_>> = watched.iter().map(|(_, fd)| *fd).collect();
        let mut exited: Vec<usize> = if fds.is_empty() {
            std::thread::sleep(timeout);
            Vec::new()
        } else {
            sys::poll_readable(&fds, timeout).into_iter().map(|ready| watched[ready].0).collect()
        };
        exited.extend(
            orphans
                .iter()
                .enumerate()
                .filter(|(_, orphan)| orphan.pidfd.is_none() && orphan.gone_by_proc())
                .map(|(index, _)| index),
        );
        // Highest index first, so swap_remove leaves the lower ones where they are.
        exited.sort_unstable_by(|a, b| b.cmp(a));
        exited.dedup();
        for index in exited {
            let orphan = orphans.swap_remove(index);
            let after = if orphan.killed { Signal::KILL } else { orphan.entry.signal };
            log::info!("{} (pid {}) of a previous run exited after {after}", orphan.entry.name, orphan.entry.pid);
        }
    }
    let message = format!(
        "stopped {} of {found} processes left by a previous run in {}",
        found - survivors.len(),
        human_duration(started.elapsed())
    );
    event_log.write(log::Level::Info, &message);
    survivors
}

/// Sends each orphan its stop signal (or `signal`): to its process group (the pid alone when it
/// leads none) and to its descendants that left the group (one `/proc` walk for all).
fn signal_all(orphans: &[&Orphan], signal: Option<Signal>, me: Pid) {
    for orphan in orphans {
        let entry = &orphan.entry;
        let signal = signal.unwrap_or(entry.signal);
        let to_group = entry.group && matches!(sys::kill(entry.pid, signal, true), Ok(true));
        if !to_group {
            let sent = match &orphan.pidfd {
                Some(pidfd) => sys::pidfd_send_signal(pidfd.as_fd(), signal),
                None => sys::kill(entry.pid, signal, false),
            };
            if let Err(error) = sent {
                log::warn!("{}: cannot send {signal} to pid {}: {error}", entry.name, entry.pid);
            }
        }
    }
    let stops: Vec<(Pid, String)> =
        orphans.iter().map(|orphan| (orphan.entry.pid, orphan.entry.name.clone())).collect();
    for ((_, members), orphan) in usage::trees_members(&stops, me).into_iter().zip(orphans) {
        let signal = signal.unwrap_or(orphan.entry.signal);
        for member in members {
            match sys::kill(member, signal, false) {
                Ok(_) => log::debug!("{}: sent {signal} to pid {member}, outside its process group", orphan.entry.name),
                Err(error) => log::debug!("{}: cannot send {signal} to pid {member}: {error}", orphan.entry.name),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Rotate;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sv-lite-ledger-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn entry(name: &str, pid: Pid, start_time: u64) -> Entry {
        Entry {
            name: name.to_string(),
            pid,
            start_time,
            signal: Signal::TERM,
            stoptime: Duration::from_secs(1),
            group: false,
        }
    }

    #[test]
    fn turns_append_and_a_fresh_journal_reads_back() {
        let dir = temp_dir("append");
        let mut log = EventLog::open(None, Rotate::default()).unwrap();
        let mut journal = Journal::start(&dir, Vec::new(), &mut log);
        assert_eq!(fs::read_to_string(journal.path()).unwrap(), format!("{}\n", ledger::HEADER));
        journal.record(entry("web:0", 100, 7));
        journal.record(entry("web:1", 101, 8));
        journal.flush(&mut log);
        journal.exited(100);
        journal.flush(&mut log);
        let text = fs::read_to_string(journal.path()).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert_eq!(ledger::parse(&text).unwrap().entries, vec![entry("web:1", 101, 8)]);
        assert!(!dir.join(format!("{}.tmp", ledger::FILE_NAME)).exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn garbage_and_a_missing_ledger_stop_nothing() {
        let dir = temp_dir("garbage");
        let mut log = EventLog::open(None, Rotate::default()).unwrap();
        assert!(read_entries(&dir.join(ledger::FILE_NAME), &mut log).is_empty());
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(ledger::FILE_NAME);
        fs::write(&path, b"\xff\xfe not a ledger\n+ web:0 100 7 TERM 1000 pid\n").unwrap();
        assert!(read_entries(&path, &mut log).is_empty());
        // A directory where the file should be cannot be read, nor replaced.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(read_entries(&path, &mut log).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_a_pid_with_the_recorded_start_time_is_stopped() {
        let mut log = EventLog::open(None, Rotate::default()).unwrap();
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as Pid;
        let start_time = pidfile::stat(pid).unwrap().start_time;
        // Another start time: the pid was reused by an unrelated process, which is left alone.
        assert!(stop_all(vec![entry("web:0", pid, start_time + 1)], &mut log).is_empty());
        assert!(child.try_wait().unwrap().is_none(), "a stranger was signalled");
        // The recorded start time: stopped with its stop signal, and waited for (a zombie of
        // ours counts as exited, as it does for the pidfd).
        assert!(stop_all(vec![entry("web:0", pid, start_time)], &mut log).is_empty());
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }
}
