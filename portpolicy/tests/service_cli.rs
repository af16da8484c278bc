//! `portpolicy exec`, `release` and `leases`: the real binary, through the
//! real `portalloc` client, against a small protocol server thread in this
//! file (a Unix socket in a temporary directory, passed with the hidden
//! `--socket`) that passes real bound sockets. It is not the daemon: the
//! end-to-end tests against the rpcbind daemon live with the daemon. No
//! network traffic: sockets are bound on 127.0.0.1 and never connected to.

#![allow(clippy::unwrap_used)]

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use proto::alloc::{
    AllocArgs, AllocRes, Family, Grant, LeaseInfo, NameArg, PaList, PaStatus, Socktype, PA_ALLOC,
    PA_LIST, PA_RELEASE_NAME,
};
use proto::record::{encode_record, RecordAssembler};
use proto::rpc::{AcceptedReply, CallHeader, Reply};
use proto::xdr::{Decode, Encode, XdrReader};
use std::io::Read;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

static COUNTER: AtomicU32 = AtomicU32::new(0);

type Handler = Box<dyn FnMut(u32) -> (Vec<u8>, Option<OwnedFd>) + Send>;
/// The calls a server saw: (procedure, arguments).
type Seen = Vec<(u32, Vec<u8>)>;

/// Serves one connection: each call is answered by `handler(procedure)`;
/// returns the (procedure, arguments) seen.
fn serve(mut handler: Handler) -> (PathBuf, JoinHandle<Seen>) {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("portpolicy-svc-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rpcbind.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let thread = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut seen = Vec::new();
        let mut asm = RecordAssembler::new(1 << 16);
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            asm.push(&buf[..n]).unwrap();
            while let Some(record) = asm.pop() {
                let mut r = XdrReader::new(&record);
                let call = CallHeader::decode(&mut r).unwrap();
                let (results, fd) = handler(call.procedure.0);
                seen.push((call.procedure.0, r.rest().to_vec()));
                let body = Reply::accepted(call.xid, AcceptedReply::Success(&results)).to_xdr();
                let wire = encode_record(&body);
                let raw: Vec<i32> = fd.iter().map(|f| f.as_raw_fd()).collect();
                let cmsgs: Vec<ControlMessage<'_>> =
                    fd.iter().map(|_| ControlMessage::ScmRights(&raw)).collect();
                let iov = [std::io::IoSlice::new(&wire)];
                sendmsg::<UnixAddr>(conn.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None)
                    .unwrap();
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        seen
    });
    (path, thread)
}

fn portpolicy(socket: &PathBuf, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portpolicy"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn exec_hands_the_socket_to_the_command_as_fd_3_with_listen_env() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let inode = std::fs::metadata(format!("/proc/self/fd/{}", listener.as_raw_fd()))
        .unwrap()
        .ino();
    let mut fd = Some(OwnedFd::from(listener));
    let (socket, server) = serve(Box::new(move |_| {
        let grant = Grant {
            port: u32::from(port),
            lease_id: 12,
        };
        (AllocRes::Granted(grant).to_xdr(), fd.take())
    }));
    let script = r#"echo "$LISTEN_FDS $LISTEN_PID $$ $LISTEN_FDNAMES $PORTALLOC_PORT $PORTALLOC_LEASE"
stat -L -c %i /proc/$$/fd/3"#;
    let out = portpolicy(
        &socket,
        &[
            "exec",
            "--pool",
            "--tcp",
            "--register",
            "100024:1",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let f: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(f[0], "1", "LISTEN_FDS");
    assert_eq!(f[1], f[2], "LISTEN_PID is the command's own pid");
    assert_eq!(&f[3..], ["portalloc", &port.to_string(), "12"]);
    assert_eq!(
        lines[1],
        inode.to_string(),
        "fd 3 is the socket the server passed"
    );
    assert!(text(&out.stderr).contains(&format!("{port}/tcp (lease 12) as fd 3 for sh")));
    let seen = server.join().unwrap();
    assert_eq!(seen[0].0, PA_ALLOC.0);
    let args = AllocArgs::pool(Family::Inet, Socktype::Stream).register(100_024, 1);
    assert_eq!(AllocArgs::from_xdr(&seen[0].1), Ok(args));
}

/// The descriptors of a running process, read from outside (a listing
/// from inside would show its own directory or pipe descriptors).
fn fds_of(child: &std::process::Child) -> Vec<String> {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let exe = format!("/proc/{}/exe", child.id());
    // Wait until the process is `sleep` (portpolicy has exec'd it).
    while !std::fs::read_link(&exe).is_ok_and(|p| p.ends_with("sleep")) {
        assert!(std::time::Instant::now() < end, "no exec of sleep");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    fds
}

#[test]
fn exec_adds_only_fd_3() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut fd = Some(OwnedFd::from(listener));
    let (socket, server) = serve(Box::new(move |_| {
        let grant = Grant {
            port: u32::from(port),
            lease_id: 1,
        };
        (AllocRes::Granted(grant).to_xdr(), fd.take())
    }));
    let spawn = |cmd: &mut Command| {
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // What a command inherits without portpolicy (the test runner may pass
    // some descriptors), then with it.
    let mut plain = spawn(Command::new("sleep").arg("5"));
    let mut wrapped = spawn(
        Command::new(env!("CARGO_BIN_EXE_portpolicy"))
            .arg("--socket")
            .arg(&socket)
            .args(["exec", "--pool", "--tcp", "--", "sleep", "5"]),
    );
    let mut expected = fds_of(&plain);
    expected.push("3".into());
    expected.sort();
    expected.dedup();
    let got = fds_of(&wrapped);
    for c in [&mut plain, &mut wrapped] {
        let _ = c.kill();
        let _ = c.wait();
    }
    server.join().unwrap();
    assert_eq!(got, expected, "only fd 3 is added");
}

#[test]
fn exec_sends_udp_ipv6_exact_requests_and_reports_refusals() {
    let (socket, server) = serve(Box::new(|_| {
        (AllocRes::refused(PaStatus::QUOTA_EXCEEDED).to_xdr(), None)
    }));
    let out = portpolicy(
        &socket,
        &[
            "exec", "--port", "20001", "--udp", "--bind", "::1", "--", "true",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let uid = nix::unistd::geteuid().as_raw();
    assert_eq!(
        text(&out.stderr),
        format!("portpolicy: quota exceeded for uid {uid}\n")
    );
    let seen = server.join().unwrap();
    let args = AllocArgs::exact(Family::Inet6, Socktype::Dgram, 20001).bind_addr("::1");
    assert_eq!(AllocArgs::from_xdr(&seen[0].1), Ok(args));
}

#[test]
fn exec_usage_errors_exit_2() {
    let none = PathBuf::from("/nonexistent/rpcbind.sock");
    let out = portpolicy(&none, &["exec", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = portpolicy(&none, &["exec", "--pool", "--port", "700", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    let out = portpolicy(
        &none,
        &["exec", "--name", "ipp", "--bind", "::1", "--", "true"],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = portpolicy(
        &none,
        &["exec", "--pool", "--register", "100024", "--", "true"],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn no_daemon_is_a_clear_error() {
    let none = PathBuf::from("/nonexistent/rpcbind.sock");
    let out = portpolicy(&none, &["leases"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with(
            "portpolicy: cannot reach the rpcbind daemon at /nonexistent/rpcbind.sock"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn release_sends_the_name() {
    let (socket, server) = serve(Box::new(|_| (PaStatus::OK.to_xdr(), None)));
    let out = portpolicy(&socket, &["release", "ipp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("released ipp: the daemon no longer holds its socket"));
    let seen = server.join().unwrap();
    assert_eq!(seen[0].0, PA_RELEASE_NAME.0);
    assert_eq!(NameArg::from_xdr(&seen[0].1), Ok(NameArg("ipp")));
}

#[test]
fn leases_lists_text_and_json() {
    let list = PaList(vec![
        LeaseInfo {
            lease_id: 3,
            name: String::new(),
            port: 20001,
            socktype: Socktype::Stream,
            family: Family::Inet6,
            pid: 4321,
            uid: 1000,
            since: 1_700_000_000,
            held: false,
        },
        LeaseInfo {
            lease_id: 0,
            name: "ipp".into(),
            port: 631,
            socktype: Socktype::Dgram,
            family: Family::Inet,
            pid: -1,
            uid: 0,
            since: 5,
            held: true,
        },
    ]);
    let bytes = list.to_xdr();
    let b2 = bytes.clone();
    let (socket, server) = serve(Box::new(move |_| (bytes.clone(), None)));
    let out = portpolicy(&socket, &["leases"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["LEASE", "PORT", "PROTO", "FAMILY", "PID", "UID", "SINCE", "HELD", "NAME"]
    );
    assert_eq!(
        rows[1],
        [
            "3",
            "20001",
            "tcp",
            "inet6",
            "4321",
            "1000",
            "1700000000",
            "no"
        ]
    );
    assert_eq!(
        rows[2],
        ["-", "631", "udp", "inet", "-", "0", "5", "yes", "ipp"]
    );
    assert_eq!(server.join().unwrap()[0].0, PA_LIST.0);

    let (socket, server) = serve(Box::new(move |_| (b2.clone(), None)));
    let out = portpolicy(&socket, &["leases", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["port"], 20001);
    assert_eq!(json[0]["pid"], 4321);
    assert_eq!(json[1]["name"], "ipp");
    assert_eq!(json[1]["pid"], serde_json::Value::Null);
    assert_eq!(json[1]["protocol"], "udp");
    server.join().unwrap();
}
