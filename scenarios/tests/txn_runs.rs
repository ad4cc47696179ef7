//! Transactions through the runner: 2PC's blocking, partial commit and conservative
//! abort with their exact figures, Paxos Commit deciding without its coordinator, each
//! known-bug variant failing its scripted scenario and caught by fuzzing on a pinned
//! seed, and the two protocols compared under coordinator outages.

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

fn passed(name: &str) -> RunOutcome {
    let outcome = run(name, None, 1);
    assert_eq!(outcome.verdict, Verdict::Pass, "{name}: {:?} {:?}", outcome.violations, outcome.unknown_reason);
    outcome
}

#[test]
fn a_coordinator_crash_blocks_2pc_participants_until_it_recovers() {
    let outcome = passed("2pc-coordinator-crash");
    // Prepared at 20 ms, the abort learned at 1030 ms: 1010 ms in doubt, both of them.
    assert_eq!(metric(&outcome, "in_doubt_ms_max_participant_1"), Some(1010.0));
    assert_eq!(metric(&outcome, "in_doubt_ms_max_participant_2"), Some(1010.0));
    assert_eq!(metric(&outcome, "lock_hold_ms_p99"), Some(1010.0));
    assert_eq!(metric(&outcome, "coordinator aborts: presumed abort (no record)"), Some(1.0));
    // The first order aborts, the one at 500 ms finds no coordinator, the last commits.
    assert_eq!((metric(&outcome, "commits"), metric(&outcome, "aborts")), (Some(1.0), Some(1.0)));
    // The client of the first never hears (the coordinator that began it is gone): info.
    assert_eq!((outcome.metrics.ops_ok, outcome.metrics.ops_fail, outcome.metrics.ops_info), (1, 0, 2));
}

#[test]
fn paxos_commit_does_not_block_on_the_same_fault() {
    let outcome = passed("paxos-commit-coordinator-crash");
    for participant in 1..=3 {
        let name = format!("in_doubt_ms_max_participant_{participant}");
        assert_eq!(metric(&outcome, &name), Some(10.0), "{name}");
    }
    assert_eq!(metric(&outcome, "commits"), Some(2.0));
}

#[test]
fn a_silent_participant_is_aborted_by_a_recovery_leader() {
    let outcome = passed("paxos-commit-silent-participant");
    assert_eq!((metric(&outcome, "commits"), metric(&outcome, "aborts")), (Some(0.0), Some(1.0)));
    // vote_timeout_ms (200) + inquiry_ms (100) + one Paxos round over 5 ms links.
    assert_eq!(metric(&outcome, "in_doubt_ms_max"), Some(320.0));
}

#[test]
fn a_partial_commit_completes_after_the_heal() {
    let outcome = passed("2pc-partial-commit");
    assert_eq!(metric(&outcome, "commits"), Some(1.0));
    assert!(metric(&outcome, "in_doubt_ms_max_participant_2").unwrap() > 970.0);
}

#[test]
fn a_participant_crash_in_phase_1_aborts_the_transaction() {
    let outcome = passed("2pc-participant-crash");
    assert_eq!(metric(&outcome, "coordinator aborts: vote timeout"), Some(1.0));
    assert_eq!((metric(&outcome, "commits"), metric(&outcome, "aborts")), (Some(3.0), Some(1.0)));
    assert_eq!(metric(&outcome, "abort_rate"), Some(0.25));
}

/// Each variant's scripted scenario: the correct protocol passes it, the variant fails
/// it with this violation.
const SCRIPTED: [(&str, &str, &str); 6] = [
    ("no-decision-log", "2pc-partial-commit", "atomicity"),
    ("unilateral-abort", "2pc-partial-commit", "atomicity"),
    ("early-lock-release", "2pc-last-unit", "isolation"),
    ("presume-commit", "2pc-presumption", "atomicity"),
    ("early-lock-release", "paxos-commit-last-unit", "isolation"),
    ("unforced-cooperative-abort", "2pc-cooperative-abort", "atomicity"),
];

#[test]
fn each_variant_fails_its_scripted_scenario_which_the_correct_protocol_passes() {
    for (variant, name, kind) in SCRIPTED {
        passed(name);
        let buggy = run(name, Some(variant), 1);
        assert_eq!(buggy.violations.first().map(|v| v.kind.as_str()), Some(kind), "{variant} on {name}");
    }
}

/// The first failing seed of `dsim fuzz SCENARIO --variant V --seeds 2000`.
const FUZZED: [(&str, &str, u64, &str); 5] = [
    ("2pc", "no-decision-log", 7, "atomicity"),
    ("2pc", "unilateral-abort", 1, "atomicity"),
    ("2pc", "early-lock-release", 16, "isolation"),
    ("2pc", "presume-commit", 1, "validity"),
    ("paxos-commit", "early-lock-release", 5, "isolation"),
];

#[test]
fn each_variant_is_caught_by_fuzzing_on_its_seed_and_the_correct_protocol_passes_it() {
    for (name, variant, seed, kind) in FUZZED {
        let buggy = run(name, Some(variant), seed);
        assert_eq!(buggy.violations.first().map(|v| v.kind.as_str()), Some(kind), "{name} {variant} seed {seed}");
        let correct = run(name, None, seed);
        assert_eq!(correct.verdict, Verdict::Pass, "correct {name} seed {seed}: {:?}", correct.violations);
    }
}

#[test]
fn the_swarms_pass_their_first_seeds() {
    for name in ["2pc", "paxos-commit"] {
        for seed in 1..=20 {
            let outcome = run(name, None, seed);
            assert_eq!(outcome.verdict, Verdict::Pass, "{name} seed {seed}: {:?}", outcome.violations);
            assert!(metric(&outcome, "commits").unwrap() > 0.0, "{name} seed {seed}");
        }
    }
}

#[test]
fn under_coordinator_outages_paxos_commit_is_in_doubt_far_less() {
    let a = library::resolve("2pc-coordinator-outages").unwrap();
    let b = library::resolve("paxos-commit-coordinator-outages").unwrap();
    let seeds: Vec<u64> = (1..=10).collect();
    let comparison = scenarios::compare_cmd::compare(&[a, b], &seeds).unwrap();
    assert_eq!(comparison.same_faults_seeds, 10);
    assert_eq!((comparison.verdicts[0].violation, comparison.verdicts[1].violation), (0, 0));
    let p99 = comparison.figure("in_doubt_ms_p99").unwrap();
    let (two_pc, paxos_commit) = (p99.medians[0].unwrap(), p99.medians[1].unwrap());
    assert!(two_pc > 10.0 * paxos_commit, "2pc {two_pc} vs paxos-commit {paxos_commit}");
}

#[test]
fn cooperative_termination_learns_a_commit_from_a_peer_instead_of_waiting_for_the_coordinator() {
    let outcome = passed("2pc-cooperative-termination");
    // Prepared at 21 ms, told by the order service at 132 ms.
    assert_eq!(metric(&outcome, "in_doubt_ms_max_participant_2"), Some(111.0));
    assert_eq!((metric(&outcome, "commits"), metric(&outcome, "aborts")), (Some(2.0), Some(0.0)));
    // The same fault without it: the shard waits for the coordinator's restart at 1000 ms.
    let mut scenario = library::resolve("2pc-cooperative-termination").unwrap();
    scenario.settings["cooperative_termination"] = serde_json::Value::Bool(false);
    let without = run_scenario(&scenario, 1, None).unwrap();
    assert_eq!(without.verdict, Verdict::Pass);
    assert_eq!(metric(&without, "in_doubt_ms_max_participant_2"), Some(989.0));
}

/// Cooperative termination with a peer that never voted (`2pc-cooperative-abort`): it
/// aborts when asked, forced to its log, so the late Prepare after its crash gets a no.
#[test]
fn a_peer_that_never_voted_aborts_durably_when_asked() {
    let outcome = passed("2pc-cooperative-abort");
    assert_eq!((metric(&outcome, "commits"), metric(&outcome, "aborts")), (Some(0.0), Some(1.0)));
    assert_eq!(metric(&outcome, "coordinator aborts: a participant voted no"), Some(1.0));
    assert_eq!(metric(&outcome, "in_doubt_ms_max_participant_1"), Some(110.0));
}

/// Blocked time counts doubt only while the participant runs: `2pc-partial-commit` with
/// the in-doubt shard itself down from 100 ms to 600 ms is in doubt as long (989 ms) but
/// blocked 500 ms less.
#[test]
fn blocked_time_leaves_out_the_participants_own_outage() {
    let plain = passed("2pc-partial-commit");
    assert_eq!(metric(&plain, "in_doubt_ms_max_participant_2"), Some(989.0));
    assert_eq!(metric(&plain, "blocked_ms_max"), Some(989.0));
    let mut file: serde_json::Value = serde_json::from_str(library::built_in("2pc-partial-commit").unwrap()).unwrap();
    let schedule = file["nemesis"]["schedule"].as_array_mut().unwrap();
    schedule.push(serde_json::json!({ "at_ms": 100.0, "fault": { "kind": "crash", "node": 2 } }));
    schedule.push(serde_json::json!({ "at_ms": 600.0, "fault": { "kind": "restart", "node": 2 } }));
    let scenario = scenarios::scenario::parse(&file.to_string(), "partial-commit-shard-down.json").unwrap();
    let outcome = run_scenario(&scenario, 1, None).unwrap();
    assert_eq!(outcome.verdict, Verdict::Pass, "{:?}", outcome.violations);
    assert_eq!(metric(&outcome, "in_doubt_ms_max_participant_2"), Some(989.0));
    assert_eq!(metric(&outcome, "blocked_ms_max"), Some(489.0));
}

#[test]
fn cooperative_termination_is_refused_for_paxos_commit_naming_the_field() {
    let mut file: serde_json::Value = serde_json::from_str(library::built_in("paxos-commit").unwrap()).unwrap();
    file["settings"]["cooperative_termination"] = serde_json::Value::Bool(true);
    let text = serde_json::to_string_pretty(&file).unwrap();
    let error = scenarios::scenario::parse(&text, "pc.json").map(|_| ()).unwrap_err().to_string();
    assert!(error.starts_with("pc.json:"), "{error}");
    assert!(error.contains("settings.cooperative_termination: must be false"), "{error}");
}
