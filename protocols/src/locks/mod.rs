//! Distributed locks on a Redis-like server: `SET NX PX`, the single-instance lock, and
//! fencing tokens checked by the resource the lock protects; RedLock over N instances.
//!
//! **The server** keeps keys in memory with a per-key expiry measured on its own local
//! clock, so clock drift and jumps change when keys expire, as they do in the real world.
//! `SET key value NX PX ttl` sets a key only if it is absent, with an expiry; `DEL` removes
//! a key; `INCR` increments an integer; the usual release script is a compare-and-delete
//! (delete only if the value is the caller's token). Persistence is a setting: none (a
//! restart comes back empty) or synced on every write (a restart keeps keys and their
//! expiry instants).
//!
//! **The single-instance lock client** acquires with `SET lock <random token> NX PX ttl`,
//! retrying after a short random delay while the key is taken, and releases with the
//! compare-and-delete. Its validity is the ttl counted from when it sent the request, less
//! a clock-drift allowance (1% of the ttl plus 2 ms); a grant that arrives after that is
//! given back. Its critical section reads a counter from a protected storage node, works
//! for a while, and writes the counter back incremented; before the read and before the
//! write it checks its validity on its own clock, and gives the critical section up when
//! it is over.
//!
//! **What faults do.** No check closes the gap between the check and the write's arrival:
//! a write held in the network (or a GC pause right after the check) lands after the key
//! expired and another client acquired; the stale write overwrites the newer holder's (a
//! lost update). With **fencing**, the lock service
//! hands out an increasing number with every acquisition (an `INCR` run atomically with the
//! `SET`, as a script would, so the numbers follow the order of the grants), requests to the storage
//! carry it, and the storage rejects any number lower than the highest it has seen, so the
//! stale write is refused.
//!
//! **Oracles** ([`oracle`]), judged in true global time: *mutual exclusion* (a client read
//! or wrote the resource when it no longer really held the lock, by the servers' keys and
//! clocks; or two clients believe they hold the lock at one instant) and *unsafe access*
//! (the storage accepted an access of an older lock generation after one of a newer
//! generation, generations numbered in the order the lock was really granted).
//!
//! **RedLock** takes the local time, tries `SET NX PX` with the same key and token on every
//! one of N independent servers in turn, each with a small timeout, and holds the lock
//! only if a majority said yes and less than the ttl has passed; its validity is the ttl
//! less the time spent and a clock-drift allowance (1% of the ttl plus 2 ms). Otherwise it
//! releases on every server and retries after a random delay. It has no fencing tokens by
//! design.
//!
//! **Variants**: `setnx-then-expire` (acquire as `SETNX` then `EXPIRE`: a crash between
//! leaves a key that never expires), `unsafe-release` (release with a plain `DEL`, deleting
//! a lock someone else now holds), `validity-from-reply` (the validity counted from the
//! grant's arrival: the acquisition's own time is forgotten), `fencing` (the fix).

pub mod client;
pub mod db;
pub mod oracle;
pub mod protocol;
pub mod redis;
pub mod storage;
pub mod zookeeper;

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::{Ctx, NodeId, Process, TimerId};

pub use client::LockClient;
pub use db::DbServer;
pub use oracle::LockOracle;
pub use redis::RedisServer;
pub use storage::ProtectedStorage;
pub use zookeeper::{ZkLockClient, ZkTree};

use crate::raft::{Msg as RaftMsg, RaftObs, Server as RaftServer};

/// A known-bug variant, the correct client, or the fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockVariant {
    Correct,
    SetnxThenExpire,
    UnsafeRelease,
    Fencing,
    /// The client counts its validity from when the grant reached it, not from when it
    /// asked: the time the request and the reply spent is forgotten.
    ValidityFromReply,
    /// ZooKeeper: every waiter watches the lock node's children.
    Herd,
    /// ZooKeeper: node names carry no guid, so a lost create reply leaves an orphan.
    NoGuid,
}

/// What every node of a lock cluster shares.
#[derive(Clone, Debug)]
pub struct LockSettings {
    /// The Redis-like servers: one for the single-instance lock, N for RedLock.
    pub servers: Vec<NodeId>,
    /// Use RedLock over `servers` (a majority of independent instances).
    pub redlock: bool,
    /// RedLock's per-instance timeout while acquiring, small next to the ttl.
    pub redlock_request_timeout_ms: u64,
    /// The protected storage node.
    pub storage: NodeId,
    pub variant: LockVariant,
    /// Persist every write (synced), or come back empty after a restart.
    pub persistent: bool,
    /// Servers that keep their keys in memory only, whatever `persistent` says.
    pub volatile_servers: Vec<NodeId>,
    pub ttl_ms: u64,
    /// Wait before retrying a taken lock, drawn uniformly.
    pub retry_ms: [u64; 2],
    /// Time spent inside the critical section, drawn uniformly.
    pub work_ms: [u64; 2],
    /// A request without an answer is abandoned after this long.
    pub request_timeout_ms: u64,
    /// The database lock: the database's options and the client's.
    pub db: Option<DbSettings>,
    /// The ZooKeeper lock: the servers replicate the coordination service.
    pub zk: Option<zookeeper::ZkSettings>,
}

/// The database lock's settings, as the nodes see them.
#[derive(Clone, Debug)]
pub struct DbSettings {
    pub database: db::DbOptions,
    /// The critical section takes the lock again (a nested call) before it works.
    pub nested_acquire: bool,
    /// How many times the nested call tries before it gives up.
    pub nested_attempts: u64,
}

/// A Redis reply (the database lock's answers use it too).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RedisReply {
    Ok,
    Nil,
    Int(i64),
    Bulk(String),
}

/// What the storage answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum StorageReply {
    Value(u64),
    Written,
    /// A fencing token below the highest seen.
    Rejected {
        highest: u64,
    },
}

/// Messages of the lock protocols.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum LockMsg {
    SetNxPx {
        req: u64,
        key: String,
        value: String,
        ttl_ms: u64,
    },
    /// `SET key value NX PX ttl` and, if it took, `INCR fence_key`, atomically (a script):
    /// the fencing number is handed out with the grant, in grant order.
    SetNxPxFence {
        req: u64,
        key: String,
        value: String,
        ttl_ms: u64,
        fence_key: String,
    },
    SetNx {
        req: u64,
        key: String,
        value: String,
    },
    Expire {
        req: u64,
        key: String,
        ttl_ms: u64,
    },
    DelIfEquals {
        req: u64,
        key: String,
        value: String,
    },
    Del {
        req: u64,
        key: String,
    },
    Incr {
        req: u64,
        key: String,
    },
    Get {
        req: u64,
        key: String,
    },
    /// `INSERT INTO locks (name, owner, ...) VALUES (key, owner, ...)`: a duplicate key
    /// fails at once; the reply is the row's version.
    Insert {
        req: u64,
        key: String,
        owner: String,
    },
    /// `DELETE FROM locks WHERE name = key AND owner = owner` (or count down).
    DeleteOwned {
        req: u64,
        key: String,
        owner: String,
    },
    Reply {
        req: u64,
        reply: RedisReply,
    },
    /// `holder` is the lock token the client acquired with; `fence` its fencing number.
    Read {
        req: u64,
        holder: String,
        fence: Option<u64>,
    },
    Write {
        req: u64,
        holder: String,
        fence: Option<u64>,
        value: u64,
    },
    StorageAnswer {
        req: u64,
        reply: StorageReply,
    },
    /// The coordination service: Raft's messages and the clients' requests and answers.
    Zk(RaftMsg<ZkTree>),
    /// Watch events the leader pushes to a session's client.
    ZkEvents {
        session: u64,
        events: Vec<zookeeper::tree::WatchEvent>,
    },
}

/// What lock nodes report.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum LockObs {
    /// A client began trying to acquire the lock (the first attempt of a cycle).
    Acquiring,
    /// The server set the lock key to `value` (a grant, in true order).
    Granted { key: String, value: String },
    /// A client believes it holds the lock until its clock reads `valid_until_local_ns`;
    /// it had been trying since `waited_ns` ago (local time), over `attempts` attempts.
    Acquired { token: String, valid_until_local_ns: u64, fence: Option<u64>, waited_ns: u64, attempts: u64 },
    /// A client gave the lock up (it sent its release).
    Released { token: String },
    /// The storage accepted a read or write from the holder of `holder`.
    Accepted { holder: String, write: bool, value: u64 },
    /// The storage refused a stale fencing number.
    Refused { holder: String, fence: u64, highest: u64 },
    /// A client completed a critical section (its write was accepted).
    CriticalSectionDone { token: String },
    /// A client (re)started: whatever its earlier incarnation believed is gone.
    ClientStarted,
    /// The database refused an insert: the lock row exists (a failed poll).
    InsertRefused,
    /// The database's sweeper deleted an expired row of `owner`.
    Swept { owner: String },
    /// A holder took the lock again in a nested call.
    Reentered { token: String },
    /// A holder's nested call failed against its own row and gave up.
    ReentryFailed { token: String },
    /// A coordination server's Raft event.
    Raft(RaftObs),
    /// The lock generation of `token`, when the client knows it (the ZooKeeper lock: its
    /// node's zxid, the order in which the service really granted the lock).
    Generation { token: String, generation: u64 },
    /// A waiter was woken by a watch event (`by_release`: the change was a deletion).
    Woken { by_release: bool, zxid: u64 },
    /// A holder learned that it lost the lock without releasing it (the ZooKeeper lock:
    /// its session expired), or found its validity over before it used the resource (the
    /// Redis and database locks check before every read and write): it stops.
    Abandoned { token: String },
    /// A lock server's lock key (the database's lock row) as it is now: who holds it and
    /// until when on the server's own clock (none: until deleted). Said at every change
    /// and at every start (what survived the restart), so the judge knows in true time
    /// who really holds the lock, and when a majority of RedLock's instances granted it.
    KeyState { holder: Option<String>, expires_local_ns: Option<u64> },
    /// A client used the resource as `token` (it sent a read or a write to the storage).
    Access { token: String, write: bool },
}

/// A node of a lock cluster.
#[allow(clippy::large_enum_variant)] // One value per node.
pub enum LockNode {
    Server(RedisServer),
    Database(DbServer),
    Storage(ProtectedStorage),
    Client(LockClient),
    ZkServer(RaftServer<ZkTree>),
    ZkClient(ZkLockClient),
}

impl LockNode {
    /// Node `id`: the server and the storage where the settings say, clients elsewhere.
    pub fn new(id: NodeId, settings: &Rc<LockSettings>) -> LockNode {
        let server = settings.servers.contains(&id);
        if let Some(zk) = settings.zk.as_ref() {
            if server {
                return LockNode::ZkServer(RaftServer::new(id, Rc::clone(&zk.raft)));
            }
            if id != settings.storage {
                return LockNode::ZkClient(ZkLockClient::new(Rc::clone(settings)));
            }
        }
        if let Some(db) = settings.db.as_ref().filter(|_| settings.servers.contains(&id)) {
            LockNode::Database(DbServer::new(db.database.clone()))
        } else if settings.servers.contains(&id) {
            LockNode::Server(RedisServer::new(settings.persistent && !settings.volatile_servers.contains(&id)))
        } else if id == settings.storage {
            LockNode::Storage(ProtectedStorage::default())
        } else {
            LockNode::Client(LockClient::new(Rc::clone(settings)))
        }
    }
}

type LockCtx<'a> = Ctx<'a, LockMsg, LockObs>;

impl Process for LockNode {
    type Msg = LockMsg;
    type Obs = LockObs;

    fn on_start(&mut self, ctx: &mut LockCtx<'_>) {
        match self {
            LockNode::Server(server) => server.on_start(ctx),
            LockNode::Database(db) => db.on_start(ctx),
            LockNode::Storage(_) => {}
            LockNode::Client(client) => client.on_start(ctx),
            LockNode::ZkServer(server) => server.on_start(ctx),
            LockNode::ZkClient(client) => client.on_start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut LockCtx<'_>, from: NodeId, msg: LockMsg) {
        match self {
            LockNode::Server(server) => server.on_message(ctx, from, msg),
            LockNode::Database(db) => db.on_message(ctx, from, msg),
            LockNode::Storage(storage) => storage.on_message(ctx, from, msg),
            LockNode::Client(client) => client.on_message(ctx, msg),
            LockNode::ZkServer(server) => {
                if let LockMsg::Zk(msg) = msg {
                    server.on_message(ctx, from, msg)
                }
            }
            LockNode::ZkClient(client) => client.on_message(ctx, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut LockCtx<'_>, timer: TimerId, tag: u64) {
        match self {
            LockNode::Client(client) => client.on_timer(ctx, timer, tag),
            LockNode::Database(db) => db.on_timer(ctx, tag),
            LockNode::ZkServer(server) => server.on_timer(ctx, timer, tag),
            LockNode::ZkClient(client) => client.on_timer(ctx, timer, tag),
            _ => {}
        }
    }
}
