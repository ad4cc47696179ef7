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
    let real = json["real"].as_array().unwrap();
    let names: Vec<&str> = real.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["kv/c01-ok", "kv/c01-bad", "kv/c10-ok", "kv/c10-bad", "kv/c50-ok", "kv/c50-bad", "jepsen/etcd_*.log (sum)"]
    );
    assert_eq!(real[4]["verdicts"], "1 pass, 0 violation, 0 unknown");
    assert_eq!(real[5]["verdicts"], "0 pass, 1 violation, 0 unknown");
    assert_eq!(real[6]["files"], 102);
    assert!(real.iter().all(|r| r["check_s"].as_f64().unwrap() > 0.0 && r["parse_s"].as_f64().unwrap() > 0.0));
}

#[test]
fn empty_histories_and_wrong_formats_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.edn");
    std::fs::write(&empty, "").unwrap();
    let output = dsim(&["check", empty.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no entries found in"), "{output:?}");
    // Entries but no client operation (only the nemesis): linearizable, as Knossos's own
    // tests hold, and said so.
    let nemesis = dir.path().join("nemesis.edn");
    std::fs::write(
        &nemesis,
        "{:type :info, :f :start, :process :nemesis}\n{:type :info, :f :stop, :process :nemesis}\n",
    )
    .unwrap();
    let output = dsim(&["check", nemesis.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("0 client operations, 2 other entries"), "{output:?}");
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

fn porcupine(path: &str) -> String {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    format!("{crate_dir}/../checker/tests/data/porcupine/{path}")
}

#[test]
fn a_directory_prints_a_line_per_file_and_the_totals() {
    let output = dsim(&["check", &porcupine("kv"), "--jobs", "2"]);
    assert_eq!(output.status.code(), Some(1), "three of the six are not linearizable");
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    for (line, (verdict, name)) in lines.iter().zip([
        ("NOT-linearizable", "c01-bad.txt"),
        ("linearizable", "c01-ok.txt"),
        ("NOT-linearizable", "c10-bad.txt"),
        ("linearizable", "c10-ok.txt"),
        ("NOT-linearizable", "c50-bad.txt"),
        ("linearizable", "c50-ok.txt"),
    ]) {
        assert!(line.starts_with(verdict) && line.contains(name), "{line}");
    }
    assert!(lines[6].starts_with("6 files: 3 linearizable, 3 not linearizable, 0 unknown, 0 errors"), "{}", lines[6]);
}

#[test]
fn json_lines_per_file_are_the_same_for_any_jobs() {
    let fields = |jobs: &str| -> Vec<serde_json::Value> {
        let output = dsim(&["check", &porcupine("kv"), &porcupine("jepsen/etcd_000.log"), "--json", "--jobs", jobs]);
        assert_eq!(output.status.code(), Some(1));
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| {
                let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
                let object = value.as_object_mut().unwrap();
                assert!(object["parse_s"].is_f64() && object["check_s"].is_f64());
                object.remove("parse_s");
                object.remove("check_s");
                value
            })
            .collect()
    };
    let one = fields("1");
    assert_eq!(one.len(), 7);
    assert_eq!(one, fields("2"));
    assert_eq!(one, fields("7"));
}

#[test]
fn a_bad_file_among_many_is_named_and_the_exit_is_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.edn"), "{:process 0, :type :invoke, :f :read, :value nil, :f :write}\n").unwrap();
    std::fs::copy(porcupine("kv/c01-ok.txt"), dir.path().join("b.txt")).unwrap();
    let output = dsim(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("a.edn:1:51: duplicate map key :f"), "{text}");
    assert!(text.contains("1 linearizable, 0 not linearizable, 0 unknown, 1 errors"), "{text}");
}

#[test]
fn a_report_shows_the_failing_partition_and_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("c50-bad.html");
    let output = dsim(&["check", &porcupine("kv/c50-bad.txt"), "--report", page.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("NOT linearizable") && html.contains("<svg"), "{html}");
    assert!(html.contains("In the sub-history of key &quot;1&quot;."), "the failing partition is named");
    assert!(html.contains("(cannot be placed)") && html.contains("fill=\"#e66\""), "the failing op is marked");
    assert_eq!(html.matches("<circle").count(), 37, "a linearization point per prefix operation");
    assert!(html.len() < 100_000, "bounded: {} bytes", html.len());
    let output = dsim(&["check", &porcupine("kv"), "--report", page.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "one FILE only");
}
