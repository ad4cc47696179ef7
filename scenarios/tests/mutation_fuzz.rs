//! The fuzz half of the mutation-testing recipe (docs/mutation-testing.md): short
//! campaigns of every safe swarm of Raft and the locks, each seed required to pass
//! (safety, liveness after the heal, and no run stopped by a limit). Ignored in the
//! default test run; `cargo mutants` runs it with `--include-ignored` (see
//! `.cargo/mutants.toml`), so a mutant the scripted tests miss can still be killed by a
//! campaign that reaches the state it breaks.

use checker::Verdict;
use scenarios::library;
use scenarios::run_cmd::run_scenario;

/// Seeds per swarm: `DSIM_MUTATION_SEEDS`, or 200.
fn seeds() -> u64 {
    std::env::var("DSIM_MUTATION_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200)
}

fn campaign(names: &[&str]) {
    let seeds = seeds();
    for name in names {
        let scenario = library::resolve(name).unwrap();
        for seed in 1..=seeds {
            let outcome = run_scenario(&scenario, seed, None).unwrap();
            assert_eq!(
                outcome.verdict,
                Verdict::Pass,
                "{name} seed {seed}: {:?} {:?}",
                outcome.violations.first().map(|v| (&v.kind, &v.message)),
                outcome.unknown_reason
            );
        }
    }
}

#[test]
#[ignore = "the mutation-testing recipe runs it (cargo mutants, --include-ignored)"]
fn raft_swarms_pass_a_short_campaign() {
    campaign(&[
        "raft",
        "raft-crashy",
        "raft-pre-vote",
        "raft-crash-restart",
        "raft-leader-isolation",
        "raft-minority-partition",
        "cap-raft",
    ]);
}

#[test]
#[ignore = "the mutation-testing recipe runs it (cargo mutants, --include-ignored)"]
fn lock_swarms_pass_a_short_campaign() {
    campaign(&["redis-lock", "redis-lock-near-ttl", "redlock", "redlock-near-ttl", "db-lock", "zookeeper-lock"]);
}
