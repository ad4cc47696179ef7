//! The Redis lock's part of a run: its nodes, oracles, and the liveness of acquisitions.

use std::collections::BTreeMap;
use std::rc::Rc;

use checker::history::Event;
use checker::{ModelKind, Violation};
use protocols::locks::{LockNode, LockObs, LockOracle, LockSettings, LockVariant};
use sim_core::{MS, NodeId, Observation, Sim};

use crate::runner::Harness;
use crate::scenario::Scenario;

pub struct LockHarness {
    settings: Rc<LockSettings>,
    oracle: LockOracle,
    clients: Vec<NodeId>,
    /// After the heal, every client must acquire within this bound.
    heal_ns: u64,
    bound_ns: Option<u64>,
    first_acquired_after_heal: BTreeMap<NodeId, u64>,
    /// Each acquisition's wait (ns) and attempts.
    acquisitions: Vec<(u64, u64)>,
}

impl LockHarness {
    pub fn new(scenario: &Scenario) -> Result<Self, String> {
        let variant = match scenario.variant.as_deref() {
            None | Some("correct") => LockVariant::Correct,
            Some("setnx-then-expire") => LockVariant::SetnxThenExpire,
            Some("unsafe-release") => LockVariant::UnsafeRelease,
            Some("fencing") => LockVariant::Fencing,
            Some(other) => return Err(format!("unknown redis-lock variant {other:?}")),
        };
        let locks = &scenario.locks;
        let storage = scenario.cluster.servers;
        let redlock = scenario.protocol == "redlock";
        let settings = LockSettings {
            servers: (0..scenario.cluster.servers).collect(),
            redlock,
            redlock_request_timeout_ms: locks.redlock_request_timeout_ms,
            storage,
            variant,
            persistent: locks.persistent,
            volatile_servers: locks.volatile_servers.clone(),
            ttl_ms: locks.ttl_ms,
            retry_ms: locks.retry_ms,
            work_ms: locks.work_ms,
            request_timeout_ms: locks.request_timeout_ms,
        };
        Ok(LockHarness {
            settings: Rc::new(settings),
            oracle: LockOracle::new(variant == LockVariant::Fencing, !redlock),
            clients: (storage + 1..=storage + scenario.cluster.clients).collect(),
            heal_ns: (scenario.duration.faults_ms * MS as f64) as u64,
            bound_ns: scenario.checks.liveness.map(|l| (l.op_within_ms * MS as f64) as u64),
            first_acquired_after_heal: BTreeMap::new(),
            acquisitions: Vec::new(),
        })
    }
}

impl Harness for LockHarness {
    type Node = LockNode;

    fn factory(&self) -> Box<dyn FnMut(NodeId) -> LockNode> {
        let settings = Rc::clone(&self.settings);
        Box::new(move |id| LockNode::new(id, &settings))
    }

    fn observe(&mut self, observation: &Observation<LockObs>, sim: &Sim<LockNode>) -> Option<Violation> {
        if let LockObs::Acquired { waited_ns, attempts, .. } = observation.obs {
            self.acquisitions.push((waited_ns, attempts));
            if observation.t_ns >= self.heal_ns {
                self.first_acquired_after_heal.entry(observation.node).or_insert(observation.t_ns);
            }
        }
        self.oracle.observe(observation, &|node| sim.local_time_ns(node))
    }

    fn client_event(&self, _observation: &Observation<LockObs>) -> Option<Event> {
        None
    }

    fn recovered(&self, _sim: &Sim<LockNode>) -> Result<(), String> {
        Ok(())
    }

    fn leader(&self, _sim: &Sim<LockNode>) -> Option<NodeId> {
        self.settings.servers.first().copied()
    }

    /// Liveness after the heal: every client acquires within the bound (a lock that
    /// never expires shows here).
    fn final_safety(&mut self, sim: &Sim<LockNode>) -> Option<Violation> {
        let bound = self.bound_ns?;
        let deadline = self.heal_ns + bound;
        if sim.now_ns() < deadline {
            return None;
        }
        let starved =
            self.clients.iter().find(|c| self.first_acquired_after_heal.get(c).is_none_or(|t| *t > deadline))?;
        let message = format!("client {starved} did not acquire the lock within {} ms of the heal", bound / MS);
        Some(Violation::new("liveness", message, deadline, Some(*starved)))
    }

    fn model(&self) -> ModelKind {
        ModelKind::Mutex
    }

    fn protocol_metrics(&self) -> BTreeMap<String, f64> {
        let mut waits: Vec<u64> = self.acquisitions.iter().map(|(w, _)| *w).collect();
        waits.sort_unstable();
        let count = waits.len();
        let mean_ms = if count == 0 { 0.0 } else { waits.iter().sum::<u64>() as f64 / count as f64 / 1e6 };
        let p99_ms = waits
            .get(((count as f64 * 0.99).ceil() as usize).clamp(1, count.max(1)) - 1)
            .map_or(0.0, |w| *w as f64 / 1e6);
        let retries: u64 = self.acquisitions.iter().map(|(_, a)| a.saturating_sub(1)).sum();
        BTreeMap::from([
            ("acquisitions".to_owned(), count as f64),
            ("retries".to_owned(), retries as f64),
            ("acquisition_latency_mean_ms".to_owned(), mean_ms),
            ("acquisition_latency_p99_ms".to_owned(), p99_ms),
            ("overlaps_with_fencing".to_owned(), self.oracle.overlaps as f64),
        ])
    }
}
