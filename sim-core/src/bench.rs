//! The engine benchmark's workload: nodes passing messages to random peers.
//!
//! The timing is the caller's (sim-core reads no clock); this module builds and runs the
//! simulation and reports what it did.

use rand::RngExt;

use crate::engine::{Ctx, Limits, Metrics, NodeId, Process, Sim, SimConfig, TimerId};
use crate::network::{Latency, LinkConfig, NetworkConfig};

/// A node that forwards every message it receives to a random peer.
pub struct Relay {
    /// Messages each node puts in flight at start.
    pub initial_messages: u64,
}

impl Process for Relay {
    type Msg = u64;
    type Obs = ();

    fn on_start(&mut self, ctx: &mut Ctx<'_, u64, ()>) {
        for hop in 0..self.initial_messages {
            let to = random_peer(ctx);
            ctx.send(to, hop);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, u64, ()>, _from: NodeId, msg: u64) {
        let to = random_peer(ctx);
        ctx.send(to, msg.wrapping_add(1));
    }

    fn on_timer(&mut self, _ctx: &mut Ctx<'_, u64, ()>, _timer: TimerId, _tag: u64) {}
}

fn random_peer(ctx: &mut Ctx<'_, u64, ()>) -> NodeId {
    let nodes = ctx.nodes_count();
    let me = ctx.id();
    let offset = ctx.rng().random_range(1..nodes);
    (me + offset) % nodes
}

/// What one benchmark run did.
#[derive(Clone, Copy, Debug)]
pub struct RelayOutcome {
    pub metrics: Metrics,
    pub fingerprint: u64,
    pub virtual_ns: u64,
}

/// Runs `events` events of `nodes` relays with uniform 1–10 ms delays, trace off.
pub fn run_relay(seed: u64, nodes: usize, in_flight_per_node: u64, events: u64) -> RelayOutcome {
    let config = SimConfig {
        seed,
        nodes,
        network: NetworkConfig {
            default: LinkConfig { latency: Latency::Uniform { min_ms: 1.0, max_ms: 10.0 }, ..LinkConfig::default() },
            links: Vec::new(),
            kinds: Vec::new(),
        },
        limits: Limits { max_events: events, max_time_ns: u64::MAX, max_pending: 10_000_000 },
    };
    let mut sim = Sim::new(config, move |_| Relay { initial_messages: in_flight_per_node })
        .expect("the benchmark's configuration is valid");
    sim.run();
    RelayOutcome { metrics: sim.metrics(), fingerprint: sim.fingerprint().value(), virtual_ns: sim.now_ns() }
}
