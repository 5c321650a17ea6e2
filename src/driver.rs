//! The mio reactor: turns readiness, signals and the clock into core inputs, and core actions
//! into syscalls.
//!
//! One `Poll` in one thread multiplexes the signal self-pipe ([`SIGNALS`]), the control socket
//! ([`CONTROL`]), its connections and every child's stdout/stderr pipe (tokens from a counter).
//! The poll timeout is the core's earliest deadline, so an idle daemon sleeps without waking.
//!
//! Architecture invariant: the driver makes no supervision decisions; it reads the clock once
//! per wake-up and hands everything to `core::Supervisor`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mio::net::{UnixListener, UnixStream};
use mio::unix::pipe::Receiver;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::signal::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;

use crate::config;
use crate::control::{self, ControlRequest, MAX_REQUEST_BYTES};
use crate::core::{Action, ConnId, ExitStatus, Input, InstanceId, Pid, Supervisor};
use crate::output::{ChildOutput, OutputSink, StreamKind};
use crate::spec::{Config, Launch, Sink};
use crate::sys::{self, SpawnOptions, Stream};

const SIGNALS: Token = Token(0);
const CONTROL: Token = Token(1);
const FIRST_DYNAMIC_TOKEN: usize = 2;

/// Bytes a client may leave unread before it is dropped.
const MAX_REPLY_BACKLOG: usize = 4 * 1024 * 1024;
/// Size of the reused read buffer for child pipes and connections.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// What the daemon needs to start.
#[derive(Debug)]
pub struct DaemonOptions {
    pub config_path: PathBuf,
    pub config: Config,
    pub socket_path: PathBuf,
}

/// Runs the daemon until shutdown; returns the process exit code.
pub fn run(options: DaemonOptions) -> Result<u8, String> {
    let mut driver = Driver::new(options)?;
    driver.run()
}

enum Source {
    Child { instance: InstanceId, receiver: Receiver, output: ChildOutput },
    Conn(Connection),
}

struct Connection {
    id: ConnId,
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Requests handed to the core and not yet answered.
    pending: usize,
    /// The client closed its side; close ours once everything is answered and sent.
    read_closed: bool,
}

struct Driver {
    poll: Poll,
    signals: Signals,
    listener: UnixListener,
    socket_path: PathBuf,
    config_path: PathBuf,
    event_log_path: Option<PathBuf>,
    event_log: Option<File>,
    sources: HashMap<Token, Source>,
    conn_tokens: HashMap<ConnId, Token>,
    next_token: usize,
    supervisor: Supervisor,
    reaped: Vec<(Pid, ExitStatus)>,
    read_buffer: Vec<u8>,
    scratch: Vec<u8>,
    exit_code: Option<u8>,
}

impl Driver {
    fn new(options: DaemonOptions) -> Result<Driver, String> {
        let poll = Poll::new().map_err(|error| format!("cannot create poll: {error}"))?;
        // Signals first: before any child exists, so no SIGCHLD is lost.
        let mut signals = Signals::new([SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1])
            .map_err(|error| format!("cannot install signal handlers: {error}"))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|error| format!("cannot register signals: {error}"))?;
        if sys::getpid() != 1 {
            if let Err(error) = sys::set_child_subreaper() {
                log::warn!("cannot become child subreaper: {error}; orphans of programs will not be reaped by sv-lite");
            }
        }
        let mut listener = bind_control_socket(&options.socket_path)?;
        poll.registry()
            .register(&mut listener, CONTROL, Interest::READABLE)
            .map_err(|error| format!("cannot register control socket: {error}"))?;
        let event_log_path = options.config.logfile.clone();
        let event_log = match &event_log_path {
            Some(path) => Some(open_event_log(path)?),
            None => None,
        };
        let now = Instant::now();
        let supervisor = Supervisor::new(&options.config, now, seed());
        log::info!("listening on {}", options.socket_path.display());
        Ok(Driver {
            poll,
            signals,
            listener,
            socket_path: options.socket_path,
            config_path: options.config_path,
            event_log_path,
            event_log,
            sources: HashMap::new(),
            conn_tokens: HashMap::new(),
            next_token: FIRST_DYNAMIC_TOKEN,
            supervisor,
            reaped: Vec::new(),
            read_buffer: vec![0; READ_BUFFER_BYTES],
            scratch: Vec::with_capacity(READ_BUFFER_BYTES),
            exit_code: None,
        })
    }

    fn run(&mut self) -> Result<u8, String> {
        let mut events = Events::with_capacity(256);
        self.drain_actions();
        while self.exit_code.is_none() {
            let timeout = self.supervisor.poll_timeout().map(|deadline| deadline.saturating_duration_since(Instant::now()));
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("poll: {error}"));
            }
            for event in events.iter() {
                match event.token() {
                    SIGNALS => self.handle_signals(),
                    CONTROL => self.accept_connections(),
                    token => self.handle_source(token),
                }
                if self.exit_code.is_some() {
                    break;
                }
            }
            let now = Instant::now();
            self.supervisor.handle_timeout(now);
            self.drain_actions();
        }
        self.finish();
        Ok(self.exit_code.unwrap_or(0))
    }

    fn feed(&mut self, input: Input) {
        self.supervisor.handle_input(Instant::now(), input);
        self.drain_actions();
    }

    fn drain_actions(&mut self) {
        while let Some(action) = self.supervisor.poll_action() {
            match action {
                Action::Spawn { id, name, launch, prefix } => {
                    let input = match self.spawn(id, &name, &launch, prefix) {
                        Ok(pid) => Input::Spawned { id, pid },
                        Err(error) => Input::SpawnFailed { id, error },
                    };
                    self.supervisor.handle_input(Instant::now(), input);
                }
                Action::Kill { pid, signal, group } => {
                    if let Err(error) = sys::kill(pid, signal, group) {
                        log::warn!("cannot send {signal} to {} {pid}: {error}", if group { "process group" } else { "pid" });
                    }
                }
                Action::Reply { conn, reply } => self.send(conn, &control::encode_reply(&reply), true),
                Action::Log { level, message } => self.event(level, &message),
                Action::Exit(code) => self.exit_code = Some(code),
            }
        }
    }

    fn spawn(&mut self, id: InstanceId, name: &str, launch: &Launch, prefix: bool) -> Result<Pid, String> {
        let stdout_sink = open_sink(&launch.stdout, StreamKind::Stdout, name, prefix)?;
        let stderr_sink = open_sink(&launch.stderr, StreamKind::Stderr, name, prefix)?;
        let stream_for = |sink: &Option<OutputSink>| if sink.is_some() { Stream::Pipe } else { Stream::Null };
        let options = SpawnOptions {
            stdin: Stream::Null,
            stdout: stream_for(&stdout_sink),
            stderr: stream_for(&stderr_sink),
            foreground_tty: false,
        };
        let child = sys::spawn(launch, options).map_err(|error| error.to_string())?;
        if let (Some(pipe), Some(sink)) = (child.stdout, stdout_sink) {
            self.watch_pipe(id, Receiver::from(pipe), ChildOutput::new(name.to_string(), StreamKind::Stdout, sink));
        }
        if let (Some(pipe), Some(sink)) = (child.stderr, stderr_sink) {
            self.watch_pipe(id, Receiver::from(pipe), ChildOutput::new(name.to_string(), StreamKind::Stderr, sink));
        }
        Ok(child.pid)
    }

    fn watch_pipe(&mut self, instance: InstanceId, mut receiver: Receiver, output: ChildOutput) {
        let token = self.next_token();
        let registered = receiver
            .set_nonblocking(true)
            .and_then(|()| self.poll.registry().register(&mut receiver, token, Interest::READABLE));
        match registered {
            Ok(()) => {
                self.sources.insert(token, Source::Child { instance, receiver, output });
            }
            Err(error) => log::warn!("{}: cannot watch {}: {error}; its output is lost", output.name, output.stream.as_str()),
        }
    }

    fn next_token(&mut self) -> Token {
        let token = Token(self.next_token);
        self.next_token += 1;
        token
    }

    fn handle_signals(&mut self) {
        // Drain first, then act (signal-hook's pipe.rs: the reverse may lose signals).
        let pending: Vec<i32> = self.signals.pending().collect();
        for signal in pending {
            match signal {
                SIGCHLD => {
                    let mut reaped = std::mem::take(&mut self.reaped);
                    sys::reap_all(&mut reaped);
                    for (pid, status) in reaped.drain(..) {
                        self.feed(Input::Exited { pid, status });
                    }
                    self.reaped = reaped;
                }
                SIGTERM | SIGINT | SIGQUIT => {
                    self.event(log::Level::Info, &format!("received {}", crate::spec::Signal(signal)));
                    self.feed(Input::Shutdown { conn: None });
                }
                SIGHUP => {
                    self.event(log::Level::Info, "received SIGHUP: reloading config");
                    let result = self.load_config();
                    self.feed(Input::Reload { conn: None, result });
                }
                SIGUSR1 => self.reopen_logs(),
                other => log::debug!("ignoring signal {other}"),
            }
        }
    }

    fn load_config(&self) -> Result<Config, String> {
        config::load(&self.config_path).map_err(|errors| errors.to_string())
    }

    fn reopen_logs(&mut self) {
        if let Some(path) = &self.event_log_path {
            match open_event_log(path) {
                Ok(file) => self.event_log = Some(file),
                Err(error) => log::warn!("{error}; keeping the old event log file"),
            }
        }
        self.event(log::Level::Info, "received SIGUSR1: reopened log files");
    }

    fn accept_connections(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let token = self.next_token();
                    let conn_id = token.0 as ConnId;
                    if let Err(error) = self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
                        log::warn!("control connection: cannot register: {error}");
                        continue;
                    }
                    self.conn_tokens.insert(conn_id, token);
                    self.sources.insert(
                        token,
                        Source::Conn(Connection { id: conn_id, stream, input: Vec::new(), output: Vec::new(), pending: 0, read_closed: false }),
                    );
                    // A client may have written before we registered: read now (edge-triggered).
                    self.handle_source(token);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    log::warn!("control socket: accept: {error}");
                    return;
                }
            }
        }
    }

    fn handle_source(&mut self, token: Token) {
        match self.sources.get(&token) {
            Some(Source::Child { .. }) => self.read_child(token),
            Some(Source::Conn(_)) => self.service_connection(token),
            None => {} // Spurious event for a source already gone.
        }
    }

    fn read_child(&mut self, token: Token) {
        let Some(Source::Child { receiver, output, .. }) = self.sources.get_mut(&token) else { return };
        let mut at_eof = false;
        loop {
            match receiver.read(&mut self.read_buffer) {
                Ok(0) => {
                    at_eof = true;
                    break;
                }
                Ok(n) => output.deliver(&self.read_buffer[..n], &mut self.scratch),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    log::warn!("{}: reading {}: {error}", output.name, output.stream.as_str());
                    at_eof = true;
                    break;
                }
            }
        }
        if at_eof {
            if let Some(Source::Child { mut receiver, mut output, instance }) = self.sources.remove(&token) {
                output.finish(&mut self.scratch);
                let _ = self.poll.registry().deregister(&mut receiver);
                log::debug!("{} ({instance:?}): {} closed", output.name, output.stream.as_str());
            }
        }
    }

    fn service_connection(&mut self, token: Token) {
        let mut requests = Vec::new();
        let mut close = false;
        {
            let Some(Source::Conn(conn)) = self.sources.get_mut(&token) else { return };
            loop {
                match conn.stream.read(&mut self.read_buffer) {
                    Ok(0) => {
                        conn.read_closed = true;
                        break;
                    }
                    Ok(n) => {
                        conn.input.extend_from_slice(&self.read_buffer[..n]);
                        while let Some(newline) = conn.input.iter().position(|&byte| byte == b'\n') {
                            let line: Vec<u8> = conn.input.drain(..=newline).collect();
                            requests.push(line);
                        }
                        if conn.input.len() > MAX_REQUEST_BYTES {
                            conn.input.clear();
                            requests.push(Vec::new());
                            close = true;
                            break;
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(error) => {
                        log::debug!("control connection: read: {error}");
                        close = true;
                        break;
                    }
                }
            }
        }
        let conn_id = token.0 as ConnId;
        for line in requests {
            if close && line.is_empty() {
                let message = format!("request longer than {MAX_REQUEST_BYTES} bytes; closing the connection");
                self.send(conn_id, &control::encode_error(&message), false);
                continue;
            }
            self.handle_request_line(conn_id, &line);
        }
        self.flush(token);
        let Some(Source::Conn(conn)) = self.sources.get(&token) else { return };
        if close || (conn.read_closed && conn.pending == 0 && conn.output.is_empty()) {
            self.close_connection(token);
        }
    }

    fn handle_request_line(&mut self, conn: ConnId, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let request = match control::parse_request(line) {
            Ok(request) => request,
            Err(error) => {
                log::debug!("control connection {conn}: {error}");
                self.send(conn, &control::encode_error(&error), false);
                return;
            }
        };
        if let Some(Source::Conn(connection)) = self.conn_tokens.get(&conn).and_then(|token| self.sources.get_mut(token)) {
            connection.pending += 1;
        }
        let input = match request {
            ControlRequest::Core(request) => Input::Request { conn, request },
            ControlRequest::Shutdown => Input::Shutdown { conn: Some(conn) },
            ControlRequest::Reload => {
                self.event(log::Level::Info, "reload requested over the control socket");
                Input::Reload { conn: Some(conn), result: self.load_config() }
            }
        };
        self.feed(input);
    }

    /// Queues bytes for a connection and writes what the socket takes. `answers` marks a reply
    /// to a request counted in `pending`.
    fn send(&mut self, conn: ConnId, bytes: &[u8], answers: bool) {
        let Some(&token) = self.conn_tokens.get(&conn) else { return };
        let Some(Source::Conn(connection)) = self.sources.get_mut(&token) else { return };
        if answers {
            connection.pending = connection.pending.saturating_sub(1);
        }
        if connection.output.len() + bytes.len() > MAX_REPLY_BACKLOG {
            log::warn!("control connection {conn}: client is not reading its replies; dropping it");
            self.close_connection(token);
            return;
        }
        connection.output.extend_from_slice(bytes);
        self.flush(token);
        if let Some(Source::Conn(connection)) = self.sources.get(&token) {
            if connection.read_closed && connection.pending == 0 && connection.output.is_empty() {
                self.close_connection(token);
            }
        }
    }

    fn flush(&mut self, token: Token) {
        let Some(Source::Conn(connection)) = self.sources.get_mut(&token) else { return };
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
                    self.close_connection(token);
                    return;
                }
            }
        }
    }

    fn close_connection(&mut self, token: Token) {
        if let Some(Source::Conn(mut connection)) = self.sources.remove(&token) {
            let _ = self.poll.registry().deregister(&mut connection.stream);
            self.conn_tokens.remove(&connection.id);
            self.supervisor.handle_input(Instant::now(), Input::ConnClosed { conn: connection.id });
        }
    }

    /// Writes one event: through `log` always, and to the event log file at info and above.
    fn event(&mut self, level: log::Level, message: &str) {
        log::log!(level, "{message}");
        if level <= log::Level::Info {
            if let Some(file) = &mut self.event_log {
                let line = format!("{} {:<5} {message}\n", utc_timestamp(SystemTime::now()), level);
                if let Err(error) = file.write_all(line.as_bytes()) {
                    log::warn!("event log: write failed: {error}");
                }
            }
        }
    }

    /// Last duties before exit: deliver pending replies, drain output, remove the socket.
    fn finish(&mut self) {
        let tokens: Vec<Token> = self.sources.keys().copied().collect();
        for token in tokens {
            match self.sources.get_mut(&token) {
                Some(Source::Conn(connection)) => {
                    // Best effort, briefly blocking: the client waits for "shut down".
                    let _ = connection.stream.write(&connection.output);
                }
                Some(Source::Child { .. }) => self.read_child(token),
                None => {}
            }
        }
        if let Err(error) = sys::remove_if_exists(&self.socket_path) {
            log::warn!("cannot remove control socket {}: {error}", self.socket_path.display());
        }
    }
}

fn open_sink(sink: &Sink, stream: StreamKind, name: &str, prefix: bool) -> Result<Option<OutputSink>, String> {
    match sink {
        Sink::Discard => Ok(None),
        Sink::Forward => Ok(Some(OutputSink::forward(stream, name, prefix))),
        Sink::File(path) => OutputSink::file(path)
            .map(Some)
            .map_err(|error| format!("{} file {}: {error}", stream.as_str(), path.display())),
    }
}

fn open_event_log(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| format!("event log {}: cannot open: {error}", path.display()))
}

/// Binds the control socket, refusing when a live daemon answers on it and replacing a stale
/// socket file left by a dead one. The socket is made mode 0600.
fn bind_control_socket(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "control socket {}: another sv-lite is running and listening on it; stop it first or use another socket (-s)",
                path.display()
            ));
        }
        log::info!("removing stale control socket {}", path.display());
        sys::remove_if_exists(path).map_err(|error| format!("control socket {}: cannot remove stale file: {error}", path.display()))?;
    }
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|error| format!("control socket directory {}: {error}", dir.display()))?;
    }
    let listener = UnixListener::bind(path).map_err(|error| format!("control socket {}: cannot bind: {error}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|error| format!("control socket {}: cannot set mode 0600: {error}", path.display()))?;
    Ok(listener)
}

fn seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_nanos() as u64).unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
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

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's method).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
