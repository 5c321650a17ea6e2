//! Log files that rotate themselves by size: [`RotatingFile`], an append-only file that, when a
//! write would take it past `maxbytes`, rotates first (`.N` dropped, `.k` → `.k+1`, the file →
//! `.1`, a new file opened; with no backups the file is truncated instead).
//!
//! Rotation is line-aligned, and no byte is lost:
//! - [`RotatingFile::write`] is for line-framed writers (the event log): a file gets the whole
//!   lines that fit, then rotates, then the rest. A line is split only when it alone is longer
//!   than `maxbytes`, and then at `maxbytes`.
//! - [`RotatingFile::write_stream`] is for unframed byte streams (child output read from a pipe,
//!   in chunks that cut lines anywhere). With rotation on, the unfinished last line of a chunk is
//!   held back until its newline arrives, so it goes to the file whole, with its line. A held
//!   line reaching [`MAX_HELD_BYTES`] (or `maxbytes`, if smaller) is written out as it is: only
//!   such a long line can straddle two files. [`RotatingFile::finish`] (at EOF, and on drop)
//!   writes what is held. Without rotation the bytes go straight to the file, as they come.
//!
//! Architecture invariant: never fsync, and never block beyond a regular file write. A failed
//! rotation is reported once (until one succeeds), retried only after another `maxbytes`, and
//! writing goes on to the current file meanwhile.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::spec::Rotate;

/// The longest unfinished line held back from a rotating file; a longer one is written in pieces.
pub const MAX_HELD_BYTES: usize = 64 * 1024;

/// An append-only log file rotated by size.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    /// The file's size as we know it: its size when opened plus what we wrote since.
    size: u64,
    rotate: Rotate,
    /// The unfinished last line of an unframed stream (only with rotation on).
    held: Vec<u8>,
    /// The last byte written was not a newline: a line is under way in this file.
    mid_line: bool,
    /// Where that line began (the file's size after its last newline).
    line_start: u64,
    /// Set when a rotation failed: no new attempt before the file reaches this size.
    retry_at: Option<u64>,
    /// A rotation failure was logged and none has succeeded since.
    failure_reported: bool,
}

impl RotatingFile {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &Path, mut rotate: Rotate) -> io::Result<RotatingFile> {
        let (file, size) = open_append(path)?;
        // Only regular files rotate: `/dev/null`, a FIFO or a terminal must never be renamed.
        if rotate.maxbytes > 0 && !file.metadata().is_ok_and(|metadata| metadata.file_type().is_file()) {
            log::warn!("{}: not a regular file; it is not rotated", path.display());
            rotate.maxbytes = 0;
        }
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            size,
            rotate,
            held: Vec::new(),
            mid_line: false,
            line_start: size,
            retry_at: None,
            failure_reported: false,
        })
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// For a line-framed writer after a failed write: cuts the part of a line the failure left
    /// at the end of the file, so that the file holds whole lines only. Nothing to do when the
    /// file ends with a newline.
    pub fn drop_torn_line(&mut self) -> io::Result<()> {
        if self.mid_line {
            self.file.set_len(self.line_start)?;
            self.size = self.line_start;
            self.mid_line = false;
        }
        Ok(())
    }

    /// Appends `bytes`, which hold whole lines (a line-framed writer), rotating first where they
    /// would take the file past `maxbytes`. Anything held from [`Self::write_stream`] goes first.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.held.is_empty() {
            self.write_lines(bytes)
        } else {
            self.held.extend_from_slice(bytes);
            self.write_held()
        }
    }

    /// Appends bytes of an unframed stream, holding back an unfinished last line while rotation
    /// is on (see the module doc).
    pub fn write_stream(&mut self, chunk: &[u8]) -> io::Result<()> {
        if self.rotate.maxbytes == 0 && self.held.is_empty() {
            return self.append(chunk);
        }
        let end = chunk.iter().rposition(|&byte| byte == b'\n').map_or(0, |newline| newline + 1);
        let (lines, tail) = chunk.split_at(end);
        let mut result = Ok(());
        if !lines.is_empty() {
            result = self.write(lines);
        }
        self.held.extend_from_slice(tail);
        let hold_limit = usize::try_from(self.rotate.maxbytes).unwrap_or(usize::MAX).min(MAX_HELD_BYTES);
        if self.held.len() >= hold_limit {
            let flushed = self.write_held();
            result = result.and(flushed);
        }
        result
    }

    /// Writes the held unfinished line, if any (the stream ended).
    pub fn finish(&mut self) -> io::Result<()> {
        if self.held.is_empty() {
            Ok(())
        } else {
            self.write_held()
        }
    }

    /// Opens the file again at its path (after an external logrotate renamed it); on failure the
    /// old one is kept. A held unfinished line stays held.
    pub fn reopen(&mut self) -> io::Result<()> {
        let (file, size) = open_append(&self.path)?;
        self.file = file;
        self.size = size;
        self.mid_line = false;
        self.line_start = size;
        self.retry_at = None;
        Ok(())
    }

    fn write_held(&mut self) -> io::Result<()> {
        let held = std::mem::take(&mut self.held);
        let result = self.write_lines(&held);
        // Keep the allocation for the next unfinished line.
        self.held = held;
        self.held.clear();
        result
    }

    /// The line-aligned write: whole lines that fit, rotate, the rest, as often as needed.
    fn write_lines(&mut self, bytes: &[u8]) -> io::Result<()> {
        let maxbytes = self.rotate.maxbytes;
        let mut rest = bytes;
        while !rest.is_empty() {
            let blocked = self.retry_at.is_some_and(|retry_at| self.size < retry_at);
            let room = maxbytes.saturating_sub(self.size);
            if maxbytes == 0 || blocked || rest.len() as u64 <= room {
                return self.append(rest);
            }
            // `rest` is longer than `room`, so `room` fits in a usize.
            let room = room as usize;
            match rest[..room].iter().rposition(|&byte| byte == b'\n') {
                Some(newline) => {
                    self.append(&rest[..=newline])?;
                    rest = &rest[newline + 1..];
                }
                // A line longer than maxbytes, or one already begun here that does not fit: it
                // is split at maxbytes.
                None if self.size == 0 || self.mid_line => {
                    self.append(&rest[..room])?;
                    rest = &rest[room..];
                }
                None => {}
            }
            if !rest.is_empty() {
                self.rotate_now();
            }
        }
        Ok(())
    }

    /// Rotates, or reports why not (once) and writes on to the current file.
    fn rotate_now(&mut self) {
        match self.try_rotate() {
            Ok(()) => {
                self.retry_at = None;
                self.failure_reported = false;
            }
            Err(error) => {
                self.retry_at = Some(self.size.saturating_add(self.rotate.maxbytes.max(1)));
                if !self.failure_reported {
                    self.failure_reported = true;
                    log::warn!(
                        "{}: cannot rotate: {error}; writing on to the current file (retrying after another {} bytes)",
                        self.path.display(),
                        self.rotate.maxbytes
                    );
                }
            }
        }
    }

    fn try_rotate(&mut self) -> Result<(), String> {
        // The path may no longer name our file: an external logrotate moved it (and SIGUSR1 has
        // not come yet), or another writer of the same file rotated it. Then the file there is
        // the one to write to, not one to rotate.
        let ours = self.file.metadata().map_err(|error| format!("stat: {error}"))?;
        match fs::metadata(&self.path) {
            Ok(there) if there.dev() == ours.dev() && there.ino() == ours.ino() => {}
            Ok(_) => return self.reopen().map_err(|error| format!("reopen: {error}")),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return self.reopen().map_err(|error| format!("reopen: {error}"));
            }
            Err(error) => return Err(format!("stat: {error}")),
        }
        let backups = self.rotate.backups;
        if backups == 0 {
            self.file.set_len(0).map_err(|error| format!("truncate: {error}"))?;
            self.size = 0;
            self.mid_line = false;
            self.line_start = 0;
            return Ok(());
        }
        let oldest = self.backup(backups);
        match fs::remove_file(&oldest) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(format!("remove {}: {error}", oldest.display())),
        }
        for k in (1..backups).rev() {
            let (from, to) = (self.backup(k), self.backup(k + 1));
            match fs::rename(&from, &to) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(format!("rename {} to {}: {error}", from.display(), to.display())),
            }
        }
        let first = self.backup(1);
        fs::rename(&self.path, &first)
            .map_err(|error| format!("rename {} to {}: {error}", self.path.display(), first.display()))?;
        // Until the new file opens, writes go on to the old one, now `.1`.
        self.reopen().map_err(|error| format!("open a new {}: {error}", self.path.display()))
    }

    /// `path.k`.
    fn backup(&self, k: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{k}"));
        PathBuf::from(name)
    }

    /// Appends all of `bytes` to the current file, counting what was written even on error.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.file.write(rest) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    let written = &rest[..n];
                    if let Some(newline) = written.iter().rposition(|&byte| byte == b'\n') {
                        self.line_start = self.size + newline as u64 + 1;
                    }
                    self.size += n as u64;
                    self.mid_line = written[n - 1] != b'\n';
                    rest = &rest[n..];
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

impl Drop for RotatingFile {
    fn drop(&mut self) {
        if let Err(error) = self.finish() {
            log::warn!("{}: cannot write the last unfinished line: {error}", self.path.display());
        }
    }
}

fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

#[cfg(test)]
pub(crate) mod tests;
