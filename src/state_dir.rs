//! Persistent flags (Proc::tored's touch files): `NAME.stopped` and `NAME.paused` in the state
//! directory, one per instance (`web:0.stopped`).
//!
//! A flag is the existence of its file; the content (`web:0 stopped`) is only for people.
//! The flags changed in one turn of the loop are written as one batch ([`apply`]): each file is
//! created (or unlinked), then the directory is fsynced once, so `ctl stop all` with 1000
//! instances costs one fsync, not 2000. Creating and unlinking a name are atomic, so a crash at
//! any point leaves each flag either in its old state or in its new one.
//!
//! A flag that cannot be written (a read-only or full state directory) does not undo the request:
//! `ctl stop` still stops the instance, and it stays down until `ctl start`, but only for the
//! life of this daemon. The failure goes to the event log, and to the client of the request
//! ([`Unwritten`]), which exits 1. Clearing a flag that is not set needs no write, so `ctl start`
//! on a read-only directory works.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::core::{ConnId, Flag, Reply, TargetResult};

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
    // Clearing a flag that is not set needs no write (and a read-only directory would refuse
    // even to unlink a name it does not have).
    let writes: Vec<&FlagChange> = changes
        .iter()
        .filter(|change| {
            change.on
                || !matches!(
                    flag_path(dir, change).symlink_metadata().map_err(|error| error.kind()),
                    Err(io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
                )
        })
        .collect();
    if writes.is_empty() {
        return Vec::new();
    }
    let all_failed = |error: &io::Error| -> Vec<(FlagChange, io::Error)> {
        writes.iter().map(|&change| (change.clone(), io::Error::new(error.kind(), error.to_string()))).collect()
    };
    if writes.iter().any(|change| change.on) {
        if let Err(error) = fs::create_dir_all(dir) {
            return all_failed(&error);
        }
    }
    let mut failed = Vec::new();
    for &change in &writes {
        let path = flag_path(dir, change);
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
        return all_failed(&error);
    }
    failed
}

/// `DIR/web:0.stopped`.
fn flag_path(dir: &Path, change: &FlagChange) -> PathBuf {
    dir.join(format!("{}.{}", change.instance, change.flag.as_str()))
}

/// Flag writes that failed, kept for the answer to the request that asked for them, so that its
/// client hears of it (`ctl stop` exits 1), not only the event log.
///
/// The driver names the connection whose request it is handing to the core
/// ([`Unwritten::begin`]); flags are written in the same turn, so a failure then is that
/// request's. The answer may come later (`ctl stop` waits until the instance is down): the
/// failures wait for it, or for the connection to close.
#[derive(Debug, Default)]
pub struct Unwritten {
    requester: Option<ConnId>,
    failures: HashMap<ConnId, Vec<(String, String)>>,
}

impl Unwritten {
    /// Flags written from now on are for `conn`'s request (`None`: for no request).
    pub fn begin(&mut self, conn: Option<ConnId>) {
        self.requester = conn;
    }

    /// A change failed; `why` says what and where. Kept if a request asked for it.
    pub fn record(&mut self, change: &FlagChange, why: String) {
        if let Some(conn) = self.requester {
            self.failures.entry(conn).or_default().push((change.instance.clone(), why));
        }
    }

    /// Marks the answer to `conn` failed for each flag its request could not write.
    pub fn amend(&mut self, conn: ConnId, reply: &mut Reply) {
        let Some(failures) = self.failures.remove(&conn) else { return };
        let Reply::Results(results) = reply else {
            let why: Vec<String> = failures.into_iter().map(|(instance, why)| format!("{instance}: {why}")).collect();
            *reply = match reply {
                Reply::Error(error) => Reply::Error(format!("{error}; {}", why.join("; "))),
                _ => Reply::Error(why.join("; ")),
            };
            return;
        };
        for (instance, why) in failures {
            match results.iter_mut().find(|result| result.name == instance) {
                Some(result) => {
                    result.ok = false;
                    result.message = format!("{}, but {why}", result.message);
                }
                None => results.push(TargetResult { name: instance, ok: false, message: why }),
            }
        }
    }

    /// The connection closed: nobody is left to tell.
    pub fn forget(&mut self, conn: ConnId) {
        self.failures.remove(&conn);
    }
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

    // See: issue 15, "state_dir is read-only: flags fail loudly".
    #[test]
    fn a_failed_flag_fails_the_answer_of_the_request_that_asked_for_it() {
        let change = FlagChange { instance: "web:0".to_string(), flag: Flag::Stopped, on: true };
        let mut unwritten = Unwritten::default();
        // Outside a request (a reload, a timer): logged by the driver, nobody to answer.
        unwritten.record(&change, "not saved".to_string());
        unwritten.begin(Some(7));
        unwritten.record(&change, "the stopped flag was not saved in /s: Read-only file system".to_string());
        unwritten.begin(None);
        let mut other =
            Reply::Results(vec![TargetResult { name: "web:0".into(), ok: true, message: "STOPPED".into() }]);
        unwritten.amend(8, &mut other);
        assert!(other.is_ok(), "another connection's answer is untouched");
        let mut reply = Reply::Results(vec![
            TargetResult { name: "web:0".into(), ok: true, message: "STOPPED".into() },
            TargetResult { name: "web:1".into(), ok: true, message: "STOPPED".into() },
        ]);
        unwritten.amend(7, &mut reply);
        let Reply::Results(results) = &reply else { panic!("{reply:?}") };
        assert!(!results[0].ok && results[1].ok);
        assert_eq!(results[0].message, "STOPPED, but the stopped flag was not saved in /s: Read-only file system");
        // Reported once: a later answer on the same connection is its own.
        let mut later = Reply::Done("ok".into());
        unwritten.amend(7, &mut later);
        assert!(later.is_ok());
    }

    #[test]
    fn clearing_a_flag_that_is_not_set_writes_nothing() {
        let dir = std::env::temp_dir().join(format!("sv-lite-state-clear-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // A file where the directory should be: any write under it fails (ENOTDIR), as on a
        // read-only directory, yet there is no flag to clear.
        let not_a_dir = dir.join("file");
        fs::write(&not_a_dir, "").unwrap();
        set(&not_a_dir, "web:0", Flag::Stopped, false).unwrap_or_else(|error| panic!("clearing: {error}"));
        assert!(set(&not_a_dir, "web:0", Flag::Stopped, true).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
