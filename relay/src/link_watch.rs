//! Following the namespace's interfaces: rtnetlink link and IPv4 address events make the relay
//! re-resolve its rules ([`crate::service::Relay::resync`]).
//!
//! A dedicated thread runs a current-thread tokio runtime with one rtnetlink socket subscribed
//! to RTNLGRP_LINK and RTNLGRP_IPV4_IFADDR (interfaces created, deleted, renamed, up/down, MAC
//! changes; IPv4 addresses added and removed). The thread was spawned by the relay's main
//! thread, so it lives in the relay's network namespace.
//!
//! - **Debounce**: an event starts a short quiet period ([`WatchConfig::debounce`], bounded by
//!   [`WatchConfig::max_delay`]); the events of one change (a veth pair created, addressed and
//!   brought up is half a dozen messages) cost one re-sync.
//! - **Safety net**: a full re-sync every [`WatchConfig::period`] whatever happened, so a lost
//!   event costs at most one period. A netlink socket that overflows (ENOBUFS: events were
//!   dropped) reports an overrun, which triggers a re-sync like any event; a socket that fails
//!   is opened again after [`WatchConfig::period`], with one warning.
//! - The re-sync is a full comparison (it lists every interface), so no event needs to be
//!   parsed: what changed is found by comparing.

use anyhow::Context;
use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior};

/// When re-syncs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchConfig {
    /// Quiet time after the last event before the re-sync.
    pub debounce: Duration,
    /// Longest delay between the first event of a burst and its re-sync.
    pub max_delay: Duration,
    /// Periodic full re-sync (and the pause before a failed netlink socket is reopened).
    pub period: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            debounce: Duration::from_millis(50),
            max_delay: Duration::from_millis(250),
            period: Duration::from_secs(2),
        }
    }
}

/// Why a re-sync runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Link or address events (after the debounce).
    Event,
    /// The periodic safety net (also the first re-sync at start).
    Periodic,
}

type Events = UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// The running watcher thread; [`LinkWatch::stop`] (or drop) ends it.
pub struct LinkWatch {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LinkWatch {
    /// Starts the watcher thread; `resync` runs on it for every debounced burst of events and
    /// every period.
    pub fn start(
        config: WatchConfig,
        resync: impl FnMut(Trigger) + Send + 'static,
    ) -> anyhow::Result<LinkWatch> {
        let (stop, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the link watcher's tokio runtime")?;
        let thread = std::thread::Builder::new()
            .name("link-watch".into())
            .spawn(move || runtime.block_on(watch(config, resync, stopped)))
            .context("spawning the link watcher thread")?;
        Ok(LinkWatch {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Ends the watcher and waits for its thread (a re-sync under way finishes first).
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the link watcher thread panicked");
        }
    }
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The watcher's loop: events (debounced), periodic ticks, reconnects, until `stopped`.
async fn watch(
    config: WatchConfig,
    mut resync: impl FnMut(Trigger),
    mut stopped: oneshot::Receiver<()>,
) {
    let mut events = subscribe(None);
    let mut tick = tokio::time::interval(config.period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut reconnect_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = tick.tick() => {
                if reconnect_at.is_some_and(|at| Instant::now() >= at) {
                    reconnect_at = None;
                    events = subscribe(events.as_ref().err());
                }
                resync(Trigger::Periodic);
            }
            event = next_event(&mut events) => {
                let Some(event) = event else {
                    // The socket failed: reopen it after a period (the ticks go on meanwhile).
                    events = Err("the netlink socket closed".into());
                    reconnect_at = Some(Instant::now() + config.period);
                    continue;
                };
                if is_overrun(&event) {
                    tracing::debug!("netlink socket overrun: events were lost, full re-sync");
                } else {
                    debounce(&mut events, config).await;
                }
                resync(Trigger::Event);
                tick.reset();
            }
        }
    }
}

/// Opens the event socket. A failure is logged once (`previous` is the last failure, if any):
/// the periodic re-sync goes on and the socket is retried.
fn subscribe(previous: Option<&String>) -> Result<Events, String> {
    let opened =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Link, MulticastGroup::Ipv4Ifaddr]);
    match opened {
        Ok((connection, _handle, messages)) => {
            tokio::spawn(connection);
            if previous.is_some() {
                tracing::info!("link events followed again");
            }
            Ok(messages)
        }
        Err(e) => {
            let error = format!("opening the rtnetlink event socket failed: {e}");
            if previous.is_none() {
                tracing::warn!("{error}; interfaces are re-checked periodically only");
            }
            Err(error)
        }
    }
}

/// The next event; never ready without a socket.
async fn next_event(
    events: &mut Result<Events, String>,
) -> Option<NetlinkMessage<RouteNetlinkMessage>> {
    match events {
        Ok(events) => events.next().await.map(|(message, _)| message),
        Err(_) => std::future::pending().await,
    }
}

fn is_overrun(message: &NetlinkMessage<RouteNetlinkMessage>) -> bool {
    matches!(message.payload, NetlinkPayload::Overrun(_))
}

/// Swallows further events until `debounce` passes without one, at most `max_delay` in all.
async fn debounce(events: &mut Result<Events, String>, config: WatchConfig) {
    let deadline = Instant::now() + config.max_delay;
    loop {
        let quiet_until = (Instant::now() + config.debounce).min(deadline);
        match tokio::time::timeout_at(quiet_until, next_event(events)).await {
            Ok(Some(event)) if !is_overrun(&event) && Instant::now() < deadline => {}
            Ok(None) => {
                *events = Err("the netlink socket closed".into());
                return;
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn periodic_resyncs_run_and_stop_ends_the_thread() {
        let (tx, rx) = mpsc::channel();
        let config = WatchConfig {
            period: Duration::from_millis(20),
            ..WatchConfig::default()
        };
        let watch = LinkWatch::start(config, move |trigger| {
            let _ = tx.send(trigger);
        })
        .unwrap();
        for _ in 0..3 {
            let trigger = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            // Events may come from other tests' interfaces; periodic ones must come.
            assert!(matches!(trigger, Trigger::Periodic | Trigger::Event));
        }
        let started = std::time::Instant::now();
        watch.stop();
        assert!(started.elapsed() < Duration::from_secs(1));
        // The closure (and its sender) went with the thread.
        while rx.try_recv().is_ok() {}
        assert!(matches!(
            rx.recv_timeout(Duration::from_millis(100)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        ));
    }

    /// Creates a veth pair with an address and brings it up (half a dozen link and address
    /// messages) in the current thread's namespace.
    async fn create_veth(handle: &rtnetlink::Handle) {
        use futures::TryStreamExt;
        let veth = rtnetlink::LinkVeth::new("w0", "w0p").up().build();
        handle.link().add(veth).execute().await.unwrap();
        let mut links = handle.link().get().match_name("w0".to_string()).execute();
        let index = links.try_next().await.unwrap().unwrap().header.index;
        let addr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 9, 1));
        handle
            .address()
            .add(index, addr, 24)
            .execute()
            .await
            .unwrap();
    }

    #[test]
    fn a_burst_of_link_events_triggers_one_resync() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "SKIPPED (needs root for a network namespace): a_burst_of_link_events_triggers_one_resync"
            );
            return;
        }
        let triggers = std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
            let (tx, rx) = mpsc::channel();
            // Periodic re-syncs far apart: only the first one (at start) falls in the test.
            let config = WatchConfig {
                period: Duration::from_secs(60),
                ..WatchConfig::default()
            };
            // Started here, the watcher thread lives in this thread's new namespace.
            let watch = LinkWatch::start(config, move |t| {
                let _ = tx.send(t);
            })
            .unwrap();
            assert_eq!(
                rx.recv_timeout(Duration::from_secs(5)),
                Ok(Trigger::Periodic)
            );
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let (connection, handle, _) = rtnetlink::new_connection().unwrap();
                tokio::spawn(connection);
                create_veth(&handle).await;
            });
            let first = rx.recv_timeout(Duration::from_secs(1));
            std::thread::sleep(Duration::from_millis(500));
            let more: Vec<Trigger> = rx.try_iter().collect();
            watch.stop();
            (first, more)
        })
        .join()
        .expect("namespace thread");
        assert_eq!(
            triggers.0,
            Ok(Trigger::Event),
            "an event re-sync within 1 s"
        );
        assert!(triggers.1.len() <= 1, "debounced: {:?}", triggers.1);
    }
}
