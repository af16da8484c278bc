//! Remote-call forwarding (`-r`): the I/O around the engine's
//! [`Forward`] decisions. One UDP socket per family sends the calls to the
//! services; a table of calls in flight (bounded, oldest dropped first,
//! entries forgotten after C's `MAXTIME_OFF`) maps each forwarded xid back
//! to the caller, the listener it called and the address it reached, so
//! that the reply leaves the way a direct reply would.
//!
//! As C's `forward_register` / `handle_reply` (rpcb_svc_com.c): every
//! forwarded call gets a fresh xid; a retransmission (same caller, xid and
//! kind) while the first is in flight is not forwarded again; a service
//! that never answers means the caller never hears (C has no timeout
//! reply either). Unlike C, a reply is only accepted from the address the
//! call was sent to. Replies to remote callers obey the reflection cap.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use proto::engine::{cap_udp_reply, Forward};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::udp::{self, ReplySource};

/// C's `NFORWARD`: calls in flight at once.
pub const NFORWARD: usize = 128;
/// C's `MAXTIME_OFF`: a call unanswered this long is forgotten.
pub const MAXTIME_OFF: Duration = Duration::from_secs(300);

/// Where the caller's reply goes.
#[derive(Debug)]
pub struct Caller {
    pub peer: SocketAddr,
    /// The listener the call arrived on (the reply leaves from it).
    pub listener: Arc<UdpSocket>,
    pub source: Option<ReplySource>,
    /// Size of the caller's request, for the reflection cap.
    pub request_len: usize,
}

#[derive(Debug)]
struct Pending {
    forward: Box<Forward>,
    caller: Caller,
    born: Instant,
}

#[derive(Debug, Default)]
struct Table {
    by_xid: HashMap<u32, Pending>,
    /// Forwarded xids, oldest first (entries already gone are skipped).
    order: VecDeque<u32>,
    next_xid: u32,
}

impl Table {
    fn is_duplicate(&mut self, f: &Forward, peer: SocketAddr, now: Instant) -> bool {
        let dup = self.by_xid.values_mut().find(|p| {
            p.caller.peer == peer
                && p.forward.caller_xid == f.caller_xid
                && p.forward.kind == f.kind
        });
        dup.map(|p| p.born = now).is_some()
    }

    /// Makes room: forgets expired calls, then the oldest if still full.
    fn make_room(&mut self, now: Instant) {
        while let Some(&xid) = self.order.front() {
            let expired = self
                .by_xid
                .get(&xid)
                .is_none_or(|p| now.duration_since(p.born) > MAXTIME_OFF);
            if !expired && self.by_xid.len() < NFORWARD {
                break;
            }
            self.order.pop_front();
            self.by_xid.remove(&xid);
        }
    }

    fn fresh_xid(&mut self) -> u32 {
        loop {
            self.next_xid = self.next_xid.wrapping_add(1);
            if self.next_xid != 0 && !self.by_xid.contains_key(&self.next_xid) {
                return self.next_xid;
            }
        }
    }
}

/// The forwarding sockets and the table of calls in flight.
#[derive(Debug)]
pub struct Forwarder {
    v4: Option<Arc<UdpSocket>>,
    v6: Option<Arc<UdpSocket>>,
    table: Mutex<Table>,
    reply_factor: u32,
}

impl Forwarder {
    /// Binds one socket per family on an ephemeral port and starts
    /// reading replies. Must run inside the tokio runtime.
    pub fn start(reply_factor: u32) -> std::io::Result<Arc<Forwarder>> {
        let v4 = std::net::UdpSocket::bind("0.0.0.0:0").and_then(nonblocking);
        let v6 = std::net::UdpSocket::bind("[::]:0").and_then(nonblocking);
        if let Err(e) = &v6 {
            tracing::debug!("remote calls: no IPv6 forwarding socket: {e}");
        }
        let fwd = Arc::new(Forwarder {
            v4: Some(Arc::new(v4?)),
            v6: v6.ok().map(Arc::new),
            table: Mutex::new(Table {
                next_xid: seed_xid(),
                ..Table::default()
            }),
            reply_factor,
        });
        for s in [&fwd.v4, &fwd.v6].into_iter().flatten() {
            tokio::spawn(receive(fwd.clone(), s.clone()));
        }
        Ok(fwd)
    }

    /// Sends the call to the service and remembers the caller.
    pub async fn forward(&self, mut f: Box<Forward>, caller: Caller) {
        let Some(socket) = (if f.to.is_ipv4() { &self.v4 } else { &self.v6 }).clone() else {
            return;
        };
        let to = f.to;
        let call = {
            let now = Instant::now();
            let mut t = self.table.lock().unwrap_or_else(PoisonError::into_inner);
            if t.is_duplicate(&f, caller.peer, now) {
                return;
            }
            t.make_room(now);
            let xid = t.fresh_xid();
            f.call[..4].copy_from_slice(&xid.to_be_bytes());
            let call = f.call.clone();
            t.order.push_back(xid);
            let forward = f;
            t.by_xid.insert(
                xid,
                Pending {
                    forward,
                    caller,
                    born: now,
                },
            );
            call
        };
        if let Err(e) = socket.send_to(&call, to).await {
            tracing::debug!("remote call to {to}: {e}");
        }
    }

    fn take(&self, xid: u32, from: SocketAddr) -> Option<Pending> {
        let mut t = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if t.by_xid.get(&xid)?.forward.to != from {
            return None;
        }
        t.by_xid.remove(&xid)
    }
}

fn nonblocking(s: std::net::UdpSocket) -> std::io::Result<UdpSocket> {
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// Forwarded xids start somewhere unpredictable, as C's start from the
/// time of day.
fn seed_xid() -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.subsec_nanos() ^ (now.as_secs() as u32).rotate_left(16)
}

async fn receive(fwd: Arc<Forwarder>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; udp::MAX_DATAGRAM];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("remote call reply: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(xid) = buf[..n].first_chunk::<4>().map(|x| u32::from_be_bytes(*x)) else {
            continue;
        };
        let Some(p) = fwd.take(xid, from) else {
            continue;
        };
        let Some(reply) = p.forward.complete(&buf[..n]) else {
            continue;
        };
        let c = &p.caller;
        let reply = cap_udp_reply(reply, c.request_len, c.peer, fwd.reply_factor);
        let fd = c.listener.as_raw_fd();
        let sent = c
            .listener
            .async_io(Interest::WRITABLE, || {
                udp::send(fd, &reply, c.peer, c.source.as_ref())
            })
            .await;
        if let Err(e) = sent {
            tracing::debug!("remote call reply to {}: {e}", c.peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::engine::ForwardKind;

    fn pending(t: &mut Table, peer: &str, caller_xid: u32, born: Instant) -> u32 {
        let forward = Box::new(Forward {
            to: "127.0.0.1:2000".parse().unwrap(),
            call: vec![0; 4],
            caller_xid,
            kind: ForwardKind::Callit,
            uaddr: "127.0.0.1.7.208".into(),
        });
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let listener = Arc::new(rt.block_on(async { UdpSocket::from_std(sock).unwrap() }));
        let caller = Caller {
            peer: peer.parse().unwrap(),
            listener,
            source: None,
            request_len: 100,
        };
        t.make_room(born);
        let xid = t.fresh_xid();
        t.order.push_back(xid);
        t.by_xid.insert(
            xid,
            Pending {
                forward,
                caller,
                born,
            },
        );
        xid
    }

    #[test]
    fn retransmissions_are_duplicates_and_the_table_is_bounded() {
        let mut t = Table::default();
        let now = Instant::now();
        let first = pending(&mut t, "192.0.2.1:700", 5, now);
        let probe = Forward {
            to: "127.0.0.1:2000".parse().unwrap(),
            call: Vec::new(),
            caller_xid: 5,
            kind: ForwardKind::Callit,
            uaddr: String::new(),
        };
        assert!(t.is_duplicate(&probe, "192.0.2.1:700".parse().unwrap(), now));
        assert!(!t.is_duplicate(&probe, "192.0.2.2:700".parse().unwrap(), now));
        for i in 0..NFORWARD as u32 + 10 {
            pending(&mut t, "192.0.2.3:700", 100 + i, now);
        }
        assert_eq!(t.by_xid.len(), NFORWARD);
        assert!(!t.by_xid.contains_key(&first), "the oldest went first");
        let later = now + MAXTIME_OFF + Duration::from_secs(1);
        t.make_room(later);
        assert!(t.by_xid.is_empty(), "forgotten after MAXTIME_OFF");
    }
}
