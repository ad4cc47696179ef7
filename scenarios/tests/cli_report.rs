//! Reports through the CLI: `--report`, `dsim report`, `--trace-format perfetto`.

use std::process::Command;

fn dsim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dsim")).args(args).output().expect("dsim runs")
}

#[test]
fn report_of_a_sixty_second_run_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let shown = dsim(&["show", "raft"]);
    let mut scenario: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    scenario["duration"] = serde_json::json!({ "faults_ms": 50000.0, "healed_ms": 10000.0 });
    let file = dir.path().join("long.json");
    std::fs::write(&file, scenario.to_string()).unwrap();
    let html = dir.path().join("long.html");
    let output = dsim(&["run", file.to_str().unwrap(), "--seed", "2", "--report", html.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let size = std::fs::metadata(&html).unwrap().len();
    assert!(size < 4 << 20, "{size} bytes");
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.contains("Space-time diagram") && text.contains("Roles over time"));
    assert!(!text.contains("http://") && !text.contains("https://"));
}

#[test]
fn report_from_a_trace_and_perfetto_export() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let output = dsim(&[
        "run",
        "raft",
        "--seed",
        "3",
        "--variant",
        "commit-old-term",
        "--trace",
        &path("t.jsonl"),
        "--history",
        &path("h.jsonl"),
        "--report",
        &path("r.md"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let markdown = std::fs::read_to_string(path("r.md")).unwrap();
    assert!(markdown.starts_with("# raft: VIOLATION"));
    assert!(markdown.contains("leader-completeness"));
    let output = dsim(&[
        "report",
        &path("t.jsonl"),
        "--history",
        &path("h.jsonl"),
        "-o",
        &path("r.html"),
        "--window",
        "3000-4000",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let html = std::fs::read_to_string(path("r.html")).unwrap();
    assert!(html.contains("Space-time diagram, 3000.0–4000.0 ms"));
    assert!(html.contains("dsim run raft --seed 3 --variant commit-old-term"));
    let output = dsim(&["run", "raft-crash-restart", "--trace", &path("p.json"), "--trace-format", "perfetto"]);
    assert_eq!(output.status.code(), Some(0));
    let perfetto: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path("p.json")).unwrap()).unwrap();
    assert!(perfetto["traceEvents"].as_array().unwrap().len() > 1000);
    std::fs::write(path("bad.jsonl"), "{\"event\":\"send\"}\nnot json\n").unwrap();
    let output = dsim(&["report", &path("bad.jsonl"), "-o", &path("x.html")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad.jsonl:2:"));
}
