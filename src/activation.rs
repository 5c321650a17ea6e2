//! systemd-style socket activation: the environment a program gets with its listening sockets,
//! and the trampoline that sets `LISTEN_PID`.
//!
//! The daemon binds the sockets (`daemon::sockets`) and passes them as fds 3, 4, ... with
//! `sys::SpawnOptions::extra_fds`. systemd's protocol (`sd_listen_fds`) also wants
//! `LISTEN_PID` to be the program's own pid, which `posix_spawn` cannot know before the child
//! exists. So such a program is spawned as `sv-lite --exec-listen-pid PROGRAM ARGS...`
//! ([`trampoline_argv`]): the sv-lite binary itself, which sets `LISTEN_PID` to its pid, puts
//! every signal back to `SIG_DFL` with an empty mask, and execs PROGRAM in the same process
//! (so the pid is the program's). That costs one more exec of the static binary per spawn of a
//! socket-activated program (measured in docs/BENCHMARKS.md), and nothing for other programs.
//!
//! Pure apart from [`self_exe`] (reads `/proc/self/exe`) and [`exec_listen_pid`] (the
//! trampoline's whole life).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::sys;

/// The hidden first argument of the trampoline mode, handled first thing in `main`.
pub const EXEC_LISTEN_PID: &str = "--exec-listen-pid";

/// Exit code of the trampoline when the program is not found (as a shell's).
pub const EXIT_NOT_FOUND: u8 = 127;
/// Exit code of the trampoline when the program was found but could not be executed.
pub const EXIT_CANNOT_EXECUTE: u8 = 126;
/// Exit code of the trampoline when it was given no program.
pub const EXIT_USAGE: u8 = 2;

/// `LISTEN_FDS` and `LISTEN_FDNAMES` for sockets passed as fds 3, 4, ... in the order of
/// `names`. `LISTEN_PID` is not here: only the trampoline knows it.
///
/// systemd's names may not contain `:` (the separator); the config loader checks that.
#[must_use]
pub fn listen_env(names: &[String]) -> Vec<(String, String)> {
    vec![("LISTEN_FDS".to_string(), names.len().to_string()), ("LISTEN_FDNAMES".to_string(), names.join(":"))]
}

/// The command line that runs `argv` through the trampoline: `SELF --exec-listen-pid ARGV...`.
///
/// `self_exe` comes from [`self_exe`], resolved once at daemon start. A path that is not UTF-8
/// is converted lossily (`self_exe` avoids handing out one).
#[must_use]
pub fn trampoline_argv(self_exe: &Path, argv: &[String]) -> Vec<String> {
    let mut full = Vec::with_capacity(argv.len() + 2);
    full.push(self_exe.to_string_lossy().into_owned());
    full.push(EXEC_LISTEN_PID.to_string());
    full.extend(argv.iter().cloned());
    full
}

/// The path of the running sv-lite binary, for [`trampoline_argv`]: `std::env::current_exe()`
/// (the target of `/proc/self/exe`), else `argv[0]` made absolute when it names a path. Call it
/// once at daemon start: the working directory changes around spawns, and a binary replaced
/// on disk later is then found at the same path.
#[must_use]
pub fn self_exe() -> PathBuf {
    if let Ok(path) = std::env::current_exe() {
        if path.to_str().is_some() {
            return path;
        }
    }
    let argv0 = std::env::args_os().next().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("sv-lite"));
    if argv0.components().count() > 1 {
        if let Ok(absolute) = std::fs::canonicalize(&argv0) {
            return absolute;
        }
    }
    argv0
}

/// The trampoline, `sv-lite --exec-listen-pid PROGRAM ARGS...` (`argv` is `PROGRAM ARGS...`):
/// sets `LISTEN_PID` to our pid, resets every signal to `SIG_DFL` with an empty mask (Rust's
/// runtime has just ignored SIGPIPE), and execs PROGRAM, found in PATH like execvp, keeping
/// every descriptor that is not close-on-exec. Returns only on failure, with the exit code:
/// 127 when PROGRAM is not found, 126 when it cannot be executed, 2 when there is none; the
/// message names PROGRAM.
pub fn exec_listen_pid(argv: &[OsString]) -> u8 {
    let Some(program) = argv.first() else {
        eprintln!("sv-lite: {EXEC_LISTEN_PID} needs a program to run");
        return EXIT_USAGE;
    };
    sys::reset_signal_state();
    let pid = std::process::id().to_string();
    let error = sys::exec_with_env(argv, &[("LISTEN_PID", &pid)]);
    eprintln!("sv-lite: exec {}: {error}", program.to_string_lossy());
    if error.raw_os_error() == Some(libc::ENOENT) {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_EXECUTE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|word| word.to_string()).collect()
    }

    #[test]
    fn listen_env_counts_and_names_the_sockets_in_order() {
        let env = listen_env(&strings(&["http", "admin"]));
        assert_eq!(env, vec![("LISTEN_FDS".into(), "2".into()), ("LISTEN_FDNAMES".into(), "http:admin".into())]);
        let env = listen_env(&strings(&["only"]));
        assert_eq!(env, vec![("LISTEN_FDS".into(), "1".into()), ("LISTEN_FDNAMES".into(), "only".into())]);
    }

    #[test]
    fn trampoline_argv_puts_the_program_after_the_hidden_mode() {
        let argv = trampoline_argv(Path::new("/usr/bin/sv-lite"), &strings(&["web", "--port", "80"]));
        assert_eq!(argv, strings(&["/usr/bin/sv-lite", "--exec-listen-pid", "web", "--port", "80"]));
    }

    #[test]
    fn self_exe_is_an_absolute_path_to_a_file() {
        let path = self_exe();
        assert!(path.is_absolute(), "{}", path.display());
        assert!(path.is_file(), "{}", path.display());
    }
}
