//! `register`: the smallest protocol in dsim, kept as the worked example of adding one
//! (`docs/protocols.md` walks through it). It is real, only small.
//!
//! **The system.** One server holds a key-value store; clients (the shared KV client of
//! [`crate::kv_client`], with sessions, retries and timeouts) send it operations (get,
//! put, append, cas from the shared KV workload) one at a time. The store remembers each
//! session's last result, so a retried command is applied once. There is no
//! replication: a crashed server is unavailable until it restarts, so clients retry and
//! in the end record their operation as indeterminate (`info`).
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

use serde::Serialize;
use sim_core::{Ctx, MS, NodeId, Process, TimerId};

use crate::codec::{Reader, Writer};
use crate::kv::{ClientObs, KvCommand, KvOp, KvStore};
use crate::kv_client::{Answer, KvClient, KvClientSettings, KvTransport};

/// What every node shares.
#[derive(Clone, Debug)]
pub struct Shared {
    pub ack_before_sync: bool,
    pub sync_every_ms: f64,
    /// The clients' settings; its one server is the register's.
    pub clients: Rc<KvClientSettings>,
}

/// Messages between clients and the server.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum RegisterMsg {
    Request { client: u64, seq: u64, attempt: u64, op: KvOp },
    Reply { seq: u64, attempt: u64, answer: Answer },
}

/// How `register`'s messages carry the shared client's requests and replies.
pub struct RegisterTransport;

impl KvTransport for RegisterTransport {
    type Msg = RegisterMsg;
    type Obs = ClientObs;

    fn request(session: u64, seq: u64, attempt: u64, op: KvOp) -> RegisterMsg {
        RegisterMsg::Request { client: session, seq, attempt, op }
    }

    fn reply(msg: RegisterMsg) -> Option<(u64, u64, Answer)> {
        match msg {
            RegisterMsg::Reply { seq, attempt, answer } => Some((seq, attempt, answer)),
            RegisterMsg::Request { .. } => None,
        }
    }

    fn observation(obs: ClientObs) -> ClientObs {
        obs
    }
}

/// A node: the server or a client.
#[allow(clippy::large_enum_variant)] // One value per node.
pub enum RegisterNode {
    Server(Server),
    Client(KvClient<RegisterTransport>),
}

type RegisterCtx<'a> = Ctx<'a, RegisterMsg, ClientObs>;

/// The store is written alternately to two slots with a version number, so that a write
/// torn by a crash leaves the other slot whole (a real database's double-write buffer or
/// write-then-rename).
const STORE_SLOTS: [&str; 2] = ["store/0", "store/1"];
const TIMER_SYNC: u64 = 1;

impl RegisterNode {
    pub fn new(id: NodeId, shared: &Rc<Shared>) -> RegisterNode {
        if shared.clients.servers.contains(&id) {
            RegisterNode::Server(Server { shared: Rc::clone(shared), store: KvStore::default(), version: 0 })
        } else {
            RegisterNode::Client(KvClient::new(id, Rc::clone(&shared.clients)))
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
            (RegisterNode::Server(server), RegisterMsg::Request { client, seq, attempt, op }) => {
                server.on_request(ctx, from, KvCommand { client, seq, op }, attempt);
            }
            (RegisterNode::Client(client), msg) => client.on_message(ctx, from, msg),
            // A reply reaching the server is misrouted.
            (RegisterNode::Server(_), RegisterMsg::Reply { .. }) => {}
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

    fn on_request(&mut self, ctx: &mut RegisterCtx<'_>, from: NodeId, command: KvCommand, attempt: u64) {
        let retried = self.store.cached(command.client, command.seq).is_some();
        let Some(result) = self.store.apply(&command) else {
            return; // An older command of this session: its client has moved on.
        };
        if !retried && !matches!(command.op, KvOp::Get { .. }) {
            self.version += 1;
            let mut record = Writer::default();
            record.u64(self.version);
            self.store.encode(&mut record);
            ctx.storage().put(STORE_SLOTS[(self.version % 2) as usize], record.bytes);
            if !self.shared.ack_before_sync {
                ctx.storage().sync();
            }
        }
        // A retried command is answered from the session, already durable (or, with
        // ack-before-sync, as durable as its first answer claimed).
        let answer = Answer::Result(result);
        ctx.send(from, RegisterMsg::Reply { seq: command.seq, attempt, answer });
    }

    fn on_timer(&mut self, ctx: &mut RegisterCtx<'_>, tag: u64) {
        if tag == TIMER_SYNC {
            ctx.storage().sync();
            ctx.set_timer((self.shared.sync_every_ms * MS as f64) as u64, TIMER_SYNC);
        }
    }
}
