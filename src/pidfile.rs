//! Reading a pid file and deciding whether the process it names is ours and alive.
//!
//! Guards against pid reuse: a pid counts only while its start time (field 22 of
//! `/proc/PID/stat`) matches what was seen when it was first trusted, and a pid seen for the
//! first time counts only if it descends from sv-lite (as PID 1 or child subreaper, every
//! process our programs start stays in our subtree).

use std::fs;
use std::path::Path;

use crate::core::{Pid, PidObservation};

/// The facts `/proc/PID/stat` gives us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub ppid: Pid,
    /// Clock ticks after boot.
    pub start_time: u64,
}

/// Parses `/proc/PID/stat` text. The command name may hold spaces and parentheses, so fields
/// are counted after the last `)`.
#[must_use]
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let (_, rest) = text.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); ppid is field 4, starttime field 22.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// `/proc/PID/stat` of a live process.
#[must_use]
pub fn stat(pid: Pid) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The first of `pid` and its ancestors (up to 64 levels) for which `known` holds: how a
/// message from a process is attributed to the instance it belongs to.
pub fn nearest_known(pid: Pid, known: impl Fn(Pid) -> bool) -> Option<Pid> {
    let mut current = pid;
    for _ in 0..64 {
        if known(current) {
            return Some(current);
        }
        match stat(current) {
            Some(stat) if stat.ppid > 1 => current = stat.ppid,
            _ => return None,
        }
    }
    None
}

/// Whether `pid` is `ancestor` or one of its descendants.
#[must_use]
pub fn descends_from(pid: Pid, ancestor: Pid) -> bool {
    let mut current = pid;
    for _ in 0..4096 {
        if current == ancestor {
            return true;
        }
        match stat(current) {
            Some(stat) if stat.ppid > 0 => current = stat.ppid,
            _ => return false,
        }
    }
    false
}

/// Reads at most 64 bytes of a regular file, never waiting: the path is the program's to
/// choose, and a FIFO or a device there must not stall the daemon's loop.
fn read_small_regular_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a regular file"));
    }
    let mut bytes = Vec::with_capacity(64);
    file.take(64).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads `path` and judges the pid in it. `known` is the pid and start time already trusted.
#[must_use]
pub fn observe(path: &Path, known: Option<(Pid, u64)>, supervisor_pid: Pid) -> PidObservation {
    let gone = |reason: String| PidObservation::Gone { reason };
    let text = match read_small_regular_file(path) {
        Ok(text) => text,
        Err(error) => return gone(format!("pid file {}: {error}", path.display())),
    };
    let Ok(pid) = text.trim().parse::<Pid>() else {
        return gone(format!("pid file {} does not hold a pid: {:?}", path.display(), text.trim()));
    };
    if pid <= 1 {
        return gone(format!("pid file {} holds pid {pid}, which cannot be a service", path.display()));
    }
    let Some(proc_stat) = stat(pid) else {
        return gone(format!("pid {pid} from {} is not running", path.display()));
    };
    if proc_stat.state == 'Z' || proc_stat.state == 'X' {
        return gone(format!("pid {pid} from {} has exited", path.display()));
    }
    match known {
        Some((known_pid, known_start)) if known_pid == pid => {
            if proc_stat.start_time != known_start {
                return gone(format!("pid {pid} from {} now belongs to another process (pid reused)", path.display()));
            }
        }
        _ => {
            // A pid we have not trusted before: the daemon's first pid, or a new one it wrote
            // (nginx's binary upgrade). Only our own descendants count.
            if supervisor_pid != 1 && !descends_from(pid, supervisor_pid) {
                return gone(format!("pid file {} names pid {pid}, which sv-lite did not start", path.display()));
            }
        }
    }
    PidObservation::Alive { pid, start_time: proc_stat.start_time }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_a_device_as_pid_file_is_refused_without_waiting() {
        let dir = std::env::temp_dir().join(format!("sv-lite-pidfile-fifo-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("d.pid");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        // Opening a FIFO with no writer for reading would block without O_NONBLOCK.
        let observation = observe(&fifo, None, std::process::id() as Pid);
        assert!(
            matches!(&observation, PidObservation::Gone { reason } if reason.contains("not a regular file")),
            "{observation:?}"
        );
        let zero = observe(Path::new("/dev/zero"), None, std::process::id() as Pid);
        assert!(matches!(&zero, PidObservation::Gone { reason } if reason.contains("not a regular file")), "{zero:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let text = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(text), Some(ProcStat { state: 'S', ppid: 1, start_time: 987654 }));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn our_own_process_is_alive_and_a_stranger_is_not() {
        let dir = std::env::temp_dir().join(format!("sv-lite-pidfile-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.pid");
        let me = std::process::id() as Pid;
        fs::write(&path, format!("{me}\n")).unwrap();
        let PidObservation::Alive { pid, start_time } = observe(&path, None, me) else { panic!("alive") };
        assert_eq!(pid, me);
        // Same pid, different start time: reused.
        assert!(
            matches!(observe(&path, Some((me, start_time + 1)), me), PidObservation::Gone { reason } if reason.contains("reused"))
        );
        // Our parent is not our descendant: as a stranger's pid it does not count.
        let parent = stat(me).unwrap().ppid;
        fs::write(&path, format!("{parent}\n")).unwrap();
        assert!(
            matches!(observe(&path, None, me), PidObservation::Gone { reason } if reason.contains("did not start"))
        );
        fs::write(&path, "nonsense").unwrap();
        assert!(
            matches!(observe(&path, None, me), PidObservation::Gone { reason } if reason.contains("does not hold a pid"))
        );
        fs::remove_file(&path).unwrap();
        assert!(matches!(observe(&path, None, me), PidObservation::Gone { .. }));
        fs::remove_dir_all(&dir).unwrap();
    }
}
