//! Paxos's safety properties, judged from observations in true global time.
//!
//! The judge keeps its own record of every acceptance, so "chosen" means what the paper
//! means: some majority of acceptors accepted one proposal, whether or not any learner
//! heard of it, and even if those acceptors later accepted something else.

use std::collections::{BTreeMap, BTreeSet};

use checker::Violation;
use sim_core::{NodeId, Observation};

use super::{Ballot, PaxosObs, Proposal};

/// A value chosen: the proposal, when a majority had accepted it, and by whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    pub proposal: Proposal,
    pub t_ns: u64,
    /// The acceptor whose acceptance made the majority.
    pub node: NodeId,
    pub acceptors: BTreeSet<NodeId>,
    /// Rounds started (phase 1) by then.
    pub rounds: usize,
}

/// The safety checks of single-decree Paxos.
#[derive(Clone, Debug)]
pub struct PaxosInvariants {
    acceptors: usize,
    /// The values the proposers were given.
    inputs: BTreeSet<u64>,
    /// Every acceptance ever made, by proposal.
    accepted_by: BTreeMap<Proposal, BTreeSet<NodeId>>,
    /// The highest number each acceptor has promised or accepted, ever.
    promised: BTreeMap<NodeId, Ballot>,
    /// The first value chosen.
    pub chosen: Option<Chosen>,
    /// Every proposal number a proposer started phase 1 with, in order.
    pub prepared: Vec<Ballot>,
    /// Learners and what they learned.
    pub learned: BTreeMap<NodeId, (Proposal, u64)>,
    pub promises_count: u64,
    pub accepts_count: u64,
    /// When the first proposal started, for the decision latency.
    pub first_prepare_ns: Option<u64>,
}

impl PaxosInvariants {
    pub fn new(acceptors: usize, inputs: impl IntoIterator<Item = u64>) -> PaxosInvariants {
        PaxosInvariants {
            acceptors,
            inputs: inputs.into_iter().collect(),
            accepted_by: BTreeMap::new(),
            promised: BTreeMap::new(),
            chosen: None,
            prepared: Vec::new(),
            learned: BTreeMap::new(),
            promises_count: 0,
            accepts_count: 0,
            first_prepare_ns: None,
        }
    }

    fn majority(&self) -> usize {
        self.acceptors / 2 + 1
    }

    /// Judges one observation; `name` names a node in messages.
    pub fn observe(
        &mut self,
        observation: &Observation<PaxosObs>,
        name: &dyn Fn(NodeId) -> String,
    ) -> Option<Violation> {
        let (t_ns, node) = (observation.t_ns, observation.node);
        match observation.obs {
            PaxosObs::Prepared { ballot } => {
                self.first_prepare_ns.get_or_insert(t_ns);
                self.prepared.push(ballot);
                None
            }
            PaxosObs::Proposed { .. } => None,
            PaxosObs::Promised { ballot } => {
                self.promises_count += 1;
                self.check_promise(t_ns, node, ballot, "promised", name)
            }
            PaxosObs::Accepted { proposal } => {
                self.accepts_count += 1;
                self.check_promise(t_ns, node, proposal.ballot, "accepted", name)
                    .or_else(|| self.count_acceptance(t_ns, node, proposal, name))
            }
            PaxosObs::Learned { proposal } => {
                self.learned.insert(node, (proposal, t_ns));
                self.check_learned(t_ns, node, proposal, name)
            }
        }
    }

    /// An acceptor's promise never decreases, and it never accepts below it.
    fn check_promise(
        &mut self,
        t_ns: u64,
        node: NodeId,
        ballot: Ballot,
        what: &str,
        name: &dyn Fn(NodeId) -> String,
    ) -> Option<Violation> {
        let before = self.promised.get(&node).copied().unwrap_or(Ballot::ZERO);
        if ballot < before {
            let kind = if what == "promised" { "promise-decreased" } else { "accepted-below-promise" };
            let message = format!(
                "acceptor {} {what} {ballot} after it had promised {before}: an acceptor's promise must never \
                 decrease, across restarts too",
                name(node)
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
        proposal: Proposal,
        name: &dyn Fn(NodeId) -> String,
    ) -> Option<Violation> {
        let majority = self.majority();
        let acceptors = self.accepted_by.entry(proposal).or_default();
        acceptors.insert(node);
        if acceptors.len() != majority {
            return None;
        }
        let names = |set: &BTreeSet<NodeId>| set.iter().map(|n| name(*n)).collect::<Vec<_>>().join(", ");
        if !self.inputs.contains(&proposal.value) {
            let message =
                format!("value {} was chosen at {} but no proposer proposed it", proposal.value, proposal.ballot);
            return Some(Violation::new("chosen-not-proposed", message, t_ns, Some(node)));
        }
        match &self.chosen {
            None => {
                self.chosen =
                    Some(Chosen { proposal, t_ns, node, acceptors: acceptors.clone(), rounds: self.prepared.len() });
                None
            }
            Some(first) if first.proposal.value != proposal.value => {
                let message = format!(
                    "two values chosen: {} at {} (accepted by {}, {:.3} ms) and {} at {} (accepted by {})",
                    first.proposal.value,
                    first.proposal.ballot,
                    names(&first.acceptors),
                    first.t_ns as f64 / 1e6,
                    proposal.value,
                    proposal.ballot,
                    names(acceptors)
                );
                let fact = format!("{} chosen at {}", first.proposal.value, first.proposal.ballot);
                Some(Violation::new("agreement", message, t_ns, Some(node)).mark(first.node, first.t_ns, fact))
            }
            Some(_) => None,
        }
    }

    /// A learner learns only a chosen value.
    fn check_learned(
        &self,
        t_ns: u64,
        node: NodeId,
        proposal: Proposal,
        name: &dyn Fn(NodeId) -> String,
    ) -> Option<Violation> {
        let accepted = self.accepted_by.get(&proposal).map_or(0, BTreeSet::len);
        match &self.chosen {
            Some(chosen) if chosen.proposal.value == proposal.value => None,
            Some(chosen) => Some(Violation::new(
                "learned-not-chosen",
                format!(
                    "learner {} learned {} but {} is the value chosen (at {})",
                    name(node),
                    proposal.value,
                    chosen.proposal.value,
                    chosen.proposal.ballot
                ),
                t_ns,
                Some(node),
            )),
            None => Some(Violation::new(
                "learned-not-chosen",
                format!(
                    "learner {} learned {} from proposal {} when no value was chosen ({} of {} acceptors had \
                     accepted it; a majority is {})",
                    name(node),
                    proposal.value,
                    proposal.ballot,
                    accepted,
                    self.acceptors,
                    self.majority()
                ),
                t_ns,
                Some(node),
            )),
        }
    }

    /// The proposal numbers tried so far, for a liveness verdict: the first and last few.
    pub fn prepared_summary(&self) -> String {
        const SHOWN: usize = 12;
        let list = |ballots: &[Ballot]| ballots.iter().map(Ballot::to_string).collect::<Vec<_>>().join(" ");
        if self.prepared.len() <= 2 * SHOWN {
            return list(&self.prepared);
        }
        let skipped = self.prepared.len() - 2 * SHOWN;
        format!(
            "{} ... ({skipped} more) ... {}",
            list(&self.prepared[..SHOWN]),
            list(&self.prepared[self.prepared.len() - SHOWN..])
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(round: u64, proposer: u64) -> Ballot {
        Ballot { round, proposer }
    }

    fn obs(t_ns: u64, node: NodeId, obs: PaxosObs) -> Observation<PaxosObs> {
        Observation { t_ns, node, obs }
    }

    fn accepted(node: NodeId, round: u64, value: u64) -> Observation<PaxosObs> {
        obs(round * 10 + node as u64, node, PaxosObs::Accepted { proposal: Proposal { ballot: b(round, 1), value } })
    }

    fn name(node: NodeId) -> String {
        format!("n{node}")
    }

    fn run(observations: &[Observation<PaxosObs>]) -> Option<Violation> {
        let mut invariants = PaxosInvariants::new(3, [8, 5]);
        observations.iter().find_map(|o| invariants.observe(o, &name))
    }

    #[test]
    fn one_value_chosen_twice_is_fine_and_two_values_are_not() {
        // 8 chosen at round 1 by acceptors 2 and 3; later 8 again at round 2: fine.
        let same = [accepted(2, 1, 8), accepted(3, 1, 8), accepted(3, 2, 8), accepted(4, 2, 8)];
        assert_eq!(run(&same), None);
        let two = [accepted(2, 1, 8), accepted(3, 1, 8), accepted(3, 2, 5), accepted(4, 2, 5)];
        let violation = run(&two).expect("two values chosen");
        assert_eq!(violation.kind, "agreement");
        assert!(violation.message.contains("8 at 1.A (accepted by n2, n3"), "{}", violation.message);
    }

    #[test]
    fn chosen_counts_acceptances_even_after_acceptors_move_on() {
        // Acceptor 3 accepts 8 at round 1 then 5 at round 2; 8 was chosen all the same.
        let observations = [accepted(2, 1, 8), accepted(3, 1, 8), accepted(3, 2, 5), accepted(4, 2, 5)];
        let mut invariants = PaxosInvariants::new(3, [8, 5]);
        invariants.observe(&observations[0], &name);
        invariants.observe(&observations[1], &name);
        assert_eq!(invariants.chosen.as_ref().map(|c| c.proposal.value), Some(8));
    }

    #[test]
    fn a_value_nobody_proposed_is_caught() {
        let violation = run(&[accepted(2, 1, 0), accepted(3, 1, 0)]).expect("not proposed");
        assert_eq!(violation.kind, "chosen-not-proposed");
    }

    #[test]
    fn promises_must_not_decrease_and_accepts_not_go_below() {
        let promise = |t, round| obs(t, 2, PaxosObs::Promised { ballot: b(round, 1) });
        assert_eq!(run(&[promise(1, 2), promise(2, 2), promise(3, 4)]), None);
        assert_eq!(run(&[promise(1, 4), promise(2, 2)]).map(|v| v.kind), Some("promise-decreased".into()));
        assert_eq!(run(&[promise(1, 4), accepted(2, 2, 8)]).map(|v| v.kind), Some("accepted-below-promise".into()));
    }

    #[test]
    fn a_learner_learns_only_a_chosen_value() {
        let learn = |value| obs(100, 0, PaxosObs::Learned { proposal: Proposal { ballot: b(1, 1), value } });
        let early = run(&[accepted(2, 1, 8), learn(8)]).expect("learned before chosen");
        assert_eq!(early.kind, "learned-not-chosen");
        assert!(early.message.contains("1 of 3 acceptors"), "{}", early.message);
        assert_eq!(run(&[accepted(2, 1, 8), accepted(3, 1, 8), learn(8)]), None);
        let wrong = run(&[accepted(2, 1, 8), accepted(3, 1, 8), learn(5)]).expect("learned another value");
        assert_eq!(wrong.kind, "learned-not-chosen");
    }

    #[test]
    fn five_acceptors_need_three_and_the_counts_add_up() {
        let mut invariants = PaxosInvariants::new(5, [8]);
        let promise = |node| obs(1, node, PaxosObs::Promised { ballot: b(1, 1) });
        for o in [promise(2), promise(3), accepted(2, 1, 8), accepted(3, 1, 8)] {
            assert_eq!(invariants.observe(&o, &name), None);
        }
        assert_eq!(invariants.chosen, None, "two of five is no majority");
        invariants.observe(&accepted(4, 1, 8), &name);
        assert_eq!(invariants.chosen.as_ref().map(|c| c.acceptors.len()), Some(3));
        assert_eq!((invariants.promises_count, invariants.accepts_count), (2, 3));
    }

    #[test]
    fn the_summary_of_a_long_duel_keeps_its_ends() {
        let mut invariants = PaxosInvariants::new(3, [1]);
        for round in 1..=40 {
            invariants.observe(&obs(round, 0, PaxosObs::Prepared { ballot: b(round, 1) }), &name);
        }
        let summary = invariants.prepared_summary();
        assert!(summary.starts_with("1.A 2.A"), "{summary}");
        assert!(summary.contains("(16 more)") && summary.ends_with("40.A"), "{summary}");
        let mut short = PaxosInvariants::new(3, [1]);
        for round in 1..=20 {
            short.observe(&obs(round, 0, PaxosObs::Prepared { ballot: b(round, 1) }), &name);
        }
        let all: Vec<String> = (1..=20).map(|r| format!("{r}.A")).collect();
        assert_eq!(short.prepared_summary(), all.join(" "), "twenty numbers are listed whole");
    }
}
