//! Datagram I/O with packet information: `recvmsg` that reports which
//! local address a request reached (IP_PKTINFO / IPV6_PKTINFO) and
//! `sendmsg` that answers from that address, so a multi-homed host replies
//! from the address the client asked (libtirpc `svc_dg_recv` /
//! `svc_dg_reply` keep the received pktinfo for the reply). Does I/O on a
//! raw socket descriptor, through nix; no unsafe code. Requests are taken
//! in batches ([`batch`]) and replies leave through an [`outbox`], which
//! sends equal-sized replies to one peer as one UDP GSO send.

mod batch;
mod outbox;

pub use batch::Batch;
pub use outbox::Outbox;

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use nix::sys::socket::{
    sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, RecvMsg, SockaddrStorage,
};

/// The largest datagram kept: any UDP payload fits (RFC 768 limits it to
/// 65,507 bytes over IPv4).
pub const MAX_DATAGRAM: usize = 65_536;

/// One received datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub peer: SocketAddr,
    /// The local address the datagram reached, usable as a reply source
    /// (`ipi_spec_dst` for IPv4; the destination for IPv6 unless it was a
    /// multicast address). `None` if the kernel did not say.
    pub local: Option<IpAddr>,
    /// The interface it arrived on (IPv6 only; 0 if unknown).
    pub ifindex: u32,
}

impl Received {
    /// The packet information that makes the reply leave from the address
    /// the request reached (none if the kernel did not say).
    pub fn reply_source(&self) -> Option<ReplySource> {
        self.local.map(|ip| ReplySource::new(ip, self.ifindex))
    }
}

/// A buffer large enough for either pktinfo control message.
fn cmsg_buffer() -> Vec<u8> {
    nix::cmsg_space!(libc::in6_pktinfo)
}

/// What one received message says: its length, its peer and the local
/// address it reached. A datagram truncated by the buffer is reported as
/// `InvalidData` so that the caller drops it.
fn received(msg: &RecvMsg<'_, '_, SockaddrStorage>) -> io::Result<Received> {
    if msg.flags.contains(MsgFlags::MSG_TRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram truncated",
        ));
    }
    let peer = msg
        .address
        .as_ref()
        .and_then(to_socket_addr)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no peer address"))?;
    let mut received = Received {
        len: msg.bytes,
        peer,
        local: None,
        ifindex: 0,
    };
    // A truncated control buffer only loses the reply source; the request
    // is still answered, from whatever address the kernel picks.
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    received.local = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        info.ipi_spec_dst.s_addr,
                    ))));
                }
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    let ip = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                    received.ifindex = info.ipi6_ifindex;
                    received.local = (!ip.is_multicast()).then_some(IpAddr::V6(ip));
                }
                _ => {}
            }
        }
    }
    Ok(received)
}

fn to_socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(a) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*a)));
    }
    s.as_sockaddr_in6()
        .map(|a| SocketAddr::V6(SocketAddrV6::from(*a)))
}

/// The packet information that makes a reply leave from `local`.
#[derive(Clone, Copy)]
pub enum ReplySource {
    V4(libc::in_pktinfo),
    V6(libc::in6_pktinfo),
}

impl std::fmt::Debug for ReplySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplySource::V4(p) => write!(
                f,
                "in_pktinfo(ifindex {}, spec_dst {})",
                p.ipi_ifindex,
                Ipv4Addr::from(u32::from_be(p.ipi_spec_dst.s_addr))
            ),
            ReplySource::V6(p) => write!(
                f,
                "in6_pktinfo(ifindex {}, addr {})",
                p.ipi6_ifindex,
                Ipv6Addr::from(p.ipi6_addr.s6_addr)
            ),
        }
    }
}

impl ReplySource {
    /// As libtirpc does for IPv4: the received pktinfo with the interface
    /// index cleared, so that routing picks the interface and `spec_dst`
    /// the source. For IPv6 the interface is kept (a link-local source
    /// needs it).
    pub fn new(local: IpAddr, ifindex: u32) -> Self {
        match local {
            IpAddr::V4(ip) => ReplySource::V4(libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(ip).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            }),
            IpAddr::V6(ip) => ReplySource::V6(libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: ip.octets(),
                },
                ipi6_ifindex: ifindex,
            }),
        }
    }
}

/// Sends `payload` to `peer`, from `source` when given (non-blocking).
pub fn send(
    fd: RawFd,
    payload: &[u8],
    peer: SocketAddr,
    source: Option<&ReplySource>,
) -> io::Result<usize> {
    send_with(fd, &[IoSlice::new(payload)], peer, source, None)
}

/// Sends `parts` as datagrams of `segment` bytes each (the last may be
/// shorter) with one UDP GSO send: the kernel routes and builds the IP
/// packet once and cuts it into datagrams as late as it can. Every part
/// but the last must be exactly `segment` bytes long.
pub fn send_segments(
    fd: RawFd,
    parts: &[IoSlice<'_>],
    segment: u16,
    peer: SocketAddr,
    source: Option<&ReplySource>,
) -> io::Result<usize> {
    send_with(fd, parts, peer, source, Some(&segment))
}

fn send_with(
    fd: RawFd,
    iov: &[IoSlice<'_>],
    peer: SocketAddr,
    source: Option<&ReplySource>,
    segment: Option<&u16>,
) -> io::Result<usize> {
    let to = SockaddrStorage::from(peer);
    let pktinfo = match source {
        Some(ReplySource::V4(p)) => Some(ControlMessage::Ipv4PacketInfo(p)),
        Some(ReplySource::V6(p)) => Some(ControlMessage::Ipv6PacketInfo(p)),
        None => None,
    };
    let gso = segment.map(ControlMessage::UdpGsoSegments);
    let send =
        |cmsgs: &[ControlMessage<'_>]| sendmsg(fd, iov, cmsgs, MsgFlags::MSG_DONTWAIT, Some(&to));
    Ok(match (pktinfo, gso) {
        (Some(p), Some(g)) => send(&[p, g]),
        (Some(c), None) | (None, Some(c)) => send(&[c]),
        (None, None) => send(&[]),
    }?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listeners::bind_udp;
    use std::os::fd::AsRawFd;

    #[test]
    fn v4_source_carries_spec_dst_in_network_order_and_no_ifindex() {
        let ReplySource::V4(p) = ReplySource::new("192.0.2.7".parse().unwrap(), 3) else {
            panic!("not v4");
        };
        assert_eq!(p.ipi_ifindex, 0);
        assert_eq!(p.ipi_spec_dst.s_addr.to_ne_bytes(), [192, 0, 2, 7]);
        assert_eq!(p.ipi_addr.s_addr, 0);
    }

    #[test]
    fn v6_source_keeps_address_and_interface() {
        let ReplySource::V6(p) = ReplySource::new("fe80::1".parse().unwrap(), 5) else {
            panic!("not v6");
        };
        assert_eq!(p.ipi6_ifindex, 5);
        assert_eq!(
            Ipv6Addr::from(p.ipi6_addr.s6_addr),
            "fe80::1".parse::<Ipv6Addr>().unwrap()
        );
    }

    fn roundtrip(server_addr: &str, client_addr: &str) {
        let server = bind_udp(server_addr.parse().unwrap()).unwrap();
        let client = std::net::UdpSocket::bind(client_addr).unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let to = server.local_addr().unwrap();
        client.send_to(b"ping", to).unwrap();
        let mut batch = Batch::new();
        let mut got = None;
        for _ in 0..200 {
            match batch.recv(server.as_raw_fd()) {
                Ok(_) => {
                    let (r, bytes) = batch.get(0).unwrap();
                    got = Some((r, bytes.to_vec()));
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
        let (r, bytes) = got.expect("no datagram");
        assert_eq!(bytes, b"ping");
        assert_eq!(r.peer, client.local_addr().unwrap());
        assert_eq!(r.local, Some(to.ip()));
        let src = ReplySource::new(to.ip(), r.ifindex);
        send(server.as_raw_fd(), b"pong", r.peer, Some(&src)).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"pong");
        assert_eq!(from, to);
    }

    #[test]
    fn pktinfo_roundtrip_v4() {
        roundtrip("127.0.0.1:0", "127.0.0.1:0");
    }

    #[test]
    fn pktinfo_roundtrip_v6() {
        if std::net::UdpSocket::bind("[::1]:0").is_err() {
            eprintln!("skipped: no IPv6 loopback");
            return;
        }
        roundtrip("[::1]:0", "[::1]:0");
    }
}
