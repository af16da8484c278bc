//! Misbehaving and idle clients that run beside a measuring client: a TCP
//! client that pipelines calls and never reads its replies (reconnecting
//! whenever the server drops it), and a crowd of idle TCP connections.
//! Does socket I/O (blocking, in its own thread for the non-reader).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::wire::Call;

/// A running non-reading client; [`NonReader::stop`] ends it.
#[derive(Debug)]
pub struct NonReader {
    stop: Arc<AtomicBool>,
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
        let flag = stop.clone();
        let thread = std::thread::spawn(move || non_reader(addr, call, &flag));
        Self { stop, thread }
    }

    pub fn stop(self) -> NonReaderStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

fn non_reader(addr: SocketAddr, mut call: Call, stop: &AtomicBool) -> NonReaderStats {
    let mut st = NonReaderStats::default();
    let mut xid: u32 = 0x7700_0000;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
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
                Ok(n) => st.bytes_written += n as u64,
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
