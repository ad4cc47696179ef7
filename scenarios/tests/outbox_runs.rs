//! The transactional outbox through the runner: each known-bug variant fails its
//! scripted scenario and is caught by fuzzing on a pinned seed that the correct pattern
//! passes, duplicates are suppressed, and against 2PC with the services partitioned the
//! outbox keeps taking orders.

use checker::Verdict;
use scenarios::library;
use scenarios::run_cmd::run_scenario;
use scenarios::runner::RunOutcome;

fn run(name: &str, variant: Option<&str>, seed: u64) -> RunOutcome {
    let mut scenario = library::resolve(name).unwrap();
    scenario.variant = variant.map(str::to_owned);
    run_scenario(&scenario, seed, None).unwrap()
}

fn metric(outcome: &RunOutcome, name: &str) -> Option<f64> {
    outcome.metrics.protocol.get(name).copied()
}

/// Each variant's scripted scenario and the violation it must give.
const SCRIPTED: [(&str, &str, &str); 5] = [
    ("dual-write", "outbox-lossy-links", "liveness"),
    ("delete-before-ack", "outbox-lossy-links", "liveness"),
    ("no-inbox", "outbox-lossy-links", "exactly-once"),
    ("ack-before-commit", "outbox-consumer-crash", "liveness"),
    ("poll-by-sequence", "outbox-slow-transactions", "liveness"),
];

#[test]
fn each_variant_fails_its_scripted_scenario_which_the_correct_pattern_passes() {
    for (variant, name, kind) in SCRIPTED {
        for seed in 1..=3 {
            let correct = run(name, None, seed);
            assert_eq!(correct.verdict, Verdict::Pass, "{name} seed {seed}: {:?}", correct.violations);
            let buggy = run(name, Some(variant), seed);
            assert_eq!(buggy.violations.first().map(|v| v.kind.as_str()), Some(kind), "{variant} on {name}");
        }
    }
}

#[test]
fn a_redelivery_is_suppressed_by_the_inbox() {
    let outcome = run("outbox-lossy-links", None, 1);
    assert_eq!(metric(&outcome, "effects"), Some(1.0));
    assert_eq!(metric(&outcome, "duplicates_suppressed"), Some(1.0));
    assert!(metric(&outcome, "redeliveries").unwrap() >= 1.0);
}

/// The first failing seed of `dsim fuzz outbox --variant V --seeds 2000`.
const FUZZED: [(&str, u64, &str); 5] = [
    ("dual-write", 1, "liveness"),
    ("no-inbox", 1, "exactly-once"),
    ("ack-before-commit", 18, "liveness"),
    ("delete-before-ack", 1, "liveness"),
    ("poll-by-sequence", 2, "liveness"),
];

#[test]
fn each_variant_is_caught_by_fuzzing_on_its_seed_and_the_correct_pattern_passes_it() {
    for (variant, seed, kind) in FUZZED {
        let buggy = run("outbox", Some(variant), seed);
        assert_eq!(buggy.violations.first().map(|v| v.kind.as_str()), Some(kind), "{variant} seed {seed}");
        let correct = run("outbox", None, seed);
        assert_eq!(correct.verdict, Verdict::Pass, "correct seed {seed}: {:?}", correct.violations);
    }
}

#[test]
fn with_the_services_partitioned_the_outbox_takes_orders_and_2pc_cannot() {
    let a = library::resolve("2pc-services-partitioned").unwrap();
    let b = library::resolve("outbox-services-partitioned").unwrap();
    let seeds: Vec<u64> = (1..=5).collect();
    let comparison = scenarios::compare_cmd::compare(&[a, b], &seeds).unwrap();
    assert_eq!((comparison.verdicts[0].pass, comparison.verdicts[1].pass), (5, 5));
    let share = comparison.figure("orders_ok_share_during_faults").unwrap();
    assert_eq!(share.maxes[0], Some(0.0), "2pc commits nothing while the shard is cut off");
    assert_eq!(share.medians[1], Some(1.0), "the outbox commits every order");
    let depth = comparison.figure("outbox_depth_at_heal").unwrap();
    assert!(depth.medians[1].unwrap() > 20.0, "orders pile up in the outbox: {:?}", depth.medians[1]);
    let drained = comparison.figure("outbox_drained_ms_after_heal").unwrap();
    assert!(drained.maxes[1].unwrap() < 1000.0, "and drain soon after the heal: {:?}", drained.maxes[1]);
    let lag = comparison.figure("lag_ms_max").unwrap();
    assert_eq!(lag.medians[0], None, "2pc has no lag: nothing is deferred");
    assert!(lag.medians[1].unwrap() > 2900.0, "the effects wait for the heal: {:?}", lag.medians[1]);
}

#[test]
fn a_relay_node_of_its_own_keeps_the_guarantees() {
    // The first failing seeds of `dsim fuzz outbox-relay-node --variant V --seeds 2000`.
    for (variant, seed, kind) in
        [("delete-before-ack", 1, "liveness"), ("poll-by-sequence", 1, "liveness"), ("no-inbox", 1, "exactly-once")]
    {
        let buggy = run("outbox-relay-node", Some(variant), seed);
        assert_eq!(buggy.violations.first().map(|v| v.kind.as_str()), Some(kind), "{variant} seed {seed}");
    }
    for seed in 1..=10 {
        let outcome = run("outbox-relay-node", None, seed);
        assert_eq!(outcome.verdict, Verdict::Pass, "seed {seed}: {:?}", outcome.violations);
        assert!(metric(&outcome, "effects").unwrap() > 0.0);
    }
}
