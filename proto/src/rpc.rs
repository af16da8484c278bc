//! ONC RPC version 2 messages (RFC 5531 sections 8-9): the call header,
//! accepted and denied replies, opaque authentication and AUTH_SYS
//! credentials, and open numeric types for the protocol's numbers.
//! No I/O.
//!
//! Numbers are newtypes rather than closed enums so that an unknown program,
//! flavour or status survives a decode/encode round trip.

use crate::xdr::{Decode, Encode, XdrError, XdrReader, XdrWriter};

macro_rules! open_number {
    ($(#[$doc:meta])* $name:ident { $($(#[$cdoc:meta])* $konst:ident = $val:expr),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub u32);

        impl $name {
            $($(#[$cdoc])* pub const $konst: Self = Self($val);)*
        }

        impl Encode for $name {
            fn encode(&self, w: &mut XdrWriter) {
                w.put_u32(self.0);
            }
        }

        impl Decode<'_> for $name {
            fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
                r.u32_named(stringify!($name)).map(Self)
            }
        }

        impl From<u32> for $name {
            fn from(v: u32) -> Self {
                Self(v)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

open_number!(
    /// An RPC program number (RFC 5531 section 9, appendix of well-known
    /// numbers in /etc/rpc).
    Program {
        PORTMAP = 100_000,
        NFS = 100_003,
        YPPROG = 100_004,
        MOUNT = 100_005,
        YPBIND = 100_007,
        YPPASSWD = 100_009,
        RQUOTA = 100_011,
        NLM = 100_021,
        STATUS = 100_024,
    }
);

open_number!(
    /// A program version number.
    Version {}
);

open_number!(
    /// A procedure number within a program version.
    Procedure {}
);

open_number!(
    /// An authentication flavour (RFC 5531 section 8.2).
    AuthFlavor {
        NONE = 0,
        SYS = 1,
        SHORT = 2,
        DH = 3,
        RPCSEC_GSS = 6,
    }
);

open_number!(
    /// `accept_stat` of an accepted reply (RFC 5531 section 9).
    AcceptStat {
        SUCCESS = 0,
        PROG_UNAVAIL = 1,
        PROG_MISMATCH = 2,
        PROC_UNAVAIL = 3,
        GARBAGE_ARGS = 4,
        SYSTEM_ERR = 5,
    }
);

open_number!(
    /// `auth_stat` of an AUTH_ERROR reply (RFC 5531 section 9).
    AuthStat {
        OK = 0,
        BADCRED = 1,
        REJECTEDCRED = 2,
        BADVERF = 3,
        REJECTEDVERF = 4,
        TOOWEAK = 5,
        INVALIDRESP = 6,
        FAILED = 7,
        KERB_GENERIC = 8,
        TIMEEXPIRE = 9,
        TKT_FILE = 10,
        DECODE = 11,
        NET_ADDR = 12,
        RPCSEC_GSS_CREDPROBLEM = 13,
        RPCSEC_GSS_CTXPROBLEM = 14,
    }
);

open_number!(
    /// `reject_stat` of a denied reply (RFC 5531 section 9).
    RejectStat {
        RPC_MISMATCH = 0,
        AUTH_ERROR = 1,
    }
);

open_number!(
    /// `msg_type` (RFC 5531 section 9).
    MsgType {
        CALL = 0,
        REPLY = 1,
    }
);

open_number!(
    /// `reply_stat` (RFC 5531 section 9).
    ReplyStat {
        MSG_ACCEPTED = 0,
        MSG_DENIED = 1,
    }
);

/// The RPC protocol version this crate speaks (RFC 5531 section 9).
pub const RPC_VERSION: u32 = 2;

/// Largest authentication body (RFC 5531 section 8.2: "opaque
/// body<400>").
pub const MAX_AUTH_BYTES: u32 = 400;

/// Largest AUTH_SYS machine name (RFC 5531 appendix A: `string
/// machinename<255>`).
pub const MAX_MACHINE_NAME: u32 = 255;

/// Most supplementary groups in AUTH_SYS (RFC 5531 appendix A: `unsigned
/// int gids<16>`).
pub const MAX_AUTH_SYS_GIDS: u32 = 16;

/// `opaque_auth` (RFC 5531 section 8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpaqueAuth<'a> {
    pub flavor: AuthFlavor,
    pub body: &'a [u8],
}

impl OpaqueAuth<'static> {
    /// AUTH_NONE with an empty body, the verifier of every rpcbind reply.
    pub const NONE: Self = Self {
        flavor: AuthFlavor::NONE,
        body: &[],
    };
}

impl Encode for OpaqueAuth<'_> {
    fn encode(&self, w: &mut XdrWriter) {
        self.flavor.encode(w);
        w.put_opaque(self.body);
    }
}

impl<'a> Decode<'a> for OpaqueAuth<'a> {
    fn decode(r: &mut XdrReader<'a>) -> Result<Self, XdrError> {
        let flavor = AuthFlavor(r.u32_named("opaque_auth.flavor")?);
        let body = r.opaque_named(MAX_AUTH_BYTES, "opaque_auth.body")?;
        Ok(Self { flavor, body })
    }
}

/// AUTH_SYS credentials (RFC 5531 appendix A, `authsys_parms`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSys<'a> {
    pub stamp: u32,
    pub machine_name: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

impl<'a> AuthSys<'a> {
    /// Decodes the body of an AUTH_SYS credential.
    pub fn from_body(body: &'a [u8]) -> Result<Self, XdrError> {
        Self::decode(&mut XdrReader::new(body))
    }
}

impl Encode for AuthSys<'_> {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_u32(self.stamp);
        w.put_string(self.machine_name);
        w.put_u32(self.uid);
        w.put_u32(self.gid);
        w.put_u32(self.gids.len() as u32);
        for g in &self.gids {
            w.put_u32(*g);
        }
    }
}

impl<'a> Decode<'a> for AuthSys<'a> {
    fn decode(r: &mut XdrReader<'a>) -> Result<Self, XdrError> {
        let stamp = r.u32_named("authsys.stamp")?;
        let machine_name = r.string_named(MAX_MACHINE_NAME, "authsys.machinename")?;
        let uid = r.u32_named("authsys.uid")?;
        let gid = r.u32_named("authsys.gid")?;
        let n = r.u32_named("authsys.gids")?;
        if n > MAX_AUTH_SYS_GIDS {
            return Err(XdrError::TooLong {
                field: "authsys.gids",
                len: n,
                max: MAX_AUTH_SYS_GIDS,
            });
        }
        let gids = (0..n)
            .map(|_| r.u32_named("authsys.gids"))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            stamp,
            machine_name,
            uid,
            gid,
            gids,
        })
    }
}

/// The header of a CALL message (RFC 5531 section 9, `call_body` preceded
/// by xid and `msg_type`). The procedure's arguments follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallHeader<'a> {
    pub xid: u32,
    /// Not checked here: a version other than 2 is answered with
    /// RPC_MISMATCH by the engine, not refused by the decoder.
    pub rpc_version: u32,
    pub program: Program,
    pub version: Version,
    pub procedure: Procedure,
    pub credential: OpaqueAuth<'a>,
    pub verifier: OpaqueAuth<'a>,
}

/// Why a CALL header could not be decoded, and how far decoding got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("undecodable RPC call (xid {xid:?}): {kind}")]
pub struct CallDecodeError {
    /// The transaction id, if the message was long enough to hold one.
    pub xid: Option<u32>,
    /// The message type, if it was read.
    pub msg_type: Option<MsgType>,
    pub kind: CallDecodeErrorKind,
}

/// The cause of a [`CallDecodeError`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallDecodeErrorKind {
    /// The message is not a CALL (a REPLY, or an unknown type).
    #[error("message type is not CALL")]
    NotACall,
    /// A field of the header could not be decoded.
    #[error(transparent)]
    Xdr(#[from] XdrError),
}

impl<'a> CallHeader<'a> {
    /// A call with AUTH_NONE credential and verifier.
    pub fn new(xid: u32, program: Program, version: Version, procedure: Procedure) -> Self {
        Self {
            xid,
            rpc_version: RPC_VERSION,
            program,
            version,
            procedure,
            credential: OpaqueAuth::NONE,
            verifier: OpaqueAuth::NONE,
        }
    }

    /// Decodes the header; the arguments are what is left in `r`.
    pub fn decode(r: &mut XdrReader<'a>) -> Result<Self, CallDecodeError> {
        let fail = |xid, msg_type, kind| CallDecodeError {
            xid,
            msg_type,
            kind,
        };
        let xid = r.u32_named("xid").map_err(|e| fail(None, None, e.into()))?;
        let msg_type = MsgType(
            r.u32_named("msg_type")
                .map_err(|e| fail(Some(xid), None, e.into()))?,
        );
        if msg_type != MsgType::CALL {
            return Err(fail(
                Some(xid),
                Some(msg_type),
                CallDecodeErrorKind::NotACall,
            ));
        }
        Self::decode_body(xid, r).map_err(|e| fail(Some(xid), Some(msg_type), e.into()))
    }

    fn decode_body(xid: u32, r: &mut XdrReader<'a>) -> Result<Self, XdrError> {
        Ok(Self {
            xid,
            rpc_version: r.u32_named("rpcvers")?,
            program: Program::decode(r)?,
            version: Version::decode(r)?,
            procedure: Procedure::decode(r)?,
            credential: OpaqueAuth::decode(r)?,
            verifier: OpaqueAuth::decode(r)?,
        })
    }
}

impl Encode for CallHeader<'_> {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_u32(self.xid);
        MsgType::CALL.encode(w);
        w.put_u32(self.rpc_version);
        self.program.encode(w);
        self.version.encode(w);
        self.procedure.encode(w);
        self.credential.encode(w);
        self.verifier.encode(w);
    }
}

/// The body of an accepted reply (RFC 5531 section 9, `accepted_reply`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptedReply<'a> {
    /// SUCCESS; the XDR-encoded results follow the header.
    Success(&'a [u8]),
    ProgUnavail,
    ProgMismatch {
        low: Version,
        high: Version,
    },
    ProcUnavail,
    GarbageArgs,
    SystemErr,
}

impl AcceptedReply<'_> {
    pub fn stat(&self) -> AcceptStat {
        match self {
            Self::Success(_) => AcceptStat::SUCCESS,
            Self::ProgUnavail => AcceptStat::PROG_UNAVAIL,
            Self::ProgMismatch { .. } => AcceptStat::PROG_MISMATCH,
            Self::ProcUnavail => AcceptStat::PROC_UNAVAIL,
            Self::GarbageArgs => AcceptStat::GARBAGE_ARGS,
            Self::SystemErr => AcceptStat::SYSTEM_ERR,
        }
    }
}

/// The body of a denied reply (RFC 5531 section 9, `rejected_reply`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectedReply {
    RpcMismatch { low: u32, high: u32 },
    AuthError(AuthStat),
}

/// `reply_body` (RFC 5531 section 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyBody<'a> {
    Accepted {
        verifier: OpaqueAuth<'a>,
        reply: AcceptedReply<'a>,
    },
    Denied(RejectedReply),
}

/// A whole REPLY message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    pub xid: u32,
    pub body: ReplyBody<'a>,
}

impl<'a> Reply<'a> {
    /// An accepted reply with an AUTH_NONE verifier.
    pub fn accepted(xid: u32, reply: AcceptedReply<'a>) -> Self {
        Self {
            xid,
            body: ReplyBody::Accepted {
                verifier: OpaqueAuth::NONE,
                reply,
            },
        }
    }

    /// A denied reply.
    pub fn denied(xid: u32, reply: RejectedReply) -> Self {
        Self {
            xid,
            body: ReplyBody::Denied(reply),
        }
    }

    /// Decodes a reply. For SUCCESS, the results are everything after the
    /// header.
    pub fn decode(r: &mut XdrReader<'a>) -> Result<Self, XdrError> {
        let xid = r.u32_named("xid")?;
        let msg_type = r.u32_named("msg_type")?;
        if MsgType(msg_type) != MsgType::REPLY {
            return Err(XdrError::BadDiscriminant {
                field: "msg_type",
                value: msg_type,
            });
        }
        let body = match ReplyStat(r.u32_named("reply_stat")?) {
            ReplyStat::MSG_ACCEPTED => {
                let verifier = OpaqueAuth::decode(r)?;
                let reply = decode_accepted(r)?;
                ReplyBody::Accepted { verifier, reply }
            }
            ReplyStat::MSG_DENIED => ReplyBody::Denied(decode_rejected(r)?),
            ReplyStat(value) => {
                return Err(XdrError::BadDiscriminant {
                    field: "reply_stat",
                    value,
                })
            }
        };
        Ok(Self { xid, body })
    }
}

fn decode_accepted<'a>(r: &mut XdrReader<'a>) -> Result<AcceptedReply<'a>, XdrError> {
    Ok(match AcceptStat::decode(r)? {
        AcceptStat::SUCCESS => AcceptedReply::Success(r.rest()),
        AcceptStat::PROG_UNAVAIL => AcceptedReply::ProgUnavail,
        AcceptStat::PROG_MISMATCH => AcceptedReply::ProgMismatch {
            low: Version::decode(r)?,
            high: Version::decode(r)?,
        },
        AcceptStat::PROC_UNAVAIL => AcceptedReply::ProcUnavail,
        AcceptStat::GARBAGE_ARGS => AcceptedReply::GarbageArgs,
        AcceptStat::SYSTEM_ERR => AcceptedReply::SystemErr,
        AcceptStat(value) => {
            return Err(XdrError::BadDiscriminant {
                field: "accept_stat",
                value,
            })
        }
    })
}

fn decode_rejected(r: &mut XdrReader<'_>) -> Result<RejectedReply, XdrError> {
    Ok(match RejectStat::decode(r)? {
        RejectStat::RPC_MISMATCH => RejectedReply::RpcMismatch {
            low: r.u32_named("mismatch_info.low")?,
            high: r.u32_named("mismatch_info.high")?,
        },
        RejectStat::AUTH_ERROR => RejectedReply::AuthError(AuthStat::decode(r)?),
        RejectStat(value) => {
            return Err(XdrError::BadDiscriminant {
                field: "reject_stat",
                value,
            })
        }
    })
}

impl Encode for Reply<'_> {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_u32(self.xid);
        MsgType::REPLY.encode(w);
        match &self.body {
            ReplyBody::Accepted { verifier, reply } => {
                ReplyStat::MSG_ACCEPTED.encode(w);
                verifier.encode(w);
                reply.stat().encode(w);
                match reply {
                    AcceptedReply::Success(results) => w.put_raw(results),
                    AcceptedReply::ProgMismatch { low, high } => {
                        low.encode(w);
                        high.encode(w);
                    }
                    _ => {}
                }
            }
            ReplyBody::Denied(rejected) => {
                ReplyStat::MSG_DENIED.encode(w);
                match rejected {
                    RejectedReply::RpcMismatch { low, high } => {
                        RejectStat::RPC_MISMATCH.encode(w);
                        w.put_u32(*low);
                        w.put_u32(*high);
                    }
                    RejectedReply::AuthError(stat) => {
                        RejectStat::AUTH_ERROR.encode(w);
                        stat.encode(w);
                    }
                }
            }
        }
    }
}

/// Writes the header of an accepted SUCCESS reply with an AUTH_NONE
/// verifier (24 bytes); the caller then encodes the results into the same
/// writer, so they are never copied.
pub fn encode_success_header(xid: u32, w: &mut XdrWriter) {
    Reply::accepted(xid, AcceptedReply::Success(&[])).encode(w);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GETPORT call as `rpcinfo -p`-style clients send it: xid
    /// 0x11223344, PMAP v2 GETPORT, AUTH_NONE.
    const CALL: [u8; 40] = [
        0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0x86, 0xa0, 0, 0, 0, 2, 0, 0, 0, 3,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn call_header_golden() {
        let h = CallHeader::new(0x1122_3344, Program::PORTMAP, Version(2), Procedure(3));
        assert_eq!(h.to_xdr(), CALL);
        let mut with_args = CALL.to_vec();
        with_args.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let mut r = XdrReader::new(&with_args);
        assert_eq!(CallHeader::decode(&mut r), Ok(h));
        assert_eq!(r.rest(), [0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn rpc_version_three_is_not_a_decode_error() {
        let mut bytes = CALL;
        bytes[11] = 3;
        let h = CallHeader::decode(&mut XdrReader::new(&bytes));
        assert_eq!(h.map(|h| h.rpc_version), Ok(3));
    }

    #[test]
    fn decode_errors_say_how_far_they_got() {
        let e = CallHeader::decode(&mut XdrReader::new(&CALL[..3])).unwrap_err();
        assert_eq!((e.xid, e.msg_type), (None, None));
        let e = CallHeader::decode(&mut XdrReader::new(&CALL[..6])).unwrap_err();
        assert_eq!((e.xid, e.msg_type), (Some(0x1122_3344), None));
        let e = CallHeader::decode(&mut XdrReader::new(&CALL[..30])).unwrap_err();
        assert_eq!(e.msg_type, Some(MsgType::CALL));
        assert!(matches!(
            e.kind,
            CallDecodeErrorKind::Xdr(XdrError::Truncated { .. })
        ));
        let mut reply = CALL;
        reply[7] = 1;
        let e = CallHeader::decode(&mut XdrReader::new(&reply)).unwrap_err();
        assert_eq!(e.kind, CallDecodeErrorKind::NotACall);
    }

    #[test]
    fn auth_body_over_400_is_refused() {
        let mut bytes = CALL[..28].to_vec();
        bytes.extend_from_slice(&401u32.to_be_bytes());
        bytes.extend_from_slice(&[0; 404]);
        let e = CallHeader::decode(&mut XdrReader::new(&bytes)).unwrap_err();
        assert_eq!(
            e.kind,
            CallDecodeErrorKind::Xdr(XdrError::TooLong {
                field: "opaque_auth.body",
                len: 401,
                max: 400
            })
        );
    }

    #[test]
    fn auth_sys_golden() {
        let a = AuthSys {
            stamp: 1,
            machine_name: "host",
            uid: 0,
            gid: 0,
            gids: vec![0, 4],
        };
        let bytes = [
            0, 0, 0, 1, 0, 0, 0, 4, b'h', b'o', b's', b't', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0,
            0, 0, 0, 0, 0, 0, 4,
        ];
        assert_eq!(a.to_xdr(), bytes);
        assert_eq!(AuthSys::from_body(&bytes), Ok(a));
        let mut too_many = bytes[..20].to_vec();
        too_many.extend_from_slice(&17u32.to_be_bytes());
        assert!(matches!(
            AuthSys::from_body(&too_many),
            Err(XdrError::TooLong { len: 17, .. })
        ));
    }

    fn reply_vectors() -> Vec<(Reply<'static>, Vec<u8>)> {
        let head = |stat: u32| -> Vec<u8> {
            let mut v = vec![0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            v.extend_from_slice(&stat.to_be_bytes());
            v
        };
        let denied = |rest: &[u8]| -> Vec<u8> {
            let mut v = vec![0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 1];
            v.extend_from_slice(rest);
            v
        };
        let acc = |r| Reply::accepted(9, r);
        vec![
            (
                acc(AcceptedReply::Success(&[0, 0, 0, 111])),
                [head(0), vec![0, 0, 0, 111]].concat(),
            ),
            (acc(AcceptedReply::ProgUnavail), head(1)),
            (
                acc(AcceptedReply::ProgMismatch {
                    low: Version(2),
                    high: Version(4),
                }),
                [head(2), vec![0, 0, 0, 2, 0, 0, 0, 4]].concat(),
            ),
            (acc(AcceptedReply::ProcUnavail), head(3)),
            (acc(AcceptedReply::GarbageArgs), head(4)),
            (acc(AcceptedReply::SystemErr), head(5)),
            (
                Reply::denied(9, RejectedReply::RpcMismatch { low: 2, high: 2 }),
                denied(&[0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2]),
            ),
            (
                Reply::denied(9, RejectedReply::AuthError(AuthStat::TOOWEAK)),
                denied(&[0, 0, 0, 1, 0, 0, 0, 5]),
            ),
        ]
    }

    #[test]
    fn reply_golden_vectors() {
        for (reply, bytes) in reply_vectors() {
            assert_eq!(reply.to_xdr(), bytes, "{reply:?}");
            assert_eq!(Reply::decode(&mut XdrReader::new(&bytes)), Ok(reply));
        }
    }

    #[test]
    fn success_header_then_results_matches_reply() {
        let mut w = XdrWriter::new();
        encode_success_header(9, &mut w);
        assert_eq!(w.len(), 24);
        w.put_u32(111);
        let whole = Reply::accepted(9, AcceptedReply::Success(&[0, 0, 0, 111])).to_xdr();
        assert_eq!(w.into_bytes(), whole);
    }

    #[test]
    fn unknown_accept_stat_is_bad_discriminant() {
        let mut bytes = reply_vectors().remove(1).1;
        bytes[23] = 6;
        assert_eq!(
            Reply::decode(&mut XdrReader::new(&bytes)),
            Err(XdrError::BadDiscriminant {
                field: "accept_stat",
                value: 6
            })
        );
    }
}
