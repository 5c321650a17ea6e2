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

pub mod calendar;

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
}

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
    /// Parses an `every ...`/`@ ...` expression or, failing that, a five-field cron expression.
    ///
    /// # Errors
    ///
    /// The error of the form the text looks like (cron when it starts with a digit, `*` or a
    /// cron name; the `every` language otherwise), with its position and what was expected.
    pub fn parse(text: &str) -> Result<Entry, ParseError> {
        let _ = text;
        unimplemented!("schedule language")
    }

    /// Parses a five-field cron expression only (`cron:`).
    ///
    /// # Errors
    ///
    /// As [`Entry::parse`].
    pub fn parse_cron(text: &str) -> Result<Entry, ParseError> {
        let _ = text;
        unimplemented!("cron")
    }

    /// The text as written.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
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
        let _ = after;
        unimplemented!("fire times")
    }
}

/// `2026-12-07T08:30:00Z`.
#[must_use]
pub fn format_utc(time: UnixSecs) -> String {
    let _ = time;
    unimplemented!("calendar")
}
