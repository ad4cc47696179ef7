//! Property: every scenario file is either rejected with an error or runs to a verdict —
//! never a panic. Files are the built-ins with random leaves replaced by extreme values,
//! fields deleted and ranges reversed; runs are bounded in events.

use proptest::prelude::*;
use serde_json::Value;

/// Extreme and awkward values for a numeric leaf.
const EXTREMES: [f64; 14] =
    [0.0, -1.0, 1e-9, 0.5, 1.0, 3.0, 1e6, 1e9, 1e15, 1e308, -1e308, 18446744073709551615.0, 4294967296.0, -0.0];

/// The paths of every leaf of `value`.
fn leaves(value: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                path.push(key.clone());
                leaves(child, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                path.push(index.to_string());
                leaves(child, path, out);
                path.pop();
            }
            if items.len() == 2 {
                out.push(path.clone()); // the pair itself, to reverse
            }
        }
        _ => out.push(path.clone()),
    }
}

fn at<'a>(value: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(value, |v, key| match v {
        Value::Array(items) => &mut items[key.parse::<usize>().unwrap()],
        other => &mut other[key.as_str()],
    })
}

/// Applies mutation `(choice, leaf, extreme)` to `scenario`.
fn mutate(scenario: &mut Value, choice: u8, leaf: usize, extreme: usize) {
    let mut all = Vec::new();
    leaves(scenario, &mut Vec::new(), &mut all);
    let path = &all[leaf % all.len()];
    let target = at(scenario, path);
    match (choice % 4, &*target) {
        (_, Value::Array(items)) if items.len() == 2 => {
            let mut reversed = items.clone();
            reversed.reverse();
            *target = Value::Array(reversed);
        }
        (0 | 1, Value::Number(_)) => {
            let number = EXTREMES[extreme % EXTREMES.len()];
            *target = serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number);
            if number.fract() == 0.0 && (0.0..1.9e19).contains(&number) {
                *target = Value::Number((number as u64).into());
            }
        }
        (2, _) => *target = Value::Null,
        _ => *target = Value::Number(((extreme as u64) * 7).into()),
    }
}

fn built_ins() -> Vec<Value> {
    scenarios::library::built_ins().map(|(_, text)| serde_json::from_str(text).unwrap()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn a_scenario_file_is_rejected_or_judged_never_a_panic(
        which in 0usize..64,
        mutations in proptest::collection::vec((0u8..8, 0usize..10_000, 0usize..64), 1..4),
        seed in 0u64..1_000,
    ) {
        let all = built_ins();
        let mut scenario = all[which % all.len()].clone();
        for (choice, leaf, extreme) in mutations {
            mutate(&mut scenario, choice, leaf, extreme);
        }
        let text = serde_json::to_string_pretty(&scenario).unwrap();
        let result = std::panic::catch_unwind(|| {
            let Ok(mut parsed) = scenarios::scenario::parse(&text, "generated.json") else { return };
            // Bounded: a run that reaches the limit is judged unknown.
            parsed.checks.max_events = parsed.checks.max_events.min(20_000);
            parsed.checks.budget_steps = parsed.checks.budget_steps.min(200_000);
            let _ = scenarios::run_cmd::run_scenario(&parsed, seed, None);
        });
        prop_assert!(result.is_ok(), "panicked on:\n{}", text);
    }
}
