//! `dsim check --report FILE.html`: a self-contained page of one check.
//!
//! Operations are bars on a time axis (the history's entry positions: the order the
//! history records, which is real-time order), one lane per process. For a violation the
//! page shows the failing partition only, in a window around the operation that cannot be
//! linearized: the longest linearizable prefix found, numbered in linearization order with
//! a point for each inside its bar (the earliest points that respect that order), the
//! operation that cannot be placed in red, and the model states there. The size stays
//! bounded whatever the history's: at most [`OPS_MAX`] operations are drawn.

use std::fmt::Write as _;
use std::path::Path;

use checker::{Op, Outcome};
use reports::escape;

use crate::check_cmd::Checked;

/// The most operations a page draws.
const OPS_MAX: usize = 400;
/// Prefix operations before the failing one that the window keeps.
const PREFIX_SHOWN: usize = 40;

/// Writes the page for `checked` to `path`, atomically.
pub fn write(path: &Path, checked: &Checked) -> Result<(), String> {
    crate::output::write_atomic(path, page(checked).as_bytes())
}

/// The operations drawn, and the linearization order of those in the prefix.
struct Shown<'a> {
    ops: Vec<(usize, &'a Op)>,
    /// History index of each prefix operation, in linearization order.
    prefix: Vec<usize>,
    failing: Option<usize>,
    note: String,
}

fn shown(checked: &Checked) -> Shown<'_> {
    let history = &checked.history;
    let live = |op: &Op| op.outcome != Outcome::Fail;
    let Some(e) = &checked.report.explanation else {
        let ops: Vec<(usize, &Op)> = history.ops.iter().enumerate().filter(|(_, op)| live(op)).collect();
        let total = ops.len();
        let ops: Vec<(usize, &Op)> = ops.into_iter().take(OPS_MAX).collect();
        let note = if total > ops.len() {
            format!("the first {} of {total} operations", ops.len())
        } else {
            format!("all {total} operations")
        };
        return Shown { ops, prefix: Vec::new(), failing: None, note };
    };
    // Explanations name operations by their input entries; find them in the history.
    let find = |summary: &checker::OpSummary| {
        history.ops.iter().position(|op| op.invoke_index == summary.invoke_index).expect("the explanation's op")
    };
    let failing = find(&e.op);
    let prefix: Vec<usize> = e.prefix.iter().map(find).collect();
    let in_partition = |op: &Op| match &e.partition {
        Some(key) => op.key.as_ref().is_some_and(|k| k.to_string() == *key),
        None => true,
    };
    let shown_prefix = &prefix[prefix.len().saturating_sub(PREFIX_SHOWN)..];
    let lo = shown_prefix.iter().chain([&failing]).map(|i| history.ops[*i].invoke_index).min().unwrap_or(0);
    let failing_op = &history.ops[failing];
    let hi = failing_op.complete_index.unwrap_or(failing_op.invoke_index);
    let mut ops: Vec<(usize, &Op)> = history
        .ops
        .iter()
        .enumerate()
        .filter(|(_, op)| live(op) && in_partition(op))
        .filter(|(_, op)| op.invoke_index <= hi && op.complete_index.is_none_or(|c| c >= lo))
        .collect();
    let total = ops.len();
    if ops.len() > OPS_MAX {
        // Keep the operations nearest the failing one.
        ops.sort_by_key(|(_, op)| hi.abs_diff(op.invoke_index));
        ops.truncate(OPS_MAX);
        ops.sort_by_key(|(i, _)| *i);
    }
    let place = match &e.partition {
        Some(key) => format!("key {key}"),
        None => "the history".to_owned(),
    };
    let note = format!(
        "{} of {total} operations of {place} that overlap entries {lo}..{hi}, the last {} of the {}-operation prefix and the failing one",
        ops.len(),
        shown_prefix.len(),
        prefix.len()
    );
    Shown { ops, prefix: shown_prefix.to_vec(), failing: Some(failing), note }
}

fn page(checked: &Checked) -> String {
    let report = &checked.report;
    let shown = shown(checked);
    let verdict = report.verdict.describe();
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>dsim check: {}</title>\n\
         <style>body{{font:14px sans-serif;margin:16px;max-width:1200px}}svg{{max-width:100%;height:auto}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left;font:12px monospace}}\
         .bad{{color:#b00}}</style></head><body>\n",
        escape(&checked.file)
    );
    let _ = writeln!(html, "<h1>{}: {verdict}</h1>", escape(&checked.file));
    let _ = writeln!(
        html,
        "<p>{} operations against {}, {} partition(s), {} search steps; parse {:.3} s, check {:.3} s.</p>",
        report.ops, report.model, report.partitions, report.steps, checked.parse_s, checked.check_s
    );
    if let Some(reason) = &report.unknown_reason {
        let _ = writeln!(html, "<p>Gave up: {}.</p>", escape(reason));
    }
    if let Some(e) = &report.explanation {
        let _ = writeln!(
            html,
            "<p class=\"bad\">First operation that cannot be linearized: {}</p>",
            escape(&e.op.to_string())
        );
        if let Some(key) = &e.partition {
            let _ = writeln!(html, "<p>In the sub-history of key {}.</p>", escape(key));
        }
    }
    let _ = writeln!(html, "<p>Shown: {}.</p>", escape(&shown.note));
    html.push_str(&diagram(&shown));
    if let Some(e) = &report.explanation {
        let _ = writeln!(html, "<h2>Model states where it had to take effect</h2><ul>");
        for state in &e.states {
            let _ = writeln!(html, "<li><code>{}</code></li>", escape(state));
        }
        let _ = writeln!(
            html,
            "</ul><h2>Longest linearizable prefix found ({} operations), the last {}</h2>",
            e.prefix.len(),
            shown.prefix.len()
        );
        let _ = writeln!(html, "<table><tr><th>#</th><th>operation</th></tr>");
        let first = e.prefix.len() - shown.prefix.len();
        for (n, op) in e.prefix[first..].iter().enumerate() {
            let _ = writeln!(html, "<tr><td>{}</td><td>{}</td></tr>", first + n + 1, escape(&op.to_string()));
        }
        let _ = writeln!(
            html,
            "<tr class=\"bad\"><td>—</td><td>{} (cannot be placed)</td></tr></table>",
            escape(&e.op.to_string())
        );
    }
    html.push_str("</body></html>\n");
    html
}

fn diagram(shown: &Shown<'_>) -> String {
    if shown.ops.is_empty() {
        return String::new();
    }
    let end = |op: &Op| op.complete_index.unwrap_or(op.invoke_index + 1);
    let lo = shown.ops.iter().map(|(_, op)| op.invoke_index).min().unwrap_or(0);
    let hi = shown.ops.iter().map(|(_, op)| end(op)).max().unwrap_or(lo + 1).max(lo + 1);
    let mut processes: Vec<u64> = shown.ops.iter().map(|(_, op)| op.process).collect();
    processes.sort_unstable();
    processes.dedup();
    let (left, width, lane) = (90.0, 1000.0, 22.0);
    let x = |index: usize| left + (index - lo) as f64 * width / (hi - lo) as f64;
    let height = 40.0 + lane * processes.len() as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {height}\" width=\"{}\" role=\"img\">\n",
        left + width + 20.0,
        left + width + 20.0
    );
    let _ = writeln!(svg, "<text x=\"{left}\" y=\"14\" font-size=\"11\">history entries {lo} to {hi} →</text>");
    let y_of = |process: u64| 24.0 + lane * processes.binary_search(&process).unwrap_or(0) as f64;
    for process in &processes {
        let _ =
            writeln!(svg, "<text x=\"4\" y=\"{}\" font-size=\"11\">process {process}</text>", y_of(*process) + 13.0);
    }
    // Linearization points: the earliest that respect the order and each bar's span.
    let mut points: Vec<(u64, f64)> = Vec::new();
    let mut at = lo as f64;
    for index in &shown.prefix {
        if let Some((_, op)) = shown.ops.iter().find(|(i, _)| i == index) {
            at = at.max(op.invoke_index as f64 + 0.5).min(end(op) as f64 - 0.25);
            points.push((op.process, at));
            at += 0.01;
        }
    }
    for (index, op) in &shown.ops {
        let y = y_of(op.process);
        let failing = shown.failing == Some(*index);
        let in_prefix = shown.prefix.contains(index);
        let fill = if failing {
            "#e66"
        } else if in_prefix {
            "#8c8"
        } else if op.outcome == Outcome::Info {
            "#ddd"
        } else {
            "#9bd"
        };
        let (x0, x1) = (x(op.invoke_index), x(end(op)));
        let label = format!("{} {} → {}", op.f, op.value, op.result);
        let _ = writeln!(
            svg,
            "<rect x=\"{x0:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\" fill=\"{fill}\" stroke=\"#555\"><title>{}</title></rect>",
            (x1 - x0).max(2.0),
            lane - 6.0,
            escape(&format!(
                "line {}: {label}{}",
                op.invoke_line,
                if op.complete_index.is_none() { " (never completed)" } else { "" }
            ))
        );
        if x1 - x0 > 60.0 {
            let short: String = label.chars().take(((x1 - x0) / 6.5) as usize).collect();
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\">{}</text>",
                x0 + 3.0,
                y + 11.0,
                escape(&short)
            );
        }
    }
    for (n, (process, point)) in points.iter().enumerate() {
        let (cx, cy) = (left + (point - lo as f64) * width / (hi - lo) as f64, y_of(*process) + 8.0);
        let _ = writeln!(
            svg,
            "<circle cx=\"{cx:.1}\" cy=\"{cy}\" r=\"3\" fill=\"#060\"><title>linearized {} of the prefix shown</title></circle>",
            n + 1
        );
    }
    svg.push_str("</svg>\n");
    svg
}
