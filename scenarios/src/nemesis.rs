//! Nemesis schedules: the explicit one, the generated one (swarm testing), and the heal.

use rand::RngExt;
use sim_core::{Fault, Latency, LinkConfig, SimRng, derive_rng};

use crate::scenario::{Action, GENERATOR_KINDS, Generator, Scenario, client_ids};

/// The whole fault schedule of a run: the scenario's explicit actions, then those its
/// generator draws for this seed, in time order (stable for equal times).
pub fn materialize(scenario: &Scenario, seed: u64) -> Vec<Action> {
    let mut schedule = scenario.nemesis.schedule.clone();
    if let Some(generator) = &scenario.nemesis.generator {
        let mut rng = derive_rng(seed, "nemesis/generator");
        schedule.extend(generate(generator, scenario, &mut rng));
    }
    schedule.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    schedule
}

/// The kinds a seed turns on: all with weight, or with swarm a random non-empty subset.
pub fn enabled_kinds(generator: &Generator, rng: &mut SimRng) -> Vec<(&'static str, f64)> {
    let weighted: Vec<(&'static str, f64)> = GENERATOR_KINDS
        .iter()
        .filter_map(|kind| generator.kinds.get(*kind).filter(|w| **w > 0.0).map(|w| (*kind, *w)))
        .collect();
    if !generator.swarm || weighted.is_empty() {
        return weighted;
    }
    let mut chosen: Vec<(&'static str, f64)> = weighted.iter().copied().filter(|_| rng.random_bool(0.5)).collect();
    if chosen.is_empty() {
        chosen.push(weighted[rng.random_range(0..weighted.len())]);
    }
    chosen
}

fn generate(generator: &Generator, scenario: &Scenario, rng: &mut SimRng) -> Vec<Action> {
    let kinds = enabled_kinds(generator, rng);
    if kinds.is_empty() {
        return Vec::new();
    }
    let total_weight: f64 = kinds.iter().map(|(_, w)| w).sum();
    let end_ms = scenario.duration.faults_ms;
    let servers = scenario.cluster.servers;
    let targets = Targets { servers, clients: client_ids(scenario), generator };
    let mut out = Vec::new();
    let mut at_ms = 0.0;
    loop {
        at_ms += draw(rng, generator.interval_ms);
        if at_ms >= end_ms {
            break;
        }
        let mut pick = rng.random_range(0.0..total_weight);
        let kind = kinds
            .iter()
            .find(|(_, w)| {
                let hit = pick < *w;
                pick -= w;
                hit
            })
            .map_or(kinds[0].0, |(k, _)| *k);
        // Half the crashes are quick restarts (well within an election timeout), which
        // is when a server that forgot its vote can still be asked again.
        let lasting_ms = if kind.starts_with("crash") && rng.random_bool(0.5) {
            rng.random_range(5.0..150.0)
        } else {
            draw(rng, generator.fault_ms)
        };
        let until_ms = (at_ms + lasting_ms).min(end_ms);
        let (at_ms, until_ms) = (round(at_ms), round(until_ms));
        match kind {
            "partition_leader" => {
                let clients = targets.clients.clone().filter(|_| rng.random_bool(0.5)).collect();
                let fault = Fault::Partition { groups: vec![clients] };
                out.push(Action { at_ms, fault, on_leader: true });
                out.push(Action { at_ms: until_ms, fault: Fault::Heal, on_leader: false });
            }
            "crash_leader" => {
                let fault = crash(0, rng);
                out.push(Action { at_ms, fault, on_leader: true });
                // Whoever leads then was crashed: restart every server (a no-op for those up).
                out.extend((0..servers).map(|node| Action {
                    at_ms: until_ms,
                    fault: Fault::Restart { node },
                    on_leader: false,
                }));
            }
            _ => {
                let (start, undo) = fault_pair(kind, &targets, rng);
                out.push(Action { at_ms, fault: start, on_leader: false });
                if let Some(undo) = undo {
                    out.push(Action { at_ms: until_ms, fault: undo, on_leader: false });
                }
            }
        }
    }
    out
}

/// Who faults may hit, and how hard.
struct Targets<'a> {
    servers: usize,
    clients: std::ops::Range<usize>,
    generator: &'a Generator,
}

impl Targets<'_> {
    fn node(&self, rng: &mut SimRng) -> usize {
        if self.generator.target_clients && !self.clients.is_empty() {
            let count = self.servers + self.clients.len();
            let pick = rng.random_range(0..count);
            if pick < self.servers { pick } else { self.clients.start + pick - self.servers }
        } else {
            rng.random_range(0..self.servers)
        }
    }
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

fn draw(rng: &mut SimRng, [min, max]: [f64; 2]) -> f64 {
    if max > min { rng.random_range(min..max) } else { min }
}

fn some_servers(servers: usize, count: usize, rng: &mut SimRng) -> Vec<usize> {
    let mut all: Vec<usize> = (0..servers).collect();
    for i in 0..all.len() {
        let j = rng.random_range(i..all.len());
        all.swap(i, j);
    }
    all.truncate(count);
    all.sort_unstable();
    all
}

/// A fault and what undoes it.
fn fault_pair(kind: &str, targets: &Targets<'_>, rng: &mut SimRng) -> (Fault, Option<Fault>) {
    let node = targets.node(rng);
    let generator = targets.generator;
    match kind {
        "partition" => (partition(targets.servers, targets.clients.clone(), rng), Some(Fault::Heal)),
        "crash" => (crash(node, rng), Some(Fault::Restart { node })),
        "pause" => (Fault::Pause { node, duration_ms: round(draw(rng, generator.pause_ms)) }, None),
        "drop" => (
            links(LinkConfig { drop: round(rng.random_range(0.05..0.4)), ..LinkConfig::default() }),
            Some(Fault::ResetLinks),
        ),
        "duplicate" => (
            links(LinkConfig { duplicate: round(rng.random_range(0.05..0.4)), ..LinkConfig::default() }),
            Some(Fault::ResetLinks),
        ),
        "delay" => {
            let max_ms = round(rng.random_range(20.0..300.0));
            (
                links(LinkConfig { latency: Latency::Uniform { min_ms: 1.0, max_ms }, ..LinkConfig::default() }),
                Some(Fault::ResetLinks),
            )
        }
        "clock_drift" => {
            let max = generator.drift_ppm_max;
            let drift_ppm = round(rng.random_range(-max..max));
            (Fault::ClockDrift { node, drift_ppm }, Some(Fault::ClockDrift { node, drift_ppm: 0.0 }))
        }
        "clock_jump" => {
            let max = generator.jump_ms_max;
            (Fault::ClockJump { node, delta_ms: round(rng.random_range(-max..max)) }, None)
        }
        other => unreachable!("validated fault kind {other}"),
    }
}

/// Half the crashes strike between events, half in the middle of the node's storage
/// I/O (after 0–2 more writes), where unsynced writes are lost or torn.
fn crash(node: usize, rng: &mut SimRng) -> Fault {
    if rng.random_bool(0.5) {
        Fault::CrashDuringWrite { node, writes: rng.random_range(0..3), torn_write: rng.random_bool(0.5) }
    } else {
        Fault::Crash { node, torn_write: rng.random_bool(0.2) }
    }
}

fn links(link: LinkConfig) -> Fault {
    Fault::SetLinks { from: Vec::new(), to: Vec::new(), link }
}

/// Partitions of several shapes: one server isolated, a minority cut off (each with a
/// random share of the clients on its side), a bridge, a one-way cut.
fn partition(servers: usize, clients: std::ops::Range<usize>, rng: &mut SimRng) -> Fault {
    if servers < 2 {
        // One server: cut a random share of the clients off from it.
        let cut: Vec<usize> = clients.filter(|_| rng.random_bool(0.5)).collect();
        return if cut.is_empty() { Fault::Heal } else { Fault::Partition { groups: vec![cut] } };
    }
    let with_clients = |mut group: Vec<usize>, rng: &mut SimRng| {
        group.extend(clients.clone().filter(|_| rng.random_bool(0.5)));
        group
    };
    match rng.random_range(0..4) {
        0 => {
            let isolated = some_servers(servers, 1, rng);
            Fault::Partition { groups: vec![with_clients(isolated, rng)] }
        }
        1 => {
            let minority = some_servers(servers, servers.div_ceil(2) - 1 + usize::from(servers == 2), rng);
            Fault::Partition { groups: vec![with_clients(minority, rng)] }
        }
        2 if servers >= 3 => {
            let order = some_servers(servers, servers, rng);
            let half = (servers - 1) / 2;
            Fault::Bridge { left: order[1..=half].to_vec(), bridge: order[0], right: order[half + 1..].to_vec() }
        }
        _ => {
            let from = some_servers(servers, 1, rng);
            let to: Vec<usize> = (0..servers).filter(|n| !from.contains(n)).collect();
            Fault::Cut { from, to }
        }
    }
}

/// `action`'s fault aimed at `leader`.
pub fn aim_at_leader(fault: &Fault, leader: usize) -> Fault {
    let mut aimed = fault.clone();
    if let Some(node) = aimed.node_mut() {
        *node = leader;
    }
    if let Fault::Partition { groups } = &mut aimed {
        for group in groups.iter_mut() {
            group.retain(|n| *n != leader);
        }
        match groups.first_mut() {
            Some(first) => first.insert(0, leader),
            None => groups.push(vec![leader]),
        }
    }
    aimed
}

/// What the heal at the end of the fault phase does: every cut and link fault removed,
/// every clock back to true rate, every server up.
pub fn heal_all(servers: usize, clients: usize) -> Vec<Fault> {
    let mut faults = vec![Fault::Heal, Fault::ResetLinks];
    for node in 0..servers + clients {
        faults.push(Fault::ClockDrift { node, drift_ppm: 0.0 });
        faults.push(Fault::Restart { node });
    }
    faults
}
