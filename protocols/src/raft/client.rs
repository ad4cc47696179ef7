//! A Raft client: the shared KV client ([`crate::kv_client`]) over Raft's messages.

use super::{Msg, RaftObs};
use crate::kv_client::KvClient;

crate::kv_transport!(
    /// How Raft's messages carry client requests and replies.
    RaftTransport,
    Msg,
    RaftObs,
    RaftObs::Client
);

/// A Raft client.
pub type Client = KvClient<RaftTransport>;
