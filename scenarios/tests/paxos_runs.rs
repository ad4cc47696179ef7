//! Single-decree Paxos through the runner: the textbook walk-throughs with their exact
//! outcomes, the duel with and without back-off, each known-bug variant caught by its
//! scripted scenario and by fuzzing on a pinned seed that the correct protocol passes.

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

/// Chosen value, round and proposer (1 = A) of a run that passed.
fn chosen(outcome: &RunOutcome) -> (f64, f64, f64) {
    assert_eq!(outcome.verdict, Verdict::Pass, "{:?}", outcome.violations);
    (
        metric(outcome, "chosen_value").expect("a value chosen"),
        metric(outcome, "chosen_round").unwrap(),
        metric(outcome, "chosen_proposer").unwrap(),
    )
}

#[test]
fn the_walkthrough_chooses_8_at_proposal_4() {
    let outcome = run("paxos-walkthrough", None, 1);
    assert_eq!(chosen(&outcome), (8.0, 4.0, 2.0));
    // Chosen when Y accepts [4.B, 8] at 8 ms (Z accepted it at 7 ms); both learners learn it.
    assert_eq!(metric(&outcome, "chosen_at_ms"), Some(8.0));
    assert_eq!(metric(&outcome, "learners_learned"), Some(2.0));
    assert_eq!(metric(&outcome, "rounds"), Some(2.0));
}

#[test]
fn without_the_early_accept_b_proposes_its_own_5() {
    let outcome = run("paxos-walkthrough-no-accept", None, 1);
    assert_eq!(chosen(&outcome), (5.0, 4.0, 2.0));
    // A's Accept(2, 8) is refused everywhere: the only acceptances are of [4.B, 5].
    assert_eq!(metric(&outcome, "accepts"), Some(3.0));
}

#[test]
fn value_at_prepare_chooses_8_as_its_tellings_say_and_fuzzing_shows_it_unsafe() {
    let outcome = run("paxos-walkthrough-no-accept", Some("value-at-prepare"), 1);
    assert_eq!(chosen(&outcome), (8.0, 4.0, 2.0));
    let fuzzed = run("paxos", Some("value-at-prepare"), 3);
    let first = fuzzed.violations.first().expect("two values chosen");
    assert_eq!(first.kind, "agreement", "{first:?}");
    assert!(first.message.starts_with("two values chosen"), "{}", first.message);
    let replay = scenarios::run_cmd::replay_command("paxos", &fuzzed, false);
    assert_eq!(replay, "dsim run paxos --seed 3 --variant value-at-prepare");
}

#[test]
fn dueling_proposers_without_back_off_never_choose() {
    let outcome = run("paxos-duel", None, 1);
    assert_eq!(outcome.verdict, Verdict::Violation);
    let first = &outcome.violations[0];
    assert_eq!(first.kind, "liveness");
    assert!(
        first.message.starts_with("no value was chosen; proposal numbers tried (51): 1.A 1.B 2.A 3.B 4.A 5.B"),
        "{}",
        first.message
    );
    assert_eq!(metric(&outcome, "accepts"), Some(0.0));
    assert_eq!(metric(&outcome, "chosen_value"), None);
    assert_eq!(outcome.stop, "at the liveness probe, which failed");
    for seed in 1..=20 {
        let backoff = run("paxos-duel-backoff", None, seed);
        assert!(chosen(&backoff).0 == 1.0 || chosen(&backoff).0 == 2.0, "seed {seed}");
    }
}

/// Each variant's scripted scenario: the correct protocol passes it, the variant fails
/// it with this violation.
const SCRIPTED: [(&str, &str, &str); 5] = [
    ("forget-promise", "paxos-acceptor-restart", "agreement"),
    ("ignore-accepted", "paxos-late-proposer", "agreement"),
    ("reuse-ballot", "paxos-same-round", "agreement"),
    ("learn-from-minority", "paxos-walkthrough", "learned-not-chosen"),
    ("value-at-prepare", "paxos-acceptor-restart", "agreement"),
];

/// The first failing seed of `dsim fuzz paxos --variant V --seeds 2000`.
const FUZZED: [(&str, u64, &str); 5] = [
    ("forget-promise", 27, "promise-decreased"),
    ("ignore-accepted", 2, "agreement"),
    ("reuse-ballot", 1, "agreement"),
    ("learn-from-minority", 13, "learned-not-chosen"),
    ("value-at-prepare", 3, "agreement"),
];

#[test]
fn each_variant_fails_its_scripted_scenario_which_the_correct_protocol_passes() {
    for (variant, name, kind) in SCRIPTED {
        assert_eq!(run(name, None, 1).verdict, Verdict::Pass, "correct {name}");
        let buggy = run(name, Some(variant), 1);
        assert_eq!(buggy.violations.first().map(|v| v.kind.as_str()), Some(kind), "{variant} on {name}");
    }
}

#[test]
fn each_variant_is_caught_by_fuzzing_on_its_seed_and_the_correct_protocol_passes_it() {
    for (variant, seed, kind) in FUZZED {
        let buggy = run("paxos", Some(variant), seed);
        assert_eq!(buggy.violations.first().map(|v| v.kind.as_str()), Some(kind), "{variant} seed {seed}");
        let correct = run("paxos", None, seed);
        assert_eq!(correct.verdict, Verdict::Pass, "correct paxos at seed {seed}: {:?}", correct.violations);
    }
}

#[test]
fn the_forgetful_acceptor_is_caught_lowering_its_promise() {
    let outcome = run("paxos", Some("forget-promise"), 27);
    let first = &outcome.violations[0];
    assert!(first.message.contains("an acceptor's promise must never decrease, across restarts too"), "{first:?}");
}

#[test]
fn the_swarm_passes_its_first_hundred_seeds() {
    for seed in 1..=100 {
        let outcome = run("paxos", None, seed);
        assert_eq!(
            outcome.verdict,
            Verdict::Pass,
            "seed {seed}: {:?} {:?}",
            outcome.violations,
            outcome.unknown_reason
        );
        assert!(metric(&outcome, "chosen_value").is_some());
    }
}
