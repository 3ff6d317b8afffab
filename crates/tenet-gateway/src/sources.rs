//! Open connections per source: no one address (or IPv6 /64) may hold more than its share of
//! the connection limit, whether its connections are still in their TLS handshake, idle
//! between requests or busy. A connection past its source's share is dropped at once, like one
//! past the connection limit, so that one host cannot take every connection the gateway has.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tenet_throttle::source_network;

/// The connections open per source, and the most each may hold.
#[derive(Debug)]
pub(crate) struct SourceSlots {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of a source; dropping it frees its slot.
#[derive(Debug)]
pub(crate) struct SourceSlot {
    slots: Arc<SourceSlots>,
    source: IpAddr,
}

impl SourceSlots {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The most connections one source may hold.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // INVARIANT: no code path panics while holding the lock.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for one more connection from `ip`, or `None` when its source holds its limit.
    pub(crate) fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let source = source_network(ip);
        let mut open = self.lock();
        let count = open.entry(source).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            slots: self.clone(),
            source,
        })
    }

    /// How many connections `ip`'s source holds.
    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        self.lock().get(&source_network(ip)).copied().unwrap_or(0)
    }

    /// How many sources hold connections.
    #[cfg(test)]
    fn sources(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        if let Some(count) = open.get_mut(&self.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_source_holds_at_most_its_limit_and_dropped_slots_are_freed() {
        let slots = SourceSlots::new(2);
        let a = slots.enter(ip("192.0.2.1")).unwrap();
        let b = slots.enter(ip("::ffff:192.0.2.1")).unwrap();
        assert!(slots.enter(ip("192.0.2.1")).is_none(), "a third connection");
        // Another source has slots of its own; an IPv6 /64 is one source.
        let c = slots.enter(ip("192.0.2.2")).unwrap();
        let d = slots.enter(ip("2001:db8::1")).unwrap();
        let e = slots.enter(ip("2001:db8::ffff:2")).unwrap();
        assert!(slots.enter(ip("2001:db8::3")).is_none());
        assert!(slots.enter(ip("2001:db8:0:1::3")).is_some());
        assert_eq!(slots.open(ip("192.0.2.1")), 2);

        drop(a);
        assert_eq!(slots.open(ip("192.0.2.1")), 1);
        let a = slots.enter(ip("192.0.2.1")).unwrap();
        drop((a, b, c, d, e));
        // Sources without connections are forgotten: the table holds only open connections.
        assert_eq!(slots.sources(), 0);
    }
}
