//! Entry points of the fuzz targets in `proto/fuzz`, shared with the test
//! that replays their corpora (`tests/fuzz_corpus.rs`). No I/O.
//!
//! Each function takes arbitrary bytes and panics only if an invariant of
//! the wire code breaks: a decoded value must re-encode to bytes that
//! decode to the same value, the record assembler must agree with a
//! one-shot reference parser whatever the chunking, and its buffer must
//! stay within its cap. Decoding errors are expected and ignored.

use crate::record::{RecordAssembler, RecordError, LAST_FRAGMENT, MAX_FRAGMENT_LEN};
use crate::rpc::{AuthSys, CallHeader, Reply};
use crate::rpcb::{
    CallArgs, CallResult, Mapping, Netbuf, Pmaplist, Rpcb, RpcbEntry, RpcbEntryList,
    RpcbRmtcallRes, RpcbStat, RpcbStatByvers, Rpcblist,
};
use crate::uaddr::{self, AddrFamily, UniversalAddr};
use crate::xdr::{Decode, Encode, XdrReader};

/// Target `rpc_call_decode`: a datagram (or record) decoded as a CALL
/// header, and as a REPLY.
pub fn rpc_call_decode(data: &[u8]) {
    let mut r = XdrReader::new(data);
    if let Ok(header) = CallHeader::decode(&mut r) {
        let args = r.rest();
        let mut bytes = header.to_xdr();
        bytes.extend_from_slice(args);
        let mut again = XdrReader::new(&bytes);
        assert_eq!(CallHeader::decode(&mut again).ok(), Some(header));
        assert_eq!(again.rest(), args);
    }
    if let Ok(reply) = Reply::decode(&mut XdrReader::new(data)) {
        let bytes = reply.to_xdr();
        assert_eq!(Reply::decode(&mut XdrReader::new(&bytes)).ok(), Some(reply));
    }
}

/// Target `record_reassembly`: byte 0 picks the chunk size, byte 1 the
/// record cap; the rest is the stream.
pub fn record_reassembly(data: &[u8]) {
    let [chunk, cap, stream @ ..] = data else {
        return;
    };
    let chunk = usize::from(*chunk).max(1);
    let cap = usize::from(*cap) * 16;
    let mut a = RecordAssembler::new(cap);
    let mut records = Vec::new();
    let mut error = None;
    for piece in stream.chunks(chunk) {
        let pushed = a.push(piece);
        let held = a.buffered();
        assert!(held <= cap + 4, "buffered {held} > cap {cap} + 4");
        // Records completed before an error in the same push are kept.
        records.extend(std::iter::from_fn(|| a.pop()));
        if let Err(e) = pushed {
            error = Some(e);
            break;
        }
    }
    let (expected, expected_error) = reference_records(stream, cap);
    assert_eq!(records, expected);
    assert_eq!(error, expected_error);
}

/// A one-shot record parser, as simple as possible, to check the
/// incremental one against.
fn reference_records(mut stream: &[u8], cap: usize) -> (Vec<Vec<u8>>, Option<RecordError>) {
    let mut records = Vec::new();
    let mut current = Vec::new();
    while let [a, b, c, d, rest @ ..] = stream {
        let mark = u32::from_be_bytes([*a, *b, *c, *d]);
        let len = (mark & MAX_FRAGMENT_LEN) as usize;
        if current.len() + len > cap {
            let announced = (current.len() + len) as u64;
            return (
                records,
                Some(RecordError::TooLong {
                    announced,
                    max: cap,
                }),
            );
        }
        if rest.len() < len {
            break;
        }
        current.extend_from_slice(&rest[..len]);
        stream = &rest[len..];
        if mark & LAST_FRAGMENT != 0 {
            records.push(std::mem::take(&mut current));
        }
    }
    (records, None)
}

/// Decodes `$data` as `$t`; if that works, the value must re-encode to
/// bytes that decode to the same value. (A macro rather than a generic
/// function so that borrowed types get a fresh lifetime for the re-decode.)
macro_rules! round_trip {
    ($t:ty, $data:expr) => {{
        if let Ok(value) = <$t>::from_xdr($data) {
            let bytes = value.to_xdr();
            let again = <$t>::from_xdr(&bytes);
            assert_eq!(again.as_ref().ok(), Some(&value));
        }
    }};
}

/// Target `arg_decode`: byte 0 picks a decoder of a binding-protocol type,
/// the rest is its input.
pub fn arg_decode(data: &[u8]) {
    let Some((which, input)) = data.split_first() else {
        return;
    };
    match which % 14 {
        0 => round_trip!(Mapping, input),
        1 => round_trip!(Pmaplist, input),
        2 => round_trip!(CallArgs<'_>, input),
        3 => round_trip!(CallResult<'_>, input),
        4 => round_trip!(Rpcb, input),
        5 => round_trip!(Rpcblist, input),
        6 => round_trip!(RpcbEntry, input),
        7 => round_trip!(RpcbEntryList, input),
        8 => round_trip!(RpcbRmtcallRes<'_>, input),
        9 => round_trip!(Netbuf, input),
        10 => round_trip!(RpcbStat, input),
        11 => round_trip!(RpcbStatByvers, input),
        12 => round_trip!(AuthSys<'_>, input),
        _ => uaddr_decode(input),
    }
}

/// Universal addresses: whatever parses must format back to a string that
/// parses to the same address, and netbuf conversions must agree.
fn uaddr_decode(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        for family in [AddrFamily::Inet, AddrFamily::Inet6, AddrFamily::Local] {
            let _ = uaddr::taddr2uaddr(family, &Netbuf::new(input.to_vec()));
        }
        return;
    };
    if let Some(addr) = UniversalAddr::parse(text) {
        let formatted = addr.to_string();
        assert_eq!(UniversalAddr::parse(&formatted).as_ref(), Some(&addr));
        assert_eq!(
            UniversalAddr::from_sockaddr(&addr.to_sockaddr()),
            Some(addr)
        );
    }
    for family in [AddrFamily::Inet, AddrFamily::Inet6] {
        if let Some(nb) = uaddr::uaddr2taddr(family, text) {
            let back = uaddr::taddr2uaddr(family, &nb);
            let reparsed = back.as_deref().and_then(|u| uaddr::uaddr2taddr(family, u));
            assert_eq!(reparsed, Some(nb));
        }
    }
    let _ = uaddr::uaddr2taddr(AddrFamily::Local, text);
}

/// Target `dispatch` (engine): byte 0 picks the transport and caller, the
/// rest is one RPC message, handled twice by an engine set up as the
/// daemon sets it up. Nothing may panic, and every reply must echo the
/// request's xid.
pub fn dispatch(data: &[u8]) {
    use crate::engine::{Engine, EngineConfig, Outcome, RequestContext, Transport};
    let [selector, message @ ..] = data else {
        return;
    };
    let (transport, peer) = match selector % 5 {
        0 => (Transport::Udp, "127.0.0.1:700"),
        1 => (Transport::Tcp, "192.0.2.9:4000"),
        2 => (Transport::Udp6, "[::1]:4000"),
        3 => (Transport::Tcp6, "[2001:db8::9]:4000"),
        _ => (Transport::Local, ""),
    };
    let ctx = RequestContext {
        transport,
        peer: peer.parse().ok(),
        local: None,
        peer_uid: (transport == Transport::Local).then_some(u32::from(*selector)),
    };
    let mut e = Engine::new(EngineConfig {
        insecure: selector & 0x80 != 0,
        ..EngineConfig::default()
    });
    e.register_own(Transport::Local, "/run/rpcbind.sock");
    e.register_own(Transport::Udp, "0.0.0.0.0.111");
    e.register_own(Transport::Tcp, "0.0.0.0.0.111");
    e.register_own(Transport::Udp6, "::.0.111");
    e.register_own(Transport::Tcp6, "::.0.111");
    for _ in 0..2 {
        if let Outcome::Reply(r) = e.handle(message, &ctx, std::time::SystemTime::UNIX_EPOCH) {
            assert!(message.len() >= 4 && r.get(..4) == message.get(..4));
        }
    }
}
