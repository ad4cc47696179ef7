//! Pre-vote's promise, judged: with pre-vote on, **the term never rises while a leader
//! reaches a majority**.
//!
//! A server stands for election (raising the term) only after a majority, itself
//! included, said yes to its pre-vote in one round; a server says no while it leads, or
//! while less than the minimum election timeout has passed on its own clock since it last
//! heard from a leader. So when a server becomes a candidate of a term above that of a
//! leader L, look back to when its pre-vote round started (every yes it counted was given
//! since). If all that time L led and enough other servers heard L often enough that none
//! of them could have said yes (every gap between two contacts, and since the last one,
//! under the minimum timeout on the hearer's own clock), those refusers and L make a
//! majority, which meets every majority of yes: the candidacy is a violation.
//!
//! The facts are the judge's own, not the servers' memory: every message a server
//! accepts from a leader is reported (`LeaderContact`, only with pre-vote on), stamped
//! with the hearer's local clock as the simulation reads it, and so is the start of every
//! pre-vote round (`PreVoteStarted`), stamped with true time. A hearer restarted or struck
//! by a clock fault since the round started is counted as one that may have said yes. So
//! the check never blames a correct server, and it is exact otherwise: it reads the same
//! clocks the servers read. A yes counted from an earlier round (given before the round
//! started, perhaps before any leader existed) is caught too: the refusers were steady
//! through the whole round.

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
    /// Each server's restart count and clock-fault count when last looked at.
    epoch: Vec<(u32, u32)>,
    runs: Vec<Option<Run>>,
    /// When each server's latest pre-vote round started (true time).
    round_started_ns: Vec<Option<u64>>,
}

impl PreVoteCheck {
    pub fn new(raft: &RaftConfig, servers: usize) -> PreVoteCheck {
        PreVoteCheck {
            enabled: raft.pre_vote,
            min_timeout_ns: (raft.election_timeout_ms[0] * MS as f64) as u64,
            epoch: vec![(0, 0); servers],
            runs: vec![None; servers],
            round_started_ns: vec![None; servers],
        }
    }

    /// After every step: a restart or a clock fault ends a server's run of contacts.
    pub fn after_step<N: sim_core::Process>(&mut self, sim: &Sim<N>) {
        if !self.enabled {
            return;
        }
        for node in 0..self.epoch.len() {
            let epoch = (sim.incarnation(node), sim.clock_changes(node));
            if epoch != self.epoch[node] {
                self.epoch[node] = epoch;
                self.runs[node] = None;
            }
        }
    }

    /// Judges one observation; `server` reads a server's state now, `newest_leader` is
    /// the newest leader elected so far (term, server, when; the invariants keep it).
    pub fn observe<'a, M: Machine, N: sim_core::Process>(
        &mut self,
        observation: &Observation<RaftObs>,
        sim: &Sim<N>,
        server: &dyn Fn(NodeId) -> Option<&'a Server<M>>,
        newest_leader: &dyn Fn() -> Option<(u64, NodeId, u64)>,
    ) -> Option<Violation> {
        if !self.enabled {
            return None;
        }
        let (t_ns, node) = (observation.t_ns, observation.node);
        match observation.obs {
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
            RaftObs::PreVoteStarted { .. } => {
                self.round_started_ns[node] = Some(t_ns);
                None
            }
            RaftObs::BecameCandidate { term } => self.candidacy(sim, server, newest_leader()?, node, term, t_ns),
            _ => None,
        }
    }

    fn candidacy<'a, M: Machine, N: sim_core::Process>(
        &self,
        sim: &Sim<N>,
        server: &dyn Fn(NodeId) -> Option<&'a Server<M>>,
        (leader_term, leader, elected_ns): (u64, NodeId, u64),
        candidate: NodeId,
        term: u64,
        t_ns: u64,
    ) -> Option<Violation> {
        if term <= leader_term {
            return None;
        }
        let leading = server(leader).is_some_and(|s| s.role() == Role::Leader && s.current_term() == leader_term);
        if !leading {
            return None;
        }
        // Every yes the candidate counted was given since its round started.
        let from_ns = self.round_started_ns[candidate]?;
        if elected_ns > from_ns {
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
             servers {refusers:?} led or heard it within every {:.0} ms (the minimum election timeout) since its \
             pre-vote round started at {:.3} ms; with pre-vote on one of them must have said no",
            self.min_timeout_ns as f64 / 1e6,
            from_ns as f64 / 1e6
        );
        Some(Violation::new("pre-vote-stability", message, t_ns, Some(candidate)).mark(
            leader,
            elected_ns,
            format!("server {leader} elected leader of term {leader_term}"),
        ))
    }
}
