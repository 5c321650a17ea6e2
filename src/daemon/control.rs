//! The control server: the control socket, its connections and the `tail -f` followers.
//!
//! I/O and framing only. It binds the socket, admits clients (the connection limit, then
//! `SO_PEERCRED`: root, the daemon's uid or a member of `socket_group`), reads request lines
//! (at most [`MAX_REQUEST_BYTES`] each) and parses them, and writes through per-connection
//! buffers that never block. What a request means is decided elsewhere: [`ControlServer::service`]
//! hands the parsed requests to the driver, which routes them to the core or answers them, and
//! sends the answers back through [`ControlServer::send`].
//!
//! A connection closes when its client leaves and everything is answered and sent, when a read
//! or write fails, when it falls too far behind, or when it has been idle for `IDLE_TIMEOUT`.
//! Every call that may close one returns the ids it closed; the driver feeds each to the core as
//! `Input::ConnClosed`, so that the core drops its waiters.
//!
//! Architecture invariant: nothing here blocks. A stalled client costs that client (it is
//! dropped), never the loop.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use super::output::StreamKind;
use super::READ_BUFFER_BYTES;
use crate::control::{self as protocol, ControlRequest, MAX_REQUEST_BYTES};
use crate::core::{ConnId, InstanceId};
use crate::sys;
use crate::users::{self, Group};

/// Bytes a client may leave unread before it is dropped.
const MAX_REPLY_BACKLOG: usize = 4 * 1024 * 1024;
/// Bytes a `tail -f` client may fall behind before it is dropped.
const MAX_FOLLOW_BACKLOG: usize = 256 * 1024;
/// Open control connections at most; more are refused.
const MAX_CONNECTIONS: usize = 512;
/// A connection with no request in flight and nothing sent or received for this long is
/// closed. Trickling bytes of an unfinished request does not count as activity.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// One instance's output stream, as a `tail -f` client follows it.
pub type FollowKey = (InstanceId, StreamKind);

/// The listening socket, its open connections and the followers among them.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    /// Where the socket is bound; removed at exit.
    path: PathBuf,
    connections: HashMap<Token, Connection>,
    /// The token of each open connection, by the id the core knows it by.
    tokens: HashMap<ConnId, Token>,
    followers: Vec<Follower>,
    /// Members may use the control socket, besides root and our own uid.
    socket_group: Option<Group>,
    euid: u32,
    read_buffer: Vec<u8>,
}

/// What one readiness event on a connection brought: its complete request lines, in order.
#[derive(Debug)]
pub struct Serviced {
    pub conn: ConnId,
    /// Each line's request, or the error it is to be answered with (a line that does not parse,
    /// or one longer than [`MAX_REQUEST_BYTES`]). Blank lines are left out.
    pub requests: Vec<Result<ControlRequest, String>>,
}

#[derive(Debug)]
struct Connection {
    id: ConnId,
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Requests handed on and not yet answered.
    pending: usize,
    /// The client closed its side; close ours once everything is answered and sent.
    read_closed: bool,
    /// A read failed: close once the requests read before it are handed on.
    read_failed: bool,
    /// Last complete request or reply, for the idle timeout.
    last_active: Instant,
    /// A `tail -f` stream: never idle, dropped when it falls behind.
    following: bool,
    /// An oversize request is being skipped up to its newline.
    discarding: bool,
}

/// A `tail -f` client of one instance's stream.
#[derive(Debug)]
struct Follower {
    conn: ConnId,
    key: FollowKey,
}

impl ControlServer {
    /// Binds the control socket at `path` (see `bind_socket`) and registers it under `token`.
    /// `socket_group` names the group whose members may connect too.
    pub fn bind(
        path: &Path,
        socket_group: Option<&str>,
        registry: &Registry,
        token: Token,
    ) -> Result<ControlServer, String> {
        let socket_group = match socket_group {
            Some(name) => Some(users::group(name).map_err(|error| format!("socket_group: {error}"))?),
            None => None,
        };
        let mut listener = bind_socket(path, socket_group.as_ref())?;
        registry
            .register(&mut listener, token, Interest::READABLE)
            .map_err(|error| format!("cannot register control socket: {error}"))?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
            connections: HashMap::new(),
            tokens: HashMap::new(),
            followers: Vec::new(),
            socket_group,
            euid: sys::geteuid(),
            read_buffer: vec![0; READ_BUFFER_BYTES],
        })
    }

    /// Accepts waiting clients until one is admitted and registered, under a token from
    /// `next_token` (whose number is its `ConnId`), and returns that token; `None` once no
    /// client waits. A refused client is sent the reason and closed. The caller services the
    /// new connection at once: the client may have written before it was registered.
    #[must_use]
    pub fn accept(&mut self, registry: &Registry, next_token: &mut impl FnMut() -> Token) -> Option<Token> {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if let Err(refusal) = self.admit(&stream) {
                        log::warn!("control connection refused: {refusal}");
                        let _ = stream.write(&protocol::encode_error(&refusal));
                        continue;
                    }
                    let token = next_token();
                    let id = token.0 as ConnId;
                    if let Err(error) = registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
                        log::warn!("control connection: cannot register: {error}");
                        continue;
                    }
                    self.tokens.insert(id, token);
                    self.connections.insert(
                        token,
                        Connection {
                            id,
                            stream,
                            input: Vec::new(),
                            output: Vec::new(),
                            pending: 0,
                            read_closed: false,
                            read_failed: false,
                            last_active: Instant::now(),
                            following: false,
                            discarding: false,
                        },
                    );
                    return Some(token);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return None,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    log::warn!("control socket: accept: {error}");
                    return None;
                }
            }
        }
    }

    /// Whether `token` is one of our connections.
    #[must_use]
    pub fn owns(&self, token: Token) -> bool {
        self.connections.contains_key(&token)
    }

    #[must_use]
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Reads a connection until `WouldBlock` and returns its complete request lines, parsed.
    /// An oversize request becomes an error to answer, and the rest of it is skipped up to its
    /// newline. Closes nothing: once the driver has handed the requests on, it calls
    /// [`ControlServer::settle`].
    #[must_use]
    pub fn service(&mut self, token: Token) -> Option<Serviced> {
        let connection = self.connections.get_mut(&token)?;
        let mut requests = Vec::new();
        loop {
            match connection.stream.read(&mut self.read_buffer) {
                Ok(0) => {
                    connection.read_closed = true;
                    break;
                }
                Ok(n) => {
                    let mut chunk = &self.read_buffer[..n];
                    if connection.discarding {
                        // Skip the rest of an oversize request, up to its newline.
                        match chunk.iter().position(|&byte| byte == b'\n') {
                            Some(newline) => {
                                connection.discarding = false;
                                chunk = &chunk[newline + 1..];
                            }
                            None => continue,
                        }
                    }
                    connection.input.extend_from_slice(chunk);
                    while let Some(newline) = connection.input.iter().position(|&byte| byte == b'\n') {
                        let line: Vec<u8> = connection.input.drain(..=newline).collect();
                        if line.len() <= MAX_REQUEST_BYTES {
                            requests.extend(parse_line(connection.id, &line));
                        } else {
                            requests.push(Err(oversize()));
                        }
                    }
                    if connection.input.len() > MAX_REQUEST_BYTES {
                        connection.input.clear();
                        connection.discarding = true;
                        requests.push(Err(oversize()));
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    log::debug!("control connection: read: {error}");
                    connection.read_failed = true;
                    break;
                }
            }
        }
        Some(Serviced { conn: connection.id, requests })
    }

    /// Counts a request of `conn` as handed on: in flight (so the connection is not idle and
    /// stays open for the answer) until a [`ControlServer::send`] that `answers` it.
    pub fn begin_request(&mut self, conn: ConnId) {
        if let Some(connection) = self.connection_mut(conn) {
            connection.pending += 1;
            connection.last_active = Instant::now();
        }
    }

    /// After the requests from [`ControlServer::service`] are handed on: writes what is
    /// queued, and closes the connection if its read failed, or if its client has left and
    /// everything is answered and sent.
    #[must_use = "closed connections must reach the core as Input::ConnClosed"]
    pub fn settle(&mut self, registry: &Registry, conn: ConnId) -> Vec<ConnId> {
        let Some(&token) = self.tokens.get(&conn) else { return Vec::new() };
        let mut closed: Vec<ConnId> = self.flush(registry, token).into_iter().collect();
        if self.connections.get(&token).is_some_and(|connection| connection.read_failed || connection.done()) {
            closed.extend(self.close(registry, token));
        }
        closed
    }

    /// Queues bytes for a connection and writes what the socket takes. `answers` marks the
    /// answer to a request counted by [`ControlServer::begin_request`]. A client that falls
    /// behind by more than its backlog is dropped.
    #[must_use = "closed connections must reach the core as Input::ConnClosed"]
    pub fn send(&mut self, registry: &Registry, conn: ConnId, bytes: &[u8], answers: bool) -> Vec<ConnId> {
        let Some(&token) = self.tokens.get(&conn) else { return Vec::new() };
        let Some(connection) = self.connections.get_mut(&token) else { return Vec::new() };
        if answers {
            connection.pending = connection.pending.saturating_sub(1);
            connection.last_active = Instant::now();
        }
        let limit = if connection.following { MAX_FOLLOW_BACKLOG } else { MAX_REPLY_BACKLOG };
        if connection.output.len() + bytes.len() > limit {
            log::warn!(
                "control connection {conn}: client fell {} bytes behind; dropping it",
                connection.output.len() + bytes.len()
            );
            return self.close(registry, token).into_iter().collect();
        }
        connection.output.extend_from_slice(bytes);
        let mut closed: Vec<ConnId> = self.flush(registry, token).into_iter().collect();
        if self.connections.get(&token).is_some_and(Connection::done) {
            closed.extend(self.close(registry, token));
        }
        closed
    }

    /// Makes `conn` a `tail -f` client of `key`: [`ControlServer::feed_followers`] sends it that
    /// stream's new output, and it may fall `MAX_FOLLOW_BACKLOG` behind.
    pub fn follow(&mut self, conn: ConnId, key: FollowKey) {
        let Some(connection) = self.connection_mut(conn) else { return };
        connection.following = true;
        self.followers.push(Follower { conn, key });
    }

    /// Whether connection `conn` is still open.
    #[must_use]
    pub fn owns_conn(&self, conn: ConnId) -> bool {
        self.tokens.get(&conn).is_some_and(|token| self.connections.contains_key(token))
    }

    /// Marks `conn` as a following client that the driver feeds itself (`ctl events -f`): never
    /// idle, and dropped when it falls `MAX_FOLLOW_BACKLOG` behind.
    pub fn mark_following(&mut self, conn: ConnId) {
        if let Some(connection) = self.connection_mut(conn) {
            connection.following = true;
        }
    }

    /// Whether anyone follows `key`.
    #[must_use]
    pub fn is_followed(&self, key: FollowKey) -> bool {
        self.followers.iter().any(|follower| follower.key == key)
    }

    /// Sends new output of `key` to its followers.
    #[must_use = "closed connections must reach the core as Input::ConnClosed"]
    pub fn feed_followers(&mut self, registry: &Registry, key: FollowKey, bytes: &[u8]) -> Vec<ConnId> {
        let line = protocol::encode_data(bytes);
        let conns: Vec<ConnId> =
            self.followers.iter().filter(|follower| follower.key == key).map(|follower| follower.conn).collect();
        let mut closed = Vec::new();
        for conn in conns {
            closed.extend(self.send(registry, conn, &line, false));
        }
        closed
    }

    /// The earliest time an idle connection must be closed, for the poll timeout.
    #[must_use]
    pub fn next_idle_deadline(&self) -> Option<Instant> {
        self.connections.values().filter_map(Connection::idle_deadline).min()
    }

    /// Closes the connections idle for `IDLE_TIMEOUT` or longer at `now`.
    #[must_use = "closed connections must reach the core as Input::ConnClosed"]
    pub fn close_idle(&mut self, registry: &Registry, now: Instant) -> Vec<ConnId> {
        let idle: Vec<Token> = self
            .connections
            .iter()
            .filter(|(_, connection)| connection.idle_deadline().is_some_and(|deadline| deadline <= now))
            .map(|(&token, _)| token)
            .collect();
        let mut closed = Vec::new();
        for token in idle {
            log::debug!("control connection {}: idle for {IDLE_TIMEOUT:?}; closing it", token.0);
            closed.extend(self.close(registry, token));
        }
        closed
    }

    /// At exit: one write of what each connection has queued. Best effort, never waiting: the
    /// client of `shutdown` waits for its answer.
    pub fn finish(&mut self) {
        for connection in self.connections.values_mut() {
            let _ = connection.stream.write(&connection.output);
        }
    }

    /// At exit: removes the socket file.
    pub fn remove_socket(&self) {
        if let Err(error) = sys::remove_if_exists(&self.path) {
            log::warn!("cannot remove control socket {}: {error}", self.path.display());
        }
    }

    fn connection_mut(&mut self, conn: ConnId) -> Option<&mut Connection> {
        self.tokens.get(&conn).and_then(|token| self.connections.get_mut(token))
    }

    /// Writes what the socket takes of the queued output; closes the connection if the write
    /// fails.
    fn flush(&mut self, registry: &Registry, token: Token) -> Option<ConnId> {
        let connection = self.connections.get_mut(&token)?;
        while !connection.output.is_empty() {
            match connection.stream.write(&connection.output) {
                Ok(0) => break,
                Ok(n) => {
                    connection.output.drain(..n);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    log::debug!("control connection {}: write: {error}", connection.id);
                    return self.close(registry, token);
                }
            }
        }
        None
    }

    fn close(&mut self, registry: &Registry, token: Token) -> Option<ConnId> {
        let mut connection = self.connections.remove(&token)?;
        let _ = registry.deregister(&mut connection.stream);
        self.tokens.remove(&connection.id);
        self.followers.retain(|follower| follower.conn != connection.id);
        Some(connection.id)
    }

    /// Checks a new connection: the connection limit, then the peer's credentials (root, our own
    /// uid, or a member of `socket_group`).
    fn admit(&self, stream: &UnixStream) -> Result<(), String> {
        if self.tokens.len() >= MAX_CONNECTIONS {
            return Err(format!("too many control connections (limit {MAX_CONNECTIONS}); try again later"));
        }
        let (pid, uid, gid) =
            sys::peer_credentials(stream.as_raw_fd()).map_err(|error| format!("SO_PEERCRED: {error}"))?;
        if uid == 0 || uid == self.euid {
            return Ok(());
        }
        if let Some(group) = &self.socket_group {
            if gid == group.gid || users::uid_in_group(uid, group) {
                return Ok(());
            }
        }
        Err(format!(
            "permission denied: uid {uid} (pid {pid}) is not root, not the daemon's uid {}{}",
            self.euid,
            if self.socket_group.is_some() {
                " and not in socket_group"
            } else {
                " (set socket_group to allow a group)"
            }
        ))
    }
}

impl Connection {
    /// The client has left, and everything is answered and sent.
    fn done(&self) -> bool {
        self.read_closed && self.pending == 0 && self.output.is_empty()
    }

    /// When the connection becomes idle enough to close, if it stays as it is now: `None` while
    /// it has a request in flight or follows a `tail -f`.
    fn idle_deadline(&self) -> Option<Instant> {
        (self.pending == 0 && !self.following).then(|| self.last_active + IDLE_TIMEOUT)
    }
}

/// One request line: `None` for a blank line, else the request or the error to answer with.
/// Public for the fuzz target (`fuzz/fuzz_targets/control.rs`) only.
#[doc(hidden)]
pub fn parse_line(conn: ConnId, line: &[u8]) -> Option<Result<ControlRequest, String>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let request = protocol::parse_request(line);
    if let Err(error) = &request {
        log::debug!("control connection {conn}: {error}");
    }
    Some(request)
}

fn oversize() -> String {
    format!("request longer than {MAX_REQUEST_BYTES} bytes; ignored")
}

/// Binds the control socket, refusing when a live daemon answers on it and replacing a stale
/// socket file left by a dead one. The socket is mode 0600, or 0660 and owned by
/// `socket_group` when one is set; its directory must not be world-writable.
fn bind_socket(path: &Path, group: Option<&Group>) -> Result<UnixListener, String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|error| format!("control socket directory {}: {error}", dir.display()))?;
        let mode = std::fs::metadata(dir).map(|meta| meta.mode()).unwrap_or(0);
        // World-writable is fine with the sticky bit (/tmp): nobody else can then unlink or
        // rename what we create there. Squatting (creating the path first) is checked below.
        if mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return Err(format!(
                "control socket {}: directory {} is world-writable without the sticky bit, so anyone could \
                 replace the socket; put it in a directory only sv-lite's user can write (e.g. /run/sv-lite/sv-lite.sock)",
                path.display(),
                dir.display()
            ));
        }
    }
    match std::fs::symlink_metadata(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(format!("control socket {}: {error}", path.display())),
        Ok(meta) => {
            if !meta.file_type().is_socket() {
                return Err(format!(
                    "control socket {}: a file that is not a socket is in the way; refusing to replace it",
                    path.display()
                ));
            }
            if meta.uid() != sys::geteuid() {
                return Err(format!(
                    "control socket {}: it exists and belongs to uid {}, not to us (uid {}); refusing to replace \
                     someone else's socket. Remove it if it is stale, or use another socket (-s)",
                    path.display(),
                    meta.uid(),
                    sys::geteuid()
                ));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "control socket {}: another sv-lite is running and listening on it; stop it first or use another socket (-s)",
                    path.display()
                ));
            }
            log::info!("removing stale control socket {}", path.display());
            sys::remove_if_exists(path)
                .map_err(|error| format!("control socket {}: cannot remove stale file: {error}", path.display()))?;
        }
    }
    let listener =
        UnixListener::bind(path).map_err(|error| format!("control socket {}: cannot bind: {error}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|error| format!("control socket {}: cannot set mode {mode:o}: {error}", path.display()))?;
    if let Some(group) = group {
        std::os::unix::fs::chown(path, None, Some(group.gid)).map_err(|error| {
            format!("control socket {}: cannot give it to group {}: {error}", path.display(), group.gid)
        })?;
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::Shutdown;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream as StdUnixStream;

    use mio::Poll;

    use crate::core::Request;

    const LISTENER: Token = Token(1);
    const FIRST: Token = Token(10);

    /// A server bound in a fresh directory (short: socket paths are limited to 107 bytes), and
    /// one client it has accepted as connection 10.
    fn connected(name: &str) -> (Poll, ControlServer, StdUnixStream, PathBuf) {
        let dir = std::env::temp_dir().join(format!("svl-control-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let poll = Poll::new().unwrap();
        let path = dir.join("sock");
        let mut server = ControlServer::bind(&path, None, poll.registry(), LISTENER).unwrap();
        let client = StdUnixStream::connect(&path).unwrap();
        assert_eq!(server.accept(poll.registry(), &mut || FIRST), Some(FIRST));
        assert_eq!(server.accept(poll.registry(), &mut || unreachable!("nobody else waits")), None);
        assert!(server.owns(FIRST));
        (poll, server, client, dir)
    }

    fn read_line(client: &StdUnixStream) -> String {
        let mut line = String::new();
        BufReader::new(client).read_line(&mut line).unwrap();
        line
    }

    #[test]
    fn requests_come_in_order_and_an_oversize_one_is_skipped_to_its_newline() {
        let (_poll, mut server, mut client, dir) = connected("order");
        let mut bytes = b"{\"op\":\"status\"}\n \r\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', 80 * 1024));
        client.write_all(&bytes).unwrap();
        let Serviced { conn, requests } = server.service(FIRST).unwrap();
        assert_eq!(conn, FIRST.0 as ConnId);
        let oversize = Err("request longer than 65536 bytes; ignored".to_string());
        assert_eq!(requests, vec![Ok(ControlRequest::Core(Request::Status { targets: Vec::new() })), oversize]);
        // The rest of the oversize line is skipped; what follows its newline counts again.
        let mut bytes = vec![b'x'; 80 * 1024];
        bytes.extend_from_slice(b"\nnot json\n{\"op\":\"pid\"}\n{\"op\":");
        client.write_all(&bytes).unwrap();
        let requests = server.service(FIRST).unwrap().requests;
        assert_eq!(requests.len(), 2, "{requests:?}");
        assert!(requests[0].as_ref().is_err_and(|error| error.starts_with("malformed request")), "{requests:?}");
        assert_eq!(requests[1], Ok(ControlRequest::DaemonPid));
        // The unfinished request waits for the rest of its line.
        client.write_all(b"\"reload\"}\n").unwrap();
        assert_eq!(server.service(FIRST).unwrap().requests, vec![Ok(ControlRequest::Reload)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_client_that_leaves_is_closed_once_answered() {
        let (poll, mut server, mut client, dir) = connected("leave");
        client.write_all(b"{\"op\":\"pid\"}\n").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let Serviced { conn, requests } = server.service(FIRST).unwrap();
        assert_eq!(requests, vec![Ok(ControlRequest::DaemonPid)]);
        server.begin_request(conn);
        assert_eq!(server.settle(poll.registry(), conn), Vec::<ConnId>::new(), "an answer is owed");
        assert_eq!(server.send(poll.registry(), conn, b"{\"ok\":true}\n", true), vec![conn]);
        assert!(!server.owns(FIRST));
        assert_eq!(server.connection_count(), 0);
        assert_eq!(read_line(&client), "{\"ok\":true}\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_a_connection_with_nothing_in_flight_goes_idle() {
        let (poll, mut server, _client, dir) = connected("idle");
        let conn = FIRST.0 as ConnId;
        let deadline = server.next_idle_deadline().unwrap();
        server.begin_request(conn);
        assert_eq!(server.next_idle_deadline(), None);
        assert!(server.close_idle(poll.registry(), deadline + IDLE_TIMEOUT).is_empty());
        assert!(server.send(poll.registry(), conn, b"{\"ok\":true}\n", true).is_empty());
        let deadline = server.next_idle_deadline().unwrap();
        assert!(server.close_idle(poll.registry(), deadline - Duration::from_millis(1)).is_empty());
        assert_eq!(server.close_idle(poll.registry(), deadline), vec![conn]);
        assert_eq!(server.connection_count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_follower_that_falls_behind_is_dropped() {
        let (poll, mut server, client, dir) = connected("follow");
        let conn = FIRST.0 as ConnId;
        let key = (InstanceId(0), StreamKind::Stdout);
        server.follow(conn, key);
        assert!(server.is_followed(key));
        assert_eq!(server.next_idle_deadline(), None, "a follower is never idle");
        let chunk = vec![b'y'; 16 * 1024];
        let mut closed = Vec::new();
        for _ in 0..1000 {
            closed = server.feed_followers(poll.registry(), key, &chunk);
            if !closed.is_empty() {
                break;
            }
        }
        assert_eq!(closed, vec![conn]);
        assert!(!server.is_followed(key));
        drop(client);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
