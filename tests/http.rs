//! The HTTP endpoint's server in a real `Poll`, with real clients in other threads: keep-alive,
//! pipelining, HEAD, 405, and hostile clients (huge headers, garbage, slowloris, too many
//! connections) that must not stop others from being served.

#![allow(clippy::unwrap_used)] // STYLE.md rule 18: allowed in tests

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use sv_lite::daemon::http::{HttpServer, Request, Response, IDLE_TIMEOUT, MAX_CONNECTIONS};
use sv_lite::spec::HttpListen;

const LISTENER: Token = Token(0);

struct Harness {
    poll: Poll,
    events: Events,
    server: HttpServer,
    next: usize,
    max_seen: usize,
}

fn respond(request: &Request) -> Response {
    match request.path.as_str() {
        "/healthz" => Response { status: 200, content_type: "text/plain", body: b"ok\n".to_vec() },
        _ => Response { status: 404, content_type: "text/plain", body: b"not found\n".to_vec() },
    }
}

impl Harness {
    fn new() -> Harness {
        let poll = Poll::new().unwrap();
        let listen = HttpListen::Tcp("127.0.0.1:0".parse().unwrap());
        let server = HttpServer::bind(&listen, poll.registry(), LISTENER).unwrap();
        Harness { poll, events: Events::with_capacity(256), server, next: 1, max_seen: 0 }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr().unwrap()
    }

    /// Runs the loop until every client thread is done (60 s at most), then returns their results.
    fn serve<T>(&mut self, clients: Vec<JoinHandle<T>>) -> Vec<T> {
        let give_up = Instant::now() + Duration::from_secs(60);
        while !clients.iter().all(JoinHandle::is_finished) {
            assert!(Instant::now() < give_up, "clients did not finish");
            let mut timeout = Duration::from_millis(100);
            if let Some(deadline) = self.server.next_deadline() {
                timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
            }
            self.poll.poll(&mut self.events, Some(timeout)).unwrap();
            let now = Instant::now();
            let tokens: Vec<Token> = self.events.iter().map(|event| event.token()).collect();
            for token in tokens {
                if token == LISTENER {
                    let next = &mut self.next;
                    self.server.accept(self.poll.registry(), &mut || {
                        *next += 1;
                        Token(*next)
                    });
                } else if self.server.owns(token) {
                    self.server.handle(self.poll.registry(), token, now, &mut respond);
                }
                self.max_seen = self.max_seen.max(self.server.connection_count());
            }
            self.server.close_idle(self.poll.registry(), Instant::now());
        }
        clients.into_iter().map(|client| client.join().unwrap()).collect()
    }

    /// Keeps serving until every connection is closed (a client's last close may arrive after
    /// its thread is done), or fails after 10 s.
    fn settle(&mut self) {
        let give_up = Instant::now() + Duration::from_secs(10);
        while self.server.connection_count() > 0 {
            assert!(Instant::now() < give_up, "{} connections still open", self.server.connection_count());
            self.poll.poll(&mut self.events, Some(Duration::from_millis(100))).unwrap();
            let now = Instant::now();
            let tokens: Vec<Token> = self.events.iter().map(|event| event.token()).collect();
            for token in tokens {
                if self.server.owns(token) {
                    self.server.handle(self.poll.registry(), token, now, &mut respond);
                }
            }
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream
}

/// Reads until `count` whole responses have come (by Content-Length; HEAD answers have no body).
fn read_responses(stream: &mut TcpStream, count: usize, head: bool) -> String {
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if complete_responses(&got, head) >= count {
            return String::from_utf8(got).unwrap();
        }
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "closed early after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buffer[..n]);
    }
}

fn complete_responses(mut bytes: &[u8], head: bool) -> usize {
    let mut count = 0;
    while let Some(end) = bytes.windows(4).position(|window| window == b"\r\n\r\n") {
        let head_text = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
        let length: usize = head_text
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .map_or(0, |value| value.trim().parse().unwrap());
        let total = end + 4 + if head { 0 } else { length };
        if bytes.len() < total {
            break;
        }
        count += 1;
        bytes = &bytes[total..];
    }
    count
}

/// Reads to EOF (or a reset), returning what came.
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn healthz(addr: SocketAddr) -> String {
    let mut stream = connect(addr);
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    read_responses(&mut stream, 1, false)
}

const OK: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n";

#[test]
fn get_keep_alive_pipelining_head_and_405() {
    let mut harness = Harness::new();
    let addr = harness.addr();
    let client = thread::spawn(move || {
        let mut stream = connect(addr);
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let first = read_responses(&mut stream, 1, false);
        // The same connection again, then three pipelined in one write.
        stream.write_all(b"GET /healthz?probe=1 HTTP/1.1\r\n\r\n").unwrap();
        let second = read_responses(&mut stream, 1, false);
        stream
            .write_all(b"GET /nope HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\nDELETE /healthz HTTP/1.1\r\n\r\n")
            .unwrap();
        let pipelined = read_responses(&mut stream, 3, false);
        stream.write_all(b"HEAD /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        let head = read_to_close(&mut stream);
        (first, second, pipelined, head)
    });
    let (first, second, pipelined, head) = harness.serve(vec![client]).pop().unwrap();
    assert_eq!(first, OK);
    assert_eq!(second, OK);
    let not_found = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\
                     Connection: keep-alive\r\n\r\nnot found\n";
    let not_allowed = "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
                       Content-Length: 18\r\nAllow: GET, HEAD\r\nConnection: keep-alive\r\n\r\nonly GET and HEAD\n";
    assert_eq!(pipelined, format!("{not_found}{OK}{not_allowed}"));
    assert_eq!(head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\n");
    harness.settle();
}

#[test]
fn huge_headers_get_431_garbage_400_and_a_body_413_while_others_are_served() {
    let mut harness = Harness::new();
    let addr = harness.addr();
    let huge = thread::spawn(move || {
        let mut stream = connect(addr);
        let mut request = b"GET / HTTP/1.1\r\nX: ".to_vec();
        request.resize(1024 * 1024, b'a');
        // The server may stop reading; what matters is its answer.
        let _ = stream.write_all(&request);
        read_to_close(&mut stream)
    });
    let garbage = thread::spawn(move || {
        let mut stream = connect(addr);
        stream.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n").unwrap();
        read_to_close(&mut stream)
    });
    let body = thread::spawn(move || {
        let mut stream = connect(addr);
        stream.write_all(b"POST /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        read_to_close(&mut stream)
    });
    let polite = thread::spawn(move || healthz(addr));
    let answers = harness.serve(vec![huge, garbage, body, polite]);
    assert!(answers[0].starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{:?}", answers[0]);
    assert!(answers[0].contains("Connection: close\r\n"));
    assert!(answers[1].starts_with("HTTP/1.1 400 Bad Request\r\n"), "{:?}", answers[1]);
    assert!(answers[2].starts_with("HTTP/1.1 413 Content Too Large\r\n"), "{:?}", answers[2]);
    assert_eq!(answers[3], OK);
}

#[test]
fn a_slowloris_client_is_closed_after_the_idle_timeout_while_others_are_served() {
    let mut harness = Harness::new();
    let addr = harness.addr();
    let slow = thread::spawn(move || {
        let mut stream = connect(addr);
        let started = Instant::now();
        // One byte every 200 ms, never finishing the request, until the server closes.
        for byte in b"GET / HTTP/1.1\r\n".iter().chain(std::iter::repeat(&b'x')) {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            let mut buffer = [0u8; 1];
            stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(_) => panic!("the server answered an unfinished request"),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
            assert!(started.elapsed() < Duration::from_secs(30), "never closed");
        }
        started.elapsed()
    });
    let polite = thread::spawn(move || {
        thread::sleep(Duration::from_secs(2)); // so that the slow client is in the middle of it
        healthz(addr)
    });
    let polite = harness.serve(vec![polite]).pop().unwrap();
    assert_eq!(polite, OK);
    let elapsed = harness.serve(vec![slow]).pop().unwrap();
    assert!(elapsed >= IDLE_TIMEOUT && elapsed < IDLE_TIMEOUT + Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn past_the_connection_limit_clients_are_refused_and_the_rest_served() {
    let mut harness = Harness::new();
    let addr = harness.addr();
    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        let mut streams: Vec<TcpStream> = (0..70).map(|_| connect(addr)).collect();
        opened_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        // The first ones are kept and still served; the refused ones read a 503.
        let mut refused = 0;
        for stream in &mut streams {
            stream.write_all(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap_or(());
            let answer = read_to_close(stream);
            if answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n") {
                refused += 1;
            } else {
                assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:?}");
            }
        }
        refused
    });
    // Serve until all 70 are accepted (or refused), then let the holder send its requests.
    let waiter = thread::spawn(move || opened_rx.recv().unwrap());
    harness.serve(vec![waiter]);
    let give_up = Instant::now() + Duration::from_secs(30);
    while harness.server.connection_count() < MAX_CONNECTIONS && Instant::now() < give_up {
        // Poll a little longer, so that every pending connection is accepted or refused.
        harness.serve(vec![thread::spawn(|| thread::sleep(Duration::from_millis(100)))]);
    }
    harness.serve(vec![thread::spawn(|| thread::sleep(Duration::from_millis(300)))]);
    release_tx.send(()).unwrap();
    let refused = harness.serve(vec![holder]).pop().unwrap();
    assert!(harness.max_seen <= MAX_CONNECTIONS, "{}", harness.max_seen);
    assert_eq!(refused, 70 - MAX_CONNECTIONS);
    // Their places are free again.
    let answers = harness.serve(vec![thread::spawn(move || healthz(addr))]);
    assert_eq!(answers[0], OK);
}
