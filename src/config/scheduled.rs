//! A program's schedule: `schedule` (entries in service_manager's `every ...` language, or
//! cron), `cron` (one five-field cron expression), and for scheduled programs only `timeout`
//! (a run still going after this long is stopped) and `overlap` (`skip` or `kill`).
//!
//! A schedule entry that does not parse is reported at the character where it went wrong:
//! the value's column in the file plus the parser's offset, when the value is written on one
//! line exactly as it reads (plain, or quoted without escapes); otherwise at the value, with the
//! offset inside the entry in the message. `service_file.rs` reports `scheduling` the same way.

use serde_yaml::{Mapping, Value};

use super::locate::{self, Segment, Target};
use super::scalars::{describe, suggest};
use super::{child, item, Checker, ConfigError};
use crate::schedule::{Entry, ParseError, Schedule};
use crate::spec::{Overlap, ProgramSpec, ScheduleSpec};

const OVERLAPS: &[&str] = &["skip", "kill"];

/// What an entry is called in messages, and its parser.
pub(super) type EntryKind = (&'static str, fn(&str) -> Result<Entry, ParseError>);
/// `schedule:`, `scheduling`: the `every` language or cron.
pub(super) const ENTRY: EntryKind = ("schedule entry", Entry::parse);
/// `cron:`: cron only.
const CRON: EntryKind = ("cron expression", Entry::parse_cron);

/// `schedule:` or `cron:` given: the program runs at fire times.
pub(super) const SCHEDULE_HINT: &str = "add `schedule:` (or `cron:`)";

/// The message for a schedule entry `text` (`what`: "schedule entry", "cron expression") that
/// does not parse. With `located`, the error's position is the file position of the whole
/// error, so the message leaves the entry's own column out.
pub(super) fn entry_message(what: &str, text: &str, error: &ParseError, located: bool) -> String {
    if located {
        format!("invalid {what} {text:?}: expected {}, found {}", error.expected, error.found)
    } else {
        format!("invalid {what} {text:?}: {error}")
    }
}

/// `overlap:`: `skip` or `kill`.
pub(super) fn overlap(text: &str) -> Result<Overlap, String> {
    match text.to_ascii_lowercase().as_str() {
        "skip" => Ok(Overlap::Skip),
        "kill" => Ok(Overlap::Kill),
        _ => Err(match suggest(text, OVERLAPS) {
            Some(near) => format!("expected skip or kill, found {text:?}; did you mean `{near}`?"),
            None => {
                format!("expected skip (let the running one finish) or kill (stop it and start anew), found {text:?}")
            }
        }),
    }
}

/// Why `key` cannot be given without a schedule.
pub(super) fn unscheduled_message(key: &str) -> String {
    match key {
        "timeout" => format!("only scheduled programs have a run timeout; {SCHEDULE_HINT}"),
        other => format!("only scheduled programs have `{other}`; {SCHEDULE_HINT}"),
    }
}

impl Checker<'_> {
    /// Reads `schedule`, `cron`, `timeout` and `overlap` of the program map `map` at `path`
    /// into `spec`, and checks the other settings that do not go with a schedule.
    pub(super) fn schedule(&mut self, path: &[Segment], map: &Mapping, spec: &mut ProgramSpec) {
        let scheduled = map.contains_key("schedule") || map.contains_key("cron");
        if !scheduled {
            for key in ["timeout", "overlap"] {
                if map.contains_key(key) {
                    self.error(&child(path, key), Target::Key, unscheduled_message(key));
                }
            }
            return;
        }
        let errors_before = self.errors.len();
        let mut entries = Vec::new();
        if let Some(value) = map.get("schedule") {
            let schedule_path = child(path, "schedule");
            match value {
                Value::String(text) => entries.extend(self.entry(&schedule_path, text, ENTRY)),
                Value::Sequence(items) if items.is_empty() => self.error(
                    &schedule_path,
                    Target::Value,
                    "the schedule is empty; give at least one entry, such as \"every 5m\"",
                ),
                Value::Sequence(items) => {
                    for (index, value) in items.iter().enumerate() {
                        let item_path = item(&schedule_path, index);
                        match value {
                            Value::String(text) => entries.extend(self.entry(&item_path, text, ENTRY)),
                            other => self.error(
                                &item_path,
                                Target::Value,
                                format!("expected a schedule entry such as \"every 5m\", found {}", describe(other)),
                            ),
                        }
                    }
                }
                other => self.error(
                    &schedule_path,
                    Target::Value,
                    format!(
                        "expected a schedule entry such as \"every 5m\" or a list of them, found {}",
                        describe(other)
                    ),
                ),
            }
        }
        if let Some(value) = map.get("cron") {
            let cron_path = child(path, "cron");
            match value {
                Value::String(text) => entries.extend(self.entry(&cron_path, text, CRON)),
                other => self.error(
                    &cron_path,
                    Target::Value,
                    format!("expected a cron expression such as \"*/5 * * * *\", found {}", describe(other)),
                ),
            }
        }
        let timeout = map.get("timeout").and_then(|value| self.positive_duration(&child(path, "timeout"), value));
        let overlap = match map.get("overlap") {
            Some(value) => self.value(&child(path, "overlap"), value, |value| match value {
                Value::String(text) => overlap(text),
                other => Err(format!("expected skip or kill, found {}", describe(other))),
            }),
            None => Some(Overlap::Skip),
        };
        // A pid-file program's process is a daemon that outlives its command; a run has to be
        // a process sv-lite waits for, to know when it ends and to bound it by `timeout`.
        if map.contains_key("pid_file") {
            self.error(
                &child(path, "pid_file"),
                Target::Key,
                "a scheduled program cannot have a `pid_file`: each run must be a process sv-lite waits for \
                 (run the daemon in the foreground)",
            );
        }
        if self.errors.len() != errors_before {
            return;
        }
        spec.schedule = overlap.map(|overlap| ScheduleSpec { when: Schedule::new(entries), timeout, overlap });
    }

    /// One entry, parsed by `parse`; an error points at its character when the text allows.
    fn entry(&mut self, path: &[Segment], text: &str, (what, parse): EntryKind) -> Option<Entry> {
        let error = match parse(text) {
            Ok(entry) => return Some(entry),
            Err(error) => error,
        };
        let located = locate::scalar_start(self.text, path, text);
        match located {
            Some((line, column)) => {
                self.errors.push(ConfigError {
                    origin: self.origin.to_string(),
                    line: Some(line),
                    column: Some(column + error.position),
                    path: locate::DisplayPath(path).to_string(),
                    message: entry_message(what, text, &error, true),
                });
            }
            None => self.error(path, Target::Value, entry_message(what, text, &error, false)),
        }
        None
    }
}
