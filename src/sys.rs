//! The operating-system edge: spawning, reaping, signalling, and the few libc calls std lacks.
//!
//! Architecture invariant: this is the only module with `unsafe`, and every block says why it is
//! sound. Code that runs in a child between fork and exec (the `pre_exec` closure) makes only
//! async-signal-safe calls: no allocation, no locks, no logging.
#![allow(unsafe_code)]

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStderr, ChildStdout, Command, Stdio};

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
}

/// How to start one child, beyond what its [`Launch`] says.
#[derive(Clone, Copy, Debug)]
pub struct SpawnOptions {
    pub stdin: Stream,
    pub stdout: Stream,
    pub stderr: Stream,
    /// Make the child's process group the foreground group of the terminal on stdin (one-command
    /// mode, so Ctrl-C and job control reach the program as under tini).
    pub foreground_tty: bool,
}

/// Why a spawn failed: the step, and the OS error when there is one.
#[derive(Debug)]
pub struct SpawnError {
    pub step: String,
    pub error: io::Error,
}

impl SpawnError {
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
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
}

/// Starts `launch` as the leader of a new process group, with default signal dispositions and
/// an empty signal mask. The error says which step failed.
pub fn spawn(launch: &Launch, options: SpawnOptions) -> Result<SpawnedChild, SpawnError> {
    let Some((program, args)) = launch.argv.split_first() else {
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
    let mut command = Command::new(program);
    command.args(args);
    command.envs(launch.env.iter().map(|(key, value)| (key, value)));
    if let Some(dir) = &launch.workingdir {
        command.current_dir(dir);
    }
    command.stdin(stdio(options.stdin));
    command.stdout(stdio(options.stdout));
    command.stderr(stdio(options.stderr));
    command.process_group(0);
    let umask = launch.umask;
    let foreground_tty = options.foreground_tty;
    // SAFETY: the closure runs in the child between fork and exec. It calls only umask,
    // signal, the raw rt_sigaction syscall (with a zeroed 32-byte action on the stack, at
    // least the kernel's struct size), sigemptyset, sigprocmask, getpid and tcsetpgrp, all
    // async-signal-safe; it allocates nothing, takes no lock and touches no Rust std state.
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
            // Exec resets handled signals but keeps ignored ones (Rust ignores SIGPIPE; a
            // parent may ignore real-time ones) and the mask: give the program the state it
            // would get from a shell. The raw syscall, because glibc refuses to touch its
            // internal signals 32 and 33; an all-zero kernel sigaction is SIG_DFL whatever the
            // architecture's field order.
            let default_action = [0u64; 4];
            for signal in 1..=libc::SIGRTMAX() {
                if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        signal as libc::c_long,
                        default_action.as_ptr(),
                        std::ptr::null_mut::<u64>(),
                        8 as libc::c_long,
                    );
                }
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    match command.spawn() {
        Ok(mut child) => {
            let pid = child.id() as Pid;
            Ok(SpawnedChild { pid, stdout: child.stdout.take(), stderr: child.stderr.take() })
        }
        Err(error) => Err(SpawnError { step: format!("exec {program}"), error }),
    }
}

fn stdio(stream: Stream) -> Stdio {
    match stream {
        Stream::Pipe => Stdio::piped(),
        Stream::Null => Stdio::null(),
        Stream::Inherit => Stdio::inherit(),
    }
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
/// the usual soft limit of 1024 would cap the daemon near 500 instances. Returns the new limit.
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
/// and short writes. Blocking: used for the daemon's own output.
pub fn write_all_fd(fd: i32, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length come from a live slice; write does not keep them.
        let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if written < 0 {
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => {
                    wait_writable(fd);
                    continue;
                }
                _ => return Err(error),
            }
        }
        bytes = &bytes[written as usize..];
    }
    Ok(())
}

fn wait_writable(fd: i32) {
    let mut poll_fd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
    // SAFETY: one valid pollfd on our stack; the 1 s timeout bounds the wait.
    unsafe { libc::poll(&mut poll_fd, 1, 1000) };
}

/// Whether the process `pid` exists (signal 0).
#[must_use]
pub fn process_exists(pid: Pid) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    pid > 0 && (unsafe { libc::kill(pid, 0) } == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
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

/// Removes a file if it exists.
pub fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}
