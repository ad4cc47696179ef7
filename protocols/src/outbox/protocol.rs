//! `outbox` in the protocol registry: settings, variants, topology, and the judge of
//! exactly-once effects.

use std::collections::BTreeMap;
use std::rc::Rc;

use checker::Violation;
use checker::history::Event;
use serde::{Deserialize, Serialize};
use sim_core::{NodeId, Observation, Sim};

use super::{Msg, OutboxNode, OutboxObs, Shared, Variant};
use crate::order_client::{MS_MAX, OrderClientSettings, OrderId, OrderSuccess, check, ms_ok, order_event, percentile};
use crate::protocol::{
    Cluster, FieldError, HistoryCheck, Judge, NodeInfo, Protocol, RunSpec, Topology, VariantInfo, VariantKind,
};

/// The transactional outbox in the registry.
pub struct Outbox;

/// A scenario's `"settings"` for `outbox`: the order workload (as `2pc`'s) and the
/// relay's, queue's and local transactions' timing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    pub rate_per_client: f64,
    pub items: u32,
    pub initial_stock: i64,
    pub hot_share: f64,
    pub lines_max: u32,
    pub qty_max: u32,
    pub txn_timeout_ms: f64,
    pub orders_at_ms: Vec<f64>,
    /// A local transaction at the order service takes up to this long (it takes its row
    /// id when it begins).
    pub local_txn_ms_max: f64,
    pub relay_every_ms: f64,
    pub relay_batch: usize,
    /// The relay publishes a row again when the queue has not acknowledged it by then.
    pub publish_timeout_ms: f64,
    pub queue_tick_ms: f64,
    /// The queue delivers a message again when it is not acknowledged by then.
    pub visibility_timeout_ms: f64,
    /// Messages the queue has in flight to the consumer at most.
    pub delivery_window: usize,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            rate_per_client: 5.0,
            items: 8,
            initial_stock: 100_000,
            hot_share: 0.3,
            lines_max: 2,
            qty_max: 3,
            txn_timeout_ms: 3000.0,
            orders_at_ms: Vec::new(),
            local_txn_ms_max: 20.0,
            relay_every_ms: 20.0,
            relay_batch: 32,
            publish_timeout_ms: 200.0,
            queue_tick_ms: 20.0,
            visibility_timeout_ms: 300.0,
            delivery_window: 32,
        }
    }
}

impl OutboxSettings {
    /// The order clients' settings: the workload, the order service, the clients.
    fn clients(&self, first_client: NodeId, clients: usize, stop_ns: u64) -> OrderClientSettings {
        OrderClientSettings {
            service: Shared::ORDERS,
            first_client,
            clients,
            rate_per_client: self.rate_per_client,
            items: self.items,
            hot_share: self.hot_share,
            lines_max: self.lines_max,
            qty_max: self.qty_max,
            txn_timeout_ms: self.txn_timeout_ms,
            orders_at_ms: self.orders_at_ms.clone(),
            clients_stop_ns: stop_ns,
        }
    }
}

impl Protocol for Outbox {
    const NAME: &'static str = "outbox";
    const DESCRIPTION: &'static str =
        "the transactional outbox: order service, relay, durable queue, idempotent inventory consumer (BASE)";
    const VARIANTS: &'static [VariantInfo] = &[
        VariantInfo {
            name: "correct",
            doc: "outbox row with the order, relay until acknowledged, inbox with the effect",
            kind: VariantKind::Correct,
        },
        VariantInfo {
            name: "dual-write",
            doc: "no outbox: commit the order, then publish once, directly",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "no-inbox",
            doc: "the consumer records no processed ids: a redelivery applies the effect twice",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "ack-before-commit",
            doc: "the consumer acknowledges before its transaction commits",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "delete-before-ack",
            doc: "the relay marks a row sent before the queue acknowledged it",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "poll-by-sequence",
            doc: "the relay polls above the highest row id it sent: a late commit with a lower id is skipped",
            kind: VariantKind::Bug,
        },
    ];
    const SCENARIOS: &'static [(&'static str, &'static str)] = &[
        ("outbox", include_str!("scenarios/outbox.json")),
        ("outbox-services-partitioned", include_str!("scenarios/outbox-services-partitioned.json")),
        ("outbox-relay-node", include_str!("scenarios/outbox-relay-node.json")),
        ("outbox-lossy-links", include_str!("scenarios/outbox-lossy-links.json")),
        ("outbox-consumer-crash", include_str!("scenarios/outbox-consumer-crash.json")),
        ("outbox-slow-transactions", include_str!("scenarios/outbox-slow-transactions.json")),
    ];

    type Settings = OutboxSettings;
    type Node = OutboxNode;
    type Judge = OutboxJudge;

    fn validate(s: &OutboxSettings, cluster: Cluster, _variant: &str) -> Result<(), FieldError> {
        check(
            "cluster.servers",
            (3..=4).contains(&cluster.servers),
            "3 (order service with its relay, queue, inventory) or 4 (and a relay node)",
            cluster.servers,
        )?;
        check("cluster.clients", cluster.clients <= 64, "0 to 64", cluster.clients)?;
        s.clients(0, 0, 0).validate_workload(s.initial_stock)?;
        for (path, value, min) in [
            ("local_txn_ms_max", s.local_txn_ms_max, 0.0),
            ("relay_every_ms", s.relay_every_ms, 0.1),
            ("publish_timeout_ms", s.publish_timeout_ms, 1.0),
            ("queue_tick_ms", s.queue_tick_ms, 0.1),
            ("visibility_timeout_ms", s.visibility_timeout_ms, 1.0),
        ] {
            check(path, ms_ok(value, min), &format!("{min} to {MS_MAX}"), value)?;
        }
        check("relay_batch", (1..=100_000).contains(&s.relay_batch), "1 to 100000", s.relay_batch)?;
        check("delivery_window", (1..=100_000).contains(&s.delivery_window), "1 to 100000", s.delivery_window)
    }

    fn topology(_settings: &OutboxSettings, cluster: Cluster) -> Topology {
        let mut nodes = vec![
            NodeInfo { kind: "orders".into(), label: "orders 0".into() },
            NodeInfo { kind: "queue".into(), label: "queue 1".into() },
            NodeInfo { kind: "inventory".into(), label: "inventory 2".into() },
        ];
        if cluster.servers == 4 {
            nodes.push(NodeInfo { kind: "relay".into(), label: "relay 3".into() });
        }
        let first = cluster.servers;
        nodes.extend(
            (0..cluster.clients).map(|c| NodeInfo { kind: "client".into(), label: format!("client {}", first + c) }),
        );
        Topology {
            servers: (0..first).collect(),
            clients: (first..first + cluster.clients).collect(),
            nodes,
            target_roles: Vec::new(),
        }
    }

    fn build(settings: &OutboxSettings, run: &RunSpec<'_>) -> (Box<dyn FnMut(NodeId) -> OutboxNode>, OutboxJudge) {
        let clients_stop_ns = run.end_ns.saturating_sub((settings.txn_timeout_ms * 1e6) as u64);
        let clients = settings.clients(run.cluster.servers, run.cluster.clients, clients_stop_ns);
        let shared = Rc::new(Shared {
            variant: Variant::parse(run.variant).expect("validated variant"),
            relay_node: run.cluster.servers == 4,
            settings: settings.clone(),
            clients: Rc::new(clients),
        });
        let judge = OutboxJudge {
            relay_node: run.cluster.servers == 4,
            quiet_ns: run.quiet_ns,
            end_ns: run.end_ns,
            success: OrderSuccess::new(run.heal_ns),
            heal_ns: run.heal_ns,
            ..OutboxJudge::default()
        };
        (Box::new(move |id| OutboxNode::new(id, &shared)), judge)
    }

    fn message_label(msg: &Msg) -> Option<String> {
        let short = |o: &OrderId| format!("c{}.{}", o.client, o.seq % 100_000);
        Some(match msg {
            Msg::Submit { order, .. } => format!("submit {}", short(order)),
            Msg::Outcome { .. } => "committed".to_owned(),
            Msg::Publish { message } => format!("publish row {}", message.row),
            Msg::Published { row } => format!("published row {row}"),
            Msg::Deliver { delivery, .. } => format!("deliver {delivery}"),
            Msg::Fetch { after } => format!("fetch rows > {after}"),
            Msg::Rows { rows } => format!("{} rows", rows.len()),
            Msg::MarkSent { row } => format!("mark row {row} sent"),
            Msg::Ack { delivery } => format!("ack {delivery}"),
        })
    }
}

/// The judge: exactly-once effects, stock never negative, and the outbox drained and
/// every order's effect applied after the heal.
#[derive(Default)]
pub struct OutboxJudge {
    relay_node: bool,
    quiet_ns: u64,
    end_ns: u64,
    success: OrderSuccess,
    /// Committed orders and when; removed when their effect lands.
    awaiting: BTreeMap<OrderId, u64>,
    committed: u64,
    effects: BTreeMap<OrderId, u64>,
    lag_ms: Vec<f64>,
    rejected: u64,
    duplicates_suppressed: u64,
    redeliveries: u64,
    relayed: u64,
    depth_max: u64,
    heal_ns: u64,
    /// The outbox's depth (committed, not yet acknowledged by the queue) when the faults
    /// were healed, and how long after the heal it first went back to empty.
    depth_at_heal: Option<u64>,
    drained_after_heal_ns: Option<u64>,
}

impl OutboxJudge {
    /// Follows the outbox's depth at instant `t_ns`, before and after a change.
    fn track_depth(&mut self, t_ns: u64, before: u64) {
        let after = self.committed - self.relayed.min(self.committed);
        self.depth_max = self.depth_max.max(after);
        if t_ns >= self.heal_ns {
            let at_heal = *self.depth_at_heal.get_or_insert(before);
            if after == 0 && at_heal > 0 && self.drained_after_heal_ns.is_none() {
                self.drained_after_heal_ns = Some(t_ns - self.heal_ns);
            }
        }
    }
}

impl Judge<OutboxNode> for OutboxJudge {
    fn observe(&mut self, observation: &Observation<OutboxObs>, _sim: &Sim<OutboxNode>) -> Option<Violation> {
        let (t_ns, node) = (observation.t_ns, observation.node);
        match &observation.obs {
            OutboxObs::OrderCommitted { order, .. } => {
                let before = self.committed - self.relayed.min(self.committed);
                self.committed += 1;
                self.awaiting.insert(*order, t_ns);
                self.track_depth(t_ns, before);
                None
            }
            OutboxObs::Relayed { .. } => {
                let before = self.committed - self.relayed.min(self.committed);
                self.relayed += 1;
                self.track_depth(t_ns, before);
                None
            }
            OutboxObs::Effect { order, applied, stock } => {
                if let Some(first_ns) = self.effects.insert(*order, t_ns) {
                    let message = format!(
                        "{order}'s effect applied twice: at {:.3} ms and again now (a redelivery not suppressed)",
                        first_ns as f64 / 1e6
                    );
                    return Some(Violation::new("exactly-once", message, t_ns, Some(node)));
                }
                let Some(committed_ns) = self.awaiting.remove(order) else {
                    let message = format!("an effect for {order}, which was never committed");
                    return Some(Violation::new("effect-without-order", message, t_ns, Some(node)));
                };
                self.lag_ms.push((t_ns - committed_ns) as f64 / 1e6);
                self.rejected += u64::from(!applied);
                if let Some((item, level)) = stock.iter().find(|(_, level)| *level < 0) {
                    let message = format!("item {item}'s stock went to {level} applying {order}");
                    return Some(Violation::new("isolation", message, t_ns, Some(node)));
                }
                None
            }
            OutboxObs::DuplicateSuppressed { .. } => {
                self.duplicates_suppressed += 1;
                None
            }
            OutboxObs::Redelivered { .. } => {
                self.redeliveries += 1;
                None
            }
            OutboxObs::Client { order, kind, .. } => {
                self.success.observe(t_ns, *order, *kind);
                None
            }
        }
    }

    fn client_event(&self, observation: &Observation<OutboxObs>) -> Option<Event> {
        let OutboxObs::Client { process, order, kind } = &observation.obs else {
            return None;
        };
        Some(order_event(observation.t_ns, *process, *order, *kind))
    }

    fn initial_role(&self, node: NodeId) -> Option<String> {
        Some(
            match node {
                0 => "orders",
                1 => "queue",
                2 => "inventory",
                3 if self.relay_node => "relay",
                _ => return None,
            }
            .to_owned(),
        )
    }

    fn history_check(&self) -> HistoryCheck {
        HistoryCheck::None
    }

    /// Every order committed before the faults ended has its effect, and the outbox of
    /// the order service (if up) is empty.
    fn recovered(&self, sim: &Sim<OutboxNode>) -> Result<(), String> {
        let missing: Vec<String> = self
            .awaiting
            .iter()
            .filter(|(_, t)| **t < self.quiet_ns)
            .map(|(order, t)| format!("{order} (committed at {:.3} ms)", *t as f64 / 1e6))
            .collect();
        if !missing.is_empty() {
            let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
            return Err(format!(
                "{} committed orders have no effect after the heal: {}",
                missing.len(),
                shown.join("; ")
            ));
        }
        match sim.process(Shared::ORDERS).and_then(OutboxNode::unsent) {
            Some(unsent) if unsent > 0 && sim.is_up(Shared::ORDERS) => {
                // Rows committed since the faults ended may legitimately be in flight.
                let old = self.awaiting.values().filter(|t| **t < self.quiet_ns).count();
                if old > 0 {
                    Err(format!("the outbox still holds {unsent} unsent rows after the heal"))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    fn metrics(&self) -> BTreeMap<String, f64> {
        let mut metrics = BTreeMap::from([
            ("orders_committed".to_owned(), self.committed as f64),
            ("orders_per_s".to_owned(), self.committed as f64 / (self.end_ns.max(1) as f64 / 1e9)),
            ("effects".to_owned(), self.effects.len() as f64),
            ("effects_rejected_for_stock".to_owned(), self.rejected as f64),
            ("duplicates_suppressed".to_owned(), self.duplicates_suppressed as f64),
            ("redeliveries".to_owned(), self.redeliveries as f64),
            ("outbox_depth_max".to_owned(), self.depth_max as f64),
            ("orders_without_effect_at_end".to_owned(), self.awaiting.len() as f64),
        ]);
        if !self.lag_ms.is_empty() {
            metrics.insert("lag_ms_p50".to_owned(), percentile(&self.lag_ms, 0.5));
            metrics.insert("lag_ms_p99".to_owned(), percentile(&self.lag_ms, 0.99));
            metrics.insert("lag_ms_max".to_owned(), percentile(&self.lag_ms, 1.0));
        }
        if let Some(depth) = self.depth_at_heal {
            metrics.insert("outbox_depth_at_heal".to_owned(), depth as f64);
        }
        if let Some(drain_ns) = self.drained_after_heal_ns {
            metrics.insert("outbox_drained_ms_after_heal".to_owned(), drain_ns as f64 / 1e6);
        }
        self.success.metrics(&mut metrics);
        metrics
    }
}
