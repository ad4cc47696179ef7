//! A Dynamo server (coordinator, replica, stand-in, anti-entropy peer) and the node type.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use rand::RngExt;
use sim_core::{Ctx, MS, NodeId, Process, TimerId};

use super::store::{self, Merkle, Resolution, Ring, Ties, VClock, Version};
use super::{DynObs, DynTransport, DynamoConfig, Msg, Quorum, Variant};
use crate::codec::{Reader, SlotPair, Writer, number};
use crate::kv::{KvOp, KvResult};
use crate::kv_client::{Answer, KvClient, KvClientSettings};

/// What every node of a cluster shares.
pub struct Shared {
    pub servers: usize,
    pub config: DynamoConfig,
    pub variant: Variant,
    pub ring: Ring,
    pub clients: Rc<KvClientSettings>,
}

impl Shared {
    fn ties(&self) -> Ties {
        if self.variant == Variant::LwwTiesKeepLocal { Ties::KeepLocal } else { Ties::ByNode }
    }
}

type DynCtx<'a> = Ctx<'a, Msg, DynObs>;

const TIMER_FALLBACK: u64 = 1;
const TIMER_GIVE_UP: u64 = 2;
const TIMER_HANDOFF: u64 = 3;
const TIMER_ANTI_ENTROPY: u64 = 4;
const TIMER_KINDS: u64 = 8;

const KEY_COUNTER: [&str; 2] = ["vv/counter/0", "vv/counter/1"];

/// A request this server coordinates.
struct Pending {
    client: NodeId,
    seq: u64,
    attempt: u64,
    op: KvOp,
    /// The ring from the key's position: home replicas first, then stand-ins.
    walk: Vec<NodeId>,
    phase: Phase,
    /// Who was asked in this phase, and for which home replica (itself for a home).
    asked: BTreeMap<NodeId, NodeId>,
    /// Who answered in this phase.
    answered: BTreeSet<NodeId>,
    /// Read phase: the replies, kept for read repair.
    replies: Vec<(NodeId, Vec<Version>)>,
    /// The merge of the replies once R arrived.
    merged: Option<Vec<Version>>,
    replied: bool,
    /// The phase's fallback timer (set when a phase asks its home replicas) and the
    /// give-up timer.
    fallback: Option<TimerId>,
    give_up: TimerId,
}

#[derive(Clone, Debug, PartialEq)]
enum Phase {
    Read,
    Write(Vec<Version>),
}

/// One server.
pub struct Server {
    id: NodeId,
    shared: Rc<Shared>,
    store: BTreeMap<String, Vec<Version>>,
    /// Hints kept for (home replica, key).
    hints: BTreeMap<(NodeId, String), Vec<Version>>,
    /// Durable generation of each record, so the next write goes to the other slot.
    generations: BTreeMap<String, u64>,
    counter: u64,
    counter_slots: SlotPair,
    /// The last version this server created for each key (durable): every version it
    /// creates next descends from it, so a vector never claims to supersede an own
    /// version its value has not seen.
    created: BTreeMap<String, Version>,
    pending: BTreeMap<u64, Pending>,
    next_req: u64,
    peer_cursor: usize,
}

impl Server {
    fn new(id: NodeId, shared: Rc<Shared>) -> Server {
        Server {
            id,
            shared,
            store: BTreeMap::new(),
            hints: BTreeMap::new(),
            generations: BTreeMap::new(),
            counter: 0,
            counter_slots: SlotPair::new(KEY_COUNTER),
            created: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_req: 1,
            peer_cursor: 0,
        }
    }

    /// The key's versions this replica holds.
    pub fn versions(&self, key: &str) -> Option<&Vec<Version>> {
        self.store.get(key)
    }

    /// Every key this replica holds.
    pub fn store(&self) -> &BTreeMap<String, Vec<Version>> {
        &self.store
    }

    /// Hints still held, by (home replica, key).
    pub fn hints(&self) -> &BTreeMap<(NodeId, String), Vec<Version>> {
        &self.hints
    }

    fn on_start(&mut self, ctx: &mut DynCtx<'_>) {
        // Recovery: every record in two slots; the newest whole one wins.
        let mut newest: BTreeMap<String, (u64, Vec<Version>)> = BTreeMap::new();
        for (slot_key, bytes) in ctx.storage().scan_prefix("r/") {
            let Some(base) = slot_key.rsplit_once('/').map(|(base, _)| base.to_owned()) else { continue };
            let mut reader = Reader::new(bytes);
            let Some(generation) = reader.u64() else { continue };
            let Some(versions) = store::decode_versions(&mut reader).filter(|_| reader.is_done()) else { continue };
            if newest.get(&base).is_none_or(|(g, _)| *g < generation) {
                newest.insert(base, (generation, versions));
            }
        }
        for (base, (generation, versions)) in newest {
            self.generations.insert(base.clone(), generation);
            if let Some(key) = base.strip_prefix("r/m/") {
                if let Some(version) = versions.into_iter().next() {
                    self.created.insert(key.to_owned(), version);
                }
            } else if let Some(key) = base.strip_prefix("r/d/") {
                if !versions.is_empty() {
                    self.store.insert(key.to_owned(), versions);
                }
            } else if let Some(rest) = base.strip_prefix("r/h/")
                && let Some((home, key)) = rest.split_once('/')
                && let Ok(home) = home.parse::<NodeId>()
                && !versions.is_empty()
            {
                self.hints.insert((home, key.to_owned()), versions);
            }
        }
        self.counter = self.counter_slots.read(ctx.storage(), |r| r.u64()).unwrap_or(0);
        // Request ids differ across incarnations: a reply to a request of an earlier
        // life never counts for a new one.
        self.next_req = (u64::from(ctx.rng().random::<u32>()) << 24) + 1;
        let handoff_ns = (self.shared.config.handoff_ms * MS as f64) as u64;
        ctx.set_timer(handoff_ns, TIMER_HANDOFF);
        if self.shared.config.anti_entropy_ms > 0.0 {
            let period_ns = (self.shared.config.anti_entropy_ms * MS as f64) as u64;
            // Spread the servers' first rounds over one period.
            let first = period_ns / self.shared.servers as u64 * (self.id as u64 + 1);
            ctx.set_timer(first, TIMER_ANTI_ENTROPY);
            self.peer_cursor = self.id;
        }
    }

    /// Writes a record over its older slot and syncs.
    fn persist(&mut self, ctx: &mut DynCtx<'_>, base: String, versions: &[Version]) {
        let generation = self.generations.get(&base).map_or(0, |g| g + 1);
        let mut record = Writer::default();
        record.u64(generation);
        store::encode_versions(&mut record, versions);
        ctx.storage().put(format!("{base}/{}", generation % 2), record.bytes);
        ctx.storage().sync();
        self.generations.insert(base, generation);
    }

    /// Merges versions into this replica's own copy of `key`, durably; the read repair
    /// of the `read-repair-overwrites-newer` variant replaces instead.
    fn accept(&mut self, ctx: &mut DynCtx<'_>, key: &str, incoming: &[Version], overwrite: bool) {
        let local = self.store.get(key).cloned().unwrap_or_default();
        let merged = if overwrite { incoming.to_vec() } else { store::reconcile(&local, incoming, self.shared.ties()) };
        if merged == local {
            return;
        }
        self.persist(ctx, format!("r/d/{key}"), &merged);
        ctx.observe(DynObs::Stored { key: key.to_owned(), clocks: merged.iter().map(|v| v.clock.clone()).collect() });
        self.store.insert(key.to_owned(), merged);
    }

    fn keep_hint(&mut self, ctx: &mut DynCtx<'_>, home: NodeId, key: &str, incoming: &[Version]) {
        let slot = (home, key.to_owned());
        let local = self.hints.get(&slot).cloned().unwrap_or_default();
        let merged = store::reconcile(&local, incoming, self.shared.ties());
        if merged == local {
            return;
        }
        self.persist(ctx, format!("r/h/{home}/{key}"), &merged);
        let clocks = merged.iter().map(|v| v.clock.clone()).collect();
        ctx.observe(DynObs::Hinted { intended: home, key: key.to_owned(), clocks });
        self.hints.insert(slot, merged);
    }

    /// What this server holds of `key`, as replica and as stand-in.
    fn held(&self, key: &str) -> Vec<Version> {
        let mut versions = self.store.get(key).cloned().unwrap_or_default();
        for ((_, hinted_key), hinted) in &self.hints {
            if hinted_key == key {
                versions = store::reconcile(&versions, hinted, self.shared.ties());
            }
        }
        versions
    }

    fn on_message(&mut self, ctx: &mut DynCtx<'_>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Request { seq, attempt, op, .. } => self.coordinate(ctx, from, seq, attempt, op),
            Msg::Read { req, key } => {
                let versions = self.held(&key);
                send(ctx, from, Msg::ReadReply { req, key, versions });
            }
            Msg::ReadReply { req, versions, .. } => self.on_read_reply(ctx, req, from, versions),
            Msg::Write { req, key, versions, hint } => {
                match hint {
                    Some(home) if home != self.id => self.keep_hint(ctx, home, &key, &versions),
                    _ => {
                        let overwrite = req == 0 && self.shared.variant == Variant::ReadRepairOverwritesNewer;
                        self.accept(ctx, &key, &versions, overwrite);
                    }
                }
                if req != 0 {
                    send(ctx, from, Msg::WriteAck { req });
                }
            }
            Msg::WriteAck { req } => self.on_write_ack(ctx, req, from),
            Msg::Handoff { key, versions } => {
                self.accept(ctx, &key, &versions, false);
                let digest = store::digest(&key, &versions);
                send(ctx, from, Msg::HandoffAck { key, digest });
            }
            Msg::HandoffAck { key, digest } => {
                let slot = (from, key);
                if self.hints.get(&slot).is_some_and(|v| store::digest(&slot.1, v) == digest) {
                    self.persist(ctx, format!("r/h/{from}/{}", slot.1), &[]);
                    ctx.observe(DynObs::Hinted { intended: from, key: slot.1.clone(), clocks: Vec::new() });
                    self.hints.remove(&slot);
                }
            }
            Msg::SyncRoot { root } => {
                let tree = self.tree_with(from);
                if tree.root != root {
                    send(ctx, from, Msg::SyncLeaves { leaves: tree.leaves });
                }
            }
            Msg::SyncLeaves { leaves } => {
                let tree = self.tree_with(from);
                let differing: Vec<u8> =
                    (0..store::LEAVES).filter(|l| tree.leaves[*l] != leaves[*l]).map(|l| l as u8).collect();
                let data = self.keys_in(from, &differing);
                send(ctx, from, Msg::SyncPush { leaves: differing, data });
            }
            Msg::SyncPush { leaves, data } => {
                self.merge_shared(ctx, from, &data);
                let data = self.keys_in(from, &leaves);
                send(ctx, from, Msg::SyncPull { data });
            }
            Msg::SyncPull { data } => self.merge_shared(ctx, from, &data),
            Msg::Reply { .. } => {}
        }
    }

    /// Whether this server and `peer` are both home replicas of `key`.
    fn shared_with(&self, peer: NodeId, key: &str) -> bool {
        let home = self.shared.ring.preference_list(key, self.shared.config.n);
        home.contains(&peer) && home.contains(&self.id)
    }

    fn tree_with(&self, peer: NodeId) -> Merkle {
        Merkle::build(self.store.iter().filter(|(key, _)| self.shared_with(peer, key)))
    }

    fn keys_in(&self, peer: NodeId, leaves: &[u8]) -> Vec<(String, Vec<Version>)> {
        self.store
            .iter()
            .filter(|(key, _)| leaves.contains(&(store::leaf_of(key) as u8)) && self.shared_with(peer, key))
            .map(|(key, versions)| (key.clone(), versions.clone()))
            .collect()
    }

    fn merge_shared(&mut self, ctx: &mut DynCtx<'_>, peer: NodeId, data: &[(String, Vec<Version>)]) {
        for (key, versions) in data {
            if self.shared_with(peer, key) {
                self.accept(ctx, key, versions, false);
            }
        }
    }

    fn coordinate(&mut self, ctx: &mut DynCtx<'_>, client: NodeId, seq: u64, attempt: u64, op: KvOp) {
        if matches!(op, KvOp::Cas { .. }) {
            // The store has no compare-and-set: a definite refusal.
            send(ctx, client, Msg::Reply { seq, attempt, answer: Answer::Result(KvResult::CasMismatch) });
            return;
        }
        let req = self.next_req;
        self.next_req += 1;
        let config = &self.shared.config;
        let give_up =
            ctx.set_timer((config.coordinator_timeout_ms * MS as f64) as u64, req * TIMER_KINDS + TIMER_GIVE_UP);
        let walk = self.shared.ring.walk(op.key());
        let mut pending = Pending {
            client,
            seq,
            attempt,
            op,
            walk,
            phase: Phase::Read,
            asked: BTreeMap::new(),
            answered: BTreeSet::new(),
            replies: Vec::new(),
            merged: None,
            replied: false,
            fallback: None,
            give_up,
        };
        // A last-write-wins put needs nothing read: it is a blind write with a new stamp.
        if let (KvOp::Put { value, .. }, Resolution::Lww) = (&pending.op, config.resolution) {
            let version = Version { clock: VClock::Stamp { ms: ctx.now() / MS, node: self.id }, value: value.clone() };
            pending.phase = Phase::Write(vec![version]);
        }
        self.pending.insert(req, pending);
        self.ask_home(ctx, req);
    }

    /// Sends the phase's request to the key's home replicas.
    fn ask_home(&mut self, ctx: &mut DynCtx<'_>, req: u64) {
        let n = self.shared.config.n;
        let fallback_ns = (self.shared.config.fallback_ms * MS as f64) as u64;
        let Some(pending) = self.pending.get_mut(&req) else { return };
        // Each phase gives the home replicas `fallback_ms` before stand-ins are asked.
        if let Some(previous) = pending.fallback.take() {
            ctx.cancel_timer(previous);
        }
        pending.fallback = Some(ctx.set_timer(fallback_ns, req * TIMER_KINDS + TIMER_FALLBACK));
        let home: Vec<NodeId> = pending.walk[..n].to_vec();
        for node in home {
            pending.asked.insert(node, node);
        }
        self.send_phase(ctx, req, None);
    }

    /// Sends the phase's request to everyone asked and not yet sent to (`only`: one).
    fn send_phase(&mut self, ctx: &mut DynCtx<'_>, req: u64, only: Option<NodeId>) {
        let Some(pending) = self.pending.get(&req) else { return };
        let key = pending.op.key().to_owned();
        let mut targets: Vec<(NodeId, NodeId)> = match only {
            Some(node) => pending.asked.get(&node).map(|home| (node, *home)).into_iter().collect(),
            None => pending.asked.iter().map(|(a, b)| (*a, *b)).collect(),
        };
        // This server's own part last: answering it may end the phase (R or W reached),
        // after which nothing more of this phase is sent.
        targets.sort_by_key(|(node, _)| *node == self.id);
        let phase = pending.phase.clone();
        for (node, home) in targets {
            match &phase {
                Phase::Read if node == self.id => {
                    let versions = self.held(&key);
                    self.on_read_reply(ctx, req, node, versions);
                }
                Phase::Read => send(ctx, node, Msg::Read { req, key: key.clone() }),
                Phase::Write(versions) => {
                    let hint = (home != node).then_some(home);
                    if node == self.id {
                        match hint {
                            Some(home) => self.keep_hint(ctx, home, &key, versions),
                            None => self.accept(ctx, &key, versions, false),
                        }
                        self.on_write_ack(ctx, req, node);
                    } else {
                        send(ctx, node, Msg::Write { req, key: key.clone(), versions: versions.clone(), hint });
                    }
                }
            }
        }
    }

    fn on_read_reply(&mut self, ctx: &mut DynCtx<'_>, req: u64, from: NodeId, versions: Vec<Version>) {
        let r = self.shared.config.r;
        let ties = self.shared.ties();
        let Some(pending) = self.pending.get_mut(&req) else { return };
        if pending.phase != Phase::Read || !pending.asked.contains_key(&from) || !pending.answered.insert(from) {
            return;
        }
        pending.replies.push((from, versions));
        if let Some(merged) = pending.merged.clone() {
            // A late reply: repair it too.
            self.repair(ctx, req, &merged);
            return;
        }
        if pending.answered.len() < r {
            return;
        }
        let merged =
            pending.replies.iter().fold(Vec::new(), |acc: Vec<Version>, (_, v)| store::reconcile(&acc, v, ties));
        pending.merged = Some(merged.clone());
        match pending.op.clone() {
            KvOp::Get { key } => {
                let value = store::render(&merged);
                ctx.observe(DynObs::Served { key, siblings: merged.len() });
                self.answer(ctx, req, KvResult::Value(value));
                self.repair(ctx, req, &merged);
            }
            op => {
                self.repair(ctx, req, &merged);
                let version = self.new_version(ctx, &op, &merged);
                let Some(pending) = self.pending.get_mut(&req) else { return };
                pending.phase = Phase::Write(vec![version]);
                pending.asked.clear();
                pending.answered.clear();
                self.ask_home(ctx, req);
            }
        }
    }

    /// The version a put or set add writes after reading `merged`.
    fn new_version(&mut self, ctx: &mut DynCtx<'_>, op: &KvOp, merged: &[Version]) -> Version {
        let value = match op {
            KvOp::Put { value, .. } => value.clone(),
            KvOp::Append { .. } => add_element(merged, op),
            _ => unreachable!("only writes get a new version"),
        };
        let clock = match self.shared.config.resolution {
            Resolution::Lww => VClock::Stamp { ms: ctx.now() / MS, node: self.id },
            Resolution::VersionVectors => {
                let key = op.key().to_owned();
                let own: Vec<Version> = if self.shared.variant == Variant::VvWithoutOwnVersion {
                    Vec::new()
                } else {
                    self.created.get(&key).cloned().into_iter().collect()
                };
                let merged = store::reconcile(merged, &own, self.shared.ties());
                let value = match op {
                    KvOp::Append { .. } => add_element(&merged, op),
                    _ => value,
                };
                let mut vector = VClock::merge_vectors(merged.iter().map(|v| &v.clock));
                let mine = vector.get(&self.id).copied().unwrap_or(0).max(self.counter) + 1;
                // The counter is durable before the version leaves: a restart never
                // issues the same vector twice.
                self.counter = mine;
                self.counter_slots.write(ctx.storage(), number(mine));
                vector.insert(self.id, mine);
                let version = Version { clock: VClock::Vector(vector.into_iter().collect()), value };
                self.persist(ctx, format!("r/m/{key}"), std::slice::from_ref(&version));
                self.created.insert(key, version.clone());
                return version;
            }
        };
        Version { clock, value }
    }

    /// Read repair: every home replica that replied with less than the merge gets it.
    fn repair(&mut self, ctx: &mut DynCtx<'_>, req: u64, merged: &[Version]) {
        if !self.shared.config.read_repair {
            return;
        }
        let Some(pending) = self.pending.get(&req) else { return };
        let key = pending.op.key().to_owned();
        let digest = store::digest(&key, merged);
        let stale: Vec<NodeId> = pending
            .replies
            .iter()
            .filter(|(node, versions)| pending.asked.get(node) == Some(node) && store::digest(&key, versions) != digest)
            .map(|(node, _)| *node)
            .collect();
        for node in stale {
            if let Some(pending) = self.pending.get_mut(&req) {
                // Repair each replica once.
                if let Some(entry) = pending.replies.iter_mut().find(|(n, _)| *n == node) {
                    entry.1 = merged.to_vec();
                }
            }
            if node == self.id {
                let overwrite = self.shared.variant == Variant::ReadRepairOverwritesNewer;
                self.accept(ctx, &key, merged, overwrite);
            } else {
                send(ctx, node, Msg::Write { req: 0, key: key.clone(), versions: merged.to_vec(), hint: None });
            }
        }
    }

    fn on_write_ack(&mut self, ctx: &mut DynCtx<'_>, req: u64, from: NodeId) {
        let (n, w) = (self.shared.config.n, self.shared.config.w);
        let Some(pending) = self.pending.get_mut(&req) else { return };
        if !matches!(pending.phase, Phase::Write(_)) || !pending.asked.contains_key(&from) {
            return;
        }
        pending.answered.insert(from);
        if pending.answered.len() >= w && !pending.replied {
            self.answer(ctx, req, KvResult::Done);
        }
        if self.pending.get(&req).is_some_and(|p| p.answered.len() >= n) {
            self.finish(ctx, req);
        }
    }

    fn answer(&mut self, ctx: &mut DynCtx<'_>, req: u64, result: KvResult) {
        let Some(pending) = self.pending.get_mut(&req) else { return };
        pending.replied = true;
        let reply = Msg::Reply { seq: pending.seq, attempt: pending.attempt, answer: Answer::Result(result) };
        send(ctx, pending.client, reply);
    }

    fn finish(&mut self, ctx: &mut DynCtx<'_>, req: u64) {
        if let Some(pending) = self.pending.remove(&req) {
            for timer in pending.fallback.into_iter().chain([pending.give_up]) {
                ctx.cancel_timer(timer);
            }
        }
    }

    /// Sloppy quorum: each home replica that has not answered gets a stand-in, the next
    /// server on the ring not yet involved.
    fn fall_back(&mut self, ctx: &mut DynCtx<'_>, req: u64) {
        let config = &self.shared.config;
        let n = config.n;
        let Some(pending) = self.pending.get_mut(&req) else { return };
        if pending.phase == Phase::Read && pending.replied {
            // The get is answered; late replies only feed read repair.
            return;
        }
        let silent_homes: Vec<NodeId> = pending
            .asked
            .iter()
            .filter(|(node, home)| !pending.answered.contains(node) && pending.walk[..n].contains(home))
            .map(|(_, home)| *home)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|home| {
                // A home whose stand-in already answered needs no other.
                !pending.asked.iter().any(|(node, h)| h == home && pending.answered.contains(node))
            })
            .collect();
        let mut sent = Vec::new();
        for home in silent_homes {
            let Some(stand_in) = pending.walk[n..].iter().copied().find(|s| !pending.asked.contains_key(s)) else {
                break;
            };
            pending.asked.insert(stand_in, home);
            sent.push(stand_in);
        }
        let period = (config.fallback_ms * MS as f64) as u64;
        pending.fallback = Some(ctx.set_timer(period, req * TIMER_KINDS + TIMER_FALLBACK));
        for stand_in in sent {
            self.send_phase(ctx, req, Some(stand_in));
        }
    }

    fn on_timer(&mut self, ctx: &mut DynCtx<'_>, tag: u64) {
        let (req, kind) = (tag / TIMER_KINDS, tag % TIMER_KINDS);
        match kind {
            TIMER_FALLBACK if self.shared.config.quorum == Quorum::Sloppy => self.fall_back(ctx, req),
            TIMER_GIVE_UP => {
                if self.pending.get(&req).is_some_and(|p| !p.replied) {
                    // Not enough replicas answered: unavailable (the client tries another
                    // server; a write may still have reached some replicas).
                    let pending = &self.pending[&req];
                    let answer = Answer::NotLeader { hint: None };
                    send(ctx, pending.client, Msg::Reply { seq: pending.seq, attempt: pending.attempt, answer });
                }
                self.finish(ctx, req);
            }
            TIMER_HANDOFF => {
                if self.shared.variant != Variant::NoHintedHandoff {
                    for ((home, key), versions) in &self.hints {
                        send(ctx, *home, Msg::Handoff { key: key.clone(), versions: versions.clone() });
                    }
                }
                ctx.set_timer((self.shared.config.handoff_ms * MS as f64) as u64, TIMER_HANDOFF);
            }
            TIMER_ANTI_ENTROPY => {
                let servers = self.shared.servers;
                if servers > 1 {
                    self.peer_cursor = (self.peer_cursor + 1) % servers;
                    if self.peer_cursor == self.id {
                        self.peer_cursor = (self.peer_cursor + 1) % servers;
                    }
                    let peer = self.peer_cursor;
                    let root = self.tree_with(peer).root;
                    send(ctx, peer, Msg::SyncRoot { root });
                }
                ctx.set_timer((self.shared.config.anti_entropy_ms * MS as f64) as u64, TIMER_ANTI_ENTROPY);
            }
            _ => {}
        }
    }
}

/// Sends a server's message as its kind (`network.kinds` may give each kind its latency).
fn send(ctx: &mut DynCtx<'_>, to: NodeId, msg: Msg) {
    let kind = msg.kind();
    ctx.send_as(to, msg, kind);
}

/// The set a set add writes: what was read (siblings merged by union) plus the element.
fn add_element(merged: &[Version], op: &KvOp) -> String {
    let KvOp::Append { value, .. } = op else { unreachable!("a set add") };
    let mut set = store::render(merged);
    if !set.is_empty() && !set.ends_with(';') {
        // The key held a plain value: the set starts afresh.
        set.clear();
    }
    let element = value.trim_end_matches(';');
    if !store::elements(&set).any(|e| e == element) {
        set.push_str(element);
        set.push(';');
    }
    set
}

/// The staleness experiment's client: writes `versions` values (`v1`, `v2`, ...) of
/// one key through `coordinator`, each once the one before committed, then reads the key
/// at each offset of `read_after_ns` after the last write committed and observes how
/// many versions behind each read was.
pub struct Probe {
    coordinator: NodeId,
    versions: u64,
    read_after_ns: Rc<Vec<u64>>,
    seq: u64,
    sent_ns: u64,
}

/// The key the probe writes and reads.
pub const PROBE_KEY: &str = "k";

impl Probe {
    pub fn new(coordinator: NodeId, versions: u64, read_after_ns: Rc<Vec<u64>>) -> Probe {
        Probe { coordinator, versions, read_after_ns, seq: 0, sent_ns: 0 }
    }

    fn on_start(&mut self, ctx: &mut DynCtx<'_>) {
        self.seq = 1;
        self.write(ctx);
    }

    fn write(&mut self, ctx: &mut DynCtx<'_>) {
        let value = format!("v{}", self.seq);
        let op = KvOp::Put { key: PROBE_KEY.to_owned(), value };
        self.sent_ns = ctx.now();
        ctx.send(self.coordinator, Msg::Request { client: 0, seq: self.seq, attempt: 1, op });
    }

    fn on_message(&mut self, ctx: &mut DynCtx<'_>, msg: Msg) {
        let Msg::Reply { seq, answer, .. } = msg else { return };
        match answer {
            Answer::Result(KvResult::Done) if seq == self.seq && seq < self.versions => {
                ctx.observe(DynObs::Committed { latency_ns: ctx.now() - self.sent_ns });
                self.seq += 1;
                self.write(ctx);
            }
            Answer::Result(KvResult::Done) if seq == self.seq => {
                ctx.observe(DynObs::Committed { latency_ns: ctx.now() - self.sent_ns });
                // The last version committed: the reads start their clocks now.
                for (index, after) in self.read_after_ns.iter().enumerate() {
                    ctx.set_timer(*after, index as u64);
                }
            }
            Answer::Result(KvResult::Value(value)) if seq > self.versions => {
                let read = (seq - self.versions - 1) as usize;
                let seen: u64 = value.strip_prefix('v').and_then(|v| v.parse().ok()).unwrap_or(0);
                ctx.observe(DynObs::Staleness { read, behind: self.versions.saturating_sub(seen) });
            }
            Answer::NotLeader { .. } if seq == self.seq && seq <= self.versions => self.write(ctx),
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut DynCtx<'_>, tag: u64) {
        let op = KvOp::Get { key: PROBE_KEY.to_owned() };
        ctx.send(self.coordinator, Msg::Request { client: 0, seq: self.versions + 1 + tag, attempt: 1, op });
    }
}

/// A node: a server, a client, or the staleness experiment's probe.
#[allow(clippy::large_enum_variant)] // One value per node.
pub enum DynamoNode {
    Server(Server),
    Client(KvClient<DynTransport>),
    Probe(Probe),
}

impl DynamoNode {
    pub fn new(id: NodeId, shared: &Rc<Shared>) -> DynamoNode {
        if id < shared.servers {
            DynamoNode::Server(Server::new(id, Rc::clone(shared)))
        } else {
            DynamoNode::Client(KvClient::new(id, Rc::clone(&shared.clients)))
        }
    }

    pub fn as_server(&self) -> Option<&Server> {
        match self {
            DynamoNode::Server(server) => Some(server),
            _ => None,
        }
    }
}

impl Process for DynamoNode {
    type Msg = Msg;
    type Obs = DynObs;

    fn on_start(&mut self, ctx: &mut DynCtx<'_>) {
        match self {
            DynamoNode::Server(server) => server.on_start(ctx),
            DynamoNode::Client(client) => client.on_start(ctx),
            DynamoNode::Probe(probe) => probe.on_start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut DynCtx<'_>, from: NodeId, msg: Msg) {
        match self {
            DynamoNode::Server(server) => server.on_message(ctx, from, msg),
            DynamoNode::Client(client) => client.on_message(ctx, from, msg),
            DynamoNode::Probe(probe) => probe.on_message(ctx, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut DynCtx<'_>, timer: TimerId, tag: u64) {
        match self {
            DynamoNode::Server(server) => server.on_timer(ctx, tag),
            DynamoNode::Client(client) => client.on_timer(ctx, timer, tag),
            DynamoNode::Probe(probe) => probe.on_timer(ctx, tag),
        }
    }
}
