//! Tron's `services:` list, and the `nodes:` and `node_pools:` its services run on.
//!
//! A service maps to a [`ProgramSpec`] with a pid file: `count` becomes `numprocs`, and it is
//! restarted (after `restart_delay`) only when it has a `restart_delay`, as in Tron. sv-lite
//! runs everything on this machine, so every node a service uses must resolve to localhost.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::locate::{Segment, Target};
use super::{child, item, name_problem, scalars, Checker};
use crate::spec::{AutoRestart, ProgramSpec, Readiness};

const SERVICE_KEYS: &[&str] = &["name", "node", "pid_file", "command", "monitor_interval", "restart_delay", "count"];

const NODE_KEYS: &[&str] = &["name", "hostname", "username", "port"];
const NODE_POOL_KEYS: &[&str] = &["name", "nodes"];
const LOCAL_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Where a Tron node name leads: a node's hostname, or a pool's members.
pub(super) enum NodeTarget {
    Host(String),
    Pool(Vec<String>),
}

impl Checker<'_> {
    /// A Tron service: its name and, when valid, its spec.
    pub(super) fn service(
        &mut self,
        path: &[Segment],
        value: &Value,
        nodes: &BTreeMap<String, NodeTarget>,
    ) -> Option<(String, Option<ProgramSpec>)> {
        let map = self.mapping(path, value, "a mapping of service settings")?;
        let errors_before = self.errors.len();
        let entries = self.entries(path, map, SERVICE_KEYS);
        for required in ["name", "node", "pid_file", "command", "monitor_interval"] {
            if !entries.iter().any(|(key, _)| *key == required) {
                self.error(path, Target::Key, format!("missing required key `{required}`"));
            }
        }
        let name = match map.get("name") {
            Some(value) => {
                let name = self.string(&child(path, "name"), value, "a service name");
                if let Some(problem) = name.as_deref().and_then(name_problem) {
                    self.error(&child(path, "name"), Target::Value, problem);
                }
                name
            }
            None => None,
        };
        let mut spec = ProgramSpec::with_defaults(name.as_deref().unwrap_or_default());
        spec.autorestart = AutoRestart::Never;
        // A service always has a pid file, which is then its only readiness.
        spec.readiness = Readiness::PidFile;
        for (key, value) in entries {
            let path = child(path, key);
            let path = path.as_slice();
            match key {
                "node" => {
                    if let Some(node) = self.string(path, value, "a node name") {
                        self.check_node(path, &node, nodes);
                    }
                }
                "pid_file" => spec.pid_file = self.string(path, value, "a path"),
                "command" => spec.argv = self.argv(path, value).unwrap_or_default(),
                "monitor_interval" => spec.monitor_interval = self.positive_duration(path, value).unwrap_or_default(),
                "restart_delay" => {
                    // Tron restarts a service only when it has a restart_delay.
                    spec.autorestart = AutoRestart::Always;
                    spec.restart_delay = self.value(path, value, scalars::duration).unwrap_or_default();
                }
                "count" => spec.numprocs = self.value(path, value, |v| scalars::bounded_u32(v, 1)).unwrap_or(1),
                _ => {}
            }
        }
        let command_is_list = matches!(map.get("command"), Some(Value::Sequence(_)));
        self.check_templates(path, "command", command_is_list, &spec, &[]);
        let valid = self.errors.len() == errors_before;
        name.map(|name| (name, valid.then_some(spec)))
    }

    /// Tron's `nodes:` and `node_pools:`, by name.
    pub(super) fn nodes(&mut self, nodes: Option<&Value>, pools: Option<&Value>) -> BTreeMap<String, NodeTarget> {
        let mut targets = BTreeMap::new();
        let nodes_path = child(&[], "nodes");
        for (index, value) in
            nodes.map(|nodes| self.list(&nodes_path, nodes, "a list of nodes")).unwrap_or_default().iter().enumerate()
        {
            let path = item(&nodes_path, index);
            let Some(map) = self.mapping(&path, value, "a mapping with `name` and `hostname`") else {
                continue;
            };
            let (mut name, mut hostname) = (None, None);
            for (key, value) in self.entries(&path, map, NODE_KEYS) {
                match key {
                    "name" => name = self.string(&child(&path, key), value, "a node name"),
                    "hostname" => hostname = self.string(&child(&path, key), value, "a host name"),
                    _ => {}
                }
            }
            for (key, present) in [("name", map.contains_key("name")), ("hostname", map.contains_key("hostname"))] {
                if !present {
                    self.error(&path, Target::Key, format!("missing required key `{key}`"));
                }
            }
            if let (Some(name), Some(hostname)) = (name, hostname) {
                targets.insert(name, NodeTarget::Host(hostname));
            }
        }
        let pools_path = child(&[], "node_pools");
        for (index, value) in pools
            .map(|pools| self.list(&pools_path, pools, "a list of node pools"))
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let path = item(&pools_path, index);
            let Some(map) = self.mapping(&path, value, "a mapping with `name` and `nodes`") else {
                continue;
            };
            let (mut name, mut members) = (None, None);
            for (key, value) in self.entries(&path, map, NODE_POOL_KEYS) {
                let key_path = child(&path, key);
                match key {
                    "name" => name = self.string(&key_path, value, "a pool name"),
                    "nodes" => members = Some(self.pool_members(&key_path, value, &targets)),
                    _ => {}
                }
            }
            for key in ["name", "nodes"] {
                if !map.contains_key(key) {
                    self.error(&path, Target::Key, format!("missing required key `{key}`"));
                }
            }
            if let (Some(name), Some(members)) = (name, members) {
                targets.insert(name, NodeTarget::Pool(members));
            }
        }
        targets
    }

    fn pool_members(&mut self, path: &[Segment], value: &Value, targets: &BTreeMap<String, NodeTarget>) -> Vec<String> {
        let mut members = Vec::new();
        for (index, member) in self.list(path, value, "a list of node names").iter().enumerate() {
            let member_path = item(path, index);
            let Some(member) = self.string(&member_path, member, "a node name") else {
                continue;
            };
            match targets.get(&member) {
                Some(NodeTarget::Host(_)) => members.push(member),
                _ => self.error(
                    &member_path,
                    Target::Value,
                    format!("unknown node {member:?} (define it under `nodes:`)"),
                ),
            }
        }
        members
    }

    fn check_node(&mut self, path: &[Segment], node: &str, targets: &BTreeMap<String, NodeTarget>) {
        const REMOTE: &str = "remote nodes are not supported yet (sv-lite runs services on this machine only)";
        let remote = |host: &str| !LOCAL_HOSTS.contains(&host);
        match targets.get(node) {
            Some(NodeTarget::Host(host)) if remote(host) => {
                self.error(path, Target::Value, format!("node {node:?} resolves to host {host:?}; {REMOTE}"));
            }
            Some(NodeTarget::Pool(members)) => {
                for member in members {
                    if let Some(NodeTarget::Host(host)) = targets.get(member) {
                        if remote(host) {
                            self.error(
                                path,
                                Target::Value,
                                format!("node pool {node:?} includes node {member:?} on host {host:?}; {REMOTE}"),
                            );
                        }
                    }
                }
            }
            Some(NodeTarget::Host(_)) => {}
            None if node == "localhost" => {}
            None => self.error(
                path,
                Target::Value,
                format!("unknown node {node:?} (define it under `nodes:` or `node_pools:`, or use `localhost`)"),
            ),
        }
    }
}
