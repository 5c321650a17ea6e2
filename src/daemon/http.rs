//! The read-only HTTP endpoint (`http:`): its listener and connections, in the daemon's `Poll`.
//!
//! I/O and framing only: requests are parsed with httparse and handed to the driver's `respond`
//! as a [`Request`]; what a path means is decided there. HTTP/1.1 with keep-alive and
//! pipelining (answers in order), GET and HEAD only, no request bodies.
//!
//! Bounded like the control socket: [`MAX_CONNECTIONS`] connections (one more gets a 503 and is
//! closed), [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`] a request (431), [`MAX_OUTPUT_BYTES`] of
//! unread answers (then the client is dropped), and [`IDLE_TIMEOUT`] from the connection or its
//! last complete request: bytes trickled without finishing a request do not count (slowloris).
//! A connection answered with an error is closed; its writing side first, then it is read and
//! discarded until the client leaves, so the client gets the answer rather than a reset.
//!
//! Architecture invariant: nothing here blocks. A stalled client costs that client.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use crate::spec::{HttpListen, SocketSpec};

/// Open connections at most; one more is answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 64;
/// A request's line and headers at most (431 past it).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Headers a request at most (431 past it).
pub const MAX_HEADERS: usize = 32;
/// Answers a client may leave unread before it is dropped.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// A connection without a complete request for this long is closed.
/// Requests answered for one connection per readiness event.
pub const ANSWERS_PER_EVENT: usize = 4;
/// Bytes of requests a client may have waiting (pipelined behind an unread answer).
pub const MAX_PIPELINED_BYTES: usize = 64 * 1024;
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A request, as the driver routes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Without the query string.
    pub path: String,
}

/// The driver's answer. For HEAD, the body is dropped and its length kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The listener and its open connections.
#[derive(Debug)]
pub struct HttpServer {
    listener: Listener,
    connections: Vec<(Token, Connection)>,
}

#[derive(Debug)]
enum Listener {
    Tcp(TcpListener),
    /// The path is removed at exit.
    Unix(UnixListener, PathBuf),
}

#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

#[derive(Debug)]
struct Connection {
    stream: Stream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// When the connection opened or last finished a request, for the idle timeout.
    since: Instant,
    /// Close once the output is written: nothing more is parsed.
    closing: bool,
    /// Our side is shut down; the client's bytes are discarded until it leaves.
    draining: bool,
    /// The client has closed its side.
    eof: bool,
    /// Registered for WRITABLE too, while output waits.
    writable: bool,
}

const PLAIN: &str = "text/plain; charset=utf-8";

impl HttpServer {
    /// Binds `listen` (through `sockets::bind`: `SO_REUSEADDR` for TCP; for a Unix socket, a
    /// stale socket file is replaced, a live one or any other file refused) and registers it.
    pub fn bind(listen: &HttpListen, registry: &Registry, token: Token) -> Result<HttpServer, String> {
        let spec = match listen {
            HttpListen::Tcp(address) => SocketSpec::Tcp(*address),
            HttpListen::Unix(path) => SocketSpec::Unix(path.clone()),
        };
        let (fd, _) = super::sockets::bind(&spec).map_err(|error| format!("http: {error}"))?;
        let mut listener = match listen {
            HttpListen::Tcp(_) => {
                let listener = std::net::TcpListener::from(fd);
                let _ = listener.set_nonblocking(true);
                Listener::Tcp(TcpListener::from_std(listener))
            }
            HttpListen::Unix(path) => {
                let listener = std::os::unix::net::UnixListener::from(fd);
                let _ = listener.set_nonblocking(true);
                Listener::Unix(UnixListener::from_std(listener), path.clone())
            }
        };
        let source: &mut dyn Source = match &mut listener {
            Listener::Tcp(listener) => listener,
            Listener::Unix(listener, _) => listener,
        };
        registry
            .register(source, token, Interest::READABLE)
            .map_err(|error| format!("http: cannot register the listener: {error}"))?;
        Ok(HttpServer { listener, connections: Vec::new() })
    }

    /// The bound TCP address (the port the kernel chose for port 0); `None` for a Unix socket.
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.listener {
            Listener::Tcp(listener) => listener.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    /// Accepts every waiting client, each registered under a token from `next_token`. Past
    /// [`MAX_CONNECTIONS`], a client is sent a 503 (best effort) and closed.
    pub fn accept(&mut self, registry: &Registry, next_token: &mut dyn FnMut() -> Token) {
        loop {
            let accepted = match &self.listener {
                Listener::Tcp(listener) => listener.accept().map(|(stream, _)| Stream::Tcp(stream)),
                Listener::Unix(listener, _) => listener.accept().map(|(stream, _)| Stream::Unix(stream)),
            };
            let mut stream = match accepted {
                Ok(stream) => stream,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    log::warn!("http: accept: {error}");
                    return;
                }
            };
            if self.connections.len() >= MAX_CONNECTIONS {
                let mut refusal = Vec::new();
                encode(&mut refusal, 503, PLAIN, b"too many connections\n", false, true);
                let _ = stream.write(&refusal);
                continue;
            }
            let token = next_token();
            if let Err(error) = registry.register(stream.source(), token, Interest::READABLE) {
                log::warn!("http: cannot register a connection: {error}");
                continue;
            }
            let connection = Connection {
                stream,
                input: Vec::new(),
                output: Vec::new(),
                since: Instant::now(),
                closing: false,
                draining: false,
                eof: false,
                writable: false,
            };
            self.connections.push((token, connection));
        }
    }

    /// Whether `token` is one of our connections.
    #[must_use]
    pub fn owns(&self, token: Token) -> bool {
        self.connections.iter().any(|(owned, _)| *owned == token)
    }

    #[must_use]
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// A readiness event on a connection: reads to `WouldBlock`, answers each complete request
    /// in order through `respond`, writes what the socket takes, and closes the connection when
    /// it is done, failed or fell too far behind.
    pub fn handle(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        respond: &mut dyn FnMut(&Request) -> Response,
    ) {
        let Some(index) = self.connections.iter().position(|(owned, _)| *owned == token) else { return };
        let connection = &mut self.connections[index].1;
        let mut keep = connection.service(now, respond) && connection.flush(registry, token);
        // Pipelined requests are answered one at a time, each once the previous answer is
        // written, and at most `ANSWERS_PER_EVENT` per event: a client cannot queue up a
        // thousand scrapes in one read and hold the loop.
        let mut answered = 1;
        while keep && connection.output.is_empty() && !connection.input.is_empty() && !connection.closing {
            if answered == ANSWERS_PER_EVENT {
                // More next turn: asking for WRITABLE again makes the poll report it at once.
                keep = registry
                    .reregister(connection.stream.source(), token, Interest::READABLE | Interest::WRITABLE)
                    .is_ok();
                connection.writable = true;
                break;
            }
            let before = connection.input.len();
            connection.answer(now, respond);
            keep = connection.flush(registry, token);
            if connection.input.len() == before {
                break; // An incomplete request: wait for its bytes.
            }
            answered += 1;
        }
        if !keep {
            let (_, mut connection) = self.connections.swap_remove(index);
            let _ = registry.deregister(connection.stream.source());
        }
    }

    /// The earliest time a connection goes idle, for the poll timeout.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.connections.iter().map(|(_, connection)| connection.since + IDLE_TIMEOUT).min()
    }

    /// Closes the connections without a complete request for [`IDLE_TIMEOUT`] at `now`.
    pub fn close_idle(&mut self, registry: &Registry, now: Instant) {
        self.connections.retain_mut(|(_, connection)| {
            let keep = connection.since + IDLE_TIMEOUT > now;
            if !keep {
                let _ = registry.deregister(connection.stream.source());
            }
            keep
        });
    }

    /// At exit: removes a Unix socket file.
    pub fn remove_socket(&self) {
        if let Listener::Unix(_, path) = &self.listener {
            let _ = crate::sys::remove_if_exists(path);
        }
    }
}

impl Connection {
    /// Reads and answers what came; `false` when the connection is to be closed.
    fn service(&mut self, now: Instant, respond: &mut dyn FnMut(&Request) -> Response) -> bool {
        let mut buffer = [0u8; 4096];
        loop {
            match self.stream.read(&mut buffer) {
                Ok(0) if self.draining => return false,
                Ok(0) => {
                    // Answer what came, then close.
                    self.closing = true;
                    self.eof = true;
                    return true;
                }
                Ok(_) if self.closing => {}
                Ok(n) => {
                    self.input.extend_from_slice(&buffer[..n]);
                    self.answer(now, respond);
                    if self.output.len() > MAX_OUTPUT_BYTES || self.input.len() > MAX_PIPELINED_BYTES {
                        log::debug!(
                            "http: a client left {} bytes unread and {} bytes of requests waiting; dropping it",
                            self.output.len(),
                            self.input.len()
                        );
                        return false;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return true,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Answers the complete requests in `input`, in order, until one needs more bytes or ends
    /// the connection.
    fn answer(&mut self, now: Instant, respond: &mut dyn FnMut(&Request) -> Response) {
        // One answer at a time: the next waits until this one is written.
        if !self.output.is_empty() {
            return;
        }
        while !self.closing && !self.input.is_empty() && self.output.is_empty() {
            match parse(&self.input) {
                Parsed::Partial => {
                    if self.input.len() > MAX_HEAD_BYTES {
                        self.fail(431);
                    }
                    return;
                }
                Parsed::Error(status) => self.fail(status),
                Parsed::Complete { length, request, keep_alive, body } => {
                    self.input.drain(..length);
                    self.since = now;
                    if body {
                        self.fail(413);
                        return;
                    }
                    self.closing = !keep_alive;
                    if request.method != "GET" && request.method != "HEAD" {
                        encode(&mut self.output, 405, PLAIN, b"only GET and HEAD\n", keep_alive, true);
                        continue;
                    }
                    let response = respond(&request);
                    let body = request.method == "GET";
                    encode_response(&mut self.output, &response, keep_alive, body);
                }
            }
        }
    }

    /// Answers with an error status and closes.
    fn fail(&mut self, status: u16) {
        self.input.clear();
        self.closing = true;
        encode(&mut self.output, status, PLAIN, reason(status).as_bytes(), false, true);
    }

    /// Writes what the socket takes, with WRITABLE interest while output waits; `false` when the
    /// connection is to be closed.
    fn flush(&mut self, registry: &Registry, token: Token) -> bool {
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(0) => return false,
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if self.closing && self.output.is_empty() && self.eof {
            return false;
        }
        if self.closing && self.output.is_empty() && !self.draining {
            // Lingering close: the client reads the answer instead of a reset for its unread bytes.
            self.draining = true;
            self.stream.shutdown();
        }
        let writable = !self.output.is_empty();
        if writable != self.writable {
            self.writable = writable;
            let interest = if writable { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            if registry.reregister(self.stream.source(), token, interest).is_err() {
                return false;
            }
        }
        true
    }
}

impl Stream {
    fn source(&mut self) -> &mut dyn Source {
        match self {
            Stream::Tcp(stream) => stream,
            Stream::Unix(stream) => stream,
        }
    }

    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.read(buffer),
            Stream::Unix(stream) => stream.read(buffer),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write(bytes),
            Stream::Unix(stream) => stream.write(bytes),
        }
    }

    fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(stream) => stream.shutdown(Shutdown::Write),
            Stream::Unix(stream) => stream.shutdown(Shutdown::Write),
        };
    }
}

/// One request parsed from the front of a connection's input. Public, with [`parse`], for the
/// fuzz target (`fuzz/fuzz_targets/http.rs`) only.
#[doc(hidden)]
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Partial,
    /// The status to answer with before closing: 400 for garbage, 431 for too many headers.
    Error(u16),
    Complete {
        /// Bytes of the request line and headers.
        length: usize,
        request: Request,
        keep_alive: bool,
        /// It has a body (Content-Length above 0, or Transfer-Encoding): refused.
        body: bool,
    },
}

/// The request at the front of `input`, as `Connection::answer` sees it.
#[doc(hidden)]
#[must_use]
pub fn parse(input: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let length = match parsed.parse(input) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Error(431),
        Err(_) => return Parsed::Error(400),
    };
    if length > MAX_HEAD_BYTES {
        return Parsed::Error(431);
    }
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version) else {
        return Parsed::Error(400);
    };
    let mut keep_alive = version == 1;
    let mut body = false;
    for header in parsed.headers.iter() {
        let value = std::str::from_utf8(header.value).unwrap_or("").trim();
        if header.name.eq_ignore_ascii_case("connection") {
            for option in value.split(',').map(str::trim) {
                if option.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if option.eq_ignore_ascii_case("keep-alive") && version == 0 {
                    keep_alive = true;
                }
            }
        } else if header.name.eq_ignore_ascii_case("content-length") {
            match value.parse::<u64>() {
                Ok(0) => {}
                Ok(_) => body = true,
                Err(_) => return Parsed::Error(400),
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            body = true;
        }
    }
    let path = target.split('?').next().unwrap_or(target);
    let request = Request { method: method.to_string(), path: path.to_string() };
    Parsed::Complete { length, request, keep_alive, body }
}

fn encode_response(output: &mut Vec<u8>, response: &Response, keep_alive: bool, body: bool) {
    let Response { status, content_type, body: bytes } = response;
    encode(output, *status, content_type, bytes, keep_alive, body);
}

/// Appends one response: status line, Content-Type, Content-Length, Connection (and `Allow`
/// for a 405), then the body unless `body` is false (HEAD).
fn encode(output: &mut Vec<u8>, status: u16, content_type: &str, bytes: &[u8], keep_alive: bool, body: bool) {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let allow = if status == 405 { "Allow: GET, HEAD\r\n" } else { "" };
    let _ = write!(
        output,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: {connection}\r\n\r\n",
        reason(status),
        bytes.len()
    );
    if body {
        output.extend_from_slice(bytes);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn complete(input: &[u8]) -> (usize, Request, bool, bool) {
        match parse(input) {
            Parsed::Complete { length, request, keep_alive, body } => (length, request, keep_alive, body),
            other => panic!("{other:?}"),
        }
    }

    fn get(path: &str) -> Request {
        Request { method: "GET".to_string(), path: path.to_string() }
    }

    #[test]
    fn a_request_is_its_method_and_path_without_the_query() {
        let input = b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /next";
        assert_eq!(complete(input), (38, get("/metrics"), true, false));
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost: a\r\n"), Parsed::Partial);
    }

    #[test]
    fn keep_alive_follows_the_version_and_the_connection_header() {
        assert!(!complete(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").2);
        assert!(!complete(b"GET / HTTP/1.0\r\n\r\n").2);
        assert!(complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").2);
        assert!(!complete(b"GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n").2);
    }

    #[test]
    fn bodies_garbage_and_too_many_headers_are_refused() {
        assert!(complete(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n").3);
        assert!(complete(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").3);
        assert!(!complete(b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").3);
        assert_eq!(parse(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), Parsed::Error(400));
        assert_eq!(parse(b"\x16\x03\x01 hello\r\n\r\n"), Parsed::Error(400));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            many.extend_from_slice(b"X: y\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many), Parsed::Error(431));
    }

    #[test]
    fn responses_are_exact_and_head_keeps_the_length() {
        let response = Response { status: 200, content_type: PLAIN, body: b"ok\n".to_vec() };
        let mut output = Vec::new();
        encode_response(&mut output, &response, true, true);
        encode_response(&mut output, &response, false, false);
        encode(&mut output, 405, PLAIN, b"", true, true);
        let expected = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\
                        Connection: keep-alive\r\n\r\nok\n\
                        HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\
                        Connection: close\r\n\r\n\
                        HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
                        Content-Length: 0\r\nAllow: GET, HEAD\r\nConnection: keep-alive\r\n\r\n";
        assert_eq!(String::from_utf8(output).unwrap(), expected);
    }
}
