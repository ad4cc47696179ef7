//! Raft's safety properties (the paper's Figure 3), judged as the run goes.
//!
//! Facts come from observations (stamped with true global time) and from read access to
//! the servers' state between steps:
//!
//! - **Election safety**: at most one leader is elected in a term.
//! - **Leader append-only**: a leader never overwrites or deletes entries of its log
//!   during its term.
//! - **Log matching**: if two logs hold an entry with the same index and term, the logs
//!   are identical up to that index. Checked continuously: whenever a server writes its
//!   log, each entry from the first written to the log's end is compared, by prefix hash,
//!   with the first log seen holding the same index and term (a map from index and term
//!   to prefix hash: the cost is one lookup per entry written). Also over every pair of
//!   servers at every election and at the end of the run.
//! - **Leader completeness**: an entry applied (so committed) anywhere is in the log of
//!   every leader of a later term than the one it was committed in.
//! - **State machine safety**: no two servers apply different entries at one index, and
//!   every snapshot a server takes, installs or restores covers exactly the entries
//!   applied at its indices (its stored prefix hash equals that of the applied entries;
//!   checked as soon as all of them have been applied somewhere).
//!
//! With compaction, a server's log starts after its snapshot: leader completeness and
//! log matching compare what the logs hold, and the compacted part is vouched for by the
//! snapshot check above.

use std::collections::BTreeMap;

use checker::Violation;
use sim_core::{NodeId, Observation};

use super::log::{Log, extend_prefix};
use super::server::{Role, Server};
use super::{Machine, RaftObs, SnapshotSource};

/// An entry applied somewhere.
#[derive(Clone, Copy)]
struct Applied {
    term: u64,
    digest: u64,
    /// The first server that applied it, and when.
    node: NodeId,
    t_ns: u64,
    /// The lowest term any server applying it was in: the term in which it was
    /// committed, since the committing leader applies it at once in its own term and
    /// every other server's term is at least that.
    commit_term: u64,
}

/// A snapshot some server holds, to be checked against the committed log once every
/// index it covers has been applied somewhere.
struct SnapshotClaim {
    node: NodeId,
    t_ns: u64,
    last_index: u64,
    last_term: u64,
    prefix_hash: u64,
    source: SnapshotSource,
}

/// The checker's memory of a run.
#[derive(Default)]
pub struct RaftInvariants {
    /// The leader of each term, and when it was elected.
    leaders: BTreeMap<u64, (NodeId, u64)>,
    /// What was applied at each index (1-based index - 1).
    applied: Vec<Option<Applied>>,
    /// `committed_prefix[k]`: the prefix hash of the applied entries `1..=k + 1`, as far
    /// as every index has been applied somewhere.
    committed_prefix: Vec<u64>,
    pending_snapshots: Vec<SnapshotClaim>,
    /// For each server that is leader: its term, last index and the prefix hash there
    /// when last looked at.
    leader_logs: BTreeMap<NodeId, (u64, u64, u64)>,
    /// For each (index, term) some log held: the prefix hash there, and the first server
    /// seen holding it, and when. Lookups only (never iterated), so hash order cannot
    /// reach an output.
    #[allow(clippy::disallowed_types)] // Only looked up, never iterated.
    held: std::collections::HashMap<(u64, u64), (u64, NodeId, u64)>,
}

impl RaftInvariants {
    /// The newest leader elected so far: its term, the server, and when.
    pub fn newest_leader(&self) -> Option<(u64, NodeId, u64)> {
        self.leaders.last_key_value().map(|(term, (node, t_ns))| (*term, *node, *t_ns))
    }

    /// Judges one observation. `server` reads a server's state now (None: down, or a
    /// client).
    pub fn observe<'a, M: Machine>(
        &mut self,
        observation: &Observation<RaftObs>,
        server: &dyn Fn(NodeId) -> Option<&'a Server<M>>,
        servers: usize,
    ) -> Option<Violation> {
        let (t_ns, node) = (observation.t_ns, observation.node);
        let violation = |kind: &str, message: String| Some(Violation::new(kind, message, t_ns, Some(node)));
        match &observation.obs {
            RaftObs::BecameLeader { term, .. } => {
                if let Some((other, elected_ns)) = self.leaders.insert(*term, (node, t_ns))
                    && other != node
                {
                    let message = format!("servers {other} and {node} were both elected leader of term {term}");
                    return violation("election-safety", message)
                        .map(|v| v.mark(other, elected_ns, format!("server {other} elected leader of term {term}")));
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
                            Some(Applied { term: *term, digest: *digest, node, t_ns, commit_term: *current_term })
                    }
                    Some(first) if first.digest == *digest => first.commit_term = first.commit_term.min(*current_term),
                    Some(first) => {
                        let (first_term, first_node, first_ns) = (first.term, first.node, first.t_ns);
                        let message = format!(
                            "server {node} applied an entry of term {term} at index {index}, but server {first_node} applied a different entry of term {first_term} there"
                        );
                        return violation("state-machine-safety", message).map(|v| {
                            v.mark(
                                first_node,
                                first_ns,
                                format!("server {first_node} applied term {first_term} at index {index}"),
                            )
                        });
                    }
                }
                if let Some(v) = self.extend_committed_prefix() {
                    return Some(v);
                }
                self.check_append_only(server(node)?, node, t_ns)
            }
            RaftObs::Snapshot { last_index, last_term, prefix_hash, source } => {
                self.pending_snapshots.push(SnapshotClaim {
                    node,
                    t_ns,
                    last_index: *last_index,
                    last_term: *last_term,
                    prefix_hash: *prefix_hash,
                    source: *source,
                });
                self.check_snapshots()
            }
            RaftObs::Appended { from_index } => self.check_written(server(node)?, node, *from_index, t_ns),
            RaftObs::Truncated { from_index, as_leader: true } => {
                violation("leader-append-only", format!("leader {node} deleted its log from index {from_index}"))
            }
            _ => None,
        }
    }

    /// Extends the committed log's prefix hashes over newly contiguous applied indices.
    fn extend_committed_prefix(&mut self) -> Option<Violation> {
        let before = self.committed_prefix.len();
        while let Some(Some(applied)) = self.applied.get(self.committed_prefix.len()) {
            let previous = self.committed_prefix.last().copied().unwrap_or(0);
            self.committed_prefix.push(extend_prefix(previous, applied.digest));
        }
        if self.committed_prefix.len() > before { self.check_snapshots() } else { None }
    }

    /// State machine safety for snapshots: a snapshot covers exactly the entries applied
    /// at its indices (compared through prefix hashes once all of them are known).
    fn check_snapshots(&mut self) -> Option<Violation> {
        let known = self.committed_prefix.len() as u64;
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pending_snapshots).into_iter().partition(|c| c.last_index <= known);
        self.pending_snapshots = waiting;
        for claim in ready {
            let expected = claim.last_index.checked_sub(1).map_or(0, |k| self.committed_prefix[k as usize]);
            if claim.prefix_hash != expected {
                let message = format!(
                    "server {} holds a snapshot ({:?}) of entries 1..={} (last term {}) that differs from the entries applied at those indices",
                    claim.node, claim.source, claim.last_index, claim.last_term
                );
                return Some(Violation::new("state-machine-safety", message, claim.t_ns, Some(claim.node)));
            }
        }
        None
    }

    /// Entries committed in earlier terms must be in the new leader's log. Those its
    /// snapshot covers are checked with the snapshot (see `check_snapshots`); the rest
    /// entry by entry.
    fn check_completeness<M: Machine>(
        &self,
        leader: &Server<M>,
        term: u64,
        t_ns: u64,
        node: NodeId,
    ) -> Option<Violation> {
        let base = leader.log().base_index() as usize;
        for (slot, applied) in self.applied.iter().enumerate().skip(base) {
            // Only entries committed in an earlier term bind this leader.
            let Some(applied) = applied.as_ref().filter(|a| a.commit_term < term) else {
                continue;
            };
            let held = leader.log().digest(slot as u64 + 1);
            if held != Some(applied.digest) {
                let message = format!(
                    "server {node} became leader of term {term} without the entry of term {} at index {} that server {} applied (committed by term {})",
                    applied.term,
                    slot + 1,
                    applied.node,
                    applied.commit_term
                );
                let fact =
                    format!("server {} applied the entry of term {} at index {}", applied.node, applied.term, slot + 1);
                return Some(Violation::new("leader-completeness", message, t_ns, Some(node)).mark(
                    applied.node,
                    applied.t_ns,
                    fact,
                ));
            }
        }
        None
    }

    /// Log matching for what `server` just wrote: every entry from `from_index` to its
    /// log's end against the first log seen holding the same index and term.
    fn check_written<M: Machine>(
        &mut self,
        server: &Server<M>,
        node: NodeId,
        from_index: u64,
        t_ns: u64,
    ) -> Option<Violation> {
        let log = server.log();
        for index in from_index.max(log.base_index() + 1)..=log.last_index() {
            let term = log.term_at(index).expect("a held index");
            let prefix = log.prefix_hash(index).expect("a held index");
            match self.held.entry((index, term)) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert((prefix, node, t_ns));
                }
                std::collections::hash_map::Entry::Occupied(first) => {
                    let (first_prefix, first_node, first_ns) = *first.get();
                    if first_prefix != prefix {
                        let message = format!(
                            "server {node} wrote an entry of term {term} at index {index} that server {first_node} also holds, but their logs differ before it"
                        );
                        let fact = format!("server {first_node} held term {term} at index {index}");
                        return Some(
                            Violation::new("log-matching", message, t_ns, Some(node)).mark(first_node, first_ns, fact),
                        );
                    }
                }
            }
        }
        None
    }

    fn remember_leader_log<M: Machine>(&mut self, leader: &Server<M>, node: NodeId) {
        let log = leader.log();
        let last = log.last_index();
        let prefix = log.prefix_hash(last).expect("the last index is known");
        self.leader_logs.insert(node, (leader.current_term(), last, prefix));
    }

    fn check_append_only<M: Machine>(&mut self, server: &Server<M>, node: NodeId, t_ns: u64) -> Option<Violation> {
        if server.role() != Role::Leader {
            self.leader_logs.remove(&node);
            return None;
        }
        if let Some((term, index, prefix)) = self.leader_logs.get(&node).copied()
            && term == server.current_term()
            // Entries the leader has since compacted were applied, and are judged by
            // state machine safety.
            && index >= server.log().base_index()
            && server.log().prefix_hash(index) != Some(prefix)
        {
            let message =
                format!("leader {node} of term {term} no longer holds the entries it had up to index {index}");
            return Some(Violation::new("leader-append-only", message, t_ns, Some(node)));
        }
        self.remember_leader_log(server, node);
        None
    }
}

/// Log matching over every pair of servers that are up, on the indices both logs know
/// (from the later of their snapshots' last indices on).
pub fn check_log_matching<'a, M: Machine>(
    server: &dyn Fn(NodeId) -> Option<&'a Server<M>>,
    servers: usize,
    t_ns: u64,
) -> Option<Violation> {
    let logs: Vec<(NodeId, &Log<M>)> = (0..servers).filter_map(|n| server(n).map(|s| (n, s.log()))).collect();
    for (i, (a, log_a)) in logs.iter().enumerate() {
        for (b, log_b) in &logs[i + 1..] {
            let low = log_a.base_index().max(log_b.base_index());
            let high = log_a.last_index().min(log_b.last_index());
            if low > high {
                continue;
            }
            let term = |log: &Log<M>, k: u64| log.term_at(k).expect("known index");
            let Some(last_match) = (low..=high).rev().find(|k| term(log_a, *k) == term(log_b, *k)) else {
                continue;
            };
            if log_a.prefix_hash(last_match) != log_b.prefix_hash(last_match) {
                // Prefix equality only ever fails from some index on: find it.
                let k = low
                    + (low..=last_match)
                        .collect::<Vec<_>>()
                        .partition_point(|k| log_a.prefix_hash(*k) == log_b.prefix_hash(*k))
                        as u64;
                let at = if k == low && low > 0 { format!("at or before index {k}") } else { format!("at index {k}") };
                let message = format!(
                    "servers {a} and {b} both hold an entry of term {} at index {last_match}, but their logs differ {at} (terms {} and {})",
                    term(log_a, last_match),
                    term(log_a, k),
                    term(log_b, k)
                );
                return Some(Violation::new("log-matching", message, t_ns, None));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(node: NodeId, obs: RaftObs) -> Observation<RaftObs> {
        Observation { t_ns: 1, node, obs }
    }

    fn applied(index: u64, digest: u64) -> RaftObs {
        RaftObs::Applied { index, term: 1, digest, current_term: 1 }
    }

    fn snapshot(last_index: u64, prefix_hash: u64) -> RaftObs {
        RaftObs::Snapshot { last_index, last_term: 1, prefix_hash, source: SnapshotSource::Installed }
    }

    #[test]
    fn a_snapshot_must_cover_exactly_the_applied_entries_even_when_announced_first() {
        let none = |_: NodeId| -> Option<&Server> { None };
        let chain = [11u64, 22, 33].iter().fold(vec![], |mut acc: Vec<u64>, d| {
            acc.push(extend_prefix(acc.last().copied().unwrap_or(0), *d));
            acc
        });
        // The right snapshot, announced before index 3 is applied anywhere: checked later.
        let mut good = RaftInvariants::default();
        assert!(good.observe(&observation(0, snapshot(3, chain[2])), &none, 5).is_none());
        for (index, digest) in [(1, 11), (2, 22), (3, 33)] {
            assert!(good.observe(&observation(1, applied(index, digest)), &none, 5).is_none());
        }
        assert!(good.pending_snapshots.is_empty());
        // A snapshot whose entries differ is caught when the last of them is applied.
        let mut bad = RaftInvariants::default();
        assert!(bad.observe(&observation(0, snapshot(3, chain[1])), &none, 5).is_none());
        let mut found = None;
        for (index, digest) in [(1, 11), (2, 22), (3, 33)] {
            found = found.or(bad.observe(&observation(1, applied(index, digest)), &none, 5));
        }
        let violation = found.expect("a violation");
        assert_eq!(violation.kind, "state-machine-safety");
        assert_eq!(violation.node, Some(0));
    }
}
