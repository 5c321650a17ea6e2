//! systemd-style socket activation: the environment a program gets with its listening sockets.
//!
//! The daemon binds the sockets (`daemon::sockets`) and passes them as fds 3, 4, ... with
//! `sys::SpawnOptions::extra_fds`, with [`listen_env`] in the program's environment.
//! `LISTEN_PID`, which `sd_listen_fds` requires to be the program's own pid, is not here:
//! nobody knows the pid before the child exists, so `sys::SpawnOptions::listen_pid` has the
//! child write it into its environment between clone and exec (see `sys::spawn_cloned`).
//!
//! Pure.

/// `LISTEN_FDS` and `LISTEN_FDNAMES` for sockets passed as fds 3, 4, ... in the order of
/// `names`. Spawn with `listen_pid: true` too.
///
/// systemd's names may not contain `:` (the separator); the config loader checks that.
#[must_use]
pub fn listen_env(names: &[String]) -> Vec<(String, String)> {
    vec![("LISTEN_FDS".to_string(), names.len().to_string()), ("LISTEN_FDNAMES".to_string(), names.join(":"))]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|word| word.to_string()).collect()
    }

    #[test]
    fn listen_env_counts_and_names_the_sockets_in_order() {
        let env = listen_env(&strings(&["http", "admin"]));
        assert_eq!(env, vec![("LISTEN_FDS".into(), "2".into()), ("LISTEN_FDNAMES".into(), "http:admin".into())]);
        let env = listen_env(&strings(&["only"]));
        assert_eq!(env, vec![("LISTEN_FDS".into(), "1".into()), ("LISTEN_FDNAMES".into(), "only".into())]);
    }
}
