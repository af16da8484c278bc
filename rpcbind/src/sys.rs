//! The only unsafe code of the daemon: `fork(2)`. Each block carries its
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
