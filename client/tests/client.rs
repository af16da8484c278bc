//! The client's real code path (connect, record marking, recvmsg with
//! MSG_CMSG_CLOEXEC and SCM_RIGHTS, result decoding, error messages)
//! against a small server thread in this file that speaks the PORTALLOC
//! protocol over a Unix socket in a temporary directory and passes real
//! bound sockets. This server is not the daemon and not a mock of it: it
//! answers what each test tells it to, so that every reply shape the
//! client must handle (including malformed ones the daemon never sends)
//! can be produced. The end-to-end tests against the real rpcbind daemon
//! live with the daemon.
//!
//! No network traffic: the passed sockets are bound on 127.0.0.1 and
//! inspected with getsockname()/getsockopt(), never connected to.

#![allow(clippy::unwrap_used)]

use nix::sys::socket::{getsockopt, sendmsg, sockopt, ControlMessage, MsgFlags, UnixAddr};
use portalloc::{AllocError, AllocRequest, Client, Family, LeaseInfo, PaStatus, Socktype};
use proto::alloc::{
    AllocArgs, AllocRes, ClaimArgs, Grant, NameArg, PaList, ReleaseArgs, PA_ALLOC, PA_CLAIM,
    PA_LIST, PA_RELEASE, PA_RELEASE_NAME, PORTALLOC_PROG,
};
use proto::record::{encode_record, record_mark, RecordAssembler};
use proto::rpc::{AcceptedReply, CallHeader, Reply};
use proto::xdr::{Decode, Encode, XdrReader};
use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the test server sends back for one call.
#[derive(Default)]
struct Response {
    /// The procedure's results (for an accepted SUCCESS reply).
    results: Vec<u8>,
    /// Descriptors to pass with the first byte of the reply.
    fds: Vec<OwnedFd>,
    /// Send the reply in two fragments, byte by byte after the first.
    trickle: bool,
    /// Answer with this xid offset (0 = the call's xid).
    xid_offset: u32,
    /// Answer PROG_UNAVAIL instead of SUCCESS.
    prog_unavail: bool,
    /// Never answer.
    silent: bool,
}

/// One call as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    procedure: u32,
    args: Vec<u8>,
}

struct Server {
    path: PathBuf,
    thread: JoinHandle<Vec<Seen>>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Server {
    /// Serves one connection; `handler` answers each call in turn.
    fn start(handler: impl FnMut(u32, &[u8]) -> Response + Send + 'static) -> Server {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("portalloc-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rpcbind.sock");
        let listener = UnixListener::bind(&path).unwrap();
        Server::serve(listener, path, Some(dir), handler)
    }

    fn serve(
        listener: UnixListener,
        path: PathBuf,
        dir: Option<PathBuf>,
        mut handler: impl FnMut(u32, &[u8]) -> Response + Send + 'static,
    ) -> Server {
        let thread = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            let mut assembler = RecordAssembler::new(1 << 16);
            let mut buf = [0u8; 4096];
            loop {
                let n = conn.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                assembler.push(&buf[..n]).unwrap();
                while let Some(record) = assembler.pop() {
                    let mut r = XdrReader::new(&record);
                    let call = CallHeader::decode(&mut r).unwrap();
                    assert_eq!(call.program, PORTALLOC_PROG);
                    let args = r.rest().to_vec();
                    let response = handler(call.procedure.0, &args);
                    seen.push(Seen {
                        procedure: call.procedure.0,
                        args,
                    });
                    reply(&conn, call.xid, response);
                }
            }
            if let Some(dir) = dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            seen
        });
        Server { path, thread }
    }

    fn client(&self) -> Client {
        Client::connect_path(&self.path).unwrap()
    }

    /// Waits for the server to finish (the client must be dropped first).
    fn join(self) -> Vec<Seen> {
        self.thread.join().unwrap()
    }
}

fn reply(conn: &UnixStream, xid: u32, response: Response) {
    if response.silent {
        std::thread::sleep(Duration::from_millis(1500));
        return;
    }
    let accepted = if response.prog_unavail {
        AcceptedReply::ProgUnavail
    } else {
        AcceptedReply::Success(&response.results)
    };
    let body = Reply::accepted(xid.wrapping_add(response.xid_offset), accepted).to_xdr();
    let wire = if response.trickle {
        let (a, b) = body.split_at(body.len() / 2);
        [
            &record_mark(a.len() as u32, false)[..],
            a,
            &record_mark(b.len() as u32, true),
            b,
        ]
        .concat()
    } else {
        encode_record(&body)
    };
    let first = if response.trickle { 1 } else { wire.len() };
    let raw: Vec<i32> = response.fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs: Vec<ControlMessage<'_>> = if raw.is_empty() {
        vec![]
    } else {
        vec![ControlMessage::ScmRights(&raw)]
    };
    let iov = [std::io::IoSlice::new(&wire[..first])];
    sendmsg::<UnixAddr>(conn.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None).unwrap();
    for byte in &wire[first..] {
        std::io::Write::write_all(&mut &*conn, std::slice::from_ref(byte)).unwrap();
    }
    // The server's copies close here, as the daemon's do after sending.
    drop(response.fds);
}

fn granted(port: u16, lease_id: u64, fds: Vec<OwnedFd>) -> Response {
    Response {
        results: AllocRes::Granted(Grant {
            port: u32::from(port),
            lease_id,
        })
        .to_xdr(),
        fds,
        ..Response::default()
    }
}

fn status(s: PaStatus) -> Response {
    Response {
        results: s.to_xdr(),
        ..Response::default()
    }
}

fn refused(s: PaStatus) -> Response {
    Response {
        results: AllocRes::refused(s).to_xdr(),
        ..Response::default()
    }
}

/// A listening TCP socket on 127.0.0.1 and its port.
fn listening() -> (OwnedFd, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (OwnedFd::from(l), port)
}

/// A bound UDP socket on 127.0.0.1 and its port.
fn udp() -> (OwnedFd, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    (OwnedFd::from(s), port)
}

/// Whether every copy of the UDP socket on `port` was closed (binding it
/// again without SO_REUSEADDR succeeds only then).
fn udp_port_free(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

#[test]
fn alloc_receives_the_bound_listening_socket_close_on_exec() {
    let (fd, port) = listening();
    let mut fds = Some(vec![fd]);
    let server = Server::start(move |_, _| granted(port, 7, fds.take().unwrap_or_default()));
    let mut client = server.client();
    let req = AllocRequest::pool(Family::Inet, Socktype::Stream)
        .bind_addr("127.0.0.1")
        .register(100_024, 1);
    let grant = client.alloc(&req).unwrap();
    assert_eq!((grant.port, grant.lease_id), (port, 7));
    assert!(getsockopt(&grant.fd, sockopt::AcceptConn).unwrap());
    let flags = nix::fcntl::fcntl(&grant.fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(
        flags & nix::libc::FD_CLOEXEC,
        0,
        "received fd must be close-on-exec"
    );
    drop(client);
    let seen = server.join();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].procedure, PA_ALLOC.0);
    assert_eq!(AllocArgs::from_xdr(&seen[0].args), Ok(req));
}

#[test]
fn reply_in_fragments_and_single_bytes_still_carries_the_descriptor() {
    let (fd, port) = udp();
    let mut fds = Some(vec![fd]);
    let server = Server::start(move |_, _| Response {
        trickle: true,
        ..granted(port, 0, fds.take().unwrap_or_default())
    });
    let mut client = server.client();
    let grant = client.claim("ipp", Socktype::Dgram).unwrap();
    assert_eq!((grant.port, grant.lease_id), (port, 0));
    drop(client);
    let seen = server.join();
    assert_eq!(seen[0].procedure, PA_CLAIM.0);
    let claim = ClaimArgs::from_xdr(&seen[0].args).unwrap();
    assert_eq!((claim.name, claim.socktype), ("ipp", Socktype::Dgram));
}

#[test]
fn refusals_carry_the_status_and_a_clear_message() {
    let statuses = [
        refused(PaStatus::QUOTA_EXCEEDED),
        refused(PaStatus::POOL_EXHAUSTED),
        refused(PaStatus::DENIED),
        refused(PaStatus::IN_USE),
        refused(PaStatus::NOT_IN_POOL),
        refused(PaStatus::NO_SUCH_NAME),
        refused(PaStatus::DENIED),
        refused(PaStatus::DISABLED),
        Response {
            results: AllocRes::SystemError {
                errno: nix::libc::EMFILE,
            }
            .to_xdr(),
            ..Response::default()
        },
    ];
    let mut answers = statuses.into_iter();
    let server = Server::start(move |_, _| answers.next().unwrap());
    let mut c = server.client();
    let tcp = AllocRequest::pool(Family::Inet, Socktype::Stream);
    let e = c.alloc(&tcp).unwrap_err();
    assert_eq!(e.status(), Some(PaStatus::QUOTA_EXCEEDED));
    assert_eq!(e.to_string(), format!("quota exceeded for uid {}", euid()));
    let e = c.alloc(&tcp).unwrap_err();
    assert_eq!(e.to_string(), "pool exhausted: no free tcp port");
    let e = c
        .alloc(&AllocRequest::exact(Family::Inet, Socktype::Stream, 700))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "permission denied: port 700/tcp is privileged (below 1024) and uid {} is not root",
            euid()
        )
    );
    let e = c
        .alloc(&AllocRequest::exact(Family::Inet6, Socktype::Dgram, 20001))
        .unwrap_err();
    assert_eq!(e.to_string(), "port 20001/udp is in use");
    let e = c
        .alloc(&AllocRequest::exact(Family::Inet, Socktype::Stream, 80))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "port 80/tcp is not in the pool (a reservation is claimed by name)"
    );
    let e = c.claim("nope", Socktype::Stream).unwrap_err();
    assert_eq!(e.to_string(), "no reservation named \"nope\" for tcp");
    let e = c.claim("ipp", Socktype::Stream).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "permission denied: uid {} may not claim reservation \"ipp\"",
            euid()
        )
    );
    let e = c.alloc(&tcp).unwrap_err();
    assert!(e.is_unavailable());
    assert_eq!(e.to_string(), "the allocation service is disabled");
    let e = c.alloc(&tcp).unwrap_err();
    assert_eq!(e.status(), Some(PaStatus::SYSTEM_ERROR));
    assert!(e.to_string().contains("Too many open files"), "{e}");
    drop(c);
    assert_eq!(server.join().len(), 9);
}

#[test]
fn release_and_list_send_the_right_arguments() {
    let entry = LeaseInfo {
        lease_id: 4,
        name: String::new(),
        port: 20002,
        socktype: Socktype::Stream,
        family: Family::Inet,
        pid: 99,
        uid: 1000,
        since: 1_700_000_000,
        held: false,
    };
    let list = PaList(vec![entry.clone()]);
    let mut answers = vec![
        status(PaStatus::OK),
        status(PaStatus::OK),
        status(PaStatus::DENIED),
        Response {
            results: list.to_xdr(),
            ..Response::default()
        },
    ]
    .into_iter();
    let server = Server::start(move |_, _| answers.next().unwrap());
    let mut c = server.client();
    c.release_lease(4).unwrap();
    c.release_port(20002, Socktype::Dgram).unwrap();
    let e = c.release_name("ipp").unwrap_err();
    assert_eq!(
        e.to_string(),
        "permission denied: only root may release reservation \"ipp\""
    );
    assert_eq!(c.list().unwrap(), [entry]);
    drop(c);
    let seen = server.join();
    let procs: Vec<u32> = seen.iter().map(|s| s.procedure).collect();
    assert_eq!(
        procs,
        [PA_RELEASE.0, PA_RELEASE.0, PA_RELEASE_NAME.0, PA_LIST.0]
    );
    assert_eq!(
        ReleaseArgs::from_xdr(&seen[0].args),
        Ok(ReleaseArgs::Lease(4))
    );
    assert_eq!(
        ReleaseArgs::from_xdr(&seen[1].args),
        Ok(ReleaseArgs::Port {
            port: 20002,
            socktype: Socktype::Dgram
        })
    );
    assert_eq!(NameArg::from_xdr(&seen[2].args), Ok(NameArg("ipp")));
    assert!(seen[3].args.is_empty());
}

/// Runs one ALLOC answered with `response(ports)` built from fresh UDP
/// sockets; returns the error and whether every passed socket was closed.
fn alloc_with_bad_fds(
    count: usize,
    response: fn(&[u16], Vec<OwnedFd>) -> Response,
) -> (AllocError, bool) {
    let (fds, ports): (Vec<OwnedFd>, Vec<u16>) = (0..count).map(|_| udp()).unzip();
    let sent_ports = ports.clone();
    let mut fds = Some(fds);
    let server = Server::start(move |_, _| response(&sent_ports, fds.take().unwrap_or_default()));
    let mut c = server.client();
    let e = c
        .alloc(&AllocRequest::pool(Family::Inet, Socktype::Dgram))
        .unwrap_err();
    drop(c);
    server.join();
    (e, ports.iter().all(|p| udp_port_free(*p)))
}

#[test]
fn two_descriptors_are_refused_and_both_closed() {
    let (e, closed) = alloc_with_bad_fds(2, |ports, fds| granted(ports[0], 1, fds));
    assert!(matches!(e, AllocError::Protocol(_)), "{e:?}");
    assert!(e.to_string().contains("2 descriptors"), "{e}");
    assert!(closed, "a received descriptor leaked");
}

#[test]
fn truncated_control_data_is_refused_and_what_arrived_is_closed() {
    let (e, closed) = alloc_with_bad_fds(3, |ports, fds| granted(ports[0], 1, fds));
    assert!(e.to_string().contains("MSG_CTRUNC"), "{e}");
    assert!(closed, "a received descriptor leaked");
}

#[test]
fn a_descriptor_with_a_refusal_is_closed() {
    let (e, closed) = alloc_with_bad_fds(1, |_, fds| Response {
        fds,
        ..refused(PaStatus::IN_USE)
    });
    assert_eq!(e.status(), Some(PaStatus::IN_USE));
    assert!(closed, "a received descriptor leaked");
}

#[test]
fn a_grant_must_come_with_its_socket_on_the_granted_port() {
    let (e, _) = alloc_with_bad_fds(0, |_, _| granted(700, 1, vec![]));
    assert_eq!(
        e.to_string(),
        "bad reply from the rpcbind daemon: port 700 granted without a descriptor"
    );
    let (e, closed) = alloc_with_bad_fds(1, |ports, fds| granted(ports[0].wrapping_add(1), 1, fds));
    assert!(e.to_string().contains("but the socket is bound to"), "{e}");
    assert!(closed);
}

#[test]
fn a_reply_to_another_xid_is_refused() {
    let (e, _) = alloc_with_bad_fds(0, |_, _| Response {
        xid_offset: 1,
        ..refused(PaStatus::IN_USE)
    });
    assert!(e.to_string().contains("reply to xid"), "{e}");
}

#[test]
fn prog_unavail_means_the_service_is_not_there() {
    let (e, _) = alloc_with_bad_fds(0, |_, _| Response {
        prog_unavail: true,
        ..Response::default()
    });
    assert!(e.is_unavailable());
    assert!(
        e.to_string()
            .contains("does not offer the allocation service (program 0x20000111 unavailable)"),
        "{e}"
    );
}

#[test]
fn a_silent_daemon_times_out() {
    let server = Server::start(|_, _| Response {
        silent: true,
        ..Response::default()
    });
    let mut c = server.client();
    c.set_timeout(Duration::from_millis(200)).unwrap();
    let start = Instant::now();
    let e = c.null().unwrap_err();
    assert!(matches!(e, AllocError::Timeout), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_millis(1200),
        "{:?}",
        start.elapsed()
    );
    // The stream may be inside a late reply: it is not used again.
    let again = c.null().unwrap_err();
    assert!(again.to_string().contains("connect again"), "{again}");
    drop(c);
    server.join();
}

#[test]
fn no_daemon_is_unreachable_with_the_path_in_the_message() {
    let path = std::env::temp_dir().join("portalloc-no-such-dir/rpcbind.sock");
    let e = Client::connect_path(&path).unwrap_err();
    assert!(e.is_unavailable());
    assert!(
        e.to_string().starts_with(&format!(
            "cannot reach the rpcbind daemon at {}",
            path.display()
        )),
        "{e}"
    );
}

#[test]
fn over_long_names_are_refused_before_sending() {
    let server = Server::start(|_, _| status(PaStatus::OK));
    let mut c = server.client();
    let e = c.claim(&"x".repeat(65), Socktype::Stream).unwrap_err();
    assert_eq!(e.status(), Some(PaStatus::BAD_REQUEST));
    drop(c);
    assert!(server.join().is_empty());
}

#[test]
fn daemon_closing_mid_reply_is_an_error_not_a_hang() {
    let server =
        Server::start(|_, _| panic!("server thread ends: the connection closes without a reply"));
    let mut c = server.client();
    let e = c.null().unwrap_err();
    assert!(
        e.to_string()
            .contains("connection closed before the whole reply"),
        "{e}"
    );
    drop(c);
    assert!(server.thread.join().is_err());
}

#[test]
fn decoded_args_round_trip_through_the_server() {
    // The claim argument as the server decodes it matches what was sent,
    // including a name at the 64-byte limit.
    let name = "n".repeat(64);
    let server = Server::start(|_, _| refused(PaStatus::NO_SUCH_NAME));
    let mut c = server.client();
    assert!(c.claim(&name, Socktype::Stream).is_err());
    drop(c);
    let seen = server.join();
    assert_eq!(
        ClaimArgs::from_xdr(&seen[0].args).map(|a| a.name.len()),
        Ok(64)
    );
}

/// Runs the ignored test `inner` in a fresh network namespace (and mount
/// namespace with a tmpfs on /run when `mount_run`), as root only.
fn in_namespace(inner: &str, mount_run: bool) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root for unshare -n -m");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let run = format!(
        "{}exec \"$0\" --exact {inner} --ignored --test-threads=1",
        if mount_run {
            "mount -t tmpfs none /run && "
        } else {
            ""
        }
    );
    let status = std::process::Command::new("unshare")
        .args(["-n", "-m", "sh", "-c", &run])
        .arg(&exe)
        .status()
        .unwrap();
    assert!(status.success(), "{inner} failed in its namespace");
}

#[test]
fn connect_tries_the_abstract_socket_then_the_path() {
    in_namespace("inner_abstract_socket_first", false);
    in_namespace("inner_path_when_no_abstract_socket", true);
}

/// Inside a private network namespace: @/run/rpcbind.sock answers.
#[test]
#[ignore = "run by connect_tries_the_abstract_socket_then_the_path in a namespace"]
fn inner_abstract_socket_first() {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(b"/run/rpcbind.sock").unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    let server = Server::serve(listener, PathBuf::new(), None, |_, _| Response::default());
    let mut c = Client::connect().unwrap();
    assert_eq!(c.address(), "@/run/rpcbind.sock");
    c.null().unwrap();
    drop(c);
    assert_eq!(server.join().len(), 1);
}

/// Inside private network and mount namespaces with no abstract socket:
/// /run/rpcbind.sock answers.
#[test]
#[ignore = "run by connect_tries_the_abstract_socket_then_the_path in a namespace"]
fn inner_path_when_no_abstract_socket() {
    let path = PathBuf::from(portalloc::SOCKET_PATH);
    let listener = UnixListener::bind(&path).unwrap();
    let server = Server::serve(listener, path, None, |_, _| Response::default());
    let mut c = Client::connect().unwrap();
    assert_eq!(c.address(), "/run/rpcbind.sock");
    c.null().unwrap();
    drop(c);
    assert_eq!(server.join().len(), 1);
    let _ = std::fs::remove_file(portalloc::SOCKET_PATH);
    let e = Client::connect().unwrap_err();
    assert!(
        e.to_string().starts_with(
            "cannot reach the rpcbind daemon at @/run/rpcbind.sock (Connection refused"
        ),
        "{e}"
    );
}
