//! The changes a soak injects, one step per second: rule churn (a rule of a group nobody sends
//! to, added one second and removed the next) and link flaps (the relay's ingress and egress
//! links in turn, down for `flap_down_s`, then up). Flap windows are recorded in
//! CLOCK_MONOTONIC seconds, the clock of the sink's gap timeline.

use super::SoakOptions;
use super::verdict::FlapWindow;
use crate::systems::{Layout, Running};
use crate::topology::{Endpoint, set_link_state};
use anyhow::{Context, Result};

/// Extra input indices used for churn: groups after the streams', never sent to.
const CHURN_SLOTS: u32 = 8;

/// The fault schedule and what it did.
pub struct Faults {
    layout: Layout,
    churn_every_s: f64,
    flap_every_s: f64,
    flap_down_s: f64,
    next_churn_s: f64,
    next_flap_s: f64,
    /// No flap starts after this run second: its losses must be seen (a later packet reveals a
    /// gap) and settled before the traffic ends.
    last_flap_start_s: f64,
    /// The link that is down now, and since when (run seconds).
    down: Option<(Endpoint, f64)>,
    /// The churn rule installed now, if any.
    churned: Option<u32>,
    pub rule_changes: u32,
    pub flaps: Vec<FlapWindow>,
}

impl Faults {
    pub fn new(opts: &SoakOptions, layout: &Layout) -> Faults {
        Faults {
            layout: layout.clone(),
            churn_every_s: opts.churn_every_s,
            flap_every_s: opts.flap_every_s,
            flap_down_s: opts.flap_down_s,
            next_churn_s: opts.churn_every_s,
            next_flap_s: opts.flap_every_s,
            last_flap_start_s: opts.duration_s
                - opts.flap_down_s
                - super::SETTLE.as_secs_f64()
                - 2.0,
            down: None,
            churned: None,
            rule_changes: 0,
            flaps: Vec::new(),
        }
    }

    /// Applies whatever is due at run second `t`.
    pub fn tick(&mut self, t: f64, relay: &mut Running) -> Result<()> {
        if t >= self.next_churn_s {
            self.churn(relay)?;
            self.next_churn_s += self.churn_every_s;
        }
        // Ticks come once a second, a few ms late: half a tick of slack keeps a 1 s flap 1 s.
        if let Some((link, since)) = &self.down
            && t + 0.5 >= since + self.flap_down_s
        {
            let link = link.clone();
            self.up(&link)?;
        }
        if self.down.is_none() && t >= self.next_flap_s && t <= self.last_flap_start_s {
            self.flap_down(t)?;
            self.next_flap_s += self.flap_every_s;
        }
        Ok(())
    }

    /// Brings a link that is still down back up (end of the run).
    pub fn restore(&mut self) {
        if let Some((link, _)) = self.down.clone() {
            let _ = self.up(&link);
        }
    }

    fn churn(&mut self, relay: &mut Running) -> Result<()> {
        match self.churned.take() {
            Some(i) => relay.change_rule(&self.layout, i, false)?,
            None => {
                let i = self.layout.streams + self.rule_changes / 2 % CHURN_SLOTS;
                relay.change_rule(&self.layout, i, true)?;
                self.churned = Some(i);
            }
        }
        self.rule_changes += 1;
        Ok(())
    }

    /// Takes the relay's ingress down on even flaps, its egress on odd ones.
    fn flap_down(&mut self, t: f64) -> Result<()> {
        let link = if self.flaps.len() % 2 == 0 {
            self.layout.relay_in.clone()
        } else {
            self.layout.relay_out.first().cloned()
        }
        .context("the topology has no relay link to flap")?;
        set_link_state(&link.netns, &link.ifname, false)?;
        self.flaps.push(FlapWindow {
            interface: link.ifname.clone(),
            down_at_s: monotonic_s(),
            up_at_s: f64::NAN,
        });
        self.down = Some((link, t));
        Ok(())
    }

    fn up(&mut self, link: &Endpoint) -> Result<()> {
        set_link_state(&link.netns, &link.ifname, true)?;
        if let Some(last) = self.flaps.last_mut() {
            last.up_at_s = monotonic_s();
        }
        self.down = None;
        Ok(())
    }
}

fn monotonic_s() -> f64 {
    crate::systems::monotonic_ns() as f64 / 1e9
}
