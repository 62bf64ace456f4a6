//! Keeping a relay's input out of its own host's IP stack: a tcx ingress program that drops
//! IPv4 UDP frames whose (receiving interface, destination group) is in a map.
//!
//! A relay that joins its input groups (so that switches and queriers forward them) makes its
//! own host's IP stack receive every input frame too: IP input, a multicast route allocated
//! and freed per packet, then UDP finds no socket (`IgnoredMulti`). The relay reads its input
//! from a packet socket, whose tap runs before tcx ingress, so dropping the frame there costs
//! the relay nothing and saves the host stack's work (docs/architecture.md has the
//! measurements). The host's own sockets stop receiving UDP to those groups on those
//! interfaces.
//!
//! The program, in the kernel's instruction set:
//! ```text
//!  r6 = r1                        the context, for the packet loads
//!  r0 = packet[12..14]            EtherType
//!  if r0 != 0x0800 goto next
//!  r0 = packet[23]                IPv4 protocol
//!  if r0 != 17 goto next
//!  r0 = packet[30..34]            destination address, host order
//!  *(u32 *)(r10 - 4) = r0         key.group
//!  r1 = skb->ingress_ifindex
//!  *(u32 *)(r10 - 8) = r1         key.ifindex
//!  r1 = map; r2 = r10 - 8
//!  r0 = bpf_map_lookup_elem(r1, r2)
//!  if r0 == 0 goto next
//!  return TCX_DROP
//! next:
//!  return TCX_NEXT                the next program, or the stack
//! ```
//! A frame too short for a load ends the program with 0 (`TCX_PASS`: on to the stack).

use crate::bpf::{self, HashMap, Insn, Program, Size, TcxLink};
use std::io;
use std::net::Ipv4Addr;

/// tcx verdicts.
pub const TCX_NEXT: i32 = -1;
pub const TCX_PASS: i32 = 0;
pub const TCX_DROP: i32 = 2;
/// The program redirected the frame (`bpf_redirect`'s return value).
pub const TCX_REDIRECT: i32 = 7;

const KEY_BYTES: u32 = 8;
const VALUE_BYTES: u32 = 1;

/// The map key of (interface, group): both `u32` in host order, as the program stores them.
pub fn key(ifindex: u32, group: Ipv4Addr) -> [u8; 8] {
    let mut key = [0; 8];
    key[..4].copy_from_slice(&ifindex.to_ne_bytes());
    key[4..].copy_from_slice(&u32::from(group).to_ne_bytes());
    key
}

/// The program's instructions for `map` (see the module documentation).
fn program(map: &HashMap) -> Vec<Insn> {
    let mut insns = vec![
        Insn::mov(6, 1),
        Insn::load_packet(Size::Half, 12),
        Insn::jump_if_not(0, 0x0800, 14),
        Insn::load_packet(Size::Byte, 23),
        Insn::jump_if_not(0, 17, 12),
        Insn::load_packet(Size::Word, 30),
        Insn::store_word(10, -4, 0),
        Insn::load_word(1, 6, bpf::SKB_INGRESS_IFINDEX),
        Insn::store_word(10, -8, 1),
    ];
    insns.extend(Insn::load_map(1, map));
    insns.extend([
        Insn::mov(2, 10),
        Insn::add_imm(2, -8),
        Insn::call(bpf::HELPER_MAP_LOOKUP),
        Insn::jump_if(0, 0, 2),
        Insn::mov_imm(0, TCX_DROP),
        Insn::exit(),
        // next:
        Insn::mov_imm(0, TCX_NEXT),
        Insn::exit(),
    ]);
    insns
}

/// The loaded program and its map of (interface, group) pairs to drop.
#[derive(Debug)]
pub struct InputDrop {
    map: HashMap,
    program: Program,
}

/// Why [`InputDrop::load`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot create the BPF map (needs CAP_BPF or root): {0}")]
    Map(io::Error),
    #[error(transparent)]
    Program(#[from] bpf::LoadError),
}

impl InputDrop {
    /// Creates the map (room for `max_entries` pairs) and loads the program.
    pub fn load(max_entries: u32) -> Result<InputDrop, LoadError> {
        let map = HashMap::create("mlab_in_drop", KEY_BYTES, VALUE_BYTES, max_entries.max(1))
            .map_err(LoadError::Map)?;
        let program = Program::load_sched_cls("mlab_in_drop", &program(&map))?;
        Ok(InputDrop { map, program })
    }

    /// Drops UDP to `group` arriving on `ifindex` from now on.
    pub fn insert(&self, ifindex: u32, group: Ipv4Addr) -> io::Result<()> {
        self.map.update(&key(ifindex, group), &[1])
    }

    /// Lets UDP to `group` on `ifindex` through again; false if it was not dropped.
    pub fn remove(&self, ifindex: u32, group: Ipv4Addr) -> io::Result<bool> {
        self.map.delete(&key(ifindex, group))
    }

    /// Whether UDP to `group` on `ifindex` is dropped.
    pub fn contains(&self, ifindex: u32, group: Ipv4Addr) -> io::Result<bool> {
        self.map.contains(&key(ifindex, group))
    }

    /// Runs the program at `ifindex`'s ingress until the link is dropped.
    pub fn attach(&self, ifindex: u32) -> io::Result<TcxLink> {
        TcxLink::attach_ingress(&self.program, ifindex)
    }

    /// The program's verdict on `frame` arriving on `ifindex` (`BPF_PROG_TEST_RUN`).
    pub fn verdict(&self, frame: &[u8], ifindex: u32) -> io::Result<i32> {
        self.program.test_run(frame, ifindex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_interface_then_group_in_host_order() {
        let k = key(7, Ipv4Addr::new(239, 1, 2, 3));
        assert_eq!(u32::from_ne_bytes([k[0], k[1], k[2], k[3]]), 7);
        assert_eq!(u32::from_ne_bytes([k[4], k[5], k[6], k[7]]), 0xef01_0203);
    }

    /// An Ethernet + IPv4 frame of protocol `protocol` to `destination` (8 bytes of payload).
    fn frame(ethertype: u16, protocol: u8, destination: Ipv4Addr) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0x01, 0x00, 0x01]);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&28u16.to_be_bytes());
        f[22] = 4;
        f[23] = protocol;
        f[26..30].copy_from_slice(&[198, 18, 0, 1]);
        f[30..34].copy_from_slice(&destination.octets());
        f
    }

    #[test]
    fn the_program_drops_only_udp_to_a_listed_group_on_its_interface() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "SKIPPED the_program_drops_only_udp_to_a_listed_group_on_its_interface: needs root (bpf)"
            );
            return;
        }
        let filter = InputDrop::load(16).expect("map and program load");
        let group = Ipv4Addr::new(239, 1, 0, 1);
        filter.insert(5, group).unwrap();
        assert!(filter.contains(5, group).unwrap());
        let udp = frame(0x0800, 17, group);
        assert_eq!(filter.verdict(&udp, 5).unwrap(), TCX_DROP);
        assert_eq!(
            filter.verdict(&udp, 6).unwrap(),
            TCX_NEXT,
            "another interface"
        );
        let other = frame(0x0800, 17, Ipv4Addr::new(239, 1, 0, 2));
        assert_eq!(
            filter.verdict(&other, 5).unwrap(),
            TCX_NEXT,
            "another group"
        );
        let tcp = frame(0x0800, 6, group);
        assert_eq!(filter.verdict(&tcp, 5).unwrap(), TCX_NEXT, "not UDP");
        let arp = frame(0x0806, 17, group);
        assert_eq!(filter.verdict(&arp, 5).unwrap(), TCX_NEXT, "not IPv4");
        // Linked to the loopback interface of a namespace of its own (a thread that left the
        // test's namespace; never the machine's): the kernel counts it, then not.
        let counted = std::thread::scope(|scope| {
            let linking = scope.spawn(|| -> io::Result<(u32, u32, u32)> {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
                let before = bpf::tcx_ingress_programs(1)?;
                let link = filter.attach(1)?;
                let linked = bpf::tcx_ingress_programs(1)?;
                drop(link);
                Ok((before, linked, bpf::tcx_ingress_programs(1)?))
            });
            linking.join().expect("the linking thread")
        });
        assert_eq!(counted.unwrap(), (0, 1, 0), "before, linked, dropped");
        assert!(filter.remove(5, group).unwrap());
        assert!(!filter.remove(5, group).unwrap(), "removed once");
        assert_eq!(
            filter.verdict(&udp, 5).unwrap(),
            TCX_NEXT,
            "no longer listed"
        );
    }
}
