//! Child output: where each stream's bytes go, and line framing for forwarded output.
//!
//! Forwarded lines go to the daemon's stdout/stderr queues ([`super::stdio`]) whole, a batch of
//! complete lines at a time, so lines of different children never interleave or tear. File sinks get the
//! bytes as they come, unframed, through a [`RotatingFile`]: with rotation on
//! (`stdout_maxbytes`), an unfinished last line is held until its newline so that lines stay
//! whole across rotations (the rules are in [`super::rotate`]). The framing ([`LineFramer`]) is
//! pure and unit-tested.

use std::collections::VecDeque;
use std::io;
use std::path::Path;

use super::rotate::RotatingFile;
use super::stdio;
use crate::spec::Rotate;

/// Longest line forwarded as one; longer ones are split at this length.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Which stream of the child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    Stdout,
    Stderr,
}

impl StreamKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
        }
    }
}

/// Where a child's stream goes once the daemon has read it.
#[derive(Debug)]
pub enum OutputSink {
    /// The daemon's own stdout or stderr, with an optional `name | ` prefix on each line.
    Forward { target: StreamKind, prefix: Option<Vec<u8>> },
    /// Appended to a file, rotated by size when asked (it keeps its path, to reopen it on
    /// SIGUSR1). Boxed: it is the largest sink by far.
    File(Box<RotatingFile>),
    /// Kept only in the tail ring.
    Discard,
}

impl OutputSink {
    /// A forwarding sink for `stream`, prefixed with `name` when `prefix` is set.
    #[must_use]
    pub fn forward(stream: StreamKind, name: &str, prefix: bool) -> OutputSink {
        OutputSink::Forward { target: stream, prefix: prefix.then(|| format!("{name} | ").into_bytes()) }
    }

    /// The same forwarding sink, writing to our `target` stream instead.
    #[must_use]
    pub fn retarget(self, target: StreamKind) -> OutputSink {
        match self {
            OutputSink::Forward { prefix, .. } => OutputSink::Forward { target, prefix },
            other => other,
        }
    }

    /// Opens `path` for appending, creating it if needed, rotated as `rotate` says.
    pub fn file(path: &Path, rotate: Rotate) -> io::Result<OutputSink> {
        RotatingFile::open(path, rotate).map(|file| OutputSink::File(Box::new(file)))
    }
}

/// The most recent output of one stream of one instance, for `ctl tail`. Memory grows only as
/// output arrives, up to `capacity`; a program that prints nothing costs nothing.
#[derive(Debug)]
pub struct OutputRing {
    bytes: VecDeque<u8>,
    capacity: usize,
}

impl OutputRing {
    #[must_use]
    pub fn new(capacity: usize) -> OutputRing {
        OutputRing { bytes: VecDeque::new(), capacity }
    }

    /// Appends `chunk`, dropping the oldest bytes beyond capacity.
    pub fn push(&mut self, chunk: &[u8]) {
        let chunk = &chunk[chunk.len().saturating_sub(self.capacity)..];
        let overflow = (self.bytes.len() + chunk.len()).saturating_sub(self.capacity);
        self.bytes.drain(..overflow);
        self.bytes.extend(chunk);
    }

    /// The last `n` lines (an unfinished last line counts as one).
    #[must_use]
    pub fn last_lines(&self, n: usize) -> Vec<u8> {
        if n == 0 {
            return Vec::new();
        }
        let len = self.bytes.len();
        // Skip a trailing newline, then find the start of the n-th line from the end.
        let mut remaining = n;
        let mut start = 0;
        let end_search = if self.bytes.back() == Some(&b'\n') { len.saturating_sub(1) } else { len };
        for index in (0..end_search).rev() {
            if self.bytes[index] == b'\n' {
                remaining -= 1;
                if remaining == 0 {
                    start = index + 1;
                    break;
                }
            }
        }
        self.bytes.range(start..).copied().collect()
    }
}

/// Splits a byte stream into lines, keeping the unfinished tail between reads.
#[derive(Debug, Default)]
pub struct LineFramer {
    partial: Vec<u8>,
}

impl LineFramer {
    /// Appends every complete line in `chunk` (each with `prefix` and a newline) to `out`, and
    /// keeps the rest. A line longer than [`MAX_LINE_BYTES`] is emitted in pieces.
    pub fn push(&mut self, chunk: &[u8], prefix: &[u8], out: &mut Vec<u8>) {
        let mut rest = chunk;
        while let Some(newline) = rest.iter().position(|&byte| byte == b'\n') {
            let (line, tail) = rest.split_at(newline);
            self.emit(line, prefix, out);
            rest = &tail[1..];
        }
        self.partial.extend_from_slice(rest);
        while self.partial.len() >= MAX_LINE_BYTES {
            let piece: Vec<u8> = self.partial.drain(..MAX_LINE_BYTES).collect();
            push_line(&piece, prefix, out);
        }
    }

    /// Emits the unfinished tail, if any, as a last line (at EOF).
    pub fn finish(&mut self, prefix: &[u8], out: &mut Vec<u8>) {
        if !self.partial.is_empty() {
            let partial = std::mem::take(&mut self.partial);
            push_line(&partial, prefix, out);
        }
    }

    fn emit(&mut self, line: &[u8], prefix: &[u8], out: &mut Vec<u8>) {
        if self.partial.is_empty() {
            push_line(line, prefix, out);
        } else {
            self.partial.extend_from_slice(line);
            let whole = std::mem::take(&mut self.partial);
            push_line(&whole, prefix, out);
            // Keep the allocation for the next partial line.
            self.partial = whole;
            self.partial.clear();
        }
    }
}

fn push_line(line: &[u8], prefix: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(prefix);
    out.extend_from_slice(line);
    out.push(b'\n');
}

/// One child stream being read by the daemon.
#[derive(Debug)]
pub struct ChildOutput {
    pub name: String,
    pub stream: StreamKind,
    pub sink: OutputSink,
    framer: LineFramer,
    /// A write to the file sink failed and none has succeeded since (reported once).
    write_failing: bool,
}

impl ChildOutput {
    #[must_use]
    pub fn new(name: String, stream: StreamKind, sink: OutputSink) -> ChildOutput {
        ChildOutput { name, stream, sink, framer: LineFramer::default(), write_failing: false }
    }

    /// Delivers bytes just read. `scratch` is a reused buffer.
    pub fn deliver(&mut self, chunk: &[u8], scratch: &mut Vec<u8>) {
        let result = match &mut self.sink {
            OutputSink::Discard => Ok(()),
            OutputSink::File(file) => file.write_stream(chunk),
            OutputSink::Forward { target, prefix } => {
                scratch.clear();
                self.framer.push(chunk, prefix.as_deref().unwrap_or_default(), scratch);
                if !scratch.is_empty() {
                    stdio::forward(*target, scratch);
                }
                Ok(())
            }
        };
        self.report(result);
    }

    /// Logs a failed write once (a full disk would otherwise log every read), and a recovery.
    fn report(&mut self, result: io::Result<()>) {
        match result {
            Ok(()) if self.write_failing => {
                self.write_failing = false;
                log::info!("{}: writing {} output again", self.name, self.stream.as_str());
            }
            Ok(()) => {}
            Err(error) if !self.write_failing => {
                self.write_failing = true;
                log::warn!(
                    "{}: cannot write {} output: {error}; dropping it until a write succeeds",
                    self.name,
                    self.stream.as_str()
                );
            }
            Err(_) => {}
        }
    }

    /// The daemon stream this output is forwarded to, if it is forwarded.
    #[must_use]
    pub fn forwarded_to(&self) -> Option<StreamKind> {
        match &self.sink {
            OutputSink::Forward { target, .. } => Some(*target),
            OutputSink::File(_) | OutputSink::Discard => None,
        }
    }

    /// Reopens a file sink at its path (after logrotate renamed it); other sinks are unchanged.
    pub fn reopen(&mut self) -> io::Result<()> {
        match &mut self.sink {
            OutputSink::File(file) => file.reopen(),
            OutputSink::Forward { .. } | OutputSink::Discard => Ok(()),
        }
    }

    /// The stream ended: flush an unfinished last line.
    pub fn finish(&mut self, scratch: &mut Vec<u8>) {
        match &mut self.sink {
            OutputSink::Forward { target, prefix } => {
                scratch.clear();
                self.framer.finish(prefix.as_deref().unwrap_or_default(), scratch);
                if !scratch.is_empty() {
                    stdio::forward(*target, scratch);
                }
            }
            OutputSink::File(file) => {
                let result = file.finish();
                self.report(result);
            }
            OutputSink::Discard => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(chunks: &[&[u8]]) -> String {
        let mut framer = LineFramer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            framer.push(chunk, b"p | ", &mut out);
        }
        framer.finish(b"p | ", &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_are_whole_across_reads() {
        assert_eq!(frame(&[b"ab", b"c\nde", b"f\n"]), "p | abc\np | def\n");
        assert_eq!(frame(&[b"no newline"]), "p | no newline\n");
        assert_eq!(frame(&[b"\n\n"]), "p | \np | \n");
    }

    #[test]
    fn the_ring_keeps_the_last_bytes_and_finds_the_last_lines() {
        let mut ring = OutputRing::new(16);
        ring.push(b"one\ntwo\nthree\n");
        assert_eq!(ring.last_lines(2), b"two\nthree\n");
        assert_eq!(ring.last_lines(10), b"one\ntwo\nthree\n");
        ring.push(b"four\nfi");
        assert_eq!(ring.last_lines(1), b"fi");
        assert_eq!(ring.last_lines(2), b"four\nfi");
        assert!(ring.bytes.len() <= 16);
        ring.push(&[b'x'; 40]);
        assert_eq!(ring.last_lines(1), vec![b'x'; 16]);
        assert_eq!(ring.last_lines(0), b"");
    }

    #[test]
    fn very_long_lines_are_split() {
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        let text = frame(&[&long]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), 4 + MAX_LINE_BYTES);
    }
}
