//! `dsim experiment raft-election`: the leader-election experiment of the Raft paper
//! (Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm", extended
//! version, section 9.3 and Figure 16; Ongaro's thesis, chapter 9), by the paper's method:
//!
//! - **Five servers**; the heartbeat interval is half the minimum election timeout.
//! - **Broadcast time about 15 ms, disk included.** The paper gives the round trip with
//!   the disk write as about 15 ms and no split; dsim takes a LAN with one-way delays
//!   uniform in 4.5–5.5 ms (a 10 ms round trip) and a disk whose sync takes 4–6 ms (a
//!   7,200 rpm disk's average rotational delay is 4.2 ms), so an AppendEntries or a
//!   RequestVote, persisted by the follower before it answers, comes back in about
//!   15 ms. Votes, terms and log entries are persisted before any answer
//!   (`storage.sync` costs, `sim_core::costs`).
//! - **Different log lengths, some candidates not eligible.** Each trial lets a leader
//!   settle, then, 7 ms before the crash (longer than the leader's own sync, so its
//!   messages leave before it dies), cuts the leader off one way from two followers drawn
//!   at random and has the leader replicate a new entry. The other two followers receive
//!   it; the two cut off do not, so their logs are shorter and they cannot win an
//!   election (a majority would have to vote for a log that lacks an entry three of five
//!   servers hold).
//! - **A synchronized broadcast before the crash.** That same replication is the
//!   paper's "synchronized broadcast of heartbeats (approximating a leader that replicates
//!   a new entry just before it crashes)", meant to reset the followers' timers together
//!   and so encourage split votes.
//! - **The crash** comes at a uniformly random point of the leader's heartbeat interval.
//! - **Downtime** is the time from the crash until a new leader is elected and known: the
//!   instant a majority of the five servers (the new leader counted) are in the new
//!   leader's term and have accepted its AppendEntries, which is when the cluster can
//!   commit again. A trial with no such majority within 10 s is unresolved.
//! - **1,000 trials per range** by default (a fresh cluster each, seeds `seed..`). The
//!   servers of a fresh cluster start up to one maximum timeout apart (as machines do),
//!   so that a first leader exists to be crashed even with no randomness in the timeouts.

use std::rc::Rc;

use clap::{Args, Subcommand};

use protocols::kv::KvWorkload;
use protocols::raft::server::Role;
use protocols::raft::{RaftConfig, RaftNode, RaftObs, Settings, Variant};
use rand::RngExt;
use serde::Serialize;
use sim_core::costs::Costs;
use sim_core::{Fault, Latency, Limits, LinkConfig, MS, NetworkConfig, Sim, SimConfig, Step, StorageCosts, derive_rng};

/// What the experiment measured for one range of election timeouts.
#[derive(Debug, Serialize)]
pub struct ElectionResult {
    pub timeouts: String,
    pub trials: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Trials that had no new leader known to a majority within the 10 s bound
    /// (counted at the bound).
    pub unresolved: usize,
    /// Trials in which a server with a shorter log stood for election (and could not win).
    pub ineligible_candidacies: usize,
    /// Trials left out because no first leader was elected within a minute (so none
    /// could be crashed); the percentiles are over the other trials.
    pub no_first_leader: usize,
    /// Downtime of every trial, sorted, in milliseconds.
    #[serde(skip)]
    pub downtimes_ms: Vec<f64>,
}

const SERVERS: usize = 5;
const BOUND_NS: u64 = 10_000 * MS;
/// How long before the crash the leader replicates its last entry: longer than its own
/// sync (at most 6 ms), so the entry leaves before the crash.
const LAST_ENTRY_LEAD_NS: u64 = 7 * MS;

/// The most trials one range may ask for.
pub const TRIALS_MAX: usize = 100_000;

/// The election timeout ranges of the paper's Figure 16: the top graph (randomness) and
/// the bottom graph (the broadcast-time sweep).
pub const PAPER_TOP: [(f64, f64); 6] =
    [(150.0, 150.0), (150.0, 151.0), (150.0, 155.0), (150.0, 175.0), (150.0, 200.0), (150.0, 300.0)];
pub const PAPER_BOTTOM: [(f64, f64); 5] = [(12.0, 24.0), (25.0, 50.0), (50.0, 100.0), (100.0, 200.0), (150.0, 300.0)];

/// Runs `trials` trials with election timeouts drawn from `[min_ms, max_ms]`.
pub fn raft_election(min_ms: f64, max_ms: f64, trials: usize, seed: u64) -> ElectionResult {
    let mut downtimes: Vec<f64> = Vec::with_capacity(trials);
    let (mut unresolved, mut ineligible, mut no_first_leader) = (0, 0, 0);
    for trial in 0..trials {
        let outcome = one_trial(min_ms, max_ms, seed.wrapping_add(trial as u64));
        ineligible += usize::from(outcome.ineligible_candidacy);
        if outcome.no_first_leader {
            no_first_leader += 1;
            continue;
        }
        match outcome.downtime_ns {
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
        ineligible_candidacies: ineligible,
        no_first_leader,
        downtimes_ms: downtimes,
    }
}

/// The costs of the paper's setup: every vote, term and log write is synced in 4–6 ms.
fn paper_costs() -> Costs {
    Costs {
        storage: StorageCosts { sync: Some(Latency::Uniform { min_ms: 4.0, max_ms: 6.0 }), nodes: Vec::new() },
        ..Costs::default()
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
    let link = LinkConfig { latency: Latency::Uniform { min_ms: 4.5, max_ms: 5.5 }, ..LinkConfig::default() };
    let config = SimConfig {
        seed,
        nodes: SERVERS,
        network: NetworkConfig { default: link, links: Vec::new(), kinds: Vec::new() },
        limits: Limits { max_time_ns: u64::MAX, ..Limits::default() },
    };
    let mut sim = Sim::new(config, move |id| RaftNode::new(id, &settings)).expect("the experiment's cluster is valid");
    sim.set_costs(&paper_costs()).expect("the experiment's costs are valid");
    sim
}

fn leader(sim: &Sim<RaftNode>) -> Option<(usize, u64)> {
    (0..SERVERS)
        .filter_map(|n| sim.process(n).and_then(RaftNode::as_server).map(|s| (n, s)))
        .filter(|(_, s)| s.role() == Role::Leader)
        .map(|(n, s)| (n, s.current_term()))
        .max_by_key(|(_, term)| *term)
}

/// What one trial saw.
struct Trial {
    /// Crash to a new leader known to a majority; `None` past the bound.
    downtime_ns: Option<u64>,
    /// Whether a server whose log lacked the last entry stood for election.
    ineligible_candidacy: bool,
    /// No leader was elected in the first minute, so there was none to crash.
    no_first_leader: bool,
}

/// One trial, as the module doc describes it.
fn one_trial(min_ms: f64, max_ms: f64, seed: u64) -> Trial {
    let unresolved = Trial { downtime_ns: None, ineligible_candidacy: false, no_first_leader: false };
    let mut sim = cluster(min_ms, max_ms, seed);
    // Servers do not start in the same instant: each but the first is held back by up to
    // one maximum timeout, so the first election ends even without randomness.
    let mut start_rng = derive_rng(seed, "experiment/start");
    for node in 1..SERVERS {
        let start_ns = (start_rng.random_range(0.0..=max_ms) * MS as f64) as u64;
        let down = sim.schedule_fault(0, Fault::Crash { node, torn_write: false });
        if down.and_then(|()| sim.schedule_fault(start_ns, Fault::Restart { node })).is_err() {
            return unresolved;
        }
    }
    // Let a leader settle in: twenty maximum timeouts, at least a second.
    // With little randomness the first election itself can take long: go on settling
    // until there is a leader (up to a minute).
    let step_ns = ((20.0 * max_ms).max(1_000.0) * MS as f64) as u64;
    let mut settle_ns = step_ns;
    sim.run_until(settle_ns);
    while leader(&sim).is_none() && settle_ns < 60_000 * MS {
        settle_ns += step_ns;
        sim.run_until(settle_ns);
    }
    let Some((old_leader, old_term)) = leader(&sim) else {
        return Trial { downtime_ns: None, ineligible_candidacy: false, no_first_leader: true };
    };
    let mut rng = derive_rng(seed, "experiment/crash");
    // Heartbeats go out every interval since the election, so a uniform point of an
    // interval's length is a uniform point of the heartbeat cycle.
    let interval_ns = (min_ms / 2.0 * MS as f64) as u64;
    let crash_ns = settle_ns + LAST_ENTRY_LEAD_NS + rng.random_range(0..interval_ns.max(1));
    let mut followers: Vec<usize> = (0..SERVERS).filter(|n| *n != old_leader).collect();
    let first = rng.random_range(0..followers.len());
    let lagging_a = followers.swap_remove(first);
    let lagging_b = followers.swap_remove(rng.random_range(0..followers.len()));
    let lagging = [lagging_a, lagging_b];
    // The last entry: the two lagging followers never receive it.
    let replicate_ns = crash_ns - LAST_ENTRY_LEAD_NS;
    sim.run_until(replicate_ns);
    if sim.schedule_fault(replicate_ns, Fault::Cut { from: vec![old_leader], to: lagging.to_vec() }).is_err() {
        return unresolved;
    }
    sim.run_until(replicate_ns);
    sim.act(old_leader, |node, ctx| {
        node.replicate_now(ctx, "experiment", seed);
    });
    if sim.schedule_fault(crash_ns, Fault::Crash { node: old_leader, torn_write: false }).is_err() {
        return unresolved;
    }
    sim.run_until(crash_ns);
    measure(&mut sim, old_term, crash_ns, &lagging)
}

/// Runs on from the crash until a new leader is known to a majority.
fn measure(sim: &mut Sim<RaftNode>, old_term: u64, crash_ns: u64, lagging: &[usize]) -> Trial {
    let cursor = sim.observations().len();
    let mut ineligible_candidacy = false;
    // Per server: the newest term in which it accepted a leader (or became one).
    let mut known = [0u64; SERVERS];
    let mut seen = cursor;
    loop {
        match sim.step_until(crash_ns + BOUND_NS) {
            Step::Handled => {}
            Step::Idle | Step::Stopped(_) => {
                return Trial { downtime_ns: None, ineligible_candidacy, no_first_leader: false };
            }
        }
        for observation in &sim.observations()[seen..] {
            match observation.obs {
                RaftObs::HeardFromLeader { term, .. } | RaftObs::BecameLeader { term, .. } if term > old_term => {
                    known[observation.node] = known[observation.node].max(term);
                }
                RaftObs::BecameCandidate { .. } if lagging.contains(&observation.node) => ineligible_candidacy = true,
                _ => {}
            }
        }
        seen = sim.observations().len();
        let newest = known.iter().copied().max().unwrap_or(0);
        if newest > 0 && known.iter().filter(|t| **t == newest).count() > SERVERS / 2 {
            return Trial { downtime_ns: Some(sim.now_ns() - crash_ns), ineligible_candidacy, no_first_leader: false };
        }
    }
}

/// The cumulative downtime curves of several ranges as an SVG plot, like the paper's
/// Figure 16: the share of trials (y) whose downtime was at most x ms (log scale).
pub fn election_svg(results: &[ElectionResult]) -> String {
    use std::fmt::Write as _;
    const COLOURS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
    let (width, height, left, right, top, bottom) = (720.0, 420.0, 60.0, 170.0, 20.0, 50.0);
    let lowest = results.iter().flat_map(|r| r.downtimes_ms.first()).fold(f64::MAX, |a, b| a.min(*b)).max(1.0);
    let highest = results.iter().flat_map(|r| r.downtimes_ms.last()).fold(1.0, |a: f64, b| a.max(*b));
    let (lo, hi) = (lowest.log10().floor(), highest.log10().ceil().max(lowest.log10().floor() + 1.0));
    let x = |ms: f64| left + (ms.max(1.0).log10() - lo) / (hi - lo) * (width - left - right);
    let y = |share: f64| height - bottom - share * (height - top - bottom);
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>"##
    );
    for decade in lo as i32..=hi as i32 {
        let ms = 10f64.powi(decade);
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#ddd"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"##,
            x(ms),
            top,
            height - bottom,
            height - bottom + 15.0,
            ms
        );
    }
    for step in 0..=4 {
        let share = f64::from(step) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#ddd"/><text x="{2}" y="{3:.1}" text-anchor="end">{4:.0}%</text>"##,
            y(share),
            width - right,
            left - 6.0,
            y(share) + 4.0,
            share * 100.0
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{0:.1}" y="{1}" text-anchor="middle">downtime after the leader crash (ms, log scale)</text><text x="14" y="{2:.1}" transform="rotate(-90 14 {2:.1})" text-anchor="middle">cumulative share of trials</text>"##,
        (left + width - right) / 2.0,
        height - 12.0,
        (top + height - bottom) / 2.0
    );
    for (i, result) in results.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let count = result.downtimes_ms.len().max(1) as f64;
        let mut path = String::new();
        for (k, ms) in result.downtimes_ms.iter().enumerate() {
            let command = if k == 0 { 'M' } else { 'L' };
            let _ = write!(path, "{command}{:.1} {:.1}", x(*ms), y(k as f64 / count));
            let _ = write!(path, "L{:.1} {:.1}", x(*ms), y((k + 1) as f64 / count));
        }
        let _ = write!(svg, r##"<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>"##);
        let _ = write!(
            svg,
            r##"<line x1="{0}" y1="{1:.1}" x2="{2}" y2="{1:.1}" stroke="{colour}" stroke-width="2"/><text x="{3}" y="{4:.1}">{5} ms</text>"##,
            width - right + 10.0,
            top + 10.0 + 16.0 * i as f64,
            width - right + 30.0,
            width - right + 35.0,
            top + 14.0 + 16.0 * i as f64,
            result.timeouts
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// One row per range: the percentiles, the mean and the unresolved trials.
pub fn election_table(results: &[ElectionResult]) -> String {
    let mut out = String::from(
        "| timeouts ms | p50 | p90 | p99 | max | mean | unresolved (10 s) | no first leader |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in results {
        out += &format!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} of {} | {} |\n",
            r.timeouts, r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms, r.mean_ms, r.unresolved, r.trials, r.no_first_leader
        );
    }
    out
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
            writeln!(f, "{} trials had no new leader known to a majority within 10 s", self.unresolved)?;
        }
        writeln!(
            f,
            "{} of {} trials saw a server with the shorter log stand for election (it cannot win)",
            self.ineligible_candidacies, self.trials
        )?;
        if self.no_first_leader > 0 {
            writeln!(f, "{} trials left out: no first leader within a minute", self.no_first_leader)?;
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

/// One cluster size's saturation in `dsim experiment throughput`.
#[derive(Debug, Serialize)]
pub struct ThroughputPoint {
    pub servers: usize,
    pub reads: bool,
    /// The most operations a second completed at any offered load.
    pub saturation_ops_per_s: f64,
    /// Latency at that load, in ms.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// Offered load (operations a second) at each step and what completed.
    pub steps: Vec<(f64, f64)>,
}

/// The throughput experiment's clients and costs: 64 clients, each sending at a rising
/// rate (one operation in flight each); every node syncs in 1-4 ms and handles an event
/// in 0.1 ms unless the scenario says otherwise; no faults.
const THROUGHPUT_CLIENTS: usize = 64;

/// The first second (an election, clients finding the leader) is not measured; the next
/// three are.
const WARM_UP_MS: u64 = 1_000;
const MEASURED_MS: u64 = 3_000;

/// Operations a second completed in the measured window, and their latency p50 and p99.
fn measured_window(outcome: &crate::runner::RunOutcome) -> Result<(f64, f64, f64), String> {
    let history = crate::runner::history_of(&outcome.history).map_err(|e| e.to_string())?;
    let from_ns = WARM_UP_MS * MS;
    let mut latencies: Vec<u64> = history
        .ops
        .iter()
        .filter(|op| op.outcome == checker::Outcome::Ok)
        .filter_map(|op| Some((op.invoke_time_ns?, op.complete_time_ns?)))
        .filter(|(start, _)| *start >= from_ns)
        .map(|(start, end)| end - start)
        .collect();
    latencies.sort_unstable();
    let at = |p: f64| {
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len().max(1));
        latencies.get(rank - 1).map_or(0.0, |ns| *ns as f64 / 1e6)
    };
    Ok((latencies.len() as f64 / (MEASURED_MS as f64 / 1e3), at(0.5), at(0.99)))
}

/// Doubles the offered load on `base` with `servers` servers until completions (in the
/// measured window) rise by under 10%: the saturation throughput is the most completed;
/// all writes (`put`) or all reads (`get`).
pub fn throughput(
    base: &crate::scenario::Scenario,
    servers: usize,
    reads: bool,
    seed: u64,
) -> Result<ThroughputPoint, String> {
    let mut scenario = base.clone();
    scenario.cluster.servers = servers;
    scenario.cluster.clients = THROUGHPUT_CLIENTS;
    scenario.nemesis = crate::scenario::Nemesis::default();
    scenario.duration.faults_ms = 0.0;
    scenario.duration.healed_ms = (WARM_UP_MS + MEASURED_MS) as f64;
    scenario.checks.linearizability = false;
    scenario.checks.liveness = None;
    if scenario.storage == StorageCosts::default() {
        scenario.storage.sync = Some(Latency::Uniform { min_ms: 1.0, max_ms: 4.0 });
    }
    if scenario.processing == sim_core::ProcessingCosts::default() {
        scenario.processing.cost = Some(Latency::Constant { ms: 0.1 });
    }
    let mix = if reads {
        serde_json::json!({"get": 1.0, "put": 0.0, "append": 0.0, "cas": 0.0})
    } else {
        serde_json::json!({"get": 0.0, "put": 1.0, "append": 0.0, "cas": 0.0})
    };
    scenario.settings["workload"]["mix"] = mix;
    let mut steps = Vec::new();
    let mut best: Option<(f64, f64, f64)> = None;
    let mut rate_per_client = 2.0;
    while rate_per_client <= 4_096.0 {
        scenario.settings["workload"]["rate_per_client"] = serde_json::json!(rate_per_client);
        crate::scenario::validate(&scenario).map_err(|(path, message)| format!("{path}: {message}"))?;
        let outcome = crate::run_cmd::run_scenario(&scenario, seed, None)?;
        let (completed, p50, p99) = measured_window(&outcome)?;
        steps.push((rate_per_client * THROUGHPUT_CLIENTS as f64, completed));
        let previous = best.map_or(0.0, |(b, _, _)| b);
        if completed > previous {
            best = Some((completed, p50, p99));
        }
        // Saturated: doubling the offered load raised completions by under 10%.
        if completed < 1.1 * previous {
            break;
        }
        rate_per_client *= 2.0;
    }
    let (saturation_ops_per_s, latency_p50_ms, latency_p99_ms) = best.unwrap_or_default();
    Ok(ThroughputPoint { servers, reads, saturation_ops_per_s, latency_p50_ms, latency_p99_ms, steps })
}

#[derive(Args, Debug)]
pub struct ThroughputArgs {
    /// A replicated key-value service's scenario: `raft`, `multipaxos` or a file of either.
    pub scenario: String,
    /// Cluster sizes, comma-separated (each 1 to 64).
    #[arg(long, default_value = "3,5,7,9,13", value_delimiter = ',',
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub servers: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ExperimentCommand {
    /// Saturation throughput against cluster size, all writes and all reads, with disk
    /// and processing costs on (a sync 1-4 ms, 0.1 ms an event, unless the scenario
    /// sets its own).
    #[command(
        after_help = "Examples:\n  dsim experiment throughput raft\n  dsim experiment throughput multipaxos --servers 3,5,7 --json"
    )]
    Throughput(ThroughputArgs),
    /// The Raft paper's leader-election experiment (Figure 16): downtime after a leader
    /// crash, for a range of election timeouts.
    #[command(
        after_help = "Examples:\n  dsim experiment raft-election --timeouts 150-300\n  dsim experiment raft-election --timeouts 150-151 --trials 1000 --json"
    )]
    RaftElection(ElectionArgs),
    /// Probabilistically Bounded Staleness (Bailis et al., VLDB 2012) on the real
    /// Dynamo-style store: the chance that a read t ms after a write committed returns
    /// it, with production latency fits or your own per-leg latencies.
    #[command(
        after_help = "Examples:\n  dsim experiment staleness --profile lnkd-disk --n 3 --r 1 --w 1\n  dsim experiment staleness --profile ymmr --t-max-ms 10000 --svg ymmr.svg --json\n  dsim experiment staleness --legs my-legs.json --trials 2000"
    )]
    Staleness(StalenessArgs),
    /// The herd effect of a lock on ZooKeeper: K clients contend with no faults, with the
    /// recipe (each waiter watches the node below its own) and with every waiter watching
    /// the lock node's children; waiters woken and messages per release.
    #[command(
        after_help = "Examples:\n  dsim experiment lock-herd\n  dsim experiment lock-herd --clients 2,5,10,20,50 --duration-ms 3000 --json"
    )]
    LockHerd(HerdArgs),
}

#[derive(Args, Debug)]
pub struct HerdArgs {
    /// The numbers of clients K to measure, comma-separated (each 1 to 200).
    #[arg(long, default_value = "2,5,10,20,50", value_delimiter = ',',
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=200))]
    pub clients: Vec<usize>,
    /// Virtual time each measurement runs.
    #[arg(long, default_value_t = 3000)]
    pub duration_ms: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct StalenessArgs {
    /// A production latency fit of the paper's Table 3: lnkd-ssd, lnkd-disk or ymmr.
    #[arg(long, default_value = "lnkd-disk", conflicts_with = "legs")]
    pub profile: String,
    /// A JSON file with the four legs' latencies instead of a profile:
    /// {"write_request": LATENCY, "write_ack": ..., "read_request": ..., "read_response": ...}.
    #[arg(long)]
    pub legs: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 3)]
    pub n: usize,
    #[arg(long, default_value_t = 1)]
    pub r: usize,
    #[arg(long, default_value_t = 1)]
    pub w: usize,
    /// Trials, each a fresh cluster, 1 to 10000000.
    #[arg(long, default_value_t = 10_000)]
    pub trials: u64,
    /// Versions written per trial (k-staleness up to versions - 1).
    #[arg(long, default_value_t = 3)]
    pub versions: u64,
    /// The largest read offset after the commit, in ms.
    #[arg(long, default_value_t = 1000.0)]
    pub t_max_ms: f64,
    /// Offsets on the log-spaced grid (0 included).
    #[arg(long, default_value_t = 60)]
    pub points: usize,
    /// The first trial's seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the curve as an SVG plot to this file.
    #[arg(long)]
    pub svg: Option<std::path::PathBuf>,
    /// Print one JSON object (the curve).
    #[arg(long)]
    pub json: bool,
}

fn staleness_settings(args: &StalenessArgs) -> Result<protocols::dynamo::staleness::StalenessSettings, String> {
    use protocols::dynamo::staleness as pbs;
    let legs = match &args.legs {
        Some(path) => {
            let text = crate::output::read_text(path)?;
            serde_json::from_str::<pbs::Legs>(&text)
                .map_err(|e| format!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))?
        }
        None => pbs::profile(&args.profile).ok_or_else(|| {
            format!("--profile: unknown profile {:?} (known: {})", args.profile, pbs::PROFILES.join(", "))
        })?,
    };
    if !(args.t_max_ms.is_finite() && (0.01..=3_600_000.0).contains(&args.t_max_ms)) {
        return Err(format!("--t-max-ms must be 0.01 to 3600000, got {}", args.t_max_ms));
    }
    if !(2..=1_000).contains(&args.points) {
        return Err(format!("--points must be 2 to 1000, got {}", args.points));
    }
    let settings = pbs::StalenessSettings {
        n: args.n,
        r: args.r,
        w: args.w,
        trials: args.trials,
        versions: args.versions,
        legs,
        t_ms: pbs::grid(args.t_max_ms, args.points),
        seed: args.seed,
    };
    pbs::validate(&settings)?;
    Ok(settings)
}

/// The curve as text: the headline, then the probability by offset.
fn staleness_text(c: &protocols::dynamo::staleness::Curve, label: &str) -> String {
    let mut out = format!("staleness: {label}, (N,R,W) = ({},{},{}), {} trials\n", c.n, c.r, c.w, c.trials);
    out += &match c.t_999_ms {
        Some(t) => format!("99.9% of reads return the last committed version from t = {t:.3} ms\n"),
        None => "reads never reach 99.9% consistent on this grid (raise --t-max-ms)\n".to_owned(),
    };
    out += &format!("put commit latency ms: p50 {:.3}, p99 {:.3}\n", c.write_p50_ms, c.write_p99_ms);
    if c.unanswered > 0 {
        out += &format!("{} reads never answered (not counted)\n", c.unanswered);
    }
    out += "      t ms   P(consistent)";
    for k in 1..=c.p_more_than_k_behind.len() {
        out += &format!("  P(>{k} behind)");
    }
    out.push('\n');
    let step = (c.t_ms.len() / 20).max(1);
    for i in (0..c.t_ms.len()).step_by(step) {
        out += &format!("{:>11.3}   {:>12.5}", c.t_ms[i], c.p_consistent[i]);
        for k in &c.p_more_than_k_behind {
            out += &format!("  {:>12.5}", k[i]);
        }
        out.push('\n');
    }
    out
}

/// The curve as an SVG plot: P(consistent) against t on a log axis.
fn staleness_svg(c: &protocols::dynamo::staleness::Curve, label: &str) -> String {
    let (w, h, left, bottom) = (640.0, 360.0, 60.0, 40.0);
    let positive: Vec<f64> = c.t_ms.iter().copied().filter(|t| *t > 0.0).collect();
    let (lo, hi) =
        (positive.first().copied().unwrap_or(0.001).log10(), positive.last().copied().unwrap_or(1.0).log10());
    let x = |t: f64| left + ((t.max(10f64.powf(lo)).log10() - lo) / (hi - lo).max(1e-9)) * (w - left - 20.0);
    let y = |p: f64| (h - bottom) - p * (h - bottom - 20.0);
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/><text x="{left}" y="14">{} — P(read returns the last committed version) after t ms</text>"##,
        label.replace('&', "&amp;").replace('<', "&lt;")
    );
    for p in [0.0, 0.25, 0.5, 0.75, 1.0] {
        svg += &format!(
            r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{p:.2}</text>"##,
            y(p),
            w - 20.0,
            y(p),
            left - 4.0,
            y(p) + 4.0
        );
    }
    let mut decade = lo.floor() as i32;
    while (decade as f64) <= hi {
        let t = 10f64.powi(decade);
        if t >= 10f64.powf(lo) * 0.999 {
            svg += &format!(
                r##"<line x1="{0:.1}" y1="20" x2="{0:.1}" y2="{1:.1}" stroke="#eee"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle">{t} ms</text>"##,
                x(t),
                h - bottom,
                h - bottom + 16.0
            );
        }
        decade += 1;
    }
    let mut path = String::new();
    for (t, p) in c.t_ms.iter().zip(&c.p_consistent).filter(|(t, _)| **t > 0.0) {
        path += &format!("{}{:.1},{:.1}", if path.is_empty() { "M" } else { "L" }, x(*t), y(*p));
    }
    svg += &format!(r##"<path d="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>"##);
    if let Some(t) = c.t_999_ms.filter(|t| *t > 0.0) {
        svg += &format!(
            r##"<line x1="{0:.1}" y1="20" x2="{0:.1}" y2="{1:.1}" stroke="#d62728" stroke-dasharray="4 3"/><text x="{2:.1}" y="34" fill="#d62728">99.9% at {t:.2} ms</text>"##,
            x(t),
            h - bottom,
            x(t) + 4.0
        );
    }
    svg += "</svg>\n";
    svg
}

#[derive(Args, Debug)]
pub struct ElectionArgs {
    /// Election timeout ranges in milliseconds, MIN-MAX, comma-separated.
    #[arg(long, value_parser = parse_range, value_delimiter = ',', required_unless_present = "paper")]
    pub timeouts: Vec<(f64, f64)>,
    /// The paper's ranges of Figure 16: top (randomness) and bottom (broadcast time).
    #[arg(long, value_parser = ["top", "bottom", "both"], conflicts_with = "timeouts")]
    pub paper: Option<String>,
    /// Trials per range (each a fresh cluster and one leader crash), 1 to 100000.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub trials: u64,
    /// Also write the cumulative downtime curves as an SVG plot (the paper's Figure 16).
    #[arg(long)]
    pub svg: Option<std::path::PathBuf>,
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
        ExperimentCommand::Staleness(args) => {
            let settings = match staleness_settings(&args) {
                Ok(settings) => settings,
                Err(message) => {
                    eprintln!("dsim experiment staleness: {message}");
                    return crate::cli::exit::BAD_INPUT;
                }
            };
            let label = match &args.legs {
                Some(path) => path.display().to_string(),
                None => args.profile.clone(),
            };
            let curve = protocols::dynamo::staleness::run(&settings);
            if let Some(path) = &args.svg
                && let Err(message) = crate::output::write_atomic(path, staleness_svg(&curve, &label).as_bytes())
            {
                eprintln!("dsim experiment staleness: {message}");
                return crate::cli::exit::for_error(&message);
            }
            if args.json {
                println!("{}", serde_json::to_string(&curve).expect("serialisable"));
            } else {
                print!("{}", staleness_text(&curve, &label));
            }
            crate::cli::exit::PASS
        }
        ExperimentCommand::LockHerd(args) => {
            if let Some(bad) = args.clients.iter().find(|k| !(1..=200).contains(*k)) {
                eprintln!("dsim experiment lock-herd: --clients: each K must be 1 to 200, got {bad}");
                return crate::cli::exit::BAD_INPUT;
            }
            if !(100..=600_000).contains(&args.duration_ms) {
                eprintln!("dsim experiment lock-herd: --duration-ms must be 100 to 600000, got {}", args.duration_ms);
                return crate::cli::exit::BAD_INPUT;
            }
            use protocols::locks::zookeeper::herd::measure;
            let rows: Vec<_> = args
                .clients
                .iter()
                .flat_map(|k| {
                    [measure(*k, false, args.duration_ms, args.seed), measure(*k, true, args.duration_ms, args.seed)]
                })
                .collect();
            if args.json {
                println!("{}", serde_json::json!({ "duration_ms": args.duration_ms, "seed": args.seed, "rows": rows }));
            } else {
                println!(
                    "lock herd: K clients contend for {} ms of virtual time (seed {})",
                    args.duration_ms, args.seed
                );
                println!(
                    "{:>4}  {:<7} {:>8} {:>8} {:>18} {:>21}",
                    "K", "watch", "acquired", "releases", "wake-ups/release", "messages/release"
                );
                for r in &rows {
                    println!(
                        "{:>4}  {:<7} {:>8} {:>8} {:>18.2} {:>21.1}",
                        r.clients, r.watch, r.acquisitions, r.releases, r.wakeups_per_release, r.messages_per_release
                    );
                }
                println!(
                    "(messages: requests, answers and watch events between clients and the service, heartbeats left out)"
                );
            }
            crate::cli::exit::PASS
        }
        ExperimentCommand::Throughput(args) => {
            let base = match crate::library::resolve_system(&args.scenario) {
                Ok(base) => base,
                Err(message) => {
                    eprintln!("dsim experiment throughput: {message}");
                    return crate::cli::exit::BAD_INPUT;
                }
            };
            if base.settings.get("workload").is_none() {
                eprintln!(
                    "dsim experiment throughput: {} has no key-value workload (settings.workload)",
                    args.scenario
                );
                return crate::cli::exit::BAD_INPUT;
            }
            let progress = crate::output::progress_bar(args.servers.len() as u64 * 2, "measurements");
            let mut points = Vec::new();
            for &servers in &args.servers {
                for reads in [false, true] {
                    match throughput(&base, servers, reads, args.seed) {
                        Ok(point) => points.push(point),
                        Err(message) => {
                            eprintln!("dsim experiment throughput: {message}");
                            return crate::cli::exit::for_error(&message);
                        }
                    }
                    progress.inc(1);
                }
            }
            progress.finish_and_clear();
            if args.json {
                println!("{}", serde_json::to_string(&points).expect("serialisable"));
            } else {
                println!(
                    "{}: saturation throughput by cluster size ({THROUGHPUT_CLIENTS} clients, no faults, sync 1-4 ms, 0.1 ms an event unless the scenario sets its own)",
                    args.scenario
                );
                println!(
                    "| servers | writes ops/s | p50 ms | p99 ms | reads ops/s | p50 ms | p99 ms |\n|---:|---:|---:|---:|---:|---:|---:|"
                );
                for pair in points.chunks(2) {
                    let (w, r) = (&pair[0], &pair[1]);
                    println!(
                        "| {} | {:.0} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} |",
                        w.servers,
                        w.saturation_ops_per_s,
                        w.latency_p50_ms,
                        w.latency_p99_ms,
                        r.saturation_ops_per_s,
                        r.latency_p50_ms,
                        r.latency_p99_ms
                    );
                }
            }
            crate::cli::exit::PASS
        }
        ExperimentCommand::RaftElection(args) => {
            let ranges: Vec<(f64, f64)> = match args.paper.as_deref() {
                Some("top") => PAPER_TOP.to_vec(),
                Some("bottom") => PAPER_BOTTOM.to_vec(),
                Some(_) => PAPER_TOP.iter().chain(&PAPER_BOTTOM[..4]).copied().collect(),
                None => args.timeouts.clone(),
            };
            let progress = crate::output::progress_bar(ranges.len() as u64, "ranges");
            let mut results = Vec::new();
            for (min, max) in &ranges {
                results.push(raft_election(*min, *max, args.trials as usize, args.seed));
                progress.inc(1);
            }
            progress.finish_and_clear();
            if let Some(path) = &args.svg
                && let Err(message) = crate::output::write_atomic(path, election_svg(&results).as_bytes())
            {
                eprintln!("dsim experiment: {message}");
                return crate::cli::exit::for_error(&message);
            }
            if args.json {
                let json = match results.as_slice() {
                    [one] => serde_json::to_string(one),
                    all => serde_json::to_string(all),
                };
                println!("{}", json.expect("serialisable"));
            } else {
                for result in &results {
                    print!("{result}");
                }
                if results.len() > 1 {
                    println!("\n{}", election_table(&results));
                }
            }
            crate::cli::exit::PASS
        }
    }
}
