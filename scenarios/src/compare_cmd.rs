//! `dsim compare A B [C ...]`: scenarios (several protocols, or one protocol several
//! ways) run on the same seeds, their verdicts and figures side by side.
//!
//! The workload and the fault schedule come from the seed, so scenarios with the same
//! workload settings and generator over the same servers and clients get the same faults
//! at the same instants: the comparison says on how many seeds every schedule was the
//! same as the first scenario's.

use std::collections::BTreeMap;
use std::path::PathBuf;

use checker::Verdict;
use clap::Args;
use serde::Serialize;

use crate::cli::exit;
use crate::runner::RunOutcome;
use crate::scenario::Scenario;

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The scenarios (built-in names or files), two or more; the first is the baseline.
    #[arg(required = true, num_args = 2..)]
    pub scenarios: Vec<String>,
    /// Seeds to run each on.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    pub start_seed: u64,
    /// Also write the comparison as Markdown to this file.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// One figure of every system: the median and the largest over the seeds it was
/// measured on (`None` where a system does not measure it).
#[derive(Debug, Serialize)]
pub struct Figure {
    pub name: String,
    pub medians: Vec<Option<f64>>,
    pub maxes: Vec<Option<f64>>,
}

/// One system's verdicts.
#[derive(Debug, Default, Serialize)]
pub struct Verdicts {
    pub pass: u64,
    pub violation: u64,
    pub unknown: u64,
    /// The first failing seed and its violation.
    pub first_failure: Option<(u64, String)>,
}

/// What `dsim compare` prints with `--json`.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub systems: Vec<String>,
    pub seeds: Vec<u64>,
    /// Seeds on which every scenario drew the first one's fault schedule.
    pub same_faults_seeds: usize,
    pub verdicts: Vec<Verdicts>,
    pub figures: Vec<Figure>,
}

impl Comparison {
    /// The figure called `name`, if any system measured it.
    pub fn figure(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }
}

/// The figures of one run, by name: the engine's, the clients', the protocol's.
fn figures_of(outcome: &RunOutcome) -> BTreeMap<String, f64> {
    let m = &outcome.metrics;
    let mut figures = BTreeMap::from([
        ("messages_sent".to_owned(), m.messages_sent as f64),
        ("events".to_owned(), m.events as f64),
        ("ops_ok".to_owned(), m.ops_ok as f64),
        ("ops_fail".to_owned(), m.ops_fail as f64),
        ("ops_info".to_owned(), m.ops_info as f64),
    ]);
    if m.ops_ok + m.ops_fail + m.ops_info > 0 {
        figures.insert("latency_p50_ms".to_owned(), m.latency_p50_ms);
        figures.insert("latency_p99_ms".to_owned(), m.latency_p99_ms);
    }
    if let Some(availability) = &m.availability {
        figures.extend(availability.during_faults.map(|a| ("availability_during_faults".to_owned(), a)));
        figures.extend(availability.after_heal.map(|a| ("availability_after_heal".to_owned(), a)));
        for (side, share) in &availability.per_side {
            figures.insert(format!("availability_{side}_side"), *share);
        }
    }
    if let Some(c) = &m.consistency {
        figures.insert("reads".to_owned(), c.reads as f64);
        figures.insert("stale_reads".to_owned(), c.stale_reads as f64);
        figures.insert("stale_versions_max".to_owned(), c.stale_versions_max as f64);
        figures.insert("stale_ms_max".to_owned(), c.stale_ms_max);
        figures.insert("read_your_writes_violations".to_owned(), c.read_your_writes_violations as f64);
        figures.insert("monotonic_read_violations".to_owned(), c.monotonic_read_violations as f64);
        figures.insert("acked_writes".to_owned(), c.acked_writes as f64);
        figures.extend(c.lost_writes.map(|l| ("lost_writes".to_owned(), l as f64)));
    }
    figures.extend(m.protocol.iter().map(|(k, v)| (k.clone(), *v)));
    figures
}

fn median_and_max(values: Option<&Vec<f64>>) -> (Option<f64>, Option<f64>) {
    let Some(values) = values.filter(|v| !v.is_empty()) else {
        return (None, None);
    };
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    (Some(sorted[sorted.len() / 2]), sorted.last().copied())
}

fn tally(verdicts: &mut Verdicts, seed: u64, outcome: &RunOutcome) {
    match outcome.verdict {
        Verdict::Pass => verdicts.pass += 1,
        Verdict::Unknown => verdicts.unknown += 1,
        Verdict::Violation => {
            verdicts.violation += 1;
            if verdicts.first_failure.is_none() {
                let first = outcome.violations.first().map(ToString::to_string).unwrap_or_default();
                verdicts.first_failure = Some((seed, first));
            }
        }
    }
}

fn schedule(scenario: &Scenario, seed: u64) -> Result<String, String> {
    let protocol = crate::registry::find(&scenario.protocol).ok_or("unknown protocol")?;
    let topology = protocol.topology(scenario)?;
    Ok(serde_json::to_string(&crate::nemesis::materialize(scenario, &topology, seed)).expect("serialisable"))
}

/// Runs every scenario on every seed.
pub fn compare(systems: &[Scenario], seeds: &[u64]) -> Result<Comparison, String> {
    let mut figures: Vec<BTreeMap<String, Vec<f64>>> = vec![BTreeMap::new(); systems.len()];
    let mut verdicts: Vec<Verdicts> = systems.iter().map(|_| Verdicts::default()).collect();
    let mut same_faults_seeds = 0;
    for &seed in seeds {
        let mut schedules = Vec::new();
        for (i, scenario) in systems.iter().enumerate() {
            let outcome = crate::run_cmd::run_scenario(scenario, seed, None)?;
            tally(&mut verdicts[i], seed, &outcome);
            for (name, value) in figures_of(&outcome) {
                figures[i].entry(name).or_default().push(value);
            }
            schedules.push(schedule(scenario, seed)?);
        }
        same_faults_seeds += usize::from(schedules.iter().all(|s| *s == schedules[0]));
    }
    let mut names: Vec<&String> = figures.iter().flat_map(BTreeMap::keys).collect();
    names.sort();
    names.dedup();
    let figures = names
        .into_iter()
        .map(|name| {
            let (medians, maxes) = figures.iter().map(|f| median_and_max(f.get(name))).unzip();
            Figure { name: name.clone(), medians, maxes }
        })
        .collect();
    Ok(Comparison {
        systems: systems.iter().map(|s| s.name.clone()).collect(),
        seeds: seeds.to_vec(),
        same_faults_seeds,
        verdicts,
        figures,
    })
}

fn cell(value: Option<f64>) -> String {
    match value {
        None => "–".to_owned(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn verdict_line(v: &Verdicts) -> String {
    let mut line = format!("{} pass, {} violation, {} unknown", v.pass, v.violation, v.unknown);
    if let Some((seed, first)) = &v.first_failure {
        line.push_str(&format!(" (first: seed {seed}, {first})"));
    }
    line
}

/// The comparison as Markdown: verdicts, then a table of every figure's median and
/// largest value per system.
pub fn markdown(c: &Comparison) -> String {
    let seeds = match (c.seeds.first(), c.seeds.last()) {
        (Some(first), Some(last)) => format!("seeds {first}..={last}"),
        _ => "no seeds".to_owned(),
    };
    let mut out = format!("# {}\n\n", c.systems.join(" vs "));
    out.push_str(&format!(
        "{} each; the same fault schedule on {} of {} seeds.\n\n",
        seeds,
        c.same_faults_seeds,
        c.seeds.len()
    ));
    for (system, verdicts) in c.systems.iter().zip(&c.verdicts) {
        out.push_str(&format!("- **{system}**: {}\n", verdict_line(verdicts)));
    }
    out.push_str("\nEach figure: the median over the seeds / the largest.\n\n| figure |");
    for system in &c.systems {
        out.push_str(&format!(" {system} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(c.systems.len()));
    out.push('\n');
    for f in &c.figures {
        out.push_str(&format!("| {} |", f.name));
        for (median, max) in f.medians.iter().zip(&f.maxes) {
            out.push_str(&format!(" {} / {} |", cell(*median), cell(*max)));
        }
        out.push('\n');
    }
    out
}

/// `dsim compare`.
pub fn run(args: &CompareArgs) -> u8 {
    let inner = || -> Result<Comparison, String> {
        let systems = args
            .scenarios
            .iter()
            .map(|name| crate::library::resolve(name).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let last = args.start_seed.checked_add(args.seeds - 1).ok_or("--start-seed plus --seeds overflows")?;
        let seeds: Vec<u64> = (args.start_seed..=last).collect();
        compare(&systems, &seeds)
    };
    match inner() {
        Ok(comparison) => {
            let text = markdown(&comparison);
            if let Some(path) = &args.out
                && let Err(message) = crate::output::write_atomic(path, text.as_bytes())
            {
                eprintln!("dsim compare: {message}");
                return exit::for_error(&message);
            }
            if args.json {
                println!("{}", serde_json::to_string(&comparison).expect("serialisable"));
            } else {
                print!("{text}");
            }
            exit::PASS
        }
        Err(message) => {
            eprintln!("dsim compare: {message}");
            exit::for_error(&message)
        }
    }
}
