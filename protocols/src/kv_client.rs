//! The shared client of the KV-style protocols (Raft, the example `register`, and the
//! coordination service and the Dynamo-style store to come): the workload, finding the
//! leader or coordinator, redirects, retries with timeouts, sessions with sequence
//! numbers, and each operation's outcome recorded honestly (ok, fail, info).
//!
//! A protocol plugs in through [`KvTransport`]: how a request and a reply look among
//! its messages, and how a client observation looks among its observations.

use std::marker::PhantomData;
use std::rc::Rc;

use checker::history::EventType;
use rand::RngExt;
use serde::Serialize;
use sim_core::{Ctx, MS, NodeId, TimerId};

use crate::codec::{SlotPair, number};
use crate::kv::{ClientObs, KvOp, KvResult, KvWorkload};

/// A server's answer to a client request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Answer {
    Result(KvResult),
    /// This server cannot serve the request; `hint` is the one it believes can.
    NotLeader {
        hint: Option<NodeId>,
    },
}

/// How a protocol's messages carry the client's requests and the servers' replies.
pub trait KvTransport: 'static {
    type Msg;
    type Obs;
    /// The request for operation `seq` of `session`, the client's `attempt`-th send of it.
    fn request(session: u64, seq: u64, attempt: u64, op: KvOp) -> Self::Msg;
    /// A reply's operation, attempt and answer; `None` if `msg` is no reply.
    fn reply(msg: Self::Msg) -> Option<(u64, u64, Answer)>;
    /// A client observation as the protocol's observation.
    fn observation(obs: ClientObs) -> Self::Obs;
}

/// Implements [`KvTransport`] as `$name` for a protocol whose message enum `$msg` has
/// the variants `Request { client, seq, attempt, op }` and `Reply { seq, attempt, answer }`,
/// and whose observation type `$obs` wraps a client observation with `$wrap`.
#[macro_export]
macro_rules! kv_transport {
    ($(#[$meta:meta])* $name:ident, $msg:ident, $obs:ty, $wrap:expr) => {
        $(#[$meta])*
        pub struct $name;

        impl $crate::kv_client::KvTransport for $name {
            type Msg = $msg;
            type Obs = $obs;

            fn request(session: u64, seq: u64, attempt: u64, op: $crate::kv::KvOp) -> $msg {
                $msg::Request { client: session, seq, attempt, op }
            }

            #[allow(unreachable_patterns)] // A message type of two variants needs no wildcard.
            fn reply(msg: $msg) -> Option<(u64, u64, $crate::kv_client::Answer)> {
                match msg {
                    $msg::Reply { seq, attempt, answer } => Some((seq, attempt, answer)),
                    _ => None,
                }
            }

            fn observation(obs: $crate::kv::ClientObs) -> $obs {
                $wrap(obs)
            }
        }
    };
}

/// What every client of a cluster shares.
#[derive(Clone, Debug)]
pub struct KvClientSettings {
    /// The servers a client may ask, in the order it tries them.
    pub servers: Vec<NodeId>,
    /// The first client's node id and the number of clients.
    pub first_client: NodeId,
    pub clients: usize,
    pub workload: KvWorkload,
    /// Clients start no operation at or after this local instant (ns).
    pub clients_stop_ns: u64,
    /// Clients start only reads at or after this local instant (ns).
    pub writes_until_ns: u64,
}

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
pub struct KvClient<T: KvTransport> {
    id: NodeId,
    settings: Rc<KvClientSettings>,
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
    transport: PhantomData<fn() -> T>,
}

type ClientCtx<'a, T> = Ctx<'a, <T as KvTransport>::Msg, <T as KvTransport>::Obs>;

impl<T: KvTransport> KvClient<T>
where
    T::Msg: sim_core::engine::Data,
    T::Obs: sim_core::engine::Data,
{
    pub fn new(id: NodeId, settings: Rc<KvClientSettings>) -> KvClient<T> {
        KvClient {
            id,
            settings,
            session: 0,
            process: 0,
            seq: 0,
            leader_guess: 0,
            in_flight: None,
            next_due_ns: 0,
            incarnations: SlotPair::new(KEY_INCARNATION),
            transport: PhantomData,
        }
    }

    fn index(&self) -> u64 {
        (self.id - self.settings.first_client) as u64
    }

    /// The server the client asks now.
    fn server(&self) -> NodeId {
        self.settings.servers[self.leader_guess]
    }

    pub fn on_start(&mut self, ctx: &mut ClientCtx<'_, T>) {
        // A restarted client is a new session and a new process: its operation in flight
        // at the crash stays indeterminate.
        // The newest whole slot counts the incarnations begun; a torn one was being
        // written when the client died, before this session id went anywhere.
        let incarnation = self.incarnations.read(ctx.storage(), |r| r.u64()).unwrap_or(0);
        self.incarnations.write(ctx.storage(), number(incarnation + 1));
        let clients = self.settings.clients as u64;
        self.session = self.index() + clients * incarnation;
        self.process = self.session;
        self.leader_guess = ctx.rng().random_range(0..self.settings.servers.len());
        self.next_due_ns = ctx.now() + self.draw_interval(ctx);
        self.schedule_next(ctx);
    }

    /// The time between two operations' starts: uniform in 0.5–1.5 of the mean.
    fn draw_interval(&self, ctx: &mut ClientCtx<'_, T>) -> u64 {
        let mean_ns = 1e9 / self.settings.workload.rate_per_client;
        (mean_ns * ctx.rng().random_range(0.5..1.5)) as u64
    }

    fn schedule_next(&mut self, ctx: &mut ClientCtx<'_, T>) {
        let at = self.next_due_ns.max(ctx.now());
        if at < self.settings.clients_stop_ns {
            ctx.set_timer(at - ctx.now(), TIMER_NEXT_OP);
        }
    }

    pub fn on_timer(&mut self, ctx: &mut ClientCtx<'_, T>, timer: TimerId, tag: u64) {
        match tag {
            TIMER_NEXT_OP => self.invoke(ctx),
            TIMER_REQUEST if self.in_flight.as_ref().is_some_and(|f| f.request_timer == Some(timer)) => {
                self.leader_guess = (self.leader_guess + 1) % self.settings.servers.len();
                self.send_request(ctx);
            }
            TIMER_GIVE_UP if self.in_flight.as_ref().is_some_and(|f| f.give_up_timer == timer) => self.give_up(ctx),
            _ => {}
        }
    }

    fn invoke(&mut self, ctx: &mut ClientCtx<'_, T>) {
        self.next_due_ns = ctx.now() + self.draw_interval(ctx);
        self.seq += 1;
        let tag = format!("c{}.{}", self.session, self.seq);
        let mut op = self.settings.workload.next_op(ctx.rng(), &tag);
        if ctx.now() >= self.settings.writes_until_ns {
            op = KvOp::Get { key: op.key().to_owned() };
        }
        ctx.observe(T::observation(ClientObs {
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

    fn send_request(&mut self, ctx: &mut ClientCtx<'_, T>) {
        let request_ns = (self.settings.workload.request_timeout_ms * MS as f64) as u64;
        self.arm_request_timer(ctx, request_ns);
        let Some(flight) = self.in_flight.as_mut() else {
            return;
        };
        flight.attempt += 1;
        let request = T::request(self.session, flight.seq, flight.attempt, flight.op.clone());
        ctx.send(self.server(), request);
    }

    /// (Re)arms the timer after which the client tries the next server.
    fn arm_request_timer(&mut self, ctx: &mut ClientCtx<'_, T>, after_ns: u64) {
        let timer = ctx.set_timer(after_ns, TIMER_REQUEST);
        if let Some(previous) = self.in_flight.as_mut().and_then(|f| f.request_timer.replace(timer)) {
            ctx.cancel_timer(previous);
        }
    }

    pub fn on_message(&mut self, ctx: &mut ClientCtx<'_, T>, from: NodeId, msg: T::Msg) {
        let Some((seq, attempt, answer)) = T::reply(msg) else {
            return;
        };
        if self.ignore_stale_reply(seq) {
            return;
        }
        let hinted = |hint: Option<NodeId>| hint.filter(|leader| *leader != from).and_then(|l| self.index_of(l));
        match answer {
            // A redirect answers one send: one of an earlier send (late, or duplicated
            // by the network) was already acted on.
            Answer::NotLeader { .. } if self.in_flight.as_ref().is_some_and(|f| f.attempt != attempt) => {}
            Answer::NotLeader { hint } if hinted(hint).is_some() => {
                self.leader_guess = hinted(hint).expect("checked");
                self.send_request(ctx);
            }
            Answer::NotLeader { .. } => {
                // No leader known there: wait a little before asking the next server, so
                // that a cluster without a leader is not flooded while it elects one.
                self.guess(from);
                let backoff_ns = (self.settings.workload.no_leader_backoff_ms * MS as f64) as u64;
                self.arm_request_timer(ctx, backoff_ns);
            }
            Answer::Result(result) => {
                self.guess(from);
                self.complete(ctx, result);
            }
        }
    }

    /// The position of `server` among the servers this client knows.
    fn index_of(&self, server: NodeId) -> Option<usize> {
        self.settings.servers.iter().position(|s| *s == server)
    }

    /// Asks `server` next, if it is a server this client knows.
    fn guess(&mut self, server: NodeId) {
        if let Some(index) = self.index_of(server) {
            self.leader_guess = index;
        }
    }

    fn ignore_stale_reply(&self, seq: u64) -> bool {
        self.in_flight.as_ref().is_none_or(|f| f.seq != seq)
    }

    fn complete(&mut self, ctx: &mut ClientCtx<'_, T>, result: KvResult) {
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
        ctx.observe(T::observation(ClientObs { process: self.process, kind, op: flight.op, value }));
        self.schedule_next(ctx);
    }

    fn give_up(&mut self, ctx: &mut ClientCtx<'_, T>) {
        let flight = self.in_flight.take().expect("give-up timer of the operation in flight");
        if let Some(timer) = flight.request_timer {
            ctx.cancel_timer(timer);
        }
        // The operation may still take effect: indeterminate, and this client continues as
        // a new process.
        ctx.observe(T::observation(ClientObs {
            process: self.process,
            kind: EventType::Info,
            op: flight.op,
            value: None,
        }));
        self.process += self.settings.clients as u64 * 1_000_000;
        self.schedule_next(ctx);
    }
}
