//! Raft through the runner: every known-bug variant caught on a pinned seed that the
//! correct protocol passes, the scripted Figure 8 both ways, and determinism of every
//! built-in scenario.

use checker::Verdict;
use scenarios::library;
use scenarios::run_cmd::run_scenario;
use scenarios::scenario::Scenario;

fn scenario(name: &str, variant: Option<&str>) -> Scenario {
    let mut scenario = library::resolve(name).unwrap();
    scenario.variant = variant.map(str::to_owned);
    scenario
}

fn first_violation(name: &str, variant: Option<&str>, seed: u64) -> Option<String> {
    let outcome = run_scenario(&scenario(name, variant), seed, None).unwrap();
    outcome.violations.first().map(|v| v.kind.clone())
}

/// Seeds found by `dsim fuzz raft --variant V` (the first failing seed of each).
const CAUGHT: [(&str, u64, &str); 9] = [
    ("commit-old-term", 3, "leader-completeness"),
    ("vote-without-log-check", 1, "leader-completeness"),
    // A restarted server votes a second time in a term (11 of 2,000 seeds).
    ("volatile-vote", 272, "election-safety"),
    ("volatile-learned-term", 3, "term-monotonic"),
    ("stale-snapshot-installed", 2, "applied-order"),
    ("no-truncate", 1, "log-matching"),
    // A crash between installing a snapshot and deleting the replaced log (node 1).
    ("stale-suffix-after-snapshot", 1334, "log-matching"),
    ("unsynced-log", 1, "leader-completeness"),
    // Server 0 lost entries it had acknowledged; it refuses the leader's next append at
    // its match index, which the leader takes for a stale refusal: it never catches up.
    ("unsynced-log", 45, "catch-up"),
];

/// `raft-crashy`, where crashes in the middle of writes dominate, reaches the recovery
/// bugs sooner: `dsim fuzz raft-crashy --variant V --seeds 2000`'s first failing seeds.
#[test]
fn the_crashy_swarm_catches_the_recovery_bugs() {
    for (variant, seed, kind) in
        [("stale-suffix-after-snapshot", 805, "log-matching"), ("unsynced-log", 3, "leader-completeness")]
    {
        assert_eq!(first_violation("raft-crashy", Some(variant), seed).as_deref(), Some(kind), "{variant} seed {seed}");
        assert_eq!(first_violation("raft-crashy", None, seed), None, "correct raft-crashy seed {seed}");
    }
}

#[test]
fn each_variant_is_caught_on_its_seed_and_the_correct_protocol_passes_it() {
    for (variant, seed, kind) in CAUGHT {
        assert_eq!(first_violation("raft", Some(variant), seed).as_deref(), Some(kind), "{variant} seed {seed}");
        let correct = run_scenario(&scenario("raft", None), seed, None).unwrap();
        assert_eq!(correct.verdict, Verdict::Pass, "correct raft at seed {seed}: {:?}", correct.violations);
    }
}

#[test]
fn figure8_fails_only_with_commit_old_term() {
    let correct = run_scenario(&scenario("raft-figure8", None), 1, None).unwrap();
    assert_eq!(correct.verdict, Verdict::Pass, "{:?}", correct.violations);
    let buggy = run_scenario(&scenario("raft-figure8", Some("commit-old-term")), 1, None).unwrap();
    let first = buggy.violations.first().expect("a violation");
    assert_eq!(first.kind, "leader-completeness");
    assert_eq!(first.t_ns, 1_595_000_000);
    assert_eq!(first.node, Some(4));
    assert!(
        first.message.contains("without the entry of term 2 at index 2 that server 0 applied (committed by term 4)")
    );
}

/// Pre-vote's promise, judged (`pre-vote-stability`): the term never rises while a
/// leader reaches a majority. Each scripted scenario breaks one rule of pre-vote and the
/// check fires at the candidacy; the correct protocol keeps term 1 and passes.
#[test]
fn pre_vote_stability_fires_on_each_broken_pre_vote_rule() {
    for (name, variant, t_ms, node) in [
        // A server still hearing the leader says yes on the log alone.
        ("raft-disruptive-server", "pre-vote-log-only", 680, 4),
        // A yes of an earlier round, delivered 400 ms late, counts.
        ("raft-pre-vote-late-answers", "pre-vote-any-round", 980, 2),
    ] {
        let correct = run_scenario(&scenario(name, None), 1, None).unwrap();
        assert_eq!(correct.verdict, Verdict::Pass, "{name}: {:?}", correct.violations);
        let buggy = run_scenario(&scenario(name, Some(variant)), 1, None).unwrap();
        let first = buggy.violations.first().expect("a violation");
        assert_eq!((first.kind.as_str(), first.t_ns, first.node), ("pre-vote-stability", t_ms * 1_000_000, Some(node)));
        assert!(
            first.message.contains("raised the term to 2 while leader 0 of term 1 reached a majority"),
            "{}",
            first.message
        );
    }
    // The swarm: `dsim fuzz raft-pre-vote --variant pre-vote-log-only`'s first failing seed.
    assert_eq!(first_violation("raft-pre-vote", Some("pre-vote-log-only"), 3).as_deref(), Some("pre-vote-stability"));
    assert_eq!(first_violation("raft-pre-vote", None, 3), None);
}

/// Figure 2's rules that fuzzing seldom reaches, scripted, each with the variant that
/// breaks it: a term learned without voting must be durable before a crash (the
/// `term-monotonic` check), and a snapshot the server already committed past must
/// change nothing (a late duplicate InstallSnapshot; the `applied-order` check).
#[test]
fn figure2_rules_scripted_each_caught_when_broken() {
    for (name, variant, kind, t_ms, node, says) in [
        (
            "raft-learned-term-crash",
            "volatile-learned-term",
            "term-monotonic",
            620,
            1,
            "server 1 is in term 1, but it had been in term 4",
        ),
        (
            "raft-late-snapshot",
            "stale-snapshot-installed",
            "applied-order",
            1_310,
            2,
            "server 2 installed a snapshot up to index 36 after applying up to index 50",
        ),
    ] {
        let correct = run_scenario(&scenario(name, None), 1, None).unwrap();
        assert_eq!(correct.verdict, Verdict::Pass, "{name}: {:?}", correct.violations);
        let buggy = run_scenario(&scenario(name, Some(variant)), 1, None).unwrap();
        let first = buggy.violations.first().expect("a violation");
        assert_eq!((first.kind.as_str(), first.t_ns, first.node), (kind, t_ms * 1_000_000, Some(node)), "{name}");
        assert!(first.message.contains(says), "{}", first.message);
    }
    // The late snapshot reaches server 2 after it applied further entries: the correct
    // server ignores it and still applies every entry once.
    let correct = run_scenario(&scenario("raft-late-snapshot", None), 1, None).unwrap();
    assert!(correct.metrics.ops_ok > 50, "{:?}", correct.metrics);
}

/// The check counts a hearer only if neither a restart nor a clock fault struck it since
/// the candidate's pre-vote round started: otherwise it might have said yes. Server 4's
/// round starts at 0.575 s; with the clocks of servers 1-3 nudged 1 ms at 0.578 s no
/// majority is certain and nothing is reported; nudged at 0.2 s, before the round, they
/// are counted again.
#[test]
fn pre_vote_stability_does_not_count_hearers_whose_clock_changed_in_the_window() {
    let nudged_at = |at_ms: f64| {
        let mut nudged = scenario("raft-disruptive-server", Some("pre-vote-log-only"));
        for node in 1..=3 {
            let fault = sim_core::Fault::ClockJump { node, delta_ms: 1.0 };
            nudged.nemesis.schedule.push(scenarios::scenario::Action { at_ms, fault, target: None });
        }
        let outcome = run_scenario(&nudged, 1, None).unwrap();
        outcome.violations.first().map(|v| (v.kind.clone(), v.t_ns / 1_000_000))
    };
    assert_eq!(nudged_at(200.0), Some(("pre-vote-stability".to_owned(), 680)));
    assert!(nudged_at(578.0).is_none_or(|(kind, _)| kind != "pre-vote-stability"), "{:?}", nudged_at(578.0));
}

#[test]
fn scripted_scenarios_pass_with_the_correct_protocol() {
    for name in ["raft-leader-isolation", "raft-minority-partition", "raft-crash-restart"] {
        for seed in 1..=3 {
            let outcome = run_scenario(&scenario(name, None), seed, None).unwrap();
            assert_eq!(outcome.verdict, Verdict::Pass, "{name} seed {seed}: {:?}", outcome.violations);
            assert!(outcome.metrics.ops_ok > 100, "{name}: {:?}", outcome.metrics);
        }
    }
}

/// No generated faults and constant latencies everywhere.
fn scripted(scenario: &scenarios::scenario::Scenario) -> bool {
    let constant = |link: &sim_core::LinkConfig| matches!(link.latency, sim_core::Latency::Constant { .. });
    scenario.nemesis.generator.is_none()
        && constant(&scenario.network.default)
        && scenario.network.links.iter().all(|l| constant(&l.link))
}

#[test]
fn every_built_in_scenario_is_deterministic() {
    for built_in in library::all() {
        for seed in 1..=3 {
            let first = run_scenario(&built_in, seed, None).unwrap();
            let second = run_scenario(&built_in, seed, None).unwrap();
            assert_eq!(first.fingerprint, second.fingerprint, "{} seed {seed}", built_in.name);
            assert_eq!(first.metrics, second.metrics);
        }
        // A scripted scenario (Figure 8, the Paxos walk-throughs) fixes its timeouts and
        // latencies: no seed changes it.
        if !scripted(&built_in) {
            let other = run_scenario(&built_in, 4, None).unwrap();
            let first = run_scenario(&built_in, 1, None).unwrap();
            assert_ne!(first.fingerprint, other.fingerprint, "{}", built_in.name);
        }
    }
}

/// The acceptance sweep: each variant found within 2,000 seeds of `raft`, the correct
/// protocol passing all of them. Slow (a minute or two on two cores): DSIM_SLOW=1.
#[test]
fn slow_variants_found_within_2000_seeds() {
    if std::env::var("DSIM_SLOW").is_err() {
        return;
    }
    for (variant, _, _) in CAUGHT {
        let found = (1..=2000).find(|seed| first_violation("raft", Some(variant), *seed).is_some());
        assert!(found.is_some(), "{variant} not found in 2,000 seeds");
    }
    for seed in 1..=2000 {
        assert_eq!(first_violation("raft", None, seed), None, "correct raft failed seed {seed}");
    }
}

#[test]
fn redis_lock_gc_pause_fails_without_fencing_and_passes_with_it() {
    for variant in [None, Some("unsafe-release")] {
        let outcome = run_scenario(&scenario("redis-lock-gc-pause", variant), 1, None).unwrap();
        let first = outcome.violations.first().expect("a lost update");
        assert_eq!(first.kind, "unsafe-access", "{variant:?}");
        assert_eq!(first.t_ns, 336_000_000);
        assert_eq!(outcome.stop, "at the first safety violation");
    }
    let fenced = run_scenario(&scenario("redis-lock-gc-pause", Some("fencing")), 1, None).unwrap();
    assert_eq!(fenced.verdict, Verdict::Pass, "{:?}", fenced.violations);
}

/// Clocks 1% apart and a write 992 ms into a 1 s ttl: the allowance (12 ms) makes the
/// client give up; with a smaller one (2 ms less, or none) it writes 1 ms after the key
/// expired, which the check on what clients do reports.
#[test]
fn the_drift_allowance_holds_at_its_claimed_limit() {
    let outcome = run_scenario(&scenario("redis-lock-drift-at-limit", None), 1, None).unwrap();
    assert_eq!(outcome.verdict, Verdict::Pass, "{:?}", outcome.violations);
    assert_eq!(outcome.metrics.protocol["acquisitions"], 2.0);
    assert_eq!(outcome.metrics.protocol["critical_sections_abandoned"], 1.0);
}

#[test]
fn redlock_scripted_scenarios_get_their_outcomes() {
    let expect = [
        ("redlock-gc-pause", None, Some("unsafe-access")),
        ("redlock-pause-in-acquisition", None, None),
        ("redlock-pause-in-acquisition", Some("validity-from-reply"), Some("mutual-exclusion")),
        ("redlock-clock-jump", None, Some("mutual-exclusion")),
        ("redlock-restart-no-persistence", None, Some("mutual-exclusion")),
        ("redlock-delayed-restart", None, None),
    ];
    for (name, variant, kind) in expect {
        let outcome = run_scenario(&scenario(name, variant), 1, None).unwrap();
        assert_eq!(outcome.violations.first().map(|v| v.kind.as_str()), kind, "{name}: {:?}", outcome.violations);
    }
    let jump = run_scenario(&scenario("redlock-clock-jump", None), 1, None).unwrap();
    assert!(
        jump.violations[0].message.contains("while client 6 still believed it held it as c6-1"),
        "{}",
        jump.violations[0].message
    );
    // The pause strikes after three instances said yes; the elapsed-time check refuses
    // the late majority, so client 6 never starts a critical section it cannot finish
    // (without the check it acquires with its validity over: a violation).
    let paused = run_scenario(&scenario("redlock-pause-in-acquisition", None), 1, None).unwrap();
    assert_eq!(paused.metrics.protocol["critical_sections_abandoned"], 0.0);
}

#[test]
fn lock_swarms_catch_each_variant_on_its_seed_and_pass_the_correct_client() {
    // Seeds found by `dsim fuzz NAME --variant V --seeds 2000` (the first failing seed).
    let caught = [
        ("redis-lock", "setnx-then-expire", 1, "liveness"),
        ("redis-lock", "unsafe-release", 8, "mutual-exclusion"),
        ("redlock", "unsafe-release", 1, "mutual-exclusion"),
        ("redis-lock-hostile", "correct", 1, "mutual-exclusion"),
        ("redis-lock-hostile", "correct", 28, "unsafe-access"),
        ("redlock-hostile", "correct", 9, "unsafe-access"),
        ("redis-lock-near-ttl", "validity-from-reply", 7, "mutual-exclusion"),
        ("redlock-near-ttl", "validity-from-reply", 1, "mutual-exclusion"),
    ];
    for (name, variant, seed, kind) in caught {
        assert_eq!(first_violation(name, Some(variant), seed).as_deref(), Some(kind), "{name} {variant} seed {seed}");
    }
    for (name, seed) in
        [("redis-lock", 3), ("redis-lock", 1), ("redlock", 1), ("redis-lock-near-ttl", 7), ("redlock-near-ttl", 1)]
    {
        assert_eq!(first_violation(name, None, seed), None, "{name} seed {seed}");
    }
    // With fencing, the hostile seed that lost an update keeps the counter safe.
    let fenced = run_scenario(&scenario("redis-lock-hostile", Some("fencing")), 28, None).unwrap();
    assert!(fenced.violations.iter().all(|v| v.kind != "unsafe-access"), "{:?}", fenced.violations);
}

/// The generator's one-way cut: unaimed, one server stops hearing from one or more
/// others; aimed at the leader (`cut:leader`), the leader's messages stop reaching some
/// servers, whoever leads then; a heal undoes each.
#[test]
fn the_generated_cut_is_one_way_and_aims_at_the_leader() {
    use scenarios::nemesis::{aim_at, materialize};
    use sim_core::Fault;
    let mut swarm = scenario("raft-pre-vote", None);
    let generator = swarm.nemesis.generator.as_mut().unwrap();
    generator.kinds = [("cut".to_owned(), 1.0), ("cut:leader".to_owned(), 1.0)].into_iter().collect();
    generator.swarm = false;
    let topology = swarm.topology().unwrap();
    let (mut plain, mut aimed) = (0, 0);
    for seed in 1..=20 {
        for action in materialize(&swarm, &topology, seed) {
            let Fault::Cut { from, to } = &action.fault else {
                assert_eq!(action.fault, Fault::Heal);
                continue;
            };
            assert!(from.iter().chain(to).all(|n| *n < 5), "servers only: {action:?}");
            if action.target.as_deref() == Some("leader") {
                aimed += 1;
                assert!(!to.is_empty() && to.len() < 5, "{action:?}");
                let Fault::Cut { from, to } = aim_at(&action.fault, 3) else { unreachable!() };
                assert_eq!(from, vec![3]);
                assert!(!to.contains(&3));
            } else {
                plain += 1;
                assert_eq!(to.len(), 1, "one deaf server: {action:?}");
                assert!(!from.is_empty() && !from.contains(&to[0]), "{action:?}");
            }
        }
    }
    assert!(plain > 20 && aimed > 20, "{plain} plain, {aimed} aimed");
}
