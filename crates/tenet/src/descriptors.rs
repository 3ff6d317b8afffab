//! The process's descriptor limit, and the connection limit that follows from it.
//!
//! Each client connection takes a descriptor, and so does each upstream connection it
//! opens. Many systems start services with a soft limit of 1,024 and a much higher hard one;
//! a gateway left at 1,024 fails its accepts (and the ledger its file opens) after a few
//! hundred callers. `tenet up` raises its soft limit to the hard one, then caps its
//! connections so that a client and an upstream connection each, and a reserve for files,
//! fit: new connections then wait to be accepted instead of failing for want of descriptors.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tracing::{info, warn};

/// Most connections the gateway serves at once, however many descriptors there are.
pub const MAX_CONNECTIONS: usize = 50_000;
/// Descriptors kept for everything but connections: listeners, the ledger's files, policy
/// and configuration reads, the admin API, connections to identity providers and brokers.
const RESERVE: u64 = 512;
/// Connections allowed however low the limit (below it the gateway cannot do its job).
const MIN_CONNECTIONS: usize = 64;

/// Raise the soft descriptor limit as far as the connections need and the hard limit allows,
/// and return the connection limit it leaves room for. Logs what it did; a limit too low for
/// [`MAX_CONNECTIONS`] is logged at info with what to raise, one too low to serve at all at
/// warn.
pub fn raise_limit() -> usize {
    let wanted = wanted_descriptors();
    let limit = getrlimit(Resource::Nofile);
    let Some(current) = limit.current else {
        return MAX_CONNECTIONS;
    };
    let target = limit.maximum.map_or(wanted, |hard| hard.min(wanted));
    let now = if target > current {
        let raised = Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                info!(from = current, to = target, "descriptor limit raised");
                target
            }
            Err(e) => {
                warn!(limit = current, error = %e, "could not raise the descriptor limit");
                current
            }
        }
    } else {
        current
    };
    let connections = connections_for(now);
    if connections < MAX_CONNECTIONS {
        let hard = limit
            .maximum
            .map_or_else(|| "none".to_string(), |m| m.to_string());
        info!(descriptors = now, hard_limit = %hard, connections, wanted_descriptors = wanted,
            "connection limit set by the descriptor limit (raise the hard limit, e.g. \
             LimitNOFILE= or ulimit -Hn, for more)");
    }
    if connections <= MIN_CONNECTIONS {
        warn!(
            descriptors = now,
            connections, "the descriptor limit leaves room for very few connections"
        );
    }
    connections
}

/// Descriptors for [`MAX_CONNECTIONS`] connections with an upstream connection each, and the
/// reserve.
fn wanted_descriptors() -> u64 {
    u64::try_from(MAX_CONNECTIONS)
        .unwrap_or(u64::MAX)
        .saturating_mul(2)
        .saturating_add(RESERVE)
}

/// The connections `descriptors` leave room for: two descriptors each after the reserve,
/// between [`MIN_CONNECTIONS`] and [`MAX_CONNECTIONS`].
fn connections_for(descriptors: u64) -> usize {
    let pairs = descriptors.saturating_sub(RESERVE) / 2;
    usize::try_from(pairs)
        .unwrap_or(usize::MAX)
        .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_two_descriptors_each_after_the_reserve() {
        assert_eq!(connections_for(1_024), 256);
        assert_eq!(connections_for(20_000), 9_744);
        assert_eq!(connections_for(wanted_descriptors()), MAX_CONNECTIONS);
        assert_eq!(connections_for(u64::MAX), MAX_CONNECTIONS);
        assert_eq!(connections_for(100), MIN_CONNECTIONS);
    }
}
