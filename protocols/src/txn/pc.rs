//! Paxos Commit's pieces shared by the coordinator and the participants: the acceptor's
//! durable per-instance state, the learner's tally, and the recovery leader that decides
//! a transaction without its coordinator.

use std::collections::{BTreeMap, BTreeSet};

use sim_core::NodeId;

use super::{Ballot, Gtid, Hops, Instance, Msg, Shared, TxnCtx, decode_gtid, encode_gtid, next_hop};
use crate::codec::{Reader, Writer};

/// A learner's count of one instance: who accepted which (ballot, value).
#[derive(Clone, Debug, Default)]
pub struct Tally {
    accepted_by: BTreeMap<(Ballot, bool), BTreeSet<NodeId>>,
    pub decided: Option<bool>,
}

impl Tally {
    /// Counts an acceptance; the instance is decided when `majority` acceptors accepted
    /// one ballot's value (Paxos makes every such value the same).
    pub fn count(&mut self, acceptor: NodeId, ballot: Ballot, prepared: bool, majority: usize) -> Option<bool> {
        let by = self.accepted_by.entry((ballot, prepared)).or_default();
        by.insert(acceptor);
        if by.len() >= majority && self.decided.is_none() {
            self.decided = Some(prepared);
        }
        self.decided
    }

    /// Whether `acceptor` accepted `ballot` (either value).
    pub fn accepted(&self, acceptor: NodeId, ballot: Ballot) -> bool {
        [true, false].iter().any(|v| self.accepted_by.get(&(ballot, *v)).is_some_and(|by| by.contains(&acceptor)))
    }
}

/// One acceptor's state for one instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcceptorState {
    pub promised: Ballot,
    pub accepted: Option<(Ballot, bool)>,
    /// The key its record is under (records are never overwritten in place).
    pub version: u64,
}

const ACCEPTOR_PREFIX: &str = "acc/";

/// The acceptors' instances on one node, durable.
#[derive(Clone, Debug, Default)]
pub struct Acceptor {
    pub instances: BTreeMap<Instance, AcceptorState>,
    versions: u64,
}

fn key(instance: Instance, version: u64) -> String {
    format!("{ACCEPTOR_PREFIX}{version:012}/{}.{}/{}", instance.gtid.incarnation, instance.gtid.n, instance.participant)
}

impl Acceptor {
    /// Reads every instance's newest whole record.
    pub fn recover(storage: &sim_core::Storage) -> Acceptor {
        let mut acceptor = Acceptor::default();
        for (key, bytes) in storage.scan_prefix(ACCEPTOR_PREFIX) {
            let Some(version) = key[ACCEPTOR_PREFIX.len()..].split('/').next().and_then(|v| v.parse::<u64>().ok())
            else {
                continue;
            };
            acceptor.versions = acceptor.versions.max(version);
            let Some((instance, mut state)) = decode(bytes) else {
                continue; // Torn: never answered for.
            };
            state.version = version;
            if acceptor.instances.get(&instance).is_none_or(|s| s.version < version) {
                acceptor.instances.insert(instance, state);
            }
        }
        acceptor
    }

    /// Writes an instance's new state under a new key, syncs, then deletes the old one.
    fn persist(&mut self, ctx: &mut TxnCtx<'_>, instance: Instance, mut state: AcceptorState) -> AcceptorState {
        let old = self.instances.get(&instance).map(|s| s.version);
        self.versions += 1;
        state.version = self.versions;
        let mut record = Writer::default();
        encode_gtid(&mut record, instance.gtid);
        record.u64(instance.participant as u64);
        record.u64(state.promised.round);
        record.u64(state.promised.node);
        match state.accepted {
            Some((ballot, prepared)) => {
                record.u8(1 + u8::from(prepared));
                record.u64(ballot.round);
                record.u64(ballot.node);
            }
            None => record.u8(0),
        }
        let storage = ctx.storage();
        storage.put(key(instance, state.version), record.bytes);
        storage.sync();
        if let Some(old) = old {
            storage.delete(&key(instance, old));
        }
        self.instances.insert(instance, state);
        state
    }

    /// Phase 1b.
    pub fn on_prepare(&mut self, ctx: &mut TxnCtx<'_>, from: NodeId, instance: Instance, ballot: Ballot) {
        let mut state = self.instances.get(&instance).copied().unwrap_or_default();
        if ballot < state.promised {
            ctx.send(from, Msg::PcNack { instance, ballot, promised: state.promised });
            return;
        }
        if ballot > state.promised {
            state = self.persist(ctx, instance, AcceptorState { promised: ballot, ..state });
        }
        // Equal: a duplicated Prepare, answered again.
        ctx.send(from, Msg::PcPromise { instance, ballot, accepted: state.accepted });
    }

    /// A learner's query: every acceptance of the transaction's instances, again.
    pub fn on_query(&self, ctx: &mut TxnCtx<'_>, from: NodeId, gtid: Gtid) {
        let first = Instance { gtid, participant: 0 };
        for (instance, state) in self.instances.range(first..).take_while(|(i, _)| i.gtid == gtid) {
            if let Some((ballot, prepared)) = state.accepted {
                ctx.send(from, Msg::PcAccepted { instance: *instance, ballot, prepared, hops: 0 });
            }
        }
    }

    /// Phase 2b: the acceptance goes to the ballot's leader.
    #[allow(clippy::too_many_arguments)]
    pub fn on_accept(
        &mut self,
        ctx: &mut TxnCtx<'_>,
        from: NodeId,
        instance: Instance,
        ballot: Ballot,
        prepared: bool,
        leader: NodeId,
        learners: &[NodeId],
        hops: Hops,
    ) {
        let state = self.instances.get(&instance).copied().unwrap_or_default();
        if ballot < state.promised {
            ctx.send(from, Msg::PcNack { instance, ballot, promised: state.promised });
            return;
        }
        if state.accepted != Some((ballot, prepared)) {
            self.persist(
                ctx,
                instance,
                AcceptorState { promised: ballot, accepted: Some((ballot, prepared)), ..state },
            );
        }
        let hops = next_hop(hops);
        ctx.send(leader, Msg::PcAccepted { instance, ballot, prepared, hops });
        for &learner in learners.iter().filter(|l| **l != leader) {
            ctx.send(learner, Msg::PcAccepted { instance, ballot, prepared, hops });
        }
    }
}

fn decode(bytes: &[u8]) -> Option<(Instance, AcceptorState)> {
    let mut reader = Reader::new(bytes);
    let gtid = decode_gtid(&mut reader)?;
    let participant = reader.u64()? as NodeId;
    let promised = Ballot { round: reader.u64()?, node: reader.u64()? };
    let accepted = match reader.u8()? {
        0 => None,
        tag @ 1..=2 => Some((Ballot { round: reader.u64()?, node: reader.u64()? }, tag == 2)),
        _ => return None,
    };
    reader.is_done().then_some((Instance { gtid, participant }, AcceptorState { promised, accepted, version: 0 }))
}

/// Phase 1 and 2 of one instance, run by a recovery leader.
#[derive(Clone, Debug, Default)]
struct RecoveryInstance {
    promises: BTreeMap<NodeId, Option<(Ballot, bool)>>,
    proposed: Option<bool>,
    tally: Tally,
}

/// A leader deciding a transaction without its coordinator: phase 1 at its ballot for
/// every instance, the reported value or *aborted* in phase 2.
#[derive(Clone, Debug)]
pub struct Recovery {
    pub gtid: Gtid,
    pub ballot: Ballot,
    pub participants: Vec<NodeId>,
    instances: BTreeMap<NodeId, RecoveryInstance>,
}

impl Recovery {
    /// Starts phase 1 for the instances not yet decided in `known`.
    pub fn start(
        ctx: &mut TxnCtx<'_>,
        shared: &Shared,
        gtid: Gtid,
        participants: &[NodeId],
        round: u64,
        known: &BTreeMap<NodeId, bool>,
    ) -> Recovery {
        let ballot = Ballot { round, node: ctx.id() as u64 + 1 };
        let mut instances = BTreeMap::new();
        for &participant in participants {
            let mut instance = RecoveryInstance::default();
            if let Some(value) = known.get(&participant) {
                instance.tally.decided = Some(*value);
            } else {
                for acceptor in shared.acceptors() {
                    ctx.send(acceptor, Msg::PcPrepare { instance: Instance { gtid, participant }, ballot });
                }
            }
            instances.insert(participant, instance);
        }
        Recovery { gtid, ballot, participants: participants.to_vec(), instances }
    }

    pub fn on_promise(
        &mut self,
        ctx: &mut TxnCtx<'_>,
        shared: &Shared,
        from: NodeId,
        instance: Instance,
        ballot: Ballot,
        accepted: Option<(Ballot, bool)>,
    ) {
        let Some(state) = self.instances.get_mut(&instance.participant).filter(|_| ballot == self.ballot) else {
            return;
        };
        if state.proposed.is_some() || state.tally.decided.is_some() {
            return;
        }
        state.promises.insert(from, accepted);
        if state.promises.len() < shared.acceptor_majority() {
            return;
        }
        // The highest-ballot value reported; a silent participant's instance gets aborted.
        let value = state.promises.values().flatten().max_by_key(|(b, _)| *b).is_some_and(|(_, prepared)| *prepared);
        state.proposed = Some(value);
        for acceptor in shared.acceptors() {
            self.send_accept(ctx, acceptor, instance, value);
        }
    }

    /// Phase 2a of this leader's ballot to one acceptor; the acceptances go to the leader
    /// and to the transaction's participants.
    fn send_accept(&self, ctx: &mut TxnCtx<'_>, acceptor: NodeId, instance: Instance, prepared: bool) {
        let (ballot, leader, learners) = (self.ballot, ctx.id(), std::rc::Rc::new(self.participants.clone()));
        ctx.send(acceptor, Msg::PcAccept { instance, ballot, prepared, leader, learners, hops: 0 });
    }

    /// Counts an acceptance; the transaction's outcome once every instance is decided.
    pub fn on_accepted(
        &mut self,
        shared: &Shared,
        from: NodeId,
        instance: Instance,
        ballot: Ballot,
        prepared: bool,
    ) -> Option<bool> {
        if let Some(state) = self.instances.get_mut(&instance.participant) {
            state.tally.count(from, ballot, prepared, shared.acceptor_majority());
        }
        self.outcome()
    }

    /// Sends the current phase's message again to every acceptor that has not answered
    /// it (lost messages are what stall a recovery leader that nobody pre-empted; a new
    /// ballot would only pre-empt the leaders that are making progress).
    pub fn retransmit(&self, ctx: &mut TxnCtx<'_>, shared: &Shared) {
        let ballot = self.ballot;
        for (&participant, state) in &self.instances {
            if state.tally.decided.is_some() {
                continue;
            }
            let instance = Instance { gtid: self.gtid, participant };
            for acceptor in shared.acceptors() {
                match state.proposed {
                    None if !state.promises.contains_key(&acceptor) => {
                        ctx.send(acceptor, Msg::PcPrepare { instance, ballot });
                    }
                    Some(prepared) if !state.tally.accepted(acceptor, ballot) => {
                        self.send_accept(ctx, acceptor, instance, prepared);
                    }
                    _ => {}
                }
            }
        }
    }

    pub fn outcome(&self) -> Option<bool> {
        let decided: Option<Vec<bool>> = self.instances.values().map(|i| i.tally.decided).collect();
        decided.map(|values| values.iter().all(|v| *v))
    }
}
