//! `outbox`: the local message table (transactional outbox) between an order service and
//! an inventory service, through a durable message queue.
//!
//! **The pattern.** The order service cannot commit with the inventory service in one
//! transaction without 2PC, so it commits the order row and a message row in one *local*
//! transaction (one record, synced: a crash loses all of it or none). A relay inside the
//! order service (or, with `cluster.servers` = 4, a relay node of its own, which fetches
//! unsent rows from the order service and has them marked sent) publishes every unsent
//! message row to the queue and marks it sent only
//! once the queue has acknowledged it; a crash in between publishes it again, so messages
//! may be duplicated but never lost. The queue (node 1) stores each message durably
//! before acknowledging it, delivers it to the consumer, and delivers it again if no
//! acknowledgement comes within `visibility_timeout_ms`: at-least-once delivery. The
//! inventory service (node 2) applies a message's effect (decrement stock, or record a
//! rejection when stock is short) and records the message id in its `processed` (inbox)
//! table in one local transaction, and acknowledges the queue only after that commit; a
//! message whose id is already processed is acknowledged and not applied again.
//!
//! **Exactly-once effect** needs all of it: the message durable with the order (no
//! order without a message), at-least-once from the relay and the queue (no message
//! lost), and the inbox recorded atomically with the effect before the acknowledgement
//! (no effect applied twice, none lost). The price is the inconsistency window: an order
//! exists before its stock changes, for as long as the relay, queue and consumer take;
//! the gain is that placing orders needs only the order service to be up.
//!
//! **Invariants**: every committed order's effect is applied exactly once: never twice
//! (safety, judged as it happens) and within a bound after the heal (liveness); no effect
//! without a committed order; the outbox drains after the heal; stock never negative.
//!
//! **Known-bug variants**: `dual-write` (no outbox: commit the order, then publish once,
//! directly), `no-inbox` (the consumer records no processed ids), `ack-before-commit`
//! (the consumer acknowledges before its transaction commits), `delete-before-ack` (the
//! relay marks a row sent when it publishes, before the queue's acknowledgement),
//! `poll-by-sequence` (the relay remembers the highest id it sent and polls above it:
//! a transaction that took an id early and committed late is skipped for ever).

pub mod protocol;

pub use protocol::Outbox;

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use rand::RngExt;
use serde::Serialize;
use sim_core::{Ctx, NodeId, Process, TimerId};

use crate::codec::{Reader, Writer};
use crate::order_client::{Line, OrderClient, OrderClientSettings, OrderId};

/// A message: the order's id (its business key and the message id) and lines.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Message {
    /// The outbox row's id: the order service's sequence, taken when the transaction began.
    pub row: u64,
    pub order: OrderId,
    pub lines: Vec<Line>,
}

/// Messages between the nodes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Msg {
    Submit {
        order: OrderId,
        lines: Rc<Vec<Line>>,
    },
    Outcome {
        order: OrderId,
        committed: bool,
    },
    /// Relay to queue, and its acknowledgement.
    Publish {
        message: Rc<Message>,
    },
    Published {
        row: u64,
    },
    /// A relay node asks the order service for unsent rows above `after`, gets them,
    /// and has a row marked sent once the queue acknowledged it.
    Fetch {
        after: u64,
    },
    Rows {
        rows: Rc<Vec<Rc<Message>>>,
    },
    MarkSent {
        row: u64,
    },
    /// Queue to consumer, and its acknowledgement.
    Deliver {
        delivery: u64,
        message: Rc<Message>,
    },
    Ack {
        delivery: u64,
    },
}

/// Facts nodes report.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum OutboxObs {
    Client {
        process: u64,
        order: OrderId,
        kind: checker::history::EventType,
    },
    /// The order service committed an order (with its message row, unless `dual-write`).
    OrderCommitted {
        order: OrderId,
        lines: Vec<Line>,
    },
    /// The relay saw the queue acknowledge a message.
    Relayed {
        order: OrderId,
    },
    /// The consumer committed an effect: `applied` (stock decremented) or rejected for
    /// short stock; the stock of each line's item after it.
    Effect {
        order: OrderId,
        applied: bool,
        stock: Vec<(u32, i64)>,
    },
    /// The consumer recognised a redelivered message and did not apply it again.
    DuplicateSuppressed {
        order: OrderId,
    },
    /// The queue delivered a message again after its visibility timeout.
    Redelivered {
        order: OrderId,
    },
}

/// The known-bug variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Correct,
    DualWrite,
    NoInbox,
    AckBeforeCommit,
    DeleteBeforeAck,
    PollBySequence,
}

impl Variant {
    pub fn parse(name: &str) -> Option<Variant> {
        Some(match name {
            "correct" => Variant::Correct,
            "dual-write" => Variant::DualWrite,
            "no-inbox" => Variant::NoInbox,
            "ack-before-commit" => Variant::AckBeforeCommit,
            "delete-before-ack" => Variant::DeleteBeforeAck,
            "poll-by-sequence" => Variant::PollBySequence,
            _ => return None,
        })
    }
}

/// What every node shares.
#[derive(Clone, Debug)]
pub struct Shared {
    pub variant: Variant,
    /// The relay runs as node 3 rather than inside the order service.
    pub relay_node: bool,
    pub settings: protocol::OutboxSettings,
    pub clients: Rc<OrderClientSettings>,
}

impl Shared {
    pub const ORDERS: NodeId = 0;
    pub const QUEUE: NodeId = 1;
    pub const INVENTORY: NodeId = 2;
    /// With a relay node (`cluster.servers` = 4).
    pub const RELAY: NodeId = 3;

    fn ms(&self, ms: f64) -> u64 {
        (ms * sim_core::MS as f64) as u64
    }
}

crate::order_transport!(
    /// How the outbox's messages carry the shared order client's orders.
    OutboxTransport,
    Msg,
    OutboxObs
);

/// A node.
#[allow(clippy::large_enum_variant)] // One value per node.
pub enum OutboxNode {
    Orders(OrderService),
    Queue(Queue),
    Inventory(Inventory),
    Relay(RelayNode),
    Client(OrderClient<OutboxTransport>),
}

type OutboxCtx<'a> = Ctx<'a, Msg, OutboxObs>;

impl OutboxNode {
    pub fn new(id: NodeId, shared: &Rc<Shared>) -> OutboxNode {
        match id {
            Shared::ORDERS => OutboxNode::Orders(OrderService::new(Rc::clone(shared))),
            Shared::QUEUE => OutboxNode::Queue(Queue::new(Rc::clone(shared))),
            Shared::INVENTORY => OutboxNode::Inventory(Inventory::new(Rc::clone(shared))),
            Shared::RELAY if shared.relay_node => {
                OutboxNode::Relay(RelayNode { shared: Rc::clone(shared), relay: Relay::default() })
            }
            _ => OutboxNode::Client(OrderClient::new(id, Rc::clone(&shared.clients))),
        }
    }

    /// The outbox rows not yet relayed.
    pub fn unsent(&self) -> Option<usize> {
        match self {
            OutboxNode::Orders(orders) => Some(orders.unsent.len()),
            _ => None,
        }
    }
}

impl Process for OutboxNode {
    type Msg = Msg;
    type Obs = OutboxObs;

    fn on_start(&mut self, ctx: &mut OutboxCtx<'_>) {
        match self {
            OutboxNode::Orders(n) => n.on_start(ctx),
            OutboxNode::Queue(n) => n.on_start(ctx),
            OutboxNode::Inventory(n) => n.on_start(ctx),
            OutboxNode::Relay(n) => n.on_start(ctx),
            OutboxNode::Client(n) => n.on_start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut OutboxCtx<'_>, from: NodeId, msg: Msg) {
        match self {
            OutboxNode::Orders(n) => n.on_message(ctx, from, msg),
            OutboxNode::Queue(n) => n.on_message(ctx, from, msg),
            OutboxNode::Inventory(n) => n.on_message(ctx, msg),
            OutboxNode::Relay(n) => n.on_message(ctx, msg),
            OutboxNode::Client(n) => n.on_message(ctx, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut OutboxCtx<'_>, _timer: TimerId, tag: u64) {
        match self {
            OutboxNode::Orders(n) => n.on_timer(ctx, tag),
            OutboxNode::Queue(n) => n.on_timer(ctx),
            OutboxNode::Inventory(_) => {}
            OutboxNode::Relay(n) => n.on_timer(ctx),
            OutboxNode::Client(n) => n.on_timer(ctx, tag),
        }
    }
}

const TIMER_RELAY: u64 = 1;
/// Tags at and above this are local transactions committing (tag - base = the row).
const TIMER_COMMIT_BASE: u64 = 1 << 32;

fn encode_message(out: &mut Writer, m: &Message) {
    out.u64(m.row);
    out.u64(m.order.client);
    out.u64(m.order.seq);
    out.u64(m.lines.len() as u64);
    for line in &m.lines {
        out.u64(u64::from(line.item));
        out.u64(u64::from(line.qty));
    }
}

fn decode_message(reader: &mut Reader<'_>) -> Option<Message> {
    let row = reader.u64()?;
    let order = OrderId { client: reader.u64()?, seq: reader.u64()? };
    let count = reader.u64()?.min(1024);
    let mut lines = Vec::new();
    for _ in 0..count {
        lines.push(Line { item: reader.u64()? as u32, qty: reader.u64()? as u32 });
    }
    Some(Message { row, order, lines })
}

/// The relay's memory: when each row was last published, and (variant
/// poll-by-sequence) the highest row it has published.
#[derive(Default)]
struct Relay {
    published_ns: BTreeMap<u64, u64>,
    high_water: u64,
}

impl Relay {
    /// The first row id to poll from.
    fn poll_from(&self, variant: Variant) -> u64 {
        if variant == Variant::PollBySequence { self.high_water + 1 } else { 0 }
    }

    /// Publishes the rows due (never published, or not acknowledged within
    /// `publish_timeout_ms`), a batch at a time; returns the rows to mark sent at once
    /// (variant delete-before-ack).
    fn publish<'a>(
        &mut self,
        ctx: &mut OutboxCtx<'_>,
        shared: &Shared,
        rows: impl Iterator<Item = &'a Rc<Message>>,
    ) -> Vec<u64> {
        let now = ctx.now();
        let timeout_ns = shared.ms(shared.settings.publish_timeout_ms);
        let due: Vec<Rc<Message>> = rows
            .filter(|m| self.published_ns.get(&m.row).is_none_or(|t| now >= t + timeout_ns))
            .take(shared.settings.relay_batch)
            .cloned()
            .collect();
        let mut mark_now = Vec::new();
        for message in due {
            let row = message.row;
            self.published_ns.insert(row, now);
            self.high_water = self.high_water.max(row);
            ctx.send(Shared::QUEUE, Msg::Publish { message });
            if shared.variant == Variant::DeleteBeforeAck {
                mark_now.push(row); // The bug: marked sent before the queue has it.
            }
        }
        mark_now
    }
}

/// The relay as a node of its own: it fetches unsent rows from the order service and
/// tells it which to mark sent.
pub struct RelayNode {
    shared: Rc<Shared>,
    relay: Relay,
}

impl RelayNode {
    fn on_start(&mut self, ctx: &mut OutboxCtx<'_>) {
        ctx.set_timer(self.shared.ms(self.shared.settings.relay_every_ms), TIMER_RELAY);
    }

    fn on_timer(&mut self, ctx: &mut OutboxCtx<'_>) {
        ctx.set_timer(self.shared.ms(self.shared.settings.relay_every_ms), TIMER_RELAY);
        ctx.send(Shared::ORDERS, Msg::Fetch { after: self.relay.poll_from(self.shared.variant) });
    }

    fn on_message(&mut self, ctx: &mut OutboxCtx<'_>, msg: Msg) {
        match msg {
            Msg::Rows { rows } => {
                for row in self.relay.publish(ctx, &self.shared, rows.iter()) {
                    ctx.send(Shared::ORDERS, Msg::MarkSent { row });
                }
            }
            Msg::Published { row } => {
                self.relay.published_ns.remove(&row);
                ctx.send(Shared::ORDERS, Msg::MarkSent { row });
            }
            _ => {}
        }
    }
}

/// The order service: its database (orders and outbox rows) and the relay.
pub struct OrderService {
    shared: Rc<Shared>,
    /// The next row id (a database sequence: taken when a transaction begins).
    next_row: u64,
    orders: BTreeSet<OrderId>,
    /// Transactions begun and not yet committed, by row.
    pending: BTreeMap<u64, (NodeId, Rc<Message>)>,
    /// Outbox rows not yet marked sent, by row.
    unsent: BTreeMap<u64, Rc<Message>>,
    /// The relay, when it runs inside the order service.
    relay: Relay,
}

impl OrderService {
    fn new(shared: Rc<Shared>) -> OrderService {
        OrderService {
            shared,
            next_row: 1,
            orders: BTreeSet::new(),
            pending: BTreeMap::new(),
            unsent: BTreeMap::new(),
            relay: Relay::default(),
        }
    }

    fn on_start(&mut self, ctx: &mut OutboxCtx<'_>) {
        let storage = ctx.storage();
        let mut sent = BTreeSet::new();
        for (key, _) in storage.scan_prefix("sent/") {
            if let Ok(row) = key["sent/".len()..].parse::<u64>() {
                sent.insert(row);
            }
        }
        for (_, bytes) in storage.scan_prefix("tx/") {
            // A torn record is a transaction that never committed: it is skipped whole.
            let mut reader = Reader::new(bytes);
            let Some((with_message, message)) = reader.u8().and_then(|f| Some((f == 1, decode_message(&mut reader)?)))
            else {
                continue;
            };
            if !reader.is_done() {
                continue;
            }
            self.next_row = self.next_row.max(message.row + 1);
            self.orders.insert(message.order);
            if with_message && !sent.contains(&message.row) {
                self.unsent.insert(message.row, Rc::new(message));
            }
        }
        if !self.shared.relay_node {
            ctx.set_timer(self.shared.ms(self.shared.settings.relay_every_ms), TIMER_RELAY);
        }
    }

    fn on_message(&mut self, ctx: &mut OutboxCtx<'_>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Submit { order, lines } => self.begin(ctx, from, order, &lines),
            Msg::Published { row } | Msg::MarkSent { row } => self.on_published(ctx, row),
            Msg::Fetch { after } => {
                let rows = self.unsent.range(after..).take(self.shared.settings.relay_batch).map(|(_, m)| Rc::clone(m));
                ctx.send(from, Msg::Rows { rows: Rc::new(rows.collect()) });
            }
            _ => {}
        }
    }

    /// A local transaction begins: it takes a row id now and commits after its work.
    fn begin(&mut self, ctx: &mut OutboxCtx<'_>, client: NodeId, order: OrderId, lines: &[Line]) {
        if self.orders.contains(&order) || self.pending.values().any(|(_, m)| m.order == order) {
            return; // A duplicated Submit.
        }
        let row = self.next_row;
        self.next_row += 1;
        let message = Rc::new(Message { row, order, lines: lines.to_vec() });
        self.pending.insert(row, (client, message));
        let max_ns = self.shared.ms(self.shared.settings.local_txn_ms_max);
        let work_ns = ctx.rng().random_range(0..=max_ns);
        ctx.set_timer(work_ns, TIMER_COMMIT_BASE + row);
    }

    /// The commit: order and message row in one synced record.
    fn commit(&mut self, ctx: &mut OutboxCtx<'_>, row: u64) {
        let Some((client, message)) = self.pending.remove(&row) else {
            return;
        };
        let dual_write = self.shared.variant == Variant::DualWrite;
        let mut record = Writer::default();
        record.u8(u8::from(!dual_write));
        encode_message(&mut record, &message);
        ctx.storage().put(format!("tx/{row:012}"), record.bytes);
        ctx.storage().sync();
        self.orders.insert(message.order);
        ctx.observe(OutboxObs::OrderCommitted { order: message.order, lines: message.lines.clone() });
        ctx.send(client, Msg::Outcome { order: message.order, committed: true });
        if dual_write {
            // The bug: no outbox row; one direct publish, which a crash or a lost
            // message loses for good.
            ctx.send(Shared::QUEUE, Msg::Publish { message });
        } else {
            self.unsent.insert(row, message);
        }
    }

    fn on_timer(&mut self, ctx: &mut OutboxCtx<'_>, tag: u64) {
        if tag >= TIMER_COMMIT_BASE {
            self.commit(ctx, tag - TIMER_COMMIT_BASE);
        } else if tag == TIMER_RELAY {
            ctx.set_timer(self.shared.ms(self.shared.settings.relay_every_ms), TIMER_RELAY);
            self.relay(ctx);
        }
    }

    /// The relay inside the order service: publish unsent rows.
    fn relay(&mut self, ctx: &mut OutboxCtx<'_>) {
        let from = self.relay.poll_from(self.shared.variant);
        let mark_now = self.relay.publish(ctx, &self.shared, self.unsent.range(from..).map(|(_, m)| m));
        for row in mark_now {
            self.mark_sent(ctx, row);
        }
    }

    fn mark_sent(&mut self, ctx: &mut OutboxCtx<'_>, row: u64) {
        if self.unsent.remove(&row).is_some() {
            self.relay.published_ns.remove(&row);
            ctx.storage().put(format!("sent/{row:012}"), Vec::new());
            ctx.storage().sync();
        }
    }

    fn on_published(&mut self, ctx: &mut OutboxCtx<'_>, row: u64) {
        if let Some(message) = self.unsent.get(&row) {
            let order = message.order;
            self.mark_sent(ctx, row);
            ctx.observe(OutboxObs::Relayed { order });
        }
    }
}

/// The message queue: durable, at-least-once, redelivering after a visibility timeout.
pub struct Queue {
    shared: Rc<Shared>,
    next_seq: u64,
    /// Stored messages by sequence, with when each was last delivered (local time).
    messages: BTreeMap<u64, (Rc<Message>, Option<u64>)>,
    pub redeliveries: u64,
}

impl Queue {
    fn new(shared: Rc<Shared>) -> Queue {
        Queue { shared, next_seq: 1, messages: BTreeMap::new(), redeliveries: 0 }
    }

    fn on_start(&mut self, ctx: &mut OutboxCtx<'_>) {
        for (key, bytes) in ctx.storage().scan_prefix("q/") {
            let (Ok(seq), Some(message)) = (key[2..].parse::<u64>(), decode_message(&mut Reader::new(bytes))) else {
                continue; // Torn: never acknowledged.
            };
            self.next_seq = self.next_seq.max(seq + 1);
            self.messages.insert(seq, (Rc::new(message), None));
        }
        ctx.set_timer(self.shared.ms(self.shared.settings.queue_tick_ms), 1);
    }

    fn on_message(&mut self, ctx: &mut OutboxCtx<'_>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Publish { message } => {
                let seq = self.next_seq;
                self.next_seq += 1;
                let mut record = Writer::default();
                encode_message(&mut record, &message);
                ctx.storage().put(format!("q/{seq:012}"), record.bytes);
                ctx.storage().sync();
                ctx.send(from, Msg::Published { row: message.row });
                self.messages.insert(seq, (message, None));
                self.deliver(ctx);
            }
            Msg::Ack { delivery } => {
                if self.messages.remove(&delivery).is_some() {
                    // Not synced: a lost delete only means one more delivery.
                    ctx.storage().delete(&format!("q/{delivery:012}"));
                }
                self.deliver(ctx);
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut OutboxCtx<'_>) {
        ctx.set_timer(self.shared.ms(self.shared.settings.queue_tick_ms), 1);
        self.deliver(ctx);
    }

    /// Delivers what is not in flight (up to the window), and again what has been in
    /// flight past the visibility timeout.
    fn deliver(&mut self, ctx: &mut OutboxCtx<'_>) {
        let now = ctx.now();
        let visibility_ns = self.shared.ms(self.shared.settings.visibility_timeout_ms);
        let window = self.shared.settings.delivery_window;
        let in_flight = self.messages.values().filter(|(_, at)| at.is_some_and(|t| now < t + visibility_ns)).count();
        let mut budget = window.saturating_sub(in_flight);
        for (seq, (message, delivered)) in &mut self.messages {
            if budget == 0 {
                break;
            }
            match delivered {
                Some(at) if now < *at + visibility_ns => continue,
                Some(_) => {
                    self.redeliveries += 1;
                    ctx.observe(OutboxObs::Redelivered { order: message.order });
                }
                None => {}
            }
            *delivered = Some(now);
            budget -= 1;
            ctx.send(Shared::INVENTORY, Msg::Deliver { delivery: *seq, message: Rc::clone(message) });
        }
    }
}

/// The inventory service: stock and the inbox of processed message ids, in one local
/// database.
pub struct Inventory {
    shared: Rc<Shared>,
    stock: BTreeMap<u32, i64>,
    processed: BTreeSet<OrderId>,
    next_record: u64,
    pub duplicates_suppressed: u64,
}

impl Inventory {
    fn new(shared: Rc<Shared>) -> Inventory {
        Inventory {
            shared,
            stock: BTreeMap::new(),
            processed: BTreeSet::new(),
            next_record: 0,
            duplicates_suppressed: 0,
        }
    }

    fn on_start(&mut self, ctx: &mut OutboxCtx<'_>) {
        let initial = self.shared.settings.initial_stock;
        self.stock = (0..self.shared.settings.items).map(|i| (i, initial)).collect();
        let records: Vec<Vec<u8>> = ctx.storage().scan_prefix("inv/").map(|(_, b)| b.to_vec()).collect();
        for bytes in records {
            let mut reader = Reader::new(&bytes);
            let Some((applied, message)) = reader.u8().and_then(|a| Some((a == 1, decode_message(&mut reader)?)))
            else {
                continue;
            };
            self.next_record += 1;
            self.processed.insert(message.order);
            if applied {
                for line in &message.lines {
                    *self.stock.entry(line.item).or_insert(0) -= i64::from(line.qty);
                }
            }
        }
    }

    fn on_message(&mut self, ctx: &mut OutboxCtx<'_>, msg: Msg) {
        let Msg::Deliver { delivery, message } = msg else {
            return;
        };
        let no_inbox = self.shared.variant == Variant::NoInbox;
        if !no_inbox && self.processed.contains(&message.order) {
            self.duplicates_suppressed += 1;
            ctx.observe(OutboxObs::DuplicateSuppressed { order: message.order });
            ctx.send(Shared::QUEUE, Msg::Ack { delivery });
            return;
        }
        if self.shared.variant == Variant::AckBeforeCommit {
            ctx.send(Shared::QUEUE, Msg::Ack { delivery }); // The bug: acknowledged first.
        }
        let applied = message.lines.iter().all(|l| self.stock.get(&l.item).copied().unwrap_or(0) >= i64::from(l.qty));
        // The effect and the inbox row in one local transaction, synced.
        let mut record = Writer::default();
        record.u8(u8::from(applied));
        encode_message(&mut record, &message);
        ctx.storage().put(format!("inv/{:012}", self.next_record), record.bytes);
        ctx.storage().sync();
        self.next_record += 1;
        self.processed.insert(message.order);
        let mut after = Vec::new();
        for line in &message.lines {
            let stock = self.stock.entry(line.item).or_insert(0);
            if applied {
                *stock -= i64::from(line.qty);
            }
            after.push((line.item, *stock));
        }
        ctx.observe(OutboxObs::Effect { order: message.order, applied, stock: after });
        if self.shared.variant != Variant::AckBeforeCommit {
            ctx.send(Shared::QUEUE, Msg::Ack { delivery });
        }
    }
}
