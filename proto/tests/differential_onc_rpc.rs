//! Differential tests of the RPC message header against the `onc-rpc`
//! crate (0.3), an independent implementation of RFC 5531.
//!
//! Two differences are accounted for, not hidden: onc-rpc always expects
//! the TCP record mark (we add or strip it), and it caps authentication
//! bodies at 200 bytes where the RFC allows 400 (generated bodies stay
//! within 200; bodies between 201 and 400 are checked to be accepted by us
//! and refused by it). It also refuses RPC versions other than 2, which we
//! decode so that the engine can answer RPC_MISMATCH.

// Test code: unwrap on values the test itself constructed.
#![allow(clippy::unwrap_used)]

use onc_rpc::auth::AuthFlavor as OncAuth;
use onc_rpc::{AcceptedReply as OncAccepted, AcceptedStatus, CallBody, MessageType, RpcMessage};
use onc_rpc::{AuthError, RejectedReply as OncRejected, ReplyBody as OncReplyBody};
use proptest::prelude::*;
use proto::rpc::{
    AcceptedReply, AuthFlavor, AuthStat, AuthSys, CallHeader, OpaqueAuth, Procedure, Program,
    RejectedReply, Reply, Version,
};
use proto::xdr::{Encode, XdrReader};

fn with_mark(body: &[u8]) -> Vec<u8> {
    proto::record::encode_record(body)
}

fn onc_auth_bytes(a: &OncAuth<&[u8]>) -> Vec<u8> {
    let mut v = Vec::new();
    a.serialise_into(&mut v).unwrap();
    v
}

/// Our credential re-encoded the way onc-rpc re-encodes it: onc-rpc parses
/// an AUTH_SYS body into fields and writes it back with zero padding, while
/// we keep the body's bytes as they came (libtirpc ignores pad bytes too).
fn canonical_auth(auth: &OpaqueAuth<'_>) -> Vec<u8> {
    match AuthSys::from_body(auth.body) {
        Ok(sys) if auth.flavor == AuthFlavor::SYS => {
            let body = sys.to_xdr();
            OpaqueAuth {
                flavor: auth.flavor,
                body: &body,
            }
            .to_xdr()
        }
        _ => auth.to_xdr(),
    }
}

/// A credential or verifier: flavour and a body of at most 200 bytes.
fn opaque_auth() -> impl Strategy<Value = (u32, Vec<u8>)> {
    prop_oneof![
        Just((0, vec![])),
        (Just(2u32), prop::collection::vec(any::<u8>(), 0..=200)),
        (7u32..100, prop::collection::vec(any::<u8>(), 0..=200)),
        auth_sys_body().prop_map(|b| (1, b)),
    ]
}

fn auth_sys_body() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u32>(),
        "[a-z0-9.-]{0,40}",
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec(any::<u32>(), 0..=16),
    )
        .prop_map(|(stamp, name, uid, gid, gids)| {
            AuthSys {
                stamp,
                machine_name: name.as_bytes(),
                uid,
                gid,
                gids,
            }
            .to_xdr()
        })
}

type CallParts = (u32, u32, u32, u32, (u32, Vec<u8>), (u32, Vec<u8>), Vec<u8>);

fn call_parts() -> impl Strategy<Value = CallParts> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        opaque_auth(),
        opaque_auth(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
}

fn assert_same_call(ours: &CallHeader<'_>, args: &[u8], theirs: &RpcMessage<&[u8], &[u8]>) {
    assert_eq!(theirs.xid(), ours.xid);
    let body = theirs.call_body().unwrap();
    assert_eq!(body.rpc_version(), ours.rpc_version);
    assert_eq!(body.program(), ours.program.0);
    assert_eq!(body.program_version(), ours.version.0);
    assert_eq!(body.procedure(), ours.procedure.0);
    assert_eq!(
        onc_auth_bytes(body.auth_credentials()),
        canonical_auth(&ours.credential)
    );
    assert_eq!(
        onc_auth_bytes(body.auth_verifier()),
        canonical_auth(&ours.verifier)
    );
    assert_eq!(*body.payload(), args);
}

proptest! {
    /// Calls we encode are read identically by onc-rpc.
    #[test]
    fn our_calls_parse_in_onc_rpc((xid, prog, vers, proc, cred, verf, args) in call_parts()) {
        let header = CallHeader {
            credential: OpaqueAuth { flavor: AuthFlavor(cred.0), body: &cred.1 },
            verifier: OpaqueAuth { flavor: AuthFlavor(verf.0), body: &verf.1 },
            ..CallHeader::new(xid, Program(prog), Version(vers), Procedure(proc))
        };
        let mut bytes = header.to_xdr();
        bytes.extend_from_slice(&args);
        let wire = with_mark(&bytes);
        let theirs = RpcMessage::try_from(wire.as_slice()).unwrap();
        assert_same_call(&header, &args, &theirs);
    }

    /// Calls onc-rpc encodes decode identically here, and re-encode to the
    /// same bytes.
    #[test]
    fn onc_rpc_calls_decode_here((xid, prog, vers, proc, cred, verf, args) in call_parts()) {
        let to_onc = |(flavor, body): &(u32, Vec<u8>)| -> Vec<u8> {
            let mut v = flavor.to_be_bytes().to_vec();
            let mut w = proto::xdr::XdrWriter::new();
            w.put_opaque(body);
            v.extend_from_slice(w.as_bytes());
            v
        };
        let (cred_bytes, verf_bytes) = (to_onc(&cred), to_onc(&verf));
        let onc_cred = OncAuth::try_from(cred_bytes.as_slice()).unwrap();
        let onc_verf = OncAuth::try_from(verf_bytes.as_slice()).unwrap();
        let msg = RpcMessage::new(
            xid,
            MessageType::Call(CallBody::new(prog, vers, proc, onc_cred, onc_verf, args.as_slice())),
        );
        let wire = msg.serialise().unwrap();
        let mut reader = XdrReader::new(&wire[4..]);
        let ours = CallHeader::decode(&mut reader).unwrap();
        let rest = reader.rest();
        assert_same_call(&ours, rest, &msg);
        let mut again = ours.to_xdr();
        again.extend_from_slice(rest);
        prop_assert_eq!(&again[..], &wire[4..]);
    }

    /// Whatever onc-rpc accepts as a CALL, we accept with the same fields.
    #[test]
    fn arbitrary_calls_accepted_by_onc_rpc_are_accepted_here(
        (xid, prog, vers, proc, cred, verf, args) in call_parts(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let header = CallHeader {
            credential: OpaqueAuth { flavor: AuthFlavor(cred.0), body: &cred.1 },
            verifier: OpaqueAuth { flavor: AuthFlavor(verf.0), body: &verf.1 },
            ..CallHeader::new(xid, Program(prog), Version(vers), Procedure(proc))
        };
        let mut bytes = header.to_xdr();
        bytes.extend_from_slice(&args);
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        let wire = with_mark(&bytes);
        if let Ok(theirs) = RpcMessage::try_from(wire.as_slice()) {
            if theirs.call_body().is_some() {
                let mut reader = XdrReader::new(&bytes);
                let ours = CallHeader::decode(&mut reader).unwrap();
                let rest = reader.rest();
                assert_same_call(&ours, rest, &theirs);
            }
        }
    }
}

/// The same reply in both crates' models.
type ReplyPair = (Reply<'static>, OncReplyBody<&'static [u8], &'static [u8]>);

fn replies() -> Vec<ReplyPair> {
    let acc = |s| OncReplyBody::Accepted(OncAccepted::new(OncAuth::AuthNone(None), s));
    vec![
        (
            Reply::accepted(1, AcceptedReply::Success(&[0, 0, 0, 1])),
            acc(AcceptedStatus::Success(&[0, 0, 0, 1][..])),
        ),
        (
            Reply::accepted(2, AcceptedReply::ProgUnavail),
            acc(AcceptedStatus::ProgramUnavailable),
        ),
        (
            Reply::accepted(
                3,
                AcceptedReply::ProgMismatch {
                    low: Version(2),
                    high: Version(4),
                },
            ),
            acc(AcceptedStatus::ProgramMismatch { low: 2, high: 4 }),
        ),
        (
            Reply::accepted(4, AcceptedReply::ProcUnavail),
            acc(AcceptedStatus::ProcedureUnavailable),
        ),
        (
            Reply::accepted(5, AcceptedReply::GarbageArgs),
            acc(AcceptedStatus::GarbageArgs),
        ),
        (
            Reply::accepted(6, AcceptedReply::SystemErr),
            acc(AcceptedStatus::SystemError),
        ),
        (
            Reply::denied(7, RejectedReply::RpcMismatch { low: 2, high: 2 }),
            OncReplyBody::Denied(OncRejected::RpcVersionMismatch { low: 2, high: 2 }),
        ),
        (
            Reply::denied(8, RejectedReply::AuthError(AuthStat::TOOWEAK)),
            OncReplyBody::Denied(OncRejected::AuthError(AuthError::TooWeak)),
        ),
        (
            Reply::denied(9, RejectedReply::AuthError(AuthStat::BADCRED)),
            OncReplyBody::Denied(OncRejected::AuthError(AuthError::BadCredentials)),
        ),
    ]
}

#[test]
fn every_reply_kind_agrees_both_ways() {
    for (ours, onc_body) in replies() {
        let theirs = RpcMessage::new(ours.xid, MessageType::Reply(onc_body));
        let onc_wire = theirs.serialise().unwrap();
        assert_eq!(with_mark(&ours.to_xdr()), onc_wire, "{ours:?}");
        let decoded = Reply::decode(&mut XdrReader::new(&onc_wire[4..])).unwrap();
        assert_eq!(decoded, ours);
        let reparsed = RpcMessage::try_from(onc_wire.as_slice()).unwrap();
        assert_eq!(reparsed, theirs);
    }
}

#[test]
fn auth_bodies_between_201_and_400_bytes_are_ours_to_accept() {
    let body = [7u8; 400];
    let header = CallHeader {
        credential: OpaqueAuth {
            flavor: AuthFlavor::SHORT,
            body: &body,
        },
        ..CallHeader::new(1, Program::PORTMAP, Version(2), Procedure(0))
    };
    let bytes = header.to_xdr();
    assert!(RpcMessage::try_from(with_mark(&bytes).as_slice()).is_err());
    assert_eq!(CallHeader::decode(&mut XdrReader::new(&bytes)), Ok(header));
}

#[test]
fn rpc_version_3_is_refused_by_onc_rpc_but_decoded_here() {
    let header = CallHeader {
        rpc_version: 3,
        ..CallHeader::new(1, Program::PORTMAP, Version(2), Procedure(0))
    };
    let bytes = header.to_xdr();
    assert!(RpcMessage::try_from(with_mark(&bytes).as_slice()).is_err());
    assert_eq!(CallHeader::decode(&mut XdrReader::new(&bytes)), Ok(header));
}
