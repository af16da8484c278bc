//! Optional reaping of dead registrations (`--reap-interval`, off by
//! default; not in C): a registration on `udp`, `tcp`, `udp6` or `tcp6`
//! whose port no socket of that protocol has bound (any address, any
//! family, kernel sockets included, as NETLINK_SOCK_DIAG reports them) at
//! two consecutive checks is removed (as an UNSET by the superuser, so the
//! PMAP mirror follows) and logged. What is bound is never reaped; the
//! daemon's own entries, local-socket entries and addresses without a
//! port are never candidates. Does I/O (sock_diag through
//! `portpolicy::holders`, off the runtime's workers).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use portpolicy::Protocol;
use proto::engine::Registry;
use proto::rpc::{Program, Version};

use crate::server::Shared;

/// A registration as it was seen: reaped only if unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Seen {
    program: Program,
    version: Version,
    netid: String,
    addr: String,
}

/// (protocol, port) of every bound socket.
pub type Bound = HashSet<(Protocol, u16)>;

/// Checks every `every` until the daemon stops.
pub async fn run(shared: Arc<Shared>, every: Duration) {
    let mut suspects = HashSet::new();
    loop {
        tokio::time::sleep(every).await;
        let bound = match tokio::task::spawn_blocking(bound_ports).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::warn!("reaping: sock_diag: {e}; nothing reaped this time");
                continue;
            }
            Err(e) => {
                tracing::warn!("reaping: {e}");
                continue;
            }
        };
        suspects = shared.with_engine(|e| check(e.registry_mut(), &bound, &suspects));
    }
}

fn bound_ports() -> std::io::Result<Bound> {
    Ok(portpolicy::holders::all_holders()?
        .into_iter()
        .map(|h| (h.socket.protocol, h.socket.local.port()))
        .collect())
}

fn protocol_of(netid: &str) -> Option<Protocol> {
    match netid.to_ascii_lowercase().as_str() {
        "udp" | "udp6" => Some(Protocol::Udp),
        "tcp" | "tcp6" => Some(Protocol::Tcp),
        _ => None,
    }
}

/// One check: reaps what was unbound last time and still is, returns the
/// registrations unbound now (the next check's suspects).
pub fn check(reg: &mut Registry, bound: &Bound, suspects: &HashSet<Seen>) -> HashSet<Seen> {
    let mut unbound = HashSet::new();
    for r in reg.iter().filter(|r| r.program != Program::PORTMAP) {
        let Some(protocol) = protocol_of(r.netid) else {
            continue;
        };
        let Some(port) = proto::uaddr::parse_inet(r.addr).map(|a| a.port()) else {
            continue;
        };
        if port != 0 && !bound.contains(&(protocol, port)) {
            unbound.insert(Seen {
                program: r.program,
                version: r.version,
                netid: r.netid.to_string(),
                addr: r.addr.to_owned(),
            });
        }
    }
    let (dead, next) = two_checks(unbound, suspects);
    for dead in dead {
        reg.unset(dead.program, dead.version, &dead.netid, "superuser");
        tracing::info!(
            "reaped {} {} {} {}: its port was bound by nobody at two checks",
            dead.program.0,
            dead.version.0,
            dead.netid,
            dead.addr
        );
    }
    next
}

/// The two-check rule, shared with the allocation service's lease sweep:
/// of what is unbound now, what was already unbound at the last check is
/// dead; the rest are the next check's suspects.
pub fn two_checks<K: Clone + Eq + std::hash::Hash>(
    mut unbound: HashSet<K>,
    suspects: &HashSet<K>,
) -> (Vec<K>, HashSet<K>) {
    let dead: Vec<K> = unbound.intersection(suspects).cloned().collect();
    unbound.retain(|s| !suspects.contains(s));
    (dead, unbound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_stays_unbound_for_two_checks_is_reaped() {
        let mut reg = Registry::new();
        reg.set(
            Program(100000),
            Version(2),
            "udp",
            "0.0.0.0.0.111",
            "superuser",
        );
        reg.set(Program(7), Version(1), "udp", "0.0.0.0.4.1", "0"); // 1025
        reg.set(Program(8), Version(1), "tcp6", "::.4.2", "0"); // 1026
        reg.set(Program(9), Version(1), "local", "/run/x.sock", "0");
        let bound: Bound = [(Protocol::Tcp, 1026)].into();
        let first = check(&mut reg, &bound, &HashSet::new());
        assert_eq!(reg.len(), 4, "nothing reaped at the first check");
        assert_eq!(first.len(), 1);
        let none: Bound = Bound::new();
        let second = check(&mut reg, &none, &first);
        let left: Vec<u32> = reg.iter().map(|r| r.program.0).collect();
        assert_eq!(left, [100000, 8, 9], "7 reaped, 8 only suspected now");
        assert_eq!(reg.pmap_iter().count(), 1, "the PMAP mirror of 7 went too");
        assert_eq!(second.len(), 1);
        let third = check(&mut reg, &bound, &second);
        assert!(third.is_empty(), "8 is bound again: never reaped");
        assert_eq!(reg.len(), 3);
    }
}
