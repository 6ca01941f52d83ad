//! Who may open a connection: the server's capacity and per-address shares of it.
//!
//! Connections that have not logged in cost the server a descriptor each and prove nothing,
//! so each address may hold only a few at once; one address cannot lock everyone else out by
//! opening a thousand sockets and never logging in. Addresses on the exempt list (loopback
//! by default, ergo's `exempted`) are not counted, so local tools and tests are never
//! throttled.

use std::collections::HashMap;
use std::net::IpAddr;

/// What a runtime sends a client it cannot even hand to the core — the process is out of
/// file descriptors — before closing the connection, so the client is told rather than left
/// hanging.
pub const OUT_OF_RESOURCES_LINE: &str = "421 The server cannot take more connections now (out of file descriptors). Please try again later.\n";

/// Why a new connection is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds as many connections as it may.
    Full {
        /// The limit.
        limit: usize,
    },
    /// This address already has that many connections that have not logged in.
    TooManyFromAddress {
        /// The limit.
        limit: usize,
    },
}

/// Counts of not-yet-logged-in connections per address.
#[derive(Debug)]
pub struct Admission {
    exempt: Vec<IpAddr>,
    per_ip_limit: usize,
    max_connections: usize,
    pending: HashMap<IpAddr, usize>,
}

/// The address as it is compared: an IPv4 address mapped into IPv6 is the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl Admission {
    /// Admission with these limits.
    pub fn new(exempt: &[IpAddr], per_ip_limit: usize, max_connections: usize) -> Self {
        Self {
            exempt: exempt.iter().copied().map(canonical).collect(),
            per_ip_limit,
            max_connections,
            pending: HashMap::new(),
        }
    }

    /// Whether `ip` is exempt from per-address limits.
    pub fn is_exempt(&self, ip: IpAddr) -> bool {
        self.exempt.contains(&canonical(ip))
    }

    /// May a connection from `ip` be served, with `open` connections already open?
    pub fn check(&self, ip: IpAddr, open: usize) -> Result<(), Refusal> {
        if open >= self.max_connections {
            return Err(Refusal::Full {
                limit: self.max_connections,
            });
        }
        if !self.is_exempt(ip)
            && self.pending.get(&canonical(ip)).copied().unwrap_or(0) >= self.per_ip_limit
        {
            return Err(Refusal::TooManyFromAddress {
                limit: self.per_ip_limit,
            });
        }
        Ok(())
    }

    /// A connection from `ip` was admitted and has not logged in yet.
    pub fn arrived(&mut self, ip: IpAddr) {
        if !self.is_exempt(ip) {
            *self.pending.entry(canonical(ip)).or_default() += 1;
        }
    }

    /// A connection from `ip` that had not logged in did, or went away.
    pub fn left(&mut self, ip: IpAddr) {
        let ip = canonical(ip);
        if let Some(n) = self.pending.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_may_hold_only_so_many_connections_that_have_not_logged_in() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        let mut a = Admission::new(&[local], 2, 100);
        for _ in 0..2 {
            assert_eq!(a.check(other, 0), Ok(()));
            a.arrived(other);
        }
        assert_eq!(
            a.check(mapped, 0),
            Err(Refusal::TooManyFromAddress { limit: 2 })
        );
        for _ in 0..10 {
            assert_eq!(a.check(local, 0), Ok(()));
            a.arrived(local);
        }
        a.left(other);
        assert_eq!(a.check(other, 0), Ok(()));
        assert_eq!(a.check(local, 100), Err(Refusal::Full { limit: 100 }));
    }
}
