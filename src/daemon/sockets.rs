//! Listening sockets for socket activation (`sockets:` of a program).
//!
//! The daemon binds each socket once and keeps it across the program's restarts; the program
//! gets a copy as fd 3, 4, ... (`sys::SpawnOptions::extra_fds`, with `LISTEN_FDS` and friends
//! from `activation`). Connections that arrive while the program restarts wait in the
//! listen queue ([`BACKLOG`]); sv-lite never accepts on these sockets.
//!
//! What the listener is like, following systemd's defaults for `ListenStream=`:
//! - blocking: the program sets `O_NONBLOCK` itself if it wants it (it is shared by every copy,
//!   and sv-lite never reads the socket, so the daemon's loop cannot block on it);
//! - close-on-exec in the daemon, so no other child inherits it; the program's copy is not;
//! - TCP: `SO_REUSEADDR` (std sets it), so a restart of the daemon rebinds while old
//!   connections are in TIME_WAIT. `[::]:PORT` is left to the kernel's `net.ipv6.bindv6only`,
//!   as systemd's `BindIPv6Only=default` does: 0 almost everywhere, so it accepts IPv4 too
//!   (dual stack);
//! - Unix: a stale socket file (nobody listening) is removed first, anything else in the way
//!   is refused; missing parent directories are created; the socket is mode 0666, as
//!   systemd's `SocketMode=` default: who may connect is decided by the directory.
//!
//! Binding never blocks: the liveness check of an old Unix socket is a non-blocking connect.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;

use crate::spec::SocketSpec;
use crate::sys;

/// Length of the listen queue: the connections that wait, unaccepted, while the program
/// starts or restarts (the kernel caps it at `net.core.somaxconn`, 4096 by default). std
/// listens with 128.
pub const BACKLOG: i32 = 1024;

/// Mode of a Unix socket file.
pub const UNIX_MODE: u32 = 0o666;

/// Binds and listens on `spec`: the listener, and for TCP the port it is bound to (the one
/// the kernel chose for port 0). The error says which address and what failed, e.g.
/// `bind 0.0.0.0:8080: Address already in use (os error 98)`; the caller puts the socket's
/// name in front.
pub fn bind(spec: &SocketSpec) -> Result<(OwnedFd, Option<u16>), String> {
    match spec {
        SocketSpec::Tcp(address) => bind_tcp(*address),
        SocketSpec::Unix(path) => bind_unix(path).map(|fd| (fd, None)),
    }
}

fn bind_tcp(address: SocketAddr) -> Result<(OwnedFd, Option<u16>), String> {
    let listener = TcpListener::bind(address).map_err(|error| format!("bind {address}: {error}"))?;
    sys::listen(listener.as_raw_fd(), BACKLOG).map_err(|error| format!("listen {address}: {error}"))?;
    let port = listener.local_addr().map_err(|error| format!("bind {address}: local address: {error}"))?.port();
    Ok((OwnedFd::from(listener), Some(port)))
}

fn bind_unix(path: &Path) -> Result<OwnedFd, String> {
    let shown = path.display();
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::create_dir_all(dir)
            .map_err(|error| format!("bind {shown}: cannot create the directory {}: {error}", dir.display()))?;
    }
    match fs::symlink_metadata(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(format!("bind {shown}: {error}")),
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(format!("bind {shown}: a file that is not a socket is in the way; refusing to replace it"));
        }
        Ok(_) => {
            if is_listening(path) {
                return Err(format!("bind {shown}: another process is listening on it; refusing to replace it"));
            }
            sys::remove_if_exists(path)
                .map_err(|error| format!("bind {shown}: cannot remove the stale socket file: {error}"))?;
        }
    }
    let listener = UnixListener::bind(path).map_err(|error| format!("bind {shown}: {error}"))?;
    sys::listen(listener.as_raw_fd(), BACKLOG).map_err(|error| format!("listen {shown}: {error}"))?;
    fs::set_permissions(path, fs::Permissions::from_mode(UNIX_MODE))
        .map_err(|error| format!("bind {shown}: cannot set mode {UNIX_MODE:o}: {error}"))?;
    Ok(OwnedFd::from(listener))
}

/// Whether something accepts connections on the Unix socket at `path`. A non-blocking
/// connect: refused means stale; connected, or a full queue (`WouldBlock`), means live.
fn is_listening(path: &Path) -> bool {
    match mio::net::UnixStream::connect(path) {
        Ok(_) => true,
        Err(error) => error.kind() == io::ErrorKind::WouldBlock,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::os::unix::net::UnixStream;
    use std::path::PathBuf;

    /// A fresh directory under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("sv-lite-sockets-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("temporary directory");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn tcp_port_zero_gives_a_port_that_accepts_connections() {
        let (fd, port) = bind(&SocketSpec::Tcp("127.0.0.1:0".parse().expect("address"))).expect("bind");
        let port = port.expect("a TCP socket has a port");
        assert_ne!(port, 0);
        let listener = TcpListener::from(fd);
        let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        client.write_all(b"ping").expect("write");
        let mut got = [0u8; 4];
        server.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"ping");
    }

    #[test]
    fn tcp_address_in_use_is_an_error_naming_it() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = taken.local_addr().expect("address");
        let error = bind(&SocketSpec::Tcp(address)).expect_err("the port is taken");
        assert!(error.starts_with(&format!("bind {address}: ")), "{error}");
        assert!(error.contains("in use"), "{error}");
    }

    #[test]
    fn unix_socket_is_bound_listening_and_world_connectable() {
        let dir = TempDir::new("unix");
        let path = dir.0.join("sub/app.sock");
        let (fd, port) = bind(&SocketSpec::Unix(path.clone())).expect("bind");
        assert_eq!(port, None);
        let mode = fs::metadata(&path).expect("socket file").permissions().mode() & 0o777;
        assert_eq!(mode, UNIX_MODE);
        let listener = UnixListener::from(fd);
        let mut client = UnixStream::connect(&path).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        client.write_all(b"ping").expect("write");
        let mut got = [0u8; 4];
        server.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"ping");
    }

    #[test]
    fn a_stale_unix_socket_file_is_replaced() {
        let dir = TempDir::new("stale");
        let path = dir.0.join("app.sock");
        drop(UnixListener::bind(&path).expect("first bind"));
        assert!(path.exists(), "closing a listener leaves its file behind");
        let (fd, _) = bind(&SocketSpec::Unix(path.clone())).expect("the stale file is replaced");
        let listener = UnixListener::from(fd);
        let _client = UnixStream::connect(&path).expect("connect");
        listener.accept().expect("accept");
    }

    #[test]
    fn a_live_unix_socket_is_not_taken_over() {
        let dir = TempDir::new("live");
        let path = dir.0.join("app.sock");
        let _live = UnixListener::bind(&path).expect("first bind");
        let error = bind(&SocketSpec::Unix(path.clone())).expect_err("someone listens there");
        assert_eq!(
            error,
            format!("bind {}: another process is listening on it; refusing to replace it", path.display())
        );
    }

    #[test]
    fn a_file_that_is_not_a_socket_is_refused_and_kept() {
        let dir = TempDir::new("file");
        let path = dir.0.join("app.sock");
        fs::write(&path, "data").expect("write");
        let error = bind(&SocketSpec::Unix(path.clone())).expect_err("a regular file is in the way");
        assert_eq!(
            error,
            format!("bind {}: a file that is not a socket is in the way; refusing to replace it", path.display())
        );
        assert_eq!(fs::read_to_string(&path).expect("still there"), "data");
    }
}
