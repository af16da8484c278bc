//! Replays the golden captures of libtirpc clients (`rpcinfo` and
//! `tests/c/rpcbclient.c` traffic in `proto/tests/golden/*.txt`, taken
//! from Debian's C rpcbind by `scripts/capture-golden.sh`) over the wire
//! against a fresh daemon of each kind: every request is sent from the
//! captured peer address and port to the captured local address, over the
//! captured transport, and the reply must be byte-for-byte the captured
//! one (GETTIME: its shape and a time near now), coming from the address
//! that was asked. Where the proto engine's replay checks the rules, this
//! checks the daemon around them: arrival netid, local address, reply
//! source, owner from the peer port. Socket I/O in a namespace.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::{cases, Background, Impl, Namespace};
use socket2::{Domain, Socket, Type};

/// How long to wait for a reply the capture has; and for one it has not.
const REPLY_WAIT: Duration = Duration::from_secs(3);
const SILENCE_WAIT: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Reply(Vec<u8>),
    NoReply,
    TimeDependent,
}

/// One `@` block: consecutive exchanges of one peer (one TCP connection).
#[derive(Debug)]
struct Block {
    transport: String,
    /// `ADDR:PORT`, or `uid:N` on the local transport (`uid=N` in the file).
    peer: String,
    /// `ADDR:PORT`, or the socket path on the local transport.
    local: String,
    exchanges: Vec<(usize, Vec<u8>, Expect)>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn parse(text: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut request = None;
    for (i, line) in text.lines().enumerate() {
        if let Some(ctx) = line.strip_prefix("@ ") {
            let field = |k: &str| {
                ctx.split_whitespace()
                    .find_map(|f| f.strip_prefix(k)?.strip_prefix('='))
                    .unwrap_or_else(|| panic!("line {}: no {k}", i + 1))
                    .to_string()
            };
            let transport = field("transport");
            // Local contexts name the client's uid instead of addresses.
            let (peer, local) = if transport == "local" {
                (
                    format!("uid:{}", field("uid")),
                    "/run/rpcbind.sock".to_string(),
                )
            } else {
                (field("peer"), field("local"))
            };
            blocks.push(Block {
                transport,
                peer,
                local,
                exchanges: Vec::new(),
            });
        } else if let Some(h) = line.strip_prefix("> ") {
            request = Some((i + 1, hex(h.trim())));
        } else if let Some(r) = line.strip_prefix("< ") {
            let (n, req) = request.take().expect("reply line without request");
            let expect = match r.trim() {
                "-" => Expect::NoReply,
                "?" => Expect::TimeDependent,
                h => Expect::Reply(hex(h)),
            };
            let block = blocks.last_mut().expect("exchange before @");
            block.exchanges.push((n, req, expect));
        }
    }
    blocks
}

/// Binds a socket of `ty` to the captured peer address and port.
fn bound(peer: SocketAddr, ty: Type) -> Socket {
    let s = Socket::new(Domain::for_address(peer), ty, None).expect("socket");
    s.set_reuse_address(true).expect("SO_REUSEADDR");
    if peer.is_ipv6() {
        s.set_only_v6(true).expect("IPV6_V6ONLY");
    }
    s.bind(&peer.into())
        .unwrap_or_else(|e| panic!("bind {peer}: {e}"));
    s
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Sends each exchange of `block`; returns what came back (None: nothing).
fn replay_block(block: &Block) -> Vec<Option<Vec<u8>>> {
    let (peer, local) = (addr(&block.peer), addr(&block.local));
    let waits = block.exchanges.iter().map(|(_, _, e)| match e {
        Expect::NoReply => SILENCE_WAIT,
        _ => REPLY_WAIT,
    });
    if block.transport.starts_with("udp") {
        let sock: UdpSocket = bound(peer, Type::DGRAM).into();
        block
            .exchanges
            .iter()
            .zip(waits)
            .map(|((_, req, _), wait)| {
                sock.set_read_timeout(Some(wait)).ok()?;
                sock.send_to(req, local).ok()?;
                let mut buf = vec![0u8; 65536];
                let (n, from) = sock.recv_from(&mut buf).ok()?;
                buf.truncate(n);
                // A reply must leave from the address that was asked.
                Some(if from == local {
                    buf
                } else {
                    format!("from {from}").into_bytes()
                })
            })
            .collect()
    } else {
        let sock = bound(peer, Type::STREAM);
        sock.connect_timeout(&local.into(), REPLY_WAIT)
            .unwrap_or_else(|e| panic!("connect {local}: {e}"));
        let mut stream: TcpStream = sock.into();
        block
            .exchanges
            .iter()
            .zip(waits)
            .map(|((_, req, _), wait)| {
                let mut rec = (0x8000_0000u32 | req.len() as u32).to_be_bytes().to_vec();
                rec.extend_from_slice(req);
                stream.write_all(&rec).ok()?;
                stream.set_read_timeout(Some(wait)).ok()?;
                read_record(&mut stream)
            })
            .collect()
    }
}

/// Sends a local-transport block with `rawsend` running as the block's
/// uid (`uid=N` in the context line), so the daemon sees it in SO_PEERCRED.
fn replay_local_block(ns: &Namespace, rawsend: &Path, block: &Block) -> Vec<Option<Vec<u8>>> {
    let uid = block
        .peer
        .strip_prefix("uid:")
        .unwrap_or_else(|| panic!("local peer {} is not uid:N", block.peer));
    let input: String = block
        .exchanges
        .iter()
        .map(|(_, req, e)| {
            let wait = if *e == Expect::NoReply {
                SILENCE_WAIT
            } else {
                REPLY_WAIT
            };
            format!("{} {}\n", wait.as_millis(), hexs(req))
        })
        .collect();
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let file = std::env::temp_dir().join(format!(
        "rawsend-{}-{}.in",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&file, input).expect("write rawsend input");
    let mut cmd = ns.command("setpriv");
    cmd.args([
        &format!("--reuid={uid}"),
        &format!("--regid={uid}"),
        "--clear-groups",
        "--",
    ])
    .arg(rawsend)
    .arg(&block.local)
    .stdin(std::fs::File::open(&file).expect("open rawsend input"));
    let out = run_stdin(cmd);
    let _ = std::fs::remove_file(&file);
    let lines: Vec<Option<Vec<u8>>> = out.lines().map(|l| (l != "-").then(|| hex(l))).collect();
    assert_eq!(lines.len(), block.exchanges.len(), "rawsend output:\n{out}");
    lines
}

/// Runs `cmd` (stdin already set) to completion, bounded; its stdout.
fn run_stdin(mut cmd: Command) -> String {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn rawsend");
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(out)) => String::from_utf8_lossy(&out.stdout).into_owned(),
        other => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("rawsend did not finish: {other:?}")
        }
    }
}

fn read_record(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let mut head = [0u8; 4];
        s.read_exact(&mut head).ok()?;
        let mark = u32::from_be_bytes(head);
        let mut frag = vec![0u8; (mark & 0x7fff_ffff).min(1 << 20) as usize];
        s.read_exact(&mut frag).ok()?;
        out.extend_from_slice(&frag);
        if mark & 0x8000_0000 != 0 {
            return Some(out);
        }
    }
}

/// A GETTIME reply: SUCCESS header echoing the xid, then a time near now.
fn is_gettime_reply(req: &[u8], have: &[u8]) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    have.len() == 28
        && have[..4] == req[..4]
        && have[4..24] == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        && (i64::from(u32::from_be_bytes([have[24], have[25], have[26], have[27]])) - now).abs()
            <= 5
}

/// Starts `which` with `-f` and waits until its sockets are bound, seen
/// with `ss` (sock_diag), so that no probe call reaches it: the session's
/// GETSTAT counters must count only the replayed calls.
fn start_quietly(ns: &Namespace, which: Impl) -> Background {
    let args = [&["-f"][..], which.state_args()].concat();
    let mut daemon = ns.spawn(which.program(), &args);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ss = ns.run("ss", &["-Hln", "sport = :111"], Duration::from_secs(5));
        let bound = ss.stdout.lines().count() >= 4;
        if bound && ns.host_path("/run/rpcbind.sock").exists() {
            return daemon;
        }
        if let Some(status) = daemon.try_wait() {
            panic!("{} exited ({status}): {}", which.name(), daemon.stderr());
        }
        assert!(
            Instant::now() < deadline,
            "{} did not bind port 111",
            which.name()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The reply header of a GARBAGE_ARGS answer (after the xid).
const GARBAGE_ARGS: [u8; 20] = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4];
/// MSG_DENIED RPC_MISMATCH low 2 high 2 (after the xid).
const RPC_MISMATCH_2_2: [u8; 20] = [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2];

fn word(b: &[u8], i: usize) -> u32 {
    b.get(4 * i..4 * i + 4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        .unwrap_or(u32::MAX)
}

/// True for an AUTH_NONE call to rpcbind whose arguments are shorter than
/// the smallest valid arguments of its procedure (RFC 1833 types).
fn args_truncated(req: &[u8]) -> bool {
    let (prog, vers, proc_) = (word(req, 3), word(req, 4), word(req, 5));
    let auth_none =
        word(req, 6) == 0 && word(req, 7) == 0 && word(req, 8) == 0 && word(req, 9) == 0;
    let min_args = match (vers, proc_) {
        (2, 1..=3 | 5) => 16,          // mapping, call_args
        (3 | 4, 1..=3 | 9 | 11) => 20, // rpcb: prog, vers, three strings
        (3 | 4, 5) | (4, 10) => 16,    // rpcb_rmtcallargs
        (3 | 4, 7) => 4,               // string
        (3 | 4, 8) => 8,               // netbuf
        _ => 0,
    };
    prog == 100000 && auth_none && req.len() < 40 + min_args
}

/// Differences of ours from the C daemon that proto/RULES.md records as
/// deliberate; `Some(reason)` when `have` is exactly that difference.
fn deliberate(
    which: Impl,
    transport: &str,
    req: &[u8],
    want: &Expect,
    have: &Option<Vec<u8>>,
    stale: bool,
) -> Option<&'static str> {
    if which != Impl::Ours {
        return None;
    }
    let have_is = |tail: &[u8; 20]| {
        have.as_deref()
            .is_some_and(|h| h.len() == 24 && h[..4] == req[..4] && h[4..] == *tail)
    };
    let getstat = word(req, 3) == 100000 && word(req, 4) == 4 && word(req, 5) == 12;
    match want {
        Expect::NoReply if word(req, 2) != 2 && have_is(&RPC_MISMATCH_2_2) => {
            Some("RPC version other than 2: ours answers RPC_MISMATCH, C is silent (RULES.md 21)")
        }
        Expect::Reply(w)
            if transport.starts_with("udp")
                && args_truncated(req)
                && !w.get(4..).is_some_and(|t| t.starts_with(&GARBAGE_ARGS))
                && have_is(&GARBAGE_ARGS) =>
        {
            Some("truncated UDP arguments: ours GARBAGE_ARGS, C answers from stale buffer bytes")
        }
        Expect::Reply(_) if stale && getstat => {
            Some("GETSTAT after a stale-bytes answer: C counted what it read, not comparable")
        }
        _ => None,
    }
}

fn replay_session(which: Impl, file: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../proto/tests/golden")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("golden file");
    let blocks = parse(&text);
    assert!(!blocks.is_empty(), "{file}: no exchanges");
    let ns = Namespace::new();
    // The capture namespace had this address on lo (see the README there).
    ns.add_address("192.0.2.1/24");
    let local = blocks.iter().any(|b| b.transport == "local");
    let rawsend = if local {
        match e2e::cprog::build("rawsend") {
            Some(p) => Some(p),
            None => return,
        }
    } else {
        None
    };
    let _daemon = start_quietly(&ns, which);
    let got = match rawsend {
        Some(rawsend) => {
            let results = blocks
                .iter()
                .map(|b| replay_local_block(&ns, &rawsend, b))
                .collect();
            (blocks, results)
        }
        None => ns.in_netns(move || {
            let results: Vec<_> = blocks.iter().map(replay_block).collect();
            (blocks, results)
        }),
    };
    let mut failures = Vec::new();
    let mut total = 0;
    let mut stale = false;
    for (block, results) in got.0.iter().zip(got.1) {
        for ((line, req, expect), have) in block.exchanges.iter().zip(results) {
            total += 1;
            let ok = match (expect, &have) {
                (Expect::Reply(want), Some(h)) => want == h,
                (Expect::NoReply, None) => true,
                (Expect::TimeDependent, Some(h)) => is_gettime_reply(req, h),
                _ => false,
            };
            if !ok {
                if let Some(why) = deliberate(which, &block.transport, req, expect, &have, stale) {
                    stale |= why.starts_with("truncated");
                    eprintln!("{file}:{line}: accepted deliberate difference: {why}");
                    continue;
                }
                let want = match expect {
                    Expect::Reply(w) => hexs(w),
                    Expect::NoReply => "-".into(),
                    Expect::TimeDependent => "?".into(),
                };
                let have = have.as_deref().map(hexs).unwrap_or_else(|| "-".into());
                failures.push(format!(
                    "{file}:{line} {} {} -> {}\n  request {}\n  want    {want}\n  got     {have}",
                    block.transport,
                    block.peer,
                    block.local,
                    hexs(req)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}: {} of {total} exchanges differ from the capture:\n{}",
        which.name(),
        failures.len(),
        failures.join("\n")
    );
}

cases! {
    fn golden_rpcinfo_session_over_the_wire(which) {
        replay_session(which, "rpcinfo.txt");
    }

    fn golden_libtirpc_session_over_the_wire(which) {
        replay_session(which, "libtirpc.txt");
    }

    fn golden_handmade_session_over_the_wire(which) {
        replay_session(which, "handmade.txt");
    }

    fn golden_local_session_over_the_local_socket(which) {
        replay_session(which, "local/local.txt");
    }
}
