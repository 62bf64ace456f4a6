//! Lab topologies: network namespaces joined by veth pairs (and a snooping bridge), built with
//! rtnetlink and netns-rs, never by running `ip`.
//!
//! [`Topology::up`] plans names and addresses (`plan`), reserves the namespaces atomically
//! (a random run id is retried on a clash), creates them, creates every veth pair directly
//! into its namespaces (`build`), configures each namespace on its own thread, applies the
//! requested per-namespace sysctls, and returns only when the links are up and, for
//! `snooping`, multicast provably reaches the relay after a join (`ready`). Any failure
//! tears down what was built. A `Topology` is torn down by [`Topology::down`] or on drop,
//! unless [`Topology::persist`] keeps it (for `labctl topo up`); a kept topology is found again
//! with [`Topology::attach`] from its state file under `/run/mlab/`.

mod build;
mod plan;
mod ready;
mod state;
mod template;

pub use crate::names::Role;
pub use plan::{BridgePlan, Interface, PREFIX_LEN, Plan};
pub use ready::{PROBE_GROUP, PROBE_PORT};
pub use template::{MAX_FANOUT, Template, TemplateError};

use crate::names::{self, RunId};
use crate::{netns, process};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// How often a random run id is redrawn when it clashes with an existing one.
const RUN_ID_ATTEMPTS: usize = 16;
/// Grace between SIGTERM and SIGKILL for processes found in a namespace at teardown.
const STRAY_GRACE: Duration = Duration::from_millis(500);

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyOptions {
    pub template: Template,
    /// Run id chosen by the user (1..=6 of `[a-z0-9]`); random when `None`.
    pub name: Option<String>,
    /// Per-namespace sysctls applied after the links exist, e.g.
    /// `(Role::Relay, "net.ipv4.igmp_max_memberships", "2000")`.
    pub sysctls: Vec<(Role, String, String)>,
}

impl TopologyOptions {
    pub fn new(template: Template) -> Self {
        TopologyOptions {
            template,
            name: None,
            sysctls: Vec::new(),
        }
    }
}

/// One addressed interface: where it lives, what it is called, its IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub netns: String,
    pub ifname: String,
    pub addr: Ipv4Addr,
}

/// A built topology. Torn down on [`down`](Topology::down) or drop unless persisted.
#[derive(Debug, Serialize, Deserialize)]
pub struct Topology {
    run_id: RunId,
    template: Template,
    namespaces: BTreeMap<Role, String>,
    #[serde(rename = "gen")]
    generator: Endpoint,
    relay_in: Option<Endpoint>,
    relay_out: Vec<Endpoint>,
    sinks: Vec<Endpoint>,
    /// The snooping bridge's address endpoint (namespace, bridge name, .254).
    bridge: Option<Endpoint>,
    /// True when dropping must not tear down (already down, persisted, or merely read from
    /// a state file: only [`Topology::attach`] takes ownership of a stored topology).
    #[serde(skip, default = "detached")]
    torn_down: bool,
}

impl Topology {
    /// Builds the topology and waits until it is ready. On failure nothing is left behind.
    pub fn up(opts: &TopologyOptions) -> Result<Topology> {
        check_sysctl_roles(opts)?;
        crate::privilege::require_root()?;
        let (run_id, plan) = reserve_run(opts)?;
        let topology = Topology::from_plan(run_id, opts.template, &plan);
        // From here on, dropping `topology` (error paths included) tears everything down.
        topology.register_cleanup();
        topology.build(&plan, &opts.sysctls)?;
        state::save(&topology)?;
        Ok(topology)
    }

    fn from_plan(run_id: RunId, template: Template, plan: &Plan) -> Topology {
        let namespaces = plan.namespaces(&run_id).into_iter().collect();
        let bridge = plan.bridge.as_ref().map(|b| Endpoint {
            netns: b.netns.clone(),
            ifname: b.name.clone(),
            addr: b.addr,
        });
        Topology {
            run_id,
            template,
            namespaces,
            generator: plan.generator.clone(),
            relay_in: plan.relay_in.clone(),
            relay_out: plan.relay_out.clone(),
            sinks: plan.sinks.clone(),
            bridge,
            torn_down: false,
        }
    }

    fn build(&self, plan: &Plan, sysctls: &[(Role, String, String)]) -> Result<()> {
        for name in self.namespaces.values() {
            create_namespace(name)?;
            netns::write_sysctls(name, base_sysctls())?;
        }
        build::create_veths(plan)?;
        for (role, name) in &self.namespaces {
            let ifaces: Vec<Interface> = plan
                .interfaces()
                .filter(|i| i.role == *role)
                .cloned()
                .collect();
            let bridge = plan.bridge.clone().filter(|b| b.netns == *name);
            build::configure_namespace(name, ifaces, bridge)?;
        }
        for (role, key, value) in sysctls {
            let name = &self.namespaces[role];
            netns::write_sysctls(name, vec![(key.clone(), value.clone())])?;
        }
        for name in self.namespaces.values() {
            let mut links: Vec<String> = plan
                .interfaces()
                .filter(|i| i.netns == *name)
                .map(|i| i.ifname.clone())
                .collect();
            if let Some(b) = plan.bridge.as_ref().filter(|b| b.netns == *name) {
                links.push(b.name.clone());
            }
            ready::wait_links_up(name, links)?;
        }
        if self.template == Template::Snooping
            && let Some(relay_in) = &self.relay_in
        {
            ready::wait_snooping_ready(
                &self.generator.netns,
                self.generator.addr,
                &relay_in.netns,
                relay_in.addr,
            )?;
        }
        Ok(())
    }

    /// Finds a topology left up by `labctl topo up` (from its state file).
    pub fn attach(run_id: &str) -> Result<Topology> {
        let id = RunId::parse(run_id)?;
        let mut topology = state::load(&id)?;
        topology.torn_down = false;
        topology.register_cleanup();
        Ok(topology)
    }

    /// Run ids of the lab topologies on this machine (from the namespaces under /run/netns).
    pub fn list() -> Result<Vec<TopologySummary>> {
        let mut runs: BTreeMap<RunId, Vec<String>> = BTreeMap::new();
        for name in netns::list()? {
            if let Some((id, _)) = names::parse_namespace(&name) {
                runs.entry(id).or_default().push(name);
            }
        }
        Ok(runs
            .into_iter()
            .map(|(id, namespaces)| TopologySummary {
                template: state::load_template(&id),
                run_id: id.to_string(),
                namespaces,
            })
            .collect())
    }

    pub fn run_id(&self) -> &str {
        self.run_id.as_str()
    }

    pub fn template(&self) -> Template {
        self.template
    }

    /// The namespace of `role`, if this template has it.
    pub fn namespace(&self, role: Role) -> Option<&str> {
        self.namespaces.get(&role).map(String::as_str)
    }

    /// All namespaces of this topology, by role.
    pub fn namespaces(&self) -> impl Iterator<Item = (Role, &str)> {
        self.namespaces.iter().map(|(r, n)| (*r, n.as_str()))
    }

    /// The generator's interface.
    /// (`gen` is a reserved word in edition 2024: call it as `topology.r#gen()` or use
    /// [`Topology::generator`].)
    pub fn r#gen(&self) -> &Endpoint {
        &self.generator
    }

    /// The generator's interface (same as `r#gen()`).
    pub fn generator(&self) -> &Endpoint {
        &self.generator
    }

    /// The relay's ingress interface (`None` for `direct`).
    pub fn relay_in(&self) -> Option<&Endpoint> {
        self.relay_in.as_ref()
    }

    /// The relay's egress interfaces: K for `fanout K`, 1 for chain/snooping, 0 for direct.
    pub fn relay_out(&self) -> &[Endpoint] {
        &self.relay_out
    }

    /// The sink-side interfaces: 1, or K for `fanout K` (all in the one sink namespace).
    pub fn sinks(&self) -> &[Endpoint] {
        &self.sinks
    }

    /// The snooping bridge (namespace, name, address), for `snooping`.
    pub fn bridge(&self) -> Option<&Endpoint> {
        self.bridge.as_ref()
    }

    /// For `snooping`: waits until the switch forwards `group` to the relay namespace (a
    /// receiver there has joined it and the bridge has learned the join), proven by probes
    /// from gen seen on the relay's wire. Other templates have no switch: returns at once.
    pub fn wait_group_forwarded(&self, group: Ipv4Addr) -> Result<Duration> {
        match (&self.template, &self.relay_in) {
            (Template::Snooping, Some(relay_in)) => ready::wait_group_forwarded(
                &self.generator.netns,
                self.generator.addr,
                &relay_in.netns,
                group,
            ),
            _ => Ok(Duration::ZERO),
        }
    }

    /// Tears the topology down: stray processes in its namespaces, the namespaces (their links
    /// go with them), the state file.
    pub fn down(mut self) -> Result<()> {
        self.torn_down = true;
        // The cleanup stays registered until the teardown is done: a signal arriving meanwhile
        // runs it again (after this one, under the namespace gate) before labctl exits, instead
        // of exiting half-way through this one.
        let result = teardown(&self.run_id, self.namespaces.values());
        process::unregister_cleanup(&self.cleanup_key());
        result
    }

    /// Keeps the topology up after this value is gone (for `labctl topo up`).
    pub fn persist(mut self) {
        self.torn_down = true;
        process::unregister_cleanup(&self.cleanup_key());
    }

    fn cleanup_key(&self) -> String {
        format!("topology:{}", self.run_id)
    }

    fn register_cleanup(&self) {
        let id = self.run_id.clone();
        let namespaces: Vec<String> = self.namespaces.values().cloned().collect();
        process::register_cleanup(
            self.cleanup_key(),
            Box::new(move || {
                if let Err(e) = teardown(&id, namespaces.iter()) {
                    eprintln!("labctl: cleanup of topology {id}: {e:#}");
                }
            }),
        );
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        if let Err(e) = teardown(&self.run_id, self.namespaces.values()) {
            eprintln!("labctl: tearing down topology {}: {e:#}", self.run_id);
        }
        process::unregister_cleanup(&self.cleanup_key());
    }
}

fn detached() -> bool {
    true
}

/// A topology found on the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopologySummary {
    pub run_id: String,
    /// Known when the state file exists.
    pub template: Option<Template>,
    pub namespaces: Vec<String>,
}

/// Removes every namespace of run `run_id` (whether or not its state file exists).
pub fn remove_run(run_id: &str) -> Result<usize> {
    let id = RunId::parse(run_id)?;
    let prefix = format!("{}{}-", names::NAMESPACE_PREFIX, id);
    let namespaces: Vec<String> = netns::list()?
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    if namespaces.is_empty() && !state::exists(&id) {
        bail!("no lab topology named {id}; `labctl topo list` shows the existing ones");
    }
    teardown(&id, namespaces.iter())?;
    Ok(namespaces.len())
}

/// Sets interface `ifname` of namespace `netns` down or up (link flaps of a soak run).
pub fn set_link_state(netns: &str, ifname: &str, up: bool) -> Result<()> {
    let name = ifname.to_owned();
    netns::netlink_in(Some(netns), move |handle| async move {
        build::set_state(&handle, &name, up).await
    })
}

/// Held while a namespace is created and while namespaces are torn down, so that a teardown
/// (SIGINT/SIGTERM cleanup on another thread) never runs between the check for an interrupt and
/// the creation it allows: a namespace is either created before the teardown, which then removes
/// it, or not at all.
static NAMESPACE_GATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn namespace_gate() -> std::sync::MutexGuard<'static, ()> {
    NAMESPACE_GATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Creates namespace `name` unless labctl is being interrupted.
fn create_namespace(name: &str) -> Result<()> {
    let _gate = namespace_gate();
    if process::interrupted() {
        anyhow::bail!("interrupted: not creating namespace {name}");
    }
    netns::create(name)
}

fn teardown<'a>(run_id: &RunId, namespaces: impl Iterator<Item = &'a String>) -> Result<()> {
    let _gate = namespace_gate();
    let mut first_error = None;
    for name in namespaces {
        let result =
            process::stop_pids_in_netns(name, STRAY_GRACE).and_then(|_| netns::remove(name));
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    state::remove(run_id);
    first_error.map_or(Ok(()), Err)
}

/// Sysctls every lab namespace gets: no IPv6 (keeps MLD/DAD noise off the links) and no
/// reverse-path filter (multicast sources are on other subnets behind a relay).
fn base_sysctls() -> Vec<(String, String)> {
    let mut settings = vec![
        ("net.ipv4.conf.all.rp_filter".to_string(), "0".to_string()),
        (
            "net.ipv4.conf.default.rp_filter".to_string(),
            "0".to_string(),
        ),
    ];
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        settings.push((
            "net.ipv6.conf.all.disable_ipv6".to_string(),
            "1".to_string(),
        ));
        settings.push((
            "net.ipv6.conf.default.disable_ipv6".to_string(),
            "1".to_string(),
        ));
    }
    settings
}

fn check_sysctl_roles(opts: &TopologyOptions) -> Result<()> {
    let plan_roles = Plan::new(
        &RunId::parse("check").context("internal run id")?,
        opts.template,
    )?
    .roles;
    for (role, key, _) in &opts.sysctls {
        netns::sysctl_path(key)?;
        if !plan_roles.contains(role) {
            bail!(
                "sysctl {key} is for role {role}, which template {} does not have",
                opts.template
            );
        }
    }
    Ok(())
}

/// Picks the run id and atomically reserves all its namespace paths.
fn reserve_run(opts: &TopologyOptions) -> Result<(RunId, Plan)> {
    if let Some(name) = &opts.name {
        let id = RunId::parse(name)?;
        let plan = Plan::new(&id, opts.template)?;
        if !try_reserve(&id, &plan)? {
            bail!(
                "a lab topology named {id} already exists; pick another --name or remove it with `labctl topo down {id}`"
            );
        }
        return Ok((id, plan));
    }
    for _ in 0..RUN_ID_ATTEMPTS {
        let id = RunId::random();
        let plan = Plan::new(&id, opts.template)?;
        if try_reserve(&id, &plan)? {
            return Ok((id, plan));
        }
    }
    bail!("could not find a free run id after {RUN_ID_ATTEMPTS} attempts; run `labctl clean`")
}

/// Reserves every namespace of the plan, or none (releasing partial reservations).
fn try_reserve(id: &RunId, plan: &Plan) -> Result<bool> {
    if state::exists(id) {
        return Ok(false);
    }
    let mut reserved = Vec::new();
    for (_, name) in plan.namespaces(id) {
        match netns::reserve(&name) {
            Ok(true) => reserved.push(name),
            other => {
                for name in &reserved {
                    let _ = std::fs::remove_file(netns::netns_path(name));
                }
                return other.map(|_| false);
            }
        }
    }
    Ok(true)
}
