//! The shared client of the order protocols (`2pc`, `paxos-commit`, `outbox`): it places
//! orders one at a time, at the workload's rate, each sent once to the service and
//! recorded as committed (`ok`), aborted (`fail`) or, if no outcome comes within
//! `txn_timeout_ms`, unknown (`info`). It never resends an order: a resend while the
//! first execution is in doubt would be refused by the order table's unique order id,
//! and the client would be told "aborted" about an order that then commits.
//!
//! A protocol plugs in through [`OrderTransport`]: how a submission and an outcome look
//! among its messages, and how a client observation looks among its observations.

use std::marker::PhantomData;
use std::rc::Rc;

use checker::history::EventType;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use sim_core::{Ctx, NodeId, TimerId};

use crate::protocol::FieldError;

/// An order: the client's business key (unique in the order table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderId {
    pub client: u64,
    pub seq: u64,
}

impl std::fmt::Display for OrderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "order c{}.{}", self.client, self.seq)
    }
}

/// An order line: so many units of an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Line {
    pub item: u32,
    pub qty: u32,
}

/// How a protocol's messages carry orders and outcomes.
pub trait OrderTransport: 'static {
    type Msg: sim_core::engine::Data;
    type Obs: sim_core::engine::Data;
    fn submit(order: OrderId, lines: Rc<Vec<Line>>) -> Self::Msg;
    /// An outcome's order and whether it committed; `None` if `msg` is no outcome.
    fn outcome(msg: Self::Msg) -> Option<(OrderId, bool)>;
    fn observation(process: u64, order: OrderId, kind: EventType) -> Self::Obs;
}

/// Implements [`OrderTransport`] as `$name` for a protocol whose message enum `$msg` has
/// the variants `Submit { order, lines }` and `Outcome { order, committed }`, and whose
/// observation enum `$obs` has `Client { process, order, kind }`.
#[macro_export]
macro_rules! order_transport {
    ($(#[$meta:meta])* $name:ident, $msg:ident, $obs:ident) => {
        $(#[$meta])*
        pub struct $name;

        impl $crate::order_client::OrderTransport for $name {
            type Msg = $msg;
            type Obs = $obs;

            fn submit(
                order: $crate::order_client::OrderId,
                lines: std::rc::Rc<Vec<$crate::order_client::Line>>,
            ) -> $msg {
                $msg::Submit { order, lines }
            }

            fn outcome(msg: $msg) -> Option<($crate::order_client::OrderId, bool)> {
                match msg {
                    $msg::Outcome { order, committed } => Some((order, committed)),
                    _ => None,
                }
            }

            fn observation(
                process: u64,
                order: $crate::order_client::OrderId,
                kind: checker::history::EventType,
            ) -> $obs {
                $obs::Client { process, order, kind }
            }
        }
    };
}

/// What every client of a cluster shares.
#[derive(Clone, Debug)]
pub struct OrderClientSettings {
    /// Where orders go.
    pub service: NodeId,
    pub first_client: NodeId,
    pub clients: usize,
    pub rate_per_client: f64,
    pub items: u32,
    pub hot_share: f64,
    pub lines_max: u32,
    pub qty_max: u32,
    pub txn_timeout_ms: f64,
    pub orders_at_ms: Vec<f64>,
    /// Clients place no order at or after this local instant (ns).
    pub clients_stop_ns: u64,
}

impl OrderClientSettings {
    fn ms(&self, ms: f64) -> u64 {
        (ms * sim_core::MS as f64) as u64
    }

    /// Checks the order workload's fields (with the items' starting stock), as the
    /// protocols' settings spell them.
    pub fn validate_workload(&self, initial_stock: i64) -> Result<(), FieldError> {
        let rate = self.rate_per_client;
        check("rate_per_client", rate.is_finite() && (0.01..=1000.0).contains(&rate), "0.01 to 1000", rate)?;
        check("items", (1..=10_000).contains(&self.items), "1 to 10000", self.items)?;
        check("initial_stock", (0..=1_000_000_000).contains(&initial_stock), "0 to 1000000000", initial_stock)?;
        let hot = self.hot_share;
        check("hot_share", hot.is_finite() && (0.0..=1.0).contains(&hot), "0 to 1", hot)?;
        check("lines_max", (1..=16).contains(&self.lines_max), "1 to 16", self.lines_max)?;
        check("qty_max", (1..=1000).contains(&self.qty_max), "1 to 1000", self.qty_max)?;
        check("txn_timeout_ms", ms_ok(self.txn_timeout_ms, 1.0), "1 to 3600000", self.txn_timeout_ms)?;
        let instants = self.orders_at_ms.len();
        check("orders_at_ms", instants <= 10_000, "at most 10000 instants", instants)?;
        for (i, at) in self.orders_at_ms.iter().enumerate() {
            check(&format!("orders_at_ms[{i}]"), ms_ok(*at, 0.0), "0 to 3600000", at)?;
        }
        Ok(())
    }
}

/// The longest duration a setting may give, in milliseconds (an hour).
pub const MS_MAX: f64 = 3_600_000.0;

/// A field's check: the error names the field's path and the range it must be in.
pub fn check(path: &str, ok: bool, expected: &str, got: impl std::fmt::Display) -> Result<(), FieldError> {
    if ok { Ok(()) } else { Err(FieldError::new(path, format!("{path} must be {expected}, got {got}"))) }
}

/// Whether a millisecond figure is finite and from `min` to [`MS_MAX`].
pub fn ms_ok(value: f64, min: f64) -> bool {
    value.is_finite() && (min..=MS_MAX).contains(&value)
}

type ClientCtx<'a, T> = Ctx<'a, <T as OrderTransport>::Msg, <T as OrderTransport>::Obs>;

const TIMER_NEXT: u64 = 1;
const TIMER_GIVE_UP: u64 = 2;

pub struct OrderClient<T: OrderTransport> {
    id: NodeId,
    shared: Rc<OrderClientSettings>,
    seq: u64,
    /// The history process: a new one after an order ends unknown, and after a restart.
    process: u64,
    in_flight: Option<(OrderId, TimerId)>,
    /// With `orders_at_ms`: the next scripted order.
    scripted_next: usize,
    transport: PhantomData<fn() -> T>,
}

impl<T: OrderTransport> OrderClient<T> {
    pub fn new(id: NodeId, shared: Rc<OrderClientSettings>) -> OrderClient<T> {
        OrderClient { id, shared, seq: 0, process: 0, in_flight: None, scripted_next: 0, transport: PhantomData }
    }

    fn index(&self) -> u64 {
        (self.id - self.shared.first_client) as u64
    }

    pub fn on_start(&mut self, ctx: &mut ClientCtx<'_, T>) {
        // Sequence numbers and processes continue after a restart without storage: the
        // incarnation is drawn large and random, so order ids stay unique.
        let incarnation: u64 = ctx.rng().random_range(1..1 << 20);
        self.seq = incarnation << 20;
        self.process = self.index() + (incarnation << 8) * self.shared.clients as u64;
        self.schedule_next(ctx);
    }

    fn schedule_next(&mut self, ctx: &mut ClientCtx<'_, T>) {
        let scripted = &self.shared.orders_at_ms;
        if !scripted.is_empty() {
            // Scripted orders at fixed instants of the client's clock (scenarios with
            // exact outcomes); one that falls while another is in flight waits for it.
            if let Some(at_ms) = scripted.get(self.scripted_next) {
                ctx.set_timer(self.shared.ms(*at_ms).saturating_sub(ctx.now()), TIMER_NEXT);
            }
            return;
        }
        let rate = self.shared.rate_per_client;
        let gap_ms = -(1.0 - ctx.rng().random_range(0.0..1.0f64)).ln() / rate * 1000.0;
        ctx.set_timer(self.shared.ms(gap_ms), TIMER_NEXT);
    }

    pub fn on_timer(&mut self, ctx: &mut ClientCtx<'_, T>, tag: u64) {
        match tag {
            // Clients stop placing orders `txn_timeout_ms` before the end.
            TIMER_NEXT if self.in_flight.is_none() && ctx.now() < self.shared.clients_stop_ns => {
                self.place_order(ctx);
            }
            TIMER_GIVE_UP => {
                if let Some((order, _)) = self.in_flight.take() {
                    ctx.observe(T::observation(self.process, order, EventType::Info));
                    self.process += self.shared.clients as u64;
                    self.schedule_next(ctx);
                }
            }
            _ => {}
        }
    }

    fn place_order(&mut self, ctx: &mut ClientCtx<'_, T>) {
        self.scripted_next += 1;
        self.seq += 1;
        let order = OrderId { client: self.id as u64, seq: self.seq };
        let lines = self.draw_lines(ctx);
        ctx.observe(T::observation(self.process, order, EventType::Invoke));
        ctx.send(self.shared.service, T::submit(order, Rc::new(lines)));
        let timer = ctx.set_timer(self.shared.ms(self.shared.txn_timeout_ms), TIMER_GIVE_UP);
        self.in_flight = Some((order, timer));
    }

    /// One or two lines; the hot item takes `hot_share` of the draws.
    fn draw_lines(&self, ctx: &mut ClientCtx<'_, T>) -> Vec<Line> {
        let settings = &self.shared;
        let count = ctx.rng().random_range(1..=settings.lines_max);
        let mut lines: Vec<Line> = Vec::new();
        for _ in 0..count {
            let hot = ctx.rng().random_bool(settings.hot_share);
            let item = if hot { 0 } else { ctx.rng().random_range(0..settings.items) };
            let qty = ctx.rng().random_range(1..=settings.qty_max);
            match lines.iter_mut().find(|l| l.item == item) {
                Some(line) => line.qty += qty,
                None => lines.push(Line { item, qty }),
            }
        }
        lines
    }

    pub fn on_message(&mut self, ctx: &mut ClientCtx<'_, T>, msg: T::Msg) {
        let Some((order, committed)) = T::outcome(msg) else {
            return;
        };
        let Some((current, timer)) = self.in_flight else {
            return;
        };
        if current != order {
            return; // About an order it gave up on.
        }
        ctx.cancel_timer(timer);
        self.in_flight = None;
        let kind = if committed { EventType::Ok } else { EventType::Fail };
        ctx.observe(T::observation(self.process, order, kind));
        self.schedule_next(ctx);
    }
}

/// The share of orders that committed, among those placed while the faults were on and
/// among those placed after: what "available" means to someone placing orders.
#[derive(Clone, Debug, Default)]
pub struct OrderSuccess {
    heal_ns: u64,
    invoked: std::collections::BTreeMap<OrderId, u64>,
    /// (placed, committed) during the faults and after the heal.
    during: (u64, u64),
    after: (u64, u64),
}

impl OrderSuccess {
    pub fn new(heal_ns: u64) -> OrderSuccess {
        OrderSuccess { heal_ns, ..OrderSuccess::default() }
    }

    /// Counts a client observation.
    pub fn observe(&mut self, t_ns: u64, order: OrderId, kind: EventType) {
        if kind == EventType::Invoke {
            self.invoked.insert(order, t_ns);
            return;
        }
        let Some(invoked_ns) = self.invoked.remove(&order) else {
            return;
        };
        let phase = if invoked_ns < self.heal_ns { &mut self.during } else { &mut self.after };
        phase.0 += 1;
        phase.1 += u64::from(kind == EventType::Ok);
    }

    /// `orders_ok_share_during_faults` and `orders_ok_share_after_heal`, where orders were
    /// placed.
    pub fn metrics(&self, out: &mut std::collections::BTreeMap<String, f64>) {
        for (name, (placed, committed)) in
            [("orders_ok_share_during_faults", self.during), ("orders_ok_share_after_heal", self.after)]
        {
            if placed > 0 {
                out.insert(name.to_owned(), committed as f64 / placed as f64);
            }
        }
    }
}

/// An order's client observation as a history event (`f` is `order`, the value its id).
pub fn order_event(t_ns: u64, process: u64, order: OrderId, kind: EventType) -> checker::history::Event {
    checker::history::Event {
        process: Some(process),
        kind,
        f: "order".to_owned(),
        key: None,
        value: checker::value::Value::Str(format!("c{}.{}", order.client, order.seq)),
        time_ns: Some(t_ns),
        line: 0,
        column: 0,
    }
}

/// The `p` quantile of non-empty `values` (nearest rank).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
