//! One RPC exchange on the local stream socket: the CALL record out
//! (RFC 5531 section 9, record marking of section 11), the REPLY record in
//! with at most one descriptor beside it (SCM_RIGHTS, as `proto/alloc.x`
//! says). Does I/O on the connected socket it is given.
//!
//! Every read is a `recvmsg()` with `MSG_CMSG_CLOEXEC` and room for one
//! descriptor, so the descriptor is received whichever read carries the
//! first byte of the record. `MSG_CTRUNC`, or more than one descriptor, is
//! a protocol error after every descriptor received has been closed.

use crate::error::AllocError;
use crate::sys;
use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, send, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr,
};
use proto::alloc::{PORTALLOC_PROG, PORTALLOC_VERS};
use proto::record::{begin_record, finish_record, RecordAssembler};
use proto::rpc::{AcceptedReply, CallHeader, Procedure, Reply, ReplyBody};
use proto::xdr::{Encode, XdrReader};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

/// Largest reply accepted (a LIST of a few hundred thousand entries).
pub(crate) const MAX_REPLY: usize = 32 << 20;

/// A successful reply: the procedure's results and the descriptor that
/// came with them, if any.
#[derive(Debug)]
pub(crate) struct Results {
    pub bytes: Vec<u8>,
    pub fd: Option<OwnedFd>,
}

/// The CALL record of `procedure` with `args`.
pub(crate) fn call_record(xid: u32, procedure: Procedure, args: &dyn Encode) -> Vec<u8> {
    let mut w = begin_record();
    CallHeader::new(xid, PORTALLOC_PROG, PORTALLOC_VERS, procedure).encode(&mut w);
    args.encode(&mut w);
    finish_record(w)
}

/// Sends the call and reads the whole reply; `at` names the socket in
/// errors, `deadline` bounds the whole exchange.
pub(crate) fn exchange(
    stream: &UnixStream,
    xid: u32,
    procedure: Procedure,
    args: &dyn Encode,
    at: &str,
    deadline: Instant,
) -> Result<Results, AllocError> {
    send_all(stream, &call_record(xid, procedure, args))?;
    let (record, fd) = receive_record(stream, deadline)?;
    let bytes = accepted_results(&record, xid, procedure, at)?;
    Ok(Results { bytes, fd })
}

/// Writes everything with MSG_NOSIGNAL: a daemon that went away must be
/// an error, not a SIGPIPE in the caller's process.
fn send_all(stream: &UnixStream, mut bytes: &[u8]) -> Result<(), AllocError> {
    while !bytes.is_empty() {
        match send(stream.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(std::io::Error::from(e).into()),
        }
    }
    Ok(())
}

/// The sending side of a descriptor handoff (used by the daemon): one
/// non-blocking `sendmsg()` of `bytes` with `fd` as the single SCM_RIGHTS
/// descriptor, MSG_NOSIGNAL | MSG_DONTWAIT. The kernel attaches the
/// descriptor to the first byte sent, so the caller passes the start of
/// the reply record and sends the rest (if any) without it. Returns the
/// bytes sent; EWOULDBLOCK comes back as an error for the caller's event
/// loop.
pub fn send_with_fd(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fd: BorrowedFd<'_>,
) -> std::io::Result<usize> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(bytes)];
    let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
    loop {
        match sendmsg::<UnixAddr>(socket.as_raw_fd(), &iov, &cmsg, flags, None) {
            Err(Errno::EINTR) => {}
            other => return other.map_err(std::io::Error::from),
        }
    }
}

/// Reads until one whole record is assembled; returns it and the one
/// descriptor received on the way, if any.
fn receive_record(
    stream: &UnixStream,
    deadline: Instant,
) -> Result<(Vec<u8>, Option<OwnedFd>), AllocError> {
    let mut assembler = RecordAssembler::new(MAX_REPLY);
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        if Instant::now() > deadline {
            return Err(AllocError::Timeout);
        }
        let n = recv_some(stream, &mut buf, &mut fds)?;
        if fds.len() > 1 {
            return Err(AllocError::Protocol(format!(
                "{} descriptors with one reply (all closed)",
                fds.len()
            )));
        }
        if n == 0 {
            return Err(AllocError::Protocol(
                "connection closed before the whole reply".into(),
            ));
        }
        assembler
            .push(&buf[..n])
            .map_err(|e| AllocError::Protocol(e.to_string()))?;
        if let Some(record) = assembler.pop() {
            return Ok((record, fds.pop()));
        }
    }
}

/// One recvmsg(); descriptors received are appended to `fds` (owned, so
/// they close on any error path).
fn recv_some(
    stream: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> Result<usize, AllocError> {
    let mut space = nix::cmsg_space!(std::os::fd::RawFd);
    loop {
        space.iter_mut().for_each(|b| *b = 0);
        let mut iov = [IoSliceMut::new(buf)];
        let flags = MsgFlags::MSG_CMSG_CLOEXEC;
        let msg = match recvmsg::<UnixAddr>(stream.as_raw_fd(), &mut iov, Some(&mut space), flags) {
            Ok(m) => m,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(std::io::Error::from(e).into()),
        };
        let bytes = msg.bytes;
        if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            fds.extend(sys::scm_rights_in(&space));
            return Err(AllocError::Protocol(
                "descriptor truncated (MSG_CTRUNC): more than one sent; all closed".into(),
            ));
        }
        let cmsgs = msg
            .cmsgs()
            .map_err(|e| AllocError::Protocol(format!("control messages: {e}")))?;
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(raw) = c {
                fds.extend(raw.into_iter().map(sys::own_received_fd));
            }
        }
        return Ok(bytes);
    }
}

/// The results of an accepted SUCCESS reply to call `xid`, or the error
/// the reply means.
fn accepted_results(
    record: &[u8],
    xid: u32,
    procedure: Procedure,
    at: &str,
) -> Result<Vec<u8>, AllocError> {
    let reply = Reply::decode(&mut XdrReader::new(record))
        .map_err(|e| AllocError::Protocol(format!("undecodable reply: {e}")))?;
    if reply.xid != xid {
        return Err(AllocError::Protocol(format!(
            "reply to xid {:#x}, expected {xid:#x}",
            reply.xid
        )));
    }
    let not_served = |detail: String| AllocError::NotServed {
        at: at.to_string(),
        detail,
    };
    match reply.body {
        ReplyBody::Accepted { reply, .. } => match reply {
            AcceptedReply::Success(results) => Ok(results.to_vec()),
            AcceptedReply::ProgUnavail => Err(not_served(format!(
                "program {:#x} unavailable",
                PORTALLOC_PROG.0
            ))),
            AcceptedReply::ProgMismatch { low, high } => Err(not_served(format!(
                "version {PORTALLOC_VERS} not supported, only {low}-{high}"
            ))),
            AcceptedReply::ProcUnavail => {
                Err(not_served(format!("procedure {procedure} unavailable")))
            }
            AcceptedReply::GarbageArgs => Err(AllocError::Protocol(
                "the daemon could not decode the arguments (GARBAGE_ARGS)".into(),
            )),
            AcceptedReply::SystemErr => Err(AllocError::Protocol(
                "the daemon answered SYSTEM_ERR".into(),
            )),
        },
        ReplyBody::Denied(r) => Err(AllocError::Protocol(format!("call denied: {r:?}"))),
    }
}
