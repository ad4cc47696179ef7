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
svg { max-width: 100%; height: auto; }
.bandlabel { font-size: 10px; fill: #8a6d00; } .faultlabel { font-size: 9px; fill: #5b2c6f; }
.marklabel { font-size: 10px; fill: #7a3e00; font-weight: 600; } .dense .msglabel { display: none; }
.note { color: #555; } a.violation-link { color: #c0392b; }
.zoombar { margin: 4px 0; } .zoombar button { font: 12px system-ui, sans-serif; margin-right: 4px; padding: 1px 8px; }
.zoombar span { color: #778; margin-left: 8px; }
"#;

/// Zooming the space-time diagrams' time axis, and jumping to the violation. The page
/// reads the same without it: it only rescales coordinates already drawn.
const SCRIPT: &str = r#"(function () {
  var LEFT = 110, WIDTH = 1100, ROOM = 60;
  var STEPS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000];
  function Zoom(svg) {
    var self = this;
    this.svg = svg;
    this.from = +svg.getAttribute('data-from');
    this.to = +svg.getAttribute('data-to');
    this.a = this.from; this.b = this.to;
    this.height = +svg.getAttribute('height');
    this.plot = svg.querySelector('g.plot');
    this.items = [];
    Array.prototype.forEach.call(svg.querySelectorAll('.tick, .axis'), function (el) { el.remove(); });
    Array.prototype.forEach.call(this.plot.children, function (el) {
      var item = { el: el };
      ['x', 'x1', 'x2', 'cx', 'width'].forEach(function (name) {
        if (el.hasAttribute(name)) item[name] = +el.getAttribute(name);
      });
      self.items.push(item);
    });
    this.ns = svg.namespaceURI;
    this.ticks = document.createElementNS(this.ns, 'g');
    svg.insertBefore(this.ticks, this.plot);
    var bar = document.createElement('div');
    bar.className = 'zoombar';
    function button(text, title, action) {
      var b = document.createElement('button');
      b.type = 'button'; b.textContent = text; b.title = title;
      b.addEventListener('click', action);
      bar.appendChild(b);
    }
    button('−', 'zoom out', function () { self.scale(2); });
    button('+', 'zoom in', function () { self.scale(0.5); });
    button('←', 'earlier', function () { self.shift(-0.5); });
    button('→', 'later', function () { self.shift(0.5); });
    button('all', 'the whole diagram', function () { self.show(self.from, self.to); });
    if (svg.querySelector('.violation')) button('violation', 'zoom to the violation', function () { self.toViolation(); });
    this.label = document.createElement('span');
    bar.appendChild(this.label);
    svg.parentNode.insertBefore(bar, svg);
    this.show(this.a, this.b);
  }
  Zoom.prototype.show = function (a, b) {
    var min = 50000;
    if (b - a < min) { var c = (a + b) / 2; a = c - min / 2; b = c + min / 2; }
    if (a < this.from) { b += this.from - a; a = this.from; }
    if (b > this.to) { a -= b - this.to; b = this.to; }
    a = Math.max(a, this.from);
    this.a = a; this.b = b;
    var k = (this.to - this.from) / (b - a), shift = (this.from - a) * WIDTH / (b - a);
    var map = function (x) { return LEFT + (x - LEFT) * k + shift; };
    var visible = 0, wordsEnd = [0, 0];
    this.items.forEach(function (item) {
      var c = item.el.getAttribute('class') || '';
      ['x', 'x1', 'x2', 'cx'].forEach(function (name) {
        if (name in item) item.el.setAttribute(name, map(item[name]).toFixed(1));
      });
      if ('width' in item) item.el.setAttribute('width', Math.max(item.width * k, item.width).toFixed(1));
      if (c === 'bandlabel') {
        // A side's words at the band's visible start, shown when the band has room.
        var band = item.el.previousElementSibling, x = map(item.x), width = band ? +band.getAttribute('width') : 0;
        item.el.style.display = '';
        var left = Math.max(x, LEFT + 2), room = x + width - left, needed = item.el.getComputedTextLength() + 4;
        var row = room > needed ? (left >= wordsEnd[0] ? 0 : left >= wordsEnd[1] ? 1 : -1) : -1;
        item.el.setAttribute('x', left.toFixed(1));
        item.el.style.display = row >= 0 ? '' : 'none';
        if (row >= 0) { wordsEnd[row] = left + needed; item.el.setAttribute('y', 17 - 9 * row); }
      }
      if (c.indexOf('msg') === 0) {
        var x1 = map(item.x1), x2 = map(item.x2);
        if (Math.min(x1, x2) <= LEFT + WIDTH && Math.max(x1, x2) >= LEFT) visible += 1;
      }
    });
    this.svg.classList.toggle('dense', visible > ROOM);
    this.drawTicks();
    this.label.textContent = (a / 1e6).toFixed(2) + '–' + (b / 1e6).toFixed(2) + ' ms, ' + visible + ' messages' +
      (visible > ROOM ? ' (zoom in for their labels)' : '');
    return visible;
  };
  Zoom.prototype.scale = function (f) {
    var c = (this.a + this.b) / 2, half = (this.b - this.a) * f / 2;
    this.show(c - half, c + half);
  };
  Zoom.prototype.shift = function (f) {
    var d = (this.b - this.a) * f;
    this.show(this.a + d, this.b + d);
  };
  // Zooms to `t` (at 85% of the view), as wide as leaves room for message labels.
  Zoom.prototype.zoomTo = function (t) {
    var span = Math.max(this.to - this.from, 50000);
    while (this.show(t - 0.85 * span, t + 0.15 * span) > ROOM && span > 100000) span /= 2;
  };
  Zoom.prototype.toViolation = function () {
    this.zoomTo(+this.svg.querySelector('.violation').getAttribute('data-t'));
  };
  Zoom.prototype.drawTicks = function () {
    while (this.ticks.firstChild) this.ticks.removeChild(this.ticks.firstChild);
    var spanMs = (this.b - this.a) / 1e6, step = STEPS[STEPS.length - 1];
    for (var i = 0; i < STEPS.length; i++) if (spanMs / STEPS[i] <= 12) { step = STEPS[i]; break; }
    var bottom = this.height - 30;
    for (var k = Math.ceil(this.a / 1e6 / step); k * step * 1e6 <= this.b; k++) {
      var ms = k * step, x = LEFT + (ms * 1e6 - this.a) / (this.b - this.a) * WIDTH;
      var line = document.createElementNS(this.ns, 'line');
      line.setAttribute('class', 'tick');
      line.setAttribute('x1', x.toFixed(1)); line.setAttribute('x2', x.toFixed(1));
      line.setAttribute('y1', 20); line.setAttribute('y2', bottom);
      this.ticks.appendChild(line);
      var text = document.createElementNS(this.ns, 'text');
      text.setAttribute('class', 'axis');
      text.setAttribute('x', x.toFixed(1)); text.setAttribute('y', bottom + 12);
      text.textContent = +ms.toFixed(3) + ' ms';
      this.ticks.appendChild(text);
    }
  };
  var zooms = [];
  Array.prototype.forEach.call(document.querySelectorAll('svg.spacetime'), function (svg) { zooms.push(new Zoom(svg)); });
  window.dsimZooms = zooms;
  var first = zooms[0];
  var causal = first && first.svg.id === 'causal' ? first : null;
  var link = document.querySelector('a.violation-link');
  if (link && first && first.svg.querySelector('.violation')) {
    link.addEventListener('click', function (event) {
      event.preventDefault(); first.toViolation(); first.svg.scrollIntoView({ block: 'center' });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll('a.mark-link'), function (a) {
    if (!causal) return;
    a.addEventListener('click', function (event) {
      event.preventDefault(); causal.zoomTo(+a.getAttribute('data-t')); causal.svg.scrollIntoView({ block: 'center' });
    });
  });
  // The causal past opens on the chain of messages just before the violation.
  if (causal) causal.toViolation();
})();"#;

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
    diagrams(&mut out, report, &scene);
    fault_table(&mut out, report, &scene);
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
    out.push_str("</table>");
    let _ = write!(out, "<script>//<![CDATA[\n{SCRIPT}\n//]]></script>");
    out.push_str("</body></html>\n");
    out
}

/// The space-time diagrams: the violation's causal past first (when it has one), then
/// the messages of a time window.
fn diagrams(out: &mut String, report: &Report, scene: &Scene) {
    let legend = |out: &mut String, messages: &[crate::model::Message]| {
        out.push_str(r#"<p class="legend">"#);
        for (kind, colour) in crate::model::message_colours(messages) {
            let _ = write!(out, r#"<span><i class="swatch" style="background:{colour}"></i>{}</span>"#, escape(&kind));
        }
        out.push_str("</p>");
    };
    let violated = if report.violations.is_empty() {
        ""
    } else {
        r#"<span><i class="swatch" style="background:#e67e22;border-radius:5px"></i>a fact the violation names</span><span><i class="swatch" style="border:2px solid #c0392b;border-radius:6px"></i>the violation</span>"#
    };
    let keys = format!(
        r#"<p class="legend"><span>arrows: messages from send to delivery, labelled when zoomed in; hover for contents</span><span>× dropped</span><span>dashed: duplicates</span><span>shaded: partitions (their sides named) and link faults; on a lane: crash (grey), pause (orange), clock (purple)</span>{violated}</p>"#
    );
    let keys = keys.as_str();
    if let Some(first) = report.violations.first() {
        let steps_owned;
        let steps = if report.steps.is_empty() {
            steps_owned = crate::causal::steps_of(&report.trace);
            &steps_owned
        } else {
            &report.steps
        };
        let past = first
            .node
            .filter(|_| first.t_ns > 0)
            .and_then(|node| crate::causal::causal_past(steps, node, first.t_ns, &scene.messages));
        match past {
            Some(past) => {
                let skipped = past.messages.len().saturating_sub(MAX_CAUSAL);
                let drawn = &past.messages[skipped..];
                let start = drawn.iter().map(|m| m.sent_ns).min().unwrap_or(0);
                let start = if skipped > 0 { start } else { first.marks.iter().map(|m| m.t_ns).fold(start, u64::min) };
                let end = svg::room_after(first.t_ns, start);
                let _ = write!(
                    out,
                    r#"<h2 id="causal-past">Causal past of the violation, {:.1}–{:.1} ms</h2><p class="note">Only what happens before the violation (Lamport's relation over sends, deliveries and each node's steps), over the whole run: {} of the run's {} events up to it are in its past, carried by {} messages; <b>{} events that could not have influenced it are hidden</b>.{}</p>"#,
                    start as f64 / 1e6,
                    end as f64 / 1e6,
                    past.events_in_past,
                    past.events_before,
                    past.messages.len(),
                    past.hidden(),
                    if skipped > 0 {
                        format!(" The {skipped} earliest messages of the past are not drawn.")
                    } else {
                        String::new()
                    }
                );
                out.push_str(keys);
                legend(out, drawn);
                let diagram = svg::Diagram {
                    id: "causal",
                    from: start,
                    to: end,
                    messages: drawn,
                    faults: &scene.faults,
                    violation_id: "violation",
                };
                out.push_str(&svg::space_time(report, &diagram));
            }
            None => {
                let why = if first.node.is_none() || first.t_ns == 0 {
                    "it is judged over the run as a whole (no single node's event breaks it)"
                } else {
                    "its node has no recorded event before it"
                };
                let _ = write!(out, r#"<p class="note">This violation has no causal past to show: {why}.</p>"#);
            }
        }
    }
    let (from, to) = svg::window(report);
    let _ =
        write!(out, "<h2 id=\"messages\">Space-time diagram, {:.1}–{:.1} ms</h2>", from as f64 / 1e6, to as f64 / 1e6);
    out.push_str(keys);
    legend(out, &scene.messages);
    let id = if report.violations.first().is_some_and(|v| v.node.is_some() && v.t_ns > 0) {
        "violation-window"
    } else {
        "violation"
    };
    let diagram =
        svg::Diagram { id: "window", from, to, messages: &scene.messages, faults: &scene.faults, violation_id: id };
    out.push_str(&svg::space_time(report, &diagram));
}

/// The most messages a causal past diagram draws (the latest ones).
const MAX_CAUSAL: usize = 20_000;

/// Every fault with its times, in words.
fn fault_table(out: &mut String, report: &Report, scene: &Scene) {
    if scene.faults.is_empty() {
        return;
    }
    out.push_str(r#"<h2>Faults</h2><table class="faults"><tr><th>from ms</th><th>until ms</th><th>fault</th></tr>"#);
    for fault in &scene.faults {
        let words = match fault.sides(report.nodes.len()) {
            Some(sides) => format!("partition {sides}"),
            None => fault.label.clone(),
        };
        let until =
            if fault.until_ns == fault.from_ns { String::new() } else { format!("{:.1}", fault.until_ns as f64 / 1e6) };
        let _ = write!(
            out,
            r#"<tr><td class="num">{:.1}</td><td class="num">{until}</td><td>{}</td></tr>"#,
            fault.from_ns as f64 / 1e6,
            escape(&words)
        );
    }
    out.push_str("</table>");
}

fn violation_section(out: &mut String, report: &Report) {
    let Some(first) = report.violations.first() else {
        return;
    };
    let drawn = first.t_ns > 0;
    let sentence = escape(&first.to_string());
    if drawn {
        let _ = write!(
            out,
            r##"<h2>First violation: {}</h2><p><a class="violation-link" href="#violation">{sentence}</a> <span class="note">(the red ring in the diagrams)</span></p>"##,
            escape(&first.kind)
        );
    } else {
        let _ = write!(out, "<h2>First violation: {}</h2><p>{sentence}</p>", escape(&first.kind));
    }
    if !first.marks.is_empty() {
        out.push_str(r#"<p>Marked in orange on the diagrams, the facts it names:</p><ul class="marks">"#);
        for mark in &first.marks {
            let _ = write!(
                out,
                r##"<li><a class="mark-link" href="#causal-past" data-t="{}">{}</a> (node {}, {:.3} ms)</li>"##,
                mark.t_ns,
                escape(&mark.label),
                mark.node,
                mark.t_ns as f64 / 1e6
            );
        }
        out.push_str("</ul>");
    }
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
