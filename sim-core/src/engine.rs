//! The discrete-event engine: the event queue, the `Process` trait, its `Ctx`, and `Sim`.
//!
//! Events are ordered by `(time, sequence number)`. The sequence number is taken from one
//! counter at scheduling time, so two events at the same instant run in the order they
//! were scheduled: nothing depends on memory addresses or hash order. Payloads live in a
//! slab and the heap holds only `(time, seq, slot)`, so heap moves stay cheap whatever the
//! protocol's message size.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;

use serde::Serialize;

use crate::SimError;
use crate::clock::Clock;
use crate::fault::{Fault, drift_to_ppm};
use crate::fingerprint::{Fingerprint, hash_value};
use crate::network::{Delay, LinkModel, NetworkConfig, ms_to_ns, signed_ms_to_ns};
use crate::rng::{SimRng, derive_rng, node_label};
use crate::storage::Storage;
use crate::trace::{DropReason, StopReason, TraceEvent, TraceSink};

/// A node's index in the cluster (servers and clients alike).
pub type NodeId = usize;

/// The most nodes one simulation may have.
pub const NODES_MAX: usize = 1024;

/// What [`Sim::step_until`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// One event was handled.
    Handled,
    /// Nothing is due by the bound given.
    Idle,
    /// The run has stopped.
    Stopped(StopReason),
}

/// A protocol role: a sans-I/O state machine driven by the engine.
///
/// Handlers act only through the [`Ctx`]. A protocol puts all its roles (servers,
/// clients, storage services) in one enum implementing this trait, so dispatch is static.
pub trait Process {
    type Msg: Data;
    type Obs: Data;

    /// Called when the node starts, and again after every restart, when the process has
    /// just been rebuilt and should recover from `ctx.storage()`.
    fn on_start(&mut self, ctx: &mut Ctx<'_, Self::Msg, Self::Obs>);
    /// A message from `from` arrived.
    fn on_message(&mut self, ctx: &mut Ctx<'_, Self::Msg, Self::Obs>, from: NodeId, msg: Self::Msg);
    /// Timer `timer`, set with `tag`, fired.
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self::Msg, Self::Obs>, timer: TimerId, tag: u64);
}

/// What messages and observations must be: cloneable (duplication), hashable into the
/// fingerprint with its fixed hasher, and serialisable into the trace.
pub trait Data: Clone + Debug + Hash + Serialize + 'static {}

impl<T: Clone + Debug + Hash + Serialize + 'static> Data for T {}

/// A handle to a pending timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId {
    index: u32,
    generation: u64,
}

/// A typed fact a node emitted, stamped with true global time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Observation<O> {
    pub t_ns: u64,
    pub node: NodeId,
    pub obs: O,
}

/// Bounds that end a run with a stated reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub max_events: u64,
    pub max_time_ns: u64,
    pub max_pending: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_events: 100_000_000, max_time_ns: 3_600 * 1_000_000_000, max_pending: 1_000_000 }
    }
}

/// Everything that fixes a simulation besides its processes and faults.
#[derive(Clone, Debug, Default)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    pub network: NetworkConfig,
    pub limits: Limits,
}

/// Counters of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Metrics {
    pub events: u64,
    pub messages_sent: u64,
    pub messages_delivered: u64,
    pub messages_duplicated: u64,
    pub dropped_partition: u64,
    pub dropped_loss: u64,
    pub dropped_node_down: u64,
    pub timers_fired: u64,
    pub faults_applied: u64,
    pub observations: u64,
    pub pending_max: u64,
    /// The most events one busy node had waiting (processing costs only).
    pub queue_len_max: u64,
}

impl Metrics {
    /// Messages lost for any reason.
    pub fn messages_dropped(&self) -> u64 {
        self.dropped_partition + self.dropped_loss + self.dropped_node_down
    }
}

// Fingerprint event kinds. Part of the fingerprint's definition: never renumber.
const FP_START: u64 = 1;
const FP_SEND: u64 = 2;
const FP_DUPLICATE: u64 = 3;
const FP_DELIVER: u64 = 4;
const FP_DROP: u64 = 5;
const FP_TIMER: u64 = 6;
const FP_FAULT: u64 = 7;
const FP_RESUME: u64 = 8;
const FP_OBSERVE: u64 = 9;
const FP_STOP: u64 = 10;
const FP_SYNC_DONE: u64 = 11;
const FP_ACT: u64 = 12;

enum Payload<M, O> {
    Start {
        node: u32,
    },
    Deliver {
        from: u32,
        to: u32,
        msg_id: u64,
        msg: M,
    },
    Timer {
        node: u32,
        index: u32,
        generation: u64,
        version: u32,
    },
    Fault {
        index: u32,
    },
    Resume {
        node: u32,
        pause_id: u64,
    },
    /// A node's disk completed a sync request covering its first `upto` writes.
    SyncDone {
        node: u32,
        incarnation: u32,
        upto: u64,
    },
    /// What a handler did after a sync (or while its handling took time), released when
    /// the sync completed (or the handling ended).
    Held {
        node: u32,
        incarnation: u32,
        effect: Box<Held<M, O>>,
    },
    /// A busy node is free: it takes the next event from its queue.
    Idle {
        node: u32,
    },
}

/// An effect held back by a cost.
enum Held<M, O> {
    Send { to: u32, msg: M, kind: Option<String> },
    Observe(O),
}

#[derive(PartialEq, Eq)]
struct Entry {
    time: u64,
    seq: u64,
    slot: u32,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse to pop the earliest (time, seq) first.
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Clone, Copy, Debug)]
struct TimerSlot {
    deadline_local_ns: u64,
    tag: u64,
    generation: u64,
    version: u32,
    active: bool,
}

struct NodeState {
    up: bool,
    incarnation: u32,
    /// How many clock faults have struck the node (offset, drift or jump).
    clock_changes: u32,
    paused_until_ns: Option<u64>,
    pause_id: u64,
    deferred: Vec<u32>,
    clock: Clock,
    rng: SimRng,
    storage: Storage,
    timers: Vec<TimerSlot>,
    free_timers: Vec<u32>,
    timer_generation: u64,
    /// Costs (`crate::costs`): none by default.
    sync_delay: Option<Delay>,
    processing: Option<Delay>,
    /// When the node's disk has finished every sync asked of it, and the sync calls the
    /// engine has seen (each may have asked the disk for a new request).
    disk_free_ns: u64,
    sync_calls_seen: u64,
    sync_requested_seen: u64,
    /// When the node finishes handling its current event (or waiting for the sync it
    /// asked), and the events waiting for it (slot, arrival time); whether an `Idle` is
    /// due.
    busy_until_ns: u64,
    waiting: VecDeque<(u32, u64)>,
    idle_scheduled: bool,
}

impl NodeState {
    /// Whether effects of this node's handlers may be held back by a cost.
    fn costly(&self) -> bool {
        self.sync_delay.is_some() || self.processing.is_some()
    }
}

/// The engine's state apart from the processes; a [`Ctx`] borrows it during a handler.
pub struct Core<M, O> {
    now_ns: u64,
    seq: u64,
    next_msg_id: u64,
    queue: BinaryHeap<Entry>,
    slab: Vec<Option<Payload<M, O>>>,
    free_slots: Vec<u32>,
    nodes: Vec<NodeState>,
    nodes_count: usize,
    network_rng: SimRng,
    nemesis_rng: SimRng,
    cut: Vec<bool>,
    link_of: Vec<u32>,
    link_models: Vec<LinkModel>,
    /// Latency by message kind (`Ctx::send_as`), overriding the link's.
    kind_models: Vec<(String, crate::network::KindModel)>,
    base_link_of: Vec<u32>,
    base_models_count: usize,
    fifo_last_ns: Vec<u64>,
    faults: Vec<Fault>,
    metrics: Metrics,
    fingerprint: Fingerprint,
    observations: Vec<Observation<O>>,
    sink: Option<Box<dyn TraceSink<M, O>>>,
    limits: Limits,
    seed: u64,
    /// Draws of sync latencies and processing costs (only when a cost is set).
    costs_rng: Option<SimRng>,
    /// How long each event that found its node busy waited.
    queue_delays_ns: Vec<u64>,
}

impl<M: Data, O: Data> Core<M, O> {
    fn schedule(&mut self, time_ns: u64, payload: Payload<M, O>) {
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slab[slot as usize] = Some(payload);
                slot
            }
            None => {
                self.slab.push(Some(payload));
                (self.slab.len() - 1) as u32
            }
        };
        self.reschedule_slot(time_ns, slot);
    }

    fn reschedule_slot(&mut self, time_ns: u64, slot: u32) {
        let seq = self.seq;
        self.seq += 1;
        self.queue.push(Entry { time: time_ns, seq, slot });
    }

    fn take_slot(&mut self, slot: u32) -> Payload<M, O> {
        let payload = self.slab[slot as usize].take();
        self.free_slots.push(slot);
        payload.expect("a queued slot holds a payload")
    }

    #[inline]
    fn record<'e>(&mut self, event: impl FnOnce() -> TraceEvent<'e, M, O>) {
        if let Some(sink) = self.sink.as_mut() {
            sink.record(&event());
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: M, kind: Option<&str>) {
        assert!(to < self.nodes_count, "node {from} sent to unknown node {to}");
        self.metrics.messages_sent += 1;
        let msg_id = self.next_msg_id;
        self.next_msg_id += 1;
        let link = from * self.nodes_count + to;
        let now = self.now_ns;
        let msg_hash = hash_value(&msg);
        if self.cut[link] {
            self.fingerprint.fold_event(&[FP_SEND, now, link as u64, msg_id, msg_hash]);
            self.drop_message(from, to, msg_id, DropReason::Partitioned, Some(&msg));
            return;
        }
        let model = &self.link_models[self.link_of[link] as usize];
        if model.draw_drop(&mut self.network_rng) {
            self.fingerprint.fold_event(&[FP_SEND, now, link as u64, msg_id, msg_hash]);
            self.drop_message(from, to, msg_id, DropReason::Loss, Some(&msg));
            return;
        }
        let kind = kind.and_then(|k| self.kind_models.iter().position(|(name, _)| name == k));
        let deliver_ns = self.delivery_time(link, kind);
        let duplicate = self.link_models[self.link_of[link] as usize].draw_duplicate(&mut self.network_rng);
        self.fingerprint.fold_event(&[FP_SEND, now, link as u64, msg_id, msg_hash, deliver_ns]);
        if let Some(sink) = self.sink.as_mut() {
            sink.record(&TraceEvent::Send { t_ns: now, from, to, msg_id, deliver_ns, msg: &msg });
        }
        if duplicate {
            let copy_ns = self.delivery_time(link, kind);
            self.metrics.messages_duplicated += 1;
            self.fingerprint.fold_event(&[FP_DUPLICATE, msg_id, copy_ns]);
            self.record(|| TraceEvent::Duplicate { t_ns: now, from, to, msg_id, deliver_ns: copy_ns });
            let copy = msg.clone();
            self.schedule(copy_ns, Payload::Deliver { from: from as u32, to: to as u32, msg_id, msg: copy });
        }
        self.schedule(deliver_ns, Payload::Deliver { from: from as u32, to: to as u32, msg_id, msg });
    }

    fn delivery_time(&mut self, link: usize, kind: Option<usize>) -> u64 {
        let model = &self.link_models[self.link_of[link] as usize];
        let delay = match kind {
            Some(index) => self.kind_models[index].1.sample_delay_ns(&mut self.network_rng),
            None => model.sample_delay_ns(&mut self.network_rng),
        };
        let mut at = self.now_ns.saturating_add(delay);
        if model.fifo {
            at = at.max(self.fifo_last_ns[link]);
            self.fifo_last_ns[link] = at;
        }
        at
    }

    fn drop_message(&mut self, from: NodeId, to: NodeId, msg_id: u64, reason: DropReason, msg: Option<&M>) {
        match reason {
            DropReason::Partitioned => self.metrics.dropped_partition += 1,
            DropReason::Loss => self.metrics.dropped_loss += 1,
            DropReason::NodeDown => self.metrics.dropped_node_down += 1,
        }
        let now = self.now_ns;
        self.fingerprint.fold_event(&[FP_DROP, now, msg_id, reason.code()]);
        if let Some(sink) = self.sink.as_mut() {
            if let Some(msg) = msg {
                sink.record(&TraceEvent::Send { t_ns: now, from, to, msg_id, deliver_ns: now, msg });
            }
            sink.record(&TraceEvent::Drop { t_ns: now, from, to, msg_id, reason });
        }
    }

    fn set_timer(&mut self, node: NodeId, deadline_local_ns: u64, tag: u64) -> TimerId {
        let state = &mut self.nodes[node];
        state.timer_generation += 1;
        let slot = TimerSlot { deadline_local_ns, tag, generation: state.timer_generation, version: 0, active: true };
        let index = match state.free_timers.pop() {
            Some(index) => {
                state.timers[index as usize] = slot;
                index
            }
            None => {
                state.timers.push(slot);
                (state.timers.len() - 1) as u32
            }
        };
        let at = state.clock.global_at_local(deadline_local_ns, self.now_ns);
        let generation = slot.generation;
        self.schedule(at, Payload::Timer { node: node as u32, index, generation, version: 0 });
        TimerId { index, generation }
    }

    fn cancel_timer(&mut self, node: NodeId, timer: TimerId) -> bool {
        let state = &mut self.nodes[node];
        match state.timers.get_mut(timer.index as usize) {
            Some(slot) if slot.active && slot.generation == timer.generation => {
                slot.active = false;
                state.free_timers.push(timer.index);
                true
            }
            _ => false,
        }
    }

    /// After a clock change, every pending timer of `node` is due at a new global instant.
    fn reschedule_timers(&mut self, node: NodeId) {
        let now = self.now_ns;
        let count = self.nodes[node].timers.len();
        for index in 0..count {
            let state = &mut self.nodes[node];
            let slot = &mut state.timers[index];
            if !slot.active {
                continue;
            }
            slot.version += 1;
            let (generation, version) = (slot.generation, slot.version);
            let at = state.clock.global_at_local(slot.deadline_local_ns, now);
            self.schedule(at, Payload::Timer { node: node as u32, index: index as u32, generation, version });
        }
    }

    /// After `node` called `sync`: schedules the completion of a new disk request (behind
    /// any pending one) and returns when the newest request completes; 0 when no sync was
    /// called since the last look or syncs cost nothing.
    fn note_syncs(&mut self, node: NodeId) -> u64 {
        let now = self.now_ns;
        let state = &mut self.nodes[node];
        let Some(delay) = &state.sync_delay else { return 0 };
        let (calls, upto) = state.storage.sync_calls();
        if calls == state.sync_calls_seen {
            return 0;
        }
        state.sync_calls_seen = calls;
        if upto > state.sync_requested_seen {
            state.sync_requested_seen = upto;
            let rng = self.costs_rng.as_mut().expect("a cost has its stream");
            let done = state.disk_free_ns.max(now).saturating_add(delay.sample_ns(rng));
            state.disk_free_ns = done;
            // Like a server blocked in fsync, the node handles nothing else until it returns.
            state.busy_until_ns = state.busy_until_ns.max(done);
            let incarnation = state.incarnation;
            self.schedule(done, Payload::SyncDone { node: node as u32, incarnation, upto });
        }
        debug_assert!(self.nodes[node].disk_free_ns >= now, "a pending sync completes now or later");
        self.nodes[node].disk_free_ns
    }

    /// Holds `effect` of `node` until `at_ns`.
    fn hold(&mut self, node: NodeId, at_ns: u64, effect: Held<M, O>) {
        debug_assert!(at_ns > self.now_ns, "only an effect due later is held");
        let incarnation = self.nodes[node].incarnation;
        self.schedule(at_ns, Payload::Held { node: node as u32, incarnation, effect: Box::new(effect) });
    }

    fn observe(&mut self, node: NodeId, obs: O) {
        let now = self.now_ns;
        self.metrics.observations += 1;
        self.fingerprint.fold_event(&[FP_OBSERVE, now, node as u64, hash_value(&obs)]);
        if let Some(sink) = self.sink.as_mut() {
            sink.record(&TraceEvent::Observe { t_ns: now, node, obs: &obs });
        }
        self.observations.push(Observation { t_ns: now, node, obs });
    }
}

/// What a handler may do: the node's only window on the world.
pub struct Ctx<'a, M, O> {
    core: &'a mut Core<M, O>,
    node: NodeId,
    local_now_ns: u64,
    /// With costs: the global instant before which this handler's effects may not leave
    /// (the end of its handling, the completion of a sync it called).
    hold_until_ns: u64,
    costly: bool,
}

impl<M: Data, O: Data> Ctx<'_, M, O> {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.node
    }

    /// How many nodes the simulation has.
    pub fn nodes_count(&self) -> usize {
        self.core.nodes_count
    }

    /// Now, by this node's local clock, in nanoseconds.
    pub fn now(&self) -> u64 {
        self.local_now_ns
    }

    /// Sends `msg` to `to` through the virtual network.
    pub fn send(&mut self, to: NodeId, msg: M) {
        if self.dying() {
            // Struck by a crash during a write: nothing after it leaves the node.
            return;
        }
        if let Some(at) = self.held_until() {
            self.core.hold(self.node, at, Held::Send { to: to as u32, msg, kind: None });
            return;
        }
        self.core.send(self.node, to, msg, None);
    }

    /// With costs: when this handler's next effect may leave, if later than now.
    #[inline]
    fn held_until(&mut self) -> Option<u64> {
        if !self.costly {
            return None;
        }
        self.hold_until_ns = self.hold_until_ns.max(self.core.note_syncs(self.node));
        (self.hold_until_ns > self.core.now_ns).then_some(self.hold_until_ns)
    }

    /// Sends `msg` as a message of `kind`: its delay comes from the network's latency
    /// for that kind when the scenario gives one, else from the link's.
    pub fn send_as(&mut self, to: NodeId, msg: M, kind: &str) {
        if self.dying() {
            return;
        }
        if let Some(at) = self.held_until() {
            self.core.hold(self.node, at, Held::Send { to: to as u32, msg, kind: Some(kind.to_owned()) });
            return;
        }
        self.core.send(self.node, to, msg, Some(kind));
    }

    /// A timer that fires when the local clock has advanced by `after_ns`.
    pub fn set_timer(&mut self, after_ns: u64, tag: u64) -> TimerId {
        let deadline = self.local_now_ns.saturating_add(after_ns);
        self.core.set_timer(self.node, deadline, tag)
    }

    /// A timer that fires when the local clock reads `deadline_local_ns`.
    pub fn set_timer_at(&mut self, deadline_local_ns: u64, tag: u64) -> Result<TimerId, SimError> {
        if deadline_local_ns < self.local_now_ns {
            return Err(SimError::TimerInPast { deadline_ns: deadline_local_ns, now_ns: self.local_now_ns });
        }
        Ok(self.core.set_timer(self.node, deadline_local_ns, tag))
    }

    /// Cancels a pending timer; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.core.cancel_timer(self.node, timer)
    }

    /// This node's own random stream.
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.core.nodes[self.node].rng
    }

    /// This node's durable storage.
    pub fn storage(&mut self) -> &mut Storage {
        &mut self.core.nodes[self.node].storage
    }

    /// Emits a typed observation, stamped with true global time.
    pub fn observe(&mut self, obs: O) {
        if self.dying() {
            return;
        }
        if let Some(at) = self.held_until() {
            self.core.hold(self.node, at, Held::Observe(obs));
            return;
        }
        self.core.observe(self.node, obs);
    }

    fn dying(&self) -> bool {
        self.core.nodes[self.node].storage.dying().is_some()
    }
}

/// One simulation: the processes, the engine, the network and the faults.
pub struct Sim<P: Process> {
    procs: Vec<Option<P>>,
    factory: Box<dyn FnMut(NodeId) -> P>,
    core: Core<P::Msg, P::Obs>,
    stopped: Option<StopReason>,
}

impl<P: Process> Sim<P> {
    /// Builds a simulation; every node starts at time 0, in id order.
    pub fn new(config: SimConfig, factory: impl FnMut(NodeId) -> P + 'static) -> Result<Self, SimError> {
        let nodes_count = config.nodes;
        if nodes_count == 0 || nodes_count > NODES_MAX {
            return Err(SimError::InvalidClusterSize { nodes: nodes_count, max: NODES_MAX });
        }
        let (link_models, link_of) = compile_network(&config.network, nodes_count)?;
        let kind_models = config.network.kind_models()?;
        let nodes = (0..nodes_count)
            .map(|node| NodeState {
                up: true,
                incarnation: 0,
                clock_changes: 0,
                paused_until_ns: None,
                pause_id: 0,
                deferred: Vec::new(),
                clock: Clock::default(),
                rng: derive_rng(config.seed, &node_label(node)),
                storage: Storage::default(),
                timers: Vec::new(),
                free_timers: Vec::new(),
                timer_generation: 0,
                sync_delay: None,
                processing: None,
                disk_free_ns: 0,
                sync_calls_seen: 0,
                sync_requested_seen: 0,
                busy_until_ns: 0,
                waiting: VecDeque::new(),
                idle_scheduled: false,
            })
            .collect();
        let mut core = Core {
            now_ns: 0,
            seq: 0,
            next_msg_id: 0,
            queue: BinaryHeap::new(),
            slab: Vec::new(),
            free_slots: Vec::new(),
            nodes,
            nodes_count,
            network_rng: derive_rng(config.seed, "network"),
            nemesis_rng: derive_rng(config.seed, "nemesis/storage"),
            cut: vec![false; nodes_count * nodes_count],
            base_link_of: link_of.clone(),
            base_models_count: link_models.len(),
            link_of,
            link_models,
            kind_models,
            fifo_last_ns: vec![0; nodes_count * nodes_count],
            faults: Vec::new(),
            metrics: Metrics::default(),
            fingerprint: Fingerprint::default(),
            observations: Vec::new(),
            sink: None,
            limits: config.limits,
            seed: config.seed,
            costs_rng: None,
            queue_delays_ns: Vec::new(),
        };
        for node in 0..nodes_count {
            core.schedule(0, Payload::Start { node: node as u32 });
        }
        let mut factory = Box::new(factory);
        let procs = (0..nodes_count).map(|node| Some(factory(node))).collect();
        Ok(Sim { procs, factory, core, stopped: None })
    }

    /// Sets the time work takes (`crate::costs`): per node, how long a sync and the
    /// handling of an event take. Call before the first step; without it nothing costs
    /// time and the run is exactly what it was before costs existed.
    pub fn set_costs(&mut self, costs: &crate::costs::Costs) -> Result<(), SimError> {
        assert!(self.core.metrics.events == 0, "costs are set before the run starts");
        if costs.is_zero() {
            return Ok(());
        }
        let compiled = costs.compile(self.core.nodes_count)?;
        for (state, (sync, processing)) in self.core.nodes.iter_mut().zip(compiled) {
            if sync.is_some() {
                state.storage.defer_syncs();
            }
            state.sync_delay = sync;
            state.processing = processing;
        }
        self.core.costs_rng = Some(derive_rng(self.core.seed, "costs"));
        Ok(())
    }

    /// Runs `act` as a handler of `node` at the current instant, with everything a handler
    /// has (its `Ctx`, its costs, a crash struck during its writes): for experiments and
    /// tests that drive a node from outside, the way a test harness calls a handler.
    /// False (and nothing runs) when the node is down.
    pub fn act(&mut self, node: NodeId, act: impl FnOnce(&mut P, &mut Ctx<'_, P::Msg, P::Obs>)) -> bool {
        if !self.core.nodes[node].up {
            return false;
        }
        let now = self.core.now_ns;
        self.core.fingerprint.fold_event(&[FP_ACT, now, node as u64]);
        let (process, mut ctx) = self.ctx_parts(node, false);
        act(process, &mut ctx);
        if self.core.nodes[node].costly() {
            self.core.note_syncs(node);
        }
        self.crash_if_struck(node);
        true
    }

    /// How long each event that found its node busy waited for it, in order.
    pub fn queue_delays_ns(&self) -> &[u64] {
        &self.core.queue_delays_ns
    }

    /// Records every event from now on into `sink`.
    pub fn set_trace_sink(&mut self, sink: Box<dyn TraceSink<P::Msg, P::Obs>>) {
        self.core.sink = Some(sink);
    }

    /// Schedules a fault at global time `at_ns` (not before now).
    pub fn schedule_fault(&mut self, at_ns: u64, fault: Fault) -> Result<(), SimError> {
        fault.validate(self.core.nodes_count)?;
        if at_ns < self.core.now_ns {
            return Err(SimError::InvalidFault {
                what: "schedule",
                detail: format!("fault at {at_ns} ns lies before now ({} ns)", self.core.now_ns),
            });
        }
        let index = self.core.faults.len() as u32;
        self.core.faults.push(fault);
        self.core.schedule(at_ns, Payload::Fault { index });
        Ok(())
    }

    /// Schedules a fault given in milliseconds, as scenario files give them.
    pub fn schedule_fault_ms(&mut self, at_ms: f64, fault: Fault) -> Result<(), SimError> {
        self.schedule_fault(ms_to_ns("fault at_ms", at_ms)?, fault)
    }

    /// Runs one event. `Some(reason)` once the run has stopped.
    pub fn step(&mut self) -> Option<StopReason> {
        match self.step_until(u64::MAX) {
            Step::Handled => None,
            Step::Stopped(reason) => Some(reason),
            Step::Idle => self.stop(StopReason::Quiescent),
        }
    }

    /// Runs the next event if it is due no later than `until_ns` (skipping cancelled
    /// timers, which never count): [`Step::Idle`] when nothing is due by then.
    pub fn step_until(&mut self, until_ns: u64) -> Step {
        if let Some(reason) = self.stopped {
            return Step::Stopped(reason);
        }
        loop {
            let Some(next) = self.core.queue.peek() else {
                return Step::Idle;
            };
            if next.time > until_ns {
                return Step::Idle;
            }
            if next.time > self.core.limits.max_time_ns {
                let limit_ns = self.core.limits.max_time_ns;
                return Step::Stopped(self.stop_with(StopReason::TimeLimit { limit_ns }));
            }
            if self.core.metrics.events >= self.core.limits.max_events {
                let limit = self.core.limits.max_events;
                return Step::Stopped(self.stop_with(StopReason::EventLimit { limit }));
            }
            let entry = self.core.queue.pop().expect("peeked");
            let previous_ns = self.core.now_ns;
            self.core.now_ns = entry.time;
            let handled = self.dispatch(entry.slot);
            if !handled {
                // A stale timer or a deferred event does not move the clock.
                self.core.now_ns = previous_ns;
            }
            if self.core.queue.len() > self.core.limits.max_pending {
                let limit = self.core.limits.max_pending;
                return Step::Stopped(self.stop_with(StopReason::QueueLimit { limit }));
            }
            if handled {
                self.core.metrics.events += 1;
                let pending = self.core.queue.len() as u64;
                self.core.metrics.pending_max = self.core.metrics.pending_max.max(pending);
                return Step::Handled;
            }
        }
    }

    /// Runs until a limit stops the run or nothing is left to do.
    pub fn run(&mut self) -> StopReason {
        loop {
            if let Some(reason) = self.step() {
                return reason;
            }
        }
    }

    /// Runs every event up to global time `until_ns`, then sets the clock there.
    /// Returns `Some(reason)` if the run stopped first.
    pub fn run_until(&mut self, until_ns: u64) -> Option<StopReason> {
        loop {
            match self.step_until(until_ns) {
                Step::Handled => {}
                Step::Stopped(reason) => return Some(reason),
                Step::Idle => break,
            }
        }
        if until_ns > self.core.limits.max_time_ns {
            return self.stop(StopReason::TimeLimit { limit_ns: self.core.limits.max_time_ns });
        }
        self.core.now_ns = self.core.now_ns.max(until_ns);
        None
    }

    fn stop_with(&mut self, reason: StopReason) -> StopReason {
        self.stop(reason).expect("stop returns its reason")
    }

    fn stop(&mut self, reason: StopReason) -> Option<StopReason> {
        let now = self.core.now_ns;
        self.core.fingerprint.fold_event(&[FP_STOP, now, hash_value(&reason)]);
        self.core.record(|| TraceEvent::Stop { t_ns: now, stop: reason });
        self.stopped = Some(reason);
        Some(reason)
    }

    /// Handles the event in `slot`; false when it was stale or deferred (not counted).
    fn dispatch(&mut self, slot: u32) -> bool {
        // The node whose handler this event runs (a resume, a fault, a completed sync
        // and an idle run none), and whether handling it is work that takes time.
        let (handler_node, work) = match self.core.slab[slot as usize].as_ref().expect("queued slot") {
            Payload::Start { node } | Payload::Held { node, .. } => (Some(*node), false),
            Payload::Timer { node, .. } => (Some(*node), true),
            Payload::Deliver { to, .. } => (Some(*to), true),
            Payload::Resume { .. } | Payload::Fault { .. } | Payload::SyncDone { .. } | Payload::Idle { .. } => {
                (None, false)
            }
        };
        if let Some(node) = handler_node {
            let now = self.core.now_ns;
            let state = &mut self.core.nodes[node as usize];
            if state.up && state.paused_until_ns.is_some() {
                // A paused node handles nothing: the event waits for the resume.
                state.deferred.push(slot);
                return false;
            }
            if work && state.up && state.costly() && (state.busy_until_ns > now || !state.waiting.is_empty()) {
                // A busy node handles one event at a time: this one waits its turn.
                self.enqueue(node as usize, slot);
                return false;
            }
        }
        self.run_slot(slot, handler_node.map(|n| n as usize))
    }

    /// Runs the event in `slot` now.
    fn run_slot(&mut self, slot: u32, handler_node: Option<NodeId>) -> bool {
        let handled = match self.core.take_slot(slot) {
            Payload::Start { node } => self.start_node(node as usize),
            Payload::Deliver { from, to, msg_id, msg } => self.deliver(from as usize, to as usize, msg_id, msg),
            Payload::Timer { node, index, generation, version } => {
                self.fire_timer(node as usize, index, generation, version)
            }
            Payload::Fault { index } => self.apply_fault(index as usize),
            Payload::Resume { node, pause_id } => self.resume(node as usize, pause_id),
            Payload::SyncDone { node, incarnation, upto } => self.sync_done(node as usize, incarnation, upto),
            Payload::Held { node, incarnation, effect } => self.release(node as usize, incarnation, *effect),
            Payload::Idle { node } => self.idle(node as usize),
        };
        if let Some(node) = handler_node {
            if self.core.nodes[node].costly() {
                // A sync called last in the handler still asks the disk.
                self.core.note_syncs(node);
            }
            self.crash_if_struck(node);
        }
        handled
    }

    /// Puts the event in `slot` at the back of busy `node`'s queue.
    fn enqueue(&mut self, node: NodeId, slot: u32) {
        let now = self.core.now_ns;
        let state = &mut self.core.nodes[node];
        state.waiting.push_back((slot, now));
        self.core.metrics.queue_len_max = self.core.metrics.queue_len_max.max(state.waiting.len() as u64);
        if !state.idle_scheduled {
            state.idle_scheduled = true;
            let at = state.busy_until_ns.max(now);
            self.core.schedule(at, Payload::Idle { node: node as u32 });
        }
    }

    /// `node` may be free: it handles the first event of its queue.
    fn idle(&mut self, node: NodeId) -> bool {
        let now = self.core.now_ns;
        let state = &mut self.core.nodes[node];
        state.idle_scheduled = false;
        if !state.up || state.waiting.is_empty() {
            return false;
        }
        if state.busy_until_ns > now || state.paused_until_ns.is_some() {
            // Still busy (or paused): look again when it is free.
            state.idle_scheduled = true;
            let at = state.busy_until_ns.max(now).max(state.paused_until_ns.unwrap_or(0));
            self.core.schedule(at, Payload::Idle { node: node as u32 });
            return false;
        }
        let (slot, arrived_ns) = state.waiting.pop_front().expect("not empty");
        debug_assert!(arrived_ns <= now, "an event waits after it arrived");
        self.core.queue_delays_ns.push(now - arrived_ns);
        let handled = self.run_slot(slot, Some(node));
        let state = &mut self.core.nodes[node];
        if state.up && !state.waiting.is_empty() && !state.idle_scheduled {
            state.idle_scheduled = true;
            let at = state.busy_until_ns.max(now);
            self.core.schedule(at, Payload::Idle { node: node as u32 });
        }
        handled
    }

    /// A sync request of `node` completed: its writes are durable (unless the node
    /// crashed since, which lost them).
    fn sync_done(&mut self, node: NodeId, incarnation: u32, upto: u64) -> bool {
        let now = self.core.now_ns;
        let state = &mut self.core.nodes[node];
        if !state.up || state.incarnation != incarnation {
            return false;
        }
        state.storage.complete_sync(upto);
        self.core.fingerprint.fold_event(&[FP_SYNC_DONE, now, node as u64, upto]);
        true
    }

    /// An effect held by a cost leaves now, unless its node crashed since.
    fn release(&mut self, node: NodeId, incarnation: u32, effect: Held<P::Msg, P::Obs>) -> bool {
        let state = &self.core.nodes[node];
        if !state.up || state.incarnation != incarnation {
            return false;
        }
        match effect {
            Held::Send { to, msg, kind } => self.core.send(node, to as usize, msg, kind.as_deref()),
            Held::Observe(obs) => self.core.observe(node, obs),
        }
        true
    }

    fn ctx_parts(&mut self, node: NodeId, work: bool) -> (&mut P, Ctx<'_, P::Msg, P::Obs>) {
        let now = self.core.now_ns;
        let local_now_ns = self.core.nodes[node].clock.local(now);
        let costly = self.core.nodes[node].costly();
        let mut hold_until_ns = 0;
        if work && let Some(cost) = &self.core.nodes[node].processing {
            let rng = self.core.costs_rng.as_mut().expect("a cost has its stream");
            let busy_until = now.saturating_add(cost.sample_ns(rng));
            self.core.nodes[node].busy_until_ns = busy_until;
            hold_until_ns = busy_until;
        }
        let process = self.procs[node].as_mut().expect("an up node has a process");
        (process, Ctx { core: &mut self.core, node, local_now_ns, hold_until_ns, costly })
    }

    /// After a handler of `node`: a crash armed by `CrashDuringWrite` that struck during
    /// it takes the node down now (recorded as a crash at this instant).
    fn crash_if_struck(&mut self, node: NodeId) {
        if let Some(torn_write) = self.core.nodes[node].storage.dying() {
            self.crash_struck(node, torn_write);
        }
    }

    #[cold]
    #[inline(never)]
    fn crash_struck(&mut self, node: NodeId, torn_write: bool) {
        let now = self.core.now_ns;
        let fault = Fault::Crash { node, torn_write };
        self.core.fingerprint.fold_event(&[FP_FAULT, now, u64::MAX, node as u64]);
        if let Some(sink) = self.core.sink.as_mut() {
            sink.record(&TraceEvent::Fault { t_ns: now, fault: &fault });
        }
        self.crash(node, torn_write);
    }

    fn start_node(&mut self, node: NodeId) -> bool {
        if !self.core.nodes[node].up {
            return false;
        }
        let now = self.core.now_ns;
        let incarnation = self.core.nodes[node].incarnation;
        self.core.fingerprint.fold_event(&[FP_START, now, node as u64, u64::from(incarnation)]);
        self.core.record(|| TraceEvent::Start { t_ns: now, node, incarnation });
        let (process, mut ctx) = self.ctx_parts(node, false);
        process.on_start(&mut ctx);
        true
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, msg_id: u64, msg: P::Msg) -> bool {
        if !self.core.nodes[to].up {
            self.core.drop_message(from, to, msg_id, DropReason::NodeDown, None);
            return true;
        }
        if self.core.cut[from * self.core.nodes_count + to] {
            self.core.drop_message(from, to, msg_id, DropReason::Partitioned, None);
            return true;
        }
        let now = self.core.now_ns;
        self.core.metrics.messages_delivered += 1;
        self.core.fingerprint.fold_event(&[FP_DELIVER, now, msg_id]);
        if let Some(sink) = self.core.sink.as_mut() {
            sink.record(&TraceEvent::Deliver { t_ns: now, from, to, msg_id, msg: &msg });
        }
        let (process, mut ctx) = self.ctx_parts(to, true);
        process.on_message(&mut ctx, from, msg);
        true
    }

    fn fire_timer(&mut self, node: NodeId, index: u32, generation: u64, version: u32) -> bool {
        let now = self.core.now_ns;
        let state = &mut self.core.nodes[node];
        let Some(slot) = state.timers.get(index as usize).copied() else {
            return false;
        };
        if !state.up || !slot.active || slot.generation != generation || slot.version != version {
            return false;
        }
        let local_now = state.clock.local(now);
        if local_now < slot.deadline_local_ns {
            // The clock was set back or slowed since: wait until it really reads the deadline.
            let at = state.clock.global_at_local(slot.deadline_local_ns, now);
            state.timers[index as usize].version += 1;
            let version = version + 1;
            self.core.schedule(at, Payload::Timer { node: node as u32, index, generation, version });
            return false;
        }
        state.timers[index as usize].active = false;
        state.free_timers.push(index);
        self.core.metrics.timers_fired += 1;
        let tag = slot.tag;
        self.core.fingerprint.fold_event(&[FP_TIMER, now, node as u64, tag]);
        self.core.record(|| TraceEvent::Timer { t_ns: now, node, timer: index, tag, local_ns: local_now });
        let (process, mut ctx) = self.ctx_parts(node, true);
        process.on_timer(&mut ctx, TimerId { index, generation }, tag);
        true
    }

    fn resume(&mut self, node: NodeId, pause_id: u64) -> bool {
        let now = self.core.now_ns;
        let state = &mut self.core.nodes[node];
        if !state.up || state.pause_id != pause_id || state.paused_until_ns.is_none() {
            return false;
        }
        state.paused_until_ns = None;
        let deferred = std::mem::take(&mut state.deferred);
        for slot in deferred {
            self.core.reschedule_slot(now, slot);
        }
        self.core.fingerprint.fold_event(&[FP_RESUME, now, node as u64]);
        self.core.record(|| TraceEvent::Resume { t_ns: now, node });
        true
    }

    fn apply_fault(&mut self, index: usize) -> bool {
        let now = self.core.now_ns;
        let fault = self.core.faults[index].clone();
        self.core.metrics.faults_applied += 1;
        self.core.fingerprint.fold_event(&[FP_FAULT, now, index as u64]);
        if let Some(sink) = self.core.sink.as_mut() {
            sink.record(&TraceEvent::Fault { t_ns: now, fault: &fault });
        }
        match fault {
            Fault::Partition { groups } => self.partition(&groups),
            Fault::Cut { from, to } => {
                for f in &from {
                    for t in &to {
                        self.set_cut(*f, *t, true);
                    }
                }
            }
            Fault::Bridge { left, bridge: _, right } => {
                self.core.cut.fill(false);
                for l in &left {
                    for r in &right {
                        self.set_cut(*l, *r, true);
                        self.set_cut(*r, *l, true);
                    }
                }
            }
            Fault::Heal => self.core.cut.fill(false),
            Fault::SetLinks { from, to, link } => self.set_links(&from, &to, &link),
            Fault::ResetLinks => {
                self.core.link_of.clone_from(&self.core.base_link_of);
                self.core.link_models.truncate(self.core.base_models_count);
            }
            Fault::Crash { node, torn_write } => self.crash(node, torn_write),
            Fault::CrashDuringWrite { node, writes, torn_write } => {
                if self.core.nodes[node].up {
                    self.core.nodes[node].storage.arm_crash(writes, torn_write);
                }
            }
            Fault::Restart { node } => self.restart(node),
            Fault::Pause { node, duration_ms } => {
                let duration = ms_to_ns("pause", duration_ms).expect("validated when scheduled");
                self.pause(node, duration);
            }
            Fault::ClockOffset { node, offset_ms } => {
                let offset = signed_ms_to_ns("offset", offset_ms).expect("validated when scheduled");
                self.core.nodes[node].clock.set_offset(now, offset);
                self.core.nodes[node].clock_changes += 1;
                self.core.reschedule_timers(node);
            }
            Fault::ClockDrift { node, drift_ppm } => {
                let drift = drift_to_ppm(drift_ppm).expect("validated when scheduled");
                self.core.nodes[node].clock.set_drift(now, drift);
                self.core.nodes[node].clock_changes += 1;
                self.core.reschedule_timers(node);
            }
            Fault::ClockJump { node, delta_ms } => {
                let delta = signed_ms_to_ns("jump", delta_ms).expect("validated when scheduled");
                self.core.nodes[node].clock.jump(now, delta);
                self.core.nodes[node].clock_changes += 1;
                self.core.reschedule_timers(node);
            }
        }
        true
    }

    fn set_cut(&mut self, from: NodeId, to: NodeId, cut: bool) {
        if from != to {
            self.core.cut[from * self.core.nodes_count + to] = cut;
        }
    }

    fn partition(&mut self, groups: &[Vec<NodeId>]) {
        let n = self.core.nodes_count;
        let mut group_of = vec![groups.len(); n];
        for (group, members) in groups.iter().enumerate() {
            for node in members {
                group_of[*node] = group;
            }
        }
        for from in 0..n {
            for to in 0..n {
                self.core.cut[from * n + to] = group_of[from] != group_of[to];
            }
        }
    }

    fn set_links(&mut self, from: &[NodeId], to: &[NodeId], link: &crate::network::LinkConfig) {
        let model = LinkModel::new(link).expect("validated when scheduled");
        self.core.link_models.push(model);
        let model_index = (self.core.link_models.len() - 1) as u32;
        let n = self.core.nodes_count;
        for f in 0..n {
            for t in 0..n {
                if (from.is_empty() || from.contains(&f)) && (to.is_empty() || to.contains(&t)) {
                    self.core.link_of[f * n + t] = model_index;
                }
            }
        }
    }

    fn crash(&mut self, node: NodeId, torn_write: bool) {
        let state = &mut self.core.nodes[node];
        if !state.up {
            return;
        }
        state.up = false;
        state.paused_until_ns = None;
        state.pause_id += 1;
        for timer in &mut state.timers {
            timer.active = false;
        }
        state.free_timers = (0..state.timers.len() as u32).rev().collect();
        state.storage.crash(torn_write, &mut self.core.nemesis_rng);
        // Its disk and its handling stop; events that waited for it go back to the queue
        // now, to be lost as any event for a crashed node is.
        state.disk_free_ns = 0;
        state.busy_until_ns = 0;
        let waiting = std::mem::take(&mut state.waiting);
        let now = self.core.now_ns;
        for (slot, _) in waiting {
            self.core.reschedule_slot(now, slot);
        }
        let state = &mut self.core.nodes[node];
        let deferred = std::mem::take(&mut state.deferred);
        self.procs[node] = None;
        for slot in deferred {
            if let Payload::Deliver { from, to, msg_id, .. } = self.core.take_slot(slot) {
                self.core.drop_message(from as usize, to as usize, msg_id, DropReason::NodeDown, None);
            }
        }
    }

    fn restart(&mut self, node: NodeId) {
        if self.core.nodes[node].up {
            self.core.nodes[node].storage.disarm();
            return;
        }
        self.core.nodes[node].up = true;
        self.core.nodes[node].incarnation += 1;
        self.procs[node] = Some((self.factory)(node));
        self.start_node(node);
        self.crash_if_struck(node);
    }

    fn pause(&mut self, node: NodeId, duration_ns: u64) {
        let until = self.core.now_ns.saturating_add(duration_ns);
        let state = &mut self.core.nodes[node];
        if !state.up || state.paused_until_ns.is_some_and(|current| current >= until) {
            return;
        }
        state.paused_until_ns = Some(until);
        state.pause_id += 1;
        let pause_id = state.pause_id;
        self.core.schedule(until, Payload::Resume { node: node as u32, pause_id });
    }

    /// True global time now, in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.core.now_ns
    }

    /// Node `node`'s local clock reading now.
    pub fn local_time_ns(&self, node: NodeId) -> u64 {
        self.core.nodes[node].clock.local(self.core.now_ns)
    }

    /// How many times the node has been restarted.
    pub fn incarnation(&self, node: NodeId) -> u32 {
        self.core.nodes[node].incarnation
    }

    /// How many clock faults (offset, drift, jump) have struck the node: while this and
    /// the incarnation stay the same, its local clock is an affine function of true time.
    pub fn clock_changes(&self, node: NodeId) -> u32 {
        self.core.nodes[node].clock_changes
    }

    /// The fingerprint of everything that happened so far.
    pub fn fingerprint(&self) -> Fingerprint {
        self.core.fingerprint
    }

    /// Run counters.
    pub fn metrics(&self) -> Metrics {
        self.core.metrics
    }

    /// How many nodes the simulation has.
    pub fn nodes_count(&self) -> usize {
        self.core.nodes_count
    }

    /// Read access to a node's process (None while crashed).
    pub fn process(&self, node: NodeId) -> Option<&P> {
        self.procs[node].as_ref()
    }

    /// Whether the node is up (not crashed).
    pub fn is_up(&self, node: NodeId) -> bool {
        self.core.nodes[node].up
    }

    /// Whether the node is paused now.
    pub fn is_paused(&self, node: NodeId) -> bool {
        self.core.nodes[node].paused_until_ns.is_some()
    }

    /// A node's durable storage.
    pub fn storage(&self, node: NodeId) -> &Storage {
        &self.core.nodes[node].storage
    }

    /// Observations not yet drained.
    pub fn observations(&self) -> &[Observation<P::Obs>] {
        &self.core.observations
    }

    /// Forgets the observations read so far, keeping the buffer: a runner that judges
    /// them as they come keeps memory flat however long the run.
    pub fn clear_observations(&mut self) {
        self.core.observations.clear();
    }

    /// Takes the observations emitted since the last drain.
    pub fn drain_observations(&mut self) -> Vec<Observation<P::Obs>> {
        std::mem::take(&mut self.core.observations)
    }

    /// Global time of the next event in the queue (a cancelled timer included), if any.
    pub fn next_event_ns(&self) -> Option<u64> {
        self.core.queue.peek().map(|entry| entry.time)
    }

    /// Events waiting in the queue (including cancelled timers not yet reached).
    pub fn pending_events(&self) -> usize {
        self.core.queue.len()
    }

    /// Why the run stopped, once it has.
    pub fn stopped(&self) -> Option<StopReason> {
        self.stopped
    }
}

fn compile_network(network: &NetworkConfig, nodes_count: usize) -> Result<(Vec<LinkModel>, Vec<u32>), SimError> {
    let mut models = vec![LinkModel::new(&network.default)?];
    let mut link_of = vec![0u32; nodes_count * nodes_count];
    for link in &network.links {
        for node in link.from.iter().chain(&link.to) {
            if *node >= nodes_count {
                return Err(SimError::UnknownNode { node: *node, nodes: nodes_count, context: "network links" });
            }
        }
        models.push(LinkModel::new(&link.link)?);
        let index = (models.len() - 1) as u32;
        for f in 0..nodes_count {
            for t in 0..nodes_count {
                if (link.from.is_empty() || link.from.contains(&f)) && (link.to.is_empty() || link.to.contains(&t)) {
                    link_of[f * nodes_count + t] = index;
                }
            }
        }
    }
    Ok((models, link_of))
}
