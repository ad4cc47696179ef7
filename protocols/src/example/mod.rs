//! `register`: the smallest protocol in dsim, kept as the worked example of adding one
//! (`docs/protocols.md` walks through it). It is real, only small.
//!
//! **The system.** One server holds a key-value store; clients send it operations (get,
//! put, append, cas from the shared KV workload) one at a time and wait for the answer.
//! There is no replication: a crashed server is unavailable until it restarts, so
//! clients time out and record their operation as indeterminate (`info`).
//!
//! **Durability.** The server writes the whole store to its durable storage and syncs it
//! before it answers an operation that changed it; a restarted server recovers the store
//! from the last synced copy. Every answer the clients saw therefore survives a crash,
//! and the client history is linearizable (the checker's `kv` model).
//!
//! **Known-bug variant** `ack-before-sync`: the server answers at once and syncs only
//! every `sync_every_ms` (the batched fsync of many databases). A crash in between loses
//! writes that clients were told had happened; a later read shows the older value, and
//! the linearizability check catches it.
//!
//! **Invariants.** Linearizability of the client history is the safety property; the
//! server's answer to a client is judged in the history, not by belief. Liveness: after
//! the heal every operation completes within the scenario's bound.

pub mod protocol;

pub use protocol::Register;

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::{Ctx, MS, NodeId, Process, TimerId};

use crate::codec::{Reader, Writer};
use crate::kv::{ClientObs, KvCommand, KvOp, KvResult, KvStore, KvWorkload};
use checker::history::EventType;

/// What every node shares.
#[derive(Clone, Debug)]
pub struct Shared {
    pub server: NodeId,
    pub nodes: usize,
    pub ack_before_sync: bool,
    pub sync_every_ms: f64,
    pub workload: KvWorkload,
    /// Clients start no operation after this local instant (ns), so the run can drain.
    pub clients_stop_ns: u64,
}

/// Messages between clients and the server.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RegisterMsg {
    Request { command: KvCommand },
    Reply { seq: u64, result: KvResult },
}

/// A node: the server or a client.
pub enum RegisterNode {
    Server(Server),
    Client(Client),
}

type RegisterCtx<'a> = Ctx<'a, RegisterMsg, ClientObs>;

/// The store is written alternately to two slots with a version number, so that a write
/// torn by a crash leaves the other slot whole (a real database's double-write buffer or
/// write-then-rename).
const STORE_SLOTS: [&str; 2] = ["store/0", "store/1"];
const TIMER_SYNC: u64 = 1;
const TIMER_NEXT_OP: u64 = 2;
const TIMER_GIVE_UP: u64 = 3;

impl RegisterNode {
    pub fn new(id: NodeId, shared: &Rc<Shared>) -> RegisterNode {
        if id == shared.server {
            RegisterNode::Server(Server { shared: Rc::clone(shared), store: KvStore::default(), version: 0 })
        } else {
            RegisterNode::Client(Client { id, shared: Rc::clone(shared), process: 0, seq: 0, in_flight: None })
        }
    }
}

impl Process for RegisterNode {
    type Msg = RegisterMsg;
    type Obs = ClientObs;

    fn on_start(&mut self, ctx: &mut RegisterCtx<'_>) {
        match self {
            RegisterNode::Server(server) => server.on_start(ctx),
            RegisterNode::Client(client) => client.on_start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut RegisterCtx<'_>, from: NodeId, msg: RegisterMsg) {
        match (self, msg) {
            (RegisterNode::Server(server), RegisterMsg::Request { command }) => server.on_request(ctx, from, command),
            (RegisterNode::Client(client), RegisterMsg::Reply { seq, result }) => client.on_reply(ctx, seq, result),
            // A reply reaching the server or a request reaching a client is misrouted.
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut RegisterCtx<'_>, timer: TimerId, tag: u64) {
        match self {
            RegisterNode::Server(server) => server.on_timer(ctx, tag),
            RegisterNode::Client(client) => client.on_timer(ctx, timer, tag),
        }
    }
}

/// The server: the store, recovered from storage at every start.
pub struct Server {
    shared: Rc<Shared>,
    store: KvStore,
    /// The version of the last store written; the next goes to slot `version + 1` mod 2.
    version: u64,
}

impl Server {
    fn on_start(&mut self, ctx: &mut RegisterCtx<'_>) {
        // The newest whole slot; none means nothing was synced yet: start empty.
        let newest = STORE_SLOTS
            .iter()
            .filter_map(|key| {
                let mut reader = Reader::new(ctx.storage().get(key)?);
                let version = reader.u64()?;
                let store = KvStore::decode(&mut reader)?;
                reader.is_done().then_some((version, store))
            })
            .max_by_key(|(version, _)| *version);
        (self.version, self.store) = newest.unwrap_or_default();
        if self.shared.ack_before_sync {
            ctx.set_timer((self.shared.sync_every_ms * MS as f64) as u64, TIMER_SYNC);
        }
    }

    fn on_request(&mut self, ctx: &mut RegisterCtx<'_>, from: NodeId, command: KvCommand) {
        let Some(result) = self.store.apply(&command) else {
            return; // An older command of this session: its client has moved on.
        };
        if !matches!(command.op, KvOp::Get { .. }) {
            self.version += 1;
            let mut record = Writer::default();
            record.u64(self.version);
            self.store.encode(&mut record);
            ctx.storage().put(STORE_SLOTS[(self.version % 2) as usize], record.bytes);
            if !self.shared.ack_before_sync {
                ctx.storage().sync();
            }
        }
        ctx.send(from, RegisterMsg::Reply { seq: command.seq, result });
    }

    fn on_timer(&mut self, ctx: &mut RegisterCtx<'_>, tag: u64) {
        if tag == TIMER_SYNC {
            ctx.storage().sync();
            ctx.set_timer((self.shared.sync_every_ms * MS as f64) as u64, TIMER_SYNC);
        }
    }
}

/// A client: one operation at a time, given up after the workload's `op_timeout_ms`.
pub struct Client {
    id: NodeId,
    shared: Rc<Shared>,
    /// The history process: a new one per incarnation, so that an operation cut off by
    /// a crash stays indeterminate.
    process: u64,
    seq: u64,
    in_flight: Option<(u64, KvOp, TimerId)>,
}

impl Client {
    fn on_start(&mut self, ctx: &mut RegisterCtx<'_>) {
        let incarnation = ctx.storage().get("incarnation").and_then(|b| Reader::new(b).u64()).unwrap_or(0);
        let mut record = Writer::default();
        record.u64(incarnation + 1);
        ctx.storage().put("incarnation", record.bytes);
        ctx.storage().sync();
        self.process = (self.id + self.shared.nodes * incarnation as usize) as u64;
        self.seq = 0;
        self.in_flight = None;
        self.schedule_next(ctx);
    }

    fn schedule_next(&mut self, ctx: &mut RegisterCtx<'_>) {
        let interval_ns = (1e9 / self.shared.workload.rate_per_client) as u64;
        ctx.set_timer(interval_ns, TIMER_NEXT_OP);
    }

    fn on_timer(&mut self, ctx: &mut RegisterCtx<'_>, timer: TimerId, tag: u64) {
        match tag {
            TIMER_NEXT_OP if self.in_flight.is_none() && ctx.now() < self.shared.clients_stop_ns => self.invoke(ctx),
            TIMER_GIVE_UP if self.in_flight.as_ref().is_some_and(|(_, _, t)| *t == timer) => {
                let (_, op, _) = self.in_flight.take().expect("checked");
                ctx.observe(ClientObs { process: self.process, kind: EventType::Info, op, value: None });
                self.schedule_next(ctx);
            }
            _ => {}
        }
    }

    fn invoke(&mut self, ctx: &mut RegisterCtx<'_>) {
        self.seq += 1;
        let tag = format!("{}.{}", self.process, self.seq);
        let op = self.shared.workload.next_op(ctx.rng(), &tag);
        ctx.observe(ClientObs { process: self.process, kind: EventType::Invoke, op: op.clone(), value: None });
        let command = KvCommand { client: self.process, seq: self.seq, op: op.clone() };
        ctx.send(self.shared.server, RegisterMsg::Request { command });
        let give_up = ctx.set_timer((self.shared.workload.op_timeout_ms * MS as f64) as u64, TIMER_GIVE_UP);
        self.in_flight = Some((self.seq, op, give_up));
    }

    fn on_reply(&mut self, ctx: &mut RegisterCtx<'_>, seq: u64, result: KvResult) {
        if self.in_flight.as_ref().is_none_or(|(s, _, _)| *s != seq) {
            return; // A late or duplicated reply to an operation already given up.
        }
        let (_, op, timer) = self.in_flight.take().expect("checked");
        ctx.cancel_timer(timer);
        let (kind, value) = match result {
            KvResult::Value(value) => (EventType::Ok, Some(value)),
            KvResult::Done => (EventType::Ok, None),
            KvResult::CasMismatch => (EventType::Fail, None),
        };
        ctx.observe(ClientObs { process: self.process, kind, op, value });
        self.schedule_next(ctx);
    }
}
