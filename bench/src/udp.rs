//! The UDP load client: keeps `window` calls in flight on one connected
//! socket, matches replies to slots by xid, validates each, resends on
//! reply or timeout. Does socket I/O (blocking, one thread: on two CPUs a
//! single thread costs the load side least).

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::sample::Tally;
use crate::wire::{check, reply_xid, Call};

/// How long a blocking receive waits before timeouts are looked at.
const POLL: Duration = Duration::from_millis(5);

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
    };
    let mut slots: Vec<Slot> = Vec::with_capacity(window);
    for s in 0..window {
        slots.push(c.send(s, &mut pool));
    }
    let started = Instant::now();
    let deadline = started + dur;
    let mut buf = vec![0u8; 65_536];
    let mut last_scan = Instant::now();
    while Instant::now() < deadline {
        match c.sock.recv(&mut buf) {
            Ok(n) => c.on_reply(&buf[..n], &mut slots, &mut pool),
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
        }
    }
    c.tally.secs = started.elapsed().as_secs_f64();
    if c.late > 0 {
        c.tally.note = format!("{} late replies", c.late);
    }
    Ok(c.tally)
}

struct Client {
    sock: UdpSocket,
    window: u32,
    seq: u32,
    next_call: usize,
    tally: Tally,
    late: u64,
}

impl Client {
    /// Sends the next call of the pool in `slot`; its xid is `slot`
    /// modulo the window, so a reply finds its slot without a map.
    fn send(&mut self, slot: usize, pool: &mut [Call]) -> Slot {
        let xid = self.seq.wrapping_mul(self.window).wrapping_add(slot as u32);
        self.seq = self.seq.wrapping_add(1);
        let call = self.next_call;
        self.next_call = (self.next_call + 1) % pool.len();
        pool[call].set_xid(xid);
        if self.sock.send(&pool[call].bytes).is_err() {
            self.tally.errors += 1;
        }
        Slot {
            xid,
            sent: Instant::now(),
            call,
        }
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
