//! A server's log: the entries after its latest snapshot, each entry's digest and a
//! running hash of every prefix, so that the invariant checks compare logs in constant
//! time per pair.
//!
//! Indices are Raft's, from 1. Entries up to `base_index` have been compacted into a
//! snapshot; the log still knows that last compacted entry's term and prefix hash, which
//! is what the consistency check and the invariants need of it.

use std::rc::Rc;

use sim_core::fingerprint::splitmix64;

use super::{Command, Entry, Machine};
use crate::codec::{Reader, Writer};
use crate::kv::KvStore;

/// The entries after the snapshot, their digests and prefix hashes.
#[derive(Clone, Debug)]
pub struct Log<M: Machine = KvStore> {
    /// The last index the snapshot covers (0: no snapshot).
    base_index: u64,
    base_term: u64,
    /// The prefix hash of entries `1..=base_index` (0 for none).
    base_prefix: u64,
    /// Entry `base_index + 1 + k` at position `k`.
    entries: Vec<Rc<Entry<M>>>,
    digests: Vec<u64>,
    /// `prefix[k]`: the hash of the digests of entries `1..=base_index + 1 + k`.
    prefix: Vec<u64>,
}

/// The prefix hash after `previous` extended by an entry of digest `digest`.
pub fn extend_prefix(previous: u64, digest: u64) -> u64 {
    splitmix64(previous ^ digest)
}

impl<M: Machine> Default for Log<M> {
    fn default() -> Self {
        Log {
            base_index: 0,
            base_term: 0,
            base_prefix: 0,
            entries: Vec::new(),
            digests: Vec::new(),
            prefix: Vec::new(),
        }
    }
}

impl<M: Machine> Log<M> {
    /// The index of the last entry (the snapshot's last index if no entry follows it).
    pub fn last_index(&self) -> u64 {
        self.base_index + self.entries.len() as u64
    }

    /// The last index covered by the snapshot (0: none).
    pub fn base_index(&self) -> u64 {
        self.base_index
    }

    /// Entries held (after the snapshot).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, index: u64) -> Option<usize> {
        (index > self.base_index && index <= self.last_index()).then(|| (index - self.base_index - 1) as usize)
    }

    /// The term of the entry at `index`: 0 at index 0, the snapshot's last term at its
    /// last index, `None` inside the snapshot or past the end.
    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.base_index {
            return Some(self.base_term);
        }
        self.position(index).map(|p| self.entries[p].term)
    }

    /// The entry at `index`, if held.
    pub fn entry(&self, index: u64) -> Option<&Rc<Entry<M>>> {
        self.position(index).map(|p| &self.entries[p])
    }

    /// Entries `from..=to` (all held).
    pub fn slice(&self, from: u64, to: u64) -> &[Rc<Entry<M>>] {
        if from > to {
            return &[];
        }
        let (a, b) = (self.position(from).expect("held"), self.position(to).expect("held"));
        &self.entries[a..=b]
    }

    /// The digest of the entry at `index`, if held.
    pub fn digest(&self, index: u64) -> Option<u64> {
        self.position(index).map(|p| self.digests[p])
    }

    /// The hash of entries `1..=index`, known from the snapshot's last index on: two logs
    /// hold the same entries up to there exactly when these agree (barring a 64-bit
    /// collision).
    pub fn prefix_hash(&self, index: u64) -> Option<u64> {
        if index == self.base_index {
            return Some(self.base_prefix);
        }
        self.position(index).map(|p| self.prefix[p])
    }

    pub fn push(&mut self, entry: Rc<Entry<M>>) {
        let digest = entry.digest();
        let previous = self.prefix.last().copied().unwrap_or(self.base_prefix);
        self.entries.push(entry);
        self.digests.push(digest);
        self.prefix.push(extend_prefix(previous, digest));
    }

    /// Deletes the entries from `index` on (`index` past the snapshot).
    pub fn truncate_from(&mut self, index: u64) {
        assert!(index > self.base_index, "a snapshot's entries are committed and never truncated");
        let keep = (index - self.base_index - 1) as usize;
        self.entries.truncate(keep);
        self.digests.truncate(keep);
        self.prefix.truncate(keep);
    }

    /// Replaces the entry at `index`, keeping what follows (only the `no-truncate`
    /// variant does this).
    pub fn overwrite(&mut self, index: u64, entry: Rc<Entry<M>>) {
        let position = self.position(index).expect("held");
        let rest: Vec<Rc<Entry<M>>> = self.entries.drain(position..).skip(1).collect();
        self.truncate_from(index);
        self.push(entry);
        for kept in rest {
            self.push(kept);
        }
    }

    /// Drops the entries up to `index` (held), which a snapshot now covers.
    pub fn compact(&mut self, index: u64) {
        if index <= self.base_index {
            return;
        }
        let position = self.position(index).expect("compacting held entries");
        self.base_term = self.entries[position].term;
        self.base_prefix = self.prefix[position];
        self.base_index = index;
        self.entries.drain(..=position);
        self.digests.drain(..=position);
        self.prefix.drain(..=position);
    }

    /// Replaces the whole log by a snapshot's position (an installed snapshot whose last
    /// entry the log does not hold).
    pub fn reset(&mut self, base_index: u64, base_term: u64, base_prefix: u64) {
        *self = Log { base_index, base_term, base_prefix, ..Log::default() };
    }
}

/// An entry's durable record: little-endian fixed-width numbers and length-prefixed
/// strings (serde_json made recovery the slowest part of a crash-heavy run).
pub fn encode_entry<M: Machine>(entry: &Entry<M>, prefix_hash: u64) -> Vec<u8> {
    let mut out = Writer { bytes: Vec::with_capacity(56) };
    out.u64(prefix_hash);
    out.u64(entry.term);
    match &entry.command {
        Command::Noop => out.u8(0),
        Command::Kv(command) => {
            out.u8(1);
            M::encode_command(command, &mut out);
        }
    }
    out.bytes
}

/// Reads a record written by [`encode_entry`]: the entry and the prefix hash of the log
/// up to it when it was written; `None` if it is torn or corrupt.
pub fn decode_entry<M: Machine>(bytes: &[u8]) -> Option<(Entry<M>, u64)> {
    let mut reader = Reader::new(bytes);
    let prefix_hash = reader.u64()?;
    let term = reader.u64()?;
    let command = match reader.u8()? {
        0 => Command::Noop,
        1 => Command::Kv(M::decode_command(&mut reader)?),
        _ => return None,
    };
    reader.is_done().then(|| (Entry::new(term, command), prefix_hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{KvCommand, KvOp};

    #[test]
    fn records_round_trip_and_torn_ones_are_refused() {
        let entries: [Entry; 2] = [
            Entry::new(3, Command::Noop),
            Entry::new(
                9,
                Command::Kv(KvCommand {
                    client: 4,
                    seq: 17,
                    op: KvOp::Cas { key: "k1".into(), from: "".into(), to: "c4.17".into() },
                }),
            ),
        ];
        for entry in entries {
            let record = encode_entry(&entry, 77);
            assert_eq!(decode_entry(&record), Some((entry, 77)));
            for cut in 0..record.len() {
                assert_eq!(decode_entry::<KvStore>(&record[..cut]), None);
            }
        }
    }

    fn entry(term: u64, seq: u64) -> Rc<Entry> {
        let op = KvOp::Put { key: "k".into(), value: format!("v{seq}") };
        Rc::new(Entry::new(term, Command::Kv(KvCommand { client: 1, seq, op })))
    }

    #[test]
    fn compaction_keeps_terms_and_prefix_hashes_from_the_snapshot_on() {
        let mut full = Log::default();
        for seq in 1..=20 {
            full.push(entry(1 + seq / 7, seq));
        }
        let mut compacted = full.clone();
        compacted.compact(9);
        assert_eq!((compacted.base_index(), compacted.last_index(), compacted.len()), (9, 20, 11));
        assert_eq!(compacted.term_at(9), full.term_at(9));
        assert_eq!(compacted.term_at(8), None);
        assert_eq!(compacted.entry(9), None);
        for index in 9..=20 {
            assert_eq!(compacted.prefix_hash(index), full.prefix_hash(index), "index {index}");
        }
        // Growing, truncating and compacting again agree with the uncompacted log.
        for log in [&mut full, &mut compacted] {
            log.truncate_from(15);
            log.push(entry(9, 99));
            log.compact(12);
        }
        assert_eq!(compacted.prefix_hash(15), full.prefix_hash(15));
        assert_eq!(compacted.slice(13, 15), full.slice(13, 15));
        // A log reset to a snapshot's position continues its hash chain.
        let mut reset = Log::default();
        reset.reset(12, full.term_at(12).unwrap(), full.prefix_hash(12).unwrap());
        for index in 13..=15 {
            reset.push(full.entry(index).unwrap().clone());
        }
        assert_eq!(reset.prefix_hash(15), full.prefix_hash(15));
    }
}
