//! Socket activation at the OS edge, with the real binary: the `--exec-listen-pid` trampoline,
//! and a listening socket passed as fd 3 through `sys::spawn` to a program that accepts on it.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::process::Command;

use common::{run_with_deadline, Output, BIN, CTL_DEADLINE, WAIT};
use sv_lite::activation::{listen_env, trampoline_argv};
use sv_lite::core::ExitStatus;
use sv_lite::daemon::sockets;
use sv_lite::spec::{Launch, Sink, SocketSpec};
use sv_lite::sys::{self, SpawnOptions, Stream};

fn trampoline(args: &[&str]) -> Output {
    let mut command = Command::new(&*BIN);
    command.arg("--exec-listen-pid").args(args);
    run_with_deadline(&mut command, CTL_DEADLINE)
}

#[test]
fn listen_pid_is_the_pid_of_the_program_it_execs() {
    let output = trampoline(&["/bin/sh", "-c", "echo $LISTEN_PID $$"]);
    assert_eq!(output.code, Some(0), "{output}");
    let numbers: Vec<&str> = output.stdout.split_whitespace().collect();
    assert_eq!(numbers.len(), 2, "{output}");
    assert_eq!(numbers[0], numbers[1], "LISTEN_PID is not the program's pid\n{output}");
}

#[test]
fn the_program_starts_with_no_signal_ignored_or_blocked() {
    // The trampoline is a Rust program (its runtime ignores SIGPIPE) started here with TERM,
    // PIPE and USR1 ignored; grep, found in PATH and exec'd in its place, reads its own state.
    let script = format!(
        "trap '' TERM PIPE USR1; exec '{}' --exec-listen-pid grep -E '^Sig(Ign|Blk)' /proc/self/status",
        BIN.display()
    );
    let output = run_with_deadline(Command::new("/bin/sh").arg("-c").arg(script), CTL_DEADLINE);
    assert_eq!(output.code, Some(0), "{output}");
    assert_eq!(output.stdout, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n", "{output}");
}

#[test]
fn a_missing_program_exits_127_and_a_non_executable_one_126_naming_it() {
    let output = trampoline(&["sv-lite-no-such-program", "arg"]);
    assert_eq!(output.code, Some(127), "{output}");
    assert!(output.stderr.contains("sv-lite: exec sv-lite-no-such-program: No such file or directory"), "{output}");

    let dir = common::TestDir::new();
    let not_executable = dir.join("data.txt");
    std::fs::write(&not_executable, "data").expect("write");
    let shown = not_executable.display().to_string();
    let output = trampoline(&[&shown]);
    assert_eq!(output.code, Some(126), "{output}");
    assert!(output.stderr.contains(&format!("sv-lite: exec {shown}: Permission denied")), "{output}");
}

#[test]
fn a_socket_activated_program_accepts_on_fd_3_with_systemds_environment() {
    let (listener, port) =
        sockets::bind(&SocketSpec::Tcp("127.0.0.1:0".parse().expect("address"))).expect("bind a listener");
    let port = port.expect("a TCP port");
    // The program checks what sd_listen_fds checks, then answers one connection on fd 3.
    let program = "
import fcntl, os, socket
ok = (os.environ['LISTEN_PID'] == str(os.getpid()) and os.environ['LISTEN_FDS'] == '1'
      and os.environ['LISTEN_FDNAMES'] == 'http' and fcntl.fcntl(3, fcntl.F_GETFD) == 0)
listener = socket.socket(fileno=3)
connection, _ = listener.accept()
connection.sendall(b'activated' if ok else repr(dict(os.environ)).encode())
";
    let argv = ["python3".to_string(), "-c".to_string(), program.to_string()];
    let launch = Launch {
        argv: trampoline_argv(&BIN, &argv),
        env: listen_env(&["http".to_string()]),
        workingdir: None,
        umask: None,
        stdout: Sink::Forward,
        stderr: Sink::Forward,
        pid_file: None,
    };
    let extra_fds = [(3, listener.as_raw_fd())];
    let options = SpawnOptions {
        stdin: Stream::Null,
        stdout: Stream::Inherit,
        stderr: Stream::Inherit,
        foreground_tty: false,
        extra_fds: &extra_fds,
    };
    // The connection waits in the listen queue until the program accepts it.
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect before the program runs");
    let child = sys::spawn(&launch, options).expect("spawn through the trampoline");
    client.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut answer = String::new();
    let read = client.read_to_string(&mut answer);
    let status = sys::wait_blocking(child.pid).expect("wait for the program");
    read.expect("read the answer");
    assert_eq!(answer, "activated");
    assert_eq!(status, ExitStatus::Exited(0));
    // The daemon keeps its listener: a second connection still queues on it.
    TcpStream::connect(("127.0.0.1", port)).expect("the listener outlives the program");
}
