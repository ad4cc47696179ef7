//! Multi-Paxos through the runner: the built-ins pass with the correct protocol and a
//! linearizable history, each known-bug variant fails its scripted scenario and is
//! caught by fuzzing on a pinned seed that the correct protocol passes, and a torn
//! overwrite of an acceptance (the bug fuzzing found in the first version) stays fixed.

use checker::Verdict;
use scenarios::library;
use scenarios::run_cmd::run_scenario;
use scenarios::runner::RunOutcome;

fn run(name: &str, variant: Option<&str>, seed: u64) -> RunOutcome {
    let mut scenario = library::resolve(name).unwrap();
    scenario.variant = variant.map(str::to_owned);
    run_scenario(&scenario, seed, None).unwrap()
}

fn first_kind(outcome: &RunOutcome) -> Option<&str> {
    outcome.violations.first().map(|v| v.kind.as_str())
}

#[test]
fn built_ins_pass_with_a_linearizable_history_and_operations_done() {
    for name in ["multipaxos", "multipaxos-leader-isolation", "multipaxos-stale-follower-leads", "multipaxos-amnesia"] {
        for seed in 1..=3 {
            let outcome = run(name, None, seed);
            assert_eq!(outcome.verdict, Verdict::Pass, "{name} seed {seed}: {:?}", outcome.violations);
            assert_eq!(outcome.history_check, "required");
            assert!(outcome.metrics.ops_ok > 20, "{name} seed {seed}: {:?}", outcome.metrics);
            assert!(outcome.metrics.protocol["slots_chosen"] > 20.0);
        }
    }
}

#[test]
fn a_new_leader_fills_what_it_does_not_know_from_the_promises() {
    // Server 0 missed 1.5 s of commands; leading with its high ballot, it must re-propose
    // them; the variant that ignores reports past its own last slot chooses twice.
    let outcome = run("multipaxos-stale-follower-leads", None, 1);
    assert!(outcome.metrics.protocol["leaders_elected"] >= 2.0);
    let buggy = run("multipaxos-stale-follower-leads", Some("skip-phase1-empty"), 1);
    let first = buggy.violations.first().expect("a violation");
    assert_eq!(first.kind, "agreement");
    assert!(first.message.starts_with("two commands chosen at slot"), "{}", first.message);
}

#[test]
fn forgetting_acceptances_on_restart_loses_chosen_commands() {
    assert_eq!(first_kind(&run("multipaxos-amnesia", Some("forget-promise"), 1)), Some("agreement"));
}

/// The first failing seed of `dsim fuzz multipaxos --variant V --seeds 2000`.
const FUZZED: [(&str, u64, &str); 2] =
    [("skip-phase1-empty", 1, "agreement"), ("forget-promise", 3, "accepted-below-promise")];

#[test]
fn each_variant_is_caught_by_fuzzing_on_its_seed_and_the_correct_protocol_passes_it() {
    for (variant, seed, kind) in FUZZED {
        assert_eq!(first_kind(&run("multipaxos", Some(variant), seed)), Some(kind), "{variant} seed {seed}");
        let correct = run("multipaxos", None, seed);
        assert_eq!(correct.verdict, Verdict::Pass, "correct at seed {seed}: {:?}", correct.violations);
    }
}

#[test]
fn a_torn_write_cannot_destroy_a_synced_acceptance() {
    // Seed 537: a leader re-proposing slot 40 is killed mid-write with a torn write. With
    // one record per slot, overwritten in place, the torn record destroyed the synced
    // acceptance and a later leader chose a no-op there. Records are per slot and ballot.
    assert_eq!(run("multipaxos", None, 537).verdict, Verdict::Pass);
}
