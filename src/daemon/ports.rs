//! Finding free TCP ports for instances' allocated port names.
//!
//! The core decides which ports are off limits (held by live instances, or released too
//! recently); this file only asks the kernel. A port is free when binding it works on the IPv4
//! wildcard address (port 0 lets the kernel pick) and then on the IPv6 wildcard too, which on
//! Linux also covers IPv4 (dual stack). The test sockets are closed again at once: the child
//! binds the port itself. Binding never blocks.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

/// How many ports the kernel may offer that are off limits before we give up.
const ATTEMPTS: usize = 200;

/// `count` distinct free ports, none of them in `exclude`.
pub fn allocate(count: usize, exclude: &[u16]) -> Result<Vec<u16>, String> {
    allocate_with(count, exclude, pick, free_on_ipv6)
}

fn allocate_with(
    count: usize,
    exclude: &[u16],
    mut pick: impl FnMut() -> io::Result<u16>,
    mut free_on_ipv6: impl FnMut(u16) -> bool,
) -> Result<Vec<u16>, String> {
    let exclude: HashSet<u16> = exclude.iter().copied().collect();
    let mut found = Vec::with_capacity(count);
    let mut attempts = 0;
    while found.len() < count {
        attempts += 1;
        if attempts > ATTEMPTS {
            return Err(format!("found {} free ports of {count} after {ATTEMPTS} tries", found.len()));
        }
        let port = pick().map_err(|error| format!("cannot bind a TCP port: {error}"))?;
        if exclude.contains(&port) || found.contains(&port) || !free_on_ipv6(port) {
            continue;
        }
        found.push(port);
    }
    Ok(found)
}

/// A port the kernel considers free on the IPv4 wildcard address.
fn pick() -> io::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
    Ok(listener.local_addr()?.port())
}

/// Whether `port` can be bound on the IPv6 wildcard (a machine without IPv6 says yes).
fn free_on_ipv6(port: u16) -> bool {
    match TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))) {
        Ok(_) => true,
        Err(error) => error.kind() != io::ErrorKind::AddrInUse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_ports_are_distinct_and_bindable() {
        let ports = allocate(5, &[]).unwrap();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), 5);
        for port in ports {
            TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).unwrap();
        }
    }

    #[test]
    fn excluded_repeated_and_ipv6_busy_ports_are_skipped_and_the_search_is_bounded() {
        // The kernel offers 100 (excluded), 200, 200 again, 300 (busy on IPv6), then 400.
        let mut offers = vec![100, 200, 200, 300, 400].into_iter();
        let ports = allocate_with(2, &[100], || Ok(offers.next().unwrap_or(1)), |port| port != 300).unwrap();
        assert_eq!(ports, [200, 400]);
        let error = allocate_with(1, &[7], || Ok(7), |_| true).unwrap_err();
        assert!(error.contains("found 0 free ports of 1"), "{error}");
    }
}
