//! Persistent flags (Proc::tored's touch files): `NAME.stopped` and `NAME.paused` in the state
//! directory, one per instance (`web:0.stopped`).
//!
//! A flag is the existence of its file; the content (`web:0 stopped`) is only for people.
//! The flags changed in one turn of the loop are written as one batch ([`apply`]): each file is
//! created (or unlinked), then the directory is fsynced once, so `ctl stop all` with 1000
//! instances costs one fsync, not 2000. Creating and unlinking a name are atomic, so a crash at
//! any point leaves each flag either in its old state or in its new one.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::core::Flag;

/// The default state directory: beside the socket, named after it (`/run/sv-lite.sock.state`).
#[must_use]
pub fn default_for(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_os_string();
    name.push(".state");
    PathBuf::from(name)
}

/// Reads every flag in `dir` (a missing directory has none).
pub fn load(dir: &Path) -> io::Result<HashSet<(String, Flag)>> {
    let mut flags = HashSet::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(flags),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        for flag in [Flag::Stopped, Flag::Paused] {
            if let Some(instance) = name.strip_suffix(&format!(".{}", flag.as_str())) {
                flags.insert((instance.to_string(), flag));
            }
        }
    }
    Ok(flags)
}

/// One flag to set (`on`) or clear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagChange {
    pub instance: String,
    pub flag: Flag,
    pub on: bool,
}

/// Sets or clears one flag, atomically and durably.
pub fn set(dir: &Path, instance: &str, flag: Flag, on: bool) -> io::Result<()> {
    let failures = apply(dir, &[FlagChange { instance: instance.to_string(), flag, on }]);
    match failures.into_iter().next() {
        Some((_, error)) => Err(error),
        None => Ok(()),
    }
}

/// Applies a batch of flag changes, then syncs the directory once. Returns the changes that
/// failed, each with its error (a failed directory sync fails them all).
pub fn apply(dir: &Path, changes: &[FlagChange]) -> Vec<(FlagChange, io::Error)> {
    if changes.is_empty() {
        return Vec::new();
    }
    if let Err(error) = fs::create_dir_all(dir) {
        return changes
            .iter()
            .map(|change| (change.clone(), io::Error::new(error.kind(), error.to_string())))
            .collect();
    }
    let mut failed = Vec::new();
    for change in changes {
        let path = dir.join(format!("{}.{}", change.instance, change.flag.as_str()));
        let result = if change.on {
            File::create(&path).and_then(|mut file| {
                file.write_all(format!("{} {}\n", change.instance, change.flag.as_str()).as_bytes())
            })
        } else {
            match fs::remove_file(&path) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
                _ => Ok(()),
            }
        };
        if let Err(error) = result {
            failed.push((change.clone(), error));
        }
    }
    if let Err(error) = File::open(dir).and_then(|dir| dir.sync_all()) {
        return changes
            .iter()
            .map(|change| (change.clone(), io::Error::new(error.kind(), error.to_string())))
            .collect();
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_and_leave_no_temporary_files() {
        let dir = std::env::temp_dir().join(format!("sv-lite-state-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert!(load(&dir).unwrap().is_empty());
        set(&dir, "web:0", Flag::Stopped, true).unwrap();
        set(&dir, "web:1", Flag::Paused, true).unwrap();
        set(&dir, "web:1", Flag::Paused, true).unwrap();
        let flags = load(&dir).unwrap();
        assert!(flags.contains(&("web:0".to_string(), Flag::Stopped)));
        assert!(flags.contains(&("web:1".to_string(), Flag::Paused)));
        set(&dir, "web:0", Flag::Stopped, false).unwrap();
        set(&dir, "web:0", Flag::Stopped, false).unwrap();
        assert_eq!(load(&dir).unwrap().len(), 1);
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["web:1.paused"]);
        assert_eq!(default_for(Path::new("/run/sv-lite.sock")), Path::new("/run/sv-lite.sock.state"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_batch_sets_and_clears_many_flags_and_reports_what_failed() {
        let dir = std::env::temp_dir().join(format!("sv-lite-state-batch-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let on: Vec<FlagChange> =
            (0..1000).map(|n| FlagChange { instance: format!("web:{n}"), flag: Flag::Stopped, on: true }).collect();
        assert!(apply(&dir, &on).is_empty());
        assert_eq!(load(&dir).unwrap().len(), 1000);
        let mut off: Vec<FlagChange> = on.iter().map(|change| FlagChange { on: false, ..change.clone() }).collect();
        // A name that cannot be a file fails alone; the rest of the batch still applies.
        off.push(FlagChange { instance: "bad/name".to_string(), flag: Flag::Paused, on: true });
        let failed = apply(&dir, &off);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0.instance, "bad/name");
        assert!(load(&dir).unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
