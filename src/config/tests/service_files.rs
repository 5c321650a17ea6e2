//! Service files: service_manager's JSON (with comments), one-program YAML, and the JSON parser
//! under them.

use std::path::Path;

use super::*;
use crate::config::jsonc;
use crate::config::service_file::{self, kind, FileKind};
use crate::spec::Overlap;

/// The reference's first example, as written.
const MASTERMON: &str = r#"{
  "name": "mastermon",
  "root_directory": "/opt/infra-python",
  "tool": "infra.services.mastermon",
  "args": [
    "--url", "http://build.chromium.org/p/chromium",
    "--ts-mon-endpoint", "file:///tmp/metrics"
  ],
  "stop_time": 5
}
"#;

/// The reference's cron example, as written: comments, and no comma after `[]` or `]`.
const CLEANUP_LOGS: &str = r#"{
  "name": "cleanup_logs",
  "root_directory": "/opt/infra-python",
  "tool": "infra.tools.cleanup_logs",
  // alternative: "cmd": "./run.py infra.tools.cleanup_logs",
  "args": []
  // All times are UTC
  "scheduling": [
      "every month offset 2d8h30m",
      "every workday offset 8h30m",
      "every monday every hour offset 30m",
      "every 5m offset 1m"
  ]
  "timeout": "2h"
}
"#;

fn parse_ok(file_name: &str, text: &str) -> ProgramSpec {
    let path = Path::new("/etc/infra-services").join(file_name);
    service_file::parse(&path, text).unwrap_or_else(|errors| panic!("unexpected errors:\n{errors}"))
}

/// Every error of `text` in `f.json` (or the given name), as displayed.
fn file_errors(file_name: &str, text: &str) -> Vec<String> {
    match service_file::parse(Path::new(file_name), text) {
        Ok(spec) => panic!("expected errors, got {spec:#?}"),
        Err(errors) => errors.errors.iter().map(ToString::to_string).collect(),
    }
}

fn json_error(text: &str) -> String {
    let errors = file_errors("f.json", text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap()
}

#[test]
fn file_kinds_by_name() {
    assert_eq!(kind("mastermon.json"), FileKind::Json);
    assert_eq!(kind("web.yaml"), FileKind::Yaml);
    assert_eq!(kind("web.yml"), FileKind::Yaml);
    for ignored in [
        ".web.json",
        "web.json~",
        "web.json.swp",
        ".web.json.swp",
        "web.tmp",
        "web.json.tmp",
        "web.conf",
        "README",
        "web.JSON",
        "#web.json#",
    ] {
        assert!(matches!(kind(ignored), FileKind::Ignored(_)), "{ignored}");
    }
    assert_eq!(kind("web.json~"), FileKind::Ignored("an editor backup"));
}

#[test]
fn mastermon_runs_the_tool_with_run_py_in_its_root_directory() {
    let spec = parse_ok("mastermon.json", MASTERMON);
    assert_eq!(spec.name, "mastermon");
    assert_eq!(
        spec.argv,
        strings(&[
            "/opt/infra-python/run.py",
            "infra.services.mastermon",
            "--url",
            "http://build.chromium.org/p/chromium",
            "--ts-mon-endpoint",
            "file:///tmp/metrics",
        ])
    );
    assert_eq!(spec.workingdir, Some(PathBuf::from("/opt/infra-python")));
    assert_eq!(spec.stoptime, secs(5));
    // service_manager keeps services running; the rest are sv-lite's defaults.
    assert_eq!(spec.autorestart, AutoRestart::Always);
    let expected = ProgramSpec {
        argv: spec.argv.clone(),
        workingdir: spec.workingdir.clone(),
        stoptime: secs(5),
        autorestart: AutoRestart::Always,
        ..ProgramSpec::with_defaults("mastermon")
    };
    assert_eq!(spec, expected);
}

#[test]
fn cleanup_logs_as_written_is_a_missing_comma() {
    let error = file_errors("cleanup_logs.json", CLEANUP_LOGS);
    assert_eq!(
        error,
        ["cleanup_logs.json:8:3: missing comma? expected `,` or `}` after the value of \"args\", found \"scheduling\""]
    );
    // With that comma added, the next one missing is found.
    let one_comma = CLEANUP_LOGS.replace("\"args\": []", "\"args\": [],");
    assert_eq!(
        file_errors("cleanup_logs.json", &one_comma),
        ["cleanup_logs.json:14:3: missing comma? expected `,` or `}` after the value of \"scheduling\", found \"timeout\""]
    );
}

#[test]
fn cleanup_logs_with_its_commas_is_a_scheduled_program() {
    let text = CLEANUP_LOGS.replace("\"args\": []", "\"args\": [],").replace("  ]\n", "  ],\n");
    let spec = parse_ok("cleanup_logs.json", &text);
    assert_eq!(spec.argv, strings(&["/opt/infra-python/run.py", "infra.tools.cleanup_logs"]));
    assert_eq!(spec.workingdir, Some(PathBuf::from("/opt/infra-python")));
    let schedule = spec.schedule.as_ref().unwrap();
    let texts: Vec<&str> = schedule.when.entries().iter().map(crate::schedule::Entry::text).collect();
    assert_eq!(
        texts,
        [
            "every month offset 2d8h30m",
            "every workday offset 8h30m",
            "every monday every hour offset 30m",
            "every 5m offset 1m"
        ]
    );
    assert_eq!((schedule.timeout, schedule.overlap), (Some(secs(7200)), Overlap::Skip));
    // A run that ends waits for its next fire time.
    assert_eq!(spec.autorestart, AutoRestart::Never);
    assert!(parse_ok("x.json", r#"{"name": "x", "cmd": "x", "scheduling": "every 1m"}"#).schedule.is_some());
}

#[test]
fn a_bad_scheduling_entry_points_into_its_string() {
    // The string's quote is at column 42: its first character at 43.
    let error = json_error(r#"{"name": "x", "cmd": "x", "scheduling": ["every 5x"]}"#);
    let (position, message) = error.split_once(": scheduling[0]: ").unwrap();
    let column: usize = position.rsplit(':').next().unwrap().parse().unwrap();
    assert!((43..=43 + "every 5x".len()).contains(&column), "{error}");
    assert!(message.starts_with("invalid schedule entry \"every 5x\": expected "), "{error}");
    // With an escape in the string, the entry's own column is in the message.
    let error = json_error(r#"{"name": "x", "cmd": "x", "scheduling": ["every\u0020 5x"]}"#);
    assert!(
        error.starts_with("f.json:1:42: scheduling[0]: invalid schedule entry \"every  5x\": at column "),
        "{error}"
    );
}

#[test]
fn scheduling_type_errors_and_timeout_without_scheduling() {
    assert_eq!(
        json_error(r#"{"name": "x", "cmd": "x", "timeout": "2h"}"#),
        "f.json:1:27: timeout: only scheduled programs have a run timeout; add `scheduling`"
    );
    assert_eq!(
        json_error(r#"{"name": "x", "cmd": "x", "scheduling": 5}"#),
        "f.json:1:41: scheduling: expected a list of schedule entries such as [\"every 5m\"], found a number 5"
    );
    assert_eq!(
        json_error(r#"{"name": "x", "cmd": "x", "scheduling": []}"#),
        "f.json:1:41: scheduling: `scheduling` is empty; give at least one entry, or remove it for a service that \
         runs all the time"
    );
    assert_eq!(
        json_error(r#"{"name": "x", "cmd": "x", "scheduling": [null]}"#),
        "f.json:1:42: scheduling[0]: expected a schedule entry such as \"every 5m\", found null"
    );
}

#[test]
fn cmd_is_split_like_a_shell_and_args_follow_it() {
    let text = r#"{"name": "cleanup", "root_directory": "/opt/infra-python",
        "cmd": "./run.py 'infra.tools.cleanup logs'", "args": ["--dry-run", 3, true]}"#;
    let spec = parse_ok("cleanup.json", text);
    assert_eq!(spec.argv, strings(&["./run.py", "infra.tools.cleanup logs", "--dry-run", "3", "true"]));
    assert_eq!(spec.workingdir, Some(PathBuf::from("/opt/infra-python")));
    let spec = parse_ok("x.json", r#"{"name": "x", "cmd": ["/bin/echo", "a b"], "stop_time": 2.5}"#);
    assert_eq!(
        (spec.argv, spec.workingdir, spec.stoptime),
        (strings(&["/bin/echo", "a b"]), None, Duration::from_millis(2500))
    );
    // A relative root_directory is the file's directory's.
    let spec = parse_ok("x.json", r#"{"name": "x", "root_directory": "infra", "tool": "t", "stop_time": "1m"}"#);
    assert_eq!(spec.argv, strings(&["/etc/infra-services/infra/run.py", "t"]));
    assert_eq!(spec.stoptime, secs(60));
}

#[test]
fn comments_of_both_kinds_and_trailing_commas_are_accepted() {
    let text = "/* service */ {\n  \"name\": \"x\", // the name\n  /* several\n     lines */\n  \"cmd\": [\"/bin/x\", \"a\",],\n  \"args\": [\"b\"],\n}\n// end\n";
    assert_eq!(parse_ok("x.json", text).argv, strings(&["/bin/x", "a", "b"]));
    // `//` and `/*` inside strings are text.
    let spec = parse_ok("x.json", r#"{"name": "x", "cmd": ["/bin/x", "http://a/*b*/"]}"#);
    assert_eq!(spec.argv[1], "http://a/*b*/");
}

#[test]
fn strings_take_every_json_escape() {
    let text = r#"{"name": "x", "cmd": ["/bin/echo", "q\"b\\s\/f\b\f\n\r\t\u00e9\ud83d\ude00"]}"#;
    assert_eq!(parse_ok("x.json", text).argv[1], "q\"b\\s/f\u{8}\u{c}\n\r\t\u{e9}\u{1f600}");
}

#[test]
fn json_strings_are_literal_not_templates() {
    let spec = parse_ok(
        "x.json",
        r#"{"name": "x", "cmd": ["/bin/date", "+%s", "%(name)s"], "args": ["100%", "{{.State}}"], "env": {"F": "%(name)s"}}"#,
    );
    let launch = spec.launch(0, &[]);
    assert_eq!(launch.argv, ["/bin/date", "+%s", "%(name)s", "100%", "{{.State}}"]);
    assert_eq!(launch.env, [("F".to_string(), "%(name)s".to_string())]);
    let error = json_error(r#"{"name": "x", "cmd": "x", "args": ["--port={{ports[http]}}"]}"#);
    assert!(error.starts_with("f.json:1:36: args[0]: unknown port `http`"), "{error}");
    assert!(
        error.ends_with("a JSON service has no ports, and `{{...}}` port templates are for YAML service files"),
        "{error}"
    );
}

#[test]
fn env_takes_strings_numbers_and_booleans() {
    let spec = parse_ok("x.json", r#"{"name": "x", "cmd": "x", "env": {"B": "2", "A": 1, "C": true}}"#);
    assert_eq!(
        spec.env,
        [("A".to_string(), "1".to_string()), ("B".to_string(), "2".to_string()), ("C".to_string(), "true".to_string())]
    );
    assert_eq!(
        json_error(r#"{"name": "x", "cmd": "x", "env": {"A": []}}"#),
        "f.json:1:40: env.A: expected a string, number or boolean, found a list"
    );
    assert_eq!(
        json_error(r#"{"name": "x", "cmd": "x", "env": ["A=1"]}"#),
        "f.json:1:34: env: expected an object of variable names to values, found a list"
    );
}

#[test]
fn wrong_types_are_reported_at_their_values() {
    let text = "{\n  \"name\": \"x\",\n  \"cmd\": \"/bin/x\",\n  \"stop_time\": \"soon\",\n  \"args\": \"x\"\n}\n";
    assert_eq!(
        file_errors("f.json", text),
        [
            "f.json:4:16: stop_time: invalid duration \"soon\" (expected e.g. \"5s\", \"250ms\")",
            "f.json:5:11: args: expected a list of strings, found a string \"x\"",
        ]
    );
    assert_eq!(
        json_error(r#"{"name": 5, "cmd": "x"}"#),
        "f.json:1:10: name: expected a program name, found a number 5"
    );
    assert_eq!(
        json_error(r#"{"name": "x", "cmd": "x", "stop_time": -1}"#),
        "f.json:1:40: stop_time: negative duration -1 (expected zero or more seconds)"
    );
    assert_eq!(
        json_error(r#"{"name": "x", "cmd": "x", "args": [{}]}"#),
        "f.json:1:36: args[0]: expected a string, found an object"
    );
    assert_eq!(json_error(r#"{"name": "x", "cmd": ""}"#), "f.json:1:22: cmd: the command is empty");
    assert_eq!(json_error("[1]"), "f.json:1:1: expected an object with the service's settings, found a list");
}

#[test]
fn unknown_keys_get_a_suggestion() {
    let text = "{\n  \"name\": \"x\",\n  \"cmd\": \"/bin/x\",\n  \"stop_tme\": 5,\n  \"autorestart\": \"never\",\n  \"bogus\": 1,\n  \"name\": \"y\"\n}\n";
    let errors = file_errors("f.json", text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert_eq!(errors[0], "f.json:4:3: stop_tme: unknown key `stop_tme`; did you mean `stop_time`?");
    assert!(
        errors[1].starts_with(
            "f.json:5:3: autorestart: unknown key `autorestart`: a JSON service file has service_manager's keys"
        ),
        "{}",
        errors[1]
    );
    assert!(errors[1].ends_with("write a .yaml service file for sv-lite's program settings"), "{}", errors[1]);
    assert!(
        errors[2].starts_with("f.json:6:3: bogus: unknown key `bogus` (expected one of: name, root_directory, tool"),
        "{}",
        errors[2]
    );
    assert_eq!(errors[3], "f.json:7:3: name: duplicate key `name` (first at line 2)");
}

#[test]
fn tool_or_cmd_exactly_one_and_tool_needs_root_directory() {
    let text =
        "{\n  \"name\": \"x\",\n  \"root_directory\": \"/opt\",\n  \"tool\": \"a.b\",\n  \"cmd\": \"/bin/x\"\n}\n";
    assert_eq!(json_error(text), "f.json:5:3: cmd: give either `tool` or `cmd`, not both");
    assert_eq!(
        json_error(r#"{"name": "x", "root_directory": "/opt"}"#),
        "f.json:1:1: missing `tool` (a module that ROOT/run.py runs) or `cmd` (the command to run)"
    );
    assert_eq!(
        json_error(r#"{"name": "x", "tool": "a.b"}"#),
        "f.json:1:15: tool: `tool` needs `root_directory` (the directory that holds run.py)"
    );
    assert_eq!(json_error(r#"{"cmd": "x"}"#), "f.json:1:1: missing required key `name` (the program's name)");
    // A bad root_directory is reported once, where it is written.
    assert_eq!(
        json_error(r#"{"name": "x", "root_directory": 5, "tool": "a.b"}"#),
        "f.json:1:33: root_directory: expected a directory path, found a number 5"
    );
    let error = json_error(r#"{"name": "web:0", "cmd": "x"}"#);
    assert!(error.starts_with("f.json:1:10: name: invalid program name \"web:0\": `:` is reserved"), "{error}");
}

#[test]
fn json_syntax_errors_have_positions() {
    let cases = [
        ("", "1:1: the file is empty: expected a JSON object"),
        (
            "{\"name\": \"x",
            "1:10: unterminated string: a string must end on the line it starts (write \\n for a newline)",
        ),
        (
            r#"{"name": "a\qb"}"#,
            "1:12: invalid escape `\\q` (JSON knows \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX)",
        ),
        (r#"{"name": "\u12"}"#, "1:11: invalid escape `\\u12\"}`: \\u takes exactly four hex digits"),
        (r#"{"a": "\ud800"}"#, "1:8: \\ud800 is the first half of a surrogate pair, but no \\uXXXX follows"),
        (r#"{"a": "\udc00"}"#, "1:8: \\udc00 is the second half of a surrogate pair, with no first half"),
        (
            "{\"a\": \"x\ty\"}",
            "1:9: control character U+0009 in a string; write it as an escape such as \\t or \\u0009",
        ),
        ("{name: 1}", "1:2: keys must be strings in double quotes, found `name`"),
        ("{\"a\": 'x'}", "1:7: strings must be in double quotes, found `'`"),
        ("{\"a\": 5s}", "1:7: invalid number `5s` (a duration is a string: \"5s\")"),
        ("{\"a\": 01}", "1:7: invalid number `01`"),
        (
            "{\"a\": tru}",
            "1:7: expected a value, found `tru` (strings must be in double quotes; the words are true, false and null)",
        ),
        ("{\"a\" 1}", "1:6: expected `:` after the key \"a\", found `1`"),
        ("{\"a\": 1 \"b\": 2}", "1:9: missing comma? expected `,` or `}` after the value of \"a\", found \"b\""),
        ("{\"a\": 1 ]", "1:9: expected `,` or `}` after the value of \"a\", found `]`"),
        ("{\"a\": [1 2]}", "1:10: missing comma? expected `,` or `]` after item 1 of the list, found `2`"),
        ("{\"a\": [1,", "1:10: expected a value or `]`, found end of file (the `[` at 1:7 is not closed)"),
        (
            "{\n\"a\": 1",
            "2:7: expected `,` or `}` after the value of \"a\", found end of file (the `{` at 1:1 is not closed)",
        ),
        ("{,}", "1:2: expected a key (a string in double quotes) or `}`, found `,`"),
        ("{\"a\": [,]}", "1:8: expected a value, found `,`"),
        ("{} x", "1:4: expected the end of the file after the top-level value, found `x`"),
        ("{} /* x", "1:4: unterminated comment: `/*` without a closing `*/`"),
        ("{} / x", "1:4: expected a comment (`//` or `/*`) after `/`, found ` `"),
    ];
    for (text, expected) in cases {
        assert_eq!(json_error(text), format!("f.json:{expected}"), "{text:?}");
    }
}

#[test]
fn nesting_is_bounded_and_columns_count_characters() {
    let deep = format!("{}{}", "[".repeat(64), "]".repeat(64));
    assert!(jsonc::parse(&deep).is_ok());
    let too_deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
    let error = jsonc::parse(&too_deep).unwrap_err();
    assert_eq!((error.at.line, error.at.column), (1, 65));
    assert_eq!(error.message, "objects and lists are nested more than 64 deep");
    let error = jsonc::parse(&"[".repeat(100_000)).unwrap_err();
    assert_eq!(error.at.column, 65);
    // A multi-byte character is one column.
    let error = jsonc::parse("{\"é\": x}").unwrap_err();
    assert_eq!((error.at.line, error.at.column), (1, 7));
    // A byte-order mark is skipped.
    assert!(jsonc::parse("\u{feff}{}").is_ok());
}

#[test]
fn files_over_one_mebibyte_are_rejected() {
    let text = format!("{{\"name\": \"x\", \"cmd\": \"x\"}}{}", " ".repeat(1024 * 1024));
    assert_eq!(
        file_errors("f.json", &text),
        [format!("f.json: the file is larger than 1 MiB ({} bytes); a service file holds one program", text.len())]
    );
    assert_eq!(file_errors("notes.txt", "x"), ["notes.txt: not a service file (not named *.json, *.yaml or *.yml)"]);
}

#[test]
fn a_yaml_service_file_is_one_program_named_by_name_or_its_stem() {
    let spec = parse_ok("web.yaml", "cmd: /bin/web --port 80\nnumprocs: 2\nautorestart: always\n");
    assert_eq!((spec.name.as_str(), spec.numprocs, spec.autorestart), ("web", 2, AutoRestart::Always));
    assert_eq!(spec.argv, strings(&["/bin/web", "--port", "80"]));
    let spec = parse_ok("web.yml", "name: api\ncmd: [/bin/api]\ndepends_on: {db: ready}\n");
    assert_eq!(spec.name, "api");
    assert_eq!(spec.depends_on[0].program, "db");
    // A name that could not come from the file's name.
    assert_eq!(parse_ok("-web.yaml", "name: web\ncmd: x\n").name, "web");
    assert_eq!(parse_ok("web.service.yaml", "cmd: x\n").name, "web.service");
}

#[test]
fn yaml_service_file_errors_have_lines_columns_and_key_paths() {
    let text = "cmd: /bin/web\nstopsignal: TERMINATE\nnam: x\nenv:\n  A: [1]\n";
    let errors = file_errors("/etc/sv.d/web.yaml", text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].starts_with("/etc/sv.d/web.yaml:2:13: stopsignal: unknown signal \"TERMINATE\""),
        "{}",
        errors[0]
    );
    assert_eq!(errors[1], "/etc/sv.d/web.yaml:3:1: nam: unknown key `nam`; did you mean `name`?");
    assert_eq!(errors[2], "/etc/sv.d/web.yaml:5:6: env.A: expected a string, number or boolean, found a list");
    assert_eq!(
        file_errors("web.yaml", "# web\nnumprocs: 2\n"),
        ["web.yaml:2:1: missing required key `cmd` (the command to run)"]
    );
    assert_eq!(
        file_errors("-web.yaml", "cmd: x\n"),
        ["-web.yaml:1:1: the program is named after the file: invalid program name \"-web\": it must not start with \
          `-` or be `.` or `..`; rename the file or add `name:`"]
    );
    assert_eq!(file_errors("web.yaml", "name: a:b\ncmd: x\n").len(), 1);
    assert_eq!(
        file_errors("web.yaml", "# nothing\n"),
        ["web.yaml: the file is empty: expected the settings of one program (at least `cmd:`)"]
    );
    assert_eq!(
        file_errors("web.yaml", "- cmd: x\n"),
        ["web.yaml:1:1: expected a mapping of program settings, found a list"]
    );
    let error = file_errors("web.yaml", "cmd: [x\n");
    assert!(error[0].starts_with("web.yaml:") && error[0].contains(": invalid yaml: "), "{error:?}");
    assert_eq!(
        file_errors("web.yaml", "cmd: x\ntimeout: 1h\n"),
        ["web.yaml:2:1: timeout: only scheduled programs have a run timeout; add `schedule:` (or `cron:`)"]
    );
}
