//! REPLY messages (RFC 5531 section 9, `reply_body`): accepted and
//! denied replies, encode and decode. No I/O.

use super::{AcceptStat, AuthStat, MsgType, OpaqueAuth, RejectStat, ReplyStat, Version};
use crate::xdr::{Decode, Encode, XdrError, XdrReader, XdrWriter};

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
