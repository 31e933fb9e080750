//! Who may start a handshake: caps per source address and per source prefix
//! (IPv4 /24 and IPv6 /64 by default: what one party usually controls), and
//! penalties, in the manner of OpenSSH's `PerSourcePenalties`.
//!
//! A connection that fails authentication or runs out its authentication
//! deadline adds to its source's penalty ([`AUTH_FAIL_PENALTY`],
//! [`DEADLINE_PENALTY`]); once that reaches [`PENALTY_MIN`] the source's new
//! connections are closed at accept until it has served it (at most
//! [`PENALTY_MAX`]). A source from which a connection authenticated within
//! [`TRUSTED_FOR`] is never penalised: a thousand agents behind one NAT
//! address still reconnect together, even if one machine there misbehaves
//! (the caps still bound what it can hold).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::limits::{
    AUTH_FAIL_PENALTY, DEADLINE_PENALTY, MAX_TRACKED_SOURCES, PENALTY_MAX, PENALTY_MIN, TRUSTED_FOR,
};

/// The caps, from the hub's flags.
#[derive(Debug, Clone, Copy)]
pub struct SourceLimits {
    /// Connections in handshake per address.
    pub per_ip: usize,
    /// Connections in handshake per prefix.
    pub per_prefix: usize,
    /// IPv4 prefix length that makes one source prefix.
    pub v4_prefix: u8,
    /// IPv6 prefix length that makes one source prefix (and one penalised
    /// source: an IPv6 host has a /64 to pick addresses from).
    pub v6_prefix: u8,
}

/// Why a connection was closed at accept.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The source is serving a penalty.
    #[error("source penalised for another {0:?}")]
    Penalised(Duration),
    /// Its address has as many connections in handshake as allowed.
    #[error("too many connections in handshake from this address")]
    Address,
    /// Its prefix has as many connections in handshake as allowed.
    #[error("too many connections in handshake from this prefix")]
    Prefix,
}

/// What counts against a source when its connection ends unauthenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offence {
    /// A key was refused.
    AuthFailed,
    /// The authentication deadline passed.
    DeadlineExceeded,
}

#[derive(Default)]
struct Inner {
    per_ip: HashMap<IpAddr, usize>,
    per_prefix: HashMap<IpAddr, usize>,
    /// Penalty end, and whether it is enforced (reached [`PENALTY_MIN`]).
    penalties: HashMap<IpAddr, (Instant, bool)>,
    /// Sources with a recent authentication, until when.
    trusted: HashMap<IpAddr, Instant>,
}

/// The table of sources.
pub struct Sources {
    limits: SourceLimits,
    inner: Mutex<Inner>,
}

/// One connection in handshake, counted against its address and prefix
/// until dropped.
pub struct SourceSlot {
    ip: IpAddr,
    table: Arc<Sources>,
}

/// `ip` with all but its first `bits` bits cleared.
pub fn mask(ip: IpAddr, v4_bits: u8, v6_bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(v4_bits.min(32));
            let m = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u32::from(v6_bits.min(128));
            let m = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

fn decrement(map: &mut HashMap<IpAddr, usize>, key: IpAddr) {
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

impl Sources {
    /// An empty table with these caps.
    pub fn new(limits: SourceLimits) -> Arc<Sources> {
        Arc::new(Sources {
            limits,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn prefix(&self, ip: IpAddr) -> IpAddr {
        mask(ip, self.limits.v4_prefix, self.limits.v6_prefix)
    }

    /// The key penalties are kept under: the address (IPv4), the prefix (IPv6).
    fn offender(&self, ip: IpAddr) -> IpAddr {
        mask(ip, 32, self.limits.v6_prefix)
    }

    /// Count a new connection from `ip`, or say why it is refused.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<SourceSlot, Refused> {
        let (prefix, offender) = (self.prefix(ip), self.offender(ip));
        let mut t = crate::sync::lock_or_recover(&self.inner);
        if let Some(&(until, enforced)) = t.penalties.get(&offender) {
            if until <= now {
                t.penalties.remove(&offender);
            } else if enforced {
                return Err(Refused::Penalised(until - now));
            }
        }
        if t.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.per_ip {
            return Err(Refused::Address);
        }
        if t.per_prefix.get(&prefix).copied().unwrap_or(0) >= self.limits.per_prefix {
            return Err(Refused::Prefix);
        }
        *t.per_ip.entry(ip).or_insert(0) += 1;
        *t.per_prefix.entry(prefix).or_insert(0) += 1;
        Ok(SourceSlot {
            ip,
            table: self.clone(),
        })
    }

    /// A connection from `ip` authenticated: the source is trusted (never
    /// penalised) for [`TRUSTED_FOR`], and its penalty is forgiven.
    pub fn authenticated(&self, ip: IpAddr, now: Instant) {
        let offender = self.offender(ip);
        let mut t = crate::sync::lock_or_recover(&self.inner);
        t.penalties.remove(&offender);
        if t.trusted.len() >= MAX_TRACKED_SOURCES {
            t.trusted.retain(|_, until| *until > now);
        }
        if t.trusted.len() < MAX_TRACKED_SOURCES {
            t.trusted.insert(offender, now + TRUSTED_FOR);
        }
    }

    /// A connection from `ip` ended unauthenticated because of `offence`.
    pub fn penalise(&self, ip: IpAddr, offence: Offence, now: Instant) {
        let offender = self.offender(ip);
        let amount = match offence {
            Offence::AuthFailed => AUTH_FAIL_PENALTY,
            Offence::DeadlineExceeded => DEADLINE_PENALTY,
        };
        let mut t = crate::sync::lock_or_recover(&self.inner);
        if t.trusted.get(&offender).is_some_and(|until| *until > now) {
            return;
        }
        if t.penalties.len() >= MAX_TRACKED_SOURCES {
            t.penalties.retain(|_, (until, _)| *until > now);
            if t.penalties.len() >= MAX_TRACKED_SOURCES {
                // Full of live penalties: the caps still hold (as OpenSSH's
                // "overflow:permissive").
                return;
            }
        }
        let entry = t.penalties.entry(offender).or_insert((now, false));
        let until = (entry.0.max(now) + amount).min(now + PENALTY_MAX);
        let enforced = entry.1 || until - now >= PENALTY_MIN;
        *entry = (until, enforced);
        if enforced {
            tracing::debug!(source = %offender, secs = (until - now).as_secs(), "source penalised");
        }
    }
}

impl SourceSlot {
    /// The table this slot counts in.
    pub fn table(&self) -> &Arc<Sources> {
        &self.table
    }

    /// The address counted.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let prefix = self.table.prefix(self.ip);
        let mut t = crate::sync::lock_or_recover(&self.table.inner);
        decrement(&mut t.per_ip, self.ip);
        decrement(&mut t.per_prefix, prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(per_ip: usize, per_prefix: usize) -> Arc<Sources> {
        Sources::new(SourceLimits {
            per_ip,
            per_prefix,
            v4_prefix: 24,
            v6_prefix: 64,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn masks() {
        assert_eq!(mask(ip("10.1.2.3"), 24, 64), ip("10.1.2.0"));
        assert_eq!(mask(ip("10.1.2.3"), 0, 64), ip("0.0.0.0"));
        assert_eq!(mask(ip("10.1.2.3"), 32, 64), ip("10.1.2.3"));
        assert_eq!(mask(ip("2001:db8:1:2:3::4"), 24, 64), ip("2001:db8:1:2::"));
    }

    #[test]
    fn address_and_prefix_caps_hold_until_slots_drop() {
        let t = table(2, 3);
        let now = Instant::now();
        let a1 = t.admit(ip("10.0.0.1"), now).unwrap();
        let _a2 = t.admit(ip("10.0.0.1"), now).unwrap();
        assert_eq!(t.admit(ip("10.0.0.1"), now).err(), Some(Refused::Address));
        let _b = t.admit(ip("10.0.0.2"), now).unwrap();
        assert_eq!(t.admit(ip("10.0.0.3"), now).err(), Some(Refused::Prefix));
        assert!(t.admit(ip("10.0.1.3"), now).is_ok(), "another /24");
        drop(a1);
        assert!(t.admit(ip("10.0.0.3"), now).is_ok());
    }

    #[test]
    fn penalties_build_up_expire_and_spare_trusted_sources() {
        let t = table(64, 128);
        let now = Instant::now();
        let bad = ip("10.0.0.9");
        t.penalise(bad, Offence::AuthFailed, now);
        assert!(t.admit(bad, now).is_ok(), "below the minimum");
        t.penalise(bad, Offence::DeadlineExceeded, now);
        assert!(matches!(t.admit(bad, now), Err(Refused::Penalised(_))));
        assert!(t.admit(ip("10.0.0.8"), now).is_ok(), "only that address");
        let later = now + AUTH_FAIL_PENALTY + DEADLINE_PENALTY;
        assert!(t.admit(bad, later).is_ok(), "served");
        for _ in 0..1000 {
            t.penalise(bad, Offence::DeadlineExceeded, later);
        }
        let Err(Refused::Penalised(left)) = t.admit(bad, later) else {
            panic!("not penalised");
        };
        assert!(left <= PENALTY_MAX);

        let nat = ip("10.0.0.7");
        t.authenticated(nat, now);
        for _ in 0..10 {
            t.penalise(nat, Offence::AuthFailed, now);
        }
        assert!(
            t.admit(nat, now).is_ok(),
            "a trusted source is never penalised"
        );
    }
}
