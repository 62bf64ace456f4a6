//! Forwarding in the kernel: a tcx ingress program that copies an input UDP datagram to each
//! of a rule's outputs (`relay run --dataplane tc`).
//!
//! The user-space data plane builds every output frame in a transmit ring and the kernel then
//! allocates an skb per frame; the kernel's own multicast forwarding clones one skb per
//! output instead. This program does what the kernel does, without its route lookups: at the
//! input interface's tcx ingress it finds the rule of (interface, group, port, source) in a
//! map, and for each output writes the output's Ethernet, IPv4 and UDP headers into the frame
//! and hands a clone to the output interface (`bpf_clone_redirect`; the kernel copies the
//! header of the original before the next rewrite, the payload is shared); the last output
//! gets the input frame itself (`bpf_redirect`: no clone, no copy, so fan-out 1 costs one
//! header write). The host's IP stack never sees the input (as with `--input-filter`). The
//! last output's send is the kernel's after the program returns: a failure there (the
//! interface went away) is the kernel's drop, not this program's `failed` count.
//!
//! What each output frame carries is what the user-space builder writes
//! ([`crate::wire::write_frame`]): the output's MACs, addresses and port, the input's TOS,
//! source port and lengths, DF, IP id 0, TTL by the rule's policy, a new IPv4 header checksum.
//! The UDP checksum is adjusted for the changed addresses and port with
//! `bpf_l4_csum_replace` (so a checksum the sending device has not finished yet, as a veth's
//! `CHECKSUM_PARTIAL`, stays right); an input without one (0) leaves without one. Only IPv4
//! with a 20-byte header, unfragmented, untagged (no VLAN), reaches a rule; anything else goes
//! on to the stack untouched.
//!
//! The map's value per rule ([`FanoutRule::value`]): counters, the TTL policy, and per output
//! a 48-byte header template with the per-packet fields zero, its interface, the IPv4 header's
//! partial sum and the UDP checksum's differences, and two counters.
//!
//! Timing (`relay run --dataplane tc --timing`, [`TcFanout::load`] with `timing`): the program
//! reads `bpf_ktime_get_ns` on entry, when the rule is found and before the last output's
//! redirect, and adds per rule the datagrams timed, the nanoseconds to find the rule (checks
//! and lookup) and those of the fan-out (every output's header, checksum and, but for the
//! last, the clone handed to its interface, which includes that interface's transmit). The
//! last output's send happens after the program returns and is not in it. Three clock reads
//! per datagram cost time of their own (tens of ns each on a VM), so this program is a
//! separate one, loaded only when asked.
//!
//! Handicap (`relay run --dataplane tc --handicap-ns N`, the regression gate's slowed canary;
//! [`ProgramOptions::handicap_ns`]): after finding a rule the program reads the clock until N
//! ns have passed, at most [`HANDICAP_MAX_SPINS`] readings (the verifier needs a bound), so
//! every forwarded datagram costs about N ns more of softirq time.
//!
//! The program (r6 context, r7 the rule, r8 the output index, r9 the output; stack: key at
//! -16, per-packet fields -64..-17, the header being built at -112, the payload length at
//! -120, with timing the entry and lookup clock readings at -128 and -136, the handicap's start
//! at -144):
//! ```text
//!  (timing: entry clock)
//!  untagged IPv4, IHL 5, unfragmented UDP, else next
//!  key = (ingress_ifindex, destination, destination port, source); lookup, else with source 0
//!  none, or a pass entry (no outputs: another forwarder's rule): next
//!  (timing: rule.timed += 1, rule.lookup_ns += now - entry; lookup clock)
//!  (handicap: read the clock until N ns passed or HANDICAP_MAX_SPINS readings)
//!  TTL by the rule's policy (decrement: arriving <= 1 is expired: count, drop)
//!  keep TOS, total length, source port, UDP checksum (network order) and the source's sum;
//!  rule.rx += 1, rule.rx_bytes += payload
//!  for each output (at most MAX_OUTPUTS):
//!    header = template; patch TOS, total length, TTL, IPv4 checksum, source port, UDP length,
//!    the input's UDP checksum
//!    bpf_skb_store_bytes(skb, 0, header, 42, recompute csum)
//!    bpf_l4_csum_replace(skb, 40, 0, address diff, pseudo header | mangled 0)
//!    if the port changes: bpf_l4_csum_replace(skb, 40, 0, port diff, mangled 0)
//!    all but the last output: bpf_clone_redirect(skb, output ifindex, egress),
//!    output.sent += 1 and its bytes, or output.failed += 1 if a helper failed
//!    the last: output.sent += 1 and its bytes, (timing: rule.fanout_ns += now - lookup
//!    clock), return bpf_redirect(output ifindex, egress)
//!  drop the input (only if the last output's header could not be written)
//! ```

use crate::bpf::{self, Alu, Asm, Cond, HashMap, Insn, Program, Size, TcxLink};
use crate::input_drop::{LoadError, TCX_DROP, TCX_NEXT};
use crate::wire::{self, FrameHeader};
use std::io;
use std::net::Ipv4Addr;

/// Most outputs one rule can have with this data plane (the program's loop bound).
pub const MAX_OUTPUTS: usize = 32;

const KEY_BYTES: usize = 16;
const RULE_HEADER_BYTES: usize = 56;
const OUTPUT_BYTES: usize = 88;
const VALUE_BYTES: usize = RULE_HEADER_BYTES + MAX_OUTPUTS * OUTPUT_BYTES;
/// Bytes of Ethernet + IPv4 + UDP header the program writes per output.
const HEADER_BYTES: usize = wire::PAYLOAD_OFFSET;

// Rule fields.
const RULE_RX: i16 = 0;
const RULE_TTL_EXPIRED: i16 = 8;
const RULE_OUTPUTS: i16 = 16;
const RULE_TTL_LIMIT: i16 = 20;
const RULE_TTL_SET: i16 = 21;
const RULE_RX_BYTES: i16 = 24;
const RULE_TIMED: i16 = 32;
const RULE_LOOKUP_NS: i16 = 40;
const RULE_FANOUT_NS: i16 = 48;
// Output fields (from the output's start).
const OUT_IFINDEX: i16 = 48;
const OUT_IP_SUM: i16 = 52;
const OUT_ADDRESS_DIFF: i16 = 56;
const OUT_PORT_DIFF: i16 = 60;
const OUT_SENT: i16 = 64;
const OUT_FAILED: i16 = 72;
const OUT_SENT_BYTES: i16 = 80;
// Stack slots.
const KEY: i16 = -16;
const TOS: i16 = -24;
const TOTAL_LEN: i16 = -32;
const TTL: i16 = -40;
const SOURCE_PORT_BE: i16 = -48;
const SOURCE_DIFF: i16 = -56;
const UDP_CHECKSUM_BE: i16 = -64;
const HEADER: i16 = -112;
const PAYLOAD_LEN: i16 = -120;
const ENTRY_CLOCK: i16 = -128;
const LOOKUP_CLOCK: i16 = -136;
const HANDICAP_START: i16 = -144;

/// Most clock readings of the handicap's wait (tens of ns each: tens of microseconds at most).
pub const HANDICAP_MAX_SPINS: i32 = 4096;

/// Which variant of the program to load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgramOptions {
    /// Time each datagram's stages (module documentation).
    pub timing: bool,
    /// Test only: wait this many ns per forwarded datagram (0 = none).
    pub handicap_ns: u32,
}

/// The rule an input datagram is looked up by: interface index, destination group and port,
/// and source (`UNSPECIFIED` for a rule that takes any source; a source-specific rule is
/// looked up first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FanoutKey {
    pub ifindex: u32,
    pub group: Ipv4Addr,
    pub port: u16,
    pub source: Ipv4Addr,
}

impl FanoutKey {
    /// The map key: four `u32` in host order, as the program stores them.
    fn bytes(&self) -> [u8; KEY_BYTES] {
        let mut key = [0; KEY_BYTES];
        key[..4].copy_from_slice(&self.ifindex.to_ne_bytes());
        key[4..8].copy_from_slice(&u32::from(self.group).to_ne_bytes());
        key[8..12].copy_from_slice(&u32::from(self.port).to_ne_bytes());
        key[12..].copy_from_slice(&u32::from(self.source).to_ne_bytes());
        key
    }
}

/// One output: the interface it leaves by and the header fields the rule fixes (`header`'s
/// source port, TOS, TTL and ident are not used: they come from the input and the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanoutOutput {
    pub ifindex: u32,
    pub header: FrameHeader,
}

/// A rule as the program reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutRule {
    pub key: FanoutKey,
    /// `--ttl`: the highest TTL an output leaves with.
    pub ttl_limit: u8,
    /// `--ttl-mode set`: every output leaves with `ttl_limit`; otherwise min(limit, TTL - 1)
    /// and an arriving TTL <= 1 is not forwarded.
    pub ttl_set: bool,
    pub outputs: Vec<FanoutOutput>,
}

impl FanoutRule {
    /// A pass entry: the program hands `key`'s datagrams on untouched (to the host stack and
    /// whoever else forwards them), uncounted. Without it a source-specific rule forwarded
    /// elsewhere would fall through to an any-source rule of this map.
    pub fn pass(key: FanoutKey) -> FanoutRule {
        FanoutRule {
            key,
            ttl_limit: 0,
            ttl_set: false,
            outputs: Vec::new(),
        }
    }
}

/// Why a rule cannot be given to the program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("{0} outputs: the tc data plane forwards to at most {MAX_OUTPUTS} per rule")]
    TooManyOutputs(usize),
}

impl FanoutRule {
    /// The map value: counters zero, the policy, and per output its template and sums.
    pub fn value(&self) -> Result<Vec<u8>, RuleError> {
        if self.outputs.len() > MAX_OUTPUTS {
            return Err(RuleError::TooManyOutputs(self.outputs.len()));
        }
        let mut value = vec![0u8; VALUE_BYTES];
        put_u32(&mut value, RULE_OUTPUTS, self.outputs.len() as u32);
        value[RULE_TTL_LIMIT as usize] = self.ttl_limit;
        value[RULE_TTL_SET as usize] = u8::from(self.ttl_set);
        for (index, output) in self.outputs.iter().enumerate() {
            let start = RULE_HEADER_BYTES + index * OUTPUT_BYTES;
            self.write_output(&mut value[start..start + OUTPUT_BYTES], output);
        }
        Ok(value)
    }

    fn write_output(&self, out: &mut [u8], output: &FanoutOutput) {
        let template = header_template(&output.header);
        out[..HEADER_BYTES].copy_from_slice(&template);
        put_u32(out, OUT_IFINDEX, output.ifindex);
        let ip_sum = wire::checksum::sum(&template[wire::IPV4_OFFSET..wire::UDP_OFFSET]);
        put_u32(out, OUT_IP_SUM, ip_sum);
        let (address_diff, port_diff) = udp_checksum_diffs(&self.key, &output.header);
        put_u32(out, OUT_ADDRESS_DIFF, address_diff);
        put_u32(out, OUT_PORT_DIFF, port_diff);
    }
}

fn put_u32(buf: &mut [u8], at: i16, value: u32) {
    let at = at as usize;
    buf[at..at + 4].copy_from_slice(&value.to_ne_bytes());
}

/// The headers `header` fixes, built by the one frame builder, with the fields the program
/// writes per packet zero: TOS, total length, TTL, IPv4 checksum, source port, UDP length and
/// checksum.
fn header_template(header: &FrameHeader) -> [u8; HEADER_BYTES] {
    let fixed = FrameHeader {
        source_port: 0,
        ttl: 0,
        tos: 0,
        ident: 0,
        ..*header
    };
    let mut frame = [0u8; HEADER_BYTES];
    // A header-sized buffer always holds the headers of an empty payload.
    if wire::write_headers(&mut frame, &fixed, 0, 0).is_err() {
        unreachable!("{HEADER_BYTES} bytes hold the headers");
    }
    for at in [16, 17, 24, 25, 38, 39, 40, 41] {
        frame[at] = 0;
    }
    frame
}

/// One's-complement 16-bit words of `bytes` as they lie in memory (host order): the domain of
/// the kernel's checksum helpers.
fn memory_words(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes
        .chunks(2)
        .map(|w| u32::from(u16::from_ne_bytes([w[0], w[1]])))
}

/// The UDP checksum's change from the input (destination `key.group`, port `key.port`) to
/// `header`'s addresses and port, in the kernel helpers' domain: the address part without the
/// input's source (the program adds its complement per packet), and the port part (0 when
/// the port stays).
fn udp_checksum_diffs(key: &FanoutKey, header: &FrameHeader) -> (u32, u32) {
    let complement = |w: u32| !w & 0xffff;
    let address: u32 = memory_words(&header.source.octets())
        .chain(memory_words(&header.group.octets()))
        .chain(memory_words(&key.group.octets()).map(complement))
        .sum();
    let port = if header.destination_port == key.port {
        0
    } else {
        memory_words(&header.destination_port.to_be_bytes()).sum::<u32>()
            + complement(memory_words(&key.port.to_be_bytes()).sum())
    };
    (address, port)
}

/// Counters of one rule, read from the map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanoutCounters {
    /// Datagrams that matched the rule and were forwarded (TTL left), and their UDP payload
    /// bytes.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Datagrams not forwarded because their TTL ran out.
    pub ttl_expired: u64,
    /// Per output: copies handed to the interface, their payload bytes, and copies a helper
    /// refused.
    pub sent: Vec<u64>,
    pub sent_bytes: Vec<u64>,
    pub failed: Vec<u64>,
    /// With timing: datagrams timed, nanoseconds spent finding their rule, and nanoseconds
    /// of their fan-out (all outputs' headers, the clones' sends; 0 for an expired TTL).
    pub timed: u64,
    pub lookup_ns: u64,
    pub fanout_ns: u64,
}

impl FanoutCounters {
    fn parse(value: &[u8]) -> FanoutCounters {
        let u64_at = |at: usize| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&value[at..at + 8]);
            u64::from_ne_bytes(bytes)
        };
        let mut count = [0; 4];
        count.copy_from_slice(&value[RULE_OUTPUTS as usize..RULE_OUTPUTS as usize + 4]);
        let outputs = (u32::from_ne_bytes(count) as usize).min(MAX_OUTPUTS);
        let output_at =
            |index: usize, field: i16| RULE_HEADER_BYTES + index * OUTPUT_BYTES + field as usize;
        FanoutCounters {
            rx_packets: u64_at(RULE_RX as usize),
            rx_bytes: u64_at(RULE_RX_BYTES as usize),
            ttl_expired: u64_at(RULE_TTL_EXPIRED as usize),
            timed: u64_at(RULE_TIMED as usize),
            lookup_ns: u64_at(RULE_LOOKUP_NS as usize),
            fanout_ns: u64_at(RULE_FANOUT_NS as usize),
            sent_bytes: (0..outputs)
                .map(|i| u64_at(output_at(i, OUT_SENT_BYTES)))
                .collect(),
            sent: (0..outputs)
                .map(|i| u64_at(output_at(i, OUT_SENT)))
                .collect(),
            failed: (0..outputs)
                .map(|i| u64_at(output_at(i, OUT_FAILED)))
                .collect(),
        }
    }
}

/// Folds the one's-complement sum in `reg` twice (to 16 bits plus at most nothing), using
/// `scratch`.
fn fold(asm: &mut Asm, reg: u8, scratch: u8) {
    for _ in 0..2 {
        asm.push([
            Insn::mov(scratch, reg),
            Insn::alu_imm(Alu::Rsh, scratch, 16),
            Insn::alu_imm(Alu::And, reg, 0xffff),
            Insn::alu(Alu::Add, reg, scratch),
        ]);
    }
}

/// Checks the frame and looks its rule up; r7 = the rule. Jumps to `next` for anything else.
fn emit_lookup(asm: &mut Asm, map: &HashMap, timing: bool) {
    asm.push([Insn::mov(6, 1)]);
    if timing {
        emit_clock(asm, ENTRY_CLOCK);
    }
    asm.push([Insn::load(Size::Word, 0, 6, bpf::SKB_VLAN_PRESENT)]);
    asm.jump(Cond::Ne, 0, 0, "next");
    for (size, offset, expected) in [
        (Size::Half, 12, 0x0800), // EtherType IPv4
        (Size::Byte, 14, 0x45),   // version 4, 20-byte header
        (Size::Byte, 23, 17),     // UDP
    ] {
        asm.push([Insn::load_packet(size, offset)]);
        asm.jump(Cond::Ne, 0, expected, "next");
    }
    asm.push([
        Insn::load_packet(Size::Half, 20),
        Insn::alu_imm(Alu::And, 0, 0x3fff), // MF or an offset: a fragment
    ]);
    asm.jump(Cond::Ne, 0, 0, "next");
    asm.push([
        Insn::load_packet(Size::Word, 30),
        Insn::store(Size::Word, 10, KEY + 4, 0),
        Insn::load_packet(Size::Half, 36),
        Insn::store(Size::Word, 10, KEY + 8, 0),
        Insn::load_packet(Size::Word, 26),
        Insn::store(Size::Word, 10, KEY + 12, 0),
        Insn::store(Size::Double, 10, SOURCE_DIFF, 0),
        Insn::load_word(1, 6, bpf::SKB_INGRESS_IFINDEX),
        Insn::store(Size::Word, 10, KEY, 1),
    ]);
    emit_map_lookup(asm, map);
    asm.jump(Cond::Ne, 0, 0, "found");
    asm.push([
        Insn::mov_imm(1, 0),
        Insn::store(Size::Word, 10, KEY + 12, 1),
    ]);
    emit_map_lookup(asm, map);
    asm.jump(Cond::Eq, 0, 0, "next");
    asm.label("found");
    asm.push([Insn::mov(7, 0), Insn::load(Size::Word, 1, 7, RULE_OUTPUTS)]);
    asm.jump(Cond::Eq, 1, 0, "next");
    if timing {
        asm.push([Insn::mov_imm(1, 1), Insn::atomic_add(7, RULE_TIMED, 1)]);
        emit_elapsed(asm, ENTRY_CLOCK, RULE_LOOKUP_NS);
        asm.push([Insn::store(Size::Double, 10, LOOKUP_CLOCK, 0)]);
    }
}

/// The handicap: reads the clock until `ns` have passed since the first reading, at most
/// [`HANDICAP_MAX_SPINS`] times (r8 counts them; it is free until the output loop).
fn emit_handicap(asm: &mut Asm, ns: u32) {
    emit_clock(asm, HANDICAP_START);
    asm.push([Insn::mov_imm(8, 0)]);
    asm.label("spin");
    asm.push([
        Insn::call(bpf::HELPER_KTIME_GET_NS),
        Insn::load(Size::Double, 1, 10, HANDICAP_START),
        Insn::alu(Alu::Sub, 0, 1),
    ]);
    asm.jump(Cond::Ge, 0, ns.min(i32::MAX as u32) as i32, "spun");
    asm.push([Insn::add_imm(8, 1)]);
    asm.jump(Cond::Lt, 8, HANDICAP_MAX_SPINS, "spin");
    asm.label("spun");
}

/// Stores the clock at `slot` of the stack (r0 = the clock; r1-r5 are clobbered).
fn emit_clock(asm: &mut Asm, slot: i16) {
    asm.push([
        Insn::call(bpf::HELPER_KTIME_GET_NS),
        Insn::store(Size::Double, 10, slot, 0),
    ]);
}

/// Adds the nanoseconds since the clock at `since` to the rule's counter at `field`; r0 = the
/// clock now.
fn emit_elapsed(asm: &mut Asm, since: i16, field: i16) {
    asm.push([
        Insn::call(bpf::HELPER_KTIME_GET_NS),
        Insn::mov(1, 0),
        Insn::load(Size::Double, 2, 10, since),
        Insn::alu(Alu::Sub, 1, 2),
        Insn::atomic_add(7, field, 1),
    ]);
}

fn emit_map_lookup(asm: &mut Asm, map: &HashMap) {
    asm.push(Insn::load_map(1, map));
    asm.push([
        Insn::mov(2, 10),
        Insn::add_imm(2, i32::from(KEY)),
        Insn::call(bpf::HELPER_MAP_LOOKUP),
    ]);
}

/// The TTL the outputs leave with (stack `TTL`), or `expired`.
fn emit_ttl(asm: &mut Asm) {
    asm.push([
        Insn::load_packet(Size::Byte, 22),
        Insn::load(Size::Byte, 1, 7, RULE_TTL_LIMIT),
        Insn::load(Size::Byte, 2, 7, RULE_TTL_SET),
    ]);
    asm.jump(Cond::Ne, 2, 0, "ttl_set");
    asm.jump(Cond::Le, 0, 1, "expired");
    asm.push([Insn::add_imm(0, -1)]);
    asm.jump_reg(Cond::Le, 0, 1, "ttl_done");
    asm.label("ttl_set");
    asm.push([Insn::mov(0, 1)]);
    asm.label("ttl_done");
    asm.push([Insn::store(Size::Double, 10, TTL, 0)]);
}

/// The per-packet fields every output copies, and the complement sum of the input's source.
fn emit_packet_fields(asm: &mut Asm) {
    asm.push([
        Insn::load_packet(Size::Byte, 15),
        Insn::store(Size::Double, 10, TOS, 0),
        Insn::load_packet(Size::Half, 16),
        Insn::store(Size::Double, 10, TOTAL_LEN, 0),
        Insn::load_packet(Size::Half, 34),
        Insn::to_be16(0),
        Insn::store(Size::Double, 10, SOURCE_PORT_BE, 0),
        Insn::load_packet(Size::Half, 40),
        Insn::to_be16(0),
        Insn::store(Size::Double, 10, UDP_CHECKSUM_BE, 0),
        // -source, as two 16-bit words, in the helpers' (memory order) domain.
        Insn::load(Size::Double, 1, 10, SOURCE_DIFF),
        Insn::mov(2, 1),
        Insn::alu_imm(Alu::Rsh, 2, 16),
        Insn::alu_imm(Alu::And, 1, 0xffff),
        Insn::alu_imm(Alu::Xor, 1, 0xffff),
        Insn::alu_imm(Alu::Xor, 2, 0xffff),
        Insn::alu(Alu::Add, 1, 2),
    ]);
    fold(asm, 1, 2);
    asm.push([
        Insn::to_be16(1),
        Insn::store(Size::Double, 10, SOURCE_DIFF, 1),
        // Counted as the worker data plane counts: datagrams forwarded and payload bytes.
        Insn::mov_imm(1, 1),
        Insn::atomic_add(7, RULE_RX, 1),
        Insn::load(Size::Double, 1, 10, TOTAL_LEN),
        Insn::add_imm(1, -((wire::PAYLOAD_OFFSET - wire::IPV4_OFFSET) as i32)),
        Insn::store(Size::Double, 10, PAYLOAD_LEN, 1),
        Insn::atomic_add(7, RULE_RX_BYTES, 1),
    ]);
}

/// The header of output r9 at `HEADER`: its template and the packet's fields.
fn emit_build_header(asm: &mut Asm) {
    for word in 0..6i16 {
        asm.push([
            Insn::load(Size::Double, 1, 9, word * 8),
            Insn::store(Size::Double, 10, HEADER + word * 8, 1),
        ]);
    }
    let at = |offset: i16| HEADER + offset;
    asm.push([
        Insn::load(Size::Double, 1, 10, TOS),
        Insn::store(Size::Byte, 10, at(15), 1),
        Insn::load(Size::Double, 1, 10, TOTAL_LEN),
        Insn::to_be16(1),
        Insn::store(Size::Half, 10, at(16), 1),
        Insn::load(Size::Double, 1, 10, TTL),
        Insn::store(Size::Byte, 10, at(22), 1),
        // IPv4 checksum: the template's sum plus TOS, total length and TTL.
        Insn::load(Size::Word, 1, 9, OUT_IP_SUM),
        Insn::load(Size::Double, 2, 10, TOS),
        Insn::alu(Alu::Add, 1, 2),
        Insn::load(Size::Double, 2, 10, TOTAL_LEN),
        Insn::alu(Alu::Add, 1, 2),
        Insn::load(Size::Double, 2, 10, TTL),
        Insn::alu_imm(Alu::Lsh, 2, 8),
        Insn::alu(Alu::Add, 1, 2),
    ]);
    fold(asm, 1, 2);
    asm.push([
        Insn::alu_imm(Alu::Xor, 1, 0xffff),
        Insn::to_be16(1),
        Insn::store(Size::Half, 10, at(24), 1),
        Insn::load(Size::Double, 1, 10, SOURCE_PORT_BE),
        Insn::store(Size::Half, 10, at(34), 1),
        Insn::load(Size::Double, 1, 10, TOTAL_LEN),
        Insn::add_imm(1, -20),
        Insn::to_be16(1),
        Insn::store(Size::Half, 10, at(38), 1),
        Insn::load(Size::Double, 1, 10, UDP_CHECKSUM_BE),
        Insn::store(Size::Half, 10, at(40), 1),
    ]);
}

/// Writes output r9's header into the frame, fixes its UDP checksum and sends a clone.
fn emit_send(asm: &mut Asm) {
    asm.push([
        Insn::mov(1, 6),
        Insn::mov_imm(2, 0),
        Insn::mov(3, 10),
        Insn::add_imm(3, i32::from(HEADER)),
        Insn::mov_imm(4, HEADER_BYTES as i32),
        Insn::mov_imm(5, bpf::F_RECOMPUTE_CSUM),
        Insn::call(bpf::HELPER_SKB_STORE_BYTES),
    ]);
    asm.jump(Cond::Ne, 0, 0, "failed");
    asm.push([
        Insn::mov(1, 6),
        Insn::mov_imm(2, wire::UDP_OFFSET as i32 + 6),
        Insn::mov_imm(3, 0),
        Insn::load(Size::Word, 4, 9, OUT_ADDRESS_DIFF),
        Insn::load(Size::Double, 5, 10, SOURCE_DIFF),
        Insn::alu(Alu::Add, 4, 5),
        Insn::mov_imm(5, bpf::F_PSEUDO_HDR | bpf::F_MARK_MANGLED_0),
        Insn::call(bpf::HELPER_L4_CSUM_REPLACE),
    ]);
    asm.jump(Cond::Ne, 0, 0, "failed");
    asm.push([Insn::load(Size::Word, 4, 9, OUT_PORT_DIFF)]);
    asm.jump(Cond::Eq, 4, 0, "redirect");
    asm.push([
        Insn::mov(1, 6),
        Insn::mov_imm(2, wire::UDP_OFFSET as i32 + 6),
        Insn::mov_imm(3, 0),
        Insn::mov_imm(5, bpf::F_MARK_MANGLED_0),
        Insn::call(bpf::HELPER_L4_CSUM_REPLACE),
    ]);
    asm.jump(Cond::Ne, 0, 0, "failed");
    asm.label("redirect");
    asm.push([
        Insn::load(Size::Word, 1, 7, RULE_OUTPUTS),
        Insn::add_imm(1, -1),
    ]);
    asm.jump_reg(Cond::Eq, 8, 1, "last");
    asm.push([
        Insn::mov(1, 6),
        Insn::load(Size::Word, 2, 9, OUT_IFINDEX),
        Insn::mov_imm(3, 0),
        Insn::call(bpf::HELPER_CLONE_REDIRECT),
    ]);
    asm.jump(Cond::Ne, 0, 0, "failed");
    emit_count_sent(asm);
    asm.goto("next_output");
    asm.label("failed");
    asm.push([Insn::mov_imm(1, 1), Insn::atomic_add(9, OUT_FAILED, 1)]);
    asm.label("next_output");
}

fn emit_count_sent(asm: &mut Asm) {
    asm.push([
        Insn::mov_imm(1, 1),
        Insn::atomic_add(9, OUT_SENT, 1),
        Insn::load(Size::Double, 1, 10, PAYLOAD_LEN),
        Insn::atomic_add(9, OUT_SENT_BYTES, 1),
    ]);
}

/// The last output takes the input frame itself (`bpf_redirect`: no clone, no copy).
fn emit_last(asm: &mut Asm, timing: bool) {
    asm.label("last");
    emit_count_sent(asm);
    if timing {
        emit_elapsed(asm, LOOKUP_CLOCK, RULE_FANOUT_NS);
    }
    asm.push([
        Insn::load(Size::Word, 1, 9, OUT_IFINDEX),
        Insn::mov_imm(2, 0),
        Insn::call(bpf::HELPER_REDIRECT),
        Insn::exit(),
    ]);
}

/// The program's instructions for `map` (see the module documentation), with the clock
/// readings and the handicap `options` asks for.
fn program(map: &HashMap, options: ProgramOptions) -> Vec<Insn> {
    let timing = options.timing;
    let mut asm = Asm::new();
    emit_lookup(&mut asm, map, timing);
    if options.handicap_ns > 0 {
        emit_handicap(&mut asm, options.handicap_ns);
    }
    emit_ttl(&mut asm);
    emit_packet_fields(&mut asm);
    asm.push([Insn::mov_imm(8, 0)]);
    asm.label("loop");
    asm.push([Insn::load(Size::Word, 1, 7, RULE_OUTPUTS)]);
    asm.jump_reg(Cond::Ge, 8, 1, "done");
    asm.jump(Cond::Ge, 8, MAX_OUTPUTS as i32, "done");
    asm.push([
        Insn::mov(1, 8),
        Insn::alu_imm(Alu::Mul, 1, OUTPUT_BYTES as i32),
        Insn::mov(9, 7),
        Insn::alu(Alu::Add, 9, 1),
        Insn::add_imm(9, RULE_HEADER_BYTES as i32),
    ]);
    emit_build_header(&mut asm);
    emit_send(&mut asm);
    asm.push([Insn::add_imm(8, 1)]);
    asm.goto("loop");
    asm.label("expired");
    asm.push([
        Insn::mov_imm(1, 1),
        Insn::atomic_add(7, RULE_TTL_EXPIRED, 1),
    ]);
    asm.label("done");
    asm.push([Insn::mov_imm(0, TCX_DROP), Insn::exit()]);
    asm.label("next");
    asm.push([Insn::mov_imm(0, TCX_NEXT), Insn::exit()]);
    emit_last(&mut asm, timing);
    match asm.finish() {
        Ok(insns) => insns,
        Err(e) => unreachable!("the fan-out program's labels: {e}"),
    }
}

/// The loaded program and its map of rules.
#[derive(Debug)]
pub struct TcFanout {
    map: HashMap,
    program: Program,
}

impl TcFanout {
    /// Creates the map (room for `max_rules` rules) and loads the program variant of
    /// `options` (module documentation).
    pub fn load(max_rules: u32, options: ProgramOptions) -> Result<TcFanout, LoadError> {
        let map = HashMap::create(
            "mlab_fanout",
            KEY_BYTES as u32,
            VALUE_BYTES as u32,
            max_rules.max(1),
        )
        .map_err(LoadError::Map)?;
        let program = Program::load_sched_cls("mlab_fanout", &program(&map, options))?;
        Ok(TcFanout { map, program })
    }

    /// Adds or replaces `rule` (its counters start from zero).
    pub fn insert(&self, rule: &FanoutRule) -> io::Result<()> {
        let value = rule
            .value()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.map.update(&rule.key.bytes(), &value)
    }

    /// Stops forwarding `key`'s datagrams; false if it was not there.
    pub fn remove(&self, key: &FanoutKey) -> io::Result<bool> {
        self.map.delete(&key.bytes())
    }

    /// `key`'s counters, if it is there.
    pub fn counters(&self, key: &FanoutKey) -> io::Result<Option<FanoutCounters>> {
        Ok(self
            .map
            .lookup(&key.bytes())?
            .map(|value| FanoutCounters::parse(&value)))
    }

    /// Runs the program at `ifindex`'s ingress until the link is dropped.
    pub fn attach(&self, ifindex: u32) -> io::Result<TcxLink> {
        TcxLink::attach_ingress(&self.program, ifindex)
    }

    /// The program's verdict on `frame` arriving on `ifindex`, and the frame as the program
    /// left it (`BPF_PROG_TEST_RUN`; the clones go to the outputs' interfaces of the calling
    /// thread's namespace).
    pub fn run(&self, frame: &[u8], ifindex: u32) -> io::Result<(i32, Vec<u8>)> {
        self.program.test_run_output(frame, ifindex)
    }

    /// [`TcFanout::run`], with the run's duration as the kernel measured it.
    pub fn run_measured(&self, frame: &[u8], ifindex: u32) -> io::Result<bpf::TestRun> {
        self.program.test_run_measured(frame, ifindex)
    }
}

#[cfg(test)]
#[path = "tc_fanout_tests.rs"]
mod tests;
