//! The only unsafe code of the daemon: `fork(2)` and `pidfd_open(2)`
//! (allocation service, see `alloc`). Each block carries its
//! `// SAFETY:` argument. Does I/O (process creation).

use std::io;

/// Which side of a fork this is.
#[derive(Debug, PartialEq, Eq)]
pub enum Forked {
    Parent,
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
        nix::unistd::ForkResult::Parent { .. } => Ok(Forked::Parent),
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
