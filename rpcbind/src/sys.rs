//! The only unsafe code of the daemon: `fork(2)`, `pidfd_open(2)`
//! (allocation service, see `alloc`), taking ownership of the descriptors
//! systemd passes (`activation`), `capset(2)`, `PR_CAPBSET_DROP`, the
//! ambient set, SIG_IGN and the keeper's descriptor sweep (`privdrop`),
//! `malloc_trim(3)` after a warm-start rewrite (`warmstart`).
//! Each block carries its `// SAFETY:` argument. Does I/O (process
//! creation, descriptors, credentials).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Which side of a fork this is.
#[derive(Debug, PartialEq, Eq)]
pub enum Forked {
    /// The original process; the child's pid.
    Parent(nix::unistd::Pid),
    Child,
}

/// How many threads this process has (from `/proc/self/task`).
pub fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// `fork(2)`, refused unless the process is single-threaded: a child of a
/// multi-threaded process may only call async-signal-safe functions, and
/// the daemon child goes on to run everything.
pub fn fork_single_threaded() -> io::Result<Forked> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "refusing to fork with {threads} threads running"
        )));
    }
    // SAFETY: the process has exactly one thread (checked just above, and
    // main calls this before the runtime or anything else starts a
    // thread), so the child is a full copy in which every function may be
    // called; no lock can be held by a thread that does not exist there.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// `pidfd_open(2)`: a descriptor that refers to process `pid` (for
/// kernels without SO_PEERPIDFD); readable once the process has exited.
pub fn pidfd_open(pid: i32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags by value and touches no
    // memory of ours; the result is checked before use.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this new descriptor to us (close-
    // on-exec, as pidfds always are) and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// Takes ownership of the `count` descriptors systemd passed, after
/// checking each is open. Called once, from `main`, before anything else
/// could have opened or closed descriptors 3 and up.
pub fn take_listen_fds(count: usize) -> io::Result<Vec<OwnedFd>> {
    let mut fds = Vec::with_capacity(count);
    for i in 0..count {
        let fd = LISTEN_FDS_START
            + RawFd::try_from(i).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        // A closed descriptor would make OwnedFd close someone else's later.
        nix::fcntl::fcntl(
            // SAFETY: only borrowed for this call; F_GETFD reads no memory.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            nix::fcntl::FcntlArg::F_GETFD,
        )?;
        // SAFETY: systemd's protocol hands descriptors LISTEN_FDS_START ..
        // +count to this process; nothing in it has wrapped them yet (main
        // calls this first, once, and the environment that names them is
        // removed right after), and the descriptor is open (checked above).
        fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Ok(fds)
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets in two words.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Sets this thread's effective and permitted capability sets to exactly
/// `caps` (a bit mask, bit N = capability N) and its inheritable set to
/// nothing. Must run while the process has one thread: capabilities are
/// per thread.
pub fn capset(caps: u64) -> io::Result<()> {
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    for (word, d) in data.iter_mut().enumerate() {
        // Truncation intended: each word holds 32 bits of the mask.
        let bits = (caps >> (32 * word)) as u32;
        d.effective = bits;
        d.permitted = bits;
    }
    // SAFETY: header and data are live, correctly laid out (repr(C), the
    // two-element array version 3 requires) for the duration of the call;
    // the kernel only reads them.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes capability `cap` from the bounding set (`PR_CAPBSET_DROP`).
/// `EINVAL` (a capability this kernel does not know) is not an error.
pub fn drop_bounding(cap: u32) -> io::Result<()> {
    // SAFETY: PR_CAPBSET_DROP takes integers by value and touches no memory
    // of ours.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
    if ret != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
    Ok(())
}

/// Clears the ambient capability set (`PR_CAP_AMBIENT_CLEAR_ALL`).
pub fn clear_ambient() -> io::Result<()> {
    // SAFETY: integers by value, no memory of ours.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets `sig` to be ignored (SIG_IGN).
pub fn ignore_signal(sig: nix::sys::signal::Signal) -> nix::Result<()> {
    // SAFETY: SIG_IGN installs no handler, so no code of ours can run in
    // signal context.
    unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigIgn) }?;
    Ok(())
}

/// Closes a raw descriptor that no owner in this process will use again.
/// Only for the cleanup keeper, which never returns to the code that owns
/// the copies of those descriptors (it ends with `process::exit`, so no
/// destructor closes a number twice).
pub fn close_unowned(fd: RawFd) {
    // SAFETY: see above: the descriptor's owners in this (forked,
    // single-threaded) process never run again.
    unsafe { libc::close(fd) };
}

/// Gives the C heap's free pages back to the kernel (glibc's
/// `malloc_trim(0)`; nothing elsewhere). Called after a warm-start
/// rewrite: the writer thread's buffers (journal records, the pieces of
/// the state files) stay resident in its arena once freed otherwise.
/// Measured at 50,000 registrations after churn: 9.6-9.7 -> 9.4-9.5 MiB
/// RSS (it was 17.7 -> 13.7 when the files were encoded whole in memory).
/// Takes well under a millisecond.
pub fn trim_heap() {
    // SAFETY: malloc_trim takes no pointer; it walks the allocator's own
    // arenas under their locks and may be called from any thread at any
    // time.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Turns off UDP checksums on a socket (`SO_NO_CHECK`), which makes the
/// kernel refuse UDP GSO sends on it: how the tests make GSO fail.
#[cfg(test)]
pub fn disable_udp_checksums(fd: RawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: `one` is a live c_int and the length passed is its size;
    // an invalid fd only makes the call fail.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_NO_CHECK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
