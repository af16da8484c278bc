//! Golden byte tables and round trips for the PORTALLOC types. The bytes
//! are written out by hand from `proto/alloc.x` (RFC 4506 encodings), not
//! produced by the encoder under test.

use super::*;
use proptest::prelude::*;

fn be(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

fn round_trip<'a, T>(value: &T, bytes: &'a [u8])
where
    T: Encode + Decode<'a> + PartialEq + std::fmt::Debug,
{
    assert_eq!(value.to_xdr(), bytes, "encoding of {value:?}");
    let mut r = XdrReader::new(bytes);
    assert_eq!(
        T::decode(&mut r).as_ref(),
        Ok(value),
        "decoding {bytes:02x?}"
    );
    assert!(r.is_empty(), "{value:?} left {} bytes", r.remaining());
}

#[test]
fn numbers_match_the_x_file() {
    assert_eq!(PORTALLOC_PROG, Program(536_871_185));
    assert_eq!(PORTALLOC_VERS, Version(1));
    let procs = [
        PA_NULL,
        PA_ALLOC,
        PA_CLAIM,
        PA_RELEASE,
        PA_LIST,
        PA_RELEASE_NAME,
    ];
    assert_eq!(procs.map(|p| p.0), [0, 1, 2, 3, 4, 5]);
    let x = include_str!("../../alloc.x");
    assert!(x.contains("const PORTALLOC_PROG = 0x20000111;"));
    assert!(x.contains("PA_RELEASE_NAME(pa_name) = 5;"));
    assert!(x.contains("enum pa_family   { PA_INET = 2, PA_INET6 = 10 };"));
}

#[test]
fn alloc_args_golden() {
    let pool = AllocArgs::pool(Family::Inet, Socktype::Stream);
    round_trip(&pool, &be(&[2, 1, 0, 0, 0, 0]));
    let privileged = AllocArgs::privileged(Family::Inet6, Socktype::Dgram).no_listen();
    round_trip(&privileged, &be(&[10, 2, 0, 1, 0, 1]));
    let exact = AllocArgs::exact(Family::Inet, Socktype::Stream, 700)
        .bind_addr("127.0.0.1")
        .register(100_024, 1);
    let mut bytes = be(&[2, 1, 9]);
    bytes.extend_from_slice(b"127.0.0.1\0\0\0");
    bytes.extend(be(&[2, 700, 1, 100_024, 1, 0]));
    round_trip(&exact, &bytes);
}

#[test]
fn alloc_res_golden() {
    let granted = AllocRes::Granted(Grant {
        port: 871,
        lease_id: 0x0000_0001_0000_0002,
    });
    round_trip(&granted, &be(&[0, 871, 1, 2]));
    round_trip(&AllocRes::SystemError { errno: 98 }, &be(&[8, 98]));
    round_trip(&AllocRes::Refused(PaStatus::POOL_EXHAUSTED), &be(&[1]));
    // The union's default arm: a status from a newer server survives.
    round_trip(&AllocRes::Refused(PaStatus(42)), &be(&[42]));
}

#[test]
fn refused_never_puts_a_malformed_union_on_the_wire() {
    assert_eq!(AllocRes::Refused(PaStatus::OK).to_xdr(), be(&[7]));
    assert_eq!(
        AllocRes::refused(PaStatus::SYSTEM_ERROR).status(),
        PaStatus::BAD_REQUEST
    );
    assert_eq!(
        AllocRes::refused(PaStatus::DENIED).status(),
        PaStatus::DENIED
    );
}

#[test]
fn claim_release_and_name_golden() {
    let mut claim = be(&[4]);
    claim.extend_from_slice(b"cups");
    claim.extend(be(&[1]));
    round_trip(
        &ClaimArgs {
            name: "cups",
            socktype: Socktype::Stream,
        },
        &claim,
    );
    round_trip(&ReleaseArgs::Lease(7), &be(&[0, 0, 7]));
    round_trip(
        &ReleaseArgs::Port {
            port: 631,
            socktype: Socktype::Dgram,
        },
        &be(&[1, 631, 2]),
    );
    let mut name = be(&[5]);
    name.extend_from_slice(b"rsync\0\0\0");
    round_trip(&NameArg("rsync"), &name);
}

#[test]
fn list_golden() {
    let lease = LeaseInfo {
        lease_id: 3,
        name: String::new(),
        port: 20001,
        socktype: Socktype::Stream,
        family: Family::Inet6,
        pid: 1234,
        uid: 1000,
        since: 1_700_000_000,
        held: false,
    };
    let reservation = LeaseInfo {
        lease_id: 0,
        name: "ipp".into(),
        port: 631,
        socktype: Socktype::Stream,
        family: Family::Inet,
        pid: -1,
        uid: 0,
        since: 5,
        held: true,
    };
    let mut bytes = be(&[2, 0, 3, 0, 20001, 1, 10, 1234, 1000, 0, 1_700_000_000, 0]);
    bytes.extend(be(&[0, 0, 3]));
    bytes.extend_from_slice(b"ipp\0");
    bytes.extend(be(&[631, 1, 2, u32::MAX, 0, 0, 5, 1]));
    round_trip(&PaList(vec![lease, reservation]), &bytes);
    round_trip(&PaList::default(), &be(&[0]));
}

#[test]
fn decoders_refuse_what_the_x_file_does_not_allow() {
    let err = |bytes: &[u8]| AllocArgs::from_xdr(bytes).unwrap_err();
    assert_eq!(
        err(&be(&[3, 1, 0, 0, 0, 0])),
        XdrError::BadDiscriminant {
            field: "pa_family",
            value: 3
        }
    );
    assert_eq!(
        err(&be(&[2, 5, 0, 0, 0, 0])),
        XdrError::BadDiscriminant {
            field: "pa_socktype",
            value: 5
        }
    );
    assert_eq!(
        err(&be(&[2, 1, 0, 3, 0, 0])),
        XdrError::BadDiscriminant {
            field: "pa_portkind",
            value: 3
        }
    );
    assert_eq!(
        err(&be(&[2, 1, 65, 0, 0, 0])),
        XdrError::TooLong {
            field: "pa_alloc_args.bind_addr",
            len: 65,
            max: 64
        }
    );
    assert_eq!(
        ReleaseArgs::from_xdr(&be(&[2, 0, 0])),
        Err(XdrError::BadDiscriminant {
            field: "pa_release_args.by",
            value: 2
        })
    );
    assert_eq!(
        ClaimArgs::from_xdr(&be(&[65])),
        Err(XdrError::TooLong {
            field: "pa_claim_args.name",
            len: 65,
            max: 64
        })
    );
}

#[test]
fn list_count_is_checked_before_allocating() {
    assert_eq!(
        PaList::from_xdr(&be(&[PA_LIST_CAP + 1])),
        Err(XdrError::TooLong {
            field: "pa_list",
            len: PA_LIST_CAP + 1,
            max: PA_LIST_CAP
        })
    );
    assert_eq!(
        PaList::from_xdr(&be(&[100_000, 0, 0])),
        Err(XdrError::Truncated { field: "pa_list" })
    );
}

#[test]
fn status_messages() {
    assert_eq!(PaStatus::POOL_EXHAUSTED.to_string(), "pool exhausted");
    assert_eq!(PaStatus::QUOTA_EXCEEDED.to_string(), "quota exceeded");
    assert_eq!(PaStatus(77).to_string(), "unknown status 77");
}

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::Inet), Just(Family::Inet6)]
}

fn socktype() -> impl Strategy<Value = Socktype> {
    prop_oneof![Just(Socktype::Stream), Just(Socktype::Dgram)]
}

fn lease_info() -> impl Strategy<Value = LeaseInfo> {
    (
        (
            any::<u64>(),
            "[a-z0-9-]{0,64}",
            any::<u32>(),
            socktype(),
            family(),
        ),
        (any::<i32>(), any::<u32>(), any::<u64>(), any::<bool>()),
    )
        .prop_map(
            |((lease_id, name, port, socktype, family), (pid, uid, since, held))| LeaseInfo {
                lease_id,
                name,
                port,
                socktype,
                family,
                pid,
                uid,
                since,
                held,
            },
        )
}

proptest! {
    #[test]
    fn alloc_args_round_trip(
        f in family(), s in socktype(), addr in "[0-9a-f:.]{0,64}",
        kind in prop_oneof![Just(PortKind::Pool), Just(PortKind::Privileged), any::<u32>().prop_map(PortKind::Exact)],
        reg in proptest::option::of((any::<u32>(), any::<u32>())), flags in any::<u32>(),
    ) {
        let args = AllocArgs {
            family: f, socktype: s, bind_addr: &addr, port: kind,
            reg: reg.map(|(p, v)| Register { prog: Program(p), vers: Version(v) }), flags,
        };
        let bytes = args.to_xdr();
        prop_assert_eq!(bytes.len() % 4, 0);
        prop_assert_eq!(AllocArgs::from_xdr(&bytes), Ok(args));
    }

    #[test]
    fn list_round_trip(entries in proptest::collection::vec(lease_info(), 0..20)) {
        let list = PaList(entries);
        prop_assert_eq!(PaList::from_xdr(&list.to_xdr()), Ok(list));
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = AllocArgs::from_xdr(&bytes);
        let _ = AllocRes::from_xdr(&bytes);
        let _ = ClaimArgs::from_xdr(&bytes);
        let _ = ReleaseArgs::from_xdr(&bytes);
        let _ = NameArg::from_xdr(&bytes);
        let _ = PaList::from_xdr(&bytes);
    }
}

/// Replays the committed corpus of the `alloc_decode` fuzz target.
#[test]
fn fuzz_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/alloc_decode");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        fuzz_decode(&std::fs::read(entry.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(count >= 10, "only {count} corpus files");
}
