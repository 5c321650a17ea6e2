//! Persistent flags (Proc::tored's touch files): `NAME.stopped` and `NAME.paused` in the state
//! directory, one per instance (`web:0.stopped`).
//!
//! Setting a flag writes a temporary file, fsyncs it, renames it into place and fsyncs the
//! directory; clearing unlinks it and fsyncs the directory. A crash at any point leaves either
//! the old state or the new one.

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

/// Sets or clears one flag, atomically and durably.
pub fn set(dir: &Path, instance: &str, flag: Flag, on: bool) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let path = dir.join(format!("{instance}.{}", flag.as_str()));
    if on {
        let temporary = dir.join(format!(".{instance}.{}.tmp", flag.as_str()));
        let mut file = File::create(&temporary)?;
        file.write_all(format!("{instance} {}\n", flag.as_str()).as_bytes())?;
        file.sync_all()?;
        fs::rename(&temporary, &path)?;
    } else {
        match fs::remove_file(&path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
    }
    File::open(dir)?.sync_all()
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
}
