//! `portpolicy check` and the verdicts `why` prints. Pure, no I/O: the
//! policy, the services, the sockets seen and apply's plan come in;
//! findings go out.
//!
//! Whether a process "is" the service named for its port is a heuristic:
//! the process command or systemd unit, lowercased with everything but
//! letters and digits removed, must contain the service name or one of
//! its aliases (or the reverse), or appear in [`KNOWN_DAEMONS`] for it
//! (`ipp` is served by `cupsd`, `imaps` by `dovecot`, ...). Our rpcbind
//! holding a reserved port is always right.

use crate::apply::{Plan, Target};
use crate::holders::{Holder, ProcessInfo};
use crate::policy::Policy;
use crate::services::Services;
use crate::Protocol;

/// Service names and the daemons known to serve them.
pub const KNOWN_DAEMONS: &[(&str, &[&str])] = &[
    ("sunrpc", &["rpcbind", "portmap"]),
    ("ipp", &["cupsd", "cups"]),
    ("ssh", &["sshd"]),
    (
        "domain",
        &["named", "dnsmasq", "unbound", "systemd-resolve"],
    ),
    ("imaps", &["dovecot", "imap"]),
    ("pop3s", &["dovecot", "pop3"]),
    ("imap2", &["dovecot", "imap"]),
    ("pop3", &["dovecot"]),
    ("smtp", &["master", "exim", "sendmail", "postfix"]),
    ("submission", &["master", "exim", "sendmail", "postfix"]),
    ("submissions", &["master", "exim", "sendmail", "postfix"]),
    ("ldap", &["slapd"]),
    ("ldaps", &["slapd"]),
    ("kerberos-adm", &["kadmind"]),
    ("kerberos", &["krb5kdc"]),
    ("http", &["nginx", "apache2", "httpd", "lighttpd"]),
    ("https", &["nginx", "apache2", "httpd", "lighttpd"]),
    ("nfs", &["nfsd"]),
    ("ntp", &["ntpd", "chronyd"]),
    ("spamd", &["spamd"]),
    ("tinc", &["tincd"]),
];

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something is wrong: exit status 1.
    Problem,
    /// Worth knowing; does not change the exit status.
    Note,
}

/// One line of `check` output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Problem or note.
    pub severity: Severity,
    /// A short kind: `wrong-holder`, `pool-held`, `reservation-not-held`,
    /// `kernel-setting`, `leases`.
    pub kind: &'static str,
    /// What was found.
    pub what: String,
    /// What to do about it.
    pub todo: String,
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether `p` looks like the daemon of any of `names` (service and aliases).
pub fn serves(p: &ProcessInfo, names: &[&str]) -> bool {
    let mut who = vec![squash(&p.command)];
    if let Some(unit) = &p.unit {
        who.push(squash(
            unit.rsplit_once('.').map_or(unit.as_str(), |(s, _)| s),
        ));
    }
    names.iter().any(|name| {
        let n = squash(name);
        let known = KNOWN_DAEMONS
            .iter()
            .filter(|(s, _)| s == name)
            .flat_map(|(_, d)| d.iter().map(|d| squash(d)));
        let mut candidates: Vec<String> = known.collect();
        candidates.push(n.clone());
        who.iter().filter(|w| !w.is_empty()).any(|w| {
            candidates
                .iter()
                .filter(|c| !c.is_empty())
                .any(|c| w.contains(c.as_str()) || (w.len() >= 3 && c.contains(w.as_str())))
        })
    })
}

/// The names (official and aliases) /etc/services gives a port: the
/// protocol's own entries first, then the other protocol's, because the
/// policy keeps a named port out of both pools (Debian lists imaps for
/// tcp only, yet a udp socket on 993 is still on the imaps port).
pub fn names_of(services: &Services, port: u16, proto: Protocol) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    let other = match proto {
        Protocol::Tcp => Protocol::Udp,
        Protocol::Udp => Protocol::Tcp,
    };
    for e in services
        .by_port(port, proto)
        .chain(services.by_port(port, other))
    {
        names.push(&e.name);
        names.extend(e.aliases.iter().map(String::as_str));
    }
    names
}

/// Why a held socket is wrong, if it is: the port is well-known (or
/// reserved) and the holder is not its service.
pub fn wrong_holder(policy: &Policy, services: &Services, h: &Holder) -> Option<String> {
    let (port, proto) = (h.socket.local.port(), h.socket.protocol);
    if h.socket.state_code == 6 {
        return None;
    }
    if let Some(r) = policy.reservation(port, proto) {
        let ours = h.processes.iter().any(|p| p.command == "rpcbind");
        let unit_ok = |p: &ProcessInfo| r.unit.is_some() && p.unit == r.unit;
        // An nfs.conf reservation belongs to the daemon of its section
        // (rpc.statd, rpc.mountd; lockd is a kernel socket).
        let daemon = r.nfs_conf.as_deref().and_then(|k| k.split('.').next());
        let names: Vec<&str> = std::iter::once(r.name.as_str()).chain(daemon).collect();
        let kernel_lockd = daemon == Some("lockd") && h.processes.is_empty();
        if ours || kernel_lockd || h.processes.iter().any(|p| unit_ok(p) || serves(p, &names)) {
            return None;
        }
        return Some(format!("reservation {:?}", r.name));
    }
    let names = names_of(services, port, proto);
    if names.is_empty() || h.processes.iter().any(|p| serves(p, &names)) {
        return None;
    }
    Some(format!("well-known port of {}", names[0]))
}

/// Describe who holds a socket, for one line of output.
pub fn holder_text(h: &Holder) -> String {
    let s = &h.socket;
    let peer = s.peer.map(|p| format!(" -> {p}")).unwrap_or_default();
    let sock = format!("{} {}{}", s.state, s.local, peer);
    if h.processes.is_empty() {
        return format!("{}: {sock}", h.kernel.as_deref().unwrap_or("kernel socket"));
    }
    let procs: Vec<String> = h
        .processes
        .iter()
        .map(|p| match &p.unit {
            Some(u) => format!("pid {} ({}, unit {u})", p.pid, p.command),
            None => format!("pid {} ({})", p.pid, p.command),
        })
        .collect();
    format!("{}: {sock}", procs.join(", "))
}

/// A port the allocation service has leased (from its LIST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leased {
    pub port: u16,
    pub protocol: Protocol,
}

/// Every finding of `check`. `leases` is what the allocation service's
/// LIST answered, or `None` when the service could not be asked.
pub fn findings(
    policy: &Policy,
    services: &Services,
    holders: &[Holder],
    plan: &Plan,
    leases: Option<&[Leased]>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for h in holders {
        let (port, proto) = (h.socket.local.port(), h.socket.protocol);
        if let Some(why) = wrong_holder(policy, services, h) {
            out.push(Finding {
                severity: Severity::Problem,
                kind: "wrong-holder",
                what: format!("{port}/{proto} ({why}) is held by {}", holder_text(h)),
                todo: stop_text(h, port, proto),
            });
        } else if policy.pool(proto).contains(port) && h.socket.state_code != 6 {
            let leased = |l: &&Leased| l.port == port && l.protocol == proto;
            match leases {
                Some(l) if l.iter().any(|x| leased(&x)) => {}
                Some(_) => out.push(Finding {
                    severity: Severity::Note,
                    kind: "pool-held",
                    what: format!(
                        "pool port {port}/{proto} is held outside a lease by {}",
                        holder_text(h)
                    ),
                    todo: "start it through the allocation service (`portpolicy exec --pool`, \
                           or LD_PRELOAD=libportpolicy_preload.so) so that its port is leased"
                        .into(),
                }),
                None => out.push(Finding {
                    severity: Severity::Note,
                    kind: "pool-held",
                    what: format!("pool port {port}/{proto} is held by {}", holder_text(h)),
                    todo: "nothing, unless it should have a lease (the allocation service \
                           could not be asked)"
                        .into(),
                }),
            }
        }
    }
    for n in &policy.notes {
        out.push(Finding {
            severity: Severity::Note,
            kind: "policy",
            what: n.clone(),
            todo: "check high_range against net.ipv4.ip_local_port_range".into(),
        });
    }
    if leases.is_none() {
        out.push(Finding {
            severity: Severity::Note,
            kind: "leases",
            what: "no lease source: the allocation service is not available, so pool ports \
                   held outside a lease cannot be told from leased ones"
                .into(),
            todo: "none; pool ports in use are listed above as notes".into(),
        });
    }
    for r in &policy.reservations {
        for proto in Protocol::ALL.into_iter().filter(|p| r.protocols.covers(*p)) {
            let held = holders.iter().any(|h| {
                h.socket.local.port() == r.port
                    && h.socket.protocol == proto
                    && h.socket.state_code != 6
            });
            if !held {
                out.push(Finding {
                    // A daemon binding an nfs.conf port may rightly not run
                    // (mountd on a client, sm-notify between reboots).
                    severity: if r.nfs_conf.is_some() { Severity::Note } else { Severity::Problem },
                    kind: "reservation-not-held",
                    what: format!("reservation {:?} ({}/{proto}) is not held by anyone", r.name, r.port),
                    todo: match &r.nfs_conf {
                        Some(k) => format!("start the daemon that reads {k} (nfs.conf.d/portpolicy.conf, written by `portpolicy apply`)"),
                        None => "start its service, or the rpcbind allocation service that holds reservations".into(),
                    },
                });
            }
        }
    }
    for c in &plan.changes {
        let what = match &c.target {
            Target::Sysctl(n) => format!("{n} is {:?}, the policy wants {:?}", c.old, c.new),
            Target::File(p) if p.ends_with("applied.json") => continue,
            Target::File(p) if c.old.is_empty() => format!("{} is missing", p.display()),
            Target::File(p) => format!("{} differs from the policy", p.display()),
        };
        out.push(Finding {
            severity: Severity::Problem,
            kind: "kernel-setting",
            what,
            todo: "run `portpolicy apply` (see `portpolicy apply --dry-run`)".into(),
        });
    }
    out
}

fn stop_text(h: &Holder, port: u16, proto: Protocol) -> String {
    match h.processes.first() {
        Some(p) if p.pins(port).is_some() => format!(
            "{} (pid {}) was started with {:?} on its command line: give it a pool port \
             (`portpolicy pool`) or a reservation instead, restart it, then start the service \
             on {port}/{proto}",
            p.command,
            p.pid,
            p.pins(port).unwrap_or_default()
        ),
        Some(p) => format!(
            "restart {} (pid {}) so it picks a pool port, then start the service on {port}/{proto}; \
             `portpolicy apply` keeps bindresvport() off such ports",
            p.unit.as_deref().unwrap_or(&p.command),
            p.pid
        ),
        None if h.kernel.as_deref().is_some_and(|k| k.contains("NFS client")) => format!(
            "remount the NFS share (its connection holds {port}/{proto}); \
             `portpolicy apply` narrows sunrpc.min_resvport/max_resvport where sunrpc exists"
        ),
        None => format!("find the kernel user of {port}/{proto} (lockd, nfsd, NFS client)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(command: &str, unit: Option<&str>) -> ProcessInfo {
        ProcessInfo {
            pid: 1,
            command: command.into(),
            unit: unit.map(str::to_string),
            cmdline: Vec::new(),
        }
    }

    #[test]
    fn heuristic_matches_names_units_and_known_daemons() {
        assert!(serves(&proc("cupsd", None), &["ipp"]));
        assert!(serves(&proc("x", Some("cups.service")), &["ipp"]));
        assert!(serves(&proc("rsync", None), &["rsync"]));
        assert!(serves(&proc("sshd", None), &["ssh"]));
        assert!(serves(&proc("rpcbind", None), &["sunrpc", "portmapper"]));
        assert!(serves(&proc("spamd", None), &["spamd"]));
        assert!(!serves(&proc("rpc.statd", None), &["ipp"]));
        assert!(!serves(&proc("python3", None), &["imaps"]));
        // A short command is not found inside a longer service name.
        assert!(!serves(&proc("d", None), &["domain"]));
        assert!(!serves(&proc("", None), &["ipp"]));
    }
}
