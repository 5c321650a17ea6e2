//! Pure parsers for single config values: durations, sizes, umasks, shell-style command lines,
//! and the wording shared by type errors and "did you mean" suggestions.
//!
//! Every function returns the message text only; the caller adds the origin, key path and
//! position. Messages are lowercase with no trailing period.

use std::time::Duration;

use serde_yaml::Value;

use crate::spec::{AutoRestart, Signal};

/// How a value reads in "expected X, found Y": `a string "five"`, `an integer 5`, `a list`.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(flag) => format!("a boolean {flag}"),
        Value::Number(number) if number.is_f64() => format!("a number {number}"),
        Value::Number(number) => format!("an integer {number}"),
        Value::String(text) => format!("a string {text:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(tagged) => format!("a value tagged {}", tagged.tag),
    }
}

/// A whole number, or a message naming what was found instead.
pub(crate) fn integer(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(number) if !number.is_f64() => {
            number.as_i64().ok_or_else(|| format!("integer {number} is too large"))
        }
        other => Err(format!("expected an integer, found {}", describe(other))),
    }
}

/// An integer in `minimum..=u32::MAX`.
pub(crate) fn bounded_u32(value: &Value, minimum: u32) -> Result<u32, String> {
    let number = integer(value)?;
    if number < i64::from(minimum) {
        let bound = if minimum == 0 { "zero or more".to_string() } else { format!("at least {minimum}") };
        return Err(format!("must be {bound}, found {number}"));
    }
    u32::try_from(number).map_err(|_| format!("{number} is too large (at most {})", u32::MAX))
}

pub(crate) fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        other => Err(format!("expected true or false, found {}", describe(other))),
    }
}

/// A string, or the text of a number or boolean (for env values and argv lists).
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

const DURATION_HINT: &str = "expected e.g. \"5s\", \"250ms\"";

/// Seconds as a number, or a string such as `"5s"`, `"250ms"`, `"1.5s"`, `"2m"`, `"1h"`, `"10"`.
pub(crate) fn duration(value: &Value) -> Result<Duration, String> {
    match value {
        Value::Number(number) => {
            let seconds = number.as_f64().unwrap_or(f64::NAN);
            if seconds < 0.0 {
                return Err(format!("negative duration {number} (expected zero or more seconds)"));
            }
            nanoseconds(seconds * 1e9).ok_or_else(|| format!("invalid duration {number} ({DURATION_HINT})"))
        }
        Value::String(text) => duration_text(text),
        other => Err(format!(
            "expected a duration (seconds, or a string like \"5s\" or \"250ms\"), found {}",
            describe(other)
        )),
    }
}

pub(crate) fn duration_text(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(format!("negative duration {text:?} (expected zero or more seconds)"));
    }
    let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = (&trimmed[..split], trimmed[split..].trim());
    let unit_nanoseconds = match unit {
        "" | "s" => 1e9,
        "ms" => 1e6,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => return Err(format!("invalid duration {text:?} ({DURATION_HINT})")),
    };
    number
        .parse::<f64>()
        .ok()
        .and_then(|value| nanoseconds(value * unit_nanoseconds))
        .ok_or_else(|| format!("invalid duration {text:?} ({DURATION_HINT})"))
}

fn nanoseconds(value: f64) -> Option<Duration> {
    // u64 nanoseconds reach 584 years, more than any timeout needs.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    (value.is_finite() && (0.0..u64::MAX as f64).contains(&value)).then(|| Duration::from_nanos(value.round() as u64))
}

/// Bytes as an integer, or a string such as `"64k"`, `"64KiB"`, `"1M"`, `"1MiB"`.
pub(crate) fn size(value: &Value) -> Result<usize, String> {
    const HINT: &str = "expected bytes, or e.g. \"64k\", \"1MiB\"";
    match value {
        Value::Number(_) => {
            let number = integer(value)?;
            usize::try_from(number).map_err(|_| format!("invalid size {number} ({HINT})"))
        }
        Value::String(text) => {
            let trimmed = text.trim();
            let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
            let multiplier: usize = match trimmed[split..].trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                "g" | "gb" | "gib" => 1 << 30,
                _ => return Err(format!("invalid size {text:?} ({HINT})")),
            };
            trimmed[..split]
                .parse::<usize>()
                .ok()
                .and_then(|number| number.checked_mul(multiplier))
                .ok_or_else(|| format!("invalid size {text:?} ({HINT})"))
        }
        other => Err(format!("expected a size ({HINT}), found {}", describe(other))),
    }
}

/// Octal digits, optionally prefixed `0o`: `"022"`, `"0o022"`, `"77"`.
pub(crate) fn umask_text(text: &str) -> Result<u32, String> {
    let trimmed = text.trim();
    if trimmed.starts_with("0x") || trimmed.starts_with("0X") {
        return Err(format!("umask {text:?} is hexadecimal; write it in octal, e.g. 022"));
    }
    let digits = trimmed.strip_prefix("0o").or_else(|| trimmed.strip_prefix("0O")).unwrap_or(trimmed);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("invalid umask {text:?} (expected octal digits, e.g. 022)"));
    }
    if digits.contains(['8', '9']) {
        return Err(format!("umask {text:?} is not octal (the digits 8 and 9 are not allowed)"));
    }
    match u32::from_str_radix(digits, 8) {
        Ok(mask) if mask <= 0o777 => Ok(mask),
        _ => Err(format!("umask {text:?} is out of range (at most 777)")),
    }
}

/// Characters a POSIX shell would treat as pipe, list or redirection operators when unquoted.
/// sv-lite runs no shell, so they are rejected rather than silently passed as arguments.
/// (Parentheses are left alone: templates such as `%(name)s` use them.)
const SHELL_OPERATORS: &[char] = &['|', '&', ';', '<', '>'];

/// Splits a command line into words as a POSIX shell would, without any expansion: single
/// quotes, double quotes (where backslash escapes `"`, `\`, `$`, `` ` `` and newline), and
/// backslash outside quotes.
pub(crate) fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(inner) => word.push(inner),
                        None => return Err("unterminated single quote in the command".to_string()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped @ ('"' | '\\' | '$' | '`')) => word.push(escaped),
                            Some('\n') => {}
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err("unterminated double quote in the command".to_string()),
                        },
                        Some(inner) => word.push(inner),
                        None => return Err("unterminated double quote in the command".to_string()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(escaped) => {
                    in_word = true;
                    word.push(escaped);
                }
                None => return Err("the command ends with a lone backslash".to_string()),
            },
            operator if SHELL_OPERATORS.contains(&operator) => {
                return Err(format!(
                    "`{operator}` is a shell operator, but sv-lite runs the command without a shell; \
                     quote it, or run a shell: cmd: [\"sh\", \"-c\", \"...\"]"
                ));
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Names other tools use for our keys (supervisord, Tron, docker-compose habits).
const ALIASES: &[(&str, &str)] = &[
    ("command", "cmd"),
    ("cmd", "command"),
    ("directory", "workingdir"),
    ("cwd", "workingdir"),
    ("working_dir", "workingdir"),
    ("working_directory", "workingdir"),
    ("environment", "env"),
    ("stdout_logfile", "stdout"),
    ("stderr_logfile", "stderr"),
    ("stdout_logfile_maxbytes", "stdout_maxbytes"),
    ("stdout_logfile_backups", "stdout_backups"),
    ("stderr_logfile_maxbytes", "stderr_maxbytes"),
    ("stderr_logfile_backups", "stderr_backups"),
    ("stopwaitsecs", "stoptime"),
    ("startsecs", "starttime"),
    ("count", "numprocs"),
    ("numprocs", "count"),
    ("instances", "numprocs"),
    ("pidfile", "pid_file"),
    // Aurora's names, and the short forms of ours.
    ("portmap", "ports"),
    ("health_check_config", "health_check"),
    ("http_lifecycle", "lifecycle"),
    ("lifecycle_config", "lifecycle"),
    ("command", "shell"),
    ("shell_command", "shell"),
    ("interval", "interval_secs"),
    ("timeout", "timeout_secs"),
    ("path", "endpoint"),
    ("url", "endpoint"),
    ("status", "expected_response_code"),
    ("status_code", "expected_response_code"),
    ("expected_status", "expected_response_code"),
    ("expected_body", "expected_response"),
    // systemd's and docker-compose's names for readiness, order and sockets.
    ("type", "readiness"),
    ("notify", "readiness"),
    ("sd_notify", "notify"),
    ("systemd", "notify"),
    ("health_check", "health"),
    ("watchdogsec", "watchdog"),
    ("watchdog_sec", "watchdog"),
    ("timeoutstartsec", "ready_timeout"),
    ("start_timeout", "ready_timeout"),
    ("requires", "depends_on"),
    ("after", "depends_on"),
    ("dependencies", "depends_on"),
    ("service_started", "started"),
    ("service_healthy", "healthy"),
    ("service_completed_successfully", "completed"),
    ("running", "ready"),
    ("listen", "sockets"),
    ("listen_stream", "sockets"),
    ("listenstream", "sockets"),
    // service_manager's and cron's names for a schedule.
    ("scheduling", "schedule"),
    ("crontab", "cron"),
    ("run_timeout", "timeout"),
];

/// The known word closest to `word`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = word.to_ascii_lowercase();
    let aliased = ALIASES
        .iter()
        .filter(|(alias, _)| *alias == lower)
        .find_map(|(_, target)| known.iter().find(|name| *name == target));
    if let Some(found) = aliased {
        return Some(found);
    }
    known
        .iter()
        .map(|name| (edit_distance(&lower, name), *name))
        .filter(|&(distance, name)| distance <= (name.len() / 3).max(1))
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, name)| name)
}

/// Levenshtein distance over chars.
pub(crate) fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (i, left_char) in left.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, right_char) in right.iter().enumerate() {
            let substitution = previous[j] + usize::from(left_char != *right_char);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[right.len()]
}

pub(crate) fn autorestart(value: &Value) -> Result<AutoRestart, String> {
    const NAMES: &[&str] = &["always", "never", "unexpected"];
    match value {
        Value::Bool(true) => Ok(AutoRestart::Always),
        Value::Bool(false) => Ok(AutoRestart::Never),
        Value::String(text) => match text.to_ascii_lowercase().as_str() {
            "always" => Ok(AutoRestart::Always),
            "never" => Ok(AutoRestart::Never),
            "unexpected" => Ok(AutoRestart::Unexpected),
            _ => Err(match suggest(text, NAMES) {
                Some(near) => format!("expected always, never or unexpected, found {text:?}; did you mean `{near}`?"),
                None => format!("expected always, never or unexpected, found {text:?}"),
            }),
        },
        other => Err(format!("expected always, never or unexpected, found {}", describe(other))),
    }
}

pub(crate) fn stopsignal(value: &Value) -> Result<Signal, String> {
    match value {
        Value::String(text) => Signal::parse(text),
        Value::Number(_) => {
            let number = integer(value)?;
            let number =
                i32::try_from(number).map_err(|_| format!("signal number {number} is out of range (1 to 64)"))?;
            Signal::from_number(number)
        }
        other => Err(format!("expected a signal name such as TERM, found {}", describe(other))),
    }
}

pub(crate) fn exit_code(value: &Value) -> Result<u8, String> {
    let code = integer(value)?;
    u8::try_from(code).map_err(|_| format!("exit code {code} is out of range (0 to 255)"))
}

/// `"-0 -2"`: what YAML makes of list items written without a space after the dash. The exit
/// codes it lists, in the order written; `None` when the text is anything else (words without
/// a dash, words other than a dash and digits, no words at all).
pub(crate) fn dash_list(text: &str) -> Option<Result<Vec<u8>, String>> {
    let numbers: Vec<&str> = text
        .split_whitespace()
        .map(|word| {
            word.strip_prefix('-')
                .filter(|digits| !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()))
        })
        .collect::<Option<_>>()?;
    if numbers.is_empty() {
        return None;
    }
    Some(
        numbers
            .iter()
            .map(|number| number.parse::<u8>().map_err(|_| format!("exit code {number} is out of range (0 to 255)")))
            .collect(),
    )
}

/// What is wrong with a command's words, if anything: none, an empty program, a NUL byte.
pub(crate) fn argv_problem(argv: &[String]) -> Option<&'static str> {
    match argv.first() {
        None => Some("the command is empty"),
        Some(first) if first.is_empty() => Some("the program to run (the first word) is empty"),
        Some(_) if argv.iter().any(|word| word.contains('\0')) => Some("the command must not contain a NUL byte"),
        Some(_) => None,
    }
}
