//! The coordination service's state machine: the znode tree, sessions and watches, as
//! Raft replicates them (see the module above for what each part does).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sim_core::{MS, NodeId};

use crate::codec::{Reader, Writer};
use crate::locks::LockMsg;
use crate::raft::{Machine, Msg, RaftObs};

/// A client's request: the operation, and the number of the last watch event the client
/// has processed (so the service can forget the events before it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ZkRequest {
    pub acked: u64,
    pub op: ZkOp,
}

/// The operations of the service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ZkOp {
    /// Open a session; `nonce` names this attempt so that a retry finds the session the
    /// first one opened. `node` is where watch events go.
    Connect {
        nonce: u64,
        node: NodeId,
        timeout_ms: u64,
    },
    /// A heartbeat: answered by the leader without the log.
    Ping,
    Create {
        path: String,
        data: String,
        ephemeral: bool,
        sequential: bool,
    },
    /// Delete, if the node's version is `version` (`None`: any version).
    Delete {
        path: String,
        version: Option<u64>,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetChildren {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: String,
        version: Option<u64>,
    },
    /// Close the session (the client is done).
    Close,
}

/// What an entry of the log carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ZkCommand {
    /// A client's request in its session (`session` is the connect nonce for `Connect`).
    Client { session: u64, seq: u64, request: ZkRequest },
    /// The leader expires a session whose deadline passed.
    Expire { session: u64 },
}

/// A znode's metadata, as `exists` returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stat {
    /// The zxid (log index) of the create.
    pub czxid: u64,
    /// The zxid of the last change to the data.
    pub mzxid: u64,
    pub version: u64,
    /// The session that owns an ephemeral node.
    pub ephemeral_owner: Option<u64>,
}

/// The result of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ZkResult {
    Connected {
        session: u64,
    },
    Pong,
    /// `path` is the name created (with the sequence suffix).
    Created {
        path: String,
        zxid: u64,
    },
    Deleted,
    Stat(Option<Stat>),
    Children(Vec<String>),
    Data {
        data: String,
        stat: Stat,
    },
    NoNode,
    NodeExists,
    BadVersion,
    NotEmpty,
    /// The session is closed: expired by the leader, or closed by its client.
    SessionExpired,
    /// The leader has not yet applied the entry that opened this session: ask again.
    NotReady,
}

/// What a server answers: the result, with the session's watch events not yet
/// acknowledged (a client processes them before the result, so it hears of a change
/// before it can read the state after it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ZkAnswer {
    Result { result: ZkResult, events: Vec<WatchEvent>, zxid: u64 },
    NotLeader { hint: Option<NodeId> },
}

/// What a watch reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    NodeCreated,
    NodeDeleted,
    NodeDataChanged,
    NodeChildrenChanged,
}

/// A watch event, numbered per session.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchEvent {
    pub number: u64,
    pub path: String,
    pub kind: EventKind,
    /// The zxid of the change that fired it.
    pub zxid: u64,
    /// dsim's bookkeeping, not part of ZooKeeper's event: the change was a deletion (for
    /// counting the wake-ups a release causes).
    pub by_delete: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Znode {
    data: String,
    stat: Stat,
    /// The next sequence number for a sequential child.
    next_sequence: u64,
    children: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Session {
    node: NodeId,
    timeout_ms: u64,
    /// The last request applied and its answer (a retry is answered the same).
    last: Option<(u64, ZkResult)>,
    /// Events fired and not yet acknowledged.
    events: Vec<WatchEvent>,
    next_event: u64,
    ephemerals: BTreeSet<String>,
}

/// The replicated state: the tree, the sessions, the watches.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ZkTree {
    nodes: BTreeMap<String, Znode>,
    sessions: BTreeMap<u64, Session>,
    /// Connect nonces and the session each opened.
    connects: BTreeMap<u64, u64>,
    /// Sessions closed (expired or closed by their client), with the zxid of the close.
    closed: BTreeMap<u64, u64>,
    data_watches: BTreeMap<String, BTreeSet<u64>>,
    child_watches: BTreeMap<String, BTreeSet<u64>>,
    /// The zxid of the last entry applied.
    applied: u64,
    /// Sessions expired by the leader (a figure for the judge).
    pub expired: u64,
}

impl Default for ZkTree {
    fn default() -> Self {
        let root = Znode::default();
        ZkTree {
            nodes: BTreeMap::from([("/".to_owned(), root)]),
            sessions: BTreeMap::new(),
            connects: BTreeMap::new(),
            closed: BTreeMap::new(),
            data_watches: BTreeMap::new(),
            child_watches: BTreeMap::new(),
            applied: 0,
            expired: 0,
        }
    }
}

/// The parent of an absolute path (`/a/b` -> `/a`, `/a` -> `/`).
pub fn parent_of(path: &str) -> Option<&str> {
    if path == "/" || !path.starts_with('/') {
        return None;
    }
    let cut = path.rfind('/').expect("absolute");
    Some(if cut == 0 { "/" } else { &path[..cut] })
}

impl ZkTree {
    /// The znode at `path`, if any: its data and stat.
    pub fn node(&self, path: &str) -> Option<(&str, &Stat)> {
        self.nodes.get(path).map(|n| (n.data.as_str(), &n.stat))
    }

    /// The children of `path`, sorted by name.
    pub fn children(&self, path: &str) -> Vec<String> {
        self.nodes.get(path).map(|n| n.children.iter().cloned().collect()).unwrap_or_default()
    }

    /// Sessions open now: id, client node.
    pub fn live_sessions(&self) -> impl Iterator<Item = (u64, NodeId)> + '_ {
        self.sessions.iter().map(|(id, s)| (*id, s.node))
    }

    pub fn is_closed(&self, session: u64) -> bool {
        self.closed.contains_key(&session)
    }

    /// Fires and removes the watches in `watches` on `path` for an event.
    fn fire(
        &mut self,
        watches: WatchTable,
        path: &str,
        kind: EventKind,
        by_delete: bool,
        pushes: &mut Vec<(NodeId, LockMsg)>,
    ) {
        let table = match watches {
            WatchTable::Data => &mut self.data_watches,
            WatchTable::Child => &mut self.child_watches,
        };
        let Some(sessions) = table.remove(path) else {
            return;
        };
        for id in sessions {
            let Some(session) = self.sessions.get_mut(&id) else {
                continue;
            };
            session.next_event += 1;
            let event =
                WatchEvent { number: session.next_event, path: path.to_owned(), kind, zxid: self.applied, by_delete };
            session.events.push(event);
            pushes.push((session.node, LockMsg::ZkEvents { session: id, events: session.events.clone() }));
        }
    }

    fn create(
        &mut self,
        session: u64,
        path: &str,
        data: &str,
        ephemeral: bool,
        sequential: bool,
        pushes: &mut Vec<(NodeId, LockMsg)>,
    ) -> ZkResult {
        let Some(parent) = parent_of(path) else {
            return ZkResult::NoNode;
        };
        let zxid = self.applied;
        let Some(parent_node) = self.nodes.get_mut(parent) else {
            return ZkResult::NoNode;
        };
        if parent_node.stat.ephemeral_owner.is_some() {
            // Ephemeral nodes have no children.
            return ZkResult::NoNode;
        }
        let path = if sequential {
            let sequence = parent_node.next_sequence;
            parent_node.next_sequence += 1;
            format!("{path}{sequence:010}")
        } else {
            path.to_owned()
        };
        if self.nodes.contains_key(&path) {
            return ZkResult::NodeExists;
        }
        let name = path[parent.len() + usize::from(parent != "/")..].to_owned();
        let parent_node = self.nodes.get_mut(parent).expect("checked");
        parent_node.children.insert(name);
        let owner = ephemeral.then_some(session);
        let stat = Stat { czxid: zxid, mzxid: zxid, version: 0, ephemeral_owner: owner };
        self.nodes.insert(path.clone(), Znode { data: data.to_owned(), stat, ..Znode::default() });
        if let Some(s) = owner.and_then(|o| self.sessions.get_mut(&o)) {
            s.ephemerals.insert(path.clone());
        }
        self.fire(WatchTable::Data, &path, EventKind::NodeCreated, false, pushes);
        self.fire(WatchTable::Child, parent, EventKind::NodeChildrenChanged, false, pushes);
        ZkResult::Created { path, zxid }
    }

    fn delete(&mut self, path: &str, version: Option<u64>, pushes: &mut Vec<(NodeId, LockMsg)>) -> ZkResult {
        let Some(node) = self.nodes.get(path) else {
            return ZkResult::NoNode;
        };
        if path == "/" {
            return ZkResult::BadVersion;
        }
        if version.is_some_and(|v| v != node.stat.version) {
            return ZkResult::BadVersion;
        }
        if !node.children.is_empty() {
            return ZkResult::NotEmpty;
        }
        let node = self.nodes.remove(path).expect("checked");
        if let Some(s) = node.stat.ephemeral_owner.and_then(|o| self.sessions.get_mut(&o)) {
            s.ephemerals.remove(path);
        }
        let parent = parent_of(path).expect("not the root");
        let name = &path[parent.len() + usize::from(parent != "/")..];
        if let Some(p) = self.nodes.get_mut(parent) {
            p.children.remove(name);
        }
        self.fire(WatchTable::Data, path, EventKind::NodeDeleted, true, pushes);
        self.fire(WatchTable::Child, path, EventKind::NodeDeleted, true, pushes);
        self.fire(WatchTable::Child, parent, EventKind::NodeChildrenChanged, true, pushes);
        ZkResult::Deleted
    }

    fn watch(&mut self, table: WatchTable, path: &str, session: u64) {
        let table = match table {
            WatchTable::Data => &mut self.data_watches,
            WatchTable::Child => &mut self.child_watches,
        };
        table.entry(path.to_owned()).or_default().insert(session);
    }

    /// Closes a session: its ephemeral nodes are deleted (firing their watches), its
    /// watches forgotten.
    fn close(&mut self, id: u64, pushes: &mut Vec<(NodeId, LockMsg)>) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let ephemerals: Vec<String> = session.ephemerals.iter().cloned().collect();
        for path in ephemerals {
            self.delete(&path, None, pushes);
        }
        self.sessions.remove(&id);
        self.closed.insert(id, self.applied);
        for table in [&mut self.data_watches, &mut self.child_watches] {
            for sessions in table.values_mut() {
                sessions.remove(&id);
            }
            table.retain(|_, s| !s.is_empty());
        }
    }

    fn run(&mut self, session: u64, op: &ZkOp, pushes: &mut Vec<(NodeId, LockMsg)>) -> ZkResult {
        match op {
            ZkOp::Connect { .. } | ZkOp::Ping => ZkResult::Pong,
            ZkOp::Create { path, data, ephemeral, sequential } => {
                self.create(session, path, data, *ephemeral, *sequential, pushes)
            }
            ZkOp::Delete { path, version } => self.delete(path, *version, pushes),
            ZkOp::Exists { path, watch } => {
                if *watch {
                    // A watch is left whether the node exists (for its deletion or
                    // change) or not (for its creation).
                    self.watch(WatchTable::Data, path, session);
                }
                ZkResult::Stat(self.nodes.get(path).map(|n| n.stat.clone()))
            }
            ZkOp::GetChildren { path, watch } => {
                let Some(node) = self.nodes.get(path) else {
                    return ZkResult::NoNode;
                };
                let children = node.children.iter().cloned().collect();
                if *watch {
                    self.watch(WatchTable::Child, path, session);
                }
                ZkResult::Children(children)
            }
            ZkOp::GetData { path, watch } => {
                let Some(node) = self.nodes.get(path) else {
                    return ZkResult::NoNode;
                };
                let result = ZkResult::Data { data: node.data.clone(), stat: node.stat.clone() };
                if *watch {
                    self.watch(WatchTable::Data, path, session);
                }
                result
            }
            ZkOp::SetData { path, data, version } => {
                let zxid = self.applied;
                let Some(node) = self.nodes.get_mut(path) else {
                    return ZkResult::NoNode;
                };
                if version.is_some_and(|v| v != node.stat.version) {
                    return ZkResult::BadVersion;
                }
                node.data = data.clone();
                node.stat.version += 1;
                node.stat.mzxid = zxid;
                let stat = node.stat.clone();
                self.fire(WatchTable::Data, path, EventKind::NodeDataChanged, false, pushes);
                ZkResult::Stat(Some(stat))
            }
            ZkOp::Close => {
                self.close(session, pushes);
                ZkResult::SessionExpired
            }
        }
    }

    /// The answer for `session` now: the result with its unacknowledged events.
    fn answer(&self, session: u64, result: ZkResult) -> ZkAnswer {
        let events = self.sessions.get(&session).map(|s| s.events.clone()).unwrap_or_default();
        ZkAnswer::Result { result, events, zxid: self.applied }
    }
}

#[derive(Clone, Copy)]
enum WatchTable {
    Data,
    Child,
}

/// What the leader keeps while it leads: each session's deadline on its own clock, and
/// the sessions whose expiry it has proposed (and when).
#[derive(Default)]
pub struct ZkLeader {
    deadlines: BTreeMap<u64, u64>,
    expiring: BTreeMap<u64, u64>,
}

impl Machine for ZkTree {
    type Command = ZkCommand;
    type Op = ZkRequest;
    type Answer = ZkAnswer;
    type Wire = LockMsg;
    type Obs = crate::locks::LockObs;
    type Leader = ZkLeader;

    fn wrap(msg: Msg<ZkTree>) -> LockMsg {
        LockMsg::Zk(msg)
    }

    fn wrap_obs(obs: RaftObs) -> crate::locks::LockObs {
        crate::locks::LockObs::Raft(obs)
    }

    fn command(client: u64, seq: u64, request: ZkRequest) -> ZkCommand {
        ZkCommand::Client { session: client, seq, request }
    }

    fn session(command: &ZkCommand) -> Option<(u64, u64)> {
        match command {
            ZkCommand::Client { session, seq, .. } => Some((*session, *seq)),
            ZkCommand::Expire { .. } => None,
        }
    }

    fn apply(&mut self, command: &ZkCommand, index: u64, pushes: &mut Vec<(NodeId, LockMsg)>) -> Option<ZkAnswer> {
        self.applied = index;
        match command {
            ZkCommand::Expire { session } => {
                if self.sessions.contains_key(session) {
                    self.expired += 1;
                    self.close(*session, pushes);
                }
                None
            }
            ZkCommand::Client {
                session: nonce,
                request: ZkRequest { op: ZkOp::Connect { node, timeout_ms, .. }, .. },
                ..
            } => {
                let session = *self.connects.entry(*nonce).or_insert(index);
                if session == index {
                    let fresh = Session {
                        node: *node,
                        timeout_ms: *timeout_ms,
                        last: None,
                        events: Vec::new(),
                        next_event: 0,
                        ephemerals: BTreeSet::new(),
                    };
                    self.sessions.insert(session, fresh);
                }
                if self.closed.contains_key(&session) {
                    return Some(self.answer(session, ZkResult::SessionExpired));
                }
                Some(self.answer(session, ZkResult::Connected { session }))
            }
            ZkCommand::Client { session: id, seq, request } => {
                let Some(session) = self.sessions.get_mut(id) else {
                    return Some(self.answer(*id, ZkResult::SessionExpired));
                };
                session.events.retain(|e| e.number > request.acked);
                match &session.last {
                    Some((last, result)) if last == seq => {
                        let result = result.clone();
                        return Some(self.answer(*id, result));
                    }
                    // An older request than the last applied: its client gave up on it.
                    Some((last, _)) if last > seq => return None,
                    _ => {}
                }
                let result = self.run(*id, &request.op, pushes);
                if let Some(session) = self.sessions.get_mut(id) {
                    session.last = Some((*seq, result.clone()));
                }
                Some(self.answer(*id, result))
            }
        }
    }

    fn cached(&self, client: u64, seq: u64) -> Option<ZkAnswer> {
        if let Some(session) = self.connects.get(&client) {
            // A retried connect: the session it opened.
            let result = if self.closed.contains_key(session) {
                ZkResult::SessionExpired
            } else {
                ZkResult::Connected { session: *session }
            };
            return Some(self.answer(*session, result));
        }
        let (last, result) = self.sessions.get(&client)?.last.as_ref()?;
        (*last == seq).then(|| self.answer(client, result.clone()))
    }

    fn not_leader(hint: Option<NodeId>) -> ZkAnswer {
        ZkAnswer::NotLeader { hint }
    }

    fn encode(&self, out: &mut Writer) {
        out.text(&serde_json::to_string(self).expect("a tree serializes"));
    }

    fn decode(reader: &mut Reader<'_>) -> Option<ZkTree> {
        serde_json::from_str(&reader.text()?).ok()
    }

    fn encode_command(command: &ZkCommand, out: &mut Writer) {
        out.text(&serde_json::to_string(command).expect("a command serializes"));
    }

    fn decode_command(reader: &mut Reader<'_>) -> Option<ZkCommand> {
        serde_json::from_str(&reader.text()?).ok()
    }

    /// Every request renews its session's deadline; a ping is answered here, from the
    /// leader's applied state.
    fn answer_directly(
        &self,
        leader: &mut ZkLeader,
        now_ns: u64,
        client: u64,
        request: &ZkRequest,
    ) -> Option<ZkAnswer> {
        if matches!(request.op, ZkOp::Connect { .. }) {
            return None;
        }
        if let Some(session) = self.sessions.get(&client) {
            leader.deadlines.insert(client, now_ns + session.timeout_ms * MS);
        }
        if request.op != ZkOp::Ping {
            return None;
        }
        let result = if self.sessions.contains_key(&client) {
            ZkResult::Pong
        } else if client > self.applied {
            ZkResult::NotReady
        } else {
            ZkResult::SessionExpired
        };
        Some(self.answer(client, result))
    }

    fn leader_tick(&self, leader: &mut ZkLeader, now_ns: u64) -> Vec<ZkCommand> {
        let mut expire = Vec::new();
        leader.deadlines.retain(|id, _| self.sessions.contains_key(id));
        leader.expiring.retain(|id, _| self.sessions.contains_key(id));
        for (id, session) in &self.sessions {
            // A session this leader has not heard from yet gets a whole timeout from now
            // (as a new ZooKeeper leader gives every session).
            let deadline = *leader.deadlines.entry(*id).or_insert(now_ns + session.timeout_ms * MS);
            let proposed = leader.expiring.get(id).copied();
            // An expiry proposed and not applied after a timeout is proposed again (the
            // entry may have been lost with a leader change).
            if now_ns > deadline && proposed.is_none_or(|at| now_ns > at + session.timeout_ms * MS) {
                leader.expiring.insert(*id, now_ns);
                expire.push(ZkCommand::Expire { session: *id });
            }
        }
        expire
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies commands in order from zxid 1; returns each answer's result and the
    /// events pushed.
    struct Run {
        tree: ZkTree,
        zxid: u64,
        pushes: Vec<(NodeId, LockMsg)>,
    }

    impl Run {
        fn new() -> Run {
            Run { tree: ZkTree::default(), zxid: 0, pushes: Vec::new() }
        }

        fn apply(&mut self, command: ZkCommand) -> Option<ZkAnswer> {
            self.zxid += 1;
            self.tree.apply(&command, self.zxid, &mut self.pushes)
        }

        fn connect(&mut self, node: NodeId) -> u64 {
            let op = ZkOp::Connect { nonce: 1000 + node as u64, node, timeout_ms: 100 };
            let answer = self.apply(ZkCommand::Client { session: 1000 + node as u64, seq: 1, request: req(op) });
            match result(answer) {
                ZkResult::Connected { session } => session,
                other => panic!("{other:?}"),
            }
        }

        fn op(&mut self, session: u64, seq: u64, op: ZkOp) -> ZkResult {
            result(self.apply(ZkCommand::Client { session, seq, request: req(op) }))
        }
    }

    fn req(op: ZkOp) -> ZkRequest {
        ZkRequest { acked: 0, op }
    }

    fn result(answer: Option<ZkAnswer>) -> ZkResult {
        match answer {
            Some(ZkAnswer::Result { result, .. }) => result,
            other => panic!("{other:?}"),
        }
    }

    fn create(path: &str, ephemeral: bool, sequential: bool) -> ZkOp {
        ZkOp::Create { path: path.into(), data: String::new(), ephemeral, sequential }
    }

    #[test]
    fn sequential_nodes_take_the_parents_counter_as_a_ten_digit_suffix() {
        let mut run = Run::new();
        let s = run.connect(7);
        assert_eq!(run.op(s, 2, create("/lock", false, false)), ZkResult::Created { path: "/lock".into(), zxid: 2 });
        assert_eq!(run.op(s, 3, create("/lock", false, false)), ZkResult::NodeExists);
        let first = run.op(
            s,
            4,
            ZkOp::Create { path: "/lock/a-lock-".into(), data: "mine".into(), ephemeral: true, sequential: true },
        );
        assert_eq!(first, ZkResult::Created { path: "/lock/a-lock-0000000000".into(), zxid: 4 });
        let stat = Stat { czxid: 4, mzxid: 4, version: 0, ephemeral_owner: Some(s) };
        assert_eq!(run.tree.node("/lock/a-lock-0000000000"), Some(("mine", &stat)));
        let second = run.op(s, 5, create("/lock/b-lock-", true, true));
        assert_eq!(second, ZkResult::Created { path: "/lock/b-lock-0000000001".into(), zxid: 5 });
        // A retried request is answered the same without being applied again.
        assert_eq!(run.op(s, 5, create("/lock/b-lock-", true, true)), second);
        assert_eq!(run.op(s, 7, create("/missing/x", false, false)), ZkResult::NoNode);
        assert_eq!(run.tree.children("/lock"), vec!["a-lock-0000000000".to_owned(), "b-lock-0000000001".to_owned()]);
        // One older than the last applied was given up by its client: no answer.
        assert_eq!(
            run.apply(ZkCommand::Client { session: s, seq: 5, request: req(create("/lock/c-", true, true)) }),
            None
        );
    }

    #[test]
    fn versions_guard_deletes_and_writes_and_parents_with_children_stay() {
        let mut run = Run::new();
        let s = run.connect(7);
        run.op(s, 2, create("/a", false, false));
        run.op(s, 3, create("/a/b", false, false));
        assert_eq!(run.op(s, 4, ZkOp::Delete { path: "/a".into(), version: None }), ZkResult::NotEmpty);
        let set = ZkOp::SetData { path: "/a/b".into(), data: "x".into(), version: Some(0) };
        assert!(matches!(run.op(s, 5, set.clone()), ZkResult::Stat(Some(Stat { version: 1, .. }))));
        assert_eq!(run.op(s, 6, set), ZkResult::BadVersion);
        assert_eq!(run.op(s, 7, ZkOp::Delete { path: "/a/b".into(), version: Some(0) }), ZkResult::BadVersion);
        assert_eq!(run.op(s, 8, ZkOp::Delete { path: "/a/b".into(), version: Some(1) }), ZkResult::Deleted);
        assert_eq!(run.op(s, 9, ZkOp::Delete { path: "/a/b".into(), version: None }), ZkResult::NoNode);
    }

    #[test]
    fn an_expired_session_loses_its_ephemeral_nodes_and_their_watchers_hear_of_it() {
        let mut run = Run::new();
        let holder = run.connect(4);
        let waiter = run.connect(5);
        run.op(holder, 2, create("/lock", false, false));
        let ZkResult::Created { path, .. } = run.op(holder, 3, create("/lock/h-lock-", true, true)) else {
            panic!("created");
        };
        // Watches fire once: an exists watch on the holder's node, a children watch.
        run.op(waiter, 2, ZkOp::Exists { path: path.clone(), watch: true });
        run.op(waiter, 3, ZkOp::GetChildren { path: "/lock".into(), watch: true });
        run.pushes.clear();
        assert_eq!(run.apply(ZkCommand::Expire { session: holder }), None);
        assert!(run.tree.node(&path).is_none());
        assert!(run.tree.is_closed(holder));
        assert!(!run.tree.is_closed(waiter));
        assert_eq!(run.tree.live_sessions().collect::<Vec<_>>(), vec![(waiter, 5)]);
        assert_eq!(run.tree.expired, 1);
        let kinds: Vec<(String, EventKind, bool)> = match run.pushes.last() {
            Some((5, LockMsg::ZkEvents { session, events })) if *session == waiter => {
                events.iter().map(|e| (e.path.clone(), e.kind, e.by_delete)).collect()
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            kinds,
            vec![(path.clone(), EventKind::NodeDeleted, true), ("/lock".into(), EventKind::NodeChildrenChanged, true)]
        );
        // The holder learns of its expiry at its next request.
        assert_eq!(
            run.op(holder, 4, ZkOp::GetChildren { path: "/lock".into(), watch: false }),
            ZkResult::SessionExpired
        );
        // Events ride on every answer until acknowledged, and the watches were one-shot.
        let answer = run.apply(ZkCommand::Client {
            session: waiter,
            seq: 4,
            request: ZkRequest { acked: 1, op: create("/lock/w-lock-", true, true) },
        });
        match answer {
            Some(ZkAnswer::Result { events, .. }) => assert_eq!(events.len(), 1, "{events:?}"),
            other => panic!("{other:?}"),
        }
        run.pushes.clear();
        run.op(waiter, 5, create("/lock/w2-lock-", true, true));
        assert!(run.pushes.is_empty(), "{:?}", run.pushes);
    }

    #[test]
    fn the_leader_expires_silent_sessions_and_answers_heartbeats_itself() {
        let mut run = Run::new();
        let s = run.connect(4);
        let mut leader = ZkLeader::default();
        let ping = ZkRequest { acked: 0, op: ZkOp::Ping };
        // A new leader gives the session a whole timeout from its first look.
        assert!(run.tree.leader_tick(&mut leader, 0).is_empty());
        assert!(matches!(
            run.tree.answer_directly(&mut leader, 50 * MS, s, &ping),
            Some(ZkAnswer::Result { result: ZkResult::Pong, .. })
        ));
        assert!(run.tree.leader_tick(&mut leader, 149 * MS).is_empty());
        assert_eq!(run.tree.leader_tick(&mut leader, 151 * MS), vec![ZkCommand::Expire { session: s }]);
        // Proposed once, then again only if it has not applied after a whole timeout.
        assert!(run.tree.leader_tick(&mut leader, 200 * MS).is_empty());
        assert_eq!(run.tree.leader_tick(&mut leader, 252 * MS), vec![ZkCommand::Expire { session: s }]);
        run.apply(ZkCommand::Expire { session: s });
        assert!(matches!(
            run.tree.answer_directly(&mut leader, 300 * MS, s, &ping),
            Some(ZkAnswer::Result { result: ZkResult::SessionExpired, .. })
        ));
        // A session the leader has not applied yet is not expired: ask again.
        assert!(matches!(
            run.tree.answer_directly(&mut leader, 300 * MS, 99, &ping),
            Some(ZkAnswer::Result { result: ZkResult::NotReady, .. })
        ));
    }

    #[test]
    fn the_tree_and_its_commands_survive_a_snapshot_and_torn_records_do_not() {
        let mut run = Run::new();
        let s = run.connect(4);
        run.op(s, 2, create("/lock", false, false));
        run.op(s, 3, create("/lock/x-lock-", true, true));
        let mut out = Writer::default();
        run.tree.encode(&mut out);
        assert_eq!(ZkTree::decode(&mut Reader::new(&out.bytes)), Some(run.tree.clone()));
        assert_eq!(ZkTree::decode(&mut Reader::new(&out.bytes[..out.bytes.len() - 1])), None);
        let command = ZkCommand::Expire { session: 3 };
        let mut out = Writer::default();
        ZkTree::encode_command(&command, &mut out);
        assert_eq!(ZkTree::decode_command(&mut Reader::new(&out.bytes)), Some(command));
    }

    #[test]
    fn parents_of_paths() {
        assert_eq!(parent_of("/a/b"), Some("/a"));
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(parent_of("/"), None);
        assert_eq!(parent_of("a"), None);
        assert_eq!(crate::locks::zookeeper::client::sequence("c4-2-lock-0000000012"), 12);
        assert_eq!(crate::locks::zookeeper::client::sequence("junk"), u64::MAX);
    }
}
