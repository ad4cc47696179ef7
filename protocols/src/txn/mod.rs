//! `2pc` and `paxos-commit`: distributed transactions over an order service and
//! inventory shards, committed with two-phase commit or with Paxos Commit.
//!
//! **The system.** Node 0 is the coordinator (the transaction manager). Nodes
//! `1..=participants` are the resource managers: node 1 is the order service (a table of
//! orders with a unique order id), nodes 2.. are inventory shards (item `i` lives on
//! shard `2 + i % (participants - 1)`, with its stock). Clients place orders: each order
//! is one transaction that records the order and decrements the stock of its lines, so
//! it spans the order service and the shards of its items. Every participant keeps a
//! write-ahead log in its durable storage and rebuilds its tables and locks from it on
//! restart (there are no checkpoints). Rows are locked from the prepare until the
//! decision with a no-wait policy: a prepare that finds a row locked votes no.
//!
//! **Two-phase commit with presumed abort** (Mohan, Lindsay & Obermarck). The
//! coordinator gives each execution a transaction id of its own (its durable incarnation
//! and a counter) and sends `Prepare` to the participants. A participant checks its rows
//! (stock enough, not locked, order id not taken), locks them, force-writes a prepared
//! record and votes yes; otherwise it votes no and forgets the transaction. With every
//! vote yes, the coordinator force-writes a commit record, then sends `Commit`;
//! participants force-write commit, apply, release their locks and acknowledge, and when
//! all have, the coordinator deletes its record. Any no, or a vote timeout, aborts:
//! nothing forced, no acknowledgements. A prepared participant that hears no decision
//! asks the coordinator every `inquiry_ms`; a coordinator with no record of a transaction
//! answers abort (the presumption). After a crash the coordinator finishes the commits it
//! logged. A participant in doubt holds its locks until it learns the decision: this is
//! 2PC's blocking, and `2pc-coordinator-crash` shows it.
//!
//! **Cooperative termination** (the `cooperative_termination` setting): a participant in
//! doubt also asks the transaction's other participants. One that has decided tells; one
//! that never voted may still abort — the coordinator cannot commit without its yes —,
//! so it forces an aborted record to its log (a Prepare that comes later, even after a
//! crash, then gets a no) and tells; one in doubt too stays silent. It ends the doubt
//! when any participant knows the outcome or has not voted, not when all voted yes and
//! none heard the decision: then only the coordinator can end it
//! (`2pc-cooperative-termination`, `2pc-cooperative-abort`).
//!
//! **Paxos Commit** (Gray & Lamport, "Consensus on Transaction Commit"). Each
//! participant's vote is decided by an instance of Paxos of its own, over `2F+1`
//! acceptors that live on participant nodes `1..=2F+1` (as the paper allows). A
//! participant that votes sends its vote straight to the acceptors as the phase-2a
//! message of ballot 0, which is reserved to it; the acceptors tell the coordinator (the
//! leader), which learns an instance's value from `F+1` acceptances of one ballot. The
//! transaction commits iff every instance chose *prepared*. A participant in doubt asks
//! the acceptors every `inquiry_ms` for the acceptances it missed and sends its own vote
//! again to those it has not heard accept it, so a lost message costs a retry, not a
//! recovery. Nothing is forced at the
//! coordinator: the decision lives in the acceptors. A participant in doubt for
//! `inquiry_ms`, or the coordinator when a vote is late, becomes a leader itself: it runs
//! phase 1 at a higher ballot for every instance of the transaction, keeps any value
//! reported, proposes *aborted* for a silent participant, and so decides without the
//! coordinator. A leader resends its ballot's messages to the acceptors that have not
//! answered, every `inquiry_ms`, and moves to a higher ballot only when refused (then a
//! participant waits a whole turn first, so that the leader that pre-empted it can finish). 2PC is Paxos Commit with `F = 0` and the coordinator as the one acceptor.
//!
//! **Invariants** (judged after every event): atomicity (no transaction committed at one
//! participant and aborted at another), validity (commit only if every participant voted
//! yes), decisions survive crashes (a participant never changes a decision), and the
//! business data: stock is never negative, every committed order changed each of its
//! items' stock exactly once, and no order is recorded twice. Liveness after the heal:
//! every participant up is out of doubt about every transaction it prepared before the
//! faults ended.
//!
//! **Known-bug variants**: `no-decision-log` (the coordinator sends Commit before forcing
//! its record), `unilateral-abort` (a participant in doubt for `inquiry_ms` aborts on its
//! own), `early-lock-release` (a participant releases its locks when it prepares),
//! `presume-commit` (a coordinator with no record answers commit).

pub mod coordinator;
pub mod judge;
pub mod participant;
pub mod pc;
pub mod protocol;

pub use protocol::{PaxosCommit, TwoPc};

use std::fmt;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::{Ctx, NodeId, Process, TimerId};

use crate::codec::{Reader, Writer};
pub use crate::order_client::{Line, OrderId};
use crate::order_client::{OrderClient, OrderClientSettings};

/// Which commit protocol a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    TwoPc,
    PaxosCommit,
}

/// One execution of a transaction: the coordinator's incarnation and a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Gtid {
    pub incarnation: u64,
    pub n: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}.{}", self.incarnation, self.n)
    }
}

/// What one participant does for a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Work {
    pub gtid: Gtid,
    pub order: OrderId,
    /// The lines whose items this participant holds (none for the order service).
    pub lines: Vec<Line>,
    /// Every participant of the transaction.
    pub participants: Vec<NodeId>,
}

/// A Paxos Commit ballot: 0 is the participant's own; recovery leaders use
/// `(round, node + 1)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub round: u64,
    pub node: u64,
}

/// A Paxos Commit instance: one participant's vote on one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Instance {
    pub gtid: Gtid,
    pub participant: NodeId,
}

/// Messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Msg {
    /// Client to coordinator: run this order.
    Submit {
        order: OrderId,
        lines: Rc<Vec<Line>>,
    },
    /// Coordinator to client.
    Outcome {
        order: OrderId,
        committed: bool,
    },
    /// Coordinator to participant: phase 1 (in Paxos Commit, "begin commit").
    Prepare {
        work: Rc<Work>,
        coordinator: NodeId,
    },
    /// 2PC: a participant's vote.
    Vote {
        gtid: Gtid,
        yes: bool,
        hops: Hops,
    },
    /// The decision, to a participant.
    Decision {
        gtid: Gtid,
        commit: bool,
        hops: Hops,
    },
    /// 2PC: a participant has applied a commit.
    Ack {
        gtid: Gtid,
    },
    /// 2PC: a participant in doubt asks the coordinator.
    Inquire {
        gtid: Gtid,
    },
    /// Paxos Commit phase 1a, 1b, 2a, 2b, and a refusal, per instance.
    PcPrepare {
        instance: Instance,
        ballot: Ballot,
    },
    PcPromise {
        instance: Instance,
        ballot: Ballot,
        accepted: Option<(Ballot, bool)>,
    },
    /// Phase 2a; the acceptances go to the leader and to the transaction's participants
    /// (`learners`), who so learn the outcome without the coordinator.
    PcAccept {
        instance: Instance,
        ballot: Ballot,
        prepared: bool,
        leader: NodeId,
        learners: Rc<Vec<NodeId>>,
        hops: Hops,
    },
    PcAccepted {
        instance: Instance,
        ballot: Ballot,
        prepared: bool,
        hops: Hops,
    },
    PcNack {
        instance: Instance,
        ballot: Ballot,
        promised: Ballot,
    },
    /// A learner in doubt asks an acceptor what it accepted for the transaction's
    /// instances (the acceptances it missed); the answers are `PcAccepted`.
    PcQuery {
        gtid: Gtid,
    },
}

/// How many message delays the normal path of a transaction has taken when this message
/// arrives: the client's Submit is 1, the Prepare 2, a vote 3, and so on; each message
/// sent on receipt of one is one more. 0 marks a message off the normal path (a
/// retransmission, an inquiry's answer, a recovery), whose causal chain is not counted.
pub type Hops = u8;

/// The hop count of a message sent on receipt of one with `hops`.
pub fn next_hop(hops: Hops) -> Hops {
    if hops == 0 { 0 } else { hops.saturating_add(1) }
}

/// The Prepare's hop count (the Submit is 1); a vote is one more.
pub const PREPARE_HOPS: Hops = 2;

/// Facts nodes report.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum TxnObs {
    /// A client submitted an order, or learned or gave up on its outcome.
    Client { process: u64, order: OrderId, kind: checker::history::EventType },
    /// The coordinator began a transaction.
    Begin { gtid: Gtid, order: OrderId, participants: Vec<NodeId>, lines: Vec<Line> },
    /// A participant voted; `cause` says why a no.
    Voted { gtid: Gtid, yes: bool, cause: &'static str },
    /// A participant's prepared record is durable: it is in doubt until the decision.
    InDoubt { gtid: Gtid },
    /// A participant applied a decision, learned through `delays` message delays from
    /// the client's Submit (0: off the normal path).
    Decided { gtid: Gtid, commit: bool, delays: Hops },
    /// A participant released a transaction's locks.
    Released { gtid: Gtid },
    /// An inventory shard applied a committed line: the item's stock after it.
    StockApplied { gtid: Gtid, item: u32, stock: i64 },
    /// The order service recorded a committed order.
    OrderRecorded { gtid: Gtid, order: OrderId },
    /// The coordinator (or a recovery leader) decided.
    CoordinatorDecided { gtid: Gtid, commit: bool, cause: &'static str },
}

/// The known-bug variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Correct,
    NoDecisionLog,
    UnilateralAbort,
    EarlyLockRelease,
    PresumeCommit,
    UnforcedCooperativeAbort,
}

impl Variant {
    pub fn parse(name: &str) -> Option<Variant> {
        Some(match name {
            "correct" => Variant::Correct,
            "no-decision-log" => Variant::NoDecisionLog,
            "unilateral-abort" => Variant::UnilateralAbort,
            "early-lock-release" => Variant::EarlyLockRelease,
            "presume-commit" => Variant::PresumeCommit,
            "unforced-cooperative-abort" => Variant::UnforcedCooperativeAbort,
            _ => return None,
        })
    }
}

/// What every node shares.
#[derive(Clone, Debug)]
pub struct Shared {
    pub mode: Mode,
    pub variant: Variant,
    pub participants: usize,
    /// Paxos Commit's `F`: acceptors are participant nodes `1..=2F+1`.
    pub faults_tolerated: usize,
    pub clients: usize,
    pub settings: protocol::TxnSettings,
    pub client_settings: Rc<OrderClientSettings>,
}

impl Shared {
    pub const COORDINATOR: NodeId = 0;

    pub fn is_participant(&self, node: NodeId) -> bool {
        (1..=self.participants).contains(&node)
    }

    /// The node holding an item's stock.
    pub fn shard_of(&self, item: u32) -> NodeId {
        2 + item as usize % (self.participants - 1)
    }

    pub fn acceptors(&self) -> std::ops::RangeInclusive<NodeId> {
        1..=2 * self.faults_tolerated + 1
    }

    pub fn acceptor_majority(&self) -> usize {
        self.faults_tolerated + 1
    }

    /// 2PC's cooperative termination is on (the setting, or the variant that breaks it).
    pub fn cooperative_termination(&self) -> bool {
        self.settings.cooperative_termination || self.variant == Variant::UnforcedCooperativeAbort
    }

    pub fn ms(&self, ms: f64) -> u64 {
        (ms * sim_core::MS as f64) as u64
    }
}

/// A node of either protocol.
#[allow(clippy::large_enum_variant)] // One value per node.
pub enum TxnNode {
    Coordinator(coordinator::Coordinator),
    Participant(participant::Participant),
    Client(OrderClient<TxnTransport>),
}

pub type TxnCtx<'a> = Ctx<'a, Msg, TxnObs>;

crate::order_transport!(
    /// How the transactions' messages carry the shared order client's orders.
    TxnTransport,
    Msg,
    TxnObs
);

impl TxnNode {
    pub fn new(id: NodeId, shared: &Rc<Shared>) -> TxnNode {
        if id == Shared::COORDINATOR {
            TxnNode::Coordinator(coordinator::Coordinator::new(Rc::clone(shared)))
        } else if shared.is_participant(id) {
            TxnNode::Participant(participant::Participant::new(id, Rc::clone(shared)))
        } else {
            TxnNode::Client(OrderClient::new(id, Rc::clone(&shared.client_settings)))
        }
    }

    pub fn as_participant(&self) -> Option<&participant::Participant> {
        match self {
            TxnNode::Participant(p) => Some(p),
            _ => None,
        }
    }

    pub fn as_coordinator(&self) -> Option<&coordinator::Coordinator> {
        match self {
            TxnNode::Coordinator(c) => Some(c),
            _ => None,
        }
    }
}

impl Process for TxnNode {
    type Msg = Msg;
    type Obs = TxnObs;

    fn on_start(&mut self, ctx: &mut TxnCtx<'_>) {
        match self {
            TxnNode::Coordinator(c) => c.on_start(ctx),
            TxnNode::Participant(p) => p.on_start(ctx),
            TxnNode::Client(c) => c.on_start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut TxnCtx<'_>, from: NodeId, msg: Msg) {
        match self {
            TxnNode::Coordinator(c) => c.on_message(ctx, from, msg),
            TxnNode::Participant(p) => p.on_message(ctx, from, msg),
            TxnNode::Client(c) => c.on_message(ctx, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut TxnCtx<'_>, _timer: TimerId, tag: u64) {
        match self {
            TxnNode::Coordinator(c) => c.on_timer(ctx, tag),
            TxnNode::Participant(p) => p.on_timer(ctx, tag),
            TxnNode::Client(c) => c.on_timer(ctx, tag),
        }
    }
}

pub(crate) fn encode_gtid(out: &mut Writer, gtid: Gtid) {
    out.u64(gtid.incarnation);
    out.u64(gtid.n);
}

pub(crate) fn decode_gtid(reader: &mut Reader<'_>) -> Option<Gtid> {
    Some(Gtid { incarnation: reader.u64()?, n: reader.u64()? })
}
