//! The ZooKeeper lock through the runner: the recipe's failure modes as scripted runs
//! with exact outcomes, its variants, and its swarms.

use checker::Verdict;
use scenarios::library;
use scenarios::run_cmd::run_scenario;
use scenarios::runner::RunOutcome;

fn run(name: &str, variant: Option<&str>, seed: u64) -> RunOutcome {
    let mut scenario = library::resolve(name).unwrap();
    scenario.variant = variant.map(str::to_owned);
    run_scenario(&scenario, seed, None).unwrap()
}

fn figure(outcome: &RunOutcome, name: &str) -> f64 {
    outcome.metrics.protocol[name]
}

#[test]
fn a_holder_paused_past_its_session_timeout_still_believes_it_holds_the_lock() {
    let broken = run("zookeeper-gc-pause", None, 1);
    let first = broken.violations.first().expect("a violation");
    assert_eq!((first.kind.as_str(), first.t_ns), ("mutual-exclusion", 695_495_695));
    assert_eq!(
        first.message,
        "client 4 acquired the lock as /lock/c4-2-lock-0000000003 while client 5 still believed it held it as \
         /lock/c5-2-lock-0000000002 (it had neither released it nor heard that it lost it)"
    );
    // With fencing the stale holder's write is refused: overlaps stay warnings.
    let fenced = run("zookeeper-gc-pause", Some("fencing"), 1);
    assert_eq!(fenced.verdict, Verdict::Pass, "{:?}", fenced.violations);
    assert_eq!(figure(&fenced, "storage_refusals"), 1.0);
    assert_eq!(figure(&fenced, "overlaps_with_fencing"), 6.0);
}

#[test]
fn a_lost_create_reply_is_found_by_its_guid_and_orphaned_without_one() {
    let found = run("zookeeper-no-guid", None, 1);
    assert_eq!(found.verdict, Verdict::Pass, "{:?}", found.violations);
    assert_eq!(figure(&found, "acquisitions"), 47.0);
    let orphaned = run("zookeeper-no-guid", Some("no-guid"), 1);
    let first = orphaned.violations.first().expect("a violation");
    assert_eq!(first.kind, "liveness");
    assert!(
        first.message.ends_with(
            "the lowest lock node /lock/lock-0000000000 (2 waiting behind it) belongs to session 2 of client 5, which \
             does not know it: its own node is /lock/lock-0000000001; an orphan left by a create whose reply was \
             lost, which nothing deletes while the session lives"
        ),
        "{}",
        first.message
    );
    assert_eq!(figure(&orphaned, "acquisitions"), 0.0);
}

#[test]
fn the_recipe_wakes_one_waiter_per_release_and_the_herd_wakes_them_all() {
    let recipe = run("zookeeper-herd", None, 1);
    assert_eq!(recipe.verdict, Verdict::Pass, "{:?}", recipe.violations);
    assert_eq!(figure(&recipe, "wakeups_per_release"), 1.0);
    assert_eq!(figure(&recipe, "releases"), 63.0);
    let herd = run("zookeeper-herd", Some("herd"), 1);
    let first = herd.violations.first().expect("a violation");
    assert_eq!(first.kind, "herd-effect");
    assert!(first.message.starts_with("the deletion at zxid 44 woke clients 9 and 12"), "{}", first.message);
}

#[test]
fn the_swarms_hold_what_the_design_claims_and_hostile_faults_break_it() {
    for seed in 1..=30 {
        let safe = run("zookeeper-lock", None, seed);
        assert_eq!(safe.verdict, Verdict::Pass, "seed {seed}: {:?}", safe.violations);
        let fenced = run("zookeeper-lock-hostile", Some("fencing"), seed);
        assert!(fenced.violations.iter().all(|v| v.kind != "unsafe-access"), "seed {seed}: {:?}", fenced.violations);
    }
    // Found by `dsim fuzz zookeeper-lock-hostile` (the first failing seed).
    let hostile = run("zookeeper-lock-hostile", None, 31);
    assert_eq!(hostile.violations.first().map(|v| v.kind.as_str()), Some("unsafe-access"));
    // Found by `dsim fuzz zookeeper-lock --variant no-guid` (seed 2) and `--variant herd`
    // (seed 1): the swarm finds both variants.
    let orphan = run("zookeeper-lock", Some("no-guid"), 2);
    assert_eq!(orphan.violations.first().map(|v| v.kind.as_str()), Some("liveness"));
    let herd = run("zookeeper-lock", Some("herd"), 1);
    assert_eq!(herd.violations.first().map(|v| v.kind.as_str()), Some("herd-effect"));
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = run("zookeeper-lock-hostile", None, 5);
    let b = run("zookeeper-lock-hostile", None, 5);
    assert_eq!(a.fingerprint, b.fingerprint);
}
