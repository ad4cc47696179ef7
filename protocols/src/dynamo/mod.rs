//! `dynamo`: a Dynamo-style eventually consistent key-value store, the AP side of CAP
//! and BASE.
//!
//! Keys live on a consistent-hashing ring: every server owns `vnodes` tokens, and a
//! key's *preference list* is the first N distinct servers met walking the ring
//! clockwise from the key's hash. Any server coordinates any request. A read asks the
//! N home replicas and answers once R have replied, merging what they hold; replicas
//! that answered with less than the merge get it back (*read repair*). A write — a put,
//! or a set add, which the coordinator performs as read-merge-add-write on the client's
//! behalf, as Dynamo's client libraries do for a shopping cart — goes to the N home
//! replicas and is acknowledged once W have synced it.
//!
//! With a *sloppy* quorum, a home replica that has not answered within `fallback_ms` is
//! replaced by the next server on the ring that is not already involved: the stand-in
//! keeps the write durably as a *hint* naming the intended replica and hands it off when
//! that replica answers again, then forgets it. A *strict* quorum never asks stand-ins:
//! without W home replicas it answers "unavailable". Every `anti_entropy_ms` each server
//! compares a Merkle tree (16 leaves of key digests and a root) of the keys it shares
//! with one peer, and the two exchange the keys of the leaves that differ.
//!
//! Concurrent versions are reconciled by *last write wins* on the coordinator's local
//! clock (milliseconds, ties broken by the coordinator's id: a skewed clock silently
//! discards writes) or by *version vectors*: versions no other descends from are kept as
//! siblings and all returned; the reader merges them (a set's union). A server's own
//! vector entry comes from a durable counter, so a restart never reuses a version.
//!
//! Every write a replica accepts is synced before it is acknowledged. The store claims
//! convergence (once the network heals, every version that existed anywhere reaches every
//! home replica) and, with version vectors, that no acknowledged set element is lost;
//! linearizability is measured, not required.

mod node;
pub mod protocol;
pub mod staleness;
pub mod store;

pub use node::{DynamoNode, Server};
pub use protocol::{Dynamo, DynamoSettings};

use serde::{Deserialize, Serialize};
use sim_core::NodeId;

use crate::kv::{ClientObs, KvOp};
use crate::kv_client::Answer;
use store::{Resolution, VClock, Version};

/// Sloppy or strict quorums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quorum {
    /// Stand-ins with hints replace home replicas that do not answer.
    #[default]
    Sloppy,
    /// Only the home replicas count.
    Strict,
}

/// The store's settings (`settings.dynamo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DynamoConfig {
    /// Replicas per key.
    pub n: usize,
    /// Replies a read waits for.
    pub r: usize,
    /// Acknowledgements a write waits for.
    pub w: usize,
    pub quorum: Quorum,
    pub resolution: Resolution,
    /// Tokens per server on the ring.
    pub vnodes: usize,
    /// How long a coordinator waits for a home replica before asking a stand-in (sloppy).
    pub fallback_ms: f64,
    /// How long a coordinator tries before answering "unavailable".
    pub coordinator_timeout_ms: f64,
    /// How often a server tries to hand its hints off.
    pub handoff_ms: f64,
    /// How often a server runs a Merkle-tree exchange with its next peer (0: never).
    pub anti_entropy_ms: f64,
    pub read_repair: bool,
}

impl Default for DynamoConfig {
    fn default() -> Self {
        DynamoConfig {
            n: 3,
            r: 2,
            w: 2,
            quorum: Quorum::Sloppy,
            resolution: Resolution::Lww,
            vnodes: 8,
            fallback_ms: 30.0,
            coordinator_timeout_ms: 120.0,
            handoff_ms: 100.0,
            anti_entropy_ms: 250.0,
            read_repair: true,
        }
    }
}

/// The known bugs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Correct,
    /// Stand-ins acknowledge hinted writes but never hand them off.
    NoHintedHandoff,
    /// Read repair overwrites a replica's versions with the read's merge instead of
    /// merging into them, so a repair that arrives after a newer write erases it.
    ReadRepairOverwritesNewer,
    /// Equal last-write-wins stamps are not ordered: each replica keeps its own.
    LwwTiesKeepLocal,
    /// A coordinator's new version vector takes its own entry from its counter without
    /// descending from its own last version: two writes it coordinates at once get
    /// vectors where the second claims to supersede the first, whose element it never
    /// saw.
    VvWithoutOwnVersion,
}

impl Variant {
    pub fn parse(name: &str) -> Option<Variant> {
        Some(match name {
            "correct" => Variant::Correct,
            "no-hinted-handoff" => Variant::NoHintedHandoff,
            "read-repair-overwrites-newer" => Variant::ReadRepairOverwritesNewer,
            "lww-ties-keep-local" => Variant::LwwTiesKeepLocal,
            "vv-without-own-version" => Variant::VvWithoutOwnVersion,
            _ => return None,
        })
    }
}

/// The messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Msg {
    /// A client's request to any server, which coordinates it.
    Request {
        client: u64,
        seq: u64,
        attempt: u64,
        op: KvOp,
    },
    Reply {
        seq: u64,
        attempt: u64,
        answer: Answer,
    },
    /// Coordinator to replica: what do you hold of `key`?
    Read {
        req: u64,
        key: String,
    },
    ReadReply {
        req: u64,
        key: String,
        versions: Vec<Version>,
    },
    /// Coordinator to replica: merge these versions. `hint` names the home replica a
    /// stand-in keeps them for; `req` 0 is a read repair, which is not acknowledged.
    Write {
        req: u64,
        key: String,
        versions: Vec<Version>,
        hint: Option<NodeId>,
    },
    WriteAck {
        req: u64,
    },
    /// A stand-in hands a hint to its home replica.
    Handoff {
        key: String,
        versions: Vec<Version>,
    },
    HandoffAck {
        key: String,
        digest: u64,
    },
    /// Anti-entropy: the root of the sender's Merkle tree of the keys both hold.
    SyncRoot {
        root: u64,
    },
    SyncLeaves {
        leaves: Vec<u64>,
    },
    /// The initiator's keys in the leaves that differ; the peer answers with its own.
    SyncPush {
        leaves: Vec<u8>,
        data: Vec<(String, Vec<Version>)>,
    },
    SyncPull {
        data: Vec<(String, Vec<Version>)>,
    },
}

impl Msg {
    /// The message's kind, for latency by kind (`network.kinds`): the four legs of
    /// Bailis et al.'s WARS model are `write_request` (W), `write_ack` (A),
    /// `read_request` (R) and `read_response` (S).
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::Request { .. } => "client_request",
            Msg::Reply { .. } => "client_reply",
            Msg::Read { .. } => "read_request",
            Msg::ReadReply { .. } => "read_response",
            Msg::Write { req: 0, .. } => "read_repair",
            Msg::Write { .. } => "write_request",
            Msg::WriteAck { .. } => "write_ack",
            Msg::Handoff { .. } | Msg::HandoffAck { .. } => "handoff",
            Msg::SyncRoot { .. } | Msg::SyncLeaves { .. } | Msg::SyncPush { .. } | Msg::SyncPull { .. } => {
                "anti_entropy"
            }
        }
    }
}

/// The observations.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum DynObs {
    Client(ClientObs),
    /// A replica's versions of `key` after it accepted a write (their clocks).
    Stored {
        key: String,
        clocks: Vec<VClock>,
    },
    /// A stand-in's hint for `intended` after a write, or its deletion (empty).
    Hinted {
        intended: NodeId,
        key: String,
        clocks: Vec<VClock>,
    },
    /// A coordinator answered a get from this many siblings.
    Served {
        key: String,
        siblings: usize,
    },
    /// The staleness experiment's probe: read `read` (its index among the offsets)
    /// returned a version this many versions behind the last committed one.
    Staleness {
        read: usize,
        behind: u64,
    },
    /// The staleness probe's put committed this long after it was sent.
    Committed {
        latency_ns: u64,
    },
}

crate::kv_transport!(
    /// The client side of [`Msg`].
    DynTransport,
    Msg,
    DynObs,
    DynObs::Client
);
