//! The CALL message header (RFC 5531 section 9, `rpc_msg` with a
//! `call_body`). No I/O.

use super::{MsgType, OpaqueAuth, Procedure, Program, Version, RPC_VERSION};
use crate::xdr::{Decode, Encode, XdrError, XdrReader, XdrWriter};

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
}
