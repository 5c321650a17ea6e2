//! Reads the YAML config into the validated [`crate::spec::Config`].
//!
//! Two layers, as in STYLE.md rule 21: `serde_yaml` parses the text into a `Value` tree, then a
//! hand-written validator walks it and reports *every* problem at once, each with its key path
//! (`programs.web.stopsignal`) and, where the `locate` module can find it, line and column. The validator
//! is hand-written rather than `#[derive(Deserialize)]` so that one bad value does not hide the
//! rest, and so unknown keys can get a "did you mean" suggestion.
//!
//! Two input formats produce the same [`ProgramSpec`]s: the taskmaster-style `programs:` map and
//! Tron's `services:` list (with its `nodes:` and `node_pools:`, which must all be this machine).
//! `include:` names directories of service files, one program each ([`service_file`]: JSON in
//! service_manager's format, or YAML); [`include::Includes`] keeps them and merges them into
//! the main config.
//!
//! Architecture invariant: [`from_yaml_str`] is pure; only [`load`] touches the file system (and
//! [`include::scan`] and the functions beside it, for the include directories).

mod aurora;
pub mod include;
mod jsonc;
mod locate;
mod notify;
mod readiness;
mod scalars;
mod scheduled;
pub mod service_file;
#[cfg(test)]
mod tests;
mod tron;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::spec::{self, CheckKind, Config, ProgramSpec, Sink};
use locate::{DisplayPath, Segment, Target};
use scalars::{autorestart, describe, exit_code, stopsignal, suggest};

/// Every problem found in one config file.
#[derive(Debug)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

/// One problem, displayed as `{origin}:{line}:{column}: {path}: {message}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The file name.
    pub origin: String,
    /// 1-based, when known.
    pub line: Option<usize>,
    /// 1-based, when known.
    pub column: Option<usize>,
    /// The key path, such as `programs.web.stopsignal` or `services[0].node`; empty for the file.
    pub path: String,
    /// Lowercase, no trailing period.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(column) = self.column {
            write!(f, ":{column}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.errors.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A duration as the config writes it (`"5s"`, `"250ms"`, `"2m"`, `"1h"`, or seconds), for the
/// command line too.
///
/// # Errors
///
/// A message naming the bad text and the expected forms.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    scalars::duration_text(text)
}

/// Reads and validates the config file at `path`. Relative `include:` directories are relative
/// to the file's directory (made absolute with the current directory).
///
/// # Errors
///
/// `{path}: cannot read: {io error}` when the file cannot be read, else as [`from_yaml_str`].
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let directory = absolute.parent().unwrap_or(Path::new("/"));
    match std::fs::read_to_string(path) {
        Ok(text) => from_yaml_str_in_dir(&text, &origin, directory),
        Err(error) => Err(ConfigErrors {
            errors: vec![ConfigError {
                origin,
                line: None,
                column: None,
                path: String::new(),
                message: format!("cannot read: {error}"),
            }],
        }),
    }
}

/// Parses and validates config text; `origin` names the file in messages, and relative
/// `include:` directories are relative to its directory (as written, so relative to the current
/// directory when `origin` has none). Pure.
///
/// What it accepts but the user should fix (for now only taskmaster's `exitcodes:` list written
/// without spaces after the dashes) comes back in [`Config::warnings`], in the same
/// `{origin}:{line}:{column}: {path}: {message}` form as errors.
///
/// # Errors
///
/// Every problem in the text, sorted by line: YAML syntax, unknown keys, wrong types, bad
/// values and templates, duplicate names, remote Tron nodes.
pub fn from_yaml_str(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    from_yaml_str_in_dir(text, origin, Path::new(origin).parent().unwrap_or(Path::new("")))
}

/// As [`from_yaml_str`], with relative `include:` directories relative to `directory`. Pure.
///
/// # Errors
///
/// As [`from_yaml_str`].
pub fn from_yaml_str_in_dir(text: &str, origin: &str, directory: &Path) -> Result<Config, ConfigErrors> {
    let mut checker = Checker::new(text, origin, directory);
    let mut config = match checker.parse_yaml() {
        Some(root) => checker.config(&root),
        None => Config::default(),
    };
    let warnings = checker.finish()?;
    config.warnings = warnings;
    Ok(config)
}

const TOP_KEYS: &[&str] = &[
    "socket",
    "logfile",
    "logfile_maxbytes",
    "logfile_backups",
    "socket_group",
    "state_dir",
    "include",
    "notify",
    "http",
    "programs",
    "services",
    "nodes",
    "node_pools",
];

const PROGRAM_KEYS: &[&str] = &[
    "cmd",
    "numprocs",
    "autostart",
    "autorestart",
    "exitcodes",
    "startretries",
    "starttime",
    "restart_delay",
    "stoptime",
    "stability_window",
    "monitor_interval",
    "stopsignal",
    "stdout",
    "stdout_maxbytes",
    "stdout_backups",
    "stderr",
    "stderr_maxbytes",
    "stderr_backups",
    "env",
    "workingdir",
    "umask",
    "critical",
    "prefix",
    "tail_buffer",
    "pid_file",
    "ports",
    "health_check",
    "lifecycle",
    "readiness",
    "ready_timeout",
    "watchdog",
    "depends_on",
    "sockets",
    "schedule",
    "cron",
    "timeout",
    "overlap",
];

/// Walks the parsed tree, collecting errors and warnings.
struct Checker<'t> {
    text: &'t str,
    origin: &'t str,
    /// Relative `include:` directories are relative to this one.
    directory: &'t Path,
    errors: Vec<ConfigError>,
    /// Accepted, but worth fixing; dropped when there are errors.
    warnings: Vec<ConfigError>,
    /// Each program's `depends_on` names, in file order, checked once every program is known.
    dependencies: Vec<readiness::Declared>,
}

/// `http:`: an IP address and port, or `unix:/path`. Host names are refused (no DNS).
fn http_listen(value: &Value) -> Result<spec::HttpListen, String> {
    let tcp = value.as_str().map(str::trim).filter(|text| !text.starts_with("unix:"));
    if let Some((host, port)) = tcp.and_then(|text| text.rsplit_once(':')) {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.parse::<std::net::IpAddr>().is_ok() && port.parse::<u16>().is_err() {
            return Err(format!("invalid port {port:?} (expected 0 to 65535)"));
        }
        if host.chars().any(|c| c.is_ascii_alphabetic() && !c.is_ascii_hexdigit()) {
            return Err(format!(
                "{host:?} is a host name, and sv-lite does not resolve names (its loop never waits on DNS): \
                 give an IP address, such as 127.0.0.1:9110"
            ));
        }
    }
    Ok(match readiness::socket_address(value)? {
        spec::SocketSpec::Tcp(address) => spec::HttpListen::Tcp(address),
        spec::SocketSpec::Unix(path) => spec::HttpListen::Unix(path),
    })
}

fn child(path: &[Segment], key: &str) -> Vec<Segment> {
    let mut path = path.to_vec();
    path.push(Segment::Key(key.to_string()));
    path
}

fn item(path: &[Segment], index: usize) -> Vec<Segment> {
    let mut path = path.to_vec();
    path.push(Segment::Index(index));
    path
}

/// Why `name` cannot name a program, if it cannot.
fn name_problem(name: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if name.is_empty() {
        Some("program names must not be empty".to_string())
    } else if let Some((base, _)) = name.split_once(':') {
        Some(format!(
            "invalid program name {name:?}: `:` is reserved for addressing one instance (as in `{base}:0`); \
             use only letters, digits, `_`, `.` and `-`"
        ))
    } else if !name.chars().all(allowed) {
        Some(format!("invalid program name {name:?}: use only letters, digits, `_`, `.` and `-`"))
    } else if name == "." || name == ".." || name.starts_with('-') {
        Some(format!("invalid program name {name:?}: it must not start with `-` or be `.` or `..`"))
    } else {
        None
    }
}

impl<'t> Checker<'t> {
    fn new(text: &'t str, origin: &'t str, directory: &'t Path) -> Checker<'t> {
        Checker { text, origin, directory, errors: Vec::new(), warnings: Vec::new(), dependencies: Vec::new() }
    }

    /// The YAML tree of the text, merge keys applied; `None` after a syntax error (reported).
    fn parse_yaml(&mut self) -> Option<Value> {
        let parsed = serde_yaml::from_str::<Value>(self.text).and_then(|mut root| root.apply_merge().map(|()| root));
        parsed.map_err(|error| self.yaml_error(&error)).ok()
    }

    /// The warnings as text when there were no errors, else every error; each list sorted by
    /// position in the file.
    fn finish(self) -> Result<Vec<String>, ConfigErrors> {
        let in_file_order = |problem: &ConfigError| (problem.line.unwrap_or(usize::MAX), problem.column.unwrap_or(0));
        let mut errors = self.errors;
        if errors.is_empty() {
            let mut warnings = self.warnings;
            warnings.sort_by_key(in_file_order);
            return Ok(warnings.iter().map(ToString::to_string).collect());
        }
        errors.sort_by_key(in_file_order);
        Err(ConfigErrors { errors })
    }

    fn error(&mut self, path: &[Segment], target: Target, message: impl Into<String>) {
        let error = self.problem(path, target, message.into());
        self.errors.push(error);
    }

    fn warn(&mut self, path: &[Segment], target: Target, message: impl Into<String>) {
        let warning = self.problem(path, target, message.into());
        self.warnings.push(warning);
    }

    fn problem(&self, path: &[Segment], target: Target, message: String) -> ConfigError {
        let position = locate::locate(self.text, path, target);
        ConfigError {
            origin: self.origin.to_string(),
            line: position.map(|(line, _)| line),
            column: position.map(|(_, column)| column),
            path: DisplayPath(path).to_string(),
            message,
        }
    }

    fn yaml_error(&mut self, error: &serde_yaml::Error) {
        let location = error.location();
        let mut message = error.to_string();
        if let Some(location) = &location {
            let suffix = format!(" at line {} column {}", location.line(), location.column());
            message = message.replacen(&suffix, "", 1);
        }
        self.errors.push(ConfigError {
            origin: self.origin.to_string(),
            line: location.as_ref().map(serde_yaml::Location::line),
            column: location.as_ref().map(serde_yaml::Location::column),
            path: String::new(),
            message: format!("invalid yaml: {message}"),
        });
    }

    /// Runs `parse` on a value, reporting its error at the value.
    fn value<T>(
        &mut self,
        path: &[Segment],
        value: &Value,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        parse(value).map_err(|message| self.error(path, Target::Value, message)).ok()
    }

    /// The map at `path`, or an error naming what was expected.
    fn mapping<'v>(&mut self, path: &[Segment], value: &'v Value, what: &str) -> Option<&'v Mapping> {
        match value {
            Value::Mapping(map) => Some(map),
            other => {
                self.error(path, Target::Value, format!("expected {what}, found {}", describe(other)));
                None
            }
        }
    }

    /// The list at `path` (null reads as empty), or an error.
    fn list<'v>(&mut self, path: &[Segment], value: &'v Value, what: &str) -> &'v [Value] {
        match value {
            Value::Sequence(items) => items,
            Value::Null => &[],
            other => {
                self.error(path, Target::Value, format!("expected {what}, found {}", describe(other)));
                &[]
            }
        }
    }

    /// Each entry of `map` whose key is in `known`, reporting the others.
    fn entries<'v>(
        &mut self,
        path: &[Segment],
        map: &'v Mapping,
        known: &[&'static str],
    ) -> Vec<(&'static str, &'v Value)> {
        let mut entries = Vec::new();
        for (key, value) in map {
            let Value::String(key) = key else {
                self.error(path, Target::Key, format!("expected a string key, found {}", describe(key)));
                continue;
            };
            if let Some(&name) = known.iter().find(|name| **name == key) {
                entries.push((name, value));
                continue;
            }
            let message = match suggest(key, known) {
                Some(near) => format!("unknown key `{key}`; did you mean `{near}`?"),
                None => format!("unknown key `{key}` (expected one of: {})", known.join(", ")),
            };
            self.error(&child(path, key), Target::Key, message);
        }
        entries
    }

    fn string(&mut self, path: &[Segment], value: &Value, what: &str) -> Option<String> {
        self.value(path, value, |value| match value {
            Value::String(text) if text.is_empty() => Err(format!("{what} must not be empty")),
            Value::String(text) if text.contains('\0') => Err(format!("{what} must not contain a NUL byte")),
            Value::String(text) => Ok(text.clone()),
            other => Err(format!("expected {what}, found {}", describe(other))),
        })
    }

    fn config(&mut self, root: &Value) -> Config {
        let mut config = Config::default();
        let map = match root {
            Value::Null => return config,
            other => match self.mapping(&[], other, "a mapping of settings at the top level") {
                Some(map) => map,
                None => return config,
            },
        };
        let entries = self.entries(&[], map, TOP_KEYS);
        let find = |key: &str| entries.iter().find(|(name, _)| *name == key).map(|(_, value)| *value);
        for (key, value) in &entries {
            let path = child(&[], key);
            match *key {
                "socket" => config.socket = self.string(&path, value, "a path").map(PathBuf::from),
                "logfile" => config.logfile = self.string(&path, value, "a path").map(PathBuf::from),
                "state_dir" => config.state_dir = self.string(&path, value, "a path").map(PathBuf::from),
                "socket_group" => config.socket_group = self.string(&path, value, "a group name"),
                "include" => config.include = self.include(&path, value),
                "http" => config.http = self.value(&path, value, http_listen).map(Box::new),
                _ => {}
            }
        }
        self.logfile_rotation(map, &mut config);
        let nodes = self.nodes(find("nodes"), find("node_pools"));
        // First path that defined each program name, to report duplicates.
        let mut defined: BTreeMap<String, Vec<Segment>> = BTreeMap::new();
        if let Some(programs) = find("programs") {
            let path = child(&[], "programs");
            let programs = match programs {
                Value::Null => None,
                other => self.mapping(&path, other, "a mapping of program names to settings"),
            };
            for (key, value) in programs.into_iter().flatten() {
                let name = match key {
                    Value::String(name) => name.clone(),
                    Value::Number(number) => number.to_string(),
                    other => {
                        self.error(&path, Target::Key, format!("expected a program name, found {}", describe(other)));
                        continue;
                    }
                };
                let program_path = child(&path, &name);
                if let Some(problem) = name_problem(&name) {
                    self.error(&program_path, Target::Key, problem);
                    continue;
                }
                defined.insert(name.clone(), program_path.clone());
                config.programs.extend(self.program(&name, &program_path, value, PROGRAM_KEYS));
            }
        }
        if let Some(services) = find("services") {
            let path = child(&[], "services");
            for (index, value) in self.list(&path, services, "a list of services").iter().enumerate() {
                let service_path = item(&path, index);
                let Some((name, spec)) = self.service(&service_path, value, &nodes) else {
                    continue;
                };
                if let Some(first) = defined.get(&name) {
                    let first = DisplayPath(first).to_string();
                    self.error(
                        &child(&service_path, "name"),
                        Target::Value,
                        format!("duplicate program name {name:?} (already defined by {first})"),
                    );
                    continue;
                }
                defined.insert(name, child(&service_path, "name"));
                config.programs.extend(spec);
            }
        }
        let known: Vec<&str> = defined.keys().map(String::as_str).collect();
        if let Some(value) = find("notify") {
            let programs = notify::KnownPrograms { names: &known, others_may_exist: !config.include.is_empty() };
            config.notify = self.notify(&child(&[], "notify"), value, &programs);
        }
        // Service files may define what a program here depends on: `include::Includes::merge`
        // checks those names once it has every program.
        self.check_dependencies(&known, config.include.is_empty());
        config.programs.sort_by(|left, right| left.name.cmp(&right.name));
        config
    }

    /// `include:`: one directory or a list of them, made absolute against [`Checker::directory`],
    /// without repeats, in the order written.
    fn include(&mut self, path: &[Segment], value: &Value) -> Vec<PathBuf> {
        let written: Vec<(Vec<Segment>, &Value)> = match value {
            Value::Null => Vec::new(),
            Value::Sequence(items) => {
                items.iter().enumerate().map(|(index, value)| (item(path, index), value)).collect()
            }
            other => vec![(path.to_vec(), other)],
        };
        let mut directories: Vec<PathBuf> = Vec::new();
        for (path, value) in written {
            let directory = match value {
                Value::String(_) => self.string(&path, value, "a directory path"),
                other => {
                    let message = format!("expected a directory path or a list of them, found {}", describe(other));
                    self.error(&path, Target::Value, message);
                    None
                }
            };
            let Some(directory) = directory else { continue };
            // `components` drops `.` and repeated or trailing slashes, so spellings of one
            // directory compare equal.
            let directory: PathBuf = self.directory.join(directory).components().collect();
            if !directories.contains(&directory) {
                directories.push(directory);
            }
        }
        directories
    }

    /// One program's settings, from the mapping `value` at `path`; `known` are the keys it
    /// may have (the program keys, and `name` in a service file).
    fn program(&mut self, name: &str, path: &[Segment], value: &Value, known: &[&'static str]) -> Option<ProgramSpec> {
        let map = self.mapping(path, value, "a mapping of program settings")?;
        let errors_before = self.errors.len();
        let mut spec = ProgramSpec::with_defaults(name);
        let mut has_cmd = false;
        for (key, value) in self.entries(path, map, known) {
            let path = child(path, key);
            let path = path.as_slice();
            macro_rules! set {
                ($field:ident, $parsed:expr) => {
                    if let Some(parsed) = $parsed {
                        spec.$field = parsed;
                    }
                };
            }
            match key {
                "cmd" => {
                    has_cmd = true;
                    set!(argv, self.argv(path, value));
                }
                "numprocs" => set!(numprocs, self.value(path, value, |v| scalars::bounded_u32(v, 1))),
                "autostart" => set!(autostart, self.value(path, value, scalars::boolean)),
                "autorestart" => set!(autorestart, self.value(path, value, autorestart)),
                "exitcodes" => set!(exitcodes, self.exitcodes(path, value)),
                "startretries" => set!(startretries, self.value(path, value, |v| scalars::bounded_u32(v, 0))),
                "starttime" => set!(starttime, self.value(path, value, scalars::duration)),
                "restart_delay" => set!(restart_delay, self.value(path, value, scalars::duration)),
                "stoptime" => set!(stoptime, self.value(path, value, scalars::duration)),
                "stability_window" => {
                    set!(stability_window, self.value(path, value, scalars::duration))
                }
                "monitor_interval" => set!(monitor_interval, self.positive_duration(path, value)),
                "stopsignal" => set!(stopsignal, self.value(path, value, stopsignal)),
                "stdout" => set!(stdout, self.sink(path, value)),
                "stderr" => set!(stderr, self.sink(path, value)),
                "env" => set!(env, self.env(path, value)),
                "workingdir" => spec.workingdir = self.string(path, value, "a directory path").map(PathBuf::from),
                "umask" => spec.umask = self.umask(path, value),
                "critical" => set!(critical, self.value(path, value, scalars::boolean)),
                "prefix" => set!(prefix, self.value(path, value, scalars::boolean)),
                "tail_buffer" => set!(tail_buffer, self.value(path, value, scalars::size)),
                "pid_file" => spec.pid_file = self.string(path, value, "a path"),
                _ => {}
            }
        }
        if !has_cmd {
            self.error(path, Target::Key, "missing required key `cmd` (the command to run)");
        }
        self.rotation(path, map, &mut spec);
        let mut ports = self.aurora(path, map, &mut spec);
        for socket in self.sockets(path, map, &mut spec, &ports) {
            if !ports.contains(&socket) {
                ports.push(socket);
            }
        }
        self.readiness(path, map, &mut spec);
        self.depends_on(path, map, &mut spec);
        self.schedule(path, map, &mut spec);
        let cmd_is_list = matches!(map.get("cmd"), Some(Value::Sequence(_)));
        self.check_templates(path, "cmd", cmd_is_list, &spec, &ports);
        (self.errors.len() == errors_before).then_some(spec)
    }

    /// `cmd:` or `command:` as a shell-style string or an argv list.
    fn argv(&mut self, path: &[Segment], value: &Value) -> Option<Vec<String>> {
        let argv = match value {
            Value::String(text) => {
                let words = self.value(path, value, |_| scalars::split_words(text))?;
                if let Some(first) = words.first().filter(|first| first.starts_with('-')) {
                    let message = format!(
                        "the command starts with {first:?}; if you meant a YAML list, put a space after each dash (`- {}`)",
                        &first[1..]
                    );
                    self.error(path, Target::Value, message);
                    return None;
                }
                words
            }
            Value::Sequence(items) => {
                let mut argv = Vec::new();
                for (index, word) in items.iter().enumerate() {
                    let word_path = item(path, index);
                    match scalars::scalar_text(word) {
                        Some(word) => argv.push(word),
                        None => self.error(
                            &word_path,
                            Target::Value,
                            format!("expected a string, found {}", describe(word)),
                        ),
                    }
                }
                (argv.len() == items.len()).then_some(argv)?
            }
            other => {
                self.error(
                    path,
                    Target::Value,
                    format!("expected a command string or a list of words, found {}", describe(other)),
                );
                return None;
            }
        };
        let problem = scalars::argv_problem(&argv);
        match problem {
            Some(problem) => {
                self.error(path, Target::Value, problem);
                None
            }
            None => Some(argv),
        }
    }

    fn exitcodes(&mut self, path: &[Segment], value: &Value) -> Option<Vec<u8>> {
        const EXPECTED: &str = "expected an integer or a list of integers";
        let mut codes = match value {
            // `-2` alone on the next line is the number -2, not a one-item list.
            Value::Number(number) if number.as_i64().is_some_and(|code| code < 0) => {
                let message = format!(
                    "exit code {number} is out of range (0 to 255); if you meant a YAML list, \
                     put a space after the dash (`- {}`)",
                    number.to_string().trim_start_matches('-')
                );
                self.error(path, Target::Value, message);
                return None;
            }
            Value::Number(_) => vec![self.value(path, value, exit_code)?],
            Value::Sequence(items) => {
                let codes: Vec<u8> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(index, code)| self.value(&item(path, index), code, exit_code))
                    .collect();
                (codes.len() == items.len()).then_some(codes)?
            }
            // `exitcodes:` then `-0` and `-2` on their own lines is one plain scalar, "-0 -2":
            // taskmaster's own example does it, so read the list that was meant, and say so.
            Value::String(text) => match scalars::dash_list(text) {
                Some(codes) => {
                    let codes = self.value(path, value, |_| codes)?;
                    self.warn_dash_list(path, text, &codes);
                    codes
                }
                None => {
                    self.error(path, Target::Value, format!("{EXPECTED}, found {}", describe(value)));
                    return None;
                }
            },
            other => {
                self.error(path, Target::Value, format!("{EXPECTED}, found {}", describe(other)));
                return None;
            }
        };
        codes.sort_unstable();
        codes.dedup();
        Some(codes)
    }

    /// Says how `exitcodes: "-0 -2"` was read, and how to write it.
    fn warn_dash_list(&mut self, path: &[Segment], text: &str, codes: &[u8]) {
        let list = codes.iter().map(u8::to_string).collect::<Vec<_>>().join(", ");
        let line = |target| locate::locate(self.text, path, target).map(|(line, _)| line);
        let written = if line(Target::Value) > line(Target::Key) { "those lines" } else { "it" };
        self.warn(
            path,
            Target::Value,
            format!("read {text:?} as the list [{list}]; YAML took {written} as one string; write it as exitcodes: [{list}]"),
        );
    }

    /// A duration greater than zero.
    fn positive_duration(&mut self, path: &[Segment], value: &Value) -> Option<std::time::Duration> {
        let interval = self.value(path, value, scalars::duration)?;
        if interval.is_zero() {
            self.error(path, Target::Value, "must be greater than zero");
            return None;
        }
        Some(interval)
    }

    fn sink(&mut self, path: &[Segment], value: &Value) -> Option<Sink> {
        match value {
            Value::Null => Some(Sink::Discard),
            Value::String(text) if matches!(text.as_str(), "null" | "discard" | "/dev/null") => Some(Sink::Discard),
            Value::String(_) => self.string(path, value, "a file path").map(|text| Sink::File(PathBuf::from(text))),
            other => {
                self.error(
                    path,
                    Target::Value,
                    format!("expected a file path, or null or `discard` to drop the output, found {}", describe(other)),
                );
                None
            }
        }
    }

    fn env(&mut self, path: &[Segment], value: &Value) -> Option<Vec<(String, String)>> {
        let map = self.mapping(path, value, "a mapping of variable names to values")?;
        let errors_before = self.errors.len();
        let mut env = Vec::new();
        for (key, value) in map {
            let Some(key) = scalars::scalar_text(key) else {
                self.error(path, Target::Value, format!("expected a variable name, found {}", describe(key)));
                continue;
            };
            let variable_path = child(path, &key);
            if key.is_empty() || key.contains(['=', '\0']) {
                self.error(
                    &variable_path,
                    Target::Key,
                    format!("invalid variable name {key:?} (it must be non-empty, without `=`)"),
                );
                continue;
            }
            match scalars::scalar_text(value).filter(|text| !text.contains('\0')) {
                Some(text) => env.push((key, text)),
                None => self.error(
                    &variable_path,
                    Target::Value,
                    format!("expected a string, number or boolean, found {}", describe(value)),
                ),
            }
        }
        env.sort();
        (self.errors.len() == errors_before).then_some(env)
    }

    /// Octal, however YAML typed it: `022` arrives as a string, `22` or `0o22` as an integer.
    fn umask(&mut self, path: &[Segment], value: &Value) -> Option<u32> {
        let result = match value {
            Value::String(text) => scalars::umask_text(text),
            // Read the digits as written, so `0o22` is not seen as the decimal 18.
            Value::Number(number) if number.as_u64().is_some() => {
                let written = locate::inline_value(self.text, path).filter(|written| {
                    written.parse::<f64>().is_ok() || written.starts_with("0o") || written.starts_with("0x")
                });
                scalars::umask_text(&written.unwrap_or_else(|| number.to_string()))
            }
            other => Err(format!("expected an octal umask such as 022, found {}", describe(other))),
        };
        result.map_err(|message| self.error(path, Target::Value, message)).ok()
    }

    /// Expands every template field for instance 0, with a placeholder number for each of the
    /// declared `ports` (the names under `ports` and the TCP socket names under `sockets`),
    /// reporting each failure at its key.
    fn check_templates(
        &mut self,
        path: &[Segment],
        cmd_key: &str,
        cmd_is_list: bool,
        spec: &ProgramSpec,
        ports: &[String],
    ) {
        // Only the names matter here: a template expands to digits whatever the number.
        let ports: Vec<(String, u16)> = ports.iter().map(|name| (name.clone(), 0)).collect();
        let mut vars = vec![("name", spec.name.clone()), ("instance_number", "0".to_string())];
        let mut ok = true;
        if let Some(pid_file) = &spec.pid_file {
            match spec::expand_all(pid_file, &vars, &ports) {
                Ok(expanded) => vars.push(("pid_file", expanded)),
                Err(message) => {
                    self.error(&child(path, "pid_file"), Target::Value, message);
                    ok = false;
                }
            }
        }
        let mut fields: Vec<(Vec<Segment>, &str)> = Vec::new();
        for (index, word) in spec.argv.iter().enumerate() {
            let cmd_path = child(path, cmd_key);
            fields.push((if cmd_is_list { item(&cmd_path, index) } else { cmd_path }, word));
        }
        for (key, sink) in [("stdout", &spec.stdout), ("stderr", &spec.stderr)] {
            if let Sink::File(file) = sink {
                fields.extend(file.to_str().map(|file| (child(path, key), file)));
            }
        }
        fields
            .extend(spec.workingdir.as_ref().and_then(|dir| dir.to_str()).map(|dir| (child(path, "workingdir"), dir)));
        for (key, value) in &spec.env {
            fields.push((child(&child(path, "env"), key), value));
        }
        // The shell check's command and the endpoints expand by the same rules (`ProgramSpec::expand`).
        let check_path = child(path, "health_check");
        match spec.health_check.as_ref().map(|check| &check.kind) {
            Some(CheckKind::Shell { command }) => fields.push((child(&check_path, "shell"), command)),
            Some(CheckKind::Http { endpoint, .. }) => {
                fields.push((child(&child(&check_path, "http"), "endpoint"), endpoint));
            }
            Some(CheckKind::Tcp { .. }) | None => {}
        }
        if let Some(lifecycle) = &spec.lifecycle {
            let http_path = child(&child(path, "lifecycle"), "http");
            fields.push((child(&http_path, "graceful_shutdown_endpoint"), &lifecycle.graceful_shutdown_endpoint));
            fields.push((child(&http_path, "shutdown_endpoint"), &lifecycle.shutdown_endpoint));
        }
        for (field_path, template) in fields {
            if let Err(mut message) = spec::expand_all(template, &vars, &ports) {
                if spec.pid_file.is_none() && template.contains("%(pid_file)") {
                    message = "`%(pid_file)s` is used, but the program has no `pid_file`".to_string();
                }
                // After a bad pid_file, `%(pid_file)s` errors would only repeat it.
                if ok || !template.contains("%(pid_file)") {
                    self.error(&field_path, Target::Value, message);
                }
            }
        }
    }
}
