//! Mail delivery for `notify: email`: one delivery attempt at a time per message, carried out
//! without blocking the loop, by SMTP on mio sockets in the daemon's `Poll` or by a sendmail
//! child.
//!
//! [`compose`] writes the RFC 5322 message. [`SmtpDialog`] is the SMTP client as a pure machine
//! (reply lines in, command bytes out), tested against scripted replies. [`Mailer`] drives
//! dialogs over non-blocking `TcpStream`s like `probes.rs`: connecting (write interest;
//! completion by `take_error` and `peer_addr`), then write interest while output is pending and
//! read interest otherwise, each event driven to `WouldBlock`. [`sendmail`] starts `PATH -t -i`
//! with the message in a memfd as its stdin; its exit status is the outcome.
//!
//! No policy here: retries, digests and timeouts are the core's. A delivery reports success or
//! failure with a reason; a delivery that takes too long is the core's to [`Mailer::cancel`].
//! Plain TCP only (no TLS), and the server is an IP address (no DNS).

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::core::Pid;
use crate::schedule::calendar;

/// Longest reply line accepted (RFC 5321 allows 512 octets; servers are lax).
pub const MAX_REPLY_LINE: usize = 4096;
/// Most bytes of one (multi-line) reply accepted.
pub const MAX_REPLY: usize = 16 * 1024;
/// Longest line of a message, without its CRLF (RFC 5322 section 2.1.1).
const MAX_LINE: usize = 998;
/// Most bytes of a server's reply quoted in an error.
const MAX_QUOTED: usize = 512;
/// Size of the read buffer (on the stack, per event).
const READ_BUFFER_BYTES: usize = 4096;

/// The message: headers and a `text/plain` UTF-8 body, CRLF line endings, body lines longer than
/// 998 bytes hard-wrapped. `message_id` is written in angle brackets (added when missing).
/// Header values lose any CR, LF or other control character (the config loader refuses them;
/// this is the second line of defence against header injection). A non-ASCII subject becomes
/// RFC 2047 encoded words.
#[must_use]
pub fn compose(from: &str, to: &[String], subject: &str, body: &str, date: SystemTime, message_id: &str) -> String {
    let mut message = String::with_capacity(body.len() + 512);
    let _ = write!(message, "Date: {}\r\n", rfc5322_date(date));
    let _ = write!(message, "From: {}\r\n", header_value(from));
    message.push_str("To: ");
    let mut line_len = "To: ".len();
    for (index, address) in to.iter().enumerate() {
        let address = header_value(address);
        if index > 0 {
            // Fold before a line would pass 78 characters (RFC 5322's recommendation).
            if line_len + 2 + address.len() > 78 {
                message.push_str(",\r\n ");
                line_len = 1;
            } else {
                message.push_str(", ");
                line_len += 2;
            }
        }
        message.push_str(&address);
        line_len += address.len();
    }
    message.push_str("\r\n");
    let subject = header_value(subject);
    if subject.is_ascii() {
        let _ = write!(message, "Subject: {subject}\r\n");
    } else {
        let _ = write!(message, "Subject: {}\r\n", encoded_words(&subject));
    }
    let message_id = header_value(message_id);
    let message_id = message_id.trim_start_matches('<').trim_end_matches('>');
    let _ = write!(message, "Message-ID: <{message_id}>\r\n");
    message.push_str(
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    );
    for line in lines(body) {
        let mut rest = line;
        while rest.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            message.push_str(&rest[..cut]);
            message.push_str("\r\n");
            rest = &rest[cut..];
        }
        message.push_str(rest);
        message.push_str("\r\n");
    }
    message
}

/// `Mon, 07 Dec 2026 08:30:00 +0000` (RFC 5322 section 3.3, in UTC). Times before 1970 are
/// written as 1970-01-01.
#[must_use]
pub fn rfc5322_date(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX / 2);
    let of_day = seconds % 86_400;
    let (year, month, day) = calendar::civil_from_days(days);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[calendar::weekday(days) as usize % 7],
        MONTHS[(month as usize + 11) % 12],
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// A header value with control characters (CR and LF above all) replaced by spaces.
fn header_value(value: &str) -> String {
    let mut clean = String::with_capacity(value.len());
    for c in value.chars() {
        clean.push(if c.is_control() { ' ' } else { c });
    }
    clean
}

/// `=?UTF-8?B?...?=` encoded words of at most 75 characters (RFC 2047), cut at character
/// boundaries and folded onto continuation lines.
fn encoded_words(text: &str) -> String {
    // 39 bytes make 52 base64 characters, 64 with the `=?UTF-8?B?` and `?=` around them: the
    // first line, after `Subject: `, stays within 78.
    const CHUNK: usize = 39;
    let mut words = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(CHUNK);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        words.push(format!("=?UTF-8?B?{}?=", base64(&rest.as_bytes()[..cut])));
        rest = &rest[cut..];
    }
    words.join("\r\n ")
}

/// The lines of `text`, split at LF with a CR before it dropped; a final newline ends the last
/// line rather than starting an empty one.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.strip_suffix('\n').unwrap_or(text).split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line))
}

/// Standard base64 with padding (RFC 4648), for AUTH PLAIN and encoded words.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let bytes = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let group = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(char::from(ALPHABET[(group >> (18 - 6 * index) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The SMTP client as a pure machine: fed the server's bytes, it appends the next command to an
/// output buffer, until the mail is accepted or refused.
///
/// greeting 220 → `EHLO` 250 → (`AUTH PLAIN` 235) → `MAIL FROM` 250 → `RCPT TO` 250 for each
/// recipient → `DATA` 354 → the dot-stuffed message and `.` 250 → `QUIT` (written, not waited
/// for: the mail is delivered once the server said 250 to it). A reply goes on by its first
/// digit, as RFC 5321 section 4.2.1 says clients should (251 to `RCPT` is as good as 250).
#[derive(Debug)]
pub struct SmtpDialog {
    /// Every exchange, built at the start.
    steps: Vec<Step>,
    /// The step whose reply is awaited; past the end once the mail is accepted.
    at: usize,
    /// Bytes of the reply line being read.
    line: Vec<u8>,
    /// The reply being read: its code and its lines' text, joined by spaces.
    reply: Option<(u16, String)>,
    /// Bytes of the reply being read, all lines.
    reply_bytes: usize,
}

/// One exchange: what is sent, the first digit of the reply that lets the dialog go on, and
/// the name errors give it.
#[derive(Debug)]
struct Step {
    name: String,
    send: Vec<u8>,
    class: u16,
}

impl Step {
    fn new(name: &str, send: &str, class: u16) -> Step {
        let mut bytes = Vec::with_capacity(send.len() + 2);
        bytes.extend_from_slice(send.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        Step { name: name.to_string(), send: bytes, class }
    }
}

impl SmtpDialog {
    /// A dialog for one message. `helo`, `from` and every recipient must be free of spaces,
    /// control characters and angle brackets (they go on command lines); the user and password
    /// may be anything but NUL.
    pub fn new(
        helo: &str,
        from: &str,
        to: &[String],
        auth: Option<(String, String)>,
        message: &str,
    ) -> Result<SmtpDialog, String> {
        let bad = |value: &str| value.bytes().any(|b| b <= b' ' || b == b'<' || b == b'>' || b == 0x7f);
        if helo.is_empty() || bad(helo) {
            return Err(format!("bad HELO name {helo:?}"));
        }
        if let Some(address) = std::iter::once(from).chain(to.iter().map(String::as_str)).find(|a| bad(a)) {
            return Err(format!("bad address {address:?}"));
        }
        if to.is_empty() {
            return Err("no recipient".to_string());
        }
        let mut steps = vec![Step { name: "greeting".to_string(), send: Vec::new(), class: 2 }];
        let ehlo = format!("EHLO {helo}");
        steps.push(Step::new(&ehlo, &ehlo, 2));
        if let Some((user, password)) = auth {
            if user.contains('\0') || password.contains('\0') {
                return Err("the user or password holds a NUL byte".to_string());
            }
            let credentials = base64(format!("\0{user}\0{password}").as_bytes());
            steps.push(Step::new("AUTH PLAIN", &format!("AUTH PLAIN {credentials}"), 2));
        }
        for command in std::iter::once(format!("MAIL FROM:<{from}>")).chain(to.iter().map(|a| format!("RCPT TO:<{a}>")))
        {
            steps.push(Step::new(&command, &command, 2));
        }
        steps.push(Step::new("DATA", "DATA", 3));
        let mut data = String::with_capacity(message.len() + 64);
        for line in lines(message) {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push('.');
        steps.push(Step::new("end of data", &data, 2));
        Ok(SmtpDialog { steps, at: 0, line: Vec::new(), reply: None, reply_bytes: 0 })
    }

    /// What the dialog waits for, for errors: `RCPT TO:<ops@example.com>`.
    #[must_use]
    pub fn step_name(&self) -> &str {
        self.steps.get(self.at).map_or("QUIT", |step| &step.name)
    }

    /// Takes the server's next bytes; appends any command to send to `out`. Returns the outcome
    /// once the dialog is over: `Ok` when the server accepted the message (`QUIT` is then in
    /// `out`), or why it failed.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Option<Result<(), String>> {
        for &byte in data {
            if self.at >= self.steps.len() {
                // Whatever follows the accepted message (an answer to QUIT) does not matter.
                return None;
            }
            if byte != b'\n' {
                if self.line.len() >= MAX_REPLY_LINE {
                    return Some(Err(format!("{}: reply line longer than {MAX_REPLY_LINE} bytes", self.step_name())));
                }
                self.line.push(byte);
                continue;
            }
            let line = std::mem::take(&mut self.line);
            if let Some(outcome) = self.reply_line(&line, out) {
                return Some(outcome);
            }
        }
        None
    }

    /// One whole reply line (without its LF).
    fn reply_line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Option<Result<(), String>> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.reply_bytes += line.len() + 2;
        if self.reply_bytes > MAX_REPLY {
            return Some(Err(format!("{}: reply longer than {MAX_REPLY} bytes", self.step_name())));
        }
        let text = String::from_utf8_lossy(line);
        let code = match line {
            [a @ b'0'..=b'9', b @ b'0'..=b'9', c @ b'0'..=b'9', rest @ ..]
                if matches!(rest.first(), None | Some(b' ' | b'-')) =>
            {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Some(Err(format!("{}: malformed reply {:?}", self.step_name(), quoted(&text)))),
        };
        let (first, reply) = self.reply.get_or_insert_with(|| (code, String::new()));
        if *first != code {
            let first = *first;
            return Some(Err(format!("{}: malformed reply: code {code} inside a {first} reply", self.step_name())));
        }
        if let Some(line_text) = text.get(4..).filter(|t| !t.is_empty()) {
            reply.push(' ');
            reply.push_str(line_text);
        }
        if line.get(3) == Some(&b'-') {
            return None;
        }
        self.reply_bytes = 0;
        let (code, reply) = self.reply.take()?;
        let step = self.steps.get(self.at)?;
        if code / 100 != step.class {
            return Some(Err(format!("{}: {code}{}", step.name, quoted(&reply))));
        }
        self.at += 1;
        match self.steps.get_mut(self.at) {
            Some(next) => out.append(&mut next.send),
            None => {
                out.extend_from_slice(b"QUIT\r\n");
                return Some(Ok(()));
            }
        }
        None
    }
}

/// At most [`MAX_QUOTED`] bytes of a server's text, for an error.
fn quoted(text: &str) -> &str {
    let mut end = text.len().min(MAX_QUOTED);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// One delivery in flight.
#[derive(Debug)]
struct Delivery {
    id: u64,
    token: Token,
    addr: SocketAddr,
    stream: TcpStream,
    connected: bool,
    dialog: SmtpDialog,
    /// Bytes to send, of which `written` are sent.
    out: Vec<u8>,
    written: usize,
    /// The interest the socket is registered with.
    interest: Interest,
}

/// SMTP deliveries in flight (a few at most: a plain list).
#[derive(Debug, Default)]
pub struct Mailer {
    deliveries: Vec<Delivery>,
}

impl Mailer {
    #[must_use]
    pub fn new() -> Mailer {
        Mailer::default()
    }

    /// Starts delivering `message` to `addr`: a non-blocking connect, registered with
    /// `registry` under `token` (the driver allocates it). An `Err` means it failed at once and
    /// nothing is registered.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        registry: &Registry,
        token: Token,
        id: u64,
        addr: SocketAddr,
        auth: Option<(String, String)>,
        helo: &str,
        from: &str,
        to: &[String],
        message: String,
    ) -> Result<(), String> {
        let context = |e: String| format!("smtp {addr}: {e}");
        if self.deliveries.iter().any(|delivery| delivery.id == id || delivery.token == token) {
            crate::never!("mail {id} or its token {token:?} is already in flight");
            return Err(context("a delivery with this id or token is already in flight".to_string()));
        }
        let dialog = SmtpDialog::new(helo, from, to, auth, &message).map_err(context)?;
        drop(message);
        let mut stream = TcpStream::connect(addr).map_err(|e| context(format!("connect: {e}")))?;
        registry.register(&mut stream, token, Interest::WRITABLE).map_err(|e| context(format!("register: {e}")))?;
        self.deliveries.push(Delivery {
            id,
            token,
            addr,
            stream,
            connected: false,
            dialog,
            out: Vec::new(),
            written: 0,
            interest: Interest::WRITABLE,
        });
        Ok(())
    }

    /// Whether `token` is one of ours.
    #[must_use]
    pub fn owns(&self, token: Token) -> bool {
        self.deliveries.iter().any(|delivery| delivery.token == token)
    }

    /// Handles a readiness event for `token`: drives the delivery to `WouldBlock`. Returns its
    /// id and outcome when it is over (its socket then deregistered and closed). An event for a
    /// token that is not (or no longer) ours does nothing.
    pub fn handle(&mut self, registry: &Registry, token: Token) -> Option<(u64, Result<(), String>)> {
        let index = self.deliveries.iter().position(|delivery| delivery.token == token)?;
        let outcome = self.deliveries[index].drive(registry)?;
        let delivery = self.deliveries.swap_remove(index);
        let addr = delivery.addr;
        let id = close(registry, delivery);
        Some((id, outcome.map_err(|e| format!("smtp {addr}: {e}"))))
    }

    /// Abandons a delivery (the core's timeout fired): deregisters and closes it. Returns
    /// whether it was in flight.
    pub fn cancel(&mut self, registry: &Registry, id: u64) -> bool {
        let Some(index) = self.deliveries.iter().position(|delivery| delivery.id == id) else {
            return false;
        };
        close(registry, self.deliveries.swap_remove(index));
        true
    }

    /// Deliveries in flight.
    #[must_use]
    pub fn len(&self) -> usize {
        self.deliveries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty()
    }
}

impl Delivery {
    /// Moves the delivery on as far as it goes without blocking. `Some` is its outcome.
    fn drive(&mut self, registry: &Registry) -> Option<Result<(), String>> {
        if !self.connected {
            match connected(&self.stream) {
                Ok(false) => return None,
                Ok(true) => self.connected = true,
                Err(e) => return Some(Err(e)),
            }
        }
        let mut buffer = [0u8; READ_BUFFER_BYTES];
        loop {
            if let Err(e) = self.write_out() {
                return Some(Err(format!("{}: write: {e}", self.dialog.step_name())));
            }
            let interest = if self.written < self.out.len() { Interest::WRITABLE } else { Interest::READABLE };
            if self.interest != interest {
                if let Err(e) = registry.reregister(&mut self.stream, self.token, interest) {
                    return Some(Err(format!("reregister: {e}")));
                }
                self.interest = interest;
            }
            if interest == Interest::WRITABLE {
                return None;
            }
            let n = match self.stream.read(&mut buffer) {
                Ok(0) => return Some(Err(format!("{}: the server closed the connection", self.dialog.step_name()))),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(format!("{}: read: {e}", self.dialog.step_name()))),
            };
            if let Some(outcome) = self.dialog.feed(&buffer[..n], &mut self.out) {
                if outcome.is_ok() {
                    // Delivered. QUIT is polite, not needed: one try, then close.
                    let _ = self.write_out();
                }
                return Some(outcome);
            }
        }
    }

    /// Writes pending output until done or `WouldBlock`.
    fn write_out(&mut self) -> io::Result<()> {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.written = 0;
        Ok(())
    }
}

/// Whether the non-blocking connect has completed, as in `probes.rs`: a pending socket error
/// means it failed; otherwise `peer_addr` answers once connected.
fn connected(stream: &TcpStream) -> Result<bool, String> {
    match stream.take_error() {
        Ok(None) => {}
        Ok(Some(e)) | Err(e) => return Err(format!("connect: {e}")),
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected || e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
        Err(e) => Err(format!("connect: {e}")),
    }
}

/// Deregisters and closes a delivery's socket; returns its id.
fn close(registry: &Registry, mut delivery: Delivery) -> u64 {
    if let Err(e) = registry.deregister(&mut delivery.stream) {
        // Closing the socket takes it out of the poll set all the same.
        log::debug!("mail {}: deregister: {e}", delivery.id);
    }
    delivery.id
}

/// Starts `PATH -t -i` (recipients from the headers; a lone `.` line is not the end) with
/// `message` as its stdin, and returns its pid. The message goes into a memfd first, which is
/// memory, so writing it never blocks and the loop needs no pipe writer; the child reads the
/// memfd from its start. Its own process group, stdout to /dev/null, stderr the daemon's (for
/// sendmail's diagnostics). The exit status, reaped by the daemon, is the outcome: 0 means
/// delivered.
pub fn sendmail(path: &Path, message: &str) -> Result<Pid, String> {
    let argv = vec![path.to_string_lossy().into_owned(), "-t".to_string(), "-i".to_string()];
    super::notify_out::spawn_fed(argv, Vec::new(), message.as_bytes(), None)
        .map_err(|error| format!("sendmail: {error}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn to(addresses: &[&str]) -> Vec<String> {
        addresses.iter().map(|a| a.to_string()).collect()
    }

    /// 2026-12-07 08:30:00 UTC, a Monday.
    fn monday() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_632_200)
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases =
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(b"\0user\0secret"), "AHVzZXIAc2VjcmV0");
    }

    #[test]
    fn dates_are_rfc_5322_in_utc() {
        assert_eq!(rfc5322_date(monday()), "Mon, 07 Dec 2026 08:30:00 +0000");
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(UNIX_EPOCH + Duration::from_secs(951_868_799)), "Tue, 29 Feb 2000 23:59:59 +0000");
    }

    #[test]
    fn compose_writes_exact_headers_and_a_crlf_body() {
        let message = compose(
            "sv-lite@host",
            &to(&["ops@example.com", "dev@example.com"]),
            "host: web:0 exited unexpectedly",
            "line one\nline two\r\n.dot\n",
            monday(),
            "1.2@host",
        );
        assert_eq!(
            message,
            "Date: Mon, 07 Dec 2026 08:30:00 +0000\r\n\
             From: sv-lite@host\r\n\
             To: ops@example.com, dev@example.com\r\n\
             Subject: host: web:0 exited unexpectedly\r\n\
             Message-ID: <1.2@host>\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\
             \r\n\
             line one\r\nline two\r\n.dot\r\n"
        );
    }

    #[test]
    fn compose_strips_line_breaks_from_header_values() {
        let message = compose("a@b\r\nBcc: evil@x", &to(&["c@d\nX: y"]), "s\r\nBcc: evil@x", "", monday(), "<id\n@h>");
        let head = message.split("\r\n\r\n").next().unwrap();
        assert!(head.lines().all(|line| !line.starts_with("Bcc") && !line.starts_with("X:")), "{head}");
        assert!(head.contains("From: a@b  Bcc: evil@x\r\n"), "{head}");
        assert!(head.contains("Message-ID: <id @h>\r\n"), "{head}");
        assert!(!head.replace("\r\n", "").contains(['\r', '\n']));
    }

    #[test]
    fn compose_encodes_a_non_ascii_subject_and_folds_long_recipient_lists() {
        let subject = "web:0 ist abgestürzt ".repeat(4);
        let recipients: Vec<String> = (0..6).map(|n| format!("operator{n}@example.com")).collect();
        let message = compose("a@b", &recipients, &subject, "x", monday(), "i@h");
        let head = message.split("\r\n\r\n").next().unwrap();
        let subject_line = head.split("\r\nSubject: ").nth(1).unwrap().split("\r\nMessage-ID").next().unwrap();
        let mut decoded = Vec::new();
        for word in subject_line.split("\r\n ") {
            assert!(word.len() <= 75, "{word}");
            let inner = word.strip_prefix("=?UTF-8?B?").unwrap().strip_suffix("?=").unwrap();
            decoded.extend(decode_base64(inner));
        }
        assert_eq!(String::from_utf8(decoded).unwrap(), subject);
        assert!(head.lines().all(|line| line.len() <= 78), "{head}");
        assert!(head.contains("To: operator0@example.com, operator1@example.com, operator2@example.com,\r\n "));
    }

    fn decode_base64(text: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let values: Vec<u32> = text
            .bytes()
            .filter(|&b| b != b'=')
            .map(|b| ALPHABET.iter().position(|&a| a == b).unwrap() as u32)
            .collect();
        let mut out = Vec::new();
        for chunk in values.chunks(4) {
            let group = chunk.iter().enumerate().fold(0, |acc, (i, v)| acc | v << (18 - 6 * i));
            out.extend(group.to_be_bytes()[1..chunk.len()].iter());
        }
        out
    }

    #[test]
    fn compose_hard_wraps_long_lines_at_998_bytes_on_character_boundaries() {
        let long = "é".repeat(600); // 1200 bytes
        let message = compose("a@b", &to(&["c@d"]), "s", &format!("{long}\nend"), monday(), "i@h");
        let body = message.split("\r\n\r\n").nth(1).unwrap();
        let body_lines: Vec<&str> = body.split("\r\n").collect();
        assert_eq!(body_lines.len(), 4, "{body_lines:?}"); // two pieces, "end", and "" after the last CRLF
        assert_eq!(body_lines[0].len(), 998);
        assert_eq!(body_lines[1].len(), 202);
        assert_eq!(format!("{}{}", body_lines[0], body_lines[1]), long);
        assert_eq!(body_lines[2], "end");
    }

    /// Runs a dialog against scripted server replies: each reply is fed, and what the dialog
    /// sends in answer is recorded. Returns the transcript ("S: " and "C: " lines) and the
    /// outcome.
    fn converse(dialog: &mut SmtpDialog, replies: &[&str]) -> (String, Option<Result<(), String>>) {
        let mut transcript = String::new();
        for reply in replies {
            transcript.push_str(&format!("S: {reply}"));
            let mut out = Vec::new();
            let outcome = dialog.feed(reply.as_bytes(), &mut out);
            transcript.push_str(
                &String::from_utf8(out)
                    .unwrap()
                    .replace("\r\n", "\n")
                    .lines()
                    .map(|l| format!("C: {l}\n"))
                    .collect::<String>(),
            );
            if outcome.is_some() {
                return (transcript, outcome);
            }
        }
        (transcript, None)
    }

    fn dialog(auth: Option<(&str, &str)>, message: &str) -> SmtpDialog {
        let auth = auth.map(|(user, password)| (user.to_string(), password.to_string()));
        SmtpDialog::new("host", "sv@host", &to(&["ops@example.com", "dev@example.com"]), auth, message).unwrap()
    }

    const ACCEPTING: &[&str] = &[
        "220 mx ESMTP\r\n",
        "250-mx\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n",
        "250 2.1.0 ok\r\n",
        "250 2.1.5 ok\r\n",
        "251 2.1.5 forwarded\r\n",
        "354 go ahead\r\n",
        "250 2.0.0 queued\r\n",
    ];

    #[test]
    fn a_dialog_sends_the_dot_stuffed_message_and_quits_after_250() {
        let mut smtp = dialog(None, "Subject: x\r\n\r\n.leading dot\r\n..two\r\nplain\r\n.\r\n");
        let (transcript, outcome) = converse(&mut smtp, ACCEPTING);
        assert_eq!(outcome, Some(Ok(())));
        assert_eq!(
            transcript,
            "S: 220 mx ESMTP\r\nC: EHLO host\n\
             S: 250-mx\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\nC: MAIL FROM:<sv@host>\n\
             S: 250 2.1.0 ok\r\nC: RCPT TO:<ops@example.com>\n\
             S: 250 2.1.5 ok\r\nC: RCPT TO:<dev@example.com>\n\
             S: 251 2.1.5 forwarded\r\nC: DATA\n\
             S: 354 go ahead\r\nC: Subject: x\nC: \nC: ..leading dot\nC: ...two\nC: plain\nC: ..\nC: .\n\
             S: 250 2.0.0 queued\r\nC: QUIT\n"
        );
    }

    #[test]
    fn a_dialog_with_credentials_authenticates_with_auth_plain() {
        let mut smtp = dialog(Some(("user", "secret")), "x\r\n");
        let (transcript, outcome) = converse(&mut smtp, &["220 mx\r\n", "250 mx\r\n", "235 2.7.0 ok\r\n"]);
        assert_eq!(outcome, None);
        assert!(
            transcript.ends_with("C: AUTH PLAIN AHVzZXIAc2VjcmV0\nS: 235 2.7.0 ok\r\nC: MAIL FROM:<sv@host>\n"),
            "{transcript}"
        );
        let mut refused = dialog(Some(("user", "wrong")), "x\r\n");
        let (_, outcome) = converse(&mut refused, &["220 mx\r\n", "250 mx\r\n", "535 5.7.8 bad credentials\r\n"]);
        assert_eq!(outcome, Some(Err("AUTH PLAIN: 535 5.7.8 bad credentials".to_string())));
    }

    #[test]
    fn a_refused_recipient_ends_the_dialog_naming_the_command_and_the_reply() {
        let mut smtp = dialog(None, "x\r\n");
        let (_, outcome) =
            converse(&mut smtp, &["220 mx\r\n", "250 mx\r\n", "250 ok\r\n", "550 5.1.1 no such user\r\n"]);
        assert_eq!(outcome, Some(Err("RCPT TO:<ops@example.com>: 550 5.1.1 no such user".to_string())));
    }

    #[test]
    fn a_421_greeting_ends_the_dialog() {
        let mut smtp = dialog(None, "x\r\n");
        let (transcript, outcome) = converse(&mut smtp, &["421-mx busy\r\n421 try later\r\n"]);
        assert_eq!(outcome, Some(Err("greeting: 421 mx busy try later".to_string())));
        assert!(!transcript.contains("C:"), "{transcript}");
    }

    #[test]
    fn replies_may_arrive_byte_by_byte_with_bare_line_feeds() {
        let mut smtp = dialog(None, "x\r\n");
        let mut out = Vec::new();
        for byte in "220 mx\n250-mx\n250 ok\n".bytes() {
            assert_eq!(smtp.feed(&[byte], &mut out), None);
        }
        assert_eq!(String::from_utf8(out).unwrap(), "EHLO host\r\nMAIL FROM:<sv@host>\r\n");
    }

    #[test]
    fn garbage_and_mixed_codes_are_malformed_replies() {
        let mut smtp = dialog(None, "x\r\n");
        let (_, outcome) = converse(&mut smtp, &["HTTP/1.1 400 Bad Request\r\n"]);
        assert_eq!(outcome, Some(Err("greeting: malformed reply \"HTTP/1.1 400 Bad Request\"".to_string())));
        let mut smtp = dialog(None, "x\r\n");
        let (_, outcome) = converse(&mut smtp, &["2200 mx\r\n"]);
        assert_eq!(outcome, Some(Err("greeting: malformed reply \"2200 mx\"".to_string())));
        let mut smtp = dialog(None, "x\r\n");
        let (_, outcome) = converse(&mut smtp, &["220 mx\r\n", "250-mx\r\n550 no\r\n"]);
        assert_eq!(outcome, Some(Err("EHLO host: malformed reply: code 550 inside a 250 reply".to_string())));
    }

    #[test]
    fn oversize_replies_are_refused() {
        let mut smtp = dialog(None, "x\r\n");
        let long_line = format!("220 {}", "x".repeat(MAX_REPLY_LINE));
        let (_, outcome) = converse(&mut smtp, &[&long_line]);
        assert_eq!(outcome, Some(Err(format!("greeting: reply line longer than {MAX_REPLY_LINE} bytes"))));
        let mut smtp = dialog(None, "x\r\n");
        let many_lines = format!("220 mx\r\n{}", format!("250-{}\r\n", "y".repeat(1000)).repeat(20));
        let (_, outcome) = converse(&mut smtp, &[&many_lines]);
        assert_eq!(outcome, Some(Err(format!("EHLO host: reply longer than {MAX_REPLY} bytes"))));
    }

    #[test]
    fn command_lines_refuse_line_breaks_and_brackets() {
        let message = || "";
        assert!(SmtpDialog::new("host", "a@b\r\nRCPT TO:<x@y>", &to(&["c@d"]), None, message()).is_err());
        assert!(SmtpDialog::new("host", "a@b", &to(&["c@d>"]), None, message()).is_err());
        assert!(SmtpDialog::new("ho st", "a@b", &to(&["c@d"]), None, message()).is_err());
        assert!(SmtpDialog::new("host", "a@b", &[], None, message()).is_err());
        // The null reverse-path is allowed.
        assert!(SmtpDialog::new("host", "", &to(&["c@d"]), None, message()).is_ok());
    }
}
