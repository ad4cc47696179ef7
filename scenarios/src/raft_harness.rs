//! Raft's part of a run: its nodes, invariants, history and recovery check.

use std::rc::Rc;

use checker::history::Event;
use checker::{ModelKind, Violation};
use protocols::raft::invariants::check_log_matching;
use protocols::raft::server::{Role, Server};
use protocols::raft::{RaftInvariants, RaftNode, RaftObs, Settings, Variant};
use sim_core::{MS, NodeId, Observation, Sim};

use crate::runner::Harness;
use crate::scenario::Scenario;

pub struct RaftHarness {
    settings: Rc<Settings>,
    invariants: RaftInvariants,
}

impl RaftHarness {
    pub fn new(scenario: &Scenario) -> Result<Self, String> {
        let variant = match &scenario.variant {
            Some(name) => Variant::parse(name).ok_or_else(|| format!("unknown raft variant {name:?}"))?,
            None => Variant::Correct,
        };
        let end_ms = scenario.duration.faults_ms + scenario.duration.healed_ms;
        // Clients stop starting operations early enough for the last ones to finish.
        let stop_ms = (end_ms - scenario.workload.op_timeout_ms).max(0.0);
        let settings = Settings {
            servers: scenario.cluster.servers,
            clients: scenario.cluster.clients,
            variant,
            raft: scenario.raft.clone(),
            workload: scenario.workload.clone(),
            clients_stop_ns: (stop_ms * MS as f64) as u64,
        };
        Ok(RaftHarness { settings: Rc::new(settings), invariants: RaftInvariants::default() })
    }
}

fn server_of(sim: &Sim<RaftNode>, servers: usize, node: NodeId) -> Option<&Server> {
    if node < servers { sim.process(node).and_then(RaftNode::as_server) } else { None }
}

impl Harness for RaftHarness {
    type Node = RaftNode;

    fn factory(&self) -> Box<dyn FnMut(NodeId) -> RaftNode> {
        let settings = Rc::clone(&self.settings);
        Box::new(move |id| RaftNode::new(id, &settings))
    }

    fn observe(&mut self, observation: &Observation<RaftObs>, sim: &Sim<RaftNode>) -> Option<Violation> {
        let servers = self.settings.servers;
        self.invariants.observe(observation, &|n| server_of(sim, servers, n), servers)
    }

    fn client_event(&self, observation: &Observation<RaftObs>) -> Option<Event> {
        match &observation.obs {
            RaftObs::Client(client) => Some(client.to_event(observation.t_ns)),
            _ => None,
        }
    }

    fn recovered(&self, sim: &Sim<RaftNode>) -> Result<(), String> {
        let servers = self.settings.servers;
        let up: Vec<&Server> = (0..servers).filter_map(|n| server_of(sim, servers, n)).collect();
        let newest = up.iter().map(|s| s.current_term()).max().unwrap_or(0);
        if up.iter().any(|s| s.role() == Role::Leader && s.current_term() == newest) {
            Ok(())
        } else {
            Err(format!("no leader of the newest term ({newest}) among the {} servers up", up.len()))
        }
    }

    fn leader(&self, sim: &Sim<RaftNode>) -> Option<NodeId> {
        let servers = self.settings.servers;
        (0..servers)
            .filter_map(|n| server_of(sim, servers, n).map(|s| (n, s)))
            .filter(|(_, s)| s.role() == Role::Leader)
            .max_by_key(|(_, s)| s.current_term())
            .map(|(n, _)| n)
    }

    fn final_safety(&mut self, sim: &Sim<RaftNode>) -> Option<Violation> {
        let servers = self.settings.servers;
        check_log_matching(&|n| server_of(sim, servers, n), servers, sim.now_ns())
    }

    fn model(&self) -> ModelKind {
        ModelKind::Kv
    }
}
