//! Registers whose writes carry unique values, decided in O(n log n): Gibbons and
//! Korach's zones ("Testing shared memories", SIAM J. Computing 1997; the form used here
//! is Anderson et al.'s, "What consistency does your key-value store actually
//! provide?", HotDep 2010).
//!
//! With every written value unique, each read names the one write it saw. A *cluster* is
//! a write and the reads of its value. Its zone runs between the earliest end `f` of any
//! of its operations and the latest start `s`: a *forward* zone `(f, s)` when `f < s`
//! (some of the cluster provably happened before some other of it, so the value was the
//! register's content throughout), else a *backward* zone `(s, f)` (all of it overlaps).
//! The history is linearizable exactly when
//!
//! 1. every read returns a written value (or the initial one) and does not end before its
//!    write begins,
//! 2. no two forward zones overlap (two values cannot both be the content throughout
//!    overlapping stretches), and
//! 3. no backward zone lies inside a forward zone (a cluster that must fit entirely in a
//!    stretch where another value is the content cannot).
//!
//! Time is the order of the history's entries (an operation starts at its invocation's
//! index and ends at its completion's), so equal timestamps are never a problem. The
//! initial value is a write before every entry. A failed write did not happen; an
//! indeterminate write that nobody read may not have happened, so it is left out; one
//! that was read happened, at some point after its invocation (it ends at infinity).
//! Indeterminate and failed reads say nothing and are left out.

use std::collections::BTreeMap;

use crate::history::{History, Op, Outcome};
use crate::value::Value;

/// What the zones decided.
#[derive(Clone, Debug, PartialEq)]
pub enum ZoneVerdict {
    Linearizable,
    /// Not linearizable: the operation to blame (an index into the history's ops) and why.
    Violation {
        op: usize,
        reason: String,
    },
}

/// A cluster's extent: the latest start and earliest end of its operations, and the op
/// that sets each.
#[derive(Clone, Copy, Debug)]
struct Cluster {
    start_max: (u64, usize),
    end_min: (u64, usize),
}

/// The start and end of an operation on the entry order (0 is the initial write, so
/// every real entry is shifted by one; an indeterminate write ends at infinity).
fn extent(op: &Op) -> (u64, u64) {
    let start = op.invoke_index as u64 + 1;
    let end = match (op.outcome, op.complete_index) {
        (Outcome::Ok, Some(index)) => index as u64 + 1,
        _ => u64::MAX,
    };
    (start, end)
}

/// Decides a read/write register history with unique written values; `None` when the
/// history is not one (a cas, a repeated written value, a value equal to the initial
/// one, an operation of another kind).
pub fn decide(history: &History, ops: &[usize], initial: &Value) -> Option<ZoneVerdict> {
    // The written values, each to its write.
    let mut writes: BTreeMap<&Value, usize> = BTreeMap::new();
    let mut read_values: std::collections::BTreeSet<&Value> = std::collections::BTreeSet::new();
    for &i in ops {
        let op = &history.ops[i];
        match op.f.as_str() {
            "write" => {
                if op.outcome == Outcome::Fail {
                    continue;
                }
                if op.value == *initial || writes.insert(&op.value, i).is_some() {
                    return None;
                }
            }
            "read" => {
                if op.outcome == Outcome::Ok {
                    read_values.insert(&op.result);
                }
            }
            _ => return None,
        }
    }
    let mut clusters: BTreeMap<Option<&Value>, Cluster> = BTreeMap::new();
    // The initial value: a write at 0.
    clusters.insert(None, Cluster { start_max: (0, usize::MAX), end_min: (0, usize::MAX) });
    for (value, &i) in &writes {
        let op = &history.ops[i];
        if op.outcome == Outcome::Info && !read_values.contains(value) {
            // Never read: it may never have happened, and then it constrains nothing.
            continue;
        }
        let (start, end) = extent(op);
        clusters.insert(Some(*value), Cluster { start_max: (start, i), end_min: (end, i) });
    }
    for &i in ops {
        let op = &history.ops[i];
        if op.f != "read" || op.outcome != Outcome::Ok || (op.result.is_nil() && !initial.is_nil()) {
            // Failed and indeterminate reads say nothing; nil against a non-nil initial
            // value means "unknown" to the register model.
            continue;
        }
        let key =
            if op.result == *initial || (op.result.is_nil() && initial.is_nil()) { None } else { Some(&op.result) };
        let Some(cluster) = clusters.get_mut(&key) else {
            return Some(ZoneVerdict::Violation {
                op: i,
                reason: format!("the read returned {}, which no write wrote", op.result),
            });
        };
        let (start, end) = extent(op);
        if let Some(value) = key {
            let (write_starts, _) = extent(&history.ops[writes[value]]);
            if end < write_starts {
                return Some(ZoneVerdict::Violation {
                    op: i,
                    reason: format!("the read of {value} ended before the write of {value} began"),
                });
            }
        }
        if start > cluster.start_max.0 {
            cluster.start_max = (start, i);
        }
        if end < cluster.end_min.0 {
            cluster.end_min = (end, i);
        }
    }
    Some(zones_verdict(&clusters, initial))
}

/// Conditions 2 and 3 of the module doc over the clusters' zones.
fn zones_verdict(clusters: &BTreeMap<Option<&Value>, Cluster>, initial: &Value) -> ZoneVerdict {
    let name =
        |value: &Option<&Value>| value.map_or_else(|| format!("{initial} (the initial value)"), Value::to_string);
    // Forward zones (low, high, value, the op ending first, the op starting last).
    let mut forward: Vec<(u64, u64, &Option<&Value>, usize, usize)> = Vec::new();
    let mut backward: Vec<(u64, u64, &Option<&Value>, usize)> = Vec::new();
    for (value, c) in clusters {
        if c.end_min.0 < c.start_max.0 {
            forward.push((c.end_min.0, c.start_max.0, value, c.end_min.1, c.start_max.1));
        } else {
            backward.push((c.start_max.0, c.end_min.0, value, c.start_max.1));
        }
    }
    forward.sort_unstable_by_key(|z| (z.0, z.1));
    // Two forward zones overlap when, in order of their low ends, one starts before the
    // furthest high end seen so far.
    let mut reach: Option<(u64, &Option<&Value>)> = None;
    for zone in &forward {
        if let Some((high, other)) = reach
            && zone.0 < high
        {
            let op = if zone.4 == usize::MAX { zone.3 } else { zone.4 };
            return ZoneVerdict::Violation {
                op,
                reason: format!(
                    "{} and {} must each have been the register's content throughout overlapping stretches \
                     (their forward zones overlap)",
                    name(other),
                    name(zone.2)
                ),
            };
        }
        if reach.is_none_or(|(high, _)| zone.1 > high) {
            reach = Some((zone.1, zone.2));
        }
    }
    // A backward zone inside a forward zone: the forward zones are disjoint and sorted,
    // so only the last one starting before the backward zone can contain it.
    for zone in &backward {
        let candidate = forward.partition_point(|f| f.0 < zone.0);
        if let Some(f) = candidate.checked_sub(1).map(|k| &forward[k])
            && f.0 < zone.0
            && zone.1 < f.1
            && f.2 != zone.2
        {
            return ZoneVerdict::Violation {
                op: if zone.3 == usize::MAX { f.4 } else { zone.3 },
                reason: format!(
                    "every operation of {} overlaps a stretch where {} must have been the register's content \
                     (a backward zone inside a forward zone)",
                    name(zone.2),
                    name(f.2)
                ),
            };
        }
    }
    ZoneVerdict::Linearizable
}
