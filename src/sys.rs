//! The operating-system edge: spawning, reaping, signalling, and the few libc calls std lacks.
//!
//! Architecture invariant: this is the only module with `unsafe`, and every block says why it is
//! sound. Code that runs in a child between fork and exec (the `pre_exec` closure) makes only
//! async-signal-safe calls: no allocation, no locks, no logging.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::core::{ExitStatus, Pid};
use crate::spec::{Launch, Signal};

/// What the child's stdin, stdout or stderr is connected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// A pipe the daemon reads.
    Pipe,
    /// `/dev/null`.
    Null,
    /// The daemon's own descriptor.
    Inherit,
    /// A copy of this descriptor of the daemon's, which stays the daemon's (borrowed, so the
    /// options stay `Copy`): e.g. a memfd holding a mail for sendmail's stdin.
    Fd(RawFd),
}

/// How to start one child, beyond what its [`Launch`] says.
#[derive(Clone, Copy, Debug)]
pub struct SpawnOptions<'a> {
    pub stdin: Stream,
    pub stdout: Stream,
    pub stderr: Stream,
    /// Make the child's process group the foreground group of the terminal on stdin (one-command
    /// mode, so Ctrl-C and job control reach the program as under tini).
    pub foreground_tty: bool,
    /// More descriptors for the child, as `(target in the child, source in the parent)`:
    /// listening sockets for socket activation, s6's notification fd. Targets are above 2 and
    /// distinct; a source may be any open descriptor (its own target too) and stays open in the
    /// parent. The child's copies are not close-on-exec. Borrowed, so the options stay `Copy`.
    pub extra_fds: &'a [(RawFd, RawFd)],
    /// Set `LISTEN_PID` to the child's own pid in its environment (systemd's socket
    /// activation), replacing any inherited value. posix_spawn cannot know the pid before the
    /// child exists, so such a child is started by `spawn_cloned`.
    pub listen_pid: bool,
    /// Set `WATCHDOG_PID` to the child's own pid too (systemd's watchdog), the same way.
    pub watchdog_pid: bool,
    /// An open directory of the cgroup (v2) the child is born in (`clone3` with
    /// `CLONE_INTO_CGROUP`), so that nothing it starts can escape it. Being born there costs
    /// nothing, where moving a process by writing `cgroup.procs` waits for an RCU grace period
    /// (10 to 20 ms measured here). A failure does not fail the spawn: the child runs where
    /// the daemon is, and [`SpawnedChild::cgroup_error`] says why.
    pub cgroup_dir: Option<RawFd>,
    /// The daemon's [`SpawnSlots`]: with them the spawn costs the same however many
    /// descriptors the daemon holds (see there). Without, or when a spawn needs more
    /// descriptors than there are slots, the child gets a copy of the whole table.
    pub slots: Option<&'a SpawnSlots>,
}

impl<'a> SpawnOptions<'a> {
    /// These standard streams, and nothing else: no extra descriptors, no pids in the
    /// environment, no cgroup, no slots. Callers add what they need with `..`.
    #[must_use]
    pub fn streams(stdin: Stream, stdout: Stream, stderr: Stream) -> SpawnOptions<'a> {
        SpawnOptions {
            stdin,
            stdout,
            stderr,
            foreground_tty: false,
            extra_fds: &[],
            listen_pid: false,
            watchdog_pid: false,
            cgroup_dir: None,
            slots: None,
        }
    }
}

/// How many descriptors a spawn can pass through [`SpawnSlots`]: the three standard streams,
/// and the rest for socket activation and readiness fds. (A cgroup needs no slot: `clone3`
/// reads the daemon's own descriptor of it.)
pub const SPAWN_SLOTS: usize = 16;

/// A run of descriptor numbers reserved at start-up, low in the table, through which every
/// spawn passes the descriptors its child gets.
///
/// A child of `clone` gets a copy of the parent's descriptor table and closes, at exec, every
/// close-on-exec one: with two pipes per instance, each spawn was O(instances), and starting
/// n instances O(n²) (10,000 took 84 s). Instead the child shares our table
/// (`CLONE_FILES`, nothing copied), and its first act is
/// `close_range(END, ~0, CLOSE_RANGE_UNSHARE)` (Linux 5.9): it takes a private table holding
/// only the descriptors below `END`, where the slots are. The parent puts the child's pipe
/// ends, listeners and readiness fd into the slots just before the clone (`dup3`) and puts the filler
/// (`/dev/null`, close-on-exec) back right after, so the numbers stay reserved.
#[derive(Debug)]
pub struct SpawnSlots {
    first: RawFd,
    filler: OwnedFd,
}

impl SpawnSlots {
    /// Reserves [`SPAWN_SLOTS`] consecutive free descriptor numbers, as low as they come.
    /// Call it before the daemon opens anything else, so that little lies below them.
    pub fn reserve() -> io::Result<SpawnSlots> {
        let filler = match open_dev_null(true) {
            Ok(null) => null,
            Err(error) if error.kind() == io::ErrorKind::NotFound => memfd("sv-lite-slot")?,
            Err(error) => return Err(error),
        };
        // Taken one by one with F_DUPFD (the lowest free number from a floor, atomically), so
        // that nothing another thread opens meanwhile is ever replaced; a gap restarts the run.
        let mut first = 3;
        'search: loop {
            let mut run = Vec::with_capacity(SPAWN_SLOTS);
            for index in 0..SPAWN_SLOTS as RawFd {
                // SAFETY: fcntl(F_DUPFD_CLOEXEC) takes integers and returns a new descriptor.
                let fd = unsafe { libc::fcntl(filler.as_raw_fd(), libc::F_DUPFD_CLOEXEC, first + index) };
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: fcntl just returned this descriptor, and nothing else owns it.
                run.push(unsafe { OwnedFd::from_raw_fd(fd) });
                if fd != first + index {
                    first = fd;
                    continue 'search;
                }
            }
            // The slots stay open for the daemon's life: their numbers are never handed out.
            for slot in run {
                std::mem::forget(slot);
            }
            return Ok(SpawnSlots { first, filler });
        }
    }

    fn range(&self) -> std::ops::Range<RawFd> {
        self.first..self.first + SPAWN_SLOTS as RawFd
    }

    /// A close-on-exec copy of `source` at `slot`, replacing what was there.
    fn put(&self, slot: RawFd, source: RawFd) -> io::Result<()> {
        // SAFETY: dup3 takes integers; `slot` is one of ours, never owned by anything else.
        if unsafe { libc::dup3(source, slot, libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The slots one spawn filled: the filler goes back into each when dropped.
struct Placed<'a> {
    slots: &'a SpawnSlots,
    used: RawFd,
}

impl Placed<'_> {
    /// Puts `source` into the next slot; returns the slot's number.
    fn put(&mut self, source: RawFd) -> io::Result<RawFd> {
        let slot = self.slots.first + self.used;
        if self.used >= SPAWN_SLOTS as RawFd {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "more descriptors than spawn slots"));
        }
        self.slots.put(slot, source)?;
        self.used += 1;
        Ok(slot)
    }
}

impl Drop for Placed<'_> {
    fn drop(&mut self) {
        for slot in self.slots.first..self.slots.first + self.used {
            // Cannot fail on an open slot; were it to, the copy would merely stay open.
            let _ = self.slots.put(slot, self.slots.filler.as_raw_fd());
        }
    }
}

/// Why a spawn failed: the step, and the OS error when there is one.
#[derive(Debug)]
pub struct SpawnError {
    pub step: String,
    pub error: io::Error,
}

impl SpawnError {
    /// Whether the failure is a lack of resources that a later retry may get past.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self.error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM))
    }

    /// The exit code a shell (and tini) uses for this failure: 127 not found, 126 not executable.
    #[must_use]
    pub fn shell_code(&self) -> u8 {
        match self.error.raw_os_error() {
            Some(libc::ENOENT) => 127,
            _ => 126,
        }
    }
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.error)
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

#[derive(Debug)]
pub struct SpawnedChild {
    pub pid: Pid,
    /// The read ends of the stdout and stderr pipes, when piped.
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// Why the child could not join [`SpawnOptions::cgroup_dir`]'s cgroup, if it could not.
    pub cgroup_error: Option<io::Error>,
}

/// Starts `launch` as the leader of a new process group, with default signal dispositions and
/// an empty signal mask. The error says which step failed.
///
/// The usual path is `posix_spawn` (glibc: `clone(CLONE_VM | CLONE_VFORK)`), which copies no
/// page tables, so spawning stays cheap however large the daemon grows. `listen_pid` needs the
/// child's pid in its environment, so that case does the same clone itself (`spawn_cloned`).
/// Giving a terminal's foreground to the child needs code in the child, so that case forks
/// (`spawn_forked`).
pub fn spawn(launch: &Launch, options: SpawnOptions<'_>) -> Result<SpawnedChild, SpawnError> {
    let Some(program) = launch.argv.first() else {
        return Err(SpawnError {
            step: "spawn".to_string(),
            error: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
        });
    };
    if let Some(dir) = &launch.workingdir {
        let step = || format!("workingdir {}", dir.display());
        match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(SpawnError { step: step(), error: io::Error::from_raw_os_error(libc::ENOTDIR) }),
            Err(error) => return Err(SpawnError { step: step(), error }),
        }
    }
    check_extra_fds(options.extra_fds)?;
    if options.foreground_tty {
        if let Some((target, _)) = options.extra_fds.first() {
            // std's fork path keeps its exec-error pipe at a low number in the child, which a
            // dup2 onto a target could replace; nothing needs both, so refuse rather than risk it.
            return Err(SpawnError {
                step: format!("extra descriptor {target}"),
                error: io::Error::new(io::ErrorKind::Unsupported, "not with a foreground terminal"),
            });
        }
        if options.listen_pid || options.watchdog_pid || options.cgroup_dir.is_some() {
            return Err(SpawnError {
                step: "LISTEN_PID/WATCHDOG_PID/cgroup".to_string(),
                error: io::Error::new(io::ErrorKind::Unsupported, "not with a foreground terminal"),
            });
        }
        return spawn_forked(launch, options);
    }
    spawn_posix(launch, options, program)
}

/// Refuses targets 0 to 2 (the standard streams, set by [`SpawnOptions`]'s streams) and a
/// target given twice.
fn check_extra_fds(extra_fds: &[(RawFd, RawFd)]) -> Result<(), SpawnError> {
    for (index, &(target, source)) in extra_fds.iter().enumerate() {
        let step = || format!("extra descriptor {target} (from {source})");
        if target <= libc::STDERR_FILENO {
            let error = io::Error::new(io::ErrorKind::InvalidInput, "the target must be above 2");
            return Err(SpawnError { step: step(), error });
        }
        if extra_fds[..index].iter().any(|&(other, _)| other == target) {
            let error = io::Error::new(io::ErrorKind::InvalidInput, "this target is given twice");
            return Err(SpawnError { step: step(), error });
        }
    }
    Ok(())
}

/// A close-on-exec duplicate of every source, numbered above every target: `(target, copy)`.
///
/// The child's file actions then dup2 each copy onto its target. Going through a copy clears
/// close-on-exec on the target even when the source is its own target (dup2 onto the same
/// number does nothing, flags included), and no action can overwrite a source that a later
/// action still reads (sources that are other targets, as in a swap, or 0 to 2, which the
/// standard streams' actions replace first). The copies close when dropped, after the spawn.
fn stage_extra_fds(extra_fds: &[(RawFd, RawFd)]) -> Result<Vec<(RawFd, OwnedFd)>, SpawnError> {
    let above = extra_fds.iter().map(|&(target, _)| target).max().unwrap_or(libc::STDERR_FILENO) + 1;
    let mut staged = Vec::with_capacity(extra_fds.len());
    for &(target, source) in extra_fds {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) takes integers and returns a new descriptor or -1.
        let copy = unsafe { libc::fcntl(source, libc::F_DUPFD_CLOEXEC, above) };
        if copy < 0 {
            return Err(SpawnError {
                step: format!("extra descriptor {target} (from {source})"),
                error: io::Error::last_os_error(),
            });
        }
        // SAFETY: fcntl just returned this descriptor, and nothing else owns it.
        staged.push((target, unsafe { OwnedFd::from_raw_fd(copy) }));
    }
    Ok(staged)
}

/// The environment a child gets: ours, with `overrides` replacing or adding variables.
fn child_environment(overrides: &[(String, String)]) -> Vec<(OsString, OsString)> {
    let mut environment: Vec<(OsString, OsString)> =
        std::env::vars_os().filter(|(key, _)| !overrides.iter().any(|(name, _)| OsStr::new(name) == key)).collect();
    environment.extend(overrides.iter().map(|(key, value)| (OsString::from(key), OsString::from(value))));
    environment
}

/// Finds `program` as execvp would: a name with a slash is used as is, otherwise the first
/// executable file of that name in `path_var` (the child's PATH).
fn resolve_program(program: &str, path_var: Option<&OsStr>) -> io::Result<PathBuf> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let default_path = OsStr::new("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let mut found_unexecutable = false;
    for dir in std::env::split_paths(path_var.unwrap_or(default_path)) {
        let candidate = dir.join(program);
        if let Ok(meta) = fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
            found_unexecutable = true;
        }
    }
    Err(io::Error::from_raw_os_error(if found_unexecutable { libc::EACCES } else { libc::ENOENT }))
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "an argument or variable contains a NUL byte"))
}

/// A pipe whose both ends are close-on-exec (the child's end is dup'ed onto 1 or 2, which
/// clears the flag on the copy): (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid out-array of two c_ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Checks a posix_spawn* return value (an errno, not -1).
fn spawn_call(result: libc::c_int) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(result))
    }
}

/// posix_spawn file actions, destroyed on drop.
struct FileActions(libc::posix_spawn_file_actions_t);

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in `posix_spawn_setup` right after construction, destroyed once here.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

/// posix_spawn attributes, destroyed on drop.
struct SpawnAttributes(libc::posix_spawnattr_t);

impl Drop for SpawnAttributes {
    fn drop(&mut self) {
        // SAFETY: initialised in `posix_spawn_setup` right after construction, destroyed once here.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}

/// Where the child's standard descriptors come from when they are not pipes of ours: an open
/// `/dev/null`, or, in a root without `/dev`, a pipe standing in for it.
enum NullSource {
    DevNull(OwnedFd),
    /// No `/dev/null`: stdin reads from a pipe whose write end is closed (an empty input), and
    /// an output stream becomes a pipe that the caller drains.
    Missing,
}

fn open_dev_null(write: bool) -> io::Result<OwnedFd> {
    let mut options = fs::OpenOptions::new();
    if write {
        options.write(true);
    } else {
        options.read(true);
    }
    // std opens with O_CLOEXEC, so nothing but the child's dup2'ed copy survives exec.
    options.open("/dev/null").map(OwnedFd::from)
}

/// What a failed step of the spawn was, for [`SpawnError::step`].
fn step_error(step: impl Into<String>) -> impl FnOnce(io::Error) -> SpawnError {
    let step = step.into();
    move |error| SpawnError { step, error }
}

/// Restores the daemon's working directory when dropped (the spawn changes it for the child).
struct RestoreCwd(OwnedFd);

impl Drop for RestoreCwd {
    fn drop(&mut self) {
        // SAFETY: fchdir takes a descriptor we own (an open directory) and has no memory effects.
        if unsafe { libc::fchdir(self.0.as_raw_fd()) } != 0 {
            log::error!("cannot return to the daemon's working directory: {}", io::Error::last_os_error());
        }
    }
}

/// Enters `dir` for the duration of the spawn and comes back when the guard drops.
///
/// Why not `posix_spawn_file_actions_addchdir_np`: in a static glibc build the symbol is only
/// weakly referenced and the archive member that defines it is not linked in, so the call jumps
/// to address 0 (a crash that only the shipped binary had). The daemon has one thread, so no
/// other code sees the temporary working directory; the child inherits it, and a relative
/// program path resolves against it, exactly as with a chdir in the child.
fn enter_workingdir(dir: &Path) -> io::Result<RestoreCwd> {
    let here = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_PATH)
        .open(".")
        .map(OwnedFd::from)?;
    std::env::set_current_dir(dir)?;
    Ok(RestoreCwd(here))
}

fn spawn_posix(launch: &Launch, options: SpawnOptions<'_>, program_name: &str) -> Result<SpawnedChild, SpawnError> {
    let exec_step = || format!("exec {program_name}");
    let setup = |error| SpawnError { step: "spawn setup".to_string(), error };
    // Everything the call needs is built first, in the parent.
    let mut environment = child_environment(&launch.env);
    if options.listen_pid {
        environment.retain(|(key, _)| key != "LISTEN_PID");
    }
    if options.watchdog_pid {
        environment.retain(|(key, _)| key != "WATCHDOG_PID");
    }
    let path_var = environment.iter().find(|(key, _)| key == "PATH").map(|(_, value)| value.as_os_str());
    let program = resolve_program(&launch.argv[0], path_var)
        .and_then(|path| c_string(path.as_os_str().as_bytes()))
        .map_err(step_error(exec_step()))?;
    let argv: Vec<CString> = launch
        .argv
        .iter()
        .map(|arg| c_string(arg.as_bytes()))
        .collect::<io::Result<_>>()
        .map_err(step_error("command line"))?;
    let envp: Vec<CString> = environment
        .into_iter()
        .map(|(key, value)| {
            let mut pair = key.into_vec();
            pair.push(b'=');
            pair.extend(value.into_vec());
            c_string(&pair)
        })
        .collect::<io::Result<_>>()
        .map_err(step_error("environment"))?;
    let mut argv_ptrs: Vec<*mut libc::c_char> = argv.iter().map(|arg| arg.as_ptr().cast_mut()).collect();
    argv_ptrs.push(std::ptr::null_mut());
    let mut envp_ptrs: Vec<*mut libc::c_char> = envp.iter().map(|pair| pair.as_ptr().cast_mut()).collect();
    // `LISTEN_PID=` and room for any pid and the NUL, filled in by the cloned child.
    let mut listen_pid_storage = Vec::new();
    let mut listen_pid_digits = std::ptr::null_mut();
    if options.listen_pid {
        listen_pid_storage.extend_from_slice(LISTEN_PID_PREFIX);
        listen_pid_storage.resize(LISTEN_PID_PREFIX.len() + PID_ROOM, 0);
        let entry: *mut u8 = listen_pid_storage.as_mut_ptr();
        envp_ptrs.push(entry.cast());
        listen_pid_digits = entry.wrapping_add(LISTEN_PID_PREFIX.len());
    }
    // The same for `WATCHDOG_PID=`.
    let mut watchdog_pid_storage = Vec::new();
    let mut watchdog_pid_digits = std::ptr::null_mut();
    if options.watchdog_pid {
        watchdog_pid_storage.extend_from_slice(WATCHDOG_PID_PREFIX);
        watchdog_pid_storage.resize(WATCHDOG_PID_PREFIX.len() + PID_ROOM, 0);
        let entry: *mut u8 = watchdog_pid_storage.as_mut_ptr();
        envp_ptrs.push(entry.cast());
        watchdog_pid_digits = entry.wrapping_add(WATCHDOG_PID_PREFIX.len());
    }
    envp_ptrs.push(std::ptr::null_mut());

    // Every descriptor the child gets is opened here, in the parent, so that each failure names
    // its own step; posix_spawn's single errno is then the exec's alone.
    let mut stdout = None;
    let mut stderr = None;
    // Descriptors to dup2 onto 0, 1, 2 in the child; they stay open until posix_spawn returns.
    let mut child_ends: Vec<(libc::c_int, OwnedFd)> = Vec::new();
    for (fd, stream) in [
        (libc::STDIN_FILENO, options.stdin),
        (libc::STDOUT_FILENO, options.stdout),
        (libc::STDERR_FILENO, options.stderr),
    ] {
        let is_input = fd == libc::STDIN_FILENO;
        let stream_name = ["stdin", "stdout", "stderr"][fd as usize];
        let source = match stream {
            Stream::Inherit => continue,
            Stream::Fd(source) => {
                let copy = dup_cloexec(source).map_err(step_error(format!("{stream_name} (from fd {source})")))?;
                child_ends.push((fd, copy));
                continue;
            }
            Stream::Pipe => None,
            Stream::Null => match open_dev_null(!is_input) {
                Ok(null) => Some(NullSource::DevNull(null)),
                Err(error) if error.kind() == io::ErrorKind::NotFound => Some(NullSource::Missing),
                Err(error) => return Err(SpawnError { step: format!("{stream_name} (/dev/null)"), error }),
            },
        };
        match source {
            Some(NullSource::DevNull(null)) => child_ends.push((fd, null)),
            Some(NullSource::Missing) if is_input => {
                // An empty stdin: the write end closes right here, so the child reads EOF.
                let (read_end, _write_end) = pipe().map_err(step_error("stdin (empty pipe; no /dev/null)"))?;
                child_ends.push((fd, read_end));
            }
            None | Some(NullSource::Missing) => {
                if is_input {
                    return Err(setup(io::Error::new(io::ErrorKind::InvalidInput, "stdin cannot be a pipe")));
                }
                let (read_end, write_end) = pipe().map_err(step_error(format!("{stream_name} pipe")))?;
                child_ends.push((fd, write_end));
                if fd == libc::STDOUT_FILENO {
                    stdout = Some(read_end);
                } else {
                    stderr = Some(read_end);
                }
            }
        }
    }

    // How the child is started: through the slots (our own clone, sharing the table until the
    // child unshares what lies below the slots' end); posix_spawn; or our own clone when it must
    // know its pid or join a cgroup.
    let needed = child_ends.len() + options.extra_fds.len();
    let slots = options.slots.filter(|_| needed <= SPAWN_SLOTS);
    let mut placed = slots.map(|slots| Placed { slots, used: 0 });
    let mut extra_ends = Vec::new();
    let starter = if let Some(placed) = &mut placed {
        let mut dup2s = Vec::with_capacity(needed);
        for (fd, end) in &child_ends {
            dup2s.push((placed.put(end.as_raw_fd()).map_err(setup)?, *fd));
        }
        for &(target, source) in options.extra_fds {
            let slot = placed.put(source).map_err(step_error(format!("extra descriptor {target} (from {source})")))?;
            dup2s.push((slot, target));
        }
        let cgroup_dir = options.cgroup_dir.unwrap_or(-1);
        Starter::Cloned { dup2s, unshare_below: placed.slots.range().end, cgroup_dir }
    } else if options.listen_pid || options.watchdog_pid || options.cgroup_dir.is_some() {
        extra_ends = stage_extra_fds(options.extra_fds)?;
        let dup2s = child_ends
            .iter()
            .map(|(fd, end)| (end.as_raw_fd(), *fd))
            .chain(extra_ends.iter().map(|(target, copy)| (copy.as_raw_fd(), *target)))
            .collect();
        Starter::Cloned { dup2s, unshare_below: -1, cgroup_dir: options.cgroup_dir.unwrap_or(-1) }
    } else {
        extra_ends = stage_extra_fds(options.extra_fds)?;
        let (actions, attributes) = posix_spawn_setup(&child_ends, &extra_ends)?;
        Starter::Posix { actions, attributes }
    };

    // The working directory and umask are process-wide and set around the call; the daemon has
    // one thread, so nothing else sees the temporary values. The guard restores the directory.
    let _cwd = match &launch.workingdir {
        Some(dir) => Some(enter_workingdir(dir).map_err(step_error(format!("workingdir {}", dir.display())))?),
        None => None,
    };
    // SAFETY: umask only swaps an integer in the process.
    let saved_umask = launch.umask.map(|mask| unsafe { libc::umask(mask as libc::mode_t) });
    let mut pid: libc::pid_t = 0;
    let mut cgroup_error = None;
    let result = match &starter {
        Starter::Cloned { dup2s, unshare_below, cgroup_dir } => {
            let child = CloneChild {
                program: program.as_ptr(),
                argv: argv_ptrs.as_ptr().cast(),
                envp: envp_ptrs.as_ptr().cast(),
                dup2s: dup2s.as_ptr(),
                n_dup2s: dup2s.len(),
                listen_pid_digits,
                watchdog_pid_digits,
                unshare_below: *unshare_below,
                error: AtomicI32::new(0),
            };
            let (result, refused) = spawn_cloned(&mut pid, &child, *cgroup_dir);
            cgroup_error = refused;
            result
        }
        // SAFETY: every pointer is live for the call: `program`, `argv`/`envp` and their
        // NULL-terminated pointer arrays, the initialised actions and attributes. glibc's
        // posix_spawn returns the exec error of the child, so a missing program is reported
        // here.
        Starter::Posix { actions, attributes } => unsafe {
            libc::posix_spawn(
                &mut pid,
                program.as_ptr(),
                &actions.0,
                &attributes.0,
                argv_ptrs.as_ptr(),
                envp_ptrs.as_ptr(),
            )
        },
    };
    if let Some(mask) = saved_umask {
        // SAFETY: as above; restores our own umask.
        unsafe { libc::umask(mask) };
    }
    drop(starter);
    drop(placed);
    drop(child_ends);
    drop(extra_ends);
    spawn_call(result).map_err(step_error(exec_step()))?;
    Ok(SpawnedChild { pid, stdout, stderr, cgroup_error })
}

/// How `spawn_posix` starts the child. One per spawn, on the stack: boxing the large variant
/// would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Starter {
    /// posix_spawn with these file actions and attributes.
    Posix { actions: FileActions, attributes: SpawnAttributes },
    /// `spawn_cloned`, with these `(from, to)` dup2 calls (the standard streams first), the
    /// end of the slots when sharing the table (else -1) and the cgroup's directory (else -1).
    Cloned { dup2s: Vec<(RawFd, RawFd)>, unshare_below: RawFd, cgroup_dir: RawFd },
}

/// posix_spawn's file actions (the standard streams, then the extra descriptors) and its
/// attributes: every signal at SIG_DFL, an empty mask, a new process group.
fn posix_spawn_setup(
    child_ends: &[(libc::c_int, OwnedFd)],
    extra_ends: &[(RawFd, OwnedFd)],
) -> Result<(FileActions, SpawnAttributes), SpawnError> {
    let setup = |error| SpawnError { step: "spawn setup".to_string(), error };
    // SAFETY: a zeroed posix_spawn_file_actions_t is valid storage for init, called next
    // (Drop destroys it, which is valid after init).
    let mut actions = FileActions(unsafe { std::mem::zeroed() });
    // SAFETY: `actions.0` is valid storage.
    spawn_call(unsafe { libc::posix_spawn_file_actions_init(&mut actions.0) }).map_err(setup)?;
    for (fd, end) in child_ends {
        // SAFETY: `actions.0` is initialised; `end` stays open (the caller holds `child_ends`)
        // until posix_spawn has returned.
        let result = unsafe { libc::posix_spawn_file_actions_adddup2(&mut actions.0, end.as_raw_fd(), *fd) };
        spawn_call(result).map_err(setup)?;
    }
    // After the standard streams: a target may have the number of one of `child_ends` (the
    // copies never do: they are above every target).
    for (target, copy) in extra_ends {
        // SAFETY: `actions.0` is initialised; `copy` stays open (the caller holds `extra_ends`)
        // until posix_spawn has returned.
        let result = unsafe { libc::posix_spawn_file_actions_adddup2(&mut actions.0, copy.as_raw_fd(), *target) };
        spawn_call(result).map_err(step_error(format!("extra descriptor {target}")))?;
    }

    // SAFETY: a zeroed posix_spawnattr_t is valid storage for init, called next (Drop destroys
    // it, which is valid after init).
    let mut attributes = SpawnAttributes(unsafe { std::mem::zeroed() });
    // SAFETY: `attributes.0` is valid storage, initialised first. The sigset_t values are
    // zeroed storage filled by sigemptyset or by writing every byte of their own size. Every signal goes back to
    // SIG_DFL in the child (the full set), with an empty mask, in a new process group.
    unsafe {
        spawn_call(libc::posix_spawnattr_init(&mut attributes.0)).map_err(setup)?;
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        // Every bit set, glibc's internal signals 32 and 33 included: sigfillset leaves them
        // out, and glibc's spawn child then sets them to SIG_IGN, which would survive exec.
        let mut full: libc::sigset_t = std::mem::zeroed();
        std::ptr::write_bytes(&mut full as *mut libc::sigset_t as *mut u8, 0xff, std::mem::size_of::<libc::sigset_t>());
        spawn_call(libc::posix_spawnattr_setsigmask(&mut attributes.0, &empty)).map_err(setup)?;
        spawn_call(libc::posix_spawnattr_setsigdefault(&mut attributes.0, &full)).map_err(setup)?;
        spawn_call(libc::posix_spawnattr_setpgroup(&mut attributes.0, 0)).map_err(setup)?;
        let flags = libc::POSIX_SPAWN_SETPGROUP | libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
        spawn_call(libc::posix_spawnattr_setflags(&mut attributes.0, flags as libc::c_short)).map_err(setup)?;
    }

    Ok((actions, attributes))
}

/// close_range(2)'s flag: unshare the table first, copying only what lies below the range.
const CLOSE_RANGE_UNSHARE: libc::c_uint = 1 << 1;
const LISTEN_PID_PREFIX: &[u8] = b"LISTEN_PID=";
const WATCHDOG_PID_PREFIX: &[u8] = b"WATCHDOG_PID=";
/// Bytes for a pid's digits and the NUL (pids are positive `i32`s: at most 10 digits).
const PID_ROOM: usize = 12;
/// The cloned child's stack, guard page not included. Its work is a few libc calls.
const CLONE_STACK: usize = 64 * 1024;

/// Everything the cloned child reads, prepared by the parent, and where it leaves an error.
struct CloneChild {
    /// The resolved program path, `argv` and `envp` (NULL-terminated pointer arrays).
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// `(from, to)` dup2 calls, in order: the standard streams, then the extra descriptors.
    dup2s: *const (RawFd, RawFd),
    n_dup2s: usize,
    /// [`PID_ROOM`] bytes right after `LISTEN_PID=` in the `envp` entry (or null).
    listen_pid_digits: *mut u8,
    /// The same after `WATCHDOG_PID=` (or null).
    watchdog_pid_digits: *mut u8,
    /// With [`SpawnSlots`], where they end: the child shares our table (`CLONE_FILES`) and
    /// first takes a private one of the descriptors below this. -1: a plain copy at clone.
    unshare_below: RawFd,
    /// The errno of the step that failed in the child (0: the exec succeeded).
    error: AtomicI32,
}

/// An anonymous mapping with a guard page at its low end, unmapped on drop.
struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    fn new() -> io::Result<ChildStack> {
        let page = usize::try_from(page_size()).unwrap_or(4096).max(4096);
        let len = CLONE_STACK + page;
        // SAFETY: a new private anonymous mapping with no address hint touches no existing memory.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of our own mapping; a stack overflow then faults instead of
        // writing below the mapping.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The initial stack pointer: the high end, page-aligned and so 16-byte aligned.
    fn top(&self) -> *mut libc::c_void {
        self.base.cast::<u8>().wrapping_add(self.len).cast()
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: our own mapping of `len` bytes, unmapped once; the child that used it has
        // exec'd or exited (CLONE_VFORK returns only then).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Starts `child` like posix_spawn does (glibc: `clone(CLONE_VM | CLONE_VFORK)` on a stack of
/// its own), with one more step in the child: its pid written into the `LISTEN_PID` entry of
/// `envp` before execve. Sets `pid` and returns 0, or returns the errno of the failed step
/// (the clone, or the child's setpgid, dup2 or execve, after which the child is reaped here).
///
/// All signals are blocked around the clone, so no handler of ours ever runs in the child,
/// which shares our memory; the child sets every signal to SIG_DFL before it unblocks them.
///
/// With `cgroup_dir` (an open cgroup directory, else -1), the child is born in that cgroup
/// (`clone3_into_cgroup`); if the kernel refuses, it is started where we are and the second
/// value says why.
fn spawn_cloned(pid: &mut libc::pid_t, child: &CloneChild, cgroup_dir: RawFd) -> (libc::c_int, Option<io::Error>) {
    let stack = match ChildStack::new() {
        Ok(stack) => stack,
        Err(error) => return (error.raw_os_error().unwrap_or(libc::ENOMEM), None),
    };
    let every_signal: u64 = !0;
    let mut saved_mask: u64 = 0;
    // SAFETY: the raw rt_sigprocmask reads and writes 8-byte kernel sigsets on our stack; the
    // kernel never blocks SIGKILL and SIGSTOP.
    unsafe {
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &every_signal, &mut saved_mask, 8 as libc::c_long)
    };
    // `clone_child` runs on `stack` (mapped, guard page below) and reads `child`; with
    // CLONE_VFORK we are suspended until it has exec'd or exited, so the shared memory is used
    // by one side at a time, and both outlive it. The child is async-signal-safe throughout.
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | if child.unshare_below >= 0 { libc::CLONE_FILES } else { 0 };
    let arg: *mut libc::c_void = (child as *const CloneChild).cast_mut().cast();
    let mut refused = None;
    let mut new_pid = -1;
    let mut clone_error = None;
    if cgroup_dir >= 0 {
        match clone3_into_cgroup(flags, &stack, cgroup_dir, arg) {
            Ok(born) => new_pid = born,
            // Out of processes or memory: a plain clone would fail the same way.
            Err(error) if matches!(error.raw_os_error(), Some(libc::EAGAIN | libc::ENOMEM)) => {
                clone_error = Some(error)
            }
            Err(error) => refused = Some(error),
        }
    }
    if new_pid < 0 && clone_error.is_none() {
        // SAFETY: as for clone3: `clone_child` runs on `stack` and reads `child`, both alive
        // until it has exec'd or exited (CLONE_VFORK); SIGCHLD reports its exit as any other's.
        new_pid = unsafe { libc::clone(clone_child, stack.top(), flags | libc::SIGCHLD, arg) };
        if new_pid < 0 {
            clone_error = Some(io::Error::last_os_error());
        }
    }
    // SAFETY: as above; puts back the mask we had.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &saved_mask,
            std::ptr::null_mut::<u64>(),
            8 as libc::c_long,
        )
    };
    if new_pid < 0 {
        return (clone_error.and_then(|error| error.raw_os_error()).unwrap_or(libc::EAGAIN), None);
    }
    let error = child.error.load(Ordering::Acquire);
    if error != 0 {
        // The child recorded its error and called _exit: reap it now (it is exiting already),
        // so that the daemon never sees a pid it was not told about.
        let _ = wait_blocking(new_pid);
        return (error, None);
    }
    *pid = new_pid;
    (0, refused)
}

/// The kernel's `struct clone_args` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone3` with `flags` (which share our memory, so the child needs `stack`), born in the
/// cgroup of `cgroup_dir`, running `clone_child(arg)`. glibc has no public clone3 wrapper, and
/// a child on a new stack cannot return through Rust code, so the syscall and the child's
/// first steps are a few instructions of assembly: in the child (rax 0) the stack pointer is
/// already the new stack's top, and it calls `clone_child(arg)`, which execs or `_exit`s; were
/// it ever to return, the child exits with that value. Returns the child's pid in the parent.
#[cfg(target_arch = "x86_64")]
fn clone3_into_cgroup(
    flags: libc::c_int,
    stack: &ChildStack,
    cgroup_dir: RawFd,
    arg: *mut libc::c_void,
) -> io::Result<libc::pid_t> {
    let args = CloneArgs {
        flags: flags as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.base as u64,
        stack_size: stack.len as u64,
        cgroup: cgroup_dir as u64,
        ..CloneArgs::default()
    };
    let entry: extern "C" fn(*mut libc::c_void) -> libc::c_int = clone_child;
    let result: i64;
    // The parent continues after `syscall` with only rax, rcx and r11 changed (rdi and rsi are
    // declared clobbered too). The child (rax 0) runs on `stack`, which the parent keeps mapped
    // until the child has exec'd or exited (CLONE_VFORK); it calls `clone_child` with `arg`
    // and never comes back into this function. The caller blocks every signal around the call.
    // SAFETY: clone3 reads `args` (alive across the call); the child's path is as above and
    // `clone_child` is async-signal-safe and never returns.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r12",
            "call r13",
            "mov edi, eax",
            "mov eax, 60",
            "syscall",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => result,
            inlateout("rdi") &args as *const CloneArgs => _,
            inlateout("rsi") std::mem::size_of::<CloneArgs>() => _,
            in("r12") arg,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if result < 0 {
        return Err(io::Error::from_raw_os_error(-result as i32));
    }
    Ok(result as libc::pid_t)
}

#[cfg(not(target_arch = "x86_64"))]
fn clone3_into_cgroup(_: libc::c_int, _: &ChildStack, _: RawFd, _: *mut libc::c_void) -> io::Result<libc::pid_t> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "clone3 into a cgroup is built for x86_64 only"))
}

/// The cloned child: a new process group, the descriptors, its pid into `LISTEN_PID`, the
/// signal state of a new program, execve. Async-signal-safe throughout: raw pointers prepared
/// by the parent, libc calls that are syscalls, no allocation, no lock, no panic path taken.
extern "C" fn clone_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `&CloneChild` spawn_cloned passed to clone; it stays valid and
    // unchanged while we run (the parent is suspended until we exec or exit).
    let child = unsafe { &*(arg.cast::<CloneChild>()) };
    let fail = || -> libc::c_int {
        child.error.store(io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL), Ordering::Release);
        // SAFETY: _exit ends this process at once, running no handlers and touching no
        // memory of the parent's.
        unsafe { libc::_exit(127) }
    };
    if child.unshare_below >= 0 {
        // A private table of what lies below the slots' end, copying nothing above it. Before
        // Linux 5.9 there is no close_range: a private copy of the whole table, whose
        // close-on-exec descriptors then close at exec.
        // SAFETY: close_range and unshare take integers and touch only this process's table,
        // which the parent (suspended) no longer shares afterwards.
        unsafe {
            if libc::syscall(
                libc::SYS_close_range,
                child.unshare_below as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_UNSHARE,
            ) != 0
                && libc::unshare(libc::CLONE_FILES) != 0
            {
                return fail();
            }
        }
    }
    // SAFETY: setpgid, fcntl and dup2 take integers; `dup2s` points to `n_dup2s` pairs in a
    // Vec the parent keeps alive until we exec or exit.
    unsafe {
        if libc::setpgid(0, 0) != 0 {
            return fail();
        }
        if child.unshare_below >= 0 && child.n_dup2s <= SPAWN_SLOTS {
            // The slots' numbers may be targets too (fd 3 for socket activation): first a copy
            // of each source above every number involved, then the dup2s from the copies.
            let pairs = std::slice::from_raw_parts(child.dup2s, child.n_dup2s);
            let floor = pairs.iter().map(|&(from, to)| from.max(to)).max().unwrap_or(2) + 1;
            let mut copies = [0 as RawFd; SPAWN_SLOTS];
            for (copy, &(from, _)) in copies.iter_mut().zip(pairs) {
                *copy = libc::fcntl(from, libc::F_DUPFD_CLOEXEC, floor);
                if *copy < 0 {
                    return fail();
                }
            }
            for (copy, &(_, to)) in copies.iter().zip(pairs) {
                if libc::dup2(*copy, to) < 0 {
                    return fail();
                }
            }
        } else {
            for index in 0..child.n_dup2s {
                let (from, to) = *child.dup2s.add(index);
                if libc::dup2(from, to) < 0 {
                    return fail();
                }
            }
        }
    }
    for slot in [child.listen_pid_digits, child.watchdog_pid_digits] {
        if !slot.is_null() {
            // SAFETY: a non-null slot points to PID_ROOM writable bytes of the parent's envp
            // entry, which nothing else touches until we exec or exit; getpid is a plain syscall.
            unsafe {
                let digits = std::slice::from_raw_parts_mut(slot, PID_ROOM);
                write_pid(digits, libc::getpid());
            }
        }
    }
    reset_signal_state();
    // SAFETY: the program path and both NULL-terminated arrays point into memory the parent
    // keeps alive; execve returns only on failure.
    unsafe { libc::execve(child.program, child.argv, child.envp) };
    fail()
}

/// Writes `pid` in decimal followed by a NUL into `out` (at least 11 bytes). Allocation-free
/// and without a panicking path, for the cloned child.
fn write_pid(out: &mut [u8], pid: libc::pid_t) {
    let mut reversed = [0u8; 10];
    let mut count = 0;
    let mut rest = pid.unsigned_abs();
    for slot in reversed.iter_mut() {
        *slot = b'0' + (rest % 10) as u8;
        count += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let digits = reversed.iter().take(count).rev().chain(std::iter::once(&0u8));
    for (byte, digit) in out.iter_mut().zip(digits) {
        *byte = *digit;
    }
}

/// The fork path, for what posix_spawn cannot do (taking the terminal's foreground).
fn spawn_forked(launch: &Launch, options: SpawnOptions<'_>) -> Result<SpawnedChild, SpawnError> {
    let Some((program, args)) = launch.argv.split_first() else {
        return Err(SpawnError {
            step: "spawn".to_string(),
            error: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
        });
    };
    let mut command = Command::new(program);
    command.args(args);
    command.envs(launch.env.iter().map(|(key, value)| (key, value)));
    if let Some(dir) = &launch.workingdir {
        command.current_dir(dir);
    }
    command.stdin(stdio(options.stdin).map_err(step_error("stdin"))?);
    command.stdout(stdio(options.stdout).map_err(step_error("stdout"))?);
    command.stderr(stdio(options.stderr).map_err(step_error("stderr"))?);
    command.process_group(0);
    let umask = launch.umask;
    let foreground_tty = options.foreground_tty;
    // SAFETY: the closure runs in the child between fork and exec. It calls only umask,
    // signal, getpid, tcsetpgrp and `reset_signal_state` (raw rt_sigaction, sigemptyset,
    // sigprocmask), all async-signal-safe; it allocates nothing, takes no lock and touches no
    // Rust std state.
    unsafe {
        command.pre_exec(move || {
            if let Some(mask) = umask {
                libc::umask(mask as libc::mode_t);
            }
            if foreground_tty {
                // Ignore SIGTTOU while taking the terminal, as tini does; reset just below.
                libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
            }
            reset_signal_state();
            Ok(())
        });
    }
    match command.spawn() {
        Ok(mut child) => {
            let pid = child.id() as Pid;
            let stdout = child.stdout.take().map(OwnedFd::from);
            let stderr = child.stderr.take().map(OwnedFd::from);
            Ok(SpawnedChild { pid, stdout, stderr, cgroup_error: None })
        }
        Err(error) => Err(SpawnError { step: format!("exec {program}"), error }),
    }
}

/// Gives the calling process the signal state a program expects from a shell: every signal at
/// `SIG_DFL` and an empty mask. Exec resets handled signals but keeps ignored ones (Rust's
/// runtime ignores SIGPIPE; a parent may ignore real-time ones) and the mask.
///
/// Async-signal-safe (raw syscalls on the stack, no allocation, no lock), so it may run between
/// fork and exec, and in the cloned child of a `listen_pid` spawn.
pub fn reset_signal_state() {
    // The raw syscall, because glibc refuses to touch its internal signals 32 and 33; an
    // all-zero kernel sigaction is SIG_DFL whatever the architecture's field order.
    let default_action = [0u64; 4];
    for signal in 1..=libc::SIGRTMAX() {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            // SAFETY: rt_sigaction reads a zeroed 32-byte action on our stack (at least the
            // kernel's struct size), writes no old action (null), and takes the kernel's sigset
            // size (8); it has no other memory effects.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signal as libc::c_long,
                    default_action.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8 as libc::c_long,
                );
            }
        }
    }
    // SAFETY: a zeroed sigset_t is valid storage; sigemptyset fills it and sigprocmask only
    // reads it (no old mask requested).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Waits for `pid` to exit, blocking. Never on the daemon's loop: for tests and tools.
pub fn wait_blocking(pid: Pid) -> io::Result<ExitStatus> {
    loop {
        let mut raw: libc::c_int = 0;
        // SAFETY: `raw` is a valid out-pointer to a c_int on our stack.
        let result = unsafe { libc::waitpid(pid, &mut raw, 0) };
        if result < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if let Some(status) = decode_status(raw) {
            return Ok(status);
        }
    }
}

/// Sets the backlog of a listening socket (Linux takes a second `listen` on a listener as a
/// new backlog; the kernel caps it at `net.core.somaxconn`).
pub fn listen(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: listen takes integers and has no memory effects.
    if unsafe { libc::listen(fd, backlog) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn stdio(stream: Stream) -> io::Result<Stdio> {
    Ok(match stream {
        Stream::Pipe => Stdio::piped(),
        Stream::Null => Stdio::null(),
        Stream::Inherit => Stdio::inherit(),
        Stream::Fd(source) => Stdio::from(dup_cloexec(source)?),
    })
}

/// A close-on-exec copy of `fd`, owned by the caller.
fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) takes integers and returns a new descriptor or -1.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl just returned this descriptor, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// An anonymous file in memory (`memfd_create`, close-on-exec): no file system is needed, and
/// writing it never blocks. `name` only shows in `/proc/PID/fd`.
pub fn memfd(name: &str) -> io::Result<OwnedFd> {
    let name = c_string(name.as_bytes())?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call; the flags are integers.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create just returned this descriptor, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reaps every child that has exited, ours or adopted, until none is left (`waitpid(-1)` to 0 or
/// ECHILD). One SIGCHLD may stand for many exits, so there is no cap.
pub fn reap_all(reaped: &mut Vec<(Pid, ExitStatus)>) {
    loop {
        let mut raw: libc::c_int = 0;
        // SAFETY: `raw` is a valid out-pointer to a c_int on our stack; WNOHANG never blocks.
        let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
        if pid > 0 {
            if let Some(status) = decode_status(raw) {
                reaped.push((pid, status));
            }
            continue;
        }
        if pid == 0 {
            return;
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ECHILD) => return,
            _ => {
                log::warn!("waitpid: {error}");
                return;
            }
        }
    }
}

fn decode_status(raw: libc::c_int) -> Option<ExitStatus> {
    if libc::WIFEXITED(raw) {
        Some(ExitStatus::Exited(libc::WEXITSTATUS(raw) as u8))
    } else if libc::WIFSIGNALED(raw) {
        Some(ExitStatus::Signaled { signal: libc::WTERMSIG(raw), core_dumped: libc::WCOREDUMP(raw) })
    } else {
        None
    }
}

/// Sends `signal` to `pid`, or to the process group it leads. Returns `Ok(false)` when there is
/// no such process (it already exited).
pub fn kill(pid: Pid, signal: Signal, group: bool) -> io::Result<bool> {
    if pid <= 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("refusing to signal pid {pid}")));
    }
    let result = if group {
        // SAFETY: killpg takes plain integers and has no memory effects.
        unsafe { libc::killpg(pid, signal.0) }
    } else {
        // SAFETY: kill takes plain integers and has no memory effects; pid > 0 was checked, so
        // this never targets a group or every process.
        unsafe { libc::kill(pid, signal.0) }
    };
    delivered(result as libc::c_int)
}

/// A signal call's result: sent, or `Ok(false)` when the target is gone (`ESRCH`).
fn delivered(result: libc::c_int) -> io::Result<bool> {
    if result == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::ESRCH) {
        Ok(false)
    } else {
        Err(error)
    }
}

/// A pidfd for `pid` (Linux 5.3): a descriptor that names this one process, not whatever later
/// gets its number, and that polls readable once the process has exited (it need not be our
/// child). `ESRCH` means there is no such process.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    if pid <= 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("refusing a pidfd for pid {pid}")));
    }
    // SAFETY: pidfd_open takes a pid and flags (0) and returns a new descriptor or -1; it has
    // no memory arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `signal` to the process a pidfd names. Returns `Ok(false)` when it has exited.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: Signal) -> io::Result<bool> {
    // SAFETY: a live descriptor, a signal number, a null siginfo (the kernel fills in a
    // SI_USER one) and no flags; nothing is kept.
    let result = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal.0,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    delivered(result as libc::c_int)
}

/// Waits up to `timeout` for any of `fds` to be readable (a pidfd: its process exited);
/// returns the indices of those that are. Interrupted or failed waits return what is known
/// (nothing); the caller loops on its own deadline. Not for the loop: start-up only.
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout: Duration) -> Vec<usize> {
    let mut poll_fds: Vec<libc::pollfd> =
        fds.iter().map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the pointer and length describe `poll_fds`, a live Vec that poll only writes
    // `revents` of; the timeout bounds the wait.
    let ready = unsafe { libc::poll(poll_fds.as_mut_ptr(), poll_fds.len() as libc::nfds_t, timeout_ms) };
    if ready <= 0 {
        return Vec::new();
    }
    poll_fds
        .iter()
        .enumerate()
        .filter(|(_, poll_fd)| poll_fd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
        .map(|(index, _)| index)
        .collect()
}

/// Makes orphaned descendants re-parent to us, so we can reap them (a no-op need when PID 1).
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes integer arguments only.
    let result = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the soft limit on open files to the hard limit: every instance holds two pipes, so
/// the usual soft limit of 1024 would cap the daemon near 500 instances. The hard limit is
/// left alone: children inherit our limits, and a huge soft limit slows programs that close
/// every descriptor at startup. Returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid out-pointer to an rlimit on our stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid rlimit on our stack; setrlimit only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of CPU times in `/proc`; 100 if
/// the kernel will not say.
#[must_use]
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf takes a plain integer name and reads no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&ticks| ticks > 0).unwrap_or(100)
}

/// The page size (`sysconf(_SC_PAGESIZE)`), the unit of RSS in `/proc/PID/stat`; 4096 if unknown.
#[must_use]
pub fn page_size() -> u64 {
    // SAFETY: as above.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&size| size > 0).unwrap_or(4096)
}

/// Our own pid.
#[must_use]
pub fn getpid() -> Pid {
    std::process::id() as Pid
}

/// Our effective uid.
#[must_use]
pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail and has no memory effects.
    unsafe { libc::geteuid() }
}

/// Whether `fd` is a terminal.
#[must_use]
pub fn isatty(fd: i32) -> bool {
    // SAFETY: isatty takes an integer and only queries the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// Writes all of `bytes` to a descriptor we do not own (stdout, stderr), retrying on EINTR
/// and short writes. Blocking: used only before the daemon's loop runs and by the client.
pub fn write_all_fd(fd: i32, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match write_fd(fd, bytes, false) {
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                wait_writable(fd, 1000);
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// One `write` (or, for a socket, one `send` with `MSG_DONTWAIT`, which never blocks whatever
/// the descriptor's flags). Returns the bytes taken; `WouldBlock` when none fit.
pub fn write_fd(fd: i32, bytes: &[u8], socket: bool) -> io::Result<usize> {
    let written = if socket {
        // SAFETY: the pointer and length come from a live slice; send does not keep them.
        unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) }
    } else {
        // SAFETY: the pointer and length come from a live slice; write does not keep them.
        unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) }
    };
    if written < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(written as usize)
    }
}

/// Most iovecs one `writev`/`sendmsg` takes (Linux's `IOV_MAX`); callers pass at most this many.
pub const IOV_MAX: usize = 1024;

/// One `writev` of `pieces`, in order (or, for a socket, one `sendmsg` with `MSG_DONTWAIT`, as
/// [`write_fd`]). Returns the bytes taken, which may end inside a piece; `WouldBlock` when none
/// fit. At most [`IOV_MAX`] pieces are passed on; the rest are left for the next call.
pub fn writev_fd(fd: i32, pieces: &[std::io::IoSlice<'_>], socket: bool) -> io::Result<usize> {
    let pieces = &pieces[..pieces.len().min(IOV_MAX)];
    // At most IOV_MAX (1024), so the conversion cannot fail.
    let count = libc::c_int::try_from(pieces.len()).unwrap_or(libc::c_int::MAX);
    let written = if socket {
        // SAFETY: a zeroed msghdr (no address, no control data) is a valid value of this C struct.
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSlice is ABI-compatible with iovec on Unix (its documented guarantee); sendmsg only
        // reads through msg_iov, despite the mutable pointer type.
        message.msg_iov = pieces.as_ptr().cast_mut().cast();
        message.msg_iovlen = pieces.len();
        // SAFETY: `message` points at `pieces`, live for the call; sendmsg does not keep them.
        unsafe { libc::sendmsg(fd, &message, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) }
    } else {
        // SAFETY: IoSlice is ABI-compatible with iovec on Unix (its documented guarantee); the
        // pointer and count describe `pieces`, live for the call; writev only reads them.
        unsafe { libc::writev(fd, pieces.as_ptr().cast(), count) }
    };
    if written < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(written as usize)
    }
}

/// The index of the first `byte` in `bytes` (libc's `memchr`, vectorised, where the crate's
/// `opt-level = "z"` leaves a byte-at-a-time loop for `iter().position`).
#[must_use]
pub fn find_byte(byte: u8, bytes: &[u8]) -> Option<usize> {
    // SAFETY: the pointer and length describe a live slice; memchr reads within it only.
    let found = unsafe { libc::memchr(bytes.as_ptr().cast(), libc::c_int::from(byte), bytes.len()) };
    // The offset of a pointer into `bytes` from its start: within 0..bytes.len().
    (!found.is_null()).then(|| found as usize - bytes.as_ptr() as usize)
}

/// The index of the last `byte` in `bytes` (libc's `memrchr`).
#[must_use]
pub fn find_last_byte(byte: u8, bytes: &[u8]) -> Option<usize> {
    // SAFETY: the pointer and length describe a live slice; memrchr reads within it only.
    let found = unsafe { libc::memrchr(bytes.as_ptr().cast(), libc::c_int::from(byte), bytes.len()) };
    (!found.is_null()).then(|| found as usize - bytes.as_ptr() as usize)
}

/// Waits up to `timeout_ms` for `fd` to take a write; returns whether it will.
pub fn wait_writable(fd: i32, timeout_ms: i32) -> bool {
    let mut poll_fd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
    // SAFETY: one valid pollfd on our stack; the timeout bounds the wait.
    let ready = unsafe { libc::poll(&mut poll_fd, 1, timeout_ms) };
    ready > 0 && poll_fd.revents & libc::POLLOUT != 0
}

/// What kind of file a descriptor is open on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    Regular,
    Fifo,
    Socket,
    Terminal,
    /// Another character device (`/dev/null`), a directory, or something else that never
    /// makes a writer wait.
    Other,
    /// Not open.
    Closed,
}

/// The kind of file `fd` is open on (fstat).
#[must_use]
pub fn fd_kind(fd: i32) -> FdKind {
    // SAFETY: a zeroed stat is valid out-storage for fstat, which writes at most its size.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` is a valid out-pointer; fstat only queries the descriptor.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return FdKind::Closed;
    }
    match stat.st_mode & libc::S_IFMT {
        libc::S_IFREG => FdKind::Regular,
        libc::S_IFIFO => FdKind::Fifo,
        libc::S_IFSOCK => FdKind::Socket,
        libc::S_IFCHR if isatty(fd) => FdKind::Terminal,
        _ => FdKind::Other,
    }
}

/// Sets or clears `O_NONBLOCK` on `fd`'s open file description; returns the flags it had.
pub fn set_nonblocking(fd: i32, on: bool) -> io::Result<libc::c_int> {
    // SAFETY: fcntl(F_GETFL) takes an integer and returns the flags or -1.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let wanted = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
    // SAFETY: fcntl(F_SETFL) takes integers and has no memory effects.
    if wanted != flags && unsafe { libc::fcntl(fd, libc::F_SETFL, wanted) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags)
}

/// Puts back the flags [`set_nonblocking`] returned.
pub fn restore_flags(fd: i32, flags: libc::c_int) {
    // SAFETY: fcntl(F_SETFL) takes integers and has no memory effects.
    unsafe { libc::fcntl(fd, libc::F_SETFL, flags) };
}

/// Credentials of the peer of a connected Unix socket: (pid, uid, gid).
pub fn peer_credentials(fd: i32) -> io::Result<(Pid, u32, u32)> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid out-pointers of the sizes getsockopt(SO_PEERCRED)
    // writes; the kernel writes at most `len` bytes.
    let result = unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED, (&mut cred as *mut libc::ucred).cast(), &mut len)
    };
    if result == 0 {
        Ok((cred.pid, cred.uid, cred.gid))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the kernel to attach the sender's credentials (`SCM_CREDENTIALS`) to every datagram
/// this socket receives from now on (`SO_PASSCRED`), whatever the sender does.
pub fn set_passcred(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a live c_int and its size is passed; setsockopt only reads it.
    let result = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Who sent a datagram, as the kernel vouches for it (`SCM_CREDENTIALS`). Only a process with
/// `CAP_SYS_ADMIN` (pid) or `CAP_SETUID`/`CAP_SETGID` (uid, gid) can claim someone else's. The
/// pid is as seen from our pid namespace: 0 when the sender's is not visible in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub pid: Pid,
    pub uid: u32,
    pub gid: u32,
}

/// One datagram read by [`recv_with_credentials`].
#[derive(Debug)]
pub struct Received {
    /// Bytes of the datagram at the start of the buffer (never more than the buffer's length).
    pub len: usize,
    /// The datagram was longer than the buffer (`MSG_TRUNC`); the rest of it is lost.
    pub truncated: bool,
    /// The control data did not fit (`MSG_CTRUNC`: more than [`MAX_RECEIVED_FDS`] descriptors,
    /// or our descriptor table was full). The descriptors that did arrive are closed already,
    /// so `fds` is empty; the kernel closed the rest.
    pub control_truncated: bool,
    /// `None` if the datagram came without `SCM_CREDENTIALS` (`SO_PASSCRED` was off when it was
    /// sent) or they did not fit.
    pub credentials: Option<Credentials>,
    /// Descriptors passed with `SCM_RIGHTS`, close-on-exec. Dropping them closes our copies.
    pub fds: Vec<OwnedFd>,
}

/// Descriptors one datagram may carry before [`recv_with_credentials`] reports its control data
/// truncated (and closes them all).
pub const MAX_RECEIVED_FDS: usize = 16;

/// Room for `SCM_CREDENTIALS` plus `SCM_RIGHTS` with [`MAX_RECEIVED_FDS`] descriptors.
// SAFETY: CMSG_SPACE is arithmetic on its argument; it dereferences nothing.
const CONTROL_BYTES: usize = unsafe {
    libc::CMSG_SPACE(std::mem::size_of::<libc::ucred>() as libc::c_uint)
        + libc::CMSG_SPACE((MAX_RECEIVED_FDS * std::mem::size_of::<libc::c_int>()) as libc::c_uint)
} as usize;

/// The control buffer in u64 words, so that it is aligned for `cmsghdr`.
const CONTROL_WORDS: usize = CONTROL_BYTES.div_ceil(8);
const _: () = assert!(std::mem::align_of::<libc::cmsghdr>() <= std::mem::align_of::<u64>());

/// Reads one datagram from a Unix datagram socket without blocking, with the sender's
/// credentials and any descriptors it passed. `Ok(None)` when nothing is queued.
///
/// `recvmsg` with `MSG_DONTWAIT` (never blocks, whatever the descriptor's flags),
/// `MSG_CMSG_CLOEXEC` (no passed descriptor leaks into a child spawned before it is closed)
/// and `MSG_TRUNC` (the datagram's real length, to tell a truncated one). Credentials arrive
/// only if [`set_passcred`] was set on `fd` before the datagram was sent.
pub fn recv_with_credentials(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<Received>> {
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: an all-zero msghdr is valid: null name and control pointers, zero lengths.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = std::mem::size_of_val(&control) as _;
    let flags = libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC | libc::MSG_TRUNC;
    let datagram_len = loop {
        // SAFETY: `header` points at `iov` (one writable buffer of `buf.len()` bytes) and at
        // `control` (writable, `msg_controllen` bytes, aligned for cmsghdr); all three outlive
        // the call, and the kernel writes only within those lengths.
        let result = unsafe { libc::recvmsg(fd, &mut header, flags) };
        if result >= 0 {
            break result as usize;
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(error),
        }
    };

    // The kernel has set msg_controllen to the bytes it wrote. Every descriptor it installed is
    // wrapped in an OwnedFd first of all, so none can leak, whatever else the message holds.
    let control_start = control.as_ptr() as usize;
    let control_end = control_start + (header.msg_controllen as usize).min(std::mem::size_of_val(&control));
    // SAFETY: CMSG_LEN is arithmetic on its argument.
    let data_offset = unsafe { libc::CMSG_LEN(0) } as usize;
    let mut credentials = None;
    let mut fds = Vec::new();
    // SAFETY: `header` is the msghdr recvmsg filled; CMSG_FIRSTHDR returns its control pointer
    // if a whole cmsghdr fits in msg_controllen, else null.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&header) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is non-null, so CMSG_FIRSTHDR/CMSG_NXTHDR found a whole cmsghdr inside
        // `control` (both check it against msg_controllen); read_unaligned assumes nothing
        // about alignment.
        let cmsghdr = unsafe { std::ptr::read_unaligned(cmsg) };
        let data = cmsg as usize + data_offset;
        // The data is what cmsg_len claims, but never past the bytes the kernel wrote.
        let data_len = (cmsghdr.cmsg_len as usize).saturating_sub(data_offset).min(control_end.saturating_sub(data));
        if cmsghdr.cmsg_level == libc::SOL_SOCKET {
            if cmsghdr.cmsg_type == libc::SCM_RIGHTS {
                for index in 0..data_len / std::mem::size_of::<libc::c_int>() {
                    let slot = (data + index * std::mem::size_of::<libc::c_int>()) as *const libc::c_int;
                    // SAFETY: the slot lies within the `data_len` bytes checked above, inside
                    // `control`; read_unaligned assumes nothing about alignment.
                    let raw = unsafe { std::ptr::read_unaligned(slot) };
                    if raw >= 0 {
                        // SAFETY: SCM_RIGHTS means the kernel has just installed this descriptor
                        // in our table for this message; nothing else refers to it, so it is ours
                        // to own and close.
                        fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                    }
                }
            } else if cmsghdr.cmsg_type == libc::SCM_CREDENTIALS && data_len >= std::mem::size_of::<libc::ucred>() {
                // SAFETY: a whole ucred lies within the bytes checked above; read_unaligned
                // assumes nothing about alignment.
                let ucred = unsafe { std::ptr::read_unaligned(data as *const libc::ucred) };
                credentials = Some(Credentials { pid: ucred.pid, uid: ucred.uid, gid: ucred.gid });
            }
        }
        // SAFETY: `header` is the msghdr recvmsg filled and `cmsg` one of its headers;
        // CMSG_NXTHDR returns the next header only if a whole cmsghdr fits before the end of
        // msg_controllen, else null.
        cmsg = unsafe { libc::CMSG_NXTHDR(&header, cmsg) };
    }
    let control_truncated = header.msg_flags & libc::MSG_CTRUNC != 0;
    if control_truncated {
        // A partial set of descriptors means nothing to the caller: close what arrived.
        fds.clear();
    }
    Ok(Some(Received {
        len: datagram_len.min(buf.len()),
        truncated: header.msg_flags & libc::MSG_TRUNC != 0 || datagram_len > buf.len(),
        control_truncated,
        credentials,
        fds,
    }))
}

/// Test helper: sends `data` on a connected Unix datagram socket with `fds` attached as
/// `SCM_RIGHTS` (the sender keeps its own copies).
#[cfg(test)]
pub(crate) fn send_with_fds(fd: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    let payload_len = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE and CMSG_LEN are arithmetic on their argument.
    let (space, cmsg_len) =
        unsafe { (libc::CMSG_SPACE(payload_len as libc::c_uint), libc::CMSG_LEN(payload_len as libc::c_uint)) };
    let mut control = vec![0u64; (space as usize).div_ceil(8)];
    let mut iov = libc::iovec { iov_base: data.as_ptr().cast_mut().cast(), iov_len: data.len() };
    // SAFETY: an all-zero msghdr is valid: null name and control pointers, zero lengths.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = space as _;
    // SAFETY: `control` holds CMSG_SPACE(payload_len) bytes aligned for cmsghdr, so the first
    // header and its payload of `payload_len` bytes fit; sendmsg only reads `data` (through
    // `iov`) and `control`, both live for the call.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&header);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = cmsg_len as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(cmsg), payload_len);
        libc::sendmsg(fd, &header, 0)
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// Removes a file if it exists.
pub fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// A wall-clock (`CLOCK_REALTIME`) timerfd, non-blocking and close-on-exec, for
/// `daemon::wallclock`.
pub fn timerfd_realtime() -> io::Result<OwnedFd> {
    // SAFETY: timerfd_create takes two integers and returns a new descriptor or -1.
    let fd = unsafe { libc::timerfd_create(libc::CLOCK_REALTIME, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: timerfd_create just returned this descriptor, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What arming a cancel-on-set timerfd found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerArm {
    Armed,
    /// The wall clock had been set since the last arming or read (`ECANCELED`). The timer is
    /// armed all the same, but that set will not show in a read any more: the caller reports it.
    ClockSet,
}

/// What a read of a timerfd found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerRead {
    /// The timer expired (this many times) since it was armed or last read.
    Expired(u64),
    /// The wall clock was set discontinuously (`ECANCELED`; only with `TFD_TIMER_CANCEL_ON_SET`).
    ClockSet,
    /// Nothing to read (`EAGAIN`).
    Empty,
}

/// 9999-12-31T23:59:59Z, the wall time a timer armed for "never" waits for.
const FAR_FUTURE_SECS: libc::time_t = 253_402_300_799;

/// Arms `fd` (a `CLOCK_REALTIME` timerfd) for the wall time `at` (`None`: never), with
/// `TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET`, so a read fails with `ECANCELED` once the clock
/// is set. A time already passed expires at once.
pub fn timerfd_arm_abs_cancel_on_set(fd: BorrowedFd<'_>, at: Option<SystemTime>) -> io::Result<TimerArm> {
    let spec = libc::itimerspec { it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 }, it_value: wall_timespec(at) };
    let flags = libc::TFD_TIMER_ABSTIME | libc::TFD_TIMER_CANCEL_ON_SET;
    // SAFETY: `spec` is a valid itimerspec on our stack, only read; a null old_value is allowed;
    // `fd` is borrowed, so it is open for the call.
    let result = unsafe { libc::timerfd_settime(fd.as_raw_fd(), flags, &spec, std::ptr::null_mut()) };
    if result == 0 {
        return Ok(TimerArm::Armed);
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::ECANCELED) => Ok(TimerArm::ClockSet),
        _ => Err(error),
    }
}

/// `at` as an absolute `CLOCK_REALTIME` value, never all zero (which would disarm the timer):
/// the epoch and before become one nanosecond after it, past all the same.
fn wall_timespec(at: Option<SystemTime>) -> libc::timespec {
    let (secs, nanos) = match at {
        None => (FAR_FUTURE_SECS, 0),
        Some(at) => {
            let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
            match libc::time_t::try_from(since_epoch.as_secs()) {
                Ok(secs) if secs < FAR_FUTURE_SECS => (secs, since_epoch.subsec_nanos()),
                _ => (FAR_FUTURE_SECS, 0),
            }
        }
    };
    let nanos = if secs == 0 && nanos == 0 { 1 } else { nanos };
    // Below 10^9, so it fits in any c_long.
    libc::timespec { tv_sec: secs, tv_nsec: nanos as libc::c_long }
}

/// Reads a timerfd without blocking.
pub fn timerfd_read(fd: BorrowedFd<'_>) -> io::Result<TimerRead> {
    let mut ticks = [0u8; 8];
    loop {
        // SAFETY: `ticks` is 8 writable bytes on our stack, what a timerfd read fills; `fd` is
        // borrowed, so it is open for the call.
        let read = unsafe { libc::read(fd.as_raw_fd(), ticks.as_mut_ptr().cast(), ticks.len()) };
        if read == 8 {
            return Ok(TimerRead::Expired(u64::from_ne_bytes(ticks)));
        }
        if read >= 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("read {read} bytes of 8 from a timerfd")));
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(TimerRead::Empty),
            Some(libc::ECANCELED) => return Ok(TimerRead::ClockSet),
            _ => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixDatagram;

    /// A connected pair whose receiving end asks for credentials: (sender, receiver).
    fn passcred_pair() -> (UnixDatagram, UnixDatagram) {
        let (sender, receiver) = UnixDatagram::pair().unwrap();
        set_passcred(receiver.as_raw_fd()).unwrap();
        (sender, receiver)
    }

    /// A pipe whose read end does not block: (read end, write end).
    fn nonblocking_pipe() -> (std::fs::File, OwnedFd) {
        let (read_end, write_end) = pipe().unwrap();
        set_nonblocking(read_end.as_raw_fd(), true).unwrap();
        (std::fs::File::from(read_end), write_end)
    }

    fn read_once(file: &mut std::fs::File) -> io::Result<usize> {
        file.read(&mut [0u8; 16])
    }

    #[test]
    fn nothing_queued_is_none() {
        let (_sender, receiver) = passcred_pair();
        assert!(recv_with_credentials(receiver.as_raw_fd(), &mut [0u8; 64]).unwrap().is_none());
    }

    #[test]
    fn a_datagram_comes_with_the_senders_credentials() {
        let (sender, receiver) = passcred_pair();
        sender.send(b"READY=1").unwrap();
        let mut buf = [0u8; 64];
        let received = recv_with_credentials(receiver.as_raw_fd(), &mut buf).unwrap().unwrap();
        assert_eq!(&buf[..received.len], b"READY=1");
        assert!(!received.truncated && !received.control_truncated);
        assert_eq!(received.credentials, Some(Credentials { pid: getpid(), uid: geteuid(), gid: test_getegid() }));
        assert!(received.fds.is_empty());
        assert!(recv_with_credentials(receiver.as_raw_fd(), &mut buf).unwrap().is_none());
    }

    fn test_getegid() -> u32 {
        // SAFETY: getegid cannot fail and has no memory effects.
        unsafe { libc::getegid() }
    }

    #[test]
    fn without_passcred_there_are_no_credentials() {
        let (sender, receiver) = UnixDatagram::pair().unwrap();
        sender.send(b"READY=1").unwrap();
        let received = recv_with_credentials(receiver.as_raw_fd(), &mut [0u8; 64]).unwrap().unwrap();
        assert_eq!(received.credentials, None);
    }

    #[test]
    fn a_longer_datagram_is_marked_truncated() {
        let (sender, receiver) = passcred_pair();
        sender.send(b"STATUS=0123456789").unwrap();
        sender.send(b"READY=1").unwrap();
        let mut buf = [0u8; 8];
        let received = recv_with_credentials(receiver.as_raw_fd(), &mut buf).unwrap().unwrap();
        assert_eq!((received.len, received.truncated), (8, true));
        assert_eq!(&buf, b"STATUS=0");
        // The rest of the long datagram is gone; the next one is whole.
        let received = recv_with_credentials(receiver.as_raw_fd(), &mut buf).unwrap().unwrap();
        assert_eq!((received.len, received.truncated), (7, false));
        assert_eq!(&buf[..7], b"READY=1");
    }

    #[test]
    fn passed_descriptors_are_owned_and_close_on_exec() {
        let (sender, receiver) = passcred_pair();
        let (mut read_end, write_end) = nonblocking_pipe();
        send_with_fds(sender.as_raw_fd(), b"BARRIER=1", &[write_end.as_raw_fd()]).unwrap();
        drop(write_end);
        // Our copy is in flight in the socket's queue, which keeps the pipe open.
        assert_eq!(read_once(&mut read_end).unwrap_err().kind(), io::ErrorKind::WouldBlock);

        let received = recv_with_credentials(receiver.as_raw_fd(), &mut [0u8; 64]).unwrap().unwrap();
        assert_eq!(received.fds.len(), 1);
        let fd = received.fds[0].as_raw_fd();
        // SAFETY: fcntl(F_GETFD) takes integers and has no memory effects.
        let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert!(fd_flags >= 0 && fd_flags & libc::FD_CLOEXEC != 0, "MSG_CMSG_CLOEXEC: flags {fd_flags}");
        assert_eq!(read_once(&mut read_end).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        drop(received);
        assert_eq!(read_once(&mut read_end).unwrap(), 0, "dropping Received closes the last write end");
    }

    #[test]
    fn too_many_descriptors_are_all_closed_and_marked() {
        let (sender, receiver) = passcred_pair();
        let (mut read_end, write_end) = nonblocking_pipe();
        let copies: Vec<OwnedFd> = (0..MAX_RECEIVED_FDS + 4).map(|_| write_end.try_clone().unwrap()).collect();
        let raw: Vec<RawFd> = copies.iter().map(AsRawFd::as_raw_fd).collect();
        send_with_fds(sender.as_raw_fd(), b"FDSTORE=1", &raw).unwrap();
        drop(copies);
        drop(write_end);

        let mut buf = [0u8; 64];
        let received = recv_with_credentials(receiver.as_raw_fd(), &mut buf).unwrap().unwrap();
        assert!(received.control_truncated);
        assert!(received.fds.is_empty());
        assert_eq!(&buf[..received.len], b"FDSTORE=1");
        assert!(received.credentials.is_some(), "credentials come first and fit");
        assert_eq!(read_once(&mut read_end).unwrap(), 0, "every copy that arrived was closed");
    }

    #[test]
    fn exactly_the_maximum_of_descriptors_fits() {
        let (sender, receiver) = passcred_pair();
        let (_read_end, write_end) = nonblocking_pipe();
        let raw = vec![write_end.as_raw_fd(); MAX_RECEIVED_FDS];
        send_with_fds(sender.as_raw_fd(), b"FDSTORE=1", &raw).unwrap();
        let received = recv_with_credentials(receiver.as_raw_fd(), &mut [0u8; 64]).unwrap().unwrap();
        assert!(!received.control_truncated);
        assert_eq!(received.fds.len(), MAX_RECEIVED_FDS);
        assert!(received.credentials.is_some());
    }

    use crate::spec::Sink;

    fn sh(script: &str) -> Launch {
        Launch {
            argv: vec!["/bin/sh".to_string(), "-c".to_string(), script.to_string()],
            env: Vec::new(),
            workingdir: None,
            umask: None,
            stdout: Sink::Forward,
            stderr: Sink::Forward,
            pid_file: None,
        }
    }

    fn options(extra_fds: &[(RawFd, RawFd)]) -> SpawnOptions<'_> {
        SpawnOptions { extra_fds, ..SpawnOptions::streams(Stream::Null, Stream::Null, Stream::Inherit) }
    }

    /// Everything written to `read_end` until every write end is closed.
    fn read_all(read_end: OwnedFd) -> String {
        let mut text = String::new();
        fs::File::from(read_end).read_to_string(&mut text).expect("read the pipe");
        text
    }

    /// Runs `script` with `extra_fds`, closes the parent's write ends, and waits for it. dash
    /// redirects only fds 0 to 9, so scripts write to other numbers through `/proc/self/fd/N`.
    fn run(script: &str, extra_fds: &[(RawFd, RawFd)], write_ends: Vec<OwnedFd>) -> ExitStatus {
        let child = spawn(&sh(script), options(extra_fds)).expect("spawn");
        drop(write_ends);
        wait_blocking(child.pid).expect("wait")
    }

    #[test]
    fn through_slots_a_child_gets_its_descriptors_even_at_a_slots_number_and_the_slots_are_refilled() {
        let slots = SpawnSlots::reserve().expect("slots");
        let end = slots.range().end;
        // Descriptors above the slots, as a daemon's instance pipes are.
        let many: Vec<OwnedFd> = (0..64).map(|_| open_dev_null(false).expect("/dev/null")).collect();
        let (read_end, write_end) = pipe().expect("pipe");
        let (slot_read, slot_write) = pipe().expect("pipe");
        // A target that is also a slot's number.
        let target = slots.first;
        let extra = [(target, slot_write.as_raw_fd()), (9, write_end.as_raw_fd())];
        let script = format!("ls /proc/self/fd > /proc/self/fd/9; echo via-slot > /proc/self/fd/{target}");
        let child = spawn(&sh(&script), SpawnOptions { slots: Some(&slots), ..options(&extra) }).expect("spawn");
        drop((write_end, slot_write));
        assert_eq!(wait_blocking(child.pid).expect("wait"), ExitStatus::Exited(0));
        assert_eq!(read_all(slot_read), "via-slot\n");
        let listed: Vec<RawFd> = read_all(read_end).lines().filter_map(|line| line.parse().ok()).collect();
        assert!(listed.contains(&9) && listed.contains(&target), "{listed:?}");
        for fd in &many {
            let fd = fd.as_raw_fd();
            assert!(fd < end || !listed.contains(&fd), "fd {fd} of ours reached the child: {listed:?}");
        }
        // Every slot holds the filler again.
        for slot in slots.range() {
            assert_eq!(fs::read_link(format!("/proc/self/fd/{slot}")).expect("slot"), PathBuf::from("/dev/null"));
        }
    }

    #[test]
    fn an_extra_descriptor_reaches_the_child_at_its_target() {
        let (read_end, write_end) = pipe().expect("pipe");
        let extra = [(5, write_end.as_raw_fd())];
        let status = run("echo hi >&5", &extra, vec![write_end]);
        assert_eq!(status, ExitStatus::Exited(0));
        assert_eq!(read_all(read_end), "hi\n");
    }

    #[test]
    fn a_close_on_exec_source_that_is_its_own_target_still_arrives() {
        let (read_end, write_end) = pipe().expect("pipe");
        let fd = write_end.as_raw_fd();
        let extra = [(fd, fd)];
        let status = run(&format!("echo same > /proc/self/fd/{fd}"), &extra, vec![write_end]);
        assert_eq!(status, ExitStatus::Exited(0));
        assert_eq!(read_all(read_end), "same\n");
    }

    #[test]
    fn sources_that_are_each_others_targets_are_swapped() {
        let (first_read, first_write) = pipe().expect("pipe");
        let (second_read, second_write) = pipe().expect("pipe");
        let (first, second) = (first_write.as_raw_fd(), second_write.as_raw_fd());
        let extra = [(first, second), (second, first)];
        let script = format!("echo to-second > /proc/self/fd/{first}; echo to-first > /proc/self/fd/{second}");
        let status = run(&script, &extra, vec![first_write, second_write]);
        assert_eq!(status, ExitStatus::Exited(0));
        assert_eq!(read_all(first_read), "to-first\n");
        assert_eq!(read_all(second_read), "to-second\n");
    }

    #[test]
    fn a_source_stays_open_in_the_parent() {
        let (read_end, write_end) = pipe().expect("pipe");
        let extra = [(7, write_end.as_raw_fd())];
        let child = spawn(&sh("echo child >&7"), options(&extra)).expect("spawn");
        wait_blocking(child.pid).expect("wait");
        write_fd(write_end.as_raw_fd(), b"parent\n", false).expect("the source is still ours");
        drop(write_end);
        assert_eq!(read_all(read_end), "child\nparent\n");
    }

    #[test]
    fn listen_pid_is_the_childs_own_pid_and_replaces_an_inherited_one() {
        let (read_end, write_end) = pipe().expect("pipe");
        let mut launch = sh("echo $LISTEN_PID $$ $LISTEN_FDS > /proc/self/fd/9");
        launch.env = vec![("LISTEN_PID".to_string(), "1".to_string()), ("LISTEN_FDS".to_string(), "1".to_string())];
        let extra = [(9, write_end.as_raw_fd())];
        let child = spawn(&launch, SpawnOptions { listen_pid: true, ..options(&extra) }).expect("spawn");
        drop(write_end);
        assert_eq!(wait_blocking(child.pid).expect("wait"), ExitStatus::Exited(0));
        assert_eq!(read_all(read_end), format!("{0} {0} 1\n", child.pid));
    }

    #[test]
    fn a_listen_pid_child_leads_its_group_with_default_signals_and_no_mask() {
        let (read_end, write_end) = pipe().expect("pipe");
        // The test harness ignores SIGPIPE, as the daemon does; the child must not. Field 5 of
        // /proc/PID/stat is the process group; grep, exec'd by the shell, reads its own state.
        let launch = sh("set -- $(cat /proc/$$/stat); echo $$ $5 > /proc/self/fd/9; \
             exec grep -E '^Sig(Ign|Blk)' /proc/self/status > /proc/self/fd/9");
        let extra = [(9, write_end.as_raw_fd())];
        let child = spawn(&launch, SpawnOptions { listen_pid: true, ..options(&extra) }).expect("spawn");
        drop(write_end);
        assert_eq!(wait_blocking(child.pid).expect("wait"), ExitStatus::Exited(0));
        let expected = format!("{0} {0}\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n", child.pid);
        assert_eq!(read_all(read_end), expected);
    }

    #[test]
    fn a_listen_pid_exec_failure_is_a_spawn_error_and_leaves_no_child() {
        let dir = std::env::temp_dir().join(format!("sv-lite-sys-noexec-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("directory");
        let path = dir.join("data.txt");
        fs::write(&path, "data").expect("write");
        let mut launch = sh("unused");
        launch.argv = vec![path.display().to_string()];
        let error = spawn(&launch, SpawnOptions { listen_pid: true, ..options(&[]) }).expect_err("not executable");
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(error.step, format!("exec {}", path.display()));
        assert_eq!(error.error.raw_os_error(), Some(libc::EACCES));
    }

    #[test]
    fn write_pid_writes_decimal_digits_and_a_nul() {
        let mut out = [b'x'; PID_ROOM];
        write_pid(&mut out, 4_194_304);
        assert_eq!(&out[..8], b"4194304\0");
        let mut out = [b'x'; PID_ROOM];
        write_pid(&mut out, i32::MAX);
        assert_eq!(&out[..11], b"2147483647\0");
        let mut out = [b'x'; PID_ROOM];
        write_pid(&mut out, 7);
        assert_eq!(&out[..2], b"7\0");
    }

    #[test]
    fn a_standard_stream_target_is_an_error_naming_the_step() {
        let (_read_end, write_end) = pipe().expect("pipe");
        let source = write_end.as_raw_fd();
        let error = spawn(&sh("true"), options(&[(2, source)])).expect_err("target 2 is stderr");
        assert_eq!(error.step, format!("extra descriptor 2 (from {source})"));
        assert_eq!(error.to_string(), format!("extra descriptor 2 (from {source}): the target must be above 2"));
    }

    #[test]
    fn a_target_given_twice_is_an_error() {
        let (_read_end, write_end) = pipe().expect("pipe");
        let source = write_end.as_raw_fd();
        let error = spawn(&sh("true"), options(&[(4, source), (4, source)])).expect_err("target 4 twice");
        assert_eq!(error.to_string(), format!("extra descriptor 4 (from {source}): this target is given twice"));
    }

    #[test]
    fn a_closed_source_is_an_error_naming_the_step() {
        let (_read_end, write_end) = pipe().expect("pipe");
        let closed = write_end.as_raw_fd();
        drop(write_end);
        // A number far above anything the other tests' threads open meanwhile.
        let closed = closed + 900;
        let error = spawn(&sh("true"), options(&[(3, closed)])).expect_err("the source is closed");
        assert_eq!(error.step, format!("extra descriptor 3 (from {closed})"));
        assert_eq!(error.error.raw_os_error(), Some(libc::EBADF));
    }
}
