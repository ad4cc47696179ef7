//! `paxos`: single-decree Paxos, as Lamport's "Paxos Made Simple" tells it.
//!
//! **The problem.** A few proposers each want some value decided; the decision must be
//! one value, one that some proposer proposed, and whoever learns a decision must learn
//! that one. Acceptors are the memory of the system: a value is *chosen* when a majority
//! of acceptors have accepted the same proposal. Any two majorities share an acceptor,
//! and that shared acceptor is how a later proposal finds out about an earlier one.
//!
//! **Proposals** are `[n, v]`, where the proposal number `n` is a [`Ballot`]: a round and
//! the proposer's id, so two proposers never use the same number (variant `reuse-ballot`
//! drops the id). A proposer writes the highest round it has used to its storage and
//! syncs it before sending a Prepare: after a restart it never reuses a number, which
//! could otherwise carry a different value than before.
//!
//! **Phase 1.** A proposer sends `Prepare(n)` to every acceptor. An acceptor that has
//! promised nothing above `n` promises `n` (never to accept a proposal numbered below
//! `n`) and answers `Promise(n)` with the highest-numbered proposal it has accepted, if
//! any. Otherwise it answers `Nack(n)` carrying its promise, so the proposer can jump
//! ahead. An acceptor that promises `n` also tells the proposer whose smaller number it
//! had promised before that it has been pre-empted (the "inform the proposer"
//! optimisation Lamport mentions): that proposer can give up at once.
//!
//! **Phase 2.** With promises from a majority, the proposer sends `Accept(n, v)`, where
//! `v` is the value of the highest-numbered proposal reported in those promises, or its
//! own value if none reported one. An acceptor accepts unless it has promised a number
//! above `n`, and tells every learner with `Accepted(n, v)`; otherwise it answers `Nack`.
//!
//! **Durability.** An acceptor's promise and accepted proposal are written to storage,
//! in two alternating slots so a torn write leaves the older whole, and synced before it
//! answers (variant `forget-promise` keeps them in memory only).
//!
//! **Learning.** Every proposer is also a learner. It has learned `v` when `Accepted`
//! messages of one proposal from a majority of acceptors reached it (variant
//! `learn-from-minority` settles for fewer).
//!
//! **Retries.** A proposer that is refused, pre-empted or gets no decision within
//! `retry_timeout_ms` starts a new round, numbered above every number it has seen, after
//! a random back-off drawn from `backoff_ms`. Without back-off (`[0, 0]`) two proposers
//! can pre-empt each other forever: the duel of scenario `paxos-duel`.
//!
//! **Invariants** (judged after every event, in true global time, by
//! [`invariants::PaxosInvariants`]): at most one value is chosen, counting every
//! majority of acceptors that accepted one proposal, not only what learners saw; a
//! chosen value was proposed; a learner learns only a value that is chosen; an acceptor
//! never accepts below its promise and its promise never decreases, across restarts.
//! Liveness: once the faults are over, a value is chosen and every proposer that is up
//! learns it within the scenario's bound; if not, the verdict lists the proposal numbers
//! tried.

pub mod invariants;
pub mod protocol;

pub use protocol::Paxos;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::rc::Rc;

use rand::RngExt;
use serde::{Deserialize, Serialize};
use sim_core::{Ctx, MS, NodeId, Process, TimerId};

use crate::codec::{Reader, SlotPair, Writer, number};

/// A proposal number: a round, then the proposer's id (1-based; 0 when every proposer
/// shares the numbers, variant `reuse-ballot`), compared in that order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub round: u64,
    pub proposer: u64,
}

impl Ballot {
    /// Below every proposal number: nothing promised yet.
    pub const ZERO: Ballot = Ballot { round: 0, proposer: 0 };
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.proposer {
            0 => write!(f, "{}", self.round),
            p => write!(f, "{}.{}", self.round, proposer_name(p as usize - 1)),
        }
    }
}

/// Proposer `index`'s name: A, B, C, ...
pub fn proposer_name(index: usize) -> String {
    char::from(b'A' + (index % 26) as u8).to_string()
}

/// Acceptor `index` of `count`'s name: the last letters of the alphabet (X, Y, Z for
/// three), as the textbook walk-through names them.
pub fn acceptor_name(index: usize, count: usize) -> String {
    char::from(b'Z' - (count - 1 - index).min(25) as u8).to_string()
}

/// A proposal: its number and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Proposal {
    pub ballot: Ballot,
    pub value: u64,
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.ballot, self.value)
    }
}

/// Messages between proposers (who are also the learners) and acceptors.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Msg {
    /// Phase 1a. `value` is carried only by variant `value-at-prepare`.
    Prepare { ballot: Ballot, value: Option<u64> },
    /// Phase 1b: the promise, with the highest-numbered proposal accepted so far.
    Promise { ballot: Ballot, accepted: Option<Proposal> },
    /// Phase 2a.
    Accept { proposal: Proposal },
    /// Phase 2b, sent to every learner.
    Accepted { proposal: Proposal },
    /// `ballot` was refused, or a promise made for it has been superseded: the acceptor
    /// has promised `promised`.
    Nack { ballot: Ballot, promised: Ballot },
}

/// Facts nodes report, for the judge and the reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum PaxosObs {
    /// A proposer started phase 1 with `ballot`.
    Prepared { ballot: Ballot },
    /// A proposer started phase 2.
    Proposed { proposal: Proposal },
    /// An acceptor promised `ballot` (answered a Prepare with a Promise).
    Promised { ballot: Ballot },
    /// An acceptor accepted a proposal.
    Accepted { proposal: Proposal },
    /// A learner learned a value.
    Learned { proposal: Proposal },
}

/// The known-bug variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Correct,
    ForgetPromise,
    IgnoreAccepted,
    ReuseBallot,
    LearnFromMinority,
    ValueAtPrepare,
}

impl Variant {
    pub fn parse(name: &str) -> Option<Variant> {
        Some(match name {
            "correct" => Variant::Correct,
            "forget-promise" => Variant::ForgetPromise,
            "ignore-accepted" => Variant::IgnoreAccepted,
            "reuse-ballot" => Variant::ReuseBallot,
            "learn-from-minority" => Variant::LearnFromMinority,
            "value-at-prepare" => Variant::ValueAtPrepare,
            _ => return None,
        })
    }
}

/// One proposer's input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProposerConfig {
    /// The value it proposes.
    pub value: u64,
    /// The round of its first proposal number.
    pub round: u64,
    /// When it starts (its local clock).
    pub start_ms: f64,
}

impl Default for ProposerConfig {
    fn default() -> Self {
        ProposerConfig { value: 1, round: 1, start_ms: 0.0 }
    }
}

/// What every node shares.
#[derive(Clone, Debug)]
pub struct Shared {
    pub variant: Variant,
    pub proposers: Vec<ProposerConfig>,
    pub acceptors: usize,
    pub retry_timeout_ns: u64,
    pub backoff_ns: [u64; 2],
}

impl Shared {
    fn is_proposer(&self, node: NodeId) -> bool {
        node < self.proposers.len()
    }

    fn acceptor_ids(&self) -> std::ops::Range<NodeId> {
        self.proposers.len()..self.proposers.len() + self.acceptors
    }

    fn majority(&self) -> usize {
        self.acceptors / 2 + 1
    }
}

/// A node: a proposer (and learner) or an acceptor.
pub enum PaxosNode {
    Proposer(Proposer),
    Acceptor(Acceptor),
}

type PaxosCtx<'a> = Ctx<'a, Msg, PaxosObs>;

impl PaxosNode {
    pub fn new(id: NodeId, shared: &Rc<Shared>) -> PaxosNode {
        if shared.is_proposer(id) {
            PaxosNode::Proposer(Proposer::new(id, Rc::clone(shared)))
        } else {
            PaxosNode::Acceptor(Acceptor::new(Rc::clone(shared)))
        }
    }

    pub fn as_acceptor(&self) -> Option<&Acceptor> {
        match self {
            PaxosNode::Acceptor(acceptor) => Some(acceptor),
            PaxosNode::Proposer(_) => None,
        }
    }

    pub fn as_proposer(&self) -> Option<&Proposer> {
        match self {
            PaxosNode::Proposer(proposer) => Some(proposer),
            PaxosNode::Acceptor(_) => None,
        }
    }
}

impl Process for PaxosNode {
    type Msg = Msg;
    type Obs = PaxosObs;

    fn on_start(&mut self, ctx: &mut PaxosCtx<'_>) {
        match self {
            PaxosNode::Proposer(proposer) => proposer.on_start(ctx),
            PaxosNode::Acceptor(acceptor) => acceptor.on_start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut PaxosCtx<'_>, from: NodeId, msg: Msg) {
        match self {
            PaxosNode::Proposer(proposer) => proposer.on_message(ctx, from, msg),
            PaxosNode::Acceptor(acceptor) => acceptor.on_message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut PaxosCtx<'_>, _timer: TimerId, tag: u64) {
        if let PaxosNode::Proposer(proposer) = self {
            proposer.on_timer(ctx, tag);
        }
    }
}

const TIMER_ROUND: u64 = 1;
const KEY_ROUND: [&str; 2] = ["proposer/round/0", "proposer/round/1"];
const KEY_ACCEPTOR: [&str; 2] = ["acceptor/0", "acceptor/1"];

/// Where a proposer is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting to start a round (at the start, or backing off).
    Waiting,
    /// Phase 1 with `ballot`: the promises so far, by acceptor.
    Preparing { ballot: Ballot, promises: BTreeMap<NodeId, Option<Proposal>> },
    /// Phase 2 with this proposal.
    Accepting { proposal: Proposal },
}

/// A proposer, which is also a learner.
pub struct Proposer {
    shared: Rc<Shared>,
    index: usize,
    /// The highest round used, durable.
    round: u64,
    /// The highest round seen in any number (from Nacks): the next round goes above it.
    round_seen: u64,
    phase: Phase,
    timer: Option<TimerId>,
    /// The learner's tally: for each proposal, the acceptors that accepted it.
    tally: BTreeMap<Proposal, BTreeSet<NodeId>>,
    learned: Option<Proposal>,
    round_slots: SlotPair,
}

impl Proposer {
    fn new(id: NodeId, shared: Rc<Shared>) -> Proposer {
        Proposer {
            shared,
            index: id,
            round: 0,
            round_seen: 0,
            phase: Phase::Waiting,
            timer: None,
            tally: BTreeMap::new(),
            learned: None,
            round_slots: SlotPair::new(KEY_ROUND),
        }
    }

    fn config(&self) -> &ProposerConfig {
        &self.shared.proposers[self.index]
    }

    /// What it has learned, if anything.
    pub fn learned(&self) -> Option<Proposal> {
        self.learned
    }

    fn ballot(&self) -> Ballot {
        let proposer = if self.shared.variant == Variant::ReuseBallot { 0 } else { self.index as u64 + 1 };
        Ballot { round: self.round, proposer }
    }

    fn on_start(&mut self, ctx: &mut PaxosCtx<'_>) {
        self.round = self.round_slots.read(ctx.storage(), |r| r.u64()).unwrap_or(0);
        let start_ns = (self.config().start_ms * MS as f64) as u64;
        let wait_ns = start_ns.saturating_sub(ctx.now());
        self.timer = Some(ctx.set_timer(wait_ns, TIMER_ROUND));
    }

    fn on_timer(&mut self, ctx: &mut PaxosCtx<'_>, tag: u64) {
        debug_assert_eq!(tag, TIMER_ROUND);
        self.timer = None;
        if self.learned.is_none() {
            self.start_round(ctx);
        }
    }

    /// Phase 1: a new number above every one used or seen, made durable first.
    fn start_round(&mut self, ctx: &mut PaxosCtx<'_>) {
        self.round = (self.round.max(self.round_seen) + 1).max(self.config().round);
        self.round_slots.write(ctx.storage(), number(self.round));
        let ballot = self.ballot();
        let value = (self.shared.variant == Variant::ValueAtPrepare).then_some(self.config().value);
        for acceptor in self.shared.acceptor_ids() {
            ctx.send(acceptor, Msg::Prepare { ballot, value });
        }
        ctx.observe(PaxosObs::Prepared { ballot });
        self.phase = Phase::Preparing { ballot, promises: BTreeMap::new() };
        self.set_round_timer(ctx, self.shared.retry_timeout_ns);
    }

    fn set_round_timer(&mut self, ctx: &mut PaxosCtx<'_>, after_ns: u64) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_timer(timer);
        }
        self.timer = Some(ctx.set_timer(after_ns, TIMER_ROUND));
    }

    fn on_message(&mut self, ctx: &mut PaxosCtx<'_>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Promise { ballot, accepted } => self.on_promise(ctx, from, ballot, accepted),
            Msg::Nack { ballot, promised } => self.on_nack(ctx, ballot, promised),
            Msg::Accepted { proposal } => self.on_accepted(ctx, from, proposal),
            // Acceptors' messages only.
            Msg::Prepare { .. } | Msg::Accept { .. } => {}
        }
    }

    fn current_ballot(&self) -> Option<Ballot> {
        match &self.phase {
            Phase::Preparing { ballot, .. } => Some(*ballot),
            Phase::Accepting { proposal } => Some(proposal.ballot),
            Phase::Waiting => None,
        }
    }

    fn on_promise(&mut self, ctx: &mut PaxosCtx<'_>, from: NodeId, ballot: Ballot, accepted: Option<Proposal>) {
        let majority = self.shared.majority();
        let Phase::Preparing { ballot: current, promises } = &mut self.phase else {
            return; // Not in phase 1: a late or duplicated promise.
        };
        if *current != ballot || self.learned.is_some() {
            return; // A promise for an older round.
        }
        promises.insert(from, accepted);
        if promises.len() < majority {
            return;
        }
        // The value of the highest-numbered proposal reported, else our own.
        let reported = promises.values().flatten().max_by_key(|p| p.ballot).map(|p| p.value);
        let value = match reported {
            Some(value) if self.shared.variant != Variant::IgnoreAccepted => value,
            _ => self.config().value,
        };
        let proposal = Proposal { ballot, value };
        for acceptor in self.shared.acceptor_ids() {
            ctx.send(acceptor, Msg::Accept { proposal });
        }
        ctx.observe(PaxosObs::Proposed { proposal });
        self.phase = Phase::Accepting { proposal };
    }

    /// Refused or pre-empted: give the round up and start another after a back-off.
    fn on_nack(&mut self, ctx: &mut PaxosCtx<'_>, ballot: Ballot, promised: Ballot) {
        self.round_seen = self.round_seen.max(promised.round);
        if self.current_ballot() != Some(ballot) || self.learned.is_some() {
            return; // About a round already given up.
        }
        self.phase = Phase::Waiting;
        let [low, high] = self.shared.backoff_ns;
        let backoff_ns = if high > low { ctx.rng().random_range(low..=high) } else { low };
        if backoff_ns == 0 {
            self.start_round(ctx); // At once, not behind what is already due now.
        } else {
            self.set_round_timer(ctx, backoff_ns);
        }
    }

    /// The learner's part: a majority of acceptors accepted one proposal.
    fn on_accepted(&mut self, ctx: &mut PaxosCtx<'_>, from: NodeId, proposal: Proposal) {
        self.round_seen = self.round_seen.max(proposal.ballot.round);
        if self.learned.is_some() {
            return;
        }
        let acceptors = self.tally.entry(proposal).or_default();
        acceptors.insert(from);
        let needed = match self.shared.variant {
            Variant::LearnFromMinority => self.shared.acceptors / 2,
            _ => self.shared.majority(),
        };
        if acceptors.len() >= needed.max(1) {
            self.learned = Some(proposal);
            self.phase = Phase::Waiting;
            if let Some(timer) = self.timer.take() {
                ctx.cancel_timer(timer);
            }
            ctx.observe(PaxosObs::Learned { proposal });
        }
    }
}

/// An acceptor: its promise and accepted proposal, durable.
pub struct Acceptor {
    shared: Rc<Shared>,
    promised: Ballot,
    accepted: Option<Proposal>,
    /// Who holds the current promise, so it can be told when a higher number takes it.
    promised_to: Option<NodeId>,
    /// The version of the last record written (records are ordered by it).
    version: u64,
    slots: SlotPair,
}

impl Acceptor {
    fn new(shared: Rc<Shared>) -> Acceptor {
        Acceptor {
            shared,
            promised: Ballot::ZERO,
            accepted: None,
            promised_to: None,
            version: 0,
            slots: SlotPair::new(KEY_ACCEPTOR),
        }
    }

    /// The promise and the accepted proposal (for the judge and tests).
    pub fn state(&self) -> (Ballot, Option<Proposal>) {
        (self.promised, self.accepted)
    }

    fn on_start(&mut self, ctx: &mut PaxosCtx<'_>) {
        if let Some((version, promised, accepted)) = self.slots.read(ctx.storage(), decode_acceptor) {
            (self.version, self.promised, self.accepted) = (version, promised, accepted);
        }
    }

    /// Writes the promise and accepted proposal and syncs, before any answer.
    fn persist(&mut self, ctx: &mut PaxosCtx<'_>) {
        if self.shared.variant == Variant::ForgetPromise {
            return;
        }
        self.version += 1;
        let mut record = Writer::default();
        record.u64(self.version);
        encode_ballot(&mut record, self.promised);
        match self.accepted {
            Some(p) => {
                record.u8(1);
                encode_ballot(&mut record, p.ballot);
                record.u64(p.value);
            }
            None => record.u8(0),
        }
        self.slots.write(ctx.storage(), record);
    }

    fn on_message(&mut self, ctx: &mut PaxosCtx<'_>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Prepare { ballot, value } => self.on_prepare(ctx, from, ballot, value),
            Msg::Accept { proposal } => self.on_accept(ctx, from, proposal),
            // Proposers' messages only.
            Msg::Promise { .. } | Msg::Accepted { .. } | Msg::Nack { .. } => {}
        }
    }

    fn on_prepare(&mut self, ctx: &mut PaxosCtx<'_>, from: NodeId, ballot: Ballot, value: Option<u64>) {
        if ballot < self.promised {
            ctx.send(from, Msg::Nack { ballot, promised: self.promised });
            return;
        }
        // The answer reports what was accepted before this Prepare.
        let reported = self.accepted;
        if ballot > self.promised {
            let superseded = (self.promised, self.promised_to);
            self.promised = ballot;
            if let Some(value) = value
                && self.accepted.is_none_or(|p| p.ballot < ballot)
            {
                // Variant value-at-prepare: the Prepare's value recorded as a proposal.
                self.accepted = Some(Proposal { ballot, value });
            }
            self.persist(ctx);
            if let (old, Some(holder)) = superseded
                && holder != from
            {
                ctx.send(holder, Msg::Nack { ballot: old, promised: ballot });
            }
        }
        // Equal: a duplicated or retried Prepare, answered again with the same promise.
        self.promised_to = Some(from);
        ctx.observe(PaxosObs::Promised { ballot });
        ctx.send(from, Msg::Promise { ballot, accepted: reported });
    }

    fn on_accept(&mut self, ctx: &mut PaxosCtx<'_>, from: NodeId, proposal: Proposal) {
        if proposal.ballot < self.promised {
            ctx.send(from, Msg::Nack { ballot: proposal.ballot, promised: self.promised });
            return;
        }
        self.promised = proposal.ballot;
        self.accepted = Some(proposal);
        self.persist(ctx);
        ctx.observe(PaxosObs::Accepted { proposal });
        for learner in 0..self.shared.proposers.len() {
            ctx.send(learner, Msg::Accepted { proposal });
        }
    }
}

fn encode_ballot(record: &mut Writer, ballot: Ballot) {
    record.u64(ballot.round);
    record.u64(ballot.proposer);
}

fn decode_ballot(reader: &mut Reader<'_>) -> Option<Ballot> {
    Some(Ballot { round: reader.u64()?, proposer: reader.u64()? })
}

type AcceptorRecord = (u64, Ballot, Option<Proposal>);

fn decode_acceptor(reader: &mut Reader<'_>) -> Option<AcceptorRecord> {
    let version = reader.u64()?;
    let promised = decode_ballot(reader)?;
    let accepted = match reader.u8()? {
        0 => None,
        1 => Some(Proposal { ballot: decode_ballot(reader)?, value: reader.u64()? }),
        _ => return None,
    };
    Some((version, promised, accepted))
}
