//! `daemon::watch::DirWatch` against real directories under /tmp, driven like the daemon drives
//! it: a mio `Poll`, `next_deadline` as the timeout, `handle_readable` on the token, `take_due`
//! after every wake-up. Each wait has a 10 s limit; none sleeps and hopes.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use sv_lite::daemon::watch::{DirWatch, WatchMode, DEBOUNCE, MAX_DEBOUNCE, RESCAN_INTERVAL};

const WATCH: Token = Token(3);
const LIMIT: Duration = Duration::from_secs(10);

/// A fresh, empty directory for one test.
fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sv-lite-watch-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

/// A watch on `dirs`, registered in a new poll, with inotify working.
fn watching(dirs: &[PathBuf]) -> (Poll, DirWatch) {
    let poll = Poll::new().expect("a poll");
    let mut watch = DirWatch::new(dirs, Instant::now());
    assert_eq!(watch.mode(), WatchMode::Inotify);
    watch.register(poll.registry(), WATCH).expect("inotify registers");
    (poll, watch)
}

/// One batch `take_due` returned, and when.
struct Batch {
    at: Instant,
    paths: Vec<PathBuf>,
}

/// Runs the loop as the daemon would until `done` holds for everything reported so far and
/// nothing is pending any more; fails after [`LIMIT`]. Returns the non-empty batches.
fn run_until(
    poll: &mut Poll,
    watch: &mut DirWatch,
    known: &[PathBuf],
    done: impl Fn(&BTreeSet<PathBuf>) -> bool,
) -> Vec<Batch> {
    let give_up = Instant::now() + LIMIT;
    let mut batches: Vec<Batch> = Vec::new();
    let mut events = Events::with_capacity(8);
    loop {
        let reported: BTreeSet<PathBuf> = batches.iter().flat_map(|batch| batch.paths.clone()).collect();
        if done(&reported) && watch.next_deadline().is_none() {
            return batches;
        }
        let now = Instant::now();
        assert!(now < give_up, "gave up waiting; reported so far: {reported:?}");
        let wake = watch.next_deadline().map_or(give_up, |deadline| deadline.min(give_up));
        poll.poll(&mut events, Some(wake.saturating_duration_since(now))).expect("poll");
        let now = Instant::now();
        if events.iter().any(|event| event.token() == WATCH) {
            watch.handle_readable(now);
        }
        let paths = watch.take_due(now, known.iter().map(PathBuf::as_path));
        if !paths.is_empty() {
            batches.push(Batch { at: now, paths });
        }
    }
}

/// Runs the loop for `window` and returns every path reported meanwhile.
fn run_for(poll: &mut Poll, watch: &mut DirWatch, known: &[PathBuf], window: Duration) -> Vec<PathBuf> {
    let end = Instant::now() + window;
    let mut reported = Vec::new();
    let mut events = Events::with_capacity(8);
    loop {
        let now = Instant::now();
        if now >= end {
            return reported;
        }
        let wake = watch.next_deadline().map_or(end, |deadline| deadline.min(end));
        poll.poll(&mut events, Some(wake.saturating_duration_since(now))).expect("poll");
        let now = Instant::now();
        if events.iter().any(|event| event.token() == WATCH) {
            watch.handle_readable(now);
        }
        reported.extend(watch.take_due(now, known.iter().map(PathBuf::as_path)));
    }
}

fn contains(path: &Path) -> impl Fn(&BTreeSet<PathBuf>) -> bool + '_ {
    move |reported| reported.contains(path)
}

fn paths(batches: &[Batch]) -> Vec<Vec<PathBuf>> {
    batches.iter().map(|batch| batch.paths.clone()).collect()
}

/// Every path reported, each once (a path in two batches fails).
fn reported_once(batches: &[Batch]) -> BTreeSet<PathBuf> {
    let all: Vec<&PathBuf> = batches.iter().flat_map(|batch| &batch.paths).collect();
    let once: BTreeSet<PathBuf> = all.iter().map(|path| (*path).clone()).collect();
    assert_eq!(all.len(), once.len(), "a path was reported twice: {all:?}");
    once
}

/// Every path reported (a path may come twice: a rescan and an event both saw it).
fn reported(batches: &[Batch]) -> BTreeSet<PathBuf> {
    batches.iter().flat_map(|batch| batch.paths.clone()).collect()
}

#[test]
fn a_new_file_is_reported_once_its_debounce_is_over() {
    let dir = test_dir("create");
    let (mut poll, mut watch) = watching(std::slice::from_ref(&dir));
    assert_eq!(watch.next_deadline(), None, "nothing pending before any change");
    let file = dir.join("web.json");
    let before_write = Instant::now();
    fs::write(&file, "{}").unwrap();
    let batches = run_until(&mut poll, &mut watch, &[], contains(&file));
    assert_eq!(paths(&batches), vec![vec![file.clone()]]);
    assert!(batches[0].at >= before_write + DEBOUNCE, "reported before the debounce was over");
    assert_eq!(watch.next_deadline(), None, "nothing left pending");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn several_writes_in_a_row_are_reported_once() {
    let dir = test_dir("burst");
    let (mut poll, mut watch) = watching(std::slice::from_ref(&dir));
    let file = dir.join("web.json");
    for round in 0..5 {
        fs::write(&file, format!("{{\"round\": {round}}}")).unwrap();
    }
    let batches = run_until(&mut poll, &mut watch, &[], contains(&file));
    assert_eq!(paths(&batches), vec![vec![file.clone()]]);
    assert_eq!(run_for(&mut poll, &mut watch, &[], DEBOUNCE * 3), Vec::<PathBuf>::new());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_save_through_a_temporary_file_and_a_rename_reports_the_final_name() {
    let dir = test_dir("rename");
    let final_name = dir.join("web.json");
    fs::write(&final_name, "{\"old\": true}").unwrap();
    let (mut poll, mut watch) = watching(std::slice::from_ref(&dir));
    // What vim does: probe file 4913, swap file, then the new content under a temporary name
    // renamed over the old file.
    let probe = dir.join("4913");
    fs::write(&probe, "").unwrap();
    fs::remove_file(&probe).unwrap();
    let temporary = dir.join("web.json.tmp");
    fs::write(&temporary, "{\"new\": true}").unwrap();
    fs::rename(&temporary, &final_name).unwrap();
    let batches = run_until(&mut poll, &mut watch, &[], contains(&final_name));
    // Every name is reported (the caller filters by extension): the probe (deleted), the
    // temporary name (written, then renamed away) and the final one.
    assert_eq!(reported_once(&batches), BTreeSet::from([probe, final_name.clone(), temporary]));
    assert_eq!(fs::read_to_string(&final_name).unwrap(), "{\"new\": true}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_deleted_file_is_reported() {
    let dir = test_dir("delete");
    let file = dir.join("web.json");
    fs::write(&file, "{}").unwrap();
    let (mut poll, mut watch) = watching(std::slice::from_ref(&dir));
    assert_eq!(watch.list(), vec![file.clone()]);
    fs::remove_file(&file).unwrap();
    let batches = run_until(&mut poll, &mut watch, std::slice::from_ref(&file), contains(&file));
    assert_eq!(paths(&batches), vec![vec![file.clone()]]);
    assert_eq!(watch.list(), Vec::<PathBuf>::new());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_directory_is_picked_up_when_created_and_dropped_when_removed() {
    let root = test_dir("missing");
    let wanted = root.join("etc").join("sv-lite.d");
    let (mut poll, mut watch) = watching(std::slice::from_ref(&wanted));
    assert_eq!(watch.list(), Vec::<PathBuf>::new());
    // Unrelated names next to the way there are not reported.
    fs::write(root.join("unrelated.json"), "{}").unwrap();
    fs::create_dir_all(&wanted).unwrap();
    let file = wanted.join("web.json");
    fs::write(&file, "{}").unwrap();
    let batches = run_until(&mut poll, &mut watch, &[], contains(&file));
    assert_eq!(reported(&batches), BTreeSet::from([file.clone()]));

    // A file written now is seen through the directory's own watch.
    let second = wanted.join("db.json");
    fs::write(&second, "{}").unwrap();
    let batches = run_until(&mut poll, &mut watch, &[], contains(&second));
    assert_eq!(paths(&batches), vec![vec![second.clone()]]);

    // The whole tree goes: the files known are reported (a rescan finds them gone).
    let known = [second.clone(), file.clone()];
    fs::remove_dir_all(root.join("etc")).unwrap();
    let batches = run_until(&mut poll, &mut watch, &known, |reported| known.iter().all(|path| reported.contains(path)));
    assert_eq!(reported(&batches), BTreeSet::from(known.clone()));

    // And it is picked up again when it comes back.
    fs::create_dir_all(&wanted).unwrap();
    fs::write(&file, "{}").unwrap();
    let batches = run_until(&mut poll, &mut watch, &[], contains(&file));
    assert_eq!(reported(&batches), BTreeSet::from([file.clone()]));
    assert_eq!(watch.mode(), WatchMode::Inotify);
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn a_directory_replaced_by_a_rename_is_rescanned() {
    let root = test_dir("replace");
    let wanted = root.join("sv-lite.d");
    fs::create_dir(&wanted).unwrap();
    let old_file = wanted.join("old.json");
    fs::write(&old_file, "{}").unwrap();
    let (mut poll, mut watch) = watching(std::slice::from_ref(&wanted));
    // A new directory is made elsewhere and renamed over the old one (as deployment tools do).
    let staged = root.join("staged");
    fs::create_dir(&staged).unwrap();
    fs::write(staged.join("new.json"), "{}").unwrap();
    fs::rename(&wanted, root.join("previous")).unwrap();
    fs::rename(&staged, &wanted).unwrap();
    let new_file = wanted.join("new.json");
    let known = [old_file.clone()];
    let batches = run_until(&mut poll, &mut watch, &known, |reported| {
        reported.contains(&new_file) && reported.contains(&old_file)
    });
    assert_eq!(reported(&batches), BTreeSet::from([new_file.clone(), old_file.clone()]));
    // The renamed-away directory is not watched any more; the new one is.
    fs::write(root.join("previous").join("stale.json"), "{}").unwrap();
    let later = wanted.join("later.json");
    fs::write(&later, "{}").unwrap();
    let batches = run_until(&mut poll, &mut watch, &[], contains(&later));
    assert_eq!(paths(&batches), vec![vec![later.clone()]]);
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn a_symlinked_directory_retargeted_is_rescanned() {
    let root = test_dir("retarget");
    let (release_a, release_b) = (root.join("release-a"), root.join("release-b"));
    fs::create_dir(&release_a).unwrap();
    fs::create_dir(&release_b).unwrap();
    fs::write(release_a.join("a.json"), "{}").unwrap();
    fs::write(release_b.join("b.json"), "{}").unwrap();
    let wanted = root.join("sv-lite.d");
    std::os::unix::fs::symlink(&release_a, &wanted).unwrap();
    let (mut poll, mut watch) = watching(std::slice::from_ref(&wanted));
    assert_eq!(watch.list(), vec![wanted.join("a.json")]);
    // `ln -sfn release-b sv-lite.d`, atomically: a new link renamed over the old one. Nothing
    // happens inside either directory; only the directory above sees it.
    let new_link = root.join("sv-lite.d.new");
    std::os::unix::fs::symlink(&release_b, &new_link).unwrap();
    fs::rename(&new_link, &wanted).unwrap();
    let known = [wanted.join("a.json")];
    let batches = run_until(&mut poll, &mut watch, &known, contains(&wanted.join("b.json")));
    assert_eq!(reported(&batches), BTreeSet::from([wanted.join("a.json"), wanted.join("b.json")]));
    // The old target is not watched any more.
    fs::write(release_a.join("stale.json"), "{}").unwrap();
    let later = release_b.join("later.json");
    fs::write(&later, "{}").unwrap();
    let batches = run_until(&mut poll, &mut watch, &[], contains(&wanted.join("later.json")));
    assert_eq!(paths(&batches), vec![vec![wanted.join("later.json")]]);
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn symlinks_and_hard_links_are_reported_on_creation_but_an_empty_new_file_waits_for_its_close() {
    let dir = test_dir("links");
    let outside = test_dir("links-outside");
    let target = outside.join("web.json");
    fs::write(&target, "{}").unwrap();
    let (mut poll, mut watch) = watching(std::slice::from_ref(&dir));
    let symlink = dir.join("web.json");
    std::os::unix::fs::symlink(&target, &symlink).unwrap();
    let hard_link = dir.join("db.json");
    fs::hard_link(&target, &hard_link).unwrap();
    let batches =
        run_until(&mut poll, &mut watch, &[], |reported| reported.contains(&symlink) && reported.contains(&hard_link));
    assert_eq!(reported_once(&batches), BTreeSet::from([hard_link.clone(), symlink.clone()]));

    // Created and still open, still empty: nothing yet. Closed: reported.
    let slow = dir.join("slow.json");
    let mut file = fs::File::create(&slow).unwrap();
    assert_eq!(run_for(&mut poll, &mut watch, &[], DEBOUNCE * 3), Vec::<PathBuf>::new());
    std::io::Write::write_all(&mut file, b"{}").unwrap();
    drop(file);
    let batches = run_until(&mut poll, &mut watch, &[], contains(&slow));
    assert_eq!(paths(&batches), vec![vec![slow.clone()]]);
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_dir_all(&outside);
}

#[test]
fn debounce_is_per_file_and_bounded() {
    let dir = test_dir("per-file");
    let mut watch = DirWatch::new(std::slice::from_ref(&dir), Instant::now());
    let busy = dir.join("busy.json");
    let quiet = dir.join("quiet.json");
    // Events are queued when close() returns, so handle_readable right after sees them; the
    // times passed are made up, to follow the debounce exactly.
    let t0 = Instant::now();
    fs::write(&busy, "1").unwrap();
    fs::write(&quiet, "1").unwrap();
    watch.handle_readable(t0);
    assert_eq!(watch.next_deadline(), Some(t0 + DEBOUNCE));
    let step = DEBOUNCE / 2;
    let mut now = t0;
    // `busy` gets an event every half debounce, `quiet` none: `quiet` is due on time.
    for round in 1.. {
        now = t0 + step * round;
        fs::write(&busy, round.to_string()).unwrap();
        watch.handle_readable(now);
        let due = watch.take_due(now, []);
        if now >= t0 + DEBOUNCE && now < t0 + DEBOUNCE + step {
            assert_eq!(due, vec![quiet.clone()], "at {:?}", now - t0);
        } else if now < t0 + MAX_DEBOUNCE {
            assert_eq!(due, Vec::<PathBuf>::new(), "at {:?}", now - t0);
        } else {
            // Still busy, but reported once its first event is MAX_DEBOUNCE old.
            assert_eq!(due, vec![busy.clone()], "at {:?}", now - t0);
            break;
        }
    }
    assert_eq!(now, t0 + MAX_DEBOUNCE);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_queue_overflow_rescans_everything() {
    let dir = test_dir("overflow");
    let mut watch = DirWatch::new(std::slice::from_ref(&dir), Instant::now());
    // Each new file is two events (IN_CREATE, IN_CLOSE_WRITE); the queue holds max_queued_events.
    let queue: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events").unwrap().trim().parse().unwrap();
    let count = (queue / 2 + 500).min(200_000);
    let mut files = BTreeSet::new();
    for index in 0..count {
        let file = dir.join(format!("{index}.json"));
        fs::write(&file, "{}").unwrap();
        files.insert(file);
    }
    let vanished = dir.join("vanished.json");
    let t0 = Instant::now();
    watch.handle_readable(t0);
    assert_eq!(watch.next_deadline(), Some(t0 + DEBOUNCE));
    let due: BTreeSet<PathBuf> = watch.take_due(t0 + DEBOUNCE, [vanished.as_path()]).into_iter().collect();
    let mut expected = files.clone();
    expected.insert(vanished);
    assert_eq!(due.len(), expected.len());
    assert!(due == expected, "the rescan missed files or reported others");
    assert_eq!(watch.next_deadline(), None);
    assert_eq!(watch.mode(), WatchMode::Inotify);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn rescan_mode_reports_every_file_and_the_known_ones_gone_at_each_tick() {
    let dir = test_dir("rescan");
    let kept = dir.join("kept.json");
    let deleted = dir.join("deleted.json");
    fs::write(&kept, "{}").unwrap();
    fs::write(&deleted, "{}").unwrap();
    let t0 = Instant::now();
    let mut watch = DirWatch::rescan_only(std::slice::from_ref(&dir), t0);
    assert_eq!(watch.mode(), WatchMode::Rescan);
    assert_eq!(watch.next_deadline(), Some(t0 + RESCAN_INTERVAL));
    let mut poll = Poll::new().unwrap();
    watch.register(poll.registry(), WATCH).unwrap();
    let added = dir.join("added.json");
    fs::write(&added, "{}").unwrap();
    fs::remove_file(&deleted).unwrap();
    fs::create_dir(dir.join("subdirectory.json")).unwrap();
    let known = [kept.as_path(), deleted.as_path()];
    assert_eq!(watch.take_due(t0 + RESCAN_INTERVAL - Duration::from_millis(1), known), Vec::<PathBuf>::new());
    let tick = t0 + RESCAN_INTERVAL;
    assert_eq!(watch.take_due(tick, known), vec![added.clone(), deleted.clone(), kept.clone()]);
    assert_eq!(watch.next_deadline(), Some(tick + RESCAN_INTERVAL));
    // Nothing comes through the poll in this mode: its registration was a no-op.
    let mut events = Events::with_capacity(4);
    poll.poll(&mut events, Some(Duration::from_millis(50))).unwrap();
    assert!(events.is_empty());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn set_dirs_moves_the_watch_and_rescans_at_once() {
    let first = test_dir("set-dirs-first");
    let second = test_dir("set-dirs-second");
    let old_file = first.join("old.json");
    fs::write(&old_file, "{}").unwrap();
    let new_file = second.join("new.json");
    fs::write(&new_file, "{}").unwrap();
    let (mut poll, mut watch) = watching(std::slice::from_ref(&first));
    let now = Instant::now();
    watch.set_dirs(std::slice::from_ref(&first), now);
    assert_eq!(watch.next_deadline(), None, "the same directories change nothing");
    watch.set_dirs(std::slice::from_ref(&second), now);
    assert_eq!(watch.next_deadline(), Some(now));
    // The new directory's files, and the known file no longer in the watched set.
    assert_eq!(watch.take_due(now, [old_file.as_path()]), vec![old_file.clone(), new_file.clone()]);
    fs::write(first.join("ignored.json"), "{}").unwrap();
    let later = second.join("later.json");
    fs::write(&later, "{}").unwrap();
    let batches = run_until(&mut poll, &mut watch, &[], contains(&later));
    assert_eq!(paths(&batches), vec![vec![later.clone()]]);
    let _ = fs::remove_dir_all(&first);
    let _ = fs::remove_dir_all(&second);
}

#[test]
fn a_configmap_update_through_a_swapped_data_symlink_reports_the_linked_files() {
    // The kubelet's layout: ..2026_1/web.yaml, ..data -> ..2026_1, web.yaml -> ..data/web.yaml.
    let dir = test_dir("configmap");
    fs::create_dir(dir.join("..2026_1")).expect("mkdir");
    fs::write(dir.join("..2026_1/web.yaml"), "cmd: sleep 300\n").expect("write");
    std::os::unix::fs::symlink("..2026_1", dir.join("..data")).expect("symlink");
    std::os::unix::fs::symlink("..data/web.yaml", dir.join("web.yaml")).expect("symlink");
    let (mut poll, mut watch) = watching(std::slice::from_ref(&dir));
    // An update: a new directory, a new symlink, renamed over `..data`. web.yaml's own link
    // does not change.
    fs::create_dir(dir.join("..2026_2")).expect("mkdir");
    fs::write(dir.join("..2026_2/web.yaml"), "cmd: sleep 301\n").expect("write");
    std::os::unix::fs::symlink("..2026_2", dir.join("..data_tmp")).expect("symlink");
    fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("rename");
    let web = dir.join("web.yaml");
    let batches = run_until(&mut poll, &mut watch, &[], |reported| reported.contains(&web));
    assert!(batches.iter().any(|batch| batch.paths.contains(&web)));
    let _ = fs::remove_dir_all(&dir);
}
