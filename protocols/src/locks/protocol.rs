//! The Redis locks' entries in the protocol registry: `redis-lock` (one instance) and
//! `redlock` (a majority of N independent instances), their settings, topology and judge.

use std::collections::BTreeMap;
use std::rc::Rc;

use checker::Violation;
use checker::history::{Event, EventType};
use checker::value::Value;
use serde::{Deserialize, Serialize};
use sim_core::{MS, NodeId, Observation, Sim};

use super::db::DbOptions;
use super::{DbSettings, LockMsg, LockNode, LockObs, LockOracle, LockSettings, LockVariant, ZkTree};
use crate::protocol::{
    Cluster, FieldError, HistoryCheck, Judge, NodeInfo, Protocol, RunSpec, Span, Topology, VariantInfo, VariantKind,
};
use crate::raft::server::Role;
use crate::raft::{RaftInvariants, Server as RaftServer};

/// A scenario's `"settings"` for the lock protocols.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocksConfig {
    pub ttl_ms: u64,
    /// Wait before retrying a taken lock, drawn uniformly.
    pub retry_ms: [u64; 2],
    /// Time inside the critical section, drawn uniformly.
    pub work_ms: [u64; 2],
    pub request_timeout_ms: u64,
    /// RedLock's per-instance timeout while acquiring.
    pub redlock_request_timeout_ms: u64,
    /// The server syncs every write (a restart keeps its keys), or keeps them in memory.
    pub persistent: bool,
    /// Servers that keep their keys in memory only, whatever `persistent` says.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volatile_servers: Vec<usize>,
}

impl Default for LocksConfig {
    fn default() -> Self {
        LocksConfig {
            ttl_ms: 100,
            retry_ms: [10, 20],
            work_ms: [10, 30],
            request_timeout_ms: 1_000,
            redlock_request_timeout_ms: 10,
            persistent: true,
            volatile_servers: Vec::new(),
        }
    }
}

/// The single-instance Redis lock (`SET NX PX`).
pub struct RedisLock;

/// RedLock over N independent instances.
pub struct RedLock;

const CORRECT: VariantInfo =
    VariantInfo { name: "correct", doc: "the lock as its authors describe it", kind: VariantKind::Correct };
const UNSAFE_RELEASE: VariantInfo = VariantInfo {
    name: "unsafe-release",
    doc: "release with a plain DEL, deleting a lock someone else now holds",
    kind: VariantKind::Bug,
};

const VALIDITY_FROM_REPLY: VariantInfo = VariantInfo {
    name: "validity-from-reply",
    doc: "the validity counted from when the grant arrived, not from when the client asked: the time the request, the reply (and RedLock's round) took is forgotten",
    kind: VariantKind::Bug,
};

pub(crate) fn validate_locks(settings: &LocksConfig, cluster: Cluster) -> Result<(), FieldError> {
    // An hour bounds every duration: longer ones show nothing new, and near u64::MAX
    // they would overflow the clients' validity arithmetic.
    const HOUR_MS: u64 = 3_600_000;
    if !(1..=HOUR_MS).contains(&settings.ttl_ms) {
        return Err(FieldError::new("ttl_ms", format!("ttl_ms must be 1 to {HOUR_MS}, got {}", settings.ttl_ms)));
    }
    for (name, [min, max]) in [("retry_ms", settings.retry_ms), ("work_ms", settings.work_ms)] {
        if min > max || max > HOUR_MS {
            return Err(FieldError::new(
                name,
                format!("{name} must be [min, max] with min <= max <= {HOUR_MS}, got [{min}, {max}]"),
            ));
        }
    }
    for (name, value) in [
        ("request_timeout_ms", settings.request_timeout_ms),
        ("redlock_request_timeout_ms", settings.redlock_request_timeout_ms),
    ] {
        if !(1..=HOUR_MS).contains(&value) {
            return Err(FieldError::new(name, format!("{name} must be 1 to {HOUR_MS}, got {value}")));
        }
    }
    if let Some(bad) = settings.volatile_servers.iter().find(|s| **s >= cluster.servers) {
        return Err(FieldError::new(
            "volatile_servers",
            format!("volatile_servers names node {bad}, but the servers are nodes 0 to {}", cluster.servers - 1),
        ));
    }
    Ok(())
}

/// Servers `0..servers` (Redis instances, the database), the protected storage, then the
/// clients.
fn lock_topology(cluster: Cluster, server_word: &str) -> Topology {
    let servers = cluster.servers;
    let mut nodes: Vec<NodeInfo> =
        (0..servers).map(|n| NodeInfo { kind: "server".into(), label: format!("{server_word} {n}") }).collect();
    nodes.push(NodeInfo { kind: "storage".into(), label: format!("storage {servers}") });
    let first_client = servers + 1;
    nodes.extend(
        (0..cluster.clients).map(|c| NodeInfo { kind: "client".into(), label: format!("client {}", first_client + c) }),
    );
    Topology {
        nodes,
        servers: (0..servers).collect(),
        clients: (first_client..first_client + cluster.clients).collect(),
        // A client that holds the lock; a client in the middle of an acquisition.
        target_roles: vec!["acquiring".into(), "holder".into()],
    }
}

fn build_locks(
    settings: &LocksConfig,
    run: &RunSpec<'_>,
    redlock: bool,
    db: Option<DbSettings>,
) -> (Box<dyn FnMut(NodeId) -> LockNode>, LockJudge) {
    let variant = match run.variant {
        "setnx-then-expire" => LockVariant::SetnxThenExpire,
        "unsafe-release" => LockVariant::UnsafeRelease,
        "fencing" => LockVariant::Fencing,
        "validity-from-reply" => LockVariant::ValidityFromReply,
        _ => LockVariant::Correct,
    };
    let storage = run.cluster.servers;
    let shared = Rc::new(LockSettings {
        servers: (0..run.cluster.servers).collect(),
        redlock,
        redlock_request_timeout_ms: settings.redlock_request_timeout_ms,
        storage,
        variant,
        persistent: settings.persistent,
        volatile_servers: settings.volatile_servers.clone(),
        ttl_ms: settings.ttl_ms,
        retry_ms: settings.retry_ms,
        work_ms: settings.work_ms,
        request_timeout_ms: settings.request_timeout_ms,
        db: db.clone(),
        zk: None,
    });
    // A grant is the key on one server, or on a majority of RedLock's instances at once.
    let quorum = run.cluster.servers / 2 + 1;
    let judge = LockJudge::new(variant == LockVariant::Fencing, Some(quorum), run, settings.ttl_ms, db.is_some());
    (Box::new(move |id| LockNode::new(id, &shared)), judge)
}

/// Labels of the lock protocols' messages, as their Redis commands read.
pub(crate) fn lock_label(msg: &LockMsg) -> Option<String> {
    Some(match msg {
        LockMsg::SetNxPx { key, ttl_ms, .. } => format!("SET {key} NX PX {ttl_ms}"),
        LockMsg::SetNxPxFence { key, ttl_ms, .. } => format!("SET {key} NX PX {ttl_ms} +INCR"),
        LockMsg::SetNx { key, .. } => format!("SETNX {key}"),
        LockMsg::Expire { key, ttl_ms, .. } => format!("EXPIRE {key} {ttl_ms}"),
        LockMsg::DelIfEquals { key, .. } => format!("DEL {key} if mine"),
        LockMsg::Del { key, .. } => format!("DEL {key}"),
        LockMsg::Incr { key, .. } => format!("INCR {key}"),
        LockMsg::Get { key, .. } => format!("GET {key}"),
        LockMsg::Reply { reply, .. } => format!("{reply:?}"),
        LockMsg::Read { fence, .. } => fence.map_or_else(|| "read".to_owned(), |f| format!("read f{f}")),
        LockMsg::Write { fence, value, .. } => {
            fence.map_or_else(|| format!("write {value}"), |f| format!("write {value} f{f}"))
        }
        LockMsg::StorageAnswer { reply, .. } => format!("{reply:?}"),
        LockMsg::Insert { key, owner, .. } => format!("INSERT {key} ({owner})"),
        LockMsg::DeleteOwned { key, owner, .. } => format!("DELETE {key} ({owner})"),
        LockMsg::Zk(msg) => super::zookeeper::label(msg)?,
        LockMsg::ZkEvents { events, .. } => {
            let last = events.last()?;
            format!("event {:?} {}", last.kind, last.path)
        }
    })
}

impl Protocol for RedisLock {
    const NAME: &'static str = "redis-lock";
    const DESCRIPTION: &'static str = "a lock on one Redis instance: SET NX PX, expiry, optional fencing";
    const VARIANTS: &'static [VariantInfo] = &[
        CORRECT,
        VariantInfo {
            name: "setnx-then-expire",
            doc: "acquire with SETNX then EXPIRE: a crash between leaves a key that never expires",
            kind: VariantKind::Bug,
        },
        UNSAFE_RELEASE,
        VALIDITY_FROM_REPLY,
        VariantInfo {
            name: "fencing",
            doc: "fencing tokens handed out with the grant and checked by the protected storage",
            kind: VariantKind::Option,
        },
    ];
    const SCENARIOS: &'static [(&'static str, &'static str)] = &[
        ("redis-lock", include_str!("scenarios/redis-lock.json")),
        ("redis-lock-hostile", include_str!("scenarios/redis-lock-hostile.json")),
        ("redis-lock-gc-pause", include_str!("scenarios/redis-lock-gc-pause.json")),
        ("redis-lock-near-ttl", include_str!("scenarios/redis-lock-near-ttl.json")),
        ("redis-lock-drift-at-limit", include_str!("scenarios/redis-lock-drift-at-limit.json")),
    ];

    type Settings = LocksConfig;
    type Node = LockNode;
    type Judge = LockJudge;

    fn validate(settings: &LocksConfig, cluster: Cluster, _variant: &str) -> Result<(), FieldError> {
        if cluster.servers != 1 {
            return Err(FieldError::new(
                "cluster.servers",
                format!("redis-lock uses one server, got cluster.servers = {}", cluster.servers),
            ));
        }
        validate_locks(settings, cluster)
    }

    fn topology(_settings: &LocksConfig, cluster: Cluster) -> Topology {
        lock_topology(cluster, "redis")
    }

    fn build(settings: &LocksConfig, run: &RunSpec<'_>) -> (Box<dyn FnMut(NodeId) -> LockNode>, LockJudge) {
        build_locks(settings, run, false, None)
    }

    fn message_label(msg: &LockMsg) -> Option<String> {
        lock_label(msg)
    }
}

impl Protocol for RedLock {
    const NAME: &'static str = "redlock";
    const DESCRIPTION: &'static str = "RedLock: SET NX PX on a majority of N independent Redis instances";
    // RedLock hands out no fencing tokens, by design: no `fencing` variant.
    const VARIANTS: &'static [VariantInfo] = &[CORRECT, UNSAFE_RELEASE, VALIDITY_FROM_REPLY];
    const SCENARIOS: &'static [(&'static str, &'static str)] = &[
        ("redlock", include_str!("scenarios/redlock.json")),
        ("redlock-hostile", include_str!("scenarios/redlock-hostile.json")),
        ("redlock-near-ttl", include_str!("scenarios/redlock-near-ttl.json")),
        ("redlock-gc-pause", include_str!("scenarios/redlock-gc-pause.json")),
        ("redlock-pause-in-acquisition", include_str!("scenarios/redlock-pause-in-acquisition.json")),
        ("redlock-clock-jump", include_str!("scenarios/redlock-clock-jump.json")),
        ("redlock-restart-no-persistence", include_str!("scenarios/redlock-restart-no-persistence.json")),
        ("redlock-delayed-restart", include_str!("scenarios/redlock-delayed-restart.json")),
    ];

    type Settings = LocksConfig;
    type Node = LockNode;
    type Judge = LockJudge;

    fn validate(settings: &LocksConfig, cluster: Cluster, variant: &str) -> Result<(), FieldError> {
        if variant == "fencing" {
            return Err(FieldError::new(
                "variant",
                "redlock has no fencing variant: RedLock hands out no fencing tokens, by design",
            ));
        }
        validate_locks(settings, cluster)
    }

    fn topology(_settings: &LocksConfig, cluster: Cluster) -> Topology {
        lock_topology(cluster, "redis")
    }

    fn build(settings: &LocksConfig, run: &RunSpec<'_>) -> (Box<dyn FnMut(NodeId) -> LockNode>, LockJudge) {
        build_locks(settings, run, true, None)
    }

    fn message_label(msg: &LockMsg) -> Option<String> {
        lock_label(msg)
    }
}

/// The locks' judge: mutual exclusion and unsafe access in true time, and after the heal
/// every client acquiring within the bound.
pub struct LockJudge {
    oracle: LockOracle,
    clients: Vec<NodeId>,
    /// When the faults really ended: liveness counts from here.
    quiet_ns: u64,
    bound_ns: Option<u64>,
    /// Whether to keep the spans reports draw.
    lanes: bool,
    first_acquired_after_faults: BTreeMap<NodeId, u64>,
    /// Each acquisition's wait (ns) and attempts.
    acquisitions: Vec<(u64, u64)>,
    /// Starts of each client, for its history process: an acquisition cut off by a crash
    /// stays indeterminate, and the restarted client is a new process.
    incarnations: BTreeMap<NodeId, u64>,
    ttl_ns: u64,
    /// Open spans for the report: a client's belief (from, its validity end in global
    /// time as its clock ran then, token), a server's grant (from, token).
    beliefs: BTreeMap<NodeId, (u64, u64, String)>,
    grants: BTreeMap<NodeId, (u64, String)>,
    spans: Vec<Span>,
    /// The database lock's figures.
    db: bool,
    inserts_refused: u64,
    reentries: u64,
    reentry_failures: u64,
    sweeps: u64,
    /// Accesses the storage refused for a stale fencing token.
    refused: u64,
    /// Critical sections a client stopped because its validity had run out (the
    /// ZooKeeper lock: because its session expired).
    abandoned: u64,
    /// Clients that believe they hold the lock now (the `holder` a fault can aim at).
    holders: BTreeMap<NodeId, String>,
    /// Critical sections completed after the faults, per client.
    done_after_faults: BTreeMap<NodeId, u64>,
    /// The ZooKeeper lock's invariants and figures.
    zk: Option<ZkJudging>,
    /// Clients trying to acquire now; while some are and nobody holds the lock, the lock
    /// is stuck. Stuck periods: since when, the longest and the total so far (ns).
    waiting: std::collections::BTreeSet<NodeId>,
    stuck_since: Option<u64>,
    stuck_longest_ns: u64,
    stuck_total_ns: u64,
    last_ns: u64,
}

/// What the judge keeps of a ZooKeeper lock run.
#[derive(Default)]
struct ZkJudging {
    servers: usize,
    raft: RaftInvariants,
    woken: u64,
    woken_by_release: u64,
    releases: u64,
    /// The clients each change woke, by its zxid.
    woken_by: BTreeMap<u64, std::collections::BTreeSet<NodeId>>,
}

/// What blocks a ZooKeeper lock: the lowest lock node, whose session owns it, and what
/// that session's client is doing.
fn zk_blocker(sim: &Sim<LockNode>, servers: usize) -> String {
    use super::zookeeper::client::{LOCK_DIR, sequence};
    let Some(tree) = (0..servers).filter_map(|n| zk_server(sim, servers, n)).max_by_key(|s| s.last_applied()) else {
        return String::new();
    };
    let tree = tree.store();
    let mut children = tree.children(LOCK_DIR);
    children.sort_by_key(|c| sequence(c));
    let Some(lowest) = children.first() else {
        return ": no lock node is left".to_owned();
    };
    let path = format!("{LOCK_DIR}/{lowest}");
    let owner = tree.node(&path).and_then(|(_, stat)| stat.ephemeral_owner);
    let client = owner.and_then(|o| tree.live_sessions().find(|(id, _)| *id == o).map(|(_, node)| node));
    let (Some(owner), Some(client)) = (owner, client) else {
        return format!(": the lowest lock node {path} has no live owner");
    };
    let doing = match sim.process(client) {
        Some(LockNode::ZkClient(c)) if c.my_node() == Some(path.as_str()) => "holds it".to_owned(),
        Some(LockNode::ZkClient(c)) => format!(
            "does not know it: its own node is {}; an orphan left by a create whose reply was lost, which nothing deletes while the session lives",
            c.my_node().unwrap_or("none")
        ),
        _ => "is down".to_owned(),
    };
    format!(
        ": the lowest lock node {path} ({} waiting behind it) belongs to session {owner} of client {client}, which {doing}",
        children.len() - 1
    )
}

fn zk_server(sim: &Sim<LockNode>, servers: usize, node: NodeId) -> Option<&RaftServer<ZkTree>> {
    match sim.process(node) {
        Some(LockNode::ZkServer(server)) if node < servers => Some(server),
        _ => None,
    }
}

impl LockJudge {
    /// A judge for clients after the servers and the storage (`quorum`: how many servers'
    /// keys make a grant; none when the servers report no key states).
    pub(crate) fn new(fencing: bool, quorum: Option<usize>, run: &RunSpec<'_>, ttl_ms: u64, db: bool) -> LockJudge {
        let storage = run.cluster.servers;
        LockJudge {
            oracle: LockOracle::new(fencing, quorum),
            clients: (storage + 1..=storage + run.cluster.clients).collect(),
            quiet_ns: run.quiet_ns,
            lanes: run.lanes,
            bound_ns: run.op_within_ns,
            first_acquired_after_faults: BTreeMap::new(),
            acquisitions: Vec::new(),
            incarnations: BTreeMap::new(),
            ttl_ns: ttl_ms.saturating_mul(MS),
            beliefs: BTreeMap::new(),
            grants: BTreeMap::new(),
            spans: Vec::new(),
            db,
            inserts_refused: 0,
            reentries: 0,
            reentry_failures: 0,
            sweeps: 0,
            refused: 0,
            abandoned: 0,
            holders: BTreeMap::new(),
            done_after_faults: BTreeMap::new(),
            zk: None,
            waiting: std::collections::BTreeSet::new(),
            stuck_since: None,
            stuck_longest_ns: 0,
            stuck_total_ns: 0,
            last_ns: 0,
        }
    }

    /// The ZooKeeper lock's judge: Raft's invariants on the coordination servers too.
    pub(crate) fn with_zookeeper(mut self, servers: usize) -> LockJudge {
        self.zk = Some(ZkJudging { servers, raft: RaftInvariants::default(), ..ZkJudging::default() });
        self
    }

    fn process(&self, node: NodeId) -> u64 {
        node as u64 + 1_000 * self.incarnations.get(&node).copied().unwrap_or(0)
    }

    /// A client's belief from `from_ns`, ended at `t_ns` or when its validity ran out.
    fn belief_span(node: NodeId, (from_ns, until_ns, token): &(u64, u64, String), t_ns: u64) -> Span {
        let to_ns = t_ns.min(*until_ns).max(*from_ns);
        Span { node, from_ns: *from_ns, to_ns, label: format!("holds {token}"), exclusive: true }
    }

    /// A server's grant from `from_ns`, ended at `t_ns` or when its ttl ran out.
    fn grant_span(&self, node: NodeId, (from_ns, token): &(u64, String), t_ns: u64) -> Span {
        let to_ns = t_ns.min(from_ns.saturating_add(self.ttl_ns)).max(*from_ns);
        Span { node, from_ns: *from_ns, to_ns, label: format!("granted to {token}"), exclusive: false }
    }

    /// Stuck periods: some client is trying to acquire and nobody holds the lock.
    fn track_stuck(&mut self, observation: &Observation<LockObs>) {
        let (t_ns, node) = (observation.t_ns, observation.node);
        match &observation.obs {
            LockObs::Acquiring => {
                self.waiting.insert(node);
            }
            LockObs::Acquired { .. } | LockObs::ClientStarted => {
                self.waiting.remove(&node);
            }
            _ => {}
        }
        let stuck = !self.waiting.is_empty() && self.holders.is_empty();
        match (stuck, self.stuck_since) {
            (true, None) => self.stuck_since = Some(t_ns),
            (false, Some(since)) => {
                let length = t_ns - since;
                self.stuck_since = None;
                self.stuck_total_ns += length;
                self.stuck_longest_ns = self.stuck_longest_ns.max(length);
            }
            _ => {}
        }
    }

    fn close_belief(&mut self, node: NodeId, t_ns: u64) {
        if let Some(belief) = self.beliefs.remove(&node) {
            self.spans.push(Self::belief_span(node, &belief, t_ns));
        }
    }

    fn close_grant(&mut self, node: NodeId, t_ns: u64) {
        if let Some(grant) = self.grants.remove(&node) {
            let span = self.grant_span(node, &grant, t_ns);
            self.spans.push(span);
        }
    }

    /// Keeps the report's spans up to date with one observation.
    fn track_spans(&mut self, observation: &Observation<LockObs>, sim: &Sim<LockNode>) {
        let (t_ns, node) = (observation.t_ns, observation.node);
        match &observation.obs {
            LockObs::Acquired { token, valid_until_local_ns, .. } => {
                self.close_belief(node, t_ns);
                let left_ns = valid_until_local_ns.saturating_sub(sim.local_time_ns(node));
                self.beliefs.insert(node, (t_ns, t_ns.saturating_add(left_ns), token.clone()));
            }
            LockObs::Released { .. } | LockObs::Abandoned { .. } | LockObs::ClientStarted => {
                self.close_belief(node, t_ns)
            }
            LockObs::Granted { value, .. } => {
                // A new grant means the key the last one set is gone.
                self.close_grant(node, t_ns);
                self.grants.insert(node, (t_ns, value.clone()));
            }
            _ => {}
        }
    }
}

impl Judge<LockNode> for LockJudge {
    fn observe(&mut self, observation: &Observation<LockObs>, sim: &Sim<LockNode>) -> Option<Violation> {
        self.last_ns = observation.t_ns;
        if let Some(zk) = self.zk.as_mut() {
            match &observation.obs {
                LockObs::Raft(obs) => {
                    let servers = zk.servers;
                    let raft = Observation { t_ns: observation.t_ns, node: observation.node, obs: obs.clone() };
                    return zk.raft.observe(&raft, &|n| zk_server(sim, servers, n), servers);
                }
                LockObs::Woken { by_release, zxid } => {
                    zk.woken += 1;
                    zk.woken_by_release += u64::from(*by_release);
                    // The recipe's promise: a release wakes the one client watching the
                    // deleted node, not every waiter.
                    let woken = zk.woken_by.entry(*zxid).or_default();
                    woken.insert(observation.node);
                    if *by_release && woken.len() == 2 {
                        let clients: Vec<String> = woken.iter().map(|c| c.to_string()).collect();
                        let message = format!(
                            "the deletion at zxid {zxid} woke clients {} (the herd effect: a release must wake only the client watching the deleted node)",
                            clients.join(" and ")
                        );
                        return Some(Violation::new("herd-effect", message, observation.t_ns, Some(observation.node)));
                    }
                }
                LockObs::Released { .. } => zk.releases += 1,
                _ => {}
            }
        }
        if let LockObs::Acquired { waited_ns, attempts, .. } = observation.obs {
            self.acquisitions.push((waited_ns, attempts));
            if observation.t_ns >= self.quiet_ns {
                self.first_acquired_after_faults.entry(observation.node).or_insert(observation.t_ns);
            }
        }
        match observation.obs {
            LockObs::ClientStarted => *self.incarnations.entry(observation.node).or_insert(0) += 1,
            LockObs::InsertRefused => self.inserts_refused += 1,
            LockObs::Reentered { .. } => self.reentries += 1,
            LockObs::ReentryFailed { .. } => self.reentry_failures += 1,
            LockObs::Swept { .. } => self.sweeps += 1,
            LockObs::Refused { .. } => self.refused += 1,
            LockObs::Abandoned { .. } => self.abandoned += 1,
            _ => {}
        }
        match &observation.obs {
            LockObs::Acquired { token, .. } => {
                self.holders.insert(observation.node, token.clone());
            }
            LockObs::Released { .. } | LockObs::Abandoned { .. } | LockObs::ClientStarted => {
                self.holders.remove(&observation.node);
            }
            LockObs::CriticalSectionDone { .. } if observation.t_ns >= self.quiet_ns => {
                *self.done_after_faults.entry(observation.node).or_insert(0) += 1;
            }
            _ => {}
        }
        self.track_stuck(observation);
        if self.lanes {
            self.track_spans(observation, sim);
        }
        self.oracle.observe(observation, &|node| sim.local_time_ns(node))
    }

    /// Acquisitions (from the first attempt to the grant) and releases, as the clients'
    /// operations: they appear in reports and in `--history`.
    fn client_events(&self, observation: &Observation<LockObs>, out: &mut Vec<Event>) {
        let event = |kind, f: &str, value| Event {
            process: Some(self.process(observation.node)),
            kind,
            f: f.to_owned(),
            key: None,
            value,
            time_ns: Some(observation.t_ns),
            line: 0,
            column: 0,
        };
        match &observation.obs {
            LockObs::Acquiring => out.push(event(EventType::Invoke, "acquire", Value::Nil)),
            LockObs::Acquired { token, .. } => out.push(event(EventType::Ok, "acquire", Value::Str(token.clone()))),
            // A release is a message sent, answered by nobody the client waits for: it
            // completes as it starts.
            LockObs::Released { token } => {
                out.push(event(EventType::Invoke, "release", Value::Str(token.clone())));
                out.push(event(EventType::Ok, "release", Value::Str(token.clone())));
            }
            _ => {}
        }
    }

    /// `holder`: a client that believes it holds the lock now; `acquiring`: a client
    /// waiting for a lock server's answer in the middle of an acquisition; `leader`: the
    /// coordination service's leader (the ZooKeeper lock).
    fn target(&self, role: &str, sim: &Sim<LockNode>) -> Option<NodeId> {
        match role {
            "holder" => self.holders.keys().next().copied(),
            "acquiring" => self
                .clients
                .iter()
                .copied()
                .find(|c| matches!(sim.process(*c), Some(LockNode::Client(client)) if client.acquiring())),
            "leader" => {
                let servers = self.zk.as_ref()?.servers;
                (0..servers).find(|n| zk_server(sim, servers, *n).is_some_and(|s| s.role() == Role::Leader))
            }
            _ => None,
        }
    }

    fn history_check(&self) -> HistoryCheck {
        // A lease-based lock is not a mutex in the linearizability sense: a lock that
        // expired may be granted again without a release, so the mutex model would
        // flag correct runs. The oracles judge the locks in true time instead.
        HistoryCheck::None
    }

    fn spans(&self, sim: &Sim<LockNode>) -> Vec<Span> {
        let now = sim.now_ns();
        let mut spans = self.spans.clone();
        // A belief still held when the run ended (at a violation, say) lasts, as far as
        // its holder knows, until its validity ends.
        spans.extend(self.beliefs.iter().map(|(node, belief)| Self::belief_span(*node, belief, u64::MAX)));
        spans.extend(self.grants.iter().map(|(node, grant)| self.grant_span(*node, grant, now)));
        spans.sort_by_key(|s| (s.from_ns, s.node));
        spans
    }

    /// Liveness after the heal: every client acquires within the bound (a lock that
    /// never expires shows here).
    fn final_check(&mut self, sim: &Sim<LockNode>) -> Option<Violation> {
        // A stuck period still open lasts to the end of the run.
        self.last_ns = self.last_ns.max(sim.now_ns());
        let bound = self.bound_ns?;
        let deadline = self.quiet_ns.saturating_add(bound);
        if sim.now_ns() < deadline {
            return None;
        }
        let starved =
            self.clients.iter().find(|c| self.first_acquired_after_faults.get(c).is_none_or(|t| *t > deadline));
        let Some(starved) = starved else {
            // The database lock also owes progress: a lock whose holders never finish
            // their critical section (a nested call failing against its own row) is stuck.
            let idle = self.clients.iter().find(|c| !self.done_after_faults.contains_key(c)).filter(|_| self.db)?;
            let message = format!(
                "client {idle} completed no critical section after the faults ended (at {:.1} ms), though it \
                 acquired the lock: {} nested acquisitions failed against the caller's own row",
                self.quiet_ns as f64 / 1e6,
                self.reentry_failures
            );
            return Some(Violation::new("liveness", message, deadline, Some(*idle)));
        };
        let mut message = format!(
            "client {starved} did not acquire the lock within {} ms of the end of the faults (at {:.1} ms)",
            bound / MS,
            self.quiet_ns as f64 / 1e6
        );
        if let Some(zk) = &self.zk {
            message.push_str(&zk_blocker(sim, zk.servers));
        }
        // The database lock: say whose row blocks everyone.
        if let Some(LockNode::Database(db)) = sim.process(0)
            && let Some(row) = db.rows().get("lock")
        {
            let believed = self.holders.values().any(|token| *token == row.owner);
            message.push_str(&format!(
                ": the lock row of {} (version {}) is still in the table{}{}",
                row.owner,
                row.version,
                if row.expires_at_ns.is_none() { " and has no expiry" } else { "" },
                if believed {
                    ""
                } else {
                    ", and no client holds it any more (its holder crashed without deleting it)"
                }
            ));
        }
        Some(Violation::new("liveness", message, deadline, Some(*starved)))
    }

    fn metrics(&self) -> BTreeMap<String, f64> {
        let mut waits: Vec<u64> = self.acquisitions.iter().map(|(w, _)| *w).collect();
        waits.sort_unstable();
        let count = waits.len();
        let mean_ms = if count == 0 { 0.0 } else { waits.iter().sum::<u64>() as f64 / count as f64 / 1e6 };
        let p99_ms = waits
            .get(((count as f64 * 0.99).ceil() as usize).clamp(1, count.max(1)) - 1)
            .map_or(0.0, |w| *w as f64 / 1e6);
        let retries: u64 = self.acquisitions.iter().map(|(_, a)| a.saturating_sub(1)).sum();
        BTreeMap::from([
            ("acquisitions".to_owned(), count as f64),
            ("retries".to_owned(), retries as f64),
            ("acquisition_latency_mean_ms".to_owned(), mean_ms),
            ("acquisition_latency_p99_ms".to_owned(), p99_ms),
            ("overlaps_with_fencing".to_owned(), self.oracle.overlaps as f64),
            ("storage_refusals".to_owned(), self.refused as f64),
            ("critical_sections_abandoned".to_owned(), self.abandoned as f64),
            ("stuck_ms_longest".to_owned(), {
                let open = self.stuck_since.map_or(0, |since| self.last_ns - since);
                self.stuck_longest_ns.max(open) as f64 / 1e6
            }),
            ("stuck_ms_total".to_owned(), {
                let open = self.stuck_since.map_or(0, |since| self.last_ns - since);
                (self.stuck_total_ns + open) as f64 / 1e6
            }),
        ])
        .into_iter()
        .chain(self.zk.iter().flat_map(|zk| {
            [
                ("wakeups".to_owned(), zk.woken as f64),
                ("wakeups_by_release".to_owned(), zk.woken_by_release as f64),
                ("releases".to_owned(), zk.releases as f64),
                ("wakeups_per_release".to_owned(), zk.woken_by_release as f64 / zk.releases.max(1) as f64),
                // A ZooKeeper holder abandons only when its session expired.
                ("locks_lost_to_expiry".to_owned(), self.abandoned as f64),
            ]
        }))
        .chain(
            self.db
                .then(|| {
                    [
                        ("inserts_refused".to_owned(), self.inserts_refused as f64),
                        (
                            "inserts_refused_per_acquisition".to_owned(),
                            self.inserts_refused as f64 / count.max(1) as f64,
                        ),
                        ("reentries".to_owned(), self.reentries as f64),
                        ("reentry_failures".to_owned(), self.reentry_failures as f64),
                        ("rows_swept".to_owned(), self.sweeps as f64),
                    ]
                })
                .into_iter()
                .flatten(),
        )
        .collect()
    }
}

/// A scenario's `"settings"` for `db-lock`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DbLockConfig {
    /// With `expiry`: how long a row lives before the sweeper deletes it, and how long a
    /// holder believes it holds the lock.
    pub ttl_ms: u64,
    pub retry_ms: [u64; 2],
    pub work_ms: [u64; 2],
    pub request_timeout_ms: u64,
    /// Rows carry `expires_at` and a sweeper deletes expired ones.
    pub expiry: bool,
    /// How often the sweeper runs.
    pub sweep_ms: u64,
    /// Owner and count columns: the owner's second insert counts up.
    pub reentrant: bool,
    /// The critical section takes the lock again in a nested call before it works.
    pub nested_acquire: bool,
    /// How many times a nested call tries before it gives up.
    pub nested_attempts: u64,
}

impl Default for DbLockConfig {
    fn default() -> Self {
        DbLockConfig {
            ttl_ms: 2_000,
            retry_ms: [10, 20],
            work_ms: [10, 30],
            request_timeout_ms: 1_000,
            expiry: false,
            sweep_ms: 100,
            reentrant: false,
            nested_acquire: false,
            nested_attempts: 3,
        }
    }
}

impl DbLockConfig {
    fn as_locks(&self) -> LocksConfig {
        LocksConfig {
            ttl_ms: self.ttl_ms,
            retry_ms: self.retry_ms,
            work_ms: self.work_ms,
            request_timeout_ms: self.request_timeout_ms,
            redlock_request_timeout_ms: 10,
            persistent: true,
            volatile_servers: Vec::new(),
        }
    }
}

/// The database unique-index lock.
pub struct DbLock;

impl Protocol for DbLock {
    const NAME: &'static str = "db-lock";
    const DESCRIPTION: &'static str =
        "a lock row in a database table keyed by the lock name: INSERT to acquire, DELETE to release";
    const VARIANTS: &'static [VariantInfo] = &[
        VariantInfo {
            name: "correct",
            doc: "insert to acquire, delete your own row to release",
            kind: VariantKind::Correct,
        },
        VariantInfo {
            name: "fencing",
            doc: "the row's version (from a durable sequence) is a fencing token the protected storage checks",
            kind: VariantKind::Option,
        },
    ];
    const SCENARIOS: &'static [(&'static str, &'static str)] = &[
        ("db-lock", include_str!("scenarios/db-lock.json")),
        ("db-lock-hostile", include_str!("scenarios/db-lock-hostile.json")),
        ("db-lock-holder-crash", include_str!("scenarios/db-lock-holder-crash.json")),
        ("db-lock-polling", include_str!("scenarios/db-lock-polling.json")),
        ("db-lock-reentry", include_str!("scenarios/db-lock-reentry.json")),
        ("db-lock-expiry-gc-pause", include_str!("scenarios/db-lock-expiry-gc-pause.json")),
    ];

    type Settings = DbLockConfig;
    type Node = LockNode;
    type Judge = LockJudge;

    fn validate(settings: &DbLockConfig, cluster: Cluster, _variant: &str) -> Result<(), FieldError> {
        if cluster.servers != 1 {
            return Err(FieldError::new(
                "cluster.servers",
                format!("db-lock uses one database, got cluster.servers = {}", cluster.servers),
            ));
        }
        if !(1..=3_600_000).contains(&settings.sweep_ms) {
            return Err(FieldError::new(
                "sweep_ms",
                format!("sweep_ms must be 1 to 3600000, got {}", settings.sweep_ms),
            ));
        }
        if !(1..=1_000).contains(&settings.nested_attempts) {
            return Err(FieldError::new(
                "nested_attempts",
                format!("nested_attempts must be 1 to 1000, got {}", settings.nested_attempts),
            ));
        }
        validate_locks(&settings.as_locks(), cluster)
    }

    fn topology(_settings: &DbLockConfig, cluster: Cluster) -> Topology {
        lock_topology(cluster, "database")
    }

    fn build(settings: &DbLockConfig, run: &RunSpec<'_>) -> (Box<dyn FnMut(NodeId) -> LockNode>, LockJudge) {
        let db = DbSettings {
            database: DbOptions {
                expiry_ms: settings.expiry.then_some(settings.ttl_ms),
                sweep_ms: settings.sweep_ms,
                reentrant: settings.reentrant,
            },
            nested_acquire: settings.nested_acquire,
            nested_attempts: settings.nested_attempts,
        };
        build_locks(&settings.as_locks(), run, false, Some(db))
    }

    fn message_label(msg: &LockMsg) -> Option<String> {
        lock_label(msg)
    }
}
