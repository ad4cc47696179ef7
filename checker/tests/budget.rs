//! The memory budget holds over the whole check: every partition's memo, stack and what
//! its model interned count, a partition that needs room takes it from the others'
//! progress, and a check that cannot fit ends in "unknown" with the reason.

use checker::import::{Format, parse_history};
use checker::{Budget, CheckOptions, History, ModelKind, Report, Verdict, check};

const MIB: usize = 1 << 20;

/// `keys` keys; on each, `writers` puts all concurrent, and while they run one client
/// reads their values in reverse order: linearizable (the puts take effect in reverse),
/// but the search explores many subsets of the puts before it finds the order.
fn reversed_puts(keys: usize, writers: usize) -> History {
    let mut lines = Vec::new();
    for key in 0..keys {
        for p in 0..writers {
            lines.push(format!(
                "{{:process {}, :type :invoke, :f :put, :key \"k{key}\", :value \"v{p}\"}}",
                key * 100 + p
            ));
        }
    }
    for key in 0..keys {
        for value in (0..writers).rev() {
            let reader = 5000 + key;
            lines.push(format!("{{:process {reader}, :type :invoke, :f :get, :key \"k{key}\", :value nil}}"));
            lines.push(format!("{{:process {reader}, :type :ok, :f :get, :key \"k{key}\", :value \"v{value}\"}}"));
        }
    }
    for key in 0..keys {
        for p in 0..writers {
            lines.push(format!("{{:process {}, :type :ok, :f :put, :key \"k{key}\", :value \"v{p}\"}}", key * 100 + p));
        }
    }
    parse_history(&lines.join("\n"), Format::Edn).unwrap()
}

fn check_within(history: &History, memory_mb: usize) -> Report {
    let options =
        CheckOptions { budget: Budget { memory_bytes_max: memory_mb * MIB, ..Budget::default() }, split: true };
    check(ModelKind::Kv, None, history, &options).unwrap()
}

#[test]
fn partitions_give_up_their_progress_to_one_that_needs_the_room() {
    let history = reversed_puts(3, 12);
    let roomy = check_within(&history, 40);
    assert_eq!(roomy.verdict, Verdict::Pass);
    // Each key alone needs about 4.4 MiB; in 7 MiB two cannot be alive at once.
    let tight = check_within(&history, 7);
    assert_eq!(tight.verdict, Verdict::Pass, "{tight:?}");
    assert!(tight.memory_bytes_max <= 7 * MIB, "{}", tight.memory_bytes_max);
    assert!(tight.steps > roomy.steps, "evicted work is done again: {} vs {}", tight.steps, roomy.steps);
}

#[test]
fn a_check_that_cannot_fit_is_unknown_with_the_reason() {
    let history = reversed_puts(3, 12);
    let report = check_within(&history, 3);
    assert_eq!(report.verdict, Verdict::Unknown);
    assert!(report.unknown_reason.as_deref().unwrap().contains("memory"), "{report:?}");
    assert!(report.memory_bytes_max <= 3 * MIB, "{}", report.memory_bytes_max);
}

/// Ten clients appending distinct values at once, twenty times, then a read of a value
/// no order of the appends makes: it once ran out of 4 GB.
#[test]
fn concurrent_appenders_and_an_impossible_read_are_refuted_in_little_memory() {
    let (clients, rounds) = (10, 20);
    let mut lines = Vec::new();
    let mut order = Vec::new();
    for round in 0..rounds {
        for p in 0..clients {
            lines.push(format!("{{:process {p}, :type :invoke, :f :append, :key \"k\", :value \"v{p}_{round} \"}}"));
        }
        for p in 0..clients {
            lines.push(format!("{{:process {p}, :type :ok, :f :append, :key \"k\", :value \"v{p}_{round} \"}}"));
            order.push(format!("v{p}_{round} "));
        }
    }
    let n = order.len();
    let read = format!("{}{}vX ", order[..n - 2].concat(), order[n - 1]);
    lines.push(format!("{{:process {clients}, :type :invoke, :f :get, :key \"k\", :value nil}}"));
    lines.push(format!("{{:process {clients}, :type :ok, :f :get, :key \"k\", :value \"{read}\"}}"));
    let history = parse_history(&lines.join("\n"), Format::Edn).unwrap();
    let report = check_within(&history, 8);
    assert_eq!(report.verdict, Verdict::Violation);
    assert!(report.memory_bytes_max <= 8 * MIB, "{}", report.memory_bytes_max);
}
