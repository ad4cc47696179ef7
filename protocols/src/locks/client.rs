//! The single-instance lock client and its critical section (read, work, write back).

use std::rc::Rc;

use rand::RngExt;
use sim_core::{MS, TimerId};

use super::{LockCtx, LockMsg, LockObs, LockSettings, LockVariant, RedisReply, StorageReply};

const LOCK_KEY: &str = "lock";
const FENCE_KEY: &str = "fence";

const TIMER_ACQUIRE: u64 = 1;
const TIMER_TIMEOUT: u64 = 2;
const TIMER_WORK: u64 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Idle,
    Acquiring,
    Expiring,
    Fencing,
    Reading,
    Working,
    Writing,
    Releasing,
}

/// A client looping: acquire, read the counter, work, write it back incremented, release.
pub struct LockClient {
    settings: Rc<LockSettings>,
    step: Step,
    attempt: u64,
    req: u64,
    token: String,
    fence: Option<u64>,
    sent_local_ns: u64,
    value: u64,
    timeout: Option<TimerId>,
}

impl LockClient {
    pub fn new(settings: Rc<LockSettings>) -> Self {
        LockClient {
            settings,
            step: Step::Idle,
            attempt: 0,
            req: 0,
            token: String::new(),
            fence: None,
            sent_local_ns: 0,
            value: 0,
            timeout: None,
        }
    }

    pub fn on_start(&mut self, ctx: &mut LockCtx<'_>) {
        // A restarted client starts over: its unsent release and beliefs died with it.
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
        self.token = format!("c{}-{}", ctx.id(), self.attempt);
        self.fence = None;
        self.sent_local_ns = ctx.now();
        let req = self.next_req();
        let (key, value) = (LOCK_KEY.to_owned(), self.token.clone());
        let msg = match self.settings.variant {
            LockVariant::SetnxThenExpire => LockMsg::SetNx { req, key, value },
            _ => LockMsg::SetNxPx { req, key, value, ttl_ms: self.settings.ttl_ms },
        };
        self.request(ctx, self.settings.server, msg, Step::Acquiring);
    }

    fn acquired(&mut self, ctx: &mut LockCtx<'_>) {
        let valid_until_local_ns = self.sent_local_ns + self.settings.ttl_ms * MS;
        ctx.observe(LockObs::Acquired { token: self.token.clone(), valid_until_local_ns, fence: None });
        let req = self.next_req();
        match self.settings.variant {
            LockVariant::SetnxThenExpire => {
                let msg = LockMsg::Expire { req, key: LOCK_KEY.into(), ttl_ms: self.settings.ttl_ms };
                self.request(ctx, self.settings.server, msg, Step::Expiring);
            }
            LockVariant::Fencing => {
                self.request(ctx, self.settings.server, LockMsg::Incr { req, key: FENCE_KEY.into() }, Step::Fencing)
            }
            _ => self.read(ctx),
        }
    }

    fn read(&mut self, ctx: &mut LockCtx<'_>) {
        let req = self.next_req();
        let msg = LockMsg::Read { req, holder: self.token.clone(), fence: self.fence };
        self.request(ctx, self.settings.storage, msg, Step::Reading);
    }

    fn release(&mut self, ctx: &mut LockCtx<'_>) {
        let req = self.next_req();
        let key = LOCK_KEY.to_owned();
        let msg = match self.settings.variant {
            // The bug: delete whoever's lock it is now.
            LockVariant::UnsafeRelease => LockMsg::Del { req, key },
            _ => LockMsg::DelIfEquals { req, key, value: self.token.clone() },
        };
        ctx.observe(LockObs::Released { token: self.token.clone() });
        self.request(ctx, self.settings.server, msg, Step::Releasing);
    }

    pub fn on_timer(&mut self, ctx: &mut LockCtx<'_>, timer: TimerId, tag: u64) {
        match tag {
            TIMER_ACQUIRE if self.step == Step::Idle => self.begin_acquire(ctx),
            TIMER_WORK if self.step == Step::Working => {
                let req = self.next_req();
                let msg = LockMsg::Write { req, holder: self.token.clone(), fence: self.fence, value: self.value + 1 };
                self.request(ctx, self.settings.storage, msg, Step::Writing);
            }
            TIMER_TIMEOUT if self.timeout == Some(timer) => {
                self.timeout = None;
                match self.step {
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

    fn on_redis(&mut self, ctx: &mut LockCtx<'_>, reply: RedisReply) {
        match (self.step, reply) {
            (Step::Acquiring, RedisReply::Ok | RedisReply::Int(1)) => self.acquired(ctx),
            (Step::Acquiring, _) | (Step::Releasing, _) => self.schedule_attempt(ctx),
            (Step::Expiring, _) => self.read(ctx),
            (Step::Fencing, RedisReply::Int(fence)) => {
                self.fence = Some(fence as u64);
                self.read(ctx);
            }
            _ => {}
        }
    }

    fn on_storage(&mut self, ctx: &mut LockCtx<'_>, reply: StorageReply) {
        match (self.step, reply) {
            (Step::Reading, StorageReply::Value(value)) => {
                if let Some(timer) = self.timeout.take() {
                    ctx.cancel_timer(timer);
                }
                self.value = value;
                self.step = Step::Working;
                let [min, max] = self.settings.work_ms;
                let work = ctx.rng().random_range(min..=max.max(min)) * MS;
                ctx.set_timer(work, TIMER_WORK);
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
