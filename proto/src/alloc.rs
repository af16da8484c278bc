//! The port-allocation protocol (PORTALLOC, program 0x20000111 version 1):
//! procedure numbers, argument and result types and their XDR encodings,
//! as written in `proto/alloc.x` (the source of truth). No I/O.
//!
//! The program is served by the rpcbind daemon on its local sockets only.
//! A reply that grants a socket carries one descriptor as SCM_RIGHTS on the
//! sendmsg() with the record's first byte; that part belongs to the
//! drivers (the daemon and the `portalloc` client), not to this module.
//!
//! Closed enums ([`Family`], [`Socktype`]) refuse unknown values when
//! decoding (the server answers GARBAGE_ARGS); [`PaStatus`] is an open
//! number so a status added by a newer server survives a decode.
//!
//! Calls are ordinary RFC 5531 CALL messages:
//!
//! ```
//! use proto::alloc::{AllocArgs, Family, Socktype, PA_ALLOC, PORTALLOC_PROG, PORTALLOC_VERS};
//! use proto::rpc::CallHeader;
//! use proto::xdr::Encode;
//!
//! let args = AllocArgs::pool(Family::Inet, Socktype::Stream).register(100_024, 1);
//! let mut w = proto::record::begin_record();
//! CallHeader::new(1, PORTALLOC_PROG, PORTALLOC_VERS, PA_ALLOC).encode(&mut w);
//! args.encode(&mut w);
//! let record = proto::record::finish_record(w);
//! assert_eq!(record.len(), 4 + 40 + 32);
//! ```

use crate::rpc::{Procedure, Program, Version};
use crate::xdr::{Decode, Encode, XdrError, XdrReader, XdrWriter};
use std::fmt;

#[cfg(test)]
mod tests;

/// `PORTALLOC_PROG`: in the user-defined range 0x20000000-0x3fffffff,
/// "111" as a mnemonic of the portmapper's port.
pub const PORTALLOC_PROG: Program = Program(0x2000_0111);
/// `PORTALLOC_VERS`.
pub const PORTALLOC_VERS: Version = Version(1);

pub const PA_NULL: Procedure = Procedure(0);
pub const PA_ALLOC: Procedure = Procedure(1);
pub const PA_CLAIM: Procedure = Procedure(2);
pub const PA_RELEASE: Procedure = Procedure(3);
pub const PA_LIST: Procedure = Procedure(4);
/// Root only: the daemon stops holding a reservation (portrelease).
pub const PA_RELEASE_NAME: Procedure = Procedure(5);

/// `PA_MAXNAMELEN`: longest reservation name.
pub const PA_MAXNAMELEN: u32 = 64;
/// `PA_MAXADDRLEN`: longest bind address text.
pub const PA_MAXADDRLEN: u32 = 64;
/// `pa_alloc_args.flags` bit 0: a stream socket is left bound, not
/// listening (client sockets).
pub const PA_NO_LISTEN: u32 = 1;
/// Entry cap for decoding a `pa_list` (ours: four times 65,536 ports).
pub const PA_LIST_CAP: u32 = 262_144;
/// Smallest encoding of one `pa_lease_info` (empty name), used to refuse a
/// count the remaining bytes cannot hold before allocating.
const LEASE_INFO_MIN_LEN: usize = 44;

/// `pa_family`: the AF_* value of the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `PA_INET` (AF_INET).
    Inet = 2,
    /// `PA_INET6` (AF_INET6).
    Inet6 = 10,
}

/// `pa_socktype`: the SOCK_* value of the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Socktype {
    /// `PA_STREAM` (SOCK_STREAM, tcp).
    Stream = 1,
    /// `PA_DGRAM` (SOCK_DGRAM, udp).
    Dgram = 2,
}

impl Family {
    pub fn from_u32(v: u32) -> Option<Self> {
        match v {
            2 => Some(Self::Inet),
            10 => Some(Self::Inet6),
            _ => None,
        }
    }
}

impl Socktype {
    pub fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Stream),
            2 => Some(Self::Dgram),
            _ => None,
        }
    }

    /// "tcp" or "udp".
    pub fn protocol_name(self) -> &'static str {
        match self {
            Self::Stream => "tcp",
            Self::Dgram => "udp",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Inet => "inet",
            Self::Inet6 => "inet6",
        })
    }
}

impl fmt::Display for Socktype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol_name())
    }
}

impl Encode for Family {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_u32(*self as u32);
    }
}

impl Decode<'_> for Family {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        let value = r.u32_named("pa_family")?;
        Self::from_u32(value).ok_or(XdrError::BadDiscriminant {
            field: "pa_family",
            value,
        })
    }
}

impl Encode for Socktype {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_u32(*self as u32);
    }
}

impl Decode<'_> for Socktype {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        let value = r.u32_named("pa_socktype")?;
        Self::from_u32(value).ok_or(XdrError::BadDiscriminant {
            field: "pa_socktype",
            value,
        })
    }
}

/// `pa_status`, an open number: unknown values survive a round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PaStatus(pub u32);

impl PaStatus {
    pub const OK: Self = Self(0);
    /// No free port in the pool.
    pub const POOL_EXHAUSTED: Self = Self(1);
    /// This uid holds its maximum of leases.
    pub const QUOTA_EXCEEDED: Self = Self(2);
    /// Privileged port for non-root; CLAIM or RELEASE by someone not
    /// authorised.
    pub const DENIED: Self = Self(3);
    /// Exact port held by someone else.
    pub const IN_USE: Self = Self(4);
    /// Exact port outside the pool.
    pub const NOT_IN_POOL: Self = Self(5);
    /// CLAIM/RELEASE_NAME of an unknown reservation.
    pub const NO_SUCH_NAME: Self = Self(6);
    /// Undecodable or inconsistent arguments; RELEASE of no lease.
    pub const BAD_REQUEST: Self = Self(7);
    /// A system call failed (the errno travels in [`AllocRes`]).
    pub const SYSTEM_ERROR: Self = Self(8);
    /// The allocation service is switched off.
    pub const DISABLED: Self = Self(9);

    /// A short English description, for error messages.
    pub fn describe(self) -> &'static str {
        match self.0 {
            0 => "ok",
            1 => "pool exhausted",
            2 => "quota exceeded",
            3 => "permission denied",
            4 => "port in use",
            5 => "port not in the pool",
            6 => "no such reservation",
            7 => "bad request",
            8 => "system error",
            9 => "allocation service disabled",
            _ => "unknown status",
        }
    }
}

impl fmt::Display for PaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0..=9 => f.write_str(self.describe()),
            n => write!(f, "unknown status {n}"),
        }
    }
}

impl Encode for PaStatus {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_u32(self.0);
    }
}

impl Decode<'_> for PaStatus {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        r.u32_named("pa_status").map(Self)
    }
}

/// `pa_port`: which port an ALLOC asks for (the `pa_portkind` union).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortKind {
    /// `PA_POOL`: any port of the policy's pool.
    Pool,
    /// `PA_PRIVILEGED`: a pool port below 1024, whatever the mode.
    Privileged,
    /// `PA_EXACT`: exactly this port. Carried as the wire's unsigned int;
    /// the server refuses values above 65535 with PA_BAD_REQUEST.
    Exact(u32),
}

impl Encode for PortKind {
    fn encode(&self, w: &mut XdrWriter) {
        match self {
            Self::Pool => w.put_u32(0),
            Self::Privileged => w.put_u32(1),
            Self::Exact(port) => {
                w.put_u32(2);
                w.put_u32(*port);
            }
        }
    }
}

impl Decode<'_> for PortKind {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        match r.u32_named("pa_portkind")? {
            0 => Ok(Self::Pool),
            1 => Ok(Self::Privileged),
            2 => r.u32_named("pa_port.port").map(Self::Exact),
            value => Err(XdrError::BadDiscriminant {
                field: "pa_portkind",
                value,
            }),
        }
    }
}

/// `pa_register`: the (program, version) to register with the granted
/// port, on the netid matching the socket (tcp, udp, tcp6, udp6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Register {
    pub prog: Program,
    pub vers: Version,
}

impl Encode for Register {
    fn encode(&self, w: &mut XdrWriter) {
        self.prog.encode(w);
        self.vers.encode(w);
    }
}

impl Decode<'_> for Register {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            prog: Program::decode(r)?,
            vers: Version::decode(r)?,
        })
    }
}

/// `pa_alloc_args`, the argument of PA_ALLOC. The bind address borrows
/// from the input when decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AllocArgs<'a> {
    pub family: Family,
    pub socktype: Socktype,
    /// Numeric address text (at most [`PA_MAXADDRLEN`] bytes); "" is the
    /// wildcard address.
    pub bind_addr: &'a str,
    pub port: PortKind,
    /// Register (prog, vers) in the same step.
    pub reg: Option<Register>,
    /// [`PA_NO_LISTEN`]; other bits are reserved and refused by the server.
    pub flags: u32,
}

impl<'a> AllocArgs<'a> {
    /// Any pool port, wildcard address, listening (for stream sockets).
    pub fn pool(family: Family, socktype: Socktype) -> Self {
        Self {
            family,
            socktype,
            bind_addr: "",
            port: PortKind::Pool,
            reg: None,
            flags: 0,
        }
    }

    /// A privileged pool port (what `bindresvport()` callers get).
    pub fn privileged(family: Family, socktype: Socktype) -> Self {
        Self {
            port: PortKind::Privileged,
            ..Self::pool(family, socktype)
        }
    }

    /// Exactly `port`.
    pub fn exact(family: Family, socktype: Socktype, port: u16) -> Self {
        Self {
            port: PortKind::Exact(u32::from(port)),
            ..Self::pool(family, socktype)
        }
    }

    /// Bind to this numeric address instead of the wildcard.
    pub fn bind_addr(self, bind_addr: &'a str) -> Self {
        Self { bind_addr, ..self }
    }

    /// Register (prog, vers) with the granted port.
    pub fn register(self, prog: u32, vers: u32) -> Self {
        Self {
            reg: Some(Register {
                prog: Program(prog),
                vers: Version(vers),
            }),
            ..self
        }
    }

    /// Leave a stream socket bound but not listening.
    pub fn no_listen(self) -> Self {
        Self {
            flags: self.flags | PA_NO_LISTEN,
            ..self
        }
    }
}

impl Encode for AllocArgs<'_> {
    fn encode(&self, w: &mut XdrWriter) {
        self.family.encode(w);
        self.socktype.encode(w);
        w.put_string(self.bind_addr);
        self.port.encode(w);
        w.put_optional(self.reg.as_ref());
        w.put_u32(self.flags);
    }
}

impl<'a> Decode<'a> for AllocArgs<'a> {
    fn decode(r: &mut XdrReader<'a>) -> Result<Self, XdrError> {
        Ok(Self {
            family: Family::decode(r)?,
            socktype: Socktype::decode(r)?,
            bind_addr: r.string_named(PA_MAXADDRLEN, "pa_alloc_args.bind_addr")?,
            port: PortKind::decode(r)?,
            reg: r.optional(Register::decode)?,
            flags: r.u32_named("pa_alloc_args.flags")?,
        })
    }
}

/// `pa_grant`: the port and the lease (0 for a reservation). The socket
/// itself travels as SCM_RIGHTS beside the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Grant {
    pub port: u32,
    pub lease_id: u64,
}

/// `pa_alloc_res`, the result of PA_ALLOC and PA_CLAIM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllocRes {
    /// `PA_OK` with the grant (and a descriptor beside the record).
    Granted(Grant),
    /// `PA_SYSTEM_ERROR` with the errno of the failed call.
    SystemError { errno: i32 },
    /// Any other status (the union's `default: void`). Never
    /// [`PaStatus::OK`] nor [`PaStatus::SYSTEM_ERROR`]: use
    /// [`AllocRes::refused`], which maps those two to PA_BAD_REQUEST
    /// rather than put a malformed union on the wire.
    Refused(PaStatus),
}

impl AllocRes {
    /// A refusal with `status`; OK and SYSTEM_ERROR, which need a body,
    /// become BAD_REQUEST.
    pub fn refused(status: PaStatus) -> Self {
        match status {
            PaStatus::OK | PaStatus::SYSTEM_ERROR => Self::Refused(PaStatus::BAD_REQUEST),
            s => Self::Refused(s),
        }
    }

    /// The status on the wire.
    pub fn status(&self) -> PaStatus {
        match self {
            Self::Granted(_) => PaStatus::OK,
            Self::SystemError { .. } => PaStatus::SYSTEM_ERROR,
            Self::Refused(s) => *s,
        }
    }
}

impl Encode for AllocRes {
    fn encode(&self, w: &mut XdrWriter) {
        match self {
            Self::Granted(g) => {
                PaStatus::OK.encode(w);
                w.put_u32(g.port);
                w.put_u64(g.lease_id);
            }
            Self::SystemError { errno } => {
                PaStatus::SYSTEM_ERROR.encode(w);
                w.put_i32(*errno);
            }
            Self::Refused(s) => AllocRes::refused(*s).status().encode(w),
        }
    }
}

impl Decode<'_> for AllocRes {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        Ok(match PaStatus::decode(r)? {
            PaStatus::OK => Self::Granted(Grant {
                port: r.u32_named("pa_grant.port")?,
                lease_id: r.u64()?,
            }),
            PaStatus::SYSTEM_ERROR => Self::SystemError { errno: r.i32()? },
            s => Self::Refused(s),
        })
    }
}

/// `pa_claim_args`, the argument of PA_CLAIM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClaimArgs<'a> {
    /// The reservation's name (at most [`PA_MAXNAMELEN`] bytes).
    pub name: &'a str,
    pub socktype: Socktype,
}

impl Encode for ClaimArgs<'_> {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_string(self.name);
        self.socktype.encode(w);
    }
}

impl<'a> Decode<'a> for ClaimArgs<'a> {
    fn decode(r: &mut XdrReader<'a>) -> Result<Self, XdrError> {
        Ok(Self {
            name: r.string_named(PA_MAXNAMELEN, "pa_claim_args.name")?,
            socktype: Socktype::decode(r)?,
        })
    }
}

/// `pa_release_args`, the argument of PA_RELEASE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReleaseArgs {
    /// `by = 0`: the lease with this id.
    Lease(u64),
    /// `by = 1`: the lease holding this port for this socket type.
    Port { port: u32, socktype: Socktype },
}

impl Encode for ReleaseArgs {
    fn encode(&self, w: &mut XdrWriter) {
        match self {
            Self::Lease(id) => {
                w.put_i32(0);
                w.put_u64(*id);
            }
            Self::Port { port, socktype } => {
                w.put_i32(1);
                w.put_u32(*port);
                socktype.encode(w);
            }
        }
    }
}

impl Decode<'_> for ReleaseArgs {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        match r.u32_named("pa_release_args.by")? {
            0 => r.u64().map(Self::Lease),
            1 => Ok(Self::Port {
                port: r.u32_named("pa_release_port.port")?,
                socktype: Socktype::decode(r)?,
            }),
            value => Err(XdrError::BadDiscriminant {
                field: "pa_release_args.by",
                value,
            }),
        }
    }
}

/// `pa_name`, the argument of PA_RELEASE_NAME.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NameArg<'a>(pub &'a str);

impl Encode for NameArg<'_> {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_string(self.0);
    }
}

impl<'a> Decode<'a> for NameArg<'a> {
    fn decode(r: &mut XdrReader<'a>) -> Result<Self, XdrError> {
        r.string_named(PA_MAXNAMELEN, "pa_name").map(Self)
    }
}

/// `pa_lease_info`: one entry of the PA_LIST result.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseInfo {
    /// 0 for reservations.
    pub lease_id: u64,
    /// The reservation's name, "" for leases.
    pub name: String,
    pub port: u32,
    pub socktype: Socktype,
    pub family: Family,
    /// -1 when not held by a process.
    pub pid: i32,
    pub uid: u32,
    /// Unix seconds.
    pub since: u64,
    /// The daemon holds a socket for it right now.
    pub held: bool,
}

impl Encode for LeaseInfo {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_u64(self.lease_id);
        w.put_string(&self.name);
        w.put_u32(self.port);
        self.socktype.encode(w);
        self.family.encode(w);
        w.put_i32(self.pid);
        w.put_u32(self.uid);
        w.put_u64(self.since);
        w.put_bool(self.held);
    }
}

impl Decode<'_> for LeaseInfo {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            lease_id: r.u64()?,
            name: r
                .string_named(PA_MAXNAMELEN, "pa_lease_info.name")?
                .to_owned(),
            port: r.u32_named("pa_lease_info.port")?,
            socktype: Socktype::decode(r)?,
            family: Family::decode(r)?,
            pid: r.i32()?,
            uid: r.u32_named("pa_lease_info.uid")?,
            since: r.u64()?,
            held: r.bool()?,
        })
    }
}

/// `pa_list`, the PA_LIST result: a counted array (not a linked list),
/// decoded with at most [`PA_LIST_CAP`] entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaList(pub Vec<LeaseInfo>);

impl Encode for PaList {
    fn encode(&self, w: &mut XdrWriter) {
        let n = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        w.put_u32(n);
        for e in self.0.iter().take(n as usize) {
            e.encode(w);
        }
    }
}

impl Decode<'_> for PaList {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        let field = "pa_list";
        let len = r.u32_named(field)?;
        if len > PA_LIST_CAP {
            return Err(XdrError::TooLong {
                field,
                len,
                max: PA_LIST_CAP,
            });
        }
        let n = len as usize;
        if n.saturating_mul(LEASE_INFO_MIN_LEN) > r.remaining() {
            return Err(XdrError::Truncated { field });
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(LeaseInfo::decode(r)?);
        }
        Ok(Self(out))
    }
}

/// Entry point of the fuzz target `alloc_decode` (and of the replay of its
/// corpus in this module's tests): `data` decoded as every argument and
/// result type of the protocol; each value that decodes must re-encode to
/// bytes that decode to the same value. Panics only if that breaks.
pub fn fuzz_decode(data: &[u8]) {
    macro_rules! check {
        ($t:ty) => {
            if let Ok(v) = <$t>::from_xdr(data) {
                let bytes = v.to_xdr();
                let again = <$t>::from_xdr(&bytes);
                assert_eq!(again.as_ref(), Ok(&v), "does not round-trip");
            }
        };
    }
    check!(AllocArgs<'_>);
    check!(AllocRes);
    check!(ClaimArgs<'_>);
    check!(ReleaseArgs);
    check!(NameArg<'_>);
    check!(PaList);
}
