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

#[cfg(test)]
mod tests {
    use super::*;

    /// `YYYY-MM-DDTHH:MM` (UTC) as seconds since the epoch.
    pub(super) fn utc(text: &str) -> UnixSecs {
        let number = |range: std::ops::Range<usize>| text[range].parse::<u32>().expect("a test date");
        let days = calendar::days_from_civil(i64::from(number(0..4)), number(5..7), number(8..10));
        days * 86_400 + i64::from(number(11..13)) * 3600 + i64::from(number(14..16)) * 60
    }

    /// The formatted fire times of `entry` in `(start, start + days]`.
    pub(super) fn fires_over(entry: &Entry, start: &str, days: i64) -> Vec<String> {
        let (mut time, end) = (utc(start), utc(start) + days * 86_400);
        let mut fires = Vec::new();
        while let Some(next) = entry.next_after(time).filter(|&next| next <= end) {
            fires.push(format_utc(next));
            time = next;
        }
        fires
    }

    /// The next `count` fire times strictly after `start`, formatted.
    pub(super) fn next_fires(text: &str, start: &str, count: usize) -> Vec<String> {
        let entry = Entry::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
        let mut time = utc(start);
        (0..count)
            .map(|_| {
                time = entry.next_after(time).unwrap_or_else(|| panic!("{text} stopped firing"));
                format_utc(time)
            })
            .collect()
    }

    fn parse_error(text: &str) -> (usize, String, String) {
        let error = Entry::parse(text).expect_err(text);
        (error.position, error.expected, error.found)
    }

    /// Weeks that cross a midnight and a month end, a year end, and a leap day.
    const WEEKS: [&str; 3] = ["2026-01-28T20:00", "2026-12-28T20:00", "2028-02-27T20:00"];

    #[test]
    fn every_row_of_the_reference_table_equals_its_cron_line() {
        // (cron, every, fires in a week)
        let table = [
            ("*/30 * * * *", "every 30m", 7 * 48),
            ("* * * * *", "every 1m", 7 * 1440),
            ("0-59/10 0,10-23 * * *", "every 10m every 1d @ 10:00-01:00", 7 * 15 * 6),
            ("0-59/10 1-9 * * *", "every 10m every 1d @ 01:00-10:00", 7 * 9 * 6),
            ("1-59/10 * * * *", "every 10m @ 1m", 7 * 144),
            ("2-59/10 * * * *", "every 10m @ 2m", 7 * 144),
            ("15 4 * * *", "every 1d @ 04:15", 7),
            ("15 4 * * *", "@ 04:15", 7),
            ("0 1 * * *", "every 1d @ 01:00", 7),
            ("00,10,20,30,40,50 * * * *", "every 10m", 7 * 144),
            ("06,16,26,36,46,56 * * * *", "every 10m @ 6m", 7 * 144),
            ("50 * * * *", "every 1h @ 50m", 7 * 24),
            ("*/5 * * * *", "every 5m", 7 * 288),
            ("* 1 * * *", "every 1m every 1d @ 01:00-02:00", 7 * 60),
            // The reference gives `every 1h @ 0m, 10m, 20m, 40m, 50m` as an alternative for
            // `00,10,20,30,40,50 * * * *`, but its list omits 30m: it equals this line instead.
            ("0,10,20,40,50 * * * *", "every 1h @ 0m, 10m, 20m, 40m, 50m", 7 * 24 * 5),
        ];
        for (cron_text, every_text, count) in table {
            let cron = Entry::parse(cron_text).unwrap_or_else(|error| panic!("{cron_text}: {error}"));
            let every = Entry::parse(every_text).unwrap_or_else(|error| panic!("{every_text}: {error}"));
            for start in WEEKS {
                let cron_fires = fires_over(&cron, start, 7);
                assert_eq!(cron_fires.len(), count, "{cron_text} from {start}");
                assert_eq!(fires_over(&every, start, 7), cron_fires, "{every_text} vs {cron_text} from {start}");
            }
        }
        // And the alternative is not the line the reference puts it under.
        let alternative = Entry::parse("every 1h @ 0m, 10m, 20m, 40m, 50m").unwrap();
        let every_ten = Entry::parse("00,10,20,30,40,50 * * * *").unwrap();
        assert_ne!(fires_over(&alternative, WEEKS[0], 1), fires_over(&every_ten, WEEKS[0], 1));
    }

    #[test]
    fn window_rows_fire_where_the_table_says() {
        assert_eq!(
            next_fires("every 10m every 1d @ 10:00-01:00", "2026-01-28T23:45", 4),
            ["2026-01-28T23:50:00Z", "2026-01-29T00:00:00Z", "2026-01-29T00:10:00Z", "2026-01-29T00:20:00Z"]
        );
        assert_eq!(
            next_fires("every 10m every 1d @ 10:00-01:00", "2026-01-29T00:45", 3),
            ["2026-01-29T00:50:00Z", "2026-01-29T10:00:00Z", "2026-01-29T10:10:00Z"]
        );
        assert_eq!(
            next_fires("every 1m every 1d @ 01:00-02:00", "2026-01-28T01:58", 3),
            ["2026-01-28T01:59:00Z", "2026-01-29T01:00:00Z", "2026-01-29T01:01:00Z"]
        );
    }

    #[test]
    fn the_reference_examples_mean_what_it_says() {
        // The 3rd of each month at 08:30, across a year end.
        assert_eq!(
            next_fires("every month offset 2d8h30m", "2026-11-03T08:30", 3),
            ["2026-12-03T08:30:00Z", "2027-01-03T08:30:00Z", "2027-02-03T08:30:00Z"]
        );
        // Monday to Friday at 08:30: from Friday 09:00 the next is Monday.
        assert_eq!(
            next_fires("every workday offset 8h30m", "2026-12-04T09:00", 2),
            ["2026-12-07T08:30:00Z", "2026-12-08T08:30:00Z"]
        );
        assert_eq!(
            next_fires("every workday offset 8h30m", "2026-12-10T08:29", 3),
            ["2026-12-10T08:30:00Z", "2026-12-11T08:30:00Z", "2026-12-14T08:30:00Z"]
        );
        // Every hour at :30 on Mondays; 2026-12-07 and 2026-12-14 are Mondays.
        assert_eq!(
            next_fires("every monday every hour offset 30m", "2026-12-07T22:45", 3),
            ["2026-12-07T23:30:00Z", "2026-12-14T00:30:00Z", "2026-12-14T01:30:00Z"]
        );
        assert_eq!(
            next_fires("every 5m offset 1m", "2026-12-07T08:55", 3),
            ["2026-12-07T08:56:00Z", "2026-12-07T09:01:00Z", "2026-12-07T09:06:00Z"]
        );
        assert_eq!(next_fires("@ 04:15", "2026-12-07T04:15", 2), ["2026-12-08T04:15:00Z", "2026-12-09T04:15:00Z"]);
        assert_eq!(next_fires("every 10m every 1d @ 10:00-01:00", "2026-12-07T01:00", 1), ["2026-12-07T10:00:00Z"]);
        assert_eq!(next_fires("every 1m every 1d @ 01:00-02:00", "2026-12-07T02:00", 1), ["2026-12-08T01:00:00Z"]);
    }

    #[test]
    fn service_manager_scheduling_list_merges_its_entries() {
        let texts = [
            "every month offset 2d8h30m",
            "every workday offset 8h30m",
            "every monday every hour offset 30m",
            "every 5m offset 1m",
        ];
        let schedule = Schedule::new(texts.iter().map(|text| Entry::parse(text).unwrap()).collect());
        assert_eq!(schedule.entries().len(), 4);
        assert_eq!(
            schedule.next_after(utc("2026-12-07T08:27")).map(format_utc).as_deref(),
            Some("2026-12-07T08:30:00Z")
        );
        assert_eq!(
            schedule.next_after(utc("2026-12-07T08:30")).map(format_utc).as_deref(),
            Some("2026-12-07T08:31:00Z")
        );
        let monthly = Schedule::new(vec![Entry::parse("0 0 1 * *").unwrap(), Entry::parse("@ 04:15").unwrap()]);
        assert_eq!(
            monthly.next_after(utc("2026-12-31T23:00")).map(format_utc).as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
        assert_eq!(Schedule::new(Vec::new()).next_after(0), None);
    }

    #[test]
    fn fire_times_are_strictly_after_and_whole_minutes() {
        let entry = Entry::parse("every 1m").unwrap();
        assert_eq!(entry.next_after(utc("2026-12-07T08:30")), Some(utc("2026-12-07T08:31")));
        assert_eq!(entry.next_after(utc("2026-12-07T08:30") + 59), Some(utc("2026-12-07T08:31")));
        assert_eq!(entry.next_after(utc("2026-12-07T08:30") - 1), Some(utc("2026-12-07T08:30")));
        assert_eq!(entry.next_after(-1), Some(0));
    }

    #[test]
    fn entry_keeps_its_text_trimmed_and_shows_it() {
        let entry = Entry::parse("  every 5m offset 1m \t").unwrap();
        assert_eq!(entry.text(), "every 5m offset 1m");
        assert_eq!(entry.to_string(), "every 5m offset 1m");
        assert_eq!(Entry::parse("every 5m offset 1m").unwrap(), entry);
        assert_ne!(Entry::parse("every 5m").unwrap(), entry);
    }

    #[test]
    fn the_first_word_picks_the_language() {
        assert!(matches!(Entry::parse("every 5m").unwrap().rule, Rule::Every(_)));
        assert!(matches!(Entry::parse("Every 5m").unwrap().rule, Rule::Every(_)));
        assert!(matches!(Entry::parse("@ 04:15").unwrap().rule, Rule::Every(_)));
        assert!(matches!(Entry::parse("@04:15").unwrap().rule, Rule::Every(_)));
        assert!(matches!(Entry::parse("*/5 * * * *").unwrap().rule, Rule::Cron(_)));
        assert!(matches!(Entry::parse("@daily").unwrap().rule, Rule::Cron(_)));
        assert_eq!(
            parse_error("everyday"),
            (0, ENTRY_EXPECTED.to_string(), "everyday".to_string()),
            "a word that is not `every` is not cron either"
        );
        assert_eq!(parse_error("  "), (2, ENTRY_EXPECTED.to_string(), "end of text".to_string()));
        // parse_cron takes cron only.
        assert_eq!(Entry::parse_cron("every 5m").unwrap_err().position, 0);
        assert_eq!(Entry::parse_cron("*/5 * * * *").unwrap().text(), "*/5 * * * *");
    }

    #[test]
    fn errors_say_where_and_what_was_expected() {
        let unit = "a unit: m, h or d after a number, or month, workday, day, hour, minute, monday..sunday";
        assert_eq!(parse_error("every 5x"), (7, unit.to_string(), "x".to_string()));
        assert_eq!(parse_error("every fortnight"), (6, unit.to_string(), "fortnight".to_string()));
        assert_eq!(parse_error("every 5 m"), (7, unit.to_string(), "a space".to_string()));
        assert_eq!(parse_error("every"), (5, unit.to_string(), "end of text".to_string()));
        // Positions count from the text as given, leading spaces included.
        assert_eq!(parse_error("  every 5x").0, 9);
        assert_eq!(Entry::parse("every 5x").unwrap_err().to_string(), format!("at column 8: expected {unit}, found x"));
        let fields = "5 fields (minute hour day-of-month month day-of-week)";
        assert_eq!(parse_error("0 0 * *"), (7, fields.to_string(), "4 fields".to_string()));
        assert_eq!(parse_error("0 0 * * * 2026"), (10, fields.to_string(), "6 fields".to_string()));
        assert_eq!(parse_error("60 * * * *"), (0, "a minute 0-59".to_string(), "60".to_string()));
        assert_eq!(parse_error("0 24 * * *"), (2, "an hour 0-23".to_string(), "24".to_string()));
        assert_eq!(parse_error("0 0 * 1-13 *"), (8, "a month 1-12 or jan..dec".to_string(), "13".to_string()));
    }

    #[test]
    fn a_schedule_that_never_fires_is_refused() {
        let never = (
            0,
            "a schedule that fires at least once in ten years".to_string(),
            "this schedule never fires".to_string(),
        );
        assert_eq!(parse_error("0 0 31 2 *"), never);
        assert_eq!(parse_error("0 0 30 feb *"), never);
        assert_eq!(parse_error("every monday every tuesday"), never);
        assert_eq!(parse_error("every 1m every monday every tuesday"), never);
        assert_eq!(parse_error("every 1m every 1d @ 01:00-02:00 every 1d @ 03:00-04:00"), never);
        assert_eq!(parse_error("every workday every monday offset 5d"), never, "Saturdays are not workdays");
        assert_eq!(parse_error(" every 20000d").0, 1);
        assert_eq!(Entry::parse_cron("0 0 31 2 *").unwrap_err().found, "this schedule never fires");
        // Rare is not never: the 29th of February, and Feb 29 or a Monday.
        assert!(Entry::parse("0 0 29 2 *").is_ok());
        assert_eq!(next_fires("0 0 29 2 *", "2026-01-01T00:00", 2), ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]);
    }

    #[test]
    fn fire_times_are_quick_to_find() {
        let start = std::time::Instant::now();
        let entry = Entry::parse("every 1m").unwrap();
        let mut time = utc("2026-12-07T00:00");
        for _ in 0..10_000 {
            time = entry.next_after(time).unwrap();
        }
        assert_eq!(time, utc("2026-12-07T00:00") + 10_000 * 60);
        let never = [
            "0 0 31 2 *",
            "every 1m every monday every tuesday",
            "every 1m every 1d @ 01:00-02:00 every 1d @ 03:00-04:00",
        ];
        for text in never {
            assert!(Entry::parse(text).is_err());
        }
        // Debug build, tests running in parallel: generous, and still far from a slow search.
        assert!(start.elapsed() < std::time::Duration::from_millis(500), "took {:?}", start.elapsed());
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(utc("2026-12-07T08:30")), "2026-12-07T08:30:00Z");
        assert_eq!(format_utc(951_782_400 + 59), "2000-02-29T00:00:59Z");
        assert_eq!(format_utc(-1), "1969-12-31T23:59:59Z");
    }
}
