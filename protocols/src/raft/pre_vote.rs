//! Pre-vote's promise, judged: with pre-vote on, **the term never rises while a leader
//! reaches a majority**.
//!
//! A server stands for election (raising the term) only after a majority, itself
//! included, said yes to its pre-vote in one round; a server says no while it leads, or
//! while less than the minimum election timeout has passed on its own clock since it last
//! heard from a leader. So when a server becomes a candidate of a term above that of a
//! leader L, look back over the longest its pre-vote round can have lasted (its largest
//! election timeout, in true time at its clock's rate). If in all that window L led and
//! enough other servers heard L often enough that none of them could have said yes
//! (every gap between two contacts, and since the last one, under the minimum timeout on
//! the hearer's own clock), those refusers and L make a majority, which meets every
//! majority of yes: the candidacy is a violation.
//!
//! The facts are the judge's own, not the servers' memory: every message a server
//! accepts from a leader is reported (`LeaderContact`, only with pre-vote on), stamped
//! with the hearer's local clock as the simulation reads it. A window where the hearer
//! restarted, or a clock fault struck it, counts it as one that may have said yes; a
//! candidate restarted, paused or struck by a clock fault within its window is not
//! judged (its round may have been longer). So the check never blames a correct server,
//! and it is exact otherwise: it reads the same clocks the servers read.

use checker::Violation;
use sim_core::{MS, NodeId, Observation, Sim};

use super::server::Role;
use super::{Machine, RaftConfig, RaftObs, Server};

/// A server's latest run of contacts with one leader, no gap reaching the minimum
/// election timeout on its own clock.
#[derive(Clone, Copy)]
struct Run {
    term: u64,
    leader: NodeId,
    /// True time of the run's first contact.
    since_ns: u64,
    /// Local time of its last contact.
    last_local_ns: u64,
}

/// The judge of pre-vote's promise (inactive with pre-vote off).
pub struct PreVoteCheck {
    enabled: bool,
    min_timeout_ns: u64,
    /// Each server's largest election timeout (its own override, or the range's).
    max_timeout_ns: Vec<u64>,
    /// Each server's restart count and clock-fault count when last looked at.
    epoch: Vec<(u32, u32)>,
    /// When each server was last restarted, struck by a clock fault or seen paused.
    disturbed_ns: Vec<u64>,
    runs: Vec<Option<Run>>,
    /// The newest leader elected: term, server, when.
    leader: Option<(u64, NodeId, u64)>,
}

impl PreVoteCheck {
    pub fn new(raft: &RaftConfig, servers: usize) -> PreVoteCheck {
        let ns = |ms: f64| (ms * MS as f64) as u64;
        let max_timeout_ns = (0..servers)
            .map(|n| {
                let own = raft.election_timeout_overrides.iter().find(|o| o.node == n);
                ns(own.map_or(raft.election_timeout_ms, |o| o.election_timeout_ms)[1])
            })
            .collect();
        PreVoteCheck {
            enabled: raft.pre_vote,
            min_timeout_ns: ns(raft.election_timeout_ms[0]),
            max_timeout_ns,
            epoch: vec![(0, 0); servers],
            disturbed_ns: vec![0; servers],
            runs: vec![None; servers],
            leader: None,
        }
    }

    /// After every step: notes restarts, clock faults and pauses.
    pub fn after_step<N: sim_core::Process>(&mut self, sim: &Sim<N>) {
        if !self.enabled {
            return;
        }
        for node in 0..self.epoch.len() {
            let epoch = (sim.incarnation(node), sim.clock_changes(node));
            if epoch != self.epoch[node] {
                self.epoch[node] = epoch;
                self.disturbed_ns[node] = sim.now_ns();
                self.runs[node] = None;
            } else if sim.is_paused(node) {
                self.disturbed_ns[node] = sim.now_ns();
            }
        }
    }

    /// Judges one observation; `server` reads a server's state now.
    pub fn observe<'a, M: Machine, N: sim_core::Process>(
        &mut self,
        observation: &Observation<RaftObs>,
        sim: &Sim<N>,
        server: &dyn Fn(NodeId) -> Option<&'a Server<M>>,
    ) -> Option<Violation> {
        if !self.enabled {
            return None;
        }
        let (t_ns, node) = (observation.t_ns, observation.node);
        match observation.obs {
            RaftObs::BecameLeader { term, .. } => {
                if self.leader.is_none_or(|(newest, _, _)| term > newest) {
                    self.leader = Some((term, node, t_ns));
                }
                None
            }
            RaftObs::LeaderContact { term, leader } => {
                let local = sim.local_time_ns(node);
                match &mut self.runs[node] {
                    Some(run)
                        if run.term == term
                            && run.leader == leader
                            && local.saturating_sub(run.last_local_ns) < self.min_timeout_ns =>
                    {
                        run.last_local_ns = local
                    }
                    slot => *slot = Some(Run { term, leader, since_ns: t_ns, last_local_ns: local }),
                }
                None
            }
            RaftObs::BecameCandidate { term } => self.candidacy(sim, server, node, term, t_ns),
            _ => None,
        }
    }

    fn candidacy<'a, M: Machine, N: sim_core::Process>(
        &self,
        sim: &Sim<N>,
        server: &dyn Fn(NodeId) -> Option<&'a Server<M>>,
        candidate: NodeId,
        term: u64,
        t_ns: u64,
    ) -> Option<Violation> {
        let (leader_term, leader, elected_ns) = self.leader?;
        if term <= leader_term {
            return None;
        }
        let leading = server(leader).is_some_and(|s| s.role() == Role::Leader && s.current_term() == leader_term);
        if !leading {
            return None;
        }
        // The longest the candidate's pre-vote round can have lasted, in true time.
        let rate_ppm = (1_000_000 + sim.clock_drift_ppm(candidate)).max(1) as u128;
        let round_ns = (u128::from(self.max_timeout_ns[candidate]) * 1_000_000).div_ceil(rate_ppm) as u64;
        let from_ns = t_ns.checked_sub(round_ns)?;
        if self.disturbed_ns[candidate] >= from_ns || elected_ns > from_ns {
            return None;
        }
        let mut refusers = vec![leader];
        for (node, run) in self.runs.iter().enumerate() {
            let Some(run) = run else { continue };
            if node != candidate
                && node != leader
                && run.term == leader_term
                && run.leader == leader
                && run.since_ns <= from_ns
                && sim.local_time_ns(node).saturating_sub(run.last_local_ns) < self.min_timeout_ns
            {
                refusers.push(node);
            }
        }
        let servers = self.runs.len();
        if refusers.len() < servers / 2 + 1 {
            return None;
        }
        refusers.sort_unstable();
        let message = format!(
            "server {candidate} raised the term to {term} while leader {leader} of term {leader_term} reached a majority: \
             servers {refusers:?} led or heard it within every {:.0} ms (the minimum election timeout) over the last \
             {:.1} ms, the longest the pre-vote round can have lasted; with pre-vote on one of them must have said no",
            self.min_timeout_ns as f64 / 1e6,
            round_ns as f64 / 1e6
        );
        Some(Violation::new("pre-vote-stability", message, t_ns, Some(candidate)).mark(
            leader,
            elected_ns,
            format!("server {leader} elected leader of term {leader_term}"),
        ))
    }
}
