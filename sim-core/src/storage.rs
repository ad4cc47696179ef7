//! A node's durable storage: a key-value map whose writes survive a crash only once synced.
//!
//! Reads see every write, synced or not (as reads through an OS page cache do). `sync`
//! makes all earlier writes durable. A crash throws away the unsynced writes; with a torn
//! write, the oldest unsynced write reaches the disk cut short at a random length, the way
//! a write interrupted mid-sector does.
//!
//! With a sync latency (the engine's `Costs`), `sync` only asks the disk: the writes so
//! far become durable when the engine completes the request ([`Storage::complete_sync`]),
//! and a crash before then loses them like any unsynced write.

use std::collections::BTreeMap;

use rand::RngExt;

use crate::rng::SimRng;

/// An unsynced write, remembered by what it replaced so that a crash can undo it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Undo {
    key: String,
    previous: Option<Vec<u8>>,
    put: bool,
}

/// Counters for one node's storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StorageMetrics {
    pub writes: u64,
    pub syncs: u64,
    pub bytes_written: u64,
    pub writes_lost: u64,
}

/// Durable key-value storage with explicit sync.
///
/// One map holds what reads see; the unsynced writes are kept as an undo log (the value
/// each replaced), so a crash rolls the map back to its durable state without a second
/// copy of the data, and a write costs no copy of its value (a torn write finds the
/// value it cuts short at the crash).
#[derive(Clone, Debug, Default)]
pub struct Storage {
    live: BTreeMap<String, Vec<u8>>,
    unsynced: Vec<Undo>,
    /// A crash armed to strike during a later write: `(writes before it, torn)`.
    crash_point: Option<(u32, bool)>,
    /// Set when the armed crash struck (with its torn flag): the node is dying, and
    /// writes and syncs no longer happen.
    dying: Option<bool>,
    metrics: StorageMetrics,
    /// Whether a sync waits for the engine to complete it (a sync latency is set).
    deferred_syncs: bool,
    /// Writes ever made (the sequence number of the next one), and how many of them are
    /// durable: the unsynced ones are the last `written - durable`.
    written: u64,
    durable: u64,
    /// The writes the newest sync request will make durable, and how many times `sync`
    /// was called with writes not yet durable (each such call waits for the disk).
    sync_requested: u64,
    sync_calls: u64,
}

impl Storage {
    /// The current value (synced or not).
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.live.get(key).map(Vec::as_slice)
    }

    /// Writes `value` under `key`; durable after the next [`Storage::sync`].
    pub fn put(&mut self, key: impl Into<String>, value: Vec<u8>) {
        if self.dying.is_some() {
            return;
        }
        let key = key.into();
        self.metrics.writes += 1;
        self.metrics.bytes_written += value.len() as u64;
        let previous = self.live.insert(key.clone(), value);
        self.unsynced.push(Undo { key, previous, put: true });
        self.written += 1;
        self.count_write();
    }

    /// Deletes `key`; durable after the next sync.
    pub fn delete(&mut self, key: &str) {
        if self.dying.is_some() {
            return;
        }
        self.metrics.writes += 1;
        let previous = self.live.remove(key);
        self.unsynced.push(Undo { key: key.to_owned(), previous, put: false });
        self.written += 1;
        self.count_write();
    }

    /// Keys and values whose key starts with `prefix`, in key order.
    pub fn scan_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.live
            .range(prefix.to_owned()..)
            .take_while(move |(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.as_str(), value.as_slice()))
    }

    /// Makes every write so far durable: at once, or with a sync latency when the
    /// engine completes the request (a request covering nothing new is no request).
    pub fn sync(&mut self) {
        if self.unsynced.is_empty() || self.dying.is_some() {
            return;
        }
        if !self.deferred_syncs {
            self.metrics.syncs += 1;
            self.unsynced.clear();
            self.durable = self.written;
            return;
        }
        self.sync_calls += 1;
        if self.written > self.sync_requested {
            self.metrics.syncs += 1;
            self.sync_requested = self.written;
        }
    }

    /// Whether a sync was asked and has not completed (never, without a sync latency):
    /// what the node holds in memory may then be lost by a crash although it synced.
    pub fn sync_pending(&self) -> bool {
        self.sync_requested > self.durable
    }

    /// Makes syncs wait for the engine (a sync latency is set for this node).
    pub fn defer_syncs(&mut self) {
        self.deferred_syncs = true;
    }

    /// How many calls of `sync` waited for the disk, and the writes (counted from the
    /// first ever made) the newest request covers.
    pub fn sync_calls(&self) -> (u64, u64) {
        (self.sync_calls, self.sync_requested)
    }

    /// The disk completed a sync request covering the first `upto` writes ever made:
    /// those still unsynced become durable (a crash since lost them already).
    pub fn complete_sync(&mut self, upto: u64) {
        if upto <= self.durable {
            return;
        }
        let count = ((upto - self.durable) as usize).min(self.unsynced.len());
        self.unsynced.drain(..count);
        self.durable = upto;
        debug_assert!(self.durable + self.unsynced.len() as u64 == self.written, "the undo log holds the rest");
    }

    /// Whether writes are waiting for a sync.
    pub fn has_unsynced(&self) -> bool {
        !self.unsynced.is_empty()
    }

    /// What a crash leaves: unsynced writes are lost; with `torn`, the oldest unsynced put
    /// lands cut short at a random length first.
    pub fn crash(&mut self, torn: bool, rng: &mut SimRng) {
        self.crash_point = None;
        self.dying = None;
        // Pending sync requests die with the node: what they covered is lost below.
        self.durable = self.written;
        self.sync_requested = self.written;
        if self.unsynced.is_empty() {
            // Everything written is durable: nothing to lose, nothing to tear.
            return;
        }
        let torn_put = if torn { self.oldest_unsynced_put() } else { None };
        let mut lost = self.unsynced.len() as u64;
        for undo in self.unsynced.drain(..).rev() {
            match undo.previous {
                Some(value) => self.live.insert(undo.key, value),
                None => self.live.remove(&undo.key),
            };
        }
        if let Some((key, mut value)) = torn_put {
            let keep = if value.is_empty() { 0 } else { rng.random_range(0..value.len()) };
            value.truncate(keep);
            self.live.insert(key, value);
            lost -= 1;
        }
        self.metrics.writes_lost += lost;
    }

    /// The oldest unsynced put as written: the value a later unsynced write to its key
    /// replaced, or else the live one.
    fn oldest_unsynced_put(&self) -> Option<(String, Vec<u8>)> {
        let position = self.unsynced.iter().position(|u| u.put)?;
        let key = &self.unsynced[position].key;
        let value = match self.unsynced[position + 1..].iter().find(|u| u.key == *key) {
            Some(later) => later.previous.clone(),
            None => self.live.get(key).cloned(),
        };
        Some((key.clone(), value.expect("a put's value is live until a later write replaces it")))
    }

    /// Arms a crash that strikes while the node makes its storage write number
    /// `writes + 1` from now (see `Fault::CrashDuringWrite`).
    pub fn arm_crash(&mut self, writes: u32, torn: bool) {
        self.crash_point = Some((writes, torn));
    }

    /// Calls off an armed crash that has not struck.
    pub fn disarm(&mut self) {
        self.crash_point = None;
    }

    /// `Some(torn)` once an armed crash struck: the node must crash when its handler
    /// returns, and nothing it does from now on may take effect.
    pub fn dying(&self) -> Option<bool> {
        self.dying
    }

    fn count_write(&mut self) {
        match &mut self.crash_point {
            Some((0, torn)) => {
                self.dying = Some(*torn);
                self.crash_point = None;
            }
            Some((writes, _)) => *writes -= 1,
            None => {}
        }
    }

    /// Counters.
    pub fn metrics(&self) -> StorageMetrics {
        self.metrics
    }

    /// Number of keys currently visible.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no key is visible.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::derive_rng;

    #[test]
    fn crash_keeps_synced_and_loses_unsynced() {
        let mut rng = derive_rng(1, "s");
        let mut storage = Storage::default();
        storage.put("a", b"1".to_vec());
        storage.sync();
        storage.put("b", b"2".to_vec());
        storage.delete("a");
        assert_eq!(storage.get("a"), None);
        assert_eq!(storage.get("b"), Some(&b"2"[..]));
        storage.crash(false, &mut rng);
        assert_eq!(storage.get("a"), Some(&b"1"[..]));
        assert_eq!(storage.get("b"), None);
        assert_eq!(storage.metrics().writes_lost, 2);
    }

    #[test]
    fn torn_write_is_a_strict_prefix() {
        let mut rng = derive_rng(2, "s");
        let mut storage = Storage::default();
        storage.put("log", vec![7u8; 100]);
        storage.put("other", vec![1u8; 10]);
        storage.crash(true, &mut rng);
        let torn = storage.get("log").unwrap();
        assert!(torn.len() < 100);
        assert!(torn.iter().all(|b| *b == 7));
        assert_eq!(storage.get("other"), None);
    }

    #[test]
    fn scan_prefix_in_key_order() {
        let mut storage = Storage::default();
        storage.put("log/2", vec![2]);
        storage.put("log/1", vec![1]);
        storage.put("meta", vec![0]);
        let keys: Vec<&str> = storage.scan_prefix("log/").map(|(k, _)| k).collect();
        assert_eq!(keys, ["log/1", "log/2"]);
    }

    /// The plain definition: a durable map and the list of unsynced writes.
    #[derive(Default)]
    struct Reference {
        durable: BTreeMap<String, Vec<u8>>,
        unsynced: Vec<(String, Option<Vec<u8>>)>,
    }

    impl Reference {
        fn live(&self) -> BTreeMap<String, Vec<u8>> {
            let mut live = self.durable.clone();
            for (key, value) in &self.unsynced {
                match value {
                    Some(value) => live.insert(key.clone(), value.clone()),
                    None => live.remove(key),
                };
            }
            live
        }

        fn crash(&mut self, torn: bool, rng: &mut SimRng) {
            let unsynced = std::mem::take(&mut self.unsynced);
            if torn && let Some((key, Some(mut value))) = unsynced.into_iter().find(|(_, v)| v.is_some()) {
                let keep = if value.is_empty() { 0 } else { rng.random_range(0..value.len()) };
                value.truncate(keep);
                self.durable.insert(key, value);
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Put(u8, Vec<u8>),
        Delete(u8),
        Sync,
        Crash(bool),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0u8..6, proptest::collection::vec(any::<u8>(), 0..5)).prop_map(|(k, v)| Op::Put(k, v)),
            2 => (0u8..6).prop_map(Op::Delete),
            1 => Just(Op::Sync),
            1 => any::<bool>().prop_map(Op::Crash),
        ]
    }

    proptest::proptest! {
        /// The undo log behaves exactly as a durable map plus a list of unsynced writes,
        /// torn writes included (both draw the same random length).
        #[test]
        fn matches_the_two_map_definition(ops in proptest::collection::vec(op(), 0..60)) {
            let (mut rng_a, mut rng_b) = (derive_rng(3, "s"), derive_rng(3, "s"));
            let mut storage = Storage::default();
            let mut reference = Reference::default();
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        storage.put(format!("k{k}"), v.clone());
                        reference.unsynced.push((format!("k{k}"), Some(v)));
                    }
                    Op::Delete(k) => {
                        storage.delete(&format!("k{k}"));
                        reference.unsynced.push((format!("k{k}"), None));
                    }
                    Op::Sync => {
                        storage.sync();
                        reference.durable = reference.live();
                        reference.unsynced.clear();
                    }
                    Op::Crash(torn) => {
                        storage.crash(torn, &mut rng_a);
                        reference.crash(torn, &mut rng_b);
                    }
                }
                let live: BTreeMap<String, Vec<u8>> =
                    storage.scan_prefix("").map(|(k, v)| (k.to_owned(), v.to_vec())).collect();
                proptest::prop_assert_eq!(live, reference.live());
            }
        }
    }
}
