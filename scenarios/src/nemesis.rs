//! Nemesis schedules: the explicit one, the generated one (swarm testing), and the heal.

use rand::RngExt;
use sim_core::{Fault, Latency, LinkConfig, MixturePart, SimRng, derive_rng};

use protocols::protocol::Topology;

use crate::scenario::{Action, Generator, Scenario, generator_kinds};

/// The whole fault schedule of a run: the scenario's explicit actions, then those its
/// generator draws for this seed, in time order (stable for equal times).
pub fn materialize(scenario: &Scenario, topology: &Topology, seed: u64) -> Vec<Action> {
    let mut schedule = scenario.nemesis.schedule.clone();
    if let Some(generator) = &scenario.nemesis.generator {
        let mut rng = derive_rng(seed, "nemesis/generator");
        schedule.extend(generate(generator, scenario, topology, &mut rng));
    }
    schedule.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    schedule
}

/// The kinds a seed turns on: all with weight, or with swarm a random non-empty subset.
pub fn enabled_kinds(generator: &Generator, topology: &Topology, rng: &mut SimRng) -> Vec<(String, f64)> {
    let weighted: Vec<(String, f64)> = generator_kinds(&topology.target_roles)
        .into_iter()
        .filter_map(|kind| generator.kinds.get(&kind).filter(|w| **w > 0.0).map(|w| (kind.clone(), *w)))
        .collect();
    if !generator.swarm || weighted.is_empty() {
        return weighted;
    }
    let mut chosen: Vec<(String, f64)> = weighted.iter().filter(|_| rng.random_bool(0.5)).cloned().collect();
    if chosen.is_empty() {
        chosen.push(weighted[rng.random_range(0..weighted.len())].clone());
    }
    chosen
}

fn generate(generator: &Generator, scenario: &Scenario, topology: &Topology, rng: &mut SimRng) -> Vec<Action> {
    let kinds = enabled_kinds(generator, topology, rng);
    if kinds.is_empty() {
        return Vec::new();
    }
    let total_weight: f64 = kinds.iter().map(|(_, w)| w).sum();
    let end_ms = scenario.duration.faults_ms;
    let targets = Targets { servers: &topology.servers, clients: &topology.clients, generator };
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
            .map_or(kinds[0].0.as_str(), |(k, _)| k.as_str());
        // Half the crashes are quick restarts (well within an election timeout), which
        // is when a server that forgot its vote can still be asked again.
        let lasting_ms = if kind.starts_with("crash") && rng.random_bool(0.5) {
            rng.random_range(5.0..150.0)
        } else {
            draw(rng, generator.fault_ms)
        };
        let until_ms = (at_ms + lasting_ms).min(end_ms);
        let (at_ms, until_ms) = (round(at_ms), round(until_ms));
        match kind.split_once(':') {
            Some(("partition", role)) => {
                let clients = targets.clients.iter().copied().filter(|_| rng.random_bool(0.5)).collect();
                let fault = Fault::Partition { groups: vec![clients] };
                out.push(Action { at_ms, fault, target: Some(role.to_owned()) });
                out.push(Action { at_ms: until_ms, fault: Fault::Heal, target: None });
            }
            // A pause aimed at whoever plays the role then (a lock client in the middle of
            // an acquisition, say); it ends by itself.
            Some(("pause", role)) => {
                let fault = Fault::Pause { node: 0, duration_ms: round(draw(rng, generator.pause_ms)) };
                out.push(Action { at_ms, fault, target: Some(role.to_owned()) });
            }
            // A one-way cut from whoever plays the role then to some servers (those
            // left once it is taken out of them).
            Some(("cut", role)) => {
                let count = rng.random_range(1..targets.servers.len().max(2));
                let fault = Fault::Cut { from: vec![0], to: some_servers(targets.servers, count, rng) };
                out.push(Action { at_ms, fault, target: Some(role.to_owned()) });
                out.push(Action { at_ms: until_ms, fault: Fault::Heal, target: None });
            }
            Some((_crash, role)) => {
                let fault = crash(0, generator.crash_during_write_share, rng);
                out.push(Action { at_ms, fault, target: Some(role.to_owned()) });
                // Whoever played the role then was crashed: restart every server (a no-op
                // for those up).
                out.extend(targets.servers.iter().map(|&node| Action {
                    at_ms: until_ms,
                    fault: Fault::Restart { node },
                    target: None,
                }));
            }
            None => {
                let (start, undo) = fault_pair(kind, &targets, rng);
                out.push(Action { at_ms, fault: start, target: None });
                if let Some(undo) = undo {
                    out.push(Action { at_ms: until_ms, fault: undo, target: None });
                }
            }
        }
    }
    out
}

/// Who faults may hit, and how hard.
struct Targets<'a> {
    servers: &'a [usize],
    clients: &'a [usize],
    generator: &'a Generator,
}

impl Targets<'_> {
    fn node(&self, rng: &mut SimRng) -> usize {
        if self.generator.target_clients && !self.clients.is_empty() {
            let count = self.servers.len() + self.clients.len();
            let pick = rng.random_range(0..count);
            if pick < self.servers.len() { self.servers[pick] } else { self.clients[pick - self.servers.len()] }
        } else {
            self.servers[rng.random_range(0..self.servers.len())]
        }
    }
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

fn draw(rng: &mut SimRng, [min, max]: [f64; 2]) -> f64 {
    if max > min { rng.random_range(min..max) } else { min }
}

fn some_servers(servers: &[usize], count: usize, rng: &mut SimRng) -> Vec<usize> {
    let mut all: Vec<usize> = servers.to_vec();
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
        "partition" => (partition(targets.servers, targets.clients, rng), Some(Fault::Heal)),
        // One server stops hearing from another (or several), but still reaches them: a
        // one-way cut, the disruptive server of Raft's pre-vote.
        "cut" => {
            let servers = targets.servers;
            let deaf = servers[rng.random_range(0..servers.len())];
            let others: Vec<usize> = servers.iter().copied().filter(|n| *n != deaf).collect();
            let count = rng.random_range(1..others.len().max(1) + 1);
            (Fault::Cut { from: some_servers(&others, count, rng), to: vec![deaf] }, Some(Fault::Heal))
        }
        "crash" => (crash(node, generator.crash_during_write_share, rng), Some(Fault::Restart { node })),
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
        // Most messages go as usual; one in 20 is held for 1 to 4 s, then delivered (a
        // packet stuck in a queue, a connection retransmitting after a stall).
        "late_delivery" => {
            let part = |weight, min_ms, max_ms| MixturePart { weight, latency: Latency::Uniform { min_ms, max_ms } };
            let latency = Latency::Mixture { parts: vec![part(0.95, 1.0, 5.0), part(0.05, 1_000.0, 4_000.0)] };
            (links(LinkConfig { latency, ..LinkConfig::default() }), Some(Fault::ResetLinks))
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

/// A share of the crashes (half by default) strike in the middle of the node's storage
/// I/O (after 0–2 more writes), where unsynced writes are lost or torn; the rest between
/// events.
fn crash(node: usize, during_write_share: f64, rng: &mut SimRng) -> Fault {
    if rng.random_bool(during_write_share) {
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
fn partition(server_ids: &[usize], clients: &[usize], rng: &mut SimRng) -> Fault {
    let servers = server_ids.len();
    if servers < 2 {
        // One server: cut a random share of the clients off from it.
        let cut: Vec<usize> = clients.iter().copied().filter(|_| rng.random_bool(0.5)).collect();
        return if cut.is_empty() { Fault::Heal } else { Fault::Partition { groups: vec![cut] } };
    }
    let with_clients = |mut group: Vec<usize>, rng: &mut SimRng| {
        group.extend(clients.iter().copied().filter(|_| rng.random_bool(0.5)));
        group
    };
    match rng.random_range(0..4) {
        0 => {
            let isolated = some_servers(server_ids, 1, rng);
            Fault::Partition { groups: vec![with_clients(isolated, rng)] }
        }
        1 => {
            let minority = some_servers(server_ids, servers.div_ceil(2) - 1 + usize::from(servers == 2), rng);
            Fault::Partition { groups: vec![with_clients(minority, rng)] }
        }
        2 if servers >= 3 => {
            let order = some_servers(server_ids, servers, rng);
            let half = (servers - 1) / 2;
            Fault::Bridge { left: order[1..=half].to_vec(), bridge: order[0], right: order[half + 1..].to_vec() }
        }
        _ => {
            let from = some_servers(server_ids, 1, rng);
            let to: Vec<usize> = server_ids.iter().copied().filter(|n| !from.contains(n)).collect();
            Fault::Cut { from, to }
        }
    }
}

/// `action`'s fault aimed at node `leader` (the one playing the role it targets).
pub fn aim_at(fault: &Fault, leader: usize) -> Fault {
    let mut aimed = fault.clone();
    if let Some(node) = aimed.node_mut() {
        *node = leader;
    }
    if let Fault::Cut { from, to } = &mut aimed {
        *from = vec![leader];
        to.retain(|n| *n != leader);
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
/// every clock back to true rate, every node up.
pub fn heal_all(nodes: usize) -> Vec<Fault> {
    let mut faults = vec![Fault::Heal, Fault::ResetLinks];
    for node in 0..nodes {
        faults.push(Fault::ClockDrift { node, drift_ppm: 0.0 });
        faults.push(Fault::Restart { node });
    }
    faults
}
