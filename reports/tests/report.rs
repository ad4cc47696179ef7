//! Reports of a scripted run: well-formed, self-contained, element counts matching the
//! run; the Markdown snapshot; Perfetto export round-trips.

use checker::history::{Event, EventType, HistoryBuilder};
use checker::{Value, Verdict, Violation};
use reports::{Report, RoleChange};
use serde::Serialize;
use sim_core::{
    Ctx, Fault, Latency, Limits, LinkConfig, MS, MemorySink, NetworkConfig, NodeId, Process, Sim, SimConfig, TimerId,
    TraceSink,
};

/// Node 0 pings nodes 1 and 2 every 10 ms; they answer.
struct Pinger;

#[derive(Clone, Debug, Hash, Serialize)]
enum Msg {
    Ping(u64),
    Pong(u64),
}

impl Process for Pinger {
    type Msg = Msg;
    type Obs = String;
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg, String>) {
        if ctx.id() == 0 {
            ctx.set_timer(10 * MS, 0);
        }
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg, String>, from: NodeId, msg: Msg) {
        if let Msg::Ping(n) = msg {
            ctx.send(from, Msg::Pong(n));
        }
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg, String>, _: TimerId, tag: u64) {
        ctx.send(1, Msg::Ping(tag));
        ctx.send(2, Msg::Ping(tag));
        if tag < 40 {
            ctx.set_timer(10 * MS, tag + 1);
        }
    }
}

fn scripted_report() -> Report {
    let network = NetworkConfig {
        default: LinkConfig { latency: Latency::Constant { ms: 3.0 }, duplicate: 0.1, ..LinkConfig::default() },
        links: vec![],
        kinds: vec![],
    };
    let mut sim = Sim::new(SimConfig { seed: 9, nodes: 3, network, limits: Limits::default() }, |_| Pinger).unwrap();
    let sink = MemorySink::default();
    let boxed: Box<dyn TraceSink<Msg, String>> = Box::new(sink.clone());
    sim.set_trace_sink(boxed);
    sim.schedule_fault(100 * MS, Fault::Partition { groups: vec![vec![2]] }).unwrap();
    sim.schedule_fault(200 * MS, Fault::Heal).unwrap();
    sim.schedule_fault(250 * MS, Fault::Crash { node: 1, torn_write: false }).unwrap();
    sim.schedule_fault(300 * MS, Fault::Restart { node: 1 }).unwrap();
    sim.schedule_fault(320 * MS, Fault::Pause { node: 2, duration_ms: 30.0 }).unwrap();
    sim.run();
    let trace: Vec<serde_json::Value> = sink.lines().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut builder = HistoryBuilder::default();
    for (i, (kind, f, value, t)) in [
        (EventType::Invoke, "write", 1, 5),
        (EventType::Ok, "write", 1, 30),
        (EventType::Invoke, "read", 0, 40),
        (EventType::Ok, "read", 1, 90),
        (EventType::Invoke, "write", 2, 120),
        (EventType::Info, "write", 2, 260),
    ]
    .into_iter()
    .enumerate()
    {
        let process = if i < 4 { 0 } else { 1 };
        let event = Event {
            process: Some(process),
            kind,
            f: f.into(),
            key: None,
            value: Value::Int(value),
            time_ns: Some(t * MS),
            line: i + 1,
            column: 1,
        };
        builder.push(event).unwrap();
    }
    Report {
        scenario: "pinger".into(),
        protocol: "test".into(),
        seed: 9,
        variant: "correct".into(),
        verdict: Verdict::Violation,
        fingerprint: sim.fingerprint().hex(),
        replay: "dsim run pinger --seed 9".into(),
        violations: vec![Violation::new("example", "a <made-up> violation & its \"quotes\"", 330 * MS, Some(2))],
        explanation: None,
        metrics: vec![("events".into(), sim.metrics().events.to_string())],
        nodes: vec!["server 0".into(), "server 1".into(), "server 2".into()],
        trace,
        ops: builder.finish().ops,
        spans: Vec::new(),
        roles: vec![
            RoleChange { t_ns: 0, node: 0, role: "follower".into(), epoch: Some(0) },
            RoleChange { t_ns: 50 * MS, node: 0, role: "leader".into(), epoch: Some(1) },
        ],
        heal_ns: Some(350 * MS),
        end_ns: sim.now_ns(),
        window: Some((0, 500 * MS)),
        steps: Vec::new(),
    }
}

fn count(document: &roxmltree::Document, element: &str, class_prefix: &str) -> usize {
    count_under(document.root(), element, class_prefix)
}

/// The element of id `id`.
fn by_id<'a, 'input>(document: &'a roxmltree::Document<'input>, id: &str) -> roxmltree::Node<'a, 'input> {
    document.descendants().find(|n| n.attribute("id") == Some(id)).unwrap_or_else(|| panic!("no element #{id}"))
}

fn count_under(node: roxmltree::Node, element: &str, class_prefix: &str) -> usize {
    node.descendants()
        .filter(|n| {
            n.has_tag_name(element)
                && n.attribute("class").is_some_and(|c| c == class_prefix || c.starts_with(&format!("{class_prefix} ")))
        })
        .count()
}

#[test]
fn html_is_well_formed_self_contained_and_counts_match() {
    let report = scripted_report();
    let html = reports::html(&report);
    // Self-contained: the one script is inline, nothing is fetched.
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains(" src="));
    assert_eq!(html.matches("<script>").count(), 1);
    let body = html.trim_start_matches("<!DOCTYPE html>\n");
    let document = roxmltree::Document::parse(body).expect("well-formed markup");
    let scene = reports::Scene::from_trace(&report.trace, report.end_ns);
    let delivered_in_window = scene.messages.iter().filter(|m| m.delivered_ns.is_some_and(|t| t <= 500 * MS)).count();
    let delivered_events = report.trace.iter().filter(|e| e["event"] == "deliver").count();
    assert_eq!(delivered_in_window, delivered_events);
    let window = by_id(&document, "window");
    assert_eq!(count_under(window, "line", "msg"), delivered_in_window);
    // Labels for every arrow; the window has too many to show them before zooming in.
    assert_eq!(count_under(window, "text", "msglabel"), delivered_in_window);
    assert!(window.attribute("class").unwrap().contains("dense"));
    assert!(scene.messages.iter().any(|m| m.duplicate), "the run duplicates some messages");
    assert_eq!(count_under(window, "text", "drop"), scene.messages.iter().filter(|m| m.dropped.is_some()).count());
    assert_eq!(count(&document, "rect", "op"), report.ops.len());
    assert_eq!(count(&document, "rect", "role"), 2);
    let kinds: Vec<&str> = scene.faults.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["partition", "crash", "restart", "pause"]);
    assert!(html.contains("a &lt;made-up&gt; violation &amp; its &quot;quotes&quot;"));
}

#[test]
fn markdown_snapshot() {
    let markdown = reports::markdown(&scripted_report());
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let path = format!("{crate_dir}/tests/snapshots/report.md");
    if std::env::var("UPDATE_SNAPSHOTS").is_ok() {
        std::fs::write(&path, &markdown).unwrap();
    }
    let expected = std::fs::read_to_string(&path).expect("snapshot exists (UPDATE_SNAPSHOTS=1 writes it)");
    assert_eq!(markdown, expected, "the Markdown changed; rerun with UPDATE_SNAPSHOTS=1 if that is intended");
}

#[test]
fn perfetto_round_trips_and_matches_the_trace() {
    let report = scripted_report();
    let document = reports::perfetto(&report.trace, &report.nodes, &report.violations);
    let text = serde_json::to_string(&document).unwrap();
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back, document);
    let events = back["traceEvents"].as_array().unwrap();
    let of = |ph: &str, cat: &str| events.iter().filter(|e| e["ph"] == ph && e["cat"] == cat).count();
    let in_trace = |kind: &str| report.trace.iter().filter(|e| e["event"] == kind).count();
    assert_eq!(of("X", "deliver"), in_trace("deliver"));
    // Every flow ends: at its delivery, or where the message was dropped.
    assert_eq!(of("f", "msg"), in_trace("deliver") + in_trace("drop"));
    assert_eq!(of("s", "msg"), in_trace("send"));
    // The crash of node 1 (250–300 ms) is a down slice; the violation an instant.
    assert_eq!(of("B", "down"), 1);
    assert_eq!(of("E", "down"), 1);
    assert_eq!(of("i", "violation"), 1);
    // Node 2's pause (320 ms, for 30 ms) is a slice of its length.
    let paused: Vec<&serde_json::Value> = events.iter().filter(|e| e["cat"] == "paused").collect();
    assert_eq!(paused.len(), 1);
    assert_eq!((paused[0]["ph"].as_str(), paused[0]["tid"].as_u64()), (Some("X"), Some(2)));
    assert_eq!((paused[0]["ts"].as_f64(), paused[0]["dur"].as_f64()), (Some(320_000.0), Some(30_000.0)));
    assert_eq!(of("X", "timer"), in_trace("timer"));
    assert_eq!(of("i", "fault"), in_trace("fault"));
    assert_eq!(of("i", "drop"), in_trace("drop"));
    assert_eq!(events.iter().filter(|e| e["name"] == "thread_name").count(), 3);
}

/// A linearizability failure is explained with the checker's own explanation.
#[test]
fn linearizability_failures_show_the_checker_explanation() {
    let text = "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :write, :value 1}\n\
                {:process 1, :type :invoke, :f :read, :value nil}\n{:process 1, :type :ok, :f :read, :value 2}";
    let history = checker::import::parse_history(text, checker::import::Format::Edn).unwrap();
    let checked =
        checker::check(checker::ModelKind::Register, None, &history, &checker::CheckOptions::default()).unwrap();
    assert_eq!(checked.verdict, Verdict::Violation);
    let mut report = scripted_report();
    report.violations = vec![Violation::new("linearizability", "the client history is not linearizable", 0, None)];
    report.explanation = checked.explanation;
    let html = reports::html(&report);
    assert!(
        html.contains(
            "First operation that cannot be linearized: <code>#3 (line 4) process 1 :read nil -&gt; :ok 2</code>"
        ),
        "{html}"
    );
    assert!(html.contains("Model states reachable there:</p><pre>1\n</pre>"));
    let markdown = reports::markdown(&report);
    assert!(
        markdown.contains("First operation that cannot be linearized: `#3 (line 4) process 1 :read nil -> :ok 2`"),
        "{markdown}"
    );
    assert!(markdown.contains("Model states reachable there: `1`"));
}

#[test]
fn the_violation_is_marked_messages_have_arrowheads_and_faults_read_as_words() {
    let report = scripted_report();
    let html = reports::html(&report);
    let body = html.trim_start_matches("<!DOCTYPE html>\n");
    let document = roxmltree::Document::parse(body).expect("well-formed markup");
    // The violation at 330 ms on node 2: one ring in each space-time diagram (its causal
    // past and the window), the sentence a link to the first.
    assert_eq!(count(&document, "circle", "violation"), 2);
    assert_eq!(by_id(&document, "violation").attribute("data-t"), Some("330000000"));
    assert!(html.contains(r##"<a class="violation-link" href="#violation">"##));
    // Arrowheads in the colour of their message's kind.
    let lines = document.descendants().filter(|n| n.has_tag_name("line") && n.attribute("class") == Some("msg"));
    assert!(lines.clone().count() > 0);
    for line in lines {
        let marker = line.attribute("marker-end").expect("an arrowhead");
        let id = marker.trim_start_matches("url(#").trim_end_matches(')');
        let colour = line.attribute("style").unwrap().trim_start_matches("stroke:");
        let path = by_id(&document, id).first_element_child().unwrap();
        assert_eq!(path.attribute("fill"), Some(colour), "{id}");
    }
    let scene = reports::Scene::from_trace(&report.trace, report.end_ns);
    let labels: Vec<&str> = scene.faults.iter().map(|f| f.label.as_str()).collect();
    assert!(labels.iter().all(|l| !l.contains('{') || l.starts_with("partition")), "{labels:?}");
    assert!(labels.iter().any(|l| l.starts_with("pause of node")), "{labels:?}");
    // A run that ended before its heal draws no heal marker.
    let mut early = scripted_report();
    early.heal_ns = Some(early.end_ns + 1);
    assert!(!reports::html(&early).contains("class=\"heal\""));
    assert!(reports::html(&report).contains("class=\"heal\""));
}

/// The causal past keeps exactly the messages whose delivery happens before the
/// violation, says how many events it hid, and marks the facts the violation names.
#[test]
fn the_causal_past_of_the_violation_and_its_named_facts() {
    let mut report = scripted_report();
    report.violations[0] = report.violations[0].clone().mark(0, 95 * MS, "node 0 pinged");
    let html = reports::html(&report);
    let body = html.trim_start_matches("<!DOCTYPE html>\n");
    let document = roxmltree::Document::parse(body).expect("well-formed markup");
    let steps = reports::steps_of(&report.trace);
    let past = reports::causal_past(&steps, 2, 330 * MS, &[]).expect("node 2 has events");
    // Node 2 is paused from 320 ms: its last event before the violation is earlier.
    assert!(steps[past.event].t_ns < 320 * MS && steps[past.event].node == 2);
    assert!(past.hidden() > 0, "node 1's later pongs cannot reach node 2 before it");
    let delivered = past.messages.iter().filter(|m| m.delivered_ns.is_some()).count();
    let causal = by_id(&document, "causal");
    assert_eq!(count_under(causal, "line", "msg"), delivered);
    let all = reports::Scene::from_trace(&report.trace, report.end_ns).messages;
    assert!(delivered < all.iter().filter(|m| m.delivered_ns.is_some_and(|t| t <= 330 * MS)).count());
    // Every kept message reaches its receiver before that receiver's last event in the
    // past; node 1 never sends to node 2, so nothing of node 1 after 0's last ping.
    for m in &past.messages {
        assert!(m.delivered_ns.is_none_or(|t| t <= steps[past.event].t_ns), "{m:?}");
    }
    assert!(html.contains(&format!("<b>{} events that could not have influenced it are hidden</b>", past.hidden())));
    // The named fact: a dot in both diagrams and a link in the violation's section.
    assert_eq!(count(&document, "circle", "mark"), 2);
    assert!(html.contains(r##"<a class="mark-link" href="#causal-past" data-t="95000000">node 0 pinged</a>"##));
    // A violation judged over the whole run has no causal past, and says so.
    let mut global = scripted_report();
    global.violations[0].node = None;
    let html = reports::html(&global);
    assert!(!html.contains(r#"id="causal""#));
    assert!(html.contains("This violation has no causal past to show"));
}

/// Faults in words: partitions name their sides on the band, node faults their size on
/// the lane, and a table lists them all with their times.
#[test]
fn faults_read_as_words_on_the_lanes_and_in_a_table() {
    let report = scripted_report();
    let html = reports::html(&report);
    let body = html.trim_start_matches("<!DOCTYPE html>\n");
    let document = roxmltree::Document::parse(body).expect("well-formed markup");
    let window = by_id(&document, "window");
    let texts = |class: &str| -> Vec<String> {
        window
            .descendants()
            .filter(|n| n.attribute("class") == Some(class))
            .map(|n| n.text().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(texts("bandlabel"), ["{2} | {0, 1}"]);
    assert_eq!(texts("faultlabel"), ["crash", "restart", "pause 30 ms"]);
    assert!(
        html.contains(
            r#"<tr><td class="num">100.0</td><td class="num">200.0</td><td>partition {2} | {0, 1}</td></tr>"#
        )
    );
    assert!(html.contains(
        r#"<tr><td class="num">320.0</td><td class="num">350.0</td><td>pause of node 2 for 30 ms</td></tr>"#
    ));
}
