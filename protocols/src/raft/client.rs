//! A Raft client: finds the leader, retries with timeouts, records each operation's
//! outcome honestly.

use std::rc::Rc;

use checker::history::EventType;
use rand::RngExt;
use sim_core::{MS, NodeId, TimerId};

use super::{Answer, Msg, RaftCtx, RaftObs, Settings};
use crate::codec::{SlotPair, number};
use crate::kv::{ClientObs, KvOp, KvResult};

const TIMER_NEXT_OP: u64 = 1;
const TIMER_REQUEST: u64 = 2;
const TIMER_GIVE_UP: u64 = 3;

/// Two slots, written alternately: a record torn by a crash leaves the other whole.
const KEY_INCARNATION: [&str; 2] = ["client/incarnation/0", "client/incarnation/1"];

struct InFlight {
    seq: u64,
    /// Sends of this operation so far; a redirect is acted on only for the latest.
    attempt: u64,
    op: KvOp,
    request_timer: Option<TimerId>,
    give_up_timer: TimerId,
}

/// One client. Its history process id changes after every operation that ends
/// indeterminate, and after a restart, as Jepsen's clients do.
pub struct Client {
    id: NodeId,
    settings: Rc<Settings>,
    /// The session id the servers deduplicate by.
    session: u64,
    process: u64,
    seq: u64,
    leader_guess: NodeId,
    in_flight: Option<InFlight>,
    /// When (local time) the next operation is due: operations start at the workload's
    /// rate, or as soon as the one before completes if that takes longer.
    next_due_ns: u64,
    /// Where the count of incarnations begun is written.
    incarnations: SlotPair,
}

impl Client {
    pub fn new(id: NodeId, settings: Rc<Settings>) -> Client {
        Client {
            id,
            settings,
            session: 0,
            process: 0,
            seq: 0,
            leader_guess: 0,
            in_flight: None,
            next_due_ns: 0,
            incarnations: SlotPair::new(KEY_INCARNATION),
        }
    }

    fn index(&self) -> u64 {
        (self.id - self.settings.servers) as u64
    }

    pub fn on_start(&mut self, ctx: &mut RaftCtx<'_>) {
        // A restarted client is a new session and a new process: its operation in flight
        // at the crash stays indeterminate.
        // The newest whole slot counts the incarnations begun; a torn one was being
        // written when the client died, before this session id went anywhere.
        let incarnation = self.incarnations.read(ctx.storage(), |r| r.u64()).unwrap_or(0);
        self.incarnations.write(ctx.storage(), number(incarnation + 1));
        let clients = self.settings.clients as u64;
        self.session = self.index() + clients * incarnation;
        self.process = self.session;
        self.leader_guess = ctx.rng().random_range(0..self.settings.servers);
        self.next_due_ns = ctx.now() + self.draw_interval(ctx);
        self.schedule_next(ctx);
    }

    /// The time between two operations' starts: uniform in 0.5–1.5 of the mean.
    fn draw_interval(&self, ctx: &mut RaftCtx<'_>) -> u64 {
        let mean_ns = 1e9 / self.settings.workload.rate_per_client;
        (mean_ns * ctx.rng().random_range(0.5..1.5)) as u64
    }

    fn schedule_next(&mut self, ctx: &mut RaftCtx<'_>) {
        let at = self.next_due_ns.max(ctx.now());
        if at < self.settings.clients_stop_ns {
            ctx.set_timer(at - ctx.now(), TIMER_NEXT_OP);
        }
    }

    pub fn on_timer(&mut self, ctx: &mut RaftCtx<'_>, timer: TimerId, tag: u64) {
        match tag {
            TIMER_NEXT_OP => self.invoke(ctx),
            TIMER_REQUEST if self.in_flight.as_ref().is_some_and(|f| f.request_timer == Some(timer)) => {
                self.leader_guess = (self.leader_guess + 1) % self.settings.servers;
                self.send_request(ctx);
            }
            TIMER_GIVE_UP if self.in_flight.as_ref().is_some_and(|f| f.give_up_timer == timer) => self.give_up(ctx),
            _ => {}
        }
    }

    fn invoke(&mut self, ctx: &mut RaftCtx<'_>) {
        self.next_due_ns = ctx.now() + self.draw_interval(ctx);
        self.seq += 1;
        let tag = format!("c{}.{}", self.session, self.seq);
        let op = self.settings.workload.next_op(ctx.rng(), &tag);
        ctx.observe(RaftObs::Client(ClientObs {
            process: self.process,
            kind: EventType::Invoke,
            op: op.clone(),
            value: None,
        }));
        let give_up_ns = (self.settings.workload.op_timeout_ms * MS as f64) as u64;
        let give_up_timer = ctx.set_timer(give_up_ns, TIMER_GIVE_UP);
        self.in_flight = Some(InFlight { seq: self.seq, attempt: 0, op, request_timer: None, give_up_timer });
        self.send_request(ctx);
    }

    fn send_request(&mut self, ctx: &mut RaftCtx<'_>) {
        let request_ns = (self.settings.workload.request_timeout_ms * MS as f64) as u64;
        self.arm_request_timer(ctx, request_ns);
        let Some(flight) = self.in_flight.as_mut() else {
            return;
        };
        flight.attempt += 1;
        let request =
            Msg::Request { client: self.session, seq: flight.seq, attempt: flight.attempt, op: flight.op.clone() };
        ctx.send(self.leader_guess, request);
    }

    /// (Re)arms the timer after which the client tries the next server.
    fn arm_request_timer(&mut self, ctx: &mut RaftCtx<'_>, after_ns: u64) {
        let timer = ctx.set_timer(after_ns, TIMER_REQUEST);
        if let Some(previous) = self.in_flight.as_mut().and_then(|f| f.request_timer.replace(timer)) {
            ctx.cancel_timer(previous);
        }
    }

    pub fn on_message(&mut self, ctx: &mut RaftCtx<'_>, from: NodeId, msg: Msg) {
        let Msg::Reply { seq, attempt, answer } = msg else {
            return;
        };
        if self.ignore_stale_reply(seq) {
            return;
        }
        match answer {
            // A redirect answers one send: one of an earlier send (late, or duplicated
            // by the network) was already acted on.
            Answer::NotLeader { .. } if self.in_flight.as_ref().is_some_and(|f| f.attempt != attempt) => {}
            Answer::NotLeader { hint: Some(leader) } if leader != from => {
                self.leader_guess = leader;
                self.send_request(ctx);
            }
            Answer::NotLeader { .. } => {
                // No leader known there: wait a little before asking the next server, so
                // that a cluster without a leader is not flooded while it elects one.
                self.leader_guess = from;
                let backoff_ns = (self.settings.workload.no_leader_backoff_ms * MS as f64) as u64;
                self.arm_request_timer(ctx, backoff_ns);
            }
            Answer::Result(result) => {
                self.leader_guess = from;
                self.complete(ctx, result);
            }
        }
    }

    fn ignore_stale_reply(&self, seq: u64) -> bool {
        self.in_flight.as_ref().is_none_or(|f| f.seq != seq)
    }

    fn complete(&mut self, ctx: &mut RaftCtx<'_>, result: KvResult) {
        let flight = self.in_flight.take().expect("a reply to the operation in flight");
        if let Some(timer) = flight.request_timer {
            ctx.cancel_timer(timer);
        }
        ctx.cancel_timer(flight.give_up_timer);
        let (kind, value) = match result {
            KvResult::Value(value) => (EventType::Ok, Some(value)),
            KvResult::Done => (EventType::Ok, None),
            // A cas that did not match certainly did not take effect.
            KvResult::CasMismatch => (EventType::Fail, None),
        };
        ctx.observe(RaftObs::Client(ClientObs { process: self.process, kind, op: flight.op, value }));
        self.schedule_next(ctx);
    }

    fn give_up(&mut self, ctx: &mut RaftCtx<'_>) {
        let flight = self.in_flight.take().expect("give-up timer of the operation in flight");
        if let Some(timer) = flight.request_timer {
            ctx.cancel_timer(timer);
        }
        // The operation may still take effect: indeterminate, and this client continues as
        // a new process.
        ctx.observe(RaftObs::Client(ClientObs {
            process: self.process,
            kind: EventType::Info,
            op: flight.op,
            value: None,
        }));
        self.process += self.settings.clients as u64 * 1_000_000;
        self.schedule_next(ctx);
    }
}
