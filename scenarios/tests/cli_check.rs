//! `dsim check`: outputs, JSON fields and exit codes.

use std::io::Write;
use std::process::Command;

fn dsim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dsim")).args(args).output().expect("dsim runs")
}

fn sample(name: &str) -> String {
    // Read at run time: the crate may have been built in another folder.
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    format!("{crate_dir}/../checker/tests/data/histories/{name}")
}

fn json_of(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).expect("one JSON object on stdout")
}

#[test]
fn linearizable_history_exits_zero() {
    let output = dsim(&["check", &sample("cas-register-memstress3-0.edn"), "--initial", "0", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let json = json_of(&output);
    assert_eq!(json["verdict"], "pass");
    assert_eq!(json["model"], "cas-register");
    assert_eq!(json["model_inferred"], true);
    assert_eq!(json["format"], "edn");
    assert!(json["ops"].as_u64().unwrap() > 100);
}

#[test]
fn violation_exits_one_and_explains() {
    let output = dsim(&[
        "check",
        &sample("cas-register-bad-analysis.edn"),
        "--model",
        "cas-register",
        "--initial",
        "0",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let json = json_of(&output);
    assert_eq!(json["verdict"], "violation");
    assert_eq!(json["model_inferred"], false);
    assert_eq!(json["explanation"]["op"]["index"], 14);
    assert_eq!(json["explanation"]["op"]["process"], 21);
    assert!(json["explanation"]["prefix"].as_array().unwrap().len() >= 5);
    assert!(!json["explanation"]["states"].as_array().unwrap().is_empty());
    let text = dsim(&["check", &sample("cas-register-bad-analysis.edn"), "--initial", "0"]);
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert!(stdout.contains("model: register (inferred)"), "{stdout}");
    assert!(
        stdout.contains("first operation that cannot be linearized:\n  #14 (line 18) process 21 :read"),
        "{stdout}"
    );
}

#[test]
fn jepsen_logs_and_kv() {
    assert_eq!(dsim(&["check", &sample("etcd_000.log")]).status.code(), Some(1));
    assert_eq!(dsim(&["check", &sample("etcd_005.log")]).status.code(), Some(0));
    assert_eq!(dsim(&["check", &sample("kv-c01-ok.txt")]).status.code(), Some(0));
    assert_eq!(dsim(&["check", &sample("kv-c01-bad.txt"), "--no-split"]).status.code(), Some(1));
}

#[test]
fn spent_budget_exits_three() {
    let output = dsim(&["check", &sample("etcd_005.log"), "--budget-steps", "10", "--json"]);
    assert_eq!(output.status.code(), Some(3));
    let json = json_of(&output);
    assert_eq!(json["verdict"], "unknown");
    assert!(json["unknown_reason"].as_str().unwrap().contains("10 steps"));
}

#[test]
fn bad_input_exits_two_with_position() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(file, "[{{:process 0, :type :invoke, :f :read}}\n {{:process 0 :type :okay :f :read}}]").unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    let output = dsim(&["check", &path, "--format", "edn"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains(&format!("{path}:2:2: unknown :type :okay")), "{stderr}");
    let output = dsim(&["check", "/nonexistent/history.edn"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8(output.stderr).unwrap().contains("cannot read /nonexistent/history.edn"));
    let output = dsim(&["check", &sample("etcd_000.log"), "--initial", "[1 2"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8(output.stderr).unwrap().contains("--initial"));
    let output = dsim(&["check", &sample("etcd_000.log"), "--model", "queue"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn json_history_format() {
    let mut file = tempfile::Builder::new().suffix(".jsonl").tempfile().unwrap();
    writeln!(file, r#"{{"process":0,"type":"invoke","f":"put","key":"a","value":"x"}}"#).unwrap();
    writeln!(file, r#"{{"process":0,"type":"ok","f":"put","key":"a","value":"x"}}"#).unwrap();
    writeln!(file, r#"{{"process":1,"type":"invoke","f":"get","key":"a","value":null}}"#).unwrap();
    writeln!(file, r#"{{"process":1,"type":"ok","f":"get","key":"a","value":"y"}}"#).unwrap();
    let output = dsim(&["check", file.path().to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let json = json_of(&output);
    assert_eq!(json["format"], "json");
    assert_eq!(json["model"], "kv");
    assert_eq!(json["explanation"]["op"]["line"], 4);
}

#[test]
fn bench_checker_quick_prints_json() {
    let output = dsim(&["bench", "checker", "--quick", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let json = json_of(&output);
    let cases = json["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    assert!(cases.iter().all(|c| c["ops_per_sec"].as_f64().unwrap() > 0.0));
    assert_eq!(cases[0]["verdicts"], "51 pass, 51 violation, 0 unknown");
}

#[test]
fn empty_histories_and_wrong_formats_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.edn");
    std::fs::write(&empty, "").unwrap();
    let output = dsim(&["check", empty.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no operations found in"), "{output:?}");
    let output = dsim(&["check", &sample("kv-c01-ok.txt"), "--format", "jepsen-log"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("(format jepsen-log)"), "{output:?}");
    let output = dsim(&["check", &sample("kv-c01-ok.txt"), "--budget-memory-mb", "17592186044416"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_one_line_history_parses_with_positions_and_times_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one-line.edn");
    let ops: Vec<String> = (0..20_000)
        .flat_map(|i| {
            let p = i % 10;
            [
                format!("{{:process {p}, :type :invoke, :f :write, :value {i}}}"),
                format!("{{:process {p}, :type :ok, :f :write, :value {i}}}"),
            ]
        })
        .collect();
    std::fs::write(&path, format!("[{}]", ops.join(" "))).unwrap();
    let output = dsim(&["check", path.to_str().unwrap(), "--initial", "0", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let json = json_of(&output);
    assert_eq!(json["ops"], 20_000);
    assert!(json["parse_s"].as_f64().is_some() && json["check_s"].as_f64().is_some());
    assert_eq!(json["initial"], "0");
    // An error at the end of the long line names its column.
    std::fs::write(&path, format!("[{} {{:process 1, :type :ok :f}}]", ops.join(" "))).unwrap();
    let output = dsim(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr).into_owned();
    let column = ops.join(" ").chars().count() + 2 + "{:process 1, :type :ok :f".len() + 1;
    assert!(message.contains(&format!(":1:{column}:")), "{message} (expected column {column})");
}
