//! Aurora-style services: a program's named `ports` (Aurora's `thermos.ports` and `portmap`),
//! its `health_check` (HealthCheckConfig) and its HTTP `lifecycle` (HttpLifecycleConfig).
//!
//! `ports` is read first, because the other two refer to ports by name. Every name written
//! under `ports`, valid or not, counts as declared for those references, so one bad port is
//! reported once, at its declaration, and not again at each use.

use serde_yaml::{Mapping, Value};

use super::locate::{Segment, Target};
use super::scalars::{self, describe, suggest};
use super::{child, item, Checker};
use crate::spec::{self, CheckKind, HealthCheck, HttpLifecycle, PortRef, PortSpec, ProgramSpec};

const HEALTH_CHECK_KEYS: &[&str] = &[
    "http",
    "shell",
    "tcp",
    "initial_interval_secs",
    "interval_secs",
    "timeout_secs",
    "max_consecutive_failures",
    "min_consecutive_successes",
];
const CHECK_KINDS: &[&str] = &["http", "shell", "tcp"];
const HTTP_CHECK_KEYS: &[&str] = &["port", "endpoint", "expected_response", "expected_response_code"];
const LIFECYCLE_KEYS: &[&str] = &["http"];
const HTTP_LIFECYCLE_KEYS: &[&str] =
    &["port", "graceful_shutdown_endpoint", "graceful_shutdown_wait_secs", "shutdown_endpoint", "shutdown_wait_secs"];

/// The port an HTTP check or lifecycle uses when it names none, as in Aurora.
const DEFAULT_PORT: &str = "health";

/// Why `name` cannot name a port (or a socket, `what`), if it cannot.
pub(super) fn port_name_problem(what: &str, name: &str) -> Option<String> {
    if name.is_empty() {
        Some(format!("{what} names must not be empty"))
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')) {
        Some(format!("invalid {what} name {name:?}: use only letters, digits, `_` and `-`"))
    } else {
        None
    }
}

/// The program's declared ports, for messages: `(declared ports: http, health)`.
fn declared_list(ports: &[String]) -> String {
    format!("(declared ports: {})", ports.join(", "))
}

/// Where an alias leads when its target is itself an alias.
enum Chain {
    /// To this port, which is no alias.
    Port(String),
    /// Round in a circle; the names in the order followed, the first repeated at the end.
    Cycle(Vec<String>),
    /// To a name that is not a valid port (reported where it is declared, or not declared).
    Nowhere,
}

impl Checker<'_> {
    /// Reads `ports`, `health_check` and `lifecycle` of the program map `map` at `path` into
    /// `spec`, and fills in Aurora's default lifecycle. Returns every port name written under
    /// `ports`, for the template checks.
    pub(super) fn aurora(&mut self, path: &[Segment], map: &Mapping, spec: &mut ProgramSpec) -> Vec<String> {
        let names = match map.get("ports") {
            Some(value) => self.ports(&child(path, "ports"), value, spec),
            None => Vec::new(),
        };
        if let Some(value) = map.get("health_check") {
            spec.health_check = self.health_check(&child(path, "health_check"), value, &names);
        }
        spec.lifecycle = match map.get("lifecycle") {
            Some(value) => self.lifecycle(&child(path, "lifecycle"), value, &names),
            None => names
                .iter()
                .any(|name| name == DEFAULT_PORT)
                .then(|| HttpLifecycle::with_defaults(PortRef::Named(DEFAULT_PORT.to_string()))),
        };
        names
    }

    /// `ports:` as a list of names (each allocated) or a map of names to 0, a number or another
    /// name. Sets `spec.ports` to the valid ones; returns every name written.
    fn ports(&mut self, path: &[Segment], value: &Value, spec: &mut ProgramSpec) -> Vec<String> {
        let mut names = Vec::new();
        let mut ports: Vec<(String, PortSpec)> = Vec::new();
        match value {
            Value::Null => {}
            Value::Sequence(items) => {
                for (index, value) in items.iter().enumerate() {
                    let item_path = item(path, index);
                    let name = match value {
                        Value::String(name) => name,
                        Value::Number(number) => {
                            let message = format!(
                                "expected a port name, found an integer {number}; for a fixed port, \
                                 name it in a mapping: `ports: {{http: {number}}}`"
                            );
                            self.error(&item_path, Target::Value, message);
                            continue;
                        }
                        other => {
                            self.error(
                                &item_path,
                                Target::Value,
                                format!("expected a port name, found {}", describe(other)),
                            );
                            continue;
                        }
                    };
                    if !names.contains(name) {
                        names.push(name.clone());
                    }
                    if let Some(problem) = port_name_problem("port", name) {
                        self.error(&item_path, Target::Value, problem);
                    } else if ports.iter().any(|(known, _)| known == name) {
                        self.error(&item_path, Target::Value, format!("duplicate port `{name}`"));
                    } else {
                        ports.push((name.clone(), PortSpec::Allocate));
                    }
                }
            }
            Value::Mapping(map) => {
                for (key, value) in map {
                    let Some(name) = (match key {
                        Value::String(_) | Value::Number(_) => scalars::scalar_text(key),
                        _ => None,
                    }) else {
                        self.error(path, Target::Value, format!("expected a port name, found {}", describe(key)));
                        continue;
                    };
                    names.push(name.clone());
                    let port_path = child(path, &name);
                    if let Some(problem) = port_name_problem("port", &name) {
                        self.error(&port_path, Target::Key, problem);
                        continue;
                    }
                    if let Some(port) = self.port_spec(&port_path, value) {
                        ports.push((name, port));
                    }
                }
            }
            other => {
                let message = format!(
                    "expected a list of port names, or a mapping of port names to 0 (any free port), \
                     a port number or another port's name, found {}",
                    describe(other)
                );
                self.error(path, Target::Value, message);
            }
        }
        self.check_aliases(path, &ports, &names);
        self.check_port_variables(path, value, &ports);
        spec.ports = ports;
        names
    }

    /// One value of the `ports` map.
    fn port_spec(&mut self, path: &[Segment], value: &Value) -> Option<PortSpec> {
        self.value(path, value, |value| match value {
            Value::Number(_) => match scalars::integer(value)? {
                0 => Ok(PortSpec::Allocate),
                number => u16::try_from(number)
                    .ok()
                    .filter(|port| *port > 0)
                    .map(PortSpec::Fixed)
                    .ok_or_else(|| format!("port {number} is out of range (0 for any free port, or 1 to 65535)")),
            },
            Value::String(target) => Ok(PortSpec::Alias(target.clone())),
            other => Err(format!(
                "expected 0 (any free port), a port number or another port's name, found {}",
                describe(other)
            )),
        })
    }

    /// Every alias must name a port of the same map that is not itself an alias.
    fn check_aliases(&mut self, path: &[Segment], ports: &[(String, PortSpec)], names: &[String]) {
        let lookup = |name: &str| ports.iter().find(|(known, _)| known == name).map(|(_, port)| port);
        for (name, port) in ports {
            let PortSpec::Alias(target) = port else { continue };
            let port_path = child(path, name);
            let message = match lookup(target) {
                Some(PortSpec::Alias(_)) if target == name => {
                    format!("`{name}` is an alias of itself; give it 0 (any free port) or a number")
                }
                Some(PortSpec::Alias(next)) => {
                    let hint = match follow(ports, name, target, next) {
                        Chain::Port(port) => format!("name the port itself: `{name}: {port}`"),
                        Chain::Cycle(chain) => {
                            let chain: Vec<String> = chain.iter().map(|name| format!("`{name}`")).collect();
                            format!("the aliases {} form a cycle", chain.join(" -> "))
                        }
                        Chain::Nowhere => "name a port that is no alias".to_string(),
                    };
                    format!("`{name}` names `{target}`, which is itself an alias (of `{next}`); {hint}")
                }
                Some(_) => continue,
                // Declared, but invalid: reported there.
                None if names.contains(target) => continue,
                None => {
                    let mut message = format!("`{name}` names an unknown port `{target}`");
                    if let Some(near) = suggest(target, &names.iter().map(String::as_str).collect::<Vec<_>>()) {
                        message.push_str(&format!("; did you mean `{near}`?"));
                    }
                    if target.parse::<u16>().is_ok() {
                        message.push_str(&format!("; for the fixed port {target}, write the number without quotes"));
                    }
                    message.push_str(&format!(" {}", declared_list(names)));
                    message
                }
            };
            self.error(&port_path, Target::Value, message);
        }
    }

    /// Two names such as `admin-ui` and `admin_ui` would set the same `PORT_ADMIN_UI`.
    fn check_port_variables(&mut self, path: &[Segment], value: &Value, ports: &[(String, PortSpec)]) {
        for (index, (name, _)) in ports.iter().enumerate() {
            let variable = spec::port_env_name(name);
            let Some((first, _)) = ports[..index].iter().find(|(other, _)| spec::port_env_name(other) == variable)
            else {
                continue;
            };
            let message = format!("ports `{first}` and `{name}` would both set {variable}; rename one");
            match value {
                Value::Sequence(items) => {
                    let position = items.iter().position(|item| item.as_str() == Some(name.as_str()));
                    self.error(&item(path, position.unwrap_or(index)), Target::Value, message);
                }
                _ => self.error(&child(path, name), Target::Key, message),
            }
        }
    }

    fn health_check(&mut self, path: &[Segment], value: &Value, ports: &[String]) -> Option<HealthCheck> {
        let map = self.mapping(path, value, "a mapping with one of `http`, `shell` or `tcp`")?;
        let entries = self.entries(path, map, HEALTH_CHECK_KEYS);
        let kinds: Vec<(&str, &Value)> =
            entries.iter().filter(|(key, _)| CHECK_KINDS.contains(key)).map(|&(key, value)| (key, value)).collect();
        let kind = match kinds.as_slice() {
            // A misspelled kind is reported as an unknown key, with its suggestion.
            [] if misspells(map, HEALTH_CHECK_KEYS, CHECK_KINDS) => None,
            [] => {
                self.error(path, Target::Key, "missing the kind of check: set one of `http`, `shell` or `tcp`");
                None
            }
            [(key, value)] => self.check_kind(&child(path, key), key, value, ports),
            [(first, _), rest @ ..] => {
                for (key, _) in rest {
                    let message = format!("one kind of check per program, but `{first}` is set too");
                    self.error(&child(path, key), Target::Key, message);
                }
                None
            }
        };
        // The timing, on a placeholder kind until the real one is known.
        let mut check = HealthCheck::with_defaults(CheckKind::Shell { command: String::new() });
        for (key, value) in entries {
            let path = child(path, key);
            let path = path.as_slice();
            match key {
                "initial_interval_secs" => {
                    check.initial_interval = self.value(path, value, scalars::duration).unwrap_or_default();
                }
                "interval_secs" => check.interval = self.positive_duration(path, value).unwrap_or_default(),
                "timeout_secs" => check.timeout = self.positive_duration(path, value).unwrap_or_default(),
                "max_consecutive_failures" => {
                    check.max_consecutive_failures =
                        self.value(path, value, |v| scalars::bounded_u32(v, 0)).unwrap_or(0);
                }
                "min_consecutive_successes" => {
                    check.min_consecutive_successes =
                        self.value(path, value, |v| scalars::bounded_u32(v, 1)).unwrap_or(1);
                }
                _ => {}
            }
        }
        Some(HealthCheck { kind: kind?, ..check })
    }

    fn check_kind(&mut self, path: &[Segment], key: &str, value: &Value, ports: &[String]) -> Option<CheckKind> {
        match key {
            "shell" => self.string(path, value, "a shell command").map(|command| CheckKind::Shell { command }),
            "tcp" => self.port_ref(path, value, ports).map(|port| CheckKind::Tcp { port }),
            _ => self.http_check(path, value, ports),
        }
    }

    fn http_check(&mut self, path: &[Segment], value: &Value, ports: &[String]) -> Option<CheckKind> {
        let entries = self.optional_mapping(path, value, "a mapping of HTTP check settings", HTTP_CHECK_KEYS)?;
        let errors_before = self.errors.len();
        let (mut port, mut endpoint, mut expected_response, mut expected_response_code) =
            (None, "/health".to_string(), String::new(), 0);
        for (key, value) in &entries {
            let path = child(path, key);
            let path = path.as_slice();
            match *key {
                "port" => port = self.port_ref(path, value, ports),
                "endpoint" => endpoint = self.endpoint(path, value).unwrap_or_default(),
                "expected_response" => {
                    expected_response = self
                        .value(path, value, |value| {
                            scalars::scalar_text(value)
                                .ok_or_else(|| format!("expected the response text, found {}", describe(value)))
                        })
                        .unwrap_or_default();
                }
                "expected_response_code" => {
                    expected_response_code = self.value(path, value, status_code).unwrap_or_default();
                }
                _ => {}
            }
        }
        if !entries.iter().any(|(key, _)| *key == "port") {
            port = self.default_port(path, ports);
        }
        let port = port?;
        (self.errors.len() == errors_before).then_some(CheckKind::Http {
            port,
            endpoint,
            expected_response,
            expected_response_code,
        })
    }

    fn lifecycle(&mut self, path: &[Segment], value: &Value, ports: &[String]) -> Option<HttpLifecycle> {
        const EXPECTED: &str = "expected `none` or a mapping with `http`";
        match value {
            Value::String(text) if text == "none" => None,
            Value::Mapping(map) => {
                let entries = self.entries(path, map, LIFECYCLE_KEYS);
                match entries.iter().find(|(key, _)| *key == "http") {
                    Some((_, value)) => self.http_lifecycle(&child(path, "http"), value, ports),
                    None if misspells(map, LIFECYCLE_KEYS, LIFECYCLE_KEYS) => None,
                    None => {
                        let message = "missing key `http` (its settings, or `{}` for the defaults); \
                                       `lifecycle: none` turns the lifecycle off";
                        self.error(path, Target::Key, message);
                        None
                    }
                }
            }
            other => {
                self.error(path, Target::Value, format!("{EXPECTED}, found {}", describe(other)));
                None
            }
        }
    }

    fn http_lifecycle(&mut self, path: &[Segment], value: &Value, ports: &[String]) -> Option<HttpLifecycle> {
        let entries =
            self.optional_mapping(path, value, "a mapping of HTTP lifecycle settings", HTTP_LIFECYCLE_KEYS)?;
        let errors_before = self.errors.len();
        let mut port = None;
        let mut lifecycle = HttpLifecycle::with_defaults(PortRef::Named(DEFAULT_PORT.to_string()));
        for (key, value) in &entries {
            let path = child(path, key);
            let path = path.as_slice();
            match *key {
                "port" => port = self.port_ref(path, value, ports),
                "graceful_shutdown_endpoint" => {
                    lifecycle.graceful_shutdown_endpoint = self.endpoint(path, value).unwrap_or_default();
                }
                "graceful_shutdown_wait_secs" => {
                    lifecycle.graceful_shutdown_wait = self.value(path, value, scalars::duration).unwrap_or_default();
                }
                "shutdown_endpoint" => lifecycle.shutdown_endpoint = self.endpoint(path, value).unwrap_or_default(),
                "shutdown_wait_secs" => {
                    lifecycle.shutdown_wait = self.value(path, value, scalars::duration).unwrap_or_default();
                }
                _ => {}
            }
        }
        if !entries.iter().any(|(key, _)| *key == "port") {
            port = self.default_port(path, ports);
        }
        lifecycle.port = port?;
        (self.errors.len() == errors_before).then_some(lifecycle)
    }

    /// The known entries of a settings map, where null means an empty map (all defaults).
    fn optional_mapping<'v>(
        &mut self,
        path: &[Segment],
        value: &'v Value,
        what: &str,
        known: &[&'static str],
    ) -> Option<Vec<(&'static str, &'v Value)>> {
        match value {
            Value::Null => Some(Vec::new()),
            other => {
                let map = self.mapping(path, other, what)?;
                Some(self.entries(path, map, known))
            }
        }
    }

    /// A port given by one of the program's port names or by number.
    fn port_ref(&mut self, path: &[Segment], value: &Value, ports: &[String]) -> Option<PortRef> {
        match value {
            Value::Number(_) => self.value(path, value, |value| {
                let number = scalars::integer(value)?;
                u16::try_from(number)
                    .ok()
                    .filter(|port| *port > 0)
                    .map(PortRef::Number)
                    .ok_or_else(|| format!("port {number} is out of range (1 to 65535)"))
            }),
            Value::String(name) if ports.contains(name) => Some(PortRef::Named(name.clone())),
            Value::String(name) => {
                let message = if ports.is_empty() {
                    format!(
                        "unknown port `{name}`: the program declares no ports (add `ports: [{name}]`, or give a number)"
                    )
                } else {
                    let known: Vec<&str> = ports.iter().map(String::as_str).collect();
                    match suggest(name, &known) {
                        Some(near) => format!("unknown port `{name}`; did you mean `{near}`? {}", declared_list(ports)),
                        None => format!("unknown port `{name}` {}", declared_list(ports)),
                    }
                };
                self.error(path, Target::Value, message);
                None
            }
            other => {
                self.error(path, Target::Value, format!("expected a port name or number, found {}", describe(other)));
                None
            }
        }
    }

    /// `health` when the program has a port of that name; otherwise an error at `path`.
    fn default_port(&mut self, path: &[Segment], ports: &[String]) -> Option<PortRef> {
        if ports.iter().any(|name| name == DEFAULT_PORT) {
            return Some(PortRef::Named(DEFAULT_PORT.to_string()));
        }
        let message = if ports.is_empty() {
            format!(
                "no `port` given, and the program has no port named `{DEFAULT_PORT}` to use by default; \
                 set `port` to a number, or declare `ports: [{DEFAULT_PORT}]`"
            )
        } else {
            format!(
                "no `port` given, and the program has no port named `{DEFAULT_PORT}` to use by default; \
                 set `port` to one of its ports ({}) or a number",
                ports.join(", ")
            )
        };
        self.error(path, Target::Key, message);
        None
    }

    /// An HTTP path: `/health`.
    fn endpoint(&mut self, path: &[Segment], value: &Value) -> Option<String> {
        let endpoint = self.string(path, value, "an endpoint path such as /health")?;
        let message = if !endpoint.starts_with('/') {
            format!("endpoint {endpoint:?} must start with `/`, as in \"/{endpoint}\"")
        } else if endpoint.contains(|c: char| c.is_whitespace() || c.is_control()) {
            format!("endpoint {endpoint:?} must not contain spaces or control characters (write a space as %20)")
        } else {
            return Some(endpoint);
        };
        self.error(path, Target::Value, message);
        None
    }
}

/// Follows aliases from `name` → `target` → `next` until a port that is no alias, a name seen
/// before, or a name that is no valid port.
fn follow(ports: &[(String, PortSpec)], name: &str, target: &str, next: &str) -> Chain {
    let mut chain = vec![name.to_string(), target.to_string()];
    let mut current = next.to_string();
    loop {
        if chain.contains(&current) {
            chain.push(current);
            return Chain::Cycle(chain);
        }
        match ports.iter().find(|(known, _)| *known == current).map(|(_, port)| port) {
            Some(PortSpec::Alias(following)) => {
                chain.push(std::mem::replace(&mut current, following.clone()));
            }
            Some(_) => return Chain::Port(current),
            None => return Chain::Nowhere,
        }
    }
}

/// Whether an unknown key of `map` looks like a misspelling of one of `wanted` (then its own
/// error says so, and "missing" would only repeat it).
fn misspells(map: &Mapping, known: &[&str], wanted: &[&str]) -> bool {
    map.keys()
        .filter_map(Value::as_str)
        .filter(|key| !known.contains(key))
        .any(|key| suggest(key, known).is_some_and(|near| wanted.contains(&near)))
}

/// `expected_response_code`: 0 for any 2xx, or an HTTP status.
fn status_code(value: &Value) -> Result<u16, String> {
    let code = scalars::integer(value)?;
    match u16::try_from(code) {
        Ok(code @ (0 | 100..=599)) => Ok(code),
        _ => Err(format!("expected 0 (any 2xx) or an HTTP status code from 100 to 599, found {code}")),
    }
}
