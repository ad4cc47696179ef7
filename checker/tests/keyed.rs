//! Jepsen console logs of several registers (every value a `[key value]` pair) are
//! checked per key: one register would take each pair for a value of its own and judge a
//! linearizable log wrong (issue 37's false "not linearizable").

use checker::import::{Format, parse_history};
use checker::{CheckOptions, ModelKind, Verdict, check};

const LOG: &str = "{:type :invoke, :f :write, :value [1 5], :process 0}
{:type :ok, :f :write, :value [1 5], :process 0}
{:type :invoke, :f :write, :value [2 7], :process 1}
{:type :ok, :f :write, :value [2 7], :process 1}
{:type :invoke, :f :read, :value [1 nil], :process 0}
{:type :ok, :f :read, :value [1 5], :process 0}
{:type :invoke, :f :read, :value [2 nil], :process 1}
{:type :ok, :f :read, :value [2 7], :process 1}
";

#[test]
fn a_keyed_register_log_is_checked_per_key() {
    let history = parse_history(LOG, Format::Edn).unwrap();
    let report = check(ModelKind::Register, None, &history, &CheckOptions::default()).unwrap();
    assert_eq!(report.verdict, Verdict::Pass, "{report:?}");
    assert_eq!((report.model, report.partitions), ("register per key", 2));
    // Key 2 read a value only key 1 was given: not linearizable, in key 2's sub-history.
    let wrong = LOG.replace(":read, :value [2 7]", ":read, :value [2 5]");
    let report =
        check(ModelKind::Register, None, &parse_history(&wrong, Format::Edn).unwrap(), &CheckOptions::default())
            .unwrap();
    assert_eq!(report.verdict, Verdict::Violation, "{report:?}");
    assert_eq!(report.explanation.unwrap().partition.as_deref(), Some("2"));
}
