//! The lock oracles, judged in true global time.
//!
//! - **Mutual exclusion**: when a client acquires, no other client may still believe it
//!   holds the lock, that is, have neither released nor seen its own clock pass its
//!   validity. With fencing such overlaps are counted as warnings: the storage's checks
//!   are what keep the resource safe.
//! - **Unsafe access**: acquisitions are numbered in the order the server really granted
//!   the lock (the acquiring reply, or for RedLock the moment a majority had said yes);
//!   the storage must never accept an access of an older generation after one of
//!   a newer generation (the lost update fencing exists to prevent). The ZooKeeper
//!   lock's clients say their generation: the zxid of their lock node, the order in
//!   which the service's log really granted the lock.

use std::collections::BTreeMap;

use checker::Violation;
use sim_core::{NodeId, Observation};

use super::LockObs;

/// The oracles' memory of a run.
#[derive(Default)]
pub struct LockOracle {
    fencing: bool,
    by_grant: bool,
    generation_of: BTreeMap<String, u64>,
    generations: u64,
    /// Token -> (client, validity end on the client's clock, when it acquired).
    beliefs: BTreeMap<String, (NodeId, u64, u64)>,
    /// The newest generation the storage accepted, its holder, and where and when.
    highest_accepted: Option<(u64, String, NodeId, u64)>,
    /// Overlapping beliefs seen with fencing on (warnings, not violations).
    pub overlaps: u64,
}

impl LockOracle {
    /// `by_grant`: number generations by the server's grants (a single instance), rather
    /// than by the clients' acquisitions (RedLock, where a grant is a majority's).
    pub fn new(fencing: bool, by_grant: bool) -> Self {
        LockOracle { fencing, by_grant, ..LockOracle::default() }
    }

    fn number(&mut self, token: &str) {
        if !self.generation_of.contains_key(token) {
            self.generations += 1;
            self.generation_of.insert(token.to_owned(), self.generations);
        }
    }

    /// Judges one observation; `local_ns` reads a node's clock now.
    pub fn observe(
        &mut self,
        observation: &Observation<LockObs>,
        local_ns: &dyn Fn(NodeId) -> u64,
    ) -> Option<Violation> {
        let (t_ns, node) = (observation.t_ns, observation.node);
        match &observation.obs {
            LockObs::Granted { value, .. } if self.by_grant => self.number(value),
            // The client knows its generation (the ZooKeeper lock: its node's zxid).
            LockObs::Generation { token, generation } => {
                self.generation_of.insert(token.clone(), *generation);
            }
            LockObs::Acquired { token, valid_until_local_ns, .. } => {
                // Generations follow the order in which the lock was really granted: the
                // server's grant, or for RedLock the moment a majority had said yes.
                if !self.by_grant {
                    self.number(token);
                }
                let still_believing = self
                    .beliefs
                    .iter()
                    .find(|(_, (holder, until, _))| *holder != node && local_ns(*holder) < *until)
                    .map(|(other, (holder, until, since))| (other.clone(), *holder, *until, *since));
                self.beliefs.insert(token.clone(), (node, *valid_until_local_ns, t_ns));
                if let Some((other, holder, until, since)) = still_believing {
                    if self.fencing {
                        self.overlaps += 1;
                    } else {
                        let why = if until == u64::MAX {
                            "it had neither released it nor heard that it lost it".to_owned()
                        } else {
                            format!(
                                "its clock reads {:.3} ms, its validity ends at {:.3} ms",
                                local_ns(holder) as f64 / 1e6,
                                until as f64 / 1e6
                            )
                        };
                        let message = format!(
                            "client {node} acquired the lock as {token} while client {holder} still believed it held it as {other} ({why})"
                        );
                        return Some(Violation::new("mutual-exclusion", message, t_ns, Some(node)).mark(
                            holder,
                            since,
                            format!("client {holder} acquired as {other}"),
                        ));
                    }
                }
            }
            LockObs::Released { token } | LockObs::Abandoned { token } => {
                self.beliefs.remove(token);
            }
            LockObs::ClientStarted => self.beliefs.retain(|_, (holder, _, _)| *holder != node),
            LockObs::Accepted { holder, write, .. } => {
                let generation = self.generation_of.get(holder).copied().unwrap_or(0);
                if let Some((highest, newer, storage, accepted_ns)) = &self.highest_accepted
                    && generation < *highest
                {
                    let what = if *write { "write" } else { "read" };
                    let message = format!(
                        "the storage accepted a {what} from {holder} (lock generation {generation}) after accepting {newer} (generation {highest})"
                    );
                    return Some(Violation::new("unsafe-access", message, t_ns, Some(node)).mark(
                        *storage,
                        *accepted_ns,
                        format!("accepted {newer} (generation {highest})"),
                    ));
                }
                self.highest_accepted = Some((generation, holder.clone(), node, t_ns));
            }
            _ => {}
        }
        None
    }
}
