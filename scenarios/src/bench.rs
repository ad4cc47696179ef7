//! `dsim bench`: throughput benchmarks that time the library crates' work.

use std::time::Instant;

use serde::Serialize;

use crate::sysinfo::peak_rss_bytes;

/// What `dsim bench engine` measured.
#[derive(Debug, Serialize)]
pub struct EngineBench {
    pub events_per_sec: f64,
    pub events: u64,
    pub wall_s: f64,
    pub nodes: usize,
    pub in_flight: u64,
    pub pending_max: u64,
    pub messages_sent: u64,
    pub virtual_s: f64,
    pub fingerprint: String,
    pub peak_rss_bytes: Option<u64>,
}

/// Five relays with uniform 1–10 ms delays through the real engine, trace off.
pub fn engine(events: u64, seed: u64) -> EngineBench {
    let nodes = 5;
    let in_flight_per_node = 20;
    // A short warm-up so page faults and cold caches do not count.
    sim_core::bench::run_relay(seed, nodes, in_flight_per_node, events.min(200_000));
    let started = Instant::now();
    let outcome = sim_core::bench::run_relay(seed, nodes, in_flight_per_node, events);
    let wall_s = started.elapsed().as_secs_f64();
    EngineBench {
        events_per_sec: outcome.metrics.events as f64 / wall_s,
        events: outcome.metrics.events,
        wall_s,
        nodes,
        in_flight: nodes as u64 * in_flight_per_node,
        pending_max: outcome.metrics.pending_max,
        messages_sent: outcome.metrics.messages_sent,
        virtual_s: outcome.virtual_ns as f64 / 1e9,
        fingerprint: format!("{:016x}", outcome.fingerprint),
        peak_rss_bytes: peak_rss_bytes(),
    }
}

impl std::fmt::Display for EngineBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "engine: {} nodes, {} messages in flight, trace off", self.nodes, self.in_flight)?;
        writeln!(f, "  events          {}", self.events)?;
        writeln!(f, "  wall time       {:.3} s", self.wall_s)?;
        writeln!(f, "  events/s        {:.0}", self.events_per_sec)?;
        writeln!(f, "  virtual time    {:.1} s", self.virtual_s)?;
        writeln!(f, "  pending max     {}", self.pending_max)?;
        if let Some(rss) = self.peak_rss_bytes {
            writeln!(f, "  peak memory     {:.1} MiB", rss as f64 / 1048576.0)?;
        }
        write!(f, "  fingerprint     {}", self.fingerprint)
    }
}
