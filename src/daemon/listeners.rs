//! The listening sockets sv-lite holds for socket-activated programs.
//!
//! Bound when the config loads (so a bind error is a config error, at start or at reload) and
//! kept across the programs' restarts: while a program is down, connections wait in the
//! listener's backlog instead of being refused. A socket whose address did not change keeps its
//! descriptor across reloads; a removed program's sockets are closed.
//!
//! A TCP socket configured with port 0 is bound once; the config handed to the core then names
//! the bound port, so `{{ports[NAME]}}` and `PORT_NAME` expand to it like to any fixed port, and
//! later reloads of the same config see no change.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::sockets;
use crate::spec::{Config, SocketSpec};

/// One bound socket.
#[derive(Debug)]
struct Listener {
    /// The address as the config writes it (port 0 for an allocated one).
    configured: SocketSpec,
    /// The address bound (the allocated port filled in).
    bound: SocketSpec,
    fd: OwnedFd,
}

/// Every program's listening sockets, by (program, socket name).
#[derive(Debug, Default)]
pub struct Listeners {
    held: HashMap<(String, String), Listener>,
    /// Each program's socket names, in config order (fds 3, 4, ...).
    order: HashMap<String, Vec<String>>,
}

impl Listeners {
    /// Binds what `config` asks for and does not hold yet, closes what it no longer names, and
    /// rewrites its socket addresses to the bound ones. On a bind error nothing changes and the
    /// error says which program and socket.
    pub fn apply(&mut self, config: &mut Config) -> Result<(), String> {
        self.apply_sparing(config, &|_| false)
    }

    /// Like [`Listeners::apply`], but a program for which `spare` says yes (a service file's)
    /// whose sockets cannot be bound is left out of `config`, with the error in
    /// `config.problems`, instead of failing the whole config.
    pub fn apply_sparing(&mut self, config: &mut Config, spare: &dyn Fn(&str) -> bool) -> Result<(), String> {
        let Err(error) = self.bind(config) else { return Ok(()) };
        // Nothing changed; find out which programs failed (binding their sockets alone).
        let failing = self.unbindable(config);
        if failing.is_empty() {
            return Err(error); // Bound alone but not together (two programs on one address).
        }
        let (spared, fatal): (Vec<_>, Vec<_>) = failing.into_iter().partition(|(program, _)| spare(program));
        if !fatal.is_empty() {
            return Err(fatal.into_iter().map(|(_, error)| error).collect::<Vec<_>>().join("\n"));
        }
        for (program, error) in &spared {
            config.problems.push(format!("{error}; program {program:?} is left out"));
        }
        config.programs.retain(|program| !spared.iter().any(|(name, _)| *name == program.name));
        self.bind(config)
    }

    /// The programs whose sockets cannot be bound, each with why.
    fn unbindable(&self, config: &Config) -> Vec<(String, String)> {
        let mut failing = Vec::new();
        for program in &config.programs {
            for (name, configured) in &program.sockets {
                let key = (program.name.clone(), name.clone());
                if self.held.get(&key).is_some_and(|held| held.configured == *configured) {
                    continue;
                }
                if let Err(error) = sockets::bind(configured) {
                    failing.push((program.name.clone(), format!("programs.{}.sockets.{name}: {error}", program.name)));
                }
            }
        }
        failing
    }

    fn bind(&mut self, config: &mut Config) -> Result<(), String> {
        let mut next: HashMap<(String, String), Listener> = HashMap::new();
        let mut errors = Vec::new();
        for program in &config.programs {
            for (name, configured) in &program.sockets {
                let key = (program.name.clone(), name.clone());
                if self.held.get(&key).is_some_and(|held| held.configured == *configured) {
                    continue; // Same address as before: the descriptor is kept (moved below).
                }
                match sockets::bind(configured) {
                    Ok((fd, port)) => {
                        let bound = match (configured, port) {
                            (SocketSpec::Tcp(address), Some(port)) => {
                                SocketSpec::Tcp(SocketAddr::new(address.ip(), port))
                            }
                            (other, _) => other.clone(),
                        };
                        next.insert(key, Listener { configured: configured.clone(), bound, fd });
                    }
                    Err(error) => errors.push(format!("programs.{}.sockets.{name}: {error}", program.name)),
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors.join("\n"));
        }
        // Keep the unchanged ones; everything else held is closed when `self.held` is replaced.
        for program in &config.programs {
            for (name, configured) in &program.sockets {
                let key = (program.name.clone(), name.clone());
                if next.contains_key(&key) {
                    continue;
                }
                if let Some(kept) = self.held.remove(&key).filter(|held| held.configured == *configured) {
                    next.insert(key, kept);
                }
            }
        }
        self.held = next;
        self.order = config
            .programs
            .iter()
            .filter(|program| !program.sockets.is_empty())
            .map(|program| (program.name.clone(), program.sockets.iter().map(|(name, _)| name.clone()).collect()))
            .collect();
        for program in &mut config.programs {
            for (name, address) in &mut program.sockets {
                if let Some(listener) = self.held.get(&(program.name.clone(), name.clone())) {
                    *address = listener.bound.clone();
                }
            }
        }
        Ok(())
    }

    /// The descriptors a program's instances get, as `(target, source)` pairs for fds 3, 4, ...
    /// in config order, and the socket names for `LISTEN_FDNAMES`.
    #[must_use]
    pub fn for_program(&self, program: &str) -> (Vec<(RawFd, RawFd)>, Vec<String>) {
        let mut fds = Vec::new();
        let mut found = Vec::new();
        let names = self.order.get(program).map(Vec::as_slice).unwrap_or_default();
        for (index, name) in names.iter().enumerate() {
            if let Some(listener) = self.held.get(&(program.to_string(), name.clone())) {
                let target = RawFd::try_from(3 + index).unwrap_or(RawFd::MAX);
                fds.push((target, listener.fd.as_raw_fd()));
                found.push(name.clone());
            }
        }
        (fds, found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ProgramSpec;

    fn config_with(address: &str) -> Config {
        let mut web = ProgramSpec::with_defaults("web");
        web.argv = vec!["server".to_string()];
        web.sockets = vec![("http".to_string(), SocketSpec::Tcp(address.parse().unwrap()))];
        Config { programs: vec![web], ..Config::default() }
    }

    #[test]
    fn port_zero_is_bound_once_kept_across_reloads_and_closed_when_removed() {
        let mut listeners = Listeners::default();
        let mut first = config_with("127.0.0.1:0");
        listeners.apply(&mut first).unwrap();
        let SocketSpec::Tcp(bound) = first.programs[0].sockets[0].1.clone() else { panic!() };
        assert_ne!(bound.port(), 0);
        let (fds, names) = listeners.for_program("web");
        assert_eq!((fds.len(), names), (1, vec!["http".to_string()]));
        assert_eq!(fds[0].0, 3);
        // The same config again: same descriptor, same port.
        let mut again = config_with("127.0.0.1:0");
        listeners.apply(&mut again).unwrap();
        assert_eq!(again.programs[0].sockets, first.programs[0].sockets);
        assert_eq!(listeners.for_program("web").0, fds);
        std::net::TcpStream::connect(bound).expect("the listener is still open");
        // Removed: closed.
        listeners.apply(&mut Config::default()).unwrap();
        assert!(std::net::TcpStream::connect(bound).is_err());
    }

    #[test]
    fn a_bind_error_names_program_and_socket_and_changes_nothing() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let mut listeners = Listeners::default();
        let error = listeners.apply(&mut config_with(&address)).unwrap_err();
        assert!(error.starts_with("programs.web.sockets.http: "), "{error}");
        assert!(error.contains(&address), "{error}");
    }
}
