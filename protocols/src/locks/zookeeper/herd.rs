//! The herd effect, measured: K clients contend for the lock with no faults, with the
//! recipe (each waiter watches the node just below its own) and with every waiter
//! watching the lock node's children. Counted over the whole run: releases, the waiters
//! each release woke, and the messages between clients and the service (heartbeats left
//! out: they cost the same in both).

use std::cell::Cell;
use std::rc::Rc;

use serde::Serialize;
use sim_core::{Latency, Limits, LinkConfig, MS, NetworkConfig, Sim, SimConfig, TraceEvent, TraceSink};

use super::ZkSettings;
use super::tree::{ZkAnswer, ZkOp, ZkResult};
use crate::locks::{LockMsg, LockNode, LockObs, LockSettings, LockVariant};
use crate::raft::{Msg, RaftConfig, ServerSettings, Variant as RaftVariant};

const SERVERS: usize = 3;

/// One measurement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HerdRow {
    pub clients: usize,
    /// `recipe` or `herd`.
    pub watch: &'static str,
    pub acquisitions: u64,
    pub releases: u64,
    /// Waiters woken by the deletion of a lock node.
    pub wakeups_by_release: u64,
    pub wakeups_per_release: f64,
    /// Requests, answers and watch events between clients and the service, heartbeats
    /// excluded, per release.
    pub messages_per_release: f64,
}

/// Counts the client-service messages that are not heartbeats.
struct Traffic {
    count: Rc<Cell<u64>>,
}

fn is_heartbeat(msg: &LockMsg) -> bool {
    match msg {
        LockMsg::Zk(Msg::Request { op, .. }) => op.op == ZkOp::Ping,
        LockMsg::Zk(Msg::Reply { seq, answer, .. }) => {
            *seq == 0 && matches!(answer, ZkAnswer::Result { result: ZkResult::Pong, .. } | ZkAnswer::NotLeader { .. })
        }
        _ => false,
    }
}

impl TraceSink<LockMsg, LockObs> for Traffic {
    fn record(&mut self, event: &TraceEvent<'_, LockMsg, LockObs>) {
        if let TraceEvent::Send { from, to, msg, .. } = event {
            let client_service = (*from < SERVERS) != (*to < SERVERS) && *from != SERVERS && *to != SERVERS;
            if client_service && !is_heartbeat(msg) {
                self.count.set(self.count.get() + 1);
            }
        }
    }
}

/// Runs `clients` clients for `duration_ms` with the recipe or the herd.
pub fn measure(clients: usize, herd: bool, duration_ms: u64, seed: u64) -> HerdRow {
    let raft = ServerSettings { servers: SERVERS, variant: RaftVariant::Correct, raft: RaftConfig::default() };
    let settings = Rc::new(LockSettings {
        servers: (0..SERVERS).collect(),
        redlock: false,
        redlock_request_timeout_ms: 10,
        storage: SERVERS,
        variant: if herd { LockVariant::Herd } else { LockVariant::Correct },
        persistent: true,
        volatile_servers: Vec::new(),
        ttl_ms: 2_000,
        retry_ms: [0, 0],
        work_ms: [10, 10],
        request_timeout_ms: 300,
        db: None,
        zk: Some(ZkSettings { session_timeout_ms: 2_000, raft: Rc::new(raft) }),
    });
    let link = LinkConfig { latency: Latency::Uniform { min_ms: 1.0, max_ms: 5.0 }, ..LinkConfig::default() };
    let config = SimConfig {
        seed,
        nodes: SERVERS + 1 + clients,
        network: NetworkConfig { default: link, links: Vec::new(), kinds: Vec::new() },
        limits: Limits { max_time_ns: duration_ms * MS, ..Limits::default() },
    };
    let mut sim = Sim::new(config, move |id| LockNode::new(id, &settings)).expect("the experiment's cluster is valid");
    let count = Rc::new(Cell::new(0));
    sim.set_trace_sink(Box::new(Traffic { count: Rc::clone(&count) }));
    sim.run();
    let (mut acquisitions, mut releases, mut woken) = (0, 0, 0);
    for observation in sim.observations() {
        match observation.obs {
            LockObs::Acquired { .. } => acquisitions += 1,
            LockObs::Released { .. } => releases += 1,
            LockObs::Woken { by_release: true, .. } => woken += 1,
            _ => {}
        }
    }
    HerdRow {
        clients,
        watch: if herd { "herd" } else { "recipe" },
        acquisitions,
        releases,
        wakeups_by_release: woken,
        wakeups_per_release: woken as f64 / releases.max(1) as f64,
        messages_per_release: count.get() as f64 / releases.max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recipe_wakes_one_waiter_per_release_and_the_herd_all_the_others() {
        let recipe = measure(5, false, 1_500, 1);
        assert!(recipe.releases > 10, "{recipe:?}");
        assert_eq!(recipe.wakeups_by_release, recipe.releases, "{recipe:?}");
        let herd = measure(5, true, 1_500, 1);
        assert!(herd.releases > 10, "{herd:?}");
        assert!(herd.wakeups_per_release > 3.5, "{herd:?}");
        assert!(herd.messages_per_release > recipe.messages_per_release, "{herd:?} {recipe:?}");
    }
}
