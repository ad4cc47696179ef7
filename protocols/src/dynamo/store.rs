//! The store's data: versions and their clocks, reconciliation (last write wins or
//! version vectors with siblings), the consistent-hashing ring and the Merkle digests
//! anti-entropy compares.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sim_core::NodeId;
use sim_core::rng::label_hash;

use crate::codec::{Reader, Writer};

/// How concurrent writes are reconciled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Last write wins, by the coordinator's local clock (milliseconds), ties broken by
    /// the coordinator's id: one version per key; clock skew silently discards writes.
    #[default]
    Lww,
    /// Version vectors: concurrent versions are kept as siblings and returned together;
    /// the reader merges them (for sets: their union).
    VersionVectors,
}

/// A version's clock.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum VClock {
    /// Last write wins: the coordinator's local time in ms and its id.
    Stamp { ms: u64, node: NodeId },
    /// A version vector: (coordinator, counter), sorted by coordinator.
    Vector(Vec<(NodeId, u64)>),
}

impl VClock {
    /// Whether every entry of `self` is at least `other`'s (a version vector that
    /// descends from another).
    fn descends(a: &[(NodeId, u64)], b: &[(NodeId, u64)]) -> bool {
        b.iter().all(|(node, count)| a.iter().any(|(n, c)| n == node && c >= count))
    }

    /// The entry-wise maximum of version vectors.
    pub fn merge_vectors<'a>(vectors: impl Iterator<Item = &'a VClock>) -> BTreeMap<NodeId, u64> {
        let mut merged = BTreeMap::new();
        for vector in vectors {
            if let VClock::Vector(entries) = vector {
                for (node, count) in entries {
                    let entry = merged.entry(*node).or_insert(0);
                    *entry = (*entry).max(*count);
                }
            }
        }
        merged
    }
}

/// A clock for people: `stamp 2089 ms on server 0`, `vector {server 0: 2, server 1: 1}`.
impl std::fmt::Display for VClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VClock::Stamp { ms, node } => write!(f, "stamp {ms} ms on server {node}"),
            VClock::Vector(entries) => {
                let parts: Vec<String> =
                    entries.iter().map(|(node, count)| format!("server {node}: {count}")).collect();
                write!(f, "vector {{{}}}", parts.join(", "))
            }
        }
    }
}

/// Clocks for people, joined: `stamp 6 ms on server 0 and stamp 7 ms on server 1`.
pub fn clocks_text(clocks: &[VClock]) -> String {
    match clocks {
        [] => "no version".to_owned(),
        _ => clocks.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and "),
    }
}

/// One version of a key's value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Version {
    pub clock: VClock,
    pub value: String,
}

/// How two last-write-wins stamps at the same millisecond are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ties {
    /// By the coordinator's id: every replica picks the same version.
    ByNode,
    /// The known bug: a replica keeps what it has, so replicas can disagree for ever.
    KeepLocal,
}

/// The versions a replica keeps after merging `incoming` into `local`.
///
/// Last write wins keeps the one version with the highest stamp. Version vectors keep
/// every version that no other descends from (the siblings), each once.
pub fn reconcile(local: &[Version], incoming: &[Version], ties: Ties) -> Vec<Version> {
    let mut all: Vec<Version> = local.iter().chain(incoming).cloned().collect();
    if all.iter().all(|v| matches!(v.clock, VClock::Stamp { .. })) {
        let best = |a: &Version, b: &Version| -> std::cmp::Ordering {
            let (VClock::Stamp { ms: ma, node: na }, VClock::Stamp { ms: mb, node: nb }) = (&a.clock, &b.clock) else {
                unreachable!("stamps only")
            };
            match ties {
                Ties::ByNode => (ma, na, &a.value).cmp(&(mb, nb, &b.value)),
                Ties::KeepLocal => ma.cmp(mb),
            }
        };
        // `max_by` returns the last of equal elements; local versions come first, so a
        // tie keeps the local one only when ties are not broken (`KeepLocal`).
        let mut winner: Option<Version> = None;
        for version in all {
            winner = match winner {
                None => Some(version),
                Some(current) if best(&version, &current) == std::cmp::Ordering::Greater => Some(version),
                keep => keep,
            };
        }
        return winner.into_iter().collect();
    }
    all.sort();
    all.dedup();
    let vectors: Vec<Vec<(NodeId, u64)>> = all
        .iter()
        .map(|v| match &v.clock {
            VClock::Vector(entries) => entries.clone(),
            VClock::Stamp { .. } => Vec::new(),
        })
        .collect();
    let mut kept = Vec::new();
    for (i, version) in all.iter().enumerate() {
        let dominated = vectors.iter().enumerate().any(|(j, other)| {
            j != i && VClock::descends(other, &vectors[i]) && (!VClock::descends(&vectors[i], other) || j < i)
        });
        if !dominated {
            kept.push(version.clone());
        }
    }
    kept
}

/// The elements of a set value (`a;b;c;`), in order.
pub fn elements(value: &str) -> impl Iterator<Item = &str> {
    value.split(';').filter(|e| !e.is_empty())
}

/// What a reader sees of siblings: a set's union (each element once, in first-seen
/// order); siblings holding plain values (puts) are joined with `|`.
pub fn render(siblings: &[Version]) -> String {
    if siblings.len() == 1 {
        return siblings[0].value.clone();
    }
    if siblings.iter().all(|v| v.value.is_empty() || v.value.ends_with(';')) {
        let mut out = String::new();
        let mut seen = std::collections::BTreeSet::new();
        for version in siblings {
            for element in elements(&version.value) {
                if seen.insert(element) {
                    out.push_str(element);
                    out.push(';');
                }
            }
        }
        return out;
    }
    let mut values: Vec<&str> = siblings.iter().map(|v| v.value.as_str()).collect();
    values.sort_unstable();
    values.dedup();
    values.join("|")
}

/// A digest of a key's versions (Merkle leaves and convergence both compare these).
pub fn digest(key: &str, siblings: &[Version]) -> u64 {
    let mut sorted: Vec<&Version> = siblings.iter().collect();
    sorted.sort();
    let mut text = String::from(key);
    for version in sorted {
        text.push_str(&format!("\u{1}{:?}\u{2}{}", version.clock, version.value));
    }
    label_hash(&text)
}

/// Leaves of the Merkle tree anti-entropy compares.
pub const LEAVES: usize = 16;

/// The Merkle leaf a key falls in.
pub fn leaf_of(key: &str) -> usize {
    (label_hash(key) % LEAVES as u64) as usize
}

/// A Merkle tree of depth two over some keys: 16 leaves, each the hash of its keys'
/// digests in key order, and the root, the hash of the leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merkle {
    pub leaves: Vec<u64>,
    pub root: u64,
}

impl Merkle {
    pub fn build<'a>(keys: impl Iterator<Item = (&'a String, &'a Vec<Version>)>) -> Merkle {
        let mut text: Vec<String> = vec![String::new(); LEAVES];
        for (key, siblings) in keys {
            text[leaf_of(key)].push_str(&format!("{:x},", digest(key, siblings)));
        }
        let leaves: Vec<u64> = text.iter().map(|t| label_hash(t)).collect();
        let root = label_hash(&leaves.iter().map(|l| format!("{l:x}")).collect::<Vec<_>>().join(","));
        Merkle { leaves, root }
    }
}

/// The consistent-hashing ring: `vnodes` tokens per server.
#[derive(Clone, Debug)]
pub struct Ring {
    /// (token, server), sorted by token.
    tokens: Vec<(u64, NodeId)>,
    servers: usize,
}

impl Ring {
    pub fn new(servers: usize, vnodes: usize) -> Ring {
        let mut tokens: Vec<(u64, NodeId)> = (0..servers)
            .flat_map(|node| (0..vnodes).map(move |v| (label_hash(&format!("token/{node}/{v}")), node)))
            .collect();
        tokens.sort_unstable();
        Ring { tokens, servers }
    }

    /// Every server in ring order from the key's position: the first N are its
    /// preference list, the rest the stand-ins a sloppy quorum walks to.
    pub fn walk(&self, key: &str) -> Vec<NodeId> {
        let position = label_hash(&format!("key/{key}"));
        let start = self.tokens.partition_point(|(token, _)| *token < position);
        let mut order = Vec::with_capacity(self.servers);
        for i in 0..self.tokens.len() {
            let node = self.tokens[(start + i) % self.tokens.len()].1;
            if !order.contains(&node) {
                order.push(node);
                if order.len() == self.servers {
                    break;
                }
            }
        }
        order
    }

    /// The key's N home replicas.
    pub fn preference_list(&self, key: &str, n: usize) -> Vec<NodeId> {
        let mut walk = self.walk(key);
        walk.truncate(n);
        walk
    }
}

/// Appends a key's versions to a durable record.
pub fn encode_versions(out: &mut Writer, siblings: &[Version]) {
    out.u64(siblings.len() as u64);
    for version in siblings {
        match &version.clock {
            VClock::Stamp { ms, node } => {
                out.u8(0);
                out.u64(*ms);
                out.u64(*node as u64);
            }
            VClock::Vector(entries) => {
                out.u8(1);
                out.u64(entries.len() as u64);
                for (node, count) in entries {
                    out.u64(*node as u64);
                    out.u64(*count);
                }
            }
        }
        out.text(&version.value);
    }
}

/// Reads what [`encode_versions`] wrote; `None` if torn.
pub fn decode_versions(reader: &mut Reader<'_>) -> Option<Vec<Version>> {
    let count = reader.u64()?;
    let mut siblings = Vec::new();
    for _ in 0..count.min(1_000_000) {
        let clock = match reader.u8()? {
            0 => VClock::Stamp { ms: reader.u64()?, node: reader.u64()? as NodeId },
            1 => {
                let entries = reader.u64()?;
                let mut vector = Vec::new();
                for _ in 0..entries.min(1_000_000) {
                    vector.push((reader.u64()? as NodeId, reader.u64()?));
                }
                VClock::Vector(vector)
            }
            _ => return None,
        };
        siblings.push(Version { clock, value: reader.text()? });
    }
    Some(siblings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ms: u64, node: NodeId, value: &str) -> Version {
        Version { clock: VClock::Stamp { ms, node }, value: value.into() }
    }

    fn vector(entries: &[(NodeId, u64)], value: &str) -> Version {
        Version { clock: VClock::Vector(entries.to_vec()), value: value.into() }
    }

    #[test]
    fn last_write_wins_keeps_the_highest_stamp_and_breaks_ties_by_node() {
        let merged = reconcile(&[stamp(5, 1, "a")], &[stamp(7, 0, "b")], Ties::ByNode);
        assert_eq!(merged, vec![stamp(7, 0, "b")]);
        let merged = reconcile(&[stamp(5, 2, "a")], &[stamp(5, 1, "b")], Ties::ByNode);
        assert_eq!(merged, vec![stamp(5, 2, "a")]);
        let merged = reconcile(&[stamp(5, 1, "b")], &[stamp(5, 2, "a")], Ties::ByNode);
        assert_eq!(merged, vec![stamp(5, 2, "a")]);
        // The bug: each replica keeps its own on a tie, so two replicas disagree.
        assert_eq!(reconcile(&[stamp(5, 1, "b")], &[stamp(5, 2, "a")], Ties::KeepLocal), vec![stamp(5, 1, "b")]);
        assert_eq!(reconcile(&[stamp(5, 2, "a")], &[stamp(5, 1, "b")], Ties::KeepLocal), vec![stamp(5, 2, "a")]);
    }

    #[test]
    fn version_vectors_keep_concurrent_siblings_and_drop_ancestors() {
        let a = vector(&[(0, 1)], "x;");
        let b = vector(&[(0, 1), (1, 1)], "x;y;");
        let c = vector(&[(0, 1), (2, 1)], "x;z;");
        assert_eq!(reconcile(std::slice::from_ref(&a), std::slice::from_ref(&b), Ties::ByNode), vec![b.clone()]);
        let siblings = reconcile(std::slice::from_ref(&b), std::slice::from_ref(&c), Ties::ByNode);
        assert_eq!(siblings.len(), 2);
        assert_eq!(render(&siblings), "x;y;z;");
        assert_eq!(reconcile(&siblings, &[a], Ties::ByNode), siblings);
        assert_eq!(reconcile(&siblings, &siblings, Ties::ByNode), siblings);
        let merged = VClock::merge_vectors(siblings.iter().map(|v| &v.clock));
        assert_eq!(merged, BTreeMap::from([(0, 1), (1, 1), (2, 1)]));
    }

    #[test]
    fn the_preference_list_is_n_distinct_servers_and_the_walk_covers_all() {
        let ring = Ring::new(5, 8);
        for key in ["k0", "k1", "k2", "k3"] {
            let walk = ring.walk(key);
            let mut sorted = walk.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
            assert_eq!(ring.preference_list(key, 3), walk[..3].to_vec());
        }
    }

    #[test]
    fn versions_round_trip_and_torn_records_are_refused() {
        let siblings = vec![stamp(3, 1, "a;"), vector(&[(0, 2), (4, 1)], "b;")];
        let mut out = Writer::default();
        encode_versions(&mut out, &siblings);
        assert_eq!(decode_versions(&mut Reader::new(&out.bytes)), Some(siblings));
        assert_eq!(decode_versions(&mut Reader::new(&out.bytes[..out.bytes.len() - 1])), None);
    }

    #[test]
    fn merkle_roots_differ_exactly_when_a_leaf_does() {
        let one = BTreeMap::from([("k1".to_owned(), vec![stamp(1, 0, "a")])]);
        let mut two = one.clone();
        assert_eq!(Merkle::build(one.iter()), Merkle::build(two.iter()));
        two.insert("k2".into(), vec![stamp(2, 0, "b")]);
        let (a, b) = (Merkle::build(one.iter()), Merkle::build(two.iter()));
        assert_ne!(a.root, b.root);
        let differing: Vec<usize> = (0..LEAVES).filter(|l| a.leaves[*l] != b.leaves[*l]).collect();
        assert_eq!(differing, vec![leaf_of("k2")]);
    }
}
