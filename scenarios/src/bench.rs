//! `dsim bench`: throughput benchmarks that time the library crates' work.

use std::time::Instant;

use clap::{Args, Subcommand};
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

/// What `dsim bench raft` measured.
#[derive(Debug, Serialize)]
pub struct RaftBench {
    pub events_per_sec: f64,
    pub sim_speedup: f64,
    pub events: u64,
    pub virtual_s: f64,
    pub wall_s: f64,
    pub ops: usize,
    pub verdict: checker::Verdict,
    pub fingerprint: String,
    /// A fuzz campaign of the `raft` scenario (10 s of virtual time per seed), checking
    /// included, on one thread.
    pub fuzz_seeds: u64,
    pub fuzz_seeds_per_sec_per_core: f64,
    pub peak_rss_bytes: Option<u64>,
}

/// The load of the Raft benchmark: 5 servers, 10 clients at 10 operations per second,
/// 60 s of virtual time with the `raft` scenario's swarm faults on.
pub fn raft_load() -> crate::scenario::Scenario {
    let mut scenario = crate::library::resolve("raft").expect("built in");
    scenario.name = "bench-raft".into();
    scenario.cluster.clients = 10;
    scenario.settings["workload"]["rate_per_client"] = serde_json::json!(10.0);
    scenario.duration.faults_ms = 55_000.0;
    scenario.duration.healed_ms = 5_000.0;
    scenario
}

/// Runs the Raft benchmark.
pub fn raft(seed: u64, fuzz_seeds: u64) -> Result<RaftBench, String> {
    let scenario = raft_load();
    // A warm-up, then the median of five timed runs (one run is under a tenth of a
    // second, so a single timing is noisy).
    crate::run_cmd::run_scenario(&scenario, seed, None)?;
    let mut timings = Vec::new();
    let mut outcome = None;
    for _ in 0..5 {
        let started = Instant::now();
        outcome = Some(crate::run_cmd::run_scenario(&scenario, seed, None)?);
        timings.push(started.elapsed().as_secs_f64());
    }
    timings.sort_by(f64::total_cmp);
    let wall_s = timings[2];
    let outcome = outcome.expect("five runs");
    let fuzz_scenario = crate::library::resolve("raft").expect("built in");
    let started = Instant::now();
    for fuzz_seed in 1..=fuzz_seeds {
        crate::run_cmd::run_scenario(&fuzz_scenario, fuzz_seed, None)?;
    }
    let fuzz_wall_s = started.elapsed().as_secs_f64();
    let virtual_s = outcome.metrics.virtual_ms / 1e3;
    Ok(RaftBench {
        events_per_sec: outcome.metrics.events as f64 / wall_s,
        sim_speedup: virtual_s / wall_s,
        events: outcome.metrics.events,
        virtual_s,
        wall_s,
        ops: outcome.metrics.ops_ok + outcome.metrics.ops_fail + outcome.metrics.ops_info,
        verdict: outcome.verdict,
        fingerprint: outcome.fingerprint,
        fuzz_seeds,
        fuzz_seeds_per_sec_per_core: fuzz_seeds as f64 / fuzz_wall_s,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

impl std::fmt::Display for RaftBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "raft: 5 servers, 10 clients at 10 ops/s, {:.0} s virtual with swarm faults", self.virtual_s)?;
        writeln!(f, "  events          {}", self.events)?;
        writeln!(f, "  operations      {} ({:?})", self.ops, self.verdict)?;
        writeln!(f, "  wall time       {:.3} s (run and checks)", self.wall_s)?;
        writeln!(f, "  events/s        {:.0}", self.events_per_sec)?;
        writeln!(f, "  speedup         {:.0}x real time", self.sim_speedup)?;
        writeln!(
            f,
            "  fuzz            {:.1} seeds/s on one core ({} seeds of `raft`)",
            self.fuzz_seeds_per_sec_per_core, self.fuzz_seeds
        )?;
        if let Some(rss) = self.peak_rss_bytes {
            writeln!(f, "  peak memory     {:.1} MiB", rss as f64 / 1048576.0)?;
        }
        write!(f, "  fingerprint     {}", self.fingerprint)
    }
}

/// One scenario's fuzz rate in `dsim bench fuzz`.
#[derive(Debug, Serialize)]
pub struct FuzzRate {
    pub scenario: String,
    pub seeds: u64,
    /// The median of the rounds' rates, seeds per second on one thread, checks included.
    pub seeds_per_sec: f64,
    pub rounds_seeds_per_sec: Vec<f64>,
    pub violations: u64,
    pub unknown: u64,
    /// This rate over the first scenario's.
    pub relative_to_first: f64,
}

/// Fuzz rates of several scenarios side by side: each round runs every scenario's seeds
/// `1..=seeds` in turn on this thread, so the scenarios share the machine's state.
pub fn fuzz_rates(names: &[String], seeds: u64, rounds: usize) -> Result<Vec<FuzzRate>, String> {
    let scenarios = names
        .iter()
        .map(|name| crate::library::resolve(name).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); scenarios.len()];
    let mut counts = vec![(0, 0); scenarios.len()];
    for round in 0..rounds {
        for (i, scenario) in scenarios.iter().enumerate() {
            let started = Instant::now();
            for seed in 1..=seeds {
                let outcome = crate::run_cmd::run_scenario(scenario, seed, None)?;
                if round == 0 {
                    counts[i].0 += u64::from(outcome.verdict == checker::Verdict::Violation);
                    counts[i].1 += u64::from(outcome.verdict == checker::Verdict::Unknown);
                }
            }
            rates[i].push(seeds as f64 / started.elapsed().as_secs_f64());
        }
    }
    let median = |values: &[f64]| {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let first = median(&rates[0]);
    Ok(scenarios
        .iter()
        .zip(rates)
        .zip(counts)
        .map(|((scenario, rounds_rates), (violations, unknown))| FuzzRate {
            scenario: scenario.name.clone(),
            seeds,
            seeds_per_sec: median(&rounds_rates),
            relative_to_first: median(&rounds_rates) / first,
            rounds_seeds_per_sec: rounds_rates,
            violations,
            unknown,
        })
        .collect())
}

/// One run length in `dsim bench growth`.
#[derive(Debug, Serialize)]
pub struct GrowthPoint {
    pub virtual_s: f64,
    pub events: u64,
    /// The median of three timed runs (run, checks and measures).
    pub wall_s: f64,
    /// Wall time per virtual second, over the shortest run's.
    pub relative_cost_per_virtual_s: f64,
    pub verdict: checker::Verdict,
}

/// Runs `name` with its healed phase lengthened so the whole run lasts each of
/// `lengths_s` virtual seconds: a run's cost must grow no faster than its length.
pub fn growth(name: &str, seed: u64, lengths_s: &[u64]) -> Result<Vec<GrowthPoint>, String> {
    let base = crate::library::resolve(name).map_err(|e| e.to_string())?;
    let mut points: Vec<GrowthPoint> = Vec::new();
    for &length_s in lengths_s {
        let mut scenario = base.clone();
        let total_ms = length_s as f64 * 1e3;
        if total_ms <= scenario.duration.faults_ms {
            return Err(format!(
                "--seconds {length_s} is not longer than the fault phase of {} ({} ms)",
                base.name, scenario.duration.faults_ms
            ));
        }
        scenario.duration.healed_ms = total_ms - scenario.duration.faults_ms;
        let mut timings = Vec::new();
        let mut outcome = None;
        for _ in 0..3 {
            let started = Instant::now();
            outcome = Some(crate::run_cmd::run_scenario(&scenario, seed, None)?);
            timings.push(started.elapsed().as_secs_f64());
        }
        timings.sort_by(f64::total_cmp);
        let outcome = outcome.expect("three runs");
        let virtual_s = outcome.metrics.virtual_ms / 1e3;
        let cost = timings[1] / virtual_s.max(1e-9);
        let first_cost = points.first().map_or(cost, |p| p.wall_s / p.virtual_s.max(1e-9));
        points.push(GrowthPoint {
            virtual_s,
            events: outcome.metrics.events,
            wall_s: timings[1],
            relative_cost_per_virtual_s: cost / first_cost,
            verdict: outcome.verdict,
        });
    }
    Ok(points)
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// How a run's wall time grows with its virtual length (one scenario, several lengths).
    #[command(after_help = "Example:\n  dsim bench growth raft --seconds 60,240,960")]
    Growth(GrowthBenchArgs),
    /// Fuzz rates of scenarios side by side (seeds per second on one thread).
    #[command(after_help = "Example:\n  dsim bench fuzz raft multipaxos --seeds 300")]
    Fuzz(FuzzBenchArgs),
    /// Raft under load and faults, and a fuzz campaign's rate.
    #[command(after_help = "Example:\n  dsim bench raft --json")]
    Raft(RaftBenchArgs),
    /// The engine alone: five nodes relaying messages with random delays.
    #[command(after_help = "Example:\n  dsim bench engine --json")]
    Engine(EngineBenchArgs),
    /// The linearizability checker on generated histories.
    #[command(after_help = "Example:\n  dsim bench checker --json")]
    Checker(crate::check_cmd::CheckerBenchArgs),
}

#[derive(Args, Debug)]
pub struct RaftBenchArgs {
    /// Root seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seeds of the fuzz-rate measurement, 1 to 1000000.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub fuzz_seeds: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct FuzzBenchArgs {
    /// Built-in scenarios or scenario files; the first is the baseline.
    #[arg(required = true)]
    pub scenarios: Vec<String>,
    /// Seeds per scenario and round.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub seeds: u64,
    /// Rounds; the median round counts.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub rounds: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct GrowthBenchArgs {
    /// A built-in scenario or scenario file.
    pub scenario: String,
    /// Run lengths in virtual seconds (each 1 to 86,400), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [60u64, 240, 960],
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub seconds: Vec<u64>,
    /// Root seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EngineBenchArgs {
    /// Events to run, 1 to 10000000000.
    #[arg(long, default_value_t = 20_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000_000))]
    pub events: u64,
    /// Root seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `dsim bench`.
pub fn run(command: BenchCommand) -> u8 {
    use crate::cli::exit;
    match command {
        BenchCommand::Checker(args) => crate::check_cmd::bench(&args),
        BenchCommand::Growth(args) => match growth(&args.scenario, args.seed, &args.seconds) {
            Ok(points) if args.json => {
                println!("{}", serde_json::to_string(&points).expect("serialisable"));
                exit::PASS
            }
            Ok(points) => {
                println!("{} seed {}: wall time against virtual length (median of 3 runs)", args.scenario, args.seed);
                for p in &points {
                    println!(
                        "  {:>7.0} s virtual  {:>9} events  {:>8.3} s wall  {:>5.2}x the shortest run's cost per virtual second  ({:?})",
                        p.virtual_s, p.events, p.wall_s, p.relative_cost_per_virtual_s, p.verdict
                    );
                }
                exit::PASS
            }
            Err(message) => {
                eprintln!("dsim bench growth: {message}");
                exit::for_error(&message)
            }
        },
        BenchCommand::Fuzz(args) => match fuzz_rates(&args.scenarios, args.seeds, args.rounds as usize) {
            Ok(rates) if args.json => {
                println!("{}", serde_json::to_string(&rates).expect("serialisable"));
                exit::PASS
            }
            Ok(rates) => {
                println!(
                    "fuzz rates, one thread, seeds 1..={} per round, median of {} rounds",
                    args.seeds, args.rounds
                );
                for rate in &rates {
                    println!(
                        "  {:<32} {:>9.1} seeds/s  {:>5.2}x the first  ({} violations, {} unknown)",
                        rate.scenario, rate.seeds_per_sec, rate.relative_to_first, rate.violations, rate.unknown
                    );
                }
                exit::PASS
            }
            Err(message) => {
                eprintln!("dsim bench fuzz: {message}");
                exit::for_error(&message)
            }
        },
        BenchCommand::Engine(args) => {
            let result = engine(args.events, args.seed);
            if args.json {
                println!("{}", serde_json::to_string(&result).expect("serialisable"));
            } else {
                println!("{result}");
            }
            exit::PASS
        }
        BenchCommand::Raft(args) => match raft(args.seed, args.fuzz_seeds) {
            Ok(result) if args.json => {
                println!("{}", serde_json::to_string(&result).expect("serialisable"));
                exit::PASS
            }
            Ok(result) => {
                println!("{result}");
                exit::PASS
            }
            Err(message) => {
                eprintln!("dsim bench raft: {message}");
                exit::BAD_INPUT
            }
        },
    }
}
