//! The lock oracles, judged in true global time.
//!
//! - **Mutual exclusion**, two ways. *What clients do*: a client may use the resource (send
//!   a read or a write) only while it really holds the lock, in true time: while its key
//!   is live on the server (by the server's own clock), or for RedLock on a majority of
//!   the instances at once. A write made after the lock really ended is the violation,
//!   with or without fencing (fencing makes the storage refuse it; the client still
//!   broke the lock's contract). *What clients believe*: when a client acquires, no other
//!   client may still believe it holds the lock, that is, have neither released nor seen
//!   its own clock pass its validity. With fencing such overlapping beliefs are counted
//!   as warnings: the storage's checks are what keep the resource safe.
//! - **Unsafe access**: generations are numbered in the order the lock was really
//!   granted, in true time: the moment the server set the key, or for RedLock the moment
//!   a majority of the instances held the key at once (whenever the client learned it);
//!   the storage must never accept an access of an older generation after one of a newer
//!   generation (the lost update fencing exists to prevent). A token no majority ever
//!   held is generation 0. The ZooKeeper lock's clients say their generation: the zxid of
//!   their lock node, the order in which the service's log really granted the lock.

use std::collections::BTreeMap;

use checker::Violation;
use sim_core::{NodeId, Observation};

use super::LockObs;

/// The oracles' memory of a run.
#[derive(Default)]
pub struct LockOracle {
    fencing: bool,
    /// How many lock servers must hold a token's key at once for the lock to be really
    /// granted (one, or RedLock's majority); none: the lock service reports no key
    /// states (the ZooKeeper lock), and generations come from the clients.
    quorum: Option<usize>,
    /// Each lock server's lock key: holder and expiry on the server's clock.
    keys: BTreeMap<NodeId, (String, Option<u64>)>,
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
    /// `quorum`: how many servers' keys make a grant (1 for one instance, a majority for
    /// RedLock); none when the servers report no key states.
    pub fn new(fencing: bool, quorum: Option<usize>) -> Self {
        LockOracle { fencing, quorum, ..LockOracle::default() }
    }

    /// How many lock servers hold `token`'s key now, in true time (each by its own clock).
    pub fn holding(&self, token: &str, local_ns: &dyn Fn(NodeId) -> u64) -> usize {
        self.keys
            .iter()
            .filter(|(server, (holder, expiry))| holder == token && expiry.is_none_or(|at| local_ns(**server) < at))
            .count()
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
            LockObs::KeyState { holder, expires_local_ns } => {
                match holder {
                    Some(holder) => self.keys.insert(node, (holder.clone(), *expires_local_ns)),
                    None => self.keys.remove(&node),
                };
                // Really granted when the quorum holds the key at once.
                if let (Some(holder), Some(quorum)) = (holder, self.quorum)
                    && self.holding(holder, local_ns) >= quorum
                {
                    self.number(holder);
                }
            }
            LockObs::Access { token, write } => {
                let quorum = self.quorum?;
                let holding = self.holding(token, local_ns);
                if holding < quorum {
                    let what = if *write { "write" } else { "read" };
                    let servers = if quorum == 1 {
                        "the server no longer holds its key".to_owned()
                    } else {
                        format!("{holding} of the instances hold its key, a majority is {quorum}")
                    };
                    let message =
                        format!("client {node} made a {what} as {token} after its lock had really ended: {servers}");
                    let violation = Violation::new("mutual-exclusion", message, t_ns, Some(node));
                    return Some(match self.beliefs.get(token) {
                        Some((_, _, since)) => {
                            violation.mark(node, *since, format!("client {node} acquired as {token}"))
                        }
                        None => violation,
                    });
                }
            }
            // The client knows its generation (the ZooKeeper lock: its node's zxid).
            LockObs::Generation { token, generation } => {
                self.generation_of.insert(token.clone(), *generation);
            }
            LockObs::Acquired { token, valid_until_local_ns, .. } => {
                // Generations follow the order in which the lock was really granted: the
                // server's grant, or for RedLock the moment a majority had said yes.
                if self.quorum.is_none() {
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
