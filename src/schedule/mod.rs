//! Schedules: service_manager's `every ...` language and classic five-field cron, and the fire
//! times they give. All times are UTC, in whole seconds since the Unix epoch ([`UnixSecs`]).
//!
//! Architecture invariant: pure. Nothing here reads a clock; the core passes the wall-clock time
//! in and gets the next fire time back.
//!
//! The `every` language (the reference's examples; README "Schedules" has the table):
//! - `every N(m|h|d)`: multiples of N counted from the start of the hour (m), the day (h) or
//!   the epoch day (d). `every month|workday|day|hour|monday..sunday`: calendar units.
//! - `offset XdYhZm` shifts each fire time; `@ Nm[, Nm...]` gives offsets within the unit;
//!   `@ HH:MM` a time of day (day-or-longer units; plain `@ 04:15` is `every 1d @ 04:15`);
//!   `@ HH:MM-HH:MM` a window, start included, end excluded, which may wrap past midnight.
//! - Clauses combine (`every monday every hour offset 30m`, `every 10m every 1d @ 10:00-01:00`):
//!   the clause with the longest unit selects spans of time, the shortest fires within them.
//!   Ties go to the later clause in the text (it fires). Only the firing clause takes fire
//!   times after `@`; only an outer clause takes a window. An outer clause's `offset` shifts
//!   its spans (and its window).
//! - Limits: `every Nm` takes 1..=60, `every Nh` 1..=24, `every Nd` 1..=36600; `@` durations
//!   must be shorter than the unit (28d for `month`); times of day are `H:MM` or `HH:MM`.
//! - Words are matched in any case (`Every Monday`).
//!
//! Cron: a day field counts as restricted unless it is exactly `*` (so `*/2` is restricted, as
//! croner has it; Vixie cron treats any field starting with `*` as unrestricted). `a/n` (a step
//! without a range) is refused. The nicknames `@hourly` .. `@annually` are accepted, `@reboot`
//! is not.
//!
//! Every entry must fire in the ten years from 2000-01-01, or it does not parse; `next_after`
//! looks ten years ahead.
//!
//! Classic five-field cron is in `cron.rs`, the `every` language in `every.rs`, and the calendar
//! math (shared with the event log's timestamps) in `calendar.rs`. Fire times are whole minutes;
//! internally both languages count minutes since the epoch.

pub mod calendar;
mod cron;
mod every;

use self::cron::Cron;
use self::every::Every;

/// Seconds since 1970-01-01T00:00:00Z.
pub type UnixSecs = i64;

/// The fire times of one or more entries, merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    entries: Vec<Entry>,
}

/// One schedule entry as written: an `every ...` / `@ ...` expression or a cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The text as written (trimmed), for messages and `status`.
    text: String,
    rule: Rule,
}

/// What an entry means, in the language it was written in.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    Every(Every),
    Cron(Cron),
}

/// How far ahead `next_after` looks: ten years, leap days included, in minutes.
const HORIZON_MINUTES: i64 = 3653 * calendar::MINUTES_PER_DAY;

/// Where the never-fires check starts looking (2000-01-01T00:00:00Z).
const NEVER_FIRES_CHECK_FROM: UnixSecs = 946_684_800;

/// What an entry may start with.
const ENTRY_EXPECTED: &str =
    "a schedule: `every ...`, `@ HH:MM` or five cron fields (minute hour day-of-month month day-of-week)";

/// Why an entry does not parse: where, and what was expected there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 0-based character offset into the entry text.
    pub position: usize,
    /// What would have been accepted there, e.g. "a unit (m, h, d, month, workday, day, hour, monday..sunday)".
    pub expected: String,
    /// What was there instead (`"end of text"` at the end).
    pub found: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at column {}: expected {}, found {}", self.position + 1, self.expected, self.found)
    }
}

impl Entry {
    /// Parses an `every ...`/`@ ...` expression or a five-field cron expression, decided by the
    /// first word: `every`, or `@` followed by a space, a digit or nothing, is the `every`
    /// language; `@` followed by a letter is a cron nickname (`@daily`); anything else is cron.
    /// Positions in errors are char offsets into `text` as given (before trimming).
    ///
    /// # Errors
    ///
    /// The error of the form the text looks like, with its position and what was expected; an
    /// entry that does not fire in the ten years from 2000-01-01 ("this schedule never fires").
    pub fn parse(text: &str) -> Result<Entry, ParseError> {
        let chars: Vec<char> = text.chars().collect();
        let Some(start) = chars.iter().position(|c| !c.is_whitespace()) else {
            return Err(ParseError {
                position: chars.len(),
                expected: ENTRY_EXPECTED.to_string(),
                found: "end of text".to_string(),
            });
        };
        let rest = &chars[start..];
        let is_every =
            starts_with_word(rest, "every") || (rest[0] == '@' && !rest.get(1).is_some_and(char::is_ascii_alphabetic));
        let rule = if is_every {
            Rule::Every(Every::parse(&chars)?)
        } else if rest[0].is_alphabetic() {
            // No cron field starts with a letter: the first one is the minute.
            return Err(ParseError {
                position: start,
                expected: ENTRY_EXPECTED.to_string(),
                found: found_at(&chars, start),
            });
        } else {
            Rule::Cron(Cron::parse(&chars)?)
        };
        Entry::fires(text, start, rule)
    }

    /// Parses a five-field cron expression only (`cron:`), or a cron nickname (`@daily`).
    ///
    /// # Errors
    ///
    /// As [`Entry::parse`].
    pub fn parse_cron(text: &str) -> Result<Entry, ParseError> {
        let chars: Vec<char> = text.chars().collect();
        let start = chars.iter().position(|c| !c.is_whitespace()).unwrap_or(chars.len());
        let rule = Rule::Cron(Cron::parse(&chars)?);
        Entry::fires(text, start, rule)
    }

    /// The entry, if it fires at least once in the ten years from 2000-01-01.
    fn fires(text: &str, start: usize, rule: Rule) -> Result<Entry, ParseError> {
        let entry = Entry { text: text.trim().to_string(), rule };
        match entry.next_after(NEVER_FIRES_CHECK_FROM) {
            Some(_) => Ok(entry),
            None => Err(ParseError {
                position: start,
                expected: "a schedule that fires at least once in ten years".to_string(),
                found: "this schedule never fires".to_string(),
            }),
        }
    }

    /// The text as written.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// This entry's first fire time strictly after `after`, or `None` if there is none in the
    /// next ten years.
    #[must_use]
    pub fn next_after(&self, after: UnixSecs) -> Option<UnixSecs> {
        let from = after.div_euclid(60) + 1;
        let limit = from.saturating_add(HORIZON_MINUTES);
        let minute = match &self.rule {
            Rule::Every(every) => every.next_at_or_after(from, limit),
            Rule::Cron(cron) => cron.next_at_or_after(from, limit),
        }?;
        minute.checked_mul(60)
    }
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Schedule {
    /// Merges entries; at least one.
    #[must_use]
    pub fn new(entries: Vec<Entry>) -> Schedule {
        Schedule { entries }
    }

    #[must_use]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The first fire time strictly after `after`, or `None` if there is none in the next
    /// ten years (a schedule that never fires is a config error, so this is `None` only for
    /// such a schedule).
    #[must_use]
    pub fn next_after(&self, after: UnixSecs) -> Option<UnixSecs> {
        self.entries.iter().filter_map(|entry| entry.next_after(after)).min()
    }
}

/// `2026-12-07T08:30:00Z`.
#[must_use]
pub fn format_utc(time: UnixSecs) -> String {
    let (days, day_seconds) = (time.div_euclid(86_400), time.rem_euclid(86_400));
    let (year, month, day) = calendar::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        day_seconds / 3600,
        day_seconds / 60 % 60,
        day_seconds % 60
    )
}

/// What is at `position` for an error message: a word or number, "a space", one other
/// character, or "end of text".
fn found_at(chars: &[char], position: usize) -> String {
    match chars.get(position) {
        None => "end of text".to_string(),
        Some(c) if c.is_whitespace() => "a space".to_string(),
        Some(c) if c.is_alphanumeric() => chars[position..].iter().take_while(|c| c.is_alphanumeric()).collect(),
        Some(c) => c.to_string(),
    }
}

/// Whether `chars` starts with `word` (any case) followed by a non-letter or the end.
fn starts_with_word(chars: &[char], word: &str) -> bool {
    let length = word.chars().count();
    chars.len() >= length
        && chars[..length].iter().zip(word.chars()).all(|(a, b)| a.eq_ignore_ascii_case(&b))
        && !chars.get(length).is_some_and(|c| c.is_alphanumeric())
}
