//! The Markdown report: the HTML report's content minus the pictures.

use std::fmt::Write;

use checker::Verdict;
use checker::history::Outcome;

use crate::model::{Report, Scene};

/// The report as Markdown.
pub fn markdown(report: &Report) -> String {
    let verdict = match report.verdict {
        Verdict::Pass => "PASS",
        Verdict::Violation => "VIOLATION",
        Verdict::Unknown => "UNKNOWN",
    };
    let mut out = format!("# {}: {verdict}\n\n", report.scenario);
    let _ = writeln!(
        out,
        "- protocol: {}\n- variant: {}\n- seed: {}\n- fingerprint: `{}`\n- replay: `{}`\n",
        report.protocol, report.variant, report.seed, report.fingerprint, report.replay
    );
    if let Some(first) = report.violations.first() {
        let _ = writeln!(out, "## First violation\n\n{first}\n");
        for mark in &first.marks {
            let _ = writeln!(out, "- it names: {} (node {}, {:.3} ms)", mark.label, mark.node, mark.t_ns as f64 / 1e6);
        }
        if !first.marks.is_empty() {
            out.push('\n');
        }
        if let Some(e) = report.explanation.as_ref().filter(|_| first.kind == "linearizability") {
            let _ = writeln!(out, "First operation that cannot be linearized: `{}`\n", e.op);
            let shown = e.prefix.len().min(10);
            let _ =
                writeln!(out, "Longest linearizable prefix found: {} operations; the last {shown}:\n", e.prefix.len());
            for op in &e.prefix[e.prefix.len() - shown..] {
                let _ = writeln!(out, "- `{op}`");
            }
            let _ = writeln!(
                out,
                "\nModel states reachable there: {}\n",
                e.states.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            );
        }
        for other in &report.violations[1..] {
            let _ = writeln!(out, "Also: {other}\n");
        }
    }
    out.push_str("## Metrics\n\n| metric | value |\n|---|---:|\n");
    for (name, value) in &report.metrics {
        let _ = writeln!(out, "| {name} | {value} |");
    }
    let count = |o: Outcome| report.ops.iter().filter(|op| op.outcome == o).count();
    let _ = writeln!(
        out,
        "\n## Operations\n\n| ok | fail | info |\n|---:|---:|---:|\n| {} | {} | {} |",
        count(Outcome::Ok),
        count(Outcome::Fail),
        count(Outcome::Info)
    );
    let scene = Scene::from_trace(&report.trace, report.end_ns);
    if !scene.faults.is_empty() {
        out.push_str("\n## Faults\n\n| from ms | until ms | fault |\n|---:|---:|---|\n");
        for fault in &scene.faults {
            let words =
                fault.sides(report.nodes.len()).map_or_else(|| fault.label.clone(), |s| format!("partition {s}"));
            let _ = writeln!(
                out,
                "| {:.1} | {:.1} | `{}` |",
                fault.from_ns as f64 / 1e6,
                fault.until_ns as f64 / 1e6,
                // A bar inside a table cell must be escaped, even in code.
                words.replace('|', "\\|")
            );
        }
    }
    out
}
