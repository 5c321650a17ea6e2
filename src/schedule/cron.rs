//! Classic five-field cron (`minute hour day-of-month month day-of-week`): its parser and its
//! fire times.
//!
//! Each field is `*`, `*/n`, `a`, `a-b`, `a-b/n` or a comma list of those; months take jan..dec
//! and days of week sun..sat (any case); day of week 0 and 7 are both Sunday. When both day
//! fields are restricted (neither starts with `*`), a day matches if either matches (Vixie
//! cron; a `*/2` day field counts as unrestricted there, and here). `@hourly`, `@daily`/`@midnight`, `@weekly`, `@monthly` and `@yearly`/`@annually` are
//! the usual five-field expressions; `@reboot` is refused.
//!
//! Architecture invariant: pure; the parser reports the first error with its character position.

use super::calendar::{self, MINUTES_PER_DAY};
use super::{found_at, ParseError};

/// The set of each field as a bitmask (bit `v` for value `v`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Cron {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    /// Bits 0 (Sunday) ..= 6; a written 7 sets bit 0.
    days_of_week: u64,
    /// Neither day field starts with `*`: a day matches if either matches.
    either_day: bool,
}

/// What one field accepts.
struct Field {
    /// For messages: "a minute 0-59".
    what: &'static str,
    min: u32,
    max: u32,
    /// Names for values `names_from..`, lowercase.
    names: &'static [&'static str],
    names_from: u32,
}

const FIELDS: [Field; 5] = [
    Field { what: "a minute 0-59", min: 0, max: 59, names: &[], names_from: 0 },
    Field { what: "an hour 0-23", min: 0, max: 23, names: &[], names_from: 0 },
    Field { what: "a day of month 1-31", min: 1, max: 31, names: &[], names_from: 0 },
    Field {
        what: "a month 1-12 or jan..dec",
        min: 1,
        max: 12,
        names: &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
        names_from: 1,
    },
    Field {
        what: "a day of week 0-7 or sun..sat",
        min: 0,
        max: 7,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
        names_from: 0,
    },
];

const FIELDS_EXPECTED: &str = "5 fields (minute hour day-of-month month day-of-week)";

const NICKNAMES: [(&str, &str); 7] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

impl Cron {
    /// Parses `chars` as five fields or one `@nickname`.
    pub(super) fn parse(chars: &[char]) -> Result<Cron, ParseError> {
        let fields = split_fields(chars);
        if let Some(&(start, end)) = fields.first() {
            if chars[start] == '@' {
                let word: String = chars[start..end].iter().collect::<String>().to_ascii_lowercase();
                let Some((_, expansion)) = NICKNAMES.iter().find(|(name, _)| *name == word) else {
                    return Err(ParseError {
                        position: start,
                        expected: "@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually or `@ HH:MM`"
                            .to_string(),
                        found: chars[start..end].iter().collect(),
                    });
                };
                if let Some(&(next, _)) = fields.get(1) {
                    return Err(ParseError {
                        position: next,
                        expected: format!("end of text after {word}"),
                        found: found_at(chars, next),
                    });
                }
                let expansion: Vec<char> = expansion.chars().collect();
                return Cron::parse_fields(&expansion, &split_fields(&expansion));
            }
        }
        Cron::parse_fields(chars, &fields)
    }

    fn parse_fields(chars: &[char], fields: &[(usize, usize)]) -> Result<Cron, ParseError> {
        // Fields first, so that a word where the minute goes is reported as such.
        let mut sets = [0u64; 5];
        for (index, (field, &(start, end))) in FIELDS.iter().zip(fields).enumerate() {
            sets[index] = parse_field(chars, start, end, field)?;
        }
        if fields.len() != 5 {
            let (position, found) = match fields.get(5) {
                Some(&(start, _)) => (start, format!("{} fields", fields.len())),
                None if fields.is_empty() => (chars.len(), "end of text".to_string()),
                None => (fields[fields.len() - 1].1, format!("{} fields", fields.len())),
            };
            return Err(ParseError { position, expected: FIELDS_EXPECTED.to_string(), found });
        }
        // As in Vixie cron, a day field that starts with `*` (`*`, `*/2`) counts as unrestricted:
        // the two day fields are ORed only when both are written as lists or ranges.
        let is_star = |index: usize| {
            let (start, _) = fields[index];
            chars[start] == '*'
        };
        let sunday_as_seven = sets[4] >> 7 & 1;
        Ok(Cron {
            minutes: sets[0],
            hours: sets[1],
            days_of_month: sets[2],
            months: sets[3],
            days_of_week: (sets[4] | sunday_as_seven) & 0x7f,
            either_day: !is_star(2) && !is_star(4),
        })
    }

    /// The first fire time (minutes since the epoch) at or after `from`, if any up to `limit`.
    pub(super) fn next_at_or_after(&self, from: i64, limit: i64) -> Option<i64> {
        let mut minute = from;
        while minute <= limit {
            let day = minute.div_euclid(MINUTES_PER_DAY);
            let (_, month, day_of_month) = calendar::civil_from_days(day);
            if self.months >> month & 1 == 0 {
                minute = calendar::first_of_next_month(day) * MINUTES_PER_DAY;
                continue;
            }
            let by_month_day = self.days_of_month >> day_of_month & 1 == 1;
            let by_week_day = self.days_of_week >> calendar::weekday(day) & 1 == 1;
            let day_matches = if self.either_day { by_month_day || by_week_day } else { by_month_day && by_week_day };
            if !day_matches {
                minute = (day + 1) * MINUTES_PER_DAY;
                continue;
            }
            let minute_of_day = minute - day * MINUTES_PER_DAY;
            let hour_start = minute - minute_of_day % 60;
            if self.hours >> (minute_of_day / 60) & 1 == 0 {
                minute = hour_start + 60;
                continue;
            }
            let later_minutes = self.minutes >> (minute_of_day % 60);
            if later_minutes == 0 {
                minute = hour_start + 60;
                continue;
            }
            let found = minute + i64::from(later_minutes.trailing_zeros());
            return (found <= limit).then_some(found);
        }
        None
    }
}

/// The `[start, end)` char ranges of the whitespace-separated fields.
fn split_fields(chars: &[char]) -> Vec<(usize, usize)> {
    let mut fields = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        if chars[index].is_whitespace() {
            index += 1;
            continue;
        }
        let start = index;
        while index < chars.len() && !chars[index].is_whitespace() {
            index += 1;
        }
        fields.push((start, index));
    }
    fields
}

/// One field, `chars[start..end]`, as a bitmask.
fn parse_field(chars: &[char], start: usize, end: usize, field: &Field) -> Result<u64, ParseError> {
    let item_expected = format!("{}, `*`, a range `a-b` or a step `*/n` or `a-b/n`", field.what);
    let error = |position: usize, expected: &str| ParseError {
        position,
        expected: expected.to_string(),
        found: if position >= end { "end of field".to_string() } else { found_at(chars, position) },
    };
    let mut set = 0u64;
    let mut item_start = start;
    while item_start <= end {
        let item_end = (item_start..end).find(|&index| chars[index] == ',').unwrap_or(end);
        if item_start == item_end {
            return Err(error(item_start, &item_expected));
        }
        let slash = (item_start..item_end).find(|&index| chars[index] == '/');
        let base_end = slash.unwrap_or(item_end);
        let (low, high) = if base_end - item_start == 1 && chars[item_start] == '*' {
            (field.min, field.max)
        } else {
            let (low, after_low) = value(chars, item_start, base_end, field)
                .map_err(|(at, what)| error(at, what.unwrap_or(&item_expected)))?;
            if after_low == base_end {
                if slash.is_some() {
                    return Err(error(after_low, "`-` and the end of a range before a step (`a-b/n` or `*/n`)"));
                }
                (low, low)
            } else if chars[after_low] == '-' {
                let (high, after_high) =
                    value(chars, after_low + 1, base_end, field).map_err(|(at, _)| error(at, field.what))?;
                if after_high != base_end {
                    return Err(error(after_high, "`,`, `/` or the end of the field"));
                }
                if high < low {
                    return Err(error(item_start, "a range `a-b` with a <= b"));
                }
                (low, high)
            } else {
                return Err(error(after_low, "`-`, `,`, `/` or the end of the field"));
            }
        };
        let step = match slash {
            None => 1,
            Some(slash) => {
                let digits: String = chars[slash + 1..item_end].iter().collect();
                match digits.parse::<u32>() {
                    Ok(step) if step >= 1 && digits.chars().all(|c| c.is_ascii_digit()) => step,
                    _ => return Err(error(slash + 1, "a step: a number of 1 or more")),
                }
            }
        };
        let mut value = low;
        while value <= high {
            set |= 1 << value;
            value = match value.checked_add(step) {
                Some(next) => next,
                None => break,
            };
        }
        item_start = item_end + 1;
    }
    Ok(set)
}

/// A number or name at `chars[start..]` (before `limit`): its value and the index after it; on
/// error, where, and for a value out of range, the field's range as what was expected.
fn value(
    chars: &[char],
    start: usize,
    limit: usize,
    field: &Field,
) -> Result<(u32, usize), (usize, Option<&'static str>)> {
    let run_end = |test: fn(&char) -> bool| (start..limit).find(|&index| !test(&chars[index])).unwrap_or(limit);
    if start >= limit {
        return Err((start, None));
    }
    if chars[start].is_ascii_digit() {
        let end = run_end(char::is_ascii_digit);
        let digits: String = chars[start..end].iter().collect();
        match digits.parse::<u32>() {
            Ok(number) if (field.min..=field.max).contains(&number) => Ok((number, end)),
            _ => Err((start, Some(field.what))),
        }
    } else if chars[start].is_ascii_alphabetic() {
        let end = run_end(char::is_ascii_alphabetic);
        let word = chars[start..end].iter().collect::<String>().to_ascii_lowercase();
        match field.names.iter().position(|name| *name == word) {
            Some(index) => Ok((field.names_from + index as u32, end)),
            None => Err((start, Some(field.what))),
        }
    } else {
        Err((start, None))
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use crate::schedule::tests::{next_fires, utc};
    use crate::schedule::{format_utc, Entry, UnixSecs};

    /// The oracle: croner's next `count` fire times strictly after `start`.
    fn croner_fires(text: &str, start: UnixSecs, count: usize) -> Vec<String> {
        let cron = croner::Cron::from_str(text).unwrap_or_else(|error| panic!("croner: {text}: {error}"));
        let mut time = chrono::DateTime::from_timestamp(start, 0).unwrap();
        (0..count)
            .map(|_| {
                time = cron.find_next_occurrence(&time, false).unwrap();
                format_utc(time.timestamp())
            })
            .collect()
    }

    fn our_fires(text: &str, start: UnixSecs, count: usize) -> Vec<String> {
        let entry = Entry::parse_cron(text).unwrap_or_else(|error| panic!("{text}: {error}"));
        let mut time = start;
        (0..count)
            .map(|_| {
                time = entry.next_after(time).unwrap();
                format_utc(time)
            })
            .collect()
    }

    #[test]
    fn fire_times_agree_with_croner() {
        let expressions = [
            // The reference's table.
            "*/30 * * * *",
            "* * * * *",
            "0-59/10 0,10-23 * * *",
            "0-59/10 1-9 * * *",
            "1-59/10 * * * *",
            "2-59/10 * * * *",
            "15 4 * * *",
            "0 1 * * *",
            "00,10,20,30,40,50 * * * *",
            "06,16,26,36,46,56 * * * *",
            "50 * * * *",
            "*/5 * * * *",
            "* 1 * * *",
            "0,10,20,40,50 * * * *",
            // More: workdays, monthly, a step that does not divide the hour, names.
            "15 4 * * 1-5",
            "0 0 1 * *",
            "*/7 * * * *",
            "0 12 * * sun",
            "0 12 * * 7",
            "30 6 * * MON-fri",
            "0 0 * jan,Jul *",
            "0 9-17/2 * * *",
            "5 0 29 2 *",
            "0 0 31 * *",
            // Vixie's OR: the 13th, or a Friday.
            "0 0 13 * 5",
            "0 0 1,15 * wed",
        ];
        let starts = ["2026-01-28T20:00", "2026-12-28T20:00", "2028-02-27T20:00", "2026-12-07T08:30"];
        for text in expressions {
            for start in starts {
                let start = utc(start);
                assert_eq!(
                    our_fires(text, start, 300),
                    croner_fires(text, start, 300),
                    "{text} from {}",
                    format_utc(start)
                );
            }
        }
    }

    #[test]
    fn vixie_day_rules() {
        // 2027-08-13 is a Friday; 2026-12-07 is a Monday.
        assert_eq!(
            next_fires("0 0 13 * 5", "2026-12-07T00:00", 4),
            ["2026-12-11T00:00:00Z", "2026-12-13T00:00:00Z", "2026-12-18T00:00:00Z", "2026-12-25T00:00:00Z"]
        );
        // Only one day field restricted: it alone decides.
        assert_eq!(next_fires("0 0 13 * *", "2026-12-07T00:00", 1), ["2026-12-13T00:00:00Z"]);
        assert_eq!(next_fires("0 0 * * 5", "2026-12-07T00:00", 1), ["2026-12-11T00:00:00Z"]);
        // 0 and 7 are both Sunday; names in any case.
        assert_eq!(next_fires("0 12 * * 0", "2026-12-07T00:00", 2), next_fires("0 12 * * 7", "2026-12-07T00:00", 2));
        assert_eq!(next_fires("0 12 * * SUN", "2026-12-07T00:00", 1), ["2026-12-13T12:00:00Z"]);
        assert_eq!(
            next_fires("0 12 * * 5-7", "2026-12-07T00:00", 3),
            ["2026-12-11T12:00:00Z", "2026-12-12T12:00:00Z", "2026-12-13T12:00:00Z"]
        );
        assert_eq!(next_fires("0 0 1 Feb *", "2026-12-07T00:00", 1), ["2027-02-01T00:00:00Z"]);
        // A day field starting with `*` is unrestricted, as in Vixie's own code (croner ORs
        // here): odd days that are Mondays, not every odd day and every Monday.
        assert_eq!(next_fires("0 0 */2 * 1", "2026-12-01T00:00", 2), ["2026-12-07T00:00:00Z", "2026-12-21T00:00:00Z"]);
    }

    #[test]
    fn nicknames_are_their_five_fields() {
        for (nickname, fields) in [
            ("@hourly", "0 * * * *"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@weekly", "0 0 * * 0"),
            ("@monthly", "0 0 1 * *"),
            ("@yearly", "0 0 1 1 *"),
            ("@ANNUALLY", "0 0 1 1 *"),
        ] {
            assert_eq!(
                next_fires(nickname, "2026-12-07T08:30", 3),
                next_fires(fields, "2026-12-07T08:30", 3),
                "{nickname}"
            );
        }
        let error = Entry::parse("@reboot").unwrap_err();
        assert_eq!((error.position, error.found.as_str()), (0, "@reboot"));
        assert_eq!(error.expected, "@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually or `@ HH:MM`");
        let error = Entry::parse("@daily 5").unwrap_err();
        assert_eq!(
            (error.position, error.expected.as_str(), error.found.as_str()),
            (7, "end of text after @daily", "5")
        );
    }

    #[test]
    fn field_errors_point_at_the_value() {
        let error = |text: &str| {
            let error = Entry::parse_cron(text).expect_err(text);
            (error.position, error.expected, error.found)
        };
        let minute = "a minute 0-59, `*`, a range `a-b` or a step `*/n` or `a-b/n`".to_string();
        assert_eq!(error("1-60 * * * *"), (2, "a minute 0-59".to_string(), "60".to_string()));
        assert_eq!(error("0 0 0 * *"), (4, "a day of month 1-31".to_string(), "0".to_string()));
        assert_eq!(error("0 0 32 * *"), (4, "a day of month 1-31".to_string(), "32".to_string()));
        assert_eq!(error("0 0 * * 8"), (8, "a day of week 0-7 or sun..sat".to_string(), "8".to_string()));
        assert_eq!(error("0 0 * * sunday"), (8, "a day of week 0-7 or sun..sat".to_string(), "sunday".to_string()));
        assert_eq!(error("0 0 * foo *"), (6, "a month 1-12 or jan..dec".to_string(), "foo".to_string()));
        assert_eq!(error("1,,2 * * * *"), (2, minute.clone(), ",".to_string()));
        assert_eq!(error("1, * * * *"), (2, minute.clone(), "end of field".to_string()));
        assert_eq!(error("?/5 * * * *"), (0, minute, "?".to_string()));
        assert_eq!(error("*/0 * * * *"), (2, "a step: a number of 1 or more".to_string(), "0".to_string()));
        assert_eq!(error("*/x * * * *"), (2, "a step: a number of 1 or more".to_string(), "x".to_string()));
        assert_eq!(error("5/10 * * * *").0, 1, "a step needs a range or `*`");
        assert_eq!(error("30-10 * * * *"), (0, "a range `a-b` with a <= b".to_string(), "30".to_string()));
        assert_eq!(error("1-2-3 * * * *"), (3, "`,`, `/` or the end of the field".to_string(), "-".to_string()));
        assert_eq!(
            error(""),
            (0, "5 fields (minute hour day-of-month month day-of-week)".to_string(), "end of text".to_string())
        );
    }
}
