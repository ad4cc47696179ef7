//! The sample histories recorded by Jepsen get the verdicts their projects' tests assert.

use checker::import::{Format, detect_format, parse_history};
use checker::{CheckOptions, ModelKind, Report, Value, Verdict, check};

fn sample(name: &str) -> String {
    // Read at run time: the crate may have been built in another folder.
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let path = format!("{crate_dir}/tests/data/histories/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn check_sample(name: &str, expected_format: Format, initial: Option<Value>) -> (ModelKind, Report) {
    let text = sample(name);
    let format = detect_format(Some(name), &text);
    assert_eq!(format, expected_format, "{name}");
    let history = parse_history(&text, format).unwrap();
    let kind = ModelKind::infer(&history);
    let report = check(kind, initial.as_ref(), &history, &CheckOptions::default()).unwrap();
    (kind, report)
}

#[test]
fn cas_register_memstress_is_linearizable() {
    let (kind, report) = check_sample("cas-register-memstress3-0.edn", Format::Edn, Some(Value::Int(0)));
    assert_eq!(kind, ModelKind::CasRegister);
    assert_eq!(report.verdict, Verdict::Pass, "{report:?}");
}

#[test]
fn cas_register_bad_analysis_names_op_fourteen() {
    let (_, report) = check_sample("cas-register-bad-analysis.edn", Format::Edn, Some(Value::Int(0)));
    assert_eq!(report.verdict, Verdict::Violation);
    let explanation = report.explanation.unwrap();
    assert_eq!(explanation.op.index, 14);
    assert_eq!(explanation.op.process, 21);
    assert_eq!(explanation.op.f, "read");
    assert_eq!(explanation.op.result, "2");
    // Just before the read of 2, the register can only hold 0 (or 1, if process 20's
    // indeterminate write took effect).
    let mut states = explanation.states.clone();
    states.sort();
    assert_eq!(states, vec!["0", "1"]);
}

#[test]
fn multi_register_is_linearizable() {
    let initial = checker::edn::parse("{:x 0 :y 0}").unwrap();
    let (kind, report) = check_sample("multi-register.edn", Format::Edn, Some(initial));
    assert_eq!(kind, ModelKind::MultiRegister);
    assert_eq!(report.verdict, Verdict::Pass, "{report:?}");
}

#[test]
fn etcd_logs_get_their_verdicts() {
    let (kind, bad) = check_sample("etcd_000.log", Format::JepsenLog, None);
    assert_eq!(kind, ModelKind::CasRegister);
    assert_eq!(bad.verdict, Verdict::Violation);
    let (_, good) = check_sample("etcd_005.log", Format::JepsenLog, None);
    assert_eq!(good.verdict, Verdict::Pass, "{good:?}");
}

#[test]
fn kv_samples_get_their_verdicts() {
    let (kind, good) = check_sample("kv-c01-ok.txt", Format::Edn, None);
    assert_eq!(kind, ModelKind::Kv);
    assert_eq!(good.verdict, Verdict::Pass, "{good:?}");
    assert!(good.partitions > 1);
    let (_, bad) = check_sample("kv-c01-bad.txt", Format::Edn, None);
    assert_eq!(bad.verdict, Verdict::Violation);
    assert!(bad.explanation.unwrap().partition.is_some());
}

#[test]
fn kv_samples_unsplit_agree() {
    for (name, expected) in [("kv-c01-ok.txt", Verdict::Pass), ("kv-c01-bad.txt", Verdict::Violation)] {
        let history = parse_history(&sample(name), Format::Edn).unwrap();
        let options = CheckOptions { split: false, ..CheckOptions::default() };
        let report = check(ModelKind::Kv, None, &history, &options).unwrap();
        assert_eq!(report.verdict, expected, "{name}");
        assert_eq!(report.partitions, 1);
    }
}
