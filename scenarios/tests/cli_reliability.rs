//! Bad input is refused with exit 2 and a positioned message; output into a closed pipe
//! ends quietly; verdicts never claim more than the run showed.

use std::io::Read;
use std::process::{Command, Output, Stdio};

fn dsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dsim")).args(args).output().expect("dsim runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn run_file(text: &str) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    (dsim(&["run", &path]), path)
}

/// Built-in scenario `name` with the first `from` replaced by `to`.
fn builtin_with(name: &str, from: &str, to: &str) -> String {
    let text = String::from_utf8(dsim(&["show", name]).stdout).unwrap();
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1)
}

fn raft_with(from: &str, to: &str) -> String {
    builtin_with("raft-leader-isolation", from, to)
}

/// Runs `name` with one setting changed; it must be refused (exit 2) naming the file and
/// saying `expected`.
fn refused_with_path(name: &str, from: &str, to: &str, expected: &str) {
    let (output, file) = run_file(&builtin_with(name, from, to));
    assert_eq!(output.status.code(), Some(2), "{to}");
    let message = stderr(&output);
    assert!(message.contains(&format!("{file}:")) && message.contains(expected), "{message}");
}

#[test]
fn usage_errors_exit_two() {
    for args in [
        &["fuzz", "raft", "--seeds", "0"][..],
        &["fuzz", "raft", "--jobs", "0", "--seeds", "1"],
        &["fuzz", "raft", "--start-seed", "18446744073709551615", "--seeds", "2"],
        &["run", "raft", "--report", "out.pdf"],
    ] {
        let output = dsim(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
    }
}

#[test]
fn a_name_that_would_escape_the_output_folder_is_refused() {
    let (output, path) = run_file(&raft_with("\"raft-leader-isolation\"", "\"../escaped\""));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains(&format!("{path}:2:3: name must be")), "{}", stderr(&output));
}

#[test]
fn a_fault_after_the_fault_phase_is_refused_where_it_is() {
    let (output, path) = run_file(&raft_with("\"at_ms\": 2000.0", "\"at_ms\": 9000.0"));
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains(&format!("{path}:")) && message.contains("nemesis.schedule[0].at_ms is 9000"),
        "{message}"
    );
}

#[test]
fn extreme_settings_are_refused_with_their_path() {
    for (from, to, path) in [
        ("\"heartbeat_ms\": 50.0", "\"heartbeat_ms\": 0.000001", "settings.raft.heartbeat_ms"),
        ("\"rate_per_client\": 20.0", "\"rate_per_client\": 1000000.0", "settings.workload.rate_per_client"),
        ("\"keys\": 3", "\"keys\": 3, \"value_size\": 100000000", "settings.workload.value_size"),
    ] {
        refused_with_path("raft-leader-isolation", from, to, path);
    }
}

#[test]
fn a_crash_share_outside_zero_to_one_is_refused_with_its_path() {
    refused_with_path(
        "raft-crashy",
        "\"crash_during_write_share\": 0.9",
        "\"crash_during_write_share\": 1.5",
        "nemesis.generator.crash_during_write_share must be from 0 to 1, got 1.5",
    );
}

/// The ZooKeeper lock's settings shared with the other locks are checked as theirs are.
#[test]
fn a_zookeeper_request_timeout_of_zero_is_refused_with_its_path() {
    refused_with_path(
        "zookeeper-lock",
        "\"request_timeout_ms\": 300",
        "\"request_timeout_ms\": 0",
        "request_timeout_ms must be 1 to 3600000, got 0",
    );
}

/// The ZooKeeper lock's work time is checked as the other locks' is (a range the wrong
/// way round would panic drawing from it).
#[test]
fn a_zookeeper_work_range_the_wrong_way_round_is_refused_with_its_path() {
    refused_with_path(
        "zookeeper-lock",
        "\"work_ms\": [\n      10,\n      30\n    ]",
        "\"work_ms\": [30, 10]",
        "work_ms must be [min, max] with min <= max <= 3600000, got [30, 10]",
    );
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dsim"))
        .args(["experiment", "raft-election", "--timeouts", "150-300", "--trials", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut errors = String::new();
    child.stderr.take().unwrap().read_to_string(&mut errors).unwrap();
    assert_eq!(status.code(), Some(0), "{errors}");
    assert!(!errors.contains("panicked"), "{errors}");
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

#[test]
fn what_fuzz_prints_is_what_replay_shows() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let campaigns: [&[&str]; 3] = [
        &["fuzz", "register-crash", "--seeds", "4", "--variant", "ack-before-sync"],
        &["fuzz", "raft", "--seeds", "2", "--variant", "vote-without-log-check"],
        &["fuzz", "redlock-restart-no-persistence", "--seeds", "2"],
    ];
    let mut replayed = 0;
    for campaign in campaigns {
        let mut args = campaign.to_vec();
        args.extend(["--keep-going", "--json", "--out", &out]);
        let output = dsim(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", stderr(&output));
        for failure in json(&output)["failures"].as_array().unwrap() {
            let file = failure["file"].as_str().unwrap();
            let replay = json(&dsim(&["replay", file, "--json"]));
            assert_eq!(replay["fingerprint"], failure["fingerprint"], "{file}");
            assert_eq!(replay["violations"][0]["kind"], failure["violation"], "{file}");
            replayed += 1;
        }
    }
    assert!(replayed >= 6, "{replayed}");
    let results = std::fs::read_to_string(dir.path().join("results.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 8, "one line per seed run: {results}");
}

#[test]
fn an_interrupted_campaign_keeps_what_it_found() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_dsim"))
        .args(["fuzz", "register-crash", "--variant", "ack-before-sync", "--time-s", "60", "--keep-going"])
        .args(["--jobs", "1", "--json", "--out", &out])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until a failure has been saved, then interrupt.
    let results = dir.path().join("results.jsonl");
    for _ in 0..600 {
        if std::fs::read_to_string(&results).is_ok_and(|t| t.lines().count() >= 2) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = json(&output);
    assert_eq!(report["interrupted"], true);
    let failures = report["failures"].as_array().unwrap();
    assert!(!failures.is_empty());
    for failure in failures {
        assert!(std::path::Path::new(failure["file"].as_str().unwrap()).exists());
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn merged_shards_are_the_whole_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let mut files = Vec::new();
    for shard in ["0/2", "1/2"] {
        let args = ["fuzz", "register-crash", "--variant", "ack-before-sync", "--seeds", "6", "--shard", shard];
        let output = dsim(&[&args[..], &["--keep-going", "--json", "--out", &out, "--no-shrink"]].concat());
        let file = dir.path().join(format!("shard-{}.json", files.len()));
        std::fs::write(&file, &output.stdout).unwrap();
        files.push(file.display().to_string());
    }
    let merged = dsim(&["merge", &files[0], &files[1], "--json"]);
    assert_eq!(merged.status.code(), Some(1), "{}", stderr(&merged));
    let merged = json(&merged);
    assert_eq!(merged["seeds_run"], serde_json::json!([1, 2, 3, 4, 5, 6]));
    let seeds: Vec<u64> = merged["failures"].as_array().unwrap().iter().map(|f| f["seed"].as_u64().unwrap()).collect();
    assert!(seeds.windows(2).all(|w| w[0] < w[1]), "{seeds:?}");
    let groups = merged["groups"].as_array().unwrap();
    assert_eq!(groups[0]["violation"], "linearizability");
    assert_eq!(groups[0]["count"].as_u64().unwrap() as usize, seeds.len());
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"seeds\": 1}").unwrap();
    let output = dsim(&["merge", &bad.display().to_string()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("bad.json:1:"), "{}", stderr(&output));
}

/// A run that judged nothing (no message delivered, no client operation completed: here
/// a run half a millisecond long) is UNKNOWN with the reason, for every protocol; it
/// passed for the locks, the transactions, the outbox and Dynamo before.
#[test]
fn a_run_that_judged_nothing_is_unknown_for_every_protocol() {
    for name in [
        "raft",
        "redis-lock",
        "redlock",
        "db-lock",
        "zookeeper-lock",
        "paxos",
        "multipaxos",
        "2pc",
        "paxos-commit",
        "outbox",
        "dynamo",
        "register-crash",
    ] {
        let mut scenario = scenarios::library::resolve(name).unwrap();
        scenario.duration.faults_ms = 0.0;
        scenario.duration.healed_ms = 0.5;
        let outcome = scenarios::run_cmd::run_scenario(&scenario, 1, None).unwrap();
        assert_eq!(outcome.verdict, checker::Verdict::Unknown, "{name}: {:?}", outcome.violations);
        assert!(outcome.unknown_reason.is_some(), "{name}");
    }
}

/// A violating run whose reader closes the pipe still exits 1: the verdict's code
/// survives the closed pipe (it used to be 0).
#[test]
fn a_violation_keeps_its_exit_code_through_a_closed_pipe() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dsim"))
        .args(["run", "raft", "--variant", "commit-old-term", "--seed", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 6];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first, b"seed=3");
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut errors = String::new();
    child.stderr.take().unwrap().read_to_string(&mut errors).unwrap();
    assert_eq!(status.code(), Some(1), "{errors}");
    assert!(errors.is_empty(), "{errors}");
}

/// Every failure's line in results.jsonl names the saved file's fingerprint, labelled
/// apart from the seed's own run, and `dsim replay FILE` prints exactly it.
#[test]
fn each_saved_failure_replays_to_the_fingerprint_on_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let output =
        dsim(&["fuzz", "raft", "--variant", "commit-old-term", "--seeds", "12", "--keep-going", "--out", &out]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let log = std::fs::read_to_string(dir.path().join("results.jsonl")).unwrap();
    let mut replayed = 0;
    for line in log.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        let Some(file) = entry["file"].as_str() else { continue };
        assert!(entry["original_fingerprint"].is_string(), "{entry}");
        let replay = dsim(&["replay", file]);
        let text = String::from_utf8_lossy(&replay.stdout);
        let expected = format!("fingerprint: {}", entry["file_fingerprint"].as_str().unwrap());
        assert!(text.contains(&expected), "{file}: {text} vs {entry}");
        replayed += 1;
    }
    assert!(replayed >= 1, "{log}");
}

/// `dsim merge` warns when shards are missing and refuses with `--strict`.
#[test]
fn merging_part_of_a_campaign_says_which_shards_are_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for shard in ["0/3", "2/3"] {
        let output = dsim(&["fuzz", "paxos", "--seeds", "30", "--shard", shard, "--json"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let path = dir.path().join(format!("shard{}.json", &shard[..1]));
        std::fs::write(&path, &output.stdout).unwrap();
        files.push(path.display().to_string());
    }
    let args: Vec<&str> = std::iter::once("merge").chain(files.iter().map(String::as_str)).collect();
    let merged = dsim(&args);
    assert_eq!(merged.status.code(), Some(0), "{}", stderr(&merged));
    assert!(stderr(&merged).contains("shards missing: 1/3"), "{}", stderr(&merged));
    let mut strict = args.clone();
    strict.push("--strict");
    let refused = dsim(&strict);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
}

/// An unknown scenario name suggests the near ones (a protocol name finds its scenarios)
/// instead of listing all of them.
#[test]
fn an_unknown_scenario_name_gets_suggestions() {
    let output = dsim(&["fuzz", "zookeeper"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("did you mean zookeeper-herd, zookeeper-lock"), "{}", stderr(&output));
    assert!(!stderr(&output).contains("raft-crashy"), "{}", stderr(&output));
}

/// A key repeated in a map (the generator's kinds) is refused with its path and position,
/// like a repeated field anywhere else (serde used to keep the last one silently).
#[test]
fn a_repeated_key_in_a_map_is_refused_where_it_is() {
    let text = builtin_with("raft", "\"kinds\": {", "\"kinds\": {\n        \"crash\": 1.0,");
    let (output, path) = run_file(&text);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.starts_with(&format!("dsim run: {path}:")), "{message}");
    assert!(message.contains("nemesis.generator.kinds.crash: the key \"crash\" is given twice"), "{message}");
}

/// `--keep-going --save one-per-kind` keeps the smallest failing seed of each violation
/// kind as a file, logs every failure, and prints the rest as one line.
#[test]
fn one_saved_example_per_violation_kind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let args = ["fuzz", "raft", "--variant", "unsynced-log", "--seeds", "60", "--keep-going"];
    let output = dsim(&[&args[..], &["--save", "one-per-kind", "--out", &out]].concat());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let mut saved: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    saved.sort();
    assert_eq!(saved, ["raft-seed1.json", "raft-seed45.json"], "leader-completeness at 1, catch-up at 45");
    let log = std::fs::read_to_string(dir.path().join("results.jsonl")).unwrap();
    let failures = log.lines().filter(|l| l.contains("\"verdict\":\"violation\"")).count();
    assert_eq!(failures, 8, "{log}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("6 more failing seeds of kinds already saved"), "{text}");
}

/// A default that turns out wrong (Paxos Commit's absent `faults_tolerated` with two
/// servers) is refused at the object that lacks the field, with FILE:LINE:COLUMN.
#[test]
fn a_missing_field_is_placed_at_the_object_that_lacks_it() {
    let text = builtin_with("paxos-commit", "\"servers\": 3", "\"servers\": 2");
    let (output, path) = run_file(&text);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    let line = text.lines().position(|l| l.contains("\"settings\"")).unwrap() + 1;
    assert!(message.starts_with(&format!("dsim run: {path}:{line}:")), "{message}");
    assert!(message.contains("settings.faults_tolerated"), "{message}");
}
