//! Service directories (`include:`) watched with inotify in the daemon's `Poll`: which files
//! changed, each reported once its own burst of events is over.
//!
//! The driver's side, in order:
//! - [`DirWatch::new`] with the directories and `now`, then [`DirWatch::list`] for the files to
//!   load at startup (listing after the watches are in place, so no change falls in between),
//!   and [`DirWatch::register`] with a token.
//! - When the token is readable, [`DirWatch::handle_readable`]; before every poll,
//!   [`DirWatch::next_deadline`] joins the poll timeout; after every wake-up,
//!   [`DirWatch::take_due`] gives the paths to read again, with the files the caller has
//!   definitions for as `known`.
//! - At reload, [`DirWatch::set_dirs`].
//!
//! What a reported path means: "look at this path again". It may not have changed (the caller's
//! pure config layer ignores unchanged content), it may be gone (a deletion), and it may be any
//! name at all: editors' temporary files (`.web.json.swp`, `web.json~`, `4913`) are reported like
//! the rest, and the caller keeps what its extension filter accepts. A path may also lie outside
//! the current directories (a `known` file of a directory no longer included): the caller decides
//! with its own include list. What must never happen is a change not reported; the choices below
//! all lean that way.
//!
//! Events, per watched directory (`IN_ONLYDIR`):
//! - A file's content is final at `IN_CLOSE_WRITE`; names come and go with `IN_MOVED_TO`,
//!   `IN_MOVED_FROM` and `IN_DELETE` (temporary file, then rename: the final name comes with
//!   `IN_MOVED_TO`). `IN_MODIFY` is not asked for: close-after-write covers writes.
//! - `IN_CREATE` of a non-directory counts unless the new entry is an empty regular file with one
//!   link: that one is being written by whoever created it, and its `IN_CLOSE_WRITE` follows. A
//!   symlink, a hard link, or a file written elsewhere and linked in (`O_TMPFILE` + `linkat`) gets
//!   no close-after-write here, so its `IN_CREATE` is the only event it makes.
//! - Events about subdirectories (`IN_ISDIR`) are not file changes.
//!
//! Debounce is per file: each event puts the file's due time [`DEBOUNCE`] after it, so a burst of
//! writes is reported once and one busy file delays no other; a file that never goes quiet is
//! still reported [`MAX_DEBOUNCE`] after its first event.
//!
//! Each included directory is watched twice: itself while it exists (for its files), and from the
//! nearest existing directory above it, for the one name that leads to it. So a directory that
//! does not exist yet is picked up when it (or the first missing directory on the way to it) is
//! created, and a directory deleted, renamed away, replaced by a rename or, as a symlink,
//! retargeted (`ln -sfn`), is noticed from above. Whenever what a directory is watched from
//! changes, a rescan follows [`DEBOUNCE`] later: every file now in the directories is reported,
//! and every `known` file no longer there. `IN_Q_OVERFLOW` (events lost) rescans too. Not seen:
//! changes under a symlinked file's target outside the directories, and renames of directories
//! higher up than the nearest existing one.
//!
//! Without inotify (`inotify_init1` fails, or a watch cannot be added: `EMFILE`, `ENOSPC`,
//! `ENOMEM`, `EACCES`, ...) the watch rescans every [`RESCAN_INTERVAL`] instead, for good, and says
//! so once at warn. [`DirWatch::rescan_only`] asks for that mode directly (network file systems,
//! whose remote changes inotify does not see).
//!
//! This is I/O plumbing only: no decision about what a file means is made here.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};

/// Quiet time after a file's last event before it is reported.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// Longest a file's report waits after its first event, however busy it stays.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(2);
/// Time between rescans when inotify cannot be had.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(5);
/// Rounds of "watch the nearest existing directory, look again" per directory in one resync;
/// only a directory tree changing all the while needs more, and its events bring another resync.
const MAX_ANCHOR_STEPS: usize = 32;

/// How changes are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchMode {
    /// inotify events, debounced.
    Inotify,
    /// A full rescan every [`RESCAN_INTERVAL`].
    Rescan,
}

/// The included directories, watched. See the module documentation.
pub struct DirWatch {
    /// The directories asked for, absolute, without duplicates, in the order given.
    dirs: Vec<PathBuf>,
    /// How each of `dirs` is watched, in the same order (empty without inotify).
    anchors: Vec<Anchor>,
    /// `None` in [`WatchMode::Rescan`].
    inotify: Option<Inotify>,
    /// Every watched directory with the path it was added by (a handful: two per directory at
    /// most). Paths naming one inode share a descriptor, so a descriptor is removed only when no
    /// path uses it any more.
    watches: Vec<(PathBuf, WatchDescriptor)>,
    /// Files with events whose debounce is not over.
    pending: HashMap<PathBuf, Pending>,
    /// When everything is listed again: after an overflow, a directory appearing or going, a
    /// change of directories, and every [`RESCAN_INTERVAL`] in [`WatchMode::Rescan`].
    rescan_at: Option<Instant>,
}

/// How one included directory is watched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Anchor {
    /// The nearest existing directory above it, watched for the name that leads to it (`None` for
    /// `/`, which has nothing above).
    guard: Option<(PathBuf, WatchDescriptor)>,
    /// Its own watch, while it exists.
    direct: Option<WatchDescriptor>,
}

/// A file's events not yet reported.
#[derive(Clone, Copy, Debug)]
struct Pending {
    first: Instant,
    due: Instant,
}

/// A failed inotify call, with what was being done.
#[derive(Debug)]
struct WatchError {
    what: String,
    error: io::Error,
}

/// What a batch of events asks for once it is read.
#[derive(Default)]
struct Followup {
    resync: bool,
    rescan: bool,
}

impl DirWatch {
    /// Watches `dirs` (absolute; a relative one works from the current directory, except that its
    /// first component, while missing, is not watched for). Never fails: without inotify it
    /// rescans (see the module documentation). Nothing is reported for what is already there: the
    /// caller loads [`DirWatch::list`].
    pub fn new(dirs: &[PathBuf], now: Instant) -> DirWatch {
        let mut watch = DirWatch::unwatched(dirs);
        match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
            Ok(inotify) => {
                watch.inotify = Some(inotify);
                if let Err(error) = watch.resync() {
                    watch.fall_back(error, now + RESCAN_INTERVAL);
                }
            }
            Err(errno) => watch.fall_back(WatchError::new("inotify_init1", errno), now + RESCAN_INTERVAL),
        }
        watch
    }

    /// Watches `dirs` by rescanning every [`RESCAN_INTERVAL`], without trying inotify: for file
    /// systems whose changes inotify does not see (NFS, FUSE), and for tests.
    pub fn rescan_only(dirs: &[PathBuf], now: Instant) -> DirWatch {
        let mut watch = DirWatch::unwatched(dirs);
        watch.rescan_at = Some(now + RESCAN_INTERVAL);
        watch
    }

    /// Registers the inotify descriptor, if there is one, with `registry` under `token`
    /// (readable; mio is edge-triggered and [`DirWatch::handle_readable`] reads until
    /// `EAGAIN`). Falling back to rescans later closes it, which also takes it out of the poll.
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match &self.inotify {
            Some(inotify) => registry.register(&mut SourceFd(&inotify.as_fd().as_raw_fd()), token, Interest::READABLE),
            None => Ok(()),
        }
    }

    /// Replaces the watched directories (a reload changed `include`). When they differ, a rescan
    /// is due at once: files of new directories are reported, and `known` files outside the new
    /// set are too.
    pub fn set_dirs(&mut self, dirs: &[PathBuf], now: Instant) {
        let dirs = normalize(dirs);
        if dirs == self.dirs {
            return;
        }
        self.dirs = dirs;
        if self.inotify.is_some() {
            if let Err(error) = self.resync() {
                self.fall_back(error, now);
            }
        }
        self.schedule_rescan(now);
    }

    /// Reads every pending inotify event (until `EAGAIN`) and notes, per file, when it is due.
    /// Call when the registered token is readable; a spurious call reads nothing.
    pub fn handle_readable(&mut self, now: Instant) {
        let mut followup = Followup::default();
        loop {
            let Some(inotify) = &self.inotify else { return };
            let events = match inotify.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    self.fall_back(WatchError::new("read inotify events", errno), now);
                    return;
                }
            };
            for event in &events {
                self.handle_event(now, event, &mut followup);
            }
        }
        if followup.resync {
            match self.resync() {
                Ok(true) => followup.rescan = true,
                Ok(false) => {}
                Err(error) => {
                    self.fall_back(error, now);
                    return;
                }
            }
        }
        if followup.rescan {
            self.schedule_rescan(now + DEBOUNCE);
        }
    }

    /// The earliest time [`DirWatch::take_due`] has something to give: a file's debounce end or
    /// the next rescan. `None` when nothing is pending and inotify works.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|pending| pending.due).chain(self.rescan_at).min()
    }

    /// The paths due at `now`, sorted, each once; they stop being pending. On a rescan this is
    /// every file now in the directories ([`DirWatch::list`]) and every `known` path not among
    /// them (`known`: the files the caller has definitions for, so that a rescan reports
    /// deletions). `known` is only read on a rescan.
    pub fn take_due<'a>(&mut self, now: Instant, known: impl IntoIterator<Item = &'a Path>) -> Vec<PathBuf> {
        let mut due: Vec<PathBuf> =
            self.pending.extract_if(|_, pending| pending.due <= now).map(|(path, _)| path).collect();
        if self.rescan_at.is_some_and(|at| at <= now) {
            let present = self.list();
            let gone =
                known.into_iter().filter(|path| present.binary_search_by(|file| file.as_path().cmp(path)).is_err());
            due.extend(gone.map(Path::to_path_buf));
            due.extend(present);
            self.rescan_at = match self.mode() {
                WatchMode::Inotify => None,
                WatchMode::Rescan => Some(now + RESCAN_INTERVAL),
            };
        }
        due.sort_unstable();
        due.dedup();
        due
    }

    /// Whether inotify is in use (for status and logs).
    pub fn mode(&self) -> WatchMode {
        if self.inotify.is_some() {
            WatchMode::Inotify
        } else {
            WatchMode::Rescan
        }
    }

    /// The files directly in the watched directories (not recursive), sorted: regular files, and
    /// symlinks to regular files. A missing or unreadable directory has none.
    pub fn list(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for dir in &self.dirs {
            let Ok(entries) = fs::read_dir(dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if fs::metadata(&path).is_ok_and(|metadata| metadata.is_file()) {
                    files.push(path);
                }
            }
        }
        // Two included directories may be one (a symlink): each path once all the same.
        files.sort_unstable();
        files.dedup();
        files
    }

    /// A watch on `dirs` with no inotify instance and nothing scheduled.
    fn unwatched(dirs: &[PathBuf]) -> DirWatch {
        DirWatch {
            dirs: normalize(dirs),
            anchors: Vec::new(),
            inotify: None,
            watches: Vec::new(),
            pending: HashMap::new(),
            rescan_at: None,
        }
    }

    fn handle_event(&mut self, now: Instant, event: &InotifyEvent, followup: &mut Followup) {
        let mask = event.mask;
        if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            log::debug!("watch: inotify queue overflowed, rescanning");
            followup.resync = true;
            followup.rescan = true;
            return;
        }
        let gone = AddWatchFlags::IN_IGNORED
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_UNMOUNT;
        if mask.intersects(gone) {
            // A watched directory went away or elsewhere. The kernel drops the watch itself after
            // a deletion or an unmount (IN_IGNORED follows); a moved directory's watch would keep
            // following the directory, so it is removed here. Resync watches by path again.
            if self.forget_watch(event.wd, mask.contains(AddWatchFlags::IN_MOVE_SELF)) {
                followup.resync = true;
            }
            return;
        }
        let Some(name) = event.name.as_deref() else { return };
        let mut changed = Vec::new();
        let mut swapped = false;
        for (dir, anchor) in self.dirs.iter().zip(&self.anchors) {
            // A directory, or a symlink to one, moved or created in a watched directory: the
            // files linked through it may all have changed (Kubernetes updates a ConfigMap
            // volume by renaming its `..data` symlink; the file links themselves stay).
            if anchor.direct == Some(event.wd)
                && mask.intersects(AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CREATE)
                && dir.join(name).is_dir()
            {
                swapped = true;
            }
            if anchor.direct == Some(event.wd) && !mask.contains(AddWatchFlags::IN_ISDIR) {
                let path = dir.join(name);
                if is_file_change(mask, &path) {
                    changed.push(path);
                }
            }
            if let Some((guard, wd)) = &anchor.guard {
                if *wd == event.wd && next_component(guard, dir) == Some(name) {
                    followup.resync = true;
                }
            }
        }
        for path in changed {
            let pending = self.pending.entry(path).or_insert(Pending { first: now, due: now });
            pending.due = (now + DEBOUNCE).min(pending.first + MAX_DEBOUNCE);
        }
        if swapped {
            self.schedule_rescan(now + DEBOUNCE);
        }
    }

    /// Drops every path watched by `wd` (removing the watch from the kernel too when `remove`).
    /// Returns whether `wd` was one of ours.
    fn forget_watch(&mut self, wd: WatchDescriptor, remove: bool) -> bool {
        let before = self.watches.len();
        self.watches.retain(|(_, watched)| *watched != wd);
        let known = self.watches.len() != before;
        if known && remove {
            if let Some(inotify) = &self.inotify {
                // EINVAL: the kernel dropped it already. Nothing else to do either way.
                let _ = inotify.rm_watch(wd);
            }
        }
        known
    }

    /// Puts a watch on every directory needed and removes the rest. Returns whether any
    /// directory is now watched from elsewhere than before (then a rescan is due).
    fn resync(&mut self) -> Result<bool, WatchError> {
        let mut anchors = Vec::with_capacity(self.dirs.len());
        for dir in self.dirs.clone() {
            anchors.push(self.anchor(&dir)?);
        }
        self.drop_unused_watches(&anchors);
        if anchors == self.anchors {
            return Ok(false);
        }
        for (dir, anchor) in self.dirs.iter().zip(&anchors) {
            match (&anchor.direct, &anchor.guard) {
                (Some(_), _) => log::debug!("watch {}: watching it", dir.display()),
                (None, Some((guard, _))) => {
                    log::debug!("watch {}: not there, watching {} for it", dir.display(), guard.display())
                }
                (None, None) => log::debug!("watch {}: not there, nothing above it", dir.display()),
            }
        }
        self.anchors = anchors;
        Ok(true)
    }

    /// Watches `dir` and the nearest existing directory above it. The one above goes first and is
    /// looked at again once watched, so a directory created meanwhile is not missed: from the
    /// moment a watch is in place, what appears under it is reported.
    fn anchor(&mut self, dir: &Path) -> Result<Anchor, WatchError> {
        let mut guard: Option<(PathBuf, WatchDescriptor)> = None;
        for _ in 0..MAX_ANCHOR_STEPS {
            let Some(above) = existing_ancestor(dir) else { break };
            if guard.as_ref().is_some_and(|(path, _)| *path == above) {
                break;
            }
            if let Some(wd) = self.add_watch(&above)? {
                guard = Some((above, wd));
            }
        }
        let direct = if dir.is_dir() { self.add_watch(dir)? } else { None };
        Ok(Anchor { guard, direct })
    }

    /// Adds (or refreshes) the watch on `path`. `None` when `path` is gone or no longer a
    /// directory (the caller looks again).
    fn add_watch(&mut self, path: &Path) -> Result<Option<WatchDescriptor>, WatchError> {
        let Some(inotify) = &self.inotify else { return Ok(None) };
        let mask = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_ONLYDIR;
        match inotify.add_watch(path, mask) {
            Ok(wd) => {
                match self.watches.iter_mut().find(|(watched, _)| watched == path) {
                    Some(entry) if entry.1 != wd => {
                        // The path names another inode now: its old watch goes unless shared.
                        let old = std::mem::replace(&mut entry.1, wd);
                        if !self.watches.iter().any(|(_, watched)| *watched == old) {
                            let _ = inotify.rm_watch(old);
                        }
                    }
                    Some(_) => {}
                    None => self.watches.push((path.to_path_buf(), wd)),
                }
                Ok(Some(wd))
            }
            Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
            Err(errno) => Err(WatchError::new(format!("inotify_add_watch {}", path.display()), errno)),
        }
    }

    /// Removes the watches no anchor uses.
    fn drop_unused_watches(&mut self, anchors: &[Anchor]) {
        let mut used: Vec<&Path> = Vec::new();
        for (dir, anchor) in self.dirs.iter().zip(anchors) {
            if let Some((guard, _)) = &anchor.guard {
                used.push(guard);
            }
            if anchor.direct.is_some() {
                used.push(dir);
            }
        }
        let mut dropped = Vec::new();
        self.watches.retain(|(path, wd)| {
            let keep = used.contains(&path.as_path());
            if !keep {
                dropped.push(*wd);
            }
            keep
        });
        let Some(inotify) = &self.inotify else { return };
        for wd in dropped {
            if !self.watches.iter().any(|(_, watched)| *watched == wd) {
                let _ = inotify.rm_watch(wd);
            }
        }
    }

    /// Gives up inotify for good: rescans from `first_rescan` on, every [`RESCAN_INTERVAL`].
    /// Pending files stay pending.
    fn fall_back(&mut self, error: WatchError, first_rescan: Instant) {
        let dirs: Vec<String> = self.dirs.iter().map(|dir| dir.display().to_string()).collect();
        log::warn!(
            "watch {}: {}: {}; rescanning every {}s instead",
            dirs.join(", "),
            error.what,
            error.error,
            RESCAN_INTERVAL.as_secs()
        );
        // Dropping the instance closes its descriptor, which takes it out of the poll too.
        self.inotify = None;
        self.watches.clear();
        self.anchors.clear();
        self.schedule_rescan(first_rescan);
    }

    fn schedule_rescan(&mut self, at: Instant) {
        self.rescan_at = Some(self.rescan_at.map_or(at, |scheduled| scheduled.min(at)));
    }
}

impl fmt::Display for WatchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchMode::Inotify => write!(f, "inotify"),
            WatchMode::Rescan => write!(f, "rescan every {}s", RESCAN_INTERVAL.as_secs()),
        }
    }
}

impl WatchError {
    fn new(what: impl Into<String>, errno: Errno) -> WatchError {
        WatchError { what: what.into(), error: io::Error::from(errno) }
    }
}

/// Without `.` components or trailing slashes, each once, in the order given.
fn normalize(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut normalized: Vec<PathBuf> = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let clean: PathBuf = dir.components().collect();
        if !normalized.contains(&clean) {
            normalized.push(clean);
        }
    }
    normalized
}

/// The nearest existing directory strictly above `dir` (`None` for `/`).
fn existing_ancestor(dir: &Path) -> Option<PathBuf> {
    let mut path = dir.parent()?;
    loop {
        if path.is_dir() {
            return Some(path.to_path_buf());
        }
        path = path.parent()?;
    }
}

/// The name under `ancestor` on the way to `dir`.
fn next_component<'a>(ancestor: &Path, dir: &'a Path) -> Option<&'a OsStr> {
    match dir.strip_prefix(ancestor).ok()?.components().next()? {
        Component::Normal(name) => Some(name),
        _ => None,
    }
}

/// Whether an event on a non-directory entry of a watched directory is a change to report.
fn is_file_change(mask: AddWatchFlags, path: &Path) -> bool {
    let changed = AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE;
    if mask.intersects(changed) {
        return true;
    }
    if mask.contains(AddWatchFlags::IN_CREATE) {
        // An empty regular file with one link is being written; its IN_CLOSE_WRITE follows.
        // Gone already: its IN_DELETE or IN_MOVED_FROM follows.
        return fs::symlink_metadata(path)
            .is_ok_and(|metadata| !(metadata.file_type().is_file() && metadata.nlink() == 1 && metadata.len() == 0));
    }
    false
}
