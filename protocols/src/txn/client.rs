//! A client placing orders: one at a time, at the workload's rate, each sent once to the
//! coordinator and recorded as committed (`ok`), aborted (`fail`) or, if no outcome
//! comes within `txn_timeout_ms`, unknown (`info`). It never resends an order: a resend
//! while the first execution is in doubt would be refused by the order table's unique
//! order id, and the client would be told "aborted" about an order that then commits.

use std::rc::Rc;

use checker::history::EventType;
use rand::RngExt;
use sim_core::{NodeId, TimerId};

use super::{Line, Msg, OrderId, Shared, TxnCtx, TxnObs};

const TIMER_NEXT: u64 = 1;
const TIMER_GIVE_UP: u64 = 2;

pub struct Client {
    id: NodeId,
    shared: Rc<Shared>,
    seq: u64,
    /// The history process: a new one after an order ends unknown, and after a restart.
    process: u64,
    in_flight: Option<(OrderId, TimerId)>,
    /// With `orders_at_ms`: the next scripted order.
    scripted_next: usize,
}

impl Client {
    pub fn new(id: NodeId, shared: Rc<Shared>) -> Client {
        Client { id, shared, seq: 0, process: 0, in_flight: None, scripted_next: 0 }
    }

    fn index(&self) -> u64 {
        (self.id - self.shared.first_client()) as u64
    }

    pub fn on_start(&mut self, ctx: &mut TxnCtx<'_>) {
        // Sequence numbers and processes continue after a restart without storage: the
        // incarnation is drawn large and random, so order ids stay unique.
        let incarnation: u64 = ctx.rng().random_range(1..1 << 20);
        self.seq = incarnation << 20;
        self.process = self.index() + (incarnation << 8) * self.shared.clients as u64;
        self.schedule_next(ctx);
    }

    fn schedule_next(&mut self, ctx: &mut TxnCtx<'_>) {
        let scripted = &self.shared.settings.orders_at_ms;
        if !scripted.is_empty() {
            // Scripted orders at fixed instants of the client's clock (scenarios with
            // exact outcomes); one that falls while another is in flight waits for it.
            if let Some(at_ms) = scripted.get(self.scripted_next) {
                ctx.set_timer(self.shared.ms(*at_ms).saturating_sub(ctx.now()), TIMER_NEXT);
            }
            return;
        }
        let rate = self.shared.settings.rate_per_client;
        let gap_ms = -(1.0 - ctx.rng().random_range(0.0..1.0f64)).ln() / rate * 1000.0;
        ctx.set_timer(self.shared.ms(gap_ms), TIMER_NEXT);
    }

    pub fn on_timer(&mut self, ctx: &mut TxnCtx<'_>, tag: u64) {
        match tag {
            // Clients stop placing orders `txn_timeout_ms` before the end.
            TIMER_NEXT if self.in_flight.is_none() && ctx.now() < self.shared.clients_stop_ns => {
                self.place_order(ctx);
            }
            TIMER_GIVE_UP => {
                if let Some((order, _)) = self.in_flight.take() {
                    ctx.observe(TxnObs::Client { process: self.process, order, kind: EventType::Info });
                    self.process += self.shared.clients as u64;
                    self.schedule_next(ctx);
                }
            }
            _ => {}
        }
    }

    fn place_order(&mut self, ctx: &mut TxnCtx<'_>) {
        self.scripted_next += 1;
        self.seq += 1;
        let order = OrderId { client: self.id as u64, seq: self.seq };
        let lines = self.draw_lines(ctx);
        ctx.observe(TxnObs::Client { process: self.process, order, kind: EventType::Invoke });
        ctx.send(Shared::COORDINATOR, Msg::Submit { order, lines: Rc::new(lines) });
        let timer = ctx.set_timer(self.shared.ms(self.shared.settings.txn_timeout_ms), TIMER_GIVE_UP);
        self.in_flight = Some((order, timer));
    }

    /// One or two lines; the hot item takes `hot_share` of the draws.
    fn draw_lines(&self, ctx: &mut TxnCtx<'_>) -> Vec<Line> {
        let settings = &self.shared.settings;
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

    pub fn on_message(&mut self, ctx: &mut TxnCtx<'_>, msg: Msg) {
        let Msg::Outcome { order, committed } = msg else {
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
        ctx.observe(TxnObs::Client { process: self.process, order, kind });
        self.schedule_next(ctx);
    }
}
