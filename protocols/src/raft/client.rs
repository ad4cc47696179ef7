//! A Raft client: the shared KV client ([`crate::kv_client`]) over Raft's messages.

use super::{Msg, RaftObs};
use crate::kv::{ClientObs, KvOp};
use crate::kv_client::{Answer, KvClient, KvTransport};

/// How Raft's messages carry client requests and replies.
pub struct RaftTransport;

impl KvTransport for RaftTransport {
    type Msg = Msg;
    type Obs = RaftObs;

    fn request(session: u64, seq: u64, attempt: u64, op: KvOp) -> Msg {
        Msg::Request { client: session, seq, attempt, op }
    }

    fn reply(msg: Msg) -> Option<(u64, u64, Answer)> {
        match msg {
            Msg::Reply { seq, attempt, answer } => Some((seq, attempt, answer)),
            _ => None,
        }
    }

    fn observation(obs: ClientObs) -> RaftObs {
        RaftObs::Client(obs)
    }
}

/// A Raft client.
pub type Client = KvClient<RaftTransport>;
