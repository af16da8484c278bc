//! `rpcclient`: a tiny command-line RPC client for the end-to-end tests,
//! for the calls `rpcinfo` cannot make (SET, PMAP SET/UNSET, GETADDR with
//! a chosen transport and source address). Run inside a namespace, e.g.
//! as `nobody` via setpriv. Does socket I/O. RFC 1833 procedures.
//!
//! Usage: rpcclient [--bind ADDR:PORT] TARGET COMMAND ARGS...
//!   TARGET: unix:PATH | abstract:NAME | udp:ADDR:PORT | tcp:ADDR:PORT
//!   set PROG VERS NETID UADDR OWNER      RPCBPROC_SET (v3)   -> true|false
//!   unset PROG VERS NETID                RPCBPROC_UNSET (v3) -> true|false
//!   getaddr VERS PROG PVERS NETID        RPCBPROC_GETADDR    -> uaddr
//!   pmap-set PROG VERS PROT PORT         PMAPPROC_SET        -> true|false
//!   pmap-unset PROG VERS                 PMAPPROC_UNSET      -> true|false
//!   pmap-getport PROG VERS PROT          PMAPPROC_GETPORT    -> port
//! The source address of a UDP reply is printed to stderr as
//! `reply-from ADDR:PORT`. Exit 0 on a successful reply, 3 when the call
//! was not accepted, 2 on usage or I/O errors.

use std::net::SocketAddr;
use std::process::ExitCode;

use e2e::rpcwire::{self, Reply, Target, XdrIn};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut bind = None;
    if args.first().map(String::as_str) == Some("--bind") && args.len() > 1 {
        match args[1].parse::<SocketAddr>() {
            Ok(a) => bind = Some(a),
            Err(e) => return fail(&format!("--bind: {e}")),
        }
        args.drain(..2);
    }
    match run(&args, bind) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("rpcclient: {msg}");
    ExitCode::from(2)
}

fn num(s: Option<&String>) -> Result<u32, String> {
    let s = s.ok_or("missing argument")?;
    s.parse().map_err(|e| format!("{s}: {e}"))
}

fn text(s: Option<&String>) -> Result<&str, String> {
    s.map(String::as_str)
        .ok_or_else(|| "missing argument".into())
}

fn run(args: &[String], bind: Option<SocketAddr>) -> Result<ExitCode, String> {
    let target = Target::parse(text(args.first())?, bind)?;
    let cmd = text(args.get(1))?;
    let a = |i: usize| args.get(i + 2);
    let (vers, proc_, body, result): (u32, u32, Vec<u8>, fn(&mut XdrIn<'_>) -> _) = match cmd {
        "set" | "unset" => {
            let proc_ = if cmd == "set" {
                rpcwire::PROC_SET
            } else {
                rpcwire::PROC_UNSET
            };
            let (uaddr, owner) = if cmd == "set" {
                (text(a(3))?, text(a(4))?)
            } else {
                ("", "")
            };
            let body = rpcwire::rpcb_args(num(a(0))?, num(a(1))?, text(a(2))?, uaddr, owner);
            (3, proc_, body, bool_result)
        }
        "getaddr" => {
            let body = rpcwire::rpcb_args(num(a(1))?, num(a(2))?, text(a(3))?, "", "");
            (num(a(0))?, rpcwire::PROC_GETADDR, body, string_result)
        }
        "pmap-set" => {
            let body = rpcwire::pmap_args(num(a(0))?, num(a(1))?, num(a(2))?, num(a(3))?);
            (2, rpcwire::PROC_SET, body, bool_result)
        }
        "pmap-unset" => {
            let body = rpcwire::pmap_args(num(a(0))?, num(a(1))?, 0, 0);
            (2, rpcwire::PROC_UNSET, body, bool_result)
        }
        "pmap-getport" => {
            let body = rpcwire::pmap_args(num(a(0))?, num(a(1))?, num(a(2))?, 0);
            (2, rpcwire::PROC_GETADDR, body, u32_result)
        }
        other => return Err(format!("unknown command {other}")),
    };
    let xid = std::process::id().wrapping_mul(2654435761);
    let msg = rpcwire::call_message(xid, rpcwire::PMAP_PROG, vers, proc_, &body);
    let (bytes, from) = rpcwire::call(&target, &msg).map_err(|e| format!("call: {e}"))?;
    if let Some(from) = from {
        eprintln!("reply-from {from}");
    }
    match rpcwire::parse_reply(xid, &bytes).map_err(|e| format!("reply: {e}"))? {
        Reply::Success(res) => {
            let out = result(&mut XdrIn(&res)).map_err(|e| format!("result: {e}"))?;
            println!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Reply::Accepted(stat) => {
            println!("accept_stat {stat}");
            Ok(ExitCode::from(3))
        }
        Reply::Denied(stat) => {
            println!("denied {stat}");
            Ok(ExitCode::from(3))
        }
    }
}

fn bool_result(r: &mut XdrIn<'_>) -> std::io::Result<String> {
    Ok(if r.u32()? != 0 { "true" } else { "false" }.to_string())
}

fn string_result(r: &mut XdrIn<'_>) -> std::io::Result<String> {
    r.string()
}

fn u32_result(r: &mut XdrIn<'_>) -> std::io::Result<String> {
    Ok(r.u32()?.to_string())
}
