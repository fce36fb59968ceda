//! Who may hold a live stream: at most `max_streams` on the node and at most `per_host` from
//! one client address, so one host cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Streams held per client address.
type HostCounts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Why a stream was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The node serves `max_streams` streams already.
    NodeFull(usize),
    /// This client's address holds `per_host` streams already.
    HostFull(usize),
}

/// The node's stream slots. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StreamSlots {
    node: Arc<Semaphore>,
    max_streams: usize,
    /// 0: no cap per host.
    per_host: usize,
    hosts: HostCounts,
}

/// One admitted stream; its slots are given back when it is dropped.
#[derive(Debug)]
pub struct StreamSlot {
    _node: OwnedSemaphorePermit,
    host: Option<(IpAddr, HostCounts)>,
}

impl StreamSlots {
    pub fn new(max_streams: usize, per_host: usize) -> Self {
        Self {
            node: Arc::new(Semaphore::new(max_streams)),
            max_streams,
            per_host,
            hosts: Arc::default(),
        }
    }

    pub fn max_streams(&self) -> usize {
        self.max_streams
    }

    /// A slot for one more stream from `host` (`None`: an address the server did not give,
    /// as in in-process requests; only the node's cap applies).
    pub fn admit(&self, host: Option<IpAddr>) -> Result<StreamSlot, Refused> {
        let node = self
            .node
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::NodeFull(self.max_streams))?;
        let host = match host {
            Some(ip) if self.per_host > 0 => {
                let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
                let held = hosts.entry(ip).or_default();
                if *held >= self.per_host {
                    return Err(Refused::HostFull(self.per_host));
                }
                *held += 1;
                Some((ip, Arc::clone(&self.hosts)))
            }
            _ => None,
        };
        Ok(StreamSlot { _node: node, host })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Some((ip, hosts)) = self.host.take() {
            let mut hosts = hosts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(held) = hosts.get_mut(&ip) {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    hosts.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn the_node_admits_at_most_max_streams() {
        let slots = StreamSlots::new(2, 0);
        let first = slots.admit(ip(1)).unwrap();
        let _second = slots.admit(ip(2)).unwrap();
        assert_eq!(slots.admit(ip(3)).unwrap_err(), Refused::NodeFull(2));
        drop(first);
        assert!(slots.admit(ip(3)).is_ok());
    }

    #[test]
    fn one_host_holds_at_most_its_cap_and_others_still_get_in() {
        let slots = StreamSlots::new(10, 2);
        let first = slots.admit(ip(1)).unwrap();
        let _second = slots.admit(ip(1)).unwrap();
        assert_eq!(slots.admit(ip(1)).unwrap_err(), Refused::HostFull(2));
        assert!(slots.admit(ip(2)).is_ok(), "another host is admitted");
        drop(first);
        assert!(
            slots.admit(ip(1)).is_ok(),
            "a closed stream frees its host slot"
        );
    }

    #[test]
    fn a_host_refused_gives_back_its_node_slot() {
        let slots = StreamSlots::new(2, 1);
        let _held = slots.admit(ip(1)).unwrap();
        for _ in 0..5 {
            assert_eq!(slots.admit(ip(1)).unwrap_err(), Refused::HostFull(1));
        }
        assert!(slots.admit(ip(2)).is_ok());
    }

    #[test]
    fn without_an_address_only_the_node_cap_applies() {
        let slots = StreamSlots::new(3, 1);
        let _a = slots.admit(None).unwrap();
        let _b = slots.admit(None).unwrap();
        assert!(slots.admit(None).is_ok());
    }
}
