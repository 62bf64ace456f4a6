//! The open control connections, so that the connection limit never locks clients out: when
//! the limit is reached, a new client takes the place of the connection that has waited
//! longest between requests (it is told why and closed); only when every connection is in the
//! middle of a request - each bounded by its deadline - is the newcomer refused.

use std::collections::HashMap;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

struct Entry {
    /// A second handle on the connection's socket, to shut it down from outside.
    stream: UnixStream,
    /// Since when it waits for its next request; `None` while a request is under way.
    idle_since: Option<Instant>,
    evicted: Arc<AtomicBool>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    entries: HashMap<u64, Entry>,
}

/// The registry of open connections.
#[derive(Default)]
pub(super) struct Connections {
    inner: Mutex<Inner>,
}

/// One registered connection of a [`super::ControlServer`]; unregisters itself when dropped.
pub struct Slot {
    id: u64,
    connections: Arc<Connections>,
    evicted: Arc<AtomicBool>,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `stream` if there is room, making room by evicting the longest-idle
    /// connection; `None` when `limit` connections are all busy (or `stream` cannot be cloned).
    pub(super) fn admit(self: &Arc<Self>, stream: &UnixStream, limit: usize) -> Option<Slot> {
        let handle = stream.try_clone().ok()?;
        let mut inner = self.lock();
        if inner.entries.len() >= limit {
            let oldest = inner
                .entries
                .iter()
                .filter_map(|(id, e)| e.idle_since.map(|since| (since, *id)))
                .min()?;
            if let Some(entry) = inner.entries.remove(&oldest.1) {
                entry.evicted.store(true, Ordering::SeqCst);
                // Its reader sees EOF at once and says goodbye (see `Slot::evicted`).
                let _ = entry.stream.shutdown(Shutdown::Read);
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let evicted = Arc::new(AtomicBool::new(false));
        inner.entries.insert(
            id,
            Entry {
                stream: handle,
                idle_since: Some(Instant::now()),
                evicted: evicted.clone(),
            },
        );
        Some(Slot {
            id,
            connections: self.clone(),
            evicted,
        })
    }

    /// Open connections.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Shuts every connection down (server shutdown): their threads end at once.
    pub(super) fn close_all(&self) {
        for entry in self.lock().entries.values() {
            let _ = entry.stream.shutdown(Shutdown::Both);
        }
    }
}

impl Slot {
    /// Marks the connection idle (waiting for a request) or busy (a request under way).
    pub(super) fn set_idle(&self, idle: bool) {
        if let Some(entry) = self.connections.lock().entries.get_mut(&self.id) {
            // An idle connection keeps the time it became idle (its place in the queue).
            entry.idle_since = match (idle, entry.idle_since) {
                (true, Some(since)) => Some(since),
                (true, None) => Some(Instant::now()),
                (false, _) => None,
            };
        }
    }

    /// True once the connection was closed to make room for a new one.
    pub(super) fn evicted(&self) -> bool {
        self.evicted.load(Ordering::SeqCst)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.lock().entries.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_connection_makes_room_and_busy_ones_are_kept() {
        let connections = Arc::new(Connections::default());
        let streams: Vec<_> = (0..3).map(|_| UnixStream::pair().unwrap()).collect();
        let first = connections.admit(&streams[0].1, 2).unwrap();
        let second = connections.admit(&streams[1].1, 2).unwrap();
        second.set_idle(false);
        let third = connections.admit(&streams[2].1, 2).expect("room made");
        assert!(first.evicted() && !second.evicted() && !third.evicted());
        assert_eq!(connections.len(), 2);
        third.set_idle(false);
        let fourth = UnixStream::pair().unwrap();
        assert!(connections.admit(&fourth.1, 2).is_none(), "all busy");
        drop(first); // the evicted one unregistered already; dropping changes nothing
        assert_eq!(connections.len(), 2);
        drop(second);
        assert_eq!(connections.len(), 1);
    }
}
