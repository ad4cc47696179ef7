//! Figures of one run hold against each other: a history the checker finds linearizable
//! shows no stale read, no lost write, no read-your-writes and no monotonic-reads
//! violation. Every built-in whose clients' reads and writes are measured, on its first
//! seeds (the 200-seed sweep is in the issue note; `DSIM_SLOW=1` runs 50 seeds here).

use checker::Verdict;
use scenarios::library;
use scenarios::run_cmd::run_scenario;

#[test]
fn a_linearizable_history_never_shows_an_anomaly() {
    let seeds: u64 = if std::env::var_os("DSIM_SLOW").is_some() { 50 } else { 3 };
    let mut judged = 0;
    for name in library::names() {
        let scenario = library::resolve(name).unwrap();
        for seed in 1..=seeds {
            let outcome = run_scenario(&scenario, seed, None).unwrap();
            let (Some(report), Some(anomalies)) = (&outcome.linearizability, &outcome.metrics.consistency) else {
                continue;
            };
            if report.verdict != Verdict::Pass || report.ops_checked == 0 {
                continue;
            }
            judged += 1;
            assert!(!anomalies.any(), "dsim run {name} --seed {seed}: linearizable, yet {anomalies:?}");
        }
    }
    // Raft's, Multi-Paxos's, the example's and some Dynamo runs: enough to mean something.
    assert!(judged >= 15 * seeds, "only {judged} linearizable runs were measured");
}
