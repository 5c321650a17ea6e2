//! CPU time and resident memory of each instance's whole process tree, read from `/proc` only
//! when asked (a `status`, a scrape): an idle daemon never wakes for it.
//!
//! One pass over `/proc/*/stat` gives every process's parent, CPU time and RSS; each instance's
//! tree is its main process and every descendant by parent links. CPU% is over the time since
//! the previous reading of the same instance (the previous `status`), or since its start.
//! An instance in a cgroup of its own (`cgroup.rs`) is measured from its cgroup instead.

use std::collections::HashMap;
use std::time::Instant;

use super::cgroup::{self, Cgroups};
use crate::core::Pid;
use crate::sys;

/// One process, from `/proc/PID/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Proc {
    ppid: Pid,
    /// utime + stime, in clock ticks.
    ticks: u64,
    /// cutime + cstime: its waited-for children's, so a worker that exits does not take its
    /// time out of the tree (the counter never goes down while the root lives).
    child_ticks: u64,
    /// Resident pages.
    rss_pages: u64,
}

/// What a tree uses.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub cpu_seconds: f64,
    /// Over the time since the previous reading (or, at the first, unknown).
    pub cpu_percent: Option<f64>,
    pub rss_bytes: u64,
}

/// The previous reading of each root, for CPU%.
#[derive(Debug, Default)]
pub struct Sampler {
    last: HashMap<Pid, (Instant, f64)>,
}

impl Sampler {
    /// The usage of each `(root, instance)`'s tree, by root pid: from the instance's cgroup
    /// when it has one, else from one reading of `/proc` shared by all the others. With
    /// `baseline`, the readings become the base of the next CPU% (a `status`; a scrape, which
    /// shows no CPU%, leaves them alone).
    pub fn read(
        &mut self,
        roots: &[(Pid, &str)],
        cgroups: Option<&Cgroups>,
        now: Instant,
        baseline: bool,
    ) -> HashMap<Pid, Usage> {
        let mut table: Option<Table> = None;
        let (ticks, page) = (sys::clock_ticks() as f64, sys::page_size());
        let mut usage = HashMap::new();
        for &(root, instance) in roots {
            let grouped = cgroups.and_then(|groups| Some((groups, groups.usage(instance)?)));
            let (cpu_seconds, rss_bytes) = match grouped {
                Some((groups, group)) => (
                    group.cpu_seconds,
                    group.memory_bytes.unwrap_or_else(|| cgroup::rss_of(&groups.pids(instance).unwrap_or_default())),
                ),
                None => {
                    let table = table.get_or_insert_with(Table::read);
                    let (mut total_ticks, mut pages) = (0u64, 0u64);
                    for pid in table.trees([root]) {
                        if let Some(proc) = table.procs.get(&pid) {
                            total_ticks += proc.ticks + proc.child_ticks;
                            pages += proc.rss_pages;
                        }
                    }
                    (total_ticks as f64 / ticks, pages * page)
                }
            };
            let cpu_percent = self.last.get(&root).and_then(|&(at, before)| {
                let elapsed = now.saturating_duration_since(at).as_secs_f64();
                (elapsed > 0.0).then(|| ((cpu_seconds - before).max(0.0) / elapsed) * 100.0)
            });
            if baseline {
                self.last.insert(root, (now, cpu_seconds));
            }
            usage.insert(root, Usage { cpu_seconds, cpu_percent, rss_bytes });
        }
        // Bases of processes gone are dropped when a reading covers most of what is remembered
        // (a status of all): then only this reading's roots stay. A status of a few instances
        // only adds its own, so its cost never grows with the number of instances.
        if baseline && roots.len() * 2 >= self.last.len() {
            let current: std::collections::HashSet<Pid> = roots.iter().map(|(pid, _)| *pid).collect();
            self.last.retain(|pid, _| current.contains(pid));
        }
        usage
    }
}

/// One reading of `/proc`: every process, and the children of each by parent links.
struct Table {
    procs: HashMap<Pid, Proc>,
    children: HashMap<Pid, Vec<Pid>>,
}

impl Table {
    fn read() -> Table {
        let procs = snapshot();
        let mut children: HashMap<Pid, Vec<Pid>> = HashMap::new();
        for (&pid, proc) in &procs {
            children.entry(proc.ppid).or_default().push(pid);
        }
        Table { procs, children }
    }

    /// `tops` and all their descendants, each once.
    fn trees(&self, tops: impl IntoIterator<Item = Pid>) -> Vec<Pid> {
        let mut found: Vec<Pid> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<Pid> = tops.into_iter().collect();
        while let Some(pid) = stack.pop() {
            if seen.insert(pid) {
                found.push(pid);
                stack.extend(self.children.get(&pid).into_iter().flatten().copied());
            }
        }
        found
    }
}

/// For each stop (root, instance), the processes outside the root's process group that the
/// stop must reach too: every descendant of the root by parent links (one that called setsid
/// is still a descendant), and every child of sv-lite (`me`: PID 1 or the subreaper adopts
/// orphans) whose environment carries `SV_LITE_INSTANCE=instance` (a double-forked daemon
/// whose parent is gone), with its descendants. The root itself is not listed, nor anything
/// unrelated: a process is listed only by parentage or by the marker of exactly this instance.
/// One `/proc` reading serves every stop of a turn.
#[must_use]
pub fn trees_members(stops: &[(Pid, String)], me: Pid) -> Vec<(Pid, Vec<Pid>)> {
    let table = Table::read();
    // The adopted processes' markers, read once.
    let adopted: Vec<(Pid, Vec<u8>)> = table
        .children
        .get(&me)
        .into_iter()
        .flatten()
        .map(|&pid| (pid, std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default()))
        .collect();
    stops
        .iter()
        .map(|(root, instance)| {
            let marker = format!("{}={instance}", crate::core::INSTANCE_VAR);
            let marked = adopted
                .iter()
                .filter(|(pid, environ)| {
                    *pid != *root && environ.split(|&byte| byte == 0).any(|entry| entry == marker.as_bytes())
                })
                .map(|(pid, _)| *pid);
            let tops = table.children.get(root).into_iter().flatten().copied().chain(marked);
            (*root, table.trees(tops))
        })
        .collect()
}

/// Every process's parent, CPU ticks and RSS.
fn snapshot() -> HashMap<Pid, Proc> {
    let mut procs = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return procs };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<Pid>().ok()) else { continue };
        if let Some(proc) = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|text| parse_stat(&text))
        {
            procs.insert(pid, proc);
        }
    }
    procs
}

/// Fields after the `(comm)`, which may hold spaces and parentheses: state ppid ... utime(14)
/// stime(15) ... rss(24), numbered as in proc(5).
fn parse_stat(text: &str) -> Option<Proc> {
    let rest = text.get(text.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split(' ').collect();
    // `rest` starts at field 3 (state).
    let field = |n: usize| fields.get(n - 3).and_then(|value| value.parse::<u64>().ok());
    Some(Proc {
        ppid: Pid::try_from(field(4)?).ok()?,
        ticks: field(14)? + field(15)?,
        child_ticks: field(16).unwrap_or(0) + field(17).unwrap_or(0),
        rss_pages: field(24)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line = "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 12345 1000000 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(parse_stat(line), Some(Proc { ppid: 17, ticks: 300, child_ticks: 0, rss_pages: 321 }));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_tree_sums_its_descendants_and_cpu_percent_needs_a_previous_reading() {
        // This test process as the root: its own tree is at least itself.
        let me = sys::getpid();
        let mut sampler = Sampler::default();
        let first = sampler.read(&[(me, "test:0")], None, Instant::now(), true)[&me];
        assert!(first.rss_bytes > 0);
        assert_eq!(first.cpu_percent, None);
        let mut spin = 0u64;
        for i in 0..20_000_000u64 {
            spin = spin.wrapping_add(i * i);
        }
        assert_ne!(spin, 1);
        let second = sampler.read(&[(me, "test:0")], None, Instant::now(), true)[&me];
        assert!(second.cpu_seconds >= first.cpu_seconds);
        assert!(second.cpu_percent.is_some());
    }
}
