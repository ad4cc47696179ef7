//! A node's durable storage: a key-value map whose writes survive a crash only once synced.
//!
//! Reads see every write, synced or not (as reads through an OS page cache do). `sync`
//! makes all earlier writes durable. A crash throws away the unsynced writes; with a torn
//! write, the oldest unsynced write reaches the disk cut short at a random length, the way
//! a write interrupted mid-sector does.

use std::collections::BTreeMap;

use rand::RngExt;

use crate::rng::SimRng;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Write {
    Put(String, Vec<u8>),
    Delete(String),
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
#[derive(Clone, Debug, Default)]
pub struct Storage {
    durable: BTreeMap<String, Vec<u8>>,
    live: BTreeMap<String, Vec<u8>>,
    unsynced: Vec<Write>,
    metrics: StorageMetrics,
}

impl Storage {
    /// The current value (synced or not).
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.live.get(key).map(Vec::as_slice)
    }

    /// Writes `value` under `key`; durable after the next [`Storage::sync`].
    pub fn put(&mut self, key: impl Into<String>, value: Vec<u8>) {
        let key = key.into();
        self.metrics.writes += 1;
        self.metrics.bytes_written += value.len() as u64;
        self.live.insert(key.clone(), value.clone());
        self.unsynced.push(Write::Put(key, value));
    }

    /// Deletes `key`; durable after the next sync.
    pub fn delete(&mut self, key: &str) {
        self.metrics.writes += 1;
        self.live.remove(key);
        self.unsynced.push(Write::Delete(key.to_owned()));
    }

    /// Keys and values whose key starts with `prefix`, in key order.
    pub fn scan_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.live
            .range(prefix.to_owned()..)
            .take_while(move |(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.as_str(), value.as_slice()))
    }

    /// Makes every write so far durable.
    pub fn sync(&mut self) {
        if self.unsynced.is_empty() {
            return;
        }
        self.metrics.syncs += 1;
        for write in self.unsynced.drain(..) {
            apply(&mut self.durable, write);
        }
    }

    /// Whether writes are waiting for a sync.
    pub fn has_unsynced(&self) -> bool {
        !self.unsynced.is_empty()
    }

    /// What a crash leaves: unsynced writes are lost; with `torn`, the oldest unsynced put
    /// lands cut short at a random length first.
    pub fn crash(&mut self, torn: bool, rng: &mut SimRng) {
        if self.unsynced.is_empty() {
            // Everything written is durable: nothing to lose, nothing to tear.
            return;
        }
        let mut unsynced = std::mem::take(&mut self.unsynced);
        let torn_position = unsynced.iter().position(|w| matches!(w, Write::Put(..))).filter(|_| torn);
        if let Some(position) = torn_position
            && let Write::Put(key, mut value) = unsynced.remove(position)
        {
            let keep = if value.is_empty() { 0 } else { rng.random_range(0..value.len()) };
            value.truncate(keep);
            self.durable.insert(key, value);
        }
        self.metrics.writes_lost += unsynced.len() as u64;
        self.live = self.durable.clone();
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

fn apply(map: &mut BTreeMap<String, Vec<u8>>, write: Write) {
    match write {
        Write::Put(key, value) => {
            map.insert(key, value);
        }
        Write::Delete(key) => {
            map.remove(&key);
        }
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
}
