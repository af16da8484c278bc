//! Decodes every request and reply captured from Debian's C rpcbind in
//! `tests/golden/*.txt` (see `tests/golden/README.md` for how and with
//! which versions they were captured) with the wire types of this crate,
//! and checks that re-encoding gives back the captured bytes exactly.
//!
//! It also compares our argument decoders with the C daemon's: where it
//! answered GARBAGE_ARGS our decoder must fail, where it answered SUCCESS
//! our decoder must succeed.

// Test code: a malformed golden file should stop the test loudly.
#![allow(clippy::unwrap_used)]

use proto::rpc::{
    AcceptedReply, AuthFlavor, AuthStat, AuthSys, CallHeader, Program, RejectedReply, Reply,
    ReplyBody, RPC_VERSION,
};
use proto::rpcb::*;
use proto::xdr::{Decode, Encode, XdrError, XdrReader};

struct Exchange {
    file: &'static str,
    transport: String,
    request: Vec<u8>,
    /// `None` when the daemon did not answer or the answer is
    /// time-dependent (`?`).
    reply: Option<Vec<u8>>,
    dropped: bool,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn exchanges() -> Vec<Exchange> {
    let files = [
        ("rpcinfo", include_str!("golden/rpcinfo.txt")),
        ("handmade", include_str!("golden/handmade.txt")),
        ("libtirpc", include_str!("golden/libtirpc.txt")),
    ];
    let mut out = Vec::new();
    for (file, text) in files {
        let mut request = None;
        let mut transport = String::new();
        for line in text.lines() {
            if let Some(ctx) = line.strip_prefix("@ transport=") {
                transport = ctx.split(' ').next().unwrap_or_default().to_owned();
            } else if let Some(h) = line.strip_prefix("> ") {
                request = Some(hex(h.trim()));
            } else if let Some(r) = line.strip_prefix("< ") {
                let r = r.trim();
                out.push(Exchange {
                    file,
                    transport: transport.clone(),
                    request: request.take().expect("a reply follows a request"),
                    reply: (r != "-" && r != "?").then(|| hex(r)),
                    dropped: r == "-",
                });
            }
        }
    }
    out
}

/// Decodes the arguments of a PORTMAP procedure and re-encodes them.
/// `Ok(None)` for procedures without arguments.
fn args_round_trip(vers: u32, proc: u32, args: &[u8]) -> Result<Option<Vec<u8>>, XdrError> {
    fn rt<'a, T: Decode<'a> + Encode>(b: &'a [u8]) -> Result<Option<Vec<u8>>, XdrError> {
        T::from_xdr(b).map(|v| Some(v.to_xdr()))
    }
    match (vers, proc) {
        (_, 0) | (2, 4) | (3 | 4, 4 | 6 | 12) => Ok(None),
        (2, 1..=3) => rt::<Mapping>(args),
        (_, 5) | (4, 10) => rt::<CallArgs<'_>>(args),
        (3 | 4, 1..=3 | 9 | 11) => rt::<Rpcb>(args),
        (3 | 4, 7) => {
            let mut r = XdrReader::new(args);
            r.string(RPC_MAXDATASIZE).map(|s| {
                let mut w = proto::xdr::XdrWriter::new();
                w.put_string(s);
                Some(w.into_bytes())
            })
        }
        (3 | 4, 8) => rt::<Netbuf>(args),
        _ => Ok(None),
    }
}

/// Decodes the results of a PORTMAP procedure and re-encodes them.
fn results_round_trip(vers: u32, proc: u32, res: &[u8]) -> Option<Result<Vec<u8>, XdrError>> {
    fn rt<'a, T: Decode<'a> + Encode>(b: &'a [u8]) -> Option<Result<Vec<u8>, XdrError>> {
        Some(T::from_xdr(b).map(|v| v.to_xdr()))
    }
    match (vers, proc) {
        (2, 1..=3) | (3 | 4, 1 | 2 | 6) => rt::<u32>(res),
        (2, 4) => rt::<Pmaplist>(res),
        (2, 5) => rt::<CallResult<'_>>(res),
        (3 | 4, 4) => rt::<Rpcblist>(res),
        (3 | 4, 5) | (4, 10) => rt::<RpcbRmtcallRes<'_>>(res),
        (3 | 4, 3 | 8 | 9) => Some(XdrReader::new(res).string(RPC_MAXDATASIZE).map(|s| {
            let mut w = proto::xdr::XdrWriter::new();
            w.put_string(s);
            w.into_bytes()
        })),
        (3 | 4, 7) => rt::<Netbuf>(res),
        (4, 11) => rt::<RpcbEntryList>(res),
        (3 | 4, 12) => rt::<RpcbStatByvers>(res),
        _ => None,
    }
}

/// libtirpc's UDP transport decodes arguments from its whole receive
/// buffer, not just the datagram, so a truncated UDP argument is read
/// past its end (from zeros or a previous datagram) and answered as if
/// it were complete. We refuse it (truncation is GARBAGE_ARGS here); this
/// recognises that one known divergence.
fn is_udp_overread(ex: &Exchange, decoded: &Result<Option<Vec<u8>>, XdrError>) -> bool {
    ex.transport.starts_with("udp") && matches!(decoded, Err(XdrError::Truncated { .. }))
}

/// An AUTH_SYS credential decodes exactly when the C daemon accepted it
/// (it answers AUTH_BADCRED otherwise), and re-encodes to the bytes sent.
fn check_auth_sys(ctx: &str, body: &[u8], reply: &Reply<'_>) {
    let refused = reply.body == ReplyBody::Denied(RejectedReply::AuthError(AuthStat::BADCRED));
    match AuthSys::from_body(body) {
        Ok(sys) => {
            assert!(!refused, "{ctx}: C refused an AUTH_SYS body we decode");
            let bytes = sys.to_xdr();
            assert_eq!(&body[..bytes.len()], &bytes[..], "{ctx}: AUTH_SYS");
        }
        Err(e) => assert!(refused, "{ctx}: C accepted an AUTH_SYS body we refuse: {e}"),
    }
}

#[test]
fn captured_messages_decode_and_re_encode_exactly() {
    let all = exchanges();
    assert!(all.len() > 120, "only {} exchanges found", all.len());
    let (mut typed_args, mut typed_results, mut udp_overreads) = (0, 0, 0);
    let mut auth_sys_seen = 0;
    for (i, ex) in all.iter().enumerate() {
        let ctx = format!("{} exchange #{i}", ex.file);
        let mut r = XdrReader::new(&ex.request);
        let header = match CallHeader::decode(&mut r) {
            Ok(h) => h,
            Err(e) => {
                // Only the hand-made broken messages may fail, and the C
                // daemon must have dropped them too.
                assert!(ex.dropped, "{ctx}: {e} but the daemon answered");
                continue;
            }
        };
        let args = r.rest();
        assert_eq!(
            [header.to_xdr(), args.to_vec()].concat(),
            ex.request,
            "{ctx}"
        );

        let Some(reply_bytes) = &ex.reply else {
            continue;
        };
        let reply = Reply::decode(&mut XdrReader::new(reply_bytes))
            .unwrap_or_else(|e| panic!("{ctx}: reply: {e}"));
        assert_eq!(reply.xid, header.xid, "{ctx}");
        assert_eq!(&reply.to_xdr(), reply_bytes, "{ctx}");

        if header.credential.flavor == AuthFlavor::SYS {
            check_auth_sys(&ctx, header.credential.body, &reply);
            auth_sys_seen += 1;
        }

        if header.program != Program::PORTMAP || header.rpc_version != RPC_VERSION {
            continue;
        }
        let (vers, proc) = (header.version.0, header.procedure.0);
        let ReplyBody::Accepted {
            reply: accepted, ..
        } = reply.body
        else {
            continue;
        };
        let decoded_args = args_round_trip(vers, proc, args);
        match accepted {
            AcceptedReply::GarbageArgs => {
                assert!(
                    decoded_args.is_err(),
                    "{ctx}: C said GARBAGE_ARGS, we decoded"
                );
            }
            AcceptedReply::Success(_) if is_udp_overread(ex, &decoded_args) => {
                udp_overreads += 1;
                eprintln!("{ctx}: truncated UDP arguments answered SUCCESS by C");
            }
            AcceptedReply::Success(results) => {
                let reencoded = decoded_args.unwrap_or_else(|e| panic!("{ctx}: args: {e}"));
                if let Some(bytes) = reencoded {
                    assert_eq!(&args[..bytes.len()], &bytes[..], "{ctx}: args");
                    typed_args += 1;
                }
                if let Some(res) = results_round_trip(vers, proc, results) {
                    let res = res.unwrap_or_else(|e| panic!("{ctx}: results: {e}"));
                    assert_eq!(res, results, "{ctx}: results v{vers} proc {proc}");
                    typed_results += 1;
                }
            }
            _ => {}
        }
    }
    // Most exchanges carry typed arguments or results; make sure the
    // table above was actually exercised.
    // The hand-made session has two: a v2 GETPORT without prot and port,
    // and a v3 GETADDR without r_addr and r_owner, both over UDP.
    assert_eq!(udp_overreads, 2);
    eprintln!("{typed_args} typed arguments, {typed_results} typed results");
    assert!(auth_sys_seen >= 2, "{auth_sys_seen} AUTH_SYS credentials");
    assert!(typed_args > 40, "{typed_args} typed arguments");
    assert!(typed_results > 60, "{typed_results} typed results");
}
