//! Long histories linearizable by construction pass; one altered read makes them fail.

use checker::generate::{Config, Shape, corrupt_one_read, generate};
use checker::history::{Event, History, HistoryBuilder};
use checker::{CheckOptions, ModelKind, Verdict, check};

fn build(events: Vec<Event>) -> History {
    let mut builder = HistoryBuilder::default();
    for event in events {
        builder.push(event).unwrap();
    }
    builder.finish()
}

/// Passes with 10% indeterminate operations; the corrupted copy is generated without
/// them, because proving a violation means exploring every configuration before it, and
/// each indeterminate operation multiplies those (the problem is NP-complete).
fn verdicts(shape: Shape, kind: ModelKind, ops: usize, clients: usize, split: bool) {
    for seed in 0..3 {
        let config = Config { shape, ops, clients, info_rate: 0.1, seed };
        let options = CheckOptions { split, ..CheckOptions::default() };
        let report = check(kind, None, &build(generate(&config)), &options).unwrap();
        assert_eq!(report.verdict, Verdict::Pass, "seed {seed}: {report:?}");
        assert_eq!(report.ops, ops);
        let events = generate(&Config { info_rate: 0.0, ..config });
        assert_eq!(check(kind, None, &build(events.clone()), &options).unwrap().verdict, Verdict::Pass);
        let mut corrupted = events;
        assert!(corrupt_one_read(&mut corrupted, seed));
        let report = check(kind, None, &build(corrupted), &options).unwrap();
        assert_eq!(report.verdict, Verdict::Violation, "seed {seed} corrupted");
        let explanation = report.explanation.unwrap();
        assert!(matches!(explanation.op.f.as_str(), "read" | "get"), "{explanation:?}");
    }
}

#[test]
fn register_histories_of_thousands_of_ops() {
    verdicts(Shape::Register, ModelKind::Register, 3_000, 8, true);
}

#[test]
fn cas_register_histories_of_thousands_of_ops() {
    verdicts(Shape::CasRegister, ModelKind::CasRegister, 3_000, 8, true);
}

#[test]
fn kv_histories_of_thousands_of_ops_split() {
    verdicts(Shape::Kv { keys: 20 }, ModelKind::Kv, 10_000, 30, true);
}

#[test]
fn kv_histories_unsplit() {
    verdicts(Shape::Kv { keys: 4 }, ModelKind::Kv, 400, 6, false);
}

/// Jepsen etcd-test shapes: 90 ops, 5 clients, 15% indeterminate, both verdicts.
#[test]
fn etcd_shaped_histories_with_indeterminate_ops() {
    let mut violations = 0;
    for seed in 0..200 {
        let config = Config { shape: Shape::CasRegister, ops: 90, clients: 5, info_rate: 0.15, seed };
        let events = generate(&config);
        let report = check(ModelKind::CasRegister, None, &build(events.clone()), &CheckOptions::default()).unwrap();
        assert_eq!(report.verdict, Verdict::Pass, "seed {seed}");
        let mut corrupted = events;
        if corrupt_one_read(&mut corrupted, seed) {
            let report = check(ModelKind::CasRegister, None, &build(corrupted), &CheckOptions::default()).unwrap();
            assert_eq!(report.verdict, Verdict::Violation, "seed {seed} corrupted");
            violations += 1;
        }
    }
    assert!(violations > 150);
}
