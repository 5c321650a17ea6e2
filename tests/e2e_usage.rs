//! Per-instance CPU and memory in `status`: the whole process tree, read when asked from the
//! instance's cgroup (where the machine allows one) or from /proc (`--no-cgroups`).

mod common;

use common::*;

/// The instance's tree as this test reads it: (CPU seconds, RSS bytes), from /proc.
fn tree_of(root: i32) -> (f64, u64) {
    let mut parent = std::collections::HashMap::new();
    let mut stats = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let number = |n: usize| fields.get(n - 3).and_then(|value| value.parse::<u64>().ok()).unwrap_or(0);
        parent.insert(pid, number(4) as i32);
        stats.insert(pid, (number(14) + number(15), number(24)));
    }
    let (mut ticks, mut pages) = (0, 0);
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        if let Some((t, p)) = stats.get(&pid) {
            ticks += t;
            pages += p;
        }
        stack.extend(parent.iter().filter(|(_, ppid)| **ppid == pid).map(|(child, _)| *child));
    }
    (ticks as f64 / 100.0, pages * 4096)
}

#[test]
fn status_shows_the_cpu_and_memory_of_the_whole_tree_from_its_cgroup() {
    status_shows_the_cpu_and_memory_of_the_whole_tree(true);
}

#[test]
fn status_shows_the_cpu_and_memory_of_the_whole_tree_from_proc() {
    status_shows_the_cpu_and_memory_of_the_whole_tree(false);
}

fn status_shows_the_cpu_and_memory_of_the_whole_tree(cgroups: bool) {
    // A forked child burns CPU; another holds 50 MB. Debian's python3 by its path: a wrapper
    // such as pyenv's shim runs processes that exit, whose CPU a cgroup counts (rightly) and
    // the test's own sum over the live tree cannot.
    let args = if cgroups { Vec::new() } else { vec!["--no-cgroups"] };
    let d = Daemon::start_with(
        TestDir::new(),
        r#"programs:
  heavy:
    cmd: [sh, -c, 'while :; do :; done & /usr/bin/python3 -c "import time; b = bytearray(50 * 1024 * 1024); time.sleep(300)" & wait']
"#,
        Launch { args, ..Launch::default() },
    );
    let info = d.ctl_ok(&["info"]).stdout;
    let expected = if cgroups && cgroups_required().is_some() { "cgroup v2" } else { "/proc walk" };
    assert!(info.contains(expected), "{expected} expected: {info}");
    let pid = d.wait_running("heavy:0");
    // Until the 50 MB are resident and some CPU was spent.
    d.wait_for("50 MB resident", WAIT, || tree_of(pid).1 > 50 * 1024 * 1024);
    d.wait_for("CPU spent by the busy child", WAIT, || tree_of(pid).0 > 0.3);
    let row = d.row("heavy:0").expect("a row");
    let (cpu, rss) = tree_of(pid);
    let first_read = std::time::Instant::now();
    let shown_rss = row["rss_bytes"].as_u64().expect("rss_bytes") as f64;
    let shown_cpu = row["cpu_seconds"].as_f64().expect("cpu_seconds");
    assert!((shown_rss - rss as f64).abs() <= rss as f64 * 0.1, "rss {shown_rss} vs /proc {rss}");
    assert!(shown_rss >= 50.0 * 1024.0 * 1024.0, "{shown_rss}");
    // Read just before ours: within 10 % (plus a tick) of what the test reads.
    assert!((shown_cpu - cpu).abs() <= cpu * 0.1 + 0.05, "cpu {shown_cpu} vs /proc {cpu}");
    assert!(shown_cpu > 0.1, "the burning child counts: {shown_cpu}");
    if expected == "cgroup v2" {
        // And it is the cgroup's own figure, read here after the daemon's.
        let own = cgroups_usable().expect("usable");
        let stat = read(own.join(format!("sv-lite.{}", d.pid)).join("heavy:0").join("cpu.stat"));
        let usec: f64 = stat
            .lines()
            .find_map(|line| line.strip_prefix("usage_usec "))
            .expect("usage_usec")
            .parse()
            .expect("a number");
        let cgroup = usec / 1e6;
        assert!(shown_cpu <= cgroup + 0.01 && cgroup - shown_cpu < 0.5, "cpu {shown_cpu} vs the cgroup's {cgroup}");
    }
    // A second status gives CPU% over the time between the two. How much of a CPU the busy
    // child gets depends on the machine's load, so the test measures the same interval itself.
    d.wait_for("more CPU spent", WAIT, || tree_of(pid).0 > cpu + 0.3);
    let again = d.row("heavy:0").expect("a row");
    let (cpu_again, _) = tree_of(pid);
    let own = (cpu_again - cpu) / first_read.elapsed().as_secs_f64() * 100.0;
    let percent = again["cpu_percent"].as_f64().expect("cpu_percent on the second status");
    assert!(percent > 0.0, "{percent}% for a busy loop");
    assert!((percent - own).abs() <= own * 0.2 + 5.0, "{percent}% shown, {own:.1}% measured by the test");
    let table = d.ctl_ok(&["status", "heavy"]).stdout;
    assert!(table.lines().next().is_some_and(|header| header.contains("CPU%") && header.contains("RSS")), "{table}");
}
