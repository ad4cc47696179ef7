//! `multipaxos`: a replicated key-value store on Multi-Paxos, with the same clients,
//! workload and history check as Raft, so the two compare directly.
//!
//! **The log.** Commands go into numbered slots, 1, 2, 3, ...; each slot is one instance
//! of single-decree Paxos (see [`crate::paxos`]), and every server is acceptor, learner
//! and replica at once. A replica applies the chosen commands in slot order to its
//! key-value store, with client sessions so that a retried command is applied once.
//!
//! **Leadership.** Running phase 1 for every command would double its cost, so one
//! server, the leader, runs phase 1 once for all slots from the first it has not seen
//! decided, with a ballot `round.server` above every one it has seen. A server becomes a
//! candidate when it hears from no leader for a random election timeout. An acceptor's
//! promise covers every slot; its `Promise` reports what it has accepted at or after the
//! slot asked for. With a majority of promises, the candidate is leader: for each slot
//! it re-proposes the value of the highest-ballot acceptance reported, fills the slots
//! that none reported, up to the highest reported one, with no-ops, and from then on runs
//! only phase 2 (`Accept`) per command, in the next free slot. A leader learns a slot is
//! chosen from a majority of `Accepted` and tells every replica with `Decide`. Any
//! message showing a higher ballot (a `Nack`, or a promise its own acceptor gives)
//! makes a leader or candidate step down.
//!
//! **Heartbeats, retransmission and catch-up.** The leader sends a heartbeat every
//! `heartbeat_ms` with its ballot and how far it has applied, and sends `Accept` again
//! for the slots still undecided (the oldest `catch_up_batch`) to the acceptors that have
//! not accepted them: a lost message must not leave a gap that blocks every later slot. A
//! replica answers a heartbeat with how far it has applied, and the leader sends the
//! decided commands it lacks, `catch_up_batch` at a time. A replica that missed a
//! `Decide`, or restarted, catches up this way.
//!
//! **Durability.** An acceptor's promise (two alternating slots) and each acceptance (a
//! record per log slot) are written and synced before it answers. The decided log and the
//! store are volatile: a restarted replica gets them again from the leader, and a new
//! leader's phase 1 recovers every chosen value from the acceptors' records.
//!
//! **A bounded log.** The log is not compacted: it is bounded by `max_slots`; past it the
//! leader takes no new command (the clients' operations time out, recorded as `info`).
//! Snapshots and log truncation, as Raft's section 7, are not built.
//!
//! **Clients and reads.** The shared KV client ([`crate::kv_client`]): a non-leader
//! answers with the leader it knows of. Reads go through the log like writes, so they
//! are linearizable; no lease reads.
//!
//! **Invariants**, judged after every event from observations in true global time: at
//! most one command chosen per slot, counting every majority of acceptances; replicas
//! apply only the chosen command at a slot (so never different ones); an acceptor's
//! promise never decreases, across restarts, and it never accepts below it; the client
//! history is linearizable (kv model). Liveness after the heal: a leader whose ballot is
//! at least every promise of the servers up, and every operation completes in bound.
//!
//! **Known-bug variants**: `skip-phase1-empty` (a new leader takes the slots after the
//! last one its own acceptor holds to be empty: it ignores what promises report there
//! and proposes new commands into slots where a value may already be chosen) and
//! `forget-promise` (acceptor state kept in memory only).

pub mod protocol;

pub use protocol::MultiPaxos;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::rc::Rc;

use rand::RngExt;
use serde::{Deserialize, Serialize};
use sim_core::{Ctx, MS, NodeId, Process, TimerId};

use crate::codec::{Reader, SlotPair, Writer};
use crate::kv::{ClientObs, KvCommand, KvOp, KvStore, KvWorkload};
use crate::kv_client::{Answer, KvClient, KvClientSettings};

/// A ballot: a round, then the server's id plus one, compared in that order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub round: u64,
    pub server: u64,
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.s{}", self.round, self.server.saturating_sub(1))
    }
}

/// A log slot's command.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Cmd {
    /// Fills a slot a new leader found no value for.
    Noop,
    Kv(KvCommand),
}

/// A command's identity: a client session's operation is unique by session and sequence
/// number (a retry carries the same operation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum CmdId {
    Noop,
    Op { client: u64, seq: u64 },
}

impl fmt::Display for CmdId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdId::Noop => write!(f, "no-op"),
            CmdId::Op { client, seq } => write!(f, "op {seq} of session {client}"),
        }
    }
}

impl Cmd {
    pub fn id(&self) -> CmdId {
        match self {
            Cmd::Noop => CmdId::Noop,
            Cmd::Kv(command) => CmdId::Op { client: command.client, seq: command.seq },
        }
    }
}

/// Acceptances reported in a promise: slot, ballot, command.
pub type Reported = Rc<Vec<(u64, Ballot, Rc<Cmd>)>>;

/// Messages between servers, and between clients and servers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Msg {
    Prepare {
        ballot: Ballot,
        from_slot: u64,
    },
    Promise {
        ballot: Ballot,
        accepted: Reported,
    },
    Accept {
        ballot: Ballot,
        slot: u64,
        cmd: Rc<Cmd>,
    },
    Accepted {
        ballot: Ballot,
        slot: u64,
    },
    /// `ballot` was refused: the acceptor has promised `promised`.
    Nack {
        ballot: Ballot,
        promised: Ballot,
    },
    /// Chosen commands, by slot.
    Decide {
        entries: Rc<Vec<(u64, Rc<Cmd>)>>,
    },
    Heartbeat {
        ballot: Ballot,
        applied_to: u64,
    },
    HeartbeatReply {
        ballot: Ballot,
        applied_to: u64,
    },
    Request {
        client: u64,
        seq: u64,
        attempt: u64,
        op: KvOp,
    },
    Reply {
        seq: u64,
        attempt: u64,
        answer: Answer,
    },
}

/// Facts nodes report, for the judge and the reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum MpObs {
    Client(ClientObs),
    BecameCandidate { ballot: Ballot },
    BecameLeader { ballot: Ballot },
    BecameFollower { ballot: Ballot },
    Promised { ballot: Ballot },
    Accepted { slot: u64, ballot: Ballot, cmd: CmdId },
    Applied { slot: u64, cmd: CmdId },
}

/// The known-bug variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Correct,
    SkipPhase1Empty,
    ForgetPromise,
}

impl Variant {
    pub fn parse(name: &str) -> Option<Variant> {
        Some(match name {
            "correct" => Variant::Correct,
            "skip-phase1-empty" => Variant::SkipPhase1Empty,
            "forget-promise" => Variant::ForgetPromise,
            _ => return None,
        })
    }
}

/// The algorithm's timing and bounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiPaxosConfig {
    pub election_timeout_ms: [f64; 2],
    pub heartbeat_ms: f64,
    /// Decided commands sent per heartbeat reply to a replica that lags.
    pub catch_up_batch: usize,
    /// The log's bound (no compaction).
    pub max_slots: u64,
    /// Client requests a candidate holds until it leads.
    pub queue_max: usize,
}

impl Default for MultiPaxosConfig {
    fn default() -> Self {
        MultiPaxosConfig {
            election_timeout_ms: [150.0, 300.0],
            heartbeat_ms: 50.0,
            catch_up_batch: 32,
            max_slots: 100_000,
            queue_max: 64,
        }
    }
}

/// What every node shares.
#[derive(Clone, Debug)]
pub struct Shared {
    pub servers: usize,
    pub variant: Variant,
    pub config: MultiPaxosConfig,
    pub clients: Rc<KvClientSettings>,
}

impl Shared {
    fn majority(&self) -> usize {
        self.servers / 2 + 1
    }
}

crate::kv_transport!(
    /// How Multi-Paxos's messages carry the shared client's requests and replies.
    MpTransport,
    Msg,
    MpObs,
    MpObs::Client
);

/// A node: a server or a client.
#[allow(clippy::large_enum_variant)] // One value per node.
pub enum MpNode {
    Server(Server),
    Client(KvClient<MpTransport>),
}

type MpCtx<'a> = Ctx<'a, Msg, MpObs>;

impl MpNode {
    pub fn new(id: NodeId, shared: &Rc<Shared>) -> MpNode {
        if id < shared.servers {
            MpNode::Server(Server::new(id, Rc::clone(shared)))
        } else {
            MpNode::Client(KvClient::new(id, Rc::clone(&shared.clients)))
        }
    }

    pub fn as_server(&self) -> Option<&Server> {
        match self {
            MpNode::Server(server) => Some(server),
            MpNode::Client(_) => None,
        }
    }
}

impl Process for MpNode {
    type Msg = Msg;
    type Obs = MpObs;

    fn on_start(&mut self, ctx: &mut MpCtx<'_>) {
        match self {
            MpNode::Server(server) => server.on_start(ctx),
            MpNode::Client(client) => client.on_start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut MpCtx<'_>, from: NodeId, msg: Msg) {
        match self {
            MpNode::Server(server) => server.on_message(ctx, from, msg),
            MpNode::Client(client) => client.on_message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut MpCtx<'_>, timer: TimerId, tag: u64) {
        match self {
            MpNode::Server(server) => server.on_timer(ctx, tag),
            MpNode::Client(client) => client.on_timer(ctx, timer, tag),
        }
    }
}

const TIMER_ELECTION: u64 = 1;
const TIMER_HEARTBEAT: u64 = 2;
const KEY_PROMISE: [&str; 2] = ["mp/promise/0", "mp/promise/1"];
const ACCEPTED_PREFIX: &str = "mp/accepted/";

/// Each acceptance has a record of its own, keyed by slot and ballot: a new one is never
/// written over the old, so a write torn by a crash cannot destroy an acceptance already
/// synced and answered for (dsim's fuzzing found exactly that with one key per slot).
fn accepted_key(slot: u64, ballot: Ballot) -> String {
    format!("{ACCEPTED_PREFIX}{slot:012}/{}.{}", ballot.round, ballot.server)
}

/// A client request a candidate holds until it leads.
#[derive(Clone, Debug)]
struct Request {
    from: NodeId,
    command: KvCommand,
    attempt: u64,
}

/// A server's part as proposer.
#[derive(Clone, Debug)]
enum Role {
    Follower,
    Candidate { ballot: Ballot, from_slot: u64, promises: BTreeMap<NodeId, Reported>, queue: Vec<Request> },
    Leader { ballot: Ballot, next_slot: u64, acks: BTreeMap<u64, (Rc<Cmd>, BTreeSet<NodeId>)> },
}

/// Who is leader, as a server's role says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleKind {
    Follower,
    Candidate,
    Leader,
}

/// A server: acceptor, learner, replica, and proposer when it leads.
pub struct Server {
    id: NodeId,
    shared: Rc<Shared>,
    // The acceptor, durable.
    promised: Ballot,
    accepted: BTreeMap<u64, (Ballot, Rc<Cmd>)>,
    promise_slots: SlotPair,
    promise_version: u64,
    // The learner and replica, volatile.
    decided: BTreeMap<u64, Rc<Cmd>>,
    applied_to: u64,
    store: KvStore,
    // The proposer.
    role: Role,
    round_seen: u64,
    leader: Option<NodeId>,
    election_timer: Option<TimerId>,
    heartbeat_timer: Option<TimerId>,
    /// Slots holding a client's command this leader proposed, with whom to answer.
    pending: BTreeMap<u64, (Request, CmdId)>,
}

impl Server {
    fn new(id: NodeId, shared: Rc<Shared>) -> Server {
        Server {
            id,
            shared,
            promised: Ballot::default(),
            accepted: BTreeMap::new(),
            promise_slots: SlotPair::new(KEY_PROMISE),
            promise_version: 0,
            decided: BTreeMap::new(),
            applied_to: 0,
            store: KvStore::default(),
            role: Role::Follower,
            round_seen: 0,
            leader: None,
            election_timer: None,
            heartbeat_timer: None,
            pending: BTreeMap::new(),
        }
    }

    pub fn role(&self) -> RoleKind {
        match self.role {
            Role::Follower => RoleKind::Follower,
            Role::Candidate { .. } => RoleKind::Candidate,
            Role::Leader { .. } => RoleKind::Leader,
        }
    }

    /// The ballot it leads or stands with, if any.
    pub fn ballot(&self) -> Option<Ballot> {
        match &self.role {
            Role::Follower => None,
            Role::Candidate { ballot, .. } | Role::Leader { ballot, .. } => Some(*ballot),
        }
    }

    pub fn promised(&self) -> Ballot {
        self.promised
    }

    pub fn applied_to(&self) -> u64 {
        self.applied_to
    }

    pub fn store(&self) -> &KvStore {
        &self.store
    }

    fn peers(&self) -> impl Iterator<Item = NodeId> + use<> {
        let id = self.id;
        (0..self.shared.servers).filter(move |&n| n != id)
    }

    fn on_start(&mut self, ctx: &mut MpCtx<'_>) {
        let storage = ctx.storage();
        if let Some((version, promised)) = self.promise_slots.read(storage, decode_promise) {
            (self.promise_version, self.promised) = (version, promised);
        }
        for (key, bytes) in storage.scan_prefix(ACCEPTED_PREFIX) {
            let slot = key[ACCEPTED_PREFIX.len()..].split('/').next().and_then(|s| s.parse::<u64>().ok());
            // A torn record was never answered for (it was not synced): it is skipped. Of
            // a slot's records, the highest ballot is the acceptance.
            if let (Some(slot), Some((ballot, cmd))) = (slot, decode_acceptance(bytes))
                && self.accepted.get(&slot).is_none_or(|(b, _)| *b < ballot)
            {
                self.accepted.insert(slot, (ballot, cmd));
            }
        }
        self.reset_election_timer(ctx);
    }

    fn on_timer(&mut self, ctx: &mut MpCtx<'_>, tag: u64) {
        match tag {
            TIMER_ELECTION => {
                self.election_timer = None;
                if !matches!(self.role, Role::Leader { .. }) {
                    self.start_phase1(ctx);
                }
            }
            TIMER_HEARTBEAT => {
                self.heartbeat_timer = None;
                self.send_heartbeats(ctx);
            }
            _ => {}
        }
    }

    fn on_message(&mut self, ctx: &mut MpCtx<'_>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Prepare { ballot, from_slot } => {
                let answer = match self.acceptor_prepare(ctx, ballot, from_slot) {
                    Ok(accepted) => {
                        self.leader = None;
                        self.reset_election_timer(ctx); // Give the candidate its time.
                        Msg::Promise { ballot, accepted }
                    }
                    Err(promised) => Msg::Nack { ballot, promised },
                };
                ctx.send(from, answer);
            }
            Msg::Promise { ballot, accepted } => self.on_promise(ctx, from, ballot, accepted),
            Msg::Accept { ballot, slot, cmd } => {
                let answer = match self.acceptor_accept(ctx, ballot, slot, cmd) {
                    Ok(()) => {
                        self.follow(ctx, from);
                        Msg::Accepted { ballot, slot }
                    }
                    Err(promised) => Msg::Nack { ballot, promised },
                };
                ctx.send(from, answer);
            }
            Msg::Accepted { ballot, slot } => self.on_accepted(ctx, from, ballot, slot),
            Msg::Nack { ballot, promised } => self.on_nack(ctx, ballot, promised),
            Msg::Decide { entries } => {
                for (slot, cmd) in entries.iter() {
                    self.learn(ctx, *slot, Rc::clone(cmd));
                }
            }
            Msg::Heartbeat { ballot, applied_to: _ } => self.on_heartbeat(ctx, from, ballot),
            Msg::HeartbeatReply { ballot, applied_to } => self.on_heartbeat_reply(ctx, from, ballot, applied_to),
            Msg::Request { client, seq, attempt, op } => {
                self.on_request(ctx, Request { from, command: KvCommand { client, seq, op }, attempt });
            }
            // A reply reaching a server is misrouted.
            Msg::Reply { .. } => {}
        }
    }

    fn reset_election_timer(&mut self, ctx: &mut MpCtx<'_>) {
        if let Some(timer) = self.election_timer.take() {
            ctx.cancel_timer(timer);
        }
        let [low, high] = self.shared.config.election_timeout_ms.map(|ms| (ms * MS as f64) as u64);
        let timeout_ns = if high > low { ctx.rng().random_range(low..=high) } else { low };
        self.election_timer = Some(ctx.set_timer(timeout_ns, TIMER_ELECTION));
    }

    /// A server that hears from a current leader follows it.
    fn follow(&mut self, ctx: &mut MpCtx<'_>, leader: NodeId) {
        if leader != self.id {
            self.leader = Some(leader);
            self.reset_election_timer(ctx);
        }
    }

    fn step_down(&mut self, ctx: &mut MpCtx<'_>, seen: Ballot) {
        self.round_seen = self.round_seen.max(seen.round);
        if matches!(self.role, Role::Follower) {
            return;
        }
        self.role = Role::Follower;
        self.pending.clear();
        if let Some(timer) = self.heartbeat_timer.take() {
            ctx.cancel_timer(timer);
        }
        ctx.observe(MpObs::BecameFollower { ballot: seen });
        self.reset_election_timer(ctx);
    }

    /// A higher ballot seen by this server's acceptor ends its own leadership or candidacy.
    fn on_higher_ballot(&mut self, ctx: &mut MpCtx<'_>, ballot: Ballot) {
        if self.ballot().is_some_and(|own| own < ballot) {
            self.step_down(ctx, ballot);
        }
        self.round_seen = self.round_seen.max(ballot.round);
    }

    // ---- Acceptor ----

    fn persist_promise(&mut self, ctx: &mut MpCtx<'_>) {
        if self.shared.variant == Variant::ForgetPromise {
            return;
        }
        self.promise_version += 1;
        let mut record = Writer::default();
        record.u64(self.promise_version);
        record.u64(self.promised.round);
        record.u64(self.promised.server);
        self.promise_slots.write(ctx.storage(), record); // Synced.
    }

    /// Raises the promise to `ballot` if it is higher; refuses a lower one.
    fn promise(&mut self, ctx: &mut MpCtx<'_>, ballot: Ballot) -> Result<bool, Ballot> {
        if ballot < self.promised {
            return Err(self.promised);
        }
        if ballot == self.promised {
            return Ok(false);
        }
        self.promised = ballot;
        self.on_higher_ballot(ctx, ballot);
        Ok(true)
    }

    fn acceptor_prepare(&mut self, ctx: &mut MpCtx<'_>, ballot: Ballot, from_slot: u64) -> Result<Reported, Ballot> {
        if self.promise(ctx, ballot)? {
            self.persist_promise(ctx);
        }
        ctx.observe(MpObs::Promised { ballot });
        let reported = self.accepted.range(from_slot..).map(|(slot, (b, cmd))| (*slot, *b, Rc::clone(cmd))).collect();
        Ok(Rc::new(reported))
    }

    fn acceptor_accept(&mut self, ctx: &mut MpCtx<'_>, ballot: Ballot, slot: u64, cmd: Rc<Cmd>) -> Result<(), Ballot> {
        let raised = self.promise(ctx, ballot)?;
        let durable = self.shared.variant != Variant::ForgetPromise;
        let previous = self.accepted.get(&slot).map(|(b, _)| *b);
        let fresh = previous != Some(ballot); // One command per slot and ballot.
        if fresh && durable {
            let mut record = Writer::default();
            record.u64(ballot.round);
            record.u64(ballot.server);
            encode_cmd(&mut record, &cmd);
            ctx.storage().put(accepted_key(slot, ballot), record.bytes);
        }
        if raised {
            self.persist_promise(ctx); // Syncs the acceptance too.
        } else if fresh && durable {
            ctx.storage().sync();
        }
        if let Some(old) = previous.filter(|old| fresh && durable && *old != ballot) {
            // Synced above, so the older record can go (if this delete is lost, recovery
            // still takes the higher ballot).
            ctx.storage().delete(&accepted_key(slot, old));
        }
        ctx.observe(MpObs::Accepted { slot, ballot, cmd: cmd.id() });
        self.accepted.insert(slot, (ballot, cmd));
        Ok(())
    }

    // ---- Proposer ----

    /// Becomes a candidate: phase 1 for every slot from the first not applied.
    fn start_phase1(&mut self, ctx: &mut MpCtx<'_>) {
        let round = self.promised.round.max(self.round_seen) + 1;
        let ballot = Ballot { round, server: self.id as u64 + 1 };
        let from_slot = self.applied_to + 1;
        let queue = match std::mem::replace(&mut self.role, Role::Follower) {
            Role::Candidate { queue, .. } => queue,
            _ => Vec::new(),
        };
        self.role = Role::Candidate { ballot, from_slot, promises: BTreeMap::new(), queue };
        self.leader = None;
        ctx.observe(MpObs::BecameCandidate { ballot });
        self.reset_election_timer(ctx); // Try again if no majority answers.
        // Its own promise first, synced: after a crash it never reuses this ballot.
        let own = self.acceptor_prepare(ctx, ballot, from_slot).expect("a ballot above its own promise");
        for peer in self.peers() {
            ctx.send(peer, Msg::Prepare { ballot, from_slot });
        }
        self.on_promise(ctx, self.id, ballot, own);
    }

    fn on_promise(&mut self, ctx: &mut MpCtx<'_>, from: NodeId, ballot: Ballot, accepted: Reported) {
        let majority = self.shared.majority();
        let Role::Candidate { ballot: current, promises, .. } = &mut self.role else {
            return; // Not a candidate (any more).
        };
        if *current != ballot {
            return; // A promise for an earlier candidacy.
        }
        promises.insert(from, accepted);
        if promises.len() >= majority {
            self.become_leader(ctx);
        }
    }

    fn become_leader(&mut self, ctx: &mut MpCtx<'_>) {
        let Role::Candidate { ballot, from_slot, promises, queue } = std::mem::replace(&mut self.role, Role::Follower)
        else {
            unreachable!("only a candidate becomes leader");
        };
        // The highest-ballot acceptance reported for each slot.
        let mut merged: BTreeMap<u64, (Ballot, Rc<Cmd>)> = BTreeMap::new();
        for (slot, b, cmd) in promises.values().flat_map(|r| r.iter()) {
            if merged.get(slot).is_none_or(|(seen, _)| seen < b) {
                merged.insert(*slot, (*b, Rc::clone(cmd)));
            }
        }
        if self.shared.variant == Variant::SkipPhase1Empty {
            // The bug: slots after the last one its own acceptor holds are taken as empty.
            let own_last = self.accepted.keys().next_back().copied().unwrap_or(0).max(self.applied_to);
            merged.retain(|slot, _| *slot <= own_last);
        }
        let last = merged.keys().next_back().copied().unwrap_or(0).max(from_slot - 1);
        self.role = Role::Leader { ballot, next_slot: last + 1, acks: BTreeMap::new() };
        self.leader = Some(self.id);
        if let Some(timer) = self.election_timer.take() {
            ctx.cancel_timer(timer);
        }
        ctx.observe(MpObs::BecameLeader { ballot });
        for slot in from_slot..=last {
            let cmd = merged.remove(&slot).map_or_else(|| Rc::new(Cmd::Noop), |(_, cmd)| cmd);
            self.propose(ctx, slot, cmd);
        }
        self.send_heartbeats(ctx);
        for request in queue {
            self.on_request(ctx, request);
        }
    }

    /// Phase 2 for one slot.
    fn propose(&mut self, ctx: &mut MpCtx<'_>, slot: u64, cmd: Rc<Cmd>) {
        let Role::Leader { ballot, acks, .. } = &mut self.role else {
            return;
        };
        let ballot = *ballot;
        acks.insert(slot, (Rc::clone(&cmd), BTreeSet::new()));
        if let Err(promised) = self.acceptor_accept(ctx, ballot, slot, Rc::clone(&cmd)) {
            self.step_down(ctx, promised); // Its own acceptor has promised a higher ballot.
            return;
        }
        for peer in self.peers() {
            ctx.send(peer, Msg::Accept { ballot, slot, cmd: Rc::clone(&cmd) });
        }
        self.on_accepted(ctx, self.id, ballot, slot);
    }

    fn on_accepted(&mut self, ctx: &mut MpCtx<'_>, from: NodeId, ballot: Ballot, slot: u64) {
        let majority = self.shared.majority();
        let Role::Leader { ballot: current, acks, .. } = &mut self.role else {
            return;
        };
        if *current != ballot {
            return;
        }
        let Some((cmd, acceptors)) = acks.get_mut(&slot) else {
            return; // Decided already.
        };
        acceptors.insert(from);
        if acceptors.len() < majority {
            return;
        }
        let cmd = Rc::clone(cmd);
        acks.remove(&slot);
        let entries = Rc::new(vec![(slot, Rc::clone(&cmd))]);
        for peer in self.peers() {
            ctx.send(peer, Msg::Decide { entries: Rc::clone(&entries) });
        }
        self.learn(ctx, slot, cmd);
    }

    fn on_nack(&mut self, ctx: &mut MpCtx<'_>, ballot: Ballot, promised: Ballot) {
        if self.ballot() == Some(ballot) && promised > ballot {
            self.step_down(ctx, promised);
        } else {
            self.round_seen = self.round_seen.max(promised.round);
        }
    }

    /// Heartbeats, and phase 2 again for the slots still undecided: an `Accept` or
    /// `Accepted` lost on the way would otherwise leave a gap that blocks every later slot.
    fn send_heartbeats(&mut self, ctx: &mut MpCtx<'_>) {
        let Role::Leader { ballot, acks, .. } = &self.role else {
            return;
        };
        let ballot = *ballot;
        for peer in self.peers() {
            ctx.send(peer, Msg::Heartbeat { ballot, applied_to: self.applied_to });
        }
        let batch = self.shared.config.catch_up_batch;
        for (slot, (cmd, acceptors)) in acks.iter().take(batch) {
            for peer in self.peers().filter(|p| !acceptors.contains(p)) {
                ctx.send(peer, Msg::Accept { ballot, slot: *slot, cmd: Rc::clone(cmd) });
            }
        }
        let every_ns = (self.shared.config.heartbeat_ms * MS as f64) as u64;
        self.heartbeat_timer = Some(ctx.set_timer(every_ns, TIMER_HEARTBEAT));
    }

    fn on_heartbeat(&mut self, ctx: &mut MpCtx<'_>, from: NodeId, ballot: Ballot) {
        if ballot < self.promised {
            ctx.send(from, Msg::Nack { ballot, promised: self.promised });
            return;
        }
        self.on_higher_ballot(ctx, ballot);
        self.follow(ctx, from);
        ctx.send(from, Msg::HeartbeatReply { ballot, applied_to: self.applied_to });
    }

    /// Sends a lagging replica the decided commands it lacks.
    fn on_heartbeat_reply(&mut self, ctx: &mut MpCtx<'_>, from: NodeId, ballot: Ballot, applied_to: u64) {
        if self.ballot() != Some(ballot) || !matches!(self.role, Role::Leader { .. }) || applied_to >= self.applied_to {
            return;
        }
        let batch = self.shared.config.catch_up_batch as u64;
        let entries: Vec<(u64, Rc<Cmd>)> = self
            .decided
            .range(applied_to + 1..=self.applied_to.min(applied_to + batch))
            .map(|(slot, cmd)| (*slot, Rc::clone(cmd)))
            .collect();
        ctx.send(from, Msg::Decide { entries: Rc::new(entries) });
    }

    fn on_request(&mut self, ctx: &mut MpCtx<'_>, request: Request) {
        match &mut self.role {
            Role::Follower => {
                let answer = Answer::NotLeader { hint: self.leader };
                ctx.send(request.from, Msg::Reply { seq: request.command.seq, attempt: request.attempt, answer });
            }
            Role::Candidate { queue, .. } => {
                if queue.len() < self.shared.config.queue_max {
                    queue.push(request);
                }
            }
            Role::Leader { .. } => self.lead_request(ctx, request),
        }
    }

    fn lead_request(&mut self, ctx: &mut MpCtx<'_>, request: Request) {
        let command = &request.command;
        if let Some(result) = self.store.cached(command.client, command.seq) {
            let answer = Answer::Result(result.clone());
            ctx.send(request.from, Msg::Reply { seq: command.seq, attempt: request.attempt, answer });
            return;
        }
        let id = CmdId::Op { client: command.client, seq: command.seq };
        if let Some((pending, _)) = self.pending.values_mut().find(|(_, pending_id)| *pending_id == id) {
            *pending = request; // A retry of a command in flight: answer this attempt.
            return;
        }
        let Role::Leader { next_slot, .. } = &mut self.role else {
            return;
        };
        if *next_slot > self.shared.config.max_slots {
            return; // The log is full; the client's operation times out.
        }
        let slot = *next_slot;
        *next_slot += 1;
        let cmd = Rc::new(Cmd::Kv(request.command.clone()));
        self.pending.insert(slot, (request, id));
        self.propose(ctx, slot, cmd);
    }

    // ---- Learner and replica ----

    fn learn(&mut self, ctx: &mut MpCtx<'_>, slot: u64, cmd: Rc<Cmd>) {
        if slot <= self.applied_to {
            return;
        }
        self.decided.entry(slot).or_insert(cmd);
        while let Some(cmd) = self.decided.get(&(self.applied_to + 1)).cloned() {
            self.applied_to += 1;
            self.apply(ctx, self.applied_to, &cmd);
        }
    }

    fn apply(&mut self, ctx: &mut MpCtx<'_>, slot: u64, cmd: &Cmd) {
        let result = match cmd {
            Cmd::Noop => None,
            Cmd::Kv(command) => self.store.apply(command),
        };
        ctx.observe(MpObs::Applied { slot, cmd: cmd.id() });
        if let Some((request, id)) = self.pending.remove(&slot)
            && id == cmd.id()
            && let Some(result) = result
        {
            let answer = Answer::Result(result);
            ctx.send(request.from, Msg::Reply { seq: request.command.seq, attempt: request.attempt, answer });
        }
    }
}

fn encode_cmd(record: &mut Writer, cmd: &Cmd) {
    match cmd {
        Cmd::Noop => record.u8(0),
        Cmd::Kv(command) => {
            record.u8(1);
            command.encode(record);
        }
    }
}

fn decode_promise(reader: &mut Reader<'_>) -> Option<(u64, Ballot)> {
    Some((reader.u64()?, Ballot { round: reader.u64()?, server: reader.u64()? }))
}

fn decode_acceptance(bytes: &[u8]) -> Option<(Ballot, Rc<Cmd>)> {
    let mut reader = Reader::new(bytes);
    let ballot = Ballot { round: reader.u64()?, server: reader.u64()? };
    let cmd = match reader.u8()? {
        0 => Cmd::Noop,
        1 => Cmd::Kv(KvCommand::decode(&mut reader)?),
        _ => return None,
    };
    reader.is_done().then(|| (ballot, Rc::new(cmd)))
}

/// The workload's clients for a cluster of `servers`.
pub fn client_settings(
    servers: usize,
    clients: usize,
    workload: &KvWorkload,
    clients_stop_ns: u64,
    writes_until_ns: u64,
) -> KvClientSettings {
    KvClientSettings {
        servers: (0..servers).collect(),
        first_client: servers,
        clients,
        workload: workload.clone(),
        clients_stop_ns,
        writes_until_ns,
    }
}
