//! `dsim run`, `dsim replay`, `dsim list` and `dsim show`.

use checker::Verdict;
use clap::Args;
use serde::Serialize;

use crate::cli::exit;
use crate::library;
use crate::output::write_atomic;
use crate::recording::{KeepPolicy, Recording};
use crate::report_cmd::{Outputs, TraceFormat, report_of, trace_header, write_trace};
use crate::runner::RunOutcome;
use crate::scenario::Scenario;

/// Runs a scenario with a seed, recording every trace event into `trace` if given.
pub fn run_scenario(scenario: &Scenario, seed: u64, trace: Option<&Recording>) -> Result<RunOutcome, String> {
    scenario.entry()?.run(scenario, seed, trace)
}

/// The command that replays a run of a built-in scenario or a file.
pub fn replay_command(source: &str, outcome: &RunOutcome, is_file: bool) -> String {
    if is_file {
        return format!("dsim run {source} --seed {}", outcome.seed);
    }
    let variant = if outcome.variant == "correct" { String::new() } else { format!(" --variant {}", outcome.variant) };
    format!("dsim run {source} --seed {}{variant}", outcome.seed)
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// A built-in scenario's name (see `dsim list`) or a scenario file.
    pub scenario: String,
    /// The root seed (default: the scenario's pinned seed, else 1).
    #[arg(long)]
    pub seed: Option<u64>,
    /// A known-bug variant of the protocol.
    #[arg(long)]
    pub variant: Option<String>,
    #[command(flatten)]
    pub outputs: Outputs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct RunJson<'a> {
    #[serde(flatten)]
    outcome: &'a RunOutcome,
    replay: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_events: Option<u64>,
}

/// `dsim run`.
pub fn run(args: &RunArgs) -> u8 {
    match run_inner(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("dsim run: {message}");
            exit::for_error(&message)
        }
    }
}

fn run_inner(args: &RunArgs) -> Result<u8, String> {
    let scenario = library::resolve_with_variant(&args.scenario, args.variant.as_deref())?;
    let seed = args.seed.or(scenario.seed).unwrap_or(1);
    if !args.json {
        println!("seed={seed}");
    }
    let is_file = library::built_in(&args.scenario).is_none();
    report_run(&scenario, seed, &args.scenario, is_file, &args.outputs, args.json)
}

/// Runs, prints and writes files; returns the exit code.
pub fn report_run(
    scenario: &Scenario,
    seed: u64,
    source: &str,
    is_file: bool,
    outputs: &Outputs,
    json: bool,
) -> Result<u8, String> {
    let recording = outputs.needs_trace().then(|| recording_for(scenario, outputs)).transpose()?;
    let outcome = run_scenario(scenario, seed, recording.as_ref())?;
    let replay = replay_command(source, &outcome, is_file);
    let kept: Vec<serde_json::Value> = recording.as_ref().map(Recording::take_kept).unwrap_or_default();
    let steps = recording.as_ref().map(Recording::take_steps).unwrap_or_default();
    let mut trace_events = None;
    if let (Some(path), Some(recording)) = (&outputs.trace, &recording) {
        let header = trace_header(&outcome, scenario, &replay);
        match outputs.trace_format {
            TraceFormat::Jsonl => trace_events = recording.finish_file(&header)?,
            TraceFormat::Perfetto => {
                let report = report_of(&outcome, scenario, &replay, Vec::new(), Vec::new(), None);
                write_trace(path, outputs.trace_format, &header, &kept, &report.nodes)?;
                trace_events = Some(kept.len() as u64);
            }
        }
    }
    if let Some(path) = &outputs.history {
        write_atomic(path, checker::import::to_json_lines(&outcome.history).as_bytes())?;
    }
    if let Some(path) = &outputs.report {
        let report = report_of(&outcome, scenario, &replay, kept, steps, outputs.window);
        write_atomic(path, crate::report_cmd::render(&report, path).as_bytes())?;
    }
    let code = match outcome.verdict {
        Verdict::Pass => exit::PASS,
        Verdict::Violation => exit::VIOLATION,
        Verdict::Unknown => exit::UNKNOWN,
    };
    crate::cli::exit_code_when_output_closes(code);
    if json {
        let output = RunJson { outcome: &outcome, replay, trace_events };
        println!("{}", serde_json::to_string(&output).expect("serialisable"));
    } else {
        print!("{}", render_text(&outcome, &replay));
    }
    Ok(code)
}

/// A recording for `outputs`: JSON lines streamed to the trace file; for a report, only
/// the events its default windows show (the first second, the second before the
/// liveness probe, the last second), or those of `--window`; for Perfetto, every event.
fn recording_for(scenario: &Scenario, outputs: &Outputs) -> Result<Recording, String> {
    let second = 1_000_000_000;
    let mut policy = KeepPolicy::default();
    if outputs.trace.is_some() && outputs.trace_format == TraceFormat::Perfetto {
        policy.all = true;
    } else if outputs.report.is_some() {
        // The causal past of a violation reaches over the whole run.
        policy.steps = true;
        match outputs.window {
            Some(window) => policy.windows.push(window),
            None => {
                policy.windows.push((0, second));
                let heal_ns = (scenario.duration.faults_ms * 1e6) as u64;
                if let Some(liveness) = scenario.checks.liveness {
                    let probe_ns = heal_ns.saturating_add((liveness.leader_within_ms * 1e6) as u64);
                    policy.windows.push((probe_ns.saturating_sub(second), probe_ns + second / 10));
                }
                policy.tail_ns = Some(second + second / 10);
            }
        }
    }
    let stream = outputs.trace.as_deref().filter(|_| outputs.trace_format == TraceFormat::Jsonl);
    Recording::new(stream, policy)
}

/// The run summary for a terminal.
pub fn render_text(outcome: &RunOutcome, replay: &str) -> String {
    let m = &outcome.metrics;
    let verdict = match outcome.verdict {
        Verdict::Pass => "PASS",
        Verdict::Violation => "VIOLATION",
        Verdict::Unknown => "UNKNOWN",
    };
    let mut out = format!("scenario: {} ({}, variant {})\n", outcome.scenario, outcome.protocol, outcome.variant);
    out += &format!("verdict: {verdict}\nfingerprint: {}\n", outcome.fingerprint);
    out += &format!("stopped: {}\n", outcome.stop);
    if let Some(reason) = &outcome.unknown_reason {
        out += &format!("unknown: {reason}\n");
    }
    out += &format!("events: {}, virtual time: {:.1} ms, faults: {}\n", m.events, m.virtual_ms, m.faults);
    out += &format!(
        "messages: {} sent, {} delivered, {} dropped, {} duplicated\n",
        m.messages_sent, m.messages_delivered, m.messages_dropped, m.messages_duplicated
    );
    if outcome.history_check != "none" {
        out += &format!("operations: {} ok, {} fail, {} info\n", m.ops_ok, m.ops_fail, m.ops_info);
        out += &format!(
            "latency ms: p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}\n",
            m.latency_p50_ms, m.latency_p90_ms, m.latency_p99_ms, m.latency_max_ms
        );
    }
    if let Some(a) = &m.availability {
        let share = |v: Option<f64>| v.map_or_else(|| "no operations".to_owned(), |v| format!("{:.1}%", 100.0 * v));
        out += &format!(
            "availability: {} during faults, {} after the heal\n",
            share(a.during_faults),
            share(a.after_heal)
        );
        if !a.per_side.is_empty() {
            let sides: Vec<String> =
                a.per_side.iter().map(|(side, v)| format!("{side} side {:.1}%", 100.0 * v)).collect();
            out += &format!("availability under partition: {}\n", sides.join(", "));
        }
    }
    if let (Some(p99), Some(longest)) = (m.queue_ms_p99, m.queue_len_max) {
        out += &format!("queueing: p99 {p99:.1} ms waiting for a busy node, longest queue {longest}\n");
    }
    if let Some(c) = &m.consistency {
        out += &format!(
            "consistency: {} of {} reads stale (at most {} writes behind, p50 {:.1} ms, max {:.1} ms), {} \
             read-your-writes and {} monotonic-reads violations; {}\n",
            c.stale_reads,
            c.reads,
            c.stale_versions_max,
            c.stale_ms_p50,
            c.stale_ms_max,
            c.read_your_writes_violations,
            c.monotonic_read_violations,
            match c.lost_writes {
                Some(lost) => format!("lost writes {lost} of {} acknowledged", c.acked_writes),
                None => format!(
                    "lost writes not measured: the run stopped before the system converged ({} acknowledged)",
                    c.acked_writes
                ),
            }
        );
    }
    for (name, value) in &m.protocol {
        out += &format!(
            "{}: {}\n",
            name.replace('_', " "),
            if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.2}") }
        );
    }
    if let Some(report) = &outcome.linearizability {
        let verdict = report.verdict.describe();
        out += &format!(
            "history: {verdict} ({} ops, {} {}, {} search steps)\n",
            report.ops,
            report.partitions,
            if report.partitions == 1 { "key" } else { "keys" },
            report.steps
        );
        if let Some(reason) = &report.unknown_reason {
            out += &format!("  {reason}\n");
        }
    }
    if let Some(first) = outcome.violations.first() {
        out += &format!("first violation: {first}\n");
        if let Some(e) = outcome.linearizability.as_ref().and_then(|r| r.explanation.as_ref())
            && first.kind == "linearizability"
        {
            for line in checker::render_text(outcome.linearizability.as_ref().expect("checked")).lines().skip(1) {
                out += &format!("  {line}\n");
            }
            let _ = e;
        }
        for other in &outcome.violations[1..] {
            out += &format!("also: {other}\n");
        }
    }
    out += &format!("replay: {replay}\n");
    out
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A saved scenario file (as `dsim fuzz` writes them), with its seed pinned.
    pub file: String,
    #[command(flatten)]
    pub outputs: Outputs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `dsim replay`.
pub fn replay(args: &ReplayArgs) -> u8 {
    let result = (|| {
        let scenario = library::resolve(&args.file).map_err(|e| e.to_string())?;
        let seed = scenario
            .seed
            .ok_or_else(|| format!("{}: the scenario pins no seed; use `dsim run --seed N`", args.file))?;
        if !args.json {
            println!("seed={seed}");
        }
        report_run(&scenario, seed, &args.file, true, &args.outputs, args.json)
    })();
    result.unwrap_or_else(|message| {
        eprintln!("dsim replay: {message}");
        exit::for_error(&message)
    })
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
    /// List the protocols and their variants instead of the scenarios.
    #[arg(long)]
    pub protocols: bool,
}

#[derive(Serialize)]
struct ProtocolEntry {
    name: &'static str,
    description: &'static str,
    variants: &'static [protocols::protocol::VariantInfo],
    scenarios: Vec<&'static str>,
}

fn list_protocols(json: bool) -> u8 {
    let entries: Vec<ProtocolEntry> = crate::registry::REGISTRY
        .iter()
        .map(|p| ProtocolEntry {
            name: p.name(),
            description: p.description(),
            variants: p.variants(),
            scenarios: p.scenarios().iter().map(|(name, _)| *name).collect(),
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string(&entries).expect("serialisable"));
        return exit::PASS;
    }
    for entry in &entries {
        println!("{}: {}", entry.name, entry.description);
        for variant in entry.variants {
            let kind = match variant.kind {
                protocols::protocol::VariantKind::Correct => "",
                protocols::protocol::VariantKind::Bug => " (known bug)",
                protocols::protocol::VariantKind::Option => " (option)",
            };
            println!("  --variant {}{kind}: {}", variant.name, variant.doc);
        }
        println!("  scenarios: {}", entry.scenarios.join(", "));
    }
    exit::PASS
}

#[derive(Serialize)]
struct ListEntry {
    name: String,
    protocol: String,
    variant: Option<String>,
    description: String,
}

/// `dsim list`.
pub fn list(args: &ListArgs) -> u8 {
    if args.protocols {
        return list_protocols(args.json);
    }
    let entries: Vec<ListEntry> = library::all()
        .into_iter()
        .map(|s| ListEntry { name: s.name, protocol: s.protocol, variant: s.variant, description: s.description })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string(&entries).expect("serialisable"));
    } else {
        let width = entries.iter().map(|e| e.name.len()).max().unwrap_or(0);
        for entry in &entries {
            let summary = entry.description.split(". ").next().unwrap_or("").trim_end_matches('.');
            println!("{:width$}  {:10}  {summary}", entry.name, entry.protocol);
        }
    }
    exit::PASS
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// A built-in scenario's name.
    pub name: String,
}

/// `dsim show`.
pub fn show(args: &ShowArgs) -> u8 {
    match library::built_in(&args.name) {
        Some(text) => {
            print!("{text}");
            exit::PASS
        }
        None => {
            let names = library::names();
            eprintln!("dsim show: no built-in scenario {:?} (built-in: {})", args.name, names.join(", "));
            exit::BAD_INPUT
        }
    }
}
