//! What a report is made of, and the scene derived from a trace.

use checker::history::Op;
use checker::{Explanation, Verdict, Violation};
use serde_json::Value;

/// A node's role from `t_ns` on, with the protocol's epoch of it (a term), if any.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RoleChange {
    pub t_ns: u64,
    pub node: usize,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

/// An interval on a node's lane (a client believing it holds a lock, a server's grant
/// being valid); `exclusive` spans of different nodes must not overlap, and reports
/// highlight where they do.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Span {
    pub node: usize,
    pub from_ns: u64,
    pub to_ns: u64,
    pub label: String,
    pub exclusive: bool,
}

/// Where two exclusive spans of different nodes overlap: `(from_ns, to_ns)`.
pub fn overlaps(spans: &[Span]) -> Vec<(u64, u64)> {
    let exclusive: Vec<&Span> = spans.iter().filter(|s| s.exclusive).collect();
    let mut out = Vec::new();
    for (i, a) in exclusive.iter().enumerate() {
        for b in &exclusive[i + 1..] {
            let (from, to) = (a.from_ns.max(b.from_ns), a.to_ns.min(b.to_ns));
            if a.node != b.node && from < to {
                out.push((from, to));
            }
        }
    }
    out
}

/// The colour of each role in a report, in order of first appearance (`down` is always
/// dark grey).
pub fn role_colours(roles: &[RoleChange]) -> Vec<(String, &'static str)> {
    const PALETTE: [&str; 6] = ["#c8d3e6", "#2a8a4a", "#e6a23c", "#8e44ad", "#2c7fb8", "#d35400"];
    let mut out: Vec<(String, &'static str)> = Vec::new();
    for change in roles {
        if out.iter().any(|(role, _)| *role == change.role) {
            continue;
        }
        let colour = if change.role == "down" {
            "#555"
        } else {
            PALETTE[out.iter().filter(|(r, _)| r != "down").count() % PALETTE.len()]
        };
        out.push((change.role.clone(), colour));
    }
    out
}

/// Everything a report shows.
#[derive(Clone, Debug)]
pub struct Report {
    pub scenario: String,
    pub protocol: String,
    pub seed: u64,
    pub variant: String,
    pub verdict: Verdict,
    pub fingerprint: String,
    pub replay: String,
    pub violations: Vec<Violation>,
    pub explanation: Option<Explanation>,
    /// Label and value of each metric, in order.
    pub metrics: Vec<(String, String)>,
    /// Lane labels, indexed by node id.
    pub nodes: Vec<String>,
    /// sim-core trace events, as JSON.
    pub trace: Vec<Value>,
    /// Client operations with their times.
    pub ops: Vec<Op>,
    pub roles: Vec<RoleChange>,
    /// Intervals on lanes (lock beliefs and grants).
    pub spans: Vec<Span>,
    /// When the fault phase ended (everything healed), if it did.
    pub heal_ns: Option<u64>,
    pub end_ns: u64,
    /// The space-time diagram's window; `None` chooses one.
    pub window: Option<(u64, u64)>,
    /// The whole run's causal skeleton, for the causal past of a violation; empty:
    /// taken from `trace` (which then must hold every event).
    pub steps: Vec<crate::causal::Step>,
}

/// One message, from its send to its fate.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub id: u64,
    pub from: usize,
    pub to: usize,
    pub sent_ns: u64,
    pub delivered_ns: Option<u64>,
    pub dropped: Option<String>,
    pub duplicate: bool,
    pub label: String,
    /// The message's kind (its variant), for colours.
    pub kind: String,
    /// Its contents, compact and cut at 300 characters, for hovering.
    pub contents: String,
}

/// A fault over an interval (or an instant, when `until_ns == from_ns`).
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub kind: String,
    pub nodes: Vec<usize>,
    pub from_ns: u64,
    pub until_ns: u64,
    /// The fault in words (`pause of node 2 for 30 ms`).
    pub label: String,
    /// A few words for its lane (`pause 30 ms`, `clock +2000 ms`).
    pub short: String,
    /// A partition's groups as listed (the rest of the nodes form one more).
    pub groups: Vec<Vec<usize>>,
}

impl Fault {
    /// A partition's sides in words over `nodes` nodes: `{0, 1} | {2, 3, 4}`.
    pub fn sides(&self, nodes: usize) -> Option<String> {
        if self.kind != "partition" {
            return None;
        }
        let set = |ids: &[usize]| format!("{{{}}}", ids.iter().map(usize::to_string).collect::<Vec<_>>().join(", "));
        let mut sides: Vec<String> = self.groups.iter().map(|g| set(g)).collect();
        let rest: Vec<usize> = (0..nodes).filter(|n| !self.groups.iter().flatten().any(|g| g == n)).collect();
        if !rest.is_empty() {
            sides.push(set(&rest));
        }
        Some(sides.join(" | "))
    }
}

/// The trace, organised for drawing.
#[derive(Clone, Debug, Default)]
pub struct Scene {
    pub messages: Vec<Message>,
    pub faults: Vec<Fault>,
}

fn num(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// A short label for a message: its variant name.
pub(crate) fn variant_name(msg: &Value) -> String {
    match msg {
        Value::Object(map) => map.keys().next().cloned().unwrap_or_default(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn node_list(fault: &Value) -> Vec<usize> {
    let mut nodes = Vec::new();
    if let Some(n) = fault.get("node").and_then(Value::as_u64) {
        nodes.push(n as usize);
    }
    nodes
}

impl Scene {
    /// Organises a trace: messages with their deliveries and drops; faults as intervals
    /// (a partition until the next heal, a crash until the node's restart, a pause for its
    /// length, link faults until reset).
    pub fn from_trace(trace: &[Value], end_ns: u64) -> Scene {
        let mut scene = Scene::default();
        // Every copy of each message id (a duplicate shares its original's id).
        let mut copies: std::collections::BTreeMap<u64, Vec<usize>> = std::collections::BTreeMap::new();
        for event in trace {
            let t = num(event, "t_ns");
            let id = num(event, "msg_id");
            match event.get("event").and_then(Value::as_str) {
                Some("send") => {
                    copies.entry(id).or_default().push(scene.messages.len());
                    scene.messages.push(Message {
                        id,
                        from: num(event, "from") as usize,
                        to: num(event, "to") as usize,
                        sent_ns: t,
                        delivered_ns: None,
                        dropped: None,
                        duplicate: false,
                        label: event
                            .get("label")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .or_else(|| event.get("msg").map(variant_name))
                            .unwrap_or_default(),
                        kind: event.get("msg").map(variant_name).unwrap_or_default(),
                        contents: event.get("msg").map(|m| shorten(&m.to_string(), 300)).unwrap_or_default(),
                    });
                }
                Some("duplicate") => {
                    if let Some(first) = copies.get(&id).and_then(|c| c.first()).copied() {
                        let copy = Message {
                            duplicate: true,
                            delivered_ns: None,
                            dropped: None,
                            ..scene.messages[first].clone()
                        };
                        copies.entry(id).or_default().push(scene.messages.len());
                        scene.messages.push(copy);
                    }
                }
                Some(kind @ ("deliver" | "drop")) => {
                    // The delivery or the drop goes to the first copy still in flight.
                    let in_flight = copies.get(&id).and_then(|c| {
                        c.iter()
                            .copied()
                            .find(|i| scene.messages[*i].delivered_ns.is_none() && scene.messages[*i].dropped.is_none())
                    });
                    if let Some(i) = in_flight {
                        if kind == "deliver" {
                            scene.messages[i].delivered_ns = Some(t);
                        } else {
                            let reason = event.get("reason").and_then(Value::as_str).unwrap_or("dropped");
                            scene.messages[i].dropped = Some(reason.to_owned());
                        }
                    }
                }
                Some("fault") => scene.add_fault(t, event.get("fault").unwrap_or(&Value::Null)),
                _ => {}
            }
        }
        for fault in &mut scene.faults {
            if fault.until_ns == u64::MAX {
                fault.until_ns = end_ns;
            }
        }
        scene
    }

    fn close(&mut self, kinds: &[&str], node: Option<usize>, t: u64) {
        for fault in self.faults.iter_mut().filter(|f| f.until_ns == u64::MAX && kinds.contains(&f.kind.as_str())) {
            if node.is_none_or(|n| fault.nodes.contains(&n)) {
                fault.until_ns = t;
            }
        }
    }

    fn add_fault(&mut self, t: u64, fault: &Value) {
        let kind = fault.get("kind").and_then(Value::as_str).unwrap_or("fault");
        let groups: Vec<Vec<usize>> = fault
            .get("groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|g| g.as_array().into_iter().flatten().filter_map(Value::as_u64).map(|n| n as usize).collect())
            .collect();
        // An instant on the fault's node, unless a branch below says otherwise.
        let at = Fault {
            kind: kind.to_owned(),
            nodes: node_list(fault),
            from_ns: t,
            until_ns: t,
            label: describe_fault(fault),
            short: short_fault(fault),
            groups,
        };
        let node = fault.get("node").and_then(Value::as_u64).map(|n| n as usize);
        let down = |faults: &[Fault]| {
            faults
                .iter()
                .any(|f| f.kind == "crash" && f.until_ns == u64::MAX && node.is_some_and(|n| f.nodes.contains(&n)))
        };
        match kind {
            "heal" => self.close(&["partition", "cut", "bridge"], None, t),
            "reset_links" => self.close(&["set_links"], None, t),
            "restart" => {
                let was_down = down(&self.faults);
                self.close(&["crash"], node, t);
                if was_down {
                    self.faults.push(at);
                }
            }
            "pause" => {
                let duration = (fault.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0) * 1e6) as u64;
                self.faults.push(Fault { until_ns: t + duration, ..at });
            }
            "partition" | "cut" | "bridge" | "set_links" => {
                if kind != "cut" && kind != "set_links" {
                    self.close(&["partition", "cut", "bridge"], None, t);
                }
                self.faults.push(Fault { nodes: Vec::new(), until_ns: u64::MAX, ..at });
            }
            "crash" => {
                if !down(&self.faults) {
                    self.faults.push(Fault { until_ns: u64::MAX, ..at });
                }
            }
            "clock_drift" if fault.get("drift_ppm").and_then(Value::as_f64) == Some(0.0) => {}
            _ => self.faults.push(at),
        }
    }
}

/// A list of node ids in a fault as a set: `{0, 5}`, or `every node` when empty.
fn node_set(value: Option<&Value>) -> String {
    let ids: Vec<String> = value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .map(|n| n.to_string())
        .collect();
    if ids.is_empty() { "every node".to_owned() } else { format!("{{{}}}", ids.join(", ")) }
}

/// A fault in words, for tooltips: `partition {0, 5} | the rest`, `pause of node 3 for
/// 300 ms`, `clock jump of node 2 by +2000 ms`.
pub fn describe_fault(fault: &Value) -> String {
    let number = |key: &str| fault.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    let node = fault.get("node").and_then(Value::as_u64).map_or_else(|| "?".to_owned(), |n| n.to_string());
    let set = node_set;
    match fault.get("kind").and_then(Value::as_str).unwrap_or("fault") {
        "partition" => {
            let groups: Vec<String> =
                fault.get("groups").and_then(Value::as_array).into_iter().flatten().map(|g| set(Some(g))).collect();
            format!("partition {} | the rest", groups.join(" | "))
        }
        "cut" => format!("one-way cut from {} to {}", set(fault.get("from")), set(fault.get("to"))),
        "bridge" => format!(
            "bridge: {} and {} meet only through node {}",
            set(fault.get("left")),
            set(fault.get("right")),
            fault.get("bridge").and_then(Value::as_u64).unwrap_or(0)
        ),
        "heal" => "heal: every cut removed".to_owned(),
        "set_links" => format!("link fault from {} to {}", set(fault.get("from")), set(fault.get("to"))),
        "reset_links" => "links back to the scenario's network".to_owned(),
        "crash" => format!("crash of node {node}"),
        "crash_during_write" => format!("crash of node {node} during a storage write"),
        "restart" => format!("restart of node {node}"),
        "pause" => format!("pause of node {node} for {} ms", number("duration_ms")),
        "clock_offset" => format!("clock of node {node} set off by {:+} ms", number("offset_ms")),
        "clock_drift" => format!("clock of node {node} drifting {:+} ppm", number("drift_ppm")),
        "clock_jump" => format!("clock jump of node {node} by {:+} ms", number("delta_ms")),
        other => format!("{other}: {fault}"),
    }
}

/// A fault in a few words, for its lane: `crash`, `pause 30 ms`, `clock +2000 ms`.
fn short_fault(fault: &Value) -> String {
    let number = |key: &str| fault.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    let set = node_set;
    match fault.get("kind").and_then(Value::as_str).unwrap_or("fault") {
        "crash" => "crash".to_owned(),
        "crash_during_write" => "crash in write".to_owned(),
        "restart" => "restart".to_owned(),
        "pause" => format!("pause {} ms", number("duration_ms")),
        "clock_offset" => format!("clock {:+} ms", number("offset_ms")),
        "clock_drift" => format!("drift {:+} ppm", number("drift_ppm")),
        "clock_jump" => format!("clock jump {:+} ms", number("delta_ms")),
        "cut" => format!("cut {} → {}", set(fault.get("from")), set(fault.get("to"))),
        other => other.replace('_', " "),
    }
}

/// `text` cut at `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A colour for each message kind in `messages`, in order of first appearance.
pub fn message_colours(messages: &[Message]) -> Vec<(String, &'static str)> {
    const PALETTE: [&str; 8] = ["#4a6fa5", "#2a8a4a", "#d35400", "#8e44ad", "#16a085", "#c0392b", "#7f8c8d", "#b7950b"];
    let mut out: Vec<(String, &'static str)> = Vec::new();
    for message in messages {
        if !out.iter().any(|(kind, _)| *kind == message.kind) {
            let colour = PALETTE[out.len() % PALETTE.len()];
            out.push((message.kind.clone(), colour));
        }
    }
    out
}
