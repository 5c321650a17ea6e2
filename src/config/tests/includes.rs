//! The include book: updates, the merge's rules (last good definitions, name claims,
//! dependencies across files), and the scan of real directories.

use std::path::{Path, PathBuf};

use super::*;
use crate::config::include::{scan, Includes};

const DIR: &str = "/etc/sv.d";

fn file(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

/// A JSON service `name` running `/bin/{cmd}`.
fn service(name: &str, cmd: &str) -> String {
    format!("{{\"name\": \"{name}\", \"cmd\": \"/bin/{cmd}\"}}\n")
}

/// A main config including [`DIR`], with `text` after it.
fn main_config(text: &str) -> Config {
    from_yaml_str(&format!("include: {DIR}\n{text}"), "/etc/sv.yaml").unwrap_or_else(|errors| panic!("{errors}"))
}

/// Each program as `name=argv[0]`.
fn programs(config: &Config) -> Vec<String> {
    config.programs.iter().map(|program| format!("{}={}", program.name, program.argv[0])).collect()
}

fn update(includes: &mut Includes, name: &str, text: &str) -> bool {
    includes.update(&file(name), Some(text))
}

#[test]
fn the_same_bytes_change_nothing() {
    let mut includes = Includes::new();
    assert!(update(&mut includes, "web.json", &service("web", "web")));
    assert!(!update(&mut includes, "web.json", &service("web", "web")));
    assert!(update(&mut includes, "web.json", &service("web", "web2")));
    assert!(includes.update_unreadable(&file("web.json"), "Permission denied (os error 13)"));
    assert!(!includes.update_unreadable(&file("web.json"), "Permission denied (os error 13)"));
    assert!(update(&mut includes, "web.json", &service("web", "web2")));
    // Names that are no service file are not recorded.
    assert!(!update(&mut includes, "web.json~", &service("web", "web")));
    assert!(!update(&mut includes, ".web.json", &service("web", "web")));
    let paths: Vec<&Path> = includes.paths().collect();
    assert_eq!(paths, [file("web.json")]);
    assert!(includes.update(&file("web.json"), None));
    assert!(!includes.update(&file("web.json"), None));
    assert_eq!(includes.paths().count(), 0);
}

#[test]
fn service_files_join_the_main_config_sorted_by_name() {
    let main = main_config("socket: /run/sv.sock\nprograms:\n  web: {cmd: /bin/web}\n");
    let mut includes = Includes::new();
    update(&mut includes, "b.json", &service("api", "api"));
    update(&mut includes, "a.yaml", "cmd: /bin/worker\nexitcodes:\n  -0\n  -2\n");
    let merged = includes.merge(&main);
    assert_eq!(programs(&merged), ["a=/bin/worker", "api=/bin/api", "web=/bin/web"]);
    assert_eq!((merged.socket, merged.include), (main.socket.clone(), main.include.clone()));
    assert!(merged.problems.is_empty(), "{:#?}", merged.problems);
    // The YAML file's warning comes with it.
    assert_eq!(merged.warnings.len(), 1, "{:#?}", merged.warnings);
    assert!(merged.warnings[0].starts_with("/etc/sv.d/a.yaml:3:3: exitcodes: read \"-0 -2\" as the list [0, 2]"));
}

#[test]
fn a_broken_file_keeps_its_last_good_definition() {
    let main = main_config("");
    let mut includes = Includes::new();
    update(&mut includes, "web.json", &service("web", "v1"));
    assert_eq!(programs(&includes.merge(&main)), ["web=/bin/v1"]);
    update(&mut includes, "web.json", "{\"name\": \"web\" \"cmd\": \"/bin/v2\"}");
    let merged = includes.merge(&main);
    assert_eq!(programs(&merged), ["web=/bin/v1"]);
    assert_eq!(
        merged.problems,
        [
            "/etc/sv.d/web.json:1:16: missing comma? expected `,` or `}` after the value of \"name\", found \"cmd\"",
            "/etc/sv.d/web.json: program \"web\" keeps its last definition that loaded",
        ]
    );
    includes.update_unreadable(&file("web.json"), "Permission denied (os error 13)");
    let merged = includes.merge(&main);
    assert_eq!(programs(&merged), ["web=/bin/v1"]);
    assert_eq!(merged.problems[0], "/etc/sv.d/web.json: cannot read: Permission denied (os error 13)");
    update(&mut includes, "web.json", &service("web", "v3"));
    let merged = includes.merge(&main);
    assert_eq!((programs(&merged), merged.problems), (vec!["web=/bin/v3".to_string()], Vec::new()));
    // Broken from the start: nothing to keep.
    update(&mut includes, "api.json", "{\"name\": \"api\", \"cmd\": 5}");
    let merged = includes.merge(&main);
    assert_eq!(programs(&merged), ["web=/bin/v3"]);
    assert_eq!(
        merged.problems,
        ["/etc/sv.d/api.json:1:24: cmd: expected a command string or a list of words, found a number 5"]
    );
}

#[test]
fn a_name_stays_with_the_file_that_had_it_first() {
    let main = main_config("");
    // b.json runs `web`; a.json arrives with the same name, and sorts first.
    let mut includes = Includes::new();
    update(&mut includes, "b.json", &service("web", "from-b"));
    assert_eq!(programs(&includes.merge(&main)), ["web=/bin/from-b"]);
    update(&mut includes, "a.json", &service("web", "from-a"));
    let merged = includes.merge(&main);
    assert_eq!(programs(&merged), ["web=/bin/from-b"]);
    assert_eq!(
        merged.problems,
        ["/etc/sv.d/a.json: program \"web\" is already defined by /etc/sv.d/b.json; this file is ignored"]
    );
    // Stable: a second merge says the same.
    assert_eq!(includes.merge(&main), merged);
    // The owner goes away: the other file's program appears.
    includes.update(&file("b.json"), None);
    let merged = includes.merge(&main);
    assert_eq!((programs(&merged), merged.problems), (vec!["web=/bin/from-a".to_string()], Vec::new()));
    // The other order of arrival.
    let mut includes = Includes::new();
    update(&mut includes, "a.json", &service("web", "from-a"));
    includes.merge(&main);
    update(&mut includes, "b.json", &service("web", "from-b"));
    let merged = includes.merge(&main);
    assert_eq!(programs(&merged), ["web=/bin/from-a"]);
    assert_eq!(
        merged.problems,
        ["/etc/sv.d/b.json: program \"web\" is already defined by /etc/sv.d/a.json; this file is ignored"]
    );
    // Renaming the owner's program frees the name too.
    update(&mut includes, "a.json", &service("api", "from-a"));
    assert_eq!(programs(&includes.merge(&main)), ["api=/bin/from-a", "web=/bin/from-b"]);
}

#[test]
fn with_no_owner_yet_the_first_file_in_order_wins() {
    let main = from_yaml_str("include: [/etc/second, /etc/first]\n", "/etc/sv.yaml").unwrap();
    let mut includes = Includes::new();
    for path in ["/etc/first/a.json", "/etc/second/z.json", "/etc/second/y.json", "/elsewhere/b.json"] {
        includes
            .update(Path::new(path), Some(&service("web", path.trim_end_matches(".json").rsplit('/').next().unwrap())));
    }
    let merged = includes.merge(&main);
    // Directories in `include:` order, then file names; files of other directories are left out.
    assert_eq!(programs(&merged), ["web=/bin/y"]);
    assert_eq!(
        merged.problems,
        [
            "/etc/second/z.json: program \"web\" is already defined by /etc/second/y.json; this file is ignored",
            "/etc/first/a.json: program \"web\" is already defined by /etc/second/y.json; this file is ignored",
        ]
    );
}

#[test]
fn the_main_config_keeps_its_names() {
    let main = main_config("programs:\n  web: {cmd: /bin/web}\n");
    let mut includes = Includes::new();
    update(&mut includes, "web.json", &service("web", "other"));
    let merged = includes.merge(&main);
    assert_eq!(programs(&merged), ["web=/bin/web"]);
    assert_eq!(
        merged.problems,
        ["/etc/sv.d/web.json: program \"web\" is already defined by the main config; this file is ignored"]
    );
}

#[test]
fn dependencies_are_checked_across_files() {
    let main = main_config("");
    let mut includes = Includes::new();
    update(&mut includes, "api.yaml", "cmd: /bin/api\ndepends_on:\n  db: ready\n");
    let merged = includes.merge(&main);
    assert!(programs(&merged).is_empty());
    assert_eq!(
        merged.problems,
        ["/etc/sv.d/api.yaml:3:3: depends_on.db: unknown program `db` (neither the config nor a service file defines \
          it); program \"api\" is left out"]
    );
    update(&mut includes, "db.json", &service("db", "db"));
    let merged = includes.merge(&main);
    assert_eq!((programs(&merged), merged.problems), (strings(&["api=/bin/api", "db=/bin/db"]), Vec::new()));
    // A new definition that fails the checks falls back to the one merged last.
    update(&mut includes, "api.yaml", "cmd: /bin/api2\ndepends_on: {dbb: ready}\n");
    let merged = includes.merge(&main);
    assert_eq!(programs(&merged), ["api=/bin/api", "db=/bin/db"]);
    assert_eq!(
        merged.problems,
        ["/etc/sv.d/api.yaml:2:13: depends_on.dbb: unknown program `dbb`; did you mean `db`?; program \"api\" keeps \
          its last definition that loaded"]
    );
    // Without its dependency, the old definition fails too.
    includes.update(&file("db.json"), None);
    let merged = includes.merge(&main);
    assert!(programs(&merged).is_empty(), "{merged:#?}");
    assert_eq!(merged.problems.len(), 2, "{:#?}", merged.problems);
    update(&mut includes, "me.yaml", "cmd: x\ndepends_on: {me: started}\n");
    let problems = includes.merge(&main).problems;
    assert!(
        problems.contains(
            &"/etc/sv.d/me.yaml:2:13: depends_on.me: a program cannot depend on itself; program \"me\" is left out"
                .to_string()
        ),
        "{problems:#?}"
    );
}

#[test]
fn a_cycle_through_service_files_leaves_them_out() {
    let main = main_config("programs:\n  web: {cmd: /bin/web, depends_on: {b: ready}}\n");
    let mut includes = Includes::new();
    update(&mut includes, "a.yaml", "cmd: /bin/a\ndepends_on: {web: started}\n");
    update(&mut includes, "b.yaml", "cmd: /bin/b\ndepends_on: {a: started}\n");
    let merged = includes.merge(&main);
    // The main config's program stays; the core holds it back while `b` is missing.
    assert_eq!(programs(&merged), ["web=/bin/web"]);
    assert_eq!(
        merged.problems,
        [
            "/etc/sv.d/a.yaml:2:1: depends_on: dependency cycle: web -> b -> a -> web; program \"a\" is left out",
            "/etc/sv.d/b.yaml:2:1: depends_on: dependency cycle: web -> b -> a -> web; program \"b\" is left out",
            "main config: programs.web.depends_on.b: unknown program `b` (neither the config nor a service file \
             defines it); web waits for it",
        ]
    );
}

#[test]
fn a_main_program_may_depend_on_a_service_file() {
    let main = main_config("programs:\n  web: {cmd: /bin/web, depends_on: {db: ready}}\n");
    let mut includes = Includes::new();
    update(&mut includes, "db.json", &service("db", "db"));
    let merged = includes.merge(&main);
    assert_eq!((programs(&merged), merged.problems), (strings(&["db=/bin/db", "web=/bin/web"]), Vec::new()));
    includes.update(&file("db.json"), None);
    let merged = includes.merge(&main);
    assert_eq!(programs(&merged), ["web=/bin/web"]);
    assert_eq!(merged.problems.len(), 1, "{:#?}", merged.problems);
}

#[test]
fn scan_reads_the_directories() {
    let root = std::env::temp_dir().join(format!("sv-lite-include-scan-{}", std::process::id()));
    let directory = root.join("services.d");
    std::fs::create_dir_all(directory.join("sub.json")).unwrap();
    std::fs::write(directory.join("good.json"), service("good", "good")).unwrap();
    std::fs::write(directory.join("web.yaml"), "cmd: /bin/web\n").unwrap();
    std::fs::write(directory.join("bad.json"), b"{\"name\": \"\xff\"}").unwrap();
    std::fs::write(directory.join("big.yaml"), " ".repeat(1024 * 1024 + 1)).unwrap();
    std::fs::write(directory.join("notes.txt"), "not a service").unwrap();
    std::fs::write(directory.join(".hidden.json"), "{").unwrap();
    std::fs::write(directory.join("good.json~"), "{").unwrap();
    let not_a_directory = directory.join("good.json");
    let directories = [directory.clone(), root.join("missing"), not_a_directory.clone()];
    let main = Config { include: directories.to_vec(), ..Config::default() };
    let mut includes = scan(&directories);
    let merged = includes.merge(&main);
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(programs(&merged), ["good=/bin/good", "web=/bin/web"]);
    let paths: Vec<PathBuf> = includes.paths().map(Path::to_path_buf).collect();
    assert_eq!(
        paths,
        [
            directory.join("bad.json"),
            directory.join("big.yaml"),
            directory.join("good.json"),
            directory.join("web.yaml")
        ]
    );
    let problems: Vec<String> =
        merged.problems.iter().map(|problem| problem.replace(root.to_str().unwrap(), "ROOT")).collect();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with("ROOT/services.d/good.json: cannot list the directory: "), "{problems:#?}");
    assert!(problems[1].starts_with("ROOT/services.d/bad.json: cannot read: the file is not UTF-8"), "{problems:#?}");
    assert_eq!(problems[2], "ROOT/services.d/big.yaml: cannot read: the file is larger than 1 MiB");
}
