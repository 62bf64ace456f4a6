//! Readiness checks: a topology is handed out only after its links are up and, for the
//! snooping switch, after multicast provably flows to the relay's port once joined.
//! Everything is polled against a deadline; nothing sleeps for a guessed time.

use super::build::get_link;
use crate::netns::{netlink_in, run_in_netns};
use anyhow::{Context, Result, bail};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage, State};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

/// How long links may take to come up.
pub const LINK_DEADLINE: Duration = Duration::from_secs(10);
/// How long the snooping bridge's querier may take to become active.
pub const QUERIER_DEADLINE: Duration = Duration::from_secs(15);
/// Probe group for the querier check (239/8; never used by streams, which start at 239.1).
pub const PROBE_GROUP: Ipv4Addr = Ipv4Addr::new(239, 254, 0, 1);
pub const PROBE_PORT: u16 = 4999;
const POLL: Duration = Duration::from_millis(20);

/// Waits until every named link in namespace `netns` reports operstate UP and carries its IPv4
/// address (bridge ports carry none), polling until `LINK_DEADLINE`. IPv4 has no duplicate
/// address detection, so an address that is present is usable.
pub fn wait_links_up(netns: &str, links: Vec<String>) -> Result<()> {
    let label = netns.to_string();
    netlink_in(Some(netns), move |handle| async move {
        let deadline = Instant::now() + LINK_DEADLINE;
        for name in &links {
            loop {
                let link = get_link(&handle, name).await?;
                let state = link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::OperState(s) => Some(*s),
                    _ => None,
                });
                if state == Some(State::Up) && has_ipv4_address(&handle, &link).await? {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "link {name} in namespace {label} is not up after {:?} (operstate {state:?})",
                        LINK_DEADLINE
                    );
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Ok(())
    })
}

/// True if the link carries an IPv4 address, or is a bridge port (ports carry none).
async fn has_ipv4_address(handle: &rtnetlink::Handle, link: &LinkMessage) -> Result<bool> {
    use futures::TryStreamExt;
    use rtnetlink::packet_route::address::AddressAttribute;
    if link
        .attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::Controller(_)))
    {
        return Ok(true);
    }
    let mut addresses = handle
        .address()
        .get()
        .set_link_index_filter(link.header.index)
        .execute();
    while let Some(message) = addresses.try_next().await? {
        if message
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Address(std::net::IpAddr::V4(_))))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Proves the snooping bridge forwards a joined group to the relay's (flood-off) port: a probe
/// socket in the relay namespace joins [`PROBE_GROUP`] on `relay_addr`, the gen namespace sends
/// small probes to it every 50 ms, and we wait until one arrives (bounded by
/// `QUERIER_DEADLINE`, at most 20 probes a second). The probe socket then leaves.
pub fn wait_snooping_ready(
    gen_ns: &str,
    gen_addr: Ipv4Addr,
    relay_ns: &str,
    relay_addr: Ipv4Addr,
) -> Result<Duration> {
    let receiver = run_in_netns(relay_ns, move || probe_receiver(relay_addr))?;
    let sender = run_in_netns(gen_ns, move || probe_sender(gen_addr))?;
    let target = SockAddr::from(SocketAddrV4::new(PROBE_GROUP, PROBE_PORT));
    let started = Instant::now();
    let mut next_send = started;
    let mut buf = [MaybeUninit::<u8>::uninit(); 64];
    loop {
        let now = Instant::now();
        if now >= started + QUERIER_DEADLINE {
            bail!(
                "the snooping bridge did not forward a joined probe group to the relay port within {:?}: \
                 its IGMP querier never became active (check that the kernel has bridge multicast snooping)",
                QUERIER_DEADLINE
            );
        }
        if now >= next_send {
            sender
                .send_to(b"mlab-probe", &target)
                .context("sending a snooping probe")?;
            next_send = now + Duration::from_millis(50);
        }
        match receiver.recv(&mut buf) {
            Ok(n) if n > 0 => return Ok(started.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e).context("receiving a snooping probe"),
        }
    }
}

fn probe_receiver(addr: Ipv4Addr) -> Result<Socket> {
    let socket =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).context("probe socket")?;
    socket.set_reuse_address(true)?;
    socket
        .bind(&SockAddr::from(SocketAddrV4::new(PROBE_GROUP, PROBE_PORT)))
        .context("binding the probe socket")?;
    socket
        .join_multicast_v4(&PROBE_GROUP, &addr)
        .context("joining the probe group")?;
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

fn probe_sender(addr: Ipv4Addr) -> Result<Socket> {
    let socket =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).context("probe sender")?;
    socket.set_multicast_if_v4(&addr)?;
    socket.set_multicast_ttl_v4(1)?;
    socket.set_multicast_loop_v4(false)?;
    socket
        .bind(&SockAddr::from(SocketAddrV4::new(addr, 0)))
        .context("binding the probe sender")?;
    Ok(socket)
}

/// How long a join may take to open the snooping switch for a group.
pub const GROUP_DEADLINE: Duration = Duration::from_secs(10);

/// Waits until the snooping switch forwards `group` to the relay namespace, i.e. until a
/// receiver's join there has been learned: gen sends small probes to `group`:[`PROBE_PORT`]
/// every 20 ms (bounded by [`GROUP_DEADLINE`]) and an AF_PACKET socket in `relay_ns` watches
/// for one on the wire. Probes use their own port, so a receiver on the streams' port ignores
/// them.
pub fn wait_group_forwarded(
    gen_ns: &str,
    gen_addr: Ipv4Addr,
    relay_ns: &str,
    group: Ipv4Addr,
) -> Result<Duration> {
    if !group.is_multicast() || group.octets()[0] != 239 {
        bail!("{group} is not a 239.0.0.0/8 group");
    }
    let watcher = run_in_netns(relay_ns, || {
        let proto = i32::from((libc::ETH_P_IP as u16).to_be());
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(proto)))
            .context("AF_PACKET socket")?;
        socket.set_read_timeout(Some(Duration::from_millis(10)))?;
        Ok(socket)
    })?;
    let sender = run_in_netns(gen_ns, move || probe_sender(gen_addr))?;
    let target = SockAddr::from(SocketAddrV4::new(group, PROBE_PORT));
    let started = Instant::now();
    let mut next_send = started;
    let mut frame = [0u8; 2048];
    loop {
        let now = Instant::now();
        if now >= started + GROUP_DEADLINE {
            bail!(
                "the snooping switch did not forward {group} to the relay namespace within {GROUP_DEADLINE:?}: is a receiver there joined to it?"
            );
        }
        if now >= next_send {
            sender
                .send_to(b"mlab-probe", &target)
                .context("sending a group probe")?;
            next_send = now + Duration::from_millis(20);
        }
        match std::io::Read::read(&mut &watcher, &mut frame) {
            Ok(n) if is_probe_frame(&frame[..n], group) => return Ok(started.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e).context("watching for group probes"),
        }
    }
}

/// An Ethernet/IPv4/UDP frame to `group`:[`PROBE_PORT`].
fn is_probe_frame(frame: &[u8], group: Ipv4Addr) -> bool {
    const ETH: usize = 14;
    if frame.len() < ETH + 20 || frame[ETH] >> 4 != 4 || frame[ETH + 9] != 17 {
        return false;
    }
    let ihl = usize::from(frame[ETH] & 0x0f) * 4;
    let dst = Ipv4Addr::new(
        frame[ETH + 16],
        frame[ETH + 17],
        frame[ETH + 18],
        frame[ETH + 19],
    );
    let udp = ETH + ihl;
    frame.len() >= udp + 8
        && dst == group
        && u16::from_be_bytes([frame[udp + 2], frame[udp + 3]]) == PROBE_PORT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: [u8; 4], proto: u8, port: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + 4];
        f[12] = 0x08;
        f[14] = 0x45;
        f[14 + 9] = proto;
        f[30..34].copy_from_slice(&dst);
        f[34 + 2..34 + 4].copy_from_slice(&port.to_be_bytes());
        f
    }

    #[test]
    fn recognises_probe_frames_only() {
        let g = Ipv4Addr::new(239, 1, 0, 1);
        assert!(is_probe_frame(&frame([239, 1, 0, 1], 17, PROBE_PORT), g));
        assert!(!is_probe_frame(&frame([239, 1, 0, 1], 17, 5000), g));
        assert!(!is_probe_frame(&frame([239, 1, 0, 2], 17, PROBE_PORT), g));
        assert!(!is_probe_frame(&frame([239, 1, 0, 1], 6, PROBE_PORT), g));
        assert!(!is_probe_frame(&[0u8; 20], g));
    }
}
