//! Reservation sockets kept in systemd's file-descriptor store
//! (sd_pid_notify_with_fds(3), `FDSTORE=1`), so that a reserved port is
//! never free while the daemon restarts: each held socket is sent to the
//! service manager with `FDNAME=resv.<reservation>.<tcp|udp>`, removed
//! with `FDSTOREREMOVE=1` when the reservation is released, and handed
//! back at the next start in `LISTEN_FDS`/`LISTEN_FDNAMES`, where the
//! allocation service takes it instead of binding again. Does I/O (the
//! notification socket, socket queries). Not in any RFC: the systemd
//! notification protocol.
//!
//! The store is process-wide (installed once by `main`, before the
//! allocation service starts) so that the one place where a reservation
//! gets its socket (`alloc::sockets::bind`) can ask it without threading
//! it through the allocator. Without `NOTIFY_SOCKET` nothing is sent;
//! sockets passed back are used either way.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use portpolicy::alloc::Bind;
use proto::alloc::{Family, Socktype};
use socket2::{SockRef, Type};

use crate::notify::Notifier;

/// The `LISTEN_FDNAMES` prefix of reservation sockets (not listeners).
pub const PREFIX: &str = "resv.";

/// The longest name systemd accepts in `FDNAME=`.
const FDNAME_MAX: usize = 255;

/// The backlog a freshly bound reservation gets (as `alloc::sockets`).
const LISTEN_BACKLOG: i32 = 4096;

/// The store of this process, once installed.
static STORE: OnceLock<FdStore> = OnceLock::new();

/// The supervisor to send sockets to, and the sockets it passed back.
#[derive(Debug)]
struct FdStore {
    notifier: Option<Arc<Notifier>>,
    /// Passed back at start and not yet taken, by FDNAME.
    passed: Mutex<HashMap<String, OwnedFd>>,
}

/// Installs the store: `notifier` (if systemd listens) and the
/// reservation sockets it passed back. Called once, before the
/// allocation service binds anything; a second call is ignored.
pub fn install(notifier: Option<Arc<Notifier>>, passed: Vec<(String, OwnedFd)>) {
    let passed = passed.into_iter().collect();
    let _ = STORE.set(FdStore {
        notifier,
        passed: Mutex::new(passed),
    });
}

/// The FDNAME of a reservation's socket of type `socktype`. systemd
/// takes printable ASCII but ':' (the `LISTEN_FDNAMES` separator), up
/// to 255 characters; anything but `[A-Za-z0-9_.-]` becomes `_` here.
pub fn fdname(reservation: &str, socktype: Socktype) -> String {
    let clean: String = reservation
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = format!("{PREFIX}{clean}.{}", socktype.protocol_name());
    name.truncate(FDNAME_MAX);
    name
}

/// The socket systemd passed back for the reservation `bind` is about,
/// if it is what `bind` asks for (family, type, address, port); it is
/// then used instead of binding. A passed socket that does not match is
/// closed and removed from the store.
pub fn adopt(bind: &Bind) -> Option<OwnedFd> {
    let store = STORE.get()?;
    let name = fdname(bind.reservation.as_deref()?, bind.socktype);
    let fd = store.lock().remove(&name)?;
    match fits(&fd, bind) {
        Ok(()) => {
            tracing::info!("reservation socket {name} taken over from the service manager");
            Some(fd)
        }
        Err(why) => {
            tracing::warn!("socket {name} passed by the service manager not used: {why}");
            drop(fd);
            store.send(&format!("FDSTOREREMOVE=1\nFDNAME={name}"), None);
            None
        }
    }
}

/// Sends a reservation socket just held to the service manager's store.
pub fn store(bind: &Bind, fd: &OwnedFd) {
    let (Some(store), Some(reservation)) = (STORE.get(), bind.reservation.as_deref()) else {
        return;
    };
    let name = fdname(reservation, bind.socktype);
    store.send(&format!("FDSTORE=1\nFDNAME={name}"), Some(fd));
}

/// Tells the service manager to forget a released reservation's socket.
pub fn remove(reservation: &str, socktype: Socktype) {
    if let Some(store) = STORE.get() {
        let name = fdname(reservation, socktype);
        store.lock().remove(&name);
        store.send(&format!("FDSTOREREMOVE=1\nFDNAME={name}"), None);
    }
}

/// Closes the passed-back sockets no reservation took (reservations no
/// longer in the policy, or released) and removes them from the store.
/// Called once the allocation service has held its reservations.
pub fn discard_unadopted() {
    let Some(store) = STORE.get() else {
        return;
    };
    let stale: Vec<String> = store.lock().drain().map(|(name, _fd)| name).collect();
    for name in stale {
        tracing::info!("stored socket {name} belongs to no reservation: closed");
        store.send(&format!("FDSTOREREMOVE=1\nFDNAME={name}"), None);
    }
}

impl FdStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, OwnedFd>> {
        self.passed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, state: &str, fd: Option<&OwnedFd>) {
        let Some(n) = &self.notifier else {
            return;
        };
        match fd {
            Some(fd) => n.send_with_fd(state, fd.as_fd()),
            None => n.send(state),
        }
    }
}

/// Why `fd` is not the socket `bind` describes (family, type, v6only,
/// bound address); a TCP one is made to listen as a fresh one would.
fn fits(fd: &OwnedFd, bind: &Bind) -> Result<(), String> {
    let sock = SockRef::from(fd);
    let err = |e: std::io::Error| e.to_string();
    let ty = sock.r#type().map_err(err)?;
    let want_ty = match bind.socktype {
        Socktype::Stream => Type::STREAM,
        Socktype::Dgram => Type::DGRAM,
    };
    if ty != want_ty {
        return Err(format!("type {ty:?}, not {want_ty:?}"));
    }
    let local = sock
        .local_addr()
        .map_err(err)?
        .as_socket()
        .ok_or("not an IP socket")?;
    let unspecified = match bind.family {
        Family::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Family::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let want = SocketAddr::new(bind.addr.unwrap_or(unspecified), bind.port);
    if local != want {
        return Err(format!("bound to {local}, not {want}"));
    }
    if bind.family == Family::Inet6 && sock.only_v6().map_err(err)? != bind.v6only {
        return Err("IPV6_V6ONLY differs".to_owned());
    }
    if bind.listen {
        sock.listen(LISTEN_BACKLOG).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_to_systemds_alphabet_and_length() {
        assert_eq!(
            fdname("nfs.mountd", Socktype::Stream),
            "resv.nfs.mountd.tcp"
        );
        assert_eq!(fdname("a b:c", Socktype::Dgram), "resv.a_b_c.udp");
        assert_eq!(fdname(&"x".repeat(400), Socktype::Dgram).len(), FDNAME_MAX);
    }
}
