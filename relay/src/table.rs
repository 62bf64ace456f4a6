//! The compiled rule table the data plane looks packets up in, and the atomic swap that
//! publishes a new table to the workers.
//!
//! A [`RuleTable`] is immutable. Every change makes a new version that shares all untouched
//! copy-on-write shards with the previous one (O(√n) per change instead of a full rebuild) and
//! [`TablePublisher::update`] publishes it; each worker holds an `Arc<RuleTable>` and checks one
//! atomic generation counter per receive batch ([`TableReader::refresh`]), so a change never
//! stops traffic of other rules, a worker always sees one complete version, and no table a
//! worker still uses is freed.
//! Lookup is O(1): the key's hash picks a shard, a hash map keyed by (input interface, VLAN id,
//! group, port, source) with a small FxHash-style hasher finds the rule. The key is 16 bytes.

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
    /// With `--dataplane tc`: the tcx program forwards this rule's datagrams, so the workers
    /// leave them alone ([`crate::tc_dataplane::forwards_in_kernel`]).
    pub in_kernel: bool,
}

/// One shard of a [`RuleTable`]: an ordinary hash map, shared between table versions until a
/// change touches it.
type Shard = HashMap<FlowKey, Arc<CompiledRule>, BuildHasherDefault<FxHasher>>;

/// Most shards a table uses (a table of 2^32 rules would still have 65,536-rule shards).
const MAX_SHARDS: usize = 1 << 16;

/// The shard count for `len` rules: the smallest power of two whose square is at least `len`,
/// so a change copies about √len shard pointers and √len rules.
fn shard_count_for(len: usize) -> usize {
    let mut shards = 1usize;
    while shards * shards < len && shards < MAX_SHARDS {
        shards *= 2;
    }
    shards
}

/// Where the shard bits start in [`flow_hash`]: its bits 10..26 (the multiplier's best-mixed
/// high bits, rotated down by [`FxHasher::finish`]). The shard maps index buckets with the low
/// bits and tag them with the top 7, so the shard bits must be neither, or every rule of a
/// shard would share them (bucket indexes stay below bit 10 up to ~900 rules per shard).
const SHARD_SHIFT: u32 = 10;

/// The hash every shard map uses for `key`; bits from [`SHARD_SHIFT`] on choose the shard.
#[inline]
fn flow_hash(key: &FlowKey) -> u64 {
    use std::hash::BuildHasher;
    BuildHasherDefault::<FxHasher>::default().hash_one(key)
}

/// Immutable lookup table from input flow to rule, split into copy-on-write shards.
///
/// A change ([`RuleTable::with_rule`], [`RuleTable::without_rule`]) builds a new table that
/// shares every untouched shard with the old one: it copies the shard pointers (about √n) and
/// the one shard it changes (about √n rules), not the whole table. When the rule count leaves
/// the range the shard count suits, the table is re-sharded once (O(n), amortised O(1)).
#[derive(Debug)]
pub struct RuleTable {
    shards: Box<[Arc<Shard>]>,
    len: usize,
    /// Source-specific rules in the table; the lookup tries the exact source only when > 0.
    source_specific: usize,
}

impl Default for RuleTable {
    fn default() -> Self {
        RuleTable {
            shards: Box::new([Arc::default()]),
            len: 0,
            source_specific: 0,
        }
    }
}

impl RuleTable {
    /// A table of `rules`; a later rule with the same key replaces an earlier one.
    pub fn new(rules: impl IntoIterator<Item = (FlowKey, Arc<CompiledRule>)>) -> Self {
        let rules: Vec<_> = rules.into_iter().collect();
        Self::sharded(shard_count_for(rules.len()), rules)
    }

    fn sharded(count: usize, rules: Vec<(FlowKey, Arc<CompiledRule>)>) -> Self {
        let mut shards: Vec<Shard> = (0..count).map(|_| Shard::default()).collect();
        let mut table = RuleTable {
            shards: Box::new([]),
            len: 0,
            source_specific: 0,
        };
        for (key, rule) in rules {
            let shard = &mut shards[shard_of(count, &key)];
            if shard.insert(key, rule).is_none() {
                table.len += 1;
                table.source_specific += usize::from(!key.source.is_unspecified());
            }
        }
        table.shards = shards.into_iter().map(Arc::new).collect();
        table
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many shards the table is split into (a power of two).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Every (key, rule) of the table, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&FlowKey, &Arc<CompiledRule>)> {
        self.shards.iter().flat_map(|shard| shard.iter())
    }

    /// The rule installed under exactly `key`.
    pub fn get(&self, key: &FlowKey) -> Option<&Arc<CompiledRule>> {
        self.shards[shard_of(self.shards.len(), key)].get(key)
    }

    /// A new table with `rule` under `key` (replacing the rule there); `self` is unchanged.
    pub fn with_rule(&self, key: FlowKey, rule: Arc<CompiledRule>) -> RuleTable {
        let replaces = self.get(&key).is_some();
        let len = self.len + usize::from(!replaces);
        if !replaces && len > self.shards.len() * self.shards.len() {
            return self.resharded(shard_count_for(len), Some((key, rule)), None);
        }
        let mut next = self.copy_with(&key, |shard| {
            shard.insert(key, rule);
        });
        if !replaces {
            next.len += 1;
            next.source_specific += usize::from(!key.source.is_unspecified());
        }
        next
    }

    /// A new table without the rule under `key` if that rule's id is `id` (a rule that has
    /// since been replaced under the same key stays); `self` is unchanged.
    pub fn without_rule(&self, key: &FlowKey, id: u64) -> RuleTable {
        if self.get(key).is_none_or(|rule| rule.id != id) {
            return self.copy_with(key, |_| {});
        }
        let len = self.len - 1;
        let shards = self.shards.len();
        if shards > 1 && len < shards * shards / 16 {
            return self.resharded(shards / 2, None, Some(key));
        }
        let mut next = self.copy_with(key, |shard| {
            shard.remove(key);
        });
        next.len = len;
        next.source_specific -= usize::from(!key.source.is_unspecified());
        next
    }

    /// Shares every shard but `key`'s, which is copied and changed by `change`.
    fn copy_with(&self, key: &FlowKey, change: impl FnOnce(&mut Shard)) -> RuleTable {
        let mut shards = self.shards.clone();
        let index = shard_of(shards.len(), key);
        change(Arc::make_mut(&mut shards[index]));
        RuleTable {
            shards,
            len: self.len,
            source_specific: self.source_specific,
        }
    }

    /// Rebuilds the table with `count` shards, plus `insert` and minus `remove`.
    fn resharded(
        &self,
        count: usize,
        insert: Option<(FlowKey, Arc<CompiledRule>)>,
        remove: Option<&FlowKey>,
    ) -> RuleTable {
        let rules = self
            .iter()
            .filter(|(key, _)| Some(*key) != remove)
            .map(|(key, rule)| (*key, rule.clone()))
            .chain(insert)
            .collect();
        Self::sharded(count, rules)
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
        if self.source_specific > 0
            && let Some(rule) = self.get(&key)
        {
            return Some(rule);
        }
        key.source = Ipv4Addr::UNSPECIFIED;
        self.get(&key).map(|rule| &**rule)
    }
}

/// The shard of `key` in a table of `count` shards (a power of two).
#[inline]
fn shard_of(count: usize, key: &FlowKey) -> usize {
    if count == 1 {
        return 0;
    }
    (flow_hash(key) >> SHARD_SHIFT) as usize & (count - 1)
}

/// Control-plane side of the table swap.
#[derive(Debug, Default)]
pub struct TablePublisher {
    current: Mutex<Arc<RuleTable>>,
    generation: AtomicU64,
    /// Serialises [`TablePublisher::update`]s, so no change is built on a stale table.
    writer: Mutex<()>,
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

    /// Publishes `change(current table)`: the incremental path ([`RuleTable::with_rule`],
    /// [`RuleTable::without_rule`]). The new table is built outside the lock workers take.
    pub fn update(&self, change: impl FnOnce(&RuleTable) -> RuleTable) {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let next = change(&self.current());
        self.publish(next);
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
            in_kernel: false,
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

    /// The table's content as sorted (key bits, rule id) pairs.
    fn content(table: &RuleTable) -> Vec<(u32, u32, u16, u32, u64)> {
        let mut rules: Vec<_> = table
            .iter()
            .map(|(k, r)| {
                let (group, source) = (k.group.to_bits(), k.source.to_bits());
                (k.ifindex, group, k.port, source, r.id)
            })
            .collect();
        rules.sort_unstable();
        rules
    }

    /// One change of the property test: add (or replace) or remove a rule on a small key space,
    /// so replacements and removals of present and absent keys all happen.
    #[derive(Debug, Clone)]
    enum Change {
        Add { slot: u16, source: bool },
        Remove { slot: u16, source: bool },
    }

    fn slot_key(slot: u16, source: bool) -> FlowKey {
        key(
            [239, 1, (slot >> 8) as u8, slot as u8],
            5000,
            if source { [198, 18, 0, 1] } else { [0; 4] },
        )
    }

    fn change() -> impl proptest::strategy::Strategy<Value = Change> {
        use proptest::prelude::*;
        prop_oneof![
            3 => (0..600u16, any::<bool>()).prop_map(|(slot, source)| Change::Add { slot, source }),
            2 => (0..600u16, any::<bool>()).prop_map(|(slot, source)| Change::Remove { slot, source }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(32))]
        /// Incremental changes give the same table as a full rebuild of the same rules, and
        /// every older version stays exactly as it was (readers may still hold it).
        #[test]
        fn incremental_changes_equal_a_full_rebuild(changes in proptest::collection::vec(change(), 1..800)) {
            let mut model: std::collections::HashMap<(u16, bool), u64> = Default::default();
            let mut table = RuleTable::default();
            let mut next_id = 1;
            for change in changes {
                let before = content(&table);
                let previous = table;
                table = match change {
                    Change::Add { slot, source } => {
                        model.insert((slot, source), next_id);
                        next_id += 1;
                        previous.with_rule(slot_key(slot, source), rule(next_id - 1))
                    }
                    Change::Remove { slot, source } => {
                        let id = model.remove(&(slot, source)).unwrap_or(0);
                        previous.without_rule(&slot_key(slot, source), id)
                    }
                };
                proptest::prop_assert_eq!(content(&previous), before);
                proptest::prop_assert!(table.shard_count() * table.shard_count() >= table.len());
            }
            let rebuilt = RuleTable::new(model.iter().map(|(&(slot, source), &id)| (slot_key(slot, source), rule(id))));
            proptest::prop_assert_eq!(content(&table), content(&rebuilt));
            proptest::prop_assert_eq!(table.len(), model.len());
            let source_specific = model.keys().filter(|(_, source)| *source).count();
            proptest::prop_assert_eq!(table.source_specific, source_specific);
            for (&(slot, source), &id) in &model {
                let k = slot_key(slot, source);
                let found = table.lookup(k.ifindex, k.vlan, k.group, k.port, [198, 18, 0, 1].into());
                let expected = if source { Some(id) } else { model.get(&(slot, true)).copied().or(Some(id)) };
                proptest::prop_assert_eq!(found.map(|r| r.id), expected);
            }
        }
    }

    #[test]
    fn removing_a_replaced_rule_by_its_old_id_keeps_the_new_one() {
        let k = key([239, 1, 0, 1], 5000, [0; 4]);
        let table = RuleTable::default()
            .with_rule(k, rule(1))
            .with_rule(k, rule(2));
        assert_eq!(table.len(), 1);
        let table = table.without_rule(&k, 1);
        assert_eq!(table.get(&k).map(|r| r.id), Some(2));
        assert!(table.without_rule(&k, 2).is_empty());
    }

    #[test]
    fn shards_grow_and_shrink_with_the_rule_count() {
        let mut table = RuleTable::default();
        for n in 0..5000u16 {
            table = table.with_rule(slot_key(n, false), rule(u64::from(n)));
        }
        assert_eq!(table.shard_count(), 128, "128^2 >= 5000 > 64^2");
        let busiest = table.shards.iter().map(|s| s.len()).max().unwrap();
        assert!(busiest < 120, "shards are balanced: {busiest}");
        for n in 0..4990u16 {
            table = table.without_rule(&slot_key(n, false), u64::from(n));
        }
        assert_eq!(table.len(), 10);
        assert!(table.shard_count() <= 16, "{}", table.shard_count());
        for n in 4990..5000u16 {
            let k = slot_key(n, false);
            assert_eq!(
                table
                    .lookup(3, 0, k.group, 5000, Ipv4Addr::UNSPECIFIED)
                    .unwrap()
                    .id,
                u64::from(n)
            );
        }
    }

    #[test]
    fn a_change_shares_the_untouched_shards() {
        let table = RuleTable::new((0..1000u16).map(|n| (slot_key(n, false), rule(u64::from(n)))));
        let next = table.with_rule(slot_key(2000, false), rule(2000));
        let shared = table
            .shards
            .iter()
            .zip(next.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert_eq!(shared, table.shard_count() - 1);
    }

    #[test]
    fn publisher_updates_build_on_the_current_table() {
        let publisher = TablePublisher::new();
        let mut reader = publisher.reader();
        publisher.update(|t| t.with_rule(key([239, 1, 0, 1], 1, [0; 4]), rule(1)));
        publisher.update(|t| t.with_rule(key([239, 1, 0, 2], 1, [0; 4]), rule(2)));
        assert_eq!(reader.refresh().len(), 2);
        publisher.update(|t| t.without_rule(&key([239, 1, 0, 1], 1, [0; 4]), 1));
        assert_eq!(reader.refresh().len(), 1);
    }
}
