//! The serving path end to end, without root: listeners bound on loopback
//! port 0 and a temporary local socket, served by `server::spawn_all` as
//! the daemon serves its real sockets. Checks the transport bounds
//! (record cap, connection cap, a client that never reads) and that each
//! transport reaches the engine with the right context.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proto::engine::{Engine, EngineConfig, Transport};

use crate::listeners::{self, Listeners};
use crate::server::{spawn_all, ServeConfig, Shared};
use crate::stream::StreamLimits;

struct Harness {
    _rt: tokio::runtime::Runtime,
    udp: SocketAddr,
    tcp: SocketAddr,
    local: PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.local);
    }
}

fn start(name: &str, cfg: ServeConfig) -> Harness {
    let local = std::env::temp_dir().join(format!("rpcbind-{}-{name}.sock", std::process::id()));
    let udp = listeners::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let tcp = listeners::bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let unix = listeners::bind_local_path(&local).unwrap();
    let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    let mut engine = Engine::new(EngineConfig::default());
    engine.register_own(Transport::Local, &local.display().to_string());
    engine.register_own(Transport::Udp, &proto::uaddr::format_inet(&udp_addr));
    engine.register_own(Transport::Tcp, &proto::uaddr::format_inet(&tcp_addr));
    let set = Listeners {
        udp: vec![listeners::UdpListener {
            transport: Transport::Udp,
            socket: udp,
        }],
        tcp: vec![listeners::TcpListener {
            transport: Transport::Tcp,
            listener: tcp,
        }],
        local: vec![listeners::LocalListener {
            path: Some(local.clone()),
            listener: unix,
        }],
        own: Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shared = Arc::new(Shared::new(engine, None, false));
    rt.block_on(async { spawn_all(set, &shared, &cfg) })
        .unwrap();
    Harness {
        _rt: rt,
        udp: udp_addr,
        tcp: tcp_addr,
        local,
    }
}

/// A CALL to the portmapper with AUTH_NONE.
fn call(xid: u32, version: u32, procedure: u32, args: &[u32]) -> Vec<u8> {
    let mut words = vec![xid, 0, 2, 100_000, version, procedure, 0, 0, 0, 0];
    words.extend_from_slice(args);
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

fn record(body: &[u8]) -> Vec<u8> {
    let mut r = (0x8000_0000u32 | body.len() as u32).to_be_bytes().to_vec();
    r.extend_from_slice(body);
    r
}

fn word(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

/// Reads one record; `None` if the peer closed or reset first.
fn read_record(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut mark = [0u8; 4];
    s.read_exact(&mut mark).ok()?;
    let mut body = vec![0u8; (u32::from_be_bytes(mark) & 0x7fff_ffff) as usize];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

fn udp_null(to: SocketAddr, xid: u32) -> Option<(Vec<u8>, SocketAddr)> {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    c.send_to(&call(xid, 2, 0, &[]), to).unwrap();
    let mut buf = vec![0u8; 1024];
    c.recv_from(&mut buf)
        .ok()
        .map(|(n, from)| (buf[..n].to_vec(), from))
}

#[test]
fn udp_null_is_answered_from_the_address_asked() {
    let h = start("udp", ServeConfig::default());
    let (reply, from) = udp_null(h.udp, 7).expect("no reply");
    assert_eq!(from, h.udp);
    // xid 7, REPLY, MSG_ACCEPTED, verifier AUTH_NONE, SUCCESS.
    assert_eq!(
        (0..6).map(|i| word(&reply, i)).collect::<Vec<_>>(),
        [7, 1, 0, 0, 0, 0]
    );
}

#[test]
fn tcp_pipelined_calls_are_answered_in_order() {
    let h = start("tcp", ServeConfig::default());
    let mut s = TcpStream::connect(h.tcp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut out = record(&call(1, 2, 0, &[]));
    out.extend(record(&call(2, 4, 0, &[])));
    s.write_all(&out).unwrap();
    assert_eq!(word(&read_record(&mut s).unwrap(), 0), 1);
    assert_eq!(word(&read_record(&mut s).unwrap(), 0), 2);
}

#[test]
fn record_over_the_cap_closes_only_that_connection() {
    let h = start("cap", ServeConfig::default());
    let mut s = TcpStream::connect(h.tcp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(&(0x8000_0000u32 | 9001).to_be_bytes()).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)), "still open");
    assert!(udp_null(h.udp, 8).is_some(), "UDP stopped");
}

#[test]
fn local_socket_answers_with_peer_credentials() {
    let h = start("local", ServeConfig::default());
    let mut s = UnixStream::connect(&h.local).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    // RPCBPROC_SET 300000 v1 udp "0.0.0.0.4.1": only local callers may.
    let mut set = call(3, 3, 1, &[300_000, 1]);
    for s in ["udp", "0.0.0.0.4.1", "x"] {
        let mut b = s.as_bytes().to_vec();
        set.extend((b.len() as u32).to_be_bytes());
        b.resize(b.len().div_ceil(4) * 4, 0);
        set.extend(b);
    }
    s.write_all(&record(&set)).unwrap();
    let reply = read_record(&mut s).unwrap();
    assert_eq!(word(&reply, 0), 3);
    assert_eq!(word(&reply, 6), 1, "SET over the local socket refused");
}

#[test]
fn a_client_that_never_reads_is_dropped_and_udp_keeps_going() {
    let cfg = ServeConfig {
        stream: StreamLimits {
            write_stall: Duration::from_millis(300),
            max_queued: 4096,
            ..StreamLimits::default()
        },
        ..ServeConfig::default()
    };
    let h = start("stall", cfg);
    let mut s = TcpStream::connect(h.tcp).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let dumps: Vec<u8> = (0..2000)
        .flat_map(|i| record(&call(i, 4, 4, &[])))
        .collect();
    let started = std::time::Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(5) {
        assert!(udp_null(h.udp, 9).is_some(), "UDP blocked by a TCP client");
        if s.write_all(&dumps).is_err() {
            // Either our send buffer is full (the daemon stopped reading)
            // or the daemon closed: poke once more to tell.
            std::thread::sleep(Duration::from_millis(400));
            if s.write_all(&dumps).is_err() && s.write_all(&dumps).is_err() {
                let mut probe = [0u8; 1];
                s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
                closed = !matches!(s.read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
                if closed {
                    break;
                }
            }
        }
    }
    assert!(closed, "connection not dropped within 5 s");
}

#[test]
fn an_idle_connection_closes_after_the_idle_limit_and_a_busy_one_stays() {
    let cfg = ServeConfig {
        stream: StreamLimits {
            idle: Duration::from_millis(400),
            write_stall: Duration::from_millis(200),
            ..StreamLimits::default()
        },
        ..ServeConfig::default()
    };
    let h = start("idle", cfg);
    let mut quiet = TcpStream::connect(h.tcp).unwrap();
    quiet
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut busy = TcpStream::connect(h.tcp).unwrap();
    busy.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let started = std::time::Instant::now();
    // The busy one calls every 100 ms for 1.2 s, three idle limits.
    for xid in 0..12 {
        busy.write_all(&record(&call(xid, 2, 0, &[]))).unwrap();
        assert_eq!(
            read_record(&mut busy).map(|r| word(&r, 0)),
            Some(xid),
            "busy connection dropped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut buf = [0u8; 4];
    assert!(
        matches!(quiet.read(&mut buf), Ok(0) | Err(_)),
        "idle connection still open"
    );
    // A fresh idle connection closes at the limit (the timer checks at
    // least every write-stall period), not at some later check-up.
    let quiet_started = TcpStream::connect(h.tcp).unwrap();
    let t0 = std::time::Instant::now();
    let mut q = quiet_started;
    q.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    assert!(
        matches!(q.read(&mut buf), Ok(0)),
        "idle connection not closed"
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(2),
        "closed after {took:?} (idle limit 400 ms)"
    );
    assert!(started.elapsed() > Duration::from_millis(1200));
}

#[test]
fn full_table_closes_the_longest_idle_connection() {
    let cfg = ServeConfig {
        max_tcp_connections: 2,
        ..ServeConfig::default()
    };
    let h = start("table", cfg);
    let mut first = TcpStream::connect(h.tcp).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut second = TcpStream::connect(h.tcp).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut third = TcpStream::connect(h.tcp).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 4];
    assert!(
        matches!(first.read(&mut buf), Ok(0) | Err(_)),
        "oldest not closed"
    );
    for (xid, s) in [(21, &mut second), (22, &mut third)] {
        s.write_all(&record(&call(xid, 2, 0, &[]))).unwrap();
        assert_eq!(read_record(s).map(|r| word(&r, 0)), Some(xid));
    }
}

#[test]
fn replies_over_the_daemon_wide_budget_close_at_once() {
    let cfg = ServeConfig {
        stream: StreamLimits {
            max_queued: 16,
            max_queued_total: 100,
            ..StreamLimits::default()
        },
        ..ServeConfig::default()
    };
    let h = start("budget", cfg);
    let mut s = TcpStream::connect(h.tcp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A DUMP reply (three own registrations, well over 100 bytes) is more
    // than this daemon may hold: the connection closes without waiting
    // for the 30 s write-stall limit. A small reply still goes out.
    s.write_all(&record(&call(30, 2, 0, &[]))).unwrap();
    assert_eq!(read_record(&mut s).map(|r| word(&r, 0)), Some(30));
    let started = std::time::Instant::now();
    s.write_all(&record(&call(31, 4, 4, &[]))).unwrap();
    assert!(
        read_record(&mut s).is_none(),
        "DUMP over the budget was sent"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}
