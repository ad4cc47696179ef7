//! The database unique-index lock through the runner: its three textbook problems and
//! their fixes as scripted runs with exact outcomes, and its swarms.

use checker::Verdict;
use scenarios::library;
use scenarios::run_cmd::run_scenario;
use scenarios::runner::RunOutcome;

fn run(name: &str, variant: Option<&str>, seed: u64) -> RunOutcome {
    let mut scenario = library::resolve(name).unwrap();
    scenario.variant = variant.map(str::to_owned);
    run_scenario(&scenario, seed, None).unwrap()
}

fn with(name: &str, overrides: &str, seed: u64) -> RunOutcome {
    let scenario = scenarios::compare_cmd::system(&format!("{name}:{overrides}")).unwrap();
    run_scenario(&scenario, seed, None).unwrap()
}

fn figure(outcome: &RunOutcome, name: &str) -> f64 {
    outcome.metrics.protocol[name]
}

#[test]
fn a_crashed_holder_leaves_its_row_for_ever_unless_rows_expire() {
    let stuck = run("db-lock-holder-crash", None, 1);
    let first = stuck.violations.first().expect("a violation");
    assert_eq!(first.kind, "liveness");
    assert!(
        first.message.ends_with(
            "the lock row of c2-13 (version 2) is still in the table and has no expiry, and no client holds it any \
             more (its holder crashed without deleting it)"
        ),
        "{}",
        first.message
    );
    assert_eq!(figure(&stuck, "acquisitions"), 2.0);
    assert_eq!(figure(&stuck, "inserts_refused"), 381.0);
    let swept = with("db-lock-holder-crash", "expiry=true", 1);
    assert_eq!(swept.verdict, Verdict::Pass, "{:?}", swept.violations);
    assert!(figure(&swept, "rows_swept") >= 1.0);
}

#[test]
fn acquiring_never_blocks_so_waiting_clients_poll_the_database() {
    let polling = run("db-lock-polling", None, 1);
    assert_eq!(polling.verdict, Verdict::Pass, "{:?}", polling.violations);
    assert_eq!(figure(&polling, "acquisitions"), 52.0);
    assert_eq!(figure(&polling, "inserts_refused"), 1220.0);
    assert!((figure(&polling, "inserts_refused_per_acquisition") - 23.46).abs() < 0.01);
}

#[test]
fn a_nested_acquire_fails_against_the_callers_own_row_unless_the_lock_is_reentrant() {
    let stuck = run("db-lock-reentry", None, 1);
    let first = stuck.violations.first().expect("a violation");
    assert_eq!(first.kind, "liveness");
    assert!(first.message.contains("50 nested acquisitions failed against the caller's own row"), "{}", first.message);
    assert_eq!((figure(&stuck, "acquisitions"), figure(&stuck, "reentry_failures")), (51.0, 50.0));
    let reentrant = with("db-lock-reentry", "reentrant=true", 1);
    assert_eq!(reentrant.verdict, Verdict::Pass, "{:?}", reentrant.violations);
    assert_eq!(figure(&reentrant, "reentry_failures"), 0.0);
    assert_eq!(figure(&reentrant, "reentries"), figure(&reentrant, "acquisitions"));
}

#[test]
fn expiry_brings_back_the_gc_pause_and_the_row_version_fences_it() {
    let paused = run("db-lock-expiry-gc-pause", None, 1);
    let first = paused.violations.first().expect("a violation");
    assert_eq!(first.kind, "unsafe-access");
    assert_eq!(
        first.message,
        "the storage accepted a write from c3-1 (lock generation 1) after accepting c2-11 (generation 7)"
    );
    assert_eq!(figure(&paused, "rows_swept"), 1.0);
    let fenced = run("db-lock-expiry-gc-pause", Some("fencing"), 1);
    assert_eq!(fenced.verdict, Verdict::Pass, "{:?}", fenced.violations);
}

#[test]
fn the_swarms_hold_what_the_design_claims_and_hostile_faults_break_it() {
    for seed in 1..=20 {
        let safe = run("db-lock", None, seed);
        assert_eq!(safe.verdict, Verdict::Pass, "seed {seed}: {:?}", safe.violations);
        let fenced = run("db-lock-hostile", Some("fencing"), seed);
        assert!(fenced.violations.iter().all(|v| v.kind != "unsafe-access"), "seed {seed}: {:?}", fenced.violations);
    }
    // `dsim fuzz db-lock-hostile`: a pause past the row's expiry, seed 2.
    let hostile = run("db-lock-hostile", None, 2);
    assert_eq!(hostile.violations.first().map(|v| v.kind.as_str()), Some("mutual-exclusion"));
}
