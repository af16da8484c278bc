//! `binder`: binds ports the ways other programs do, to show what a
//! reservation held by the allocation service blocks. Does socket I/O.
//!
//! usage:
//!   binder try tcp|udp 4|6 PORT plain|reuseaddr|reuseport
//!       one bind() (and listen() for tcp); prints `bound PORT` or
//!       `error ERRNO`; exit 0 when bound, 1 otherwise
//!   binder nfs START
//!       the kernel NFS client's way: TCP, SO_REUSEPORT, explicit bind
//!       counting down from START to 665 past EADDRINUSE, then connect()
//!       to 127.0.0.1:111; prints `bound PORT`
//!   binder race PORT MILLIS
//!       tries every kind of bind of PORT (tcp/udp, v4/v6, plain,
//!       SO_REUSEADDR, SO_REUSEPORT) in a loop for MILLIS ms; prints
//!       `attempts N bound M`

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

#[derive(Clone, Copy)]
enum Reuse {
    Plain,
    Addr,
    Port,
}

fn bind_once(tcp: bool, v6: bool, port: u16, reuse: Reuse) -> std::io::Result<Socket> {
    let (domain, ip) = if v6 {
        (Domain::IPV6, Ipv6Addr::UNSPECIFIED.into())
    } else {
        (Domain::IPV4, Ipv4Addr::UNSPECIFIED.into())
    };
    let kind = if tcp { Type::STREAM } else { Type::DGRAM };
    let s = Socket::new(domain, kind, None)?;
    match reuse {
        Reuse::Plain => {}
        Reuse::Addr => s.set_reuse_address(true)?,
        Reuse::Port => s.set_reuse_port(true)?,
    }
    s.bind(&SocketAddr::new(ip, port).into())?;
    if tcp {
        s.listen(16)?;
    }
    Ok(s)
}

fn parse_reuse(s: &str) -> Option<Reuse> {
    match s {
        "plain" => Some(Reuse::Plain),
        "reuseaddr" => Some(Reuse::Addr),
        "reuseport" => Some(Reuse::Port),
        _ => None,
    }
}

fn errno(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => "EADDRINUSE".to_owned(),
        Some(n) => format!("errno {n}"),
        None => e.to_string(),
    }
}

fn try_one(args: &[String]) -> ExitCode {
    let (Some(proto), Some(fam), Some(port), Some(reuse)) = (
        args.first(),
        args.get(1),
        args.get(2).and_then(|p| p.parse().ok()),
        args.get(3).and_then(|r| parse_reuse(r)),
    ) else {
        return usage();
    };
    match bind_once(proto == "tcp", fam == "6", port, reuse) {
        Ok(_) => {
            println!("bound {port}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("error {}", errno(&e));
            ExitCode::from(1)
        }
    }
}

fn nfs(start: u16) -> ExitCode {
    for port in (665..=start).rev() {
        let s = match Socket::new(Domain::IPV4, Type::STREAM, None) {
            Ok(s) => s,
            Err(e) => return fail(&e),
        };
        if let Err(e) = s.set_reuse_port(true) {
            return fail(&e);
        }
        match s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => continue,
            Err(e) => return fail(&e),
        }
        let server = SocketAddr::from((Ipv4Addr::LOCALHOST, 111));
        if let Err(e) = s.connect(&server.into()) {
            return fail(&e);
        }
        // Close without TIME_WAIT so the port does not linger.
        let _ = s.set_linger(Some(Duration::ZERO));
        println!("bound {port}");
        return ExitCode::SUCCESS;
    }
    println!("error no port");
    ExitCode::from(1)
}

fn race(port: u16, millis: u64) -> ExitCode {
    let end = Instant::now() + Duration::from_millis(millis);
    let (mut attempts, mut bound) = (0u64, 0u64);
    while Instant::now() < end {
        for tcp in [true, false] {
            for v6 in [false, true] {
                for reuse in [Reuse::Plain, Reuse::Addr, Reuse::Port] {
                    attempts += 1;
                    if bind_once(tcp, v6, port, reuse).is_ok() {
                        bound += 1;
                    }
                }
            }
        }
    }
    println!("attempts {attempts} bound {bound}");
    ExitCode::SUCCESS
}

fn fail(e: &std::io::Error) -> ExitCode {
    println!("error {}", errno(e));
    ExitCode::from(1)
}

fn usage() -> ExitCode {
    eprintln!("usage: binder try tcp|udp 4|6 PORT plain|reuseaddr|reuseport | nfs START | race PORT MILLIS");
    ExitCode::from(64)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok());
    match args.first().map(String::as_str) {
        Some("try") => try_one(&args[1..]),
        Some("nfs") => match num(1).and_then(|p| u16::try_from(p).ok()) {
            Some(start) => nfs(start),
            None => usage(),
        },
        Some("race") => match (num(1).and_then(|p| u16::try_from(p).ok()), num(2)) {
            (Some(port), Some(ms)) => race(port, ms),
            _ => usage(),
        },
        _ => usage(),
    }
}
