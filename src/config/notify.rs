//! Reporting and rotation settings: the top-level `notify:` list (`email:` digests by SMTP or
//! sendmail, `exec:` hooks), `logfile_maxbytes`/`logfile_backups`, and a program's
//! `stdout_maxbytes`, `stdout_backups`, `stderr_maxbytes` and `stderr_backups`.
//!
//! Mail values are checked here so that delivery never has to: every address is a plain
//! `local@domain`, no value holds a line break (header injection), and an SMTP host is an IP
//! address, since the daemon's loop never waits on DNS.
//!
//! Architecture invariant: pure, like the rest of the loader; the pure value parsers
//! ([`mail_via`], [`address_problem`]) return message text only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use serde_yaml::{Mapping, Value};

use super::locate::{Segment, Target};
use super::scalars::{self, describe, suggest};
use super::{child, item, name_problem, Checker};
use crate::core::EventKind;
use crate::spec::{defaults, Config, EmailSpec, ExecSpec, MailVia, NotifySink, NotifySpec, ProgramSpec, Rotate, Sink};

/// The most rotated files a log may keep.
const MAX_BACKUPS: u32 = 1000;

/// Where `via: sendmail` finds the program.
const SENDMAIL: &str = "/usr/sbin/sendmail";

const SMTP_PORT: u16 = 25;

const ENTRY_KEYS: &[&str] = &["email", "exec"];
const EMAIL_KEYS: &[&str] = &["to", "from", "via", "on", "programs", "digest"];
const EXEC_KEYS: &[&str] = &["cmd", "on", "programs", "timeout"];

const VIA_FORMS: &str =
    "expected smtp://HOST[:PORT], smtp://USER:PASSWORD@HOST[:PORT], sendmail, or sendmail:/path/to/sendmail";

/// The programs a `notify:` entry's `programs:` may name.
pub(super) struct KnownPrograms<'a> {
    /// Defined in this file (`programs:` and `services:`).
    pub(super) names: &'a [&'a str],
    /// With `include:`, service files may define others: unknown names are allowed.
    pub(super) others_may_exist: bool,
}

impl Checker<'_> {
    /// A program's `stdout_maxbytes`, `stdout_backups`, `stderr_maxbytes` and `stderr_backups`,
    /// from the program map `map` at `path`, into `spec` (whose sinks are already read).
    pub(super) fn rotation(&mut self, path: &[Segment], map: &Mapping, spec: &mut ProgramSpec) {
        let needs = |stream: &str, sink: &Sink| {
            let why = match sink {
                Sink::File(_) => return None,
                Sink::Forward => format!("{stream} is forwarded to sv-lite's own {stream}"),
                Sink::Discard => format!("{stream} is discarded"),
            };
            Some(format!("rotation needs a `{stream}:` file path ({why})"))
        };
        let (stdout_needs, stderr_needs) = (needs("stdout", &spec.stdout), needs("stderr", &spec.stderr));
        spec.stdout_rotate = self.rotate(path, map, "stdout", stdout_needs.as_deref());
        spec.stderr_rotate = self.rotate(path, map, "stderr", stderr_needs.as_deref());
    }

    /// The top level's `logfile_maxbytes` and `logfile_backups`, into `config` (whose `logfile`
    /// is already read).
    pub(super) fn logfile_rotation(&mut self, map: &Mapping, config: &mut Config) {
        let needs =
            config.logfile.is_none().then_some("rotation needs a `logfile:` path (there is no log file to rotate)");
        config.logfile_rotate = self.rotate(&[], map, "logfile", needs);
    }

    /// `{prefix}_maxbytes` and `{prefix}_backups` of `map` at `path`; a limit above zero is an
    /// error when `needs` says why there is no file.
    fn rotate(&mut self, path: &[Segment], map: &Mapping, prefix: &str, needs: Option<&str>) -> Rotate {
        let mut rotate = Rotate::default();
        let maxbytes_key = format!("{prefix}_maxbytes");
        if let Some(value) = map.get(maxbytes_key.as_str()) {
            let key_path = child(path, &maxbytes_key);
            if let Some(bytes) = self.value(&key_path, value, scalars::size) {
                rotate.maxbytes = u64::try_from(bytes).unwrap_or(u64::MAX);
                if let Some(needs) = needs.filter(|_| bytes > 0) {
                    self.error(&key_path, Target::Key, needs);
                }
            }
        }
        let backups_key = format!("{prefix}_backups");
        if let Some(value) = map.get(backups_key.as_str()) {
            let backups = self.value(&child(path, &backups_key), value, |value| {
                let number = scalars::integer(value)?;
                u32::try_from(number)
                    .ok()
                    .filter(|backups| *backups <= MAX_BACKUPS)
                    .ok_or_else(|| format!("must be 0 to {MAX_BACKUPS}, found {number}"))
            });
            rotate.backups = backups.unwrap_or(rotate.backups);
        }
        rotate
    }

    /// The `notify:` list at `path`; entries with errors are left out (and reported).
    pub(super) fn notify(&mut self, path: &[Segment], value: &Value, programs: &KnownPrograms) -> Vec<NotifySpec> {
        let entries = self.list(path, value, "a list of `email:` and `exec:` entries");
        entries
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| self.notify_entry(&item(path, index), entry, programs))
            .collect()
    }

    /// One entry: a map with exactly one key, `email` or `exec`.
    fn notify_entry(&mut self, path: &[Segment], value: &Value, programs: &KnownPrograms) -> Option<NotifySpec> {
        let map = self.mapping(path, value, "an `email:` or `exec:` entry")?;
        // `- email:` with its settings at the same indentation makes them siblings of `email`.
        let mut rest = map.clone();
        for key in EMAIL_KEYS.iter().chain(EXEC_KEYS) {
            if rest.shift_remove(*key).is_some() {
                let message = format!("`{key}` belongs inside `email:` or `exec:`; indent it under that key");
                self.error(&child(path, key), Target::Key, message);
            }
        }
        let sinks = self.entries(path, &rest, ENTRY_KEYS);
        let (kind, settings) = match sinks.as_slice() {
            [] if map.is_empty() => {
                self.error(path, Target::Value, "a notify entry needs `email:` or `exec:`");
                return None;
            }
            [] => return None,
            [only] => *only,
            [_, (second, _), ..] => {
                let message = format!(
                    "a notify entry has exactly one of `email:` or `exec:`; start another entry (`- {second}:`) for this one"
                );
                self.error(&child(path, second), Target::Key, message);
                return None;
            }
        };
        let path = child(path, kind);
        match kind {
            "email" => self.email(&path, settings, programs),
            _ => self.exec(&path, settings, programs),
        }
    }

    fn email(&mut self, path: &[Segment], value: &Value, programs: &KnownPrograms) -> Option<NotifySpec> {
        let map = self.mapping(path, value, "a mapping of email settings (to, from, via, on, programs, digest)")?;
        let errors_before = self.errors.len();
        let (mut to, mut from, mut via, mut digest) = (None, None, None, Some(defaults::DIGEST));
        for (key, value) in self.entries(path, map, EMAIL_KEYS) {
            let path = child(path, key);
            match key {
                "to" => to = self.recipients(&path, value),
                "from" => from = self.sender(&path, value),
                "via" => {
                    via = self.value(&path, value, |value| match value {
                        Value::String(text) => mail_via(text),
                        other => Err(format!(
                            "expected a mail route such as smtp://127.0.0.1:25 or sendmail, found {}",
                            describe(other)
                        )),
                    })
                }
                "digest" => digest = self.positive_duration(&path, value),
                _ => {}
            }
        }
        for (key, what, present) in [
            ("to", "the recipients", map.contains_key("to")),
            ("from", "the sender address, such as sv-lite@%(host)s", map.contains_key("from")),
            ("via", "smtp://HOST[:PORT] of a relay, or sendmail", map.contains_key("via")),
        ] {
            if !present {
                self.error(path, Target::Key, format!("missing required key `{key}` ({what})"));
            }
        }
        let (on, names) = self.filter(path, map, programs);
        if self.errors.len() != errors_before {
            return None;
        }
        let email = EmailSpec { to: to?, from: from?, via: via?, digest: digest? };
        Some(NotifySpec { sink: NotifySink::Email(email), on: on?, programs: names? })
    }

    fn exec(&mut self, path: &[Segment], value: &Value, programs: &KnownPrograms) -> Option<NotifySpec> {
        let map = self.mapping(path, value, "a mapping of hook settings (cmd, on, programs, timeout)")?;
        let errors_before = self.errors.len();
        let (mut argv, mut timeout) = (None, Some(defaults::HOOK_TIMEOUT));
        for (key, value) in self.entries(path, map, EXEC_KEYS) {
            let path = child(path, key);
            match key {
                "cmd" => argv = self.argv(&path, value),
                "timeout" => timeout = self.positive_duration(&path, value),
                _ => {}
            }
        }
        if !map.contains_key("cmd") {
            self.error(path, Target::Key, "missing required key `cmd` (the command to run)");
        }
        let (on, names) = self.filter(path, map, programs);
        if self.errors.len() != errors_before {
            return None;
        }
        let exec = ExecSpec { argv: argv?, timeout: timeout? };
        Some(NotifySpec { sink: NotifySink::Exec(exec), on: on?, programs: names? })
    }

    /// `on:` and `programs:` of an `email:` or `exec:` map, with their defaults.
    fn filter(
        &mut self,
        path: &[Segment],
        map: &Mapping,
        programs: &KnownPrograms,
    ) -> (Option<Vec<EventKind>>, Option<Vec<String>>) {
        let on = match map.get("on") {
            Some(value) => self.events(&child(path, "on"), value),
            None => Some(EventKind::DEFAULT_ON.to_vec()),
        };
        let names = match map.get("programs") {
            Some(value) => self.program_names(&child(path, "programs"), value, programs),
            None => Some(Vec::new()),
        };
        (on, names)
    }

    /// `on:`: one event name or a list, sorted, without repeats.
    fn events(&mut self, path: &[Segment], value: &Value) -> Option<Vec<EventKind>> {
        let items = self.names(path, value, "event", "fatal, unexpected_exit, unhealthy")?;
        let names: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
        let mut kinds = Vec::new();
        let mut ok = true;
        for (item_path, name) in items {
            match EventKind::parse(&name) {
                Ok(kind) => kinds.push(kind),
                Err(message) => {
                    let message = match suggest(&name, &names) {
                        Some(near) => format!("unknown event `{name}`; did you mean `{near}`?"),
                        None => message,
                    };
                    self.error(&item_path, Target::Value, message);
                    ok = false;
                }
            }
        }
        kinds.sort_unstable();
        kinds.dedup();
        ok.then_some(kinds)
    }

    /// `programs:`: one program name or a list, sorted, without repeats.
    fn program_names(&mut self, path: &[Segment], value: &Value, programs: &KnownPrograms) -> Option<Vec<String>> {
        let items = self.names(path, value, "program", "every program")?;
        let mut names = Vec::new();
        let mut ok = true;
        for (item_path, name) in items {
            let problem = name_problem(&name).or_else(|| {
                let known = programs.others_may_exist || programs.names.contains(&name.as_str());
                (!known).then(|| match suggest(&name, programs.names) {
                    Some(near) => format!("unknown program `{name}`; did you mean `{near}`?"),
                    None => format!("unknown program `{name}` (no program or service has that name)"),
                })
            });
            match problem {
                Some(problem) => {
                    self.error(&item_path, Target::Value, problem);
                    ok = false;
                }
                None => names.push(name),
            }
        }
        names.sort_unstable();
        names.dedup();
        ok.then_some(names)
    }

    /// One name or a non-empty list of names, each with its path; `what` names one item and
    /// `default` what leaving the key out means.
    fn names(
        &mut self,
        path: &[Segment],
        value: &Value,
        what: &str,
        default: &str,
    ) -> Option<Vec<(Vec<Segment>, String)>> {
        let written: Vec<(Vec<Segment>, &Value)> = match value {
            Value::Sequence(items) => {
                items.iter().enumerate().map(|(index, value)| (item(path, index), value)).collect()
            }
            Value::Null => Vec::new(),
            other => vec![(path.to_vec(), other)],
        };
        if written.is_empty() {
            let message = format!("the list is empty: name at least one {what}, or leave the key out for {default}");
            self.error(path, Target::Value, message);
            return None;
        }
        let count = written.len();
        let mut names = Vec::new();
        for (item_path, value) in written {
            match value {
                Value::String(name) => names.push((item_path, name.clone())),
                Value::Number(number) => names.push((item_path, number.to_string())),
                other => {
                    let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
                    let message =
                        format!("expected {article} {what} name or a list of them, found {}", describe(other));
                    self.error(&item_path, Target::Value, message);
                }
            }
        }
        (names.len() == count).then_some(names)
    }

    /// `to:`: one address or a non-empty list, without repeats, in the order written.
    fn recipients(&mut self, path: &[Segment], value: &Value) -> Option<Vec<String>> {
        let written: Vec<(Vec<Segment>, &Value)> = match value {
            Value::Sequence(items) if items.is_empty() => {
                self.error(path, Target::Value, "the list is empty: give at least one recipient address");
                return None;
            }
            Value::Sequence(items) => {
                items.iter().enumerate().map(|(index, value)| (item(path, index), value)).collect()
            }
            other => vec![(path.to_vec(), other)],
        };
        let mut addresses: Vec<String> = Vec::new();
        let mut ok = true;
        for (item_path, value) in written {
            let address = self.value(&item_path, value, |value| match value {
                Value::String(text) => injection_problem("a recipient address", text)
                    .or_else(|| address_problem(text).map(|problem| format!("invalid address {text:?}: {problem}")))
                    .map_or_else(|| Ok(text.clone()), Err),
                other => Err(format!("expected an email address or a list of them, found {}", describe(other))),
            });
            match address {
                Some(address) if !addresses.contains(&address) => addresses.push(address),
                Some(_) => {}
                None => ok = false,
            }
        }
        ok.then_some(addresses)
    }

    /// `from:`: an address once `%(host)s` is replaced, kept as written.
    fn sender(&mut self, path: &[Segment], value: &Value) -> Option<String> {
        self.value(path, value, |value| {
            let Value::String(text) = value else {
                return Err(format!("expected an email address such as sv-lite@%(host)s, found {}", describe(value)));
            };
            if let Some(problem) = injection_problem("the sender address", text) {
                return Err(problem);
            }
            let expanded = text.replace("%(host)s", "localhost");
            if expanded.contains("%(") {
                return Err(format!(
                    "{text:?} uses a template other than `%(host)s`, the only one `from` may use (the host name)"
                ));
            }
            match address_problem(&expanded) {
                Some(problem) => Err(format!("invalid address {text:?}: {problem}")),
                None => Ok(text.clone()),
            }
        })
    }
}

/// A line break in a mail value would let it add headers (or SMTP commands).
fn injection_problem(what: &str, text: &str) -> Option<String> {
    text.contains(['\r', '\n']).then(|| {
        format!("{what} contains a line break, refused as header injection (it would add lines to the mail's headers)")
    })
}

/// Why `address` is not a plain `local@domain` address, if it is not.
pub(super) fn address_problem(address: &str) -> Option<String> {
    const SPECIALS: &[char] = &['(', ')', '[', ']', ':', ';', '\\', '"'];
    if address.is_empty() {
        return Some("it is empty".to_string());
    }
    if !address.is_ascii() {
        return Some("only ASCII is allowed".to_string());
    }
    if address.chars().any(|c| c.is_ascii_control()) {
        return Some("it contains a control character".to_string());
    }
    if address.contains(',') || (address.contains(' ') && address.matches('@').count() > 1) {
        return Some("write several addresses as a list, such as [ops@example.com, dev@example.com]".to_string());
    }
    if address.contains(['<', '>']) {
        return Some("write the address alone, without a name or `<>`, such as ops@example.com".to_string());
    }
    if address.contains(' ') {
        return Some("it contains a space".to_string());
    }
    if let Some(special) = address.chars().find(|c| SPECIALS.contains(c)) {
        return Some(format!("`{special}` has no place in a plain address"));
    }
    let Some((local, domain)) = address.split_once('@') else {
        return Some("it has no `@` (expected local@domain)".to_string());
    };
    if domain.contains('@') {
        return Some("it has more than one `@`".to_string());
    }
    if local.is_empty() {
        return Some("nothing before the `@`".to_string());
    }
    if domain.is_empty() {
        return Some("no domain after the `@`".to_string());
    }
    if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return Some(format!("the domain {domain:?} has an empty part (a leading, trailing or doubled dot)"));
    }
    None
}

/// `via:` as written: `sendmail`, `sendmail:/path`, or `smtp://[USER:PASSWORD@]HOST[:PORT]`
/// with HOST an IP address or `localhost`. Errors never repeat the password.
pub(super) fn mail_via(text: &str) -> Result<MailVia, String> {
    if let Some(problem) = injection_problem("the mail route", text) {
        return Err(problem);
    }
    if text == "sendmail" {
        return Ok(MailVia::Sendmail { path: PathBuf::from(SENDMAIL) });
    }
    if let Some(path) = text.strip_prefix("sendmail:") {
        if !path.starts_with('/') || path.contains('\0') {
            return Err(format!("the sendmail path {path:?} must be absolute, as in sendmail:/usr/sbin/sendmail"));
        }
        return Ok(MailVia::Sendmail { path: PathBuf::from(path) });
    }
    if text.starts_with("smtps://") {
        return Err("smtps (TLS) is not supported: sv-lite speaks plain SMTP; run a local relay that does TLS \
                    and point `via` at it, such as smtp://127.0.0.1:25"
            .to_string());
    }
    let Some(rest) = text.strip_prefix("smtp://") else {
        // A mistyped route may hold a password: show it only when it cannot.
        return Err(if text.contains('@') {
            format!("invalid mail route ({VIA_FORMS})")
        } else {
            format!("invalid mail route {text:?} ({VIA_FORMS})")
        });
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (auth, host_port) = match rest.split_once('@') {
        Some(_) if rest.matches('@').count() > 1 => {
            return Err("more than one `@` in the smtp:// route: write an `@` in the user name or password as `%40`"
                .to_string());
        }
        Some((userinfo, host_port)) => (Some(credentials(userinfo)?), host_port),
        None => (None, rest),
    };
    if host_port.contains(['/', '?', '#']) {
        return Err(format!("an smtp:// route has no path or query ({VIA_FORMS})"));
    }
    Ok(MailVia::Smtp { addr: smtp_address(host_port)?, auth })
}

/// `USER:PASSWORD` of an smtp:// route, percent-decoded.
fn credentials(userinfo: &str) -> Result<(String, String), String> {
    let Some((user, password)) = userinfo.split_once(':') else {
        return Err("the smtp:// route names a user but no password: write smtp://USER:PASSWORD@HOST".to_string());
    };
    let user = percent_decode(user).ok_or("the user name has a bad `%` escape (write `%` itself as `%25`)")?;
    let password = percent_decode(password).ok_or("the password has a bad `%` escape (write `%` itself as `%25`)")?;
    for (what, value) in [("the user name", &user), ("the password", &password)] {
        if value.is_empty() {
            return Err(format!("{what} in the smtp:// route is empty"));
        }
        if let Some(problem) = injection_problem(what, value) {
            return Err(problem);
        }
        if value.contains('\0') {
            return Err(format!("{what} must not contain a NUL byte"));
        }
    }
    Ok((user, password))
}

/// `%XX` escapes decoded; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(after.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &after[2..];
        } else {
            bytes.push(byte);
            rest = after;
        }
    }
    String::from_utf8(bytes).ok()
}

/// `HOST[:PORT]` with HOST an IPv4 address, `[IPv6]` or `localhost`.
fn smtp_address(host_port: &str) -> Result<SocketAddr, String> {
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (inside, after) = bracketed.split_once(']').ok_or("`[` without `]` around the IPv6 address")?;
        let ip = inside.parse::<Ipv6Addr>().map_err(|_| format!("invalid IPv6 address {inside:?}"))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(format!("expected `:PORT` after `]`, found {after:?}"))?),
        };
        (IpAddr::V6(ip), port)
    } else {
        if host_port.matches(':').count() > 1 {
            return Err("write an IPv6 address in brackets, such as smtp://[::1]:25".to_string());
        }
        let (host, port) = match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        };
        (smtp_host(host)?, port)
    };
    let port = match port {
        None => SMTP_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| format!("invalid port {port:?} (expected 1 to 65535)"))?,
    };
    Ok(SocketAddr::new(host, port))
}

fn smtp_host(host: &str) -> Result<IpAddr, String> {
    if host.is_empty() {
        return Err("the smtp:// route has no host, such as smtp://127.0.0.1:25".to_string());
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(IpAddr::V4(ip));
    }
    if host.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("invalid IPv4 address {host:?}"));
    }
    Err(format!(
        "{host:?} is a host name, and sv-lite does not resolve names (its loop never waits on DNS): \
         give an IP address, such as a local relay at smtp://127.0.0.1:25"
    ))
}
