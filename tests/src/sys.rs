//! The only unsafe code of the e2e harness: entering a network namespace
//! with `setns(2)` from the current thread. No RFC; Linux namespaces only.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Moves the calling thread into the network namespace that `ns_file`
/// (an open `/proc/PID/ns/net`) refers to.
pub fn enter_netns(ns_file: &File) -> io::Result<()> {
    // SAFETY: setns only reads the fd, which `ns_file` keeps open for the
    // whole call; CLONE_NEWNET affects only the calling thread's netns.
    let rc = unsafe { libc::setns(ns_file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
