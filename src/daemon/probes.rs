//! HTTP and TCP probes: health checks and Aurora's HTTP lifecycle, carried out without blocking
//! on mio sockets registered in the daemon's `Poll`.
//!
//! Every probe goes to `127.0.0.1` (an IPv4 literal: no DNS). A probe is a small machine of its
//! own, [`Phase`]: connecting (write interest; completion checked with `take_error` and
//! `peer_addr`, as mio's `TcpStream::connect` docs describe), writing the request (still write
//! interest), then reading the response (read interest). Each readiness event drives it until
//! `WouldBlock`, since mio is edge-triggered. The response is read by [`ResponseReader`], which
//! is pure (bytes in, an outcome out) and tested byte by byte.
//!
//! There are no timeouts here: the core owns every deadline and calls [`Probes::cancel`].

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::core::{InstanceId, ProbeResult};

/// Body bytes kept from a GET response; the rest is dropped, which is not an error.
pub const MAX_BODY: usize = 64 * 1024;
/// Bytes of status line and headers accepted before the response is judged malformed.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Longest request path sent.
pub const MAX_PATH_BYTES: usize = 2048;
/// Headers parsed in one response.
const MAX_HEADERS: usize = 64;
/// Longest chunk-size line (with its extensions) in a chunked body.
const MAX_CHUNK_LINE_BYTES: usize = 1024;
/// Size of the read buffer shared by all probes.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Identifies one in-flight request for its owner (the instance id and a sequence number the
/// core gives).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProbeKey {
    pub instance: InstanceId,
    pub seq: u64,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeRequest {
    /// GET http://127.0.0.1:port{path}; the body is kept up to [`MAX_BODY`] bytes.
    Get { port: u16, path: String },
    /// POST with an empty body (Aurora's /quitquitquit and /abortabortabort). The outcome
    /// comes as soon as the status line is in; its body is always empty.
    Post { port: u16, path: String },
    /// A TCP connection to 127.0.0.1:port succeeds.
    Connect { port: u16 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// The request's bytes. A path that would not make a valid request line is refused here: it
/// must start with `/`, be at most [`MAX_PATH_BYTES`] long and hold no space or control
/// character (CR and LF would let it add headers).
fn request_bytes(method: Method, port: u16, path: &str) -> Result<Vec<u8>, String> {
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("path longer than {MAX_PATH_BYTES} bytes"));
    }
    if !path.starts_with('/') {
        return Err(format!("path {path:?} does not start with '/'"));
    }
    if path.bytes().any(|b| b == b' ' || b.is_ascii_control()) {
        return Err(format!("path {path:?} holds a space or a control character"));
    }
    let extra = if method == Method::Post { "Content-Length: 0\r\n" } else { "" };
    Ok(format!(
        "{} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: sv-lite\r\nConnection: close\r\n{extra}\r\n",
        method.as_str()
    )
    .into_bytes())
}

/// Reads one HTTP/1.x response from bytes as they arrive. Pure: no socket, no clock.
///
/// GET: the headers (at most [`MAX_HEADER_BYTES`]), then the body until Content-Length is
/// reached, the last chunk of a chunked body, or EOF when neither frames it; finished early
/// once [`MAX_BODY`] bytes are kept. POST: the status line is enough. Interim 1xx responses
/// are skipped.
#[derive(Debug)]
struct ResponseReader {
    method: Method,
    state: ReadState,
}

#[derive(Debug)]
enum ReadState {
    /// The status line and headers so far.
    Head(Vec<u8>),
    /// The headers are in; the body is framed by `framing`.
    Body { status: u16, framing: Framing, body: Vec<u8> },
}

/// How the end of the body is known.
#[derive(Debug)]
enum Framing {
    /// Content-Length: this many bytes still to come.
    Length(u64),
    /// Transfer-Encoding ending in chunked.
    Chunked(Dechunker),
    /// Neither: the body ends when the server closes (`Connection: close`).
    UntilEof,
}

/// What parsing the head found.
enum Head {
    /// More bytes are needed.
    Partial,
    /// A POST's status line is complete: that is all a POST waits for.
    Status(u16),
    /// The headers end at `len`; the body follows.
    Complete { status: u16, framing: Framing, len: usize },
}

impl ResponseReader {
    fn new(method: Method) -> ResponseReader {
        ResponseReader { method, state: ReadState::Head(Vec::new()) }
    }

    /// Takes the next bytes from the server. Returns the outcome once the response is
    /// complete (or can never be).
    fn feed(&mut self, data: &[u8]) -> Option<ProbeResult> {
        let ReadState::Head(head) = &mut self.state else {
            return self.feed_body(data);
        };
        head.extend_from_slice(data);
        match parse_head(head, self.method) {
            Err(reason) => Some(ProbeResult::Failed(reason)),
            Ok(Head::Partial) if head.len() > MAX_HEADER_BYTES => {
                Some(ProbeResult::Failed(format!("response headers longer than {MAX_HEADER_BYTES} bytes")))
            }
            Ok(Head::Partial) => None,
            Ok(Head::Status(status)) => Some(ProbeResult::Http { status, body: String::new() }),
            Ok(Head::Complete { status, framing, len }) => {
                let rest = head.split_off(len);
                self.state = ReadState::Body { status, framing, body: Vec::new() };
                self.feed_body(&rest)
            }
        }
    }

    fn feed_body(&mut self, data: &[u8]) -> Option<ProbeResult> {
        let ReadState::Body { status, framing, body } = &mut self.state else {
            return None;
        };
        let complete = match framing {
            Framing::Length(remaining) => {
                let take = data.len().min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                keep(body, &data[..take]);
                *remaining -= take as u64;
                *remaining == 0
            }
            Framing::Chunked(dechunker) => match dechunker.feed(data, body) {
                Ok(done) => done,
                Err(reason) => return Some(ProbeResult::Failed(reason)),
            },
            Framing::UntilEof => {
                keep(body, data);
                false
            }
        };
        (complete || body.len() >= MAX_BODY).then(|| ProbeResult::Http { status: *status, body: body_text(body) })
    }

    /// The server closed the connection (or shut down its side).
    fn eof(&mut self) -> ProbeResult {
        match &self.state {
            ReadState::Head(head) if head.is_empty() => {
                ProbeResult::Failed("connection closed with no response".to_string())
            }
            ReadState::Head(_) => ProbeResult::Failed("connection closed inside the response headers".to_string()),
            ReadState::Body { status, framing: Framing::UntilEof, body } => {
                ProbeResult::Http { status: *status, body: body_text(body) }
            }
            ReadState::Body { framing: Framing::Length(remaining), .. } => {
                ProbeResult::Failed(format!("connection closed {remaining} bytes before the end of the body"))
            }
            ReadState::Body { framing: Framing::Chunked(_), .. } => {
                ProbeResult::Failed("connection closed inside the chunked body".to_string())
            }
        }
    }
}

/// Parses the head in `head`, dropping interim 1xx responses from its front.
fn parse_head(head: &mut Vec<u8>, method: Method) -> Result<Head, String> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let parsed = response.parse(head).map_err(|e| format!("malformed response: {e}"))?;
        // `reason` is set once the whole status line is in, `code` may come before it.
        let status = response.code.filter(|_| response.reason.is_some());
        let len = match (parsed, status) {
            (httparse::Status::Partial, Some(status)) if method == Method::Post && status >= 200 => {
                return Ok(Head::Status(status));
            }
            (httparse::Status::Partial, _) => return Ok(Head::Partial),
            (httparse::Status::Complete(len), Some(status)) if !(100..200).contains(&status) => {
                if method == Method::Post {
                    return Ok(Head::Status(status));
                }
                let framing = framing(status, response.headers)?;
                return Ok(Head::Complete { status, framing, len });
            }
            (httparse::Status::Complete(len), Some(_)) => len,
            (httparse::Status::Complete(_), None) => return Err("malformed response: no status code".to_string()),
        };
        head.drain(..len);
    }
}

/// How the body of a final response with these headers ends (RFC 9112 section 6.3).
fn framing(status: u16, headers: &[httparse::Header<'_>]) -> Result<Framing, String> {
    if status == 204 || status == 304 {
        return Ok(Framing::Length(0));
    }
    let mut length = None;
    let mut encoded = false;
    let mut chunked = false;
    for header in headers {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // The codings of all such headers form one list; chunked must be the last one.
            encoded = true;
            let value = String::from_utf8_lossy(header.value);
            chunked = value.rsplit(',').next().is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let value = String::from_utf8_lossy(header.value);
            let value = value.trim();
            let parsed = if value.bytes().all(|b| b.is_ascii_digit()) { value.parse::<u64>().ok() } else { None };
            let Some(parsed) = parsed else {
                return Err(format!("malformed response: Content-Length {value:?}"));
            };
            if length.is_some_and(|known| known != parsed) {
                return Err("malformed response: conflicting Content-Length headers".to_string());
            }
            length = Some(parsed);
        }
    }
    Ok(match (encoded, chunked, length) {
        (true, true, _) => Framing::Chunked(Dechunker::default()),
        (true, false, _) | (false, _, None) => Framing::UntilEof,
        (false, _, Some(length)) => Framing::Length(length),
    })
}

/// Decodes `Transfer-Encoding: chunked` as it arrives. Trailers are not read: the last chunk
/// ends the response.
#[derive(Debug, Default)]
struct Dechunker {
    state: ChunkState,
    /// The chunk-size line so far.
    line: Vec<u8>,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line.
    #[default]
    Size,
    /// This many data bytes still to come in the current chunk.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataCr,
    DataLf,
    /// The last (empty) chunk has come.
    Done,
}

impl Dechunker {
    /// Decodes `data` into `body` (kept up to [`MAX_BODY`]). Returns whether the last chunk
    /// has come.
    fn feed(&mut self, mut data: &[u8], body: &mut Vec<u8>) -> Result<bool, String> {
        loop {
            let Some(&first) = data.first() else {
                return Ok(self.state == ChunkState::Done);
            };
            match &mut self.state {
                ChunkState::Size => {
                    let (line, rest) = match data.iter().position(|&b| b == b'\n') {
                        Some(end) => data.split_at(end + 1),
                        None => (data, &[][..]),
                    };
                    if self.line.len() + line.len() > MAX_CHUNK_LINE_BYTES {
                        return Err(format!(
                            "malformed response: chunk-size line longer than {MAX_CHUNK_LINE_BYTES} bytes"
                        ));
                    }
                    self.line.extend_from_slice(line);
                    data = rest;
                    if self.line.last() != Some(&b'\n') {
                        continue;
                    }
                    let size = match httparse::parse_chunk_size(&self.line) {
                        Ok(httparse::Status::Complete((_, size))) => size,
                        Ok(httparse::Status::Partial) | Err(_) => {
                            return Err("malformed response: invalid chunk size".to_string());
                        }
                    };
                    self.line.clear();
                    self.state = if size == 0 { ChunkState::Done } else { ChunkState::Data(size) };
                }
                ChunkState::Data(remaining) => {
                    let take = data.len().min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    keep(body, &data[..take]);
                    data = &data[take..];
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        self.state = ChunkState::DataCr;
                    }
                }
                ChunkState::DataCr | ChunkState::DataLf => {
                    self.state = match (&self.state, first) {
                        (ChunkState::DataCr, b'\r') => ChunkState::DataLf,
                        (_, b'\n') => ChunkState::Size,
                        _ => return Err("malformed response: no CRLF after chunk data".to_string()),
                    };
                    data = &data[1..];
                }
                ChunkState::Done => return Ok(true),
            }
        }
    }
}

/// Appends what still fits under [`MAX_BODY`].
fn keep(body: &mut Vec<u8>, data: &[u8]) {
    let room = MAX_BODY.saturating_sub(body.len());
    body.extend_from_slice(&data[..data.len().min(room)]);
}

/// The body as text: lossy UTF-8, at most [`MAX_BODY`] bytes (replacement characters can make
/// it longer than the bytes it came from, so it is cut at a character boundary).
fn body_text(body: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(body).into_owned();
    if text.len() > MAX_BODY {
        let mut end = MAX_BODY;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Where one probe is.
#[derive(Debug)]
enum Phase {
    /// The connection is under way; `exchange` is the HTTP request to make on it, none for
    /// [`ProbeRequest::Connect`].
    Connecting { exchange: Option<Exchange> },
    /// Writing the request (write interest).
    Writing(Exchange),
    /// Reading the response (read interest).
    Reading(ResponseReader),
}

/// An HTTP request and the reader for its response.
#[derive(Debug)]
struct Exchange {
    request: Vec<u8>,
    written: usize,
    reader: ResponseReader,
}

/// One request in flight.
#[derive(Debug)]
struct Probe {
    key: ProbeKey,
    stream: TcpStream,
    phase: Phase,
}

/// The requests in flight, by token and by key.
#[derive(Debug)]
pub struct Probes {
    by_token: HashMap<Token, Probe>,
    by_key: HashMap<ProbeKey, Token>,
    /// Read buffer shared by all probes (one thread, one read at a time).
    buffer: Vec<u8>,
}

impl Default for Probes {
    fn default() -> Probes {
        Probes::new()
    }
}

impl Probes {
    #[must_use]
    pub fn new() -> Probes {
        Probes { by_token: HashMap::new(), by_key: HashMap::new(), buffer: vec![0; READ_BUFFER_BYTES] }
    }

    /// Starts a request. Registers its socket with `registry` under `token` (the driver
    /// allocates tokens from its counter). Returns `Err(outcome)` when it finishes at once
    /// (e.g. immediate refusal, socket error, a path that cannot be sent) — then nothing is
    /// registered.
    pub fn start(
        &mut self,
        registry: &Registry,
        token: Token,
        key: ProbeKey,
        request: ProbeRequest,
    ) -> Result<(), ProbeResult> {
        if self.by_key.contains_key(&key) || self.by_token.contains_key(&token) {
            crate::never!("probe {key:?} or its token {token:?} is already in flight");
            return Err(ProbeResult::Failed("a probe with this key or token is already in flight".to_string()));
        }
        let (port, exchange) = match request {
            ProbeRequest::Connect { port } => (port, None),
            ProbeRequest::Get { port, path } => (port, Some(Exchange::new(Method::Get, port, &path)?)),
            ProbeRequest::Post { port, path } => (port, Some(Exchange::new(Method::Post, port, &path)?)),
        };
        let mut stream = TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).map_err(connect_error)?;
        registry
            .register(&mut stream, token, Interest::WRITABLE)
            .map_err(|e| ProbeResult::Failed(format!("register the probe socket: {e}")))?;
        self.by_key.insert(key, token);
        self.by_token.insert(token, Probe { key, stream, phase: Phase::Connecting { exchange } });
        Ok(())
    }

    /// Whether `token` is one of ours.
    #[must_use]
    pub fn owns(&self, token: Token) -> bool {
        self.by_token.contains_key(&token)
    }

    /// Handles a readiness event for `token`: drives connect/write/read to `WouldBlock`.
    /// Returns the finished request, if it finished (its socket deregistered and closed).
    /// An event for a token that is not (or no longer) ours does nothing.
    pub fn handle(&mut self, registry: &Registry, token: Token) -> Option<(ProbeKey, ProbeResult)> {
        let Probe { key, mut stream, phase } = self.by_token.remove(&token)?;
        match drive(&mut stream, phase, registry, token, &mut self.buffer) {
            Ok(phase) => {
                self.by_token.insert(token, Probe { key, stream, phase });
                None
            }
            Err(outcome) => {
                self.by_key.remove(&key);
                close(registry, key, stream);
                Some((key, outcome))
            }
        }
    }

    /// Abandons a request (the core's timeout fired): deregisters and closes it. Returns
    /// whether it was in flight.
    pub fn cancel(&mut self, registry: &Registry, key: ProbeKey) -> bool {
        let Some(token) = self.by_key.remove(&key) else {
            return false;
        };
        match self.by_token.remove(&token) {
            Some(probe) => close(registry, key, probe.stream),
            None => crate::never!("probe {key:?} has a token {token:?} but no socket"),
        }
        true
    }

    /// Requests in flight.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

impl Exchange {
    fn new(method: Method, port: u16, path: &str) -> Result<Exchange, ProbeResult> {
        let request = request_bytes(method, port, path).map_err(ProbeResult::Failed)?;
        Ok(Exchange { request, written: 0, reader: ResponseReader::new(method) })
    }
}

/// Moves a probe on as far as it goes without blocking. `Ok` is the phase it waits in; `Err`
/// is its outcome: it is over.
fn drive(
    stream: &mut TcpStream,
    mut phase: Phase,
    registry: &Registry,
    token: Token,
    buffer: &mut [u8],
) -> Result<Phase, ProbeResult> {
    loop {
        phase = match phase {
            Phase::Connecting { exchange } => {
                if !connected(stream)? {
                    return Ok(Phase::Connecting { exchange });
                }
                match exchange {
                    None => return Err(ProbeResult::Connected),
                    Some(exchange) => Phase::Writing(exchange),
                }
            }
            Phase::Writing(mut exchange) => {
                if !write_request(stream, &mut exchange)? {
                    return Ok(Phase::Writing(exchange));
                }
                registry
                    .reregister(stream, token, Interest::READABLE)
                    .map_err(|e| ProbeResult::Failed(format!("reregister the probe socket: {e}")))?;
                Phase::Reading(exchange.reader)
            }
            Phase::Reading(mut reader) => {
                return match read_response(stream, &mut reader, buffer) {
                    Some(outcome) => Err(outcome),
                    None => Ok(Phase::Reading(reader)),
                };
            }
        };
    }
}

/// Whether the non-blocking connect has completed, per mio's `TcpStream::connect` docs: a
/// pending socket error means it failed; otherwise `peer_addr` answers once connected and
/// says `NotConnected` (or `EINPROGRESS`) while it is not.
fn connected(stream: &TcpStream) -> Result<bool, ProbeResult> {
    match stream.take_error() {
        Ok(None) => {}
        Ok(Some(e)) | Err(e) => return Err(connect_error(e)),
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected || e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
        Err(e) => Err(connect_error(e)),
    }
}

fn connect_error(e: io::Error) -> ProbeResult {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        ProbeResult::Refused
    } else {
        ProbeResult::Failed(format!("connect: {e}"))
    }
}

/// Writes what is left of the request. Returns whether all of it is written.
fn write_request(stream: &mut TcpStream, exchange: &mut Exchange) -> Result<bool, ProbeResult> {
    while exchange.written < exchange.request.len() {
        match stream.write(&exchange.request[exchange.written..]) {
            Ok(0) => return Err(ProbeResult::Failed("write: the socket took no bytes".to_string())),
            Ok(n) => exchange.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ProbeResult::Failed(format!("write: {e}"))),
        }
    }
    Ok(true)
}

/// Reads until `WouldBlock` or the end of the response.
fn read_response(stream: &mut TcpStream, reader: &mut ResponseReader, buffer: &mut [u8]) -> Option<ProbeResult> {
    loop {
        match stream.read(buffer) {
            Ok(0) => return Some(reader.eof()),
            Ok(n) => {
                if let Some(outcome) = reader.feed(&buffer[..n]) {
                    return Some(outcome);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Some(ProbeResult::Failed(format!("read: {e}"))),
        }
    }
}

/// Deregisters and closes a probe's socket.
fn close(registry: &Registry, key: ProbeKey, mut stream: TcpStream) {
    if let Err(e) = registry.deregister(&mut stream) {
        // Closing the socket below takes it out of the poll set all the same.
        log::debug!("probe {}:{}: deregister: {e}", key.instance.0, key.seq);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::net::TcpListener;
    use std::thread::{self, JoinHandle};
    use std::time::{Duration, Instant};

    use mio::{Events, Poll};

    use super::*;

    /// Generous: a probe on loopback takes milliseconds.
    const DEADLINE: Duration = Duration::from_secs(10);

    fn key(seq: u64) -> ProbeKey {
        ProbeKey { instance: InstanceId(7), seq }
    }

    fn http(status: u16, body: &str) -> ProbeResult {
        ProbeResult::Http { status, body: body.to_string() }
    }

    /// A real `Poll` driven in the test thread, as the daemon's loop drives it.
    struct Rig {
        poll: Poll,
        events: Events,
        probes: Probes,
        next_seq: u64,
        finished: VecDeque<(ProbeKey, ProbeResult)>,
    }

    impl Rig {
        fn new() -> Rig {
            Rig {
                poll: Poll::new().unwrap(),
                events: Events::with_capacity(16),
                probes: Probes::new(),
                next_seq: 0,
                finished: VecDeque::new(),
            }
        }

        /// Starts a request under a fresh key and token.
        fn start(&mut self, request: ProbeRequest) -> Result<ProbeKey, ProbeResult> {
            self.next_seq += 1;
            let key = key(self.next_seq);
            let token = Token(100 + self.next_seq as usize);
            self.probes.start(self.poll.registry(), token, key, request)?;
            assert!(self.probes.owns(token));
            Ok(key)
        }

        /// Polls until a request finishes or `limit` passes.
        fn next_outcome(&mut self, limit: Duration) -> Option<(ProbeKey, ProbeResult)> {
            let deadline = Instant::now() + limit;
            while self.finished.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                match self.poll.poll(&mut self.events, Some(left)) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    result => result.unwrap(),
                }
                for event in &self.events {
                    assert!(self.probes.owns(event.token()), "event for a token that is not a probe's");
                    self.finished.extend(self.probes.handle(self.poll.registry(), event.token()));
                }
            }
            self.finished.pop_front()
        }

        /// Runs one request to its outcome.
        fn run(&mut self, request: ProbeRequest) -> ProbeResult {
            let key = match self.start(request) {
                Ok(key) => key,
                Err(outcome) => return outcome,
            };
            let (done, outcome) = self.next_outcome(DEADLINE).expect("the probe finished before the deadline");
            assert_eq!(done, key);
            assert_eq!(self.probes.len(), 0);
            outcome
        }
    }

    fn get(port: u16, path: &str) -> ProbeRequest {
        ProbeRequest::Get { port, path: path.to_string() }
    }

    /// A server for one connection on 127.0.0.1, in a thread running `handler`. Returns its
    /// port and the thread, whose result is what the handler returns.
    fn serve_with<F>(handler: F) -> (u16, JoinHandle<String>)
    where
        F: FnOnce(std::net::TcpStream) -> String + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(DEADLINE)).unwrap();
            stream.set_write_timeout(Some(DEADLINE)).unwrap();
            handler(stream)
        });
        (port, thread)
    }

    /// A server that reads the request head, sends `response` and closes. Its thread returns
    /// the request head.
    fn serve(response: Vec<u8>) -> (u16, JoinHandle<String>) {
        serve_with(move |mut stream| {
            let head = read_head(&mut stream);
            // The probe may close first (a truncated body): that is its right.
            let _ = stream.write_all(&response);
            head
        })
    }

    /// Reads until the end of the request head (or EOF, or the read timeout).
    fn read_head(stream: &mut std::net::TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&head).into_owned()
    }

    /// A port where nothing listens: bound, then released.
    fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[test]
    fn get_200_with_content_length() {
        let (port, server) = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec());
        assert_eq!(Rig::new().run(get(port, "/health")), http(200, "ok"));
        let request = server.join().unwrap();
        assert_eq!(
            request,
            format!(
                "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: sv-lite\r\nConnection: close\r\n\r\n"
            )
        );
    }

    #[test]
    fn get_500_is_a_response() {
        let (port, server) = serve(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom".to_vec());
        assert_eq!(Rig::new().run(get(port, "/health")), http(500, "boom"));
        server.join().unwrap();
    }

    #[test]
    fn get_chunked_body_is_decoded() {
        let (port, server) = serve_with(|mut stream| {
            let head = read_head(&mut stream);
            // In pieces, so the decoder sees chunks split across reads.
            for piece in [
                &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWi"[..],
                b"ki\r\n5;name=value\r\npedia\r",
                b"\n0\r\nX-Trailer: yes\r\n\r\n",
            ] {
                stream.write_all(piece).unwrap();
                stream.flush().unwrap();
                thread::sleep(Duration::from_millis(20));
            }
            head
        });
        assert_eq!(Rig::new().run(get(port, "/")), http(200, "Wikipedia"));
        server.join().unwrap();
    }

    #[test]
    fn server_closing_without_an_answer_fails() {
        let (port, server) = serve(Vec::new());
        let outcome = Rig::new().run(get(port, "/health"));
        assert!(matches!(outcome, ProbeResult::Failed(_)), "{outcome:?}");
        server.join().unwrap();
    }

    #[test]
    fn nothing_listening_is_refused() {
        let mut rig = Rig::new();
        assert_eq!(rig.run(get(closed_port(), "/health")), ProbeResult::Refused);
        assert_eq!(
            rig.run(ProbeRequest::Post { port: closed_port(), path: "/quitquitquit".into() }),
            ProbeResult::Refused
        );
        assert_eq!(rig.run(ProbeRequest::Connect { port: closed_port() }), ProbeResult::Refused);
        assert!(rig.probes.is_empty());
    }

    #[test]
    fn connect_succeeds_when_something_listens() {
        let (port, server) = serve_with(|mut stream| {
            // The probe sends nothing and closes: EOF.
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).unwrap();
            String::from_utf8_lossy(&rest).into_owned()
        });
        assert_eq!(Rig::new().run(ProbeRequest::Connect { port }), ProbeResult::Connected);
        assert_eq!(server.join().unwrap(), "");
    }

    #[test]
    fn silent_server_stays_in_flight_until_cancelled() {
        let (port, server) = serve_with(|mut stream| {
            let head = read_head(&mut stream);
            // Never answer; wait for the probe to close.
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            head
        });
        let mut rig = Rig::new();
        let key = rig.start(get(port, "/health")).unwrap();
        assert_eq!(rig.next_outcome(Duration::from_millis(300)), None);
        assert_eq!(rig.probes.len(), 1);
        assert!(rig.probes.cancel(rig.poll.registry(), key));
        assert_eq!(rig.probes.len(), 0);
        assert!(!rig.probes.owns(Token(100 + key.seq as usize)));
        assert!(!rig.probes.cancel(rig.poll.registry(), key));
        // The server saw the whole request, then EOF: the socket is closed.
        assert!(server.join().unwrap().starts_with("GET /health HTTP/1.1\r\n"));
        // A late event for the cancelled token finds nothing.
        assert_eq!(rig.probes.handle(rig.poll.registry(), Token(100 + key.seq as usize)), None);
    }

    #[test]
    fn post_is_sent_and_its_status_is_enough() {
        let (port, server) = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec());
        let outcome = Rig::new().run(ProbeRequest::Post { port, path: "/quitquitquit".to_string() });
        assert_eq!(outcome, http(200, ""));
        assert_eq!(
            server.join().unwrap(),
            format!(
                "POST /quitquitquit HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: sv-lite\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            )
        );
    }

    #[test]
    fn post_answered_by_a_status_line_and_a_close() {
        let (port, server) = serve(b"HTTP/1.0 204 No Content\r\n".to_vec());
        let outcome = Rig::new().run(ProbeRequest::Post { port, path: "/abortabortabort".to_string() });
        assert_eq!(outcome, http(204, ""));
        assert!(server.join().unwrap().starts_with("POST /abortabortabort HTTP/1.1\r\n"));
    }

    #[test]
    fn huge_body_is_truncated_to_max_body() {
        let size = 4 * MAX_BODY;
        let mut response = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").into_bytes();
        response.resize(response.len() + size, b'x');
        let (port, server) = serve(response);
        match Rig::new().run(get(port, "/big")) {
            ProbeResult::Http { status: 200, body } => {
                assert_eq!(body.len(), MAX_BODY);
                assert!(body.bytes().all(|b| b == b'x'));
            }
            other => panic!("{other:?}"),
        }
        server.join().unwrap();
    }

    #[test]
    fn huge_body_until_eof_is_truncated_to_max_body() {
        let mut response = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        response.resize(response.len() + 3 * MAX_BODY, b'y');
        let (port, server) = serve(response);
        match Rig::new().run(get(port, "/big")) {
            ProbeResult::Http { status: 200, body } => assert_eq!(body.len(), MAX_BODY),
            other => panic!("{other:?}"),
        }
        server.join().unwrap();
    }

    #[test]
    fn garbage_response_fails() {
        let (port, server) = serve(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec());
        let outcome = Rig::new().run(get(port, "/health"));
        match &outcome {
            ProbeResult::Failed(reason) => assert!(reason.starts_with("malformed response"), "{reason}"),
            other => panic!("{other:?}"),
        }
        server.join().unwrap();
    }

    #[test]
    fn unsendable_path_fails_at_once_and_registers_nothing() {
        let mut rig = Rig::new();
        let outcome = rig.start(get(1, "/health\r\nX-Evil: 1")).unwrap_err();
        assert!(matches!(outcome, ProbeResult::Failed(_)), "{outcome:?}");
        assert!(rig.probes.is_empty());
        assert_eq!(rig.next_outcome(Duration::from_millis(50)), None);
    }

    #[test]
    fn probes_run_side_by_side() {
        let (port_a, server_a) = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na".to_vec());
        let (port_b, server_b) = serve(b"HTTP/1.1 503 Busy\r\nContent-Length: 1\r\n\r\nb".to_vec());
        let mut rig = Rig::new();
        let key_a = rig.start(get(port_a, "/a")).unwrap();
        let key_b = rig.start(get(port_b, "/b")).unwrap();
        assert_eq!(rig.probes.len(), 2);
        let mut outcomes = vec![rig.next_outcome(DEADLINE).unwrap(), rig.next_outcome(DEADLINE).unwrap()];
        outcomes.sort_by_key(|(key, _)| key.seq);
        assert_eq!(outcomes, vec![(key_a, http(200, "a")), (key_b, http(503, "b"))]);
        assert!(rig.probes.is_empty());
        server_a.join().unwrap();
        server_b.join().unwrap();
    }

    // The response reader alone, fed one byte at a time: any split of the stream must give the
    // same outcome.

    fn read_bytewise(method: Method, response: &[u8]) -> ProbeResult {
        let mut reader = ResponseReader::new(method);
        for byte in response.chunks(1) {
            if let Some(outcome) = reader.feed(byte) {
                return outcome;
            }
        }
        reader.eof()
    }

    fn read_whole(method: Method, response: &[u8]) -> ProbeResult {
        let mut reader = ResponseReader::new(method);
        reader.feed(response).unwrap_or_else(|| reader.eof())
    }

    fn read(method: Method, response: &[u8]) -> ProbeResult {
        let outcome = read_bytewise(method, response);
        assert_eq!(outcome, read_whole(method, response), "byte by byte and all at once differ");
        outcome
    }

    fn failed(outcome: ProbeResult) -> String {
        match outcome {
            ProbeResult::Failed(reason) => reason,
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[test]
    fn reader_stops_at_content_length() {
        assert_eq!(read(Method::Get, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"), http(200, "ok"));
        assert_eq!(read(Method::Get, b"HTTP/1.1 200 OK\r\ncontent-length:  0 \r\n\r\n"), http(200, ""));
    }

    #[test]
    fn reader_reads_to_eof_without_framing() {
        assert_eq!(read(Method::Get, b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nhello\n"), http(200, "hello\n"));
        // A coding other than chunked last: to EOF, undecoded.
        assert_eq!(read(Method::Get, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz"), http(200, "zz"));
    }

    #[test]
    fn reader_decodes_chunks() {
        let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 99\r\n\r\n\
                         3\r\nabc\r\nA; ext=\"x\"\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n";
        assert_eq!(read(Method::Get, response), http(200, "abc0123456789"));
        let bare_lf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\n0\r\n\r\n";
        assert_eq!(read(Method::Get, bare_lf), http(200, "ok"));
    }

    #[test]
    fn reader_rejects_bad_chunks() {
        let bad_size = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n";
        assert!(failed(read(Method::Get, bad_size)).contains("chunk size"));
        let no_crlf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX0\r\n\r\n";
        assert!(failed(read(Method::Get, no_crlf)).contains("CRLF"));
        let endless_ext = [&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;"[..], &[b'e'; 2000]].concat();
        assert!(failed(read(Method::Get, &endless_ext)).contains("chunk-size line"));
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
        assert!(failed(read(Method::Get, cut)).contains("inside the chunked body"));
    }

    #[test]
    fn reader_skips_interim_responses() {
        let response = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!";
        assert_eq!(read(Method::Get, response), http(200, "!"));
        assert_eq!(read(Method::Post, response), http(200, ""));
    }

    #[test]
    fn reader_knows_bodiless_statuses() {
        // No EOF needed: 204 and 304 have no body whatever the headers say.
        let mut reader = ResponseReader::new(Method::Get);
        assert_eq!(reader.feed(b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"), Some(http(204, "")));
        assert_eq!(read(Method::Get, b"HTTP/1.1 304 Not Modified\r\n\r\n"), http(304, ""));
    }

    #[test]
    fn reader_fails_on_early_eof() {
        assert!(failed(read(Method::Get, b"")).contains("no response"));
        assert!(failed(read(Method::Get, b"HTTP/1.1 200 OK\r\nContent-")).contains("inside the response headers"));
        assert!(failed(read(Method::Get, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok")).contains("3 bytes before"));
        // A POST needs its whole status line.
        assert!(failed(read(Method::Post, b"HTTP/1.1 200")).contains("inside the response headers"));
    }

    #[test]
    fn reader_rejects_malformed_heads() {
        assert!(failed(read(Method::Get, b"hello\r\n\r\n")).starts_with("malformed response"));
        let conflicting = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok";
        assert!(failed(read(Method::Get, conflicting)).contains("conflicting Content-Length"));
        assert!(failed(read(Method::Get, b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")).contains("Content-Length"));
        let long = [&b"HTTP/1.1 200 OK\r\nX-Big: "[..], &vec![b'a'; MAX_HEADER_BYTES + 1]].concat();
        assert!(failed(read(Method::Get, &long)).contains("headers longer than"));
    }

    #[test]
    fn reader_truncates_bodies_in_every_framing() {
        let body = vec![b'z'; MAX_BODY + 10];
        let length = [format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(), &body].concat();
        let until_eof = [&b"HTTP/1.1 200 OK\r\n\r\n"[..], &body].concat();
        let chunked = [
            format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n", body.len()).as_bytes(),
            &body,
            b"\r\n0\r\n\r\n",
        ]
        .concat();
        for response in [length, until_eof, chunked] {
            match read_whole(Method::Get, &response) {
                ProbeResult::Http { status: 200, body } => assert_eq!(body.len(), MAX_BODY),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn body_text_is_lossy_and_bounded() {
        assert_eq!(body_text(b"ok \xff"), "ok \u{fffd}");
        // Invalid bytes become 3-byte replacement characters; the text still fits.
        let text = body_text(&vec![0xff; MAX_BODY]);
        assert!(text.len() <= MAX_BODY && text.len() > MAX_BODY - 3);
    }

    #[test]
    fn request_lines_are_exact_and_paths_checked() {
        assert_eq!(
            request_bytes(Method::Get, 8080, "/health?x=1").unwrap(),
            b"GET /health?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: sv-lite\r\nConnection: close\r\n\r\n"
        );
        assert!(request_bytes(Method::Post, 1, "/quitquitquit").unwrap().ends_with(b"Content-Length: 0\r\n\r\n"));
        assert!(request_bytes(Method::Get, 1, "/a\nb").is_err());
        assert!(request_bytes(Method::Get, 1, "/a\rb").is_err());
        assert!(request_bytes(Method::Get, 1, "/a b").is_err());
        assert!(request_bytes(Method::Get, 1, "health").is_err());
        assert!(request_bytes(Method::Get, 1, "").is_err());
        assert!(request_bytes(Method::Get, 1, &format!("/{}", "a".repeat(MAX_PATH_BYTES))).is_err());
    }
}
