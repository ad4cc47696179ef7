//! A participant (resource manager): the order service or an inventory shard, with its
//! write-ahead log, row locks and tables; in Paxos Commit also an acceptor and, for a
//! transaction it is in doubt about, a recovery leader.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use rand::RngExt;
use sim_core::NodeId;

use super::next_hop;
use super::pc::{Acceptor, Recovery};
use super::{
    Ballot, Gtid, Hops, Instance, Line, Mode, Msg, OrderId, PREPARE_HOPS, Shared, TxnCtx, TxnObs, Variant, Work,
};
use super::{decode_gtid, encode_gtid};
use crate::codec::{Reader, Writer};

const TIMER_TICK: u64 = 1;
const WAL_PREFIX: &str = "wal/";

/// A lockable row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Row {
    Item(u32),
    Order(OrderId),
}

/// A transaction this participant has prepared and not yet decided: it is in doubt.
#[derive(Clone, Debug)]
struct Prepared {
    work: Rc<Work>,
    coordinator: NodeId,
    /// When it last asked about it, or started recovering it (local time).
    asked_ns: u64,
    /// Paxos Commit: it has led a recovery of this transaction already.
    recovering: bool,
    /// Paxos Commit: when it last asked the acceptors what they accepted (local time).
    queried_ns: u64,
}

/// A write-ahead log record.
enum Record {
    Prepared { work: Work, coordinator: NodeId },
    Committed { gtid: Gtid },
    Aborted { gtid: Gtid },
}

pub struct Participant {
    id: NodeId,
    shared: Rc<Shared>,
    stock: BTreeMap<u32, i64>,
    orders: BTreeSet<OrderId>,
    locks: BTreeMap<Row, Gtid>,
    prepared: BTreeMap<Gtid, Prepared>,
    /// Decisions known: commits from the log, aborts as long as memory lasts.
    decided: BTreeMap<Gtid, bool>,
    wal_next: u64,
    acceptor: Acceptor,
    recoveries: BTreeMap<Gtid, Recovery>,
    /// Paxos Commit: the acceptances heard of each instance of a transaction in doubt.
    tallies: BTreeMap<Gtid, BTreeMap<NodeId, super::pc::Tally>>,
    round_seen: u64,
    /// Forced (synced) log writes, for the metrics.
    pub forced_writes: u64,
}

impl Participant {
    pub fn new(id: NodeId, shared: Rc<Shared>) -> Participant {
        Participant {
            id,
            shared,
            stock: BTreeMap::new(),
            orders: BTreeSet::new(),
            locks: BTreeMap::new(),
            prepared: BTreeMap::new(),
            decided: BTreeMap::new(),
            wal_next: 0,
            acceptor: Acceptor::default(),
            recoveries: BTreeMap::new(),
            tallies: BTreeMap::new(),
            round_seen: 0,
            forced_writes: 0,
        }
    }

    fn is_order_service(&self) -> bool {
        self.id == 1
    }

    /// Transactions in doubt: prepared, not decided.
    pub fn in_doubt(&self) -> impl Iterator<Item = &Gtid> {
        self.prepared.keys()
    }

    pub fn stock(&self) -> &BTreeMap<u32, i64> {
        &self.stock
    }

    pub fn on_start(&mut self, ctx: &mut TxnCtx<'_>) {
        if !self.is_order_service() {
            let initial = self.shared.settings.initial_stock;
            for item in (0..self.shared.settings.items).filter(|i| self.shared.shard_of(*i) == self.id) {
                self.stock.insert(item, initial);
            }
        }
        self.replay(ctx);
        if self.shared.mode == Mode::PaxosCommit && self.shared.acceptors().contains(&self.id) {
            self.acceptor = Acceptor::recover(ctx.storage());
        }
        ctx.set_timer(self.shared.ms(self.shared.settings.tick_ms), TIMER_TICK);
    }

    /// Rebuilds tables, locks and the transactions in doubt from the log, silently.
    fn replay(&mut self, ctx: &mut TxnCtx<'_>) {
        let now = ctx.now();
        let records: Vec<(u64, Option<Record>)> = ctx
            .storage()
            .scan_prefix(WAL_PREFIX)
            .filter_map(|(key, bytes)| Some((key[WAL_PREFIX.len()..].parse::<u64>().ok()?, decode_record(bytes))))
            .collect();
        for (seq, record) in records {
            self.wal_next = self.wal_next.max(seq + 1);
            // A torn record is the unsynced tail: nothing was answered for it.
            match record {
                Some(Record::Prepared { work, coordinator }) => {
                    self.lock(&work);
                    let prepared = Prepared {
                        work: Rc::new(work),
                        coordinator,
                        asked_ns: now,
                        recovering: false,
                        queried_ns: now,
                    };
                    self.prepared.insert(prepared.work.gtid, prepared);
                }
                Some(Record::Committed { gtid }) => {
                    if let Some(prepared) = self.prepared.remove(&gtid) {
                        self.apply(ctx, &prepared.work, false);
                        self.unlock(gtid);
                    }
                    self.decided.insert(gtid, true);
                }
                Some(Record::Aborted { gtid }) => {
                    self.prepared.remove(&gtid);
                    self.unlock(gtid);
                    self.decided.insert(gtid, false);
                }
                None => {}
            }
        }
    }

    fn append(&mut self, ctx: &mut TxnCtx<'_>, record: &Record, force: bool) {
        let key = format!("{WAL_PREFIX}{:012}", self.wal_next);
        self.wal_next += 1;
        ctx.storage().put(key, encode_record(record));
        if force {
            ctx.storage().sync();
            self.forced_writes += 1;
        }
    }

    fn rows(&self, work: &Work) -> Vec<Row> {
        if self.is_order_service() {
            vec![Row::Order(work.order)]
        } else {
            work.lines.iter().map(|l| Row::Item(l.item)).collect()
        }
    }

    fn lock(&mut self, work: &Work) {
        for row in self.rows(work) {
            self.locks.insert(row, work.gtid);
        }
    }

    fn unlock(&mut self, gtid: Gtid) {
        self.locks.retain(|_, holder| *holder != gtid);
    }

    pub fn on_message(&mut self, ctx: &mut TxnCtx<'_>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Prepare { work, coordinator } => self.on_prepare(ctx, work, coordinator),
            Msg::Decision { gtid, commit, hops } => self.decide(ctx, gtid, commit, Some(from), hops),
            Msg::PcPrepare { instance, ballot } => {
                if let Some(&commit) = self.decided.get(&instance.gtid) {
                    // A leader recovering a transaction this participant knows the
                    // outcome of: tell it (the outcome is what the acceptors hold).
                    ctx.send(from, Msg::Decision { gtid: instance.gtid, commit, hops: 0 });
                }
                self.acceptor.on_prepare(ctx, from, instance, ballot);
            }
            Msg::PcAccept { instance, ballot, prepared, leader, learners, hops } => {
                self.acceptor.on_accept(ctx, from, instance, ballot, prepared, leader, &learners, hops);
            }
            Msg::PcPromise { instance, ballot, accepted } => {
                if let Some(recovery) = self.recoveries.get_mut(&instance.gtid) {
                    recovery.on_promise(ctx, &self.shared, from, instance, ballot, accepted);
                }
            }
            Msg::PcAccepted { instance, ballot, prepared, hops } => {
                self.on_pc_accepted(ctx, from, instance, ballot, prepared, hops)
            }
            Msg::PcNack { instance, ballot, promised } => self.on_pc_nack(ctx, instance, ballot, promised),
            Msg::PcQuery { gtid } => self.acceptor.on_query(ctx, from, gtid),
            Msg::Inquire { gtid } if self.shared.cooperative_termination() => self.on_peer_inquiry(ctx, from, gtid),
            // Coordinator's and clients' messages.
            Msg::Submit { .. } | Msg::Outcome { .. } | Msg::Vote { .. } | Msg::Ack { .. } | Msg::Inquire { .. } => {}
        }
    }

    /// Cooperative termination: a participant in doubt asks this one. A decision is told;
    /// a transaction this one never voted on is aborted here first (the abort forced to
    /// the log, so that a Prepare that arrives later, even after a crash, gets a no); a
    /// transaction it is in doubt about too gets no answer.
    fn on_peer_inquiry(&mut self, ctx: &mut TxnCtx<'_>, from: NodeId, gtid: Gtid) {
        if self.prepared.contains_key(&gtid) {
            return;
        }
        let commit = match self.decided.get(&gtid) {
            Some(&commit) => commit,
            None => {
                // The variant's bug: the abort is not forced.
                let force = self.shared.variant != Variant::UnforcedCooperativeAbort;
                self.append(ctx, &Record::Aborted { gtid }, force);
                self.decided.insert(gtid, false);
                ctx.observe(TxnObs::Decided { gtid, commit: false, delays: 0 });
                false
            }
        };
        ctx.send(from, Msg::Decision { gtid, commit, hops: 0 });
    }

    /// Why this participant must vote no, if it must.
    fn refusal(&self, work: &Work) -> Option<&'static str> {
        if self.rows(work).iter().any(|row| self.locks.get(row).is_some_and(|holder| *holder != work.gtid)) {
            return Some("locked");
        }
        if self.is_order_service() {
            return self.orders.contains(&work.order).then_some("duplicate order");
        }
        let short = work.lines.iter().any(|l| self.stock.get(&l.item).copied().unwrap_or(0) < i64::from(l.qty));
        short.then_some("out of stock")
    }

    fn on_prepare(&mut self, ctx: &mut TxnCtx<'_>, work: Rc<Work>, coordinator: NodeId) {
        let gtid = work.gtid;
        if let Some(&commit) = self.decided.get(&gtid) {
            self.send_vote(ctx, &work, coordinator, commit); // Decided already: the same answer.
            return;
        }
        if self.prepared.contains_key(&gtid) {
            self.send_vote(ctx, &work, coordinator, true); // A duplicated Prepare.
            return;
        }
        if let Some(cause) = self.refusal(&work) {
            // A no: abort at once, nothing forced (presumed abort).
            self.decided.insert(gtid, false);
            ctx.observe(TxnObs::Voted { gtid, yes: false, cause });
            ctx.observe(TxnObs::Decided { gtid, commit: false, delays: 0 });
            self.send_vote(ctx, &work, coordinator, false);
            return;
        }
        self.lock(&work);
        self.append(ctx, &Record::Prepared { work: (*work).clone(), coordinator }, true);
        ctx.observe(TxnObs::InDoubt { gtid });
        if self.shared.variant == Variant::EarlyLockRelease {
            self.unlock(gtid); // The bug: locks go at the prepare, not at the decision.
            ctx.observe(TxnObs::Released { gtid });
        }
        ctx.observe(TxnObs::Voted { gtid, yes: true, cause: "" });
        let now = ctx.now();
        let prepared =
            Prepared { work: Rc::clone(&work), coordinator, asked_ns: now, recovering: false, queried_ns: now };
        self.prepared.insert(gtid, prepared);
        self.send_vote(ctx, &work, coordinator, true);
    }

    /// 2PC: a vote to the coordinator; Paxos Commit: phase 2a of ballot 0 to the acceptors.
    fn send_vote(&self, ctx: &mut TxnCtx<'_>, work: &Work, coordinator: NodeId, yes: bool) {
        match self.shared.mode {
            Mode::TwoPc => ctx.send(coordinator, Msg::Vote { gtid: work.gtid, yes, hops: next_hop(PREPARE_HOPS) }),
            Mode::PaxosCommit => {
                let instance = Instance { gtid: work.gtid, participant: self.id };
                let learners = Rc::new(work.participants.clone());
                for acceptor in self.shared.acceptors() {
                    let ballot = Ballot::default();
                    let learners = Rc::clone(&learners);
                    ctx.send(
                        acceptor,
                        Msg::PcAccept {
                            instance,
                            ballot,
                            prepared: yes,
                            leader: coordinator,
                            learners,
                            hops: next_hop(PREPARE_HOPS),
                        },
                    );
                }
            }
        }
    }

    /// Applies a decision (from the coordinator, a recovery leader, or its own recovery).
    fn decide(&mut self, ctx: &mut TxnCtx<'_>, gtid: Gtid, commit: bool, from: Option<NodeId>, hops: Hops) {
        if let Some(&known) = self.decided.get(&gtid) {
            if known
                && self.shared.mode == Mode::TwoPc
                && let Some(coordinator) = from
            {
                ctx.send(coordinator, Msg::Ack { gtid }); // A repeated Commit: acknowledge again.
            }
            return;
        }
        let Some(prepared) = self.prepared.remove(&gtid) else {
            // Never prepared here (it voted no, or the Prepare never came): nothing to undo.
            if !commit {
                self.decided.insert(gtid, false);
            } else if self.shared.mode == Mode::TwoPc
                && let Some(coordinator) = from
            {
                ctx.send(coordinator, Msg::Ack { gtid });
            }
            return;
        };
        self.recoveries.remove(&gtid);
        self.tallies.remove(&gtid);
        if commit {
            self.append(ctx, &Record::Committed { gtid }, true);
            self.apply(ctx, &prepared.work, true);
        } else {
            self.append(ctx, &Record::Aborted { gtid }, false);
        }
        self.decided.insert(gtid, commit);
        ctx.observe(TxnObs::Decided { gtid, commit, delays: hops });
        self.unlock(gtid);
        if self.shared.variant != Variant::EarlyLockRelease {
            ctx.observe(TxnObs::Released { gtid });
        }
        if commit && self.shared.mode == Mode::TwoPc {
            ctx.send(prepared.coordinator, Msg::Ack { gtid });
        }
    }

    /// A committed transaction's changes to the tables.
    fn apply(&mut self, ctx: &mut TxnCtx<'_>, work: &Work, observe: bool) {
        if self.is_order_service() {
            self.orders.insert(work.order);
            if observe {
                ctx.observe(TxnObs::OrderRecorded { gtid: work.gtid, order: work.order });
            }
            return;
        }
        for Line { item, qty } in &work.lines {
            let stock = self.stock.entry(*item).or_insert(0);
            *stock -= i64::from(*qty);
            if observe {
                ctx.observe(TxnObs::StockApplied { gtid: work.gtid, item: *item, stock: *stock });
            }
        }
    }

    pub fn on_timer(&mut self, ctx: &mut TxnCtx<'_>, tag: u64) {
        if tag != TIMER_TICK {
            return;
        }
        ctx.set_timer(self.shared.ms(self.shared.settings.tick_ms), TIMER_TICK);
        let inquiry_ns = self.shared.ms(self.shared.settings.inquiry_ms);
        let now = ctx.now();
        if self.shared.mode == Mode::PaxosCommit {
            self.query_acceptors(ctx, now, inquiry_ns);
        }
        // In Paxos Commit every participant in doubt may lead recovery; they wait in turn
        // (by their place in the transaction) so as not to pre-empt each other's ballots.
        let vote_timeout_ns = self.shared.ms(self.shared.settings.vote_timeout_ms);
        let wait_ns = |p: &Prepared| match self.shared.mode {
            Mode::TwoPc => inquiry_ns,
            Mode::PaxosCommit => {
                // The coordinator leads recovery first (after vote_timeout_ms); a
                // participant steps in only after that, the first one first.
                let rank = p.work.participants.iter().position(|n| *n == self.id).unwrap_or(0) as u64;
                let first = if p.recovering { 0 } else { vote_timeout_ns };
                first + inquiry_ns * (1 + rank)
            }
        };
        let due: Vec<Gtid> =
            self.prepared.iter().filter(|(_, p)| now >= p.asked_ns + wait_ns(p)).map(|(g, _)| *g).collect();
        for gtid in due {
            let prepared = self.prepared.get_mut(&gtid).expect("due");
            prepared.asked_ns = now;
            prepared.recovering = self.shared.mode == Mode::PaxosCommit;
            self.resolve_doubt(ctx, gtid);
        }
    }

    /// Paxos Commit, in doubt for `inquiry_ms` since it last asked: a learner that missed
    /// acceptances asks the acceptors for them again, and sends its own vote (phase 2a of
    /// its ballot 0) again to the acceptors it has not heard accept it. Losses delay the
    /// outcome by a retry, not by a recovery.
    fn query_acceptors(&mut self, ctx: &mut TxnCtx<'_>, now: u64, inquiry_ns: u64) {
        let mut due = Vec::new();
        for (gtid, prepared) in self.prepared.iter_mut().filter(|(_, p)| now >= p.queried_ns + inquiry_ns) {
            prepared.queried_ns = now;
            due.push((*gtid, Rc::clone(&prepared.work), prepared.coordinator));
        }
        for (gtid, work, coordinator) in due {
            let own = self.tallies.get(&gtid).and_then(|t| t.get(&self.id));
            let ballot = Ballot::default();
            let learners = Rc::new(work.participants.clone());
            for acceptor in self.shared.acceptors() {
                ctx.send(acceptor, Msg::PcQuery { gtid });
                if own.is_none_or(|t| t.decided.is_none() && !t.accepted(acceptor, ballot)) {
                    let instance = Instance { gtid, participant: self.id };
                    let learners = Rc::clone(&learners);
                    let accept =
                        Msg::PcAccept { instance, ballot, prepared: true, leader: coordinator, learners, hops: 0 };
                    ctx.send(acceptor, accept);
                }
            }
        }
    }

    /// In doubt for `inquiry_ms`: ask (2PC), give up on its own (variant), or lead (PC).
    fn resolve_doubt(&mut self, ctx: &mut TxnCtx<'_>, gtid: Gtid) {
        let prepared = self.prepared[&gtid].clone();
        match (self.shared.mode, self.shared.variant) {
            (Mode::TwoPc, Variant::UnilateralAbort) => self.decide(ctx, gtid, false, None, 0),
            (Mode::TwoPc, _) => {
                ctx.send(prepared.coordinator, Msg::Inquire { gtid });
                if self.shared.cooperative_termination() {
                    for &peer in prepared.work.participants.iter().filter(|p| **p != self.id) {
                        ctx.send(peer, Msg::Inquire { gtid });
                    }
                }
            }
            (Mode::PaxosCommit, _) => {
                if let Some(recovery) = self.recoveries.get(&gtid) {
                    // Its own ballot still stands: the messages were lost, send them again.
                    recovery.retransmit(ctx, &self.shared);
                    return;
                }
                let round = self.round_seen + 1; // Above any ballot seen, its own included.
                self.round_seen = round;
                let recovery =
                    Recovery::start(ctx, &self.shared, gtid, &prepared.work.participants, round, &BTreeMap::new());
                self.recoveries.insert(gtid, recovery);
            }
        }
    }

    /// Pre-empted as a recovery leader: try again soon at a higher ballot, after a random
    /// wait so that two leaders do not keep pre-empting each other.
    fn on_pc_nack(&mut self, ctx: &mut TxnCtx<'_>, instance: Instance, ballot: Ballot, promised: Ballot) {
        self.round_seen = self.round_seen.max(promised.round);
        if self.recoveries.get(&instance.gtid).is_none_or(|r| r.ballot != ballot) {
            return;
        }
        self.recoveries.remove(&instance.gtid);
        let inquiry_ns = self.shared.ms(self.shared.settings.inquiry_ms);
        let jitter_ns = ctx.rng().random_range(0..=inquiry_ns / 2);
        if let Some(prepared) = self.prepared.get_mut(&instance.gtid) {
            // Due again a whole wait and `jitter_ns` from now: the leader that pre-empted
            // it has that long to finish before it is pre-empted in turn.
            prepared.asked_ns = ctx.now() + jitter_ns;
        }
    }

    /// An acceptance: as a learner of a transaction it is in doubt about, and as a
    /// recovery leader of its ballot.
    fn on_pc_accepted(
        &mut self,
        ctx: &mut TxnCtx<'_>,
        from: NodeId,
        instance: Instance,
        ballot: Ballot,
        prepared: bool,
        hops: Hops,
    ) {
        let gtid = instance.gtid;
        if let Some(in_doubt) = self.prepared.get(&gtid) {
            let majority = self.shared.acceptor_majority();
            let tallies = self.tallies.entry(gtid).or_default();
            tallies.entry(instance.participant).or_default().count(from, ballot, prepared, majority);
            let outcome: Option<Vec<bool>> =
                in_doubt.work.participants.iter().map(|p| tallies.get(p).and_then(|t| t.decided)).collect();
            if let Some(values) = outcome {
                // Every instance decided: the outcome, learned from the acceptors.
                self.decide(ctx, gtid, values.iter().all(|v| *v), None, hops);
                return;
            }
        }
        let Some(recovery) = self.recoveries.get_mut(&instance.gtid) else {
            return;
        };
        if ballot != recovery.ballot {
            return;
        }
        let Some(commit) = recovery.on_accepted(&self.shared, from, instance, ballot, prepared) else {
            return;
        };
        let recovery = self.recoveries.remove(&instance.gtid).expect("present");
        let gtid = recovery.gtid;
        ctx.observe(TxnObs::CoordinatorDecided { gtid, commit, cause: "recovery leader" });
        for &participant in recovery.participants.iter().filter(|p| **p != self.id) {
            ctx.send(participant, Msg::Decision { gtid, commit, hops: 0 });
        }
        ctx.send(Shared::COORDINATOR, Msg::Decision { gtid, commit, hops: 0 });
        self.decide(ctx, gtid, commit, None, 0);
    }
}

fn encode_record(record: &Record) -> Vec<u8> {
    let mut out = Writer::default();
    match record {
        Record::Prepared { work, coordinator } => {
            out.u8(1);
            encode_gtid(&mut out, work.gtid);
            out.u64(work.order.client);
            out.u64(work.order.seq);
            out.u64(*coordinator as u64);
            out.u64(work.lines.len() as u64);
            for line in &work.lines {
                out.u64(u64::from(line.item));
                out.u64(u64::from(line.qty));
            }
            out.u64(work.participants.len() as u64);
            for p in &work.participants {
                out.u64(*p as u64);
            }
        }
        Record::Committed { gtid } => {
            out.u8(2);
            encode_gtid(&mut out, *gtid);
        }
        Record::Aborted { gtid } => {
            out.u8(3);
            encode_gtid(&mut out, *gtid);
        }
    }
    out.bytes
}

fn decode_record(bytes: &[u8]) -> Option<Record> {
    let mut reader = Reader::new(bytes);
    let record = match reader.u8()? {
        1 => {
            let gtid = decode_gtid(&mut reader)?;
            let order = OrderId { client: reader.u64()?, seq: reader.u64()? };
            let coordinator = reader.u64()? as NodeId;
            let lines_count = reader.u64()?.min(1024);
            let mut lines = Vec::new();
            for _ in 0..lines_count {
                lines.push(Line { item: reader.u64()? as u32, qty: reader.u64()? as u32 });
            }
            let participants_count = reader.u64()?.min(1024);
            let mut participants = Vec::new();
            for _ in 0..participants_count {
                participants.push(reader.u64()? as NodeId);
            }
            Record::Prepared { work: Work { gtid, order, lines, participants }, coordinator }
        }
        2 => Record::Committed { gtid: decode_gtid(&mut reader)? },
        3 => Record::Aborted { gtid: decode_gtid(&mut reader)? },
        _ => return None,
    };
    reader.is_done().then_some(record)
}
