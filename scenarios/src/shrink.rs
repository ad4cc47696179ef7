//! Shrinking a failing run: fewer and shorter faults, fewer clients, fewer operations,
//! a shorter run, for as long as the same kind of violation still occurs.
//!
//! Every candidate is a complete scenario run with the same seed. Changing the scenario
//! changes the run (the network draws shift), so each step is a fresh trial; the
//! search is greedy, deterministic, and bounded in runs.

use sim_core::Fault;

use crate::scenario::{Action, Scenario};

/// The most runs one shrink may spend.
pub const RUNS_MAX: usize = 300;

struct Shrinker<'a> {
    seed: u64,
    kind: &'a str,
    runs: usize,
}

impl Shrinker<'_> {
    fn fails(&mut self, candidate: &Scenario) -> bool {
        if self.runs >= RUNS_MAX || crate::scenario::validate(candidate).is_err() {
            return false;
        }
        self.runs += 1;
        match crate::fuzz::run_guarded(candidate, self.seed) {
            Ok(outcome) => outcome.violations.first().is_some_and(|v| v.kind == self.kind),
            Err((kind, _)) => kind == self.kind,
        }
    }
}

/// Shrinks `failing` (a pinned scenario whose run with `seed` shows a `kind` violation).
/// Returns the smallest failing scenario found and the runs spent.
pub fn shrink(failing: &Scenario, seed: u64, kind: &str) -> (Scenario, usize) {
    let mut shrinker = Shrinker { seed, kind, runs: 0 };
    let mut best = failing.clone();
    loop {
        let before = (
            best.nemesis.schedule.len(),
            best.cluster.clients,
            best.duration.faults_ms.to_bits(),
            best.duration.healed_ms.to_bits(),
            best.settings.clone(),
        );
        best = drop_fault_actions(&mut shrinker, best);
        best = shorten(&mut shrinker, best);
        best = fewer_clients(&mut shrinker, best);
        best = smaller_settings(&mut shrinker, best);
        let after = (
            best.nemesis.schedule.len(),
            best.cluster.clients,
            best.duration.faults_ms.to_bits(),
            best.duration.healed_ms.to_bits(),
            best.settings.clone(),
        );
        if before == after || shrinker.runs >= RUNS_MAX {
            return (best, shrinker.runs);
        }
    }
}

/// Delta debugging over the fault actions: drop chunks, halving the chunk size.
fn drop_fault_actions(shrinker: &mut Shrinker<'_>, mut best: Scenario) -> Scenario {
    let mut chunk = best.nemesis.schedule.len().div_ceil(2).max(1);
    while !best.nemesis.schedule.is_empty() {
        let mut start = 0;
        while start < best.nemesis.schedule.len() {
            let mut candidate = best.clone();
            let end = (start + chunk).min(candidate.nemesis.schedule.len());
            candidate.nemesis.schedule.drain(start..end);
            if shrinker.fails(&candidate) {
                best = candidate;
            } else {
                start += chunk;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    best
}

/// A fault phase that ends just after the last action, a shorter healed phase.
fn shorten(shrinker: &mut Shrinker<'_>, mut best: Scenario) -> Scenario {
    let last_action_ms = best.nemesis.schedule.iter().map(|f| f.at_ms).fold(0.0, f64::max);
    let tighter = (last_action_ms + 100.0).ceil();
    if tighter < best.duration.faults_ms {
        let mut candidate = best.clone();
        candidate.duration.faults_ms = tighter;
        if shrinker.fails(&candidate) {
            best = candidate;
        }
    }
    while best.duration.healed_ms >= 500.0 {
        let mut candidate = best.clone();
        candidate.duration.healed_ms = (best.duration.healed_ms / 2.0).floor();
        if !shrinker.fails(&candidate) {
            break;
        }
        best = candidate;
    }
    best
}

/// One client fewer at a time; faults that name a removed client lose it.
fn fewer_clients(shrinker: &mut Shrinker<'_>, mut best: Scenario) -> Scenario {
    while best.cluster.clients > 1 {
        let mut candidate = best.clone();
        candidate.cluster.clients -= 1;
        let Ok(topology) = candidate.topology() else { break };
        let nodes = topology.nodes.len();
        candidate.nemesis.schedule = candidate.nemesis.schedule.iter().filter_map(|f| restrict(f, nodes)).collect();
        if !shrinker.fails(&candidate) {
            break;
        }
        best = candidate;
    }
    best
}

/// The protocol's own smaller settings (a slower workload, say), one step at a time.
fn smaller_settings(shrinker: &mut Shrinker<'_>, mut best: Scenario) -> Scenario {
    let Ok(entry) = best.entry() else { return best };
    loop {
        let candidates = entry.shrink_settings(&best);
        let mut improved = false;
        for settings in candidates {
            let mut candidate = best.clone();
            candidate.settings = settings;
            if candidate.settings != best.settings && shrinker.fails(&candidate) {
                best = candidate;
                improved = true;
                break;
            }
        }
        if !improved {
            return best;
        }
    }
}

/// The fault without nodes `>= nodes`; `None` if nothing of it is left.
fn restrict(scheduled: &Action, nodes: usize) -> Option<Action> {
    let keep = |list: &Vec<usize>| list.iter().copied().filter(|n| *n < nodes).collect::<Vec<usize>>();
    let fault = match &scheduled.fault {
        Fault::Partition { groups } => Fault::Partition { groups: groups.iter().map(keep).collect() },
        Fault::Cut { from, to } => Fault::Cut { from: keep(from), to: keep(to) },
        Fault::Bridge { left, bridge, right } if *bridge < nodes => {
            Fault::Bridge { left: keep(left), bridge: *bridge, right: keep(right) }
        }
        Fault::SetLinks { from, to, link } => Fault::SetLinks { from: keep(from), to: keep(to), link: link.clone() },
        other if other.node().is_some_and(|n| n >= nodes) => return None,
        Fault::Bridge { .. } => return None,
        other => other.clone(),
    };
    Some(Action { at_ms: scheduled.at_ms, fault, target: scheduled.target.clone() })
}
