//! One stream connection (TCP or the local socket): reassembles records
//! (RFC 5531 section 11, record marking), answers each call through the
//! engine, and writes the replies back, in its own task so that a slow or
//! silent client delays nobody else. Does I/O on the connection.
//!
//! Bounds, so that no client can grow memory without limit:
//! - a record over [`StreamLimits::max_record`] closes the connection
//!   (refused from its fragment header, before its body is read);
//! - no new request is read while [`StreamLimits::max_queued`] reply
//!   bytes wait to be written (one reply, however large, is always
//!   queued whole, so a DUMP of any size still goes out);
//! - a connection whose queued replies make no progress for
//!   [`StreamLimits::write_stall`] (a client that never reads) is closed,
//!   as is one idle for [`StreamLimits::idle`];
//! - the connection table may evict it (see [`crate::conns`]).
//!
//! On end of input the replies already due are still written, then the
//! connection closes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proto::engine::{Outcome, RequestContext};
use proto::record::{encode_record, record_mark, RecordAssembler, MAX_FRAGMENT_LEN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep_until, Instant};

use crate::alloc::{FdMarks, ReplyWrite};
use crate::conns::ConnGuard;
use crate::server::Shared;

/// Per-connection limits.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    /// Largest request record accepted.
    pub max_record: usize,
    /// Reply bytes queued beyond which no further request is read.
    pub max_queued: usize,
    /// Reply bytes queued by all connections together beyond which a
    /// connection holding more than `max_queued` is closed at once
    /// (instead of after `write_stall`), so that many clients asking for
    /// large replies and never reading cannot make the daemon hold them
    /// all.
    pub max_queued_total: usize,
    /// How long queued replies may wait without any progress.
    pub write_stall: Duration,
    /// How long a connection may stay without any traffic.
    pub idle: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            // libtirpc's RPC_MAXDATASIZE, which the C daemon sets as its
            // connection record limit: a larger record closes the
            // connection there too.
            max_record: proto::rpcb::RPC_MAXDATASIZE as usize,
            max_queued: 64 * 1024,
            max_queued_total: 128 * 1024 * 1024,
            write_stall: Duration::from_secs(30),
            idle: Duration::from_secs(120),
        }
    }
}

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// Why a connection ended (logged at debug level).
#[derive(Debug)]
enum End {
    Eof,
    Io(std::io::Error),
    RecordTooLong,
    NotACall,
    Idle,
    WriteStall,
    Evicted,
    OverBudget,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Eof => f.write_str("end of input"),
            End::Io(e) => write!(f, "{e}"),
            End::RecordTooLong => f.write_str("record over the size limit"),
            End::NotACall => f.write_str("not an RPC call"),
            End::Idle => f.write_str("idle timeout"),
            End::WriteStall => f.write_str("replies not read in time"),
            End::Evicted => f.write_str("connection table full"),
            End::OverBudget => f.write_str("too many reply bytes queued daemon-wide"),
        }
    }
}

/// Reply bytes waiting to be written, counted in a daemon-wide total.
#[derive(Debug)]
struct OutQueue<'a> {
    buf: Vec<u8>,
    pos: usize,
    total: &'a AtomicUsize,
    /// Sockets granted by the allocation service, sent with their replies.
    fds: FdMarks,
}

impl Drop for OutQueue<'_> {
    fn drop(&mut self) {
        self.total.fetch_sub(self.len(), Ordering::Relaxed);
    }
}

impl<'a> OutQueue<'a> {
    fn new(total: &'a AtomicUsize) -> Self {
        OutQueue {
            buf: Vec::new(),
            pos: 0,
            total,
            fds: FdMarks::default(),
        }
    }

    /// The bytes queued by every connection.
    fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn push(&mut self, reply: &[u8]) {
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let before = self.buf.len();
        match u32::try_from(reply.len()) {
            // One fragment, written straight into the queue.
            Ok(len) if len <= MAX_FRAGMENT_LEN => {
                self.buf.extend_from_slice(&record_mark(len, true));
                self.buf.extend_from_slice(reply);
            }
            _ => self.buf.extend_from_slice(&encode_record(reply)),
        }
        self.total
            .fetch_add(self.buf.len() - before, Ordering::Relaxed);
        self.fds.queued(self.buf.len() - before);
    }

    /// Queues a reply with a descriptor to send beside its first byte.
    fn push_with_fd(&mut self, reply: &[u8], fd: Option<std::os::fd::OwnedFd>) {
        if let Some(fd) = fd {
            self.fds.attach(fd);
        }
        self.push(reply);
    }

    /// The bytes the next write sends, and the descriptor to send with them.
    fn next_write(&self) -> (&[u8], Option<std::os::fd::BorrowedFd<'_>>) {
        let (len, fd) = self.fds.window(self.len());
        (&self.pending()[..len], fd)
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn advance(&mut self, n: usize) {
        let n = n.min(self.len());
        self.total.fetch_sub(n, Ordering::Relaxed);
        self.fds.written(n);
        self.pos += n;
        if self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            // Do not keep a large reply's buffer for the connection's life.
            self.buf.shrink_to(READ_CHUNK);
        }
    }
}

/// The two halves of a connection (`into_split` of a TCP or Unix stream,
/// which need no lock between them), and on the local socket the
/// allocation service as this peer sees it.
#[derive(Debug)]
pub struct Halves<R, W> {
    pub read: R,
    pub write: W,
    pub alloc: Option<crate::alloc::Conn>,
}

/// Serves one connection until it ends; `ctx` describes the transport and
/// peer, `guard` keeps its place in the connection table.
pub async fn serve<R, W>(
    halves: Halves<R, W>,
    ctx: RequestContext,
    shared: Arc<Shared>,
    guard: ConnGuard,
    limits: StreamLimits,
) where
    R: AsyncRead + Unpin,
    W: ReplyWrite,
{
    let end = run(halves, &ctx, &shared, &guard, limits).await;
    tracing::debug!(
        "{} connection from {} closed: {end}",
        ctx.transport.netid(),
        ctx.peer
            .map_or_else(|| "local".to_owned(), |p| p.to_string())
    );
}

async fn run<R, W>(
    halves: Halves<R, W>,
    ctx: &RequestContext,
    shared: &Shared,
    guard: &ConnGuard,
    limits: StreamLimits,
) -> End
where
    R: AsyncRead + Unpin,
    W: ReplyWrite,
{
    let Halves {
        read: mut rd,
        write: mut stream,
        alloc,
    } = halves;
    let mut records = RecordAssembler::new(limits.max_record);
    let mut out = OutQueue::new(shared.queued_replies());
    let mut rbuf = vec![0u8; READ_CHUNK];
    let mut eof = false;
    let mut last_progress = Instant::now();
    // One timer and one eviction wait for the connection's life, instead
    // of a timer armed and cancelled (and a waiter queued) for every turn
    // of the loop, which was measurable per call on a busy stream. The
    // timer is a check-up: it fires at the latest every `checkup` and
    // compares the real deadline then (see the `timer` branch).
    let checkup = limits.write_stall.min(limits.idle);
    let timer = sleep_until(last_progress + checkup);
    tokio::pin!(timer);
    let evicted = guard.slot.evicted();
    tokio::pin!(evicted);
    loop {
        while out.len() < limits.max_queued {
            let Some(record) = records.pop() else { break };
            let allocated = match &alloc {
                Some(a) => a.handle_durable(&record).await,
                None => None,
            };
            if let Some((reply, fd)) = allocated {
                out.push_with_fd(&reply, fd);
                continue;
            }
            match shared.handle(&record, ctx).await {
                Outcome::Reply(reply) => {
                    out.push(&reply);
                    if out.len() > limits.max_queued && out.total() > limits.max_queued_total {
                        return End::OverBudget;
                    }
                }
                Outcome::Close => return flush_then(stream, out, limits, End::NotACall).await,
                _ => {}
            }
        }
        if eof {
            return flush_then(stream, out, limits, End::Eof).await;
        }
        let reading = out.len() < limits.max_queued;
        let writing = out.len() > 0;
        let deadline = last_progress
            + if writing {
                limits.write_stall
            } else {
                limits.idle
            };
        // After fresh progress the timer (set at most `checkup` after an
        // earlier moment) is due before `deadline`; only a deadline that
        // moved earlier, as when replies start waiting long after the
        // last progress, needs it re-armed.
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
        }
        tokio::select! {
            r = rd.read(&mut rbuf), if reading => match r {
                Ok(0) => eof = true,
                Ok(n) => {
                    last_progress = Instant::now();
                    guard.slot.touch();
                    if records.push(&rbuf[..n]).is_err() {
                        // Answer what came before the oversized record.
                        while let Some(record) = records.pop() {
                            if let Outcome::Reply(reply) = shared.handle(&record, ctx).await {
                                out.push(&reply);
                            }
                        }
                        return flush_then(stream, out, limits, End::RecordTooLong).await;
                    }
                }
                Err(e) => return End::Io(e),
            },
            w = write_next(&mut stream, &out), if writing => match w {
                Ok(0) => return End::Eof,
                Ok(n) => {
                    out.advance(n);
                    last_progress = Instant::now();
                    guard.slot.touch();
                }
                Err(e) => return End::Io(e),
            },
            () = &mut timer => {
                let now = Instant::now();
                if now >= deadline {
                    return if writing { End::WriteStall } else { End::Idle };
                }
                timer.as_mut().reset(deadline.min(now + checkup));
            }
            () = &mut evicted => return End::Evicted,
        }
    }
}

/// One write of queued bytes: a sendmsg() with the descriptor when the
/// next byte is the first of a reply that grants a socket.
async fn write_next<S: ReplyWrite>(stream: &mut S, out: &OutQueue<'_>) -> std::io::Result<usize> {
    match out.next_write() {
        (bytes, Some(fd)) => stream.send_fd(bytes, fd).await,
        (bytes, None) => stream.write(bytes).await,
    }
}

/// Writes what is queued (bounded by the write-stall limit); the caller
/// then drops (closes) the stream.
async fn flush_then<S>(mut stream: S, mut out: OutQueue<'_>, limits: StreamLimits, end: End) -> End
where
    S: ReplyWrite,
{
    if out.len() > 0 {
        let write = async {
            while out.len() > 0 {
                match write_next(&mut stream, &out).await? {
                    0 => return Err(std::io::ErrorKind::WriteZero.into()),
                    n => out.advance(n),
                }
            }
            Ok(())
        };
        match tokio::time::timeout(limits.write_stall, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return End::Io(e),
            Err(_) => return End::WriteStall,
        }
    }
    // No shutdown(): like the C daemon, just close. Unread input then
    // makes the kernel reset the connection, as it does for C.
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_queue_keeps_order_and_compacts() {
        let total = AtomicUsize::new(0);
        let mut q = OutQueue::new(&total);
        q.push(b"abcd");
        assert_eq!(q.pending(), [0x80, 0, 0, 4, b'a', b'b', b'c', b'd']);
        q.advance(6);
        q.push(b"ef");
        assert_eq!(q.pending(), [b'c', b'd', 0x80, 0, 0, 2, b'e', b'f']);
        assert_eq!(total.load(Ordering::Relaxed), 8);
        q.advance(8);
        assert_eq!(q.len(), 0);
        q.push(b"gh");
        drop(q);
        assert_eq!(
            total.load(Ordering::Relaxed),
            0,
            "a dropped queue leaves the total"
        );
    }
}
