//! The I/O half of systemd's sd_notify protocol: the datagram socket named in `NOTIFY_SOCKET`,
//! and the parser for what arrives on it.
//!
//! A child sends newline-separated `KEY=VALUE` assignments (`READY=1`, `STATUS=...`) in one
//! datagram. The kernel attaches the sender's credentials (`SO_PASSCRED`), and the pid in them is
//! what says who is talking: the core decides whether that pid may speak for an instance. This
//! module only reads, parses, and closes whatever descriptors came along, which is how
//! `BARRIER=1` is answered (the sender waits for its pipe's write end, passed to us, to close).
//!
//! Architecture invariant: nothing here blocks (the socket is non-blocking and every read is
//! `MSG_DONTWAIT`), and nothing here decides anything about supervision.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mio::net::UnixDatagram;
use mio::{Interest, Registry, Token};

pub use crate::core::NotifyField;
use crate::sys::{self, Received};

/// The largest datagram read; longer ones are truncated and ignored (systemd's own limit is
/// 4 KiB-ish for most messages, but allow e.g. 64 KiB).
pub const MAX_DATAGRAM: usize = 64 * 1024;

/// Ignored lines [`parse`] reports per datagram; more are counted in one last entry.
pub const MAX_IGNORED_REPORTED: usize = 8;

/// Bytes of an ignored line kept for the debug log.
const IGNORED_EXCERPT_BYTES: usize = 80;

/// A message from a process.
#[derive(Debug)]
pub struct Notification {
    /// The sender, as the kernel vouches for it (`SCM_CREDENTIALS`), in our pid namespace.
    pub pid: i32,
    /// The recognised fields, in the order they were sent (a repeated key appears twice).
    pub fields: Vec<NotifyField>,
}

/// The datagram socket whose path goes into NOTIFY_SOCKET.
///
/// Register it in the `Poll` with [`Interest::READABLE`] (it is a `mio::event::Source`), and
/// call [`NotifySocket::receive`] on every readable event. Dropping it removes the socket file,
/// if that file is still the one it bound.
pub struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    /// Device and inode of the socket file bound, so that drop removes only our own.
    file_identity: (u64, u64),
    /// Reused for every datagram.
    buffer: Vec<u8>,
}

/// Parses one datagram: newline-separated KEY=VALUE assignments. Unknown keys, malformed lines
/// and bad numbers are skipped (returned separately for a debug log). Values are not trimmed
/// except the trailing newline; READY=1 only counts with value exactly "1" (same for
/// RELOADING/STOPPING/WATCHDOG=1/BARRIER=1).
///
/// Numbers are decimal digits only (no sign, no spaces). A line that is not UTF-8 or holds a NUL
/// byte is malformed (systemd reads the datagram as a C string). Empty lines are skipped
/// silently. At most [`MAX_IGNORED_REPORTED`] ignored lines come back, each cut to a short
/// excerpt, and one more entry counts the rest.
#[must_use]
pub fn parse(datagram: &[u8]) -> (Vec<NotifyField>, Vec<String>) {
    let mut fields = Vec::new();
    let mut ignored = Vec::new();
    let mut n_unreported = 0usize;
    for line in datagram.split(|&byte| byte == b'\n') {
        if line.is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(field) => fields.push(field),
            None if ignored.len() < MAX_IGNORED_REPORTED => ignored.push(excerpt(line)),
            None => n_unreported += 1,
        }
    }
    if n_unreported > 0 {
        ignored.push(format!("({n_unreported} more ignored lines)"));
    }
    (fields, ignored)
}

/// One `KEY=VALUE` line, or `None` if it is unknown or malformed.
fn parse_line(line: &[u8]) -> Option<NotifyField> {
    if line.contains(&0) {
        return None;
    }
    let line = std::str::from_utf8(line).ok()?;
    let (key, value) = line.split_once('=')?;
    let flag = |field: NotifyField| (value == "1").then_some(field);
    match key {
        "READY" => flag(NotifyField::Ready),
        "RELOADING" => flag(NotifyField::Reloading),
        "STOPPING" => flag(NotifyField::Stopping),
        "BARRIER" => flag(NotifyField::Barrier),
        "WATCHDOG" => match value {
            "1" => Some(NotifyField::Watchdog),
            "trigger" => Some(NotifyField::WatchdogTrigger),
            _ => None,
        },
        "STATUS" => Some(NotifyField::Status(value.to_string())),
        "ERRNO" => decimal::<i32>(value).map(NotifyField::Errno),
        "MAINPID" => decimal::<i32>(value).filter(|&pid| pid > 0).map(NotifyField::MainPid),
        "WATCHDOG_USEC" => decimal::<u64>(value).map(NotifyField::WatchdogUsec),
        "EXTEND_TIMEOUT_USEC" => decimal::<u64>(value).map(NotifyField::ExtendTimeoutUsec),
        _ => None,
    }
}

/// A non-negative decimal number of ASCII digits only (`str::parse` alone would take a `+`).
fn decimal<T: std::str::FromStr>(value: &str) -> Option<T> {
    if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// The start of an ignored line, for the debug log (printed with `{:?}`, which escapes it).
fn excerpt(line: &[u8]) -> String {
    if line.len() <= IGNORED_EXCERPT_BYTES {
        return String::from_utf8_lossy(line).into_owned();
    }
    format!("{}...", String::from_utf8_lossy(&line[..IGNORED_EXCERPT_BYTES]))
}

impl NotifySocket {
    /// Binds a Unix datagram socket at `path`, made absolute (sd_notify accepts only an absolute
    /// path or an abstract name), non-blocking and close-on-exec, with `SO_PASSCRED`.
    ///
    /// Like the control socket: the directory must not be world-writable without the sticky bit;
    /// a stale socket file of ours is replaced, but not a file that is no socket, nor a socket of
    /// another user, nor one that something is still bound to.
    ///
    /// The socket is mode 0666: children may run as other users (`user:`), and sending a
    /// datagram needs write permission on the socket file. Permission is not what authenticates
    /// a message: the kernel's `SCM_CREDENTIALS` pid is, which no process can forge without
    /// `CAP_SYS_ADMIN`, and the core accepts a message only from a pid it supervises. A stranger
    /// can only send what is ignored. (systemd's own `/run/systemd/notify` is world-writable too.)
    /// The directory must still be searchable by those users for them to reach the socket.
    pub fn bind(path: &Path) -> Result<NotifySocket, String> {
        let path = std::path::absolute(path)
            .map_err(|error| format!("notify socket {}: cannot make the path absolute: {error}", path.display()))?;
        check_directory(&path)?;
        clear_stale_socket(&path)?;
        let socket = UnixDatagram::bind(&path)
            .map_err(|error| format!("notify socket {}: cannot bind: {error}", path.display()))?;
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|error| format!("notify socket {}: cannot stat after bind: {error}", path.display()))?;
        // From here on, an error drops `notify`, which removes the file just bound.
        let notify =
            NotifySocket { socket, file_identity: (meta.dev(), meta.ino()), path, buffer: vec![0; MAX_DATAGRAM] };
        // No datagram can have arrived before this: nobody has been told the path yet. (One sent
        // before SO_PASSCRED would have no credentials, and be dropped.)
        sys::set_passcred(notify.socket.as_raw_fd())
            .map_err(|error| format!("notify socket {}: cannot set SO_PASSCRED: {error}", notify.path.display()))?;
        // Bound with our umask's mode first, then widened: never briefly wider than meant.
        std::fs::set_permissions(&notify.path, std::fs::Permissions::from_mode(0o666))
            .map_err(|error| format!("notify socket {}: cannot set mode 666: {error}", notify.path.display()))?;
        Ok(notify)
    }

    /// The absolute path of the socket: the value for `NOTIFY_SOCKET`.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every pending datagram (to `WouldBlock`); returns the notifications with a sender
    /// pid and at least one recognised field. Datagrams without credentials (or with pid 0: a
    /// sender outside our pid namespace) or truncated ones are dropped with a debug log, and so
    /// are ignored lines. Any fds that came with a message are closed before returning (BARRIER).
    ///
    /// An error other than `WouldBlock` stops the reading with a warning; what is still queued is
    /// read at the next readable event (the next datagram to arrive).
    pub fn receive(&mut self) -> Vec<Notification> {
        let mut notifications = Vec::new();
        loop {
            let received = match sys::recv_with_credentials(self.socket.as_raw_fd(), &mut self.buffer) {
                Ok(Some(received)) => received,
                Ok(None) => break,
                Err(error) => {
                    log::warn!(
                        "notify socket {}: recvmsg: {error}; reading the rest at the next datagram",
                        self.path.display()
                    );
                    break;
                }
            };
            if let Some(notification) = self.accept(received) {
                notifications.push(notification);
            }
        }
        notifications
    }

    /// Turns one datagram into a notification, or logs why not. Its descriptors are closed here.
    fn accept(&self, received: Received) -> Option<Notification> {
        let Received { len, truncated, control_truncated, credentials, fds } = received;
        // Closing our copies is the whole answer to BARRIER=1 (and FDSTORE=1 is not supported).
        let n_fds = fds.len();
        drop(fds);
        let sender = match credentials {
            Some(credentials) if credentials.pid > 0 => format!("pid {}", credentials.pid),
            _ => "unknown sender".to_string(),
        };
        if n_fds > 0 {
            log::debug!("notify socket: {sender}: closed {n_fds} passed descriptor(s)");
        }
        if truncated {
            log::debug!("notify socket: {sender}: datagram longer than {MAX_DATAGRAM} bytes; ignored");
            return None;
        }
        if control_truncated {
            log::debug!("notify socket: {sender}: control data truncated (too many descriptors); ignored");
            return None;
        }
        let pid = match credentials {
            Some(credentials) if credentials.pid > 0 => credentials.pid,
            Some(_) => {
                log::debug!("notify socket: datagram from a process outside our pid namespace; ignored");
                return None;
            }
            None => {
                log::debug!("notify socket: datagram without credentials; ignored");
                return None;
            }
        };
        let (fields, ignored) = parse(&self.buffer[..len]);
        for line in &ignored {
            log::debug!("notify socket: pid {pid}: ignored {line:?}");
        }
        if fields.is_empty() {
            return None;
        }
        Some(Notification { pid, fields })
    }
}

impl mio::event::Source for NotifySocket {
    fn register(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        self.socket.register(registry, token, interests)
    }

    fn reregister(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        self.socket.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.socket.deregister(registry)
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        // Only the file we bound: if someone replaced it meanwhile, it is theirs.
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.file_identity => {
                if let Err(error) = sys::remove_if_exists(&self.path) {
                    log::warn!("cannot remove notify socket {}: {error}", self.path.display());
                }
            }
            Ok(_) => log::debug!("notify socket {}: replaced by another file; left alone", self.path.display()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => log::warn!("cannot remove notify socket {}: {error}", self.path.display()),
        }
    }
}

/// Refuses a directory that anyone may write without the sticky bit (anyone could replace the
/// socket there). Creates it if missing, as for the control socket.
fn check_directory(path: &Path) -> Result<(), String> {
    let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return Ok(());
    };
    std::fs::create_dir_all(dir)
        .map_err(|error| format!("notify socket {}: directory {}: {error}", path.display(), dir.display()))?;
    let mode = std::fs::metadata(dir)
        .map_err(|error| format!("notify socket {}: directory {}: {error}", path.display(), dir.display()))?
        .mode();
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Err(format!(
            "notify socket {}: directory {} is world-writable without the sticky bit, so anyone could replace the \
             socket; put it in a directory only sv-lite's user can write",
            path.display(),
            dir.display()
        ));
    }
    Ok(())
}

/// Removes a socket file left by a dead daemon of ours; refuses anything else in the way.
fn clear_stale_socket(path: &Path) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(format!("notify socket {}: {error}", path.display())),
        Ok(meta) => meta,
    };
    if !meta.file_type().is_socket() {
        return Err(format!(
            "notify socket {}: a file that is not a socket is in the way; refusing to replace it",
            path.display()
        ));
    }
    if meta.uid() != sys::geteuid() {
        return Err(format!(
            "notify socket {}: it exists and belongs to uid {}, not to us (uid {}); refusing to replace someone \
             else's socket. Remove it if it is stale",
            path.display(),
            meta.uid(),
            sys::geteuid()
        ));
    }
    // A datagram connect succeeds only if something is bound there (a stale file is refused).
    let probe = std::os::unix::net::UnixDatagram::unbound()
        .map_err(|error| format!("notify socket {}: cannot create a socket: {error}", path.display()))?;
    if probe.connect(path).is_ok() {
        return Err(format!(
            "notify socket {}: another process is bound to it; stop it first or use another path",
            path.display()
        ));
    }
    log::info!("removing stale notify socket {}", path.display());
    sys::remove_if_exists(path)
        .map_err(|error| format!("notify socket {}: cannot remove stale file: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixDatagram as StdUnixDatagram;
    use std::time::{Duration, Instant};

    use NotifyField::*;

    fn fields(datagram: &[u8]) -> Vec<NotifyField> {
        parse(datagram).0
    }

    #[test]
    fn every_field() {
        let datagram = b"READY=1\nRELOADING=1\nSTOPPING=1\nSTATUS=Serving 3 clients\nERRNO=2\nMAINPID=4242\n\
WATCHDOG=1\nWATCHDOG=trigger\nWATCHDOG_USEC=30000000\nEXTEND_TIMEOUT_USEC=5000000\nBARRIER=1\n";
        let (fields, ignored) = parse(datagram);
        assert_eq!(
            fields,
            vec![
                Ready,
                Reloading,
                Stopping,
                Status("Serving 3 clients".to_string()),
                Errno(2),
                MainPid(4242),
                Watchdog,
                WatchdogTrigger,
                WatchdogUsec(30_000_000),
                ExtendTimeoutUsec(5_000_000),
                Barrier,
            ]
        );
        assert!(ignored.is_empty(), "{ignored:?}");
    }

    #[test]
    fn unknown_keys_are_ignored_and_reported() {
        let (fields, ignored) = parse(b"FDSTORE=1\nREADY=1\nMONOTONIC_USEC=123\nno equals sign");
        assert_eq!(fields, vec![Ready]);
        assert_eq!(ignored, vec!["FDSTORE=1", "MONOTONIC_USEC=123", "no equals sign"]);
    }

    #[test]
    fn flags_count_only_with_exactly_one() {
        for line in ["READY=0", "READY=", "READY=1 ", "READY= 1", "READY=true", "READY=01", "ready=1", " READY=1"] {
            let (fields, ignored) = parse(line.as_bytes());
            assert_eq!(fields, vec![], "{line:?}");
            assert_eq!(ignored, vec![line], "{line:?}");
        }
        for line in ["RELOADING=2", "STOPPING=yes", "BARRIER=0", "WATCHDOG=0", "WATCHDOG=Trigger"] {
            assert_eq!(fields(line.as_bytes()), vec![], "{line:?}");
        }
    }

    #[test]
    fn status_keeps_everything_after_the_first_equals_sign() {
        assert_eq!(fields(b"STATUS=a=b=c"), vec![Status("a=b=c".to_string())]);
        assert_eq!(fields(b"STATUS=  padded  \n"), vec![Status("  padded  ".to_string())]);
        assert_eq!(fields(b"STATUS="), vec![Status(String::new())]);
    }

    #[test]
    fn bad_numbers_are_ignored() {
        for line in [
            "MAINPID=abc",
            "MAINPID=0",
            "MAINPID=-1",
            "MAINPID=+5",
            "MAINPID= 5",
            "MAINPID=5 ",
            "MAINPID=",
            "MAINPID=99999999999",
            "ERRNO=-5",
            "ERRNO=x",
            "WATCHDOG_USEC=1.5",
            "WATCHDOG_USEC=18446744073709551616",
            "EXTEND_TIMEOUT_USEC=10s",
        ] {
            let (fields, ignored) = parse(line.as_bytes());
            assert_eq!(fields, vec![], "{line:?}");
            assert_eq!(ignored.len(), 1, "{line:?}");
        }
        assert_eq!(fields(b"MAINPID=garbage\nMAINPID=77"), vec![MainPid(77)]);
        assert_eq!(fields(b"ERRNO=0"), vec![Errno(0)]);
        assert_eq!(fields(b"WATCHDOG_USEC=18446744073709551615"), vec![WatchdogUsec(u64::MAX)]);
    }

    #[test]
    fn an_empty_datagram_has_no_fields() {
        assert_eq!(parse(b""), (vec![], vec![]));
        assert_eq!(parse(b"\n\n\n"), (vec![], vec![]));
    }

    #[test]
    fn carriage_return_is_not_special() {
        let (fields, ignored) = parse(b"READY=1\r\nSTATUS=hi\r\n");
        assert_eq!(fields, vec![Status("hi\r".to_string())]);
        assert_eq!(ignored, vec!["READY=1\r"]);
    }

    #[test]
    fn nul_bytes_and_invalid_utf8_make_a_line_malformed() {
        let (fields, ignored) = parse(b"STATUS=a\0b\nSTATUS=\xff\nREADY=1");
        assert_eq!(fields, vec![Ready]);
        assert_eq!(ignored.len(), 2);
    }

    #[test]
    fn ignored_lines_are_bounded() {
        let long = format!("X={}", "y".repeat(10_000));
        let mut datagram = String::new();
        for _ in 0..100 {
            datagram.push_str(&long);
            datagram.push('\n');
        }
        datagram.push_str("READY=1");
        let (fields, ignored) = parse(datagram.as_bytes());
        assert_eq!(fields, vec![Ready]);
        assert_eq!(ignored.len(), MAX_IGNORED_REPORTED + 1);
        assert!(ignored[0].len() <= IGNORED_EXCERPT_BYTES + 3, "{}", ignored[0].len());
        assert_eq!(ignored[MAX_IGNORED_REPORTED], format!("({} more ignored lines)", 100 - MAX_IGNORED_REPORTED));
    }

    /// A fresh directory for one test's socket (short: socket paths are limited to 107 bytes).
    fn test_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("svl-notify-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sender_to(path: &Path) -> StdUnixDatagram {
        let sender = StdUnixDatagram::unbound().unwrap();
        sender.connect(path).unwrap();
        sender
    }

    #[test]
    fn a_datagram_arrives_with_our_pid() {
        let dir = test_dir("pid");
        let mut notify = NotifySocket::bind(&dir.join("notify.sock")).unwrap();
        assert!(notify.path().is_absolute());
        assert!(notify.receive().is_empty(), "nothing queued yet");
        let sender = StdUnixDatagram::unbound().unwrap();
        sender.send_to(b"READY=1\nSTATUS=up", notify.path()).unwrap();
        sender.send_to(b"WATCHDOG=1", notify.path()).unwrap();
        let notifications = notify.receive();
        assert_eq!(notifications.len(), 2, "{notifications:?}");
        assert_eq!(notifications[0].pid, std::process::id() as i32);
        assert_eq!(notifications[0].fields, vec![Ready, Status("up".to_string())]);
        assert_eq!(notifications[1].fields, vec![Watchdog]);
        assert!(notify.receive().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn datagrams_with_nothing_recognised_or_too_long_are_dropped() {
        let dir = test_dir("drop");
        let mut notify = NotifySocket::bind(&dir.join("notify.sock")).unwrap();
        let sender = sender_to(notify.path());
        sender.send(b"FDSTORE=1\nREADY=0").unwrap();
        let mut long = b"READY=1\nSTATUS=".to_vec();
        long.resize(MAX_DATAGRAM + 1, b'x');
        sender.send(&long).unwrap();
        sender.send(b"STOPPING=1").unwrap();
        let notifications = notify.receive();
        assert_eq!(notifications.len(), 1, "{notifications:?}");
        assert_eq!(notifications[0].fields, vec![Stopping]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_barrier_descriptor_is_closed_by_receive() {
        let dir = test_dir("barrier");
        let mut notify = NotifySocket::bind(&dir.join("notify.sock")).unwrap();
        let sender = sender_to(notify.path());
        let (mut read_end, write_end) = std::io::pipe().unwrap();
        sys::set_nonblocking(read_end.as_raw_fd(), true).unwrap();
        sys::send_with_fds(sender.as_raw_fd(), b"BARRIER=1", &[write_end.as_raw_fd()]).unwrap();
        // From here the only write end is the copy in flight to our socket.
        drop(write_end);
        let mut byte = [0u8; 1];
        assert_eq!(read_end.read(&mut byte).unwrap_err().kind(), io::ErrorKind::WouldBlock);

        let notifications = notify.receive();
        assert_eq!(notifications.len(), 1, "{notifications:?}");
        assert_eq!(notifications[0].fields, vec![Barrier]);
        assert_eq!(read_end.read(&mut byte).unwrap(), 0, "receive() closed our copy of the write end");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bind_replaces_a_stale_socket_but_not_a_live_one_or_a_file() {
        let dir = test_dir("stale");
        let path = dir.join("notify.sock");
        // A stale socket: bound, then its socket closed without removing the file.
        drop(StdUnixDatagram::bind(&path).unwrap());
        let notify = NotifySocket::bind(&path).unwrap();
        let error = NotifySocket::bind(&path).err().unwrap();
        assert!(error.contains("another process is bound"), "{error}");
        drop(notify);
        assert!(!path.exists(), "drop removes the socket file");

        std::fs::write(&path, "not a socket").unwrap();
        let error = NotifySocket::bind(&path).err().unwrap();
        assert!(error.contains("not a socket"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bind_refuses_a_stale_socket_of_another_user() {
        if sys::geteuid() != 0 {
            eprintln!("not root: cannot give a socket to another user; skipping");
            return;
        }
        let dir = test_dir("owner");
        let path = dir.join("notify.sock");
        drop(StdUnixDatagram::bind(&path).unwrap());
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let error = NotifySocket::bind(&path).err().unwrap();
        assert!(error.contains("belongs to uid 65534"), "{error}");
        assert!(path.exists(), "left in place");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_socket_is_world_writable_and_drop_leaves_a_replacement_alone() {
        let dir = test_dir("mode");
        let path = dir.join("notify.sock");
        let notify = NotifySocket::bind(&path).unwrap();
        let mode = std::fs::symlink_metadata(&path).unwrap().mode();
        assert_eq!(mode & 0o777, 0o666, "{mode:o}");
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "someone else's").unwrap();
        drop(notify);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "someone else's");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_world_writable_directory_without_sticky_bit_is_refused() {
        let dir = test_dir("worldw");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = NotifySocket::bind(&dir.join("notify.sock")).err().unwrap();
        assert!(error.contains("world-writable"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// systemd's own client, when the machine has it: `systemd-notify` (without `--no-block`)
    /// sends READY and STATUS, then BARRIER=1 with a pipe's write end, and exits 0 only once that
    /// descriptor is closed: so its exit status proves the barrier is answered.
    #[test]
    fn systemd_notify_gets_its_barrier_answered() {
        let Ok(version) = std::process::Command::new("systemd-notify").arg("--version").output() else {
            eprintln!("systemd-notify not found; skipping");
            return;
        };
        let version = String::from_utf8_lossy(&version.stdout);
        eprintln!("{}", version.lines().next().unwrap_or("systemd-notify: no version"));
        let dir = test_dir("systemd");
        let mut notify = NotifySocket::bind(&dir.join("notify.sock")).unwrap();
        let mut child = std::process::Command::new("systemd-notify")
            .args(["--ready", "--status=hello"])
            .env("NOTIFY_SOCKET", notify.path())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        let status = loop {
            for notification in notify.receive() {
                eprintln!(
                    "from pid {} (systemd-notify is {}): {:?}",
                    notification.pid,
                    child.id(),
                    notification.fields
                );
                seen.extend(notification.fields);
            }
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "systemd-notify still waiting; saw {seen:?}");
            std::thread::sleep(Duration::from_millis(5));
        };
        seen.extend(notify.receive().into_iter().flat_map(|notification| notification.fields));
        assert!(status.success(), "systemd-notify: {status}; saw {seen:?}");
        assert!(seen.contains(&Ready), "{seen:?}");
        assert!(seen.contains(&Status("hello".to_string())), "{seen:?}");
        assert!(seen.contains(&Barrier), "{seen:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
