//! Kernel counters nobody in the lab wrote, read around every traffic run: the interfaces' packet
//! counters (rtnetlink `IFLA_STATS64` in each namespace) and the sink namespace's UDP counters
//! (`/proc/net/snmp`), so every count of the load generator can be checked against them.
//!
//! On a veth pair the receiving end's `rx_packets` is the sending end's `tx_packets` (one
//! counter); `rx_dropped` adds what the receiving host's backlog dropped. A sink's socket
//! losses show as UDP `InErrors` (`RcvbufErrors` when its buffer was full); packets that arrive
//! after a sink stopped show as `NoPorts`.

use crate::netns::{netlink_in, run_in_netns};
use crate::results::{CrossCheck, UdpCounters};
use anyhow::{Context, Result};
use futures::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use std::collections::HashMap;

/// Relative disagreement above which a count is flagged (0.1 %).
pub const MISMATCH_TOLERANCE: f64 = 0.001;

/// Packet counters of one interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

impl LinkCounters {
    /// `self - earlier`, per counter (0 where a counter went backwards, e.g. a re-created link).
    pub fn since(&self, earlier: &LinkCounters) -> LinkCounters {
        LinkCounters {
            rx_packets: self.rx_packets.saturating_sub(earlier.rx_packets),
            tx_packets: self.tx_packets.saturating_sub(earlier.tx_packets),
            rx_dropped: self.rx_dropped.saturating_sub(earlier.rx_dropped),
            tx_dropped: self.tx_dropped.saturating_sub(earlier.tx_dropped),
        }
    }
}

/// Counters of every interface of namespace `netns`, by name.
pub fn read_links(netns: &str) -> Result<HashMap<String, LinkCounters>> {
    netlink_in(Some(netns), |handle| async move {
        let mut links = handle.link().get().execute();
        let mut out = HashMap::new();
        while let Some(msg) = links.try_next().await.context("dumping links")? {
            let mut name = None;
            let mut counters = None;
            for attr in &msg.attributes {
                match attr {
                    LinkAttribute::IfName(n) => name = Some(n.clone()),
                    LinkAttribute::Stats64(s) => {
                        counters = Some(LinkCounters {
                            rx_packets: s.rx_packets,
                            tx_packets: s.tx_packets,
                            rx_dropped: s.rx_dropped,
                            tx_dropped: s.tx_dropped,
                        })
                    }
                    _ => {}
                }
            }
            if let (Some(name), Some(counters)) = (name, counters) {
                out.insert(name, counters);
            }
        }
        Ok(out)
    })
    .with_context(|| format!("reading interface counters in namespace {netns}"))
}

/// The `Udp:` counters of namespace `netns`.
pub fn read_udp(netns: &str) -> Result<UdpCounters> {
    let label = netns.to_owned();
    let text = read_snmp(netns)?;
    parse_snmp_udp(&text)
        .with_context(|| format!("no Udp: counters in namespace {label}'s /proc/net/snmp"))
}

/// One `Udp:` counter of namespace `netns` by its name in `/proc/net/snmp` (e.g.
/// `IgnoredMulti`, which [`UdpCounters`] does not keep).
pub fn read_udp_field(netns: &str, field: &str) -> Result<u64> {
    let text = read_snmp(netns)?;
    snmp_udp_field(&text, field)
        .with_context(|| format!("no Udp: {field} in namespace {netns}'s /proc/net/snmp"))
}

/// Namespace `netns`'s `/proc/net/snmp`, read through `/proc/thread-self/net`: a thread that
/// entered a namespace sees it there (`/proc/self/net` follows the main thread).
fn read_snmp(netns: &str) -> Result<String> {
    run_in_netns(netns, move || {
        std::fs::read_to_string("/proc/thread-self/net/snmp")
            .context("reading /proc/thread-self/net/snmp")
    })
}

/// The `Udp:` counter named `field`, from the header and value lines of `/proc/net/snmp`.
pub fn snmp_udp_field(text: &str, field: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let names = lines.next()?.split_whitespace().skip(1);
    let values: Vec<&str> = lines.next()?.split_whitespace().skip(1).collect();
    let i = names.into_iter().position(|n| n == field)?;
    values.get(i)?.parse().ok()
}

/// Parses the `Udp:` header and value lines of `/proc/net/snmp`.
pub fn parse_snmp_udp(text: &str) -> Option<UdpCounters> {
    let get = |field: &str| snmp_udp_field(text, field);
    Some(UdpCounters {
        in_datagrams: get("InDatagrams")?,
        in_errors: get("InErrors")?,
        rcvbuf_errors: get("RcvbufErrors").unwrap_or(0),
        no_ports: get("NoPorts").unwrap_or(0),
    })
}

impl UdpCounters {
    /// `self - earlier`, per counter.
    pub fn since(&self, earlier: &UdpCounters) -> UdpCounters {
        UdpCounters {
            in_datagrams: self.in_datagrams.saturating_sub(earlier.in_datagrams),
            in_errors: self.in_errors.saturating_sub(earlier.in_errors),
            rcvbuf_errors: self.rcvbuf_errors.saturating_sub(earlier.rcvbuf_errors),
            no_ports: self.no_ports.saturating_sub(earlier.no_ports),
        }
    }
}

/// One interface to watch: its namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Watched {
    pub netns: String,
    pub ifname: String,
}

/// The interfaces and the UDP counters of a traffic run, read at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    links: HashMap<Watched, LinkCounters>,
    sink_udp: Option<UdpCounters>,
}

impl Snapshot {
    /// Reads every watched interface (one netlink dump per namespace) and the UDP counters of
    /// `sink_ns`. A namespace that cannot be read leaves its interfaces out (the check then
    /// says it could not compare), never fails the run.
    pub fn take(watched: &[Watched], sink_ns: &str) -> Snapshot {
        let mut by_ns: HashMap<&str, Vec<&Watched>> = HashMap::new();
        for w in watched {
            by_ns.entry(w.netns.as_str()).or_default().push(w);
        }
        let mut links = HashMap::new();
        for (ns, ws) in by_ns {
            let Ok(all) = read_links(ns) else { continue };
            for w in ws {
                if let Some(c) = all.get(&w.ifname) {
                    links.insert(w.clone(), *c);
                }
            }
        }
        Snapshot {
            links,
            sink_udp: read_udp(sink_ns).ok(),
        }
    }

    /// The change of one interface's counters since `earlier`.
    pub fn delta(&self, earlier: &Snapshot, w: &Watched) -> Option<LinkCounters> {
        Some(self.links.get(w)?.since(earlier.links.get(w)?))
    }

    /// The change of the sink namespace's UDP counters since `earlier`.
    pub fn udp_delta(&self, earlier: &Snapshot) -> Option<UdpCounters> {
        Some(self.sink_udp?.since(&earlier.sink_udp?))
    }
}

/// The counts of one traffic run that the kernel's counters are checked against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabCounts {
    /// Packets the sender says it sent.
    pub sent: u64,
    /// Datagrams each link's sink read (valid + foreign, duplicates included).
    pub sink_read: Vec<u64>,
}

/// Kernel deltas of one traffic run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KernelCounts {
    pub generator: Option<LinkCounters>,
    pub relay_in: Option<LinkCounters>,
    pub relay_out: Vec<Option<LinkCounters>>,
    /// One per link, in link order.
    pub sinks: Vec<Option<LinkCounters>>,
    pub sink_udp: Option<UdpCounters>,
}

/// Compares the lab's counts with the kernel's. Flags: the sender's count against its
/// interface's tx; what arrived on the sink interfaces against what the sinks read plus what
/// their host dropped; what the sockets read (UDP InDatagrams) against what the sinks counted;
/// packets that arrived for a port nobody listened on.
pub fn cross_check(lab: &LabCounts, kernel: &KernelCounts) -> CrossCheck {
    let sum = |v: &[Option<LinkCounters>], f: fn(&LinkCounters) -> u64| -> Option<u64> {
        v.iter().map(|c| c.as_ref().map(f)).sum()
    };
    let sink_counted: u64 = lab.sink_read.iter().sum();
    let mut check = CrossCheck {
        sender_sent: lab.sent,
        generator_tx: kernel.generator.map(|c| c.tx_packets),
        relay_in_rx: kernel.relay_in.map(|c| c.rx_packets),
        relay_out_tx: (!kernel.relay_out.is_empty())
            .then(|| sum(&kernel.relay_out, |c| c.tx_packets))
            .flatten(),
        sink_wire_rx: sum(&kernel.sinks, |c| c.rx_packets),
        sink_rx_dropped: sum(&kernel.sinks, |c| c.rx_dropped),
        sink_udp: kernel.sink_udp,
        sink_counted,
        ..CrossCheck::default()
    };
    let mut compare = |what: &str, lab_value: u64, kernel_value: Option<u64>| match kernel_value {
        None => check
            .mismatches
            .push(format!("{what}: the kernel counter could not be read")),
        Some(k) => {
            let diff = relative_mismatch(lab_value, k);
            check.max_mismatch = check.max_mismatch.max(diff);
            if diff > MISMATCH_TOLERANCE {
                check.mismatches.push(format!(
                    "{what}: lab {lab_value}, kernel {k} ({:.2} % apart)",
                    diff * 100.0
                ));
            }
        }
    };
    compare(
        "packets sent vs the generator interface's tx_packets",
        lab.sent,
        check.generator_tx,
    );
    // A frame a veth drops because the receiving CPU's backlog is full is counted in the
    // interface's rx_dropped and never in its rx_packets; a frame dropped after arrival (no
    // protocol for it) in both. The lab cannot tell the two apart, so rx_packets must lie
    // between what the sockets took (read + UDP InErrors) and that plus rx_dropped.
    let taken_and_dropped = check
        .sink_rx_dropped
        .zip(check.sink_udp)
        .map(|(dropped, udp)| (sink_counted + udp.in_errors, dropped));
    if let Some((taken, dropped)) = taken_and_dropped {
        let nearest = check
            .sink_wire_rx
            .map_or(taken, |wire| wire.clamp(taken, taken + dropped));
        compare(
            "packets read (plus up to those the sink host dropped) vs the sink interfaces' rx_packets",
            nearest,
            check.sink_wire_rx,
        );
    } else {
        compare("sink interfaces", sink_counted, None);
    }
    compare(
        "datagrams the sinks counted vs UDP InDatagrams of the sink namespace",
        sink_counted,
        check.sink_udp.map(|u| u.in_datagrams),
    );
    if let Some(udp) = check.sink_udp
        && udp.no_ports as f64 > MISMATCH_TOLERANCE * (sink_counted.max(1) as f64)
    {
        check.mismatches.push(format!(
            "{} datagrams arrived for a port nobody listened on (after a sink stopped?)",
            udp.no_ports
        ));
    }
    check
}

/// |a - b| / max(a, b); 0 when both are 0.
pub fn relative_mismatch(a: u64, b: u64) -> f64 {
    let hi = a.max(b);
    if hi == 0 {
        0.0
    } else {
        a.abs_diff(b) as f64 / hi as f64
    }
}

/// Packets the sink host dropped: its interfaces' rx_dropped plus UDP InErrors (`None` when a
/// counter could not be read).
pub fn sink_host_drops(check: &CrossCheck) -> Option<u64> {
    Some(check.sink_rx_dropped? + check.sink_udp?.in_errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "Ip: Forwarding DefaultTTL\nIp: 2 64\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\nUdp: 1200 3 14 0 14 0 0 0 0\nUdpLite: InDatagrams NoPorts\nUdpLite: 0 0\n";

    #[test]
    fn snmp_udp_line_is_read_by_name() {
        let u = parse_snmp_udp(SNMP).unwrap();
        assert_eq!(
            u,
            UdpCounters {
                in_datagrams: 1200,
                in_errors: 14,
                rcvbuf_errors: 14,
                no_ports: 3
            }
        );
        assert_eq!(parse_snmp_udp("Ip: a\nIp: 1\n"), None);
        assert_eq!(snmp_udp_field(SNMP, "IgnoredMulti"), Some(0));
        assert_eq!(snmp_udp_field(SNMP, "NoSuchCounter"), None);
    }

    fn link(rx: u64, dropped: u64) -> Option<LinkCounters> {
        Some(LinkCounters {
            rx_packets: rx,
            tx_packets: rx,
            rx_dropped: dropped,
            tx_dropped: 0,
        })
    }

    #[test]
    fn agreeing_counts_are_not_flagged() {
        let lab = LabCounts {
            sent: 2000,
            sink_read: vec![2000, 2000],
        };
        let kernel = KernelCounts {
            generator: Some(LinkCounters {
                tx_packets: 2000,
                ..LinkCounters::default()
            }),
            relay_in: link(2000, 0),
            relay_out: vec![link(2000, 0), link(2000, 0)],
            sinks: vec![link(2000, 0), link(2000, 0)],
            sink_udp: Some(UdpCounters {
                in_datagrams: 4000,
                ..UdpCounters::default()
            }),
        };
        let c = cross_check(&lab, &kernel);
        assert!(!c.flagged(), "{c:?}");
        assert_eq!(c.sink_wire_rx, Some(4000));
        assert_eq!(c.relay_out_tx, Some(4000));
        assert_eq!(sink_host_drops(&c), Some(0));
    }

    #[test]
    fn socket_drops_are_the_sink_hosts_and_a_missing_count_is_flagged() {
        // 2000 arrived, the socket buffer dropped 280, the sink read 1720: consistent, and the
        // 280 are the sink's loss.
        let lab = LabCounts {
            sent: 2000,
            sink_read: vec![1720],
        };
        let kernel = KernelCounts {
            generator: Some(LinkCounters {
                tx_packets: 2000,
                ..LinkCounters::default()
            }),
            relay_in: None,
            relay_out: vec![],
            sinks: vec![link(2000, 0)],
            sink_udp: Some(UdpCounters {
                in_datagrams: 1720,
                in_errors: 280,
                rcvbuf_errors: 280,
                no_ports: 0,
            }),
        };
        let c = cross_check(&lab, &kernel);
        assert!(!c.flagged(), "{c:?}");
        assert_eq!(sink_host_drops(&c), Some(280));

        // The sink claims 1900 but the kernel saw 1720 read: flagged.
        let lab = LabCounts {
            sink_read: vec![1900],
            ..lab
        };
        let c = cross_check(&lab, &kernel);
        assert!(c.flagged());
        assert!(c.max_mismatch > 0.09, "{c:?}");
        assert!(
            c.mismatches.iter().any(|m| m.contains("InDatagrams")),
            "{c:?}"
        );
    }

    #[test]
    fn frames_a_veth_dropped_before_counting_them_are_not_a_mismatch() {
        // Seen at kernel fan-out 20: the sink's backlog dropped 140 of 59999 frames, counted
        // in rx_dropped only; the sink read the 59859 the interface counted.
        let lab = LabCounts {
            sent: 59_999,
            sink_read: vec![59_859],
        };
        let kernel = |rx_packets: u64| KernelCounts {
            generator: Some(LinkCounters {
                tx_packets: 59_999,
                ..LinkCounters::default()
            }),
            sinks: vec![Some(LinkCounters {
                rx_packets,
                tx_packets: 0,
                rx_dropped: 140,
                tx_dropped: 0,
            })],
            sink_udp: Some(UdpCounters {
                in_datagrams: 59_859,
                ..UdpCounters::default()
            }),
            ..KernelCounts::default()
        };
        let c = cross_check(&lab, &kernel(59_859));
        assert!(!c.flagged(), "{c:?}");
        assert_eq!(sink_host_drops(&c), Some(140));
        // Dropped after arrival (counted in both): consistent too.
        assert!(!cross_check(&lab, &kernel(59_999)).flagged());
        // More arrived than the sockets took and the host dropped: flagged.
        let c = cross_check(&lab, &kernel(61_000));
        assert!(c.flagged(), "{c:?}");
        assert!(c.mismatches[0].contains("rx_packets"), "{c:?}");
        // Fewer arrived than the sockets read: flagged.
        assert!(cross_check(&lab, &kernel(58_000)).flagged());
    }

    #[test]
    fn the_senders_count_is_checked_against_its_interface() {
        let lab = LabCounts {
            sent: 2000,
            sink_read: vec![1990],
        };
        let kernel = KernelCounts {
            generator: Some(LinkCounters {
                tx_packets: 1990,
                ..LinkCounters::default()
            }),
            sinks: vec![link(1990, 0)],
            sink_udp: Some(UdpCounters {
                in_datagrams: 1990,
                ..UdpCounters::default()
            }),
            ..KernelCounts::default()
        };
        let c = cross_check(&lab, &kernel);
        assert_eq!(c.mismatches.len(), 1, "{c:?}");
        assert!(c.mismatches[0].contains("generator"), "{c:?}");
    }

    #[test]
    fn mismatch_is_relative_to_the_larger() {
        assert_eq!(relative_mismatch(0, 0), 0.0);
        assert!((relative_mismatch(999, 1000) - 0.001).abs() < 1e-12);
        assert_eq!(relative_mismatch(0, 5), 1.0);
    }
}
