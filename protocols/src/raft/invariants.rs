//! Raft's safety properties (the paper's Figure 3), judged as the run goes.
//!
//! Facts come from observations (stamped with true global time) and from read access to
//! the servers' state between steps:
//!
//! - **Election safety**: at most one leader is elected in a term.
//! - **Leader append-only**: a leader never overwrites or deletes entries of its log
//!   during its term.
//! - **Log matching**: if two logs hold an entry with the same index and term, the logs
//!   are identical up to that index. Checked over every pair of servers at every
//!   election and at the end of the run.
//! - **Leader completeness**: an entry applied (so committed) anywhere is in the log of
//!   every leader of a later term than the one it was committed in.
//! - **State machine safety**: no two servers apply different entries at one index.

use std::collections::BTreeMap;

use checker::Violation;
use sim_core::{NodeId, Observation};

use super::RaftObs;
use super::log::Log;
use super::server::{Role, Server};

/// An entry applied somewhere.
#[derive(Clone, Copy)]
struct Applied {
    term: u64,
    digest: u64,
    /// The first server that applied it.
    node: NodeId,
    /// The lowest term any server applying it was in: the term in which it was
    /// committed, since the committing leader applies it at once in its own term and
    /// every other server's term is at least that.
    commit_term: u64,
}

/// The checker's memory of a run.
#[derive(Default)]
pub struct RaftInvariants {
    leaders: BTreeMap<u64, NodeId>,
    /// What was applied at each index (1-based index - 1).
    applied: Vec<Option<Applied>>,
    /// For each server that is leader: its term, log length and last entry's digest when
    /// last looked at.
    leader_logs: BTreeMap<NodeId, (u64, usize, u64)>,
}

impl RaftInvariants {
    /// Judges one observation. `server` reads a server's state now (None: down, or a
    /// client).
    pub fn observe<'a>(
        &mut self,
        observation: &Observation<RaftObs>,
        server: &dyn Fn(NodeId) -> Option<&'a Server>,
        servers: usize,
    ) -> Option<Violation> {
        let (t_ns, node) = (observation.t_ns, observation.node);
        let violation = |kind: &str, message: String| Some(Violation::new(kind, message, t_ns, Some(node)));
        match &observation.obs {
            RaftObs::BecameLeader { term, .. } => {
                if let Some(other) = self.leaders.insert(*term, node)
                    && other != node
                {
                    return violation(
                        "election-safety",
                        format!("servers {other} and {node} were both elected leader of term {term}"),
                    );
                }
                let leader = server(node)?;
                if let Some(v) = self.check_completeness(leader, *term, t_ns, node) {
                    return Some(v);
                }
                self.remember_leader_log(leader, node);
                check_log_matching(server, servers, t_ns)
            }
            RaftObs::Applied { index, term, digest, current_term } => {
                let slot = *index as usize - 1;
                if self.applied.len() <= slot {
                    self.applied.resize(slot + 1, None);
                }
                match &mut self.applied[slot] {
                    None => {
                        self.applied[slot] =
                            Some(Applied { term: *term, digest: *digest, node, commit_term: *current_term })
                    }
                    Some(first) if first.digest == *digest => first.commit_term = first.commit_term.min(*current_term),
                    Some(first) => {
                        let (first_term, first_node) = (first.term, first.node);
                        return violation(
                            "state-machine-safety",
                            format!(
                                "server {node} applied an entry of term {term} at index {index}, but server {first_node} applied a different entry of term {first_term} there"
                            ),
                        );
                    }
                }
                self.check_append_only(server(node)?, node, t_ns)
            }
            RaftObs::Truncated { from_index, as_leader: true } => {
                violation("leader-append-only", format!("leader {node} deleted its log from index {from_index}"))
            }
            _ => None,
        }
    }

    fn check_completeness(&self, leader: &Server, term: u64, t_ns: u64, node: NodeId) -> Option<Violation> {
        for (slot, applied) in self.applied.iter().enumerate() {
            // Only entries committed in an earlier term bind this leader.
            let Some(applied) = applied.as_ref().filter(|a| a.commit_term < term) else {
                continue;
            };
            let held = leader.log().digest(slot);
            if held != Some(applied.digest) {
                let message = format!(
                    "server {node} became leader of term {term} without the entry of term {} at index {} that server {} applied (committed by term {})",
                    applied.term,
                    slot + 1,
                    applied.node,
                    applied.commit_term
                );
                return Some(Violation::new("leader-completeness", message, t_ns, Some(node)));
            }
        }
        None
    }

    fn remember_leader_log(&mut self, leader: &Server, node: NodeId) {
        let log = leader.log();
        let last = log.len().checked_sub(1).and_then(|p| log.digest(p)).unwrap_or(0);
        self.leader_logs.insert(node, (leader.current_term(), log.len(), last));
    }

    fn check_append_only(&mut self, server: &Server, node: NodeId, t_ns: u64) -> Option<Violation> {
        if server.role() != Role::Leader {
            self.leader_logs.remove(&node);
            return None;
        }
        if let Some((term, length, last)) = self.leader_logs.get(&node).copied()
            && term == server.current_term()
        {
            let log = server.log();
            let kept = length == 0 || log.digest(length - 1) == Some(last);
            if !kept {
                let message =
                    format!("leader {node} of term {term} no longer holds the entry it had at index {length}");
                return Some(Violation::new("leader-append-only", message, t_ns, Some(node)));
            }
        }
        self.remember_leader_log(server, node);
        None
    }
}

/// Log matching over every pair of servers that are up.
pub fn check_log_matching<'a>(
    server: &dyn Fn(NodeId) -> Option<&'a Server>,
    servers: usize,
    t_ns: u64,
) -> Option<Violation> {
    let logs: Vec<(NodeId, &Log)> = (0..servers).filter_map(|n| server(n).map(|s| (n, s.log()))).collect();
    for (i, (a, log_a)) in logs.iter().enumerate() {
        for (b, log_b) in &logs[i + 1..] {
            let shared = log_a.len().min(log_b.len());
            let Some(last_match) = (0..shared).rev().find(|k| log_a[*k].term == log_b[*k].term) else {
                continue;
            };
            if log_a.prefix_hash(last_match) != log_b.prefix_hash(last_match) {
                // Prefix equality only ever fails from some index on: find it.
                let k = (0..=last_match)
                    .collect::<Vec<_>>()
                    .partition_point(|k| log_a.prefix_hash(*k) == log_b.prefix_hash(*k));
                let message = format!(
                    "servers {a} and {b} both hold an entry of term {} at index {}, but their logs differ at index {} (terms {} and {})",
                    log_a[last_match].term,
                    last_match + 1,
                    k + 1,
                    log_a[k].term,
                    log_b[k].term
                );
                return Some(Violation::new("log-matching", message, t_ns, None));
            }
        }
    }
    None
}
