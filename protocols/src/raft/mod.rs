//! Raft (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm",
//! extended version) with a replicated key-value store.
//!
//! **Roles.** Every server starts as a follower. A follower that hears nothing from a
//! leader for a randomized election timeout (150–300 ms by default) becomes a candidate:
//! it increments `currentTerm`, votes for itself and asks every other server for its vote
//! (`RequestVote`). A server grants at most one vote per term, and only to a candidate
//! whose log is at least as up-to-date as its own (last term, then last index). A
//! candidate with votes from a majority becomes leader. Any message with a higher term
//! turns its receiver into a follower of that term.
//!
//! **Replication.** The leader appends client commands to its log and sends them with
//! `AppendEntries`, which carries the index and term of the entry just before them. A
//! follower accepts only if its log holds that entry (the consistency check); it then
//! deletes any conflicting suffix and appends what it lacks. On a refusal the follower
//! names the conflicting term and the first index it holds of it, so the leader backs off
//! a whole term per round trip instead of one entry. Heartbeats are empty `AppendEntries`.
//! A new leader appends a no-op of its term so that earlier entries commit promptly
//! (configurable: without it, the bare algorithm of the paper's Figure 2).
//!
//! **Commitment.** The leader commits index N when a majority's `matchIndex` reaches N and
//! the entry at N is of the leader's current term; earlier entries commit with it. (An
//! entry of an earlier term must never be committed by counting replicas: the paper's
//! Figure 8 shows it can still be overwritten.) Committed entries are applied in order to
//! the key-value store on every server; the server that took the request answers.
//!
//! **Durability.** `currentTerm`, `votedFor` and the log are written and synced before
//! the server answers any message; a restarted server recovers them from storage, starts
//! as a follower with the state machine of its latest snapshot (or an empty one) and
//! applies the entries after it as it learns their commitment. A torn record ends the
//! log on recovery, and records past the end are deleted then.
//!
//! **Snapshots and compaction** (section 7). Once `snapshot_every` applied entries follow
//! its last snapshot, a server writes a snapshot of its state machine (sessions
//! included) with the last index and term it covers, syncs it, and only then deletes the
//! older snapshot and the log records it covers; a crash in between leaves a complete
//! snapshot either way. A leader whose follower needs entries it has compacted sends its
//! snapshot (`InstallSnapshot`, whole, as the paper allows for small state); the
//! follower keeps the entries after the snapshot's last one if its log holds that entry
//! with the same term, else discards its log, then replaces its state machine. Entries at
//! or below a follower's snapshot are committed, so an `AppendEntries` reaching below it
//! is checked from the snapshot's last entry on.
//!
//! **Clients and redirects.** A server that is not the leader answers with the leader it
//! knows of; the client follows the hint at once, or after `no_leader_backoff_ms` when
//! there is none. Requests carry an attempt number and a redirect is followed only for
//! the latest attempt, so a duplicated redirect cannot fork the client's retries.
//!
//! **Clients and reads.** Each client has a session: a client id and a sequence number
//! per operation. The state machine remembers each session's last result, so a retried
//! command is applied once. Reads go through the log, so they are linearizable and a
//! stale leader cannot answer them. A client records `ok` (or `fail` for a cas that did
//! not match, which certainly did not take effect) when a server answers, and `info`
//! when it gives up: the operation may still take effect later.
//!
//! **Invariants** ([`invariants`]): election safety (at most one leader per term), leader
//! append-only, log matching, leader completeness, state machine safety (every snapshot
//! taken, installed or restored must hold exactly the entries applied at its indices,
//! compared by prefix hash), a term that never decreases on a server (not even across
//! a restart) and a state machine that only moves forward; at the end the
//! client history must be linearizable (the checker's kv model), and after the last heal
//! a leader must be elected and every operation complete within the scenario's bound.
//!
//! **Known-bug variants** ([`Variant`]): `commit-old-term`, `vote-without-log-check`,
//! `volatile-vote`, `no-truncate`, `stale-suffix-after-snapshot`, `unsynced-log`,
//! `pre-vote-log-only`, `pre-vote-any-round`, `volatile-learned-term`,
//! `stale-snapshot-installed`; each is a faithful copy of a classic mistake.
//!
//! **Pre-vote** (thesis section 9.6, `raft.pre_vote`, off by default): a server whose
//! election timeout fires first asks the others whether it could win the next term,
//! without raising its own; they say yes only for an up-to-date log and when they have
//! not heard from a leader within the minimum election timeout. With a majority of yes it
//! stands for election as usual. A server cut off and rejoining cannot depose a working
//! leader with its inflated term. Rounds are numbered and answers carry the round they
//! answer: a yes delayed past its round says nothing about the leader now and is not
//! counted in a later round. What pre-vote promises, that the term never rises while a
//! leader reaches a majority, is judged at every candidacy ([`pre_vote`]).
//!
//! Not built: leadership transfer, membership changes, chunked snapshot transfer.

pub mod client;
pub mod invariants;
pub mod log;
pub mod pre_vote;
pub mod protocol;
pub mod server;

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::engine::Data;
use sim_core::{Ctx, NodeId, Process, TimerId};

use crate::codec::{Reader, Writer};
use crate::kv::{ClientObs, KvCommand, KvOp, KvStore, KvWorkload};

pub use client::Client;
pub use invariants::RaftInvariants;
pub use server::Server;

/// A known-bug variant, or the correct protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    Correct,
    /// The leader commits entries of earlier terms by counting replicas (Figure 8).
    CommitOldTerm,
    /// Votes are granted without the log up-to-date check.
    VoteWithoutLogCheck,
    /// `votedFor` is not persisted (the term is): a restarted server can vote twice in
    /// one term.
    VolatileVote,
    /// A follower overwrites conflicting entries but keeps the suffix after them.
    NoTruncate,
    /// Recovery trusts every record that follows the snapshot: a crash between an
    /// installed snapshot and the deletion of the log it replaced brings the old log's
    /// divergent suffix back.
    StaleSuffixAfterSnapshot,
    /// Log writes are acknowledged without a sync: a crash loses entries the server
    /// said it had.
    UnsyncedLog,
    /// Pre-votes are granted on the term and the log alone, as votes are: the rule that
    /// a server hearing from a leader (or leading) says no is missing, so a server that
    /// stopped hearing the leader deposes it anyway.
    PreVoteLogOnly,
    /// A granted pre-vote counts in whatever round it arrives (answers carry no round):
    /// a yes given before a leader existed, delivered late, starts an election after.
    PreVoteAnyRound,
    /// A term learned from a message (a refused vote request, a reply) is kept in memory
    /// only; it is written when the server votes or stands. A crash takes the server back
    /// to its old term, where a deposed leader of that term can still lead it.
    VolatileLearnedTerm,
    /// A snapshot from the leader is installed even when this server has already
    /// committed past it: a late duplicate InstallSnapshot takes its state machine back.
    StaleSnapshotInstalled,
}

impl Variant {
    pub const ALL: [Variant; 11] = [
        Variant::Correct,
        Variant::CommitOldTerm,
        Variant::VoteWithoutLogCheck,
        Variant::VolatileVote,
        Variant::NoTruncate,
        Variant::StaleSuffixAfterSnapshot,
        Variant::UnsyncedLog,
        Variant::PreVoteLogOnly,
        Variant::PreVoteAnyRound,
        Variant::VolatileLearnedTerm,
        Variant::StaleSnapshotInstalled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Correct => "correct",
            Variant::CommitOldTerm => "commit-old-term",
            Variant::VoteWithoutLogCheck => "vote-without-log-check",
            Variant::VolatileVote => "volatile-vote",
            Variant::NoTruncate => "no-truncate",
            Variant::StaleSuffixAfterSnapshot => "stale-suffix-after-snapshot",
            Variant::UnsyncedLog => "unsynced-log",
            Variant::PreVoteLogOnly => "pre-vote-log-only",
            Variant::PreVoteAnyRound => "pre-vote-any-round",
            Variant::VolatileLearnedTerm => "volatile-learned-term",
            Variant::StaleSnapshotInstalled => "stale-snapshot-installed",
        }
    }

    pub fn parse(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// Raft's timing and batching.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    /// The election timeout is drawn uniformly from this range, in milliseconds.
    pub election_timeout_ms: [f64; 2],
    /// How often a leader sends heartbeats.
    pub heartbeat_ms: f64,
    /// The most entries one `AppendEntries` carries.
    pub max_entries_per_append: usize,
    /// A new leader appends a no-op entry of its term, so that entries of earlier terms
    /// commit without waiting for a client's command (the paper's section 8). Turning it
    /// off leaves the bare algorithm of Figure 2, where Figure 8's scenario is reachable.
    pub noop_on_election: bool,
    /// A server snapshots its state machine and compacts its log once this many applied
    /// entries follow its last snapshot (the paper's section 7); 0 never does.
    pub snapshot_every: u64,
    /// Pre-vote (the thesis's section 9.6): a server whose election timeout fires first
    /// asks whether it could win, without raising its term; others say yes only if its log
    /// is up to date and they have not heard from a leader within the minimum election
    /// timeout. A server cut off and rejoining then cannot depose a working leader.
    pub pre_vote: bool,
    /// Per-server election timeout ranges, for scripted scenarios that need to decide
    /// who stands for election first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub election_timeout_overrides: Vec<TimeoutOverride>,
}

/// One server's own election timeout range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutOverride {
    pub node: NodeId,
    pub election_timeout_ms: [f64; 2],
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            election_timeout_ms: [150.0, 300.0],
            heartbeat_ms: 50.0,
            max_entries_per_append: 64,
            noop_on_election: true,
            snapshot_every: 64,
            pre_vote: false,
            election_timeout_overrides: Vec::new(),
        }
    }
}

impl RaftConfig {
    pub fn validate(&self, servers: usize) -> Result<(), String> {
        let ranges = std::iter::once(("raft.election_timeout_ms".to_owned(), self.election_timeout_ms)).chain(
            self.election_timeout_overrides
                .iter()
                .map(|o| (format!("raft.election_timeout_overrides (node {})", o.node), o.election_timeout_ms)),
        );
        for (name, [min, max]) in ranges {
            if !(min.is_finite() && max.is_finite() && min >= 1.0 && max >= min && max <= HOUR_MS) {
                return Err(format!(
                    "{name} must be [min, max] in milliseconds with 1 <= min <= max <= 3600000, got [{min}, {max}]"
                ));
            }
        }
        if let Some(o) = self.election_timeout_overrides.iter().find(|o| o.node >= servers) {
            return Err(format!("raft.election_timeout_overrides names node {}, which is not a server", o.node));
        }
        // Below a millisecond a heartbeat floods the event queue of any run worth judging.
        if !(self.heartbeat_ms.is_finite() && (1.0..=HOUR_MS).contains(&self.heartbeat_ms)) {
            return Err(format!("raft.heartbeat_ms must be 1 to 3600000 milliseconds, got {}", self.heartbeat_ms));
        }
        if !(1..=1_000_000).contains(&self.max_entries_per_append) {
            return Err(format!(
                "raft.max_entries_per_append must be 1 to 1000000, got {}",
                self.max_entries_per_append
            ));
        }
        Ok(())
    }
}

/// An hour in milliseconds: the longest timing setting.
const HOUR_MS: f64 = 3_600_000.0;

/// Everything every node of one cluster shares.
#[derive(Clone, Debug)]
pub struct Settings {
    pub servers: usize,
    pub clients: usize,
    pub variant: Variant,
    pub raft: RaftConfig,
    pub workload: KvWorkload,
    /// Clients stop starting operations at this local time (ns), so the run can drain.
    pub clients_stop_ns: u64,
    pub writes_until_ns: u64,
}

/// What a server needs of the cluster's settings.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub servers: usize,
    pub variant: Variant,
    pub raft: RaftConfig,
}

/// The state machine Raft replicates: deterministic, with client sessions so that a
/// retried command is applied once. The key-value store is one; the ZooKeeper-like
/// coordination service of `locks::zookeeper` is another, which also uses the hooks a
/// leader offers (requests answered without the log, commands of its own).
pub trait Machine: Clone + std::fmt::Debug + Default + PartialEq + Eq + std::hash::Hash + Serialize + 'static {
    /// What an entry carries: a client's operation with its session, or a command the
    /// leader proposed itself.
    type Command: Clone + std::fmt::Debug + PartialEq + Eq + std::hash::Hash + Serialize + 'static;
    /// What a client's request carries.
    type Op: Clone + std::fmt::Debug + PartialEq + Eq + std::hash::Hash + Serialize + 'static;
    /// What a client is answered.
    type Answer: Clone + std::fmt::Debug + PartialEq + Eq + std::hash::Hash + Serialize + 'static;
    /// The message type of the process the server runs in (Raft's own, or one that
    /// carries Raft's messages among others).
    type Wire: Data;
    /// The observation type of that process.
    type Obs: Data;
    /// What a leader keeps for the machine while it leads (not replicated, not durable).
    type Leader: Default;

    fn wrap(msg: Msg<Self>) -> Self::Wire;
    fn wrap_obs(obs: RaftObs) -> Self::Obs;
    /// The command for a client's operation `seq` of session `client`.
    fn command(client: u64, seq: u64, op: Self::Op) -> Self::Command;
    /// The session and sequence number a command answers (`None`: the leader's own).
    fn session(command: &Self::Command) -> Option<(u64, u64)>;
    /// Applies the command committed at `index`; returns the answer for its client, and
    /// puts messages the machine sends on its own (a watch firing) in `pushes` (sent by
    /// the leader only).
    fn apply(
        &mut self,
        command: &Self::Command,
        index: u64,
        pushes: &mut Vec<(NodeId, Self::Wire)>,
    ) -> Option<Self::Answer>;
    /// The answer already recorded for this session's command, if it was applied.
    fn cached(&self, client: u64, seq: u64) -> Option<Self::Answer>;
    /// The answer of a server that is not the leader.
    fn not_leader(hint: Option<NodeId>) -> Self::Answer;
    fn encode(&self, out: &mut Writer);
    fn decode(reader: &mut Reader<'_>) -> Option<Self>;
    fn encode_command(command: &Self::Command, out: &mut Writer);
    fn decode_command(reader: &mut Reader<'_>) -> Option<Self::Command>;

    /// A request the leader answers from its applied state without the log (a session
    /// heartbeat); `None` sends it through the log.
    fn answer_directly(
        &self,
        _leader: &mut Self::Leader,
        _now_ns: u64,
        _client: u64,
        _op: &Self::Op,
    ) -> Option<Self::Answer> {
        None
    }
    /// Called when the server becomes leader (its log may hold uncommitted entries).
    fn on_elected(&self, _leader: &mut Self::Leader, _now_ns: u64) {}
    /// Commands the leader proposes of its own accord, asked at every heartbeat.
    fn leader_tick(&self, _leader: &mut Self::Leader, _now_ns: u64) -> Vec<Self::Command> {
        Vec::new()
    }
}

impl Machine for KvStore {
    type Command = KvCommand;
    type Op = KvOp;
    type Answer = Answer;
    type Wire = Msg<KvStore>;
    type Obs = RaftObs;
    type Leader = ();

    fn wrap(msg: Msg<KvStore>) -> Msg<KvStore> {
        msg
    }

    fn wrap_obs(obs: RaftObs) -> RaftObs {
        obs
    }

    fn command(client: u64, seq: u64, op: KvOp) -> KvCommand {
        KvCommand { client, seq, op }
    }

    fn session(command: &KvCommand) -> Option<(u64, u64)> {
        Some((command.client, command.seq))
    }

    fn apply(&mut self, command: &KvCommand, _index: u64, _pushes: &mut Vec<(NodeId, Msg<KvStore>)>) -> Option<Answer> {
        KvStore::apply(self, command).map(Answer::Result)
    }

    fn cached(&self, client: u64, seq: u64) -> Option<Answer> {
        KvStore::cached(self, client, seq).cloned().map(Answer::Result)
    }

    fn not_leader(hint: Option<NodeId>) -> Answer {
        Answer::NotLeader { hint }
    }

    fn encode(&self, out: &mut Writer) {
        KvStore::encode(self, out)
    }

    fn decode(reader: &mut Reader<'_>) -> Option<KvStore> {
        KvStore::decode(reader)
    }

    fn encode_command(command: &KvCommand, out: &mut Writer) {
        command.encode(out)
    }

    fn decode_command(reader: &mut Reader<'_>) -> Option<KvCommand> {
        KvCommand::decode(reader)
    }
}

/// A log entry.
#[derive(Clone, Debug, Serialize)]
pub struct Entry<M: Machine = KvStore> {
    pub term: u64,
    pub command: Command<M>,
    /// A hash of term and command, computed once: logs, invariants and the fingerprint
    /// of every message that carries the entry use it instead of rehashing the command.
    #[serde(skip)]
    digest: u64,
}

impl<M: Machine> Entry<M> {
    pub fn new(term: u64, command: Command<M>) -> Entry<M> {
        let digest = sim_core::fingerprint::hash_value(&(term, &command));
        Entry { term, command, digest }
    }

    pub fn digest(&self) -> u64 {
        self.digest
    }
}

impl<M: Machine> PartialEq for Entry<M> {
    fn eq(&self, other: &Entry<M>) -> bool {
        self.term == other.term && self.command == other.command
    }
}

impl<M: Machine> Eq for Entry<M> {}

impl<M: Machine> std::hash::Hash for Entry<M> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
    }
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Command<M: Machine = KvStore> {
    /// Appended by a new leader to commit earlier entries.
    Noop,
    /// A command of the state machine (`Kv` for the key-value store).
    Kv(M::Command),
}

/// A snapshot: the state machine after applying entries `1..=last_index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Snapshot<M: Machine = KvStore> {
    pub last_index: u64,
    pub last_term: u64,
    /// The prefix hash of the entries it covers (see [`log::Log::prefix_hash`]): stored
    /// with it, so that the invariants can check a snapshot against the committed log.
    pub prefix_hash: u64,
    pub store: M,
}

/// The prefix hash stands for the entries the state machine was built from, so a
/// message carrying a snapshot hashes that instead of the whole store.
impl<M: Machine> std::hash::Hash for Snapshot<M> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.last_index, self.last_term, self.prefix_hash).hash(state);
    }
}

/// How a server came to hold a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotSource {
    /// It took one of its own state machine.
    Taken,
    /// Its leader sent it (InstallSnapshot).
    Installed,
    /// It read its own back from storage after a restart.
    Restored,
}

/// The answer to a client request (the shared KV client's).
pub use crate::kv_client::Answer;

/// Raft's messages, and the client protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Msg<M: Machine = KvStore> {
    RequestVote {
        term: u64,
        last_log_index: u64,
        last_log_term: u64,
    },
    RequestVoteReply {
        term: u64,
        granted: bool,
    },
    /// Would the sender win an election for `term`? Changes nothing at the receiver.
    /// `round` numbers the sender's pre-vote rounds, so that an answer delayed past the
    /// round it answers is not counted in a later one.
    PreVote {
        term: u64,
        last_log_index: u64,
        last_log_term: u64,
        round: u64,
    },
    /// The receiver's answer, with its own current term and the round it answers.
    PreVoteReply {
        term: u64,
        granted: bool,
        round: u64,
    },
    /// Entries are shared with the sender's log (`Rc`): a message carries them without a
    /// deep copy per follower.
    AppendEntries {
        term: u64,
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<Rc<Entry<M>>>,
        leader_commit: u64,
    },
    AppendEntriesReply(AppendReply),
    /// The leader's snapshot, to a follower that needs entries the leader has compacted
    /// (sent whole; shared with the sender like entries are). Answered with an
    /// `AppendEntriesReply` whose `match_index` is the snapshot's last index.
    InstallSnapshot {
        term: u64,
        snapshot: Rc<Snapshot<M>>,
    },
    /// A client's request; `attempt` numbers its sends of one operation, so that a
    /// redirect answers one send only (a duplicated redirect must not fork the client's
    /// retries).
    Request {
        client: u64,
        seq: u64,
        attempt: u64,
        op: M::Op,
    },
    Reply {
        seq: u64,
        attempt: u64,
        answer: M::Answer,
    },
}

/// A follower's answer to `AppendEntries`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct AppendReply {
    pub term: u64,
    pub success: bool,
    /// On success: the index of the last entry the follower now shares with the leader.
    pub match_index: u64,
    /// On refusal: the `prev_log_index` refused, so the leader can tell a stale or
    /// duplicated refusal from a fresh one.
    pub rejected_prev: u64,
    /// On refusal: where the leader should look next (the first index of the
    /// conflicting term, or just past the follower's log).
    pub conflict_index: u64,
    pub conflict_term: Option<u64>,
}

/// What a Raft node reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum RaftObs {
    Client(ClientObs),
    BecameLeader {
        term: u64,
        last_log_index: u64,
    },
    /// A server stood for election in `term`.
    BecameCandidate {
        term: u64,
    },
    /// A candidate or leader became a follower (of `term`).
    BecameFollower {
        term: u64,
    },
    /// A follower accepted its first `AppendEntries` of a leader's term.
    HeardFromLeader {
        term: u64,
        leader: NodeId,
    },
    /// The entry at `index` (of term `term`) was applied, by a server in `current_term`.
    Applied {
        index: u64,
        term: u64,
        digest: u64,
        current_term: u64,
    },
    /// A server took, installed or restored a snapshot.
    Snapshot {
        last_index: u64,
        last_term: u64,
        prefix_hash: u64,
        source: SnapshotSource,
    },
    /// A server deleted its log from `from_index` on (while leader: `as_leader`).
    Truncated {
        from_index: u64,
        as_leader: bool,
    },
    /// A server wrote its log from `from_index` to its end (and synced it).
    Appended {
        from_index: u64,
    },
    /// A server accepted a message from the leader of `term` (every one; reported only
    /// with pre-vote on, where the judge needs when each server last heard a leader).
    /// Last, so that adding it left every other observation's hash, and so every
    /// earlier fingerprint, as it was.
    LeaderContact {
        term: u64,
        leader: NodeId,
    },
    /// A server started a pre-vote round (with pre-vote on): only answers to this round
    /// count until the next.
    PreVoteStarted {
        round: u64,
    },
}

/// A node of a Raft cluster: a server or a client.
#[allow(clippy::large_enum_variant)] // One value per node: boxing would only add an indirection per event.
pub enum RaftNode {
    Server(Server<KvStore>),
    Client(Client),
}

impl RaftNode {
    /// The node `id` of a cluster: servers first, then clients.
    pub fn new(id: NodeId, settings: &Rc<Settings>) -> RaftNode {
        if id < settings.servers {
            let server =
                ServerSettings { servers: settings.servers, variant: settings.variant, raft: settings.raft.clone() };
            RaftNode::Server(Server::new(id, Rc::new(server)))
        } else {
            let client = crate::kv_client::KvClientSettings {
                servers: (0..settings.servers).collect(),
                first_client: settings.servers,
                clients: settings.clients,
                workload: settings.workload.clone(),
                clients_stop_ns: settings.clients_stop_ns,
                writes_until_ns: settings.writes_until_ns,
            };
            RaftNode::Client(Client::new(id, Rc::new(client)))
        }
    }

    pub fn as_server(&self) -> Option<&Server<KvStore>> {
        match self {
            RaftNode::Server(server) => Some(server),
            RaftNode::Client(_) => None,
        }
    }

    /// As a leading server: appends a put of `key` and sends AppendEntries to every
    /// follower now (`Server::replicate_now`). False for a client or a server not leading.
    pub fn replicate_now(&mut self, ctx: &mut RaftCtx<'_>, key: &str, seq: u64) -> bool {
        match self {
            RaftNode::Server(server) => {
                let op = KvOp::Put { key: key.to_owned(), value: format!("e{seq}") };
                server.replicate_now(ctx, <KvStore as Machine>::command(u64::MAX, seq, op))
            }
            RaftNode::Client(_) => false,
        }
    }
}

type RaftCtx<'a, M = KvStore> = Ctx<'a, <M as Machine>::Wire, <M as Machine>::Obs>;

impl Process for RaftNode {
    type Msg = Msg;
    type Obs = RaftObs;

    fn on_start(&mut self, ctx: &mut RaftCtx<'_>) {
        match self {
            RaftNode::Server(server) => server.on_start(ctx),
            RaftNode::Client(client) => client.on_start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut RaftCtx<'_>, from: NodeId, msg: Msg) {
        match self {
            RaftNode::Server(server) => server.on_message(ctx, from, msg),
            RaftNode::Client(client) => client.on_message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut RaftCtx<'_>, timer: TimerId, tag: u64) {
        match self {
            RaftNode::Server(server) => server.on_timer(ctx, timer, tag),
            RaftNode::Client(client) => client.on_timer(ctx, timer, tag),
        }
    }
}
