//! Tests of universal addresses. The netbuf vectors were observed on
//! 2026-11-23 by sending RPCBPROC_UADDR2TADDR / TADDR2UADDR (v3 over
//! udp/udp6, v4 over /run/rpcbind.sock) to Debian's rpcbind 1.2.6-6+b1
//! with libtirpc3 1.3.3+ds-1 on amd64, inside `unshare -n -m`, and
//! printing the reply bytes after the 24-byte reply header. For example
//! UADDR2TADDR("127.0.0.1.0.111") over udp answered
//! `00000010 00000010 0200006f7f000001 0000000000000000`: maxlen 16,
//! len 16, sin_family 2 in little-endian host order, then port and
//! address in network order and 8 zero bytes; a failure answered
//! `00000000 00000000` (maxlen 0, len 0).

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// (transport family, uaddr, maxlen, buf as the C rpcbind returned it).
const UADDR2TADDR_OBSERVED: &[(AddrFamily, &str, u32, &str)] = &[
    (
        AddrFamily::Inet,
        "127.0.0.1.0.111",
        16,
        "0200006f7f0000010000000000000000",
    ),
    (
        AddrFamily::Inet,
        "1.2.3.4.4.1",
        16,
        "02000401010203040000000000000000",
    ),
    (
        AddrFamily::Inet6,
        "::1.0.111",
        28,
        "0a00006f000000000000000000000000000000000000000100000000",
    ),
    (
        AddrFamily::Inet6,
        "::ffff:1.2.3.4.0.111",
        28,
        "0a00006f0000000000000000000000000000ffff0102030400000000",
    ),
    (
        AddrFamily::Inet6,
        "::.0.111",
        28,
        "0a00006f000000000000000000000000000000000000000000000000",
    ),
    (
        AddrFamily::Inet6,
        "1:2:3:4:5:6:7:8.1.1",
        28,
        "0a000101000000000001000200030004000500060007000800000000",
    ),
    (
        AddrFamily::Local,
        "/run/rpcbind.sock",
        110,
        "01002f72756e2f72706362696e642e736f636b",
    ),
    (AddrFamily::Local, "/x", 110, "01002f78"),
    (AddrFamily::Local, "/a.b.c", 110, "01002f612e622e63"),
    // Quirks of libtirpc's parser, reproduced on purpose.
    (AddrFamily::Local, "rel.a.b", 110, "010072656c"),
    (AddrFamily::Local, "1.2.3.4.0.1", 110, "0100312e322e332e34"),
    (
        AddrFamily::Inet,
        "127.0.0.1.256.1",
        16,
        "020000017f0000010000000000000000",
    ),
    (
        AddrFamily::Inet,
        "127.0.0.1.0.256",
        16,
        "020001007f0000010000000000000000",
    ),
    (
        AddrFamily::Inet,
        "127.0.0.1.-1.0",
        16,
        "0200ff007f0000010000000000000000",
    ),
    (
        AddrFamily::Inet,
        "127.0.0.1. 1.0",
        16,
        "020001007f0000010000000000000000",
    ),
    (
        AddrFamily::Inet,
        "127.0.0.1.01.0",
        16,
        "020001007f0000010000000000000000",
    ),
    (
        AddrFamily::Inet,
        "127.0.0.1.0.111 ",
        16,
        "0200006f7f0000010000000000000000",
    ),
    (
        AddrFamily::Inet,
        "127.0.0.1.0.1x",
        16,
        "020000017f0000010000000000000000",
    ),
    (
        AddrFamily::Inet,
        "127.0.0.1.0x1.0",
        16,
        "020000007f0000010000000000000000",
    ),
    (
        AddrFamily::Inet,
        "127.0.0.1.1.+1",
        16,
        "020001017f0000010000000000000000",
    ),
    (
        AddrFamily::Inet6,
        "::ffff:127.0.0.1.0.111",
        28,
        "0a00006f0000000000000000000000000000ffff7f00000100000000",
    ),
    (
        AddrFamily::Inet6,
        "::1.1.256",
        28,
        "0a000100000000000000000000000000000000000000000100000000",
    ),
];

/// Uaddrs for which the C rpcbind answered an empty netbuf.
const UADDR2TADDR_REFUSED: &[(AddrFamily, &str)] = &[
    (AddrFamily::Inet6, "fe80::1%lo.0.111"),
    (AddrFamily::Inet, "bogus"),
    (AddrFamily::Inet, "127.0.0.1.0"),
    (AddrFamily::Inet, "127.0.0.1.0.111.5"),
    (AddrFamily::Inet, "0x7f.0.0.1.0.1"),
    (AddrFamily::Inet, "127.1.0.1"),
    (AddrFamily::Inet, "/x"),
    (AddrFamily::Inet6, "::1.0"),
    (AddrFamily::Inet6, "[::1].0.111"),
    (AddrFamily::Local, ""),
    (AddrFamily::Local, "relative"),
    (AddrFamily::Local, "@abc"),
];

#[test]
fn uaddr2taddr_matches_debian_rpcbind() {
    for &(family, uaddr, maxlen, buf) in UADDR2TADDR_OBSERVED {
        let nb = uaddr2taddr(family, uaddr);
        assert_eq!(
            nb,
            Some(Netbuf {
                maxlen,
                buf: hex(buf)
            }),
            "{uaddr}"
        );
    }
    for &(family, uaddr) in UADDR2TADDR_REFUSED {
        assert_eq!(uaddr2taddr(family, uaddr), None, "{uaddr}");
    }
}

#[test]
fn long_local_path_is_truncated_to_107_bytes() {
    let path = format!("/{}", "a".repeat(107));
    let nb = uaddr2taddr(AddrFamily::Local, &path).unwrap();
    // Debian answered maxlen 110, len 109 for this 108-byte path.
    assert_eq!((nb.maxlen, nb.buf.len()), (110, 109));
}

/// (transport family, netbuf bytes, uaddr the C rpcbind returned; "" is
/// its failure answer).
const TADDR2UADDR_OBSERVED: &[(AddrFamily, &str, &str)] = &[
    (
        AddrFamily::Inet,
        "0200006f7f0000010000000000000000",
        "127.0.0.1.0.111",
    ),
    (AddrFamily::Inet, "0200006f7f000001", ""),
    (AddrFamily::Inet, "0200006f7f0000", ""),
    (
        AddrFamily::Inet,
        "0000006f7f0000010000000000000000",
        "127.0.0.1.0.111",
    ),
    (
        AddrFamily::Inet,
        "0200006f7f000001ffffffffffffffff",
        "127.0.0.1.0.111",
    ),
    (
        AddrFamily::Inet,
        "0a00006f000000000000000000000000000000000000000100000000",
        "0.0.0.0.0.111",
    ),
    (
        AddrFamily::Inet6,
        "0a00006f000000000000000000000000000000000000000100000000",
        "::1.0.111",
    ),
    (
        AddrFamily::Inet6,
        "0a00006f00000000fe80000000000000000000000000000105000000",
        "fe80::1.0.111",
    ),
    (
        AddrFamily::Inet6,
        "0a00006f000000000000000000000000000000000000000100",
        "",
    ),
    (AddrFamily::Inet6, "0200006f7f0000010000000000000000", ""),
    (AddrFamily::Inet, "", ""),
    (AddrFamily::Local, "01002f782f79", "/x/y"),
    (AddrFamily::Local, "01002f78007979", "/x"),
    (AddrFamily::Local, "00002f782f7900", "/x/y"),
    (AddrFamily::Local, "01", ""),
    (AddrFamily::Local, "0100", ""),
    (AddrFamily::Local, "0100006162", ""),
];

#[test]
fn taddr2uaddr_matches_debian_rpcbind() {
    for &(family, buf, uaddr) in TADDR2UADDR_OBSERVED {
        let got = taddr2uaddr(family, &Netbuf::new(hex(buf))).unwrap_or_default();
        assert_eq!(got, uaddr, "{buf}");
    }
}

/// Observed with Debian's rpcbind 1.2.6 over /run/rpcbind.sock: an IPv4
/// netbuf for 127.0.0.1 port 1000 comes back as the bytes `03 e8 7f` (the
/// netbuf read as `sockaddr_un`, path up to the first NUL), an IPv6 one for
/// ::1 port 1000 as `03 e8`.
#[test]
fn taddr2uaddr_bytes_on_the_local_transport_copy_c_bytes() {
    let v4 = Netbuf::new(hex("020003e87f0000010000000000000000"));
    assert_eq!(
        taddr2uaddr_bytes(AddrFamily::Local, &v4),
        [0x03, 0xe8, 0x7f]
    );
    let v6 = Netbuf::new(hex(
        "0a0003e8000000000000000000000000000000000000000100000000",
    ));
    assert_eq!(taddr2uaddr_bytes(AddrFamily::Local, &v6), [0x03, 0xe8]);
    assert_eq!(taddr2uaddr_bytes(AddrFamily::Inet, &v4), b"127.0.0.1.3.232");
    assert!(taddr2uaddr_bytes(AddrFamily::Local, &Netbuf::new(vec![1])).is_empty());
}

#[test]
fn format_and_parse_round_trip() {
    let cases = [
        ("0.0.0.0.0.111", "0.0.0.0:111"),
        ("127.0.0.1.3.255", "127.0.0.1:1023"),
        ("::.0.111", "[::]:111"),
        ("::1.0.111", "[::1]:111"),
        ("::ffff:1.2.3.4.0.111", "[::ffff:1.2.3.4]:111"),
        ("::1.2.3.4.0.111", "[::102:304]:111"),
        ("fe80::1.255.255", "[fe80::1]:65535"),
    ];
    for (uaddr, sock) in cases {
        let sock: SocketAddr = sock.parse().unwrap();
        assert_eq!(format_inet(&sock), uaddr);
        assert_eq!(parse_inet(uaddr), Some(sock), "{uaddr}");
        assert_eq!(UniversalAddr::parse(uaddr), Some(UniversalAddr::Inet(sock)));
    }
}

#[test]
fn scope_id_is_dropped_when_formatting() {
    let sock = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 111, 0, 3));
    assert_eq!(format_inet(&sock), "fe80::1.0.111");
}

#[test]
fn local_addresses() {
    let a = UniversalAddr::parse("/run/rpcbind.sock").unwrap();
    assert_eq!(a, UniversalAddr::Local("/run/rpcbind.sock".into()));
    assert_eq!(a.family(), AddrFamily::Local);
    assert_eq!(a.port(), None);
    assert_eq!(a.to_string(), "/run/rpcbind.sock");
    assert_eq!(UniversalAddr::from_sockaddr(&a.to_sockaddr()), Some(a));
    assert_eq!(UniversalAddr::parse("/a\0b"), None);
}

#[test]
fn sockaddr_round_trips_by_family_field() {
    for s in ["1.2.3.4:5", "[::1]:111", "[::ffff:10.0.0.1]:2049"] {
        let a = UniversalAddr::Inet(s.parse().unwrap());
        assert_eq!(UniversalAddr::from_sockaddr(&a.to_sockaddr()), Some(a));
    }
    assert_eq!(UniversalAddr::from_sockaddr(&[]), None);
    assert_eq!(UniversalAddr::from_sockaddr(&[7, 0, 0, 0]), None);
}

#[test]
fn atoi_follows_glibc() {
    assert_eq!(atoi("12"), 12);
    assert_eq!(atoi(" \t+7z"), 7);
    assert_eq!(atoi("-1"), u32::MAX);
    assert_eq!(atoi(""), 0);
    assert_eq!(atoi("x1"), 0);
    // strtol clamps to LONG_MAX, which atoi's cast to int turns into -1.
    assert_eq!(atoi("99999999999999999999999"), u32::MAX);
}
