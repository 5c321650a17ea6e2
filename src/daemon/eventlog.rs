//! The event log: what the daemon reports (the core's `Action::Log`, signals, reloads, flag and
//! snooze-file failures) goes through `log` always, and at info and above is appended, with a
//! UTC timestamp, to the `logfile` of the config when one is set. The file rotates itself by
//! size (`logfile_maxbytes`, `logfile_backups`; one event is one line, so rotation is
//! line-aligned), and SIGUSR1 reopens it, for an external logrotate.
//!
//! A write that fails (a full disk, an I/O error) never stops supervision: the event still goes
//! through `log` (stderr), the failure is reported on stderr once, events are dropped and
//! counted until a write succeeds, and then one line says how many were lost, on stderr and in
//! the file. The part of a line a failed write left is cut first, so the file stays one whole
//! event per line.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::rotate::RotatingFile;
use crate::schedule::calendar::civil_from_days;
use crate::spec::Rotate;

/// The `logfile`, when the config names one.
#[derive(Debug)]
pub struct EventLog {
    file: Option<RotatingFile>,
    /// Set when a write failed and none has succeeded since (reported once): the events
    /// dropped meanwhile, the failed one included.
    dropped: Option<u64>,
}

impl EventLog {
    /// Opens `path` for appending (creating it), rotated as `rotate` says; `None` logs through
    /// `log` alone.
    pub fn open(path: Option<PathBuf>, rotate: Rotate) -> Result<EventLog, String> {
        let file = match &path {
            Some(path) => Some(
                RotatingFile::open(path, rotate)
                    .map_err(|error| format!("event log {}: cannot open: {error}", path.display()))?,
            ),
            None => None,
        };
        Ok(EventLog { file, dropped: None })
    }

    /// Writes one event: through `log` always, and to the file at info and above.
    pub fn write(&mut self, level: log::Level, message: &str) {
        log::log!(level, "{message}");
        if level <= log::Level::Info {
            if let Some(file) = &mut self.file {
                let stamp = utc_timestamp(SystemTime::now());
                if let Some(dropped) = self.dropped {
                    // The note of the gap goes first, after the part of a line a failed write left
                    // is cut (or, if even that fails, ended).
                    let torn = if file.drop_torn_line().is_err() { "\n" } else { "" };
                    let note = format!(
                        "event log {}: writing again; {dropped} event(s) were lost while writes failed",
                        file.path().display()
                    );
                    let warn = log::Level::Warn;
                    if file.write(format!("{torn}{stamp} {warn:<5} {note}\n").as_bytes()).is_err() {
                        self.dropped = Some(dropped + 1);
                        return;
                    }
                    self.dropped = None;
                    log::warn!("{note}");
                }
                if let Err(error) = file.write(format!("{stamp} {level:<5} {message}\n").as_bytes()) {
                    self.dropped = Some(1);
                    log::warn!(
                        "event log {}: write failed: {error}; dropping events until a write succeeds (reported \
                         once, and again when writing resumes); supervision goes on",
                        file.path().display()
                    );
                }
            }
        }
    }

    /// Opens the file again (after it was rotated); on failure the old one is kept.
    pub fn reopen(&mut self) {
        if let Some(file) = &mut self.file {
            if let Err(error) = file.reopen() {
                log::warn!("event log {}: cannot open: {error}; keeping the old event log file", file.path().display());
            }
        }
    }
}

/// `2026-11-23T14:31:00.123Z`.
#[must_use]
pub fn utc_timestamp(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (days, day_seconds) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        day_seconds / 3600,
        day_seconds / 60 % 60,
        day_seconds % 60,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_timestamps() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH + Duration::from_millis(1_795_444_260_123)), "2026-11-23T14:31:00.123Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000Z");
    }

    // See: issue 13, "the event log rotates the same way".
    #[test]
    fn the_event_log_rotates_by_size_with_whole_lines() {
        let scratch = crate::daemon::rotate::tests::Scratch::new("eventlog");
        let path = scratch.join("sv-lite.log");
        let mut log = EventLog::open(Some(path.clone()), Rotate { maxbytes: 4096, backups: 3 }).unwrap();
        for n in 1..=2000 {
            log.write(log::Level::Info, &format!("event {n:06} web:0 RUNNING -> BACKOFF"));
            // Below info: through `log` only, never in the file.
            log.write(log::Level::Debug, "debug noise");
        }
        drop(log);
        let mut names: Vec<String> = std::fs::read_dir(&scratch.0)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["sv-lite.log", "sv-lite.log.1", "sv-lite.log.2", "sv-lite.log.3"]);
        let mut expected = None;
        for name in ["sv-lite.log.3", "sv-lite.log.2", "sv-lite.log.1", "sv-lite.log"] {
            let text = std::fs::read_to_string(scratch.join(name)).unwrap();
            assert!(text.len() <= 4096 && text.ends_with('\n'), "{name}: {} bytes", text.len());
            for line in text.lines() {
                // `2026-11-23T14:31:00.123Z INFO  event 000123 web:0 RUNNING -> BACKOFF`
                let (_, event) = line.split_once(" INFO  event ").unwrap_or_else(|| panic!("{name}: torn {line:?}"));
                assert!(event.ends_with(" web:0 RUNNING -> BACKOFF"), "{name}: torn {line:?}");
                let n: u32 = event[..6].parse().unwrap();
                assert_eq!(n, expected.unwrap_or(n), "{name}: an event missing or duplicated");
                expected = Some(n + 1);
            }
        }
        assert_eq!(expected, Some(2001));
    }

    // See: issue 15, "the event log's disk fills". /dev/full fails every write with ENOSPC
    // (the recovery is tests/e2e_faults.rs, on a real tmpfs).
    #[test]
    fn failed_writes_are_counted_and_never_stop_the_caller() {
        let mut log = EventLog::open(Some(PathBuf::from("/dev/full")), Rotate { maxbytes: 0, backups: 0 }).unwrap();
        for n in 0..100 {
            log.write(log::Level::Info, &format!("event {n}"));
        }
        log.write(log::Level::Debug, "below info: not for the file, not counted");
        assert_eq!(log.dropped, Some(100));
    }
}
