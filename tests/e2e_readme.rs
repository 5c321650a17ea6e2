//! The README's first commands, run exactly as written: a documented command that fails is a
//! bug even when every other test is green.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ctl_at, poll_until, run_with_deadline, TestDir, TAG_VAR};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The lines of the README's first ```sh block, without their trailing comments.
fn first_block() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).expect("README.md");
    let block = readme.split("```sh\n").nth(1).and_then(|rest| rest.split("```").next()).expect("a ```sh block");
    block
        .lines()
        .map(|line| line.split(" #").next().unwrap_or(line).trim().to_string())
        .filter(|line| !line.is_empty())
        .collect()
}

/// The `-s SOCKET` a command line names.
fn socket_of(command: &str) -> String {
    let words: Vec<&str> = command.split_whitespace().collect();
    let at = words.iter().position(|word| *word == "-s").expect("the command names a socket with -s");
    words[at + 1].to_string()
}

#[test]
fn the_readme_starts_with_the_demo_and_make_test() {
    let block = first_block();
    assert_eq!(block.len(), 2, "the first block is two commands: {block:?}");
    assert!(block[0].starts_with("cargo run --release -- -c examples/demo.yaml"), "{block:?}");
    assert_eq!(block[1], "make test", "{block:?}");
}

#[test]
fn the_readmes_first_command_starts_the_demo_as_written() {
    let command = first_block().remove(0);
    let socket = socket_of(&command);
    let dir = TestDir::new();
    // Run from the repository root, as a user who just cloned it would; its own process group,
    // so the whole tree can be cleaned up (the tag kills whatever is left).
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new("sh")
            .arg("-c")
            .arg(&command)
            .current_dir(REPO)
            .env(TAG_VAR, &dir.tag)
            .env_remove("SV_LITE_SOCKET")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout")).expect("stdout file"))
            .stderr(std::fs::File::create(dir.join("stderr")).expect("stderr file"))
            .process_group(0)
            .spawn()
            .expect("run the README's first command")
    };
    let expected = ["clock:0", "flaky:0", "worker:0", "worker:1", "on-demand:0"];
    // `cargo run --release` may compile first: a generous deadline.
    let listed = poll_until(Duration::from_secs(600), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("`{command}` exited with {status}:\n{}", common::read(dir.join("stderr")));
        }
        let status = ctl_at(Path::new(&socket), &["status"]);
        status.code == Some(0) && expected.iter().all(|name| status.stdout.contains(name))
    });
    assert!(listed, "`{command}` did not list the demo programs:\n{}", common::read(dir.join("stderr")));

    // The README's "in another terminal" command, as written, until the workers are up.
    let mut last = None;
    let workers_up = poll_until(Duration::from_secs(30), || {
        let mut status = Command::new("./target/release/sv-lite");
        status.args(["ctl", "-s", &socket, "status"]).current_dir(REPO);
        let output = run_with_deadline(&mut status, Duration::from_secs(60));
        let up = output.code == Some(0)
            && output.stdout.lines().filter(|line| line.starts_with("worker:") && line.contains("RUNNING")).count()
                == 2;
        last = Some(output);
        up
    });
    assert!(workers_up, "{:?}", last.map(|output| output.to_string()));

    let shutdown = ctl_at(Path::new(&socket), &["shutdown"]);
    assert_eq!(shutdown.code, Some(0), "{shutdown}");
    let exited = poll_until(Duration::from_secs(60), || matches!(child.try_wait(), Ok(Some(_))));
    assert!(exited, "the demo did not exit after `ctl shutdown`");
    assert!(!Path::new(&socket).exists(), "the socket is removed at exit");
}

#[test]
fn the_shipped_static_binary_runs_the_demo_config() {
    // The demo has `workingdir: /tmp`: the static build once crashed on it.
    let dir = TestDir::new();
    let socket = dir.join("demo.sock");
    let mut child = Command::new(&*common::BIN)
        .args(["-c", "examples/demo.yaml", "-s"])
        .arg(&socket)
        .current_dir(REPO)
        .env(TAG_VAR, &dir.tag)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr")).expect("stderr file"))
        .spawn()
        .expect("start the daemon");
    let running = poll_until(Duration::from_secs(30), || {
        let status = ctl_at(&socket, &["status", "worker"]);
        status.stdout.matches("RUNNING").count() == 2
    });
    let stderr = common::read(dir.join("stderr"));
    assert!(running, "the demo's workers (workingdir: /tmp) did not run:\n{stderr}");
    assert_eq!(ctl_at(&socket, &["shutdown"]).code, Some(0));
    let exited = poll_until(Duration::from_secs(30), || matches!(child.try_wait(), Ok(Some(_))));
    assert!(exited, "the daemon did not exit after `ctl shutdown`");
}

/// The `$ ` lines of the README's block that begins with `$ {first}`, without their comments.
fn dollar_block(first: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).expect("README.md");
    let start = readme.find(&format!("$ {first}")).unwrap_or_else(|| panic!("README has a block starting `$ {first}`"));
    let block = readme[start..].split("```").next().unwrap_or_default();
    block
        .lines()
        .filter_map(|line| line.strip_prefix("$ "))
        .map(|line| line.split(" #").next().unwrap_or(line).trim().to_string())
        .collect()
}

#[test]
fn the_service_directory_demo_runs_as_written() {
    let lines = dollar_block("mkdir -p /tmp/demo.d");
    assert_eq!(lines.len(), 6, "{lines:?}");
    let dir = TestDir::new();
    let bin_dir = common::BIN.parent().expect("the binary's directory").to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let _ = std::fs::remove_dir_all("/tmp/demo.d");
    let _ = std::fs::remove_file("/tmp/demo.yaml");
    // `sh -c LINE` with its output discarded: a line ending in `&` leaves the daemon running
    // after the shell exits, holding no pipe of ours.
    let run = |line: &str| {
        let status = Command::new("sh")
            .arg("-c")
            .arg(line)
            .env("PATH", &path)
            .env(TAG_VAR, &dir.tag)
            .env_remove("SV_LITE_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).expect("stderr file"))
            .status()
            .expect("sh");
        assert!(status.success(), "`{line}` failed: {}", common::read(dir.join("stderr")));
    };
    let socket = Path::new("/tmp/demo.sock");
    let web = || {
        let output = ctl_at(socket, &["status", "--json"]);
        let rows: serde_json::Value = serde_json::from_str(&output.stdout).unwrap_or_default();
        rows.as_array()
            .and_then(|rows| rows.iter().find(|row| row["name"] == "web:0").cloned())
            .map(|row| (row["state"].as_str().unwrap_or_default().to_string(), row["pid"].as_i64()))
    };
    let wait = |what: &str, condition: &dyn Fn() -> bool| {
        assert!(poll_until(common::WAIT, condition), "after the README's demo: {what}; web:0 is {:?}", web());
    };
    run(&lines[0]);
    run(&lines[1]);
    wait("the daemon answers", &|| ctl_at(socket, &["status"]).code == Some(0));
    run(&lines[2]);
    wait("web:0 starts", &|| web().is_some_and(|(state, _)| state == "RUNNING"));
    let first = web().and_then(|(_, pid)| pid);
    run(&lines[3]);
    wait("web:0 restarts", &|| web().is_some_and(|(state, pid)| state == "RUNNING" && pid != first));
    let second = web().and_then(|(_, pid)| pid);
    run(&lines[4]);
    // The touch changes nothing; a marker file handled after it shows it was seen.
    std::fs::write("/tmp/demo.d/marker.yaml", "cmd: sleep 300\n").expect("marker");
    wait("the marker runs", &|| ctl_at(socket, &["status", "marker"]).stdout.contains("RUNNING"));
    assert_eq!(web().and_then(|(_, pid)| pid), second, "touch must not restart web:0");
    run(&lines[5]);
    wait("web:0 is gone", &|| web().is_none());
    assert_eq!(ctl_at(socket, &["shutdown"]).code, Some(0));
    assert!(poll_until(common::WAIT, || !socket.exists()), "the demo daemon exits");
    let _ = std::fs::remove_dir_all("/tmp/demo.d");
    let _ = std::fs::remove_file("/tmp/demo.yaml");
}

/// The ```yaml block that follows `heading` in the README.
fn yaml_after(heading: &str) -> String {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).expect("README.md");
    let at = readme.find(heading).unwrap_or_else(|| panic!("README has {heading:?}"));
    readme[at..].split("```yaml\n").nth(1).and_then(|rest| rest.split("```").next()).expect("a yaml block").to_string()
}

#[test]
fn the_readmes_config_examples_pass_check() {
    for (heading, marker) in
        [("## Config\n", "socket_group"), ("**Log files that rotate themselves.**", "stdout_maxbytes")]
    {
        let yaml = yaml_after(heading);
        assert!(yaml.contains(marker), "the block after {heading:?}:\n{yaml}");
        let dir = TestDir::new();
        let path = dir.write("readme.yaml", &yaml);
        let output = common::sv_lite(&["check", path.to_str().expect("utf-8 path")]);
        assert_eq!(output.code, Some(0), "README's example after {heading:?} fails `sv-lite check`:\n{output}");
    }
}

/// The limit every feature must fit in: 2.5 MiB for the stripped static binary.
const SIZE_LIMIT: u64 = 5 * 1024 * 1024 / 2;

#[test]
fn the_shipped_static_binary_fits_in_two_and_a_half_mib() {
    // `make test` names the static build; a plain `cargo test` has only the debug build,
    // whose size means nothing.
    let Some(path) = std::env::var_os("SV_LITE_STATIC_BIN") else { return };
    let size = std::fs::metadata(&path).map(|metadata| metadata.len()).expect("the static binary");
    assert!(size <= SIZE_LIMIT, "{} is {size} bytes, over {SIZE_LIMIT}", Path::new(&path).display());
}

#[test]
fn the_orchestrator_examples_config_passes_check() {
    let path = Path::new(REPO).join("examples/kubernetes/sv-lite.yaml");
    let output = common::sv_lite(&["check", path.to_str().expect("utf-8 path")]);
    assert_eq!(output.code, Some(0), "examples/kubernetes/sv-lite.yaml fails `sv-lite check`:\n{output}");
}
