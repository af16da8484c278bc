//! The UDP load client: keeps `window` calls in flight on one connected
//! socket, matches replies to slots by xid, validates each, resends on
//! reply or timeout. Does socket I/O (blocking, one thread: on two CPUs a
//! single thread costs the load side least).
//!
//! After each blocking receive it takes every reply already waiting and
//! sends the calls that replace them with one `sendmmsg`, so that the
//! load side spends one system call per burst rather than one per call
//! and a fast server is not limited by its client. A server sees ordinary
//! datagrams either way.

use std::io::{ErrorKind, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

use crate::sample::Tally;
use crate::wire::{check, reply_xid, Call};

/// How long a blocking receive waits before timeouts are looked at.
const POLL: Duration = Duration::from_millis(5);

/// The most replies taken, and calls sent, in one burst.
const BURST: usize = 64;

struct Slot {
    xid: u32,
    sent: Instant,
    call: usize,
}

/// Drives `addr` for `dur` with `window` calls in flight, taken round
/// robin from `pool`.
pub fn run(
    addr: SocketAddr,
    window: usize,
    dur: Duration,
    timeout: Duration,
    pool: &[Call],
) -> anyhow::Result<Tally> {
    anyhow::ensure!(!pool.is_empty() && window > 0, "empty call pool or window");
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.connect(addr)?;
    sock.set_read_timeout(Some(POLL))?;
    let mut pool: Vec<Call> = pool.to_vec();
    let mut c = Client {
        sock,
        window: window as u32,
        seq: 1,
        next_call: 0,
        tally: Tally::default(),
        late: 0,
        out: Outgoing::new(),
    };
    let mut slots: Vec<Slot> = Vec::with_capacity(window);
    for s in 0..window {
        slots.push(c.send(s, &mut pool));
    }
    c.flush();
    let started = Instant::now();
    let deadline = started + dur;
    let mut buf = vec![0u8; 65_536];
    let mut waiting = Waiting::new();
    let mut last_scan = Instant::now();
    while Instant::now() < deadline {
        match c.sock.recv(&mut buf) {
            Ok(n) => {
                c.on_reply(&buf[..n], &mut slots, &mut pool);
                // With one call in flight nothing else can be waiting.
                if window > 1 {
                    for reply in waiting.take(c.sock.as_raw_fd()) {
                        c.on_reply(reply, &mut slots, &mut pool);
                    }
                }
                c.flush();
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                // ICMP port unreachable and the like: the call is lost.
                c.tally.errors += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if last_scan.elapsed() >= POLL {
            last_scan = Instant::now();
            c.expire(&mut slots, &mut pool, timeout);
            c.flush();
        }
    }
    c.tally.secs = started.elapsed().as_secs_f64();
    if c.late > 0 {
        c.tally.note = format!("{} late replies", c.late);
    }
    Ok(c.tally)
}

/// Buffers for taking the replies already waiting with one `recvmmsg`.
struct Waiting {
    bufs: Vec<u8>,
    lens: Vec<usize>,
    headers: MultiHeaders<SockaddrStorage>,
}

/// A reply slot: replies to the UDP rows are far smaller; a longer one
/// arrives truncated and fails its check, counted as an error.
const REPLY_SLOT: usize = 4096;

impl Waiting {
    fn new() -> Self {
        Waiting {
            bufs: vec![0; BURST * REPLY_SLOT],
            lens: Vec::with_capacity(BURST),
            headers: MultiHeaders::preallocate(BURST, None),
        }
    }

    /// The replies waiting now (none if the receive fails).
    fn take(&mut self, fd: std::os::fd::RawFd) -> impl Iterator<Item = &[u8]> {
        self.lens.clear();
        let mut chunks = self.bufs.chunks_exact_mut(REPLY_SLOT);
        let mut iovs: [[IoSliceMut<'_>; 1]; BURST] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
        if let Ok(got) = recvmmsg(
            fd,
            &mut self.headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            self.lens.extend(got.map(|m| m.bytes));
        }
        self.bufs
            .chunks_exact(REPLY_SLOT)
            .zip(&self.lens)
            .map(|(b, &n)| &b[..n.min(REPLY_SLOT)])
    }
}

struct Client {
    sock: UdpSocket,
    window: u32,
    seq: u32,
    next_call: usize,
    tally: Tally,
    late: u64,
    out: Outgoing,
}

/// Calls waiting to be sent, copied (a pool entry may be sent twice in
/// one burst, with two xids), and the headers `sendmmsg` fills.
struct Outgoing {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    headers: MultiHeaders<SockaddrStorage>,
}

/// A connected socket's destinations: none given.
static NO_ADDRESSES: [Option<SockaddrStorage>; BURST] = [None; BURST];

impl Outgoing {
    fn new() -> Self {
        Outgoing {
            bytes: Vec::new(),
            ends: Vec::new(),
            headers: MultiHeaders::preallocate(BURST, None),
        }
    }

    /// Sends the queued calls, up to [`BURST`] per `sendmmsg`, and empties
    /// the queue; returns how many calls were refused.
    fn send_all(&mut self, fd: std::os::fd::RawFd) -> u64 {
        let mut refused = 0;
        let (mut done, mut from) = (0, 0);
        while done < self.ends.len() {
            let ends = &self.ends[done..self.ends.len().min(done + BURST)];
            let mut iov = [[IoSlice::new(&[])]; BURST];
            let mut start = from;
            for (slot, &end) in iov.iter_mut().zip(ends) {
                *slot = [IoSlice::new(&self.bytes[start..end])];
                start = end;
            }
            let n = ends.len();
            let sent = match sendmmsg(
                fd,
                &mut self.headers,
                &iov[..n],
                &NO_ADDRESSES[..n],
                [],
                MsgFlags::empty(),
            ) {
                Ok(sent) => sent.count().clamp(1, n),
                Err(_) => {
                    // The first call of the chunk failed.
                    refused += 1;
                    1
                }
            };
            done += sent;
            from = self.ends[done - 1];
        }
        self.bytes.clear();
        self.ends.clear();
        refused
    }
}

impl Client {
    /// Queues the next call of the pool in `slot` (sent by the next
    /// [`Client::flush`]); its xid is `slot` modulo the window, so a reply
    /// finds its slot without a map.
    fn send(&mut self, slot: usize, pool: &mut [Call]) -> Slot {
        let xid = self.seq.wrapping_mul(self.window).wrapping_add(slot as u32);
        self.seq = self.seq.wrapping_add(1);
        let call = self.next_call;
        self.next_call = (self.next_call + 1) % pool.len();
        pool[call].set_xid(xid);
        self.out.bytes.extend_from_slice(&pool[call].bytes);
        self.out.ends.push(self.out.bytes.len());
        Slot {
            xid,
            sent: Instant::now(),
            call,
        }
    }

    /// Sends the queued calls; a call the kernel refuses counts as an
    /// error (it then times out).
    fn flush(&mut self) {
        let fd = self.sock.as_raw_fd();
        self.tally.errors += self.out.send_all(fd);
    }

    fn on_reply(&mut self, reply: &[u8], slots: &mut [Slot], pool: &mut [Call]) {
        let Some(xid) = reply_xid(reply) else {
            self.tally.errors += 1;
            return;
        };
        let slot = (xid % self.window) as usize;
        if slots[slot].xid != xid {
            // The answer to a call already given up on.
            self.late += 1;
            return;
        }
        match check(reply, xid, pool[slots[slot].call].expect) {
            Ok(_) => self.tally.ok += 1,
            Err(_) => self.tally.errors += 1,
        }
        self.tally.latency(slots[slot].sent);
        slots[slot] = self.send(slot, pool);
    }

    fn expire(&mut self, slots: &mut [Slot], pool: &mut [Call], timeout: Duration) {
        for (s, slot) in slots.iter_mut().enumerate() {
            if slot.sent.elapsed() >= timeout {
                self.tally.timeouts += 1;
                self.tally.latency(slot.sent);
                *slot = self.send(s, pool);
            }
        }
    }
}
