//! The self-contained HTML page of `dsim compare --html`: the CAP summary per system, the
//! headline figures (median and spread over the seeds), every figure, and each system's
//! operation latencies over time on one shared time axis with the partitions shaded.

use std::fmt::Write as _;

use crate::compare_cmd::{Comparison, FirstRun};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.2}") }
}

/// The median with the spread, or a dash where the system does not measure it.
fn cell(c: &Comparison, name: &str, i: usize, percent: bool) -> String {
    let Some(figure) = c.figure(name) else { return "–".to_owned() };
    let (Some(median), Some(min), Some(max)) = (figure.medians[i], figure.mins[i], figure.maxes[i]) else {
        return "–".to_owned();
    };
    let show = |v: f64| if percent { format!("{:.1}%", 100.0 * v) } else { number(v) };
    if min == max { show(median) } else { format!("{} <small>({}–{})</small>", show(median), show(min), show(max)) }
}

const HEADLINE: [(&str, &str, bool); 12] = [
    ("availability during faults", "availability_during_faults", true),
    ("majority side", "availability_majority_side", true),
    ("minority side", "availability_minority_side", true),
    ("latency p50 ms", "latency_p50_ms", false),
    ("latency p99 ms", "latency_p99_ms", false),
    ("stale reads", "stale_reads", false),
    ("max versions behind", "stale_versions_max", false),
    ("read-your-writes violations", "read_your_writes_violations", false),
    ("monotonic-reads violations", "monotonic_read_violations", false),
    ("lost writes", "lost_writes", false),
    ("acked writes", "acked_writes", false),
    ("convergence ms", "convergence_ms", false),
];

const WIDTH: f64 = 900.0;
const ROW: f64 = 90.0;
const LEFT: f64 = 60.0;

/// One system's latencies over time: answered operations as dots at their latency
/// (log scale), unanswered ones as red crosses along the top; partitions shaded.
fn timeline(run: &FirstRun, end_ms: f64, max_latency: f64, y0: f64, label: &str) -> String {
    let mut svg = String::new();
    let x = |t: f64| LEFT + (t / end_ms).clamp(0.0, 1.0) * (WIDTH - LEFT - 10.0);
    let (top, bottom) = (y0 + 8.0, y0 + ROW - 18.0);
    let y = |ms: f64| {
        let span = max_latency.max(10.0).log10();
        bottom - (ms.max(1.0).log10() / span).clamp(0.0, 1.0) * (bottom - top)
    };
    for (from, to) in &run.partitions {
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="#f4c7c3" opacity="0.6"><title>partition {from:.0}–{to:.0} ms</title></rect>"##,
            x(*from),
            x(*to) - x(*from),
            bottom - top
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{bottom:.1}" x2="{:.1}" y2="{bottom:.1}" stroke="#888"/><text x="4" y="{:.1}" font-size="11">{}</text>"##,
        WIDTH - 10.0,
        top + 12.0,
        escape(label)
    );
    for tick in [1.0, 10.0, 100.0, 1000.0] {
        if tick <= max_latency.max(10.0) {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" font-size="9" fill="#666" text-anchor="end">{tick:.0}</text>"##,
                LEFT - 4.0,
                y(tick) + 3.0
            );
        }
    }
    for (start, latency, answered) in &run.ops {
        if *answered {
            let _ = write!(svg, r##"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="#1f77b4"/>"##, x(*start), y(*latency));
        } else {
            let (cx, cy) = (x(*start), top + 2.0);
            let _ = write!(
                svg,
                r##"<path d="M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}" stroke="#d62728" stroke-width="1.2"/>"##,
                cx - 2.5,
                cy - 2.5,
                cx + 2.5,
                cy + 2.5,
                cx - 2.5,
                cy + 2.5,
                cx + 2.5,
                cy - 2.5
            );
        }
    }
    svg
}

/// The page.
pub fn page(c: &Comparison) -> String {
    let seeds = match (c.seeds.first(), c.seeds.last()) {
        (Some(first), Some(last)) => format!("seeds {first}–{last}"),
        _ => "no seeds".to_owned(),
    };
    let mut html = String::new();
    let title = format!("dsim compare: {}", c.systems.join(" vs "));
    let _ = write!(
        html,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{}</title><style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} th:first-child,td:first-child{{text-align:left}}
small{{color:#666}} li{{margin:4px 0}} .cp{{color:#1f5fa0}} .ap{{color:#a0521f}}
</style></head><body><h1>CP and AP side by side</h1>"#,
        escape(&title)
    );
    let _ = write!(
        html,
        "<p>{} systems, {seeds} ({} runs each); every system saw the first one's fault schedule on {} of {} seeds. \
         Figures: the median over the seeds, with the smallest and largest in brackets.</p><ul>",
        c.systems.len(),
        c.seeds.len(),
        c.same_faults_seeds,
        c.seeds.len()
    );
    for (i, system) in c.systems.iter().enumerate() {
        let v = &c.verdicts[i];
        let class = if c.cap_summary[i].starts_with("CP") { "cp" } else { "ap" };
        let _ = write!(
            html,
            r#"<li><b>{}</b> — <span class="{class}">{}</span> <small>(verdicts: {} pass, {} violation, {} unknown)</small></li>"#,
            escape(system),
            escape(&c.cap_summary[i]),
            v.pass,
            v.violation,
            v.unknown
        );
    }
    html.push_str("</ul><h2>Headline figures</h2><table><tr><th>system</th><th>linearizable</th>");
    for (label, _, _) in HEADLINE {
        let _ = write!(html, "<th>{label}</th>");
    }
    html.push_str("</tr>");
    for (i, system) in c.systems.iter().enumerate() {
        let l = c.linearizable[i];
        let _ = write!(html, "<tr><td>{}</td><td>{} of {}</td>", escape(system), l[0], l.iter().sum::<u64>());
        for (_, name, percent) in HEADLINE {
            let _ = write!(html, "<td>{}</td>", cell(c, name, i, percent));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    if !c.first_runs.is_empty() {
        let end_ms = c.first_runs.iter().map(|r| r.end_ms).fold(1.0, f64::max);
        let max_latency = c.first_runs.iter().flat_map(|r| r.ops.iter().map(|o| o.1)).fold(10.0, f64::max);
        let height = ROW * c.first_runs.len() as f64 + 24.0;
        let _ = write!(
            html,
            "<h2>Latency over time (seed {})</h2><p>Each dot an operation that got an answer, at its start and its \
             latency (ms, log scale); a red cross one that never did; partitions shaded.</p>\
             <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.0}\" role=\"img\">",
            c.seeds.first().copied().unwrap_or(0)
        );
        for (i, run) in c.first_runs.iter().enumerate() {
            html.push_str(&timeline(run, end_ms, max_latency, i as f64 * ROW, &c.systems[i]));
        }
        let axis_y = ROW * c.first_runs.len() as f64 + 14.0;
        for step in 0..=10 {
            let t = end_ms * step as f64 / 10.0;
            let x = LEFT + step as f64 / 10.0 * (WIDTH - LEFT - 10.0);
            let _ = write!(
                html,
                r##"<text x="{x:.1}" y="{axis_y:.1}" font-size="10" text-anchor="middle" fill="#444">{:.1} s</text>"##,
                t / 1000.0
            );
        }
        html.push_str("</svg>");
    }
    html.push_str("<h2>Every figure</h2><table><tr><th>figure</th>");
    for system in &c.systems {
        let _ = write!(html, "<th>{}</th>", escape(system));
    }
    html.push_str("</tr>");
    for figure in &c.figures {
        let _ = write!(html, "<tr><td>{}</td>", escape(&figure.name));
        for i in 0..c.systems.len() {
            let _ = write!(html, "<td>{}</td>", cell(c, &figure.name, i, false));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table></body></html>\n");
    html
}
