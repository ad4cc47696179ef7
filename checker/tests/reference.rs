//! The search against a brute-force reference: every order consistent with real time.
//!
//! The reference applies each model's rules directly to values (no compiled ops, no
//! interning, no memo), tries every order in which no operation precedes one that
//! completed before it was invoked, and lets indeterminate operations take effect or not.

use std::collections::BTreeMap;

use checker::history::{Event, EventType, History, HistoryBuilder, Outcome};
use checker::{CheckOptions, ModelKind, Value, Verdict, check};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// One generated operation: what it does and when.
#[derive(Clone, Debug)]
struct GenOp {
    f: &'static str,
    key: Option<Value>,
    value: Value,
    result: Value,
    start: u8,
    length: u8,
    /// 0: ok, 1: fail, 2: info, 3: never completed.
    ending: u8,
}

fn events_of(ops: &[GenOp]) -> Vec<Event> {
    // (time, order, op, is_invoke): one process per operation, so any overlap is legal.
    let mut points = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        points.push((u32::from(op.start) * 2, i, true));
        if op.ending != 3 {
            points.push((u32::from(op.start) * 2 + u32::from(op.length) * 2 + 1, i, false));
        }
    }
    points.sort();
    points
        .into_iter()
        .enumerate()
        .map(|(line, (_, i, invoke))| {
            let op = &ops[i];
            let kind = match (invoke, op.ending) {
                (true, _) => EventType::Invoke,
                (false, 0) => EventType::Ok,
                (false, 1) => EventType::Fail,
                _ => EventType::Info,
            };
            let value = if invoke { op.value.clone() } else { op.result.clone() };
            Event {
                process: Some(i as u64),
                kind,
                f: op.f.into(),
                key: op.key.clone(),
                value,
                time_ns: None,
                line: line + 1,
                column: 1,
            }
        })
        .collect()
}

fn history_of(ops: &[GenOp]) -> History {
    let mut builder = HistoryBuilder::default();
    for event in events_of(ops) {
        builder.push(event).unwrap();
    }
    builder.finish()
}

// ------------------------------------------------------------------ reference semantics

#[derive(Clone, Debug, PartialEq)]
enum RefState {
    Register(Value),
    Kv(BTreeMap<String, String>),
    Multi(BTreeMap<String, Value>),
    Mutex(bool),
}

fn text(value: &Value) -> String {
    match value {
        Value::Str(s) => s.clone(),
        Value::Nil => String::new(),
        other => other.to_string(),
    }
}

fn ref_step(kind: ModelKind, initial: &Value, state: &RefState, op: &checker::Op) -> Option<RefState> {
    let ok = op.outcome == Outcome::Ok;
    match (state, op.f.as_str()) {
        (RefState::Register(v), "read") => {
            let unknown = !ok || (op.result.is_nil() && !initial.is_nil());
            (unknown || op.result == *v).then(|| state.clone())
        }
        (RefState::Register(_), "write") => Some(RefState::Register(op.value.clone())),
        (RefState::Register(v), "cas") if kind == ModelKind::CasRegister => {
            let pair = op.value.as_vec().unwrap();
            (pair[0] == *v).then(|| RefState::Register(pair[1].clone()))
        }
        (RefState::Kv(map), f) => {
            let key = text(op.key.as_ref().unwrap());
            let current = map.get(&key).cloned().unwrap_or_default();
            let mut next = map.clone();
            match f {
                "get" => return (!ok || text(&op.result) == current).then(|| state.clone()),
                "put" => next.insert(key, text(&op.value)),
                "append" => next.insert(key, current + &text(&op.value)),
                "cas" => {
                    let pair = op.value.as_vec().unwrap();
                    if text(&pair[0]) != current {
                        return None;
                    }
                    next.insert(key, text(&pair[1]))
                }
                _ => unreachable!(),
            };
            Some(RefState::Kv(next))
        }
        (RefState::Multi(map), "txn") => {
            let mut next = map.clone();
            let micros = if ok { &op.result } else { &op.value };
            for micro in micros.as_vec().unwrap() {
                let parts = micro.as_vec().unwrap();
                let key = parts[1].as_name().unwrap().to_owned();
                let current =
                    next.get(&key).cloned().unwrap_or_else(|| initial.get(&key).cloned().unwrap_or(Value::Nil));
                match parts[0].as_name().unwrap() {
                    "read" => {
                        let initial_of_key = initial.get(&key).cloned().unwrap_or(Value::Nil);
                        let unknown = !ok || (parts[2].is_nil() && !initial_of_key.is_nil());
                        if !unknown && parts[2] != current {
                            return None;
                        }
                    }
                    _ => {
                        next.insert(key, parts[2].clone());
                    }
                }
            }
            Some(RefState::Multi(next))
        }
        (RefState::Mutex(held), "acquire") => (!held).then_some(RefState::Mutex(true)),
        (RefState::Mutex(held), "release") => held.then_some(RefState::Mutex(false)),
        _ => panic!("unexpected {op:?} in {state:?}"),
    }
}

fn reference(kind: ModelKind, initial: &Value, history: &History) -> bool {
    let ops: Vec<&checker::Op> = history.ops.iter().filter(|op| op.outcome != Outcome::Fail).collect();
    let state = match kind {
        ModelKind::Register | ModelKind::CasRegister => RefState::Register(initial.clone()),
        ModelKind::Kv => RefState::Kv(BTreeMap::new()),
        ModelKind::MultiRegister => RefState::Multi(BTreeMap::new()),
        ModelKind::Mutex => RefState::Mutex(false),
    };
    let mut done = vec![false; ops.len()];
    explore(kind, initial, &ops, &mut done, &state)
}

fn explore(kind: ModelKind, initial: &Value, ops: &[&checker::Op], done: &mut [bool], state: &RefState) -> bool {
    let ok_left = (0..ops.len()).any(|i| !done[i] && ops[i].outcome == Outcome::Ok);
    if !ok_left {
        return true;
    }
    for i in 0..ops.len() {
        if done[i] {
            continue;
        }
        // i may go next only if no pending op completed before i was invoked.
        let blocked = (0..ops.len()).any(|j| {
            !done[j] && j != i && ops[j].outcome == Outcome::Ok && ops[j].complete_index.unwrap() < ops[i].invoke_index
        });
        if blocked {
            continue;
        }
        if let Some(next) = ref_step(kind, initial, state, ops[i]) {
            done[i] = true;
            let found = explore(kind, initial, ops, done, &next);
            done[i] = false;
            if found {
                return true;
            }
        }
    }
    false
}

// ------------------------------------------------------------------ generators

fn small_int() -> impl Strategy<Value = Value> {
    prop_oneof![Just(Value::Nil), (0i64..3).prop_map(Value::Int)]
}

fn timing() -> impl Strategy<Value = (u8, u8, u8)> {
    (0u8..10, 0u8..6, prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)])
}

fn register_op(cas: bool) -> impl Strategy<Value = GenOp> {
    let f = if cas {
        prop_oneof![Just("read"), Just("write"), Just("cas")].boxed()
    } else {
        prop_oneof![Just("read"), Just("write")].boxed()
    };
    (f, (0i64..3), (0i64..3), small_int(), timing()).prop_map(|(f, a, b, read, (start, length, ending))| {
        let (value, result) = match f {
            "read" => (Value::Nil, read),
            "write" => (Value::Int(a), Value::Int(a)),
            _ => {
                let pair = Value::Vec(vec![Value::Int(a), Value::Int(b)]);
                (pair.clone(), pair)
            }
        };
        GenOp { f, key: None, value, result, start, length, ending }
    })
}

/// A kv operation: `arg` is what a put, append or cas writes, `read` what a get returns
/// (and a cas expects).
fn kv_gen_op(f: &'static str, key: &str, arg: &str, read: &str, (start, length, ending): (u8, u8, u8)) -> GenOp {
    let (value, result) = match f {
        "get" => (Value::Nil, Value::Str(read.into())),
        "cas" => {
            let pair = Value::Vec(vec![Value::Str(read.into()), Value::Str(arg.into())]);
            (pair.clone(), pair)
        }
        _ => (Value::Str(arg.into()), Value::Str(arg.into())),
    };
    GenOp { f, key: Some(Value::Str(key.into())), value, result, start, length, ending }
}

fn kv_op() -> impl Strategy<Value = GenOp> {
    let words = prop_oneof![Just(""), Just("x"), Just("y"), Just("xy"), Just("yx"), Just("xx")];
    (
        prop_oneof![Just("get"), Just("put"), Just("append"), Just("cas")],
        prop_oneof![Just("a"), Just("b")],
        prop_oneof![Just("x"), Just("y")],
        words,
        timing(),
    )
        .prop_map(|(f, key, arg, read, timing)| kv_gen_op(f, key, arg, read, timing))
}

/// Mostly appends and reads on one key, now and then a put: the shape where the kv model
/// collapses values no read saw and prunes reads that can no longer be satisfied.
fn kv_append_op() -> impl Strategy<Value = GenOp> {
    let reads =
        prop_oneof![Just(""), Just("x"), Just("xy"), Just("yx"), Just("xyz"), Just("yxz"), Just("z"), Just("zx")];
    (
        prop_oneof![4 => Just("get"), 5 => Just("append"), 1 => Just("put"), 1 => Just("cas")],
        prop_oneof![Just("x"), Just("y"), Just("z")],
        reads,
        timing(),
    )
        .prop_map(|(f, arg, read, timing)| kv_gen_op(f, "k", arg, read, timing))
}

fn multi_op() -> impl Strategy<Value = GenOp> {
    let micro = (prop_oneof![Just("read"), Just("write")], prop_oneof![Just("x"), Just("y")], (0i64..3), small_int());
    (proptest::collection::vec(micro, 1..3), timing()).prop_map(|(micros, (start, length, ending))| {
        let mut invoke = Vec::new();
        let mut complete = Vec::new();
        for (f, key, write, read) in micros {
            let key = Value::Keyword(key.into());
            let f_value = Value::Keyword(f.into());
            if f == "read" {
                invoke.push(Value::Vec(vec![f_value.clone(), key.clone(), Value::Nil]));
                complete.push(Value::Vec(vec![f_value, key, read]));
            } else {
                let w = Value::Vec(vec![f_value, key, Value::Int(write)]);
                invoke.push(w.clone());
                complete.push(w);
            }
        }
        GenOp { f: "txn", key: None, value: Value::Vec(invoke), result: Value::Vec(complete), start, length, ending }
    })
}

fn mutex_op() -> impl Strategy<Value = GenOp> {
    (prop_oneof![Just("acquire"), Just("release")], timing()).prop_map(|(f, (start, length, ending))| GenOp {
        f,
        key: None,
        value: Value::Nil,
        result: Value::Nil,
        start,
        length,
        ending,
    })
}

fn agree(kind: ModelKind, initial: Value, ops: &[GenOp]) -> Result<(), TestCaseError> {
    let history = history_of(ops);
    let expected = reference(kind, &initial, &history);
    for split in [true, false] {
        let report = check(kind, Some(&initial), &history, &CheckOptions { split, ..CheckOptions::default() }).unwrap();
        let verdict = if expected { Verdict::Pass } else { Verdict::Violation };
        prop_assert_eq!(report.verdict, verdict, "split {}: {:#?}", split, history.ops);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn register_agrees(ops in proptest::collection::vec(register_op(false), 1..=8)) {
        agree(ModelKind::Register, Value::Nil, &ops)?;
    }

    #[test]
    fn cas_register_agrees(ops in proptest::collection::vec(register_op(true), 1..=8), zero in any::<bool>()) {
        let initial = if zero { Value::Int(0) } else { Value::Nil };
        agree(ModelKind::CasRegister, initial, &ops)?;
    }

    #[test]
    fn kv_agrees(ops in proptest::collection::vec(kv_op(), 1..=8)) {
        agree(ModelKind::Kv, Value::Nil, &ops)?;
    }

    #[test]
    fn kv_appends_agree(ops in proptest::collection::vec(kv_append_op(), 1..=9)) {
        agree(ModelKind::Kv, Value::Nil, &ops)?;
    }

    #[test]
    fn multi_register_agrees(ops in proptest::collection::vec(multi_op(), 1..=8), zero in any::<bool>()) {
        let initial = if zero { checker::edn::parse("{:x 0 :y 0}").unwrap() } else { Value::Nil };
        agree(ModelKind::MultiRegister, initial, &ops)?;
    }

    #[test]
    fn mutex_agrees(ops in proptest::collection::vec(mutex_op(), 1..=8)) {
        agree(ModelKind::Mutex, Value::Nil, &ops)?;
    }
}

/// The generators produce both verdicts often, so the agreement above means something.
#[test]
fn reference_sees_both_verdicts() {
    let runner_config = ProptestConfig { cases: 200, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(runner_config);
    let mut verdicts = [0usize; 2];
    let strategy = proptest::collection::vec(register_op(true), 1..=8);
    for _ in 0..200 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        verdicts[usize::from(reference(ModelKind::CasRegister, &Value::Nil, &history_of(&ops)))] += 1;
    }
    assert!(verdicts[0] > 20 && verdicts[1] > 20, "{verdicts:?}");
    let mut verdicts = [0usize; 2];
    let strategy = proptest::collection::vec(kv_append_op(), 1..=9);
    for _ in 0..200 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        verdicts[usize::from(reference(ModelKind::Kv, &Value::Nil, &history_of(&ops)))] += 1;
    }
    assert!(verdicts[0] > 20 && verdicts[1] > 20, "kv appends: {verdicts:?}");
}
