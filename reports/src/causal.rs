//! The causal past of an event: Lamport's happens-before relation over a run's sends,
//! deliveries and local steps.
//!
//! An event `a` happens before `b` if they are on one node and `a` came first, or `a` is
//! the send of a message whose delivery is `b`, or by transitivity. A report keeps the
//! whole run's causal skeleton as [`Step`]s (a few words per event, never the messages'
//! contents), so the past of a violation late in a long run is exact even when the
//! report kept the full events of only a few windows. One backward pass finds the past:
//! each node has a horizon (the last of its events known to be in the past); a delivery
//! in the past pulls its send's node's horizon up to the send.

use serde_json::Value;

use crate::model::Message;

/// What kind of event a step is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// `node` sent message `msg_id` to `peer`.
    Send,
    /// `node` received message `msg_id` from `peer`.
    Deliver,
    /// The network lost message `msg_id` from `node` to `peer`.
    Drop,
    /// A timer, a start or an observation at `node`.
    Local,
}

/// One event of a run, reduced to what the happens-before relation needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub t_ns: u64,
    pub kind: StepKind,
    pub node: usize,
    pub peer: usize,
    pub msg_id: u64,
    /// A send's short label (the protocol's, or the message's variant) and its kind
    /// (the variant).
    pub label: Option<Box<str>>,
    pub kind_name: Option<Box<str>>,
}

impl Step {
    /// The step of a sim-core trace event, if it is one (faults, duplicates and the
    /// stop are not steps of a node).
    pub fn of(event: &Value) -> Option<Step> {
        let num = |key: &str| event.get(key).and_then(Value::as_u64).unwrap_or(0);
        let (kind, node, peer) = match event.get("event").and_then(Value::as_str)? {
            "send" => (StepKind::Send, num("from"), num("to")),
            "deliver" => (StepKind::Deliver, num("to"), num("from")),
            "drop" => (StepKind::Drop, num("from"), num("to")),
            "timer" | "start" | "observe" | "resume" => (StepKind::Local, num("node"), 0),
            _ => return None,
        };
        // Only a send names its message (a delivery's is the send's).
        let (label, kind_name) = if kind == StepKind::Send {
            let variant = event.get("msg").map(crate::model::variant_name).unwrap_or_default();
            let label = event.get("label").and_then(Value::as_str).map_or_else(|| variant.clone(), str::to_owned);
            (Some(label.into_boxed_str()), Some(variant.into_boxed_str()))
        } else {
            (None, None)
        };
        Some(Step {
            t_ns: num("t_ns"),
            kind,
            node: node as usize,
            peer: peer as usize,
            msg_id: num("msg_id"),
            label,
            kind_name,
        })
    }
}

/// The steps of a whole trace.
pub fn steps_of(trace: &[Value]) -> Vec<Step> {
    trace.iter().filter_map(Step::of).collect()
}

/// The happens-before past of one event.
#[derive(Clone, Debug, Default)]
pub struct CausalPast {
    /// The index (in the steps) of the event whose past this is.
    pub event: usize,
    /// The messages delivered within the past, and those lost after a send within it.
    pub messages: Vec<Message>,
    /// Events of nodes up to the event's time, in the past or not.
    pub events_before: usize,
    /// Of those, the ones in the past.
    pub events_in_past: usize,
}

impl CausalPast {
    /// Events up to the event's time that are not in its past.
    pub fn hidden(&self) -> usize {
        self.events_before - self.events_in_past
    }
}

/// The past of the last event of `node` at or before `t_ns`, or `None` when the node has
/// no such event. Message contents are taken from `known` (the messages whose events
/// the report kept) where present.
pub fn causal_past(steps: &[Step], node: usize, t_ns: u64, known: &[Message]) -> Option<CausalPast> {
    let event = steps.iter().rposition(|s| s.t_ns <= t_ns && s.kind != StepKind::Drop && s.node == node)?;
    // Where each message was sent (a duplicate's deliveries go back to its one send).
    let mut send_of: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    for (i, step) in steps[..=event].iter().enumerate() {
        if step.kind == StepKind::Send {
            send_of.entry(step.msg_id).or_insert(i);
        }
    }
    let nodes = steps[..=event].iter().map(|s| s.node.max(s.peer) + 1).max().unwrap_or(0);
    let mut horizon: Vec<Option<usize>> = vec![None; nodes.max(node + 1)];
    horizon[node] = Some(event);
    let mut in_past = vec![false; event + 1];
    for i in (0..=event).rev() {
        let step = &steps[i];
        if step.kind == StepKind::Drop || horizon[step.node].is_none_or(|h| h < i) {
            continue;
        }
        in_past[i] = true;
        if step.kind == StepKind::Deliver
            && let Some(&send) = send_of.get(&step.msg_id)
        {
            let from = &mut horizon[steps[send].node];
            *from = Some(from.map_or(send, |h| h.max(send)));
        }
    }
    let by_id: std::collections::HashMap<u64, &Message> = known.iter().map(|m| (m.id, m)).collect();
    let mut messages = Vec::new();
    for (i, step) in steps[..=event].iter().enumerate() {
        if !matches!(step.kind, StepKind::Deliver | StepKind::Drop) {
            continue;
        }
        let send = send_of.get(&step.msg_id).copied();
        let delivered = step.kind == StepKind::Deliver && in_past[i];
        let lost = step.kind == StepKind::Drop && send.is_some_and(|s| in_past[s]);
        let Some(send) = send.filter(|_| delivered || lost) else { continue };
        let sent = &steps[send];
        let label = sent.label.as_deref().unwrap_or_default().to_owned();
        let kind = sent.kind_name.as_deref().unwrap_or_default().to_owned();
        let contents = by_id.get(&step.msg_id).map(|m| m.contents.clone()).unwrap_or_default();
        messages.push(Message {
            id: step.msg_id,
            from: sent.node,
            to: sent.peer,
            sent_ns: sent.t_ns,
            delivered_ns: delivered.then_some(step.t_ns),
            dropped: lost.then(|| "dropped".to_owned()),
            duplicate: false,
            label,
            kind,
            contents,
        });
    }
    let events_before = steps.iter().filter(|s| s.t_ns <= steps[event].t_ns && s.kind != StepKind::Drop).count();
    let events_in_past = in_past.iter().filter(|p| **p).count();
    Some(CausalPast { event, messages, events_before, events_in_past })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(t_ns: u64, kind: StepKind, node: usize, peer: usize, msg_id: u64) -> Step {
        let send = kind == StepKind::Send;
        Step { t_ns, kind, node, peer, msg_id, label: send.then(|| "m".into()), kind_name: send.then(|| "M".into()) }
    }

    #[test]
    fn the_past_follows_messages_and_local_order_only() {
        use StepKind::*;
        // 0 -> 1 (msg 1), then 1 -> 2 (msg 2); 3 talks to 0 after 0's send (msg 3) and
        // 0 -> 3 (msg 4) is lost; the event is 2's receipt of msg 2.
        let steps = vec![
            step(1, Local, 3, 0, 0),   // 0: in the past? no: 3 never reaches 2 before
            step(2, Send, 0, 1, 1),    // 1
            step(3, Send, 0, 3, 4),    // 2: after 0's send to 1: not in 1's past
            step(4, Deliver, 1, 0, 1), // 3
            step(5, Send, 3, 0, 3),    // 4
            step(6, Send, 1, 2, 2),    // 5
            step(7, Drop, 0, 3, 4),    // 6
            step(8, Deliver, 0, 3, 3), // 7: 0 hears from 3, too late for the past
            step(9, Deliver, 2, 1, 2), // 8: the event
        ];
        let past = causal_past(&steps, 2, 9, &[]).expect("node 2 has an event");
        assert_eq!(past.event, 8);
        let ids: Vec<u64> = past.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(past.events_in_past, 4); // sends 1 and 5, deliveries 3 and 8
        assert_eq!(past.events_before, 8);
        assert_eq!(past.hidden(), 4);
        // From node 0's receipt of msg 3 the past reaches node 3, and the lost message
        // sent before it.
        let past = causal_past(&steps, 0, 8, &[]).expect("node 0 has an event");
        let ids: Vec<(u64, bool)> = past.messages.iter().map(|m| (m.id, m.dropped.is_some())).collect();
        assert_eq!(ids, vec![(4, true), (3, false)]);
        assert_eq!(past.events_in_past, 5);
        assert!(causal_past(&steps, 5, 9, &[]).is_none());
    }
}
