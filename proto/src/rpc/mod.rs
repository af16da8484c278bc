//! ONC RPC version 2 messages (RFC 5531 sections 8-9): the call header,
//! accepted and denied replies, opaque authentication and AUTH_SYS
//! credentials, and open numeric types for the protocol's numbers.
//! No I/O.
//!
//! Numbers are newtypes rather than closed enums so that an unknown program,
//! flavour or status survives a decode/encode round trip.

mod auth;
mod call;
mod reply;

pub use auth::{AuthSys, OpaqueAuth};
pub use call::{CallDecodeError, CallDecodeErrorKind, CallHeader};
pub use reply::{encode_success_header, AcceptedReply, RejectedReply, Reply, ReplyBody};

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
