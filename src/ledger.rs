//! The ledger of live instances: which processes sv-lite started and how to stop them, kept in
//! the state directory so that a daemon started after a crash (SIGKILL, OOM kill, a panic) can
//! stop the orphans of the run before it rather than start every program a second time beside
//! them (`daemon/ledger.rs` does that, and all the I/O).
//!
//! The file is a journal (`instances.journal`): a header line, then one line per change,
//!
//! ```text
//! sv-lite instances 1
//! + web:0 1234 987654 TERM 10000 group
//! - web:0 1234
//! ```
//!
//! `+ NAME PID START SIGNAL STOPTIME_MS group|pid` records a live process (START is field 22
//! of `/proc/PID/stat`, which tells the process from a later one given the same pid), and
//! `- NAME PID` its exit. Each turn of the daemon's loop appends that turn's lines with one
//! write ([`Book::take_pending`]), so a spawn costs a line, not a rewrite of every live entry.
//! When the journal holds more than twice the live set (plus [`COMPACT_SLACK`] lines), the
//! driver writes the live entries to a fresh file and renames it over the journal
//! ([`Book::snapshot`]).
//!
//! Reading replays the lines in order. It tolerates what a crash can leave: a last line without
//! its newline (a torn write) is ignored, and so is any line that does not parse (counted, so
//! it can be reported).
//!
//! Pure: no file, no clock, no `/proc`; the driver reads and writes the bytes.

use std::collections::HashMap;
use std::time::Duration;

use crate::core::Pid;
use crate::spec::Signal;

/// The first line of every ledger file; a file that does not start with it is not read.
pub const HEADER: &str = "sv-lite instances 1";

/// The file's name in the state directory.
pub const FILE_NAME: &str = "instances.journal";

/// Journal lines allowed beyond twice the live set before a compaction, so that a small set
/// (or none) is not rewritten at every turn.
pub const COMPACT_SLACK: usize = 64;

/// One live process of an instance, and how to stop it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `web:0`.
    pub name: String,
    pub pid: Pid,
    /// Clock ticks after boot, from `/proc/PID/stat` when it was recorded.
    pub start_time: u64,
    pub signal: Signal,
    /// How long to wait after `signal` before SIGKILL.
    pub stoptime: Duration,
    /// Signal the process group the pid leads (else the pid alone).
    pub group: bool,
}

/// What a ledger file held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The entries still live at the end of the journal, in the order they were recorded.
    pub entries: Vec<Entry>,
    /// Complete lines that did not parse (skipped).
    pub bad_lines: usize,
    /// The last line had no newline: a write torn by the crash (skipped).
    pub torn_tail: bool,
}

/// Reads a ledger file's text. An error means it is not a ledger at all (wrong or missing
/// header); damage after the header is skipped and counted.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut lines = text.split_inclusive('\n');
    match lines.next() {
        Some(first) if first == format!("{HEADER}\n") => {}
        Some(first) => {
            let shown: String = first.trim_end().chars().take(40).collect();
            return Err(format!("it does not start with {HEADER:?} but with {shown:?}"));
        }
        None => return Err("it is empty".to_string()),
    }
    let mut parsed = Parsed::default();
    // Replayed in order: a pid may appear again after its exit (pid reuse), under any name.
    // In the order of the file, with each pid's place found by a map: one map operation per
    // line, not a scan of the live set (20,000 lines at 10,000 instances).
    let mut order: Vec<Option<Entry>> = Vec::new();
    let mut live: HashMap<Pid, usize> = HashMap::new();
    for line in lines {
        let Some(line) = line.strip_suffix('\n') else {
            parsed.torn_tail = true;
            break;
        };
        match parse_line(line) {
            Some(Change::Add(entry)) => {
                if let Some(old) = live.insert(entry.pid, order.len()) {
                    order[old] = None;
                }
                order.push(Some(entry));
            }
            Some(Change::Remove { pid }) => {
                if let Some(old) = live.remove(&pid) {
                    order[old] = None;
                }
            }
            None => parsed.bad_lines += 1,
        }
    }
    parsed.entries = order.into_iter().flatten().collect();
    Ok(parsed)
}

enum Change {
    Add(Entry),
    Remove { pid: Pid },
}

fn parse_line(line: &str) -> Option<Change> {
    let fields: Vec<&str> = line.split(' ').collect();
    match fields[..] {
        ["+", name, pid, start, signal, stoptime_ms, group] => Some(Change::Add(Entry {
            name: valid_name(name)?.to_string(),
            pid: valid_pid(pid)?,
            start_time: start.parse().ok()?,
            signal: Signal::parse(signal).ok()?,
            stoptime: Duration::from_millis(stoptime_ms.parse().ok()?),
            group: match group {
                "group" => true,
                "pid" => false,
                _ => return None,
            },
        })),
        ["-", name, pid] => {
            valid_name(name)?;
            Some(Change::Remove { pid: valid_pid(pid)? })
        }
        _ => None,
    }
}

fn valid_pid(text: &str) -> Option<Pid> {
    text.parse::<Pid>().ok().filter(|&pid| pid > 1)
}

/// Instance names are program names (letters, digits, `_`, `.`, `-`) and `:N`; anything that
/// would break the line format is refused.
fn valid_name(name: &str) -> Option<&str> {
    let fits = !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic());
    fits.then_some(name)
}

fn add_line(entry: &Entry, out: &mut Vec<u8>) {
    let group = if entry.group { "group" } else { "pid" };
    out.extend_from_slice(
        format!(
            "+ {} {} {} {} {} {group}\n",
            entry.name,
            entry.pid,
            entry.start_time,
            entry.signal.name(),
            entry.stoptime.as_millis()
        )
        .as_bytes(),
    );
}

/// The live set as the daemon keeps it, and the journal lines not written yet.
#[derive(Debug, Default)]
pub struct Book {
    live: HashMap<Pid, Entry>,
    /// Lines in the journal file, counting the pending ones.
    journal_lines: usize,
    /// This turn's lines, appended with one write.
    pending: Vec<u8>,
}

impl Book {
    /// A book for a fresh ledger holding `entries` (written with [`Book::snapshot`]).
    #[must_use]
    pub fn new(entries: Vec<Entry>) -> Book {
        let live: HashMap<Pid, Entry> = entries.into_iter().map(|entry| (entry.pid, entry)).collect();
        Book { journal_lines: live.len(), live, pending: Vec::new() }
    }

    /// Records a live process. A name that cannot be written is refused (false).
    pub fn add(&mut self, entry: Entry) -> bool {
        if valid_name(&entry.name).is_none() || entry.pid <= 1 {
            return false;
        }
        if self.live.get(&entry.pid) == Some(&entry) {
            return true;
        }
        add_line(&entry, &mut self.pending);
        self.journal_lines += 1;
        self.live.insert(entry.pid, entry);
        true
    }

    /// Records that `pid` exited; false when it was not recorded (a health check, a hook, an
    /// adopted orphan: nothing to write).
    pub fn remove(&mut self, pid: Pid) -> bool {
        let Some(entry) = self.live.remove(&pid) else { return false };
        self.pending.extend_from_slice(format!("- {} {pid}\n", entry.name).as_bytes());
        self.journal_lines += 1;
        true
    }

    /// Whether lines wait to be written.
    #[must_use]
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The lines to append now (empty when nothing changed).
    pub fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// Whether the journal has grown past twice the live set (plus [`COMPACT_SLACK`]).
    #[must_use]
    pub fn wants_compaction(&self) -> bool {
        self.journal_lines > 2 * self.live.len() + COMPACT_SLACK
    }

    /// Drops the entries `keep` rejects (processes found gone meanwhile, without an exit we
    /// reaped: a pid-file daemon reaped by its own parent).
    pub fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.live.retain(|_, entry| keep(entry));
    }

    /// A whole file holding the live set (sorted by name, then pid, for people); the pending
    /// lines are part of it. Call [`Book::compacted`] once it is in place.
    #[must_use]
    pub fn snapshot(&self) -> Vec<u8> {
        let mut entries: Vec<&Entry> = self.live.values().collect();
        entries.sort_by(|a, b| (&a.name, a.pid).cmp(&(&b.name, b.pid)));
        let mut out = format!("{HEADER}\n").into_bytes();
        for entry in entries {
            add_line(entry, &mut out);
        }
        out
    }

    /// The snapshot replaced the journal: nothing is pending, and the file holds the live set.
    pub fn compacted(&mut self) {
        self.pending.clear();
        self.journal_lines = self.live.len();
    }

    /// Live entries (any order).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.live.values()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.live.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, pid: Pid) -> Entry {
        Entry {
            name: name.to_string(),
            pid,
            start_time: 1000 + pid as u64,
            signal: Signal::TERM,
            stoptime: Duration::from_millis(2500),
            group: true,
        }
    }

    /// The file a book's journal would hold: the snapshot it started from plus what it appended.
    fn file_of(start: &[u8], appended: &[Vec<u8>]) -> String {
        let mut bytes = start.to_vec();
        for chunk in appended {
            bytes.extend_from_slice(chunk);
        }
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn appended_turns_replay_to_the_live_set() {
        let mut book = Book::new(Vec::new());
        let start = book.snapshot();
        assert!(book.add(entry("web:0", 100)));
        assert!(book.add(entry("web:1", 101)));
        let turn1 = book.take_pending();
        assert_eq!(
            String::from_utf8_lossy(&turn1),
            "+ web:0 100 1100 TERM 2500 group\n+ web:1 101 1101 TERM 2500 group\n"
        );
        assert!(book.remove(100));
        assert!(!book.remove(100), "a pid is removed once");
        assert!(!book.remove(555), "an exit of a pid never recorded writes nothing");
        let mut db = entry("db:0", 102);
        db.signal = Signal::parse("INT").unwrap();
        db.group = false;
        assert!(book.add(db.clone()));
        let turn2 = book.take_pending();
        assert!(book.take_pending().is_empty());
        let parsed = parse(&file_of(&start, &[turn1, turn2])).unwrap();
        assert_eq!(parsed, Parsed { entries: vec![entry("web:1", 101), db], bad_lines: 0, torn_tail: false });
    }

    #[test]
    fn a_reused_pid_replaces_the_entry_it_had() {
        let mut book = Book::new(Vec::new());
        let start = book.snapshot();
        book.add(entry("web:0", 100));
        book.remove(100);
        let mut later = entry("api:0", 100);
        later.start_time = 5000;
        book.add(later.clone());
        let parsed = parse(&file_of(&start, &[book.take_pending()])).unwrap();
        assert_eq!(parsed.entries, vec![later]);
    }

    #[test]
    fn a_torn_last_line_and_garbage_lines_are_skipped() {
        let text = format!(
            "{HEADER}\n+ web:0 100 1100 TERM 2500 group\nnonsense\n+ web:1 1 5 TERM 10 group\n+ web:2 102 1102 TE"
        );
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed.entries, vec![entry("web:0", 100)]);
        // "nonsense" and pid 1 (never ours to stop) are bad; the torn line is not counted.
        assert_eq!(parsed.bad_lines, 2);
        assert!(parsed.torn_tail);
        for bad in [
            "+ web:0 100 1100 TERM 2500 both",
            "+ web:0 100 x TERM 2500 group",
            "+ web:0 100 1100 NOSIG 2500 group",
            "+ web:0 -5 1100 TERM 2500 group",
            "+ web:0 100 1100 TERM 2500 group extra",
            "- web:0",
            "",
        ] {
            let parsed = parse(&format!("{HEADER}\n{bad}\n")).unwrap();
            assert_eq!((parsed.entries.len(), parsed.bad_lines), (0, 1), "{bad:?}");
        }
    }

    #[test]
    fn a_file_without_the_header_is_not_a_ledger() {
        assert!(parse("").unwrap_err().contains("empty"));
        let error = parse("+ web:0 100 1100 TERM 2500 group\n").unwrap_err();
        assert!(error.contains("does not start with"), "{error}");
        assert!(parse(&format!("{HEADER} but longer\n")).is_err());
        assert_eq!(parse(&format!("{HEADER}\n")).unwrap(), Parsed::default());
    }

    #[test]
    fn names_that_would_break_the_format_are_refused() {
        let mut book = Book::new(Vec::new());
        assert!(!book.add(entry("two words", 100)));
        assert!(!book.add(entry("new\nline", 100)));
        assert!(!book.add(entry("", 100)));
        assert!(!book.add(entry("init", 1)));
        assert!(book.is_empty());
        assert!(book.take_pending().is_empty());
    }

    #[test]
    fn the_journal_is_compacted_past_twice_the_live_set() {
        let mut book = Book::new((0..10).map(|n| entry(&format!("web:{n}"), 100 + n)).collect());
        let mut file = book.snapshot();
        let mut pid = 1000;
        let mut turns = 0;
        // Every instance restarts, over and over: two lines per restart, the live set stays 10.
        while !book.wants_compaction() {
            let victim = *book.live.keys().min().unwrap();
            let name = book.live[&victim].name.clone();
            book.remove(victim);
            book.add(entry(&name, pid));
            pid += 1;
            file.extend(book.take_pending());
            turns += 1;
        }
        assert_eq!(book.len(), 10);
        assert_eq!(turns, (2 * 10 + COMPACT_SLACK - 10) / 2 + 1, "compaction waits for the slack");
        let before = parse(std::str::from_utf8(&file).unwrap()).unwrap();
        let snapshot = book.snapshot();
        book.compacted();
        assert!(!book.wants_compaction());
        let after = parse(std::str::from_utf8(&snapshot).unwrap()).unwrap();
        assert_eq!(after.entries.len(), 10);
        let sorted = |mut entries: Vec<Entry>| {
            entries.sort_by_key(|entry| entry.pid);
            entries
        };
        assert_eq!(sorted(before.entries), sorted(after.entries), "the snapshot replays to the same set");
        assert_eq!(snapshot.iter().filter(|&&byte| byte == b'\n').count(), 11);
    }

    #[test]
    fn retain_drops_entries_found_gone() {
        let mut book = Book::new(vec![entry("web:0", 100), entry("web:1", 101)]);
        book.retain(|entry| entry.pid != 100);
        let parsed = parse(std::str::from_utf8(&book.snapshot()).unwrap()).unwrap();
        assert_eq!(parsed.entries, vec![entry("web:1", 101)]);
    }
}
