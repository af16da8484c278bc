//! Raw exchanges with an rpcbind daemon for byte-level comparison: one
//! datagram or one record in, whatever comes back (or the silence, and
//! how a connection ended) out. Does socket I/O from the calling thread's
//! network namespace (use `Namespace::in_netns`). RFC 5531 section 11
//! (record marking).

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// How long a silent server is waited for.
pub const SILENCE: Duration = Duration::from_millis(300);

/// The reply to `msg` over UDP to `to`, or None after `SILENCE`.
pub fn udp_exchange(to: &str, msg: &[u8]) -> Option<Vec<u8>> {
    let local = if to.starts_with('[') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let s = UdpSocket::bind(local).expect("bind");
    s.set_read_timeout(Some(SILENCE)).expect("timeout");
    s.send_to(msg, to).expect("send");
    let mut buf = vec![0u8; 9000];
    s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

/// A stream transport: TCP to an address, or the local socket by path.
#[derive(Debug, Clone)]
pub enum Stream {
    Tcp(&'static str),
    Local(std::path::PathBuf),
}

impl Stream {
    /// A fresh connection with `SILENCE` as its read timeout.
    pub fn connect(&self) -> Box<dyn ReadWrite> {
        match self {
            Stream::Tcp(to) => {
                let s = TcpStream::connect(to).expect("connect");
                s.set_read_timeout(Some(SILENCE)).expect("timeout");
                Box::new(s)
            }
            Stream::Local(path) => {
                let s = UnixStream::connect(path).expect("connect local");
                s.set_read_timeout(Some(SILENCE)).expect("timeout");
                Box::new(s)
            }
        }
    }
}

/// A byte stream (TCP or unix).
pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// The bytes the server sends back for `msg` as one record, read until
/// one whole reply record arrives, it closes, or `SILENCE` passes; plus
/// how the connection ended.
pub fn stream_exchange(stream: &Stream, msg: &[u8]) -> (Vec<u8>, End) {
    read_reply(stream, &fragment(true, msg), true)
}

/// Sends `bytes`, then reads until the peer closes, `SILENCE` passes or
/// (with `one_record`) one whole record has arrived.
pub fn read_reply(stream: &Stream, bytes: &[u8], one_record: bool) -> (Vec<u8>, End) {
    let mut s = stream.connect();
    s.write_all(bytes).expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, End::Closed),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if one_record && record_complete(&got) {
                    return (got, End::Open);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, End::Reset),
            Err(_) => return (got, End::Open),
        }
    }
}

/// How a TCP exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Still open after the reply or after `SILENCE`.
    Open,
    /// The server closed (FIN).
    Closed,
    /// The server reset the connection.
    Reset,
}

/// One record-marking fragment: header (last-fragment bit, length), body.
pub fn fragment(last: bool, body: &[u8]) -> Vec<u8> {
    let mark = if last { 0x8000_0000u32 } else { 0 } | body.len() as u32;
    [&mark.to_be_bytes()[..], body].concat()
}

/// Sends `bytes` on a fresh TCP connection; everything received until
/// it closes or `SILENCE` passes, and how it ended.
pub fn tcp_raw(bytes: &[u8]) -> (Vec<u8>, End) {
    read_reply(&Stream::Tcp("127.0.0.1:111"), bytes, false)
}

/// True when `got` holds exactly one complete last-fragment record.
pub fn record_complete(got: &[u8]) -> bool {
    let Some(head) = got.get(..4) else {
        return false;
    };
    let mark = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    mark & 0x8000_0000 != 0 && got.len() == 4 + (mark & 0x7fff_ffff) as usize
}
