//! The self-contained HTML page of `dsim compare --html`: a title for the kind of
//! comparison, the lead sentences (who did better on what), the setup, each system's
//! behaviour and verdicts with the first failing seed's replay command, the headline
//! figures of that kind (median and spread over the seeds), each system's operation
//! latencies over time with the partitions shaded, and every figure. Wide tables scroll
//! inside their box, so the page fits a 1,300-pixel window.

use std::fmt::Write as _;

use crate::compare_cmd::{Comparison, FirstRun, Verdicts};
use crate::compare_text::Kind;

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

/// A headline column: its heading, the figure it shows, and whether it is a share.
type Column = (&'static str, &'static str, bool);

/// The headline columns of each kind of comparison.
fn headline(kind: Kind) -> &'static [Column] {
    match kind {
        Kind::Kv => &[
            ("answered, minority side", "availability_minority_side", true),
            ("answered, majority side", "availability_majority_side", true),
            ("latency p50 ms", "latency_p50_ms", false),
            ("latency p99 ms", "latency_p99_ms", false),
            ("stale reads", "stale_reads", false),
            ("lost writes", "lost_writes", false),
            ("acked writes", "acked_writes", false),
            ("read-your-writes violations", "read_your_writes_violations", false),
            ("monotonic-reads violations", "monotonic_read_violations", false),
            ("convergence ms", "convergence_ms", false),
        ],
        Kind::Locks => &[
            ("messages per acquisition", "messages_per_acquisition", false),
            ("acquisitions per s", "acquisitions_per_s", false),
            ("acquisition p99 ms", "acquisition_latency_p99_ms", false),
            ("longest stuck ms", "stuck_ms_longest", false),
            ("stuck ms in all", "stuck_ms_total", false),
            ("late writes refused by fencing", "storage_refusals", false),
            ("overlaps fencing caught", "overlaps_with_fencing", false),
        ],
        Kind::Transactions => &[
            ("commits per s", "commits_per_s", false),
            ("abort rate", "abort_rate", true),
            ("in doubt p50 ms", "in_doubt_ms_p50", false),
            ("in doubt p99 ms", "in_doubt_ms_p99", false),
            ("in doubt max ms", "in_doubt_ms_max", false),
            ("blocked p50 ms", "blocked_ms_p50", false),
            ("blocked p99 ms", "blocked_ms_p99", false),
            ("blocked max ms", "blocked_ms_max", false),
            ("messages per transaction", "messages_per_txn", false),
            ("message delays p50", "message_delays_p50", false),
            ("forced writes per transaction", "forced_writes_per_txn", false),
        ],
        Kind::Generic => &[
            ("latency p50 ms", "latency_p50_ms", false),
            ("latency p99 ms", "latency_p99_ms", false),
            ("messages sent", "messages_sent", false),
            ("events", "events", false),
        ],
    }
}

/// A system's verdicts in a table cell: the counts, violations by kind, and the first
/// failing seed with the command that replays it.
fn verdict_cell(v: &Verdicts) -> String {
    let mut cell = format!("{} pass, {} violation, {} unknown", v.pass, v.violation, v.unknown);
    if !v.kinds.is_empty() {
        let kinds: Vec<String> = v.kinds.iter().map(|(k, n)| format!("{n} {}", escape(k))).collect();
        let _ = write!(cell, "<br><small>{}</small>", kinds.join(", "));
    }
    if let (Some((seed, _)), Some(replay)) = (&v.first_failure, &v.first_failure_replay) {
        let _ = write!(cell, "<br><small>first: seed {seed}, <code>{}</code></small>", escape(replay));
    }
    cell
}

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
    let _ = write!(
        html,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>{}</title><style>
body{{font-family:system-ui,sans-serif;margin:24px auto;max-width:1240px;padding:0 16px;color:#222;line-height:1.4}}
table{{border-collapse:collapse;font-size:13px}} td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}}
th{{background:#f4f4f4;max-width:12em}} th:first-child,td:first-child{{text-align:left}}
small{{color:#666}} li{{margin:6px 0}} .cp{{color:#1f5fa0}} .ap{{color:#a0521f}} .neither{{color:#8a1f1f}}
.scroll{{overflow-x:auto;max-width:100%}} .lead p{{font-size:17px;margin:6px 0}} .setup{{color:#444;font-size:14px}}
code{{font-size:12px;background:#f4f4f4;padding:0 3px}}
</style></head><body><h1>{}</h1><p class="systems"><small>{}</small></p><div class="lead">"#,
        escape(&format!("dsim compare: {}", c.labels.join(" vs "))),
        escape(c.kind.title()),
        escape(&c.labels.join(" · "))
    );
    for sentence in &c.lead {
        let _ = write!(html, "<p>{}</p>", escape(sentence));
    }
    let _ = write!(
        html,
        "</div><p class=\"setup\">{} {} systems, {seeds} ({} runs each); every system saw the first one's fault \
         schedule on {} of {} seeds. Figures: the median over the seeds, with the smallest and largest in \
         brackets.</p><h2>Systems</h2><ul>",
        escape(&c.setup),
        c.systems.len(),
        c.seeds.len(),
        c.same_faults_seeds,
        c.seeds.len()
    );
    for (i, label) in c.labels.iter().enumerate() {
        let behaviour = &c.cap_summary[i];
        let class = if behaviour.starts_with("CP") {
            "cp"
        } else if behaviour.starts_with("AP") {
            "ap"
        } else {
            "neither"
        };
        let said = if behaviour.is_empty() {
            String::new()
        } else {
            format!(r#" — <span class="{class}">{}</span>"#, escape(behaviour))
        };
        let cluster = if c.clusters.iter().all(|k| *k == c.clusters[0]) {
            String::new()
        } else {
            format!(" <small>({})</small>", escape(&c.clusters[i]))
        };
        let _ = write!(
            html,
            "<li><b>{}</b>{cluster}{said}<br><small>{}</small></li>",
            escape(label),
            verdict_cell(&c.verdicts[i])
        );
    }
    html.push_str("</ul><h2>Headline figures</h2><div class=\"scroll\"><table><tr><th>system</th><th>verdicts</th>");
    if c.kind == Kind::Kv {
        html.push_str("<th>linearizable</th>");
    }
    for (label, _, _) in headline(c.kind) {
        let _ = write!(html, "<th>{label}</th>");
    }
    html.push_str("</tr>");
    for (i, label) in c.labels.iter().enumerate() {
        let v = &c.verdicts[i];
        let _ = write!(html, "<tr><td>{}</td><td>{} of {} pass</td>", escape(label), v.pass, c.seeds.len());
        if c.kind == Kind::Kv {
            let l = c.linearizable[i];
            let _ = write!(html, "<td>{} of {}</td>", l[0], l.iter().sum::<u64>());
        }
        for (_, name, percent) in headline(c.kind) {
            let _ = write!(html, "<td>{}</td>", cell(c, name, i, *percent));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table></div>");
    if !c.first_runs.is_empty() {
        let end_ms = c.first_runs.iter().map(|r| r.end_ms).fold(1.0, f64::max);
        let max_latency = c.first_runs.iter().flat_map(|r| r.ops.iter().map(|o| o.1)).fold(10.0, f64::max);
        let height = ROW * c.first_runs.len() as f64 + 24.0;
        let _ = write!(
            html,
            "<h2>Latency over time (seed {})</h2><p>Each dot an operation that got an answer, at its start and its \
             latency (ms, log scale); a red cross one that never did; partitions shaded.</p>\
             <div class=\"scroll\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.0}\" role=\"img\">",
            c.seeds.first().copied().unwrap_or(0)
        );
        for (i, run) in c.first_runs.iter().enumerate() {
            html.push_str(&timeline(run, end_ms, max_latency, i as f64 * ROW, &c.labels[i]));
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
        html.push_str("</svg></div>");
    }
    html.push_str("<h2>Every figure</h2><div class=\"scroll\"><table><tr><th>figure</th>");
    for label in &c.labels {
        let _ = write!(html, "<th>{}</th>", escape(label));
    }
    html.push_str("</tr>");
    for figure in &c.figures {
        let _ = write!(html, "<tr><td>{}</td>", escape(&figure.name.replace('_', " ")));
        for i in 0..c.systems.len() {
            let _ = write!(html, "<td>{}</td>", cell(c, &figure.name, i, false));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table></div></body></html>\n");
    html
}
