//! Socket activation at the OS edge, end to end without the daemon's loop: a listener from
//! `daemon::sockets` passed as fd 3 by `sys::spawn` with `listen_pid`, to a real program that
//! checks what `sd_listen_fds` checks and accepts a connection that queued before it started.

use std::io::Read;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

use sv_lite::activation::listen_env;
use sv_lite::core::ExitStatus;
use sv_lite::daemon::sockets;
use sv_lite::spec::{Launch, Signal, Sink, SocketSpec};
use sv_lite::sys::{self, SpawnOptions, Stream};

/// How long the program may take to answer (CI has two noisy cores).
const ANSWER_DEADLINE: Duration = Duration::from_secs(20);

#[test]
fn a_socket_activated_program_accepts_on_fd_3_with_systemds_environment() {
    let (listener, port) =
        sockets::bind(&SocketSpec::Tcp("127.0.0.1:0".parse().expect("address"))).expect("bind a listener");
    let port = port.expect("a TCP port");
    let program = "
import fcntl, os, socket
ok = (os.environ['LISTEN_PID'] == str(os.getpid()) and os.environ['LISTEN_FDS'] == '1'
      and os.environ['LISTEN_FDNAMES'] == 'http' and fcntl.fcntl(3, fcntl.F_GETFD) == 0)
listener = socket.socket(fileno=3)
connection, _ = listener.accept()
connection.sendall(b'activated' if ok else repr(dict(os.environ)).encode())
";
    let mut env = listen_env(&["http".to_string()]);
    // An inherited value must not survive: the child's own pid replaces it.
    env.push(("LISTEN_PID".to_string(), "1".to_string()));
    let launch = Launch {
        argv: vec!["python3".to_string(), "-c".to_string(), program.to_string()],
        env,
        workingdir: None,
        umask: None,
        stdout: Sink::Forward,
        stderr: Sink::Forward,
        pid_file: None,
    };
    let extra_fds = [(3, listener.as_raw_fd())];
    let options = SpawnOptions {
        extra_fds: &extra_fds,
        listen_pid: true,
        ..SpawnOptions::streams(Stream::Null, Stream::Inherit, Stream::Inherit)
    };
    // The connection waits in the listen queue until the program accepts it.
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect before the program runs");
    let child = sys::spawn(&launch, options).expect("spawn");
    client.set_read_timeout(Some(ANSWER_DEADLINE)).expect("read timeout");
    let mut answer = String::new();
    let read = client.read_to_string(&mut answer);
    if read.is_err() {
        let _ = sys::kill(child.pid, Signal(libc::SIGKILL), true);
    }
    let status = sys::wait_blocking(child.pid).expect("wait for the program");
    read.expect("read the answer");
    assert_eq!(answer, "activated");
    assert_eq!(status, ExitStatus::Exited(0));
    // The daemon keeps its listener: a second connection still queues on it.
    TcpStream::connect(("127.0.0.1", port)).expect("the listener outlives the program");
}
