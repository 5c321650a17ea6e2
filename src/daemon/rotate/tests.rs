//! Rotation specs: exact file sets and contents for small limits, no backups, long lines,
//! reopening after an external rename, unframed streams, and 200 MB through a 10 MB limit.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

/// A fresh directory for one test, removed when dropped.
pub(crate) struct Scratch(pub PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sv-lite-rotate-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Every file in the directory with its contents, sorted by name.
    pub(crate) fn files(&self) -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = fs::read_dir(&self.0)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let text = String::from_utf8(fs::read(entry.path()).unwrap()).unwrap();
                (entry.file_name().into_string().unwrap(), text)
            })
            .collect();
        files.sort();
        files
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn rotate(maxbytes: u64, backups: u32) -> Rotate {
    Rotate { maxbytes, backups }
}

fn files(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(name, text)| (name.to_string(), text.to_string())).collect()
}

#[test]
fn whole_lines_that_fit_then_rotate_then_the_rest() {
    let scratch = Scratch::new("fit");
    let mut log = RotatingFile::open(&scratch.join("log"), rotate(10, 2)).unwrap();
    log.write(b"aaa\nbbb\n").unwrap(); // 8 bytes
    log.write(b"cc\ndd\n").unwrap(); // "cc\n" would make 11: rotate first
    assert_eq!(scratch.files(), files(&[("log", "cc\ndd\n"), ("log.1", "aaa\nbbb\n")]));
    // Several lines in one write: the whole lines that fit, rotate, the rest.
    log.write(b"e\nf\ng\nh\ni\n").unwrap();
    assert_eq!(scratch.files(), files(&[("log", "g\nh\ni\n"), ("log.1", "cc\ndd\ne\nf\n"), ("log.2", "aaa\nbbb\n")]));
    // `.2` is the oldest kept: it is dropped, the others shift.
    log.write(b"jjjj\n").unwrap();
    log.write(b"kkkkkk\n").unwrap();
    assert_eq!(scratch.files(), files(&[("log", "kkkkkk\n"), ("log.1", "jjjj\n"), ("log.2", "g\nh\ni\n")]));
}

#[test]
fn a_write_that_exactly_fills_the_file_does_not_rotate() {
    let scratch = Scratch::new("exact");
    let mut log = RotatingFile::open(&scratch.join("log"), rotate(6, 1)).unwrap();
    log.write(b"ab\ncd\n").unwrap();
    assert_eq!(scratch.files(), files(&[("log", "ab\ncd\n")]));
    log.write(b"e\n").unwrap();
    assert_eq!(scratch.files(), files(&[("log", "e\n"), ("log.1", "ab\ncd\n")]));
}

#[test]
fn with_no_backups_the_file_is_truncated() {
    let scratch = Scratch::new("nobackups");
    let mut log = RotatingFile::open(&scratch.join("log"), rotate(8, 0)).unwrap();
    log.write(b"one\ntwo\n").unwrap();
    log.write(b"three\n").unwrap();
    assert_eq!(scratch.files(), files(&[("log", "three\n")]));
    // The whole lines that fit, then the truncation, then the rest.
    log.write(b"4\n5\n6\n").unwrap();
    assert_eq!(scratch.files(), files(&[("log", "5\n6\n")]));
}

#[test]
fn a_line_longer_than_maxbytes_is_split_at_maxbytes() {
    let scratch = Scratch::new("long");
    let mut log = RotatingFile::open(&scratch.join("log"), rotate(4, 3)).unwrap();
    log.write(b"a\n").unwrap();
    log.write(b"0123456789\nb\n").unwrap();
    assert_eq!(scratch.files(), files(&[("log", "b\n"), ("log.1", "89\n"), ("log.2", "4567"), ("log.3", "0123")]));
}

#[test]
fn maxbytes_zero_never_rotates() {
    let scratch = Scratch::new("never");
    let mut log = RotatingFile::open(&scratch.join("log"), rotate(0, 3)).unwrap();
    for _ in 0..100 {
        log.write(b"some line\n").unwrap();
    }
    log.write_stream(b"partial").unwrap();
    // Without rotation the stream goes to the file as it comes, unfinished line included.
    assert_eq!(scratch.files().len(), 1);
    assert_eq!(scratch.files()[0].1.len(), 1007);
}

#[test]
fn a_file_already_full_when_opened_rotates_before_its_first_write() {
    let scratch = Scratch::new("full");
    let path = scratch.join("log");
    fs::write(&path, "0123456789\n").unwrap();
    let mut log = RotatingFile::open(&path, rotate(10, 1)).unwrap();
    log.write(b"x\n").unwrap();
    assert_eq!(scratch.files(), files(&[("log", "x\n"), ("log.1", "0123456789\n")]));
}

#[test]
fn reopen_after_an_external_rename_writes_to_the_new_file() {
    let scratch = Scratch::new("reopen");
    let path = scratch.join("log");
    let mut log = RotatingFile::open(&path, rotate(100, 2)).unwrap();
    log.write(b"before\n").unwrap();
    fs::rename(&path, scratch.join("log.old")).unwrap();
    log.write(b"still to the renamed file\n").unwrap();
    log.reopen().unwrap();
    log.write(b"after\n").unwrap();
    assert_eq!(scratch.files(), files(&[("log", "after\n"), ("log.old", "before\nstill to the renamed file\n")]));
    // The size restarts from the new file's: no early rotation.
    log.write(&[b'z'; 90]).unwrap();
    assert_eq!(scratch.files().len(), 2);
}

#[test]
fn a_file_renamed_without_reopen_is_not_rotated_again() {
    // logrotate moved the file and SIGUSR1 has not come: the next rotation opens the path anew
    // instead of moving someone else's file to `.1`.
    let scratch = Scratch::new("moved");
    let path = scratch.join("log");
    let mut log = RotatingFile::open(&path, rotate(8, 2)).unwrap();
    log.write(b"aaaaaa\n").unwrap();
    fs::rename(&path, scratch.join("log-20261207")).unwrap();
    log.write(b"bbbbbb\n").unwrap();
    assert_eq!(scratch.files(), files(&[("log", "bbbbbb\n"), ("log-20261207", "aaaaaa\n")]));
}

#[test]
fn a_failed_rotation_is_reported_and_writing_goes_on() {
    let scratch = Scratch::new("failed");
    let path = scratch.join("log");
    // `.1` is a non-empty directory: renaming the file onto it fails.
    fs::create_dir_all(scratch.join("log.1").join("blocker")).unwrap();
    let mut log = RotatingFile::open(&path, rotate(4, 1)).unwrap();
    log.write(b"abc\n").unwrap();
    log.write(b"def\n").unwrap();
    log.write(b"ghi\n").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "abc\ndef\nghi\n");
    assert!(log.failure_reported);
    // Retried after another maxbytes; once possible, it rotates.
    fs::remove_dir_all(scratch.join("log.1")).unwrap();
    log.write(b"jkl\n").unwrap();
    assert_eq!(fs::read_to_string(scratch.join("log.1")).unwrap(), "abc\ndef\nghi\n");
    assert_eq!(fs::read_to_string(&path).unwrap(), "jkl\n");
    assert!(!log.failure_reported);
}

#[test]
fn unframed_chunks_are_rotated_at_line_ends() {
    let scratch = Scratch::new("stream");
    let mut log = RotatingFile::open(&scratch.join("log"), rotate(12, 3)).unwrap();
    // Reads that cut lines anywhere, as pipe reads do.
    for chunk in [&b"line1\nli"[..], b"ne2\nline", b"3\nline4\nl", b"ine5\n", b"tail"] {
        log.write_stream(chunk).unwrap();
    }
    // The unfinished "tail" is held until its newline or the end of the stream.
    assert_eq!(scratch.files(), files(&[("log", "line5\n"), ("log.1", "line3\nline4\n"), ("log.2", "line1\nline2\n")]));
    log.finish().unwrap();
    assert_eq!(fs::read_to_string(scratch.join("log")).unwrap(), "line5\ntail");
}

#[test]
fn an_unfinished_line_is_held_so_that_it_does_not_straddle_a_rotation() {
    let scratch = Scratch::new("straddle");
    let mut log = RotatingFile::open(&scratch.join("log"), rotate(10, 1)).unwrap();
    log.write_stream(b"aaaa\nbb").unwrap();
    log.write_stream(b"bbbb\n").unwrap();
    assert_eq!(scratch.files(), files(&[("log", "bbbbbb\n"), ("log.1", "aaaa\n")]));
}

#[test]
fn a_held_line_is_written_when_the_file_is_dropped() {
    let scratch = Scratch::new("drop");
    let mut log = RotatingFile::open(&scratch.join("log"), rotate(100, 1)).unwrap();
    log.write_stream(b"a\nunfinished").unwrap();
    drop(log);
    assert_eq!(scratch.files(), files(&[("log", "a\nunfinished")]));
}

#[test]
fn a_held_line_longer_than_maxbytes_is_written_in_pieces() {
    let scratch = Scratch::new("heldlong");
    let mut log = RotatingFile::open(&scratch.join("log"), rotate(4, 5)).unwrap();
    log.write_stream(b"012").unwrap();
    log.write_stream(b"3456").unwrap();
    log.write_stream(b"7\n").unwrap();
    log.finish().unwrap();
    // Split at maxbytes, as a framed long line is; its newline starts the next file.
    assert_eq!(scratch.files(), files(&[("log", "\n"), ("log.1", "4567"), ("log.2", "0123")]));
}

/// `n` as a numbered line of 52 to 1972 bytes.
fn numbered_line(n: u64, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let padding = (n % 97) as usize * 20;
    writeln!(out, "{n:010} {:-<width$}|", "", width = 40 + padding).unwrap();
}

/// Checks the lines of `files`, oldest first: each whole and numbered one after the other, the
/// last being `last`. Returns the first line's number.
pub(crate) fn check_continuity(files: &[PathBuf], last: u64) -> u64 {
    let mut expected: Option<u64> = None;
    let mut first = None;
    for path in files {
        let bytes = fs::read(path).unwrap();
        assert!(bytes.is_empty() || bytes.ends_with(b"\n"), "{}: ends mid-line", path.display());
        for line in bytes.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()) {
            let text = std::str::from_utf8(line).unwrap();
            let n: u64 = text[..10].parse().unwrap_or_else(|_| panic!("{}: torn line {text:?}", path.display()));
            let mut whole = Vec::new();
            numbered_line(n, &mut whole);
            assert_eq!(&whole[..whole.len() - 1], line, "{}: line {n} is not whole", path.display());
            if let Some(expected) = expected {
                assert_eq!(n, expected, "{}: a line missing or duplicated", path.display());
            }
            first.get_or_insert(n);
            expected = Some(n + 1);
        }
    }
    assert_eq!(expected, Some(last + 1), "the last line written is the last line read");
    first.unwrap()
}

fn check_rotated_set(path: &Path, maxbytes: u64, backups: u32, last: u64) {
    let dir = path.parent().unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    let mut expected: Vec<String> = (1..=backups).map(|k| format!("{name}.{k}")).collect();
    expected.push(name.to_string());
    expected.sort();
    let mut found: Vec<String> =
        fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    found.sort();
    assert_eq!(found, expected);
    let oldest_first: Vec<PathBuf> =
        (1..=backups).rev().map(|k| dir.join(format!("{name}.{k}"))).chain([path.to_path_buf()]).collect();
    for file in &oldest_first {
        let size = fs::metadata(file).unwrap().len();
        assert!(size <= maxbytes, "{}: {size} bytes", file.display());
    }
    check_continuity(&oldest_first, last);
}

// See: issue 13, "200 MB through a 10 MB limit with 3 backups".
#[test]
fn two_hundred_megabytes_through_a_ten_megabyte_limit_with_three_backups() {
    const TOTAL: usize = 200 * 1024 * 1024;
    const MAXBYTES: u64 = 10 * 1024 * 1024;
    let scratch = Scratch::new("200mb");
    let path = scratch.join("out.log");
    let mut log = RotatingFile::open(&path, rotate(MAXBYTES, 3)).unwrap();
    // Chunks of varied sizes that cut lines anywhere, as pipe reads would. Lines and chunks are
    // of a size, so the chunk before a rotation often ends mid-line (without holding that line
    // back, some line would straddle two files).
    let mut pending = Vec::new();
    let mut written = 0;
    let mut n = 0;
    let mut chunk_index: usize = 0;
    while written < TOTAL {
        while pending.len() < 70_000 {
            n += 1;
            numbered_line(n, &mut pending);
        }
        chunk_index += 1;
        let size = 1 + (chunk_index * 7919) % 8192;
        log.write_stream(&pending[..size]).unwrap();
        pending.drain(..size);
        written += size;
    }
    // The stream ends mid-line: the rest of the last line comes, then EOF.
    let end = pending.iter().position(|&byte| byte == b'\n').unwrap() + 1;
    log.write_stream(&pending[..end]).unwrap();
    log.finish().unwrap();
    drop(log);
    check_rotated_set(&path, MAXBYTES, 3, n - pending[end..].iter().filter(|&&byte| byte == b'\n').count() as u64);
}

#[test]
fn line_framed_writes_rotate_the_same_way() {
    let scratch = Scratch::new("framed");
    let path = scratch.join("events.log");
    let mut log = RotatingFile::open(&path, rotate(64 * 1024, 2)).unwrap();
    let mut line = Vec::new();
    for n in 1..=10_000 {
        line.clear();
        numbered_line(n, &mut line);
        log.write(&line).unwrap();
    }
    drop(log);
    check_rotated_set(&path, 64 * 1024, 2, 10_000);
}

// See: issue 15, "the event log's disk fills": what a failed write left of a line is cut.
#[test]
fn a_torn_last_line_is_cut_back_to_the_last_newline() {
    let scratch = Scratch::new("torn");
    let path = scratch.join("log");
    let mut file = RotatingFile::open(&path, rotate(0, 0)).unwrap();
    file.drop_torn_line().unwrap();
    // Unframed bytes go straight to the file: this is what a write cut short by ENOSPC leaves.
    file.write_stream(b"one\ntwo\nthr").unwrap();
    file.drop_torn_line().unwrap();
    file.write(b"four\n").unwrap();
    file.drop_torn_line().unwrap();
    assert_eq!(scratch.files(), files(&[("log", "one\ntwo\nfour\n")]));
}
