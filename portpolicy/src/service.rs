//! The subcommands that talk to the rpcbind daemon's allocation service
//! through the `portalloc` client: `exec` (obtain a socket, exec a
//! socket-activation-aware program with it as descriptor 3), `release`
//! (the portrelease way) and `leases` (LIST). Does I/O: the daemon's local
//! socket, and exec().

use crate::commands::{emit, print_json, Context, Failure, Status};
use portalloc::{AllocError, AllocRequest, Client, Family, LeaseInfo, Socktype};
use portpolicy::check::Leased;
use portpolicy::Protocol;
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;

/// Which socket `exec` asks for.
#[derive(Debug, Clone)]
pub enum Want {
    /// Any pool port.
    Pool,
    /// Exactly this port.
    Port(u16),
    /// A reservation, by name.
    Name(String),
}

/// `portpolicy exec`'s options.
#[derive(Debug, Clone)]
pub struct ExecArgs {
    pub want: Want,
    pub socktype: Socktype,
    pub bind: Option<IpAddr>,
    pub register: Option<(u32, u32)>,
    pub command: Vec<String>,
}

fn connect(socket: Option<&Path>) -> Result<Client, Failure> {
    match socket {
        Some(path) => Client::connect_path(path),
        None => Client::connect(),
    }
    .map_err(refusal)
}

fn refusal(e: AllocError) -> Failure {
    Failure {
        status: 1,
        message: e.to_string(),
    }
}

/// The ports the allocation service has leased (its LIST, reservations
/// left out), or `None` when the service cannot be asked: `check` then says
/// it could not tell leased pool ports from others.
pub fn leased_ports() -> Option<Vec<Leased>> {
    let list = Client::connect().ok()?.list().ok()?;
    let leased = list
        .iter()
        .filter(|e| e.lease_id != 0)
        .filter_map(|e| {
            let protocol = match e.socktype {
                Socktype::Stream => Protocol::Tcp,
                Socktype::Dgram => Protocol::Udp,
            };
            Some(Leased {
                port: u16::try_from(e.port).ok()?,
                protocol,
            })
        })
        .collect();
    Some(leased)
}

/// `portpolicy exec`: on success this never returns (the process becomes
/// the command, with the same pid, so LISTEN_PID is our own pid).
pub fn exec(ctx: &Context, socket: Option<&Path>, args: &ExecArgs) -> Result<Status, Failure> {
    let Some((program, rest)) = args.command.split_first() else {
        return Err(Failure {
            status: 2,
            message: "exec: no command given after --".into(),
        });
    };
    let mut client = connect(socket)?;
    let family = match args.bind {
        Some(IpAddr::V6(_)) => Family::Inet6,
        _ => Family::Inet,
    };
    let bind_text = args.bind.map(|a| a.to_string()).unwrap_or_default();
    let (grant, fd_name) = match &args.want {
        Want::Name(name) => (client.claim(name, args.socktype), name.clone()),
        want => {
            let mut req = match want {
                Want::Port(p) => AllocRequest::exact(family, args.socktype, *p),
                _ => AllocRequest::pool(family, args.socktype),
            }
            .bind_addr(&bind_text);
            if let Some((prog, vers)) = args.register {
                req = req.register(prog, vers);
            }
            (client.alloc(&req), "portalloc".to_string())
        }
    };
    let grant = grant.map_err(refusal)?;
    // The client's own socket is closed before descriptor 3 is set up, so
    // the command inherits exactly one extra descriptor.
    drop(client);
    if !ctx.json {
        eprintln!(
            "portpolicy: {}/{} (lease {}) as fd 3 for {program}",
            grant.port, args.socktype, grant.lease_id
        );
    }
    let (port, lease) = (grant.port, grant.lease_id);
    portalloc::install_listen_fd(grant.fd).map_err(|e| Failure {
        status: 1,
        message: format!("exec: making the socket fd 3: {e}"),
    })?;
    let err = std::process::Command::new(program)
        .args(rest)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", std::process::id().to_string())
        .env("LISTEN_FDNAMES", fd_name)
        .env("PORTALLOC_PORT", port.to_string())
        .env("PORTALLOC_LEASE", lease.to_string())
        .exec();
    Err(Failure {
        status: if err.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        },
        message: format!("exec {program}: {err}"),
    })
}

/// `portpolicy release NAME`.
pub fn release(ctx: &Context, socket: Option<&Path>, name: &str) -> Result<Status, Failure> {
    let mut client = connect(socket)?;
    client.release_name(name).map_err(refusal)?;
    if ctx.json {
        print_json(&serde_json::json!({ "released": name }))?;
    } else {
        emit(
            &format!(
                "released {name}: the daemon no longer holds its socket; anything may bind the \
                 port until the service does (start it now)"
            ),
            true,
        );
    }
    Ok(Status::Ok)
}

/// `portpolicy leases`.
pub fn leases(ctx: &Context, socket: Option<&Path>) -> Result<Status, Failure> {
    let mut client = connect(socket)?;
    let list = client.list().map_err(refusal)?;
    if ctx.json {
        let rows: Vec<serde_json::Value> = list.iter().map(json_row).collect();
        print_json(&rows)?;
        return Ok(Status::Ok);
    }
    emit(
        &format!(
            "{:>6} {:>5} {:<5} {:<6} {:>7} {:>6} {:>11} {:<5} NAME",
            "LEASE", "PORT", "PROTO", "FAMILY", "PID", "UID", "SINCE", "HELD"
        ),
        true,
    );
    for e in &list {
        emit(&text_row(e), true);
    }
    Ok(Status::Ok)
}

fn json_row(e: &LeaseInfo) -> serde_json::Value {
    serde_json::json!({
        "lease_id": e.lease_id,
        "name": e.name,
        "port": e.port,
        "protocol": e.socktype.protocol_name(),
        "family": e.family.to_string(),
        "pid": (e.pid >= 0).then_some(e.pid),
        "uid": e.uid,
        "since": e.since,
        "held": e.held,
    })
}

fn text_row(e: &LeaseInfo) -> String {
    let lease = if e.lease_id == 0 {
        "-".to_string()
    } else {
        e.lease_id.to_string()
    };
    let pid = if e.pid < 0 {
        "-".to_string()
    } else {
        e.pid.to_string()
    };
    let held = if e.held { "yes" } else { "no" };
    format!(
        "{lease:>6} {:>5} {:<5} {:<6} {pid:>7} {:>6} {:>11} {held:<5} {}",
        e.port, e.socktype, e.family, e.uid, e.since, e.name
    )
}
