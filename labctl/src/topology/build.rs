//! Creating a planned topology with rtnetlink: veth pairs straight into their namespaces,
//! the snooping bridge and its ports, addresses, links up, and 224.0.0.0/4 routes.

use super::plan::{BridgePlan, Interface, PREFIX_LEN, Plan, VethPair};
use crate::netns::{self, netlink_in};
use anyhow::{Context, Result, anyhow};
use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkMessage};
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth,
    RouteMessageBuilder,
};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

/// Bridge timers, in centiseconds (USER_HZ): the querier counts as present about
/// `QUERY_RESPONSE_INTERVAL` after the bridge comes up (10 s by default).
const QUERY_RESPONSE_INTERVAL_CS: u64 = 50;
const QUERY_INTERVAL_CS: u64 = 1000;
const STARTUP_QUERY_INTERVAL_CS: u64 = 100;

/// Creates every veth pair of the plan. Each pair is created from the root namespace with both
/// ends placed directly into their namespaces (IFLA_NET_NS_FD on both), so no lab interface
/// ever lives in the root namespace.
pub fn create_veths(plan: &Plan) -> Result<()> {
    let veths = plan.veths.clone();
    netlink_in(None, move |handle| async move {
        for pair in &veths {
            create_veth(&handle, pair).await.with_context(|| {
                format!(
                    "creating veth {} <-> {}",
                    pair.upstream.ifname, pair.downstream.ifname
                )
            })?;
        }
        Ok(())
    })
}

async fn create_veth(handle: &Handle, pair: &VethPair) -> Result<()> {
    let up_ns = File::open(netns::netns_path(&pair.upstream.netns))
        .with_context(|| format!("opening {}", pair.upstream.netns))?;
    let down_ns = File::open(netns::netns_path(&pair.downstream.netns))
        .with_context(|| format!("opening {}", pair.downstream.netns))?;
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(pair.downstream.ifname.clone())
        .setns_by_fd(down_ns.as_raw_fd())
        .build();
    let message = LinkVeth::new(&pair.upstream.ifname, &pair.downstream.ifname)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .setns_by_fd(up_ns.as_raw_fd())
        .build();
    handle.link().add(message).execute().await?;
    Ok(())
}

/// Configures one namespace: loopback up, the bridge (if it lives here), addresses, links up,
/// multicast routes.
pub fn configure_namespace(
    netns_name: &str,
    ifaces: Vec<Interface>,
    bridge: Option<BridgePlan>,
) -> Result<()> {
    netlink_in(Some(netns_name), move |handle| async move {
        set_up(&handle, "lo").await?;
        if let Some(bridge) = &bridge {
            create_bridge(&handle, bridge)
                .await
                .with_context(|| format!("creating bridge {}", bridge.name))?;
        }
        for iface in &ifaces {
            let index = link_index(&handle, &iface.ifname).await?;
            if let Some(addr) = iface.addr {
                handle
                    .address()
                    .add(index, IpAddr::V4(addr), PREFIX_LEN)
                    .execute()
                    .await
                    .with_context(|| format!("adding {addr}/{PREFIX_LEN} to {}", iface.ifname))?;
            }
            set_up(&handle, &iface.ifname).await?;
            if let Some(metric) = iface.mcast_route_metric {
                add_multicast_route(&handle, index, metric)
                    .await
                    .with_context(|| format!("adding 224.0.0.0/4 via {}", iface.ifname))?;
            }
        }
        Ok(())
    })
}

/// The snooping bridge: snooping on, querier on (from its own address), short query response
/// interval so it is ready quickly; ports attached; `mcast_flood off` on the relay's port.
async fn create_bridge(handle: &Handle, bridge: &BridgePlan) -> Result<()> {
    let message = LinkBridge::new(&bridge.name)
        .mcast_snooping(true)
        .mcast_query_use_ifaddr(true)
        .mcast_query_response_interval(QUERY_RESPONSE_INTERVAL_CS)
        .mcast_query_interval(QUERY_INTERVAL_CS)
        .mcast_startup_query_interval(STARTUP_QUERY_INTERVAL_CS)
        .build();
    handle.link().add(message).execute().await?;
    let bridge_index = link_index(handle, &bridge.name).await?;
    // The querier is switched on only now: enabling it arms a "querier present" delay of the
    // query response interval in force at that moment (10 s if set in the same message).
    let querier = LinkBridge::new(&bridge.name).mcast_querier(true).build();
    handle
        .link()
        .change(querier)
        .execute()
        .await
        .context("enabling the IGMP querier")?;
    handle
        .address()
        .add(bridge_index, IpAddr::V4(bridge.addr), PREFIX_LEN)
        .execute()
        .await
        .with_context(|| format!("adding {} to the bridge", bridge.addr))?;
    for port in &bridge.ports {
        let index = link_index(handle, port).await?;
        let attach = LinkUnspec::new_with_index(index)
            .controller(bridge_index)
            .build();
        handle
            .link()
            .change(attach)
            .execute()
            .await
            .with_context(|| format!("attaching {port} to {}", bridge.name))?;
        if *port == bridge.flood_off_port {
            let options = LinkBridgePort::new(index).mcast_flood(false).build();
            handle
                .link()
                .set_port(options)
                .execute()
                .await
                .with_context(|| format!("setting mcast_flood off on {port}"))?;
        }
    }
    set_up(handle, &bridge.name).await
}

async fn add_multicast_route(handle: &Handle, index: u32, metric: u32) -> Result<()> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(Ipv4Addr::new(224, 0, 0, 0), 4)
        .output_interface(index)
        .priority(metric)
        .build();
    handle.route().add(route).execute().await?;
    Ok(())
}

/// Sets a link administratively up.
pub async fn set_up(handle: &Handle, name: &str) -> Result<()> {
    let index = link_index(handle, name).await?;
    let message = LinkUnspec::new_with_index(index).up().build();
    handle
        .link()
        .change(message)
        .execute()
        .await
        .with_context(|| format!("setting {name} up"))?;
    Ok(())
}

/// Sets the link called `name` down or up (a link flap, for soak runs).
pub async fn set_state(handle: &Handle, name: &str, up: bool) -> Result<()> {
    let index = link_index(handle, name).await?;
    let link = LinkUnspec::new_with_index(index);
    let message = if up { link.up() } else { link.down() }.build();
    handle
        .link()
        .change(message)
        .execute()
        .await
        .with_context(|| format!("setting {name} {}", if up { "up" } else { "down" }))?;
    Ok(())
}

/// The link called `name` in the handle's namespace.
pub async fn get_link(handle: &Handle, name: &str) -> Result<LinkMessage> {
    handle
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
        .with_context(|| format!("looking up link {name}"))?
        .ok_or_else(|| anyhow!("link {name} not found"))
}

/// Interface index of `name`.
pub async fn link_index(handle: &Handle, name: &str) -> Result<u32> {
    Ok(get_link(handle, name).await?.header.index)
}
