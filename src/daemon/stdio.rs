//! The daemon's own stdout and stderr, written without ever blocking the loop.
//!
//! Forwarded program output and the daemon's log lines go into one bounded queue per stream.
//! The loop writes what the reader takes and waits for writability through the same `Poll`
//! (tokens `STDOUT`/`STDERR`), so a stalled reader (a log driver that stopped, `| less` left at
//! a page, a terminal on Ctrl-S) never stops supervision, control, signals or reaping.
//!
//! Backpressure instead of loss: above [`HIGH_WATER`] queued bytes the driver stops reading
//! the pipes of the instances whose lines go to that stream, so those children block in
//! `write` exactly as on a slow terminal; below [`LOW_WATER`] it reads them again. The daemon's
//! own log lines cannot wait, so past [`LOG_LIMIT`] they are dropped and counted.
//!
//! How a write is kept from blocking without touching a description shared with other
//! processes: a pipe or terminal is reopened through `/proc/self/fd/N`, which gives a private
//! open file description that can be `O_NONBLOCK`; a socket (journald) is written with
//! `send(MSG_DONTWAIT)`; a regular file or `/dev/null` never makes a writer wait and is written
//! as is. Without `/proc`, the shared description is made non-blocking and put back at exit.
//!
//! Forwarded lines arrive as iovecs ([`forward_vectored`]) and are written with `writev` while
//! nothing is queued; only what the reader does not take at once is copied into the queue.
//!
//! The queues are thread-local: the daemon has one thread, and the logger (which `log` needs to
//! be `Sync`) reaches the stderr queue through [`LogWriter`].

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Instant;

use super::output::StreamKind;
use crate::sys::{self, FdKind};

/// Queued bytes above which the pipes feeding a stream are no longer read.
pub const HIGH_WATER: usize = 1024 * 1024;
/// Queued bytes below which they are read again.
pub const LOW_WATER: usize = HIGH_WATER / 2;
/// Queued bytes beyond which the daemon's own log lines are dropped (and counted).
pub const LOG_LIMIT: usize = 4 * HIGH_WATER;

/// How a stream is written.
#[derive(Debug)]
enum Writer {
    /// A private non-blocking description of a pipe or terminal.
    Private(OwnedFd),
    /// A socket, written with `send(MSG_DONTWAIT)`.
    Socket(i32),
    /// A file, `/dev/null`, or anything else that does not make a writer wait.
    Direct(i32),
    /// The shared description made non-blocking (no `/proc`); its old flags come back at exit.
    Shared { fd: i32, old_flags: libc::c_int },
}

#[derive(Debug)]
struct Queue {
    writer: Writer,
    bytes: Vec<u8>,
    /// Bytes of `bytes` already written.
    head: usize,
    /// The reader is gone (EPIPE and the like): everything is dropped from now on.
    broken: bool,
    dropped_log_lines: u64,
}

impl Queue {
    fn fd(&self) -> i32 {
        match &self.writer {
            Writer::Private(fd) => fd.as_raw_fd(),
            Writer::Socket(fd) | Writer::Direct(fd) | Writer::Shared { fd, .. } => *fd,
        }
    }

    fn pending(&self) -> usize {
        self.bytes.len() - self.head
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        if self.head > 0 && self.head >= self.bytes.len() / 2 {
            self.bytes.drain(..self.head);
            self.head = 0;
        }
        self.bytes.extend_from_slice(bytes);
    }

    /// Writes `pieces` in order behind what is queued. With nothing queued they go straight
    /// from the caller's buffers with `writev`, up to [`sys::IOV_MAX`] at a time; what the
    /// reader does not take now (from inside a piece on) is copied into the queue, so the
    /// next bytes written are still the next bytes of the stream.
    fn push_vectored(&mut self, mut pieces: &mut [IoSlice<'_>]) {
        if self.broken {
            return;
        }
        if self.pending() == 0 {
            let socket = matches!(self.writer, Writer::Socket(_));
            while !pieces.is_empty() {
                match sys::writev_fd(self.fd(), pieces, socket) {
                    Ok(0) => break,
                    Ok(written) => IoSlice::advance_slices(&mut pieces, written),
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        self.broken = true;
                        self.bytes.clear();
                        self.head = 0;
                        return;
                    }
                }
            }
        }
        for piece in pieces.iter() {
            self.push(piece);
        }
    }

    /// Writes until the queue is empty or the reader stops taking bytes.
    fn flush(&mut self) {
        while self.head < self.bytes.len() && !self.broken {
            let socket = matches!(self.writer, Writer::Socket(_));
            match sys::write_fd(self.fd(), &self.bytes[self.head..], socket) {
                Ok(0) => break,
                Ok(written) => self.head += written,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // The reader is gone; nothing can be told about it on this stream.
                    self.broken = true;
                }
            }
        }
        if self.head == self.bytes.len() || self.broken {
            self.bytes.clear();
            self.head = 0;
        }
    }
}

thread_local! {
    static QUEUES: RefCell<[Option<Queue>; 2]> = const { RefCell::new([None, None]) };
}

fn slot(stream: StreamKind) -> usize {
    match stream {
        StreamKind::Stdout => 0,
        StreamKind::Stderr => 1,
    }
}

fn open_writer(fd: i32) -> Writer {
    match sys::fd_kind(fd) {
        FdKind::Regular | FdKind::Other | FdKind::Closed => Writer::Direct(fd),
        FdKind::Socket => Writer::Socket(fd),
        FdKind::Fifo | FdKind::Terminal => {
            let private = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(format!("/proc/self/fd/{fd}"));
            match private {
                Ok(file) => Writer::Private(OwnedFd::from(file)),
                Err(error) => match sys::set_nonblocking(fd, true) {
                    Ok(old_flags) => {
                        log::debug!("fd {fd}: cannot reopen through /proc ({error}); made it non-blocking");
                        Writer::Shared { fd, old_flags }
                    }
                    Err(error) => {
                        log::warn!(
                            "fd {fd}: cannot make it non-blocking ({error}); a stalled reader may stall sv-lite"
                        );
                        Writer::Direct(fd)
                    }
                },
            }
        }
    }
}

/// Takes over fds 1 and 2 for the loop. Returns, per stream, the descriptor to watch for
/// writability, or `None` when writes to it never wait.
pub fn install() -> [Option<i32>; 2] {
    let queues = [libc::STDOUT_FILENO, libc::STDERR_FILENO].map(|fd| Queue {
        writer: open_writer(fd),
        bytes: Vec::new(),
        head: 0,
        broken: false,
        dropped_log_lines: 0,
    });
    let watch = [&queues[0], &queues[1]].map(|queue| match queue.writer {
        Writer::Private(_) | Writer::Shared { .. } => Some(queue.fd()),
        Writer::Socket(_) => Some(queue.fd()),
        Writer::Direct(_) => None,
    });
    QUEUES.with(|cell| *cell.borrow_mut() = queues.map(Some));
    watch
}

/// Queues forwarded output for `stream` and writes what the reader takes now.
pub fn forward(stream: StreamKind, bytes: &[u8]) {
    with_queue(stream, |queue| {
        queue.push(bytes);
        queue.flush();
    });
}

/// Forwards `pieces`, in order, to `stream`: written at once while nothing is queued, the
/// rest queued (see `Queue::push_vectored`). The caller's slices may be advanced.
pub fn forward_vectored(stream: StreamKind, pieces: &mut [IoSlice<'_>]) {
    with_queue(stream, |queue| {
        queue.push_vectored(pieces);
        queue.flush();
    });
}

/// Writes what the reader of `stream` takes now.
pub fn flush(stream: StreamKind) {
    with_queue(stream, Queue::flush);
}

/// Bytes waiting for the reader of `stream` (0 when not installed).
#[must_use]
pub fn pending(stream: StreamKind) -> usize {
    QUEUES
        .with(|cell| cell.try_borrow().ok().and_then(|queues| queues[slot(stream)].as_ref().map(Queue::pending)))
        .unwrap_or(0)
}

/// Whether pipes forwarded to `stream` should wait before being read again.
#[must_use]
pub fn over_high_water(stream: StreamKind) -> bool {
    pending(stream) > HIGH_WATER
}

fn with_queue(stream: StreamKind, f: impl FnOnce(&mut Queue)) {
    QUEUES.with(|cell| {
        if let Ok(mut queues) = cell.try_borrow_mut() {
            if let Some(queue) = queues[slot(stream)].as_mut() {
                f(queue);
            }
        }
    });
}

/// Writes `stream`'s queue until at most `until` bytes are left, waiting for the reader up to
/// `deadline`. Returns whether it got there.
pub fn drain(stream: StreamKind, until: usize, deadline: Instant) -> bool {
    loop {
        flush(stream);
        let (left, fd) = QUEUES.with(|cell| {
            cell.try_borrow()
                .ok()
                .and_then(|queues| queues[slot(stream)].as_ref().map(|queue| (queue.pending(), queue.fd())))
                .unwrap_or((0, -1))
        });
        if left <= until {
            return true;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return false;
        }
        sys::wait_writable(fd, i32::try_from(remaining.as_millis().max(1)).unwrap_or(i32::MAX));
    }
}

/// Writes out what is queued, waiting up to `deadline` for slow readers; a reader that takes
/// nothing until then loses the rest, and a line on stderr says how much. Then gives fds 1 and
/// 2 back as they were: later writes (the last log lines) block as usual.
pub fn uninstall(deadline: Instant) {
    for stream in [StreamKind::Stdout, StreamKind::Stderr] {
        if !drain(stream, 0, deadline) {
            let left = pending(stream);
            with_queue(stream, |queue| queue.broken = true);
            let text = format!(
                "sv-lite: the reader of our {} took nothing for {:?}; {left} bytes of output not written\n",
                stream.as_str(),
                super::EXIT_FLUSH_DEADLINE
            );
            // Best effort, never waiting: stderr may be the stalled one.
            let _ = sys::write_fd(libc::STDERR_FILENO, text.as_bytes(), false);
        }
    }
    let queues = QUEUES.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    for queue in queues.into_iter().flatten() {
        if let Writer::Shared { fd, old_flags } = queue.writer {
            sys::restore_flags(fd, old_flags);
        }
    }
}

/// The logger's output: the stderr queue while the loop runs, a plain blocking write before
/// and after. Log lines are dropped (and counted) past [`LOG_LIMIT`].
pub struct LogWriter;

impl io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let queued = QUEUES.with(|cell| {
            let Ok(mut queues) = cell.try_borrow_mut() else { return false };
            let Some(queue) = queues[1].as_mut() else { return false };
            if queue.pending() + bytes.len() > LOG_LIMIT {
                queue.dropped_log_lines += 1;
                return true;
            }
            if queue.dropped_log_lines > 0 {
                let note =
                    format!("sv-lite: {} log lines dropped: stderr was not being read\n", queue.dropped_log_lines);
                queue.dropped_log_lines = 0;
                queue.push(note.as_bytes());
            }
            queue.push(bytes);
            queue.flush();
            true
        });
        if !queued {
            sys::write_all_fd(libc::STDERR_FILENO, bytes)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsRawFd;

    use super::*;

    /// A queue writing to a non-blocking pipe (64 KiB), and the pipe's read end.
    fn queue_on_pipe() -> (Queue, std::io::PipeReader, std::io::PipeWriter) {
        let (reader, writer) = std::io::pipe().unwrap();
        sys::set_nonblocking(writer.as_raw_fd(), true).unwrap();
        let queue = Queue {
            writer: Writer::Direct(writer.as_raw_fd()),
            bytes: Vec::new(),
            head: 0,
            broken: false,
            dropped_log_lines: 0,
        };
        (queue, reader, writer)
    }

    fn lines(first: usize, count: usize) -> Vec<Vec<u8>> {
        (first..first + count).map(|n| format!("line {n:06} {}\n", "x".repeat(n % 90)).into_bytes()).collect()
    }

    fn forward_lines(queue: &mut Queue, lines: &[Vec<u8>]) {
        let mut pieces: Vec<IoSlice<'_>> =
            lines.iter().flat_map(|line| [IoSlice::new(b"p | "), IoSlice::new(line)]).collect();
        queue.push_vectored(&mut pieces);
    }

    #[test]
    fn a_short_writev_queues_the_rest_in_order() {
        let (mut queue, mut reader, _writer) = queue_on_pipe();
        // About 300 KB, more than the pipe takes: the writev stops inside some piece.
        let first = lines(0, 3000);
        forward_lines(&mut queue, &first);
        let queued = queue.pending();
        assert!(queued > 0, "the pipe took everything");
        // Later lines go behind the queued ones, not straight to the pipe.
        let second = lines(3000, 10);
        forward_lines(&mut queue, &second);
        assert!(queue.pending() > queued);

        let mut expected = Vec::new();
        for line in first.iter().chain(&second) {
            expected.extend_from_slice(b"p | ");
            expected.extend_from_slice(line);
        }
        let mut got = Vec::new();
        let mut buffer = vec![0; 64 * 1024];
        while got.len() < expected.len() {
            let n = reader.read(&mut buffer).unwrap();
            got.extend_from_slice(&buffer[..n]);
            queue.flush();
        }
        assert_eq!(queue.pending(), 0);
        assert!(got == expected, "the bytes read differ from the bytes forwarded");
    }

    #[test]
    fn more_pieces_than_iov_max_are_all_written() {
        let (mut queue, mut reader, writer) = queue_on_pipe();
        // 3 × IOV_MAX pieces of 8 bytes: 24 KiB, which the pipe takes whole.
        let short: Vec<Vec<u8>> = (0..3 * sys::IOV_MAX / 2).map(|n| format!("{n:03}\n").into_bytes()).collect();
        forward_lines(&mut queue, &short);
        assert_eq!(queue.pending(), 0);
        drop(writer);
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        let expected: Vec<u8> = short.iter().flat_map(|line| [&b"p | "[..], line].concat()).collect();
        assert!(got == expected, "{} of {} bytes", got.len(), expected.len());
    }
}
