//! The `sv-lite` binary: parses the command line and hands over to the daemon, the config
//! checker or the control client. Errors print once here, as `sv-lite: ...`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sv_lite::{config, ctl, daemon, shell};

const VERSION: &str = env!("CARGO_PKG_VERSION");

const USAGE: &str = "usage:
  sv-lite [-c FILE] [-s SOCKET]     supervise the programs of FILE in the foreground
  sv-lite check [FILE]              validate a config; exit 0 if valid, 2 if not
  sv-lite -- CMD [ARGS...]          run one program like tini: forward signals, reap
                                    zombies, exit with its code (128+N if killed by N)
  sv-lite ctl [-s SOCKET | -c FILE] [COMMAND [ARGS]]
                                    control a running daemon (sv-lite ctl --help);
                                    without COMMAND, an interactive shell

options:
  -c, --config FILE    config file (default ./sv-lite.yaml, then /etc/sv-lite.yaml)
  -s, --socket SOCKET  control socket (default: $SV_LITE_SOCKET, the config's `socket`,
                       /run/sv-lite.sock as root, else $XDG_RUNTIME_DIR/sv-lite.sock)
  --no-cgroups         stop and measure each instance's tree through /proc, not through a
                       cgroup of its own (the default where cgroup v2 can be written)
  -h, --help           this text
  -V, --version        the version, and how whole trees are stopped here

environment: RUST_LOG sets the log level (default info), SV_LITE_SOCKET the socket.";

const CHECK_USAGE: &str = "usage: sv-lite check [FILE]

Validates FILE (default ./sv-lite.yaml, then /etc/sv-lite.yaml) and the service files of its
`include:` directories, and prints every error, or the warnings about what it accepted but
you should fix.
Exit 0 when valid (warnings or not), 2 when not.";

/// Exit code for usage errors, bad configs and a daemon that cannot start.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ExitCode::from(run(&args))
}

fn run(args: &[String]) -> u8 {
    match args.first().map(String::as_str) {
        Some("ctl") => run_ctl(&args[1..]),
        Some("check") => run_check(&args[1..]),
        Some("--") => run_one_command(&args[1..]),
        _ => run_daemon(args),
    }
}

/// The options shared by the daemon and ctl, and the remaining words.
struct CommonFlags {
    config: Option<PathBuf>,
    socket: Option<PathBuf>,
    help: bool,
    version: bool,
    /// `--no-cgroups` (the daemon's only).
    no_cgroups: bool,
    rest: Vec<String>,
}

/// Parses `-c FILE`, `--config=FILE`, `-s SOCKET`, `-h`, `-V` (and the daemon's `--no-cgroups`). With `stop_at_command`, the
/// first other word and everything after it are left for the subcommand.
fn parse_common(args: &[String], stop_at_command: bool) -> Result<CommonFlags, String> {
    let mut flags =
        CommonFlags { config: None, socket: None, help: false, version: false, no_cgroups: false, rest: Vec::new() };
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        let (key, inline) = match arg.split_once('=') {
            Some((key, value)) if key.starts_with("--") => (key, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<PathBuf, String> {
            if let Some(value) = &inline {
                return Ok(PathBuf::from(value));
            }
            index += 1;
            args.get(index).map(PathBuf::from).ok_or_else(|| format!("{name} needs a value"))
        };
        match key {
            "-c" | "--config" => flags.config = Some(value(key)?),
            "-s" | "--socket" => flags.socket = Some(value(key)?),
            "-h" | "--help" => flags.help = true,
            "-V" | "--version" => flags.version = true,
            "--no-cgroups" if !stop_at_command => flags.no_cgroups = true,
            other if other.starts_with('-') && other != "-" => return Err(format!("unknown option {other}")),
            _ => {
                flags.rest.push(arg.clone());
                if stop_at_command {
                    flags.rest.extend(args[index + 1..].iter().cloned());
                    break;
                }
            }
        }
        index += 1;
    }
    Ok(flags)
}

fn init_logging() {
    init_logging_with_default("info");
}

fn init_logging_with_default(level: &str) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    builder.format(|out, record| {
        use std::io::Write;
        writeln!(
            out,
            "{} sv-lite {:<5} {}",
            daemon::utc_timestamp(std::time::SystemTime::now()),
            record.level(),
            record.args()
        )
    });
    // Through the daemon's stderr queue while its loop runs, so that a stalled reader of
    // stderr never blocks the loop on a log line; a plain write otherwise.
    builder.target(env_logger::Target::Pipe(Box::new(daemon::stdio::LogWriter)));
    builder.init();
}

fn default_config() -> PathBuf {
    let local = PathBuf::from("sv-lite.yaml");
    if local.exists() {
        local
    } else {
        PathBuf::from("/etc/sv-lite.yaml")
    }
}

fn run_daemon(args: &[String]) -> u8 {
    let flags = match parse_common(args, false) {
        Ok(flags) => flags,
        Err(error) => return usage_error(&error, USAGE),
    };
    if flags.help {
        println!("{USAGE}");
        return 0;
    }
    let cgroups = !flags.no_cgroups;
    if flags.version {
        println!("sv-lite {VERSION}");
        println!("whole-tree stop: {}", daemon::cgroup::would_use(cgroups));
        return 0;
    }
    if let Some(extra) = flags.rest.first() {
        return usage_error(&format!("unexpected argument `{extra}`"), USAGE);
    }
    init_logging();
    let config_path = flags.config.unwrap_or_else(default_config);
    let config = match config::load(&config_path) {
        Ok(config) => {
            config.warnings.iter().for_each(|warning| log::warn!("{warning}"));
            config
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("sv-lite: {}: invalid config, nothing started", config_path.display());
            return EXIT_USAGE;
        }
    };
    let socket_path = ctl::resolve_socket(flags.socket, config.socket.clone());
    match daemon::run(daemon::DaemonOptions { config_path, config, socket_path, cgroups }) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("sv-lite: {error}");
            EXIT_USAGE
        }
    }
}

fn run_one_command(argv: &[String]) -> u8 {
    if argv.is_empty() {
        return usage_error("-- needs a command to run", USAGE);
    }
    init_logging_with_default("warn");
    sv_lite::init::run(argv.to_vec())
}

fn run_check(args: &[String]) -> u8 {
    if args.iter().any(|arg| arg == "-h" || arg == "--help") {
        println!("{CHECK_USAGE}");
        return 0;
    }
    if args.len() > 1 {
        return usage_error("check takes one FILE", CHECK_USAGE);
    }
    let path = args.first().map(PathBuf::from).unwrap_or_else(default_config);
    check_file(&path)
}

fn check_file(path: &Path) -> u8 {
    match config::load(path) {
        Ok(config) => {
            let config =
                if config.include.is_empty() { config } else { config::include::scan(&config.include).merge(&config) };
            config.warnings.iter().for_each(|warning| eprintln!("{warning}"));
            if !config.problems.is_empty() {
                config.problems.iter().for_each(|problem| eprintln!("{problem}"));
                let count = config.problems.len();
                let problems = if count == 1 { "problem" } else { "problems" };
                eprintln!("{}: {count} {problems} with the service files", path.display());
                return EXIT_USAGE;
            }
            let instances: u32 = config.programs.iter().map(|program| program.numprocs).sum();
            println!("{}: ok, {} programs, {instances} instances", path.display(), config.programs.len());
            0
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} errors", path.display(), errors.errors.len());
            EXIT_USAGE
        }
    }
}

fn run_ctl(args: &[String]) -> u8 {
    let flags = match parse_common(args, true) {
        Ok(flags) => flags,
        Err(error) => return usage_error(&error, ctl::USAGE),
    };
    if flags.version {
        println!("sv-lite {VERSION}");
        return 0;
    }
    if flags.help || flags.rest.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{}", ctl::USAGE);
        return 0;
    }
    let config_socket = match (&flags.socket, &flags.config) {
        (Some(_), _) => None,
        (None, Some(path)) => match config::load(path) {
            Ok(config) => config.socket,
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("sv-lite ctl: {}: cannot read the socket path from this config", path.display());
                return EXIT_USAGE;
            }
        },
        (None, None) => {
            let path = default_config();
            config::load(&path).ok().and_then(|config| config.socket)
        }
    };
    let socket = ctl::resolve_socket(flags.socket, config_socket);
    if flags.rest.is_empty() {
        return shell::run(&socket);
    }
    let command = match ctl::parse_command(&flags.rest) {
        Ok(command) => command,
        Err(error) => return usage_error(&error, ctl::USAGE),
    };
    ctl::run(&socket, &command)
}

fn usage_error(error: &str, usage: &str) -> u8 {
    eprintln!("sv-lite: {error}\n\n{usage}");
    EXIT_USAGE
}
