//! `dsim compare A B [C ...]`: scenarios (several protocols, or one protocol several
//! ways) run on the same seeds, their verdicts and figures side by side.
//!
//! A system is a built-in name or a file, optionally with settings overrides after a
//! colon: `cap-dynamo-311-sloppy:dynamo.r=2,dynamo.w=2` (values are JSON, or text;
//! `variant=NAME` picks a variant). `cap` names the built-in CAP comparison: Raft and
//! Multi-Paxos against the Dynamo-style store in five configurations, under one
//! minority partition. `--html` writes a self-contained page with latency over time on
//! shared axes and the faults shaded.
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
use crate::compare_text::{Kind, behaviour, lead, plural, readable_name, setup};
use crate::runner::RunOutcome;
use crate::scenario::Scenario;

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The systems: built-in scenario names or files, each optionally with settings
    /// overrides (`NAME:path=value,...`), two or more; or `locks`, every lock under its
    /// hostile swarm with and without fencing; or `cap`, the built-in CAP comparison; or
    /// `contended`, Jepsen's Riak set under a partition. The first is the baseline.
    #[arg(required = true, num_args = 1..)]
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
    /// Also write a self-contained HTML page (tables, a CAP summary per system, latency
    /// over time with the faults shaded) to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The systems of the built-in CAP comparison.
pub const CAP: [&str; 7] = [
    "cap-raft",
    "cap-multipaxos",
    "cap-dynamo-311-sloppy",
    "cap-dynamo-322-sloppy",
    "cap-dynamo-322-strict",
    "cap-dynamo-311-vv",
    "cap-dynamo-322-vv",
];

/// The systems of the built-in contended-set comparison: Jepsen's Riak partition with
/// five clients adding to one set, last write wins against version vectors, sloppy and
/// strict.
pub const CONTENDED: [&str; 4] = [
    "dynamo-contended-set-lww",
    "dynamo-contended-set-vv",
    "dynamo-contended-set-lww-strict",
    "dynamo-contended-set-vv-strict",
];

/// The systems of the built-in comparison of the locks: each under its hostile swarm,
/// with and without fencing where the lock has it.
pub const LOCKS: [&str; 9] = [
    "db-lock-hostile",
    "db-lock-hostile:variant=fencing",
    "db-lock-hostile:expiry=false",
    "db-lock-hostile:expiry=false,variant=fencing",
    "redis-lock-hostile",
    "redis-lock-hostile:variant=fencing",
    "redlock-hostile",
    "zookeeper-lock-hostile",
    "zookeeper-lock-hostile:variant=fencing",
];

/// The system a command-line argument names: a scenario, with overrides after a colon
/// (`NAME:path=value,...`).
pub fn system(argument: &str) -> Result<Scenario, String> {
    crate::library::resolve_system(argument)
}

/// One figure of every system: the median and the largest over the seeds it was
/// measured on (`None` where a system does not measure it).
#[derive(Debug, Serialize)]
pub struct Figure {
    pub name: String,
    pub medians: Vec<Option<f64>>,
    pub mins: Vec<Option<f64>>,
    pub maxes: Vec<Option<f64>>,
    /// Per system: the value on each seed that measured it, by the seed's index.
    #[serde(skip)]
    pub per_seed: Vec<BTreeMap<usize, f64>>,
}

/// One system's verdicts.
#[derive(Debug, Default, Serialize)]
pub struct Verdicts {
    pub pass: u64,
    pub violation: u64,
    pub unknown: u64,
    /// The first failing seed and its violation.
    pub first_failure: Option<(u64, String)>,
    /// Failing seeds by the kind of their first violation.
    pub kinds: BTreeMap<String, u64>,
    /// The command that replays the first failing seed.
    pub first_failure_replay: Option<String>,
}

/// What `dsim compare` prints with `--json`.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub systems: Vec<String>,
    /// The systems' names for people (overrides in words).
    pub labels: Vec<String>,
    /// What kind of systems these are, from the figures every one measured.
    pub kind: Kind,
    /// The setup in a paragraph, from the first system and the first seed.
    pub setup: String,
    /// Each system's cluster in words (`5 servers and 3 clients`).
    pub clusters: Vec<String>,
    /// Two or three sentences on who did better on what.
    pub lead: Vec<String>,
    pub seeds: Vec<u64>,
    /// Seeds on which every scenario drew the first one's fault schedule.
    pub same_faults_seeds: usize,
    pub verdicts: Vec<Verdicts>,
    /// Per system: seeds whose history was checked and linearizable, not, and undecided,
    /// unchecked or cut short (a run that ended UNKNOWN counts as undecided).
    pub linearizable: Vec<[u64; 3]>,
    /// One line per system: what it did under the partition, from the evidence (CP only
    /// when every seed was linearizable and the minority side refused).
    pub cap_summary: Vec<String>,
    pub figures: Vec<Figure>,
    /// The first seed's runs, for the page's pictures.
    #[serde(skip)]
    pub first_runs: Vec<FirstRun>,
}

/// What the page draws of one system's run on the first seed.
#[derive(Debug, Default)]
pub struct FirstRun {
    /// (invoked, latency, answered) per operation, in ms.
    pub ops: Vec<(f64, f64, bool)>,
    /// Partitions as (from, to) in ms.
    pub partitions: Vec<(f64, f64)>,
    pub end_ms: f64,
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
    if let Some(acquisitions) = m.protocol.get("acquisitions").filter(|a| **a > 0.0) {
        figures.insert("messages_per_acquisition".to_owned(), m.messages_sent as f64 / acquisitions);
        figures.insert("acquisitions_per_s".to_owned(), acquisitions / (m.virtual_ms / 1000.0).max(1e-9));
    }
    figures
}

fn median_min_max(values: Option<&Vec<f64>>) -> (Option<f64>, Option<f64>, Option<f64>) {
    let Some(values) = values.filter(|v| !v.is_empty()) else {
        return (None, None, None);
    };
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    (Some(sorted[sorted.len() / 2]), sorted.first().copied(), sorted.last().copied())
}

fn first_run(scenario: &Scenario, seed: u64, outcome: &RunOutcome) -> FirstRun {
    let mut run = FirstRun { end_ms: scenario.duration.faults_ms + scenario.duration.healed_ms, ..FirstRun::default() };
    if let Ok(history) = crate::runner::history_of(&outcome.history) {
        for op in &history.ops {
            let Some(start) = op.invoke_time_ns else { continue };
            let answered = op.outcome != checker::Outcome::Info;
            let end = op.complete_time_ns.unwrap_or(start);
            run.ops.push((start as f64 / 1e6, (end - start) as f64 / 1e6, answered));
        }
    }
    if let Some(protocol) = crate::registry::find(&scenario.protocol)
        && let Ok(topology) = protocol.topology(scenario)
    {
        let mut actions = crate::nemesis::materialize(scenario, &topology, seed);
        actions.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        let mut open: Option<f64> = None;
        for action in actions.iter().filter(|a| a.at_ms < scenario.duration.faults_ms) {
            match action.fault {
                sim_core::Fault::Partition { .. } => {
                    if let Some(from) = open.replace(action.at_ms) {
                        run.partitions.push((from, action.at_ms));
                    }
                }
                sim_core::Fault::Heal => {
                    if let Some(from) = open.take() {
                        run.partitions.push((from, action.at_ms));
                    }
                }
                _ => {}
            }
        }
        if let Some(from) = open {
            run.partitions.push((from, scenario.duration.faults_ms));
        }
    }
    run
}

fn tally(verdicts: &mut Verdicts, seed: u64, outcome: &RunOutcome, argument: &str) {
    match outcome.verdict {
        Verdict::Pass => verdicts.pass += 1,
        Verdict::Unknown => verdicts.unknown += 1,
        Verdict::Violation => {
            verdicts.violation += 1;
            let kind = outcome.violations.first().map_or_else(|| "unknown".to_owned(), |v| v.kind.clone());
            *verdicts.kinds.entry(kind).or_insert(0) += 1;
            if verdicts.first_failure.is_none() {
                let first = outcome.violations.first().map(ToString::to_string).unwrap_or_default();
                verdicts.first_failure = Some((seed, first));
                verdicts.first_failure_replay = Some(format!("dsim run {argument} --seed {seed}"));
            }
        }
    }
}

fn schedule(scenario: &Scenario, seed: u64) -> Result<String, String> {
    let protocol = crate::registry::find(&scenario.protocol).ok_or("unknown protocol")?;
    let topology = protocol.topology(scenario)?;
    Ok(serde_json::to_string(&crate::nemesis::materialize(scenario, &topology, seed)).expect("serialisable"))
}

/// The comparison's HTML page.
pub fn page_html(comparison: &Comparison) -> String {
    crate::compare_html::page(comparison)
}

/// Runs every scenario on every seed; each system is called by its scenario's name.
pub fn compare(systems: &[Scenario], seeds: &[u64]) -> Result<Comparison, String> {
    let names: Vec<String> = systems.iter().map(|s| s.name.clone()).collect();
    compare_named(systems, &names, seeds)
}

/// Runs every scenario on every seed; `arguments` are the systems as the user named them
/// (`NAME` or `NAME:overrides`), for their readable names and replay commands.
pub fn compare_named(systems: &[Scenario], arguments: &[String], seeds: &[u64]) -> Result<Comparison, String> {
    let mut figures: Vec<BTreeMap<String, Vec<f64>>> = vec![BTreeMap::new(); systems.len()];
    let mut per_seed: Vec<BTreeMap<String, BTreeMap<usize, f64>>> = vec![BTreeMap::new(); systems.len()];
    let mut verdicts: Vec<Verdicts> = systems.iter().map(|_| Verdicts::default()).collect();
    let mut linearizable = vec![[0u64; 3]; systems.len()];
    let mut first_runs = Vec::new();
    let mut same_faults_seeds = 0;
    let progress = crate::output::progress_bar((seeds.len() * systems.len()) as u64, "runs");
    for (seed_index, &seed) in seeds.iter().enumerate() {
        let mut schedules = Vec::new();
        for (i, scenario) in systems.iter().enumerate() {
            let outcome = crate::run_cmd::run_scenario(scenario, seed, None)?;
            tally(&mut verdicts[i], seed, &outcome, &arguments[i]);
            let checked = outcome.linearizability.as_ref().filter(|r| r.ops_checked > 0);
            let slot = match checked.map(|r| r.verdict) {
                _ if outcome.verdict == Verdict::Unknown => 2,
                Some(Verdict::Pass) => 0,
                Some(Verdict::Violation) => 1,
                _ => 2,
            };
            linearizable[i][slot] += 1;
            if Some(&seed) == seeds.first() {
                first_runs.push(first_run(scenario, seed, &outcome));
            }
            for (name, value) in figures_of(&outcome) {
                per_seed[i].entry(name.clone()).or_default().insert(seed_index, value);
                figures[i].entry(name).or_default().push(value);
            }
            schedules.push(schedule(scenario, seed)?);
            progress.inc(1);
        }
        same_faults_seeds += usize::from(schedules.iter().all(|s| *s == schedules[0]));
    }
    progress.finish_and_clear();
    let mut names: Vec<&String> = figures.iter().flat_map(BTreeMap::keys).collect();
    names.sort();
    names.dedup();
    let kind = Kind::of(&figures);
    let cap_summary = figures
        .iter()
        .zip(&linearizable)
        .map(|(f, l)| if kind == Kind::Kv { behaviour(f, *l) } else { String::new() })
        .collect();
    let figures = names
        .into_iter()
        .map(|name| {
            let mut figure = Figure {
                name: name.clone(),
                medians: Vec::new(),
                mins: Vec::new(),
                maxes: Vec::new(),
                per_seed: per_seed.iter().map(|p| p.get(name).cloned().unwrap_or_default()).collect(),
            };
            for f in &figures {
                let (median, min, max) = median_min_max(f.get(name));
                figure.medians.push(median);
                figure.mins.push(min);
                figure.maxes.push(max);
            }
            figure
        })
        .collect();
    let mut comparison = Comparison {
        systems: systems.iter().map(|s| s.name.clone()).collect(),
        labels: arguments.iter().map(|a| readable_name(a)).collect(),
        kind,
        setup: systems.first().zip(seeds.first()).map(|(s, seed)| setup(s, *seed)).unwrap_or_default(),
        clusters: systems
            .iter()
            .map(|s| format!("{} and {}", plural(s.cluster.servers, "server"), plural(s.cluster.clients, "client")))
            .collect(),
        lead: Vec::new(),
        seeds: seeds.to_vec(),
        same_faults_seeds,
        verdicts,
        linearizable,
        cap_summary,
        figures,
        first_runs,
    };
    comparison.lead = lead(&comparison);
    Ok(comparison)
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
    if !v.kinds.is_empty() {
        let kinds: Vec<String> = v.kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        line.push_str(&format!(" [{}]", kinds.join(", ")));
    }
    if let Some((seed, first)) = &v.first_failure {
        line.push_str(&format!(" (first: seed {seed}, {first})"));
    }
    line
}

/// The comparison as Markdown: the title, the lead sentences, the setup, each system's
/// verdicts, then a table of every figure's median and largest value per system.
pub fn markdown(c: &Comparison) -> String {
    let seeds = match (c.seeds.first(), c.seeds.last()) {
        (Some(first), Some(last)) => format!("seeds {first}..={last}"),
        _ => "no seeds".to_owned(),
    };
    let mut out = format!("# {}\n\n{}\n\n", c.kind.title(), c.labels.join(" · "));
    for sentence in &c.lead {
        out.push_str(&format!("{sentence}\n"));
    }
    out.push_str(&format!(
        "\n{}\n\n{} each; the same fault schedule on {} of {} seeds.\n\n",
        c.setup,
        seeds,
        c.same_faults_seeds,
        c.seeds.len()
    ));
    for (i, (label, verdicts)) in c.labels.iter().zip(&c.verdicts).enumerate() {
        out.push_str(&format!("- **{label}**: {}\n", verdict_line(verdicts)));
        if let Some(replay) = &verdicts.first_failure_replay {
            out.push_str(&format!("  replay the first failure: `{replay}`\n"));
        }
        if !c.cap_summary[i].is_empty() {
            out.push_str(&format!("  {}\n", c.cap_summary[i]));
        }
    }
    out.push_str("\nEach figure: the median over the seeds / the largest.\n\n| figure |");
    for label in &c.labels {
        out.push_str(&format!(" {label} |"));
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
        let names: Vec<String> = if args.scenarios == ["cap"] {
            CAP.iter().map(|s| (*s).to_owned()).collect()
        } else if args.scenarios == ["locks"] {
            LOCKS.iter().map(|s| (*s).to_owned()).collect()
        } else if args.scenarios == ["contended"] {
            CONTENDED.iter().map(|s| (*s).to_owned()).collect()
        } else {
            args.scenarios.clone()
        };
        if names.len() < 2 {
            return Err("dsim compare needs two systems or more (or `cap` or `locks`, the built-in comparisons)".into());
        }
        let systems = names.iter().map(|name| system(name)).collect::<Result<Vec<_>, _>>()?;
        let last = args.start_seed.checked_add(args.seeds - 1).ok_or("--start-seed plus --seeds overflows")?;
        let seeds: Vec<u64> = (args.start_seed..=last).collect();
        compare_named(&systems, &names, &seeds)
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
            if let Some(path) = &args.html
                && let Err(message) =
                    crate::output::write_atomic(path, crate::compare_html::page(&comparison).as_bytes())
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
