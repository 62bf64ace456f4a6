//! The compiled rule table the data plane looks packets up in, and the atomic swap that
//! publishes a new table to the workers.
//!
//! A [`RuleTable`] is immutable. The control plane builds a new one on every change and
//! [`TablePublisher::publish`]es it; each worker holds an `Arc<RuleTable>` and checks one atomic
//! generation counter per receive batch ([`TableReader::refresh`]), so a change never stops
//! traffic of other rules and never frees a table a worker still uses.
//! Lookup is O(1): a hash map keyed by (input interface, VLAN id, group, port, source) with a
//! small FxHash-style hasher; the key is 16 bytes.

use crate::stats::{OutputStats, RuleStats};
use netio::wire::FrameHeader;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Multiply-rotate hasher (the rustc FxHash scheme); keys are small fixed-size integers.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // The multiply mixes upwards; rotate the well-mixed high bits into the low bits the
        // hash table indexes with.
        self.hash.rotate_left(26)
    }
}

/// What a packet is matched on. `source` is `0.0.0.0` for any-source rules; `vlan` is the
/// 802.1Q VLAN id of the frame, 0 for untagged (and priority-tagged) frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    pub ifindex: u32,
    pub vlan: u16,
    pub group: Ipv4Addr,
    pub port: u16,
    pub source: Ipv4Addr,
}

impl std::hash::Hash for FlowKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(
            (u64::from(self.ifindex) << 32) | (u64::from(self.vlan) << 16) | u64::from(self.port),
        );
        state.write_u64((u64::from(self.group.to_bits()) << 32) | u64::from(self.source.to_bits()));
    }
}

/// One output of a compiled rule: where and with which headers to send.
#[derive(Debug, Clone)]
pub struct CompiledOutput {
    pub ifindex: u32,
    /// Template; `source_port` and `tos` are filled from each input packet.
    pub header: FrameHeader,
    /// `--egress udp`: the UDP socket of the output interface (payload only is sent).
    pub udp: Option<Arc<std::os::fd::OwnedFd>>,
    pub stats: Arc<OutputStats>,
}

/// A rule as the data plane sees it.
#[derive(Debug)]
pub struct CompiledRule {
    pub id: u64,
    pub stats: Arc<RuleStats>,
    pub outputs: Box<[CompiledOutput]>,
}

/// Immutable lookup table from input flow to rule.
#[derive(Debug, Default)]
pub struct RuleTable {
    map: HashMap<FlowKey, Arc<CompiledRule>, BuildHasherDefault<FxHasher>>,
    has_source_specific: bool,
}

impl RuleTable {
    pub fn new(rules: impl IntoIterator<Item = (FlowKey, Arc<CompiledRule>)>) -> Self {
        let mut table = RuleTable::default();
        for (key, rule) in rules {
            table.has_source_specific |= !key.source.is_unspecified();
            table.map.insert(key, rule);
        }
        table
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Finds the rule for a packet: a source-specific rule wins over an any-source rule.
    #[inline]
    pub fn lookup(
        &self,
        ifindex: u32,
        vlan: u16,
        group: Ipv4Addr,
        port: u16,
        source: Ipv4Addr,
    ) -> Option<&CompiledRule> {
        let mut key = FlowKey {
            ifindex,
            vlan,
            group,
            port,
            source,
        };
        if self.has_source_specific
            && let Some(rule) = self.map.get(&key)
        {
            return Some(rule);
        }
        key.source = Ipv4Addr::UNSPECIFIED;
        self.map.get(&key).map(|rule| &**rule)
    }
}

/// Control-plane side of the table swap.
#[derive(Debug, Default)]
pub struct TablePublisher {
    current: Mutex<Arc<RuleTable>>,
    generation: AtomicU64,
}

impl TablePublisher {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, Arc<RuleTable>> {
        // A poisoned lock only means a panic elsewhere; the Arc inside is still valid.
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `table` the one every worker uses from its next batch on.
    pub fn publish(&self, table: RuleTable) {
        *self.lock() = Arc::new(table);
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn current(&self) -> Arc<RuleTable> {
        self.lock().clone()
    }

    pub fn reader(self: &Arc<Self>) -> TableReader {
        TableReader {
            generation: self.generation.load(Ordering::Acquire),
            table: self.current(),
            publisher: self.clone(),
        }
    }
}

/// Worker side of the table swap: a cached `Arc<RuleTable>` refreshed when the generation moves.
#[derive(Debug)]
pub struct TableReader {
    publisher: Arc<TablePublisher>,
    generation: u64,
    table: Arc<RuleTable>,
}

impl TableReader {
    /// One atomic load when nothing changed.
    #[inline]
    pub fn refresh(&mut self) -> &RuleTable {
        let generation = self.publisher.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.generation = generation;
            self.table = self.publisher.current();
        }
        &self.table
    }

    #[inline]
    pub fn table(&self) -> &RuleTable {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn rule(id: u64) -> Arc<CompiledRule> {
        Arc::new(CompiledRule {
            id,
            stats: Arc::default(),
            outputs: Box::new([]),
        })
    }

    fn key(group: [u8; 4], port: u16, source: [u8; 4]) -> FlowKey {
        FlowKey {
            ifindex: 3,
            vlan: 0,
            group: group.into(),
            port,
            source: source.into(),
        }
    }

    #[test]
    fn source_specific_rule_wins_over_any_source() {
        let table = RuleTable::new([
            (key([239, 1, 0, 1], 5000, [0; 4]), rule(1)),
            (key([239, 1, 0, 1], 5000, [198, 18, 0, 1]), rule(2)),
        ]);
        let g = Ipv4Addr::new(239, 1, 0, 1);
        assert_eq!(
            table
                .lookup(3, 0, g, 5000, [198, 18, 0, 1].into())
                .unwrap()
                .id,
            2
        );
        assert_eq!(
            table
                .lookup(3, 0, g, 5000, [198, 18, 0, 9].into())
                .unwrap()
                .id,
            1
        );
        assert!(
            table
                .lookup(4, 0, g, 5000, [198, 18, 0, 1].into())
                .is_none()
        );
        assert!(
            table
                .lookup(3, 0, g, 5001, [198, 18, 0, 1].into())
                .is_none()
        );
    }

    #[test]
    fn source_specific_only_rule_does_not_match_other_sources() {
        let table = RuleTable::new([(key([239, 1, 0, 1], 5000, [198, 18, 0, 1]), rule(7))]);
        let g = Ipv4Addr::new(239, 1, 0, 1);
        assert!(
            table
                .lookup(3, 0, g, 5000, [198, 18, 0, 2].into())
                .is_none()
        );
        assert_eq!(
            table
                .lookup(3, 0, g, 5000, [198, 18, 0, 1].into())
                .unwrap()
                .id,
            7
        );
    }

    #[test]
    fn keys_that_differ_only_in_the_group_spread_over_buckets() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<FxHasher>::default();
        let mut low_bits = std::collections::HashSet::new();
        for n in 0..1024u32 {
            let k = FlowKey {
                ifindex: 3,
                vlan: 0,
                group: Ipv4Addr::from(0xef01_0001 + n),
                port: 5000,
                source: Ipv4Addr::UNSPECIFIED,
            };
            low_bits.insert(build.hash_one(k) & 1023);
        }
        assert!(
            low_bits.len() > 600,
            "only {} distinct buckets",
            low_bits.len()
        );
    }

    #[test]
    fn the_vlan_id_is_part_of_the_key() {
        let tagged = FlowKey {
            vlan: 100,
            ..key([239, 1, 0, 1], 5000, [0; 4])
        };
        let table = RuleTable::new([
            (tagged, rule(1)),
            (key([239, 1, 0, 2], 5000, [0; 4]), rule(2)),
        ]);
        let (g1, g2, s) = (
            Ipv4Addr::new(239, 1, 0, 1),
            Ipv4Addr::new(239, 1, 0, 2),
            Ipv4Addr::new(198, 18, 0, 1),
        );
        assert_eq!(table.lookup(3, 100, g1, 5000, s).unwrap().id, 1);
        assert!(table.lookup(3, 0, g1, 5000, s).is_none(), "untagged");
        assert!(table.lookup(3, 101, g1, 5000, s).is_none(), "other VLAN");
        assert_eq!(table.lookup(3, 0, g2, 5000, s).unwrap().id, 2);
        assert!(
            table.lookup(3, 100, g2, 5000, s).is_none(),
            "tagged, untagged rule"
        );
        assert_eq!(std::mem::size_of::<FlowKey>(), 16, "the key stays small");
    }

    #[test]
    fn readers_pick_up_published_tables() {
        let publisher = TablePublisher::new();
        let mut reader = publisher.reader();
        assert!(reader.refresh().is_empty());
        publisher.publish(RuleTable::new([(key([239, 1, 0, 1], 1, [0; 4]), rule(1))]));
        assert_eq!(reader.refresh().len(), 1);
        assert_eq!(reader.table().len(), 1);
    }
}
