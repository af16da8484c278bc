//! Property tests of the wire types: every type round-trips through its
//! encoding; decoding arbitrary bytes never panics and never produces a
//! value larger than its input (no allocation an attacker's length field
//! could inflate); huge length fields are refused at once.

// Test code: unwrap on values the test itself constructed.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use proto::rpc::{
    AcceptedReply, AuthFlavor, AuthStat, AuthSys, CallHeader, OpaqueAuth, Procedure, Program,
    RejectedReply, Reply, Version,
};
use proto::rpcb::*;
use proto::uaddr::{self, AddrFamily, UniversalAddr};
use proto::xdr::{Decode, Encode, XdrError, XdrReader};

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn mapping() -> impl Strategy<Value = Mapping> {
    (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(p, v, prot, port)| {
        Mapping {
            prog: Program(p),
            vers: Version(v),
            prot,
            port,
        }
    })
}

fn rpcb() -> impl Strategy<Value = Rpcb> {
    (any::<u32>(), any::<u32>(), text(), text(), text()).prop_map(|(p, v, netid, addr, owner)| {
        Rpcb {
            prog: Program(p),
            vers: Version(v),
            netid,
            addr,
            owner,
        }
    })
}

fn rpcb_entry() -> impl Strategy<Value = RpcbEntry> {
    (text(), text(), any::<u32>(), text(), text()).prop_map(
        |(maddr, netid, semantics, protofmly, proto)| RpcbEntry {
            maddr,
            netid,
            semantics,
            protofmly,
            proto,
        },
    )
}

fn rpcb_stat() -> impl Strategy<Value = RpcbStat> {
    let addr = (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        text(),
    )
        .prop_map(|(p, v, success, failure, netid)| RpcbsAddr {
            prog: Program(p),
            vers: Version(v),
            success,
            failure,
            netid,
        });
    let rmt = (any::<[u32; 6]>(), text()).prop_map(|(n, netid)| RpcbsRmtcall {
        prog: Program(n[0]),
        vers: Version(n[1]),
        proc: Procedure(n[2]),
        success: n[3],
        failure: n[4],
        indirect: n[5],
        netid,
    });
    (
        any::<[u32; RPCBSTAT_HIGHPROC]>(),
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec(addr, 0..4),
        prop::collection::vec(rmt, 0..4),
    )
        .prop_map(|(info, setinfo, unsetinfo, addrinfo, rmtinfo)| RpcbStat {
            info,
            setinfo,
            unsetinfo,
            addrinfo,
            rmtinfo,
        })
}

/// Encodes, decodes, and checks the value and that every byte was used.
fn round_trips<T>(value: &T)
where
    T: Encode + for<'a> Decode<'a> + PartialEq + std::fmt::Debug,
{
    let bytes = value.to_xdr();
    assert_eq!(bytes.len() % 4, 0);
    let mut r = XdrReader::new(&bytes);
    assert_eq!(&T::decode(&mut r).unwrap(), value);
    assert!(r.is_empty());
}

/// A decoder whose value is thrown away.
type DecodeFn = fn(&[u8]) -> Result<(), XdrError>;

proptest! {
    #[test]
    fn owned_types_round_trip(
        m in mapping(),
        ms in prop::collection::vec(mapping(), 0..8),
        r in rpcb(),
        rs in prop::collection::vec(rpcb(), 0..6),
        e in rpcb_entry(),
        es in prop::collection::vec(rpcb_entry(), 0..6),
        s in rpcb_stat(),
        s3 in [rpcb_stat(), rpcb_stat(), rpcb_stat()],
        buf in bytes(64),
        extra in 0u32..64,
    ) {
        round_trips(&m);
        round_trips(&Pmaplist(ms));
        round_trips(&r);
        round_trips(&Rpcblist(rs));
        round_trips(&e);
        round_trips(&RpcbEntryList(es));
        round_trips(&s);
        round_trips(&RpcbStatByvers(s3));
        round_trips(&Netbuf { maxlen: buf.len() as u32 + extra, buf });
    }

    #[test]
    fn borrowed_types_round_trip(
        nums in any::<[u32; 4]>(),
        args in bytes(100),
        addr in text(),
        name in "[a-z]{0,255}",
        gids in prop::collection::vec(any::<u32>(), 0..=16),
    ) {
        let call = CallArgs {
            prog: Program(nums[0]),
            vers: Version(nums[1]),
            proc: Procedure(nums[2]),
            args: &args,
        };
        let encoded = call.to_xdr();
        prop_assert_eq!(CallArgs::from_xdr(&encoded), Ok(call));
        let res = CallResult { port: nums[3], res: &args };
        let encoded = res.to_xdr();
        prop_assert_eq!(CallResult::from_xdr(&encoded), Ok(res));
        let rmt = RpcbRmtcallRes { addr, results: &args };
        let encoded = rmt.to_xdr();
        prop_assert_eq!(RpcbRmtcallRes::from_xdr(&encoded), Ok(rmt));
        let sys = AuthSys { stamp: nums[0], machine_name: name.as_bytes(), uid: nums[1], gid: nums[2], gids };
        let encoded = sys.to_xdr();
        prop_assert_eq!(AuthSys::from_body(&encoded), Ok(sys));
    }

    #[test]
    fn rpc_messages_round_trip(
        nums in any::<[u32; 6]>(),
        cred in bytes(400),
        verf in bytes(400),
        results in bytes(40),
        which in 0u8..8,
    ) {
        let header = CallHeader {
            xid: nums[0],
            rpc_version: nums[1],
            program: Program(nums[2]),
            version: Version(nums[3]),
            procedure: Procedure(nums[4]),
            credential: OpaqueAuth { flavor: AuthFlavor(nums[5]), body: &cred },
            verifier: OpaqueAuth { flavor: AuthFlavor::NONE, body: &verf },
        };
        let bytes = header.to_xdr();
        let mut r = XdrReader::new(&bytes);
        prop_assert_eq!(CallHeader::decode(&mut r), Ok(header));
        prop_assert!(r.is_empty());

        let reply = match which {
            0 => AcceptedReply::Success(&results),
            1 => AcceptedReply::ProgUnavail,
            2 => AcceptedReply::ProgMismatch { low: Version(nums[1]), high: Version(nums[2]) },
            3 => AcceptedReply::ProcUnavail,
            4 => AcceptedReply::GarbageArgs,
            _ => AcceptedReply::SystemErr,
        };
        let reply = match which {
            6 => Reply::denied(nums[0], RejectedReply::RpcMismatch { low: nums[1], high: nums[2] }),
            7 => Reply::denied(nums[0], RejectedReply::AuthError(AuthStat(nums[3]))),
            _ => Reply::accepted(nums[0], reply),
        };
        let bytes = reply.to_xdr();
        prop_assert_eq!(Reply::decode(&mut XdrReader::new(&bytes)), Ok(reply));
    }

    #[test]
    fn ip_universal_addresses_round_trip(v4 in any::<u32>(), v6 in any::<u128>(), port in any::<u16>()) {
        for ip in [IpAddr::V4(Ipv4Addr::from(v4)), IpAddr::V6(Ipv6Addr::from(v6))] {
            let sock = SocketAddr::new(ip, port);
            let text = uaddr::format_inet(&sock);
            prop_assert_eq!(uaddr::parse_inet(&text), Some(sock));
            let family = AddrFamily::of(&sock);
            let nb = uaddr::uaddr2taddr(family, &text).unwrap();
            prop_assert_eq!(uaddr::taddr2uaddr(family, &nb), Some(text));
            prop_assert_eq!(UniversalAddr::from_sockaddr(&nb.buf), Some(UniversalAddr::Inet(sock)));
        }
    }

    /// Any bytes: no panic, invariants of the fuzz targets hold, and a
    /// decoded value never encodes to more bytes than its input had.
    #[test]
    fn arbitrary_bytes_never_panic_nor_amplify(data in bytes(512)) {
        proto::fuzzing::arg_decode(&data);
        proto::fuzzing::rpc_call_decode(&data);
        proto::fuzzing::record_reassembly(&data);
        fn no_bigger<'a, T: Decode<'a> + Encode>(data: &'a [u8]) {
            if let Ok(v) = T::from_xdr(data) {
                assert!(v.to_xdr().len() <= data.len());
            }
        }
        no_bigger::<Pmaplist>(&data);
        no_bigger::<Rpcblist>(&data);
        no_bigger::<RpcbEntryList>(&data);
        no_bigger::<RpcbStatByvers>(&data);
        no_bigger::<Netbuf>(&data);
        no_bigger::<CallArgs<'_>>(&data);
        no_bigger::<RpcbRmtcallRes<'_>>(&data);
    }

    /// A length field of any size followed by few bytes is refused without
    /// reading further, whichever variable-length field it sits in.
    #[test]
    fn oversized_lengths_are_refused(len in 9001u32.., tail in bytes(16)) {
        let huge = len.to_be_bytes();
        let cases: [(&str, Vec<u8>, DecodeFn); 4] = [
            ("rpcb.r_netid", [&[0u8; 8][..], &huge, &tail].concat(), |b| Rpcb::from_xdr(b).map(drop)),
            ("call_args.args", [&[0u8; 12][..], &huge, &tail].concat(), |b| CallArgs::from_xdr(b).map(drop)),
            ("netbuf.maxlen", [&huge[..], &tail].concat(), |b| Netbuf::from_xdr(b).map(drop)),
            ("rpcb_entry.r_maddr", [&huge[..], &tail].concat(), |b| RpcbEntry::from_xdr(b).map(drop)),
        ];
        for (field, input, decode) in cases {
            prop_assert_eq!(decode(&input), Err(XdrError::TooLong { field, len, max: RPC_MAXDATASIZE }));
        }
    }
}

#[test]
fn dump_of_50000_entries_decodes_and_262145_does_not() {
    let many = |n: u32| {
        Pmaplist(
            (0..n)
                .map(|i| Mapping {
                    prog: Program(i),
                    vers: Version(1),
                    prot: IPPROTO_TCP,
                    port: 1,
                })
                .collect(),
        )
        .to_xdr()
    };
    assert_eq!(Pmaplist::from_xdr(&many(50_000)).unwrap().0.len(), 50_000);
    assert_eq!(
        Pmaplist::from_xdr(&many(DUMP_LIST_CAP as u32 + 1)),
        Err(XdrError::TooManyEntries {
            field: "pmaplist",
            cap: DUMP_LIST_CAP
        })
    );
}
