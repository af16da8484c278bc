//! All of the shim's unsafe code: the exported C entry points
//! (`bindresvport`, `bindresvport_sa`, `bind`), the real functions found
//! once with `dlsym(RTLD_NEXT)`, and the system calls on descriptors
//! (getsockopt, getsockname, fcntl, dup3, errno). Every block has its
//! `// SAFETY:` argument. Does I/O (system calls); implements no RFC.
//!
//! Each entry point holds the recursion guard for its whole run (so the
//! real function's own inner calls, such as libtirpc's `bindresvport()`
//! calling `bindresvport_sa()` and `bind()`, go straight through), catches
//! any panic, and calls the real function whenever it does not serve the
//! call itself.

use std::ffi::{c_int, c_void, CStr};
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use libc::{sockaddr, sockaddr_in, sockaddr_in6, sockaddr_storage, socklen_t};

use crate::decide::{Call, Fallback, FdFlags, Requested, SockInfo};
use crate::shim::{self, Guard};

type BindresvportFn = unsafe extern "C" fn(c_int, *mut sockaddr_in) -> c_int;
type BindresvportSaFn = unsafe extern "C" fn(c_int, *mut sockaddr) -> c_int;
type BindFn = unsafe extern "C" fn(c_int, *const sockaddr, socklen_t) -> c_int;

static REAL_BINDRESVPORT: OnceLock<usize> = OnceLock::new();
static REAL_BINDRESVPORT_SA: OnceLock<usize> = OnceLock::new();
static REAL_BIND: OnceLock<usize> = OnceLock::new();

/// The next definition of `name` after this library (libtirpc's, else
/// glibc's), looked up once; 0 when there is none.
fn real(cell: &'static OnceLock<usize>, name: &'static CStr) -> usize {
    *cell.get_or_init(|| {
        // SAFETY: `name` is a NUL-terminated string; RTLD_NEXT is a valid
        // pseudo-handle in a shared object; dlsym only reads.
        unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) as usize }
    })
}

/// Reports "function not available" like a missing libc entry would.
fn enosys() -> c_int {
    set_errno(libc::ENOSYS);
    -1
}

fn real_bindresvport(sd: c_int, sin: *mut sockaddr_in) -> c_int {
    match real(&REAL_BINDRESVPORT, c"bindresvport") {
        0 => enosys(),
        f => {
            // SAFETY: `f` is the address dlsym gave for `bindresvport`,
            // whose C prototype is `int (int, struct sockaddr_in *)`; the
            // arguments are the caller's own, passed on unchanged.
            unsafe { std::mem::transmute::<usize, BindresvportFn>(f)(sd, sin) }
        }
    }
}

fn real_bindresvport_sa(sd: c_int, sa: *mut sockaddr) -> c_int {
    match real(&REAL_BINDRESVPORT_SA, c"bindresvport_sa") {
        0 => enosys(),
        f => {
            // SAFETY: dlsym's address for `bindresvport_sa`, prototype
            // `int (int, struct sockaddr *)`; the caller's arguments.
            unsafe { std::mem::transmute::<usize, BindresvportSaFn>(f)(sd, sa) }
        }
    }
}

fn real_bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    match real(&REAL_BIND, c"bind") {
        0 => enosys(),
        f => {
            // SAFETY: dlsym's address for libc's `bind`, prototype
            // `int (int, const struct sockaddr *, socklen_t)`; the caller's
            // arguments. Never `libc::bind`: that would resolve to ours.
            unsafe { std::mem::transmute::<usize, BindFn>(f)(fd, addr, len) }
        }
    }
}

/// `bindresvport(3)`: glibc's and libtirpc's, both interposed here.
///
/// # Safety
/// `sin` is NULL or points to a writable `struct sockaddr_in`, as the C
/// function requires.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn bindresvport(sd: c_int, sin: *mut sockaddr_in) -> c_int {
    let Some(_guard) = Guard::enter() else {
        return real_bindresvport(sd, sin);
    };
    let saved = errno();
    let served = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the function's contract (above).
        let requested = unsafe { read_sockaddr_in(sin) };
        let port = shim::serve(Call::Resv, sd, requested)?;
        // SAFETY: as above; a non-NULL `sin` was read as AF_INET.
        unsafe { write_port(sin.cast(), port) };
        Ok::<u16, Fallback>(port)
    }));
    finish("bindresvport", sd, saved, served, || {
        real_bindresvport(sd, sin)
    })
}

/// libtirpc's `bindresvport_sa(3)`.
///
/// # Safety
/// `sa` is NULL or points to a writable socket address of its family's
/// size (`sockaddr_in` or `sockaddr_in6`), as the C function requires.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn bindresvport_sa(sd: c_int, sa: *mut sockaddr) -> c_int {
    let Some(_guard) = Guard::enter() else {
        return real_bindresvport_sa(sd, sa);
    };
    let saved = errno();
    let served = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the function's contract: the family names the size.
        let requested = unsafe { read_sockaddr_by_family(sa) };
        let port = shim::serve(Call::Resv, sd, requested)?;
        // SAFETY: as above; a non-NULL `sa` was read as its family.
        unsafe { write_port(sa, port) };
        Ok::<u16, Fallback>(port)
    }));
    finish("bindresvport_sa", sd, saved, served, || {
        real_bindresvport_sa(sd, sa)
    })
}

/// `bind(2)`: passed straight on unless PORTPOLICY_PRELOAD_BIND0=1, when
/// a server socket's bind to port 0 is served from the pool.
///
/// # Safety
/// `addr` points to `len` readable bytes, as bind(2) requires.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if !shim::bind0_enabled() {
        return real_bind(fd, addr, len);
    }
    let Some(_guard) = Guard::enter() else {
        return real_bind(fd, addr, len);
    };
    let saved = errno();
    let served = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: bind(2)'s contract: `len` bytes readable at `addr`.
        let requested = unsafe { read_sockaddr_len(addr, len) };
        shim::serve(Call::Bind0, fd, requested)
    }));
    finish("bind", fd, saved, served, || real_bind(fd, addr, len))
}

/// Returns 0 (errno as the caller left it) when served, else logs why and
/// runs the real function.
fn finish(
    what: &str,
    fd: RawFd,
    saved_errno: c_int,
    served: std::thread::Result<Result<u16, Fallback>>,
    real: impl FnOnce() -> c_int,
) -> c_int {
    let outcome = served.unwrap_or(Err(Fallback::Panic));
    shim::log_outcome(what, fd, &outcome);
    match outcome {
        Ok(_) => {
            set_errno(saved_errno);
            0
        }
        Err(_) => {
            // The shim's own calls may have changed errno; the real
            // function starts from what the caller left.
            set_errno(saved_errno);
            real()
        }
    }
}

fn errno() -> c_int {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

fn set_errno(value: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = value }
}

/// `bindresvport`'s `sin`: NULL, or an address that must be AF_INET (the
/// struct is only that big; glibc refuses other families too).
///
/// # Safety
/// `sin` is NULL or points to a readable `sockaddr_in`.
unsafe fn read_sockaddr_in(sin: *const sockaddr_in) -> Requested {
    if sin.is_null() {
        return Requested::Null;
    }
    // SAFETY: non-NULL and readable by the contract.
    let sin = unsafe { std::ptr::read_unaligned(sin) };
    if c_int::from(sin.sin_family) != libc::AF_INET {
        return Requested::Other(c_int::from(sin.sin_family));
    }
    Requested::Addr(from_sockaddr_in(&sin))
}

/// `bindresvport_sa`'s `sa`, sized by its own family.
///
/// # Safety
/// `sa` is NULL or points to a readable address of its family's size.
unsafe fn read_sockaddr_by_family(sa: *const sockaddr) -> Requested {
    if sa.is_null() {
        return Requested::Null;
    }
    // SAFETY: sa_family is the first field of every socket address.
    let family = c_int::from(unsafe { std::ptr::read_unaligned(sa) }.sa_family);
    let len = match family {
        libc::AF_INET => size_of::<sockaddr_in>(),
        libc::AF_INET6 => size_of::<sockaddr_in6>(),
        other => return Requested::Other(other),
    };
    // SAFETY: the contract says an address of this family is this big.
    unsafe { read_sockaddr_len(sa, len as socklen_t) }
}

/// An address given with its length (bind(2)); too short is `Other`.
///
/// # Safety
/// `addr` points to `len` readable bytes (or is NULL).
unsafe fn read_sockaddr_len(addr: *const sockaddr, len: socklen_t) -> Requested {
    if addr.is_null() || (len as usize) < size_of::<libc::sa_family_t>() {
        return Requested::Other(libc::AF_UNSPEC);
    }
    // SAFETY: at least the family field is readable (checked above).
    let family = c_int::from(unsafe { std::ptr::read_unaligned(addr) }.sa_family);
    match family {
        libc::AF_INET if len as usize >= size_of::<sockaddr_in>() => {
            // SAFETY: `len` covers a whole sockaddr_in.
            let sin = unsafe { std::ptr::read_unaligned(addr.cast::<sockaddr_in>()) };
            Requested::Addr(from_sockaddr_in(&sin))
        }
        libc::AF_INET6 if len as usize >= size_of::<sockaddr_in6>() => {
            // SAFETY: `len` covers a whole sockaddr_in6.
            let sin6 = unsafe { std::ptr::read_unaligned(addr.cast::<sockaddr_in6>()) };
            Requested::Addr(from_sockaddr_in6(&sin6))
        }
        other => Requested::Other(other),
    }
}

fn from_sockaddr_in(sin: &sockaddr_in) -> SocketAddr {
    let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
    SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port)))
}

fn from_sockaddr_in6(sin6: &sockaddr_in6) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::from(sin6.sin6_addr.s6_addr),
        u16::from_be(sin6.sin6_port),
        u32::from_be(sin6.sin6_flowinfo),
        sin6.sin6_scope_id,
    ))
}

/// Writes the bound port into the caller's address, as the real
/// functions leave it there.
///
/// # Safety
/// `sa` is NULL or points to a writable address of its family's size.
unsafe fn write_port(sa: *mut sockaddr, port: u16) {
    if sa.is_null() {
        return;
    }
    // SAFETY: the family field is readable (contract).
    let family = c_int::from(unsafe { std::ptr::read_unaligned(sa) }.sa_family);
    match family {
        libc::AF_INET => {
            let sin = sa.cast::<sockaddr_in>();
            // SAFETY: an AF_INET address is a writable sockaddr_in
            // (contract); addr_of_mut avoids an unaligned reference.
            unsafe { std::ptr::addr_of_mut!((*sin).sin_port).write_unaligned(port.to_be()) }
        }
        libc::AF_INET6 => {
            let sin6 = sa.cast::<sockaddr_in6>();
            // SAFETY: as above for sockaddr_in6.
            unsafe { std::ptr::addr_of_mut!((*sin6).sin6_port).write_unaligned(port.to_be()) }
        }
        _ => {}
    }
}

fn getsockopt_int(fd: RawFd, level: c_int, name: c_int) -> io::Result<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: `value` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut c_int).cast::<c_void>(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// The port `getsockname()` reports (0 while unbound).
fn bound_port(fd: RawFd) -> io::Result<u16> {
    let mut ss = MaybeUninit::<sockaddr_storage>::zeroed();
    let mut len = size_of::<sockaddr_storage>() as socklen_t;
    // SAFETY: `ss` is a sockaddr_storage and `len` its size; the kernel
    // writes at most `len` bytes.
    let rc = unsafe { libc::getsockname(fd, ss.as_mut_ptr().cast::<sockaddr>(), &mut len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised, then (partly) written by the kernel: every
    // bit pattern is a valid sockaddr_storage.
    let ss = unsafe { ss.assume_init() };
    let sa = (&ss as *const sockaddr_storage).cast::<sockaddr>();
    // SAFETY: `ss` is a live sockaddr_storage, big enough for both.
    Ok(match unsafe { read_sockaddr_len(sa, len) } {
        Requested::Addr(a) => a.port(),
        _ => 0,
    })
}

/// Domain, type, protocol, bound port and IPV6_V6ONLY of `fd`.
pub fn sock_info(fd: RawFd) -> io::Result<SockInfo> {
    let domain = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)?;
    let v6only =
        domain == libc::AF_INET6 && getsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)? != 0;
    Ok(SockInfo {
        domain,
        socktype: getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)?,
        protocol: getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)?,
        bound_port: bound_port(fd)?,
        v6only,
    })
}

fn fcntl_get(fd: RawFd, cmd: c_int) -> io::Result<c_int> {
    // SAFETY: F_GETFL/F_GETFD take no argument and only read.
    let rc = unsafe { libc::fcntl(fd, cmd) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// F_GETFL and F_GETFD of `fd`.
pub fn fd_flags(fd: RawFd) -> io::Result<FdFlags> {
    Ok(FdFlags {
        status: fcntl_get(fd, libc::F_GETFL)?,
        fd: fcntl_get(fd, libc::F_GETFD)?,
    })
}

/// Puts `received` in place of the caller's descriptor `sd` (dup3, which
/// closes the caller's socket), with the caller's O_NONBLOCK and
/// FD_CLOEXEC. The caller still closes `received` afterwards.
pub fn put_in_place(received: &OwnedFd, sd: RawFd, flags: FdFlags) -> io::Result<()> {
    let status = flags.status_for(fcntl_get(received.as_raw_fd(), libc::F_GETFL)?);
    // SAFETY: F_SETFL with an int argument on a descriptor we own.
    if unsafe { libc::fcntl(received.as_raw_fd(), libc::F_SETFL, status) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if received.as_raw_fd() == sd {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: dup3 on two open descriptors: `received` is ours, `sd` is
    // the caller's and is replaced atomically (the caller asked for its
    // socket to be bound; the number stays valid throughout).
    if unsafe { libc::dup3(received.as_raw_fd(), sd, flags.dup3_flags()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
#[path = "sys_tests.rs"]
mod tests;
