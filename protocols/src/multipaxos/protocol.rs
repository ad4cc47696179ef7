//! Multi-Paxos in the protocol registry: settings, variants, topology, and the judge with
//! its per-slot invariants.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use checker::history::Event;
use checker::{ModelKind, Violation};
use serde::{Deserialize, Serialize};
use sim_core::{MS, NodeId, Observation, Sim};

use super::{Ballot, CmdId, MpNode, MpObs, Msg, MultiPaxosConfig, RoleKind, Shared, Variant, client_settings};
use crate::kv::KvWorkload;
use crate::kv_client::Answer;
use crate::protocol::{
    Cluster, FieldError, HistoryCheck, Judge, Protocol, RunSpec, Topology, VariantInfo, VariantKind,
};

/// Multi-Paxos in the registry.
pub struct MultiPaxos;

/// A scenario's `"settings"` for `multipaxos`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiPaxosSettings {
    pub multipaxos: MultiPaxosConfig,
    pub workload: KvWorkload,
}

const MS_MAX: f64 = 3_600_000.0;

fn validate_config(config: &MultiPaxosConfig, servers: usize) -> Result<(), FieldError> {
    if !(1..=15).contains(&servers) {
        return Err(FieldError::new("cluster.servers", format!("cluster.servers must be 1 to 15, got {servers}")));
    }
    let [low, high] = config.election_timeout_ms;
    if !(low.is_finite() && high.is_finite() && 1.0 <= low && low <= high && high <= MS_MAX) {
        return Err(FieldError::new(
            "multipaxos.election_timeout_ms",
            format!(
                "multipaxos.election_timeout_ms must be [min, max] with 1 <= min <= max <= {MS_MAX}, got {:?}",
                [low, high]
            ),
        ));
    }
    if !(config.heartbeat_ms.is_finite() && (1.0..=MS_MAX).contains(&config.heartbeat_ms)) {
        return Err(FieldError::new(
            "multipaxos.heartbeat_ms",
            format!("multipaxos.heartbeat_ms must be 1 to {MS_MAX}, got {}", config.heartbeat_ms),
        ));
    }
    if !(1..=10_000).contains(&config.catch_up_batch) {
        return Err(FieldError::new(
            "multipaxos.catch_up_batch",
            format!("multipaxos.catch_up_batch must be 1 to 10000, got {}", config.catch_up_batch),
        ));
    }
    if !(1..=10_000_000).contains(&config.max_slots) {
        return Err(FieldError::new(
            "multipaxos.max_slots",
            format!("multipaxos.max_slots must be 1 to 10000000, got {}", config.max_slots),
        ));
    }
    if config.queue_max > 100_000 {
        return Err(FieldError::new(
            "multipaxos.queue_max",
            format!("multipaxos.queue_max must be 0 to 100000, got {}", config.queue_max),
        ));
    }
    Ok(())
}

impl Protocol for MultiPaxos {
    const NAME: &'static str = "multipaxos";
    const DESCRIPTION: &'static str =
        "Multi-Paxos with a stable leader and a replicated key-value store (linearizable)";
    const VARIANTS: &'static [VariantInfo] = &[
        VariantInfo {
            name: "correct",
            doc: "phase 1 once per leadership over every slot, no-op gap filling",
            kind: VariantKind::Correct,
        },
        VariantInfo {
            name: "skip-phase1-empty",
            doc: "a new leader ignores what promises report for slots after the last its own acceptor holds",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "forget-promise",
            doc: "acceptor state is not durable: a restart forgets promises and acceptances",
            kind: VariantKind::Bug,
        },
    ];
    const SCENARIOS: &'static [(&'static str, &'static str)] = &[
        ("multipaxos", include_str!("scenarios/multipaxos.json")),
        ("multipaxos-leader-isolation", include_str!("scenarios/multipaxos-leader-isolation.json")),
        ("multipaxos-stale-follower-leads", include_str!("scenarios/multipaxos-stale-follower-leads.json")),
        ("multipaxos-amnesia", include_str!("scenarios/multipaxos-amnesia.json")),
        ("cap-multipaxos", include_str!("scenarios/cap-multipaxos.json")),
    ];

    type Settings = MultiPaxosSettings;
    type Node = MpNode;
    type Judge = MpJudge;

    fn validate(settings: &MultiPaxosSettings, cluster: Cluster, _variant: &str) -> Result<(), FieldError> {
        validate_config(&settings.multipaxos, cluster.servers)?;
        settings.workload.validate().map_err(FieldError::from_message)
    }

    fn topology(_settings: &MultiPaxosSettings, cluster: Cluster) -> Topology {
        Topology::servers_then_clients("server", cluster, &["leader"])
    }

    fn build(settings: &MultiPaxosSettings, run: &RunSpec<'_>) -> (Box<dyn FnMut(NodeId) -> MpNode>, MpJudge) {
        let op_timeout_ns = (settings.workload.op_timeout_ms * MS as f64) as u64;
        let clients_stop_ns = run.end_ns.saturating_sub(op_timeout_ns);
        let shared = Rc::new(Shared {
            servers: run.cluster.servers,
            variant: Variant::parse(run.variant).expect("validated variant"),
            config: settings.multipaxos.clone(),
            clients: Rc::new(client_settings(
                run.cluster.servers,
                run.cluster.clients,
                &settings.workload,
                clients_stop_ns,
                settings.workload.writes_until_ns(run.heal_ns),
            )),
        });
        let judge = MpJudge { servers: run.cluster.servers, invariants: SlotInvariants::default(), messages_sent: 0 };
        (Box::new(move |id| MpNode::new(id, &shared)), judge)
    }

    fn message_label(msg: &Msg) -> Option<String> {
        Some(match msg {
            Msg::Prepare { ballot, from_slot } => format!("prepare {ballot} from {from_slot}"),
            Msg::Promise { ballot, accepted } => format!("promise {ballot} ({} accepted)", accepted.len()),
            Msg::Accept { ballot, slot, .. } => format!("accept {ballot} slot {slot}"),
            Msg::Accepted { ballot, slot } => format!("accepted {ballot} slot {slot}"),
            Msg::Nack { ballot, promised } => format!("nack {ballot} (promised {promised})"),
            Msg::Decide { entries } => match (entries.first(), entries.last()) {
                (Some((first, _)), Some((last, _))) if first != last => format!("decide {first}..{last}"),
                (Some((slot, _)), _) => format!("decide {slot}"),
                _ => "decide none".to_owned(),
            },
            Msg::Heartbeat { ballot, applied_to } => format!("hb {ballot} at {applied_to}"),
            Msg::HeartbeatReply { applied_to, .. } => format!("hb ok at {applied_to}"),
            Msg::Request { op, .. } => format!("{} {}", op.function(), op.key()),
            Msg::Reply { answer: Answer::Result(_), .. } => "reply".to_owned(),
            Msg::Reply { answer: Answer::NotLeader { hint }, .. } => {
                hint.map_or_else(|| "not leader".to_owned(), |h| format!("not leader, try {h}"))
            }
        })
    }

    fn shrink(settings: &MultiPaxosSettings) -> Vec<MultiPaxosSettings> {
        let mut slower = settings.clone();
        slower.workload.rate_per_client = (settings.workload.rate_per_client / 2.0).max(1.0);
        if settings.workload.rate_per_client > 1.0 { vec![slower] } else { Vec::new() }
    }
}

/// The per-slot safety properties, from observations.
#[derive(Clone, Debug, Default)]
pub struct SlotInvariants {
    /// Every acceptance ever made, by slot, ballot and command.
    accepted_by: BTreeMap<(u64, Ballot, CmdId), BTreeSet<NodeId>>,
    /// The command chosen at each slot, with the ballot, the instant and the acceptor
    /// whose acceptance made the majority.
    chosen: BTreeMap<u64, (CmdId, Ballot, u64, NodeId)>,
    /// The command each slot was first applied with, and by whom.
    applied: BTreeMap<u64, (CmdId, NodeId, u64)>,
    promised: BTreeMap<NodeId, Ballot>,
    leaders: u64,
    noops_applied: u64,
}

impl SlotInvariants {
    /// Judges one observation of a cluster of `servers`.
    pub fn observe(&mut self, observation: &Observation<MpObs>, servers: usize) -> Option<Violation> {
        let (t_ns, node) = (observation.t_ns, observation.node);
        match observation.obs {
            MpObs::Promised { ballot } => self.check_promise(t_ns, node, ballot, "promised"),
            MpObs::Accepted { slot, ballot, cmd } => self
                .check_promise(t_ns, node, ballot, "accepted")
                .or_else(|| self.count_acceptance(t_ns, node, servers, slot, ballot, cmd)),
            MpObs::Applied { slot, cmd } => self.check_applied(t_ns, node, slot, cmd),
            MpObs::BecameLeader { .. } => {
                self.leaders += 1;
                None
            }
            MpObs::Client(_) | MpObs::BecameCandidate { .. } | MpObs::BecameFollower { .. } => None,
        }
    }

    fn check_promise(&mut self, t_ns: u64, node: NodeId, ballot: Ballot, what: &str) -> Option<Violation> {
        let before = self.promised.get(&node).copied().unwrap_or_default();
        if ballot < before {
            let kind = if what == "promised" { "promise-decreased" } else { "accepted-below-promise" };
            let message = format!(
                "server {node} {what} ballot {ballot} after it had promised {before}: an acceptor's promise must \
                 never decrease, across restarts too"
            );
            return Some(Violation::new(kind, message, t_ns, Some(node)));
        }
        self.promised.insert(node, ballot);
        None
    }

    fn count_acceptance(
        &mut self,
        t_ns: u64,
        node: NodeId,
        servers: usize,
        slot: u64,
        ballot: Ballot,
        cmd: CmdId,
    ) -> Option<Violation> {
        let acceptors = self.accepted_by.entry((slot, ballot, cmd)).or_default();
        acceptors.insert(node);
        if acceptors.len() != servers / 2 + 1 {
            return None;
        }
        match self.chosen.get(&slot) {
            None => {
                self.chosen.insert(slot, (cmd, ballot, t_ns, node));
                None
            }
            Some((first, first_ballot, first_ns, first_node)) if *first != cmd => {
                let message = format!(
                    "two commands chosen at slot {slot}: {first} at ballot {first_ballot} ({:.3} ms) and {cmd} at \
                     ballot {ballot} (accepted by servers {:?})",
                    *first_ns as f64 / 1e6,
                    acceptors
                );
                let fact = format!("{first} chosen at slot {slot}");
                Some(Violation::new("agreement", message, t_ns, Some(node)).mark(*first_node, *first_ns, fact))
            }
            Some(_) => None,
        }
    }

    fn check_applied(&mut self, t_ns: u64, node: NodeId, slot: u64, cmd: CmdId) -> Option<Violation> {
        if cmd == CmdId::Noop {
            self.noops_applied += 1;
        }
        if let Some((first, by, by_ns)) = self.applied.get(&slot)
            && *first != cmd
        {
            let message = format!("server {node} applied {cmd} at slot {slot}, but server {by} applied {first} there");
            let fact = format!("server {by} applied {first} at slot {slot}");
            return Some(Violation::new("state-machine-safety", message, t_ns, Some(node)).mark(*by, *by_ns, fact));
        }
        self.applied.entry(slot).or_insert((cmd, node, t_ns));
        match self.chosen.get(&slot) {
            Some((chosen, ballot, chosen_ns, by)) if *chosen != cmd => Some(
                Violation::new(
                    "applied-not-chosen",
                    format!(
                        "server {node} applied {cmd} at slot {slot}, but {chosen} was chosen there (ballot {ballot})"
                    ),
                    t_ns,
                    Some(node),
                )
                .mark(*by, *chosen_ns, format!("{chosen} chosen at slot {slot}")),
            ),
            Some(_) => None,
            None => Some(Violation::new(
                "applied-not-chosen",
                format!("server {node} applied {cmd} at slot {slot} before any command was chosen there"),
                t_ns,
                Some(node),
            )),
        }
    }
}

/// The judge: per-slot agreement and replica safety as the run goes, a leader after the
/// heal, and the kv history linearizable.
pub struct MpJudge {
    servers: usize,
    invariants: SlotInvariants,
    /// Messages sent in the whole run (read at the end), for messages per decision.
    messages_sent: u64,
}

fn server_of(sim: &Sim<MpNode>, servers: usize, node: NodeId) -> Option<&super::Server> {
    if node < servers { sim.process(node).and_then(MpNode::as_server) } else { None }
}

impl Judge<MpNode> for MpJudge {
    fn observe(&mut self, observation: &Observation<MpObs>, _sim: &Sim<MpNode>) -> Option<Violation> {
        self.invariants.observe(observation, self.servers)
    }

    /// The state machine of the server that applied the most.
    fn final_state(&self, sim: &Sim<MpNode>) -> Option<BTreeMap<String, String>> {
        (0..self.servers)
            .filter_map(|n| server_of(sim, self.servers, n))
            .max_by_key(|s| s.applied_to())
            .map(|s| s.store().data().clone())
    }

    fn client_event(&self, observation: &Observation<MpObs>) -> Option<Event> {
        match &observation.obs {
            MpObs::Client(client) => Some(client.to_event(observation.t_ns)),
            _ => None,
        }
    }

    fn role_change(&self, observation: &Observation<MpObs>) -> Option<(String, Option<u64>)> {
        let (role, ballot) = match observation.obs {
            MpObs::BecameLeader { ballot } => ("leader", ballot),
            MpObs::BecameCandidate { ballot } => ("candidate", ballot),
            MpObs::BecameFollower { ballot } => ("follower", ballot),
            _ => return None,
        };
        Some((role.to_owned(), Some(ballot.round)))
    }

    fn initial_role(&self, node: NodeId) -> Option<String> {
        (node < self.servers).then(|| "follower".to_owned())
    }

    fn history_check(&self) -> HistoryCheck {
        HistoryCheck::Required(ModelKind::Kv)
    }

    fn recovered(&self, sim: &Sim<MpNode>) -> Result<(), String> {
        let up: Vec<&super::Server> = (0..self.servers).filter_map(|n| server_of(sim, self.servers, n)).collect();
        let highest = up.iter().map(|s| s.promised()).max().unwrap_or_default();
        let leads = |s: &&super::Server| s.role() == RoleKind::Leader && s.ballot().is_some_and(|b| b >= highest);
        if up.iter().any(leads) {
            Ok(())
        } else {
            Err(format!("no leader of the highest ballot promised ({highest}) among the {} servers up", up.len()))
        }
    }

    fn target(&self, role: &str, sim: &Sim<MpNode>) -> Option<NodeId> {
        debug_assert_eq!(role, "leader");
        (0..self.servers)
            .filter_map(|n| server_of(sim, self.servers, n).map(|s| (n, s)))
            .filter(|(_, s)| s.role() == RoleKind::Leader)
            .max_by_key(|(_, s)| s.ballot())
            .map(|(n, _)| n)
    }

    fn final_check(&mut self, sim: &Sim<MpNode>) -> Option<Violation> {
        self.messages_sent = sim.metrics().messages_sent;
        None
    }

    fn metrics(&self) -> BTreeMap<String, f64> {
        let slots = self.invariants.chosen.len();
        let mut metrics = BTreeMap::from([
            ("leaders_elected".to_owned(), self.invariants.leaders as f64),
            ("slots_chosen".to_owned(), slots as f64),
            ("noops_applied".to_owned(), self.invariants.noops_applied as f64),
        ]);
        if slots > 0 && self.messages_sent > 0 {
            // Every message of the run (heartbeats, elections, clients' included).
            metrics.insert("messages_per_decision".to_owned(), self.messages_sent as f64 / slots as f64);
        }
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(t_ns: u64, node: NodeId, obs: MpObs) -> Observation<MpObs> {
        Observation { t_ns, node, obs }
    }

    fn ballot(round: u64, server: u64) -> Ballot {
        Ballot { round, server }
    }

    fn op(seq: u64) -> CmdId {
        CmdId::Op { client: 1, seq }
    }

    fn accepted(node: NodeId, slot: u64, round: u64, cmd: CmdId) -> Observation<MpObs> {
        obs(round * 10 + node as u64, node, MpObs::Accepted { slot, ballot: ballot(round, 1), cmd })
    }

    fn run(observations: &[Observation<MpObs>]) -> Option<Violation> {
        let mut invariants = SlotInvariants::default();
        observations.iter().find_map(|o| invariants.observe(o, 3))
    }

    #[test]
    fn two_commands_chosen_at_one_slot_are_caught_and_one_twice_is_not() {
        let same =
            [accepted(0, 1, 1, op(1)), accepted(1, 1, 1, op(1)), accepted(1, 1, 2, op(1)), accepted(2, 1, 2, op(1))];
        assert_eq!(run(&same), None);
        let two =
            [accepted(0, 1, 1, op(1)), accepted(1, 1, 1, op(1)), accepted(1, 1, 2, op(2)), accepted(2, 1, 2, op(2))];
        assert_eq!(run(&two).map(|v| v.kind), Some("agreement".into()));
        // Different slots may hold different commands.
        let slots =
            [accepted(0, 1, 1, op(1)), accepted(1, 1, 1, op(1)), accepted(1, 2, 1, op(2)), accepted(2, 2, 1, op(2))];
        assert_eq!(run(&slots), None);
    }

    #[test]
    fn replicas_apply_only_the_chosen_command() {
        let chosen = [accepted(0, 1, 1, op(1)), accepted(1, 1, 1, op(1))];
        let apply = |node, cmd| obs(100, node, MpObs::Applied { slot: 1, cmd });
        assert_eq!(run(&[chosen[0].clone(), chosen[1].clone(), apply(2, op(1))]), None);
        let early = run(&[chosen[0].clone(), apply(2, op(1))]).expect("applied before chosen");
        assert_eq!(early.kind, "applied-not-chosen");
        let wrong = run(&[chosen[0].clone(), chosen[1].clone(), apply(2, op(9))]).expect("another command");
        assert_eq!(wrong.kind, "applied-not-chosen");
        let mut invariants = SlotInvariants::default();
        invariants.observe(&apply(0, op(1)), 3);
        let second = invariants.observe(&apply(1, op(2)), 3).expect("two replicas differ");
        assert_eq!(second.kind, "state-machine-safety");
    }

    #[test]
    fn five_servers_need_three_and_leaders_and_noops_are_counted() {
        let mut invariants = SlotInvariants::default();
        for node in [0, 1] {
            assert_eq!(invariants.observe(&accepted(node, 1, 1, CmdId::Noop), 5), None);
        }
        assert!(invariants.chosen.is_empty(), "two of five is no majority");
        invariants.observe(&accepted(2, 1, 1, CmdId::Noop), 5);
        assert_eq!(invariants.chosen.len(), 1);
        invariants.observe(&obs(1, 0, MpObs::BecameLeader { ballot: ballot(1, 1) }), 5);
        invariants.observe(&obs(2, 3, MpObs::BecameLeader { ballot: ballot(2, 4) }), 5);
        for node in [0, 1, 2] {
            assert_eq!(invariants.observe(&obs(3, node, MpObs::Applied { slot: 1, cmd: CmdId::Noop }), 5), None);
        }
        let metrics = MpJudge { servers: 5, invariants, messages_sent: 0 }.metrics();
        assert_eq!(metrics["leaders_elected"], 2.0);
        assert_eq!(metrics["noops_applied"], 3.0);
        assert_eq!(metrics["slots_chosen"], 1.0);
    }

    #[test]
    fn promises_never_decrease_and_accepts_never_go_below_them() {
        let promise = |round| obs(round, 0, MpObs::Promised { ballot: ballot(round, 1) });
        assert_eq!(run(&[promise(2), promise(2), promise(3)]), None);
        assert_eq!(run(&[promise(3), promise(2)]).map(|v| v.kind), Some("promise-decreased".into()));
        assert_eq!(run(&[promise(3), accepted(0, 1, 2, op(1))]).map(|v| v.kind), Some("accepted-below-promise".into()));
    }
}
