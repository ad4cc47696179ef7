//! The coordinator: 2PC's transaction manager with presumed abort, or Paxos Commit's
//! initial leader.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use sim_core::NodeId;

use super::pc::{Recovery, Tally};
use super::{Gtid, Instance, Line, Mode, Msg, OrderId, Shared, TxnCtx, TxnObs, Variant, Work};
use super::{Hops, next_hop};
use super::{decode_gtid, encode_gtid};
use crate::codec::{Reader, SlotPair, Writer, number};

const TIMER_TICK: u64 = 1;
const KEY_INCARNATION: [&str; 2] = ["coord/incarnation/0", "coord/incarnation/1"];
const COMMIT_PREFIX: &str = "coord/commit/";

fn commit_key(gtid: Gtid) -> String {
    format!("{COMMIT_PREFIX}{}.{}", gtid.incarnation, gtid.n)
}

#[derive(Clone, Debug)]
enum Phase {
    /// 2PC phase 1: the votes so far.
    Voting { votes: BTreeMap<NodeId, bool> },
    /// 2PC phase 2 after a commit: who has acknowledged.
    Committing { acked: BTreeSet<NodeId> },
    /// Paxos Commit: each participant's instance as learned from the acceptors.
    Learning { instances: BTreeMap<NodeId, Tally> },
}

#[derive(Clone, Debug)]
struct Txn {
    order: OrderId,
    /// The client to answer; none for a transaction recovered from the log.
    client: Option<NodeId>,
    participants: Vec<NodeId>,
    phase: Phase,
    /// When it began, or last resent its decision (local time).
    since_ns: u64,
    /// The most message delays any vote (2PC) or acceptance (Paxos Commit) took to reach
    /// it on the normal path; its decision is one more.
    hops: Hops,
}

pub struct Coordinator {
    shared: Rc<Shared>,
    incarnation: u64,
    next_n: u64,
    txns: BTreeMap<Gtid, Txn>,
    /// Orders already begun (a duplicated Submit is not run twice).
    orders: BTreeSet<OrderId>,
    /// Outcomes of finished transactions, in memory only.
    finished: BTreeMap<Gtid, bool>,
    recoveries: BTreeMap<Gtid, Recovery>,
    round_seen: u64,
    incarnations: SlotPair,
    pub forced_writes: u64,
}

impl Coordinator {
    pub fn new(shared: Rc<Shared>) -> Coordinator {
        Coordinator {
            shared,
            incarnation: 0,
            next_n: 0,
            txns: BTreeMap::new(),
            orders: BTreeSet::new(),
            finished: BTreeMap::new(),
            recoveries: BTreeMap::new(),
            round_seen: 0,
            incarnations: SlotPair::new(KEY_INCARNATION),
            forced_writes: 0,
        }
    }

    /// Transactions begun and not finished.
    pub fn pending(&self) -> impl Iterator<Item = &Gtid> {
        self.txns.keys()
    }

    pub fn on_start(&mut self, ctx: &mut TxnCtx<'_>) {
        let storage = ctx.storage();
        self.incarnation = self.incarnations.read(storage, |r| r.u64()).unwrap_or(0) + 1;
        // A new incarnation, durable before any transaction id uses it.
        self.incarnations.write(storage, number(self.incarnation));
        self.forced_writes += 1;
        let now = ctx.now();
        let logged: Vec<(Gtid, Vec<NodeId>)> =
            ctx.storage().scan_prefix(COMMIT_PREFIX).filter_map(|(_, bytes)| decode_commit(bytes)).collect();
        for (gtid, participants) in logged {
            // A logged commit not yet acknowledged by all: finish it.
            let phase = Phase::Committing { acked: BTreeSet::new() };
            let txn =
                Txn { order: OrderId { client: 0, seq: 0 }, client: None, participants, phase, since_ns: now, hops: 0 };
            self.send_decision(ctx, gtid, &txn.participants, true, 0);
            self.txns.insert(gtid, txn);
        }
        ctx.set_timer(self.shared.ms(self.shared.settings.tick_ms), TIMER_TICK);
    }

    pub fn on_message(&mut self, ctx: &mut TxnCtx<'_>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Submit { order, lines } => self.on_submit(ctx, from, order, &lines),
            Msg::Vote { gtid, yes, hops } => self.on_vote(ctx, from, gtid, yes, hops),
            Msg::Ack { gtid } => self.on_ack(ctx, from, gtid),
            Msg::Inquire { gtid } => self.on_inquire(ctx, from, gtid),
            Msg::PcAccepted { instance, ballot, prepared, hops } => {
                self.on_pc_accepted(ctx, from, instance, ballot, prepared, hops)
            }
            Msg::PcPromise { instance, ballot, accepted } => {
                if let Some(recovery) = self.recoveries.get_mut(&instance.gtid) {
                    recovery.on_promise(ctx, &self.shared, from, instance, ballot, accepted);
                }
            }
            Msg::PcNack { instance, ballot, promised } => {
                self.round_seen = self.round_seen.max(promised.round);
                // Pre-empted: the next timeout starts a higher ballot.
                if self.recoveries.get(&instance.gtid).is_some_and(|r| r.ballot == ballot) {
                    self.recoveries.remove(&instance.gtid);
                }
            }
            // A recovery leader decided a transaction of ours.
            Msg::Decision { gtid, commit, .. } => {
                if self.txns.contains_key(&gtid) && self.shared.mode == Mode::PaxosCommit {
                    self.finish(ctx, gtid, commit);
                }
            }
            Msg::Outcome { .. }
            | Msg::Prepare { .. }
            | Msg::PcPrepare { .. }
            | Msg::PcAccept { .. }
            | Msg::PcQuery { .. } => {}
        }
    }

    fn on_submit(&mut self, ctx: &mut TxnCtx<'_>, client: NodeId, order: OrderId, lines: &[Line]) {
        if !self.orders.insert(order) {
            return; // A duplicated Submit.
        }
        self.next_n += 1;
        let gtid = Gtid { incarnation: self.incarnation, n: self.next_n };
        let mut participants: BTreeSet<NodeId> = lines.iter().map(|l| self.shared.shard_of(l.item)).collect();
        participants.insert(1); // The order service.
        let participants: Vec<NodeId> = participants.into_iter().collect();
        ctx.observe(TxnObs::Begin { gtid, order, participants: participants.clone(), lines: lines.to_vec() });
        for &participant in &participants {
            let own = lines.iter().filter(|l| self.shared.shard_of(l.item) == participant && participant != 1);
            let work = Work { gtid, order, lines: own.copied().collect(), participants: participants.clone() };
            ctx.send(participant, Msg::Prepare { work: Rc::new(work), coordinator: ctx.id() });
        }
        let phase = match self.shared.mode {
            Mode::TwoPc => Phase::Voting { votes: BTreeMap::new() },
            Mode::PaxosCommit => Phase::Learning { instances: BTreeMap::new() },
        };
        let txn = Txn { order, client: Some(client), participants, phase, since_ns: ctx.now(), hops: 0 };
        self.txns.insert(gtid, txn);
    }

    fn on_vote(&mut self, ctx: &mut TxnCtx<'_>, from: NodeId, gtid: Gtid, yes: bool, hops: Hops) {
        let Some(Txn { phase: Phase::Voting { votes }, participants, hops: most, .. }) = self.txns.get_mut(&gtid)
        else {
            return; // Decided already.
        };
        votes.insert(from, yes);
        *most = (*most).max(hops);
        if !yes {
            let hops = next_hop(*most);
            self.abort(ctx, gtid, "a participant voted no", hops);
        } else if participants.iter().all(|p| votes.get(p) == Some(&true)) {
            self.commit(ctx, gtid);
        }
    }

    /// 2PC's commit point: the record is forced before any participant hears of it.
    fn commit(&mut self, ctx: &mut TxnCtx<'_>, gtid: Gtid) {
        let participants = self.txns[&gtid].participants.clone();
        let hops = next_hop(self.txns[&gtid].hops);
        let mut record = Writer::default();
        encode_gtid(&mut record, gtid);
        record.u64(participants.len() as u64);
        for p in &participants {
            record.u64(*p as u64);
        }
        if self.shared.variant == Variant::NoDecisionLog {
            // The bug: the decision goes out first, and the record is not forced.
            self.send_decision(ctx, gtid, &participants, true, hops);
            ctx.storage().put(commit_key(gtid), record.bytes);
        } else {
            ctx.storage().put(commit_key(gtid), record.bytes);
            ctx.storage().sync();
            self.forced_writes += 1;
            self.send_decision(ctx, gtid, &participants, true, hops);
        }
        ctx.observe(TxnObs::CoordinatorDecided { gtid, commit: true, cause: "every participant voted yes" });
        let txn = self.txns.get_mut(&gtid).expect("present");
        txn.phase = Phase::Committing { acked: BTreeSet::new() };
        txn.since_ns = ctx.now();
        if let Some(client) = txn.client.take() {
            ctx.send(client, Msg::Outcome { order: txn.order, committed: true });
        }
    }

    /// An abort: nothing forced, no acknowledgements (presumed abort).
    fn abort(&mut self, ctx: &mut TxnCtx<'_>, gtid: Gtid, cause: &'static str, hops: Hops) {
        let participants = self.txns[&gtid].participants.clone();
        ctx.observe(TxnObs::CoordinatorDecided { gtid, commit: false, cause });
        self.send_decision(ctx, gtid, &participants, false, hops);
        self.finish(ctx, gtid, false);
    }

    fn send_decision(&self, ctx: &mut TxnCtx<'_>, gtid: Gtid, participants: &[NodeId], commit: bool, hops: Hops) {
        for &participant in participants {
            ctx.send(participant, Msg::Decision { gtid, commit, hops });
        }
    }

    /// Forgets a transaction, answering its client.
    fn finish(&mut self, ctx: &mut TxnCtx<'_>, gtid: Gtid, commit: bool) {
        if let Some(txn) = self.txns.remove(&gtid)
            && let Some(client) = txn.client
        {
            ctx.send(client, Msg::Outcome { order: txn.order, committed: commit });
        }
        self.recoveries.remove(&gtid);
        self.finished.insert(gtid, commit);
    }

    fn on_ack(&mut self, ctx: &mut TxnCtx<'_>, from: NodeId, gtid: Gtid) {
        let Some(Txn { phase: Phase::Committing { acked }, participants, .. }) = self.txns.get_mut(&gtid) else {
            return;
        };
        acked.insert(from);
        if participants.iter().all(|p| acked.contains(p)) {
            ctx.storage().delete(&commit_key(gtid)); // The end record: not forced.
            self.finish(ctx, gtid, true);
        }
    }

    fn on_inquire(&mut self, ctx: &mut TxnCtx<'_>, from: NodeId, gtid: Gtid) {
        let answer = match self.txns.get(&gtid).map(|t| &t.phase) {
            Some(Phase::Committing { .. }) => Some(true),
            Some(_) => None, // Still deciding: the decision will come.
            None => match self.finished.get(&gtid) {
                Some(commit) => Some(*commit),
                None => {
                    // No record: presumed abort (the variant presumes commit).
                    let commit = self.shared.variant == Variant::PresumeCommit;
                    let cause = if commit { "presumed commit (no record)" } else { "presumed abort (no record)" };
                    ctx.observe(TxnObs::CoordinatorDecided { gtid, commit, cause });
                    self.finished.insert(gtid, commit);
                    Some(commit)
                }
            },
        };
        if let Some(commit) = answer {
            ctx.send(from, Msg::Decision { gtid, commit, hops: 0 });
        }
    }

    /// Paxos Commit: an acceptance of a participant's ballot-0 vote.
    fn on_pc_accepted(
        &mut self,
        ctx: &mut TxnCtx<'_>,
        from: NodeId,
        instance: Instance,
        ballot: super::Ballot,
        prepared: bool,
        hops: Hops,
    ) {
        if let Some(recovery) = self.recoveries.get_mut(&instance.gtid)
            && ballot == recovery.ballot
        {
            if let Some(commit) = recovery.on_accepted(&self.shared, from, instance, ballot, prepared) {
                self.decide_pc(ctx, instance.gtid, commit, "recovery leader", 0);
            }
            return;
        }
        let majority = self.shared.acceptor_majority();
        let Some(Txn { phase: Phase::Learning { instances }, participants, hops: most, .. }) =
            self.txns.get_mut(&instance.gtid)
        else {
            return;
        };
        *most = (*most).max(hops);
        let hops = next_hop(*most);
        let decided = instances.entry(instance.participant).or_default().count(from, ballot, prepared, majority);
        if decided == Some(false) {
            self.decide_pc(ctx, instance.gtid, false, "a participant's instance chose aborted", hops);
        } else if participants.iter().all(|p| instances.get(p).is_some_and(|t| t.decided == Some(true))) {
            self.decide_pc(ctx, instance.gtid, true, "every instance chose prepared", hops);
        }
    }

    fn decide_pc(&mut self, ctx: &mut TxnCtx<'_>, gtid: Gtid, commit: bool, cause: &'static str, hops: Hops) {
        let participants = self.txns[&gtid].participants.clone();
        ctx.observe(TxnObs::CoordinatorDecided { gtid, commit, cause });
        self.send_decision(ctx, gtid, &participants, commit, hops);
        self.finish(ctx, gtid, commit);
    }

    pub fn on_timer(&mut self, ctx: &mut TxnCtx<'_>, tag: u64) {
        if tag != TIMER_TICK {
            return;
        }
        ctx.set_timer(self.shared.ms(self.shared.settings.tick_ms), TIMER_TICK);
        let now = ctx.now();
        let vote_timeout_ns = self.shared.ms(self.shared.settings.vote_timeout_ms);
        let retry_ns = self.shared.ms(self.shared.settings.inquiry_ms);
        let due: Vec<Gtid> = self
            .txns
            .iter()
            .filter(|(g, t)| match t.phase {
                Phase::Committing { .. } => now >= t.since_ns + retry_ns,
                // A recovery of its own in flight: resent at the retry interval.
                Phase::Learning { .. } if self.recoveries.contains_key(g) => now >= t.since_ns + retry_ns,
                _ => now >= t.since_ns + vote_timeout_ns,
            })
            .map(|(g, _)| *g)
            .collect();
        for gtid in due {
            self.on_overdue(ctx, gtid, now);
        }
    }

    fn on_overdue(&mut self, ctx: &mut TxnCtx<'_>, gtid: Gtid, now: u64) {
        let txn = self.txns.get_mut(&gtid).expect("due");
        txn.since_ns = now;
        match &txn.phase {
            Phase::Voting { .. } => self.abort(ctx, gtid, "vote timeout", 0),
            Phase::Committing { acked } => {
                let unacked: Vec<NodeId> = txn.participants.iter().filter(|p| !acked.contains(p)).copied().collect();
                self.send_decision(ctx, gtid, &unacked, true, 0);
            }
            Phase::Learning { .. } if self.recoveries.contains_key(&gtid) => {
                self.recoveries[&gtid].retransmit(ctx, &self.shared);
            }
            Phase::Learning { instances } => {
                // A vote is late: lead phase 1 for the undecided instances, at a ballot
                // above any seen; a silent participant's instance gets aborted.
                let known: BTreeMap<NodeId, bool> =
                    instances.iter().filter_map(|(p, t)| t.decided.map(|v| (*p, v))).collect();
                let participants = txn.participants.clone();
                let round = self.round_seen + 1; // Above any ballot seen, its own included.
                self.round_seen = round;
                let recovery = Recovery::start(ctx, &self.shared, gtid, &participants, round, &known);
                if let Some(commit) = recovery.outcome() {
                    self.decide_pc(ctx, gtid, commit, "every instance decided", 0);
                } else {
                    self.recoveries.insert(gtid, recovery);
                }
            }
        }
    }
}

fn decode_commit(bytes: &[u8]) -> Option<(Gtid, Vec<NodeId>)> {
    let mut reader = Reader::new(bytes);
    let gtid = decode_gtid(&mut reader)?;
    let count = reader.u64()?.min(1024);
    let mut participants = Vec::new();
    for _ in 0..count {
        participants.push(reader.u64()? as NodeId);
    }
    reader.is_done().then_some((gtid, participants))
}
