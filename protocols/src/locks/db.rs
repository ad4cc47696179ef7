//! A database holding a lock table whose primary key is the lock's name: acquiring is an
//! `INSERT` (a duplicate key fails at once, so waiting means polling), releasing a
//! `DELETE` of the caller's own row. Every change is committed (synced) before it is
//! answered, and a restart recovers the table.
//!
//! Clients talk to the database over sessions, as over a connection: each statement
//! carries an increasing request number, a repeated one (a duplicated datagram) is
//! answered again without running twice, and an older one (a late statement from before
//! a timeout) is dropped. The last request and its answer are committed with the
//! statement's effect.
//!
//! The classic fixes are columns of the row, each a setting: an `expires_at` column that
//! a sweeper deletes past rows by (on the database's own clock), an owner and a count for
//! reentrancy (the owner's second `INSERT` counts up instead of failing, each `DELETE`
//! counts down), and the row's version — a number taken from a durable sequence at each
//! insert — as a fencing token.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sim_core::{MS, NodeId};

use super::{LockCtx, LockMsg, LockObs, RedisReply};

const ROW_PREFIX: &str = "db/row/";
const SEQUENCE: [&str; 2] = ["db/sequence/0", "db/sequence/1"];
const TIMER_SWEEP: u64 = 1;
const SESSION_PREFIX: &str = "db/session/";
/// The row the lock clients use; its changes are observed.
const LOCK_ROW: &str = "lock";

/// One row of the lock table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub owner: String,
    /// How many times the owner holds it (reentrancy).
    pub count: u64,
    /// The database's local instant past which the sweeper deletes the row.
    pub expires_at_ns: Option<u64>,
    pub version: u64,
}

/// The database's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbOptions {
    /// Rows carry `expires_at` (insert time plus the ttl) and a sweeper deletes them.
    pub expiry_ms: Option<u64>,
    pub sweep_ms: u64,
    /// The owner's repeated insert counts up instead of failing.
    pub reentrant: bool,
}

/// The database node.
pub struct DbServer {
    options: DbOptions,
    rows: BTreeMap<String, Row>,
    sequence: crate::codec::SlotPair,
    next_version: u64,
    /// Per client: its last request number and the answer.
    sessions: BTreeMap<NodeId, (u64, RedisReply)>,
}

impl DbServer {
    pub fn new(options: DbOptions) -> DbServer {
        DbServer {
            options,
            rows: BTreeMap::new(),
            sequence: crate::codec::SlotPair::new(SEQUENCE),
            next_version: 1,
            sessions: BTreeMap::new(),
        }
    }

    /// The rows now (the judge reads who holds the lock).
    pub fn rows(&self) -> &BTreeMap<String, Row> {
        &self.rows
    }

    pub fn on_start(&mut self, ctx: &mut LockCtx<'_>) {
        for (key, bytes) in ctx.storage().scan_prefix(ROW_PREFIX) {
            if let Ok(row) = serde_json::from_slice::<Row>(bytes) {
                self.rows.insert(key[ROW_PREFIX.len()..].to_owned(), row);
            }
        }
        for (key, bytes) in ctx.storage().scan_prefix(SESSION_PREFIX) {
            if let (Ok(client), Ok(last)) =
                (key[SESSION_PREFIX.len()..].parse::<NodeId>(), serde_json::from_slice::<(u64, RedisReply)>(bytes))
            {
                self.sessions.insert(client, last);
            }
        }
        self.next_version = self.sequence.read(ctx.storage(), |r| r.u64()).unwrap_or(0) + 1;
        self.observe_lock(ctx);
        if self.options.expiry_ms.is_some() {
            ctx.set_timer(self.options.sweep_ms * MS, TIMER_SWEEP);
        }
    }

    /// Writes a row's new state (none: deleted); the caller syncs, so that a statement's
    /// effect and its session record become durable together.
    fn commit(&mut self, ctx: &mut LockCtx<'_>, name: &str, row: Option<Row>) {
        let key = format!("{ROW_PREFIX}{name}");
        match &row {
            Some(row) => ctx.storage().put(key, serde_json::to_vec(row).expect("serialisable")),
            None => ctx.storage().delete(&key),
        }
        match row {
            Some(row) => self.rows.insert(name.to_owned(), row),
            None => self.rows.remove(name),
        };
        if name == LOCK_ROW {
            self.observe_lock(ctx);
        }
    }

    /// Tells the judge whose row the lock row is now (and until when on this clock).
    fn observe_lock(&self, ctx: &mut LockCtx<'_>) {
        let row = self.rows.get(LOCK_ROW);
        let holder = row.map(|row| row.owner.clone());
        let expires_local_ns = row.and_then(|row| row.expires_at_ns);
        ctx.observe(LockObs::KeyState { holder, expires_local_ns });
    }

    pub fn on_timer(&mut self, ctx: &mut LockCtx<'_>, tag: u64) {
        if tag != TIMER_SWEEP {
            return;
        }
        let now = ctx.now();
        let expired: Vec<String> = self
            .rows
            .iter()
            .filter(|(_, row)| row.expires_at_ns.is_some_and(|at| now >= at))
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            let owner = self.rows[&name].owner.clone();
            self.commit(ctx, &name, None);
            ctx.storage().sync();
            ctx.observe(LockObs::Swept { owner });
        }
        ctx.set_timer(self.options.sweep_ms * MS, TIMER_SWEEP);
    }

    pub fn on_message(&mut self, ctx: &mut LockCtx<'_>, from: NodeId, msg: LockMsg) {
        let req = match &msg {
            LockMsg::Insert { req, .. } | LockMsg::DeleteOwned { req, .. } => *req,
            _ => return,
        };
        // Request 0 is a fire-and-forget cleanup, idempotent by itself.
        if req != 0
            && let Some((last, reply)) = self.sessions.get(&from)
        {
            if req == *last {
                let reply = reply.clone();
                ctx.send(from, LockMsg::Reply { req, reply });
                return;
            }
            if req < *last {
                return;
            }
        }
        let (req, reply) = match msg {
            LockMsg::Insert { req, key, owner } => match self.rows.get(&key).cloned() {
                Some(mut row) if self.options.reentrant && row.owner == owner => {
                    row.count += 1;
                    let version = row.version;
                    self.commit(ctx, &key, Some(row));
                    (req, RedisReply::Int(version as i64))
                }
                Some(_) => {
                    // Duplicate key: the insert fails at once.
                    ctx.observe(LockObs::InsertRefused);
                    (req, RedisReply::Nil)
                }
                None => {
                    let version = self.next_version;
                    self.next_version += 1;
                    // The sequence is durable before the version is handed out.
                    self.sequence.write(ctx.storage(), crate::codec::number(version));
                    let expires_at_ns = self.options.expiry_ms.map(|ttl| ctx.now() + ttl * MS);
                    let row = Row { owner: owner.clone(), count: 1, expires_at_ns, version };
                    self.commit(ctx, &key, Some(row));
                    ctx.observe(LockObs::Granted { key, value: owner });
                    (req, RedisReply::Int(version as i64))
                }
            },
            LockMsg::DeleteOwned { req, key, owner } => match self.rows.get(&key).cloned() {
                Some(mut row) if row.owner == owner && row.count > 1 => {
                    row.count -= 1;
                    self.commit(ctx, &key, Some(row));
                    (req, RedisReply::Int(1))
                }
                Some(row) if row.owner == owner => {
                    self.commit(ctx, &key, None);
                    (req, RedisReply::Int(1))
                }
                _ => (req, RedisReply::Int(0)),
            },
            _ => return,
        };
        if req != 0 {
            let record = serde_json::to_vec(&(req, reply.clone())).expect("serialisable");
            ctx.storage().put(format!("{SESSION_PREFIX}{from}"), record);
            self.sessions.insert(from, (req, reply.clone()));
        }
        ctx.storage().sync();
        ctx.send(from, LockMsg::Reply { req, reply });
    }
}
