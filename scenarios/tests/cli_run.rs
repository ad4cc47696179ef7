//! `dsim run`, `replay`, `list`, `show`, `fuzz`, `completions`: outputs, JSON fields,
//! exit codes, sharding, shrinking and bad input.

use std::process::{Command, Output};

fn dsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dsim")).args(args).output().expect("dsim runs")
}

fn json_of(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn list_and_show() {
    let output = dsim(&["list", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let list = json_of(&output);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "raft",
            "raft-crashy",
            "raft-pre-vote",
            "raft-leader-isolation",
            "raft-minority-partition",
            "raft-crash-restart",
            "raft-figure8",
            "raft-disruptive-server",
            "raft-pre-vote-late-answers",
            "raft-learned-term-crash",
            "raft-late-snapshot",
            "cap-raft",
            "redis-lock",
            "redis-lock-hostile",
            "redis-lock-gc-pause",
            "redis-lock-near-ttl",
            "redis-lock-drift-at-limit",
            "redlock",
            "redlock-hostile",
            "redlock-near-ttl",
            "redlock-gc-pause",
            "redlock-pause-in-acquisition",
            "redlock-clock-jump",
            "redlock-restart-no-persistence",
            "redlock-delayed-restart",
            "db-lock",
            "db-lock-hostile",
            "db-lock-holder-crash",
            "db-lock-polling",
            "db-lock-reentry",
            "db-lock-expiry-gc-pause",
            "zookeeper-lock",
            "zookeeper-lock-hostile",
            "zookeeper-gc-pause",
            "zookeeper-no-guid",
            "zookeeper-herd",
            "paxos",
            "paxos-walkthrough",
            "paxos-walkthrough-no-accept",
            "paxos-duel",
            "paxos-duel-backoff",
            "paxos-late-proposer",
            "paxos-acceptor-restart",
            "paxos-same-round",
            "multipaxos",
            "multipaxos-leader-isolation",
            "multipaxos-stale-follower-leads",
            "multipaxos-amnesia",
            "cap-multipaxos",
            "2pc",
            "2pc-coordinator-crash",
            "2pc-partial-commit",
            "2pc-participant-crash",
            "2pc-coordinator-outages",
            "2pc-presumption",
            "2pc-last-unit",
            "2pc-services-partitioned",
            "2pc-cooperative-termination",
            "2pc-cooperative-abort",
            "paxos-commit",
            "paxos-commit-coordinator-crash",
            "paxos-commit-coordinator-outages",
            "paxos-commit-last-unit",
            "paxos-commit-silent-participant",
            "outbox",
            "outbox-services-partitioned",
            "outbox-relay-node",
            "outbox-lossy-links",
            "outbox-consumer-crash",
            "outbox-slow-transactions",
            "dynamo",
            "dynamo-hinted-handoff",
            "dynamo-clock-skew",
            "dynamo-siblings",
            "dynamo-late-repair",
            "dynamo-same-millisecond",
            "dynamo-contended-set-lww",
            "dynamo-contended-set-vv",
            "dynamo-contended-set-lww-strict",
            "dynamo-contended-set-vv-strict",
            "cap-dynamo-311-sloppy",
            "cap-dynamo-322-sloppy",
            "cap-dynamo-322-strict",
            "cap-dynamo-311-vv",
            "cap-dynamo-322-vv",
            "register-crash"
        ]
    );
    let protocols = [
        "raft",
        "redis-lock",
        "redlock",
        "db-lock",
        "zookeeper",
        "paxos",
        "multipaxos",
        "2pc",
        "paxos-commit",
        "outbox",
        "dynamo",
        "register",
    ];
    assert!(list.as_array().unwrap().iter().all(|e| protocols.contains(&e["protocol"].as_str().unwrap())));
    let text = String::from_utf8(dsim(&["list"]).stdout).unwrap();
    assert!(text.lines().any(|l| l.starts_with("raft-figure8")), "{text}");
    let shown = dsim(&["show", "raft"]);
    assert_eq!(shown.status.code(), Some(0));
    let scenario = json_of(&shown);
    assert_eq!(scenario["name"], "raft");
    assert_eq!(dsim(&["show", "no-such-scenario"]).status.code(), Some(2));
}

#[test]
fn run_prints_seed_first_and_a_summary() {
    let output = dsim(&["run", "raft-leader-isolation", "--seed", "5"]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with("seed=5\n"), "{text}");
    for needle in [
        "verdict: PASS",
        "fingerprint: ",
        "events: ",
        "messages: ",
        "operations: ",
        "latency ms: p50",
        "replay: dsim run raft-leader-isolation --seed 5",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
}

#[test]
fn run_json_fields_and_violation_exit_code() {
    let output = dsim(&["run", "raft", "--seed", "3", "--variant", "commit-old-term", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let run = json_of(&output);
    assert_eq!(run["scenario"], "raft");
    assert_eq!(run["seed"], 3);
    assert_eq!(run["verdict"], "violation");
    assert_eq!(run["fingerprint"].as_str().unwrap().len(), 16);
    assert_eq!(run["violations"][0]["kind"], "leader-completeness");
    assert!(run["violations"][0]["event"].as_u64().unwrap() > 0);
    assert!(run["metrics"]["events"].as_u64().unwrap() > 0);
    assert_eq!(run["replay"], "dsim run raft --seed 3 --variant commit-old-term");
}

#[test]
fn run_writes_trace_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("run.jsonl");
    let history = dir.path().join("history.jsonl");
    let output = dsim(&[
        "run",
        "raft-crash-restart",
        "--trace",
        trace.to_str().unwrap(),
        "--history",
        history.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let run = json_of(&output);
    let lines = std::fs::read_to_string(&trace).unwrap();
    // A `run` header line, then one line per event.
    assert_eq!(lines.lines().count() as u64, run["trace_events"].as_u64().unwrap() + 1);
    let header: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(header["event"], "run");
    assert_eq!(header["fingerprint"], run["fingerprint"]);
    assert!(lines.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    let checked = dsim(&["check", history.to_str().unwrap(), "--json"]);
    assert_eq!(checked.status.code(), Some(0));
    assert_eq!(json_of(&checked)["model"], "kv");
    // Same seed, same fingerprint in another process.
    let again = json_of(&dsim(&["run", "raft-crash-restart", "--json"]));
    assert_eq!(again["fingerprint"], run["fingerprint"]);
}

#[test]
fn fuzz_finds_shrinks_saves_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let output = dsim(&[
        "fuzz",
        "raft",
        "--variant",
        "no-truncate",
        "--start-seed",
        "9",
        "--seeds",
        "10",
        "--out",
        out,
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = json_of(&output);
    assert_eq!(report["seeds_run"].as_array().unwrap().len(), 4, "stops at the first failure, seed 12");
    let failure = &report["failures"][0];
    assert_eq!(failure["seed"], 12);
    assert_eq!(failure["violation"], "log-matching");
    let (before, after) =
        (failure["fault_actions"].as_u64().unwrap(), failure["fault_actions_shrunk"].as_u64().unwrap());
    assert!(after * 3 <= before, "shrunk from {before} to {after}");
    let file = failure["file"].as_str().unwrap();
    assert!(file.ends_with("raft-seed12.json"));
    for _ in 0..2 {
        let replay = dsim(&["replay", file, "--json"]);
        assert_eq!(replay.status.code(), Some(1));
        assert_eq!(json_of(&replay)["violations"][0]["kind"], "log-matching");
    }
    let first = json_of(&dsim(&["replay", file, "--json"]));
    let second = json_of(&dsim(&["run", file, "--json"]));
    assert_eq!(first["fingerprint"], second["fingerprint"]);
}

#[test]
fn fuzz_results_do_not_depend_on_jobs_and_shards_cover_the_campaign() {
    let run = |extra: &[&str]| {
        let mut args = vec!["fuzz", "raft-minority-partition", "--seeds", "12", "--keep-going", "--json", "--out"];
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_str().unwrap().to_owned();
        args.push(&out);
        args.extend_from_slice(extra);
        let output = dsim(&args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let report = json_of(&output);
        report["seeds_run"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect::<Vec<u64>>()
    };
    let one = run(&["--jobs", "1"]);
    let two = run(&["--jobs", "2"]);
    assert_eq!(one, (1..=12).collect::<Vec<u64>>());
    assert_eq!(one, two);
    let mut shards = run(&["--shard", "0/2"]);
    shards.extend(run(&["--shard", "1/2"]));
    shards.sort_unstable();
    assert_eq!(shards, one);
}

#[test]
fn bad_input_exits_two_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let base = String::from_utf8(dsim(&["show", "raft-crash-restart"]).stdout).unwrap();
    let malformed = write("malformed.json", &base[..base.len() / 2]);
    let output = dsim(&["run", &malformed]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains(&format!("{malformed}:")), "{}", stderr(&output));
    let unknown_field = write("unknown.json", &base.replacen("\"protocol\"", "\"colour\": 1, \"protocol\"", 1));
    let output = dsim(&["run", &unknown_field]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("unknown field `colour`"), "{}", stderr(&output));
    assert!(stderr(&output).contains(&format!("{unknown_field}:4:10:")), "{}", stderr(&output));
    let protocol = write("protocol.json", &base.replacen("\"protocol\": \"raft\"", "\"protocol\": \"zab\"", 1));
    assert!(stderr(&dsim(&["run", &protocol])).contains("unknown protocol \"zab\""));
    let negative = write("negative.json", &base.replacen("\"faults_ms\": 5000.0", "\"faults_ms\": -5.0", 1));
    let output = dsim(&["run", &negative]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("duration.faults_ms must be a non-negative"), "{}", stderr(&output));
    let output = dsim(&["run", "raft", "--variant", "byzantine"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("unknown variant \"byzantine\""));
    let output = dsim(&["fuzz", "raft", "--shard", "3/2"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("shard 3/2"), "{}", stderr(&output));
    let blocker = write("file-not-dir", "");
    let output = dsim(&["fuzz", "raft", "--seeds", "1", "--out", &format!("{blocker}/sub")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--out"), "{}", stderr(&output));
    assert_eq!(dsim(&["run", "no-such-scenario"]).status.code(), Some(2));
}

#[test]
fn every_command_has_help_with_an_example_and_completions_work() {
    for command in ["run", "replay", "fuzz", "list", "show", "check", "completions"] {
        let output = dsim(&[command, "--help"]);
        assert_eq!(output.status.code(), Some(0));
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.contains("Example"), "{command} --help has no example");
    }
    let output = dsim(&["completions", "bash"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8(output.stdout).unwrap().contains("dsim"));
}

#[test]
fn bench_fuzz_measures_scenarios_side_by_side() {
    let output = dsim(&["bench", "fuzz", "paxos-walkthrough", "paxos-duel", "--seeds", "2", "--rounds", "1", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let rates = json_of(&output);
    let rates = rates.as_array().unwrap();
    assert_eq!(rates.len(), 2);
    assert_eq!(rates[0]["scenario"], "paxos-walkthrough");
    assert_eq!(rates[0]["relative_to_first"], 1.0);
    assert_eq!((rates[0]["violations"].as_u64(), rates[1]["violations"].as_u64()), (Some(0), Some(2)));
    assert!(rates[1]["seeds_per_sec"].as_f64().unwrap() > 0.0);
    let bad = dsim(&["bench", "fuzz", "no-such-scenario"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[test]
fn compare_writes_its_table_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("compare.md");
    let out_arg = out.display().to_string();
    let output = dsim(&["compare", "paxos-walkthrough", "paxos-walkthrough-no-accept", "--seeds", "2", "-o", &out_arg]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let table = std::fs::read_to_string(&out).unwrap();
    assert!(table.starts_with("# Systems side by side\n\npaxos-walkthrough · paxos-walkthrough-no-accept"), "{table}");
    assert!(table.contains("Every checked property held on every seed for every system."), "{table}");
    // The second slows a link by a scripted fault the first lacks: not the same faults.
    assert!(table.contains("the same fault schedule on 0 of 2 seeds"), "{table}");
    assert!(table.contains("| chosen_value | 8 / 8 | 5 / 5 |"), "{table}");
    assert_eq!(dsim(&["compare", "paxos"]).status.code(), Some(2));
    assert_eq!(dsim(&["compare", "paxos", "no-such-scenario"]).status.code(), Some(2));
}

/// The election experiment by the paper's method: with 150-300 ms every trial elects a
/// new leader known to a majority; the leader replicated an entry to two followers 7 ms
/// before it crashed, so every follower's timer was reset then and no downtime is
/// shorter than the minimum timeout; the two followers without that entry stand for
/// election in some trials and cannot win.
#[test]
fn the_election_experiment_resolves_every_trial() {
    let output = dsim(&["experiment", "raft-election", "--timeouts", "150-300", "--trials", "50", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let figures = json_of(&output);
    assert_eq!((figures["trials"].as_u64(), figures["unresolved"].as_u64()), (Some(50), Some(0)), "{figures}");
    let (p50, max) = (figures["p50_ms"].as_f64().unwrap(), figures["max_ms"].as_f64().unwrap());
    assert!(150.0 < p50 && p50 <= max && max < 2000.0, "{figures}");
    assert!(figures["ineligible_candidacies"].as_u64() > Some(0), "{figures}");
    // The paper's top sweep: one row per range and the cumulative curves as an SVG.
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("election.svg");
    let output = dsim(&[
        "experiment",
        "raft-election",
        "--paper",
        "top",
        "--trials",
        "20",
        "--json",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let rows = json_of(&output);
    let ranges: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["timeouts"].as_str().unwrap()).collect();
    assert_eq!(ranges, ["150-150", "150-151", "150-155", "150-175", "150-200", "150-300"]);
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg") && picture.matches("<path").count() == 6, "{picture}");
    let refused = dsim(&["experiment", "raft-election", "--timeouts", "150-300", "--trials", "1000000000"]);
    assert_eq!(refused.status.code(), Some(2), "a count beyond the documented maximum is refused");
}

/// The throughput experiment: per cluster size, all writes and all reads, each raised
/// until doubling the offered load adds under 10%; a scenario without a key-value
/// workload is refused.
#[test]
fn the_throughput_experiment_reports_a_saturation_per_cluster_size() {
    let output = dsim(&["experiment", "throughput", "raft", "--servers", "3,5", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let points = json_of(&output);
    let points = points.as_array().unwrap();
    assert_eq!(points.len(), 4);
    for point in points {
        assert!(point["saturation_ops_per_s"].as_f64().unwrap() > 10.0, "{point}");
        let steps = point["steps"].as_array().unwrap();
        assert!(steps.len() >= 2, "the load was raised at least once: {point}");
    }
    assert_eq!(dsim(&["experiment", "throughput", "redis-lock"]).status.code(), Some(2));
}
