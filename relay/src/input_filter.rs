//! `relay run --input-filter`: keeps the rules' input out of the relay host's own IP stack.
//!
//! The relay joins its input groups, so its host's IP stack receives every input frame too
//! and throws it away after routing it (Udp `IgnoredMulti`), on the relay's CPU. With the
//! filter, a tcx program ([`netio::input_drop`]) at each input interface's ingress drops UDP
//! to the groups the installed rules read there, after the relay's packet socket has seen
//! the frame. The host's own sockets stop receiving UDP to those groups on those interfaces.
//!
//! [`InputFilter`] follows the published table: every (interface index, group) pair of an
//! installed rule's key is in the program's map (counted, so two rules on one group and
//! interface keep it until both are gone), and every interface with a pair has the program
//! linked. An interface that goes away takes its link with it (the kernel detaches it); the
//! re-sync moves its rules' keys to the new index when it comes back, and the filter follows.
//! A failure (an interface gone between the re-sync and the link) is logged and counted; the
//! frames then reach the host stack as without the filter, and nothing else changes.

use crate::table::FlowKey;
use netio::bpf::TcxLink;
use netio::input_drop::InputDrop;
use serde::Serialize;
use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;

/// What the filter needs from the kernel (a fake in tests).
pub trait DropTable: Send {
    fn insert(&mut self, ifindex: u32, group: Ipv4Addr) -> io::Result<()>;
    fn remove(&mut self, ifindex: u32, group: Ipv4Addr) -> io::Result<()>;
    fn attach(&mut self, ifindex: u32) -> io::Result<()>;
    fn detach(&mut self, ifindex: u32);
}

/// The loaded program, its map and one tcx link per interface.
pub struct KernelDropTable {
    program: InputDrop,
    links: HashMap<u32, TcxLink>,
}

impl KernelDropTable {
    /// Loads the program with room for `max_pairs` (interface, group) pairs, and checks that
    /// this kernel links it (tcx, Linux 6.6+) by linking it to the loopback interface for a
    /// moment (the map is empty then: nothing is dropped).
    pub fn load(max_pairs: u32) -> anyhow::Result<KernelDropTable> {
        let program = InputDrop::load(max_pairs)?;
        check_tcx_links(|ifindex| program.attach(ifindex))?;
        Ok(KernelDropTable {
            program,
            links: HashMap::new(),
        })
    }
}

/// Checks that this kernel links tcx programs (Linux 6.6+) by linking one with `attach` to the
/// loopback interface for a moment (the callers' maps are empty then: nothing happens to a
/// frame).
pub(crate) fn check_tcx_links(
    attach: impl FnOnce(u32) -> io::Result<TcxLink>,
) -> anyhow::Result<()> {
    let interfaces = netio::iface::list()?;
    let loopback = interfaces
        .values()
        .find(|i| i.loopback)
        .ok_or_else(|| anyhow::anyhow!("no loopback interface to check tcx links on"))?;
    attach(loopback.index).map_err(|e| {
        anyhow::anyhow!("this kernel does not link tcx programs (Linux 6.6+ needed): {e}")
    })?;
    Ok(())
}

impl DropTable for KernelDropTable {
    fn insert(&mut self, ifindex: u32, group: Ipv4Addr) -> io::Result<()> {
        self.program.insert(ifindex, group)
    }

    fn remove(&mut self, ifindex: u32, group: Ipv4Addr) -> io::Result<()> {
        self.program.remove(ifindex, group).map(|_| ())
    }

    fn attach(&mut self, ifindex: u32) -> io::Result<()> {
        let link = self.program.attach(ifindex)?;
        self.links.insert(ifindex, link);
        Ok(())
    }

    fn detach(&mut self, ifindex: u32) {
        self.links.remove(&ifindex);
    }
}

/// The filter's state in `relay ctl stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InputFilterReport {
    /// Interfaces with a rule's pair: the program is linked to each, unless `errors` counts a
    /// refused link.
    pub interfaces: usize,
    /// (interface, group) pairs dropped from the host stack.
    pub groups: usize,
    /// Links or map changes the kernel refused (logged).
    pub errors: u64,
}

/// The (interface, group) pairs of the installed rules, kept in a [`DropTable`].
pub struct InputFilter {
    table: Box<dyn DropTable>,
    /// Rules per pair.
    pairs: HashMap<(u32, Ipv4Addr), usize>,
    /// Pairs per interface; an interface is linked while it has one.
    interfaces: HashMap<u32, usize>,
    errors: u64,
}

impl InputFilter {
    pub fn new(table: Box<dyn DropTable>) -> InputFilter {
        InputFilter {
            table,
            pairs: HashMap::new(),
            interfaces: HashMap::new(),
            errors: 0,
        }
    }

    /// A rule's key moved in the table from `old` to `new` (either may be none: added,
    /// removed, waiting for an interface).
    pub fn track(&mut self, old: Option<&FlowKey>, new: Option<&FlowKey>) {
        if old.map(pair) == new.map(pair) {
            return;
        }
        if let Some(key) = new {
            self.add(pair(key));
        }
        if let Some(key) = old {
            self.remove(pair(key));
        }
    }

    fn add(&mut self, (ifindex, group): (u32, Ipv4Addr)) {
        let rules = self.pairs.entry((ifindex, group)).or_default();
        *rules += 1;
        if *rules > 1 {
            return;
        }
        let pairs = self.interfaces.entry(ifindex).or_default();
        *pairs += 1;
        if *pairs == 1
            && let Err(e) = self.table.attach(ifindex)
        {
            self.failed(format_args!("linking to interface {ifindex}"), e);
        }
        if let Err(e) = self.table.insert(ifindex, group) {
            self.failed(format_args!("adding {group} on interface {ifindex}"), e);
        }
    }

    fn remove(&mut self, (ifindex, group): (u32, Ipv4Addr)) {
        let Some(rules) = self.pairs.get_mut(&(ifindex, group)) else {
            return;
        };
        *rules -= 1;
        if *rules > 0 {
            return;
        }
        self.pairs.remove(&(ifindex, group));
        if let Err(e) = self.table.remove(ifindex, group) {
            self.failed(format_args!("removing {group} on interface {ifindex}"), e);
        }
        if let Some(pairs) = self.interfaces.get_mut(&ifindex) {
            *pairs -= 1;
            if *pairs == 0 {
                self.interfaces.remove(&ifindex);
                self.table.detach(ifindex);
            }
        }
    }

    fn failed(&mut self, what: std::fmt::Arguments<'_>, error: io::Error) {
        self.errors += 1;
        tracing::warn!("--input-filter: {what}: {error}; those frames reach the host stack");
    }

    pub fn report(&self) -> InputFilterReport {
        InputFilterReport {
            interfaces: self.interfaces.len(),
            groups: self.pairs.len(),
            errors: self.errors,
        }
    }
}

/// The (interface, group) a rule's key reads.
fn pair(key: &FlowKey) -> (u32, Ipv4Addr) {
    (key.ifindex, key.group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records what the filter asked of the kernel; refuses links to interface 99.
    #[derive(Default, Clone)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl Recorder {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
        fn log(&self, entry: String) {
            self.0.lock().unwrap().push(entry);
        }
    }

    impl DropTable for Recorder {
        fn insert(&mut self, ifindex: u32, group: Ipv4Addr) -> io::Result<()> {
            self.log(format!("insert {ifindex} {group}"));
            Ok(())
        }
        fn remove(&mut self, ifindex: u32, group: Ipv4Addr) -> io::Result<()> {
            self.log(format!("remove {ifindex} {group}"));
            Ok(())
        }
        fn attach(&mut self, ifindex: u32) -> io::Result<()> {
            self.log(format!("attach {ifindex}"));
            if ifindex == 99 {
                return Err(io::Error::from_raw_os_error(libc::ENODEV));
            }
            Ok(())
        }
        fn detach(&mut self, ifindex: u32) {
            self.log(format!("detach {ifindex}"));
        }
    }

    fn key(ifindex: u32, group: [u8; 4], port: u16) -> FlowKey {
        FlowKey {
            ifindex,
            vlan: 0,
            group: Ipv4Addr::from(group),
            port,
            source: Ipv4Addr::UNSPECIFIED,
        }
    }

    #[test]
    fn the_first_pair_of_an_interface_links_it_and_the_last_unlinks_it() {
        let recorder = Recorder::default();
        let mut filter = InputFilter::new(Box::new(recorder.clone()));
        let (a, b) = (key(3, [239, 1, 0, 1], 5000), key(3, [239, 1, 0, 2], 5000));
        filter.track(None, Some(&a));
        filter.track(None, Some(&b));
        assert_eq!(
            recorder.take(),
            ["attach 3", "insert 3 239.1.0.1", "insert 3 239.1.0.2"]
        );
        let report = filter.report();
        assert_eq!((report.interfaces, report.groups, report.errors), (1, 2, 0));
        filter.track(Some(&a), None);
        filter.track(Some(&b), None);
        assert_eq!(
            recorder.take(),
            ["remove 3 239.1.0.1", "remove 3 239.1.0.2", "detach 3"]
        );
        assert_eq!(filter.report(), InputFilterReport::default());
    }

    #[test]
    fn two_rules_on_one_group_keep_it_until_both_are_gone() {
        let recorder = Recorder::default();
        let mut filter = InputFilter::new(Box::new(recorder.clone()));
        let (a, b) = (key(3, [239, 1, 0, 1], 5000), key(3, [239, 1, 0, 1], 6000));
        filter.track(None, Some(&a));
        filter.track(None, Some(&b));
        filter.track(Some(&a), None);
        assert_eq!(recorder.take(), ["attach 3", "insert 3 239.1.0.1"]);
        filter.track(Some(&b), None);
        assert_eq!(recorder.take(), ["remove 3 239.1.0.1", "detach 3"]);
    }

    #[test]
    fn a_rule_moved_to_a_new_interface_index_moves_its_pair() {
        let recorder = Recorder::default();
        let mut filter = InputFilter::new(Box::new(recorder.clone()));
        let (old, new) = (key(3, [239, 1, 0, 1], 5000), key(8, [239, 1, 0, 1], 5000));
        filter.track(None, Some(&old));
        recorder.take();
        filter.track(Some(&old), Some(&new));
        assert_eq!(
            recorder.take(),
            [
                "attach 8",
                "insert 8 239.1.0.1",
                "remove 3 239.1.0.1",
                "detach 3"
            ]
        );
        // Same pair (another port): nothing to do.
        filter.track(Some(&new), Some(&key(8, [239, 1, 0, 1], 6000)));
        assert!(recorder.take().is_empty());
        // Unknown removal (never added): ignored.
        filter.track(Some(&key(4, [239, 9, 9, 9], 1)), None);
        assert!(recorder.take().is_empty());
    }

    #[test]
    fn a_refused_link_is_counted_and_the_rest_goes_on() {
        let recorder = Recorder::default();
        let mut filter = InputFilter::new(Box::new(recorder.clone()));
        filter.track(None, Some(&key(99, [239, 1, 0, 1], 5000)));
        filter.track(None, Some(&key(3, [239, 1, 0, 1], 5000)));
        assert_eq!(filter.report().errors, 1);
        assert_eq!(
            recorder.take(),
            [
                "attach 99",
                "insert 99 239.1.0.1",
                "attach 3",
                "insert 3 239.1.0.1"
            ]
        );
    }
}
