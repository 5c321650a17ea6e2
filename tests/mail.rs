//! `daemon::mail` against real servers: deliveries by a `Mailer` driven through a real mio
//! `Poll` to aiosmtpd (Debian's python3-aiosmtpd, installed by .ci/run), and the sendmail path
//! with a fake sendmail script.
//!
//! Servers: aiosmtpd's own command line with its Maildir handler, and
//! tests/support/smtp_server.py (raw message and envelope files, a refused recipient, AUTH).
//! Each is killed by pid when its `Server` drops, even when the test fails.

#![allow(clippy::unwrap_used)] // STYLE.md rule 18: allowed in tests

mod common;

use std::fs;
use std::io::{self, BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use mio::{Events, Poll, Token};
use sv_lite::core::ExitStatus;
use sv_lite::daemon::mail::{compose, sendmail, Mailer};

use common::{wait_until, TestDir};

/// Generous: a delivery on loopback takes milliseconds, but CI is noisy.
const DEADLINE: Duration = Duration::from_secs(30);

/// Debian's python, which has python3-aiosmtpd, even when another python3 comes first on PATH.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// An SMTP server process, killed (by pid) and reaped on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tests/support/smtp_server.py storing into `dir`, with these extra arguments.
fn support_server(dir: &Path, args: &[&str]) -> Server {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
    let mut child = Command::new(python())
        .arg(script)
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start smtp_server.py");
    // It prints its port once it listens; read that line in a thread, to bound the wait.
    let stdout = child.stdout.take().expect("piped stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    // Owned by a `Server` from here, so a failed wait still kills it.
    let mut server = Server { child, addr: SocketAddr::from(([127, 0, 0, 1], 0)) };
    let line = receiver.recv_timeout(DEADLINE).unwrap_or_default();
    let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("smtp_server.py did not print its port: {line:?}"));
    server.addr.set_port(port);
    server
}

/// A port nobody listens on (bound, then closed).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Drives a `Mailer` through a real `Poll`, as the daemon's loop does.
struct Rig {
    poll: Poll,
    events: Events,
    mailer: Mailer,
    next_id: u64,
}

impl Rig {
    fn new() -> Rig {
        Rig { poll: Poll::new().unwrap(), events: Events::with_capacity(16), mailer: Mailer::new(), next_id: 0 }
    }

    fn start(
        &mut self,
        addr: SocketAddr,
        auth: Option<(&str, &str)>,
        to: &[&str],
        message: &str,
    ) -> Result<u64, String> {
        self.next_id += 1;
        let id = self.next_id;
        let auth = auth.map(|(user, password)| (user.to_string(), password.to_string()));
        let to: Vec<String> = to.iter().map(|a| a.to_string()).collect();
        let token = Token(100 + id as usize);
        self.mailer.start(
            self.poll.registry(),
            token,
            id,
            addr,
            auth,
            "sv-lite.test",
            "sv@test",
            &to,
            message.to_string(),
        )?;
        assert!(self.mailer.owns(token));
        Ok(id)
    }

    /// Polls until a delivery is over; panics after [`DEADLINE`].
    fn next_outcome(&mut self) -> (u64, Result<(), String>) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no delivery finished within {DEADLINE:?}");
            match self.poll.poll(&mut self.events, Some(left)) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => result.unwrap(),
            }
            for event in &self.events {
                assert!(self.mailer.owns(event.token()), "an event for a token that is not the mailer's");
                if let Some(outcome) = self.mailer.handle(self.poll.registry(), event.token()) {
                    return outcome;
                }
            }
        }
    }

    /// One delivery, start to end.
    fn deliver(
        &mut self,
        addr: SocketAddr,
        auth: Option<(&str, &str)>,
        to: &[&str],
        message: &str,
    ) -> Result<(), String> {
        let id = self.start(addr, auth, to, message)?;
        let (done, outcome) = self.next_outcome();
        assert_eq!(done, id);
        assert!(self.mailer.is_empty());
        outcome
    }
}

/// A message with what could go wrong on the wire: dot lines, non-ASCII, a long line.
fn message() -> String {
    let body = format!(
        "web:0 exited unexpectedly (exit status 1)\n.\n..two dots\n.leading dot\nnon-ASCII: grüße\n{}\nlast line\n",
        "x".repeat(1500)
    );
    compose(
        "sv@test",
        &["ops@example.com".to_string(), "dev@example.com".to_string()],
        "host1: web:0 exited unexpectedly",
        &body,
        UNIX_EPOCH + Duration::from_secs(1_796_632_200),
        "42.1796632200@host1",
    )
}

#[test]
fn a_mail_reaches_aiosmtpds_maildir_whole() {
    let dir = TestDir::new();
    let maildir = dir.join("maildir");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(python())
        .args(["-m", "aiosmtpd", "-n", "-l", &listen, "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .spawn()
        .expect("start python3 -m aiosmtpd");
    let server = Server { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) };
    wait_until("aiosmtpd accepts connections", DEADLINE, || TcpStream::connect(server.addr).is_ok());

    let message = message();
    let mut rig = Rig::new();
    assert_eq!(rig.deliver(server.addr, None, &["ops@example.com", "dev@example.com"], &message), Ok(()));

    let new = maildir.join("new");
    let mut files = Vec::new();
    wait_until("the mail is in the Maildir", DEADLINE, || {
        files = fs::read_dir(&new).map(|entries| entries.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        !files.is_empty()
    });
    assert_eq!(files.len(), 1, "{files:?}");
    // The Maildir handler re-serialises the message with LF line endings and adds its own
    // X-Peer, X-MailFrom and X-RcptTo headers after ours.
    let stored = String::from_utf8(fs::read(&files[0]).unwrap()).unwrap();
    let (head, body) = stored.split_once("\n\n").expect("a blank line after the headers");
    let ours = message.replace("\r\n", "\n");
    let (our_head, our_body) = ours.split_once("\n\n").unwrap();
    let expected_head = format!(
        "{our_head}\nX-Peer: {}\nX-MailFrom: sv@test\nX-RcptTo: ops@example.com, dev@example.com",
        head.lines().find_map(|line| line.strip_prefix("X-Peer: ")).unwrap_or("?")
    );
    assert_eq!(head, expected_head);
    assert_eq!(body, our_body);
    assert!(body.contains("\n.\n..two dots\n.leading dot\nnon-ASCII: grüße\n"), "{body}");
}

#[test]
fn the_server_receives_the_exact_bytes_and_envelope() {
    let dir = TestDir::new();
    let server = support_server(&dir.path, &[]);
    let message = message();
    let mut rig = Rig::new();
    assert_eq!(rig.deliver(server.addr, None, &["ops@example.com", "dev@example.com"], &message), Ok(()));
    let envelope = dir.join("1.env");
    wait_until("the server stored the mail", DEADLINE, || envelope.exists());
    assert_eq!(fs::read_to_string(&envelope).unwrap(), "sv@test\nops@example.com\ndev@example.com\n");
    assert_eq!(String::from_utf8(fs::read(dir.join("1.eml")).unwrap()).unwrap(), message);
    // The 1500-byte line went out as 998 + 502.
    assert!(message.contains(&format!("\r\n{}\r\n{}\r\nlast line\r\n", "x".repeat(998), "x".repeat(502))));
}

#[test]
fn a_refused_recipient_fails_the_delivery_with_the_servers_reply() {
    let dir = TestDir::new();
    let server = support_server(&dir.path, &[]);
    let mut rig = Rig::new();
    let outcome = rig.deliver(server.addr, None, &["ops@example.com", "reject@example.com"], &message());
    assert_eq!(outcome, Err(format!("smtp {}: RCPT TO:<reject@example.com>: 550 5.1.1 no such user", server.addr)));
    assert!(!dir.join("1.eml").exists());
}

#[test]
fn auth_plain_is_sent_when_credentials_are_given() {
    let dir = TestDir::new();
    let server = support_server(&dir.path, &["--auth", "mailer:s3cret pass"]);
    let mut rig = Rig::new();
    let outcome = rig.deliver(server.addr, None, &["ops@example.com"], &message());
    assert_eq!(outcome, Err(format!("smtp {}: MAIL FROM:<sv@test>: 530 5.7.0 Authentication required", server.addr)));
    let outcome = rig.deliver(server.addr, Some(("mailer", "wrong")), &["ops@example.com"], &message());
    assert_eq!(outcome, Err(format!("smtp {}: AUTH PLAIN: 535 5.7.8 Authentication credentials invalid", server.addr)));
    assert_eq!(rig.deliver(server.addr, Some(("mailer", "s3cret pass")), &["ops@example.com"], &message()), Ok(()));
    let envelope = dir.join("1.env");
    wait_until("the server stored the mail", DEADLINE, || envelope.exists());
    assert_eq!(fs::read_to_string(dir.join("1.eml")).unwrap(), message());
}

#[test]
fn no_server_is_a_connect_error() {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut rig = Rig::new();
    let outcome = rig.deliver(addr, None, &["ops@example.com"], &message());
    assert_eq!(outcome, Err(format!("smtp {addr}: connect: Connection refused (os error 111)")));
}

#[test]
fn a_cancelled_delivery_closes_its_connection() {
    // A server that accepts and never greets.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut rig = Rig::new();
    let id = rig.start(addr, None, &["ops@example.com"], &message()).unwrap();
    let (mut accepted, _) = listener.accept().unwrap();
    accepted.set_read_timeout(Some(DEADLINE)).unwrap();
    assert!(rig.mailer.cancel(rig.poll.registry(), id));
    assert!(!rig.mailer.cancel(rig.poll.registry(), id));
    assert!(rig.mailer.is_empty());
    // The client's side is closed: the server reads EOF, not a timeout.
    let mut byte = [0u8; 1];
    assert_eq!(io::Read::read(&mut accepted, &mut byte).unwrap(), 0);
}

/// A fake sendmail that records its arguments and stdin, and exits with `code`.
fn fake_sendmail(dir: &TestDir, code: u8) -> PathBuf {
    let path = dir.write(
        "sendmail",
        &format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {{dir}}/argv\ncat > {{dir}}/stdin\nexit {code}\n"),
    );
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn sendmail_gets_dash_t_dash_i_and_the_message_on_stdin() {
    let dir = TestDir::new();
    let path = fake_sendmail(&dir, 0);
    let message = message();
    let pid = sendmail(&path, &message).expect("sendmail starts");
    // The daemon's reaper reports the status; here the test waits for the child itself.
    assert_eq!(sv_lite::sys::wait_blocking(pid).unwrap(), ExitStatus::Exited(0));
    assert_eq!(fs::read_to_string(dir.join("argv")).unwrap(), "-t\n-i\n");
    assert_eq!(fs::read_to_string(dir.join("stdin")).unwrap(), message);

    let failing = fake_sendmail(&dir, 75);
    let pid = sendmail(&failing, &message).expect("sendmail starts");
    assert_eq!(sv_lite::sys::wait_blocking(pid).unwrap(), ExitStatus::Exited(75));
}

#[test]
fn a_missing_sendmail_is_an_error_at_once() {
    let dir = TestDir::new();
    let error = sendmail(&dir.join("no-such-sendmail"), "x\r\n").unwrap_err();
    assert!(
        error.starts_with("sendmail: exec ") && error.ends_with("No such file or directory (os error 2)"),
        "{error}"
    );
}
