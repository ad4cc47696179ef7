//! The anomaly measures against the linearizability checker: a history the checker finds
//! linearizable shows no stale read, no lost write, no read-your-writes and no
//! monotonic-reads violation; and an anomaly planted in a linearizable history is counted
//! exactly once. Histories use dsim's kv values: a put writes `p7`, an append adds `a8;`,
//! a cas from "" writes `c9`, so a key read after a put and two appends holds `p7a8;a9;`.

use std::collections::BTreeMap;

use checker::anomalies::{Anomalies, measure};
use checker::history::{Event, EventType, History, HistoryBuilder};
use checker::{CheckOptions, ModelKind, Value, Verdict, check};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

/// One client's step, drawn by the test: which client moves, how far time advances.
#[derive(Clone, Debug)]
struct Step {
    client: usize,
    advance_ms: u64,
    /// 0 get, 1 put, 2 append, 3 cas; what an idle client invokes.
    kind: u8,
    key: usize,
    /// Below 10: the operation ends indeterminate (before or after taking effect).
    fate: u8,
}

#[derive(Clone)]
enum Pending {
    Idle,
    Invoked { f: &'static str, key: String, value: Value, at_ms: u64 },
    Applied { f: &'static str, key: String, value: Value, result: Value, ok: bool, at_ms: u64 },
}

/// A linearizable history by construction: every operation takes effect at one instant
/// between its invocation and completion, against one true state. Returns the events
/// and the final state.
fn linearizable(steps: &[Step], clients: usize) -> (Vec<Event>, BTreeMap<String, String>) {
    let mut state: BTreeMap<String, String> = BTreeMap::new();
    let mut pending = vec![Pending::Idle; clients];
    let mut process: Vec<u64> = (0..clients as u64).collect();
    let mut next_process = clients as u64;
    let (mut now_ms, mut counter, mut events) = (0u64, 0u64, Vec::new());
    let event = |p: u64, kind, f: &str, key: &str, value: Value, t: u64| Event {
        process: Some(p),
        kind,
        f: f.into(),
        key: Some(Value::Str(key.into())),
        value,
        time_ns: Some(t * 1_000_000),
        line: 0,
        column: 0,
    };
    for step in steps {
        now_ms += step.advance_ms;
        let c = step.client % clients;
        match pending[c].clone() {
            Pending::Idle => {
                counter += 1;
                let key = format!("k{}", step.key);
                let (f, value) = match step.kind {
                    0 => ("get", Value::Nil),
                    1 => ("put", Value::Str(format!("p{counter}"))),
                    2 => ("append", Value::Str(format!("a{counter};"))),
                    _ => ("cas", Value::Vec(vec![Value::Str(String::new()), Value::Str(format!("c{counter}"))])),
                };
                events.push(event(process[c], EventType::Invoke, f, &key, value.clone(), now_ms));
                pending[c] = Pending::Invoked { f, key, value, at_ms: now_ms };
            }
            Pending::Invoked { f, key, value, at_ms } => {
                if step.fate < 5 {
                    events.push(event(process[c], EventType::Info, f, &key, value, now_ms.max(at_ms)));
                    process[c] = next_process;
                    next_process += 1;
                    pending[c] = Pending::Idle;
                    continue;
                }
                let current = state.entry(key.clone()).or_default();
                let (result, ok) = match f {
                    "get" => (Value::Str(current.clone()), true),
                    "put" => {
                        *current = text(&value).to_owned();
                        (value.clone(), true)
                    }
                    "append" => {
                        current.push_str(text(&value));
                        (value.clone(), true)
                    }
                    _ => {
                        let pair = value.as_vec().unwrap();
                        let matched = *current == text(&pair[0]);
                        if matched {
                            *current = text(&pair[1]).to_owned();
                        }
                        (value.clone(), matched)
                    }
                };
                pending[c] = Pending::Applied { f, key, value, result, ok, at_ms: now_ms };
            }
            Pending::Applied { f, key, value, result, ok, at_ms } => {
                let t = now_ms.max(at_ms);
                if step.fate < 10 && step.fate >= 5 {
                    events.push(event(process[c], EventType::Info, f, &key, value, t));
                    process[c] = next_process;
                    next_process += 1;
                } else {
                    let kind = if ok { EventType::Ok } else { EventType::Fail };
                    events.push(event(process[c], kind, f, &key, result, t));
                }
                pending[c] = Pending::Idle;
            }
        }
    }
    (events, state)
}

fn text(value: &Value) -> &str {
    match value {
        Value::Str(s) => s,
        _ => "",
    }
}

fn build(events: &[Event]) -> History {
    let mut builder = HistoryBuilder::default();
    for event in events {
        builder.push(event.clone()).unwrap();
    }
    builder.finish()
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = (0..5usize, 0..4u64, 0..4u8, 0..2usize, 0..100u8)
        .prop_map(|(client, advance_ms, kind, key, fate)| Step { client, advance_ms, kind, key, fate });
    proptest::collection::vec(step, 10..120)
}

fn is_clean(a: &Anomalies) -> bool {
    a.stale_reads == 0
        && a.stale_versions_max == 0
        && a.read_your_writes_violations == 0
        && a.monotonic_read_violations == 0
        && a.lost_writes == Some(0)
}

/// The index of the ok get whose result (completion) holds an element appended and
/// acknowledged before the get began, with no put or cas invoked on the key by the time
/// the get completed (so nothing can have replaced it; one invoked in the same instant is
/// concurrent and may have), with that element.
fn droppable_element(events: &[Event]) -> Option<(usize, String)> {
    let history = build(events);
    for read in history.ops.iter().filter(|op| op.f == "get" && op.outcome == checker::Outcome::Ok) {
        let (start, end) = (read.invoke_time_ns?, read.complete_time_ns?);
        let same_key = |op: &&checker::Op| op.key == read.key;
        let replaced = history
            .ops
            .iter()
            .filter(same_key)
            .any(|op| matches!(op.f.as_str(), "put" | "cas") && op.invoke_time_ns.is_some_and(|t| t <= end));
        if replaced {
            continue;
        }
        let acked_before = history.ops.iter().filter(same_key).find(|op| {
            op.f == "append" && op.outcome == checker::Outcome::Ok && op.complete_time_ns.is_some_and(|t| t < start)
        });
        if let Some(append) = acked_before {
            return Some((read.complete_index?, text(&append.value).to_owned()));
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// A linearizable history (with puts and appends on one key, which the old reading
    /// of values as `;`/`|`-separated elements got wrong) shows no anomaly.
    #[test]
    fn a_linearizable_history_shows_no_anomaly(steps in steps(), clients in 1..5usize) {
        let (events, state) = linearizable(&steps, clients);
        let history = build(&events);
        let report = check(ModelKind::Kv, None, &history, &CheckOptions::default()).unwrap();
        prop_assert_eq!(report.verdict, Verdict::Pass);
        let anomalies = measure(&history, Some(&state));
        prop_assert!(is_clean(&anomalies), "{:?}", anomalies);
    }

    /// Whatever the checker finds linearizable shows no anomaly, also after a read's
    /// result is altered (dropping its last element, or returning the first write's value).
    #[test]
    fn whatever_the_checker_passes_shows_no_anomaly(steps in steps(), clients in 1..5usize, pick in 0..1000usize, how in 0..2u8) {
        let (mut events, state) = linearizable(&steps, clients);
        let reads: Vec<usize> = (0..events.len()).filter(|i| events[*i].f == "get" && events[*i].kind == EventType::Ok).collect();
        if !reads.is_empty() {
            let i = reads[pick % reads.len()];
            let value = text(&events[i].value).to_owned();
            events[i].value = Value::Str(match how {
                0 => value.strip_suffix(';').map(|v| v.rsplit_once(';').map_or(String::new(), |(head, _)| format!("{head};"))).unwrap_or_default(),
                _ => "p1".to_owned(),
            });
        }
        let history = build(&events);
        let report = check(ModelKind::Kv, None, &history, &CheckOptions::default()).unwrap();
        if report.verdict == Verdict::Pass {
            let anomalies = measure(&history, Some(&state));
            prop_assert!(is_clean(&anomalies), "{:?}", anomalies);
        }
    }

    /// An acknowledged append dropped from the final state is exactly one lost write.
    #[test]
    fn one_dropped_append_is_one_lost_write(steps in steps(), clients in 1..5usize) {
        let (events, mut state) = linearizable(&steps, clients);
        let history = build(&events);
        // An acknowledged append that no put or cas may have replaced: none that may have
        // happened ended after it began (an indeterminate one may happen at any time).
        let dropped = history.ops.iter().find(|a| {
            a.f == "append" && a.outcome == checker::Outcome::Ok && !history.ops.iter().any(|p| {
                p.key == a.key && matches!(p.f.as_str(), "put" | "cas") && p.outcome != checker::Outcome::Fail
                    && (p.outcome == checker::Outcome::Info || p.complete_time_ns.is_none_or(|t| t >= a.invoke_time_ns.unwrap()))
            })
        });
        if let Some(append) = dropped {
            let Some(Value::Str(key)) = &append.key else { unreachable!() };
            let value = state.get_mut(key).unwrap();
            *value = value.replacen(text(&append.value), "", 1);
            prop_assert_eq!(measure(&history, Some(&state)).lost_writes, Some(1));
        }
    }

    /// A read missing one acknowledged append that nothing can have replaced is exactly
    /// one stale read, and the checker rejects the history.
    #[test]
    fn one_missed_append_is_one_stale_read(steps in steps(), clients in 1..5usize) {
        let (mut events, _) = linearizable(&steps, clients);
        if let Some((index, element)) = droppable_element(&events) {
            let value = text(&events[index].value).replacen(&element, "", 1);
            events[index].value = Value::Str(value);
            let history = build(&events);
            let anomalies = measure(&history, None);
            prop_assert_eq!(anomalies.stale_reads, 1);
            prop_assert_eq!(anomalies.stale_versions_max, 1);
            let report = check(ModelKind::Kv, None, &history, &CheckOptions::default()).unwrap();
            prop_assert_eq!(report.verdict, Verdict::Violation);
        }
    }
}

/// The README's first run showed this: a put, then appends, read back whole.
#[test]
fn a_put_followed_by_appends_is_read_back_as_base_and_elements() {
    let (events, state) = linearizable(
        &[
            Step { client: 0, advance_ms: 1, kind: 1, key: 0, fate: 99 },
            Step { client: 0, advance_ms: 1, kind: 1, key: 0, fate: 99 },
            Step { client: 0, advance_ms: 1, kind: 1, key: 0, fate: 99 },
            Step { client: 0, advance_ms: 1, kind: 2, key: 0, fate: 99 },
            Step { client: 0, advance_ms: 1, kind: 2, key: 0, fate: 99 },
            Step { client: 0, advance_ms: 1, kind: 2, key: 0, fate: 99 },
            Step { client: 1, advance_ms: 1, kind: 0, key: 0, fate: 99 },
            Step { client: 1, advance_ms: 1, kind: 0, key: 0, fate: 99 },
            Step { client: 1, advance_ms: 1, kind: 0, key: 0, fate: 99 },
        ],
        2,
    );
    assert_eq!(state["k0"], "p1a2;");
    let history = build(&events);
    assert_eq!(history.ops.last().unwrap().result, Value::Str("p1a2;".into()));
    let anomalies = measure(&history, Some(&state));
    assert!(is_clean(&anomalies), "{anomalies:?}");
    assert_eq!(anomalies.acked_writes, 2);
}
