//! The single-instance lock client and its critical section (read, work, write back).

use std::rc::Rc;

use rand::RngExt;
use sim_core::{MS, TimerId};

use super::{LockCtx, LockMsg, LockObs, LockSettings, LockVariant, RedisReply, StorageReply};
use crate::codec::{SlotPair, number};

const LOCK_KEY: &str = "lock";
const FENCE_KEY: &str = "fence";

/// Two slots, written alternately: a write torn by a crash leaves the other one whole.
const KEY_ATTEMPT: [&str; 2] = ["lock-client/attempt/0", "lock-client/attempt/1"];

const TIMER_ACQUIRE: u64 = 1;
const TIMER_TIMEOUT: u64 = 2;
const TIMER_WORK: u64 = 3;
const TIMER_NESTED: u64 = 4;

/// The clock-drift allowance a client subtracts from its validity (RedLock's: 1% of the
/// ttl plus 2 ms for the processes' own timing). With it, the locks claim to stay safe
/// while clocks run at most 1% apart.
pub fn drift_allowance_ns(ttl_ns: u64) -> u64 {
    ttl_ns / 100 + 2 * MS
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Idle,
    Acquiring,
    Expiring,
    Reading,
    Working,
    Writing,
    Releasing,
    /// The database lock's nested call: taking the lock again, then giving it back.
    Nesting,
    NestedRelease,
}

/// A client looping: acquire, read the counter, work, write it back incremented, release.
pub struct LockClient {
    settings: Rc<LockSettings>,
    step: Step,
    attempt: u64,
    /// Where the last attempt begun is written.
    attempts: SlotPair,
    req: u64,
    token: String,
    fence: Option<u64>,
    sent_local_ns: u64,
    /// While the lock is held: when its validity ends on this client's clock.
    valid_until_local_ns: u64,
    value: u64,
    timeout: Option<TimerId>,
    /// RedLock: the instance being asked, and how many said yes.
    instance: usize,
    granted: usize,
    /// When this client started trying for the lock it is after, and how many attempts.
    cycle_start_ns: Option<u64>,
    cycle_attempts: u64,
    nested_attempts: u64,
    /// The database lock: tokens whose insert or delete went unanswered, so a row of
    /// theirs may sit in the table; deleted again at every attempt until one succeeds
    /// (the key is unique: an acquisition proves none is left).
    orphans: Vec<String>,
}

impl LockClient {
    pub fn new(settings: Rc<LockSettings>) -> Self {
        LockClient {
            settings,
            step: Step::Idle,
            attempt: 0,
            attempts: SlotPair::new(KEY_ATTEMPT),
            req: 0,
            token: String::new(),
            fence: None,
            sent_local_ns: 0,
            valid_until_local_ns: 0,
            value: 0,
            timeout: None,
            instance: 0,
            granted: 0,
            cycle_start_ns: None,
            cycle_attempts: 0,
            nested_attempts: 0,
            orphans: Vec::new(),
        }
    }

    /// Whether the client is in the middle of an acquisition (waiting for a server's
    /// answer), where a pause is aimed by the `acquiring` role.
    pub fn acquiring(&self) -> bool {
        self.step == Step::Acquiring
    }

    pub fn on_start(&mut self, ctx: &mut LockCtx<'_>) {
        // A restarted client starts over: its beliefs died with it. Attempt numbers are
        // durable, so that tokens are never reused (a reused token would let the new
        // incarnation release the old one's lock). The newest whole slot is the last
        // attempt begun; a torn one was being written when the client died, before its
        // token went anywhere.
        self.attempt = self.attempts.read(ctx.storage(), |r| r.u64()).unwrap_or(0);
        ctx.observe(LockObs::ClientStarted);
        self.schedule_attempt(ctx);
    }

    fn schedule_attempt(&mut self, ctx: &mut LockCtx<'_>) {
        self.step = Step::Idle;
        let [min, max] = self.settings.retry_ms;
        let wait = ctx.rng().random_range(min..=max.max(min)) * MS;
        ctx.set_timer(wait, TIMER_ACQUIRE);
    }

    fn request(&mut self, ctx: &mut LockCtx<'_>, to: usize, msg: LockMsg, step: Step) {
        if let Some(timer) = self.timeout.take() {
            ctx.cancel_timer(timer);
        }
        self.step = step;
        ctx.send(to, msg);
        self.timeout = Some(ctx.set_timer(self.settings.request_timeout_ms * MS, TIMER_TIMEOUT));
    }

    fn next_req(&mut self) -> u64 {
        self.req += 1;
        self.req
    }

    fn begin_acquire(&mut self, ctx: &mut LockCtx<'_>) {
        self.attempt += 1;
        if self.cycle_start_ns.is_none() {
            ctx.observe(LockObs::Acquiring);
        }
        self.cycle_start_ns.get_or_insert(ctx.now());
        self.cycle_attempts += 1;
        self.attempts.write(ctx.storage(), number(self.attempt));
        // Request ids are scoped by attempt, so a late reply to an earlier attempt (or an
        // earlier incarnation) never passes for the answer to this one.
        self.req = self.attempt << 32;
        self.token = format!("c{}-{}", ctx.id(), self.attempt);
        self.fence = None;
        self.sent_local_ns = ctx.now();
        let req = self.next_req();
        let (key, value) = (LOCK_KEY.to_owned(), self.token.clone());
        if self.settings.redlock {
            self.instance = 0;
            self.granted = 0;
            self.ask_instance(ctx);
            return;
        }
        let ttl_ms = self.settings.ttl_ms;
        if self.settings.db.is_some() {
            for owner in self.orphans.clone() {
                let cleanup = LockMsg::DeleteOwned { req: 0, key: key.clone(), owner };
                ctx.send(self.settings.servers[0], cleanup);
            }
            let msg = LockMsg::Insert { req, key, owner: value };
            self.request(ctx, self.settings.servers[0], msg, Step::Acquiring);
            return;
        }
        let msg = match self.settings.variant {
            LockVariant::SetnxThenExpire => LockMsg::SetNx { req, key, value },
            LockVariant::Fencing => LockMsg::SetNxPxFence { req, key, value, ttl_ms, fence_key: FENCE_KEY.into() },
            _ => LockMsg::SetNxPx { req, key, value, ttl_ms },
        };
        self.request(ctx, self.settings.servers[0], msg, Step::Acquiring);
    }

    /// RedLock: `SET NX PX` on the next instance, with the small per-instance timeout.
    fn ask_instance(&mut self, ctx: &mut LockCtx<'_>) {
        let req = self.next_req();
        let msg =
            LockMsg::SetNxPx { req, key: LOCK_KEY.into(), value: self.token.clone(), ttl_ms: self.settings.ttl_ms };
        if let Some(timer) = self.timeout.take() {
            ctx.cancel_timer(timer);
        }
        self.step = Step::Acquiring;
        ctx.send(self.settings.servers[self.instance], msg);
        self.timeout = Some(ctx.set_timer(self.settings.redlock_request_timeout_ms * MS, TIMER_TIMEOUT));
    }

    /// RedLock: one instance answered (or timed out); ask the next, or decide.
    fn instance_done(&mut self, ctx: &mut LockCtx<'_>, granted: bool) {
        self.granted += usize::from(granted);
        self.instance += 1;
        if self.instance < self.settings.servers.len() {
            self.ask_instance(ctx);
            return;
        }
        if let Some(timer) = self.timeout.take() {
            ctx.cancel_timer(timer);
        }
        let quorum = self.settings.servers.len() / 2 + 1;
        let elapsed = ctx.now().saturating_sub(self.validity_start(ctx));
        let ttl = self.settings.ttl_ms * MS;
        if self.granted >= quorum && elapsed + drift_allowance_ns(ttl) < ttl {
            self.acquired(ctx);
        } else {
            // Too few instances, or too late: undo everywhere and try again later.
            self.release_everywhere(ctx);
            self.schedule_attempt(ctx);
        }
    }

    fn release_everywhere(&mut self, ctx: &mut LockCtx<'_>) {
        for server in self.settings.servers.clone() {
            let req = self.next_req();
            let key = LOCK_KEY.to_owned();
            let msg = match self.settings.variant {
                LockVariant::UnsafeRelease => LockMsg::Del { req, key },
                _ => LockMsg::DelIfEquals { req, key, value: self.token.clone() },
            };
            ctx.send(server, msg);
        }
    }

    /// Where the validity is counted from: when the client asked (the key's ttl starts
    /// later, when the server set it), or with the bug, when the answer arrived.
    fn validity_start(&self, ctx: &LockCtx<'_>) -> u64 {
        if self.settings.variant == LockVariant::ValidityFromReply { ctx.now() } else { self.sent_local_ns }
    }

    fn acquired(&mut self, ctx: &mut LockCtx<'_>) {
        let ttl = self.settings.ttl_ms * MS;
        // The validity is the ttl from the request, less the clock-drift allowance.
        let valid_until_local_ns = match &self.settings.db {
            // A row without expiry is held until it is deleted.
            Some(db) if db.database.expiry_ms.is_none() => u64::MAX,
            _ => (self.validity_start(ctx) + ttl).saturating_sub(drift_allowance_ns(ttl)),
        };
        if !self.settings.redlock && ctx.now() >= valid_until_local_ns {
            // The grant came after its validity was over (the reply was slow, or this
            // client was paused): it is no grant. Give the key back and try again.
            // (RedLock's elapsed-time check, in `instance_done`, is the same rule.)
            return self.give_back_late_grant(ctx);
        }
        self.valid_until_local_ns = valid_until_local_ns;
        let waited_ns = ctx.now().saturating_sub(self.cycle_start_ns.take().unwrap_or(self.sent_local_ns));
        let attempts = std::mem::take(&mut self.cycle_attempts);
        let token = self.token.clone();
        ctx.observe(LockObs::Acquired { token, valid_until_local_ns, fence: self.fence, waited_ns, attempts });
        if self.settings.variant == LockVariant::SetnxThenExpire {
            let req = self.next_req();
            let msg = LockMsg::Expire { req, key: LOCK_KEY.into(), ttl_ms: self.settings.ttl_ms };
            self.request(ctx, self.settings.servers[0], msg, Step::Expiring);
        } else {
            self.read(ctx);
        }
    }

    fn give_back_late_grant(&mut self, ctx: &mut LockCtx<'_>) {
        let req = self.next_req();
        let (key, token) = (LOCK_KEY.to_owned(), self.token.clone());
        let msg = match self.settings.db {
            Some(_) => LockMsg::DeleteOwned { req, key, owner: token },
            None => LockMsg::DelIfEquals { req, key, value: token },
        };
        self.request(ctx, self.settings.servers[0], msg, Step::Releasing);
    }

    /// Whether the lock is still valid by this client's clock; if not, the client stops
    /// its critical section before touching the resource, and releases (the key may
    /// still be its own on some server).
    fn still_valid(&mut self, ctx: &mut LockCtx<'_>) -> bool {
        if ctx.now() < self.valid_until_local_ns {
            return true;
        }
        ctx.observe(LockObs::Abandoned { token: self.token.clone() });
        self.release(ctx);
        false
    }

    fn read(&mut self, ctx: &mut LockCtx<'_>) {
        if !self.still_valid(ctx) {
            return;
        }
        ctx.observe(LockObs::Access { token: self.token.clone(), write: false });
        let req = self.next_req();
        let msg = LockMsg::Read { req, holder: self.token.clone(), fence: self.fence };
        self.request(ctx, self.settings.storage, msg, Step::Reading);
    }

    fn release(&mut self, ctx: &mut LockCtx<'_>) {
        let req = self.next_req();
        let key = LOCK_KEY.to_owned();
        if self.settings.db.is_some() {
            ctx.observe(LockObs::Released { token: self.token.clone() });
            let msg = LockMsg::DeleteOwned { req, key, owner: self.token.clone() };
            self.request(ctx, self.settings.servers[0], msg, Step::Releasing);
            return;
        }
        let msg = match self.settings.variant {
            // The bug: delete whoever's lock it is now.
            LockVariant::UnsafeRelease => LockMsg::Del { req, key },
            _ => LockMsg::DelIfEquals { req, key, value: self.token.clone() },
        };
        ctx.observe(LockObs::Released { token: self.token.clone() });
        if self.settings.redlock {
            self.release_everywhere(ctx);
            self.schedule_attempt(ctx);
            return;
        }
        self.request(ctx, self.settings.servers[0], msg, Step::Releasing);
    }

    pub fn on_timer(&mut self, ctx: &mut LockCtx<'_>, timer: TimerId, tag: u64) {
        match tag {
            TIMER_ACQUIRE if self.step == Step::Idle => self.begin_acquire(ctx),
            TIMER_NESTED if self.step == Step::Nesting => self.nested_acquire(ctx),
            TIMER_WORK if self.step == Step::Working => {
                if !self.still_valid(ctx) {
                    return;
                }
                ctx.observe(LockObs::Access { token: self.token.clone(), write: true });
                let req = self.next_req();
                let msg = LockMsg::Write { req, holder: self.token.clone(), fence: self.fence, value: self.value + 1 };
                self.request(ctx, self.settings.storage, msg, Step::Writing);
            }
            TIMER_TIMEOUT if self.timeout == Some(timer) => {
                self.timeout = None;
                match self.step {
                    Step::Acquiring if self.settings.redlock => self.instance_done(ctx, false),
                    // The database lock: the insert or delete may have taken effect, and a
                    // row never expires by itself.
                    Step::Acquiring | Step::Releasing if self.settings.db.is_some() => {
                        self.orphans.push(self.token.clone());
                        self.schedule_attempt(ctx);
                    }
                    // The SET may have taken effect; the key expires by itself.
                    Step::Acquiring | Step::Releasing => self.schedule_attempt(ctx),
                    _ => self.release(ctx),
                }
            }
            _ => {}
        }
    }

    pub fn on_message(&mut self, ctx: &mut LockCtx<'_>, msg: LockMsg) {
        match msg {
            LockMsg::Reply { req, reply } if req == self.req => self.on_redis(ctx, reply),
            LockMsg::StorageAnswer { req, reply } if req == self.req => self.on_storage(ctx, reply),
            _ => {}
        }
    }

    /// The nested call: the same owner inserts the lock row again.
    fn nested_acquire(&mut self, ctx: &mut LockCtx<'_>) {
        self.nested_attempts += 1;
        let req = self.next_req();
        let msg = LockMsg::Insert { req, key: LOCK_KEY.into(), owner: self.token.clone() };
        self.request(ctx, self.settings.servers[0], msg, Step::Nesting);
    }

    fn work(&mut self, ctx: &mut LockCtx<'_>) {
        if let Some(timer) = self.timeout.take() {
            ctx.cancel_timer(timer);
        }
        self.step = Step::Working;
        let [min, max] = self.settings.work_ms;
        let work = ctx.rng().random_range(min..=max.max(min)) * MS;
        ctx.set_timer(work, TIMER_WORK);
    }

    fn on_redis(&mut self, ctx: &mut LockCtx<'_>, reply: RedisReply) {
        if self.settings.db.is_some() {
            return self.on_database(ctx, reply);
        }
        match (self.step, reply) {
            (Step::Acquiring, reply) if self.settings.redlock => self.instance_done(ctx, reply == RedisReply::Ok),
            (Step::Acquiring, RedisReply::Int(fence)) if self.settings.variant == LockVariant::Fencing => {
                self.fence = Some(fence as u64);
                self.acquired(ctx);
            }
            (Step::Acquiring, RedisReply::Ok | RedisReply::Int(1)) => self.acquired(ctx),
            (Step::Acquiring, _) | (Step::Releasing, _) => self.schedule_attempt(ctx),
            (Step::Expiring, _) => self.read(ctx),
            _ => {}
        }
    }

    fn on_database(&mut self, ctx: &mut LockCtx<'_>, reply: RedisReply) {
        let db = self.settings.db.clone().expect("a database lock");
        match (self.step, reply) {
            (Step::Acquiring, RedisReply::Int(version)) => {
                self.orphans.clear();
                if self.settings.variant == LockVariant::Fencing {
                    self.fence = Some(version as u64);
                }
                self.acquired(ctx);
            }
            // A duplicate key: poll again later.
            (Step::Acquiring, _) | (Step::Releasing, _) => self.schedule_attempt(ctx),
            (Step::Nesting, RedisReply::Int(_)) => {
                ctx.observe(LockObs::Reentered { token: self.token.clone() });
                let req = self.next_req();
                let msg = LockMsg::DeleteOwned { req, key: LOCK_KEY.into(), owner: self.token.clone() };
                self.request(ctx, self.settings.servers[0], msg, Step::NestedRelease);
            }
            (Step::Nesting, _) if self.nested_attempts < db.nested_attempts => {
                if let Some(timer) = self.timeout.take() {
                    ctx.cancel_timer(timer);
                }
                let [min, max] = self.settings.retry_ms;
                let wait = ctx.rng().random_range(min..=max.max(min)) * MS;
                ctx.set_timer(wait, TIMER_NESTED);
            }
            (Step::Nesting, _) => {
                // The nested call failed against the caller's own row: it gives up, and
                // so does the critical section.
                ctx.observe(LockObs::ReentryFailed { token: self.token.clone() });
                self.release(ctx);
            }
            (Step::NestedRelease, _) => self.work(ctx),
            _ => {}
        }
    }

    fn on_storage(&mut self, ctx: &mut LockCtx<'_>, reply: StorageReply) {
        match (self.step, reply) {
            (Step::Reading, StorageReply::Value(value)) => {
                self.value = value;
                if self.settings.db.as_ref().is_some_and(|db| db.nested_acquire) {
                    self.nested_attempts = 0;
                    return self.nested_acquire(ctx);
                }
                self.work(ctx);
            }
            (Step::Writing, StorageReply::Written) => {
                ctx.observe(LockObs::CriticalSectionDone { token: self.token.clone() });
                self.release(ctx);
            }
            (Step::Reading | Step::Writing, StorageReply::Rejected { .. }) => self.release(ctx),
            _ => {}
        }
    }
}
