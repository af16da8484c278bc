//! Who holds a port right now: sockets from NETLINK_SOCK_DIAG, owners
//! from /proc. Does I/O (netlink, /proc); implements no RFC.
//!
//! sock_diag is used rather than /proc/net/tcp because a TCP socket that
//! is bound but neither listening nor connected only appears there when
//! the dump asks for every state bit, including TCP_BOUND_INACTIVE (bit
//! 13, Linux 6.5+); older kernels ignore the bit. A socket that no process
//! has open (no `socket:[inode]` link in any /proc/PID/fd) is a kernel
//! socket, such as the NFS client's transport to a server's port 2049.

use crate::Protocol;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket as NlSocket, SocketAddr as NlAddr};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;

/// One socket as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SocketInfo {
    /// tcp or udp.
    pub protocol: Protocol,
    /// Local address and port.
    pub local: SocketAddr,
    /// Peer, when connected.
    pub peer: Option<SocketAddr>,
    /// The kernel's state number (TCP states; UDP uses 1 connected, 7 not).
    pub state_code: u8,
    /// The state in words.
    pub state: String,
    /// The socket inode (0 for TIME_WAIT remnants).
    pub inode: u32,
    /// The owning uid.
    pub uid: u32,
}

/// A process that has a socket open.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: u32,
    /// /proc/PID/comm.
    pub command: String,
    /// The systemd unit from /proc/PID/cgroup, when there is one.
    pub unit: Option<String>,
    /// /proc/PID/cmdline, split at NULs.
    pub cmdline: Vec<String>,
}

impl ProcessInfo {
    /// The command-line argument that pins `port`, if any: `631`,
    /// `--port=631`, `-p631`.
    pub fn pins(&self, port: u16) -> Option<&str> {
        let p = port.to_string();
        self.cmdline.iter().skip(1).map(String::as_str).find(|a| {
            *a == p
                || a.strip_suffix(p.as_str()).is_some_and(|head| {
                    head.ends_with('=')
                        || (head.starts_with('-')
                            && head
                                .trim_start_matches('-')
                                .chars()
                                .all(|c| c.is_ascii_alphabetic())
                            && head.len() > 1)
                })
        })
    }
}

/// A socket and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Holder {
    /// The socket.
    pub socket: SocketInfo,
    /// Processes with the socket open; empty for kernel sockets.
    pub processes: Vec<ProcessInfo>,
    /// For sockets without a process: what the kernel socket is.
    pub kernel: Option<String>,
}

/// Every tcp and udp socket (IPv4 and IPv6) in this network namespace,
/// with their owners.
pub fn all_holders() -> io::Result<Vec<Holder>> {
    let mut sockets = Vec::new();
    for proto in Protocol::ALL {
        sockets.extend(dump(AF_INET, proto)?);
        // A kernel without IPv6 answers the v6 dump with an error: no
        // IPv6 sockets then, not a failure.
        match dump(AF_INET6, proto) {
            Ok(v6) => sockets.extend(v6),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::EAFNOSUPPORT | libc::EINVAL)
                ) => {}
            Err(e) => return Err(e),
        }
    }
    let (owners, complete) = inode_owners(Path::new("/proc"));
    Ok(sockets
        .into_iter()
        .map(|socket| {
            let processes = match socket.inode {
                0 => Vec::new(),
                inode => owners.get(&u64::from(inode)).cloned().unwrap_or_default(),
            };
            let kernel = processes.is_empty().then(|| match complete {
                true => kernel_label(&socket),
                false if socket.state_code == TCP_TIME_WAIT => kernel_label(&socket),
                false => format!(
                    "a socket of uid {} whose owner could not be seen (run portpolicy as root)",
                    socket.uid
                ),
            });
            Holder {
                socket,
                processes,
                kernel,
            }
        })
        .collect())
}

/// The holders of one port and protocol.
pub fn holders_of(port: u16, proto: Protocol) -> io::Result<Vec<Holder>> {
    Ok(all_holders()?
        .into_iter()
        .filter(|h| h.socket.local.port() == port && h.socket.protocol == proto)
        .collect())
}

/// What a socket without an owning process is.
pub fn kernel_label(s: &SocketInfo) -> String {
    if s.state_code == TCP_TIME_WAIT {
        return "TIME_WAIT remnant of a closed connection (no owner; goes away by itself)".into();
    }
    match s.peer {
        Some(peer) if peer.port() == 2049 => "kernel socket: NFS client (sunrpc)".into(),
        Some(_) => "kernel socket (no process has it open)".into(),
        None => "kernel socket (no process has it open; e.g. lockd or nfsd)".into(),
    }
}

const TCP_TIME_WAIT: u8 = 6;

fn state_name(proto: Protocol, state: u8) -> &'static str {
    match (proto, state) {
        (Protocol::Udp, 1) => "connected",
        (Protocol::Udp, _) => "bound",
        (_, 1) => "ESTABLISHED",
        (_, 2) => "SYN_SENT",
        (_, 3) => "SYN_RECV",
        (_, 4) => "FIN_WAIT1",
        (_, 5) => "FIN_WAIT2",
        (_, 6) => "TIME_WAIT",
        (_, 7) | (_, 13) => "bound, not listening",
        (_, 8) => "CLOSE_WAIT",
        (_, 9) => "LAST_ACK",
        (_, 10) => "LISTEN",
        (_, 11) => "CLOSING",
        (_, 12) => "NEW_SYN_RECV",
        _ => "unknown state",
    }
}

fn dump(family: u8, proto: Protocol) -> io::Result<Vec<SocketInfo>> {
    let mut socket = NlSocket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&NlAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut packet = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: match proto {
                Protocol::Tcp => IPPROTO_TCP,
                Protocol::Udp => IPPROTO_UDP,
            },
            extensions: ExtensionFlags::empty(),
            // Every bit, so TCP_BOUND_INACTIVE (13) is included.
            states: StateFlags::from_bits_retain(u32::MAX),
            socket_id: if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            },
        })
        .into(),
    );
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf[..]);
    socket.send(&buf[..], 0)?;
    read_dump(&socket, proto)
}

fn read_dump(socket: &NlSocket, proto: Protocol) -> io::Result<Vec<SocketInfo>> {
    let mut out = Vec::new();
    let mut receive = vec![0u8; 1 << 16];
    loop {
        let size = socket.recv(&mut &mut receive[..], 0)?;
        let mut offset = 0;
        while offset < size {
            let bytes = &receive[offset..size];
            let msg = <NetlinkMessage<SockDiagMessage>>::deserialize(bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                    let h = &r.header;
                    let id = &h.socket_id;
                    let local = SocketAddr::new(id.source_address, id.source_port);
                    let peer = SocketAddr::new(id.destination_address, id.destination_port);
                    out.push(SocketInfo {
                        protocol: proto,
                        local,
                        peer: (id.destination_port != 0).then_some(peer),
                        state_code: h.state,
                        state: state_name(proto, h.state).to_string(),
                        inode: h.inode,
                        uid: h.uid,
                    });
                }
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    let code = e.code.map(|c| -c.get()).unwrap_or(0);
                    return Err(io::Error::from_raw_os_error(code));
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
    }
}

/// Map socket inodes to the processes that have them open, by reading
/// every /proc/PID/fd link, and say whether every fd directory could be
/// read (not when run without privileges). Processes that vanish while
/// being read are skipped.
pub fn inode_owners(proc_dir: &Path) -> (HashMap<u64, Vec<ProcessInfo>>, bool) {
    let mut out: HashMap<u64, Vec<ProcessInfo>> = HashMap::new();
    let mut complete = true;
    let Ok(entries) = std::fs::read_dir(proc_dir) else {
        return (out, false);
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let fds = match std::fs::read_dir(entry.path().join("fd")) {
            Ok(fds) => fds,
            Err(e) => {
                complete &= e.kind() != std::io::ErrorKind::PermissionDenied;
                continue;
            }
        };
        let mut info: Option<ProcessInfo> = None;
        for fd in fds.flatten() {
            let Some(inode) = std::fs::read_link(fd.path())
                .ok()
                .and_then(|l| socket_inode(&l.to_string_lossy()))
            else {
                continue;
            };
            let p = info.get_or_insert_with(|| process_info(proc_dir, pid));
            let list = out.entry(inode).or_default();
            if !list.iter().any(|q| q.pid == pid) {
                list.push(p.clone());
            }
        }
    }
    (out, complete)
}

fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// pid, command and unit of a process.
pub fn process_info(proc_dir: &Path, pid: u32) -> ProcessInfo {
    let dir = proc_dir.join(pid.to_string());
    let command = std::fs::read_to_string(dir.join("comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| "?".into());
    let unit = std::fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|c| unit_from_cgroup(&c));
    let cmdline = std::fs::read(dir.join("cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    ProcessInfo {
        pid,
        command,
        unit,
        cmdline,
    }
}

/// The systemd unit in a /proc/PID/cgroup text: the last path component
/// that looks like a unit (`cups.service`, `session-3.scope`).
pub fn unit_from_cgroup(text: &str) -> Option<String> {
    let line = text
        .lines()
        .find(|l| l.starts_with("0::"))
        .or_else(|| text.lines().find(|l| l.contains(":name=systemd:")))?;
    let path = line.rsplit(':').next()?;
    path.split('/')
        .rev()
        .find(|c| {
            [".service", ".scope", ".socket", ".mount", ".swap"]
                .iter()
                .any(|s| c.ends_with(s))
        })
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_from_cgroups() {
        assert_eq!(
            unit_from_cgroup("0::/system.slice/cups.service\n").as_deref(),
            Some("cups.service")
        );
        assert_eq!(
            unit_from_cgroup("0::/user.slice/user-0.slice/session-3.scope\n").as_deref(),
            Some("session-3.scope")
        );
        assert_eq!(
            unit_from_cgroup("0::/system.slice/foo.service/sub\n").as_deref(),
            Some("foo.service")
        );
        assert_eq!(unit_from_cgroup("0::/\n"), None);
        assert_eq!(
            unit_from_cgroup("1:name=systemd:/system.slice/x.service\n").as_deref(),
            Some("x.service")
        );
    }

    #[test]
    fn pinned_ports_on_command_lines() {
        let p = |args: &[&str]| ProcessInfo {
            pid: 1,
            command: "x".into(),
            unit: None,
            cmdline: args.iter().map(|a| a.to_string()).collect(),
        };
        assert_eq!(p(&["rpc.statd", "-p", "631"]).pins(631), Some("631"));
        assert_eq!(p(&["d", "--port=631"]).pins(631), Some("--port=631"));
        assert_eq!(p(&["d", "-p631"]).pins(631), Some("-p631"));
        assert_eq!(p(&["d", "-p", "6310"]).pins(631), None);
        assert_eq!(p(&["d", "1631"]).pins(631), None);
        assert_eq!(p(&["631"]).pins(631), None);
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("pipe:[1]"), None);
    }

    #[test]
    fn kernel_sockets_are_labelled_by_peer() {
        let s = SocketInfo {
            protocol: Protocol::Tcp,
            local: "10.0.0.1:993".parse().unwrap(),
            peer: Some("10.0.0.2:2049".parse().unwrap()),
            state_code: 1,
            state: "ESTABLISHED".into(),
            inode: 7,
            uid: 0,
        };
        assert_eq!(kernel_label(&s), "kernel socket: NFS client (sunrpc)");
    }
}
