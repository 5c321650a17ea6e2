//! One cgroup v2 per instance, where sv-lite can make them: the way a whole tree is stopped and
//! measured when the kernel can hold it together.
//!
//! At start the daemon finds its own cgroup (`/proc/self/cgroup`'s `0::` line, under the
//! cgroup2 mount of `/proc/self/mountinfo`) and makes `sv-lite.PID` in it (a new one: never
//! one another daemon may hold). Each instance gets
//! `sv-lite.PID/NAME:N`, made before its first spawn; the child is born in it (`clone3` with
//! `CLONE_INTO_CGROUP`, `SpawnOptions::cgroup_dir`: moving a process by writing `cgroup.procs`
//! costs an RCU grace period, 10 to 20 ms here), so nothing it starts can leave it, not even a
//! double-forked daemon that cleared its environment. Then:
//! - a stop signal goes to every process in the cgroup, and SIGKILL is one write of `1` to
//!   `cgroup.kill` (Linux 5.14), which the kernel applies to forks in flight too;
//! - CPU is `cpu.stat`'s `usage_usec` (always there in cgroup v2), less its value when the
//!   run began, as an instance's cgroup outlives its runs; memory is `memory.current` when the
//!   memory controller is enabled for our children, else the RSS of the cgroup's processes.
//!
//! Where any of this cannot be had (cgroup v1 only, no `cgroup.kill`, no permission to write),
//! [`Cgroups::start`] says why and the daemon uses the `/proc` walk of `usage.rs` instead.
//! Everything here reads or writes small cgroupfs files, which live in memory: nothing blocks.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::core::Pid;
use crate::sys;

/// The instances' cgroups of one daemon.
#[derive(Debug)]
pub struct Cgroups {
    /// `<our cgroup>/sv-lite.PID`, parent of every instance's cgroup.
    dir: PathBuf,
    /// Whether the instances' cgroups have the memory controller (`memory.current`).
    memory: bool,
    /// The instances whose current run is in a cgroup of ours.
    made: HashMap<String, Group>,
    /// The last directory each instance used, and whether `cgroup.kill` was written to it.
    dirs: HashMap<String, (PathBuf, bool)>,
    /// For the names of fresh directories (`web:0.2`).
    generation: u64,
}

/// One instance's cgroup and `usage_usec` when its current run began.
#[derive(Debug)]
struct Group {
    dir: PathBuf,
    base: u64,
}

/// What one instance's cgroup uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupUsage {
    pub cpu_seconds: f64,
    /// `memory.current`, when the controller is there.
    pub memory_bytes: Option<u64>,
}

impl Cgroups {
    /// Makes the daemon's cgroup directory under its own cgroup, or says why there is none.
    pub fn start(pid: Pid) -> Result<Cgroups, String> {
        let own = locate()?;
        let dir = make_dir(&own.join(format!("sv-lite.{pid}")))?;
        remove_stale(&own, &dir);
        // memory.current needs the controller enabled in our cgroup for its children (someone
        // else's choice: we do not move ourselves out to enable it), then in ours for theirs.
        let offered = fs::read_to_string(own.join("cgroup.subtree_control")).unwrap_or_default();
        let memory = offered.split_whitespace().any(|name| name == "memory")
            && write_file(&dir.join("cgroup.subtree_control"), b"+memory").is_ok();
        Ok(Cgroups { dir, memory, made: HashMap::new(), dirs: HashMap::new(), generation: 0 })
    }

    /// For `ctl info`, `--version` and the start-up line.
    #[must_use]
    pub fn describe(&self) -> String {
        let memory = if self.memory { "memory.current" } else { "RSS from /proc (no memory controller)" };
        format!("cgroup v2, one per instance under {} (memory: {memory})", self.dir.display())
    }

    /// `instance`'s cgroup directory, opened for the spawn to be born in, the cgroup made first
    /// if needed. A new run's CPU counts from here.
    ///
    /// A directory that was killed is not used again: a child born by `clone3` into a cgroup
    /// that once got `cgroup.kill` was killed at birth here (Linux 6.18 compares the kill
    /// count of the parent's cgroup with the target's), so the run after a stop gets a fresh
    /// directory, `NAME:N.G`, and the old one goes once empty.
    pub fn enter(&mut self, instance: &str) -> io::Result<OwnedFd> {
        // Until this run is in, the instance counts as having none.
        self.made.remove(instance);
        let path = match self.dirs.get(instance) {
            Some((dir, false)) => dir.clone(),
            Some((dir, true)) => {
                let _ = fs::remove_dir(dir);
                self.generation += 1;
                self.dir.join(format!("{instance}.{}", self.generation))
            }
            None => self.dir.join(instance),
        };
        self.dirs.insert(instance.to_string(), (path.clone(), false));
        let base = match fs::create_dir(&path) {
            Ok(()) => 0,
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => cpu_usec(&path).unwrap_or(0),
            Err(error) => return Err(error),
        };
        // The directory itself, for clone3's CLONE_INTO_CGROUP (std opens it close-on-exec).
        let dir = fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY).open(&path)?;
        self.made.insert(instance.to_string(), Group { dir: path, base });
        Ok(OwnedFd::from(dir))
    }

    /// The run just spawned could not join `instance`'s cgroup: it is treated as having none
    /// (the directory stays, for [`Cgroups::forget`]).
    pub fn leave(&mut self, instance: &str) {
        self.made.remove(instance);
    }

    /// Whether `instance` has a cgroup (it was spawned into one).
    #[must_use]
    pub fn has(&self, instance: &str) -> bool {
        self.made.contains_key(instance)
    }

    /// SIGKILL to everything in `instance`'s cgroup, by the kernel.
    pub fn kill(&mut self, instance: &str) -> io::Result<()> {
        let group = self.made.get(instance).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if let Some((_, killed)) = self.dirs.get_mut(instance) {
            *killed = true;
        }
        write_file(&group.dir.join("cgroup.kill"), b"1")
    }

    /// The processes in `instance`'s cgroup now.
    pub fn pids(&self, instance: &str) -> io::Result<Vec<Pid>> {
        let group = self.made.get(instance).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let text = fs::read_to_string(group.dir.join("cgroup.procs"))?;
        Ok(text.lines().filter_map(|line| line.trim().parse().ok()).collect())
    }

    /// CPU of the current run and memory of `instance`'s cgroup.
    #[must_use]
    pub fn usage(&self, instance: &str) -> Option<GroupUsage> {
        let Group { dir: path, base } = self.made.get(instance)?;
        let usec = cpu_usec(path)?;
        let memory_bytes = if self.memory {
            fs::read_to_string(path.join("memory.current")).ok().and_then(|text| text.trim().parse().ok())
        } else {
            None
        };
        Some(GroupUsage { cpu_seconds: usec.saturating_sub(*base) as f64 / 1e6, memory_bytes })
    }

    /// Removes the cgroups of instances that `keep` no longer wants, when they are empty (an
    /// occupied one stays until a later call).
    pub fn forget(&mut self, keep: impl Fn(&str) -> bool) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        let owners: HashMap<PathBuf, String> =
            self.dirs.iter().map(|(instance, (dir, _))| (dir.clone(), instance.clone())).collect();
        for entry in entries.flatten() {
            // Instance names hold a `:`; the interface files (`cgroup.procs`...) do not.
            if !entry.file_name().to_string_lossy().contains(':') {
                continue;
            }
            let path = entry.path();
            let owner = owners.get(&path).cloned();
            if owner.as_deref().is_some_and(&keep) {
                continue;
            }
            // An old directory of a killed run, or a removed instance's: gone once empty.
            if fs::remove_dir(&path).is_ok() {
                if let Some(instance) = owner {
                    self.made.remove(&instance);
                    self.dirs.remove(&instance);
                }
            }
        }
    }

    /// At exit: every instance's cgroup and ours. What the last stops killed may take a
    /// moment to be gone, so this waits for the cgroups to empty, until `deadline`.
    pub fn finish(&mut self, deadline: std::time::Instant) {
        loop {
            self.forget(|_| false);
            match fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(error) if std::time::Instant::now() >= deadline => {
                    log::warn!("cannot remove {}: {error}", self.dir.display());
                    return;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }
}

/// What a daemon started here would use (`sv-lite --version`), without making anything.
#[must_use]
pub fn would_use(enabled: bool) -> String {
    if !enabled {
        return "/proc walk (--no-cgroups)".to_string();
    }
    // Made and removed at once: the only sure test of permission and of cgroup.kill.
    let probe = locate().and_then(|own| make_dir(&own.join(format!("sv-lite-probe.{}", sys::getpid()))));
    match probe {
        Ok(dir) => {
            let _ = fs::remove_dir(&dir);
            let parent = dir.parent().unwrap_or(&dir);
            format!("cgroup v2, one per instance under {}", parent.display())
        }
        Err(why) => format!("/proc walk ({why})"),
    }
}

/// Removes the cgroups that daemons no longer running left in `own` (killed before their exit),
/// where they are empty. One that still holds processes is left, and said.
fn remove_stale(own: &Path, ours: &Path) {
    let Ok(entries) = fs::read_dir(own) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("sv-lite.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        let path = entry.path();
        if path == ours || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        for instance in fs::read_dir(&path).into_iter().flatten().flatten() {
            if instance.file_name().to_string_lossy().contains(':') {
                let _ = fs::remove_dir(instance.path());
            }
        }
        match fs::remove_dir(&path) {
            Ok(()) => log::info!("removed {}, left by an sv-lite that is gone", path.display()),
            Err(error) => log::warn!("{} of an sv-lite that is gone still holds processes ({error})", path.display()),
        }
    }
}

/// Claims a new cgroup directory `BASE` (or `BASE.1`, `BASE.2`... when taken: daemons in
/// other pid namespaces may share our pid and our cgroup) that has `cgroup.kill`.
fn make_dir(base: &Path) -> Result<PathBuf, String> {
    let mut dir = base.to_path_buf();
    for attempt in 1..=100 {
        match fs::create_dir(&dir) {
            Ok(()) => {
                // The root cgroup has no cgroup.kill, so it is looked for in ours.
                if !dir.join("cgroup.kill").exists() {
                    let _ = fs::remove_dir(&dir);
                    return Err(format!("{} has no cgroup.kill (Linux 5.14 or later is needed)", dir.display()));
                }
                return Ok(dir);
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                dir = PathBuf::from(format!("{}.{attempt}", base.display()));
            }
            Err(error) => return Err(format!("cannot create {}: {error}", dir.display())),
        }
    }
    Err(format!("cannot create {}: 100 names taken", base.display()))
}

/// Our own cgroup's directory, or why cgroup v2 is not there.
pub fn locate() -> Result<PathBuf, String> {
    let read = |path: &str| fs::read_to_string(path).map_err(|error| format!("cannot read {path}: {error}"));
    locate_in(&read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?)
}

/// [`locate`] from the texts of `/proc/self/mountinfo` and `/proc/self/cgroup`.
pub fn locate_in(mountinfo: &str, membership: &str) -> Result<PathBuf, String> {
    let own = membership
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("no cgroup v2 membership in /proc/self/cgroup (cgroup v1 only)")?;
    if own.ends_with(" (deleted)") {
        return Err(format!("our cgroup {own} is deleted"));
    }
    // mountinfo: id parent major:minor root mount-point options [optional...] - type source ...
    let mut best: Option<(usize, PathBuf)> = None;
    for line in mountinfo.lines() {
        let Some((before, after)) = line.split_once(" - ") else { continue };
        if after.split(' ').next() != Some("cgroup2") {
            continue;
        }
        let fields: Vec<&str> = before.split(' ').collect();
        let (Some(root), Some(point)) = (fields.get(3), fields.get(4)) else { continue };
        let (root, point) = (unescape(root), unescape(point));
        let inside = if root == "/" { Some(own) } else { own.strip_prefix(root.as_str()) };
        let Some(rest) = inside.filter(|rest| rest.is_empty() || rest.starts_with('/')) else { continue };
        if best.as_ref().is_none_or(|(length, _)| root.len() > *length) {
            let mut dir = PathBuf::from(point);
            if !rest.trim_start_matches('/').is_empty() {
                dir.push(rest.trim_start_matches('/'));
            }
            best = Some((root.len(), dir));
        }
    }
    best.map(|(_, dir)| dir).ok_or_else(|| format!("no cgroup2 mount holds our cgroup {own}"))
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4).filter(|_| bytes[index] == b'\\');
        match octal.and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok()) {
            Some(byte) => {
                out.push(byte);
                index += 4;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `usage_usec` of `cpu.stat` in `dir`.
fn cpu_usec(dir: &Path) -> Option<u64> {
    parse_cpu_usec(&fs::read_to_string(dir.join("cpu.stat")).ok()?)
}

fn parse_cpu_usec(text: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix("usage_usec ")).and_then(|value| value.trim().parse().ok())
}

/// One write of a small cgroupfs file.
fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    fs::OpenOptions::new().write(true).open(path)?.write_all(bytes)
}

/// The resident bytes of `pids`, from `/proc/PID/statm`.
#[must_use]
pub fn rss_of(pids: &[Pid]) -> u64 {
    let page = sys::page_size();
    pids.iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/statm")).ok())
        .filter_map(|text| text.split(' ').nth(1).and_then(|pages| pages.parse::<u64>().ok()))
        .sum::<u64>()
        * page
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/memory rw,nosuid shared:11 - cgroup cgroup rw,memory
";

    #[test]
    fn our_cgroup_is_found_under_the_cgroup2_mount() {
        let membership = "4:memory:/x\n0::/system.slice/app.service\n";
        assert_eq!(locate_in(HYBRID, membership), Ok(PathBuf::from("/sys/fs/cgroup/unified/system.slice/app.service")));
        assert_eq!(locate_in(HYBRID, "0::/\n"), Ok(PathBuf::from("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn a_mount_of_a_subtree_and_an_escaped_mount_point() {
        // A container's view: the mount's root is a subtree, and our cgroup lies under it.
        let mountinfo = "40 30 0:30 /kubepods/pod1 /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw\n";
        assert_eq!(locate_in(mountinfo, "0::/kubepods/pod1/app\n"), Ok(PathBuf::from("/sys/fs/cgroup x/app")));
        // A cgroup outside the mounted subtree (or merely sharing a prefix) is not under it.
        assert!(locate_in(mountinfo, "0::/kubepods/pod10/app\n").is_err());
    }

    #[test]
    fn cgroup_v1_only_or_no_mount_says_why() {
        let error = locate_in(HYBRID, "4:memory:/x\n").expect_err("no v2 line");
        assert!(error.contains("cgroup v1 only"), "{error}");
        let v1_mounts = "26 25 0:24 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let error = locate_in(v1_mounts, "0::/\n").expect_err("no cgroup2 mount");
        assert!(error.contains("no cgroup2 mount"), "{error}");
    }

    #[test]
    fn cpu_stat_usage_is_read() {
        assert_eq!(parse_cpu_usec("usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n"), Some(1234));
        assert_eq!(parse_cpu_usec("user_usec 1000\n"), None);
    }
}
