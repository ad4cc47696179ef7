//! A server's log, with each entry's digest and a running hash of every prefix, so that
//! the invariant checks compare logs in constant time per pair.

use std::ops::Deref;
use std::rc::Rc;

use sim_core::fingerprint::{hash_value, splitmix64};

use super::{Command, Entry};
use crate::kv::{KvCommand, KvOp};

/// The entries (index `i` at position `i - 1`), their digests and prefix hashes.
#[derive(Clone, Debug, Default)]
pub struct Log {
    entries: Vec<Rc<Entry>>,
    digests: Vec<u64>,
    /// `prefix[k]`: a hash of the digests of entries `0..=k`.
    prefix: Vec<u64>,
}

impl Log {
    pub fn push(&mut self, entry: Rc<Entry>) {
        let digest = hash_value(&entry);
        let previous = self.prefix.last().copied().unwrap_or(0);
        self.entries.push(entry);
        self.digests.push(digest);
        self.prefix.push(splitmix64(previous ^ digest));
    }

    /// Keeps the first `len` entries.
    pub fn truncate(&mut self, len: usize) {
        self.entries.truncate(len);
        self.digests.truncate(len);
        self.prefix.truncate(len);
    }

    /// Replaces the entry at position `position`, keeping what follows (only the
    /// `no-truncate` variant does this).
    pub fn overwrite(&mut self, position: usize, entry: Rc<Entry>) {
        let rest: Vec<Rc<Entry>> = self.entries.drain(position..).skip(1).collect();
        self.truncate(position);
        self.push(entry);
        for kept in rest {
            self.push(kept);
        }
    }

    /// The digest of the entry at `position`.
    pub fn digest(&self, position: usize) -> Option<u64> {
        self.digests.get(position).copied()
    }

    /// The hash of entries `0..=position`: two logs hold the same entries up to there
    /// exactly when these agree (barring a 64-bit collision).
    pub fn prefix_hash(&self, position: usize) -> Option<u64> {
        self.prefix.get(position).copied()
    }
}

impl Deref for Log {
    type Target = [Rc<Entry>];

    fn deref(&self) -> &[Rc<Entry>] {
        &self.entries
    }
}

/// An entry's durable record: little-endian fixed-width numbers and length-prefixed
/// strings (serde_json made recovery the slowest part of a crash-heavy run).
pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.extend_from_slice(&entry.term.to_le_bytes());
    match &entry.command {
        Command::Noop => out.push(0),
        Command::Kv(command) => {
            out.push(1);
            out.extend_from_slice(&command.client.to_le_bytes());
            out.extend_from_slice(&command.seq.to_le_bytes());
            let (tag, strings): (u8, Vec<&str>) = match &command.op {
                KvOp::Get { key } => (0, vec![key]),
                KvOp::Put { key, value } => (1, vec![key, value]),
                KvOp::Append { key, value } => (2, vec![key, value]),
                KvOp::Cas { key, from, to } => (3, vec![key, from, to]),
            };
            out.push(tag);
            for text in strings {
                out.extend_from_slice(&(text.len() as u32).to_le_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    out
}

/// Reads a record written by [`encode_entry`]; `None` if it is torn or corrupt.
pub fn decode_entry(bytes: &[u8]) -> Option<Entry> {
    let mut reader = Reader { bytes };
    let term = reader.u64()?;
    let command = match reader.u8()? {
        0 => Command::Noop,
        1 => {
            let client = reader.u64()?;
            let seq = reader.u64()?;
            let op = match reader.u8()? {
                0 => KvOp::Get { key: reader.text()? },
                1 => KvOp::Put { key: reader.text()?, value: reader.text()? },
                2 => KvOp::Append { key: reader.text()?, value: reader.text()? },
                3 => KvOp::Cas { key: reader.text()?, from: reader.text()?, to: reader.text()? },
                _ => return None,
            };
            Command::Kv(KvCommand { client, seq, op })
        }
        _ => return None,
    };
    reader.bytes.is_empty().then_some(Entry { term, command })
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, count: usize) -> Option<&[u8]> {
        if self.bytes.len() < count {
            return None;
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().expect("eight bytes")))
    }

    fn text(&mut self) -> Option<String> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("four bytes")) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_ones_are_refused() {
        let entries = [
            Entry { term: 3, command: Command::Noop },
            Entry {
                term: 9,
                command: Command::Kv(KvCommand {
                    client: 4,
                    seq: 17,
                    op: KvOp::Cas { key: "k1".into(), from: "".into(), to: "c4.17".into() },
                }),
            },
        ];
        for entry in entries {
            let record = encode_entry(&entry);
            assert_eq!(decode_entry(&record), Some(entry));
            for cut in 0..record.len() {
                assert_eq!(decode_entry(&record[..cut]), None);
            }
        }
    }
}
