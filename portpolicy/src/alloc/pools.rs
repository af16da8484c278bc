//! The ports the allocator may hand out, per socket type, in the order it
//! tries them: the policy's pool (`Policy::pool_in_order`) and the
//! privileged pool (ports below 1024 of the policy computed in privileged
//! mode, whatever the configured mode). Pure, no I/O.

use crate::config::{Config, ConfigError, Mode};
use crate::policy::{Policy, Reservation, Sources};
use crate::portset::PortSet;
use crate::Protocol;
use proto::alloc::Socktype;

/// The protocol whose pool serves a socket type.
pub fn protocol(socktype: Socktype) -> Protocol {
    match socktype {
        Socktype::Stream => Protocol::Tcp,
        Socktype::Dgram => Protocol::Udp,
    }
}

/// Index of a socket type in per-socktype arrays.
pub(crate) fn slot(socktype: Socktype) -> usize {
    match socktype {
        Socktype::Stream => 0,
        Socktype::Dgram => 1,
    }
}

/// What the allocator needs from the policy.
#[derive(Debug, Clone)]
pub struct AllocPolicy {
    /// Pool ports in allocation order, `[stream, dgram]`.
    pool: [Vec<u16>; 2],
    /// Privileged pool ports (< 1024) in allocation order.
    privileged: [Vec<u16>; 2],
    /// Every port either list holds, for PA_EXACT.
    allowed: [PortSet; 2],
    /// The policy's reservations the service holds (`hold = false` ones
    /// are only kept out of the pool: their daemons bind them).
    pub reservations: Vec<Reservation>,
}

impl AllocPolicy {
    /// Computes the policy and, in high mode, the same policy in
    /// privileged mode for PA_PRIVILEGED requests.
    pub fn compute(config: &Config, sources: &Sources) -> Result<Self, ConfigError> {
        let policy = Policy::compute(config, sources)?;
        if config.mode == Mode::Privileged {
            return Ok(Self::from_policies(&policy, &policy));
        }
        let privileged_config = Config {
            mode: Mode::Privileged,
            ..config.clone()
        };
        let privileged = Policy::compute(&privileged_config, sources)?;
        Ok(Self::from_policies(&policy, &privileged))
    }

    /// From a policy and the same policy computed in privileged mode (the
    /// same value when the mode is privileged).
    pub fn from_policies(policy: &Policy, privileged: &Policy) -> Self {
        let list = |p: &Policy, proto| p.pool_in_order(proto).collect::<Vec<u16>>();
        let low = |p: &Policy, proto| {
            p.pool_in_order(proto)
                .filter(|port| *port < 1024)
                .collect::<Vec<u16>>()
        };
        let pool = [list(policy, Protocol::Tcp), list(policy, Protocol::Udp)];
        let privileged = [
            low(privileged, Protocol::Tcp),
            low(privileged, Protocol::Udp),
        ];
        let allowed = [0, 1].map(|i| {
            let mut set = PortSet::new();
            for p in pool[i].iter().chain(&privileged[i]) {
                set.insert(*p);
            }
            set
        });
        AllocPolicy {
            pool,
            privileged,
            allowed,
            reservations: policy
                .reservations
                .iter()
                .filter(|r| r.hold)
                .cloned()
                .collect(),
        }
    }

    /// The pool for a socket type, in allocation order.
    pub fn pool(&self, socktype: Socktype) -> &[u16] {
        &self.pool[slot(socktype)]
    }

    /// The privileged pool for a socket type, in allocation order.
    pub fn privileged(&self, socktype: Socktype) -> &[u16] {
        &self.privileged[slot(socktype)]
    }

    /// Whether PA_EXACT may ask for `port`.
    pub fn allows(&self, port: u16, socktype: Socktype) -> bool {
        self.allowed[slot(socktype)].contains(port)
    }

    /// The reservation holding `port` for `socktype`, if any.
    pub fn reservation(&self, port: u16, socktype: Socktype) -> Option<&Reservation> {
        let proto = protocol(socktype);
        self.reservations
            .iter()
            .find(|r| r.port == port && r.protocols.covers(proto))
    }
}
