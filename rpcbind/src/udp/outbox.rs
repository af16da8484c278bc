//! The replies to one batch of UDP requests, and how they leave. Replies
//! to the same peer from the same local address and of the same size (a
//! client with many calls in flight asking the same kind of question) go
//! as one UDP GSO send: the kernel builds, routes and passes the packet
//! down the stack once and cuts it into datagrams at the end, which is
//! where a busy listener spends most of its time. Any other reply goes as
//! its own datagram. The client sees ordinary datagrams either way.
//!
//! GSO needs Linux 4.18 and a device that can take it (every device can
//! in software). If a GSO send fails where a plain one then works, the
//! outbox stops trying for this socket. A capture on `lo` (tcpdump,
//! tshark) shows such a run as one large UDP packet whose payload is the
//! replies end to end, as it shows TSO segments for TCP; the receiving
//! socket gets them as separate datagrams.

use std::io::IoSlice;
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::{batch::BATCH, send, send_segments, Received};

/// The largest reply sent in a GSO run. A segment must fit the path's
/// MTU, or the send fails; 512 bytes plus headers fits the smallest
/// IPv4 path (576 bytes), and every GETPORT, GETADDR or SET reply is far
/// below it.
const MAX_SEGMENT: usize = 512;

/// The most datagrams in one GSO send: one batch (the kernel takes 64).
const MAX_SEGMENTS: usize = BATCH;

struct Pending {
    payload: Vec<u8>,
    /// The request it answers.
    to: Received,
}

impl Pending {
    fn same_route(&self, other: &Pending) -> bool {
        let (a, b) = (&self.to, &other.to);
        a.peer == b.peer && a.local == b.local && a.ifindex == b.ifindex
    }
}

/// Replies waiting to be sent, reused from batch to batch.
pub struct Outbox {
    pending: Vec<Pending>,
    gso: bool,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    pub fn new() -> Self {
        Outbox {
            pending: Vec::with_capacity(BATCH),
            gso: true,
        }
    }

    /// Queues `payload` as the answer to the request `to`.
    pub fn push(&mut self, payload: Vec<u8>, to: &Received) {
        self.pending.push(Pending { payload, to: *to });
    }

    /// Sends every queued reply; `netid` names the listener in the log.
    pub async fn flush(&mut self, socket: &UdpSocket, netid: &str) {
        let mut pending = std::mem::take(&mut self.pending);
        let mut start = 0;
        while start < pending.len() {
            let end = self.run_end(&pending, start);
            self.send_run(socket, netid, &pending[start..end]).await;
            start = end;
        }
        pending.clear();
        self.pending = pending;
    }

    /// Where the GSO run that starts at `start` ends: replies on the same
    /// route, all as long as the first but the last, which may be shorter.
    fn run_end(&self, pending: &[Pending], start: usize) -> usize {
        let first = &pending[start];
        let segment = first.payload.len();
        if !self.gso || segment == 0 || segment > MAX_SEGMENT {
            return start + 1;
        }
        let mut end = start + 1;
        while end < pending.len() && end - start < MAX_SEGMENTS {
            let next = &pending[end];
            if !next.same_route(first) || next.payload.is_empty() || next.payload.len() > segment {
                break;
            }
            end += 1;
            if next.payload.len() < segment {
                break;
            }
        }
        end
    }

    async fn send_run(&mut self, socket: &UdpSocket, netid: &str, run: &[Pending]) {
        let fd = socket.as_raw_fd();
        let first = &run[0];
        let (peer, source) = (first.to.peer, first.to.reply_source());
        let mut gso_error = None;
        if run.len() > 1 {
            let mut iov = [IoSlice::new(&[]); MAX_SEGMENTS];
            for (slot, p) in iov.iter_mut().zip(run) {
                *slot = IoSlice::new(&p.payload);
            }
            // run_end keeps segments at or below MAX_SEGMENT.
            let segment = u16::try_from(first.payload.len()).unwrap_or(u16::MAX);
            let sent = socket
                .async_io(Interest::WRITABLE, || {
                    send_segments(fd, &iov[..run.len()], segment, peer, source.as_ref())
                })
                .await;
            match sent {
                Ok(_) => return,
                Err(e) => gso_error = Some(e),
            }
        }
        for (i, p) in run.iter().enumerate() {
            let sent = socket
                .async_io(Interest::WRITABLE, || {
                    send(fd, &p.payload, peer, source.as_ref())
                })
                .await;
            match (sent, i, &gso_error) {
                (Ok(_), 0, Some(e)) => {
                    tracing::info!(
                        "{netid}: a GSO send failed ({e}) where a plain one works; \
                         sending each reply on its own from now on"
                    );
                    self.gso = false;
                }
                (Ok(_), ..) => {}
                (Err(e), ..) => tracing::debug!("{netid} sendmsg to {peer}: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    fn to(peer: SocketAddr, local: IpAddr) -> Received {
        Received {
            len: 0,
            peer,
            local: Some(local),
            ifindex: 0,
        }
    }

    fn runs(outbox: &Outbox) -> Vec<usize> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < outbox.pending.len() {
            let end = outbox.run_end(&outbox.pending, start);
            out.push(end - start);
            start = end;
        }
        out
    }

    #[test]
    fn runs_group_equal_replies_on_one_route_and_end_at_a_shorter_one() {
        let a: SocketAddr = "127.0.0.1:700".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:701".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let mut o = Outbox::new();
        for (len, peer, local) in [
            (28, a, lo),
            (28, a, lo),
            (20, a, lo), // shorter: ends the run, inside it
            (28, a, lo),
            (28, b, lo), // another peer
            (28, b, other),
            (40, b, other), // longer than the run's segment
            (600, b, other),
            (600, b, other), // too large for GSO
        ] {
            o.push(vec![0; len], &to(peer, local));
        }
        assert_eq!(runs(&o), [3, 1, 1, 1, 1, 1, 1]);
        o.gso = false;
        assert_eq!(runs(&o), [1; 9]);
    }

    #[test]
    fn a_run_is_at_most_one_batch_long() {
        let a: SocketAddr = "127.0.0.1:700".parse().unwrap();
        let mut o = Outbox::new();
        for _ in 0..(MAX_SEGMENTS + 3) {
            o.push(vec![1; 28], &to(a, "127.0.0.1".parse().unwrap()));
        }
        assert_eq!(runs(&o), [MAX_SEGMENTS, 3]);
    }

    /// What a client sees: each reply as its own datagram, whole and in
    /// order, whether it left in a GSO run or alone.
    #[tokio::test]
    async fn a_client_receives_every_reply_as_its_own_datagram() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let o = send_and_check(&server, "127.0.0.1:0").await;
        assert!(o.gso, "GSO sends failed on loopback");
    }

    #[tokio::test]
    async fn ipv6_replies_arrive_whole_too() {
        let Ok(server) = UdpSocket::bind("[::1]:0").await else {
            eprintln!("skipped: no IPv6 loopback");
            return;
        };
        let o = send_and_check(&server, "[::1]:0").await;
        assert!(o.gso, "GSO sends failed on IPv6 loopback");
    }

    /// A socket without UDP checksums (SO_NO_CHECK) cannot do GSO: the
    /// kernel refuses the send with EINVAL. The replies must still all
    /// arrive, and the outbox must stop trying GSO.
    #[tokio::test]
    async fn when_gso_fails_the_replies_go_one_by_one_and_gso_is_dropped() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        crate::sys::disable_udp_checksums(server.as_raw_fd()).unwrap();
        let o = send_and_check(&server, "127.0.0.1:0").await;
        assert!(!o.gso, "GSO still on after a failed GSO send");
    }

    /// Sends 40 short replies (one shorter inside a run) and a long one to
    /// a client bound at `client_addr`, checks that each arrives whole and
    /// in order from the server's address, and returns the outbox.
    async fn send_and_check(server: &UdpSocket, client_addr: &str) -> Outbox {
        let client = std::net::UdpSocket::bind(client_addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let peer = client.local_addr().unwrap();
        let local = server.local_addr().unwrap().ip();
        let mut sent = Vec::new();
        for i in 0..40u8 {
            let len = if i == 37 { 9 } else { 28 };
            sent.push(vec![i; len]);
        }
        sent.push(vec![0xee; 3000]);
        let mut o = Outbox::new();
        for p in &sent {
            o.push(p.clone(), &to(peer, local));
        }
        o.flush(server, "udp").await;
        let mut buf = [0u8; 4096];
        for want in &sent {
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &want[..]);
            assert_eq!(from, server.local_addr().unwrap());
        }
        o
    }
}
