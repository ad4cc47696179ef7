//! A ZooKeeper-like coordination service, and the lock recipe on it.
//!
//! **The service.** Three or five servers replicate a tree of znodes through Raft (the
//! [`crate::raft`] server, generic over its state machine: here [`tree::ZkTree`]). Every
//! write is an entry of the log, and its log index is its *zxid*. A znode has data, a
//! version, the zxid of its creation, and, if it is *ephemeral*, the session that owns
//! it. A *sequential* create appends the parent's counter as a 10-digit suffix
//! (`/lock/c5-3-lock-0000000007`), so names sort in creation order. Operations: create,
//! delete (optionally at a version), exists and getChildren with one-shot watches,
//! getData (with a watch) and setData (at a version).
//!
//! **How this differs from ZooKeeper, and why it does not matter here.** ZooKeeper
//! replicates with Zab, not Raft: Zab's leader election picks the server with the highest
//! (epoch, zxid) and synchronizes the followers before the new epoch begins; Raft's vote
//! restriction and the no-op of a new term give the same two properties the recipe relies
//! on — a total order of writes that every server applies, and no committed write lost
//! by a leader change. ZooKeeper serves reads from the server a client is connected to
//! (possibly stale, unless preceded by `sync`), and keeps watches on that server, which a
//! client re-registers after reconnecting elsewhere. Here reads and watch registrations
//! go through the log like writes, so they are linearizable and any leader holds every
//! watch: a stricter service than ZooKeeper, so every failure the recipe shows here it
//! also has there.
//!
//! **Sessions.** A client opens a session (through the log; its id is the zxid of the
//! open) and sends a heartbeat every third of its timeout. The leader keeps each session's
//! deadline on its own clock, renewed by every request of the session; a new leader gives
//! every session a whole timeout from its election, as ZooKeeper's does. When a deadline
//! passes, the leader proposes the session's expiry; applying it deletes the session's
//! ephemeral nodes (firing their watches) and closes it. A client learns of its expiry
//! only when it next reaches the service (the answer to its heartbeat or request says
//! so): until then it believes its session, and whatever it holds through it, alive.
//!
//! **Watches.** A watch fires once, at the first change after it was set. Its event is
//! queued for the session in the replicated state, pushed to the client at once by the
//! leader, and carried again by every answer to the session until the client acknowledges
//! it (requests carry the number of the last event processed). A client processes the
//! events of an answer before its result, so it always hears of a change before it can
//! read the state that followed it — what ZooKeeper gets from its FIFO connection.
//!
//! **The lock recipe** ([`client`]), as ZooKeeper's documentation gives it: create
//! `/lock/<guid>-lock-` ephemeral and sequential; getChildren of `/lock` without a watch;
//! if our node has the lowest sequence number we hold the lock; otherwise call `exists`
//! with a watch on the node just below ours, and when its event comes (or if it is
//! already gone) list the children again. Release by deleting our node. After a lost
//! create reply the guid finds our node among the children, so no node is left behind.
//! With `fencing` the holder's token is its node's zxid, which the protected storage
//! checks.
//!
//! **Variants**: `herd` (every waiter watches `/lock`'s children, so every change wakes
//! every waiter), `no-guid` (after a lost create reply the client creates another node;
//! the first, still owned by its live session, blocks everyone behind it until the session
//! ends), `fencing` (the fix for a holder paused past its session's expiry).

pub mod client;
pub mod herd;
pub mod protocol;
pub mod tree;

pub use client::ZkLockClient;
pub use tree::ZkTree;

/// The coordination service's and the recipe's settings, as the nodes see them.
#[derive(Clone, Debug)]
pub struct ZkSettings {
    pub session_timeout_ms: u64,
    /// The coordination servers' Raft settings.
    pub raft: std::rc::Rc<crate::raft::ServerSettings>,
}

/// A coordination message's label: Raft's own, or the client operation it carries.
pub fn label(msg: &crate::raft::Msg<ZkTree>) -> Option<String> {
    use crate::raft::Msg;
    use tree::{ZkAnswer, ZkOp};
    Some(match msg {
        Msg::Request { op, .. } => match &op.op {
            ZkOp::Connect { .. } => "connect".to_owned(),
            ZkOp::Ping => "ping".to_owned(),
            ZkOp::Create { path, .. } => format!("create {path}"),
            ZkOp::Delete { path, .. } => format!("delete {path}"),
            ZkOp::Exists { path, watch } => format!("exists {path}{}", if *watch { " +watch" } else { "" }),
            ZkOp::GetChildren { path, watch } => {
                format!("getChildren {path}{}", if *watch { " +watch" } else { "" })
            }
            ZkOp::GetData { path, .. } => format!("getData {path}"),
            ZkOp::SetData { path, .. } => format!("setData {path}"),
            ZkOp::Close => "close".to_owned(),
        },
        Msg::Reply { answer: ZkAnswer::Result { result, .. }, .. } => match result {
            tree::ZkResult::Created { path, .. } => format!("created {path}"),
            tree::ZkResult::Children(children) => format!("{} children", children.len()),
            other => format!("{other:?}"),
        },
        Msg::Reply { answer: ZkAnswer::NotLeader { hint }, .. } => {
            hint.map_or_else(|| "not leader".to_owned(), |h| format!("not leader, try {h}"))
        }
        raft => crate::raft::protocol::raft_label(raft)?,
    })
}
