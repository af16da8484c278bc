//! Stream load clients (RFC 5531 section 11 record marking): many TCP
//! connections with one call in flight each (tokio, one thread), and a
//! blocking client for the local socket (SET/UNSET churn, pipelined
//! loading). Does socket I/O.

use std::io::{self, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::sample::Tally;
use crate::wire::{check, Call};

/// Largest reply record accepted (a DUMP of 262,144 mappings fits).
const MAX_RECORD: usize = 16 << 20;

fn too_big() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "reply record too large")
}

/// Reads one whole record (all its fragments) into `out`.
pub fn read_record(r: &mut impl Read, out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    loop {
        let mut mark = [0u8; 4];
        r.read_exact(&mut mark)?;
        let m = u32::from_be_bytes(mark);
        let len = (m & 0x7fff_ffff) as usize;
        if out.len() + len > MAX_RECORD {
            return Err(too_big());
        }
        let start = out.len();
        out.resize(start + len, 0);
        r.read_exact(&mut out[start..])?;
        if m & 0x8000_0000 != 0 {
            return Ok(());
        }
    }
}

async fn read_record_async(r: &mut (impl AsyncRead + Unpin), out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    loop {
        let m = r.read_u32().await?;
        let len = (m & 0x7fff_ffff) as usize;
        if out.len() + len > MAX_RECORD {
            return Err(too_big());
        }
        let start = out.len();
        out.resize(start + len, 0);
        r.read_exact(&mut out[start..]).await?;
        if m & 0x8000_0000 != 0 {
            return Ok(());
        }
    }
}

/// `conns` TCP connections to `addr`, each calling in a loop for `dur`
/// (one call in flight per connection); every connection starts at a
/// different place in `pool`.
pub fn tcp_conns(
    addr: SocketAddr,
    conns: usize,
    dur: Duration,
    timeout: Duration,
    pool: &[Call],
) -> anyhow::Result<Tally> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let started = Instant::now();
        let deadline = started + dur;
        let mut set = tokio::task::JoinSet::new();
        for c in 0..conns {
            let mut mine = pool.to_vec();
            mine.rotate_left(c * pool.len() / conns.max(1));
            set.spawn(tcp_conn(addr, deadline, timeout, mine, c as u32));
        }
        let mut total = Tally::default();
        while let Some(t) = set.join_next().await {
            match t {
                Ok(t) => total.merge(t),
                Err(_) => total.errors += 1,
            }
        }
        total.secs = started.elapsed().as_secs_f64();
        Ok(total)
    })
}

async fn tcp_conn(
    addr: SocketAddr,
    deadline: Instant,
    timeout: Duration,
    mut pool: Vec<Call>,
    conn: u32,
) -> Tally {
    let mut t = Tally::default();
    let Ok(s) = tokio::net::TcpStream::connect(addr).await else {
        t.errors += 1;
        return t;
    };
    let _ = s.set_nodelay(true);
    let (rd, mut wr) = s.into_split();
    let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, rd);
    let mut buf = Vec::new();
    let mut xid = conn << 24;
    let mut i = 0;
    while Instant::now() < deadline {
        xid = xid.wrapping_add(1);
        let n = pool.len();
        let call = &mut pool[i];
        i = (i + 1) % n;
        call.set_xid(xid);
        let sent = Instant::now();
        if wr.write_all(&call.bytes).await.is_err() {
            t.errors += 1;
            return t;
        }
        match tokio::time::timeout(timeout, read_record_async(&mut rd, &mut buf)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                t.errors += 1;
                return t;
            }
            Err(_) => {
                // The reply may still come: the stream is out of step, so stop.
                t.timeouts += 1;
                t.latency(sent);
                return t;
            }
        }
        t.latency(sent);
        match check(&buf, xid, call.expect) {
            Ok(_) => t.ok += 1,
            Err(_) => t.errors += 1,
        }
    }
    t
}

/// A blocking client on the local socket (or any stream).
#[derive(Debug)]
pub struct LocalClient {
    rd: BufReader<UnixStream>,
    wr: UnixStream,
    xid: u32,
    buf: Vec<u8>,
}

impl LocalClient {
    pub fn connect(path: &Path, timeout: Duration) -> io::Result<Self> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        Ok(Self {
            rd: BufReader::with_capacity(64 * 1024, s.try_clone()?),
            wr: s,
            xid: 0x5e00_0000,
            buf: Vec::new(),
        })
    }

    /// Calls and waits for the reply; `Ok(false)` when the reply was wrong.
    pub fn call(&mut self, call: &mut Call) -> io::Result<bool> {
        self.xid = self.xid.wrapping_add(1);
        call.set_xid(self.xid);
        self.wr.write_all(&call.bytes)?;
        read_record(&mut self.rd, &mut self.buf)?;
        Ok(check(&self.buf, self.xid, call.expect).is_ok())
    }

    /// Sends every call with up to `window` in flight, reading replies in
    /// order (a stream server answers a connection's calls in order).
    /// Returns the number of wrong replies.
    pub fn pipeline(&mut self, calls: &mut [Call], window: usize) -> io::Result<u64> {
        let first = self.xid.wrapping_add(1);
        let mut bad = 0;
        let mut sent = 0;
        for done in 0..calls.len() {
            while sent < calls.len() && sent < done + window {
                self.xid = self.xid.wrapping_add(1);
                calls[sent].set_xid(self.xid);
                self.wr.write_all(&calls[sent].bytes)?;
                sent += 1;
            }
            read_record(&mut self.rd, &mut self.buf)?;
            let xid = first.wrapping_add(done as u32);
            if check(&self.buf, xid, calls[done].expect).is_err() {
                bad += 1;
            }
        }
        Ok(bad)
    }
}

/// SET then UNSET of one program over the local socket, one call in
/// flight, for `dur`.
pub fn churn(path: &Path, dur: Duration, timeout: Duration, set: Call, unset: Call) -> Tally {
    let mut t = Tally::default();
    let mut c = match LocalClient::connect(path, timeout) {
        Ok(c) => c,
        Err(e) => {
            t.errors += 1;
            t.note = format!("connect: {e}");
            return t;
        }
    };
    let (mut set, mut unset) = (set, unset);
    let started = Instant::now();
    let deadline = started + dur;
    while Instant::now() < deadline {
        for call in [&mut set, &mut unset] {
            let sent = Instant::now();
            match c.call(call) {
                Ok(true) => t.ok += 1,
                Ok(false) => t.errors += 1,
                Err(e) => {
                    t.errors += 1;
                    t.note = format!("local socket: {e}");
                    return t;
                }
            }
            t.latency(sent);
        }
    }
    t.secs = started.elapsed().as_secs_f64();
    t
}
