//! service_manager's `every ...` language: its parser and its fire times.
//!
//! An expression is one or more clauses (`every <unit> [offset <duration>] [@ <list>]`). The
//! clause with the shortest unit fires: its points are each period start plus each offset. Every
//! longer clause selects spans of time, and a fire time must lie in a span of each of them.
//! Internally every time is in whole minutes since the epoch.
//!
//! Architecture invariant: pure; the parser reports the first error with its character position.

use super::calendar::{self, MINUTES_PER_DAY};
use super::{found_at, ParseError};

/// What may follow `every`; also the message for a bad unit after a number.
const UNIT_EXPECTED: &str = "a unit: m, h or d after a number, or month, workday, day, hour, minute, monday..sunday";

const WEEKDAYS: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

/// Longest duration (`offset`, `@`) and longest `every Nd`: 100 years, in days.
const MAX_DAYS: u64 = 36_600;

/// A parsed `every` expression, ready to give fire times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Every {
    firing: Firing,
    selecting: Vec<Selecting>,
}

/// The innermost clause: it fires at each period start plus each offset.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Firing {
    unit: Unit,
    /// Minutes after each period start, sorted, at least one.
    offsets: Vec<i64>,
}

/// An outer clause: fire times must lie in one of its spans.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Selecting {
    unit: Unit,
    span: Span,
}

/// Where a selecting clause's span lies, relative to each period start (minutes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Span {
    /// `[start + offset, start + offset + period length)`.
    Period { offset: i64 },
    /// `[start + from, start + to)`, from a window (`@ HH:MM-HH:MM`) shifted by `offset`.
    Window { from: i64, to: i64 },
}

/// The unit of a clause: what its periods are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    /// Every N minutes, counted from the start of each hour.
    Minutes(i64),
    /// Every N hours, counted from the start of each day.
    Hours(i64),
    /// Every N days, counted from the epoch day 1970-01-01.
    Days(i64),
    /// Monday to Friday.
    Workday,
    /// One day of the week, cron's numbering (0 = Sunday).
    Weekday(u32),
    /// The first of each month.
    Month,
}

impl Every {
    /// Parses `chars`, which starts (after whitespace) with `every` or `@`.
    pub(super) fn parse(chars: &[char]) -> Result<Every, ParseError> {
        let mut parser = Parser { chars, tokens: lex(chars), index: 0 };
        let clauses = parser.clauses()?;
        build(chars, clauses)
    }

    /// The first fire time (minutes since the epoch) at or after `from`, if any up to `limit`.
    pub(super) fn next_at_or_after(&self, from: i64, limit: i64) -> Option<i64> {
        let mut from = from;
        loop {
            let point = self.firing.next_at_or_after(from);
            if point > limit {
                return None;
            }
            // Every point before the latest next span start misses some clause's span.
            let next = self.selecting.iter().filter_map(|clause| clause.next_span_start(point)).max();
            match next {
                None => return Some(point),
                Some(next) => from = next,
            }
        }
    }
}

impl Firing {
    fn next_at_or_after(&self, from: i64) -> i64 {
        self.offsets
            .iter()
            .map(|offset| self.unit.first_start_at_or_after(from - offset) + offset)
            .min()
            .unwrap_or(i64::MAX)
    }
}

impl Selecting {
    /// `None` when `point` lies in a span; otherwise the start of the next span after it.
    fn next_span_start(&self, point: i64) -> Option<i64> {
        let low = match self.span {
            Span::Period { offset } => offset,
            Span::Window { from, .. } => from,
        };
        // Spans of later periods end later, so only the latest one starting by `point` can hold it.
        let start = self.unit.last_start_at_or_before(point - low);
        let end = match self.span {
            Span::Period { offset } => start + offset + self.unit.period_length(start),
            Span::Window { to, .. } => start + to,
        };
        if point < end {
            None
        } else {
            Some(self.unit.first_start_at_or_after(point - low + 1) + low)
        }
    }
}

impl Unit {
    /// Ordering of clauses: the shortest fires. Ties go to the later clause in the text.
    fn nominal_length(self) -> i64 {
        match self {
            Unit::Minutes(n) => n,
            Unit::Hours(n) => 60 * n,
            Unit::Days(n) => MINUTES_PER_DAY * n,
            Unit::Workday => MINUTES_PER_DAY,
            Unit::Weekday(_) => 7 * MINUTES_PER_DAY,
            Unit::Month => 31 * MINUTES_PER_DAY,
        }
    }

    /// The shortest period, the bound for `@` durations ("offsets within the unit").
    fn shortest_period(self) -> i64 {
        match self {
            Unit::Minutes(n) => n,
            Unit::Hours(n) => 60 * n,
            Unit::Days(n) => MINUTES_PER_DAY * n,
            Unit::Workday | Unit::Weekday(_) => MINUTES_PER_DAY,
            Unit::Month => 28 * MINUTES_PER_DAY,
        }
    }

    fn is_day_or_longer(self) -> bool {
        !matches!(self, Unit::Minutes(_) | Unit::Hours(_))
    }

    /// The length of the period that starts at `start` (a period start).
    fn period_length(self, start: i64) -> i64 {
        match self {
            Unit::Month => {
                let (year, month, _) = calendar::civil_from_days(start.div_euclid(MINUTES_PER_DAY));
                i64::from(calendar::days_in_month(year, month)) * MINUTES_PER_DAY
            }
            Unit::Minutes(_) | Unit::Hours(_) | Unit::Days(_) | Unit::Workday | Unit::Weekday(_) => {
                self.shortest_period()
            }
        }
    }

    /// The first period start at or after `minute`.
    fn first_start_at_or_after(self, minute: i64) -> i64 {
        match self {
            Unit::Minutes(n) => first_multiple_within(minute, n, 60),
            Unit::Hours(n) => first_multiple_within(minute, 60 * n, MINUTES_PER_DAY),
            Unit::Days(n) => ceil_div(minute, MINUTES_PER_DAY * n) * MINUTES_PER_DAY * n,
            Unit::Workday => {
                let day = ceil_div(minute, MINUTES_PER_DAY);
                let skip = match calendar::weekday(day) {
                    6 => 2,
                    0 => 1,
                    _ => 0,
                };
                (day + skip) * MINUTES_PER_DAY
            }
            Unit::Weekday(wanted) => {
                let day = ceil_div(minute, MINUTES_PER_DAY);
                let skip = (i64::from(wanted) - i64::from(calendar::weekday(day))).rem_euclid(7);
                (day + skip) * MINUTES_PER_DAY
            }
            Unit::Month => {
                let day = ceil_div(minute, MINUTES_PER_DAY);
                let (_, _, day_of_month) = calendar::civil_from_days(day);
                let first = if day_of_month == 1 { day } else { calendar::first_of_next_month(day) };
                first * MINUTES_PER_DAY
            }
        }
    }

    /// The last period start at or before `minute`.
    fn last_start_at_or_before(self, minute: i64) -> i64 {
        match self {
            Unit::Minutes(n) => last_multiple_within(minute, n, 60),
            Unit::Hours(n) => last_multiple_within(minute, 60 * n, MINUTES_PER_DAY),
            Unit::Days(n) => minute.div_euclid(MINUTES_PER_DAY * n) * MINUTES_PER_DAY * n,
            Unit::Workday => {
                let day = minute.div_euclid(MINUTES_PER_DAY);
                let back = match calendar::weekday(day) {
                    6 => 1,
                    0 => 2,
                    _ => 0,
                };
                (day - back) * MINUTES_PER_DAY
            }
            Unit::Weekday(wanted) => {
                let day = minute.div_euclid(MINUTES_PER_DAY);
                let back = (i64::from(calendar::weekday(day)) - i64::from(wanted)).rem_euclid(7);
                (day - back) * MINUTES_PER_DAY
            }
            Unit::Month => calendar::first_of_month(minute.div_euclid(MINUTES_PER_DAY)) * MINUTES_PER_DAY,
        }
    }
}

/// The first of `block + k * step` (k * step < block_length, counted from each block start) at
/// or after `minute`, or the next block's start.
fn first_multiple_within(minute: i64, step: i64, block_length: i64) -> i64 {
    let block = minute.div_euclid(block_length) * block_length;
    let within = ceil_div(minute - block, step) * step;
    block + within.min(block_length)
}

/// The last of `block + k * step` (k * step < block_length) at or before `minute`.
fn last_multiple_within(minute: i64, step: i64, block_length: i64) -> i64 {
    let block = minute.div_euclid(block_length) * block_length;
    block + (minute - block).div_euclid(step) * step
}

fn ceil_div(numerator: i64, denominator: i64) -> i64 {
    -(-numerator).div_euclid(denominator)
}

// ---------------------------------------------------------------------------------------------
// Parsing.

/// One clause as written, before the firing one is chosen.
struct Clause {
    unit: Unit,
    offset: i64,
    /// The `@` list, if any.
    at: Option<AtList>,
}

/// An `@` list: fire offsets, or one window.
enum AtList {
    Points(Vec<Point>),
    Window { from: i64, to: i64, position: Position },
}

/// One `@` item that is not a window: a duration (`10m`) or a time of day (`04:15`).
struct Point {
    minutes: i64,
    position: Position,
}

/// Where something was written: char offsets `[start, end)`.
#[derive(Clone, Copy)]
struct Position {
    start: usize,
    end: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// A run of ASCII digits; saturates far above any accepted value.
    Number(u64),
    /// A run of ASCII letters, lowercased.
    Word(String),
    /// Any other single non-space character.
    Symbol(char),
    End,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

fn lex(chars: &[char]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let start = index;
        let c = chars[index];
        if c.is_whitespace() {
            index += 1;
            continue;
        }
        let kind = if c.is_ascii_digit() {
            let mut value: u64 = 0;
            while index < chars.len() && chars[index].is_ascii_digit() {
                let digit = u64::from(chars[index].to_digit(10).unwrap_or(0));
                value = value.saturating_mul(10).saturating_add(digit);
                index += 1;
            }
            Kind::Number(value)
        } else if c.is_ascii_alphabetic() {
            while index < chars.len() && chars[index].is_ascii_alphabetic() {
                index += 1;
            }
            Kind::Word(chars[start..index].iter().collect::<String>().to_ascii_lowercase())
        } else {
            index += 1;
            Kind::Symbol(c)
        };
        tokens.push(Token { kind, start, end: index });
    }
    tokens.push(Token { kind: Kind::End, start: chars.len(), end: chars.len() });
    tokens
}

struct Parser<'a> {
    chars: &'a [char],
    tokens: Vec<Token>,
    index: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[self.index.min(last)]
    }

    /// The token after the current one.
    fn peek_second(&self) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.index + 1).min(last)]
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if self.index < self.tokens.len() - 1 {
            self.index += 1;
        }
        token
    }

    fn error(&self, position: usize, expected: &str) -> ParseError {
        ParseError { position, expected: expected.to_string(), found: found_at(self.chars, position) }
    }

    fn error_span(&self, position: Position, expected: &str) -> ParseError {
        ParseError {
            position: position.start,
            expected: expected.to_string(),
            found: self.chars[position.start..position.end].iter().collect(),
        }
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(&self.peek().kind, Kind::Word(w) if w == word)
    }

    fn clauses(&mut self) -> Result<Vec<Clause>, ParseError> {
        let mut clauses = Vec::new();
        if self.peek().kind == Kind::Symbol('@') {
            // `@ 04:15` is short for `every 1d @ 04:15`.
            let mut clause = Clause { unit: Unit::Days(1), offset: 0, at: None };
            self.modifiers(&mut clause)?;
            clauses.push(clause);
        }
        loop {
            if self.peek().kind == Kind::End {
                break;
            }
            if !self.is_word("every") {
                let expected = if clauses.is_empty() { "`every` or `@`" } else { "`every` or end of text" };
                return Err(self.error(self.peek().start, expected));
            }
            self.bump();
            let unit = self.unit()?;
            let mut clause = Clause { unit, offset: 0, at: None };
            self.modifiers(&mut clause)?;
            clauses.push(clause);
        }
        Ok(clauses)
    }

    fn unit(&mut self) -> Result<Unit, ParseError> {
        let token = self.bump();
        match &token.kind {
            Kind::Number(n) => {
                let letter = self.peek().clone();
                let unit_word = match &letter.kind {
                    Kind::Word(word) if letter.start == token.end => word.clone(),
                    _ => return Err(self.error(token.end, UNIT_EXPECTED)),
                };
                let n = *n;
                let (max, unit): (u64, fn(i64) -> Unit) = match unit_word.as_str() {
                    "m" => (60, Unit::Minutes),
                    "h" => (24, Unit::Hours),
                    "d" => (MAX_DAYS, Unit::Days),
                    _ => return Err(self.error(letter.start, UNIT_EXPECTED)),
                };
                if n == 0 || n > max {
                    let expected = match unit_word.as_str() {
                        "m" => "a number of minutes from 1 to 60 (counted from the start of each hour)".to_string(),
                        "h" => "a number of hours from 1 to 24 (counted from the start of each day)".to_string(),
                        _ => format!("a number of days from 1 to {MAX_DAYS}"),
                    };
                    return Err(self.error(token.start, &expected));
                }
                self.bump();
                Ok(unit(n as i64))
            }
            Kind::Word(word) => {
                let unit = match word.as_str() {
                    "minute" => Unit::Minutes(1),
                    "hour" => Unit::Hours(1),
                    "day" => Unit::Days(1),
                    "workday" => Unit::Workday,
                    "month" => Unit::Month,
                    other => match WEEKDAYS.iter().position(|name| *name == other) {
                        Some(day) => Unit::Weekday(day as u32),
                        None => return Err(self.error(token.start, UNIT_EXPECTED)),
                    },
                };
                Ok(unit)
            }
            Kind::Symbol(_) | Kind::End => Err(self.error(token.start, UNIT_EXPECTED)),
        }
    }

    /// `offset ...` and `@ ...`, at most one of each, in either order.
    fn modifiers(&mut self, clause: &mut Clause) -> Result<(), ParseError> {
        let mut has_offset = false;
        loop {
            let token = self.peek().clone();
            if self.is_word("offset") {
                if has_offset {
                    return Err(
                        self.error(token.start, "one `offset` per clause (write it as one duration, e.g. `1d8h`)")
                    );
                }
                has_offset = true;
                self.bump();
                clause.offset = self.duration()?.0;
            } else if token.kind == Kind::Symbol('@') {
                if clause.at.is_some() {
                    return Err(self.error(token.start, "one `@` per clause (separate its times with commas)"));
                }
                self.bump();
                clause.at = Some(self.at_list(clause.unit)?);
            } else if token.kind == Kind::End || self.is_word("every") {
                return Ok(());
            } else {
                return Err(self.error(token.start, "`offset`, `@`, `every` or end of text"));
            }
        }
    }

    /// `XdYhZm`, any non-empty part of it in that order, with no spaces: minutes and where.
    fn duration(&mut self) -> Result<(i64, Position), ParseError> {
        const EXPECTED: &str = "a duration like `30m`, `8h30m` or `2d8h30m`";
        let start = self.peek().start;
        let mut total: u64 = 0;
        let mut last_rank = None;
        loop {
            let number = self.peek().clone();
            let Kind::Number(n) = number.kind else {
                return Err(self.error(number.start, EXPECTED));
            };
            let letter = self.peek_second().clone();
            let word = match &letter.kind {
                Kind::Word(word) if letter.start == number.end => word.as_str(),
                _ => return Err(self.error(number.end, "a unit d, h or m right after the number (e.g. `30m`)")),
            };
            let (rank, minutes_per) = match word {
                "d" => (0, MINUTES_PER_DAY as u64),
                "h" => (1, 60),
                "m" => (2, 1),
                _ => return Err(self.error(letter.start, "a unit d, h or m right after the number (e.g. `30m`)")),
            };
            if last_rank.is_some_and(|last| last >= rank) {
                return Err(self.error(number.start, "a duration in the order days, hours, minutes, e.g. `2d8h30m`"));
            }
            last_rank = Some(rank);
            total = total.saturating_add(n.saturating_mul(minutes_per));
            self.bump();
            self.bump();
            let next = self.peek();
            if !(matches!(next.kind, Kind::Number(_)) && next.start == letter.end) {
                let position = Position { start, end: letter.end };
                if total > MAX_DAYS * MINUTES_PER_DAY as u64 {
                    return Err(self.error_span(position, &format!("a duration of at most {MAX_DAYS}d")));
                }
                return Ok((total as i64, position));
            }
        }
    }

    /// `HH:MM`, the current token being the hour: minutes into the day.
    fn time_of_day(&mut self) -> Result<(i64, Position), ParseError> {
        let hour = self.bump();
        let Kind::Number(hours) = hour.kind else {
            return Err(self.error(hour.start, "a time of day like `04:15`"));
        };
        if hours > 23 || hour.end - hour.start > 2 {
            return Err(self.error(hour.start, "an hour 00-23"));
        }
        let colon = self.bump();
        if colon.kind != Kind::Symbol(':') || colon.start != hour.end {
            return Err(self.error(colon.start, "`:` and the minutes, e.g. `04:15`"));
        }
        let minute = self.bump();
        match minute.kind {
            Kind::Number(minutes) if minute.start == colon.end && minute.end - minute.start == 2 && minutes <= 59 => {
                Ok(((hours * 60 + minutes) as i64, Position { start: hour.start, end: minute.end }))
            }
            _ => Err(self.error(colon.end, "two digits of minutes 00-59, e.g. `04:15`")),
        }
    }

    /// The items after `@`: durations and times of day, or one window.
    fn at_list(&mut self, unit: Unit) -> Result<AtList, ParseError> {
        const EXPECTED: &str = "a time of day like `04:15`, a window like `10:00-01:00` or a duration like `10m`";
        let mut points = Vec::new();
        let mut window = None;
        loop {
            let token = self.peek().clone();
            if !matches!(token.kind, Kind::Number(_)) {
                return Err(self.error(token.start, EXPECTED));
            }
            if window.is_some() {
                return Err(self.error(token.start, "end of the `@` list: a window stands alone"));
            }
            let next = self.peek_second().clone();
            if next.kind == Kind::Symbol(':') && next.start == token.end {
                let (from, from_position) = self.time_of_day()?;
                let is_window = self.peek().kind == Kind::Symbol('-');
                let (to, position) = if is_window {
                    self.bump();
                    let (to, to_position) = self.time_of_day()?;
                    (to, Position { start: from_position.start, end: to_position.end })
                } else {
                    (from, from_position)
                };
                if !unit.is_day_or_longer() {
                    return Err(self.error_span(
                        position,
                        "a duration like `10m`: a time of day needs a unit of a day or longer (`every 1d @ 04:15`)",
                    ));
                }
                if is_window {
                    if !points.is_empty() {
                        return Err(self.error_span(position, "a fire time: a window stands alone after `@`"));
                    }
                    // Start included, end excluded; an end at or before the start is the next day.
                    let to = if to <= from { to + MINUTES_PER_DAY } else { to };
                    window = Some((from, to, position));
                } else {
                    points.push(Point { minutes: from, position });
                }
            } else if matches!(next.kind, Kind::Word(_)) && next.start == token.end {
                let (minutes, position) = self.duration()?;
                if minutes >= unit.shortest_period() {
                    let expected = format!("an offset within the unit, less than {}", describe_length(unit));
                    return Err(self.error_span(position, &expected));
                }
                points.push(Point { minutes, position });
            } else {
                return Err(self.error(token.end, "a unit d, h or m, or `:` and minutes, right after the number"));
            }
            if self.peek().kind == Kind::Symbol(',') {
                self.bump();
            } else {
                break;
            }
        }
        Ok(match window {
            Some((from, to, position)) => AtList::Window { from, to, position },
            None => AtList::Points(points),
        })
    }
}

fn describe_length(unit: Unit) -> String {
    match unit {
        Unit::Minutes(n) => format!("{n}m"),
        Unit::Hours(n) => format!("{n}h"),
        Unit::Days(n) => format!("{n}d"),
        Unit::Workday | Unit::Weekday(_) => "1d".to_string(),
        Unit::Month => "28d (the shortest month)".to_string(),
    }
}

/// Chooses the firing clause (shortest unit, the later one on ties) and checks what each
/// clause's role allows.
fn build(chars: &[char], clauses: Vec<Clause>) -> Result<Every, ParseError> {
    let firing_index = clauses
        .iter()
        .enumerate()
        .min_by_key(|(index, clause)| (clause.unit.nominal_length(), std::cmp::Reverse(*index)))
        .map(|(index, _)| index)
        .ok_or_else(|| ParseError {
            position: chars.len(),
            expected: "`every` or `@`".to_string(),
            found: "end of text".to_string(),
        })?;
    let mut firing = None;
    let mut selecting = Vec::new();
    for (index, clause) in clauses.into_iter().enumerate() {
        if index == firing_index {
            let offsets = match clause.at {
                None => vec![clause.offset],
                Some(AtList::Points(points)) => {
                    let mut offsets: Vec<i64> = points.iter().map(|point| clause.offset + point.minutes).collect();
                    offsets.sort_unstable();
                    offsets.dedup();
                    offsets
                }
                Some(AtList::Window { position, .. }) => {
                    return Err(ParseError {
                        position: position.start,
                        expected: "a fire time, not a window: a window selects when an inner clause fires; add \
                                   one, e.g. `every 1m every 1d @ 01:00-02:00`"
                            .to_string(),
                        found: chars[position.start..position.end].iter().collect(),
                    });
                }
            };
            firing = Some(Firing { unit: clause.unit, offsets });
        } else {
            let span = match clause.at {
                None => Span::Period { offset: clause.offset },
                Some(AtList::Window { from, to, .. }) => {
                    Span::Window { from: clause.offset + from, to: clause.offset + to }
                }
                Some(AtList::Points(points)) => {
                    let position = points.first().map_or(Position { start: 0, end: 0 }, |point| point.position);
                    return Err(ParseError {
                        position: position.start,
                        expected: "a window `@ HH:MM-HH:MM` or an `offset` on an outer clause (only the \
                                   innermost clause fires)"
                            .to_string(),
                        found: chars[position.start..position.end].iter().collect(),
                    });
                }
            };
            selecting.push(Selecting { unit: clause.unit, span });
        }
    }
    let firing = firing.ok_or_else(|| ParseError {
        position: chars.len(),
        expected: "`every` or `@`".to_string(),
        found: "end of text".to_string(),
    })?;
    Ok(Every { firing, selecting })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::tests::{next_fires, utc};
    use crate::schedule::Entry;

    const UNITS: [Unit; 12] = [
        Unit::Minutes(1),
        Unit::Minutes(7),
        Unit::Minutes(60),
        Unit::Hours(1),
        Unit::Hours(5),
        Unit::Hours(24),
        Unit::Days(1),
        Unit::Days(3),
        Unit::Workday,
        Unit::Weekday(0),
        Unit::Weekday(3),
        Unit::Month,
    ];

    /// The definition of a period start, minute by minute.
    fn is_start(unit: Unit, minute: i64) -> bool {
        let day = minute.div_euclid(MINUTES_PER_DAY);
        let midnight = minute.rem_euclid(MINUTES_PER_DAY) == 0;
        match unit {
            Unit::Minutes(n) => minute.rem_euclid(60) % n == 0,
            Unit::Hours(n) => minute.rem_euclid(MINUTES_PER_DAY) % (60 * n) == 0,
            Unit::Days(n) => minute.rem_euclid(MINUTES_PER_DAY * n) == 0,
            Unit::Workday => midnight && (1..=5).contains(&calendar::weekday(day)),
            Unit::Weekday(wanted) => midnight && calendar::weekday(day) == wanted,
            Unit::Month => midnight && calendar::civil_from_days(day).2 == 1,
        }
    }

    #[test]
    fn period_starts_match_their_definition() {
        // Around a year end and a leap day, 70 days each, minute by minute.
        for origin in [utc("2026-11-20T00:00") / 60, utc("2028-01-25T00:00") / 60] {
            let range = origin..origin + 70 * MINUTES_PER_DAY;
            for unit in UNITS {
                let starts: Vec<i64> = range.clone().filter(|&minute| is_start(unit, minute)).collect();
                let (first, last) = (starts[0], starts[starts.len() - 1]);
                for minute in range.clone().filter(|&minute| minute > first && minute <= last) {
                    let at_or_after = starts[starts.partition_point(|&start| start < minute)];
                    let at_or_before = starts[starts.partition_point(|&start| start <= minute) - 1];
                    assert_eq!(unit.first_start_at_or_after(minute), at_or_after, "{unit:?} first from {minute}");
                    assert_eq!(unit.last_start_at_or_before(minute), at_or_before, "{unit:?} last from {minute}");
                }
            }
        }
    }

    /// Whether `minute` is a fire time, straight from the definition: a period start of the
    /// firing clause plus one of its offsets, inside a span of each selecting clause.
    fn is_fire(every: &Every, minute: i64) -> bool {
        let fires = every.firing.offsets.iter().any(|offset| is_start(every.firing.unit, minute - offset));
        fires
            && every.selecting.iter().all(|clause| {
                // Look back over the periods whose span may still hold `minute`.
                let (low, length) = match clause.span {
                    Span::Period { offset } => (offset, None),
                    Span::Window { from, to } => (from, Some(to - from)),
                };
                // Period starts by `period_starts_match_their_definition`; 64 periods back
                // covers every offset used below.
                let mut start = clause.unit.last_start_at_or_before(minute - low);
                (0..64).any(|_| {
                    let span_end = start + low + length.unwrap_or_else(|| clause.unit.period_length(start));
                    let holds = start + low <= minute && minute < span_end;
                    start = clause.unit.last_start_at_or_before(start - 1);
                    holds
                })
            })
    }

    #[test]
    fn fire_times_match_their_definition() {
        let expressions = [
            "every 7m",
            "every 5m offset 1m",
            "every 1h @ 0m, 10m, 20m, 40m, 50m",
            "every 10m every 1d @ 10:00-01:00",
            "every 7m every 1d @ 23:00-00:30",
            "every monday every hour offset 30m",
            "every 6h every monday offset 8h",
            "every 1h every workday @ 22:00-02:00",
            "every 3h every month offset 10d",
            "every 20m every 2d offset 5h",
            "every 1h offset 50m every 1d @ 01:00-02:00",
            "every 13m every 7m offset 3m",
            "every workday every 1d @ 04:15, 16:15",
            "every workday offset 8h30m",
            "every month offset 2d8h30m",
        ];
        for text in expressions {
            let every =
                Every::parse(&text.chars().collect::<Vec<_>>()).unwrap_or_else(|error| panic!("{text}: {error}"));
            for origin in [utc("2026-12-20T00:00") / 60, utc("2028-02-20T00:00") / 60] {
                let end = origin + 20 * MINUTES_PER_DAY;
                let expected: Vec<i64> = (origin..end).filter(|&minute| is_fire(&every, minute)).collect();
                let mut found = Vec::new();
                let mut from = origin;
                while let Some(minute) = every.next_at_or_after(from, end - 1) {
                    found.push(minute);
                    from = minute + 1;
                }
                assert!(!expected.is_empty(), "{text}");
                assert_eq!(found, expected, "{text}");
            }
        }
    }

    fn error(text: &str) -> (usize, String) {
        let error = Entry::parse(text).expect_err(text);
        (error.position, error.found)
    }

    #[test]
    fn every_7m_starts_again_at_each_hour() {
        assert_eq!(
            next_fires("every 7m", "2026-12-07T08:49", 5),
            [
                "2026-12-07T08:56:00Z",
                "2026-12-07T09:00:00Z",
                "2026-12-07T09:07:00Z",
                "2026-12-07T09:14:00Z",
                "2026-12-07T09:21:00Z"
            ]
        );
    }

    #[test]
    fn every_3h_counts_from_the_start_of_the_day() {
        // 24 is a multiple of 3, so 5h shows the reset: 00, 05, 10, 15, 20, then 00 again.
        assert_eq!(
            next_fires("every 3h", "2026-12-07T19:00", 3),
            ["2026-12-07T21:00:00Z", "2026-12-08T00:00:00Z", "2026-12-08T03:00:00Z"]
        );
        assert_eq!(
            next_fires("every 5h", "2026-12-07T15:00", 3),
            ["2026-12-07T20:00:00Z", "2026-12-08T00:00:00Z", "2026-12-08T05:00:00Z"]
        );
        assert_eq!(next_fires("every hour", "2026-12-07T23:59", 1), ["2026-12-08T00:00:00Z"]);
    }

    #[test]
    fn every_2d_counts_from_the_epoch_day() {
        // 2026-12-07 is day 20_794 since 1970-01-01, an even day.
        assert_eq!(
            next_fires("every 2d", "2026-12-06T12:00", 3),
            ["2026-12-07T00:00:00Z", "2026-12-09T00:00:00Z", "2026-12-11T00:00:00Z"]
        );
        assert_eq!(next_fires("every 2d @ 04:15", "2026-12-07T04:15", 1), ["2026-12-09T04:15:00Z"]);
        assert_eq!(next_fires("every 1d offset 6h", "2026-12-07T06:00", 1), ["2026-12-08T06:00:00Z"]);
        assert_eq!(next_fires("every day", "2026-12-07T06:00", 1), ["2026-12-08T00:00:00Z"]);
    }

    #[test]
    fn calendar_units() {
        // 2026-12-07 is a Monday.
        assert_eq!(
            next_fires("every month", "2026-11-15T00:00", 3),
            ["2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"]
        );
        assert_eq!(next_fires("every sunday", "2026-12-07T00:00", 2), ["2026-12-13T00:00:00Z", "2026-12-20T00:00:00Z"]);
        assert_eq!(
            next_fires("every workday", "2026-12-11T00:00", 2),
            ["2026-12-14T00:00:00Z", "2026-12-15T00:00:00Z"]
        );
        assert_eq!(next_fires("every minute", "2026-12-07T23:59", 1), ["2026-12-08T00:00:00Z"]);
        assert_eq!(next_fires("every friday @ 17:30", "2026-12-07T00:00", 1), ["2026-12-11T17:30:00Z"]);
        assert_eq!(
            next_fires("every month @ 04:15, 16:15", "2026-12-01T05:00", 2),
            ["2026-12-01T16:15:00Z", "2027-01-01T04:15:00Z"]
        );
        // Through a leap day: the 29th of February is a day like any other.
        assert_eq!(
            next_fires("every month offset 28d", "2028-02-01T00:00", 2),
            ["2028-02-29T00:00:00Z", "2028-03-29T00:00:00Z"]
        );
    }

    #[test]
    fn offset_and_at_add_up() {
        assert_eq!(
            next_fires("every 1h offset 5m @ 0m, 30m", "2026-12-07T08:00", 3),
            ["2026-12-07T08:05:00Z", "2026-12-07T08:35:00Z", "2026-12-07T09:05:00Z"]
        );
        assert_eq!(
            next_fires("every 1d @ 04:15 offset 1h", "2026-12-07T00:00", 1),
            next_fires("every 1d @ 05:15", "2026-12-07T00:00", 1)
        );
        assert_eq!(
            next_fires("every 10m @ 1m", "2026-12-07T08:00", 3),
            next_fires("every 10m offset 1m", "2026-12-07T08:00", 3)
        );
        // Spaces around commas are optional.
        assert_eq!(
            next_fires("every 1h @0m,30m", "2026-12-07T08:00", 2),
            ["2026-12-07T08:30:00Z", "2026-12-07T09:00:00Z"]
        );
    }

    #[test]
    fn outer_clauses_select_spans() {
        // An offset moves the outer span: Mondays from 08:00 to Tuesday 08:00.
        assert_eq!(
            next_fires("every monday offset 8h every 6h", "2026-12-07T00:00", 5),
            [
                "2026-12-07T12:00:00Z",
                "2026-12-07T18:00:00Z",
                "2026-12-08T00:00:00Z",
                "2026-12-08T06:00:00Z",
                "2026-12-14T12:00:00Z"
            ]
        );
        // A workday window: Monday to Friday, 09:00 to 17:00, on the hour.
        assert_eq!(
            next_fires("every workday @ 09:00-17:00 every hour", "2026-12-11T16:00", 2),
            ["2026-12-14T09:00:00Z", "2026-12-14T10:00:00Z"]
        );
        // A window that wraps past midnight belongs to the day it starts on.
        assert_eq!(
            next_fires("every friday @ 22:00-02:00 every 1h", "2026-12-07T00:00", 5),
            [
                "2026-12-11T22:00:00Z",
                "2026-12-11T23:00:00Z",
                "2026-12-12T00:00:00Z",
                "2026-12-12T01:00:00Z",
                "2026-12-18T22:00:00Z"
            ]
        );
        // Order in the text does not matter, except for ties.
        assert_eq!(
            next_fires("every hour offset 30m every monday", "2026-12-07T22:45", 2),
            next_fires("every monday every hour offset 30m", "2026-12-07T22:45", 2)
        );
        // A tie: the later clause fires, the earlier selects.
        assert_eq!(
            next_fires("every 1d @ 22:00-03:00 every 1d @ 30m", "2026-12-07T00:00", 1),
            ["2026-12-07T00:30:00Z"],
            "00:30 is inside the span from 22:00 of the day before to 03:00"
        );
        // On a tie the later clause fires, so here the first one has fire times but selects.
        assert_eq!(error("every 1d @ 30m every 1d @ 22:00-03:00"), (11, "30m".to_string()));
        // A month span runs to the next month: the 31st is in it.
        assert_eq!(
            next_fires("every month every 1d @ 12:00", "2026-12-30T13:00", 2),
            ["2026-12-31T12:00:00Z", "2027-01-01T12:00:00Z"]
        );
        // Shifted month spans still tile: January's runs from Jan 31 to Mar 3, so every day fires.
        assert_eq!(
            next_fires("every month offset 30d every 1d", "2027-02-01T00:00", 2),
            ["2027-02-02T00:00:00Z", "2027-02-03T00:00:00Z"]
        );
        // A day of the week and a window: Mondays, 01:00 to 02:00.
        assert_eq!(
            next_fires("every 30m every 1d @ 01:00-02:00 every monday", "2026-12-07T01:30", 2),
            ["2026-12-14T01:00:00Z", "2026-12-14T01:30:00Z"]
        );
    }

    #[test]
    fn parse_errors_name_the_spot() {
        let window = "a fire time, not a window: a window selects when an inner clause fires; add one, e.g. \
                      `every 1m every 1d @ 01:00-02:00`";
        let error_of = |text: &str| Entry::parse(text).expect_err(text);
        assert_eq!(error_of("every 1d @ 10:00-01:00").expected, window);
        assert_eq!(error("every 1d @ 10:00-01:00"), (11, "10:00-01:00".to_string()));
        assert_eq!(error("@ 01:00-02:00"), (2, "01:00-02:00".to_string()));
        assert_eq!(
            error_of("every 1h @ 04:15").expected,
            "a duration like `10m`: a time of day needs a unit of a day or longer (`every 1d @ 04:15`)"
        );
        assert_eq!(error("every 1h @ 04:15"), (11, "04:15".to_string()));
        assert_eq!(error("every 10m @ 10m"), (12, "10m".to_string()));
        assert_eq!(error_of("every 10m @ 10m").expected, "an offset within the unit, less than 10m");
        assert_eq!(error("every 0m"), (6, "0m".to_string()));
        assert_eq!(error("every 61m"), (6, "61m".to_string()));
        assert_eq!(error("every 25h"), (6, "25h".to_string()));
        assert_eq!(error("every 5m offset"), (15, "end of text".to_string()));
        assert_eq!(error("every 5m offset 1 m"), (17, "a space".to_string()));
        assert_eq!(error("every 5m offset 1m2h"), (18, "2h".to_string()));
        assert_eq!(
            error_of("every 5m offset 1m2h").expected,
            "a duration in the order days, hours, minutes, e.g. `2d8h30m`"
        );
        assert_eq!(error("every 5m offset 1m offset 2m"), (19, "offset".to_string()));
        assert_eq!(error("every 1h @ 0m @ 30m"), (14, "@".to_string()));
        assert_eq!(error("every 1d @ 24:00"), (11, "24".to_string()));
        assert_eq!(error("every 1d @ 04:60"), (14, "60".to_string()));
        assert_eq!(error("every 1d @ 4"), (12, "end of text".to_string()));
        assert_eq!(error("every 1d @ 04:15,"), (17, "end of text".to_string()));
        assert_eq!(error("every 1d @ 04:15 daily"), (17, "daily".to_string()));
        assert_eq!(error("every 5m every"), (14, "end of text".to_string()));
        assert_eq!(error("@"), (1, "end of text".to_string()));
        // Fire times on an outer clause: only the innermost clause fires.
        assert_eq!(error("every 1d @ 04:15 every 1m"), (11, "04:15".to_string()));
        assert_eq!(error("every 1d @ 01:00-02:00, 04:00"), (24, "04".to_string()));
    }
}
