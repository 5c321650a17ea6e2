//! The main config's `include:` and a program's `schedule`, `cron`, `timeout` and `overlap`.

use std::path::{Path, PathBuf};

use super::*;
use crate::spec::Overlap;

#[test]
fn include_takes_a_directory_or_a_list_relative_to_the_config_file() {
    let config = from_yaml_str("include: services.d\n", "/etc/sv/sv-lite.yaml").unwrap();
    assert_eq!(config.include, [PathBuf::from("/etc/sv/services.d")]);
    // Spellings of one directory count once; the first one written keeps its place.
    let text = "include:\n  - /srv/services\n  - more/\n  - ./more\n  - /srv//services/\n  - /etc/sv/more\n";
    let config = from_yaml_str(text, "/etc/sv/sv-lite.yaml").unwrap();
    assert_eq!(config.include, [PathBuf::from("/srv/services"), PathBuf::from("/etc/sv/more")]);
    // Without a directory in the origin, relative stays relative; `from_yaml_str_in_dir` gives one.
    assert_eq!(from_yaml_str("include: s\n", "sv.yaml").unwrap().include, [PathBuf::from("s")]);
    let config = from_yaml_str_in_dir("include: [s, /abs]\n", "sv.yaml", Path::new("/work")).unwrap();
    assert_eq!(config.include, [PathBuf::from("/work/s"), PathBuf::from("/abs")]);
    assert!(load_ok("include:\n").include.is_empty());
    assert!(load_ok("include: []\n").include.is_empty());
}

#[test]
fn include_errors_point_at_the_bad_item() {
    let error = one_error("include: 5\n");
    assert_eq!(
        error.to_string(),
        "test.yaml:1:10: include: expected a directory path or a list of them, found an integer 5"
    );
    let error = one_error("include:\n  - /srv/a\n  - {dir: b}\n");
    assert_eq!((error.path.as_str(), error.line), ("include[1]", Some(3)));
    assert_eq!(error.message, "expected a directory path or a list of them, found a mapping");
    let error = one_error("include: \"\"\n");
    assert_eq!(error.message, "a directory path must not be empty");
    assert_eq!(one_error("includes: /srv\n").message, "unknown key `includes`; did you mean `include`?");
}

#[test]
fn load_resolves_include_against_the_config_files_directory() {
    let directory = std::env::temp_dir().join(format!("sv-lite-config-load-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join("sv-lite.yaml");
    std::fs::write(&path, "include: [services.d, /srv/other]\n").unwrap();
    let config = load(&path).unwrap();
    std::fs::remove_dir_all(&directory).unwrap();
    assert_eq!(config.include, [directory.join("services.d"), PathBuf::from("/srv/other")]);
}

#[test]
fn with_include_a_dependency_may_be_defined_by_a_service_file() {
    let text = "programs:\n  web:\n    cmd: web\n    depends_on: {db: ready}\n";
    assert_eq!(one_error(text).message, "unknown program `db` (no program or service has that name)");
    let config = load_ok(&format!("include: /etc/sv.d\n{text}"));
    assert_eq!(config.programs[0].depends_on[0].program, "db");
    // Self-dependencies and cycles need no other file to be wrong.
    let error = one_error("include: /etc/sv.d\nprograms:\n  web: {cmd: web, depends_on: {web: ready}}\n");
    assert_eq!(error.message, "a program cannot depend on itself");
}

#[test]
fn timeout_and_overlap_need_a_schedule() {
    assert_eq!(
        web_error("timeout: 2h"),
        (
            "programs.web.timeout".to_string(),
            Some(4),
            "only scheduled programs have a run timeout; add `schedule:` (or `cron:`)".to_string()
        )
    );
    assert_eq!(
        web_error("overlap: kill").2,
        "only scheduled programs have `overlap`; add `schedule:` (or `cron:`)".to_string()
    );
    assert_eq!(web_error("schedual: every 5m").2, "unknown key `schedual`; did you mean `schedule`?");
    assert_eq!(web_error("crontab: '* * * * *'").2, "unknown key `crontab`; did you mean `cron`?");
}

// These need no entry to parse: a schedule of the wrong type is reported without parsing.
#[test]
fn schedule_type_errors_and_what_does_not_go_with_a_schedule() {
    assert_eq!(
        web_error("schedule: 5").2,
        "expected a schedule entry such as \"every 5m\" or a list of them, found an integer 5"
    );
    assert_eq!(web_error("schedule: []").2, "the schedule is empty; give at least one entry, such as \"every 5m\"");
    assert_eq!(
        web_error("cron: ['*/5 * * * *']").2,
        "expected a cron expression such as \"*/5 * * * *\", found a list"
    );
    let text = "programs:\n  web:\n    cmd: web\n    schedule: [5]\n    timeout: 0s\n    overlap: sometimes\n    pid_file: /run/web.pid\n";
    let found: Vec<(String, Option<usize>, String)> =
        errors(text).into_iter().map(|error| (error.path, error.line, error.message)).collect();
    let expected = [
        ("programs.web.schedule[0]", 4, "expected a schedule entry such as \"every 5m\", found an integer 5"),
        ("programs.web.timeout", 5, "must be greater than zero"),
        (
            "programs.web.overlap",
            6,
            "expected skip (let the running one finish) or kill (stop it and start anew), found \"sometimes\"",
        ),
        (
            "programs.web.pid_file",
            7,
            "a scheduled program cannot have a `pid_file`: each run must be a process sv-lite waits for (run the \
             daemon in the foreground)",
        ),
    ];
    let expected: Vec<(String, Option<usize>, String)> = expected
        .iter()
        .map(|(path, line, message)| ((*path).to_string(), Some(*line), (*message).to_string()))
        .collect();
    assert_eq!(found, expected);
    let error = errors("programs:\n  web: {cmd: web, schedule: 5, overlap: kil}\n");
    assert!(error.iter().any(|error| error.message.ends_with("did you mean `kill`?")), "{error:#?}");
}

#[test]
fn schedule_cron_timeout_and_overlap_are_read() {
    let spec = web("schedule: every 5m offset 1m");
    let schedule = spec.schedule.unwrap();
    let texts: Vec<&str> = schedule.when.entries().iter().map(crate::schedule::Entry::text).collect();
    assert_eq!(texts, ["every 5m offset 1m"]);
    assert_eq!((schedule.timeout, schedule.overlap), (None, Overlap::Skip));

    let text = "programs:\n  backup:\n    cmd: backup\n    schedule:\n      - every workday offset 8h30m\n      - \
                every monday every hour offset 30m\n    cron: '*/5 * * * *'\n    timeout: 2h\n    overlap: kill\n    \
                numprocs: 2\n";
    let config = load_ok(text);
    let spec = &config.programs[0];
    let schedule = spec.schedule.as_ref().unwrap();
    let texts: Vec<&str> = schedule.when.entries().iter().map(crate::schedule::Entry::text).collect();
    assert_eq!(texts, ["every workday offset 8h30m", "every monday every hour offset 30m", "*/5 * * * *"]);
    assert_eq!((schedule.timeout, schedule.overlap, spec.numprocs), (Some(secs(7200)), Overlap::Kill, 2));
    assert!(web("cron: '0 1 * * *'").schedule.is_some());
}

#[test]
fn a_bad_schedule_entry_points_at_the_character() {
    // `schedule: every 5x`: the value starts at column 15, and the parser's column is added.
    let error = one_error(&with("schedule: every 5x"));
    assert_eq!((error.path.as_str(), error.line), ("programs.web.schedule", Some(4)));
    let column = error.column.unwrap();
    assert!((15..=15 + "every 5x".len()).contains(&column), "{error}");
    assert!(error.message.starts_with("invalid schedule entry \"every 5x\": expected "), "{error}");
    assert!(!error.message.contains("at column"), "{error}");
    // Quoted, and as a list item: one more column for the quote.
    let error = one_error(&with("schedule:\n      - every 5m\n      - \"every 5x\""));
    assert_eq!((error.path.as_str(), error.line), ("programs.web.schedule[1]", Some(6)));
    assert!((10..=10 + "every 5x".len()).contains(&error.column.unwrap()), "{error}");
    // In flow style the column cannot be known: the entry's own column is in the message.
    let error = one_error(&with("schedule: [every 5m, every 5x]"));
    assert!(error.message.starts_with("invalid schedule entry \"every 5x\": at column "), "{error}");
    let error = one_error(&with("cron: '61 * * * *'"));
    assert_eq!(error.path, "programs.web.cron");
    assert!(error.message.starts_with("invalid cron expression \"61 * * * *\": expected "), "{error}");
    assert!((12..=12 + "61 * * * *".len()).contains(&error.column.unwrap()), "{error}");
}
