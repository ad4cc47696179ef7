//! `dsim experiment raft-election`: the leader-election experiment of the Raft paper
//! (extended version, Figure 16; Ongaro's thesis, chapter 9).
//!
//! Setup, as the paper describes it: five servers; a broadcast time (a round trip to
//! every server) of about 15 ms, here one-way delays uniform in 6–9 ms; a heartbeat
//! interval of half the minimum election timeout. Each trial starts a fresh cluster,
//! lets it elect a leader, then crashes the leader at a uniformly random point of its
//! heartbeat interval, and measures the downtime: from the crash until every surviving
//! server has heard from a new leader.

use std::rc::Rc;

use clap::{Args, Subcommand};

use protocols::kv::KvWorkload;
use protocols::raft::server::Role;
use protocols::raft::{RaftConfig, RaftNode, RaftObs, Settings, Variant};
use rand::RngExt;
use serde::Serialize;
use sim_core::{Fault, Latency, Limits, LinkConfig, MS, NetworkConfig, Sim, SimConfig, Step, derive_rng};

/// What the experiment measured.
#[derive(Debug, Serialize)]
pub struct ElectionResult {
    pub timeouts: String,
    pub trials: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Trials that had no new leader within the 10 s bound (counted at the bound).
    pub unresolved: usize,
    /// Downtime of every trial, sorted, in milliseconds.
    #[serde(skip)]
    pub downtimes_ms: Vec<f64>,
}

const SERVERS: usize = 5;
const BOUND_NS: u64 = 10_000 * MS;

/// Runs `trials` trials with election timeouts drawn from `[min_ms, max_ms]`.
pub fn raft_election(min_ms: f64, max_ms: f64, trials: usize, seed: u64) -> ElectionResult {
    let mut downtimes: Vec<f64> = Vec::with_capacity(trials);
    let mut unresolved = 0;
    for trial in 0..trials {
        match one_trial(min_ms, max_ms, seed.wrapping_add(trial as u64)) {
            Some(ns) => downtimes.push(ns as f64 / 1e6),
            None => {
                unresolved += 1;
                downtimes.push(BOUND_NS as f64 / 1e6);
            }
        }
    }
    downtimes.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        let rank = ((p * downtimes.len() as f64).ceil() as usize).clamp(1, downtimes.len().max(1));
        downtimes.get(rank - 1).copied().unwrap_or(0.0)
    };
    ElectionResult {
        timeouts: format!("{min_ms}-{max_ms}"),
        trials,
        p50_ms: percentile(0.5),
        p90_ms: percentile(0.9),
        p99_ms: percentile(0.99),
        max_ms: downtimes.last().copied().unwrap_or(0.0),
        mean_ms: downtimes.iter().sum::<f64>() / downtimes.len().max(1) as f64,
        unresolved,
        downtimes_ms: downtimes,
    }
}

fn cluster(min_ms: f64, max_ms: f64, seed: u64) -> Sim<RaftNode> {
    let raft =
        RaftConfig { election_timeout_ms: [min_ms, max_ms], heartbeat_ms: min_ms / 2.0, ..RaftConfig::default() };
    let settings = Rc::new(Settings {
        servers: SERVERS,
        clients: 0,
        variant: Variant::Correct,
        raft,
        workload: KvWorkload::default(),
        clients_stop_ns: 0,
        writes_until_ns: u64::MAX,
    });
    let link = LinkConfig { latency: Latency::Uniform { min_ms: 6.0, max_ms: 9.0 }, ..LinkConfig::default() };
    let config = SimConfig {
        seed,
        nodes: SERVERS,
        network: NetworkConfig { default: link, links: Vec::new() },
        limits: Limits { max_time_ns: u64::MAX, ..Limits::default() },
    };
    Sim::new(config, move |id| RaftNode::new(id, &settings)).expect("the experiment's cluster is valid")
}

fn leader(sim: &Sim<RaftNode>) -> Option<(usize, u64)> {
    (0..SERVERS)
        .filter_map(|n| sim.process(n).and_then(RaftNode::as_server).map(|s| (n, s)))
        .filter(|(_, s)| s.role() == Role::Leader)
        .map(|(n, s)| (n, s.current_term()))
        .max_by_key(|(_, term)| *term)
}

/// The downtime of one trial in nanoseconds, or `None` past the bound.
fn one_trial(min_ms: f64, max_ms: f64, seed: u64) -> Option<u64> {
    let mut sim = cluster(min_ms, max_ms, seed);
    // Let a leader settle in: twenty maximum timeouts, at least a second.
    let settle_ns = ((20.0 * max_ms).max(1_000.0) * MS as f64) as u64;
    sim.run_until(settle_ns);
    let (old_leader, old_term) = leader(&sim)?;
    // Heartbeats go out every interval since the election, so a uniform point of an
    // interval's length is a uniform point of the heartbeat cycle.
    let interval_ns = (min_ms / 2.0 * MS as f64) as u64;
    let crash_ns = settle_ns + derive_rng(seed, "experiment/crash").random_range(0..interval_ns.max(1));
    sim.schedule_fault(crash_ns, Fault::Crash { node: old_leader, torn_write: false }).ok()?;
    sim.run_until(crash_ns);
    let cursor = sim.observations().len();
    let mut heard = [false; SERVERS];
    heard[old_leader] = true;
    loop {
        match sim.step_until(crash_ns + BOUND_NS) {
            Step::Handled => {}
            Step::Idle | Step::Stopped(_) => return None,
        }
        for observation in &sim.observations()[cursor..] {
            if let RaftObs::HeardFromLeader { term, .. } = observation.obs
                && term > old_term
            {
                heard[observation.node] = true;
            }
            if let RaftObs::BecameLeader { term, .. } = observation.obs
                && term > old_term
            {
                heard[observation.node] = true;
            }
        }
        if heard.iter().all(|h| *h) {
            return Some(sim.now_ns() - crash_ns);
        }
    }
}

impl std::fmt::Display for ElectionResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "raft-election: election timeouts {} ms, {} trials", self.timeouts, self.trials)?;
        writeln!(
            f,
            "downtime ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  mean {:.1}",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms, self.mean_ms
        )?;
        if self.unresolved > 0 {
            writeln!(f, "{} trials had no new leader within 10 s", self.unresolved)?;
        }
        writeln!(f, "cumulative share of trials by downtime:")?;
        let max = self.max_ms.max(1.0);
        for step in 1..=20 {
            let bound = max * step as f64 / 20.0;
            let share = self.downtimes_ms.iter().filter(|d| **d <= bound).count() as f64
                / self.downtimes_ms.len().max(1) as f64;
            let bar = "#".repeat((share * 50.0).round() as usize);
            writeln!(f, "  <= {bound:8.1} ms {:5.1}% {bar}", share * 100.0)?;
        }
        Ok(())
    }
}

#[derive(Subcommand, Debug)]
pub enum ExperimentCommand {
    /// The Raft paper's leader-election experiment (Figure 16): downtime after a leader
    /// crash, for a range of election timeouts.
    #[command(
        after_help = "Examples:\n  dsim experiment raft-election --timeouts 150-300\n  dsim experiment raft-election --timeouts 150-151 --trials 1000 --json"
    )]
    RaftElection(ElectionArgs),
}

#[derive(Args, Debug)]
pub struct ElectionArgs {
    /// The election timeout range in milliseconds, MIN-MAX.
    #[arg(long, value_parser = parse_range)]
    pub timeouts: (f64, f64),
    /// Trials (each a fresh cluster and one leader crash).
    #[arg(long, default_value_t = 1000)]
    pub trials: usize,
    /// The first trial's seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn parse_range(text: &str) -> Result<(f64, f64), String> {
    let (min, max) = text.split_once('-').ok_or("expected MIN-MAX in milliseconds, e.g. 150-300")?;
    let min: f64 = min.trim().parse().map_err(|_| format!("bad minimum {min:?}"))?;
    let max: f64 = max.trim().parse().map_err(|_| format!("bad maximum {max:?}"))?;
    if !(min.is_finite() && max.is_finite() && min > 0.0 && max >= min && max <= 60_000.0) {
        return Err(format!("{text}: need 0 < MIN <= MAX <= 60000"));
    }
    Ok((min, max))
}

/// `dsim experiment`.
pub fn run(command: ExperimentCommand) -> u8 {
    match command {
        ExperimentCommand::RaftElection(args) => {
            if args.trials == 0 {
                eprintln!("dsim experiment: --trials must be at least 1");
                return crate::cli::exit::BAD_INPUT;
            }
            let result = raft_election(args.timeouts.0, args.timeouts.1, args.trials, args.seed);
            if args.json {
                println!("{}", serde_json::to_string(&result).expect("serialisable"));
            } else {
                print!("{result}");
            }
            crate::cli::exit::PASS
        }
    }
}
