//! The SVG pictures: space-time diagram, operation timeline, latency plot, roles.

use std::fmt::Write;

use checker::history::Outcome;

use crate::escape;
use crate::model::{Fault, Message, Report, Scene};

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 110.0;
const LANE: f64 = 26.0;

/// Maps a time to an x coordinate within `[from, to]`.
struct Axis {
    from: u64,
    to: u64,
}

impl Axis {
    fn x(&self, t: u64) -> f64 {
        let span = (self.to - self.from).max(1) as f64;
        LEFT + (t.clamp(self.from, self.to) - self.from) as f64 / span * WIDTH
    }

    fn ticks(&self, out: &mut String, top: f64, bottom: f64) {
        let span_ms = (self.to - self.from) as f64 / 1e6;
        let step_ms = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0]
            .into_iter()
            .find(|s| span_ms / s <= 12.0)
            .unwrap_or(20000.0);
        let first = (self.from as f64 / 1e6 / step_ms).ceil() as u64;
        let mut k = first;
        loop {
            let t_ms = k as f64 * step_ms;
            let t = (t_ms * 1e6) as u64;
            if t > self.to {
                break;
            }
            let x = self.x(t);
            let _ = write!(
                out,
                r#"<line class="tick" x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}"/><text class="axis" x="{x:.1}" y="{:.1}">{t_ms} ms</text>"#,
                bottom + 12.0
            );
            k += 1;
        }
    }
}

/// The window the space-time diagram shows.
pub fn window(report: &Report) -> (u64, u64) {
    if let Some(window) = report.window {
        return window;
    }
    let end = report.end_ns.max(1);
    match report.violations.first().filter(|v| v.t_ns > 0) {
        Some(v) => {
            let from = v.t_ns.saturating_sub(1_000_000_000);
            (from, room_after(v.t_ns, from))
        }
        None => (0, end.min(1_000_000_000)),
    }
}

/// Where a diagram from `from` that shows an instant `t_ns` ends: a little after it, so
/// that a marker there is whole (the run may stop at it).
pub fn room_after(t_ns: u64, from: u64) -> u64 {
    t_ns + t_ns.saturating_sub(from) / 50 + 1_000_000
}

/// What one space-time diagram shows.
pub struct Diagram<'a> {
    /// The element's id and extra class (`causal`, `window`).
    pub id: &'a str,
    pub from: u64,
    pub to: u64,
    pub messages: &'a [Message],
    pub faults: &'a [Fault],
    /// The id of the violation's marker in this diagram.
    pub violation_id: &'a str,
}

/// How many messages a diagram draws with labels; beyond it, arrows only.
const MAX_LABELLED: usize = 4000;
/// How many messages in view still leave room for their labels (a zoomed-in window);
/// more, and labels show only when zoomed in (the page's script) or hovered.
const ROOM_FOR_LABELS: usize = 60;

/// Messages as arrows from send to delivery, drops and duplicates marked, node faults on
/// the lanes with a few words each, partitions as shaded bands naming their sides, the
/// violation and the facts it names marked. Everything inside the plot carries plain
/// coordinates, so the page's script can zoom the time axis (`data-from`, `data-to`).
pub fn space_time(report: &Report, d: &Diagram<'_>) -> String {
    let axis = Axis { from: d.from, to: d.to.max(d.from + 1) };
    let (from, to) = (axis.from, axis.to);
    let lanes = report.nodes.len();
    let height = 30.0 + lanes as f64 * LANE + 30.0;
    let y = |node: usize| 30.0 + node as f64 * LANE + LANE / 2.0;
    let in_view = d.messages.iter().filter(|m| m.delivered_ns.is_some_and(|t| t >= from && t <= to)).count();
    let dense = if in_view > ROOM_FOR_LABELS { " dense" } else { "" };
    let width = LEFT + WIDTH + 20.0;
    let id = d.id;
    let mut out = format!(
        r#"<svg class="spacetime {id}{dense}" id="{id}" data-from="{from}" data-to="{to}" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}">"#
    );
    let colours = crate::model::message_colours(d.messages);
    out.push_str("<defs>");
    let _ = write!(
        out,
        r#"<clipPath id="clip-{id}"><rect x="{LEFT}" y="0" width="{WIDTH}" height="{height:.0}"/></clipPath>"#
    );
    for (k, (_, colour)) in colours.iter().enumerate() {
        let _ = write!(
            out,
            r#"<marker id="arrow-{id}-{k}" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" fill="{colour}"/></marker>"#
        );
    }
    out.push_str("</defs>");
    for (node, label) in report.nodes.iter().enumerate() {
        let _ = write!(
            out,
            r#"<line class="lane" x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/><text class="lanelabel" x="6" y="{:.1}">{}</text>"#,
            y(node),
            LEFT + WIDTH,
            y(node),
            y(node) + 4.0,
            escape(label)
        );
    }
    axis.ticks(&mut out, 20.0, height - 30.0);
    let _ = write!(out, r#"<g class="plot" clip-path="url(#clip-{id})">"#);
    let mut words_end = [0.0; 2];
    for fault in d.faults.iter().filter(|f| f.until_ns >= from && f.from_ns <= to) {
        let (x1, x2) = (axis.x(fault.from_ns), axis.x(fault.until_ns));
        let title = escape(&fault.label);
        if fault.nodes.is_empty() {
            let words = fault.sides(lanes).unwrap_or_else(|| fault.short.clone());
            // Words only where the band has room for them (about 5.5 px a character),
            // in the first of two rows above the lanes where they do not run into an
            // earlier band's words.
            let needed = words.chars().count() as f64 * 5.5 + 4.0;
            let row = (x2 - x1 >= needed).then(|| words_end.iter().position(|end| x1 >= *end)).flatten();
            if let Some(row) = row {
                words_end[row] = x1 + needed;
            }
            let hidden = if row.is_some() { "" } else { r#" style="display:none""# };
            let words_y = 17.0 - 9.0 * row.unwrap_or(0) as f64;
            let _ = write!(
                out,
                r#"<rect class="band {}" x="{x1:.1}" y="20" width="{:.1}" height="{:.1}"><title>{title}: {}</title></rect><text class="bandlabel" x="{:.1}" y="{words_y}"{hidden}>{}</text>"#,
                fault.kind,
                (x2 - x1).max(1.0),
                height - 40.0,
                escape(&words),
                x1 + 2.0,
                escape(&words)
            );
        } else {
            for node in &fault.nodes {
                let _ = write!(
                    out,
                    r#"<rect class="nodefault {}" x="{x1:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>{title}</title></rect><text class="faultlabel" x="{:.1}" y="{:.1}">{}</text>"#,
                    fault.kind,
                    y(*node) - 9.0,
                    (x2 - x1).max(2.0),
                    18.0,
                    x1 + 3.0,
                    y(*node) - 10.5,
                    escape(&fault.short)
                );
            }
        }
    }
    let labelled = d.messages.len() <= MAX_LABELLED;
    for message in d.messages {
        match (message.delivered_ns, &message.dropped) {
            (Some(at), _) if at >= from && message.sent_ns <= to => {
                let class = if message.duplicate { "msg dup" } else { "msg" };
                let k = colours.iter().position(|(kind, _)| *kind == message.kind).unwrap_or(0);
                let colour = colours.get(k).map_or("#4a6fa5", |(_, c)| c);
                let (x1, y1, x2, y2) = (axis.x(message.sent_ns), y(message.from), axis.x(at), y(message.to));
                let contents = if message.contents.is_empty() {
                    String::new()
                } else {
                    format!(": {}", escape(&message.contents))
                };
                let _ = write!(
                    out,
                    r#"<line class="{class}" x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" style="stroke:{colour}" marker-end="url(#arrow-{id}-{k})"><title>{} #{} {}→{}{contents}</title></line>"#,
                    escape(&message.label),
                    message.id,
                    message.from,
                    message.to,
                );
                if labelled {
                    let _ = write!(
                        out,
                        r#"<text class="msglabel" x="{:.1}" y="{:.1}" fill="{colour}">{}</text>"#,
                        (x1 + x2) / 2.0 + 2.0,
                        (y1 + y2) / 2.0 - 2.0,
                        escape(&message.label)
                    );
                }
            }
            (None, Some(reason)) if message.sent_ns >= from && message.sent_ns <= to => {
                let (x, yy) = (axis.x(message.sent_ns), y(message.from));
                let _ = write!(
                    out,
                    r#"<text class="drop" x="{x:.1}" y="{:.1}">×<title>{} #{} to {} dropped: {}</title></text>"#,
                    yy + 4.0,
                    escape(&message.label),
                    message.id,
                    message.to,
                    escape(reason)
                );
            }
            _ => {}
        }
    }
    marks(&mut out, report, &axis, &y);
    violation_marker(&mut out, report, &axis, height, &y, d.violation_id);
    out.push_str("</g></svg>");
    out
}

/// The facts the first violation names, each a dot on its node's lane with a few words.
fn marks(out: &mut String, report: &Report, axis: &Axis, y: &dyn Fn(usize) -> f64) {
    let Some(violation) = report.violations.first() else { return };
    for mark in violation.marks.iter().filter(|m| m.node < report.nodes.len()) {
        if mark.t_ns < axis.from || mark.t_ns > axis.to {
            continue;
        }
        let (x, yy) = (axis.x(mark.t_ns), y(mark.node));
        let label = escape(&mark.label);
        let _ = write!(
            out,
            r##"<circle class="mark" cx="{x:.1}" cy="{yy:.1}" r="5" fill="#e67e22" stroke="#7a3e00"><title>{label} at {:.3} ms</title></circle><text class="marklabel" x="{:.1}" y="{:.1}">{label}</text>"##,
            mark.t_ns as f64 / 1e6,
            x + 7.0,
            yy + 12.0
        );
    }
}

/// The first violation, marked where and when it happened: a ring on its node's lane,
/// or a line across the lanes when it belongs to no node.
fn violation_marker(out: &mut String, report: &Report, axis: &Axis, height: f64, y: &dyn Fn(usize) -> f64, id: &str) {
    let Some(violation) = report.violations.first() else { return };
    if violation.t_ns < axis.from || violation.t_ns > axis.to || violation.t_ns == 0 {
        return;
    }
    let x = axis.x(violation.t_ns);
    let title = escape(&violation.to_string());
    match violation.node.filter(|n| *n < report.nodes.len()) {
        Some(node) => {
            let _ = write!(
                out,
                r##"<circle class="violation" id="{id}" data-t="{}" cx="{x:.1}" cy="{:.1}" r="7" fill="none" stroke="#c0392b" stroke-width="2.5"><title>{title}</title></circle>"##,
                violation.t_ns,
                y(node)
            );
        }
        None => {
            let _ = write!(
                out,
                r##"<line class="violation" id="{id}" data-t="{}" x1="{x:.1}" y1="20" x2="{x:.1}" y2="{:.1}" stroke="#c0392b" stroke-width="2" stroke-dasharray="4 3"><title>{title}</title></line>"##,
                violation.t_ns,
                height - 30.0
            );
        }
    }
}

fn op_lane_labels(report: &Report) -> Vec<u64> {
    let mut processes: Vec<u64> = report.ops.iter().map(|op| op.process).collect();
    processes.sort_unstable();
    processes.dedup();
    processes
}

/// Each operation as a bar from invocation to completion, one lane per process, with
/// the fault intervals shaded behind.
pub fn timeline(report: &Report, scene: &Scene) -> String {
    let axis = Axis { from: 0, to: report.end_ns.max(1) };
    let processes = op_lane_labels(report);
    let lane = 14.0;
    let height = 30.0 + processes.len() as f64 * lane + 30.0;
    let mut out = format!(
        r#"<svg class="timeline" width="{:.0}" height="{height:.0}" viewBox="0 0 {:.0} {height:.0}">"#,
        LEFT + WIDTH + 20.0,
        LEFT + WIDTH + 20.0
    );
    for fault in scene.faults.iter().filter(|f| f.until_ns > f.from_ns) {
        let (x1, x2) = (axis.x(fault.from_ns), axis.x(fault.until_ns));
        let _ = write!(
            out,
            r#"<rect class="band {}" x="{x1:.1}" y="20" width="{:.1}" height="{:.1}"><title>{}</title></rect>"#,
            fault.kind,
            (x2 - x1).max(1.0),
            height - 40.0,
            escape(&fault.label)
        );
    }
    // A run that stopped before its heal (at a violation, say) never healed.
    if let Some(heal) = report.heal_ns.filter(|heal| *heal <= report.end_ns) {
        let x = axis.x(heal);
        let _ = write!(
            out,
            r#"<line class="heal" x1="{x:.1}" y1="14" x2="{x:.1}" y2="{:.1}"/><text class="axis" x="{x:.1}" y="12">heal</text>"#,
            height - 30.0
        );
    }
    axis.ticks(&mut out, 20.0, height - 30.0);
    for op in &report.ops {
        let row = processes.binary_search(&op.process).unwrap_or(0);
        let yy = 30.0 + row as f64 * lane;
        let start = op.invoke_time_ns.unwrap_or(0);
        let end = op.complete_time_ns.unwrap_or(report.end_ns);
        let class = match op.outcome {
            Outcome::Ok => "op ok",
            Outcome::Fail => "op fail",
            Outcome::Info => "op info",
        };
        let (x1, x2) = (axis.x(start), axis.x(end));
        let _ = write!(
            out,
            r#"<rect class="{class}" x="{x1:.1}" y="{yy:.1}" width="{:.1}" height="{:.1}"><title>{}</title></rect>"#,
            (x2 - x1).max(1.5),
            lane - 3.0,
            escape(&op.to_string())
        );
    }
    out.push_str("</svg>");
    out
}

/// Latency of each completed operation over time, on a log scale.
pub fn latency(report: &Report) -> String {
    let axis = Axis { from: 0, to: report.end_ns.max(1) };
    let height = 180.0;
    let (top, bottom) = (20.0, height - 30.0);
    let points: Vec<(u64, f64, &str)> = report
        .ops
        .iter()
        .filter_map(|op| {
            let (start, end) = (op.invoke_time_ns?, op.complete_time_ns?);
            let class = match op.outcome {
                Outcome::Ok => "ok",
                Outcome::Fail => "fail",
                Outcome::Info => return None,
            };
            Some((start, ((end - start) as f64 / 1e6).max(0.01), class))
        })
        .collect();
    let max_ms = points.iter().map(|p| p.1).fold(1.0, f64::max);
    let (low, high) = (0.1f64.log10(), max_ms.log10().ceil().max(1.0));
    let y = |ms: f64| bottom - (ms.log10() - low) / (high - low) * (bottom - top);
    let mut out = format!(
        r#"<svg class="latency" width="{:.0}" height="{height:.0}" viewBox="0 0 {:.0} {height:.0}">"#,
        LEFT + WIDTH + 20.0,
        LEFT + WIDTH + 20.0
    );
    let mut decade = 0.1;
    while decade <= 10f64.powf(high) {
        let yy = y(decade);
        let _ = write!(
            out,
            r#"<line class="tick" x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}"/><text class="axis" x="{:.1}" y="{:.1}">{decade} ms</text>"#,
            LEFT + WIDTH,
            LEFT - 50.0,
            yy + 4.0
        );
        decade *= 10.0;
    }
    axis.ticks(&mut out, top, bottom);
    for (t, ms, class) in points {
        let _ = write!(out, r#"<circle class="lat {class}" cx="{:.1}" cy="{:.1}" r="2"/>"#, axis.x(t), y(ms));
    }
    out.push_str("</svg>");
    out
}

/// The lanes of a per-node chart (one per node named, in id order), its height, and
/// the opening of its `<svg>` element of class `class`.
fn lane_chart(class: &str, nodes: impl Iterator<Item = usize>) -> (Vec<usize>, f64, String) {
    let mut lanes: Vec<usize> = nodes.collect();
    lanes.sort_unstable();
    lanes.dedup();
    let height = 30.0 + lanes.len() as f64 * LANE + 30.0;
    let width = LEFT + WIDTH + 20.0;
    let open = format!(
        r#"<svg class="{class}" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}">"#
    );
    (lanes, height, open)
}

/// Each node's role over time, labelled with its epoch (a term); a lane per node that
/// has roles.
pub fn roles(report: &Report) -> String {
    let axis = Axis { from: 0, to: report.end_ns.max(1) };
    let colours = crate::model::role_colours(&report.roles);
    let (lanes, height, mut out) = lane_chart("roles", report.roles.iter().map(|r| r.node));
    for (lane, &node) in lanes.iter().enumerate() {
        let yy = 30.0 + lane as f64 * LANE;
        let label = report.nodes.get(node).cloned().unwrap_or_else(|| format!("node {node}"));
        let _ = write!(out, r#"<text class="lanelabel" x="6" y="{:.1}">{}</text>"#, yy + 14.0, escape(&label));
        let changes: Vec<_> = report.roles.iter().filter(|r| r.node == node).collect();
        for (i, change) in changes.iter().enumerate() {
            let until = changes.get(i + 1).map_or(report.end_ns, |next| next.t_ns);
            let (x1, x2) = (axis.x(change.t_ns), axis.x(until));
            let colour = colours.iter().find(|(r, _)| *r == change.role).map_or("#ccc", |(_, c)| c);
            let epoch = change.epoch.map(|e| format!(" of epoch {e}")).unwrap_or_default();
            let _ = write!(
                out,
                r#"<rect class="role {}" style="fill:{colour}" x="{x1:.1}" y="{yy:.1}" width="{:.1}" height="20"><title>{}{epoch} from {:.1} ms</title></rect>"#,
                escape(&change.role),
                (x2 - x1).max(1.0),
                escape(&change.role),
                change.t_ns as f64 / 1e6
            );
            if let Some(epoch) = change.epoch
                && x2 - x1 > 24.0
            {
                let _ = write!(out, r#"<text class="term" x="{:.1}" y="{:.1}">{epoch}</text>"#, x1 + 3.0, yy + 14.0);
            }
        }
    }
    axis.ticks(&mut out, 20.0, height - 30.0);
    out.push_str("</svg>");
    out
}

/// Spans on their nodes' lanes (lock beliefs, grants), overlaps of exclusive spans in red.
pub fn spans(report: &Report) -> String {
    let axis = Axis { from: 0, to: report.end_ns.max(1) };
    let (lanes, height, mut out) = lane_chart("spans", report.spans.iter().map(|s| s.node));
    for (from, to) in crate::model::overlaps(&report.spans) {
        let (x1, x2) = (axis.x(from), axis.x(to.min(axis.to)));
        let _ = write!(
            out,
            r##"<rect class="overlap" x="{x1:.1}" y="24" width="{:.1}" height="{:.1}" fill="#c0392b" fill-opacity="0.35"><title>overlap {:.1}–{:.1} ms</title></rect>"##,
            (x2 - x1).max(2.0),
            height - 54.0,
            from as f64 / 1e6,
            to as f64 / 1e6
        );
    }
    for (lane, &node) in lanes.iter().enumerate() {
        let yy = 30.0 + lane as f64 * LANE;
        let label = report.nodes.get(node).cloned().unwrap_or_else(|| format!("node {node}"));
        let _ = write!(out, r#"<text class="lanelabel" x="6" y="{:.1}">{}</text>"#, yy + 14.0, escape(&label));
        for span in report.spans.iter().filter(|s| s.node == node) {
            let (x1, x2) = (axis.x(span.from_ns), axis.x(span.to_ns.min(axis.to)));
            let colour = if span.exclusive { "#2a8a4a" } else { "#9db7d5" };
            let _ = write!(
                out,
                r#"<rect class="span" x="{x1:.1}" y="{yy:.1}" width="{:.1}" height="20" fill="{colour}"><title>{} {:.1}–{:.1} ms</title></rect>"#,
                (x2 - x1).max(1.0),
                escape(&span.label),
                span.from_ns as f64 / 1e6,
                span.to_ns as f64 / 1e6
            );
        }
    }
    axis.ticks(&mut out, 20.0, height - 30.0);
    out.push_str("</svg>");
    out
}
