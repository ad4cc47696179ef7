//! `dsim compare A B`: two scenarios (two protocols, or one protocol two ways) run on
//! the same seeds, their verdicts and figures side by side.
//!
//! The workload and the fault schedule come from the seed, so two scenarios with the
//! same workload settings and generator over the same servers and clients get the same
//! faults at the same instants: the comparison says on how many seeds the two
//! schedules were identical.

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
    /// The first scenario (built-in name or file): the baseline.
    pub a: String,
    /// The second scenario.
    pub b: String,
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

/// One figure of both sides: the median and the largest over the seeds it was measured on.
#[derive(Debug, Serialize)]
pub struct Figure {
    pub name: String,
    pub a_median: Option<f64>,
    pub a_max: Option<f64>,
    pub b_median: Option<f64>,
    pub b_max: Option<f64>,
}

/// One side's verdicts.
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
    pub a: String,
    pub b: String,
    pub seeds: Vec<u64>,
    /// Seeds on which both scenarios drew the same fault schedule.
    pub same_faults_seeds: usize,
    pub a_verdicts: Verdicts,
    pub b_verdicts: Verdicts,
    pub figures: Vec<Figure>,
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
    figures.extend(m.protocol.iter().map(|(k, v)| (k.clone(), *v)));
    figures
}

fn median_and_max(values: &[f64]) -> (Option<f64>, Option<f64>) {
    if values.is_empty() {
        return (None, None);
    }
    let mut sorted = values.to_vec();
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

/// Runs both scenarios on every seed.
pub fn compare(a: &Scenario, b: &Scenario, seeds: &[u64]) -> Result<Comparison, String> {
    let mut a_figures: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut b_figures: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let (mut a_verdicts, mut b_verdicts) = (Verdicts::default(), Verdicts::default());
    let mut same_faults_seeds = 0;
    for &seed in seeds {
        let a_outcome = crate::run_cmd::run_scenario(a, seed, None)?;
        let b_outcome = crate::run_cmd::run_scenario(b, seed, None)?;
        tally(&mut a_verdicts, seed, &a_outcome);
        tally(&mut b_verdicts, seed, &b_outcome);
        for (name, value) in figures_of(&a_outcome) {
            a_figures.entry(name).or_default().push(value);
        }
        for (name, value) in figures_of(&b_outcome) {
            b_figures.entry(name).or_default().push(value);
        }
        same_faults_seeds += usize::from(schedule(a, seed)? == schedule(b, seed)?);
    }
    let mut names: Vec<&String> = a_figures.keys().chain(b_figures.keys()).collect();
    names.sort();
    names.dedup();
    let figures = names
        .into_iter()
        .map(|name| {
            let (a_median, a_max) = median_and_max(a_figures.get(name).map_or(&[][..], Vec::as_slice));
            let (b_median, b_max) = median_and_max(b_figures.get(name).map_or(&[][..], Vec::as_slice));
            Figure { name: name.clone(), a_median, a_max, b_median, b_max }
        })
        .collect();
    Ok(Comparison {
        a: a.name.clone(),
        b: b.name.clone(),
        seeds: seeds.to_vec(),
        same_faults_seeds,
        a_verdicts,
        b_verdicts,
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

/// The comparison as a Markdown table.
pub fn markdown(c: &Comparison) -> String {
    let seeds = match (c.seeds.first(), c.seeds.last()) {
        (Some(first), Some(last)) => format!("seeds {first}..={last}"),
        _ => "no seeds".to_owned(),
    };
    let mut out = format!("# {} vs {}\n\n", c.a, c.b);
    out.push_str(&format!(
        "{} each; the same fault schedule on {} of {} seeds.\n\n",
        seeds,
        c.same_faults_seeds,
        c.seeds.len()
    ));
    out.push_str(&format!(
        "- **{}**: {}\n- **{}**: {}\n\n",
        c.a,
        verdict_line(&c.a_verdicts),
        c.b,
        verdict_line(&c.b_verdicts)
    ));
    out.push_str("Each figure: the median over the seeds, then the largest.\n\n");
    out.push_str(&format!(
        "| figure | {a} median | {a} max | {b} median | {b} max |\n|---|---:|---:|---:|---:|\n",
        a = c.a,
        b = c.b
    ));
    for f in &c.figures {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            f.name,
            cell(f.a_median),
            cell(f.a_max),
            cell(f.b_median),
            cell(f.b_max)
        ));
    }
    out
}

/// `dsim compare`.
pub fn run(args: &CompareArgs) -> u8 {
    let inner = || -> Result<Comparison, String> {
        let a = crate::library::resolve(&args.a).map_err(|e| e.to_string())?;
        let b = crate::library::resolve(&args.b).map_err(|e| e.to_string())?;
        let last = args.start_seed.checked_add(args.seeds - 1).ok_or("--start-seed plus --seeds overflows")?;
        let seeds: Vec<u64> = (args.start_seed..=last).collect();
        compare(&a, &b, &seeds)
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
