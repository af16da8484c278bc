//! Who may change the registry, and who owns a registration. Reproduces
//! Debian rpcbind 1.2.6 `security.c` (`check_access`, `is_loopback`,
//! `is_localroot`) and `getowner` in `rpcb_svc_com.c` / `pmap_svc.c`.
//! No I/O.
//!
//! * SET and UNSET (all versions) are refused with AUTH_ERROR /
//!   AUTH_TOOWEAK unless the caller is local: the AF_LOCAL socket, or a
//!   caller whose address is exactly 127.0.0.1, ::1 or ::ffff:127.0.0.1
//!   (Debian's build; newer upstream needs `-L` for the loopback case, see
//!   [`EngineConfig::local_socket_only`]). `insecure` (`-i`) lifts it.
//! * Owner: on the local socket the peer's uid (`superuser` for 0, else
//!   the uid printed with C's `%d`), `unknown` without credentials; on
//!   IP transports `superuser` for a loopback caller from a port below
//!   1024, `unknown` otherwise.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::{EngineConfig, RequestContext, Transport};

const IPPORT_RESERVED: u16 = 1024;

fn loopback_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a == Ipv4Addr::LOCALHOST,
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped() == Some(Ipv4Addr::LOCALHOST),
    }
}

fn loopback_peer(config: &EngineConfig, peer: Option<SocketAddr>) -> Option<SocketAddr> {
    peer.filter(|p| !config.local_socket_only && loopback_ip(p.ip()))
}

/// C `is_loopback`.
pub(crate) fn is_loopback(config: &EngineConfig, ctx: &RequestContext) -> bool {
    ctx.transport == Transport::Local || loopback_peer(config, ctx.peer).is_some()
}

/// C `is_localroot`: a loopback caller on a privileged port (never the
/// AF_LOCAL socket, whose callers are identified by uid instead).
pub(crate) fn is_localroot(config: &EngineConfig, ctx: &RequestContext) -> bool {
    ctx.transport != Transport::Local
        && loopback_peer(config, ctx.peer).is_some_and(|p| p.port() < IPPORT_RESERVED)
}

/// C `check_access` for SET and UNSET.
pub(crate) fn may_change(config: &EngineConfig, ctx: &RequestContext) -> bool {
    config.insecure || is_loopback(config, ctx)
}

/// C `getowner`: the owner string recorded by SET and checked by UNSET.
pub(crate) fn owner(config: &EngineConfig, ctx: &RequestContext) -> Cow<'static, str> {
    let uid = match ctx.transport {
        Transport::Local => ctx.peer_uid,
        _ => None,
    };
    match uid {
        Some(0) => Cow::Borrowed("superuser"),
        // C prints the uid_t with "%d".
        Some(uid) => Cow::Owned((uid as i32).to_string()),
        None if is_localroot(config, ctx) => Cow::Borrowed("superuser"),
        None => Cow::Borrowed("unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip_ctx(transport: Transport, peer: &str) -> RequestContext {
        RequestContext {
            transport,
            peer: Some(peer.parse().unwrap()),
            local: None,
            peer_uid: None,
        }
    }

    fn local_ctx(uid: Option<u32>) -> RequestContext {
        RequestContext {
            transport: Transport::Local,
            peer: None,
            local: None,
            peer_uid: uid,
        }
    }

    #[test]
    fn owner_strings_follow_getowner() {
        let c = EngineConfig::default();
        assert_eq!(owner(&c, &local_ctx(Some(0))), "superuser");
        assert_eq!(owner(&c, &local_ctx(Some(1000))), "1000");
        assert_eq!(owner(&c, &local_ctx(Some(u32::MAX - 1))), "-2");
        assert_eq!(owner(&c, &local_ctx(None)), "unknown");
        assert_eq!(
            owner(&c, &ip_ctx(Transport::Udp, "127.0.0.1:700")),
            "superuser"
        );
        assert_eq!(
            owner(&c, &ip_ctx(Transport::Tcp6, "[::1]:1023")),
            "superuser"
        );
        assert_eq!(
            owner(&c, &ip_ctx(Transport::Udp, "127.0.0.1:1024")),
            "unknown"
        );
        assert_eq!(
            owner(&c, &ip_ctx(Transport::Udp, "127.0.0.2:700")),
            "unknown"
        );
        assert_eq!(
            owner(&c, &ip_ctx(Transport::Udp, "10.9.9.9:700")),
            "unknown"
        );
    }

    #[test]
    fn only_local_callers_may_change_the_registry() {
        let c = EngineConfig::default();
        assert!(may_change(&c, &local_ctx(Some(1000))));
        assert!(may_change(&c, &ip_ctx(Transport::Tcp, "127.0.0.1:40000")));
        assert!(may_change(&c, &ip_ctx(Transport::Udp6, "[::1]:40000")));
        assert!(may_change(
            &c,
            &ip_ctx(Transport::Tcp6, "[::ffff:127.0.0.1]:4")
        ));
        assert!(!may_change(&c, &ip_ctx(Transport::Udp, "127.0.0.2:700")));
        assert!(!may_change(&c, &ip_ctx(Transport::Udp, "10.9.9.9:700")));
        let strict = EngineConfig {
            local_socket_only: true,
            ..EngineConfig::default()
        };
        assert!(!may_change(
            &strict,
            &ip_ctx(Transport::Tcp, "127.0.0.1:700")
        ));
        assert_eq!(
            owner(&strict, &ip_ctx(Transport::Tcp, "127.0.0.1:700")),
            "unknown"
        );
        assert!(may_change(&strict, &local_ctx(None)));
        let insecure = EngineConfig {
            insecure: true,
            ..EngineConfig::default()
        };
        assert!(may_change(
            &insecure,
            &ip_ctx(Transport::Udp, "10.9.9.9:700")
        ));
    }
}
