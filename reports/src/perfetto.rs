//! Chrome trace-event JSON, which the Perfetto UI opens: nodes as tracks, handler calls as
//! slices, messages as flow arrows (ending at the delivery, or at the drop), down and
//! paused periods as slices, faults and the violations as instant events.

use checker::Violation;
use serde_json::{Value, json};

/// Converts sim-core trace events into a trace-event document, marking `violations`.
pub fn perfetto(trace: &[Value], nodes: &[String], violations: &[Violation]) -> Value {
    let us = |event: &Value| event.get("t_ns").and_then(Value::as_u64).unwrap_or(0) as f64 / 1e3;
    let mut events: Vec<Value> = nodes
        .iter()
        .enumerate()
        .map(|(tid, name)| json!({"ph": "M", "name": "thread_name", "pid": 1, "tid": tid, "args": {"name": name}}))
        .collect();
    events.push(json!({"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "dsim"}}));
    // Which nodes are down (a slice from crash to restart).
    let mut down = vec![false; nodes.len().max(1)];
    for event in trace {
        let kind = event.get("event").and_then(Value::as_str).unwrap_or("");
        let ts = us(event);
        let field = |key: &str| event.get(key).cloned().unwrap_or(Value::Null);
        match kind {
            "deliver" => {
                let name = event
                    .get("label")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| event.get("msg").map(label).unwrap_or_default());
                events.push(json!({"ph": "X", "name": name, "cat": "deliver", "pid": 1, "tid": field("to"), "ts": ts, "dur": 1, "args": {"from": field("from"), "msg_id": field("msg_id"), "msg": field("msg")}}));
                events.push(json!({"ph": "f", "bp": "e", "name": "msg", "cat": "msg", "id": field("msg_id"), "pid": 1, "tid": field("to"), "ts": ts}));
            }
            "send" => {
                events.push(json!({"ph": "s", "name": "msg", "cat": "msg", "id": field("msg_id"), "pid": 1, "tid": field("from"), "ts": ts}));
            }
            "timer" => {
                events.push(json!({"ph": "X", "name": "timer", "cat": "timer", "pid": 1, "tid": field("node"), "ts": ts, "dur": 1, "args": {"tag": field("tag")}}));
            }
            "start" => {
                events.push(json!({"ph": "X", "name": "start", "cat": "start", "pid": 1, "tid": field("node"), "ts": ts, "dur": 1}));
            }
            "drop" => {
                events.push(json!({"ph": "i", "s": "t", "name": "drop", "cat": "drop", "pid": 1, "tid": field("from"), "ts": ts, "args": {"msg_id": field("msg_id"), "reason": field("reason")}}));
                // The message's flow ends where it was lost.
                events.push(json!({"ph": "f", "bp": "e", "name": "msg", "cat": "msg", "id": field("msg_id"), "pid": 1, "tid": field("from"), "ts": ts}));
            }
            "fault" => {
                let fault = field("fault");
                let name = crate::model::describe_fault(&fault);
                let tid = fault.get("node").cloned().unwrap_or(json!(0));
                let node = fault.get("node").and_then(Value::as_u64).map(|n| n as usize).filter(|n| *n < down.len());
                match (fault.get("kind").and_then(Value::as_str), node) {
                    (Some("crash"), Some(node)) if !down[node] => {
                        down[node] = true;
                        events.push(json!({"ph": "B", "name": "down", "cat": "down", "pid": 1, "tid": node, "ts": ts}));
                    }
                    (Some("restart"), Some(node)) if down[node] => {
                        down[node] = false;
                        events.push(json!({"ph": "E", "name": "down", "cat": "down", "pid": 1, "tid": node, "ts": ts}));
                    }
                    (Some("pause"), Some(node)) => {
                        let dur = fault.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0) * 1e3;
                        events.push(json!({"ph": "X", "name": "paused", "cat": "paused", "pid": 1, "tid": node, "ts": ts, "dur": dur}));
                    }
                    _ => {}
                }
                events.push(json!({"ph": "i", "s": "g", "name": name, "cat": "fault", "pid": 1, "tid": tid, "ts": ts, "args": fault}));
            }
            "observe" => {
                events.push(json!({"ph": "i", "s": "t", "name": event.get("obs").map(label).unwrap_or_default(), "cat": "observe", "pid": 1, "tid": field("node"), "ts": ts, "args": field("obs")}));
            }
            _ => {}
        }
    }
    let end_us = trace.iter().map(us).fold(0.0, f64::max);
    for (node, _) in down.iter().enumerate().filter(|(_, d)| **d) {
        events.push(json!({"ph": "E", "name": "down", "cat": "down", "pid": 1, "tid": node, "ts": end_us}));
    }
    for violation in violations {
        let tid = violation.node.unwrap_or(0);
        let ts = violation.t_ns as f64 / 1e3;
        events.push(json!({"ph": "i", "s": "g", "name": format!("VIOLATION: {}", violation.kind), "cat": "violation", "pid": 1, "tid": tid, "ts": ts, "args": {"message": violation.to_string()}}));
    }
    json!({"traceEvents": events, "displayTimeUnit": "ms"})
}

fn label(value: &Value) -> String {
    match value {
        Value::Object(map) => map.keys().next().cloned().unwrap_or_default(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
