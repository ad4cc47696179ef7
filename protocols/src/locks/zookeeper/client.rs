//! The lock recipe's client: a session kept alive with heartbeats, and the recipe itself
//! (create an ephemeral sequential node, list the children, watch the next lower node).

use std::rc::Rc;

use rand::RngExt;
use sim_core::{MS, NodeId, TimerId};

use super::tree::{EventKind, WatchEvent, ZkAnswer, ZkOp, ZkRequest, ZkResult};
use crate::codec::{SlotPair, number};
use crate::locks::{LockCtx, LockMsg, LockObs, LockSettings, LockVariant, StorageReply};
use crate::raft::Msg;

/// The lock's parent node.
pub const LOCK_DIR: &str = "/lock";

const KEY_ATTEMPT: [&str; 2] = ["zk-client/attempt/0", "zk-client/attempt/1"];

const TIMER_ACQUIRE: u64 = 1;
const TIMER_TIMEOUT: u64 = 2;
const TIMER_WORK: u64 = 3;
const TIMER_PING: u64 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Connecting,
    /// Connected, waiting to begin the next acquisition.
    Idle,
    /// Creating the parent `/lock` (once per session; it may exist already).
    MakingDir,
    Creating,
    /// After a lost create reply: listing the children to find a node with our guid.
    Finding,
    /// Reading our own node's stat (its zxid) after finding it.
    Stat,
    Listing,
    /// `exists` with a watch on the next lower node sent.
    Watching,
    /// A watch is set: waiting for its event.
    Waiting,
    Reading,
    Working,
    Writing,
    Deleting,
}

/// A client of the coordination service running the lock recipe in a loop: acquire,
/// read the protected counter, work, write it back incremented, release.
pub struct ZkLockClient {
    settings: Rc<LockSettings>,
    step: Step,
    /// Which server this client talks to (an index into the servers).
    server: usize,
    session: Option<u64>,
    /// The connect attempt's name, so that a retried connect finds its session.
    nonce: u64,
    seq: u64,
    /// The request in flight: its sequence number, operation and send count.
    pending: Option<(u64, ZkOp, u64)>,
    timeout: Option<TimerId>,
    ping_timer: Option<TimerId>,
    pings: u64,
    ping_answered: bool,
    /// The last watch event processed.
    acked: u64,
    /// Attempts begun, durable: every node name and token is new.
    attempt: u64,
    attempts: SlotPair,
    /// This attempt's node, its creation zxid, and the node watched.
    my_node: Option<String>,
    my_zxid: u64,
    watched: Option<String>,
    /// A watch event for the watched node came before the `exists` reply.
    woken_early: bool,
    holding: bool,
    /// The lock's parent node is known to exist (created once per session).
    dir_made: bool,
    value: u64,
    storage_req: u64,
    cycle_start_ns: Option<u64>,
    cycle_requests: u64,
}

impl ZkLockClient {
    pub fn new(settings: Rc<LockSettings>) -> Self {
        ZkLockClient {
            settings,
            step: Step::Connecting,
            server: 0,
            session: None,
            nonce: 0,
            seq: 0,
            pending: None,
            timeout: None,
            ping_timer: None,
            pings: 0,
            ping_answered: true,
            acked: 0,
            attempt: 0,
            attempts: SlotPair::new(KEY_ATTEMPT),
            my_node: None,
            my_zxid: 0,
            watched: None,
            woken_early: false,
            holding: false,
            dir_made: false,
            value: 0,
            storage_req: 0,
            cycle_start_ns: None,
            cycle_requests: 0,
        }
    }

    /// This client's lock node now, if it has one.
    pub fn my_node(&self) -> Option<&str> {
        self.my_node.as_deref()
    }

    fn zk(&self) -> &super::ZkSettings {
        self.settings.zk.as_ref().expect("a ZooKeeper lock")
    }

    fn guid(&self, id: NodeId) -> String {
        format!("c{id}-{}", self.attempt)
    }

    pub fn on_start(&mut self, ctx: &mut LockCtx<'_>) {
        self.attempt = self.attempts.read(ctx.storage(), |r| r.u64()).unwrap_or(0);
        ctx.observe(LockObs::ClientStarted);
        self.server = ctx.id() % self.settings.servers.len();
        self.connect(ctx);
    }

    fn connect(&mut self, ctx: &mut LockCtx<'_>) {
        self.session = None;
        self.acked = 0;
        self.dir_made = false;
        // Answers to heartbeats of an earlier session are stale from now on.
        self.pings += 1;
        self.nonce = ctx.rng().random_range(1u64 << 40..u64::MAX);
        let op = ZkOp::Connect { nonce: self.nonce, node: ctx.id(), timeout_ms: self.zk().session_timeout_ms };
        self.send_op(ctx, op, Step::Connecting);
    }

    /// Sends `op` as a new request of the session.
    fn send_op(&mut self, ctx: &mut LockCtx<'_>, op: ZkOp, step: Step) {
        self.seq += 1;
        self.step = step;
        self.cycle_requests += u64::from(self.cycle_start_ns.is_some());
        self.pending = Some((self.seq, op, 0));
        self.resend(ctx);
    }

    /// Sends the request in flight (again) to the current server.
    fn resend(&mut self, ctx: &mut LockCtx<'_>) {
        let Some((seq, op, sends)) = self.pending.as_mut() else {
            return;
        };
        *sends += 1;
        let client = match op {
            ZkOp::Connect { nonce, .. } => *nonce,
            _ => self.session.unwrap_or(0),
        };
        let request = ZkRequest { acked: self.acked, op: op.clone() };
        let msg = LockMsg::Zk(Msg::Request { client, seq: *seq, attempt: *sends, op: request });
        ctx.send(self.settings.servers[self.server], msg);
        if let Some(timer) = self.timeout.take() {
            ctx.cancel_timer(timer);
        }
        self.timeout = Some(ctx.set_timer(self.settings.request_timeout_ms * MS, TIMER_TIMEOUT));
    }

    fn next_server(&mut self) {
        self.server = (self.server + 1) % self.settings.servers.len();
    }

    fn schedule_ping(&mut self, ctx: &mut LockCtx<'_>) {
        if let Some(timer) = self.ping_timer.take() {
            ctx.cancel_timer(timer);
        }
        let every = (self.zk().session_timeout_ms / 3).max(1) * MS;
        self.ping_timer = Some(ctx.set_timer(every, TIMER_PING));
    }

    fn ping(&mut self, ctx: &mut LockCtx<'_>) {
        let Some(session) = self.session else {
            return;
        };
        if !self.ping_answered {
            // The last heartbeat went unanswered: try another server.
            self.next_server();
        }
        self.pings += 1;
        self.ping_answered = false;
        let request = ZkRequest { acked: self.acked, op: ZkOp::Ping };
        let msg = LockMsg::Zk(Msg::Request { client: session, seq: 0, attempt: self.pings, op: request });
        ctx.send(self.settings.servers[self.server], msg);
        self.schedule_ping(ctx);
    }

    fn schedule_attempt(&mut self, ctx: &mut LockCtx<'_>) {
        self.step = Step::Idle;
        self.pending = None;
        if let Some(timer) = self.timeout.take() {
            ctx.cancel_timer(timer);
        }
        let [min, max] = self.settings.retry_ms;
        let wait = ctx.rng().random_range(min..=max.max(min)) * MS;
        ctx.set_timer(wait, TIMER_ACQUIRE);
    }

    fn begin_acquire(&mut self, ctx: &mut LockCtx<'_>) {
        self.attempt += 1;
        self.attempts.write(ctx.storage(), number(self.attempt));
        if self.cycle_start_ns.is_none() {
            ctx.observe(LockObs::Acquiring);
            self.cycle_start_ns = Some(ctx.now());
            self.cycle_requests = 0;
        }
        self.my_node = None;
        self.watched = None;
        if self.dir_made {
            return self.create(ctx);
        }
        let op = ZkOp::Create { path: LOCK_DIR.into(), data: String::new(), ephemeral: false, sequential: false };
        self.send_op(ctx, op, Step::MakingDir);
    }

    fn create(&mut self, ctx: &mut LockCtx<'_>) {
        let prefix = if self.settings.variant == LockVariant::NoGuid {
            format!("{LOCK_DIR}/lock-")
        } else {
            format!("{LOCK_DIR}/{}-lock-", self.guid(ctx.id()))
        };
        let op = ZkOp::Create { path: prefix, data: String::new(), ephemeral: true, sequential: true };
        self.send_op(ctx, op, Step::Creating);
    }

    fn list(&mut self, ctx: &mut LockCtx<'_>) {
        let watch = self.settings.variant == LockVariant::Herd;
        self.woken_early = false;
        self.send_op(ctx, ZkOp::GetChildren { path: LOCK_DIR.into(), watch }, Step::Listing);
    }

    pub fn on_timer(&mut self, ctx: &mut LockCtx<'_>, timer: TimerId, tag: u64) {
        match tag {
            TIMER_ACQUIRE if self.step == Step::Idle => self.begin_acquire(ctx),
            TIMER_PING if self.ping_timer == Some(timer) => {
                self.ping_timer = None;
                self.ping(ctx);
            }
            TIMER_WORK if self.step == Step::Working => {
                self.storage_req += 1;
                let fence = self.fence();
                let token = self.my_node.clone().unwrap_or_default();
                let msg = LockMsg::Write { req: self.storage_req, holder: token, fence, value: self.value + 1 };
                self.storage_request(ctx, msg, Step::Writing);
            }
            TIMER_TIMEOUT if self.timeout == Some(timer) => {
                self.timeout = None;
                self.connection_loss(ctx);
            }
            _ => {}
        }
    }

    fn fence(&self) -> Option<u64> {
        (self.settings.variant == LockVariant::Fencing).then_some(self.my_zxid)
    }

    fn storage_request(&mut self, ctx: &mut LockCtx<'_>, msg: LockMsg, step: Step) {
        self.step = step;
        self.pending = None;
        ctx.send(self.settings.storage, msg);
        if let Some(timer) = self.timeout.take() {
            ctx.cancel_timer(timer);
        }
        self.timeout = Some(ctx.set_timer(self.settings.request_timeout_ms * MS, TIMER_TIMEOUT));
    }

    /// No answer in time: the recipe's connection-loss handling, step by step.
    fn connection_loss(&mut self, ctx: &mut LockCtx<'_>) {
        match self.step {
            Step::Reading | Step::Writing => self.release(ctx),
            Step::Idle | Step::Working | Step::Waiting => {}
            // A connect is retried as it is: its nonce finds the session it opened.
            Step::Connecting => {
                self.next_server();
                self.resend(ctx);
            }
            Step::Creating => {
                self.next_server();
                if self.settings.variant == LockVariant::NoGuid {
                    // The bug: the create may have taken effect, and nothing can tell
                    // which node was ours. Create another.
                    self.create(ctx);
                } else {
                    // Look for a node with our guid before creating another.
                    self.send_op(ctx, ZkOp::GetChildren { path: LOCK_DIR.into(), watch: false }, Step::Finding);
                }
            }
            step => {
                // Reads and deletes are safe to repeat as new requests.
                self.next_server();
                let Some((_, op, _)) = self.pending.clone() else {
                    return;
                };
                self.send_op(ctx, op, step);
            }
        }
    }

    pub fn on_message(&mut self, ctx: &mut LockCtx<'_>, msg: LockMsg) {
        match msg {
            LockMsg::Zk(Msg::Reply { seq: 0, attempt, answer }) if attempt == self.pings => self.on_pong(ctx, answer),
            LockMsg::Zk(Msg::Reply { seq, attempt, answer }) => {
                let Some((pending, _, sends)) = &self.pending else {
                    return;
                };
                if seq != *pending {
                    return;
                }
                match answer {
                    ZkAnswer::NotLeader { hint } => {
                        // Follow a redirect of the latest send only: a duplicated one must
                        // not fork the retries.
                        if attempt == *sends {
                            match hint {
                                Some(hint) if hint != self.settings.servers[self.server] => {
                                    self.server = self.settings.servers.iter().position(|s| *s == hint).unwrap_or(0)
                                }
                                _ => self.next_server(),
                            }
                            self.resend(ctx);
                        }
                    }
                    ZkAnswer::Result { result, events, .. } => {
                        if let Some(timer) = self.timeout.take() {
                            ctx.cancel_timer(timer);
                        }
                        self.pending = None;
                        self.events(ctx, &events);
                        self.on_result(ctx, result);
                    }
                }
            }
            LockMsg::ZkEvents { session, events } if Some(session) == self.session => {
                self.events(ctx, &events);
            }
            LockMsg::StorageAnswer { req, reply } if req == self.storage_req => self.on_storage(ctx, reply),
            _ => {}
        }
    }

    fn on_pong(&mut self, ctx: &mut LockCtx<'_>, answer: ZkAnswer) {
        if self.session.is_none() {
            return;
        }
        match answer {
            ZkAnswer::NotLeader { hint } => {
                // Reconnect to the leader it names (or the next server) and ping there now.
                // With no leader known, the next heartbeat tries the next server.
                let named = hint.and_then(|h| self.settings.servers.iter().position(|s| *s == h));
                if let Some(leader) = named.filter(|l| *l != self.server) {
                    self.server = leader;
                    self.ping_answered = true;
                    self.ping(ctx);
                }
            }
            ZkAnswer::Result { result, events, .. } => {
                self.ping_answered = true;
                self.events(ctx, &events);
                if result == ZkResult::SessionExpired {
                    self.expired(ctx);
                }
            }
        }
    }

    /// Processes watch events in order.
    fn events(&mut self, ctx: &mut LockCtx<'_>, events: &[WatchEvent]) {
        for event in events {
            if event.number != self.acked + 1 {
                continue;
            }
            self.acked = event.number;
            let herd = self.settings.variant == LockVariant::Herd;
            let ours = match self.step {
                Step::Listing | Step::Watching | Step::Waiting if herd => {
                    event.path == LOCK_DIR && event.kind == EventKind::NodeChildrenChanged
                }
                Step::Watching | Step::Waiting => self.watched.as_deref() == Some(event.path.as_str()),
                _ => false,
            };
            if !ours {
                continue;
            }
            ctx.observe(LockObs::Woken { by_release: event.by_delete, zxid: event.zxid });
            match self.step {
                Step::Waiting => self.list(ctx),
                _ => self.woken_early = true,
            }
        }
    }

    /// The session is gone: whatever this client believed it held, it now knows it lost.
    fn expired(&mut self, ctx: &mut LockCtx<'_>) {
        if self.holding
            && let Some(token) = self.my_node.clone()
        {
            ctx.observe(LockObs::Abandoned { token });
        }
        self.holding = false;
        self.my_node = None;
        if let Some(timer) = self.timeout.take() {
            ctx.cancel_timer(timer);
        }
        self.connect(ctx);
    }

    fn on_result(&mut self, ctx: &mut LockCtx<'_>, result: ZkResult) {
        if result == ZkResult::SessionExpired {
            return self.expired(ctx);
        }
        match (self.step, result) {
            (Step::Connecting, ZkResult::Connected { session }) => {
                self.session = Some(session);
                self.ping_answered = true;
                self.schedule_ping(ctx);
                self.schedule_attempt(ctx);
            }
            (Step::Connecting, _) => self.resend(ctx),
            (Step::MakingDir, _) => {
                self.dir_made = true;
                self.create(ctx)
            }
            (Step::Creating, ZkResult::Created { path, zxid }) => {
                self.my_node = Some(path);
                self.my_zxid = zxid;
                self.list(ctx);
            }
            (Step::Creating, _) => self.schedule_attempt(ctx),
            (Step::Finding, ZkResult::Children(children)) => {
                let prefix = format!("{}-lock-", self.guid(ctx.id()));
                match children.into_iter().find(|c| c.starts_with(&prefix)) {
                    Some(name) => {
                        let path = format!("{LOCK_DIR}/{name}");
                        self.my_node = Some(path.clone());
                        self.send_op(ctx, ZkOp::Exists { path, watch: false }, Step::Stat);
                    }
                    None => self.create(ctx),
                }
            }
            (Step::Stat, ZkResult::Stat(Some(stat))) => {
                self.my_zxid = stat.czxid;
                self.list(ctx);
            }
            (Step::Stat | Step::Finding, _) => self.create(ctx),
            (Step::Listing, ZkResult::Children(children)) => self.on_children(ctx, children),
            (Step::Listing, _) => self.schedule_attempt(ctx),
            (Step::Watching, ZkResult::Stat(stat)) => {
                if stat.is_none() || self.woken_early {
                    // Gone already (or its event came first): look again.
                    self.list(ctx);
                } else {
                    self.step = Step::Waiting;
                }
            }
            (Step::Deleting, _) => self.schedule_attempt(ctx),
            _ => {}
        }
    }

    /// The recipe's decision: hold the lock, or watch the next lower node.
    fn on_children(&mut self, ctx: &mut LockCtx<'_>, children: Vec<String>) {
        let Some(mine) = self.my_node.clone() else {
            return self.schedule_attempt(ctx);
        };
        let mut ours: Vec<&String> = children.iter().filter(|c| c.contains("lock-")).collect();
        ours.sort_by_key(|c| sequence(c));
        let my_name = &mine[LOCK_DIR.len() + 1..];
        let Some(position) = ours.iter().position(|c| c.as_str() == my_name) else {
            // Our node is gone (our session expired and a new one began): start over.
            return self.schedule_attempt(ctx);
        };
        if position == 0 {
            return self.acquired(ctx, mine);
        }
        if self.settings.variant == LockVariant::Herd {
            // The herd: the children watch set by the listing wakes this client at every
            // change under the lock node.
            self.watched = Some(LOCK_DIR.into());
            if self.woken_early {
                // A change came while the listing was on its way: list again.
                return self.list(ctx);
            }
            self.step = Step::Waiting;
            return;
        }
        let lower = format!("{LOCK_DIR}/{}", ours[position - 1]);
        self.watched = Some(lower.clone());
        self.woken_early = false;
        self.send_op(ctx, ZkOp::Exists { path: lower, watch: true }, Step::Watching);
    }

    fn acquired(&mut self, ctx: &mut LockCtx<'_>, token: String) {
        let waited_ns = ctx.now().saturating_sub(self.cycle_start_ns.take().unwrap_or(ctx.now()));
        let attempts = std::mem::take(&mut self.cycle_requests);
        self.holding = true;
        ctx.observe(LockObs::Generation { token: token.clone(), generation: self.my_zxid });
        // The recipe's holder believes it holds the lock until it deletes its node or
        // hears that its session expired: no clock bounds the belief.
        let fence = self.fence();
        ctx.observe(LockObs::Acquired {
            token: token.clone(),
            valid_until_local_ns: u64::MAX,
            fence,
            waited_ns,
            attempts,
        });
        self.storage_req += 1;
        let msg = LockMsg::Read { req: self.storage_req, holder: token, fence };
        self.storage_request(ctx, msg, Step::Reading);
    }

    fn on_storage(&mut self, ctx: &mut LockCtx<'_>, reply: StorageReply) {
        match (self.step, reply) {
            (Step::Reading, StorageReply::Value(value)) => {
                self.value = value;
                if let Some(timer) = self.timeout.take() {
                    ctx.cancel_timer(timer);
                }
                self.step = Step::Working;
                let [min, max] = self.settings.work_ms;
                let work = ctx.rng().random_range(min..=max.max(min)) * MS;
                ctx.set_timer(work, TIMER_WORK);
            }
            (Step::Writing, StorageReply::Written) => {
                let token = self.my_node.clone().unwrap_or_default();
                ctx.observe(LockObs::CriticalSectionDone { token });
                self.release(ctx);
            }
            (Step::Reading | Step::Writing, StorageReply::Rejected { .. }) => self.release(ctx),
            _ => {}
        }
    }

    fn release(&mut self, ctx: &mut LockCtx<'_>) {
        let Some(path) = self.my_node.clone() else {
            return self.schedule_attempt(ctx);
        };
        if self.holding {
            ctx.observe(LockObs::Released { token: path.clone() });
        }
        self.holding = false;
        self.send_op(ctx, ZkOp::Delete { path, version: None }, Step::Deleting);
    }
}

/// The sequence number a sequential node's name ends with.
pub fn sequence(name: &str) -> u64 {
    name.get(name.len().saturating_sub(10)..).and_then(|s| s.parse().ok()).unwrap_or(u64::MAX)
}
