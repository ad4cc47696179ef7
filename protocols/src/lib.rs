//! protocols: the distributed protocols dsim simulates, as sans-I/O state machines.
//!
//! Each protocol is a folder with its messages, node roles, client, invariants and
//! known-bug variants. Nodes act only through sim-core's `Ctx`; facts leave a run as
//! observations, which the protocol's invariant checker judges as the run goes, and
//! client operations leave it as a history that the checker judges at the end.

pub mod codec;
pub mod dynamo;
pub mod example;
pub mod kv;
pub mod kv_client;
pub mod locks;
pub mod multipaxos;
pub mod order_client;
pub mod outbox;
pub mod paxos;
pub mod protocol;
pub mod raft;
pub mod txn;
