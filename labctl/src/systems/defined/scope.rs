//! The values a definition's templates see, built from a point's [`Layout`].

use super::super::{BASE_PORT, Layout};
use crate::definition::template::{
    ApplyScope, ConfigScope, Host, HostScope, Iface, Input, Output, Rule, RuleScope,
};
use anyhow::{Context, Result};
use std::path::Path;

/// The hosts of one start: everything but the rules.
#[derive(Debug, Clone)]
pub struct Values {
    pub host: Host,
    pub input: Iface,
    pub outputs: Vec<Iface>,
}

impl Values {
    /// The values of `layout` with scratch directory `scratch`.
    pub fn new(layout: &Layout, scratch: &Path) -> Result<Values> {
        let relay_in = layout
            .relay_in
            .as_ref()
            .context("a defined system needs a topology with a relay namespace")?;
        let netns = layout.relay_ns.clone().context("no relay namespace")?;
        let outputs = layout
            .relay_out
            .iter()
            .take(layout.fanout as usize)
            .map(|e| Iface {
                ifname: e.ifname.clone(),
                addr: e.addr.to_string(),
            })
            .collect::<Vec<_>>();
        anyhow::ensure!(
            outputs.len() == layout.fanout as usize,
            "fan-out {} needs as many egress links",
            layout.fanout
        );
        // Where this build's relay and loadgen are (labctl's own directory when they are not
        // found: `binaries::locate` explains that case when they are needed).
        let bin_dir = crate::binaries::locate("relay")
            .or_else(|_| std::env::current_exe().map_err(anyhow::Error::from))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        Ok(Values {
            host: Host {
                netns,
                scratch: scratch.display().to_string(),
                control_socket: scratch.join("control.sock").display().to_string(),
                ident: format!("mlab{:06x}", rand::random::<u32>() & 0xff_ffff),
                bin_dir: bin_dir.display().to_string(),
                streams: layout.streams,
                fanout: layout.fanout,
                source: layout.generator.addr.to_string(),
            },
            input: Iface {
                ifname: relay_in.ifname.clone(),
                addr: relay_in.addr.to_string(),
            },
            outputs,
        })
    }

    /// Rule `i` of `layout`: its input stream and its outputs.
    pub fn rule(&self, layout: &Layout, i: u32) -> Rule {
        Rule {
            index: i,
            input: Input {
                ifname: self.input.ifname.clone(),
                addr: self.input.addr.clone(),
                group: layout.input_group(i).to_string(),
                port: BASE_PORT,
                source: self.host.source.clone(),
            },
            outputs: self
                .outputs
                .iter()
                .zip(0u32..)
                .map(|(iface, k)| Output {
                    index: k,
                    ifname: iface.ifname.clone(),
                    addr: iface.addr.clone(),
                    group: layout.output_group(k, i).to_string(),
                    port: layout.output_port(k),
                })
                .collect(),
        }
    }

    pub fn host_scope(&self) -> HostScope<'_> {
        HostScope {
            host: &self.host,
            input: &self.input,
            outputs: &self.outputs,
        }
    }

    /// The scope of `rule`, for one `output` of it when rules run once per output.
    pub fn rule_scope<'a>(&'a self, rule: &'a Rule, output: Option<&'a Output>) -> RuleScope<'a> {
        RuleScope {
            host: &self.host,
            rule: rule.index,
            input: &rule.input,
            outputs: &rule.outputs,
            output,
        }
    }

    pub fn config_scope<'a>(&'a self, rules: &'a [Rule], all: &'a [Rule]) -> ConfigScope<'a> {
        ConfigScope {
            host: &self.host,
            input: &self.input,
            outputs: &self.outputs,
            rules,
            all_rules: all,
        }
    }

    pub fn apply_scope<'a>(&'a self, config: &'a str) -> ApplyScope<'a> {
        ApplyScope {
            host: &self.host,
            input: &self.input,
            outputs: &self.outputs,
            config,
        }
    }
}
