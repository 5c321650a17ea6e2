//! Service files: one program per file, in an `include:` directory.
//!
//! - `*.json`: service_manager's format (`name`, `root_directory`, `tool` or `cmd`, `args`,
//!   `stop_time`, `scheduling`, `timeout`, and sv-lite's `env`), with `//` and `/* */` comments
//!   and trailing commas ([`super::jsonc`] keeps every position). A service is kept running
//!   (`autorestart: always`); a scheduled one runs at its fire times. Its strings are literal:
//!   `%` is no template (sv-lite's `%(name)s` and port templates are for the YAML formats).
//! - `*.yaml`/`*.yml`: one sv-lite program: the keys of one entry under `programs:`, plus an
//!   optional `name:` (the file's stem otherwise).
//!
//! Errors read `{file}:{line}:{column}: {key path}: {message}`, as the main config's do.
//!
//! Architecture invariant: pure. The path only names the file and gives its stem and directory;
//! `include.rs` reads the files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

use super::jsonc::{self, Json, JsonValue, Member, Position};
use super::locate::{self, DisplayPath, Segment, Target};
use super::scheduled::{entry_message, unscheduled_message, ENTRY};
use super::{child, item, name_problem, scalars, Checker, ConfigError, ConfigErrors, PROGRAM_KEYS};
use crate::schedule::Schedule;
use crate::spec::{self, AutoRestart, Overlap, ProgramSpec, ScheduleSpec};

/// Service files larger than this are rejected.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// What a file in an include directory is, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `*.json`: service_manager's format.
    Json,
    /// `*.yaml`, `*.yml`: one sv-lite program.
    Yaml,
    /// Not a service file; why, for a debug log.
    Ignored(&'static str),
}

/// The kind of the file named `file_name` (a name, not a path). Dotfiles, editor backups
/// (`~`), swap files (`.swp`) and temporary files (`.tmp`) are ignored, as is every other
/// extension; extensions are matched in lower case only.
#[must_use]
pub fn kind(file_name: &str) -> FileKind {
    if file_name.starts_with('.') {
        FileKind::Ignored("a hidden file")
    } else if file_name.ends_with('~') {
        FileKind::Ignored("an editor backup")
    } else if file_name.ends_with(".swp") {
        FileKind::Ignored("an editor swap file")
    } else if file_name.ends_with(".tmp") {
        FileKind::Ignored("a temporary file")
    } else if file_name.ends_with(".json") {
        FileKind::Json
    } else if file_name.ends_with(".yaml") || file_name.ends_with(".yml") {
        FileKind::Yaml
    } else {
        FileKind::Ignored("not named *.json, *.yaml or *.yml")
    }
}

/// The program a service file defines. `path` names the file in messages and gives its kind,
/// the program name (the stem) when the file gives none, and the directory a relative
/// `root_directory` is in. Pure.
///
/// # Errors
///
/// Every problem in the file, each with its line and column: syntax (a JSON error stops at
/// the first), wrong types, unknown keys (with a suggestion), bad values and schedule entries.
pub fn parse(path: &Path, text: &str) -> Result<ProgramSpec, ConfigErrors> {
    load(path, text).map(|loaded| loaded.spec)
}

/// A service file's program with what the merge needs besides: the warnings, and where its
/// `depends_on` names are written.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Loaded {
    pub(crate) spec: ProgramSpec,
    /// As `{file}:{line}:{column}: {key path}: {message}`.
    pub(crate) warnings: Vec<String>,
    /// Line and column of the `depends_on` key.
    pub(crate) depends_on_at: Option<(usize, usize)>,
    /// Line and column of each name under `depends_on`.
    pub(crate) dependency_at: Vec<(String, Option<(usize, usize)>)>,
}

/// As [`parse`], with the warnings and positions the merge uses.
pub(crate) fn load(path: &Path, text: &str) -> Result<Loaded, ConfigErrors> {
    let origin = path.display().to_string();
    let file_error = |message: String| ConfigErrors {
        errors: vec![ConfigError { origin: origin.clone(), line: None, column: None, path: String::new(), message }],
    };
    if text.len() > MAX_FILE_BYTES {
        return Err(file_error(format!(
            "the file is larger than {} MiB ({} bytes); a service file holds one program",
            MAX_FILE_BYTES >> 20,
            text.len()
        )));
    }
    let file_name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    match kind(file_name) {
        FileKind::Json => json(path, &origin, text),
        FileKind::Yaml => yaml(path, &origin, text),
        FileKind::Ignored(why) => Err(file_error(format!("not a service file ({why})"))),
    }
}

/// Keys of a YAML service file besides the program keys.
const YAML_EXTRA_KEYS: &[&str] = &["name"];

fn yaml(path: &Path, origin: &str, text: &str) -> Result<Loaded, ConfigErrors> {
    let directory = path.parent().unwrap_or(Path::new(""));
    let mut checker = Checker::new(text, origin, directory);
    let mut spec = None;
    match checker.parse_yaml() {
        None => {}
        Some(Value::Null) => {
            checker.error(&[], Target::Key, "the file is empty: expected the settings of one program (at least `cmd:`)")
        }
        Some(root @ Value::Mapping(_)) => {
            let name = checker.yaml_name(path, &root);
            let known: Vec<&'static str> = PROGRAM_KEYS.iter().chain(YAML_EXTRA_KEYS).copied().collect();
            // Without a usable name, the settings are still checked (under a stand-in name).
            spec = checker.program(name.as_deref().unwrap_or("service"), &[], &root, &known).filter(|_| name.is_some());
        }
        Some(other) => {
            let message = format!("expected a mapping of program settings, found {}", scalars::describe(&other));
            checker.error(&[], Target::Value, message);
        }
    }
    let names: Vec<String> =
        spec.iter().flat_map(|spec| &spec.depends_on).map(|dependency| dependency.program.clone()).collect();
    let depends_on = child(&[], "depends_on");
    let depends_on_at = spec
        .as_ref()
        .filter(|spec| !spec.depends_on.is_empty())
        .and_then(|_| locate::locate(text, &depends_on, Target::Key));
    let dependency_at = names
        .into_iter()
        .map(|name| (name.clone(), locate::locate(text, &child(&depends_on, &name), Target::Key)))
        .collect();
    let warnings = checker.finish()?;
    let spec = spec.ok_or_else(|| ConfigErrors {
        errors: vec![ConfigError {
            origin: origin.to_string(),
            line: None,
            column: None,
            path: String::new(),
            message: "no program could be read from the file".to_string(),
        }],
    })?;
    Ok(Loaded { spec, warnings, depends_on_at, dependency_at })
}

impl Checker<'_> {
    /// The program name of a YAML service file: `name:`, else the file's stem.
    fn yaml_name(&mut self, path: &Path, root: &Value) -> Option<String> {
        if let Some(value) = root.get("name") {
            let name_path = child(&[], "name");
            let name = self.string(&name_path, value, "a program name")?;
            if let Some(problem) = name_problem(&name) {
                self.error(&name_path, Target::Value, problem);
                return None;
            }
            return Some(name);
        }
        let stem = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default();
        if let Some(problem) = name_problem(stem) {
            let message = format!("the program is named after the file: {problem}; rename the file or add `name:`");
            self.error(&[], Target::Key, message);
            return None;
        }
        Some(stem.to_string())
    }
}

/// The keys of a JSON service file: service_manager's, and sv-lite's `env`.
const JSON_KEYS: &[&str] =
    &["name", "root_directory", "tool", "cmd", "args", "stop_time", "scheduling", "timeout", "env"];

/// What a `tool` service runs, in its `root_directory`.
const RUN_PY: &str = "run.py";

fn json(path: &Path, origin: &str, text: &str) -> Result<Loaded, ConfigErrors> {
    let root = jsonc::parse(text).map_err(|error| ConfigErrors {
        errors: vec![ConfigError {
            origin: origin.to_string(),
            line: Some(error.at.line),
            column: Some(error.at.column),
            path: String::new(),
            message: error.message,
        }],
    })?;
    let mut reader = JsonReader { origin, directory: path.parent().unwrap_or(Path::new("")), errors: Vec::new() };
    let spec = reader.service(&root);
    match spec {
        Some(spec) if reader.errors.is_empty() => {
            Ok(Loaded { spec, warnings: Vec::new(), depends_on_at: None, dependency_at: Vec::new() })
        }
        _ => {
            let mut errors = reader.errors;
            if errors.is_empty() {
                let message = "no program could be read from the file".to_string();
                errors.push(ConfigError {
                    origin: origin.to_string(),
                    line: None,
                    column: None,
                    path: String::new(),
                    message,
                });
            }
            errors.sort_by_key(|error| (error.line, error.column));
            Err(ConfigErrors { errors })
        }
    }
}

/// Walks a service_manager JSON tree, collecting errors.
struct JsonReader<'t> {
    origin: &'t str,
    /// The file's directory, for a relative `root_directory`.
    directory: &'t Path,
    errors: Vec<ConfigError>,
}

impl JsonReader<'_> {
    fn error(&mut self, at: Position, path: &[Segment], message: impl Into<String>) {
        self.errors.push(ConfigError {
            origin: self.origin.to_string(),
            line: Some(at.line),
            column: Some(at.column),
            path: DisplayPath(path).to_string(),
            message: message.into(),
        });
    }

    fn service(&mut self, root: &Json) -> Option<ProgramSpec> {
        let JsonValue::Object(members) = &root.value else {
            let message = format!("expected an object with the service's settings, found {}", root.value.describe());
            self.error(root.at, &[], message);
            return None;
        };
        let members = self.members(members);
        let find = |key: &str| members.iter().copied().find(|member| member.key == key);
        let name = match find("name") {
            Some(member) => self.name(member),
            None => {
                self.error(root.at, &[], "missing required key `name` (the program's name)");
                None
            }
        };
        let root_directory = find("root_directory").and_then(|member| {
            let path = [Segment::Key(member.key.clone())];
            let directory = self.string(&member.value, &path, "a directory path")?;
            self.check_literal(member.value.at, &path, &directory).then(|| self.directory.join(directory))
        });
        let args = find("args").map_or_else(|| Some(Vec::new()), |member| self.words(member)).unwrap_or_default();
        let argv = match (find("tool"), find("cmd")) {
            (Some(tool), Some(cmd)) => {
                let later = if (cmd.key_at.line, cmd.key_at.column) > (tool.key_at.line, tool.key_at.column) {
                    cmd
                } else {
                    tool
                };
                self.error(later.key_at, &[Segment::Key(later.key.clone())], "give either `tool` or `cmd`, not both");
                None
            }
            (Some(tool), None) => {
                let module = self.string(&tool.value, &[Segment::Key("tool".to_string())], "a Python module name");
                match &root_directory {
                    Some(root_directory) => {
                        module.map(|module| vec![root_directory.join(RUN_PY).to_string_lossy().into_owned(), module])
                    }
                    // Reported where it is written.
                    None if find("root_directory").is_some() => None,
                    None => {
                        self.error(
                            tool.key_at,
                            &[Segment::Key("tool".to_string())],
                            format!("`tool` needs `root_directory` (the directory that holds {RUN_PY})"),
                        );
                        None
                    }
                }
            }
            (None, Some(cmd)) => self.command(cmd),
            (None, None) => {
                self.error(
                    root.at,
                    &[],
                    "missing `tool` (a module that ROOT/run.py runs) or `cmd` (the command to run)",
                );
                None
            }
        };
        let stoptime = find("stop_time").and_then(|member| self.duration(member, false));
        let schedule = self.scheduling(find("scheduling"), find("timeout"));
        let env = find("env").and_then(|member| self.env(member));
        let (name, mut argv) = (name?, argv?);
        argv.extend(args);
        let mut spec = ProgramSpec::with_defaults(&name);
        spec.argv = argv.iter().map(|word| literal(word)).collect();
        spec.workingdir = root_directory.map(|directory| PathBuf::from(literal(&directory.to_string_lossy())));
        if let Some(stoptime) = stoptime {
            spec.stoptime = stoptime;
        }
        // service_manager keeps a service running whatever its exit; a scheduled run that
        // ends waits for its next fire time.
        spec.autorestart = if schedule.is_some() { AutoRestart::Never } else { AutoRestart::Always };
        spec.schedule = schedule;
        spec.env = env.unwrap_or_default().into_iter().map(|(key, value)| (key, literal(&value))).collect();
        Some(spec)
    }

    /// The members with a known key, the first of each; the others are reported.
    fn members<'m>(&mut self, members: &'m [Member]) -> Vec<&'m Member> {
        let mut known: Vec<&Member> = Vec::new();
        for member in members {
            let path = [Segment::Key(member.key.clone())];
            if let Some(first) = known.iter().find(|first| first.key == member.key) {
                let message = format!("duplicate key `{}` (first at line {})", member.key, first.key_at.line);
                self.error(member.key_at, &path, message);
            } else if JSON_KEYS.contains(&member.key.as_str()) {
                known.push(member);
            } else {
                let message = match scalars::suggest(&member.key, JSON_KEYS) {
                    Some(near) => format!("unknown key `{}`; did you mean `{near}`?", member.key),
                    None if PROGRAM_KEYS.contains(&member.key.as_str()) => format!(
                        "unknown key `{}`: a JSON service file has service_manager's keys ({}); write a .yaml \
                         service file for sv-lite's program settings",
                        member.key,
                        JSON_KEYS.join(", ")
                    ),
                    None => format!("unknown key `{}` (expected one of: {})", member.key, JSON_KEYS.join(", ")),
                };
                self.error(member.key_at, &path, message);
            }
        }
        known
    }

    /// A non-empty string without NUL bytes.
    fn string(&mut self, value: &Json, path: &[Segment], what: &str) -> Option<String> {
        let message = match &value.value {
            JsonValue::String(string) if string.text.is_empty() => format!("{what} must not be empty"),
            JsonValue::String(string) if string.text.contains('\0') => format!("{what} must not contain a NUL byte"),
            JsonValue::String(string) => return Some(string.text.clone()),
            other => format!("expected {what}, found {}", other.describe()),
        };
        self.error(value.at, path, message);
        None
    }

    /// Whether `text` passes through `ProgramSpec::launch` as written once `%` is doubled
    /// ([`literal`]): port templates such as `{{ports[http]}}` would not, and are reported.
    fn check_literal(&mut self, at: Position, path: &[Segment], text: &str) -> bool {
        match spec::expand_ports(text, &[]) {
            Ok(_) => true,
            Err(message) => {
                let message = format!(
                    "{message}; a JSON service has no ports, and `{{{{...}}}}` port templates are for YAML \
                     service files"
                );
                self.error(at, path, message);
                false
            }
        }
    }

    fn name(&mut self, member: &Member) -> Option<String> {
        let path = [Segment::Key(member.key.clone())];
        let name = self.string(&member.value, &path, "a program name")?;
        if let Some(problem) = name_problem(&name) {
            self.error(member.value.at, &path, problem);
            return None;
        }
        Some(name)
    }

    /// `args`: a list of strings (numbers and booleans as written).
    fn words(&mut self, member: &Member) -> Option<Vec<String>> {
        let path = vec![Segment::Key(member.key.clone())];
        let items = match &member.value.value {
            JsonValue::Array(items) => items,
            JsonValue::Null => return Some(Vec::new()),
            other => {
                self.error(member.value.at, &path, format!("expected a list of strings, found {}", other.describe()));
                return None;
            }
        };
        let mut words = Vec::new();
        for (index, word) in items.iter().enumerate() {
            let text = match &word.value {
                JsonValue::String(string) => string.text.clone(),
                JsonValue::Number(number) => number.clone(),
                JsonValue::Bool(flag) => flag.to_string(),
                other => {
                    self.error(word.at, &item(&path, index), format!("expected a string, found {}", other.describe()));
                    continue;
                }
            };
            if text.contains('\0') {
                self.error(word.at, &item(&path, index), "an argument must not contain a NUL byte");
                continue;
            }
            if self.check_literal(word.at, &item(&path, index), &text) {
                words.push(text);
            }
        }
        (words.len() == items.len()).then_some(words)
    }

    /// `cmd`: a command line split like a shell's (without expansion), or a list of words.
    fn command(&mut self, member: &Member) -> Option<Vec<String>> {
        let path = [Segment::Key(member.key.clone())];
        let argv = match &member.value.value {
            JsonValue::String(string) => match scalars::split_words(&string.text) {
                Ok(words) if self.check_literal(member.value.at, &path, &string.text) => words,
                Ok(_) => return None,
                Err(message) => {
                    self.error(member.value.at, &path, message);
                    return None;
                }
            },
            JsonValue::Array(_) => self.words(member)?,
            other => {
                let message = format!("expected a command string or a list of words, found {}", other.describe());
                self.error(member.value.at, &path, message);
                return None;
            }
        };
        let problem = scalars::argv_problem(&argv);
        if let Some(problem) = problem {
            self.error(member.value.at, &path, problem);
            return None;
        }
        Some(argv)
    }

    /// `stop_time` (seconds, zero allowed) or `timeout` (`positive`): a number of seconds or a
    /// duration string such as "2h".
    fn duration(&mut self, member: &Member, positive: bool) -> Option<Duration> {
        let path = [Segment::Key(member.key.clone())];
        let parsed = match &member.value.value {
            JsonValue::Number(number) => scalars::duration_text(number).map_err(|message| {
                if number.starts_with('-') {
                    format!("negative duration {number} (expected zero or more seconds)")
                } else {
                    message
                }
            }),
            JsonValue::String(string) => scalars::duration_text(&string.text),
            other => Err(format!(
                "expected a duration (seconds, or a string like \"5s\" or \"2h\"), found {}",
                other.describe()
            )),
        };
        let parsed = parsed.and_then(|duration| {
            if positive && duration.is_zero() {
                Err("must be greater than zero".to_string())
            } else {
                Ok(duration)
            }
        });
        parsed.map_err(|message| self.error(member.value.at, &path, message)).ok()
    }

    /// `scheduling` (one entry or a list) and `timeout`, which needs it.
    fn scheduling(&mut self, scheduling: Option<&Member>, timeout: Option<&Member>) -> Option<ScheduleSpec> {
        let Some(scheduling) = scheduling else {
            if let Some(timeout) = timeout {
                self.error(timeout.key_at, &[Segment::Key(timeout.key.clone())], unscheduled_json_message());
            }
            return None;
        };
        let path = vec![Segment::Key(scheduling.key.clone())];
        let written: Vec<(Vec<Segment>, &Json)> = match &scheduling.value.value {
            JsonValue::String(_) => vec![(path.clone(), &scheduling.value)],
            JsonValue::Array(items) if items.is_empty() => {
                let message = "`scheduling` is empty; give at least one entry, or remove it for a service that runs \
                               all the time";
                self.error(scheduling.value.at, &path, message);
                return None;
            }
            JsonValue::Array(items) => {
                items.iter().enumerate().map(|(index, value)| (item(&path, index), value)).collect()
            }
            other => {
                let message =
                    format!("expected a list of schedule entries such as [\"every 5m\"], found {}", other.describe());
                self.error(scheduling.value.at, &path, message);
                return None;
            }
        };
        let errors_before = self.errors.len();
        let mut entries = Vec::new();
        for (path, value) in written {
            let JsonValue::String(string) = &value.value else {
                let message =
                    format!("expected a schedule entry such as \"every 5m\", found {}", value.value.describe());
                self.error(value.at, &path, message);
                continue;
            };
            let (what, parse) = ENTRY;
            match parse(&string.text) {
                Ok(entry) => entries.push(entry),
                // Without escapes, character N of the entry is N columns past the opening quote.
                Err(error) if !string.escaped => {
                    let at = Position { line: value.at.line, column: value.at.column + 1 + error.position };
                    self.error(at, &path, entry_message(what, &string.text, &error, true));
                }
                Err(error) => self.error(value.at, &path, entry_message(what, &string.text, &error, false)),
            }
        }
        let timeout = timeout.and_then(|timeout| self.duration(timeout, true));
        (self.errors.len() == errors_before).then(|| ScheduleSpec {
            when: Schedule::new(entries),
            timeout,
            overlap: Overlap::Skip,
        })
    }

    /// `env`: an object of variable names to strings (numbers and booleans as written).
    fn env(&mut self, member: &Member) -> Option<Vec<(String, String)>> {
        let path = vec![Segment::Key(member.key.clone())];
        let JsonValue::Object(variables) = &member.value.value else {
            let message =
                format!("expected an object of variable names to values, found {}", member.value.value.describe());
            self.error(member.value.at, &path, message);
            return None;
        };
        let errors_before = self.errors.len();
        let mut env: Vec<(String, String)> = Vec::new();
        for variable in variables {
            let variable_path = child(&path, &variable.key);
            if variable.key.is_empty() || variable.key.contains(['=', '\0']) {
                let message = format!("invalid variable name {:?} (it must be non-empty, without `=`)", variable.key);
                self.error(variable.key_at, &variable_path, message);
                continue;
            }
            if env.iter().any(|(key, _)| *key == variable.key) {
                self.error(variable.key_at, &variable_path, format!("duplicate variable `{}`", variable.key));
                continue;
            }
            let value = match &variable.value.value {
                JsonValue::String(string) if !string.text.contains('\0') => {
                    if !self.check_literal(variable.value.at, &variable_path, &string.text) {
                        continue;
                    }
                    string.text.clone()
                }
                JsonValue::Number(number) => number.clone(),
                JsonValue::Bool(flag) => flag.to_string(),
                other => {
                    let message = format!("expected a string, number or boolean, found {}", other.describe());
                    self.error(variable.value.at, &variable_path, message);
                    continue;
                }
            };
            env.push((variable.key.clone(), value));
        }
        env.sort();
        (self.errors.len() == errors_before).then_some(env)
    }
}

fn unscheduled_json_message() -> String {
    unscheduled_message("timeout").replace("`schedule:` (or `cron:`)", "`scheduling`")
}

/// `text` with `%` doubled, so that `ProgramSpec::launch` passes it on as written.
fn literal(text: &str) -> String {
    text.replace('%', "%%")
}
