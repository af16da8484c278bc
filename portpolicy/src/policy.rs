//! The policy itself: inputs in, pool, exclusions and reservations out.
//!
//! Pure, no I/O: [`Sources`] holds what the I/O layer (or the rpcbind
//! daemon) read; [`Policy::compute`] is a function of the config and the
//! sources only, so a new policy is built beside the one in force and
//! swapped in only when it computed without error.
//!
//! The privileged candidates follow `bindresvport()` in glibc and libtirpc:
//! it tries 600-1023 first (starting at `pid % 424 + 600` and wrapping),
//! then falls back to 512-599.

use crate::blacklist::Blacklist;
use crate::config::{origin_error, Config, ConfigError, Mode, PortSpec, Protocols, ReservationOf};
use crate::nfsconf::NfsPort;
use crate::portreserve::{PortreserveEntry, PortreserveItem};
use crate::portset::{PortRange, PortSet};
use crate::services::Services;
use crate::Protocol;
use std::fmt;

/// `bindresvport()`'s first range.
pub const RESVPORT_MAIN: PortRange = PortRange {
    first: 600,
    last: 1023,
};
/// `bindresvport()`'s fallback range, tried when the first is exhausted.
pub const RESVPORT_FALLBACK: PortRange = PortRange {
    first: 512,
    last: 599,
};
/// The kernel's default `net.ipv4.ip_local_port_range`.
pub const DEFAULT_EPHEMERAL: PortRange = PortRange {
    first: 32768,
    last: 60999,
};

/// What `apply` wrote on an earlier run, so it is never read back as the
/// admin's own setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    /// Ports `apply` added to net.ipv4.ip_local_reserved_ports.
    #[serde(with = "portset_text")]
    pub ip_local_reserved_ports: PortSet,
}

mod portset_text {
    use crate::portset::PortSet;
    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(set: &PortSet, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(set)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PortSet, D::Error> {
        let text = String::deserialize(d)?;
        PortSet::parse_list(&text).map_err(serde::de::Error::custom)
    }
}

/// One /etc/portreserve file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortreserveFile {
    /// Its path, for reasons and errors.
    pub path: String,
    /// Its lines.
    pub entries: Vec<PortreserveEntry>,
}

/// Everything the policy is computed from, besides the config. A source
/// that does not exist on the host is `None` or empty.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// /etc/services.
    pub services: Option<Services>,
    /// /etc/bindresvport.blacklist.
    pub blacklist: Option<Blacklist>,
    /// /etc/portreserve/*, sorted by path.
    pub portreserve: Vec<PortreserveFile>,
    /// net.ipv4.ip_local_reserved_ports as the kernel has it now.
    pub ip_local_reserved_ports: Option<PortSet>,
    /// What apply wrote before.
    pub applied: Applied,
    /// Ports fixed in /etc/nfs.conf.
    pub nfs_ports: Vec<NfsPort>,
    /// net.ipv4.ip_local_port_range.
    pub ephemeral: Option<PortRange>,
}

/// Where an exclusion comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// /etc/services.
    Services,
    /// /etc/bindresvport.blacklist.
    BindresvportBlacklist,
    /// /etc/portreserve/*.
    Portreserve,
    /// net.ipv4.ip_local_reserved_ports (the admin's entries).
    IpLocalReservedPorts,
    /// /etc/nfs.conf.
    NfsConf,
    /// The config's `exclude` list.
    Config,
    /// A reservation.
    Reservation,
    /// The ephemeral range (high mode).
    Ephemeral,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Services => "/etc/services",
            SourceKind::BindresvportBlacklist => "/etc/bindresvport.blacklist",
            SourceKind::Portreserve => "/etc/portreserve",
            SourceKind::IpLocalReservedPorts => "net.ipv4.ip_local_reserved_ports",
            SourceKind::NfsConf => "/etc/nfs.conf",
            SourceKind::Config => "config exclude",
            SourceKind::Reservation => "reservation",
            SourceKind::Ephemeral => "net.ipv4.ip_local_port_range",
        })
    }
}

/// Ports kept out of the pool, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Exclusion {
    /// The ports.
    pub ports: PortRange,
    /// The protocols.
    pub protocols: Protocols,
    /// The source.
    pub source: SourceKind,
    /// What in the source names them, e.g. `ipp 631/tcp (line 97)`.
    pub detail: String,
}

/// A reservation with its port resolved.
pub type Reservation = ReservationOf<u16>;

impl ReservationOf<u16> {
    /// Whether a claimant may take the reserved socket: root always; else
    /// its uid, one of its gids, or its systemd unit must be the one named.
    /// A reservation naming nobody is root's only.
    pub fn may_claim(&self, uid: u32, gids: &[u32], unit: Option<&str>) -> bool {
        uid == 0
            || self.uid == Some(uid)
            || self.gid.is_some_and(|g| gids.contains(&g))
            || (self.unit.is_some() && self.unit.as_deref() == unit)
    }
}

/// The policy in force.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Policy {
    /// The mode.
    pub mode: Mode,
    /// Candidate ranges in the order an allocator should try them.
    pub candidates: Vec<PortRange>,
    /// The ephemeral range the policy was computed against.
    pub ephemeral: PortRange,
    /// The tcp pool.
    pub pool_tcp: PortSet,
    /// The udp pool.
    pub pool_udp: PortSet,
    /// Every exclusion, in source order.
    pub exclusions: Vec<Exclusion>,
    /// Reservations.
    pub reservations: Vec<Reservation>,
    /// Remarks about the computation (e.g. a range cut by the ephemeral range).
    pub notes: Vec<String>,
}

impl Policy {
    /// Compute the policy. Fails only on a name that does not resolve
    /// (a reservation or portreserve service missing from /etc/services).
    pub fn compute(config: &Config, sources: &Sources) -> Result<Policy, ConfigError> {
        let mut notes = Vec::new();
        let ephemeral = sources.ephemeral.unwrap_or_else(|| {
            notes.push(format!(
                "ephemeral range unknown: assumed {DEFAULT_EPHEMERAL}"
            ));
            DEFAULT_EPHEMERAL
        });
        let candidates = match config.mode {
            Mode::Privileged => vec![RESVPORT_MAIN, RESVPORT_FALLBACK],
            Mode::High => vec![config.high_range],
        };
        let reservations = resolve_reservations(config, sources.services.as_ref())?;
        let mut exclusions = Vec::new();
        collect_exclusions(config, sources, &mut exclusions)?;
        for r in &reservations {
            exclusions.push(Exclusion {
                ports: PortRange::single(r.port),
                protocols: r.protocols,
                source: SourceKind::Reservation,
                detail: r.name.clone(),
            });
        }
        if config.mode == Mode::High && overlaps(config.high_range, ephemeral) {
            notes.push(format!(
                "high_range {} overlaps the ephemeral range {ephemeral}: the overlap is left out",
                config.high_range
            ));
            exclusions.push(Exclusion {
                ports: ephemeral,
                protocols: Protocols::Both,
                source: SourceKind::Ephemeral,
                detail: format!("ephemeral range {ephemeral}"),
            });
        }
        let all = PortSet::from_ranges(candidates.iter().copied());
        let pool_tcp = all.difference(&excluded(&exclusions, Protocol::Tcp));
        let pool_udp = all.difference(&excluded(&exclusions, Protocol::Udp));
        Ok(Policy {
            mode: config.mode,
            candidates,
            ephemeral,
            pool_tcp,
            pool_udp,
            exclusions,
            reservations,
            notes,
        })
    }

    /// The pool for a protocol.
    pub fn pool(&self, proto: Protocol) -> &PortSet {
        match proto {
            Protocol::Tcp => &self.pool_tcp,
            Protocol::Udp => &self.pool_udp,
        }
    }

    /// The pool ports in the order an allocator should try them.
    pub fn pool_in_order(&self, proto: Protocol) -> impl Iterator<Item = u16> + '_ {
        let pool = self.pool(proto);
        self.candidates
            .iter()
            .flat_map(|r| r.first..=r.last)
            .filter(move |p| pool.contains(*p))
    }

    /// Every exclusion that names `port` for `proto`.
    pub fn reasons(&self, port: u16, proto: Protocol) -> impl Iterator<Item = &Exclusion> {
        self.exclusions
            .iter()
            .filter(move |e| e.ports.contains(port) && e.protocols.covers(proto))
    }

    /// Ports excluded for `proto` by every source (reservations included).
    pub fn excluded(&self, proto: Protocol) -> PortSet {
        excluded(&self.exclusions, proto)
    }

    /// The reservation holding `port` for `proto`, if any.
    pub fn reservation(&self, port: u16, proto: Protocol) -> Option<&Reservation> {
        self.reservations
            .iter()
            .find(|r| r.port == port && r.protocols.covers(proto))
    }
}

fn overlaps(a: PortRange, b: PortRange) -> bool {
    a.first <= b.last && b.first <= a.last
}

fn excluded(exclusions: &[Exclusion], proto: Protocol) -> PortSet {
    let mut set = PortSet::new();
    for e in exclusions.iter().filter(|e| e.protocols.covers(proto)) {
        set.insert_range(e.ports);
    }
    set
}

fn resolve_reservations(
    config: &Config,
    services: Option<&Services>,
) -> Result<Vec<Reservation>, ConfigError> {
    let mut out = Vec::new();
    for entry in &config.reservations {
        let r = &entry.spec;
        let port = match &r.port {
            PortSpec::Number(p) => *p,
            PortSpec::Service(name) => {
                resolve_service(services, name, r.protocols).ok_or_else(|| {
                    origin_error(
                        &entry.origin,
                        format!(
                            "reservation {:?}: service {name:?} is not in /etc/services for {}",
                            r.name,
                            protocols_text(r.protocols)
                        ),
                    )
                })?
            }
        };
        out.push(r.clone().with_port(port));
    }
    Ok(out)
}

fn protocols_text(p: Protocols) -> &'static str {
    match p {
        Protocols::Tcp => "tcp",
        Protocols::Udp => "udp",
        Protocols::Both => "tcp and udp",
    }
}

/// The port of a service for every protocol asked (they must agree).
fn resolve_service(services: Option<&Services>, name: &str, protocols: Protocols) -> Option<u16> {
    let services = services?;
    let mut port = None;
    for proto in Protocol::ALL.into_iter().filter(|p| protocols.covers(*p)) {
        let p = services.port_of(name, proto)?;
        if port.is_some_and(|q| q != p) {
            return None;
        }
        port = Some(p);
    }
    port
}

fn collect_exclusions(
    config: &Config,
    sources: &Sources,
    out: &mut Vec<Exclusion>,
) -> Result<(), ConfigError> {
    let on = config.sources;
    let mut push = |ports, protocols, source, detail| {
        out.push(Exclusion {
            ports,
            protocols,
            source,
            detail,
        })
    };
    if let (true, Some(services)) = (on.services, &sources.services) {
        // An entry excludes its port for both protocols: /etc/services often
        // lists one protocol for a service that uses both (631/udp for CUPS
        // browsing is not listed on Debian).
        for e in services.entries() {
            let detail = format!("{} {}/{} (line {})", e.name, e.port, e.protocol, e.line);
            push(
                PortRange::single(e.port),
                Protocols::Both,
                SourceKind::Services,
                detail,
            );
        }
    }
    if let (true, Some(blacklist)) = (on.bindresvport_blacklist, &sources.blacklist) {
        for e in &blacklist.admin {
            let detail = format!("line {}", e.line);
            push(
                PortRange::single(e.port),
                Protocols::Both,
                SourceKind::BindresvportBlacklist,
                detail,
            );
        }
    }
    if on.portreserve {
        for file in &sources.portreserve {
            for e in &file.entries {
                for (port, protocols) in portreserve_ports(file, e, sources.services.as_ref())? {
                    let detail = format!("{}:{}", file.path, e.line);
                    push(
                        PortRange::single(port),
                        protocols,
                        SourceKind::Portreserve,
                        detail,
                    );
                }
            }
        }
    }
    if let (true, Some(current)) = (on.ip_local_reserved_ports, &sources.ip_local_reserved_ports) {
        let admin = current.difference(&sources.applied.ip_local_reserved_ports);
        for r in admin.ranges() {
            push(
                r,
                Protocols::Both,
                SourceKind::IpLocalReservedPorts,
                format!("entry {r}"),
            );
        }
    }
    if on.nfs_conf {
        for n in &sources.nfs_ports {
            let protocols = match n.protocol {
                None => Protocols::Both,
                Some(Protocol::Tcp) => Protocols::Tcp,
                Some(Protocol::Udp) => Protocols::Udp,
            };
            let detail = match &n.file {
                Some(f) => format!("{} = {} ({f}:{})", n.key, n.port, n.line),
                None => format!("{} = {} (line {})", n.key, n.port, n.line),
            };
            push(
                PortRange::single(n.port),
                protocols,
                SourceKind::NfsConf,
                detail,
            );
        }
    }
    for e in &config.exclude {
        push(e.ports, e.protocols, SourceKind::Config, e.origin.clone());
    }
    Ok(())
}

fn portreserve_ports(
    file: &PortreserveFile,
    entry: &PortreserveEntry,
    services: Option<&Services>,
) -> Result<Vec<(u16, Protocols)>, ConfigError> {
    match &entry.item {
        PortreserveItem::Port(port, proto) => {
            let protocols = match proto {
                None => Protocols::Both,
                Some(Protocol::Tcp) => Protocols::Tcp,
                Some(Protocol::Udp) => Protocols::Udp,
            };
            Ok(vec![(*port, protocols)])
        }
        PortreserveItem::Service(name) => {
            let found: Vec<_> = Protocol::ALL
                .into_iter()
                .filter_map(|proto| {
                    let port = services?.port_of(name, proto)?;
                    let sel = match proto {
                        Protocol::Tcp => Protocols::Tcp,
                        Protocol::Udp => Protocols::Udp,
                    };
                    Some((port, sel))
                })
                .collect();
            if found.is_empty() {
                return Err(ConfigError {
                    file: file.path.clone().into(),
                    line: Some(entry.line),
                    reason: format!("service {name:?} is not in /etc/services"),
                });
            }
            Ok(found)
        }
    }
}
