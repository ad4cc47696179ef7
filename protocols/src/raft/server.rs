//! A Raft server: election, replication, commitment, durable state and the state machine.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use rand::RngExt;
use sim_core::{MS, NodeId, TimerId};

use super::log::{Log, decode_entry, encode_entry};
use super::{
    AppendReply, Command, Entry, Machine, Msg, RaftCtx, RaftObs, ServerSettings, Snapshot, SnapshotSource, Variant,
};
use crate::codec::{Reader, SlotPair, Writer};
use crate::kv::KvStore;

const TIMER_ELECTION: u64 = 1;
const TIMER_HEARTBEAT: u64 = 2;

/// Two slots, written alternately: a record torn by a crash leaves the other whole.
const KEY_TERM_VOTE: [&str; 2] = ["raft/term-vote/0", "raft/term-vote/1"];
const KEY_LOG_PREFIX: &str = "raft/log/";
const KEY_SNAPSHOT_PREFIX: &str = "raft/snapshot/";

/// A server's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    Candidate,
    Leader,
}

/// A client waiting for the entry at some index to be applied.
#[derive(Clone, Debug)]
struct Waiter {
    node: NodeId,
    client: u64,
    seq: u64,
    attempt: u64,
}

/// One Raft server, replicating the state machine `M`.
pub struct Server<M: Machine = KvStore> {
    id: NodeId,
    settings: Rc<ServerSettings>,
    // Durable: synced before any answer.
    current_term: u64,
    voted_for: Option<NodeId>,
    log: Log<M>,
    /// The latest snapshot (its entries are compacted out of `log`).
    snapshot: Option<Rc<Snapshot<M>>>,
    /// Where `currentTerm` and `votedFor` are written.
    term_vote_slots: SlotPair,
    // Volatile.
    role: Role,
    commit_index: u64,
    last_applied: u64,
    leader_hint: Option<NodeId>,
    heard_term: u64,
    votes: BTreeSet<NodeId>,
    answered: BTreeSet<NodeId>,
    /// Pre-votes granted so far, while a pre-vote round runs.
    pre_votes: Option<BTreeSet<NodeId>>,
    /// The number of this server's latest pre-vote round. Volatile: a round after a
    /// restart is numbered from the clock's reading, so it differs from every round
    /// before the crash (whose answers may still be in flight).
    pre_vote_round: u64,
    /// When (local time) this server last accepted a message from a leader.
    leader_contact_ns: Option<u64>,
    next_index: Vec<u64>,
    match_index: Vec<u64>,
    election_timer: Option<TimerId>,
    heartbeat_timer: Option<TimerId>,
    store: M,
    /// The machine's bookkeeping while this server leads.
    leading: M::Leader,
    waiters: BTreeMap<u64, Waiter>,
}

impl<M: Machine> Server<M> {
    pub fn new(id: NodeId, settings: Rc<ServerSettings>) -> Server<M> {
        let servers = settings.servers;
        Server {
            id,
            settings,
            current_term: 0,
            voted_for: None,
            log: Log::default(),
            snapshot: None,
            term_vote_slots: SlotPair::new(KEY_TERM_VOTE),
            role: Role::Follower,
            commit_index: 0,
            last_applied: 0,
            leader_hint: None,
            heard_term: 0,
            votes: BTreeSet::new(),
            answered: BTreeSet::new(),
            pre_votes: None,
            pre_vote_round: 0,
            leader_contact_ns: None,
            next_index: vec![1; servers],
            match_index: vec![0; servers],
            election_timer: None,
            heartbeat_timer: None,
            store: M::default(),
            leading: M::Leader::default(),
            waiters: BTreeMap::new(),
        }
    }

    // ------------------------------------------------------------ read access

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn current_term(&self) -> u64 {
        self.current_term
    }

    pub fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }

    pub fn log(&self) -> &Log<M> {
        &self.log
    }

    pub fn commit_index(&self) -> u64 {
        self.commit_index
    }

    pub fn store(&self) -> &M {
        &self.store
    }

    pub fn last_applied(&self) -> u64 {
        self.last_applied
    }

    fn last_index(&self) -> u64 {
        self.log.last_index()
    }

    /// The term of the entry at `index`, which must be held or be the snapshot's last.
    fn term_at(&self, index: u64) -> u64 {
        self.log.term_at(index).expect("a term of the log or its snapshot's last entry")
    }

    fn majority(&self) -> usize {
        self.settings.servers / 2 + 1
    }

    // ------------------------------------------------------------ durability

    fn persist_term_vote(&mut self, ctx: &mut RaftCtx<'_, M>) {
        let mut record = Writer::default();
        record.u64(self.current_term);
        // The bug of volatile-vote: the vote lives only in memory.
        let voted_for = self.voted_for.filter(|_| self.settings.variant != Variant::VolatileVote);
        record.u64(voted_for.map_or(0, |v| v as u64 + 1));
        self.term_vote_slots.write(ctx.storage(), record);
    }

    /// Writes entries from `from_index` on, deletes records past the log's end (up to
    /// `old_last`), and syncs.
    fn persist_log(&self, ctx: &mut RaftCtx<'_, M>, from_index: u64, old_last: u64) {
        for index in from_index..=self.last_index() {
            let prefix_hash = self.log.prefix_hash(index).expect("held");
            let record = encode_entry(self.log.entry(index).expect("held"), prefix_hash);
            ctx.storage().put(log_key(index), record);
        }
        for index in self.last_index() + 1..=old_last {
            ctx.storage().delete(&log_key(index));
        }
        // The bug: the entries are acknowledged while they may still be lost.
        if self.settings.variant != Variant::UnsyncedLog {
            ctx.storage().sync();
        }
        ctx.observe(M::wrap_obs(RaftObs::Appended { from_index }));
    }

    /// Writes a snapshot, syncs it, and only then deletes what it replaces: older
    /// snapshots, the log records it covers and, when the log was discarded for it
    /// (`discarded_to`), every record up to the old log's end. A crash in between leaves
    /// either the old snapshot with its records or the new one.
    fn persist_snapshot(&self, ctx: &mut RaftCtx<'_, M>, snapshot: &Snapshot<M>, discarded_to: Option<u64>) {
        let key = snapshot_key(snapshot.last_index);
        ctx.storage().put(key.clone(), encode_snapshot(snapshot));
        ctx.storage().sync();
        let delete_to = discarded_to.unwrap_or(0).max(snapshot.last_index);
        let storage = ctx.storage();
        let stale: Vec<String> = storage
            .scan_prefix(KEY_SNAPSHOT_PREFIX)
            .map(|(k, _)| k)
            .filter(|k| *k != key)
            .chain(
                storage
                    .scan_prefix(KEY_LOG_PREFIX)
                    .map(|(k, _)| k)
                    .take_while(|k| record_index(k).is_some_and(|i| i <= delete_to)),
            )
            .map(str::to_owned)
            .collect();
        for key in &stale {
            ctx.storage().delete(key);
        }
        ctx.storage().sync();
    }

    fn recover(&mut self, ctx: &mut RaftCtx<'_, M>) {
        // The newer of the two whole term/vote records (a later term, or a vote in the
        // same term); a torn one was being written when the server died, before it
        // answered anything on its strength.
        let newest = self.term_vote_slots.read(ctx.storage(), |r| Some((r.u64()?, r.u64()?)));
        if let Some((term, vote)) = newest {
            self.current_term = term;
            self.voted_for = vote.checked_sub(1).map(|v| v as NodeId);
        }
        // The newest snapshot that reads back whole (a torn one is ignored: the one
        // before it and its log records are still there).
        let snapshot =
            ctx.storage().scan_prefix(KEY_SNAPSHOT_PREFIX).filter_map(|(_, b)| decode_snapshot::<M>(b)).last();
        if let Some(snapshot) = snapshot {
            self.log.reset(snapshot.last_index, snapshot.last_term, snapshot.prefix_hash);
            self.store = snapshot.store.clone();
            self.commit_index = snapshot.last_index;
            self.last_applied = snapshot.last_index;
            self.observe_snapshot(ctx, &snapshot, SnapshotSource::Restored);
            self.snapshot = Some(Rc::new(snapshot));
        }
        let mut leftovers = Vec::new();
        let storage = ctx.storage();
        for (key, bytes) in storage.scan_prefix(KEY_LOG_PREFIX) {
            let index = record_index(key).unwrap_or(0);
            if index <= self.log.base_index() {
                // Covered by the snapshot (a crash came before their deletion).
                continue;
            }
            if !leftovers.is_empty() || index != self.log.last_index() + 1 {
                leftovers.push(key.to_owned());
                continue;
            }
            // A torn record ends the log: what follows it cannot be trusted. So does one
            // written after another history than the one recovered: a record whose
            // deletion a crash undid after a snapshot replaced the log it belonged to
            // (its prefix hash says which log that was).
            match decode_entry(bytes) {
                Some((entry, prefix_hash)) => {
                    self.log.push(Rc::new(entry));
                    if self.log.prefix_hash(index) != Some(prefix_hash)
                        && self.settings.variant != Variant::StaleSuffixAfterSnapshot
                    {
                        self.log.truncate_from(index);
                        leftovers.push(key.to_owned());
                    }
                }
                None => leftovers.push(key.to_owned()),
            }
        }
        // Records past the end (a torn one, or ones whose deletion a crash lost) go, so
        // that they cannot rejoin the log once it grows back to them.
        if !leftovers.is_empty() {
            for key in &leftovers {
                ctx.storage().delete(key);
            }
            ctx.storage().sync();
        }
        // The recovered log is judged like any written one (log matching from here on).
        if !self.log.is_empty() {
            ctx.observe(M::wrap_obs(RaftObs::Appended { from_index: self.log.base_index() + 1 }));
        }
    }

    fn observe_snapshot(&self, ctx: &mut RaftCtx<'_, M>, snapshot: &Snapshot<M>, source: SnapshotSource) {
        ctx.observe(M::wrap_obs(RaftObs::Snapshot {
            last_index: snapshot.last_index,
            last_term: snapshot.last_term,
            prefix_hash: snapshot.prefix_hash,
            source,
        }));
    }

    // ------------------------------------------------------------ handlers

    pub fn on_start(&mut self, ctx: &mut RaftCtx<'_, M>) {
        self.recover(ctx);
        self.reset_election_timer(ctx);
    }

    pub fn on_timer(&mut self, ctx: &mut RaftCtx<'_, M>, timer: TimerId, tag: u64) {
        match tag {
            TIMER_ELECTION if Some(timer) == self.election_timer => {
                self.election_timer = None;
                match self.role {
                    Role::Leader => {}
                    _ if self.settings.raft.pre_vote => self.start_pre_vote(ctx),
                    _ => self.start_election(ctx),
                }
            }
            TIMER_HEARTBEAT if Some(timer) == self.heartbeat_timer => {
                self.heartbeat_timer = None;
                match self.role {
                    Role::Leader => {
                        for command in self.store.leader_tick(&mut self.leading, ctx.now()) {
                            self.propose(ctx, command);
                        }
                        self.broadcast_append(ctx)
                    }
                    Role::Candidate => self.request_votes(ctx),
                    Role::Follower => return,
                }
                self.schedule_heartbeat(ctx);
            }
            _ => {}
        }
    }

    pub fn on_message(&mut self, ctx: &mut RaftCtx<'_, M>, from: NodeId, msg: Msg<M>) {
        match msg {
            Msg::RequestVote { term, last_log_index, last_log_term } => {
                self.on_request_vote(ctx, from, term, last_log_index, last_log_term)
            }
            Msg::RequestVoteReply { term, granted } => self.on_vote_reply(ctx, from, term, granted),
            Msg::PreVote { term, last_log_index, last_log_term, round } => {
                self.on_pre_vote(ctx, from, term, last_log_index, last_log_term, round)
            }
            Msg::PreVoteReply { term, granted, round } => self.on_pre_vote_reply(ctx, from, term, granted, round),
            Msg::AppendEntries { term, prev_log_index, prev_log_term, entries, leader_commit } => {
                self.on_append_entries(ctx, from, term, prev_log_index, prev_log_term, entries, leader_commit)
            }
            Msg::AppendEntriesReply(reply) => self.on_append_reply(ctx, from, &reply),
            Msg::InstallSnapshot { term, snapshot } => self.on_install_snapshot(ctx, from, term, snapshot),
            Msg::Request { client, seq, attempt, op } => self.on_client_request(ctx, from, client, seq, attempt, op),
            Msg::Reply { .. } => {}
        }
    }

    // ------------------------------------------------------------ elections

    fn reset_election_timer(&mut self, ctx: &mut RaftCtx<'_, M>) {
        if let Some(timer) = self.election_timer.take() {
            ctx.cancel_timer(timer);
        }
        let raft = &self.settings.raft;
        let own = raft.election_timeout_overrides.iter().find(|o| o.node == self.id);
        let [min, max] = own.map_or(raft.election_timeout_ms, |o| o.election_timeout_ms);
        let timeout_ns = ctx.rng().random_range((min * MS as f64) as u64..=(max * MS as f64) as u64);
        self.election_timer = Some(ctx.set_timer(timeout_ns, TIMER_ELECTION));
    }

    fn schedule_heartbeat(&mut self, ctx: &mut RaftCtx<'_, M>) {
        if let Some(timer) = self.heartbeat_timer.take() {
            ctx.cancel_timer(timer);
        }
        let interval = (self.settings.raft.heartbeat_ms * MS as f64) as u64;
        self.heartbeat_timer = Some(ctx.set_timer(interval, TIMER_HEARTBEAT));
    }

    /// Asks the others whether this server could win the next term, changing nothing.
    fn start_pre_vote(&mut self, ctx: &mut RaftCtx<'_, M>) {
        self.pre_votes = Some(BTreeSet::from([self.id]));
        self.pre_vote_round = (self.pre_vote_round + 1).max(ctx.now());
        ctx.observe(M::wrap_obs(RaftObs::PreVoteStarted { round: self.pre_vote_round }));
        self.reset_election_timer(ctx);
        if self.majority() <= 1 {
            self.start_election(ctx);
            return;
        }
        let request = Msg::PreVote {
            term: self.current_term + 1,
            last_log_index: self.last_index(),
            last_log_term: self.term_at(self.last_index()),
            round: self.pre_vote_round,
        };
        for peer in (0..self.settings.servers).filter(|p| *p != self.id) {
            ctx.send(peer, M::wrap(request.clone()));
        }
    }

    /// Yes only for a later term, an up-to-date log, and when no leader has been heard
    /// from within the minimum election timeout (a leader says no: it is one).
    fn on_pre_vote(
        &mut self,
        ctx: &mut RaftCtx<'_, M>,
        from: NodeId,
        term: u64,
        last_log_index: u64,
        last_log_term: u64,
        round: u64,
    ) {
        let min_timeout_ns = (self.settings.raft.election_timeout_ms[0] * MS as f64) as u64;
        let now = ctx.now();
        let leader_alive = (self.role == Role::Leader
            || self.leader_contact_ns.is_some_and(|at| now.saturating_sub(at) < min_timeout_ns))
            && self.settings.variant != Variant::PreVoteLogOnly;
        let granted = term > self.current_term && !leader_alive && self.log_up_to_date(last_log_index, last_log_term);
        ctx.send(from, M::wrap(Msg::PreVoteReply { term: self.current_term, granted, round }));
    }

    /// Counts a granted answer of the current round only: one from an earlier round says
    /// nothing about whether a leader is alive now.
    fn on_pre_vote_reply(&mut self, ctx: &mut RaftCtx<'_, M>, from: NodeId, term: u64, granted: bool, round: u64) {
        if term > self.current_term {
            self.step_down(ctx, term);
            return;
        }
        let Some(pre_votes) = self.pre_votes.as_mut() else {
            return;
        };
        if granted && (round == self.pre_vote_round || self.settings.variant == Variant::PreVoteAnyRound) {
            pre_votes.insert(from);
            if pre_votes.len() >= self.majority() {
                self.start_election(ctx);
            }
        }
    }

    fn start_election(&mut self, ctx: &mut RaftCtx<'_, M>) {
        self.pre_votes = None;
        self.current_term += 1;
        self.voted_for = Some(self.id);
        self.role = Role::Candidate;
        self.leader_hint = None;
        ctx.observe(M::wrap_obs(RaftObs::BecameCandidate { term: self.current_term }));
        self.persist_term_vote(ctx);
        self.votes = BTreeSet::from([self.id]);
        self.reset_election_timer(ctx);
        if self.votes.len() >= self.majority() {
            self.become_leader(ctx);
            return;
        }
        self.answered = BTreeSet::from([self.id]);
        self.request_votes(ctx);
        self.schedule_heartbeat(ctx);
    }

    /// Asks every server that has not answered yet; a candidate repeats this every
    /// heartbeat interval, as the paper's RPCs are retried until answered.
    fn request_votes(&self, ctx: &mut RaftCtx<'_, M>) {
        let request = Msg::RequestVote {
            term: self.current_term,
            last_log_index: self.last_index(),
            last_log_term: self.term_at(self.last_index()),
        };
        for peer in (0..self.settings.servers).filter(|p| !self.answered.contains(p)) {
            ctx.send(peer, M::wrap(request.clone()));
        }
    }

    /// Adopts a newer term as a follower (and forgets the vote of the older one).
    fn step_down(&mut self, ctx: &mut RaftCtx<'_, M>, term: u64) {
        self.pre_votes = None;
        if term > self.current_term {
            self.current_term = term;
            self.voted_for = None;
            // Whoever leads the new term is not known yet (a stale hint could send
            // clients round in circles).
            self.leader_hint = None;
            // The bug of volatile-learned-term: a term learned from a message is not
            // written (only a vote or a candidacy writes the term).
            if self.settings.variant != Variant::VolatileLearnedTerm {
                self.persist_term_vote(ctx);
            }
        }
        if self.role != Role::Follower {
            self.role = Role::Follower;
            ctx.observe(M::wrap_obs(RaftObs::BecameFollower { term: self.current_term }));
            if let Some(timer) = self.heartbeat_timer.take() {
                ctx.cancel_timer(timer);
            }
            self.reset_election_timer(ctx);
        }
    }

    fn log_up_to_date(&self, last_log_index: u64, last_log_term: u64) -> bool {
        let my_last_term = self.term_at(self.last_index());
        last_log_term > my_last_term || (last_log_term == my_last_term && last_log_index >= self.last_index())
    }

    fn on_request_vote(
        &mut self,
        ctx: &mut RaftCtx<'_, M>,
        from: NodeId,
        term: u64,
        last_log_index: u64,
        last_log_term: u64,
    ) {
        if term > self.current_term {
            self.step_down(ctx, term);
        }
        let log_ok =
            self.settings.variant == Variant::VoteWithoutLogCheck || self.log_up_to_date(last_log_index, last_log_term);
        let vote_free = self.voted_for.is_none() || self.voted_for == Some(from);
        let granted = term == self.current_term && vote_free && log_ok;
        if granted {
            self.voted_for = Some(from);
            self.persist_term_vote(ctx);
            self.reset_election_timer(ctx);
        }
        ctx.send(from, M::wrap(Msg::RequestVoteReply { term: self.current_term, granted }));
    }

    fn on_vote_reply(&mut self, ctx: &mut RaftCtx<'_, M>, from: NodeId, term: u64, granted: bool) {
        if term > self.current_term {
            self.step_down(ctx, term);
            return;
        }
        if self.ignore_stale_vote(term) {
            return;
        }
        self.answered.insert(from);
        if granted {
            self.votes.insert(from);
            if self.votes.len() >= self.majority() {
                self.become_leader(ctx);
            }
        }
    }

    fn ignore_stale_vote(&self, term: u64) -> bool {
        self.role != Role::Candidate || term != self.current_term
    }

    fn become_leader(&mut self, ctx: &mut RaftCtx<'_, M>) {
        assert!(self.role != Role::Leader);
        self.role = Role::Leader;
        self.leader_hint = Some(self.id);
        if let Some(timer) = self.election_timer.take() {
            ctx.cancel_timer(timer);
        }
        ctx.observe(M::wrap_obs(RaftObs::BecameLeader { term: self.current_term, last_log_index: self.last_index() }));
        self.leading = M::Leader::default();
        self.store.on_elected(&mut self.leading, ctx.now());
        let old_last = self.last_index();
        if self.settings.raft.noop_on_election {
            self.log.push(Rc::new(Entry::new(self.current_term, Command::Noop)));
            self.persist_log(ctx, old_last + 1, old_last);
        }
        self.next_index = vec![old_last + 1; self.settings.servers];
        self.match_index = vec![0; self.settings.servers];
        self.match_index[self.id] = self.last_index();
        self.broadcast_append(ctx);
        self.schedule_heartbeat(ctx);
        self.advance_commit(ctx);
    }

    // ------------------------------------------------------------ replication

    fn broadcast_append(&mut self, ctx: &mut RaftCtx<'_, M>) {
        for peer in (0..self.settings.servers).filter(|p| *p != self.id) {
            self.send_append(ctx, peer);
        }
    }

    fn send_append(&self, ctx: &mut RaftCtx<'_, M>, peer: NodeId) {
        let next = self.next_index[peer].clamp(1, self.last_index() + 1);
        if next <= self.log.base_index() {
            // The entries this follower needs are compacted: it gets the snapshot.
            let snapshot = self.snapshot.clone().expect("a compacted log has a snapshot");
            ctx.send(peer, M::wrap(Msg::InstallSnapshot { term: self.current_term, snapshot }));
            return;
        }
        let prev_log_index = next - 1;
        let end = self.last_index().min(prev_log_index + self.settings.raft.max_entries_per_append as u64);
        let entries = self.log.slice(next, end).to_vec();
        ctx.send(
            peer,
            M::wrap(Msg::AppendEntries {
                term: self.current_term,
                prev_log_index,
                prev_log_term: self.term_at(prev_log_index),
                entries,
                leader_commit: self.commit_index,
            }),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append_entries(
        &mut self,
        ctx: &mut RaftCtx<'_, M>,
        from: NodeId,
        term: u64,
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<Rc<Entry<M>>>,
        leader_commit: u64,
    ) {
        if !self.follow_leader(ctx, from, term, prev_log_index) {
            return;
        }
        let (prev_log_index, prev_log_term, entries) = self.skip_compacted(prev_log_index, prev_log_term, entries);
        if prev_log_index > self.last_index() {
            let reply = self.refusal(prev_log_index, self.last_index() + 1, None);
            ctx.send(from, M::wrap(reply));
            return;
        }
        let found_term = self.term_at(prev_log_index);
        if found_term != prev_log_term {
            let first_of_term = (self.log.base_index().max(1)..=prev_log_index)
                .find(|i| self.term_at(*i) == found_term)
                .unwrap_or(prev_log_index);
            let reply = self.refusal(prev_log_index, first_of_term, Some(found_term));
            ctx.send(from, M::wrap(reply));
            return;
        }
        let last_new = prev_log_index + entries.len() as u64;
        self.merge_entries(ctx, prev_log_index, entries);
        if leader_commit.min(last_new) > self.commit_index {
            self.commit_index = leader_commit.min(last_new);
            self.apply_committed(ctx);
        }
        ctx.send(from, M::wrap(self.acceptance(last_new)));
    }

    /// What a server does with a message from a leader (`AppendEntries` or
    /// `InstallSnapshot`) of `term`: refuse one of an older term (false), else follow
    /// that leader and restart the election timeout.
    fn follow_leader(&mut self, ctx: &mut RaftCtx<'_, M>, from: NodeId, term: u64, rejected_prev: u64) -> bool {
        if term < self.current_term {
            let reply = self.refusal(rejected_prev, self.last_index() + 1, None);
            ctx.send(from, M::wrap(reply));
            return false;
        }
        if term > self.current_term || self.role != Role::Follower {
            // A leader hearing from another leader of its own term can only happen when
            // election safety is already broken (a known-bug variant); the invariant
            // checker reports that, and this server yields.
            self.step_down(ctx, term);
        }
        self.leader_hint = Some(from);
        self.leader_contact_ns = Some(ctx.now());
        if self.settings.raft.pre_vote {
            // Each contact, for the judge of pre-vote (only then: a cost per heartbeat).
            ctx.observe(M::wrap_obs(RaftObs::LeaderContact { term, leader: from }));
        }
        self.pre_votes = None;
        if self.heard_term < term {
            self.heard_term = term;
            ctx.observe(M::wrap_obs(RaftObs::HeardFromLeader { term, leader: from }));
        }
        self.reset_election_timer(ctx);
        true
    }

    /// Entries at or below this server's snapshot are committed, so the leader's agree
    /// with them (log matching, leader completeness): the consistency check moves to the
    /// snapshot's last index, with the leader's term there if it sent that entry.
    fn skip_compacted(
        &self,
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<Rc<Entry<M>>>,
    ) -> (u64, u64, Vec<Rc<Entry<M>>>) {
        let base = self.log.base_index();
        if prev_log_index >= base {
            return (prev_log_index, prev_log_term, entries);
        }
        let skip = (base - prev_log_index) as usize;
        match entries.get(skip - 1) {
            Some(at_base) => (base, at_base.term, entries[skip..].to_vec()),
            // Everything sent lies inside the snapshot.
            None => (base, self.term_at(base), Vec::new()),
        }
    }

    /// Success: this server's log now matches the leader's up to `match_index`.
    fn acceptance(&self, match_index: u64) -> Msg<M> {
        Msg::AppendEntriesReply(AppendReply {
            term: self.current_term,
            success: true,
            match_index,
            rejected_prev: 0,
            conflict_index: 0,
            conflict_term: None,
        })
    }

    fn refusal(&self, rejected_prev: u64, conflict_index: u64, conflict_term: Option<u64>) -> Msg<M> {
        Msg::AppendEntriesReply(AppendReply {
            term: self.current_term,
            success: false,
            match_index: 0,
            rejected_prev,
            conflict_index,
            conflict_term,
        })
    }

    /// Appends what the log lacks after `prev_log_index`, deleting a conflicting suffix
    /// first (the `no-truncate` variant overwrites in place and keeps the suffix).
    fn merge_entries(&mut self, ctx: &mut RaftCtx<'_, M>, prev_log_index: u64, entries: Vec<Rc<Entry<M>>>) {
        let old_last = self.last_index();
        let mut first_written = None;
        for (offset, entry) in entries.into_iter().enumerate() {
            let index = prev_log_index + 1 + offset as u64;
            if index <= self.last_index() {
                if self.term_at(index) == entry.term {
                    continue;
                }
                if self.settings.variant == Variant::NoTruncate {
                    self.log.overwrite(index, entry);
                    first_written.get_or_insert(index);
                    continue;
                }
                self.log.truncate_from(index);
                // Clients waiting on the deleted entries are answered by nobody: they retry.
                self.waiters.split_off(&index);
                ctx.observe(M::wrap_obs(RaftObs::Truncated {
                    from_index: index,
                    as_leader: self.role == Role::Leader,
                }));
            }
            self.log.push(entry);
            first_written.get_or_insert(index);
        }
        if let Some(from_index) = first_written {
            self.persist_log(ctx, from_index, old_last);
        }
    }

    fn on_append_reply(&mut self, ctx: &mut RaftCtx<'_, M>, from: NodeId, reply: &AppendReply) {
        if reply.term > self.current_term {
            self.step_down(ctx, reply.term);
            return;
        }
        if self.role != Role::Leader || reply.term != self.current_term {
            return;
        }
        if reply.success {
            if self.ignore_stale_success(from, reply) {
                return;
            }
            self.match_index[from] = reply.match_index;
            self.next_index[from] = self.next_index[from].max(reply.match_index + 1);
            self.advance_commit(ctx);
            if self.next_index[from] <= self.last_index() {
                self.send_append(ctx, from);
            }
            return;
        }
        if self.ignore_stale_refusal(from, reply) {
            return;
        }
        // Skip the follower's whole conflicting term: to just past the leader's last
        // entry of that term if it has one, else to the follower's first of it.
        let hinted = match reply.conflict_term {
            Some(t) => match (self.log.base_index().max(1)..=self.last_index()).rev().find(|i| self.term_at(*i) == t) {
                Some(last_of_term) => last_of_term + 1,
                None => reply.conflict_index,
            },
            None => reply.conflict_index,
        };
        // Never above the refused index (progress), never below what is known to match.
        self.next_index[from] = hinted.min(reply.rejected_prev).max(self.match_index[from] + 1);
        self.send_append(ctx, from);
    }

    /// An acknowledgement that adds nothing (a duplicate, or one overtaken by a later
    /// one) must not trigger another send: duplicated replies would multiply messages.
    fn ignore_stale_success(&self, from: NodeId, reply: &AppendReply) -> bool {
        reply.match_index <= self.match_index[from]
    }

    /// A refusal of anything but the last `AppendEntries` sent was already handled.
    fn ignore_stale_refusal(&self, from: NodeId, reply: &AppendReply) -> bool {
        reply.rejected_prev + 1 != self.next_index[from] || self.next_index[from] <= self.match_index[from] + 1
    }

    fn advance_commit(&mut self, ctx: &mut RaftCtx<'_, M>) {
        self.match_index[self.id] = self.last_index();
        for index in (self.commit_index + 1..=self.last_index()).rev() {
            let replicas = self.match_index.iter().filter(|m| **m >= index).count();
            let own_term = self.term_at(index) == self.current_term;
            if replicas >= self.majority() && (own_term || self.settings.variant == Variant::CommitOldTerm) {
                self.commit_index = index;
                self.apply_committed(ctx);
                return;
            }
        }
    }

    // ------------------------------------------------------------ the state machine

    fn apply_committed(&mut self, ctx: &mut RaftCtx<'_, M>) {
        while self.last_applied < self.commit_index {
            self.last_applied += 1;
            let index = self.last_applied;
            let entry = self.log.entry(index).expect("an entry past the snapshot");
            let digest = self.log.digest(index).expect("an entry past the snapshot");
            ctx.observe(M::wrap_obs(RaftObs::Applied {
                index,
                term: entry.term,
                digest,
                current_term: self.current_term,
            }));
            let Command::Kv(command) = &entry.command else {
                continue;
            };
            let mut pushes = Vec::new();
            let answer = self.store.apply(command, index, &mut pushes);
            if self.role == Role::Leader {
                for (to, msg) in pushes {
                    ctx.send(to, msg);
                }
            }
            if let Some(waiter) = self.waiters.remove(&index)
                && M::session(command) == Some((waiter.client, waiter.seq))
                && let Some(answer) = answer
            {
                ctx.send(waiter.node, M::wrap(Msg::Reply { seq: waiter.seq, attempt: waiter.attempt, answer }));
            }
        }
        self.maybe_snapshot(ctx);
    }

    /// Snapshots the state machine and compacts the log once enough applied entries
    /// follow the last snapshot.
    fn maybe_snapshot(&mut self, ctx: &mut RaftCtx<'_, M>) {
        let every = self.settings.raft.snapshot_every;
        if every == 0 || self.last_applied < self.log.base_index() + every {
            return;
        }
        let index = self.last_applied;
        let snapshot = Snapshot {
            last_index: index,
            last_term: self.term_at(index),
            prefix_hash: self.log.prefix_hash(index).expect("an applied entry"),
            store: self.store.clone(),
        };
        self.persist_snapshot(ctx, &snapshot, None);
        self.log.compact(index);
        self.observe_snapshot(ctx, &snapshot, SnapshotSource::Taken);
        self.snapshot = Some(Rc::new(snapshot));
    }

    fn on_install_snapshot(&mut self, ctx: &mut RaftCtx<'_, M>, from: NodeId, term: u64, snapshot: Rc<Snapshot<M>>) {
        let last = snapshot.last_index;
        if !self.follow_leader(ctx, from, term, last) {
            return;
        }
        // A snapshot this server already has the entries of (it committed them) changes
        // nothing.
        if last > self.commit_index || self.settings.variant == Variant::StaleSnapshotInstalled {
            let old_last = self.last_index();
            let discarded = if self.log.term_at(last) == Some(snapshot.last_term) {
                // The log holds the snapshot's last entry: keep what follows it.
                self.log.compact(last);
                None
            } else {
                self.log.reset(last, snapshot.last_term, snapshot.prefix_hash);
                Some(old_last)
            };
            self.store = snapshot.store.clone();
            self.commit_index = last;
            self.last_applied = last;
            self.waiters = self.waiters.split_off(&(last + 1));
            if discarded.is_some() {
                self.waiters.clear();
            }
            self.persist_snapshot(ctx, &snapshot, discarded);
            self.observe_snapshot(ctx, &snapshot, SnapshotSource::Installed);
            self.snapshot = Some(snapshot);
        }
        ctx.send(from, M::wrap(self.acceptance(last)));
    }

    fn on_client_request(
        &mut self,
        ctx: &mut RaftCtx<'_, M>,
        from: NodeId,
        client: u64,
        seq: u64,
        attempt: u64,
        op: M::Op,
    ) {
        if self.role != Role::Leader {
            ctx.send(from, M::wrap(Msg::Reply { seq, attempt, answer: M::not_leader(self.leader_hint) }));
            return;
        }
        if let Some(answer) = self.store.answer_directly(&mut self.leading, ctx.now(), client, &op) {
            ctx.send(from, M::wrap(Msg::Reply { seq, attempt, answer }));
            return;
        }
        if let Some(answer) = self.store.cached(client, seq) {
            ctx.send(from, M::wrap(Msg::Reply { seq, attempt, answer }));
            return;
        }
        let waiting = self.waiters.iter().find(|(_, w)| w.client == client && w.seq == seq).map(|(i, _)| *i);
        if let Some(index) = waiting
            && self.log.entry(index).is_some_and(|e| e.term == self.current_term)
        {
            // A retry of a command already in this term's log: answer when it applies.
            self.waiters.insert(index, Waiter { node: from, client, seq, attempt });
            return;
        }
        self.waiters.insert(self.last_index() + 1, Waiter { node: from, client, seq, attempt });
        self.propose(ctx, M::command(client, seq, op));
    }

    /// As leader, appends `command` to the log (persisted before anything leaves) and
    /// sends AppendEntries to every follower now: the Raft paper's election experiment
    /// has a leader replicate a new entry just before it crashes (a synchronized broadcast
    /// of heartbeats). False when this server does not lead.
    pub fn replicate_now(&mut self, ctx: &mut RaftCtx<'_, M>, command: M::Command) -> bool {
        if self.role != Role::Leader {
            return false;
        }
        self.propose(ctx, command);
        true
    }

    /// Appends a command to the leader's log and replicates it.
    fn propose(&mut self, ctx: &mut RaftCtx<'_, M>, command: M::Command) {
        let old_last = self.last_index();
        self.log.push(Rc::new(Entry::new(self.current_term, Command::Kv(command))));
        self.persist_log(ctx, old_last + 1, old_last);
        self.broadcast_append(ctx);
        self.advance_commit(ctx);
    }
}

fn log_key(index: u64) -> String {
    format!("{KEY_LOG_PREFIX}{index:012}")
}

fn snapshot_key(last_index: u64) -> String {
    format!("{KEY_SNAPSHOT_PREFIX}{last_index:012}")
}

/// The index a log record's key names.
fn record_index(key: &str) -> Option<u64> {
    key.strip_prefix(KEY_LOG_PREFIX)?.parse().ok()
}

fn encode_snapshot<M: Machine>(snapshot: &Snapshot<M>) -> Vec<u8> {
    let mut out = Writer::default();
    out.u64(snapshot.last_index);
    out.u64(snapshot.last_term);
    out.u64(snapshot.prefix_hash);
    snapshot.store.encode(&mut out);
    out.bytes
}

/// Reads a snapshot record; `None` if it is torn or corrupt.
fn decode_snapshot<M: Machine>(bytes: &[u8]) -> Option<Snapshot<M>> {
    let mut reader = Reader::new(bytes);
    let (last_index, last_term, prefix_hash) = (reader.u64()?, reader.u64()?, reader.u64()?);
    let store = M::decode(&mut reader)?;
    reader.is_done().then_some(Snapshot { last_index, last_term, prefix_hash, store })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{KvCommand, KvOp};

    #[test]
    fn snapshot_records_round_trip_and_torn_ones_are_refused() {
        let mut store = KvStore::default();
        let put = KvOp::Put { key: "k1".into(), value: "v".into() };
        store.apply(&KvCommand { client: 3, seq: 1, op: put });
        store.apply(&KvCommand { client: 4, seq: 7, op: KvOp::Get { key: "k1".into() } });
        let cas = KvOp::Cas { key: "k2".into(), from: "x".into(), to: "y".into() };
        store.apply(&KvCommand { client: 5, seq: 2, op: cas });
        let snapshot = Snapshot { last_index: 40, last_term: 6, prefix_hash: 0xfeed, store };
        let record = encode_snapshot(&snapshot);
        assert_eq!(decode_snapshot::<KvStore>(&record), Some(snapshot));
        for cut in 0..record.len() {
            assert_eq!(decode_snapshot::<KvStore>(&record[..cut]), None, "cut at {cut}");
        }
    }
}
