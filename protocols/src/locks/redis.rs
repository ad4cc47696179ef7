//! A Redis-like server: keys with expiry on the server's own clock, optional persistence.

use std::collections::BTreeMap;

use sim_core::{MS, NodeId};

use super::{LockCtx, LockMsg, LockObs, RedisReply};

const KEY_PREFIX: &str = "redis/";
/// The key the lock clients use; its changes are observed.
const LOCK_KEY: &str = "lock";

/// The server's key space: value and expiry instant (local clock, ns), if any.
pub struct RedisServer {
    persistent: bool,
    keys: BTreeMap<String, (String, Option<u64>)>,
}

impl RedisServer {
    pub fn new(persistent: bool) -> Self {
        RedisServer { persistent, keys: BTreeMap::new() }
    }

    /// Loads the key space when persistence is on; without it a restart comes back empty.
    pub fn on_start(&mut self, ctx: &mut LockCtx<'_>) {
        if !self.persistent {
            self.observe_lock(ctx);
            return;
        }
        let storage = ctx.storage();
        for (key, bytes) in storage.scan_prefix(KEY_PREFIX) {
            if let Ok((value, expiry)) = serde_json::from_slice::<(String, Option<u64>)>(bytes) {
                self.keys.insert(key[KEY_PREFIX.len()..].to_owned(), (value, expiry));
            }
        }
        self.observe_lock(ctx);
    }

    /// Tells the judge who holds the lock key now (and until when on this server's clock).
    fn observe_lock(&self, ctx: &mut LockCtx<'_>) {
        let (holder, expires_local_ns) = match self.keys.get(LOCK_KEY) {
            Some((value, expiry)) => (Some(value.clone()), *expiry),
            None => (None, None),
        };
        ctx.observe(LockObs::KeyState { holder, expires_local_ns });
    }

    /// The value of `key` now, dropping it first if its expiry has passed.
    fn live(&mut self, key: &str, now: u64) -> Option<&String> {
        if self.keys.get(key).is_some_and(|(_, expiry)| expiry.is_some_and(|at| now >= at)) {
            self.keys.remove(key);
        }
        self.keys.get(key).map(|(value, _)| value)
    }

    fn write(&mut self, ctx: &mut LockCtx<'_>, key: &str, entry: Option<(String, Option<u64>)>) {
        match &entry {
            Some(entry) => {
                self.keys.insert(key.to_owned(), entry.clone());
            }
            None => {
                self.keys.remove(key);
            }
        }
        if self.persistent {
            let storage_key = format!("{KEY_PREFIX}{key}");
            match entry {
                Some(entry) => ctx.storage().put(storage_key, serde_json::to_vec(&entry).expect("serialisable")),
                None => ctx.storage().delete(&storage_key),
            }
            ctx.storage().sync();
        }
        if key == LOCK_KEY {
            self.observe_lock(ctx);
        }
    }

    pub fn on_message(&mut self, ctx: &mut LockCtx<'_>, from: NodeId, msg: LockMsg) {
        let now = ctx.now();
        let (req, reply) = match msg {
            LockMsg::SetNxPx { req, key, value, ttl_ms } => {
                if self.live(&key, now).is_some() {
                    (req, RedisReply::Nil)
                } else {
                    self.write(ctx, &key, Some((value.clone(), Some(now + ttl_ms * MS))));
                    ctx.observe(LockObs::Granted { key, value });
                    (req, RedisReply::Ok)
                }
            }
            LockMsg::SetNxPxFence { req, key, value, ttl_ms, fence_key } => {
                if self.live(&key, now).is_some() {
                    (req, RedisReply::Nil)
                } else {
                    self.write(ctx, &key, Some((value.clone(), Some(now + ttl_ms * MS))));
                    ctx.observe(LockObs::Granted { key, value });
                    let fence = self.live(&fence_key, now).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) + 1;
                    self.write(ctx, &fence_key, Some((fence.to_string(), None)));
                    (req, RedisReply::Int(fence))
                }
            }
            LockMsg::SetNx { req, key, value } => {
                if self.live(&key, now).is_some() {
                    (req, RedisReply::Int(0))
                } else {
                    self.write(ctx, &key, Some((value.clone(), None)));
                    ctx.observe(LockObs::Granted { key, value });
                    (req, RedisReply::Int(1))
                }
            }
            LockMsg::Expire { req, key, ttl_ms } => match self.live(&key, now).cloned() {
                Some(value) => {
                    self.write(ctx, &key, Some((value, Some(now + ttl_ms * MS))));
                    (req, RedisReply::Int(1))
                }
                None => (req, RedisReply::Int(0)),
            },
            LockMsg::DelIfEquals { req, key, value } => {
                if self.live(&key, now) == Some(&value) {
                    self.write(ctx, &key, None);
                    (req, RedisReply::Int(1))
                } else {
                    (req, RedisReply::Int(0))
                }
            }
            LockMsg::Del { req, key } => {
                let existed = self.live(&key, now).is_some();
                if existed {
                    self.write(ctx, &key, None);
                }
                (req, RedisReply::Int(i64::from(existed)))
            }
            LockMsg::Get { req, key } => match self.live(&key, now) {
                Some(value) => (req, RedisReply::Bulk(value.clone())),
                None => (req, RedisReply::Nil),
            },
            LockMsg::Incr { req, key } => {
                let next = self.live(&key, now).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) + 1;
                self.write(ctx, &key, Some((next.to_string(), None)));
                (req, RedisReply::Int(next))
            }
            _ => return,
        };
        ctx.send(from, LockMsg::Reply { req, reply });
    }
}
