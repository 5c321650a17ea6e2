//! Start order by `depends_on`: WAITING, conditions, failed dependencies, ordered stops.

use super::*;
use crate::spec::{Condition, Dependency};

fn needs(program: &str, condition: Condition) -> Dependency {
    Dependency { program: program.to_string(), condition, restart: false }
}

fn db() -> ProgramSpec {
    program("db", |p| p.starttime = secs(2))
}

fn web(condition: Condition) -> ProgramSpec {
    program("web", |p| {
        p.starttime = Duration::ZERO;
        p.depends_on = vec![needs("db", condition)];
    })
}

impl Harness {
    fn detail(&self, name: &str) -> String {
        let rows = self.supervisor.status(self.now, &[name.to_string()]);
        rows.first().and_then(|row| row.detail.clone()).unwrap_or_default()
    }
}

#[test]
fn a_dependent_waits_until_its_dependency_is_ready_then_starts() {
    let mut h = Harness::new(vec![db(), web(Condition::Ready)]);
    h.expect("spawn db:0");
    assert_eq!(h.state("web:0"), "WAITING");
    assert_eq!(h.detail("web:0"), "waiting for db: ready");
    h.spawned("db:0", 10);
    h.expect("");
    assert_eq!(h.state("web:0"), "WAITING", "db is STARTING, not ready");
    h.advance(secs(2));
    assert_eq!(h.state("db:0"), "RUNNING");
    h.expect("spawn web:0");
    assert!(h.logged("web:0: dependencies met; starting"));
}

#[test]
fn started_is_met_as_soon_as_the_dependency_has_a_process() {
    let mut h = Harness::new(vec![db(), web(Condition::Started)]);
    h.expect("spawn db:0");
    h.spawned("db:0", 10);
    h.expect("spawn web:0");
}

#[test]
fn a_completed_one_shot_releases_its_dependents_and_a_failed_one_blocks_them() {
    let migrate = program("migrate", |p| {
        p.autorestart = AutoRestart::Never;
        p.starttime = Duration::ZERO;
    });
    let mut h = Harness::new(vec![migrate.clone(), web_on("migrate", Condition::Completed)]);
    h.expect("spawn migrate:0");
    h.spawned("migrate:0", 10);
    assert_eq!(h.state("web:0"), "WAITING");
    h.exited(10, ExitStatus::Exited(0));
    h.expect("spawn web:0");

    let mut h = Harness::new(vec![migrate, web_on("migrate", Condition::Completed)]);
    h.expect("spawn migrate:0");
    h.spawned("migrate:0", 10);
    h.exited(10, ExitStatus::Exited(3));
    h.expect("");
    assert_eq!(h.state("web:0"), "WAITING");
    assert_eq!(h.detail("web:0"), "migrate:0 did not complete: it exited with exit status 3");
    assert_eq!(h.service("web"), "FAILED", "blocked for good");
}

fn web_on(program: &str, condition: Condition) -> ProgramSpec {
    self::program("web", |p| {
        p.starttime = Duration::ZERO;
        p.depends_on = vec![needs(program, condition)];
    })
}

#[test]
fn a_fatal_dependency_leaves_its_dependents_waiting_with_the_reason() {
    let failing = program("db", |p| {
        p.startretries = 0;
        p.starttime = secs(1);
    });
    let mut h = Harness::new(vec![failing, web(Condition::Ready)]);
    h.expect("spawn db:0");
    h.request(1, Request::Start { targets: targets(&["web"]), wait: true });
    h.spawned("db:0", 10);
    h.exited(10, ExitStatus::Exited(1));
    assert_eq!(h.state("db:0"), "FATAL");
    assert_eq!(h.state("web:0"), "WAITING");
    assert!(h.detail("web:0").starts_with("db:0 is FATAL"), "{}", h.detail("web:0"));
    // The `ctl start web` that was waiting gets its answer: web cannot come up.
    assert!(h.actions().contains("reply 1 web:0:FAIL:WAITING: db:0 is FATAL"));
}

#[test]
fn ctl_start_starts_what_is_needed_and_ctl_stop_of_a_dependency_leaves_dependents_alone() {
    let lazy_db = program("db", |p| {
        p.autostart = false;
        p.starttime = Duration::ZERO;
    });
    let lazy_web = program("web", |p| {
        p.autostart = false;
        p.starttime = Duration::ZERO;
        p.depends_on = vec![needs("db", Condition::Ready)];
    });
    let mut h = Harness::new(vec![lazy_db, lazy_web]);
    h.expect("");
    h.request(1, Request::Start { targets: targets(&["web"]), wait: false });
    h.expect("spawn db:0\nreply 1 web:0:ok:starting");
    assert!(h.logged("db:0: starting it, web needs it"));
    h.spawned("db:0", 10);
    h.expect("spawn web:0");
    h.spawned("web:0", 20);
    h.request(2, Request::Stop { targets: targets(&["db"]), wait: false, timeout: None });
    h.expect("kill -10 TERM\nreply 2 db:0:ok:stopping");
    assert_eq!(h.state("web:0"), "RUNNING");
}

#[test]
fn shutdown_stops_dependents_level_by_level() {
    let a = program("a", |p| p.starttime = Duration::ZERO);
    let b = program("b", |p| {
        p.starttime = Duration::ZERO;
        p.depends_on = vec![needs("a", Condition::Ready)];
    });
    let c = program("c", |p| {
        p.starttime = Duration::ZERO;
        p.depends_on = vec![needs("b", Condition::Ready)];
    });
    let mut h = Harness::new(vec![a, b, c]);
    h.expect("spawn a:0");
    h.spawned("a:0", 1);
    h.expect("spawn b:0");
    h.spawned("b:0", 2);
    h.expect("spawn c:0");
    h.spawned("c:0", 3);
    h.input(Input::Shutdown { conn: None });
    // Only the top level first.
    h.expect("kill -3 TERM");
    h.exited(3, ExitStatus::Exited(0));
    h.expect("kill -2 TERM");
    // A stubborn middle level is killed after its stoptime; only then the bottom one.
    h.advance(secs(10));
    h.expect("kill -2 KILL");
    h.exited(2, KILLED);
    h.expect("kill -1 TERM");
    h.exited(1, ExitStatus::Exited(0));
    h.expect("exit 0");
}

#[test]
fn restart_of_a_dependency_with_restart_true_stops_the_dependent_first_and_starts_it_after() {
    let bound_web = program("web", |p| {
        p.starttime = Duration::ZERO;
        p.depends_on = vec![Dependency { program: "db".to_string(), condition: Condition::Ready, restart: true }];
    });
    let mut h = Harness::new(vec![db(), bound_web]);
    h.expect("spawn db:0");
    h.spawned("db:0", 10);
    h.advance(secs(2));
    h.expect("spawn web:0");
    h.spawned("web:0", 20);
    h.request(1, Request::Restart { targets: targets(&["db"]), wait: false });
    // The dependent goes first; db waits for it.
    assert_eq!(h.actions(), "kill -20 TERM\nreply 1 db:0:ok:restarting");
    h.exited(20, ExitStatus::Exited(0));
    assert_eq!(h.actions(), "kill -10 TERM");
    assert_eq!(h.state("web:0"), "WAITING");
    h.exited(10, ExitStatus::Exited(0));
    h.expect("spawn db:0");
    h.spawned("db:0", 11);
    h.expect("");
    h.advance(secs(2));
    h.expect("spawn web:0");
}

#[test]
fn a_reload_that_changes_only_the_graph_restarts_nothing() {
    let mut h = Harness::new(vec![db(), web(Condition::Started)]);
    h.expect("spawn db:0");
    h.spawned("db:0", 10);
    h.expect("spawn web:0");
    h.spawned("web:0", 20);
    let config = Config { programs: vec![db(), web(Condition::Ready)], ..Config::default() };
    h.input(Input::Reload { conn: None, result: Ok(config) });
    h.expect("");
    assert_eq!(h.state("web:0"), "RUNNING");
}
