//! Leases and held reservations: what the allocator remembers about each
//! port it handed out, and how it is listed (PA_LIST). Pure, no I/O.

use proto::alloc::{Family, LeaseInfo, Socktype};
use serde::{Deserialize, Serialize};

/// A lease id; 0 is never a lease (it marks reservations on the wire).
pub type LeaseId = u64;

/// One (program, version) registered with a lease's port in the same step
/// as the ALLOC; removed from the registry when the lease ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The RPC program.
    pub prog: u32,
    /// Its version.
    pub vers: u32,
}

/// A port handed out to a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// Its id (never 0).
    pub id: LeaseId,
    /// The port.
    pub port: u16,
    /// Stream or datagram.
    #[serde(with = "socktype_text")]
    pub socktype: Socktype,
    /// The socket's family.
    #[serde(with = "family_text")]
    pub family: Family,
    /// The numeric address it was bound to ("" = wildcard).
    pub bind_addr: String,
    /// The owning process; `None` once it is gone (the lease then lasts
    /// until nobody binds the port any more).
    pub pid: Option<i32>,
    /// The owner's start time (/proc/PID/stat field 22), when known: after
    /// a daemon restart, a process with the same pid but another start
    /// time is not the owner.
    #[serde(default)]
    pub start_time: Option<u64>,
    /// The owner's uid (quota, RELEASE permission).
    pub uid: u32,
    /// When it was granted, unix seconds.
    pub since: u64,
    /// Registrations made with it.
    pub registrations: Vec<Registration>,
}

impl Lease {
    /// Its PA_LIST entry.
    pub fn info(&self) -> LeaseInfo {
        LeaseInfo {
            lease_id: self.id,
            name: String::new(),
            port: u32::from(self.port),
            socktype: self.socktype,
            family: self.family,
            pid: self.pid.unwrap_or(-1),
            uid: self.uid,
            since: self.since,
            held: false,
        }
    }
}

/// One socket of a reservation (a reservation for tcp and udp has two)
/// and the daemon's hold on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationState {
    /// The reservation's name.
    pub name: String,
    /// Its port.
    pub port: u16,
    /// Which socket.
    #[serde(with = "socktype_text")]
    pub socktype: Socktype,
    /// The family of the held socket, when held.
    #[serde(with = "family_opt_text")]
    pub family: Option<Family>,
    /// Whether the daemon holds a socket for it right now. Not trusted from
    /// a state file: nothing is held when the daemon starts.
    #[serde(skip)]
    pub held: bool,
    /// `portpolicy release NAME` was run: the daemon does not hold it (not
    /// even after a restart) until the next CLAIM.
    pub released: bool,
    /// The last claimant's pid and uid.
    pub claimant: Option<(i32, u32)>,
    /// When it was last held or claimed, unix seconds.
    pub since: u64,
}

impl ReservationState {
    /// Its PA_LIST entry.
    pub fn info(&self) -> LeaseInfo {
        let (pid, uid) = self.claimant.unwrap_or((-1, 0));
        LeaseInfo {
            lease_id: 0,
            name: self.name.clone(),
            port: u32::from(self.port),
            socktype: self.socktype,
            family: self.family.unwrap_or(Family::Inet),
            pid,
            uid,
            since: self.since,
            held: self.held,
        }
    }
}

pub(crate) mod socktype_text {
    use proto::alloc::Socktype;
    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(s: &Socktype, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.protocol_name())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Socktype, D::Error> {
        match String::deserialize(d)?.as_str() {
            "tcp" => Ok(Socktype::Stream),
            "udp" => Ok(Socktype::Dgram),
            other => Err(serde::de::Error::custom(format!(
                "socktype {other:?} is neither tcp nor udp"
            ))),
        }
    }
}

pub(crate) mod family_text {
    use proto::alloc::Family;
    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(f: &Family, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_str(f)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Family, D::Error> {
        parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }

    pub fn parse(text: &str) -> Result<Family, String> {
        match text {
            "inet" => Ok(Family::Inet),
            "inet6" => Ok(Family::Inet6),
            other => Err(format!("family {other:?} is neither inet nor inet6")),
        }
    }
}

mod family_opt_text {
    use proto::alloc::Family;
    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(f: &Option<Family>, ser: S) -> Result<S::Ok, S::Error> {
        match f {
            Some(f) => ser.collect_str(f),
            None => ser.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Family>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| super::family_text::parse(&t))
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}
