//! The service files of the `include:` directories, and their merge into the main config.
//!
//! [`Includes`] is a book of the files as last seen: each file's text, its parse, and the
//! definition it contributed at the last merge. Files change while the daemon runs, so a file
//! that stops parsing keeps contributing the definition that last loaded (a running service
//! keeps its old definition), with its errors in [`Config::problems`]; and a program name
//! belongs to the file that claimed it first, so a new file with the same name never takes it
//! over, whatever its name sorts as.
//!
//! Architecture invariant: [`Includes`] is pure; only [`scan`], [`list`] and [`read`] (at the
//! end of this file) touch the file system.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::readiness::cycles;
use super::scalars::suggest;
use super::service_file::{self, FileKind, Loaded, MAX_FILE_BYTES};
use super::ConfigError;
use crate::spec::{Config, ProgramSpec};

/// The service files known, and which file owns each program name.
#[derive(Debug, Default)]
pub struct Includes {
    files: BTreeMap<PathBuf, File>,
    /// Include directories that could not be listed, with why.
    unreadable_directories: BTreeMap<PathBuf, String>,
    /// Program name → the file whose program has it, kept from merge to merge.
    claims: BTreeMap<String, PathBuf>,
}

/// One service file, as last seen.
#[derive(Debug)]
struct File {
    seen: Seen,
    /// The latest contents' program, or their problems (as displayed).
    current: Result<Loaded, Vec<String>>,
    /// The latest contents that parsed, if any.
    last_parsed: Option<Loaded>,
    /// What the file contributed at the last merge.
    merged: Option<Loaded>,
}

#[derive(Debug, PartialEq)]
enum Seen {
    Text(String),
    /// The file could not be read: why.
    Unreadable(String),
}

impl Includes {
    #[must_use]
    pub fn new() -> Includes {
        Includes::default()
    }

    /// A file's new contents (`None`: the file is gone). Returns whether anything changed: the
    /// same bytes as last time change nothing. A name that is no service file (see
    /// [`service_file::kind`]) is not recorded.
    pub fn update(&mut self, path: &Path, contents: Option<&str>) -> bool {
        match contents {
            Some(text) => {
                let current = service_file::load(path, text)
                    .map_err(|errors| errors.errors.iter().map(ToString::to_string).collect());
                self.record(path, Seen::Text(text.to_string()), current)
            }
            None => self.files.remove(path).is_some(),
        }
    }

    /// A file that exists but could not be read (permissions, not UTF-8, too large): it counts
    /// as broken, keeping its last definition. Returns whether anything changed.
    pub fn update_unreadable(&mut self, path: &Path, why: &str) -> bool {
        let problem = ConfigError {
            origin: path.display().to_string(),
            line: None,
            column: None,
            path: String::new(),
            message: format!("cannot read: {why}"),
        };
        self.record(path, Seen::Unreadable(why.to_string()), Err(vec![problem.to_string()]))
    }

    /// An include directory that could not be listed (`Some(why)`), or that could again
    /// (`None`). A missing directory is no problem: it has no files. Returns whether anything
    /// changed.
    pub fn update_directory(&mut self, directory: &Path, unreadable: Option<&str>) -> bool {
        match unreadable {
            Some(why) => {
                self.unreadable_directories.insert(directory.to_path_buf(), why.to_string()).as_deref() != Some(why)
            }
            None => self.unreadable_directories.remove(directory).is_some(),
        }
    }

    fn record(&mut self, path: &Path, seen: Seen, current: Result<Loaded, Vec<String>>) -> bool {
        let file_name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        if let FileKind::Ignored(_) = service_file::kind(file_name) {
            return false;
        }
        let last_parsed = current.as_ref().ok().cloned();
        match self.files.get_mut(path) {
            Some(file) if file.seen == seen => return false,
            Some(file) => {
                file.seen = seen;
                file.current = current;
                file.last_parsed = last_parsed.or(file.last_parsed.take());
            }
            None => {
                self.files.insert(path.to_path_buf(), File { seen, current, last_parsed, merged: None });
            }
        }
        true
    }

    /// The files known, broken ones included, in path order (for rescans: the daemon compares
    /// them with a directory listing).
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.keys().map(PathBuf::as_path)
    }

    /// The main config plus each service file's program, programs sorted by name.
    ///
    /// - `main`'s programs come first and are always kept; then the files of `main.include`'s
    ///   directories, in that order, each directory's files by name. Files in other
    ///   directories are left out.
    /// - A file that does not parse contributes the definition it contributed at the last
    ///   merge (or, failing that, the last one that parsed), with its errors in `problems`.
    /// - A name defined twice stays with its definer: the main config, else the file that
    ///   already had it and still defines it, else the first file in order. The other file is
    ///   left out, with a problem.
    /// - Then the dependency checks of the main config over every program: a file whose
    ///   program depends on an unknown program, on itself, or in a cycle is left out (or falls
    ///   back to its last merged definition, if that one passes), with a problem; a main-config
    ///   program that depends on an unknown program stays, with a problem.
    ///
    /// `warnings` are `main`'s and then the merged files'; `problems` `main`'s and then these.
    pub fn merge(&mut self, main: &Config) -> Config {
        let mut problems: Vec<String> = main.problems.clone();
        for directory in &main.include {
            if let Some(why) = self.unreadable_directories.get(directory) {
                problems.push(format!("{}: cannot list the directory: {why}", directory.display()));
            }
        }
        let main_names: BTreeSet<&str> = main.programs.iter().map(|program| program.name.as_str()).collect();
        let mut files = self.candidates(main);
        self.settle_names(&main_names, &mut files);
        settle_dependencies(main, &main_names, &mut files);
        let main_problems = main_dependency_problems(main, &main_names, &files);

        let mut config = main.clone();
        for file in &files {
            problems.extend(file.notes.iter().cloned());
            if let Some(kept) = file.loaded().filter(|_| file.included && file.broken && file.chosen == 0) {
                let name = &kept.spec.name;
                problems
                    .push(format!("{}: program {name:?} keeps its last definition that loaded", file.path.display()));
            }
        }
        problems.extend(main_problems);
        for file in &files {
            let merged = file.included.then(|| file.loaded().cloned()).flatten();
            if let Some(loaded) = &merged {
                config.programs.push(loaded.spec.clone());
                config.warnings.extend(loaded.warnings.iter().cloned());
            }
            if let Some(book) = self.files.get_mut(&file.path) {
                book.merged = merged;
            }
        }
        config.programs.sort_by(|left, right| left.name.cmp(&right.name));
        config.problems = problems;
        config
    }

    /// The files of `main.include`'s directories in merge order, each with the definitions it
    /// may contribute, most wanted first, all with the first one's name.
    fn candidates(&self, main: &Config) -> Vec<Candidates> {
        let mut files: Vec<Candidates> = Vec::new();
        for path in self.order(main) {
            let Some(file) = self.files.get(&path) else { continue };
            let mut notes = Vec::new();
            let mut candidates: Vec<Loaded> = Vec::new();
            match &file.current {
                Ok(loaded) => candidates.push(loaded.clone()),
                Err(errors) => notes.extend(errors.iter().cloned()),
            }
            for fallback in [&file.merged, &file.last_parsed].into_iter().flatten() {
                let same_name = candidates.first().is_none_or(|first| first.spec.name == fallback.spec.name);
                if same_name && !candidates.contains(fallback) {
                    candidates.push(fallback.clone());
                }
            }
            let broken = file.current.is_err();
            files.push(Candidates { path, candidates, chosen: 0, notes, included: true, broken });
        }
        files
    }

    /// Leaves out each file whose name is taken: by the main config, else by the file that
    /// claimed it before and still defines it; an unclaimed name goes to the first file in
    /// order.
    fn settle_names(&mut self, main_names: &BTreeSet<&str>, files: &mut [Candidates]) {
        self.claims.retain(|name, owner| {
            !main_names.contains(name.as_str())
                && files.iter().any(|file| file.path == *owner && file.name() == Some(name.as_str()))
        });
        for file in files.iter_mut() {
            let Some(name) = file.name().map(str::to_string) else {
                file.included = false;
                continue;
            };
            let owner = if main_names.contains(name.as_str()) {
                Some("the main config".to_string())
            } else {
                match self.claims.get(&name) {
                    Some(owner) if *owner != file.path => Some(owner.display().to_string()),
                    Some(_) => None,
                    None => {
                        self.claims.insert(name.clone(), file.path.clone());
                        None
                    }
                }
            };
            if let Some(owner) = owner {
                file.included = false;
                file.notes.push(format!(
                    "{}: program {name:?} is already defined by {owner}; this file is ignored",
                    file.path.display()
                ));
            }
        }
    }

    /// The files of `main.include`'s directories: by directory in config order, then by name.
    fn order(&self, main: &Config) -> Vec<PathBuf> {
        let mut order: Vec<(usize, &Path)> = self
            .files
            .keys()
            .filter_map(|path| {
                let directory = path.parent()?;
                let position = main.include.iter().position(|include| include == directory)?;
                Some((position, path.as_path()))
            })
            .collect();
        order.sort_by(|left, right| (left.0, left.1.file_name()).cmp(&(right.0, right.1.file_name())));
        order.into_iter().map(|(_, path)| path.to_path_buf()).collect()
    }
}

/// One file during a merge: the definitions it may contribute, and what was said about it.
struct Candidates {
    path: PathBuf,
    candidates: Vec<Loaded>,
    /// Index into `candidates` of the one in use.
    chosen: usize,
    /// Problems, as displayed.
    notes: Vec<String>,
    /// Still in the merge.
    included: bool,
    /// The file's latest contents do not load: any candidate is an older definition.
    broken: bool,
}

impl Candidates {
    fn loaded(&self) -> Option<&Loaded> {
        self.candidates.get(self.chosen)
    }

    fn name(&self) -> Option<&str> {
        self.candidates.first().map(|loaded| loaded.spec.name.as_str())
    }
}

/// Runs the main config's dependency checks over every program, until each included file
/// passes: a file whose program fails falls back to its next candidate, or is left out.
fn settle_dependencies(main: &Config, main_names: &BTreeSet<&str>, files: &mut [Candidates]) {
    loop {
        let names: BTreeSet<String> = main_names
            .iter()
            .map(|name| (*name).to_string())
            .chain(files.iter().filter(|file| file.included).filter_map(|file| file.name().map(str::to_string)))
            .collect();
        let mut failing: BTreeMap<usize, Vec<ConfigError>> = BTreeMap::new();
        for (index, file) in files.iter().enumerate().filter(|(_, file)| file.included) {
            let Some(loaded) = file.loaded() else { continue };
            let problems = dependency_problems(&file.path, loaded, &names);
            if !problems.is_empty() {
                failing.insert(index, problems);
            }
        }
        for (index, problem) in cycle_problems(main, files) {
            failing.entry(index).or_default().push(problem);
        }
        if failing.is_empty() {
            return;
        }
        for (index, problems) in failing {
            let file = &mut files[index];
            let name = file.name().unwrap_or_default().to_string();
            let consequence = if file.chosen + 1 < file.candidates.len() {
                file.chosen += 1;
                format!("program {name:?} keeps its last definition that loaded")
            } else {
                file.included = false;
                format!("program {name:?} is left out")
            };
            for mut problem in problems {
                problem.message = format!("{}; {consequence}", problem.message);
                file.notes.push(problem.to_string());
            }
        }
    }
}

/// The main config's programs that depend on a program no one defines. They stay: the core
/// holds them back ("not in the config").
fn main_dependency_problems(main: &Config, main_names: &BTreeSet<&str>, files: &[Candidates]) -> Vec<String> {
    let names: BTreeSet<&str> = main_names
        .iter()
        .copied()
        .chain(files.iter().filter(|file| file.included).filter_map(Candidates::name))
        .collect();
    let mut problems = Vec::new();
    for program in &main.programs {
        for dependency in &program.depends_on {
            if !names.contains(dependency.program.as_str()) {
                problems.push(format!(
                    "main config: programs.{}.depends_on.{}: {}; {} waits for it",
                    program.name,
                    dependency.program,
                    unknown_program(&dependency.program, &names),
                    program.name
                ));
            }
        }
    }
    problems
}

/// `unknown program `x`; did you mean `y`?` and the like.
fn unknown_program(name: &str, names: &BTreeSet<&str>) -> String {
    let known: Vec<&str> = names.iter().copied().collect();
    match suggest(name, &known) {
        Some(near) => format!("unknown program `{name}`; did you mean `{near}`?"),
        None => format!("unknown program `{name}` (neither the config nor a service file defines it)"),
    }
}

/// The unknown names and self-dependencies of one file's program, given every program name.
fn dependency_problems(path: &Path, loaded: &Loaded, names: &BTreeSet<String>) -> Vec<ConfigError> {
    let spec: &ProgramSpec = &loaded.spec;
    let names: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let mut problems = Vec::new();
    for dependency in &spec.depends_on {
        let name = dependency.program.as_str();
        let message = if name == spec.name {
            "a program cannot depend on itself".to_string()
        } else if names.contains(name) {
            continue;
        } else {
            unknown_program(name, &names)
        };
        let at = loaded.dependency_at.iter().find(|(written, _)| written == name).and_then(|(_, at)| *at);
        problems.push(ConfigError {
            origin: path.display().to_string(),
            line: at.map(|(line, _)| line),
            column: at.map(|(_, column)| column),
            path: format!("depends_on.{name}"),
            message,
        });
    }
    problems
}

/// Each cycle through an included file's program, reported at every file in it (by index into
/// `files`). The main config has no cycles of its own: loading it checked.
fn cycle_problems(main: &Config, files: &[Candidates]) -> Vec<(usize, ConfigError)> {
    // Programs in order: main's (index None), then the included files' (their index).
    let mut programs: Vec<(Option<usize>, &ProgramSpec, Option<&Loaded>)> =
        main.programs.iter().map(|program| (None, program, None)).collect();
    for (index, file) in files.iter().enumerate().filter(|(_, file)| file.included) {
        if let Some(loaded) = file.loaded() {
            programs.push((Some(index), &loaded.spec, Some(loaded)));
        }
    }
    let names: Vec<Vec<String>> = programs
        .iter()
        .map(|(_, program, _)| program.depends_on.iter().map(|dependency| dependency.program.clone()).collect())
        .collect();
    let graph: Vec<(&str, &[String])> =
        programs.iter().zip(&names).map(|((_, program, _), names)| (program.name.as_str(), names.as_slice())).collect();
    let mut problems = Vec::new();
    for cycle in cycles(&graph) {
        let mut chain: Vec<&str> = cycle.iter().map(|&member| graph[member].0).collect();
        chain.push(chain[0]);
        for &member in &cycle {
            let (Some(index), _, Some(loaded)) = programs[member] else { continue };
            problems.push((
                index,
                ConfigError {
                    origin: files[index].path.display().to_string(),
                    line: loaded.depends_on_at.map(|(line, _)| line),
                    column: loaded.depends_on_at.map(|(_, column)| column),
                    path: "depends_on".to_string(),
                    message: format!("dependency cycle: {}", chain.join(" -> ")),
                },
            ));
        }
    }
    problems
}

// ---- I/O: the only part of this file that touches the file system ----

/// Reads every service file of `directories` into a new book. A missing directory has no
/// files; one that cannot be listed, and a file that cannot be read, become problems at the
/// next merge.
#[must_use]
pub fn scan(directories: &[PathBuf]) -> Includes {
    let mut includes = Includes::new();
    for directory in directories {
        match list(directory) {
            Ok(paths) => {
                for path in paths {
                    match read(&path) {
                        Ok(Some(text)) => includes.update(&path, Some(&text)),
                        Ok(None) => false,
                        Err(why) => includes.update_unreadable(&path, &why),
                    };
                }
            }
            Err(why) => {
                includes.update_directory(directory, Some(&why));
            }
        }
    }
    includes
}

/// The service files in `directory` (see [`service_file::kind`]; other names are logged at
/// debug and skipped, as are subdirectories and special files), sorted by name. A directory
/// that does not exist has none.
///
/// # Errors
///
/// Why the directory cannot be listed.
pub fn list(directory: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error.to_string()),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| error.to_string())?;
        let path = entry.path();
        let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
            log::debug!("{}: ignored: the name is not UTF-8", path.display());
            continue;
        };
        if let FileKind::Ignored(why) = service_file::kind(&file_name) {
            log::debug!("{}: ignored: {why}", path.display());
            continue;
        }
        // Follows symlinks; a broken one is listed, and reads as gone.
        match std::fs::metadata(&path) {
            Ok(metadata) if !metadata.is_file() => log::debug!("{}: ignored: not a regular file", path.display()),
            _ => paths.push(path),
        }
    }
    paths.sort();
    Ok(paths)
}

/// A service file's text; `Ok(None)` when it is gone.
///
/// # Errors
///
/// Why it cannot be used: unreadable, not a regular file, not UTF-8, or larger than
/// [`MAX_FILE_BYTES`] (only that much and one byte more is read).
pub fn read(path: &Path) -> Result<Option<String>, String> {
    use std::io::Read;
    let not_found = |error: &std::io::Error| error.kind() == std::io::ErrorKind::NotFound;
    // Before opening: opening a FIFO would wait for a writer.
    match std::fs::metadata(path) {
        Ok(metadata) if !metadata.is_file() => return Err("not a regular file".to_string()),
        Ok(_) => {}
        Err(error) if not_found(&error) => return Ok(None),
        Err(error) => return Err(error.to_string()),
    }
    // Non-blocking, in case it was swapped for a FIFO after the check; the type is checked
    // again on the open file.
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path) {
        Ok(file) => file,
        Err(error) if not_found(&error) => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    if !file.metadata().is_ok_and(|metadata| metadata.is_file()) {
        return Err("not a regular file".to_string());
    }
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_FILE_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit).read_to_end(&mut bytes).map_err(|error| error.to_string())?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(format!("the file is larger than {} MiB", MAX_FILE_BYTES >> 20));
    }
    String::from_utf8(bytes).map(Some).map_err(|error| format!("the file is not UTF-8 ({error})"))
}
