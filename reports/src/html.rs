//! The HTML report: one self-contained page.

use std::fmt::Write;

use checker::Verdict;

use crate::escape;
use crate::model::{Report, Scene};
use crate::svg;

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1d2330; max-width: 1280px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #dde; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff; font-weight: 600; }
.verdict.pass { background: #2a8a4a; } .verdict.violation { background: #c0392b; } .verdict.unknown { background: #b7791f; }
code, pre { font: 12px/1.4 ui-monospace, monospace; background: #f4f5f8; padding: 1px 4px; border-radius: 3px; }
pre { padding: 8px; overflow-x: auto; }
table { border-collapse: collapse; } td, th { padding: 3px 12px 3px 0; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
svg { display: block; margin: 6px 0; font: 10px sans-serif; }
.lane { stroke: #c8ccd6; } .lanelabel { font-size: 11px; fill: #333; } .tick { stroke: #eef0f4; } .axis { fill: #778; text-anchor: middle; }
.msg { stroke: #4a6fd1; stroke-width: 0.8; } .msg.dup { stroke: #9b59b6; stroke-dasharray: 3 2; }
.drop { fill: #c0392b; font-size: 13px; text-anchor: middle; }
.band { fill: #f2c94c; opacity: 0.22; } .band.set_links { fill: #9bb5f0; }
.nodefault { opacity: 0.55; } .nodefault.crash { fill: #555; } .nodefault.pause { fill: #e67e22; } .nodefault.restart { fill: #2a8a4a; }
.nodefault.clock_jump, .nodefault.clock_drift, .nodefault.clock_offset { fill: #8e44ad; }
.op.ok { fill: #3a9d5d; } .op.fail { fill: #c0392b; } .op.info { fill: #e6a23c; }
.lat.ok { fill: #3a9d5d; opacity: 0.7; } .lat.fail { fill: #c0392b; opacity: 0.7; }
.heal { stroke: #2a8a4a; stroke-dasharray: 4 3; }
.msglabel { font-size: 9px; } .term { fill: #fff; font-size: 10px; }
.legend span { display: inline-block; margin-right: 14px; } .swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: middle; }
"#;

fn verdict_words(verdict: Verdict) -> (&'static str, &'static str) {
    match verdict {
        Verdict::Pass => ("pass", "PASS: no property was violated"),
        Verdict::Violation => ("violation", "VIOLATION: a property did not hold"),
        Verdict::Unknown => ("unknown", "UNKNOWN: the checker's budget ran out"),
    }
}

/// The whole page.
pub fn html(report: &Report) -> String {
    let scene = Scene::from_trace(&report.trace, report.end_ns);
    let (class, words) = verdict_words(report.verdict);
    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>dsim: {} seed {}</title><style>{STYLE}</style></head><body>",
        escape(&report.scenario),
        report.seed
    );
    let _ = write!(
        out,
        r#"<h1>{} <span class="verdict {class}">{words}</span></h1><p>protocol <b>{}</b>, variant <b>{}</b>, seed <b>{}</b>, fingerprint <code>{}</code></p><p>replay: <code>{}</code></p>"#,
        escape(&report.scenario),
        escape(&report.protocol),
        escape(&report.variant),
        report.seed,
        escape(&report.fingerprint),
        escape(&report.replay)
    );
    violation_section(&mut out, report);
    let (from, to) = svg::window(report);
    let _ = write!(
        out,
        r#"<h2>Space-time diagram, {:.1}–{:.1} ms</h2><p class="legend"><span>arrows: messages from send to delivery</span><span>× dropped</span><span>dashed: duplicates</span><span>shaded: partitions and link faults; on a lane: crash (grey), pause (orange), clock (purple)</span></p>"#,
        from as f64 / 1e6,
        to as f64 / 1e6
    );
    out.push_str(r#"<p class="legend">"#);
    for (kind, colour) in crate::model::message_colours(&scene.messages) {
        let _ = write!(out, r#"<span><i class="swatch" style="background:{colour}"></i>{}</span>"#, escape(&kind));
    }
    out.push_str("</p>");
    out.push_str(&svg::space_time(report, &scene));
    if !report.ops.is_empty() {
        out.push_str(r#"<h2>Client operations</h2><p class="legend"><span><i class="swatch op ok" style="background:#3a9d5d"></i>ok</span><span><i class="swatch" style="background:#c0392b"></i>fail</span><span><i class="swatch" style="background:#e6a23c"></i>info (indeterminate)</span><span>shaded: faults</span></p>"#);
        out.push_str(&svg::timeline(report, &scene));
        out.push_str("<h2>Latency over time (log scale)</h2>");
        out.push_str(&svg::latency(report));
    }
    if !report.roles.is_empty() {
        out.push_str(r#"<h2>Roles over time</h2><p class="legend">"#);
        for (role, colour) in crate::model::role_colours(&report.roles) {
            let _ = write!(out, r#"<span><i class="swatch" style="background:{colour}"></i>{}</span>"#, escape(&role));
        }
        if report.roles.iter().any(|r| r.epoch.is_some()) {
            out.push_str("<span>numbers: epochs (terms)</span>");
        }
        out.push_str("</p>");
        out.push_str(&svg::roles(report));
    }
    if !report.spans.is_empty() {
        let overlaps = crate::model::overlaps(&report.spans).len();
        let _ = write!(
            out,
            r#"<h2>Holds over time</h2><p class="legend"><span><i class="swatch" style="background:#2a8a4a"></i>a client believes it holds the lock (from the grant to its release or the end of its validity by its own clock)</span><span><i class="swatch" style="background:#9db7d5"></i>a server's grant is valid</span><span><i class="swatch" style="background:#c0392b"></i>overlap of two clients' beliefs ({overlaps})</span></p>"#
        );
        out.push_str(&svg::spans(report));
    }
    out.push_str("<h2>Metrics</h2><table>");
    for (name, value) in &report.metrics {
        let _ = write!(out, r#"<tr><th>{}</th><td class="num">{}</td></tr>"#, escape(name), escape(value));
    }
    out.push_str("</table></body></html>\n");
    out
}

fn violation_section(out: &mut String, report: &Report) {
    let Some(first) = report.violations.first() else {
        return;
    };
    let _ = write!(out, "<h2>First violation: {}</h2><p>{}</p>", escape(&first.kind), escape(&first.to_string()));
    if let Some(e) = report.explanation.as_ref().filter(|_| first.kind == "linearizability") {
        let _ =
            write!(out, "<p>First operation that cannot be linearized: <code>{}</code></p>", escape(&e.op.to_string()));
        let shown = e.prefix.len().min(10);
        let _ = write!(
            out,
            "<p>Longest linearizable prefix found: {} operations; the last {shown}:</p><pre>",
            e.prefix.len()
        );
        for op in &e.prefix[e.prefix.len() - shown..] {
            let _ = writeln!(out, "{}", escape(&op.to_string()));
        }
        out.push_str("</pre><p>Model states reachable there:</p><pre>");
        for state in &e.states {
            let _ = writeln!(out, "{}", escape(state));
        }
        out.push_str("</pre>");
    }
    for other in &report.violations[1..] {
        let _ = write!(out, "<p>also: {}</p>", escape(&other.to_string()));
    }
}
