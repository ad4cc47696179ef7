//! Reports from runs and traces: `--report`, `--trace-format perfetto`, `dsim report`.

use std::path::{Path, PathBuf};

use checker::Verdict;
use clap::{Args, ValueEnum};
use reports::{Report, RoleChange};
use serde_json::Value;

use crate::cli::exit;
use crate::output::write_atomic;
use crate::runner::RunOutcome;

/// How `--trace` writes events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum TraceFormat {
    /// One JSON object per event (sim-core's trace events), after a `run` header line.
    #[default]
    Jsonl,
    /// Chrome trace-event JSON, which the Perfetto UI opens.
    Perfetto,
}

/// Where a run's files go (the flags `dsim run` and `dsim replay` share).
#[derive(Args, Clone, Debug, Default)]
pub struct Outputs {
    /// Record every event (JSON lines, or Perfetto with `--trace-format perfetto`).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// How `--trace` writes: JSON lines, or Perfetto (Chrome trace-event JSON).
    #[arg(long, value_enum, default_value_t = TraceFormat::Jsonl)]
    pub trace_format: TraceFormat,
    /// Write the client history (dsim's JSON lines, readable by `dsim check`).
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Write a report: self-contained HTML (`.html`) or Markdown (`.md`).
    #[arg(long, value_name = "FILE.html|FILE.md", value_parser = parse_report_path)]
    pub report: Option<PathBuf>,
    /// The report's space-time window in milliseconds, FROM-TO (default: around the
    /// first violation).
    #[arg(long, value_parser = parse_window)]
    pub window: Option<(u64, u64)>,
}

impl Outputs {
    /// Whether the run must keep its trace in memory.
    pub fn needs_trace(&self) -> bool {
        self.trace.is_some() || self.report.is_some()
    }
}

/// A report path: its extension says the format, `.html`/`.htm` or `.md`/`.markdown`.
pub fn parse_report_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    match path.extension().and_then(|e| e.to_str()) {
        Some("html" | "htm" | "md" | "markdown") => Ok(path),
        _ => Err(format!("{text}: a report is .html (self-contained HTML) or .md (Markdown)")),
    }
}

/// Parses `FROM-TO` in milliseconds.
pub fn parse_window(text: &str) -> Result<(u64, u64), String> {
    let (from, to) = text.split_once('-').ok_or("expected FROM-TO in milliseconds, e.g. 1000-2500")?;
    let from: f64 = from.trim().parse().map_err(|_| format!("bad start {from:?}"))?;
    let to: f64 = to.trim().parse().map_err(|_| format!("bad end {to:?}"))?;
    if !(from.is_finite() && to.is_finite() && from >= 0.0 && to > from) {
        return Err(format!("{text}: need 0 <= FROM < TO"));
    }
    Ok(((from * 1e6) as u64, (to * 1e6) as u64))
}

/// Lane labels of a run's nodes, from its protocol's topology.
fn labels_of(outcome: &RunOutcome) -> Vec<String> {
    outcome.topology.as_ref().map(|t| t.nodes.iter().map(|n| n.label.clone()).collect()).unwrap_or_default()
}

/// A run's spans as reports draw them.
fn spans_of(outcome: &RunOutcome) -> Vec<reports::Span> {
    outcome
        .spans
        .iter()
        .map(|s| reports::Span {
            node: s.node,
            from_ns: s.from_ns,
            to_ns: s.to_ns,
            label: s.label.clone(),
            exclusive: s.exclusive,
        })
        .collect()
}

/// A run's role changes as reports draw them.
fn roles_of(outcome: &RunOutcome) -> Vec<RoleChange> {
    outcome
        .roles
        .iter()
        .map(|r| RoleChange { t_ns: r.t_ns, node: r.node, role: r.role.clone(), epoch: r.epoch })
        .collect()
}

fn metrics_rows(outcome: &RunOutcome) -> Vec<(String, String)> {
    let m = &outcome.metrics;
    let engine: Vec<(String, String)> = vec![
        ("events".into(), m.events.to_string()),
        ("virtual time".into(), format!("{:.1} ms", m.virtual_ms)),
        ("fault actions".into(), m.faults.to_string()),
        ("messages sent".into(), m.messages_sent.to_string()),
        ("messages delivered".into(), m.messages_delivered.to_string()),
        ("messages dropped".into(), m.messages_dropped.to_string()),
        ("messages duplicated".into(), m.messages_duplicated.to_string()),
    ];
    let operations: Vec<(String, String)> = vec![
        ("operations ok".into(), m.ops_ok.to_string()),
        ("operations fail".into(), m.ops_fail.to_string()),
        ("operations info".into(), m.ops_info.to_string()),
        ("latency p50".into(), format!("{:.1} ms", m.latency_p50_ms)),
        ("latency p90".into(), format!("{:.1} ms", m.latency_p90_ms)),
        ("latency p99".into(), format!("{:.1} ms", m.latency_p99_ms)),
        ("latency max".into(), format!("{:.1} ms", m.latency_max_ms)),
    ];
    let has_history = outcome.history_check != "none";
    engine
        .into_iter()
        .chain(operations.into_iter().filter(|_| has_history))
        .chain(m.protocol.iter().map(|(name, value)| (name.replace('_', " "), number(*value))))
        .collect()
}

/// An availability share as a report cell.
fn share(value: Option<f64>) -> String {
    value.map_or_else(|| "no operations".to_owned(), |v| format!("{:.1}%", 100.0 * v))
}

/// A report of a finished run.
pub fn report_of(
    outcome: &RunOutcome,
    scenario: &crate::scenario::Scenario,
    replay: &str,
    trace: Vec<Value>,
    steps: Vec<reports::Step>,
    window: Option<(u64, u64)>,
) -> Report {
    let heal_ns = (scenario.duration.faults_ms * 1e6) as u64;
    let end_ns = (outcome.metrics.virtual_ms * 1e6) as u64;
    let ops = crate::runner::history_of(&outcome.history).map(|h| h.ops).unwrap_or_default();
    let mut metrics = metrics_rows(outcome);
    if let Some(a) = &outcome.metrics.availability {
        metrics.push(("availability during faults".into(), share(a.during_faults)));
        metrics.push(("availability after heal".into(), share(a.after_heal)));
        for (client, value) in &a.per_client {
            metrics.push((format!("availability of client {client}"), share(Some(*value))));
        }
    }
    Report {
        scenario: outcome.scenario.clone(),
        protocol: outcome.protocol.clone(),
        seed: outcome.seed,
        variant: outcome.variant.clone(),
        verdict: outcome.verdict,
        fingerprint: outcome.fingerprint.clone(),
        replay: replay.to_owned(),
        violations: outcome.violations.clone(),
        explanation: outcome.linearizability.as_ref().and_then(|r| r.explanation.clone()),
        metrics,
        nodes: labels_of(outcome),
        roles: roles_of(outcome),
        spans: spans_of(outcome),
        trace,
        ops,
        heal_ns: Some(heal_ns),
        end_ns,
        window,
        steps,
    }
}

/// Renders a report as HTML or Markdown, by the file's extension.
pub fn render(report: &Report, path: &Path) -> String {
    match path.extension().and_then(|e| e.to_str()) {
        Some("md" | "markdown") => reports::markdown(report),
        _ => reports::html(report),
    }
}

/// Writes the trace (JSON lines with a header line, or Perfetto JSON).
pub fn write_trace(
    path: &Path,
    format: TraceFormat,
    header: &Value,
    trace: &[Value],
    nodes: &[String],
) -> Result<(), String> {
    let text = match format {
        TraceFormat::Jsonl => {
            let mut text = header.to_string();
            text.push('\n');
            for event in trace {
                text.push_str(&event.to_string());
                text.push('\n');
            }
            text
        }
        TraceFormat::Perfetto => {
            let violations: Vec<checker::Violation> =
                header.get("violations").cloned().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
            reports::perfetto(trace, nodes, &violations).to_string()
        }
    };
    write_atomic(path, text.as_bytes())
}

/// The header line of a JSON-lines trace: what `dsim report` needs besides the events.
pub fn trace_header(outcome: &RunOutcome, scenario: &crate::scenario::Scenario, replay: &str) -> Value {
    serde_json::json!({
        "event": "run",
        "scenario": outcome.scenario,
        "protocol": outcome.protocol,
        "variant": outcome.variant,
        "seed": outcome.seed,
        "verdict": outcome.verdict,
        "fingerprint": outcome.fingerprint,
        "replay": replay,
        "servers": scenario.cluster.servers,
        "clients": scenario.cluster.clients,
        "faults_ms": scenario.duration.faults_ms,
        "violations": outcome.violations,
        "nodes": labels_of(outcome),
        "roles": roles_of(outcome),
        "spans": spans_of(outcome),
    })
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A trace written by `dsim run --trace FILE.jsonl`.
    pub trace: PathBuf,
    /// The run's client history (`dsim run --history FILE`), for the operation timeline.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// The report to write: `.html` or `.md`.
    #[arg(short = 'o', long = "output", value_name = "FILE", value_parser = parse_report_path)]
    pub output: PathBuf,
    /// The space-time diagram's window in milliseconds, FROM-TO.
    #[arg(long, value_parser = parse_window)]
    pub window: Option<(u64, u64)>,
}

/// `dsim report`.
pub fn report(args: &ReportArgs) -> u8 {
    match report_inner(args) {
        Ok(()) => exit::PASS,
        Err(message) => {
            eprintln!("dsim report: {message}");
            exit::for_error(&message)
        }
    }
}

fn report_inner(args: &ReportArgs) -> Result<(), String> {
    let name = args.trace.display().to_string();
    let text = crate::output::read_text(&args.trace)?;
    let mut header = Value::Null;
    let mut trace = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(line).map_err(|e| format!("{name}:{}:{}: {e}", number + 1, e.column()))?;
        if value.get("event").and_then(Value::as_str) == Some("run") {
            header = value;
        } else if value.get("event").is_none() {
            return Err(format!("{name}:{}:1: not a dsim trace event (no \"event\" field)", number + 1));
        } else {
            trace.push(value);
        }
    }
    let ops = match &args.history {
        Some(path) => {
            let text = crate::output::read_text(path)?;
            checker::import::parse_history(&text, checker::import::Format::Json)
                .map_err(|e| format!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message))?
                .ops
        }
        None => Vec::new(),
    };
    let end_ns = trace.iter().filter_map(|e| e.get("t_ns").and_then(Value::as_u64)).max().unwrap_or(0);
    let labels: Vec<String> =
        header.get("nodes").cloned().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    let roles: Vec<RoleChange> =
        header.get("roles").cloned().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    let spans: Vec<reports::Span> =
        header.get("spans").cloned().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    let nodes_seen = trace
        .iter()
        .filter_map(|e| e.get("node").or(e.get("to")).and_then(Value::as_u64))
        .max()
        .map_or(0, |n| n as usize + 1);
    let nodes =
        if labels.len() >= nodes_seen { labels } else { (0..nodes_seen).map(|n| format!("node {n}")).collect() };
    let text_of = |key: &str| header.get(key).and_then(Value::as_str).unwrap_or("unknown").to_owned();
    let verdict = match header.get("verdict").and_then(Value::as_str) {
        Some("pass") => Verdict::Pass,
        Some("violation") => Verdict::Violation,
        _ => Verdict::Unknown,
    };
    let report = Report {
        scenario: text_of("scenario"),
        protocol: text_of("protocol"),
        seed: header.get("seed").and_then(Value::as_u64).unwrap_or(0),
        variant: text_of("variant"),
        verdict,
        fingerprint: text_of("fingerprint"),
        replay: text_of("replay"),
        violations: header.get("violations").cloned().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default(),
        explanation: None,
        metrics: vec![("trace events".into(), trace.len().to_string())],
        nodes,
        roles,
        spans,
        heal_ns: header.get("faults_ms").and_then(Value::as_f64).map(|ms| (ms * 1e6) as u64),
        end_ns,
        trace,
        ops,
        window: args.window,
        steps: Vec::new(),
    };
    write_atomic(&args.output, render(&report, &args.output).as_bytes())
}

/// A protocol figure for a report: whole numbers as such, others with two decimals.
fn number(value: f64) -> String {
    if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.2}") }
}
