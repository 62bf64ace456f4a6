//! Which multicast groups a namespace has joined, from `/proc/PID/net/igmp` of a process in it
//! (procfs shows the network namespace of the PID).

use std::collections::HashSet;
use std::net::Ipv4Addr;

/// Groups joined on interface `ifname` in the namespace of `pid`.
pub fn joined_groups(pid: u32, ifname: &str) -> std::io::Result<HashSet<Ipv4Addr>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/igmp"))?;
    Ok(parse(&text, ifname))
}

/// Groups joined on interface `ifname` in namespace `netns`, read from a thread inside it
/// (works when no process lives in the namespace).
pub fn joined_in_netns(netns: &str, ifname: &str) -> anyhow::Result<HashSet<Ipv4Addr>> {
    let ifname = ifname.to_owned();
    crate::netns::run_in_netns(netns, move || {
        let text = std::fs::read_to_string("/proc/thread-self/net/igmp")?;
        Ok(parse(&text, &ifname))
    })
}

/// Parses `/proc/net/igmp`: a device line `IDX DEV : COUNT QUERIER` followed by group lines
/// `GROUP USERS TIMER REPORTER`, the group as the in-memory (network order) u32 in hex.
fn parse(text: &str, ifname: &str) -> HashSet<Ipv4Addr> {
    let mut groups = HashSet::new();
    let mut in_device = false;
    for line in text.lines().skip(1) {
        if !line.starts_with(char::is_whitespace) {
            // `%-10s:` - a name of 10+ characters runs into the colon.
            in_device = line
                .split_whitespace()
                .nth(1)
                .map(|d| d.trim_end_matches(':'))
                == Some(ifname);
            continue;
        }
        if in_device
            && let Some(hex) = line.split_whitespace().next()
            && let Ok(raw) = u32::from_str_radix(hex, 16)
        {
            groups.insert(Ipv4Addr::from(u32::from_be(raw)));
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_groups_of_one_device() {
        let le = |a: Ipv4Addr| format!("{:08X}", u32::from_be(u32::from(a)));
        let text = format!(
            "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n\
             1\tlo        :     1      V3\n\t\t\t\t{}     1 0:00000000\t\t0\n\
             5\tml1234ab-rin:     2      V3\n\t\t\t\t{}     1 0:00000000\t\t0\n\t\t\t\t{}     1 0:00000000\t\t0\n",
            le(Ipv4Addr::new(224, 0, 0, 1)),
            le(Ipv4Addr::new(239, 1, 0, 1)),
            le(Ipv4Addr::new(239, 1, 0, 2)),
        );
        let g = parse(&text, "ml1234ab-rin");
        assert_eq!(g.len(), 2);
        assert!(g.contains(&Ipv4Addr::new(239, 1, 0, 2)));
        assert_eq!(parse(&text, "lo").len(), 1);
        assert!(parse(&text, "eth9").is_empty());
    }

    #[test]
    fn reads_our_own_namespace() {
        // Every process can read its own igmp table; `lo` always has 224.0.0.1 when IPv4 is up.
        let groups = joined_groups(std::process::id(), "lo").unwrap();
        assert!(groups.contains(&Ipv4Addr::new(224, 0, 0, 1)), "{groups:?}");
    }
}
