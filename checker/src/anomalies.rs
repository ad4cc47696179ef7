//! Consistency as numbers: the anomalies a key-value history shows, for systems that do
//! not promise linearizability (and, measured the same way, for those that do).
//!
//! Operations are `get`, `put` (a register write), `append` (adds one element: the
//! value ends in `;`) and `cas [from to]` (a register write when it succeeds).
//!
//! **How a value is read back.** The kv model's value is a string: a put or cas replaces
//! it, an append concatenates its suffix. So a read's result is an optional *base* (the
//! value of the last put or cas) followed by the elements appended since, each ending in
//! `;`: `x` is the put `x`; `xa;b;` is the put `x`, then the appends `a;` and `b;`;
//! `a;b;` is two appends to an empty key. Siblings (a store that keeps concurrent
//! versions) come joined by `|`, each read back the same way. The base and the first
//! element share the text before the first `;`: it is split where a put of the key
//! ends and an appended element of the key begins (written values are unique, so there
//! is one such place); text that no write of the key explains is kept as one token, so
//! it never stands in for a write. A read then *saw* its base and its elements.
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
//! Two operations are ordered only when one ended strictly before the other began. A
//! write that failed did not happen and excuses nothing.
//!
//! **Cost.** Per key the writes are sorted by invocation, with running maxima of their
//! ends, so each read examines only the writes that could be missing: those begun after
//! the last write of the other kind that may have replaced them and acknowledged before
//! the read began. In a history without anomalies these are the writes the read saw
//! plus those in flight, so the measure costs O(n log n) plus the size of the reads'
//! values, whatever the run's length.

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
    /// Acknowledged writes (puts, successful cas and adds).
    pub acked_writes: usize,
    /// Acknowledged writes absent from the final state; `None` without a final state.
    pub lost_writes: Option<usize>,
}

impl Anomalies {
    /// Whether any anomaly was counted (a lost write only when there was a final state).
    pub fn any(&self) -> bool {
        self.stale_reads > 0
            || self.read_your_writes_violations > 0
            || self.monotonic_read_violations > 0
            || self.lost_writes.is_some_and(|lost| lost > 0)
    }
}

fn text(value: &Value) -> Option<&str> {
    match value {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

/// What a read saw of one key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen<'a> {
    /// The values of the puts (or cas) the read's siblings start from.
    pub bases: BTreeSet<&'a str>,
    /// The elements appended since (without their `;`), and any text no write explains.
    pub elements: BTreeSet<&'a str>,
}

/// One write of a key: a put, a cas that set a value, or an append.
struct Write<'a> {
    op: &'a Op,
    /// The element an append adds (without its `;`), or the value a put writes.
    token: &'a str,
    is_put: bool,
    invoke: u64,
    /// When it ended; `u64::MAX` if it never did (it may take effect any time).
    end: u64,
    /// When it was acknowledged; `u64::MAX` if never.
    acked: u64,
}

impl<'a> Write<'a> {
    /// The write `op` makes, if it is one that may have happened.
    fn of(op: &'a Op) -> Option<Write<'a>> {
        if op.outcome == Outcome::Fail {
            return None;
        }
        let (token, is_put) = match op.f.as_str() {
            "put" => (text(&op.value)?, true),
            "append" => (text(&op.value)?.trim_end_matches(';'), false),
            "cas" => (op.value.as_vec().filter(|pair| pair.len() == 2).and_then(|pair| text(&pair[1]))?, true),
            _ => return None,
        };
        let invoke = op.invoke_time_ns.unwrap_or(0);
        let completed = op.complete_time_ns.unwrap_or(u64::MAX);
        let (end, acked) = match op.outcome {
            Outcome::Ok => (completed, completed),
            _ => (u64::MAX, u64::MAX),
        };
        debug_assert!(invoke <= end, "an operation ends after it begins");
        Some(Write { op, token, is_put, invoke, end, acked })
    }
}

/// Writes of one kind sorted by invocation, with the running maximum of their ends.
#[derive(Default)]
struct Order {
    by_invoke: Vec<(u64, usize)>,
    end_max: Vec<u64>,
}

impl Order {
    fn build(writes: &[Write<'_>], is_put: bool) -> Order {
        let mut by_invoke: Vec<(u64, usize)> =
            writes.iter().enumerate().filter(|(_, w)| w.is_put == is_put).map(|(i, w)| (w.invoke, i)).collect();
        by_invoke.sort_unstable();
        let mut end_max = Vec::with_capacity(by_invoke.len());
        let mut latest = 0;
        for (_, i) in &by_invoke {
            latest = latest.max(writes[*i].end);
            end_max.push(latest);
        }
        Order { by_invoke, end_max }
    }

    /// The latest end among the writes invoked strictly before `until`; `None` if none
    /// was.
    fn last_end_before(&self, until: u64) -> Option<u64> {
        let count = self.by_invoke.partition_point(|(invoke, _)| *invoke < until);
        count.checked_sub(1).map(|last| self.end_max[last])
    }

    /// The writes invoked strictly after `after` (every one if `None`) and strictly
    /// before `until`.
    fn invoked_between(&self, after: Option<u64>, until: u64) -> &[(u64, usize)] {
        let first = after.map_or(0, |after| self.by_invoke.partition_point(|(invoke, _)| *invoke <= after));
        let last = self.by_invoke.partition_point(|(invoke, _)| *invoke < until);
        &self.by_invoke[first.min(last)..last]
    }
}

struct Key<'a> {
    writes: Vec<Write<'a>>,
    /// Put (and cas) values, and appended elements, to their writes.
    puts: BTreeMap<&'a str, usize>,
    elements: BTreeMap<&'a str, usize>,
    put_order: Order,
    append_order: Order,
}

impl<'a> Key<'a> {
    fn new(writes: Vec<Write<'a>>) -> Key<'a> {
        let mut puts = BTreeMap::new();
        let mut elements = BTreeMap::new();
        for (i, w) in writes.iter().enumerate() {
            if w.is_put {
                puts.insert(w.token, i)
            } else {
                elements.insert(w.token, i)
            };
        }
        let (put_order, append_order) = (Order::build(&writes, true), Order::build(&writes, false));
        Key { writes, puts, elements, put_order, append_order }
    }

    /// Reads `value` back as the module doc says: per sibling, a base then elements.
    fn read_back(&self, value: &'a str) -> Seen<'a> {
        let mut seen = Seen::default();
        for sibling in value.split('|').filter(|s| !s.is_empty()) {
            let Some((head, rest)) = sibling.split_once(';') else {
                seen.bases.insert(sibling);
                continue;
            };
            match self.split_head(head) {
                Some((base, element)) => {
                    seen.bases.insert(base);
                    seen.elements.insert(element);
                }
                None if self.puts.contains_key(head) => {
                    seen.bases.insert(head);
                }
                None => {
                    seen.elements.insert(head);
                }
            }
            seen.elements.extend(rest.split(';').filter(|e| !e.is_empty()));
        }
        seen
    }

    /// Splits the text before a sibling's first `;` into a put's value and an appended
    /// element; `None` when it is one element alone or no write explains it.
    fn split_head(&self, head: &'a str) -> Option<(&'a str, &'a str)> {
        if self.elements.contains_key(head) {
            return None;
        }
        head.char_indices()
            .skip(1)
            .map(|(at, _)| head.split_at(at))
            .find(|(base, element)| self.puts.contains_key(base) && self.elements.contains_key(element))
    }

    /// The writes acknowledged before `start` that a read seeing `seen` (and completing
    /// at `end`) missed. Only writes that began after the last write of the other kind
    /// that may have replaced them (and, for a put, after every put the read saw was
    /// acknowledged) can be missing, so only those are examined.
    fn missed(&self, seen: &Seen<'_>, start: u64, end: u64) -> Vec<&Write<'a>> {
        let mut out = Vec::new();
        let seen_acked_max = seen.bases.iter().filter_map(|b| self.puts.get(b)).map(|i| self.writes[*i].acked).max();
        let after = self.append_order.last_end_before(end).max(seen_acked_max);
        for (_, i) in self.put_order.invoked_between(after, start) {
            let w = &self.writes[*i];
            if w.acked < start && !seen.bases.contains(w.token) {
                out.push(w);
            }
        }
        // An add is excused by a put that may have followed it: one invoked before the
        // read ended, or one the read saw (whatever the clock says, it took effect before
        // the read returned).
        let seen_put_end = seen.bases.iter().filter_map(|b| self.puts.get(b)).map(|i| self.writes[*i].end).max();
        let after = self.put_order.last_end_before(end).max(seen_put_end);
        for (_, i) in self.append_order.invoked_between(after, start) {
            let w = &self.writes[*i];
            if w.acked < start && !seen.elements.contains(w.token) {
                out.push(w);
            }
        }
        out
    }

    /// Whether a read by a session that saw `before`, now seeing `seen` and completing at
    /// `end`, went backwards: a put it saw is gone while a strictly older one is seen, or
    /// an element it saw is gone while no put can have replaced the set.
    fn regressed(&self, before: &Session<'a>, seen: &Seen<'_>, end: u64) -> bool {
        let newest_gone = before.puts.iter().rev().find(|(_, i)| !seen.bases.contains(self.writes[*i].token));
        if let Some((gone_invoke, _)) = newest_gone
            && seen.bases.iter().filter_map(|b| self.puts.get(b)).any(|j| self.writes[*j].acked < *gone_invoke)
        {
            return true;
        }
        // A put may have replaced the set: the read saw one, or one began by its end (an
        // instant shared with the read's end is concurrent with it).
        let replaced = seen.bases.iter().any(|b| self.puts.contains_key(b))
            || self.put_order.by_invoke.first().is_some_and(|(invoke, _)| *invoke <= end);
        let still_seen = seen.elements.iter().filter(|e| before.elements.contains(*e)).count();
        still_seen < before.elements.len() && !replaced
    }
}

/// What one session has read of one key so far.
#[derive(Default)]
struct Session<'a> {
    /// Puts seen: (invocation, write index).
    puts: BTreeSet<(u64, usize)>,
    elements: BTreeSet<&'a str>,
}

impl<'a> Session<'a> {
    fn extend(&mut self, key: &Key<'a>, seen: &Seen<'a>) {
        for base in &seen.bases {
            if let Some(i) = key.puts.get(base) {
                self.puts.insert((key.writes[*i].invoke, *i));
            }
        }
        self.elements.extend(seen.elements.iter().copied());
    }
}

/// Measures `history`; `final_state` is each key's value once the system has converged.
pub fn measure(history: &History, final_state: Option<&BTreeMap<String, String>>) -> Anomalies {
    let mut writes: BTreeMap<&str, Vec<Write<'_>>> = BTreeMap::new();
    for op in &history.ops {
        if let Some(key) = op.key.as_ref().and_then(text)
            && let Some(write) = Write::of(op)
        {
            writes.entry(key).or_default().push(write);
        }
    }
    let keys: BTreeMap<&str, Key<'_>> = writes.into_iter().map(|(key, w)| (key, Key::new(w))).collect();
    let mut out = Anomalies::default();
    let mut stale_ms = Vec::new();
    let mut sessions: BTreeMap<(u64, &str), Session<'_>> = BTreeMap::new();
    let mut reads: Vec<&Op> = history.ops.iter().filter(|op| op.f == "get" && op.outcome == Outcome::Ok).collect();
    reads.sort_by_key(|op| (op.complete_time_ns, op.invoke_index));
    for read in reads {
        let (Some(key), Some(result)) = (read.key.as_ref().and_then(text), text(&read.result)) else { continue };
        out.reads += 1;
        let Some(k) = keys.get(key) else { continue };
        let seen = k.read_back(result);
        let (start, end) = (read.invoke_time_ns.unwrap_or(0), read.complete_time_ns.unwrap_or(u64::MAX));
        let missed = k.missed(&seen, start, end);
        if !missed.is_empty() {
            out.stale_reads += 1;
            out.stale_versions_max = out.stale_versions_max.max(missed.len());
            let first = missed.iter().map(|w| w.acked).min().unwrap_or(start);
            stale_ms.push(start.saturating_sub(first) as f64 / 1e6);
            if missed.iter().any(|w| w.op.process == read.process) {
                out.read_your_writes_violations += 1;
            }
        }
        let session = sessions.entry((read.process, key)).or_default();
        if k.regressed(session, &seen, end) {
            out.monotonic_read_violations += 1;
        }
        session.extend(k, &seen);
    }
    stale_ms.sort_by(f64::total_cmp);
    out.stale_ms_p50 = stale_ms.get(stale_ms.len() / 2).copied().unwrap_or(0.0);
    out.stale_ms_max = stale_ms.last().copied().unwrap_or(0.0);
    out.acked_writes = keys.values().flat_map(|k| &k.writes).filter(|w| w.op.outcome == Outcome::Ok).count();
    out.lost_writes = final_state.map(|state| {
        keys.iter()
            .map(|(key, k)| {
                let final_value = state.get(*key).map(String::as_str).unwrap_or("");
                k.missed(&k.read_back(final_value), u64::MAX, u64::MAX).len()
            })
            .sum()
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
