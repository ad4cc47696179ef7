//! `dsim bench engine` and the engine's determinism across processes.

use std::process::Command;

fn dsim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dsim")).args(args).output().expect("dsim runs")
}

fn fingerprint_of(seed: &str) -> String {
    let output = dsim(&["bench", "engine", "--events", "100000", "--seed", seed, "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert!(value["events_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(value["events"], 100_000);
    value["fingerprint"].as_str().unwrap().to_owned()
}

#[test]
fn same_seed_same_fingerprint_across_processes() {
    let first = fingerprint_of("5");
    let second = fingerprint_of("5");
    let other = fingerprint_of("6");
    assert_eq!(first.len(), 16);
    assert_eq!(first, second);
    assert_ne!(first, other);
}

#[test]
fn unknown_command_is_a_usage_error() {
    let output = dsim(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    let output = dsim(&["bench", "engine", "--events", "-5"]);
    assert_eq!(output.status.code(), Some(2));
}
