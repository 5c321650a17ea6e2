//! The event log: what the daemon reports (the core's `Action::Log`, signals, reloads, flag and
//! snooze-file failures) goes through `log` always, and at info and above is appended, with a
//! UTC timestamp, to the `logfile` of the config when one is set. SIGUSR1 reopens the file, for
//! log rotation.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::schedule::calendar::civil_from_days;

/// The `logfile`, when the config names one.
#[derive(Debug)]
pub struct EventLog {
    path: Option<PathBuf>,
    file: Option<File>,
}

impl EventLog {
    /// Opens `path` for appending (creating it); `None` logs through `log` alone.
    pub fn open(path: Option<PathBuf>) -> Result<EventLog, String> {
        let file = match &path {
            Some(path) => Some(open_file(path)?),
            None => None,
        };
        Ok(EventLog { path, file })
    }

    /// Writes one event: through `log` always, and to the file at info and above.
    pub fn write(&mut self, level: log::Level, message: &str) {
        log::log!(level, "{message}");
        if level <= log::Level::Info {
            if let Some(file) = &mut self.file {
                let line = format!("{} {:<5} {message}\n", utc_timestamp(SystemTime::now()), level);
                if let Err(error) = file.write_all(line.as_bytes()) {
                    log::warn!("event log: write failed: {error}");
                }
            }
        }
    }

    /// Opens the file again (after it was rotated); on failure the old one is kept.
    pub fn reopen(&mut self) {
        if let Some(path) = &self.path {
            match open_file(path) {
                Ok(file) => self.file = Some(file),
                Err(error) => log::warn!("{error}; keeping the old event log file"),
            }
        }
    }
}

fn open_file(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| format!("event log {}: cannot open: {error}", path.display()))
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
}
