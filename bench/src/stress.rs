//! Misbehaving and idle clients that run beside a measuring client: a TCP
//! client that pipelines calls and never reads its replies (reconnecting
//! whenever the server drops it), and a crowd of idle TCP connections.
//! Does socket I/O (blocking, in its own thread for the non-reader).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::wire::Call;

/// A running non-reading client; [`NonReader::stop`] ends it.
#[derive(Debug)]
pub struct NonReader {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    thread: JoinHandle<NonReaderStats>,
}

/// What the non-reading client saw.
#[derive(Debug, Default)]
pub struct NonReaderStats {
    pub connects: u64,
    /// Connections the server closed or reset.
    pub dropped: u64,
    pub bytes_written: u64,
}

impl NonReader {
    /// Starts writing batches of `call` (xids counting up) to `addr`.
    pub fn start(addr: SocketAddr, call: Call) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let (flag, count) = (stop.clone(), written.clone());
        let thread = std::thread::spawn(move || non_reader(addr, call, &flag, &count));
        Self {
            stop,
            written,
            thread,
        }
    }

    /// Waits until the server stops taking this client's calls (no byte
    /// written for 300 ms), at most `limit`: the state the row is about.
    pub fn wait_blocked(&self, limit: Duration) {
        let start = std::time::Instant::now();
        let mut last = u64::MAX;
        while start.elapsed() < limit {
            let now = self.written.load(Ordering::Relaxed);
            if now == last {
                return;
            }
            last = now;
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    pub fn stop(self) -> NonReaderStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

fn non_reader(
    addr: SocketAddr,
    mut call: Call,
    stop: &AtomicBool,
    written: &AtomicU64,
) -> NonReaderStats {
    let mut st = NonReaderStats::default();
    let mut xid: u32 = 0x7700_0000;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = connect_small_rcvbuf(addr) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        st.connects += 1;
        // A short timeout so the stop flag is seen while the server
        // refuses to read.
        let _ = s.set_write_timeout(Some(Duration::from_millis(50)));
        let mut batch = Vec::new();
        for _ in 0..64 {
            xid = xid.wrapping_add(1);
            call.set_xid(xid);
            batch.extend_from_slice(&call.bytes);
        }
        while !stop.load(Ordering::Relaxed) {
            match s.write(&batch) {
                Ok(n) => {
                    st.bytes_written += n as u64;
                    written.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => {
                    st.dropped += 1;
                    break;
                }
            }
        }
    }
    st
}

/// Receive buffer of the non-reading client: small, so the server's
/// replies back up after a few thousand calls (as with a stuck client on a
/// real network), not after the megabytes loopback autotuning allows.
const NON_READER_RCVBUF: usize = 4096;

/// A TCP connection whose receive buffer is set before connecting (the
/// window is negotiated at the handshake).
fn connect_small_rcvbuf(addr: SocketAddr) -> std::io::Result<TcpStream> {
    use nix::sys::socket::{
        connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage,
    };
    use std::os::fd::AsRawFd;
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::RcvBuf, &NON_READER_RCVBUF)?;
    connect(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(TcpStream::from(fd))
}

/// Opens up to `n` TCP connections to `addr` and leaves them idle.
/// Returns the ones that connected.
pub fn open_idle(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok())
        .collect()
}

/// How many of `conns` the server has not closed.
pub fn still_open(conns: &[TcpStream]) -> usize {
    conns
        .iter()
        .filter(|s| {
            if s.set_nonblocking(true).is_err() {
                return false;
            }
            let mut b = [0u8; 1];
            let mut r: &TcpStream = s;
            matches!(r.read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock)
        })
        .count()
}
