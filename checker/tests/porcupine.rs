//! Every history of Porcupine's test data (Jepsen's etcd logs, the kv histories) gets the
//! verdict Porcupine's own tests assert (`tests/data/porcupine/expected.txt`, taken from
//! its `porcupine_test.go`). The data is Porcupine's, MIT-licensed (LICENSE.md beside it).

use checker::import::{detect_format, parse_history};
use checker::{CheckOptions, ModelKind, Verdict, check};

fn data(path: &str) -> String {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    format!("{crate_dir}/tests/data/porcupine/{path}")
}

#[test]
fn every_porcupine_history_gets_porcupines_verdict() {
    let expected = std::fs::read_to_string(data("expected.txt")).unwrap();
    let mut checked = 0;
    for line in expected.lines() {
        let (file, verdict) = line.split_once(' ').unwrap();
        let text = std::fs::read_to_string(data(file)).unwrap();
        let history = parse_history(&text, detect_format(Some(file), &text)).unwrap();
        let kind = if file.starts_with("kv/") { ModelKind::Kv } else { ModelKind::CasRegister };
        let report = check(kind, None, &history, &CheckOptions::default()).unwrap();
        let want = if verdict == "linearizable" { Verdict::Pass } else { Verdict::Violation };
        assert_eq!(report.verdict, want, "{file}: {report:?}");
        checked += 1;
    }
    assert_eq!(checked, 108, "102 etcd logs (etcd_095 is empty: its cluster never started) and 6 kv histories");
}
