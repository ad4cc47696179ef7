//! Consistency as numbers: the anomalies a key-value history shows, for systems that do
//! not promise linearizability (and, measured the same way, for those that do).
//!
//! Operations are `get`, `put` (a register write) and `append` (a set add: the value's
//! elements end in `;`). A read's result is read as a set of elements: `a;b;` holds `a`
//! and `b`; siblings of plain values come joined by `|`.
//!
//! - A read is **stale** when it misses a write acknowledged before it began: an added
//!   element, or a put strictly newer (begun after it completed) than every put it saw.
//!   How stale: the number of such writes missed (versions behind) and how long before
//!   the read the first of them was acknowledged.
//! - **Read your writes**: a read that misses a write of its own session (process).
//! - **Monotonic reads**: a read that misses an element its session read before, or sees
//!   a put strictly older than one it saw before.
//! - **Lost writes**: acknowledged writes absent from the final converged state (a set
//!   element missing; a put whose value is gone with only strictly older puts left).
//!
//! An element added before a put of the same key may vanish legitimately (the put
//! replaced the set), and a put's value before an add (the add started a set), so a
//! write that another of the other kind may have followed is not counted missing.
//! Two operations are ordered only when one ended strictly before the other began.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::history::{History, Op, Outcome};
use crate::value::Value;

/// The anomaly counts of one history.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Anomalies {
    /// Reads that completed.
    pub reads: usize,
    pub stale_reads: usize,
    /// The most writes one read missed.
    pub stale_versions_max: usize,
    /// Over stale reads: the median and largest time between the first missed write's
    /// acknowledgement and the read's start.
    pub stale_ms_p50: f64,
    pub stale_ms_max: f64,
    pub read_your_writes_violations: usize,
    pub monotonic_read_violations: usize,
    /// Acknowledged writes (puts and adds).
    pub acked_writes: usize,
    /// Acknowledged writes absent from the final state; `None` without a final state.
    pub lost_writes: Option<usize>,
}

fn text(value: &Value) -> Option<&str> {
    match value {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

/// The elements a read's result holds.
pub fn elements_of(value: &str) -> BTreeSet<&str> {
    value.split([';', '|']).filter(|e| !e.is_empty()).collect()
}

struct Write<'a> {
    op: &'a Op,
    /// The element an append adds, or the value a put writes.
    element: &'a str,
    is_put: bool,
}

impl Write<'_> {
    fn invoke(&self) -> u64 {
        self.op.invoke_time_ns.unwrap_or(0)
    }

    /// When it ended; `u64::MAX` if it never did (it may take effect any time).
    fn end(&self) -> u64 {
        self.op.complete_time_ns.filter(|_| self.op.outcome != Outcome::Info).unwrap_or(u64::MAX)
    }

    /// When it was acknowledged; `u64::MAX` if never.
    fn acked(&self) -> u64 {
        match self.op.outcome {
            Outcome::Ok => self.op.complete_time_ns.unwrap_or(u64::MAX),
            _ => u64::MAX,
        }
    }
}

struct Key<'a> {
    writes: Vec<Write<'a>>,
    /// Put values to their writes.
    puts: BTreeMap<&'a str, usize>,
}

impl<'a> Key<'a> {
    /// Whether a put of the key may have taken effect after `t` and before `until`: it
    /// had not ended strictly before `t` and had begun before `until` (a put that may
    /// have replaced a set).
    fn put_between(&self, t: u64, until: u64) -> bool {
        self.writes.iter().any(|w| w.is_put && w.end() >= t && w.invoke() < until)
    }

    /// Whether `later` strictly follows every put among `seen` (acknowledged before it
    /// began).
    fn newer_than_all(&self, later: &Write<'_>, seen: &BTreeSet<&str>) -> bool {
        seen.iter().filter_map(|v| self.puts.get(v)).all(|i| self.writes[*i].acked() < later.invoke())
    }

    /// The writes acknowledged before `start` that a read seeing `seen` (and completing
    /// at `end`) missed.
    fn missed(&self, seen: &BTreeSet<&str>, start: u64, end: u64) -> Vec<&Write<'a>> {
        self.writes
            .iter()
            .filter(|w| w.acked() < start && !seen.contains(w.element))
            .filter(|w| {
                if w.is_put {
                    self.newer_than_all(w, seen) && !self.appended_after(w.invoke(), end)
                } else {
                    !self.put_between(w.invoke(), end)
                }
            })
            .collect()
    }

    /// Whether an add may have taken effect after `t` and before `until` (turning a
    /// put's register into a set).
    fn appended_after(&self, t: u64, until: u64) -> bool {
        self.writes.iter().any(|w| !w.is_put && w.end() >= t && w.invoke() < until)
    }
}

/// Measures `history`; `final_state` is each key's value once the system has converged.
pub fn measure(history: &History, final_state: Option<&BTreeMap<String, String>>) -> Anomalies {
    let mut keys: BTreeMap<&str, Key<'_>> = BTreeMap::new();
    for op in &history.ops {
        let (Some(key), Some(value)) = (op.key.as_ref().and_then(text), text(&op.value)) else { continue };
        let is_put = match op.f.as_str() {
            "put" => true,
            "append" => false,
            _ => continue,
        };
        let entry = keys.entry(key).or_insert_with(|| Key { writes: Vec::new(), puts: BTreeMap::new() });
        let element = if is_put { value } else { value.trim_end_matches(';') };
        if is_put {
            entry.puts.insert(element, entry.writes.len());
        }
        entry.writes.push(Write { op, element, is_put });
    }
    let mut out = Anomalies::default();
    let mut stale_ms = Vec::new();
    // Per session and key: the elements read so far.
    let mut session_seen: BTreeMap<(u64, &str), BTreeSet<&str>> = BTreeMap::new();
    let mut reads: Vec<&Op> = history.ops.iter().filter(|op| op.f == "get" && op.outcome == Outcome::Ok).collect();
    reads.sort_by_key(|op| (op.complete_time_ns, op.invoke_index));
    for read in reads {
        let (Some(key), Some(result)) = (read.key.as_ref().and_then(text), text(&read.result)) else { continue };
        out.reads += 1;
        let seen = elements_of(result);
        let (start, end) = (read.invoke_time_ns.unwrap_or(0), read.complete_time_ns.unwrap_or(u64::MAX));
        if let Some(k) = keys.get(key) {
            let missed = k.missed(&seen, start, end);
            if !missed.is_empty() {
                out.stale_reads += 1;
                out.stale_versions_max = out.stale_versions_max.max(missed.len());
                let first = missed.iter().map(|w| w.acked()).min().unwrap_or(start);
                stale_ms.push(start.saturating_sub(first) as f64 / 1e6);
                if missed.iter().any(|w| w.op.process == read.process) {
                    out.read_your_writes_violations += 1;
                }
            }
        }
        let before = session_seen.entry((read.process, key)).or_default();
        let regressed = before.iter().any(|e| {
            if seen.contains(e) {
                return false;
            }
            let Some(k) = keys.get(key) else { return false };
            match k.puts.get(e) {
                // A put seen before: a regression if what is seen now is strictly older.
                Some(i) => {
                    let earlier = &k.writes[*i];
                    seen.iter().filter_map(|v| k.puts.get(v)).any(|j| k.writes[*j].acked() < earlier.invoke())
                }
                // An element seen before: gone, unless a put replaced the set since.
                None => !k.put_between(0, end),
            }
        });
        if regressed {
            out.monotonic_read_violations += 1;
        }
        before.extend(seen);
    }
    stale_ms.sort_by(f64::total_cmp);
    out.stale_ms_p50 = stale_ms.get(stale_ms.len() / 2).copied().unwrap_or(0.0);
    out.stale_ms_max = stale_ms.last().copied().unwrap_or(0.0);
    out.acked_writes = keys.values().flat_map(|k| &k.writes).filter(|w| w.op.outcome == Outcome::Ok).count();
    out.lost_writes = final_state.map(|state| {
        let mut lost = 0;
        for (key, k) in &keys {
            let final_value = state.get(*key).map(String::as_str).unwrap_or("");
            let present = elements_of(final_value);
            lost += k.missed(&present, u64::MAX, u64::MAX).len();
        }
        lost
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Event, EventType, HistoryBuilder};

    /// (process, f, key, value, invoke ms, complete ms, result of a get / outcome).
    fn history(ops: &[(u64, &str, &str, &str, u64, u64, &str)]) -> History {
        let mut events = Vec::new();
        for (process, f, key, value, invoke, complete, result) in ops {
            let argument = if *f == "get" { Value::Nil } else { Value::Str((*value).into()) };
            let event = |kind, value, t: u64| Event {
                process: Some(*process),
                kind,
                f: (*f).into(),
                key: Some(Value::Str((*key).into())),
                value,
                time_ns: Some(t * 1_000_000),
                line: 0,
                column: 0,
            };
            events.push(event(EventType::Invoke, argument.clone(), *invoke));
            let (kind, value) = match *result {
                "info" => (EventType::Info, argument),
                _ if *f == "get" => (EventType::Ok, Value::Str((*result).into())),
                _ => (EventType::Ok, argument),
            };
            events.push(event(kind, value, *complete));
        }
        events.sort_by_key(|e| e.time_ns);
        let mut builder = HistoryBuilder::default();
        for event in events {
            builder.push(event).unwrap();
        }
        builder.finish()
    }

    #[test]
    fn a_read_missing_an_acknowledged_add_is_stale_by_versions_and_ms() {
        let h = history(&[
            (1, "append", "k", "a;", 0, 10, ""),
            (1, "append", "k", "b;", 20, 30, ""),
            (2, "get", "k", "", 50, 55, "a;"),
            (2, "get", "k", "", 60, 65, "a;b;"),
            (3, "get", "k", "", 70, 75, ""),
        ]);
        let a = measure(&h, None);
        assert_eq!(a.reads, 3);
        assert_eq!(a.stale_reads, 2);
        assert_eq!(a.stale_versions_max, 2);
        assert_eq!(a.stale_ms_max, 60.0);
        assert_eq!(a.stale_ms_p50, 60.0);
        assert_eq!(a.read_your_writes_violations, 0);
        assert_eq!(a.monotonic_read_violations, 0);
        assert_eq!(a.acked_writes, 2);
        assert_eq!(a.lost_writes, None);
    }

    #[test]
    fn concurrent_writes_are_not_required() {
        // The add overlaps the read: missing it is no anomaly.
        let h = history(&[(1, "append", "k", "a;", 0, 100, ""), (2, "get", "k", "", 50, 55, "")]);
        assert_eq!(measure(&h, None).stale_reads, 0);
    }

    #[test]
    fn puts_are_stale_only_behind_a_strictly_newer_put() {
        let h = history(&[
            (1, "put", "k", "x", 0, 10, ""),
            (1, "put", "k", "y", 20, 30, ""),
            // Sees x though y followed it: stale by one.
            (2, "get", "k", "", 40, 45, "x"),
            (2, "get", "k", "", 50, 55, "y"),
            // Sees x again after y: stale, and a monotonic-reads violation.
            (2, "get", "k", "", 60, 65, "x"),
            // Its own write missed: read your writes.
            (1, "get", "k", "", 70, 75, "x"),
        ]);
        let a = measure(&h, None);
        assert_eq!(a.stale_reads, 3);
        assert_eq!(a.stale_versions_max, 1);
        assert_eq!(a.monotonic_read_violations, 1);
        assert_eq!(a.read_your_writes_violations, 1);
    }

    #[test]
    fn an_element_seen_and_then_gone_breaks_monotonic_reads_unless_a_put_replaced_it() {
        let gone = history(&[
            (1, "append", "k", "a;", 0, 100, ""),
            (2, "get", "k", "", 10, 15, "a;"),
            (2, "get", "k", "", 20, 25, ""),
        ]);
        assert_eq!(measure(&gone, None).monotonic_read_violations, 1);
        let replaced = history(&[
            (1, "append", "k", "a;", 0, 100, ""),
            (2, "get", "k", "", 10, 15, "a;"),
            (3, "put", "k", "z", 16, 18, ""),
            (2, "get", "k", "", 20, 25, "z"),
        ]);
        assert_eq!(measure(&replaced, None).monotonic_read_violations, 0);
    }

    #[test]
    fn a_write_the_other_kind_may_have_replaced_is_not_owed() {
        // A put, then an add that started a set: the put's value is gone legitimately.
        let h = history(&[
            (1, "put", "k", "x", 0, 10, ""),
            (2, "append", "k", "a;", 20, 30, ""),
            (3, "get", "k", "", 40, 45, "a;"),
        ]);
        assert_eq!(measure(&h, None).stale_reads, 0);
        let state = BTreeMap::from([("k".to_owned(), "a;".to_owned())]);
        assert_eq!(measure(&h, Some(&state)).lost_writes, Some(0));
        // An add and a put begun at the same instant: either may have come last.
        let tie = history(&[
            (1, "append", "k", "a;", 10, 20, ""),
            (2, "put", "k", "z", 10, 15, ""),
            (3, "get", "k", "", 30, 35, "z"),
        ]);
        assert_eq!(measure(&tie, None).stale_reads, 0);
        // A put that ended as the add began is not ordered before it either.
        let touching = history(&[
            (2, "put", "k", "z", 10, 15, ""),
            (1, "append", "k", "a;", 15, 20, ""),
            (3, "get", "k", "", 30, 35, "z"),
        ]);
        assert_eq!(measure(&touching, None).stale_reads, 0);
        // A put that ended before the add began cannot have replaced it.
        let before = history(&[
            (2, "put", "k", "z", 10, 15, ""),
            (1, "append", "k", "a;", 16, 20, ""),
            (3, "get", "k", "", 30, 35, "z"),
        ]);
        assert_eq!(measure(&before, None).stale_reads, 1);
        // A put begun when the read had already ended did not replace anything it saw.
        let after = history(&[
            (1, "append", "k", "a;", 0, 10, ""),
            (3, "get", "k", "", 20, 25, ""),
            (2, "put", "k", "z", 25, 30, ""),
        ]);
        assert_eq!(measure(&after, None).stale_reads, 1);
        // An add begun as the read ended did not turn the register into a set for it.
        let late_add = history(&[
            (1, "put", "k", "x", 0, 10, ""),
            (3, "get", "k", "", 20, 25, ""),
            (2, "append", "k", "a;", 25, 30, ""),
        ]);
        assert_eq!(measure(&late_add, None).stale_reads, 1);
        // An add that ended before the put began does not excuse the put; one that
        // ended as it began does.
        let set_then_put = history(&[
            (2, "append", "k", "a;", 10, 15, ""),
            (1, "put", "k", "x", 16, 20, ""),
            (3, "get", "k", "", 30, 35, "a;"),
        ]);
        assert_eq!(measure(&set_then_put, None).stale_reads, 1);
        let touching = history(&[
            (2, "append", "k", "a;", 10, 16, ""),
            (1, "put", "k", "x", 16, 20, ""),
            (3, "get", "k", "", 30, 35, "a;"),
        ]);
        assert_eq!(measure(&touching, None).stale_reads, 0);
    }

    #[test]
    fn reading_newer_puts_is_monotonic_and_concurrent_ones_either_way() {
        let forward = history(&[
            (1, "put", "k", "x", 0, 10, ""),
            (1, "put", "k", "y", 20, 30, ""),
            (2, "get", "k", "", 40, 45, "x"),
            (2, "get", "k", "", 50, 55, "y"),
        ]);
        assert_eq!(measure(&forward, None).monotonic_read_violations, 0);
        // y began as x was acknowledged: neither is older, so y then x is no regression.
        let concurrent = history(&[
            (1, "put", "k", "x", 0, 10, ""),
            (3, "put", "k", "y", 10, 30, ""),
            (2, "get", "k", "", 40, 45, "y"),
            (2, "get", "k", "", 50, 55, "x"),
        ]);
        assert_eq!(measure(&concurrent, None).monotonic_read_violations, 0);
    }

    #[test]
    fn writes_are_ordered_only_when_one_ended_strictly_before_the_other_began() {
        // y begins at the instant x is acknowledged: concurrent, so reading x is fine.
        let h = history(&[
            (1, "put", "k", "x", 0, 10, ""),
            (2, "put", "k", "y", 10, 20, ""),
            (3, "get", "k", "", 30, 35, "x"),
        ]);
        assert_eq!(measure(&h, None).stale_reads, 0);
        let ordered = history(&[
            (1, "put", "k", "x", 0, 10, ""),
            (2, "put", "k", "y", 11, 20, ""),
            (3, "get", "k", "", 30, 35, "x"),
        ]);
        assert_eq!(measure(&ordered, None).stale_reads, 1);
    }

    #[test]
    fn lost_writes_are_acknowledged_writes_absent_from_the_final_state() {
        let h = history(&[
            (1, "append", "s", "a;", 0, 10, ""),
            (2, "append", "s", "b;", 0, 10, ""),
            (3, "append", "s", "c;", 0, 10, "info"),
            (1, "put", "r", "x", 20, 30, ""),
            (2, "put", "r", "y", 40, 50, ""),
        ]);
        let state = BTreeMap::from([("s".to_owned(), "a;".to_owned()), ("r".to_owned(), "x".to_owned())]);
        // b is gone (c was never acknowledged); y is gone with only the older x left.
        assert_eq!(measure(&h, Some(&state)).lost_writes, Some(2));
        let state = BTreeMap::from([("s".to_owned(), "b;a;".to_owned()), ("r".to_owned(), "y".to_owned())]);
        assert_eq!(measure(&h, Some(&state)).lost_writes, Some(0));
    }
}
